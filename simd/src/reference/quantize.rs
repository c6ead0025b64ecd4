//! Quantizers, round-to-nearest as ggml's `quantize_row_*_ref` (no importance weighting): `dst` is
//! `t.row_bytes(src.len())` bytes. The Q8 ones quantize activations and are the specification of
//! `crate::simd128::quantize`.

// Index loops mirror the block layouts (element e, group e / 16) more readably than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::*;

/// The f32 values as little-endian bytes (the "quantized" activation row of float weights).
pub fn quantize_row_f32(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::F32, src.len(), dst.len(), "destination row");
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(4)) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

/// Round to nearest even half (numpy `astype(float16)`).
pub fn quantize_row_f16(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::F16, src.len(), dst.len(), "destination row");
    for (&x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&f16_bits(x).to_le_bytes());
    }
}

/// Round to nearest even bfloat16, NaN kept quiet (ggml `ggml_compute_fp32_to_bf16`).
pub fn quantize_row_bf16(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::BF16, src.len(), dst.len(), "destination row");
    for (&x, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&bf16_bits(x).to_le_bytes());
    }
}

/// The element of largest magnitude (first one on ties), with its sign: ggml's `max` in the symmetric quantizers.
#[inline(always)]
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    max
}

#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in x {
        min = min.min(v);
        max = max.max(v);
    }
    (min, max)
}

#[inline(always)]
fn recip_or_zero(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// ggml `quantize_row_q4_0_ref`: `d = max / -8` (max = signed value of largest magnitude),
/// `code = min(15, trunc(x / d + 8.5))`.
pub fn quantize_row_q4_0(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::Q4_0, src.len(), dst.len(), "destination row");
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BlockQ4_0::SIZE)) {
        let d = signed_absmax(x) / -8.0;
        let id = recip_or_zero(d);
        put_f16(b, BlockQ4_0::D, d);
        for j in 0..QK / 2 {
            let q0 = ((x[j] * id + 8.5) as u8).min(15);
            let q1 = ((x[j + QK / 2] * id + 8.5) as u8).min(15);
            b[BlockQ4_0::QS + j] = q0 | (q1 << 4);
        }
    }
}

/// ggml `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `m = min`, `code = min(15, trunc((x - min) / d + 0.5))`.
pub fn quantize_row_q4_1(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::Q4_1, src.len(), dst.len(), "destination row");
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BlockQ4_1::SIZE)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = recip_or_zero(d);
        put_f16(b, BlockQ4_1::D, d);
        put_f16(b, BlockQ4_1::M, min);
        for j in 0..QK / 2 {
            let q0 = (((x[j] - min) * id + 0.5) as u8).min(15);
            let q1 = (((x[j + QK / 2] - min) * id + 0.5) as u8).min(15);
            b[BlockQ4_1::QS + j] = q0 | (q1 << 4);
        }
    }
}

/// Packs 32 five-bit codes into `qs` (low nibbles) and the `qh` u32 (bit 4 of code `j` at bit `j`).
#[inline(always)]
fn pack_q5(q: &[u8; QK], b: &mut [u8], off_qh: usize, off_qs: usize) {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        b[off_qs + j] = (q[j] & 0x0f) | ((q[j + QK / 2] & 0x0f) << 4);
        qh |= (((q[j] >> 4) & 1) as u32) << j;
        qh |= (((q[j + QK / 2] >> 4) & 1) as u32) << (j + QK / 2);
    }
    b[off_qh..off_qh + 4].copy_from_slice(&qh.to_le_bytes());
}

/// ggml `quantize_row_q5_0_ref`: `d = max / -16`, `code = min(31, trunc(x / d + 16.5))`.
pub fn quantize_row_q5_0(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::Q5_0, src.len(), dst.len(), "destination row");
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BlockQ5_0::SIZE)) {
        let d = signed_absmax(x) / -16.0;
        let id = recip_or_zero(d);
        put_f16(b, BlockQ5_0::D, d);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = ((v * id + 16.5) as u8).min(31);
        }
        pack_q5(&q, b, BlockQ5_0::QH, BlockQ5_0::QS);
    }
}

/// ggml `quantize_row_q5_1_ref`: `d = (max - min) / 31`, `m = min`, `code = min(31, trunc((x - min) / d + 0.5))`.
pub fn quantize_row_q5_1(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::Q5_1, src.len(), dst.len(), "destination row");
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BlockQ5_1::SIZE)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = recip_or_zero(d);
        put_f16(b, BlockQ5_1::D, d);
        put_f16(b, BlockQ5_1::M, min);
        let mut q = [0u8; QK];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (((v - min) * id + 0.5) as u8).min(31);
        }
        pack_q5(&q, b, BlockQ5_1::QH, BlockQ5_1::QS);
    }
}

/// ggml `quantize_row_q8_0_ref`: `d = amax / 127`, `code = round_half_away(x / d)` (both as weights and as the
/// activation of Q4_0/Q5_0/Q8_0 weights).
pub fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::Q8_0, src.len(), dst.len(), "destination row");
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BlockQ8_0::SIZE)) {
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = recip_or_zero(d);
        put_f16(b, BlockQ8_0::D, d);
        for (o, &v) in b[BlockQ8_0::QS..].iter_mut().zip(x) {
            *o = (v * id).round() as i8 as u8;
        }
    }
}

/// ggml `quantize_row_q8_1_ref`: as Q8_0, plus `s = f16(sum(codes) * d)` with the unrounded f32 `d`.
pub fn quantize_row_q8_1(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::Q8_1, src.len(), dst.len(), "destination row");
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BlockQ8_1::SIZE)) {
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = recip_or_zero(d);
        put_f16(b, BlockQ8_1::D, d);
        let mut sum = 0i32;
        for (o, &v) in b[BlockQ8_1::QS..].iter_mut().zip(x) {
            let q = (v * id).round() as i8;
            sum += q as i32;
            *o = q as u8;
        }
        put_f16(b, BlockQ8_1::S, sum as f32 * d);
    }
}

/// ggml `quantize_row_q8_K_ref`: `iscale = -127 / max` (max = signed value of largest magnitude),
/// `code = min(127, round_half_even(iscale * x))`, `d = 1 / iscale` (f32), `bsums` = sums of 16 codes. An all-zero
/// block gets `d = 0` and zero codes and sums.
pub fn quantize_row_q8_k(src: &[f32], dst: &mut [u8]) {
    check_len(GgmlType::Q8_K, src.len(), dst.len(), "destination row");
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BlockQ8K::SIZE)) {
        let max = signed_absmax(x);
        if max == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        // ggml's nearest_int (the 1.5 * 2^23 trick) rounds half to even; |iscale * x| <= 127 so it is exact.
        for (o, &v) in b[BlockQ8K::QS..BlockQ8K::QS + QK_K].iter_mut().zip(x) {
            *o = ((iscale * v).round_ties_even() as i32).min(127) as i8 as u8;
        }
        for g in 0..QK_K / 16 {
            let s: i32 = b[BlockQ8K::QS + 16 * g..BlockQ8K::QS + 16 * g + 16]
                .iter()
                .map(|&q| q as i8 as i32)
                .sum();
            let off = BlockQ8K::BSUMS + 2 * g;
            b[off..off + 2].copy_from_slice(&(s as i16).to_le_bytes());
        }
        b[BlockQ8K::D..BlockQ8K::D + 4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}
