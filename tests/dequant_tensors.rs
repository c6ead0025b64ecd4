//! Whole real tensors, every row, dequantized by the engine's tensor path (GGUF reader -> QTensor -> pocketlm_simd
//! dequantize_row) against PyPI gguf's `gguf.quants.dequantize` of the same tensor (scripts/fixtures/
//! dequant_tensors.py): Gemma 3's Q4_K / Q6_K / Q5_0 / Q8_0 tensors as llama.cpp quantized them, SmolLM2's Q4_1 file
//! and its Q8_0 / Q4_0 / Q5_0 / Q5_1 variants (scripts/make_variants.py).
//!
//! The comparison is bit-exact (NaN equals any NaN): every element of these types is `d * q` or `d * q + m` (K types:
//! `(d * scale) * q - (dmin * min)`), f16 scales widened exactly to f32 and each product/sum rounded once in f32, in
//! the same order as gguf's numpy code, so IEEE round-to-nearest leaves no room for a difference.
//! (simd/tests/reference.rs checks a few rows per type, and random blocks; this checks whole tensors end to end.)
mod common;

use std::collections::BTreeSet;

use pocketlm::gguf::Gguf;
use pocketlm::tensor::QTensor;
use serde_json::Value;

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn whole_tensors_match_gguf_dequantize() {
    let dir = common::fixture_path("dequant");
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let cases = index["cases"].as_array().unwrap();
    let mut types = BTreeSet::new();
    let mut total = 0usize;
    // Cases are grouped by model in the index; read each file once.
    let mut loaded: Option<(String, Vec<u8>, Gguf)> = None;
    for c in cases {
        let model = c["model"].as_str().unwrap();
        let name = c["tensor"].as_str().unwrap();
        let (rows, cols) = (c["rows"].as_u64().unwrap() as usize, c["cols"].as_u64().unwrap() as usize);
        if loaded.as_ref().map(|l| l.0.as_str()) != Some(model) {
            let buf = std::fs::read(common::model_path(model)).unwrap();
            let g = Gguf::parse(&buf).unwrap();
            loaded = Some((model.to_string(), buf, g));
        }
        let (_, buf, g) = loaded.as_ref().unwrap();
        let t = QTensor::load(g, name, cols, rows).unwrap_or_else(|e| panic!("{model} {name}: {e}"));
        assert_eq!(t.typ.name(), c["type"].as_str().unwrap(), "{model} {name}: type");
        let ours = t.to_f32(buf);
        let want: Vec<f32> = std::fs::read(dir.join(c["file"].as_str().unwrap()))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(want.len(), rows * cols, "{model} {name}: fixture size");
        assert_eq!(ours.len(), want.len());
        if let Some(i) = (0..want.len()).find(|&i| !same_f32(ours[i], want[i])) {
            panic!("{model} {name} ({}): row {} col {}: ours {} gguf {}", t.typ, i / cols, i % cols, ours[i], want[i]);
        }
        eprintln!("{model} {name} ({}): {rows} x {cols} bit-identical to gguf", t.typ);
        types.insert(t.typ.name().to_string());
        total += want.len();
    }
    eprintln!("{} tensors, {total} values", cases.len());
    for t in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q6_K"] {
        assert!(types.contains(t), "no whole tensor of {t} in the fixture");
    }
}
