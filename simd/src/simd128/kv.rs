//! Attention over f16 and q8_0 KV rows, read in place (see [`crate::kv`]): the f32 attention loops of
//! [`super::float`] with each group of 8 cached values widened to two f32x4 as it is loaded. Widening is exact
//! (f16 -> f32, and q8_0's `d * q` is one rounded product, as in [`crate::kv::KvRows::row_f32`]) and the arithmetic
//! after it is the f32 kernels', so the results equal [`crate::kv::scalar`] bit for bit.

use super::common::*;
use super::float::{scores_in, values_in, FloatRow, F16};
use crate::kv::{block_bytes, scalar, u16_bytes, KvRows, Q8_BLOCK};
use core::arch::wasm32::*;

/// q8_0 blocks (ggml's `block_q8_0`: f16 `d`, then 32 signed codes) as a row of floats `d * q`.
struct Q8;
impl FloatRow for Q8 {
    const BLOCK: usize = Q8_BLOCK;
    const BYTES: usize = 34;
    #[inline(always)]
    fn load8(w: &[u8], i: usize) -> (v128, v128) {
        let b = i / Q8_BLOCK * Self::BYTES;
        let d = f32x4_splat(f16_at(w, b));
        let s = &w[b + 2 + i % Q8_BLOCK..b + 2 + i % Q8_BLOCK + 8];
        // SAFETY: `s` is 8 readable bytes; `v128_load64_zero` reads 8 bytes from any address.
        let q = i16x8_extend_low_i8x16(unsafe { v128_load64_zero(s.as_ptr() as *const u64) });
        let lo = f32x4_convert_i32x4(i32x4_extend_low_i16x8(q));
        let hi = f32x4_convert_i32x4(i32x4_extend_high_i16x8(q));
        (f32x4_mul(d, lo), f32x4_mul(d, hi))
    }
    #[inline(always)]
    fn one(w: &[u8], i: usize) -> f32 {
        let b = i / Q8_BLOCK * Self::BYTES;
        f16_at(w, b) * w[b + 2 + i % Q8_BLOCK] as i8 as f32
    }
}

/// [`crate::kv::attn_scores`] for f16 and q8_0 keys (lengths checked there). q8_0 rows that do not start on a
/// block boundary (never the case for the engine's head-aligned rows) go to the scalar specification.
pub(crate) fn attn_scores(q: &[f32], keys: KvRows, stride: usize, scale: f32, scores: &mut [f32]) {
    match keys {
        KvRows::F32(k) => super::float::attn_scores(q, k, stride, scale, scores),
        KvRows::F16(h, at) => scores_in::<F16>(q, u16_bytes(h), at, stride, scale, scores),
        KvRows::Q8_0(b, at) if at % Q8_BLOCK == 0 && stride % Q8_BLOCK == 0 && q.len() % 8 == 0 => {
            scores_in::<Q8>(q, block_bytes(b), at, stride, scale, scores)
        }
        KvRows::Q8_0(..) => scalar::attn_scores(q, keys, stride, scale, scores),
    }
}

/// [`crate::kv::attn_values`] for f16 and q8_0 values (lengths checked there). q8_0 column runs must start at a
/// multiple of 8 (each group of 8 inside one block; the engine's runs start at multiples of 16), else the scalar
/// specification runs.
pub(crate) fn attn_values(probs: &[f32], values: KvRows, stride: usize, out: &mut [f32]) {
    match values {
        KvRows::F32(v) => super::float::attn_values(probs, v, stride, out),
        KvRows::F16(h, at) => values_in::<F16>(probs, u16_bytes(h), at, stride, out),
        KvRows::Q8_0(b, at) if at % 8 == 0 && stride % 8 == 0 => values_in::<Q8>(probs, block_bytes(b), at, stride, out),
        KvRows::Q8_0(..) => scalar::attn_values(probs, values, stride, out),
    }
}
