//! Quantized tensor views: a name, a ggml type, a 2-D shape and a byte range inside the loaded model buffer.
//! The bytes are never copied: kernels read them in place from the buffer the file was loaded into.

use crate::gguf::{Gguf, TensorInfo};
use crate::{Error, Result};
use pocketlm_simd::GgmlType;

/// A 2-D view `rows x cols` (ggml dims `[cols, rows]`: `cols` = ne0 is the contiguous row length).
#[derive(Clone, Debug)]
pub struct QTensor {
    pub name: String,
    pub typ: GgmlType,
    pub cols: usize,
    pub rows: usize,
    /// Absolute byte offset of the data in the model buffer.
    pub offset: usize,
    /// Bytes of one row (`typ.row_bytes(cols)`).
    pub row_bytes: usize,
}

impl QTensor {
    /// The tensor `name` with ggml dims `[cols, rows]` (or `[cols]` when `rows == 1`), checked against the file and
    /// against the kernels this engine has.
    pub fn load(g: &Gguf, name: &str, cols: usize, rows: usize) -> Result<QTensor> {
        let info = g.tensor(name).ok_or_else(|| Error::MissingTensor(name.to_string()))?;
        Self::check_shape(info, cols, rows)?;
        if !info.typ.is_supported_weight() {
            return Err(Error::UnsupportedTensorType { name: name.to_string(), typ: info.typ });
        }
        Self::from_info(info)
    }

    /// Like [`QTensor::load`] but `None` when the file has no tensor of that name.
    pub fn load_opt(g: &Gguf, name: &str, cols: usize, rows: usize) -> Result<Option<QTensor>> {
        if g.tensor(name).is_none() {
            return Ok(None);
        }
        Self::load(g, name, cols, rows).map(Some)
    }

    fn check_shape(info: &TensorInfo, cols: usize, rows: usize) -> Result<()> {
        let mut got: Vec<u64> = info.dims.clone();
        // Trailing 1-dims carry no information (a [n, 1] tensor is a vector).
        while got.len() > 1 && *got.last().unwrap() == 1 {
            got.pop();
        }
        let expected: Vec<u64> = if rows == 1 { vec![cols as u64] } else { vec![cols as u64, rows as u64] };
        if got != expected {
            return Err(Error::BadShape { name: info.name.clone(), got: info.dims.clone(), expected });
        }
        Ok(())
    }

    fn from_info(info: &TensorInfo) -> Result<QTensor> {
        let cols = info.dims.first().copied().unwrap_or(1);
        let rows = info.rows();
        let row_bytes = info.typ.row_bytes(cols).ok_or_else(|| {
            Error::Format(format!("tensor '{}': row of {} is not whole {} blocks", info.name, cols, info.typ))
        })?;
        let too_big = || Error::Format(format!("tensor '{}' is too large for this platform", info.name));
        Ok(QTensor {
            name: info.name.clone(),
            typ: info.typ,
            cols: usize::try_from(cols).map_err(|_| too_big())?,
            rows: usize::try_from(rows).map_err(|_| too_big())?,
            offset: usize::try_from(info.offset).map_err(|_| too_big())?,
            row_bytes: usize::try_from(row_bytes).map_err(|_| too_big())?,
        })
    }

    /// Rows `start..start + n` as a view of their own (fused matrices such as Phi-3's QKV are split this way,
    /// without copying).
    pub fn row_range(&self, start: usize, n: usize) -> QTensor {
        assert!(start + n <= self.rows, "rows {start}..{} of '{}' ({} rows)", start + n, self.name, self.rows);
        QTensor { rows: n, offset: self.offset + start * self.row_bytes, ..self.clone() }
    }

    /// All rows' bytes. The GGUF reader checked `offset + rows * row_bytes` against the file.
    #[inline]
    pub fn data<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.offset..self.offset + self.rows * self.row_bytes]
    }

    #[inline]
    pub fn row<'a>(&self, buf: &'a [u8], r: usize) -> &'a [u8] {
        let start = self.offset + r * self.row_bytes;
        &buf[start..start + self.row_bytes]
    }

    /// Dequantize the whole (small) tensor, e.g. a norm weight, into f32.
    pub fn to_f32(&self, buf: &[u8]) -> Vec<f32> {
        let mut out = vec![0.0f32; self.rows * self.cols];
        for r in 0..self.rows {
            pocketlm_simd::dequantize_row(self.typ, self.row(buf, r), &mut out[r * self.cols..(r + 1) * self.cols]);
        }
        out
    }
}
