//! pocketlm-simd: quantized block layouts, scalar reference kernels (the specification) and SIMD128 kernels.
//!
//! Every public kernel here is one dispatch point: on wasm32 with `simd128` it calls the SIMD version, otherwise the
//! scalar reference in [`mod@reference`]. The SIMD versions must equal the reference (integer parts bit-exact, float
//! results within 1e-6 * n relative).
//!
//! Activations are quantized once per row to `w.vec_dot_type()` ([`quantize_activation`]), then every weight row is
//! dotted with that quantized row. For float weights the "quantized" activation is the f32 row as little-endian bytes.

pub mod types;
pub use types::GgmlType;
pub mod bytes;
pub mod blocks;
pub mod ops;
pub mod reference;
pub mod kv;

// The kernels behind the dispatch functions below and in `ops`: SIMD128 on wasm32 built with `+simd128` (relaxed
// SIMD when also built with `+relaxed-simd`), the scalar reference everywhere else. Every public entry point
// chooses with the same two lines:
//     #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
//     return simd128::f(..);
//     #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
//     reference::f(..)
// (the second `cfg` keeps the reference call from being unreachable code in the SIMD builds).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

/// Dequantizes one row of any supported weight type (and of the activation types Q8_0 / Q8_1 / Q8_K):
/// `dst.len()` elements from `src` = `t.row_bytes(dst.len())` bytes.
///
/// Panics (caller bugs only): `dst.len()` not a whole number of `t`'s blocks, `src.len()` not the row's byte size,
/// or a type that is neither a supported weight type nor an activation type.
#[track_caller]
pub fn dequantize_row(t: GgmlType, src: &[u8], dst: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::dequantize_row(t, src, dst);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    reference::dequantize_row(t, src, dst)
}

/// Quantizes one activation row for weight type `wt`: writes `wt.vec_dot_type().row_bytes(src.len())` bytes
/// (for float weights the vec_dot_type is F32: the f32 values as little-endian bytes).
///
/// Panics when `dst.len() != activation_row_bytes(wt, src.len())` or `src.len()` is not a whole number of blocks.
#[track_caller]
pub fn quantize_activation(wt: GgmlType, src: &[f32], dst: &mut [u8]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::quantize_row(wt.vec_dot_type(), src, dst);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    reference::quantize_row(wt.vec_dot_type(), src, dst)
}

/// Bytes of an activation row of `n` elements quantized for weight type `wt`.
/// Panics when `n` is not a whole number of `wt.vec_dot_type()` blocks.
#[track_caller]
pub fn activation_row_bytes(wt: GgmlType, n: usize) -> usize {
    reference::row_bytes(wt.vec_dot_type(), n)
}

/// Dot product of one weight row (`wt.row_bytes(n)` bytes) with one activation row quantized by
/// [`quantize_activation`] (`activation_row_bytes(wt, n)` bytes).
///
/// Panics on length mismatches or when `!wt.is_supported_weight()`.
#[track_caller]
pub fn vec_dot(wt: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::vec_dot(wt, n, w, a);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    reference::vec_dot(wt, n, w, a)
}

/// `out[r] = dot(row r of w, a)` for `r in 0..out.len()`; `w` holds `out.len()` rows of `wt.row_bytes(n_cols)`
/// bytes, `a` is one activation row of `activation_row_bytes(wt, n_cols)` bytes.
///
/// Panics on length mismatches or when `!wt.is_supported_weight()`.
#[track_caller]
pub fn matvec(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::matvec(wt, n_cols, w, a, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    reference::matvec(wt, n_cols, w, a, out)
}

/// Batched [`matvec`]: `a` holds `n_tok` activation rows (`activation_row_bytes(wt, n_cols)` each), `out` is
/// token-major, `out[t * n_rows + r]` with `n_rows = w.len() / wt.row_bytes(n_cols)`. Each value equals what
/// [`matvec`] gives for that token.
///
/// Panics on length mismatches, `n_cols == 0`, or when `!wt.is_supported_weight()`.
#[track_caller]
pub fn matmul(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], n_tok: usize, out: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::matmul(wt, n_cols, w, a, n_tok, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    reference::matmul(wt, n_cols, w, a, n_tok, out)
}
