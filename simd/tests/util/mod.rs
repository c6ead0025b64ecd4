//! Shared helpers of the pocketlm-simd integration tests: a seeded PRNG and the gguf reference fixtures written by
//! scripts/fixtures/quant_ref.py (PyPI gguf + numpy).
#![allow(dead_code)]

use pocketlm_simd::GgmlType;
use std::path::PathBuf;

/// splitmix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    pub fn normals(&mut self, n: usize, sigma: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * sigma) as f32).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// `$POCKETLM_FIXTURES`, else `<workspace>/target/fixtures` (where `make fixtures` writes them).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("POCKETLM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("fixtures")
        })
}

pub fn type_by_name(name: &str) -> GgmlType {
    (0..64)
        .filter_map(GgmlType::from_id)
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("unknown type {name}"))
}

/// One fixture case: `rows` rows of `cols` elements of type `t`.
pub struct Case {
    pub name: String,
    pub t: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub source: String,
    /// The f32 rows gguf quantized (quantize cases only), rows * cols.
    pub input: Option<Vec<f32>>,
    /// The raw rows, rows * t.row_bytes(cols).
    pub raw: Vec<u8>,
    /// gguf.quants.dequantize of `raw`, rows * cols.
    pub deq: Vec<f32>,
}

impl Case {
    pub fn row_bytes(&self) -> usize {
        self.t.row_bytes(self.cols as u64).unwrap() as usize
    }
    pub fn raw_row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.raw[r * rb..(r + 1) * rb]
    }
    pub fn deq_row(&self, r: usize) -> &[f32] {
        &self.deq[r * self.cols..(r + 1) * self.cols]
    }
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// All cases of FIXTURES_DIR/quant/index.json; a missing index fails with the command that writes it.
pub fn load_cases() -> Vec<Case> {
    let dir = fixtures_dir().join("quant");
    let index = dir.join("index.json");
    assert!(index.exists(), "{} is missing: run `make fixtures`", index.display());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    assert_eq!(v["version"], 1, "fixture format version");
    let mut out = Vec::new();
    for c in v["cases"].as_array().expect("cases") {
        let name = c["name"].as_str().unwrap().to_string();
        let t = type_by_name(c["type"].as_str().unwrap());
        let rows = c["rows"].as_u64().unwrap() as usize;
        let cols = c["cols"].as_u64().unwrap() as usize;
        let has_input = c["has_input"].as_bool().unwrap();
        let bytes = std::fs::read(dir.join(c["file"].as_str().unwrap())).unwrap();
        let rb = t.row_bytes(cols as u64).unwrap() as usize;
        let n_in = if has_input { rows * cols * 4 } else { 0 };
        assert_eq!(bytes.len(), n_in + rows * rb + rows * cols * 4, "{name}: file size");
        let input = has_input.then(|| f32s(&bytes[..n_in]));
        let raw = bytes[n_in..n_in + rows * rb].to_vec();
        let deq = f32s(&bytes[n_in + rows * rb..]);
        let source = c["source"].as_str().unwrap().to_string();
        out.push(Case {
            name,
            t,
            rows,
            cols,
            source,
            input,
            raw,
            deq,
        });
    }
    out
}

/// Same f32 value, NaN matching any NaN (numpy and Rust need not produce the same NaN payload).
pub fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}
