//! GGUF reader: a validated view of a GGUF v2/v3 file. The header (metadata and tensor table) is parsed into owned
//! values; tensor data stays in the caller's buffer and is handed out as checked sub-slices.
//!
//! File layout (GGUF spec, ggml `docs/gguf.md`; every number little-endian):
//! ```text
//!   magic "GGUF" (4 bytes) | version u32 | tensor_count u64 | kv_count u64
//!   kv_count     x { key: string | value_type u32 | value }
//!   tensor_count x { name: string | n_dims u32 | dims u64[n_dims] (ne0 first) | ggml_type u32 | offset u64 }
//!   zero padding up to a multiple of `general.alignment` (u32, default 32)  <- data_offset
//!   tensor data; each tensor's `offset` is relative to data_offset and a multiple of the alignment
//! string = len u64 | len bytes of UTF-8 (no terminator)
//! array  = element_type u32 | len u64 | len elements (arrays of arrays are allowed)
//! value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte, 0/1), 8 string, 9 array, 10 u64,
//!              11 i64, 12 f64
//! ```
//! Version 1 (u32 counts and lengths) is not read. Version 3 only added big-endian files, which carry no marker other
//! than the byte order of every number; those are recognised by their byte-swapped version field and rejected.
//!
//! Everything read from the file is distrusted: each count and length is checked against the bytes that remain (and
//! against fixed caps) before anything is allocated for it, so a corrupt header fails fast with
//! [`Error::Format`] naming the problem and its place, and never panics or allocates without bound.
//!
//! - `mod.rs`: [`Gguf`], the parsed header, and its lookups ([`Gguf::get`], the typed `req_*` / `opt_*` /
//!   `arch_*` readers, [`Gguf::tensor`], [`Gguf::tensor_data`]); [`TensorInfo`]; [`is_truncated`];
//! - `value.rs`: [`Value`], a metadata value, and the GGUF value type ids;
//! - `parse.rs`: [`Gguf::parse`] and [`Gguf::parse_header`] over `Cursor`, the bounds-checked little-endian reader.

mod parse;
mod value;

pub use value::Value;

use std::collections::HashMap;

use pocketlm_simd::GgmlType;

use crate::{Error, Result};

/// The 4 magic bytes that open every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the tensor data when `general.alignment` is absent (GGUF spec).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// `GGML_MAX_DIMS`: a tensor has 1 to 4 dimensions.
pub const MAX_DIMS: usize = 4;

/// One entry of the tensor table.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` = ne0 = row length (contiguous), then rows, planes, ... (1 to 4 entries, all >= 1).
    pub dims: Vec<u64>,
    pub typ: GgmlType,
    /// Absolute byte offset of the tensor data in the file (data_offset + the file's relative offset).
    pub offset: u64,
    /// Bytes of tensor data: `typ.row_bytes(dims[0]) * rows()`.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
    /// Number of rows: the product of `dims[1..]` (1 for a vector).
    pub fn rows(&self) -> u64 {
        self.dims.iter().skip(1).fold(1u64, |a, &d| a.saturating_mul(d))
    }
    /// Row length in elements (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(0)
    }
    /// Absolute byte range of the data in the file.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset.saturating_add(self.n_bytes)
    }
}

/// A parsed GGUF header. `metadata` and `tensors` keep file order; lookups by name go through hash indexes built at
/// parse time (they fall back to a scan should a caller have edited the public vectors).
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the tensor data section: the end of the header rounded up to `alignment`. With no tensors
    /// it may lie past `file_len` (writers need not pad a file that has no data).
    pub data_offset: u64,
    pub file_len: u64,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    key_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

/// True when `e` is the error [`Gguf::parse_header`] returns because the header runs past the prefix it was given
/// while still fitting in the file: a caller streaming the file can retry with a longer prefix.
pub fn is_truncated(e: &Error) -> bool {
    matches!(e, Error::Format(m) if m.starts_with("truncated header"))
}

fn format_err(msg: String) -> Error {
    Error::Format(msg)
}

/// Appends " (context)" to a format error, so nested readers can say where a failure happened.
fn with_ctx(e: Error, ctx: impl FnOnce() -> String) -> Error {
    match e {
        Error::Format(m) => Error::Format(format!("{m} ({})", ctx())),
        other => other,
    }
}

impl Gguf {
    pub fn get(&self, key: &str) -> Option<&Value> {
        if let Some((k, v)) = self.key_index.get(key).and_then(|&i| self.metadata.get(i)) {
            if k == key {
                return Some(v);
            }
        }
        // Only reached for absent keys or after a caller edited `metadata`: a short scan keeps the answer right.
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn req(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| Error::MissingKey(key.to_string()))
    }

    fn wrong(key: &str, expected: &'static str) -> Error {
        Error::WrongType { key: key.to_string(), expected }
    }

    /// Looks `key` up and converts it with `f`; absent -> None, present but `f` fails -> WrongType.
    fn opt_with<'s, T>(&'s self, key: &str, expected: &'static str, f: impl FnOnce(&'s Value) -> Option<T>) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| Self::wrong(key, expected)),
        }
    }

    pub fn req_u64(&self, key: &str) -> Result<u64> {
        self.opt_u64(key)?.ok_or_else(|| Error::MissingKey(key.to_string()))
    }
    /// Any integer type with a non-negative value.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.opt_with(key, "non-negative integer", Value::as_u64)
    }
    pub fn req_f32(&self, key: &str) -> Result<f32> {
        self.opt_f32(key)?.ok_or_else(|| Error::MissingKey(key.to_string()))
    }
    /// Any numeric type, rounded to f32.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.opt_with(key, "number", Value::as_f32)
    }
    pub fn req_str(&self, key: &str) -> Result<&str> {
        self.req(key)?.as_str().ok_or_else(|| Self::wrong(key, "string"))
    }
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.opt_with(key, "string", Value::as_str)
    }
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.opt_with(key, "bool", Value::as_bool)
    }
    pub fn opt_str_array(&self, key: &str) -> Result<Option<Vec<&str>>> {
        self.opt_with(key, "array of strings", |v| v.as_array()?.iter().map(Value::as_str).collect())
    }
    /// An array of any numeric type, rounded to f32.
    pub fn opt_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>> {
        self.opt_with(key, "array of numbers", |v| v.as_array()?.iter().map(Value::as_f32).collect())
    }
    /// An array of any integer type whose values all fit in i32.
    pub fn opt_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>> {
        self.opt_with(key, "array of integers within i32", |v| {
            v.as_array()?.iter().map(|x| x.as_i64().and_then(|i| i32::try_from(i).ok())).collect()
        })
    }
    /// An array of any integer type whose values are all non-negative.
    pub fn opt_u64_array(&self, key: &str) -> Result<Option<Vec<u64>>> {
        self.opt_with(key, "array of non-negative integers", |v| v.as_array()?.iter().map(Value::as_u64).collect())
    }

    /// `general.architecture` (e.g. "llama", "gemma3").
    pub fn architecture(&self) -> Result<&str> {
        self.req_str("general.architecture")
    }
    /// `{arch}.{suffix}` as an integer, e.g. `arch_u64("block_count")` -> `llama.block_count`.
    pub fn arch_u64(&self, suffix: &str) -> Result<Option<u64>> {
        self.opt_u64(&format!("{}.{suffix}", self.architecture()?))
    }
    pub fn arch_f32(&self, suffix: &str) -> Result<Option<f32>> {
        self.opt_f32(&format!("{}.{suffix}", self.architecture()?))
    }
    /// `{arch}.{suffix}` given either as one integer for all `n_layers` layers or as an array with one per layer
    /// (files such as Gemma 3n and OpenELM store `head_count_kv` / `feed_forward_length` per layer).
    pub fn arch_u64_per_layer(&self, suffix: &str, n_layers: usize) -> Result<Option<Vec<u64>>> {
        let key = format!("{}.{suffix}", self.architecture()?);
        match self.get(&key) {
            None => Ok(None),
            Some(Value::Array(_)) => {
                let v = self.opt_u64_array(&key)?.unwrap_or_default();
                if v.len() != n_layers {
                    return Err(format_err(format!(
                        "{key} has {} entries, expected one per layer ({n_layers})",
                        v.len()
                    )));
                }
                Ok(Some(v))
            }
            Some(_) => Ok(Some(vec![self.req_u64(&key)?; n_layers])),
        }
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        if let Some(t) = self.tensor_index.get(name).and_then(|&i| self.tensors.get(i)) {
            if t.name == name {
                return Some(t);
            }
        }
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The data of tensor `t` inside `bytes`, the file (or any prefix of it) starting at byte 0.
    pub fn tensor_data<'a>(&self, bytes: &'a [u8], t: &TensorInfo) -> Result<&'a [u8]> {
        match t.offset.checked_add(t.n_bytes) {
            Some(end) if end <= bytes.len() as u64 => Ok(&bytes[t.offset as usize..end as usize]),
            _ => Err(format_err(format!(
                "tensor '{}' data (bytes {}..+{}) lies outside the {}-byte buffer",
                t.name,
                t.offset,
                t.n_bytes,
                bytes.len()
            ))),
        }
    }
}
