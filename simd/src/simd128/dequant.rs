//! Row dequantization, bit-exact with `crate::reference::dequantize_row_*`: the same one or two f32 operations per
//! value in the same order (never fused, also in the relaxed build). Used for single rows (token embeddings), so
//! only the formats of real embedding tables and the activation formats are vectorized here; the others fall back
//! to the reference.

use super::common::*;
use core::arch::wasm32::*;

/// 16 signed 8-bit codes -> four f32x4 (exact).
#[inline(always)]
fn i8_to_f32(q: v128) -> [v128; 4] {
    let lo = i16x8_extend_low_i8x16(q);
    let hi = i16x8_extend_high_i8x16(q);
    [i32x4_extend_low_i16x8(lo), i32x4_extend_high_i16x8(lo), i32x4_extend_low_i16x8(hi), i32x4_extend_high_i16x8(hi)]
        .map(|v| f32x4_convert_i32x4(v))
}

/// Writes `q * d` (+ `m` when given) for 16 codes at `y[off..off + 16]`.
#[inline(always)]
fn put16(y: &mut [f32], off: usize, q: v128, d: f32, m: Option<f32>) {
    let (d, m) = (f32x4_splat(d), m.map(|m| f32x4_splat(m)));
    for (k, v) in i8_to_f32(q).into_iter().enumerate() {
        let v = f32x4_mul(v, d);
        store_f32(y, off + 4 * k, match m {
            Some(m) => f32x4_add(v, m),
            None => v,
        });
    }
}

/// Q4_0 / Q4_1 / Q5_0 / Q5_1 (32 values per block): `(code - off) * d (+ m)`. `qh`: offset of the Q5 high bits.
fn legacy(src: &[u8], dst: &mut [f32], size: usize, qs: usize, qh: Option<usize>, off: i8, has_m: bool) {
    for (b, y) in src.chunks_exact(size).zip(dst.chunks_exact_mut(32)) {
        let q = load(b, qs);
        let m = u8x16_splat(0x0f);
        let (mut lo, mut hi) = (v128_and(q, m), move_bits(q, 4, 0, m));
        if let Some(o) = qh {
            // bit j of the u32 qh is bit 4 of code j: spread it over the bytes (byte k tests bit k % 8 of qh byte
            // k / 8 for codes 0..16, 2 + k / 8 for codes 16..32).
            let v = u32x4_splat(u32_at(b, o));
            let bit = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
            let b0 = i8x16_shuffle::<0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1>(v, v);
            let b1 = i8x16_shuffle::<2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3>(v, v);
            lo = v128_or(lo, v128_and(i8x16_eq(v128_and(b0, bit), bit), u8x16_splat(16)));
            hi = v128_or(hi, v128_and(i8x16_eq(v128_and(b1, bit), bit), u8x16_splat(16)));
        }
        let o = i8x16_splat(off);
        let (d, m) = (f16_at(b, 0), if has_m { Some(f16_at(b, 2)) } else { None });
        put16(y, 0, i8x16_sub(lo, o), d, m);
        put16(y, 16, i8x16_sub(hi, o), d, m);
    }
}

/// Q8_0 / Q8_1 (`d` f16) and Q8_K (`d` f32): `q * d`.
fn q8(src: &[u8], dst: &mut [f32], size: usize, qs: usize, n: usize, d_f32: bool) {
    for (b, y) in src.chunks_exact(size).zip(dst.chunks_exact_mut(n)) {
        let d = if d_f32 { f32_at(b, 0) } else { f16_at(b, 0) };
        for k in 0..n / 16 {
            put16(y, 16 * k, load(b, qs + 16 * k), d, None);
        }
    }
}

/// Q4_K: `(d * sc) * code - dmin * m` per sub-block of 32 (codes: low nibbles of `qs[32j..]` for sub-block 2j, high
/// nibbles for 2j + 1).
fn q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(144).zip(dst.chunks_exact_mut(256)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let sc: &[u8; 12] = b[4..16].try_into().expect("12 bytes");
        let mask = u8x16_splat(0x0f);
        for j in 0..4 {
            for (half, shift) in [(0, 0), (1, 4)] {
                let (s, m) = crate::blocks::k4_scale_min(sc, 2 * j + half);
                let (dl, ml) = (f32x4_splat(d * s as f32), f32x4_splat(dmin * m as f32));
                for part in 0..2 {
                    let q = move_bits(load(b, 16 + 32 * j + 16 * part), shift, 0, mask);
                    for (k, v) in i8_to_f32(q).into_iter().enumerate() {
                        let at = 64 * j + 32 * half + 16 * part + 4 * k;
                        store_f32(y, at, f32x4_sub(f32x4_mul(dl, v), ml));
                    }
                }
            }
        }
    }
}

/// Q6_K: `(d * scale) * code` per group of 16, code = 6-bit number - 32 (layout in `crate::blocks::BlockQ6K`).
fn q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(210).zip(dst.chunks_exact_mut(256)) {
        let d = f16_at(b, 208);
        let (mask, top) = (u8x16_splat(0x0f), u8x16_splat(0x30));
        for h in 0..2 {
            for k in 0..4 {
                for half in 0..2 {
                    let lb = load(b, 64 * h + 32 * (k & 1) + 16 * half);
                    let low = if k < 2 { v128_and(lb, mask) } else { move_bits(lb, 4, 0, mask) };
                    let high = move_bits(load(b, 128 + 32 * h + 16 * half), 2 * k as u32, 4, top);
                    let code = i8x16_sub(v128_or(low, high), i8x16_splat(32));
                    let g = 8 * h + 2 * k + half;
                    let dl = f32x4_splat(d * b[192 + g] as i8 as f32);
                    for (i, v) in i8_to_f32(code).into_iter().enumerate() {
                        store_f32(y, 128 * h + 32 * k + 16 * half + 4 * i, f32x4_mul(dl, v));
                    }
                }
            }
        }
    }
}

/// Dequantizes `dst.len()` values of `t` from `src` (lengths checked by the caller); false when `t` is not
/// vectorized here.
pub(super) fn dequantize(t: crate::GgmlType, src: &[u8], dst: &mut [f32]) -> bool {
    use crate::GgmlType::*;
    match t {
        Q4_0 => legacy(src, dst, 18, 2, None, 8, false),
        Q4_1 => legacy(src, dst, 20, 4, None, 0, true),
        Q5_0 => legacy(src, dst, 22, 6, Some(2), 16, false),
        Q5_1 => legacy(src, dst, 24, 8, Some(4), 0, true),
        Q8_0 => q8(src, dst, 34, 2, 32, false),
        Q8_1 => q8(src, dst, 36, 4, 32, false),
        Q8_K => q8(src, dst, 292, 4, 256, true),
        Q4_K => q4_k(src, dst),
        Q6_K => q6_k(src, dst),
        F16 | BF16 | F32 => {
            let bytes = if t == F32 { 4 } else { 2 };
            let whole = dst.len() / 8 * 8;
            for i in (0..whole).step_by(8) {
                let (a, b) = if bytes == 4 {
                    (load(src, 4 * i), load(src, 4 * i + 16))
                } else {
                    let h = load(src, 2 * i);
                    let (l, u) = (u32x4_extend_low_u16x8(h), u32x4_extend_high_u16x8(h));
                    if t == F16 {
                        (f16x4_to_f32x4(l), f16x4_to_f32x4(u))
                    } else {
                        (i32x4_shl(l, 16), i32x4_shl(u, 16))
                    }
                };
                store_f32(dst, i, a);
                store_f32(dst, i + 4, b);
            }
            for i in whole..dst.len() {
                dst[i] = match t {
                    F32 => f32_at(src, 4 * i),
                    F16 => f16_at(src, 2 * i),
                    _ => bf16_at(src, 2 * i),
                };
            }
        }
        _ => return false,
    }
    true
}
