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

use std::collections::HashMap;
use std::fmt;

use pocketlm_simd::GgmlType;

use crate::{Error, Result};

/// The 4 magic bytes that open every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the tensor data when `general.alignment` is absent (GGUF spec).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// `GGML_MAX_DIMS`: a tensor has 1 to 4 dimensions.
pub const MAX_DIMS: usize = 4;
/// The spec caps keys at 65535 bytes; we apply the same cap to tensor names.
const MAX_NAME_LEN: u64 = 65_535;
/// Arrays of arrays deeper than this are refused (keeps the recursive reader's stack bounded).
const MAX_ARRAY_DEPTH: u32 = 8;
/// Cap on the number of metadata values (array elements included) in one file. Each [`Value`] takes 32 bytes, so
/// this bounds the memory a header can make us allocate (256 MiB) even when a u8 array packs one value per file byte.
/// The largest real vocabularies (262144 tokens: tokens + scores + types + merges) stay far below it.
const MAX_METADATA_VALUES: u64 = 1 << 23;

// GGUF metadata value type ids.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

/// Fewest bytes a value of this type can occupy in the file (string: its length field; array: type + length).
/// None for an id the spec does not define.
fn min_value_size(t: u32) -> Option<u64> {
    Some(match t {
        T_U8 | T_I8 | T_BOOL => 1,
        T_U16 | T_I16 => 2,
        T_U32 | T_I32 | T_F32 => 4,
        T_U64 | T_I64 | T_F64 | T_STRING => 8,
        T_ARRAY => 12,
        _ => return None,
    })
}

/// Smallest key/value pair: empty key (8) + value type (4) + 1-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// Smallest tensor info: empty name (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 8 + 4 + 8;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// Any integer type holding a non-negative value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// Any integer type whose value fits in i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::U8(v) => Some(v as i64),
            Value::U16(v) => Some(v as i64),
            Value::U32(v) => Some(v as i64),
            Value::U64(v) => i64::try_from(v).ok(),
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }
    /// Any numeric type (integers and floats; not bool).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::U64(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    /// Any numeric type, rounded to f32.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            _ => self.as_f64().map(|v| v as f32),
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The GGUF type of this value, spelled as in Rust ("u32", "f32", "string", "array", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        }
    }
}

/// Short human-readable form (long strings and arrays abbreviated), for `info` printouts and error messages.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => {
                const MAX: usize = 60;
                if s.chars().count() <= MAX {
                    write!(f, "{s:?}")
                } else {
                    let head: String = s.chars().take(MAX).collect();
                    write!(f, "{head:?}... ({} bytes)", s.len())
                }
            }
            Value::Array(a) => {
                const SHOW: usize = 4;
                let elem = a.first().map_or("?", |v| v.type_name());
                write!(f, "[{elem}; {}] [", a.len())?;
                for (i, v) in a.iter().take(SHOW).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                if a.len() > SHOW {
                    f.write_str(", ...")?;
                }
                f.write_str("]")
            }
        }
    }
}

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

/// Bounds-checked little-endian reader over the bytes in hand (`buf`, a prefix of a file of `file_len` bytes).
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    file_len: u64,
    /// Metadata values allocated so far (array elements included), checked against MAX_METADATA_VALUES.
    n_values: u64,
}

impl<'a> Cursor<'a> {
    fn pos(&self) -> u64 {
        self.pos as u64
    }

    /// Fails unless `need` more bytes are in hand. `need` None means the size computation overflowed.
    /// A need that fits the file but not the prefix is a "truncated header" (a longer prefix would help); one that
    /// cannot fit even in the file is "truncated or corrupt" (`what` describes it).
    fn ensure(&self, need: Option<u64>, what: impl FnOnce() -> String) -> Result<()> {
        let in_hand = (self.buf.len() - self.pos) as u64;
        let in_file = self.file_len - self.pos();
        match need {
            Some(n) if n <= in_hand => Ok(()),
            Some(n) if n <= in_file => Err(format_err(format!(
                "truncated header: {} at offset {} needs {n} bytes, past the {}-byte prefix in hand (file is {} bytes)",
                what(),
                self.pos,
                self.buf.len(),
                self.file_len
            ))),
            Some(n) => Err(format_err(format!(
                "truncated or corrupt: {} at offset {} needs {n} bytes but only {in_file} remain in the file",
                what(),
                self.pos
            ))),
            None => Err(format_err(format!("{} at offset {} is impossibly large", what(), self.pos))),
        }
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        self.ensure(Some(n), || what.to_string())?;
        // `ensure` proved n <= buf.len() - pos.
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// Checks that `count` items of at least `min_each` bytes can follow, and returns the count as usize
    /// (it is then at most the number of bytes in hand, so an allocation sized by it is bounded by the input).
    fn count(&self, count: u64, min_each: u64, what: impl FnOnce() -> String) -> Result<usize> {
        self.ensure(count.checked_mul(min_each), what)?;
        Ok(count as usize)
    }

    /// A GGUF string: u64 length, then that many bytes of UTF-8. Nothing is allocated before the length is checked
    /// against the bytes in hand and the bytes are validated.
    fn string(&mut self, what: &str, max_len: u64) -> Result<String> {
        let at = self.pos();
        let len = self.u64(&format!("length of {what}"))?;
        if len > max_len {
            return Err(format_err(format!("{what} at offset {at} is {len} bytes long, over the limit of {max_len}")));
        }
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(format_err(format!(
                "invalid UTF-8 in {what} at offset {} (string starts at {})",
                at + 8 + e.valid_up_to() as u64,
                at + 8
            ))),
        }
    }

    fn note_values(&mut self, n: u64) -> Result<()> {
        self.n_values = self.n_values.saturating_add(n);
        if self.n_values > MAX_METADATA_VALUES {
            return Err(format_err(format!(
                "more than {MAX_METADATA_VALUES} metadata values (array elements included) at offset {}",
                self.pos
            )));
        }
        Ok(())
    }

    /// A value of type `vt`; `depth` counts the arrays around it.
    fn value(&mut self, vt: u32, depth: u32) -> Result<Value> {
        Ok(match vt {
            T_U8 => Value::U8(self.bytes::<1>("u8 value")?[0]),
            T_I8 => Value::I8(i8::from_le_bytes(self.bytes("i8 value")?)),
            T_U16 => Value::U16(u16::from_le_bytes(self.bytes("u16 value")?)),
            T_I16 => Value::I16(i16::from_le_bytes(self.bytes("i16 value")?)),
            T_U32 => Value::U32(self.u32("u32 value")?),
            T_I32 => Value::I32(i32::from_le_bytes(self.bytes("i32 value")?)),
            T_F32 => Value::F32(f32::from_le_bytes(self.bytes("f32 value")?)),
            T_U64 => Value::U64(self.u64("u64 value")?),
            T_I64 => Value::I64(i64::from_le_bytes(self.bytes("i64 value")?)),
            T_F64 => Value::F64(f64::from_le_bytes(self.bytes("f64 value")?)),
            T_BOOL => match self.bytes::<1>("bool value")?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(format_err(format!("bool value at offset {} is {b}, not 0 or 1", self.pos - 1)));
                }
            },
            T_STRING => Value::String(self.string("string value", u64::MAX)?),
            T_ARRAY => {
                let at = self.pos();
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format_err(format!(
                        "arrays nested more than {MAX_ARRAY_DEPTH} deep at offset {at}"
                    )));
                }
                let et = self.u32("array element type")?;
                let min = min_value_size(et)
                    .ok_or_else(|| format_err(format!("unknown array element type {et} at offset {at}")))?;
                let len = self.u64("array length")?;
                let n = self.count(len, min, || format!("array of {len} elements of type {et}"))?;
                self.note_values(len)?;
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.value(et, depth + 1).map_err(|e| with_ctx(e, || format!("array element {i}")))?);
                }
                Value::Array(v)
            }
            _ => {
                return Err(format_err(format!("unknown value type {vt} at offset {}", self.pos - 4)));
            }
        })
    }
}

impl Gguf {
    /// Parses a whole GGUF file held in memory. Tensor data is not copied; see [`Gguf::tensor_data`].
    pub fn parse(bytes: &[u8]) -> Result<Gguf> {
        Self::parse_header(bytes, bytes.len() as u64)
    }

    /// Parses the header from `prefix`, the first bytes of a file of `file_len` bytes; tensor extents are checked
    /// against `file_len`. A header running past the prefix is `Error::Format("truncated header: ...")`
    /// (see [`is_truncated`]).
    pub fn parse_header(prefix: &[u8], file_len: u64) -> Result<Gguf> {
        if prefix.len() as u64 > file_len {
            return Err(Error::InvalidArgument(format!(
                "GGUF prefix of {} bytes is longer than the file length {file_len}",
                prefix.len()
            )));
        }
        let mut c = Cursor { buf: prefix, pos: 0, file_len, n_values: 0 };

        let magic: [u8; 4] = c.bytes("magic")?;
        if magic != GGUF_MAGIC {
            return Err(format_err(format!(
                "bad magic {:?} at offset 0 (expected \"GGUF\"): not a GGUF file",
                String::from_utf8_lossy(&magic)
            )));
        }
        let version = c.u32("version")?;
        match version {
            2 | 3 => {}
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
                return Err(format_err(format!(
                    "big-endian GGUF file (version field {v:#010x} at offset 4) is not supported"
                )));
            }
            v => {
                return Err(format_err(format!(
                    "unsupported GGUF version {v} at offset 4 (pocketlm reads versions 2 and 3)"
                )));
            }
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata key/value count")?;
        // Both tables must fit in what follows; checked before either is allocated.
        let need = n_kv
            .checked_mul(MIN_KV_SIZE)
            .and_then(|a| n_tensors.checked_mul(MIN_TENSOR_INFO_SIZE).and_then(|b| a.checked_add(b)));
        c.ensure(need, || format!("{n_kv} key/value pairs and {n_tensors} tensor infos (counts at offsets 16 and 8)"))?;
        let n_kv = n_kv as usize;
        let n_tensors = n_tensors as usize;

        let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv);
        let mut key_index: HashMap<String, usize> = HashMap::with_capacity(n_kv);
        for i in 0..n_kv {
            let at = c.pos;
            let key = c.string("key", MAX_NAME_LEN).map_err(|e| with_ctx(e, || format!("metadata pair #{i}")))?;
            if key_index.contains_key(&key) {
                return Err(format_err(format!("duplicate metadata key '{key}' at offset {at}")));
            }
            let vt = c.u32("value type").map_err(|e| with_ctx(e, || format!("key '{key}'")))?;
            let value = c.value(vt, 0).map_err(|e| with_ctx(e, || format!("value of key '{key}'")))?;
            c.note_values(1)?;
            key_index.insert(key.clone(), i);
            metadata.push((key, value));
        }

        // The spec types general.alignment as u32; PyPI gguf and llama.cpp refuse any other type too.
        let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) => *a as u64,
            Some(v) => {
                return Err(format_err(format!("general.alignment has type {}, expected u32", v.type_name())));
            }
        };
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(format_err(format!("general.alignment {alignment} is not a nonzero power of two")));
        }

        // Tensor table. Offsets are relative (to the data section) until the header's end is known.
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors);
        let mut tensor_index: HashMap<String, usize> = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let at = c.pos;
            let name =
                c.string("tensor name", MAX_NAME_LEN).map_err(|e| with_ctx(e, || format!("tensor info #{i}")))?;
            if tensor_index.contains_key(&name) {
                return Err(format_err(format!("duplicate tensor name '{name}' at offset {at}")));
            }
            let t = Self::tensor_info(&mut c, name, alignment).map_err(|e| with_ctx(e, || format!("tensor info #{i}")))?;
            tensor_index.insert(t.name.clone(), i);
            tensors.push(t);
        }

        let header_end = c.pos();
        let data_offset = header_end
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| format_err(format!("data offset overflows (header end {header_end}, alignment {alignment})")))?;
        for t in &mut tensors {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes));
            match (start, end) {
                (Some(s), Some(e)) if e <= file_len => t.offset = s,
                _ => {
                    return Err(format_err(format!(
                        "tensor '{}' data (relative offset {}, {} bytes, data section at {data_offset}) runs past \
                         the end of the file ({file_len} bytes)",
                        t.name, t.offset, t.n_bytes
                    )));
                }
            }
        }
        // No two tensors may share bytes: sort by start, compare neighbours.
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_unstable_by_key(|&i| tensors[i].offset);
        for w in order.windows(2) {
            let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
            if a.offset + a.n_bytes > b.offset {
                return Err(format_err(format!(
                    "tensors '{}' (bytes {}..{}) and '{}' (bytes {}..{}) overlap",
                    a.name,
                    a.offset,
                    a.offset + a.n_bytes,
                    b.name,
                    b.offset,
                    b.offset + b.n_bytes
                )));
            }
        }

        Ok(Gguf { version, alignment, data_offset, file_len, metadata, tensors, key_index, tensor_index })
    }

    /// The rest of a tensor info after its name; `offset` in the result is still relative to the data section.
    fn tensor_info(c: &mut Cursor<'_>, name: String, alignment: u64) -> Result<TensorInfo> {
        let at = c.pos;
        let n_dims = c.u32("number of dimensions")?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(format_err(format!(
                "tensor '{name}' has {n_dims} dimensions at offset {at} (GGUF allows 1 to {MAX_DIMS})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let at = c.pos;
            let v = c.u64("tensor dimension")?;
            if v == 0 {
                return Err(format_err(format!("tensor '{name}' dimension {d} at offset {at} is 0")));
            }
            dims.push(v);
        }
        // ggml counts elements in int64_t.
        let n_elements = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| format_err(format!("tensor '{name}' element count overflows (dims {dims:?})")))?;
        let at = c.pos;
        let type_id = c.u32("tensor type")?;
        let typ = GgmlType::from_id(type_id).ok_or_else(|| {
            format_err(format!("tensor '{name}' has unknown ggml type id {type_id} at offset {at}"))
        })?;
        let ne0 = dims[0];
        if ne0 % typ.block_size() as u64 != 0 {
            return Err(format_err(format!(
                "tensor '{name}' row length {ne0} is not a multiple of the {typ} block size {}",
                typ.block_size()
            )));
        }
        let n_bytes = typ
            .row_bytes(ne0)
            .and_then(|rb| rb.checked_mul(n_elements / ne0))
            .ok_or_else(|| format_err(format!("tensor '{name}' byte size overflows (dims {dims:?}, {typ})")))?;
        let at = c.pos;
        let offset = c.u64("tensor data offset")?;
        if offset % alignment != 0 {
            return Err(format_err(format!(
                "tensor '{name}' data offset {offset} (at offset {at}) is not a multiple of the alignment {alignment}"
            )));
        }
        Ok(TensorInfo { name, dims, typ, offset, n_bytes })
    }

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
