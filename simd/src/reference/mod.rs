//! Scalar reference kernels: the specification every other kernel (SIMD128) must reproduce.
//!
//! What "the same" means, per kind of result:
//! - Quantizers and dequantizers: bit-exact. Dequantization is one or two f32 operations per value in a fixed order
//!   (ggml's `dequantize_row_*` order, which PyPI gguf's numpy code follows too); the quantizers follow ggml's
//!   `quantize_row_*_ref` (and gguf's `quants.py`, which matches them) operation by operation.
//! - Quantized dot products: for each block the integer dot product of the codes is exact (i32), then combined
//!   with the block's float scales in the order written in each kernel, and the per-block results are summed in f32
//!   block by block. A SIMD kernel that keeps the integer part exact and the per-block float order gets the same bits;
//!   one that sums blocks in several lanes differs only by f32 summation rounding.
//! - Float dot products (F32/F16/BF16 weights, [`crate::ops::dot_f32`]): the 8-lane order of [`dot_lanes`].
//!
//! This is how llama.cpp computes `ggml_vec_dot_*` (weights against an activation row quantized to the weight type's
//! `vec_dot_type`): Q4_0/Q5_0/Q8_0 against Q8_0, Q4_1/Q5_1 against Q8_1 (whose `s = d * sum(qs)` turns the weights'
//! `+ m` into one multiply per block), the K types against Q8_K (whose `bsums` do the same for the K mins).
//!
//! Buffer shapes: a row of `n` elements of type `t` is `t.row_bytes(n)` bytes (`n / block_size` blocks, see
//! [`crate::blocks`]); f32 rows passed as bytes (activations of float weights) are `4 * n` little-endian bytes.
//! Every function asserts its lengths and panics on a mismatch: that is a caller bug, never a data problem (the
//! model loader checks tensor sizes against their shapes before any kernel sees them).
//!
//! One file per kernel family, beside the SIMD128 file it specifies (`crate::simd128::*`): [`dequant`] (rows to
//! f32), [`quantize`] (f32 rows to blocks), [`float`] (the 8-lane summation order and the F32 / F16 / BF16 dots),
//! [`legacy`] (the 32-element formats' dots), [`kquants`] (the K formats' code unpacking and dots). This file holds
//! what chooses among them: row sizes and the checks of every length, the per-type dispatch, matvec and matmul.
//! Everything public in the family files is re-exported here (`reference::vec_dot_q4_0_q8_0`, ...).

mod dequant;
mod float;
mod kquants;
mod legacy;
mod quantize;

pub use dequant::*;
pub use float::*;
pub use kquants::*;
pub use legacy::*;
pub use quantize::*;

use crate::blocks::*;
use crate::GgmlType;

/// Bytes of a row of `n` elements of `t`; panics when `n` is not a whole number of blocks (a caller bug).
#[track_caller]
pub fn row_bytes(t: GgmlType, n: usize) -> usize {
    match t.row_bytes(n as u64).and_then(|b| usize::try_from(b).ok()) {
        Some(b) => b,
        None => panic!(
            "{t}: a row of {n} elements is not a whole number of {}-element blocks",
            t.block_size()
        ),
    }
}

#[track_caller]
pub(crate) fn check_len(t: GgmlType, n: usize, bytes: usize, what: &str) {
    let want = row_bytes(t, n);
    assert!(
        bytes == want,
        "{t}: {what} of {n} elements must be {want} bytes, got {bytes}"
    );
}

// ------------------------------------------------------------------------------------------------------------------
// Dequantization: dst.len() elements from a row of dst.len() / block_size blocks.
// ------------------------------------------------------------------------------------------------------------------

/// Dequantizes one row: `dst.len()` elements from `src` = `t.row_bytes(dst.len())` bytes.
/// Supports every weight type ([`GgmlType::is_supported_weight`]) and the activation types Q8_1 and Q8_K.
/// Panics on a length mismatch or another type.
#[track_caller]
pub fn dequantize_row(t: GgmlType, src: &[u8], dst: &mut [f32]) {
    check_len(t, dst.len(), src.len(), "source row");
    match t {
        GgmlType::F32 => dequantize_row_f32(src, dst),
        GgmlType::F16 => dequantize_row_f16(src, dst),
        GgmlType::BF16 => dequantize_row_bf16(src, dst),
        GgmlType::Q4_0 => dequantize_row_q4_0(src, dst),
        GgmlType::Q4_1 => dequantize_row_q4_1(src, dst),
        GgmlType::Q5_0 => dequantize_row_q5_0(src, dst),
        GgmlType::Q5_1 => dequantize_row_q5_1(src, dst),
        GgmlType::Q8_0 => dequantize_row_q8_0(src, dst),
        GgmlType::Q8_1 => dequantize_row_q8_1(src, dst),
        GgmlType::Q2_K => dequantize_row_q2_k(src, dst),
        GgmlType::Q3_K => dequantize_row_q3_k(src, dst),
        GgmlType::Q4_K => dequantize_row_q4_k(src, dst),
        GgmlType::Q5_K => dequantize_row_q5_k(src, dst),
        GgmlType::Q6_K => dequantize_row_q6_k(src, dst),
        GgmlType::Q8_K => dequantize_row_q8_k(src, dst),
        _ => panic!("dequantize_row: {t} is not implemented"),
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Quantization: dst = t.row_bytes(src.len()) bytes.
// ------------------------------------------------------------------------------------------------------------------

/// Types [`quantize_row`] can produce.
pub fn can_quantize(t: GgmlType) -> bool {
    use GgmlType::*;
    matches!(t, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | Q8_K)
}

/// Quantizes one row of `src.len()` elements into `dst` = `t.row_bytes(src.len())` bytes, round-to-nearest as
/// ggml's reference quantizers (no importance weighting). Panics on a length mismatch or when `!can_quantize(t)`.
#[track_caller]
pub fn quantize_row(t: GgmlType, src: &[f32], dst: &mut [u8]) {
    check_len(t, src.len(), dst.len(), "destination row");
    match t {
        GgmlType::F32 => quantize_row_f32(src, dst),
        GgmlType::F16 => quantize_row_f16(src, dst),
        GgmlType::BF16 => quantize_row_bf16(src, dst),
        GgmlType::Q4_0 => quantize_row_q4_0(src, dst),
        GgmlType::Q4_1 => quantize_row_q4_1(src, dst),
        GgmlType::Q5_0 => quantize_row_q5_0(src, dst),
        GgmlType::Q5_1 => quantize_row_q5_1(src, dst),
        GgmlType::Q8_0 => quantize_row_q8_0(src, dst),
        GgmlType::Q8_1 => quantize_row_q8_1(src, dst),
        GgmlType::Q8_K => quantize_row_q8_k(src, dst),
        _ => panic!("quantize_row: {t} is not implemented"),
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Dot products: one weight row (n elements of the weight type) with one activation row (n elements of its
// vec_dot_type).
// ------------------------------------------------------------------------------------------------------------------

/// The dot product of one weight row of `wt` with one activation row of `wt.vec_dot_type()`, both `n` elements.
/// Panics on length mismatches or an unsupported weight type.
#[track_caller]
pub fn vec_dot(wt: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_len(wt, n, w.len(), "weight row");
    check_len(wt.vec_dot_type(), n, a.len(), "activation row");
    dot_kernel(wt)(n, w, a)
}

/// A dot-product kernel `(n, weight row, activation row) -> f32`.
pub type DotFn = fn(usize, &[u8], &[u8]) -> f32;

/// The kernel for weight type `wt`; panics when `!wt.is_supported_weight()`.
#[track_caller]
pub fn dot_kernel(wt: GgmlType) -> DotFn {
    match wt {
        GgmlType::F32 => vec_dot_f32_f32,
        GgmlType::F16 => vec_dot_f16_f32,
        GgmlType::BF16 => vec_dot_bf16_f32,
        GgmlType::Q4_0 => vec_dot_q4_0_q8_0,
        GgmlType::Q4_1 => vec_dot_q4_1_q8_1,
        GgmlType::Q5_0 => vec_dot_q5_0_q8_0,
        GgmlType::Q5_1 => vec_dot_q5_1_q8_1,
        GgmlType::Q8_0 => vec_dot_q8_0_q8_0,
        GgmlType::Q2_K => vec_dot_q2_k_q8_k,
        GgmlType::Q3_K => vec_dot_q3_k_q8_k,
        GgmlType::Q4_K => vec_dot_q4_k_q8_k,
        GgmlType::Q5_K => vec_dot_q5_k_q8_k,
        GgmlType::Q6_K => vec_dot_q6_k_q8_k,
        _ => panic!("vec_dot: {wt} is not a supported weight type"),
    }
}

#[track_caller]
pub(crate) fn check_dot(wt: GgmlType, n: usize, w: &[u8], a: &[u8]) {
    check_len(wt, n, w.len(), "weight row");
    check_len(wt.vec_dot_type(), n, a.len(), "activation row");
}

// ------------------------------------------------------------------------------------------------------------------
// Matrix-vector and matrix-matrix products.
// ------------------------------------------------------------------------------------------------------------------

/// `out[r] = vec_dot(row r of w, a)` for `r in 0..out.len()`; `w` holds `out.len()` rows of
/// `wt.row_bytes(n_cols)` bytes, `a` one activation row of `n_cols` elements of `wt.vec_dot_type()`.
#[track_caller]
pub fn matvec(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let rb = check_matvec(wt, n_cols, w, a, out);
    let k = dot_kernel(wt);
    if rb == 0 {
        out.fill(0.0);
        return;
    }
    for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
        *o = k(n_cols, row, a);
    }
}

/// The length checks of [`matvec`] (the SIMD128 version's too); returns the bytes of one weight row.
#[track_caller]
pub(crate) fn check_matvec(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], out: &[f32]) -> usize {
    let rb = row_bytes(wt, n_cols);
    check_len(wt.vec_dot_type(), n_cols, a.len(), "activation row");
    let want = out.len().checked_mul(rb).expect("matvec: weight size overflows usize");
    assert!(
        w.len() == want,
        "matvec: {} rows of {rb} bytes need {want} weight bytes, got {}",
        out.len(),
        w.len()
    );
    rb
}

/// Batched [`matvec`]: `a` holds `n_tok` activation rows, `out[t * n_rows + r]` = dot(row r, token t) with
/// `n_rows = w.len() / wt.row_bytes(n_cols)`. Panics on length mismatches and when `n_cols == 0` (the number of
/// rows is then undefined).
#[track_caller]
pub fn matmul(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], n_tok: usize, out: &mut [f32]) {
    let (ab, n_rows) = check_matmul(wt, n_cols, w, a, n_tok, out);
    if n_rows == 0 {
        return;
    }
    for (o, at) in out.chunks_exact_mut(n_rows).zip(a.chunks_exact(ab)) {
        matvec(wt, n_cols, w, at, o);
    }
}

/// The length checks of [`matmul`] (the SIMD128 version's too); returns the bytes of one activation row and the
/// number of weight rows.
#[track_caller]
pub(crate) fn check_matmul(
    wt: GgmlType,
    n_cols: usize,
    w: &[u8],
    a: &[u8],
    n_tok: usize,
    out: &[f32],
) -> (usize, usize) {
    assert!(n_cols > 0, "matmul: n_cols must be > 0");
    let rb = row_bytes(wt, n_cols);
    let ab = row_bytes(wt.vec_dot_type(), n_cols);
    assert!(
        w.len().is_multiple_of(rb),
        "matmul: {} weight bytes is not a whole number of {rb}-byte rows",
        w.len()
    );
    let n_rows = w.len() / rb;
    assert!(
        Some(a.len()) == n_tok.checked_mul(ab),
        "matmul: {n_tok} activation rows of {ab} bytes, got {} bytes",
        a.len()
    );
    assert!(
        Some(out.len()) == n_tok.checked_mul(n_rows),
        "matmul: output must hold {n_tok} x {n_rows} values, got {}",
        out.len()
    );
    (ab, n_rows)
}
