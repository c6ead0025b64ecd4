//! SIMD128 kernels (`core::arch::wasm32`), with a relaxed-SIMD variant chosen at compile time
//! (`-C target-feature=+simd128,+relaxed-simd`). Same functions and signatures as [`crate::reference`], which is
//! their specification and their fallback for anything not vectorized here.
//!
//! What "the same" means (the parity tests check it in headless Chromium for both builds):
//! - quantizers: bit-exact;
//! - quantized dot products (vec_dot, matvec, matmul): bit-exact. Each block's integer dot product is exact
//!   (i32x4 partial sums of `i32x4.dot_i16x8_s`, or of `i32x4.relaxed_dot_i8x16_i7x16_add_s` with the unsigned
//!   weight codes as the 7-bit operand), and the block's scales are applied with the reference's f32 expression in
//!   the reference's order, four (row, token) pairs per f32x4 ([`common::tile`]);
//! - float dot products: bit-exact in both builds (the reference's 8-lane order, multiply then add; the relaxed
//!   build does not use `f32x4.relaxed_madd`, whose fusing depends on the CPU).
//!
//! matvec takes four weight rows per tile (the activation block is loaded once for them); matmul takes four tokens
//! per tile over a band of rows, so each weight block is read from memory once per batch and unpacked once per four
//! tokens.

mod common;
mod dequant;
mod float;
mod kquants;
pub(crate) mod kv;
mod legacy;
pub(crate) mod ops;
mod quantize;

use crate::reference::{self, check_dot, check_len, check_matmul, check_matvec};
use crate::GgmlType;

/// Dequantizes one row (see [`crate::reference::dequantize_row`]); the embedding-table and activation formats are
/// vectorized, Q2_K / Q3_K / Q5_K use the reference.
#[track_caller]
pub fn dequantize_row(t: GgmlType, src: &[u8], dst: &mut [f32]) {
    let vectorized = matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q4_0 | GgmlType::Q4_1)
        || matches!(t, GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8_K)
        || matches!(t, GgmlType::Q4_K | GgmlType::Q6_K);
    if !vectorized {
        return reference::dequantize_row(t, src, dst);
    }
    check_len(t, dst.len(), src.len(), "source row");
    dequant::dequantize(t, src, dst);
}

/// Quantizes one row into `t` (see [`crate::reference::quantize_row`]); Q8_0, Q8_1 and Q8_K are vectorized.
#[track_caller]
pub fn quantize_row(t: GgmlType, src: &[f32], dst: &mut [u8]) {
    check_len(t, src.len(), dst.len(), "destination row");
    match t {
        GgmlType::Q8_0 => quantize::quantize_q8_0(src, dst),
        GgmlType::Q8_1 => quantize::quantize_q8_1(src, dst),
        GgmlType::Q8_K => quantize::quantize_q8_k(src, dst),
        _ => reference::quantize_row(t, src, dst),
    }
}

/// Calls `$f::<K>(nb, args..)` with the block kernel `K` of weight type `$wt`, or evaluates `$fallback`.
macro_rules! with_kernel {
    ($wt:expr, $n:expr, $f:ident ( $($arg:expr),* ), $fallback:expr) => {{
        let nb = $n / $wt.block_size();
        match $wt {
            GgmlType::Q4_0 => common::$f::<legacy::Q4_0>(nb, $($arg),*),
            GgmlType::Q4_1 => common::$f::<legacy::Q4_1>(nb, $($arg),*),
            GgmlType::Q5_0 => common::$f::<legacy::Q5_0>(nb, $($arg),*),
            GgmlType::Q5_1 => common::$f::<legacy::Q5_1>(nb, $($arg),*),
            GgmlType::Q8_0 => common::$f::<legacy::Q8_0>(nb, $($arg),*),
            GgmlType::Q2_K => common::$f::<kquants::Q2K>(nb, $($arg),*),
            GgmlType::Q3_K => common::$f::<kquants::Q3K>(nb, $($arg),*),
            GgmlType::Q4_K => common::$f::<kquants::Q4K>(nb, $($arg),*),
            GgmlType::Q5_K => common::$f::<kquants::Q5K>(nb, $($arg),*),
            GgmlType::Q6_K => common::$f::<kquants::Q6K>(nb, $($arg),*),
            GgmlType::F32 => float::$f::<float::F32>($n, $($arg),*),
            GgmlType::F16 => float::$f::<float::F16>($n, $($arg),*),
            GgmlType::BF16 => float::$f::<float::BF16>($n, $($arg),*),
            _ => $fallback,
        }
    }};
}

/// Dot product of one weight row with one activation row (see [`crate::reference::vec_dot`]).
#[track_caller]
pub fn vec_dot(wt: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    if !wt.is_supported_weight() {
        return reference::vec_dot(wt, n, w, a);
    }
    check_dot(wt, n, w, a);
    with_kernel!(wt, n, vec_dot(w, a), reference::vec_dot(wt, n, w, a))
}

/// `out[r] = dot(row r of w, a)` (see [`crate::reference::matvec`]).
#[track_caller]
pub fn matvec(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    if !wt.is_supported_weight() {
        return reference::matvec(wt, n_cols, w, a, out);
    }
    let rb = check_matvec(wt, n_cols, w, a, out);
    if rb == 0 {
        out.fill(0.0);
        return;
    }
    with_kernel!(wt, n_cols, matvec(w, a, out), reference::matvec(wt, n_cols, w, a, out))
}

/// Batched matvec, token-major `out[t * n_rows + r]` (see [`crate::reference::matmul`]).
#[track_caller]
pub fn matmul(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], n_tok: usize, out: &mut [f32]) {
    if !wt.is_supported_weight() || n_cols == 0 {
        return reference::matmul(wt, n_cols, w, a, n_tok, out);
    }
    let (_, n_rows) = check_matmul(wt, n_cols, w, a, n_tok, out);
    if n_rows == 0 {
        return;
    }
    with_kernel!(wt, n_cols, matmul(w, a, n_tok, out), reference::matmul(wt, n_cols, w, a, n_tok, out))
}
