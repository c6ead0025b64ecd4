//! The GGUF reader against PyPI gguf's GGUFReader: every metadata value, every tensor info and the layout numbers of
//! the real models, several vocab-only llama.cpp files (one of them GGUF v2) and a synthetic file written by PyPI's
//! GGUFWriter with every value type and nested arrays. References: scripts/fixtures/gguf_dump.py (`make fixtures`).
mod common;

use std::path::Path;

use pocketlm::gguf::{is_truncated, Gguf, Value};
use pocketlm::Error;
use serde_json::Value as J;

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the checksum Python's zlib.crc32 computes.
struct Crc32([u32; 256]);

impl Crc32 {
    fn new() -> Self {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            *e = c;
        }
        Crc32(t)
    }
    fn update(&self, crc: u32, bytes: &[u8]) -> u32 {
        let mut c = !crc;
        for &b in bytes {
            c = self.0[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        }
        !c
    }
}

fn type_id(v: &Value) -> u8 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

/// The canonical element encoding gguf_dump.py checksums: GGUF type id byte, then the payload.
fn canonical(v: &Value, out: &mut Vec<u8>) {
    out.push(type_id(v));
    match v {
        Value::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_bits().to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_bits().to_le_bytes()),
        Value::Bool(b) => out.push(*b as u8),
        Value::String(s) => {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(a) => {
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for e in a {
                canonical(e, out);
            }
        }
    }
}

fn check_value(crc: &Crc32, at: &str, ours: &Value, want: &J) {
    let wt = want["type"].as_str().unwrap();
    assert_eq!(ours.type_name(), wt, "{at}: type");
    match ours {
        Value::U8(_) | Value::U16(_) | Value::U32(_) | Value::U64(_) => {
            assert_eq!(ours.as_u64(), Some(want["value"].as_u64().unwrap()), "{at}")
        }
        Value::I8(_) | Value::I16(_) | Value::I32(_) | Value::I64(_) => {
            assert_eq!(ours.as_i64(), Some(want["value"].as_i64().unwrap()), "{at}")
        }
        Value::F32(x) => assert_eq!(x.to_bits() as u64, want["bits"].as_u64().unwrap(), "{at}: f32 bits"),
        Value::F64(x) => assert_eq!(x.to_bits(), want["bits"].as_u64().unwrap(), "{at}: f64 bits"),
        Value::Bool(b) => assert_eq!(*b, want["value"].as_bool().unwrap(), "{at}"),
        Value::String(s) => assert_eq!(s, want["value"].as_str().unwrap(), "{at}"),
        Value::Array(a) => {
            let n = want["len"].as_u64().unwrap() as usize;
            assert_eq!(a.len(), n, "{at}: array length");
            let mut c = 0u32;
            let mut buf = Vec::new();
            for e in a {
                buf.clear();
                canonical(e, &mut buf);
                c = crc.update(c, &buf);
            }
            assert_eq!(c as u64, want["crc32"].as_u64().unwrap(), "{at}: checksum of all elements");
            let head = want["head"].as_array().unwrap();
            let tail = want["tail"].as_array().unwrap();
            assert_eq!(head.len(), n.min(8), "{at}: fixture head");
            for (i, w) in head.iter().enumerate() {
                check_value(crc, &format!("{at}[{i}]"), &a[i], w);
            }
            for (j, w) in tail.iter().enumerate() {
                let i = n - tail.len() + j;
                check_value(crc, &format!("{at}[{i}]"), &a[i], w);
            }
        }
    }
}

fn load_fixture(name: &str) -> J {
    let text = std::fs::read_to_string(common::fixture_path(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Parses `file` and compares everything with the GGUFReader dump `fixture`. Returns the file and its parse.
fn check_file(file: &Path, fixture: &str) -> (Vec<u8>, Gguf) {
    let want = load_fixture(fixture);
    let bytes = std::fs::read(file).unwrap();
    let g = Gguf::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let crc = Crc32::new();

    assert_eq!(g.file_len, want["file_len"].as_u64().unwrap());
    assert_eq!(g.file_len, bytes.len() as u64);
    assert_eq!(g.version as u64, want["version"].as_u64().unwrap(), "version");
    assert_eq!(g.alignment, want["alignment"].as_u64().unwrap(), "alignment");
    assert_eq!(g.data_offset, want["data_offset"].as_u64().unwrap(), "data offset");
    assert_eq!(g.metadata.len() as u64, want["kv_count"].as_u64().unwrap(), "kv count");
    assert_eq!(g.tensors.len() as u64, want["tensor_count"].as_u64().unwrap(), "tensor count");

    let meta = want["metadata"].as_array().unwrap();
    assert_eq!(g.metadata.len(), meta.len());
    for ((k, v), w) in g.metadata.iter().zip(meta) {
        assert_eq!(k, w["key"].as_str().unwrap(), "metadata order");
        check_value(&crc, k, v, &w["value"]);
        assert!(std::ptr::eq(g.get(k).unwrap(), v), "get({k}) finds the entry");
    }
    assert!(g.get("no.such.key").is_none());

    let tensors = want["tensors"].as_array().unwrap();
    assert_eq!(g.tensors.len(), tensors.len());
    for (t, w) in g.tensors.iter().zip(tensors) {
        let name = w["name"].as_str().unwrap();
        assert_eq!(t.name, name, "tensor order");
        assert_eq!(t.typ.id() as u64, w["type_id"].as_u64().unwrap(), "{name}: type id");
        assert_eq!(t.typ.name(), w["type_name"].as_str().unwrap(), "{name}: type name");
        let dims: Vec<u64> = w["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(t.dims, dims, "{name}: dims");
        assert_eq!(t.offset, w["offset"].as_u64().unwrap(), "{name}: offset");
        assert_eq!(t.n_bytes, w["n_bytes"].as_u64().unwrap(), "{name}: n_bytes");
        assert_eq!(t.n_elements(), dims.iter().product::<u64>(), "{name}: n_elements");
        assert_eq!(t.rows(), dims[1..].iter().product::<u64>(), "{name}: rows");
        assert!(std::ptr::eq(g.tensor(name).unwrap(), t), "tensor({name}) finds the entry");
        let data = g.tensor_data(&bytes, t).unwrap();
        assert_eq!(data.len() as u64, t.n_bytes);
        assert_eq!(crc.update(0, data) as u64, w["data_crc32"].as_u64().unwrap(), "{name}: data checksum");
    }
    assert!(g.tensor("no.such.tensor").is_none());

    // The header alone (as a streaming loader has it) gives the same result; one alignment step less is too short
    // (the header ends after data_offset - alignment) and says so with a retryable "truncated header" error.
    let hdr = (g.data_offset as usize).min(bytes.len());
    let h = Gguf::parse_header(&bytes[..hdr], bytes.len() as u64).unwrap();
    assert_eq!(h.metadata, g.metadata);
    assert_eq!(h.tensors, g.tensors);
    assert_eq!((h.version, h.alignment, h.data_offset, h.file_len), (g.version, g.alignment, g.data_offset, g.file_len));
    let short = hdr.saturating_sub(g.alignment as usize);
    let e = Gguf::parse_header(&bytes[..short], bytes.len() as u64).unwrap_err();
    assert!(is_truncated(&e), "{e}");
    // A whole file cut just as short is not retryable: the file itself is truncated.
    let e = Gguf::parse(&bytes[..short]).unwrap_err();
    assert!(!is_truncated(&e) && e.to_string().contains("truncated"), "{e}");
    (bytes, g)
}

fn fixture_u64(want: &J, key: &str) -> u64 {
    let m = want["metadata"].as_array().unwrap().iter().find(|m| m["key"] == key).unwrap();
    m["value"]["value"].as_u64().unwrap()
}

fn fixture_f32_bits(want: &J, key: &str) -> u32 {
    let m = want["metadata"].as_array().unwrap().iter().find(|m| m["key"] == key).unwrap();
    m["value"]["bits"].as_u64().unwrap() as u32
}

#[test]
fn smollm2_matches_pypi_gguf() {
    let (bytes, g) = check_file(&common::model_path(common::SMOLLM2), "gguf_smollm2.json");
    let want = load_fixture("gguf_smollm2.json");
    // Typed accessors agree with the reference values.
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.arch_u64("block_count").unwrap(), Some(fixture_u64(&want, "llama.block_count")));
    assert_eq!(g.req_u64("llama.embedding_length").unwrap(), fixture_u64(&want, "llama.embedding_length"));
    assert_eq!(
        g.arch_u64_per_layer("attention.head_count_kv", 30).unwrap(),
        Some(vec![fixture_u64(&want, "llama.attention.head_count_kv"); 30])
    );
    let eps = g.arch_f32("attention.layer_norm_rms_epsilon").unwrap().unwrap();
    assert_eq!(eps.to_bits(), fixture_f32_bits(&want, "llama.attention.layer_norm_rms_epsilon"));
    assert_eq!(g.req_f32("llama.rope.freq_base").unwrap().to_bits(), fixture_f32_bits(&want, "llama.rope.freq_base"));
    let tokens = g.opt_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    let types = g.opt_i32_array("tokenizer.ggml.token_type").unwrap().unwrap();
    assert_eq!(tokens.len(), types.len());
    assert_eq!(tokens.len() as u64, fixture_u64(&want, "llama.vocab_size"));
    assert_eq!(g.opt_str("tokenizer.ggml.model").unwrap(), Some("gpt2"));
    assert!(g.opt_str("tokenizer.chat_template").unwrap().unwrap().contains("im_start"));
    assert_eq!(g.opt_bool("tokenizer.ggml.add_bos_token").unwrap(), g.get("tokenizer.ggml.add_bos_token").unwrap().as_bool());
    // Absent and mistyped keys.
    assert_eq!(g.opt_u64("llama.no_such_key").unwrap(), None);
    assert!(matches!(g.req_u64("llama.no_such_key"), Err(Error::MissingKey(k)) if k == "llama.no_such_key"));
    assert!(matches!(g.req_str("general.nope"), Err(Error::MissingKey(_))));
    assert!(matches!(g.opt_u64("general.architecture"), Err(Error::WrongType { key, .. }) if key == "general.architecture"));
    assert!(matches!(g.req_str("llama.block_count"), Err(Error::WrongType { .. })));
    assert!(matches!(g.opt_bool("llama.block_count"), Err(Error::WrongType { .. })));
    assert!(matches!(g.opt_str_array("tokenizer.ggml.token_type"), Err(Error::WrongType { .. })));
    assert!(matches!(g.opt_u64("tokenizer.ggml.tokens"), Err(Error::WrongType { .. })));
    assert!(matches!(g.opt_f32_array("tokenizer.ggml.tokens"), Err(Error::WrongType { .. })));
    // tensor_data refuses a buffer that does not hold the tensor.
    let t = g.tensor("token_embd.weight").unwrap();
    assert!(g.tensor_data(&bytes[..(t.offset + t.n_bytes - 1) as usize], t).is_err());
}

#[test]
fn gemma3_matches_pypi_gguf() {
    let (_, g) = check_file(&common::model_path(common::GEMMA3), "gguf_gemma3.json");
    let want = load_fixture("gguf_gemma3.json");
    assert_eq!(g.architecture().unwrap(), "gemma3");
    assert_eq!(g.arch_u64("block_count").unwrap(), Some(fixture_u64(&want, "gemma3.block_count")));
    let scores = g.opt_f32_array("tokenizer.ggml.scores").unwrap().unwrap();
    let tokens = g.opt_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    assert_eq!(scores.len(), tokens.len());
    let sw = g.get("tokenizer.ggml.scores").unwrap().as_array().unwrap();
    assert!(scores.iter().zip(sw).all(|(a, b)| Some(*a) == b.as_f32()));
}

fn vocab(name: &str) -> std::path::PathBuf {
    common::model_path(&format!("vocab/ggml-vocab-{name}.gguf"))
}

#[test]
fn vocab_files_match_pypi_gguf() {
    for name in ["aquila", "llama-spm", "gpt-2", "bert-bge", "nomic-bert-moe", "gemma-4"] {
        let (_, g) = check_file(&vocab(name), &format!("gguf_vocab_{name}.json"));
        assert!(g.tensors.is_empty(), "{name}: vocab files carry no tensors");
        let tokens = g.opt_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
        assert!(!tokens.is_empty());
    }
}

#[test]
fn synthetic_all_value_types_match_pypi_gguf() {
    let path = common::fixture_path("gguf_synthetic.gguf");
    let (mut bytes, g) = check_file(&path, "gguf_synthetic.json");
    assert_eq!(g.alignment, 64);
    assert_eq!(g.architecture().unwrap(), "synthetic");
    // Conversions across integer types and their limits (values as written by gguf_dump.py).
    assert_eq!(g.opt_u64("t.u64").unwrap(), Some(u64::MAX));
    assert_eq!(g.get("t.u64").unwrap().as_i64(), None);
    assert!(matches!(g.opt_u64("t.i8"), Err(Error::WrongType { .. })), "-128 is not a u64");
    assert_eq!(g.get("t.i64").unwrap().as_i64(), Some(i64::MIN));
    assert_eq!(g.get("t.u8").unwrap().as_f64(), Some(255.0));
    assert_eq!(g.opt_f32("t.f64").unwrap(), Some(std::f64::consts::PI as f32));
    assert_eq!(g.opt_f32("t.u16").unwrap(), Some(65535.0));
    assert!(matches!(g.opt_f32("t.bool_true"), Err(Error::WrongType { .. })));
    assert_eq!(g.opt_bool("t.bool_false").unwrap(), Some(false));
    assert_eq!(g.opt_str("t.empty_string").unwrap(), Some(""));
    assert_eq!(g.opt_i32_array("a.i8").unwrap(), Some(vec![-128, -1, 0, 127]));
    assert_eq!(g.opt_i32_array("a.u8").unwrap(), Some(vec![0, 1, 254, 255]));
    assert!(matches!(g.opt_i32_array("a.u32"), Err(Error::WrongType { .. })), "4294967295 does not fit i32");
    assert_eq!(g.opt_f32_array("a.f32").unwrap(), Some(vec![0.5, -2.25, 1e30]));
    assert_eq!(g.opt_str_array("a.string").unwrap(), Some(vec!["a", "", "üñî", "tab\tnew\nline"]));
    assert!(matches!(g.opt_str_array("n.str_2d"), Err(Error::WrongType { .. })));
    let nested = g.get("n.depth3").unwrap().as_array().unwrap();
    assert_eq!(nested[1].as_array().unwrap()[0].as_array().unwrap()[2].as_i64(), Some(6));

    // Versions 2 and 3 share the little-endian layout: the same file stamped v2 parses the same.
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let g2 = Gguf::parse(&bytes).unwrap();
    assert_eq!(g2.version, 2);
    assert_eq!((g2.metadata == g.metadata, g2.tensors == g.tensors), (true, true));
}
