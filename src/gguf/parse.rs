//! Reading the header: the bounds-checked `Cursor` over the bytes in hand, and [`Gguf::parse_header`], which
//! reads the metadata and the tensor table with it and checks every extent against the file.

use std::collections::HashMap;

use pocketlm_simd::GgmlType;

use super::value::{
    min_value_size, Value, T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32,
    T_BOOL, T_STRING, T_ARRAY, T_U64, T_I64, T_F64,
};
use super::{format_err, with_ctx, Gguf, TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use crate::{Error, Result};

/// The spec caps keys at 65535 bytes; we apply the same cap to tensor names.
const MAX_NAME_LEN: u64 = 65_535;
/// Arrays of arrays deeper than this are refused (keeps the recursive reader's stack bounded).
const MAX_ARRAY_DEPTH: u32 = 8;
/// Cap on the number of metadata values (array elements included) in one file. Each [`Value`] takes 32 bytes, so
/// this bounds the memory a header can make us allocate (256 MiB) even when a u8 array packs one value per file byte.
/// The largest real vocabularies (262144 tokens: tokens + scores + types + merges) stay far below it.
const MAX_METADATA_VALUES: u64 = 1 << 23;

/// Smallest key/value pair: empty key (8) + value type (4) + 1-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// Smallest tensor info: empty name (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 8 + 4 + 8;

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
    /// (see [`is_truncated`](super::is_truncated)).
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
}
