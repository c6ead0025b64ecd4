//! Activation quantizers (Q8_0, Q8_1, Q8_K), bit-exact with `crate::reference::quantize_row_q8_*` (ggml's
//! `quantize_row_q8_*_ref`): the same f32 operations per element, the same rounding, the same saturation.

use super::common::*;
use crate::blocks::{put_f16, BlockQ8K, BlockQ8_0, BlockQ8_1, QK, QK_K};
use core::arch::wasm32::*;

/// `f32::round` lane-wise (half away from zero). `x - trunc(x)` is exact for every finite f32, so comparing its
/// magnitude with 0.5 finds exactly the lanes that round away; `trunc(x) ± 1` is exact below 2^24, and larger
/// values are already integers. Infinities and NaN pass through `trunc` unchanged.
#[inline(always)]
fn round_away(x: v128) -> v128 {
    let t = f32x4_trunc(x);
    let up = f32x4_ge(f32x4_abs(f32x4_sub(x, t)), f32x4_splat(0.5));
    let one = v128_or(v128_and(x, u32x4_splat(0x8000_0000)), f32x4_splat(1.0));
    f32x4_add(t, v128_and(one, up))
}

/// 16 rounded f32 (four f32x4) -> 16 i8 codes, saturating as Rust's `f32 as i8` (NaN -> 0).
#[inline(always)]
fn to_i8(r: [v128; 4]) -> v128 {
    let i = r.map(|v| i32x4_trunc_sat_f32x4(v));
    i8x16_narrow_i16x8(i16x8_narrow_i32x4(i[0], i[1]), i16x8_narrow_i32x4(i[2], i[3]))
}

/// The 32 values of one block as f32x4 and their largest magnitude (0 for an all-zero block; NaN lanes are skipped
/// like `f32::max` skips them).
#[inline(always)]
fn load32_absmax(x: &[f32]) -> ([v128; 8], f32) {
    let v: [v128; 8] = core::array::from_fn(|i| load_f32(x, 4 * i));
    let mut m = f32x4_splat(0.0);
    for v in v {
        // pmax(m, a) = m < a ? a : m keeps m when a is NaN.
        m = f32x4_pmax(m, f32x4_abs(v));
    }
    (v, hmax_f32(m))
}

/// The codes of one Q8_0 / Q8_1 block: `round_half_away(x * id)` as i8 (elements 0..16, 16..32).
#[inline(always)]
fn codes32(v: &[v128; 8], id: f32) -> (v128, v128) {
    let id = f32x4_splat(id);
    let r: [v128; 8] = core::array::from_fn(|i| round_away(f32x4_mul(v[i], id)));
    (to_i8([r[0], r[1], r[2], r[3]]), to_i8([r[4], r[5], r[6], r[7]]))
}

#[inline(always)]
fn recip_or_zero(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Q8_0: per block of 32, `d = amax / 127`, `code = round_half_away(x / d)`; `dst` = 34 bytes per block.
pub(super) fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BlockQ8_0::SIZE)) {
        let (v, amax) = load32_absmax(x);
        let d = amax / 127.0;
        put_f16(b, BlockQ8_0::D, d);
        let (q0, q1) = codes32(&v, recip_or_zero(d));
        store(b, BlockQ8_0::QS, q0);
        store(b, BlockQ8_0::QS + 16, q1);
    }
}

/// Q8_1: as Q8_0 plus `s = f16(Σcodes · d)` with the unrounded f32 `d`; `dst` = 36 bytes per block.
pub(super) fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BlockQ8_1::SIZE)) {
        let (v, amax) = load32_absmax(x);
        let d = amax / 127.0;
        put_f16(b, BlockQ8_1::D, d);
        let (q0, q1) = codes32(&v, recip_or_zero(d));
        store(b, BlockQ8_1::QS, q0);
        store(b, BlockQ8_1::QS + 16, q1);
        let sum = hsum_i32(i32x4_add(sum_i8(q0), sum_i8(q1)));
        put_f16(b, BlockQ8_1::S, sum as f32 * d);
    }
}

/// The element of largest magnitude with its sign, the first one on ties (0 when all are zero): `max` of ggml's
/// `quantize_row_q8_K_ref`. `x`: 256 values.
#[inline(always)]
fn signed_absmax256(x: &[f32]) -> f32 {
    let mut m = f32x4_splat(0.0);
    for i in (0..QK_K).step_by(4) {
        m = f32x4_pmax(m, f32x4_abs(load_f32(x, i)));
    }
    let amax = hmax_f32(m);
    if amax == 0.0 {
        return 0.0;
    }
    let target = f32x4_splat(amax);
    for i in (0..QK_K).step_by(4) {
        let hit = f32x4_eq(f32x4_abs(load_f32(x, i)), target);
        if v128_any_true(hit) {
            return x[i + i32x4_bitmask(hit).trailing_zeros() as usize];
        }
    }
    unreachable!("amax is the magnitude of one of the values")
}

/// Q8_K: per block of 256, `iscale = -127 / max` (max = signed value of largest magnitude),
/// `code = min(127, round_half_even(iscale · x))`, `d = 1 / iscale` (f32), `bsums` = sums of 16 codes;
/// `dst` = 292 bytes per block. `|iscale · x| <= 127` (up to rounding), so the saturating narrows equal the
/// reference's `min(127)` and i8 cast.
pub(super) fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BlockQ8K::SIZE)) {
        let max = signed_absmax256(x);
        if max == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        let is = f32x4_splat(iscale);
        for g in 0..QK_K / 16 {
            let r: [v128; 4] = core::array::from_fn(|i| f32x4_nearest(f32x4_mul(is, load_f32(x, 16 * g + 4 * i))));
            let q = to_i8(r);
            store(b, BlockQ8K::QS + 16 * g, q);
            let s = hsum_i32(sum_i8(q)) as i16;
            b[BlockQ8K::BSUMS + 2 * g..BlockQ8K::BSUMS + 2 * g + 2].copy_from_slice(&s.to_le_bytes());
        }
        b[BlockQ8K::D..BlockQ8K::D + 4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}
