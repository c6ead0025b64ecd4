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

// Index loops mirror the block layouts (element e, group e / 16) more readably than iterator chains.
#![allow(clippy::needless_range_loop)]

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
fn check_len(t: GgmlType, n: usize, bytes: usize, what: &str) {
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

pub fn dequantize_row_f32(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::F32, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32_at(b, 0);
    }
}

pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::F16, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = f16_at(b, 0);
    }
}

pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::BF16, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = bf16_at(b, 0);
    }
}

/// `y = (code - 8) * d`.
pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q4_0, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ4_0::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ4_0::new(b);
        let (d, qs) = (b.d(), b.qs());
        for j in 0..QK / 2 {
            y[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// `y = code * d + m`.
pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q4_1, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ4_1::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ4_1::new(b);
        let (d, m, qs) = (b.d(), b.m(), b.qs());
        for j in 0..QK / 2 {
            y[j] = (qs[j] & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// The 32 unsigned 5-bit codes of a Q5_0 / Q5_1 block from its `qs` nibbles and `qh` bits.
#[inline(always)]
fn q5_codes(qs: &[u8; 16], qh: u32) -> [u8; QK] {
    let mut q = [0u8; QK];
    for j in 0..QK / 2 {
        q[j] = (qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + QK / 2] = (qs[j] >> 4) | ((((qh >> (j + QK / 2)) & 1) as u8) << 4);
    }
    q
}

/// `y = (code - 16) * d`.
pub fn dequantize_row_q5_0(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q5_0, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ5_0::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ5_0::new(b);
        let d = b.d();
        for (y, q) in y.iter_mut().zip(q5_codes(b.qs(), b.qh())) {
            *y = (q as i32 - 16) as f32 * d;
        }
    }
}

/// `y = code * d + m`.
pub fn dequantize_row_q5_1(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q5_1, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ5_1::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ5_1::new(b);
        let (d, m) = (b.d(), b.m());
        for (y, q) in y.iter_mut().zip(q5_codes(b.qs(), b.qh())) {
            *y = q as f32 * d + m;
        }
    }
}

/// `y = code * d`.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q8_0, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ8_0::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ8_0::new(b);
        let d = b.d();
        for (y, &q) in y.iter_mut().zip(b.qs()) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// `y = code * d` (`s` is redundant for dequantization).
pub fn dequantize_row_q8_1(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q8_1, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ8_1::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ8_1::new(b);
        let d = b.d();
        for (y, &q) in y.iter_mut().zip(b.qs()) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// `y = code * d` with the f32 `d`.
pub fn dequantize_row_q8_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q8_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ8K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ8K::new(b);
        let d = b.d();
        for (y, &q) in y.iter_mut().zip(b.qs()) {
            *y = q as i8 as f32 * d;
        }
    }
}

// The K formats: each block's codes are first unpacked into one code per element (in element order, layouts in
// crate::blocks), then scaled per group. The dot products use the same unpacking, so a layout mistake would show
// up in the dequantization tests against gguf.

/// Q2_K codes 0..=3, element order.
#[inline(always)]
pub fn q2k_codes(b: &BlockQ2K) -> [u8; QK_K] {
    let qs = b.qs();
    let mut q = [0u8; QK_K];
    for h in 0..2 {
        for s in 0..4 {
            for l in 0..32 {
                q[128 * h + 32 * s + l] = (qs[32 * h + l] >> (2 * s)) & 3;
            }
        }
    }
    q
}

/// Q3_K codes -4..=3, element order.
#[inline(always)]
pub fn q3k_codes(b: &BlockQ3K) -> [i8; QK_K] {
    let (qs, hm) = (b.qs(), b.hmask());
    let mut q = [0i8; QK_K];
    for h in 0..2 {
        for s in 0..4 {
            for l in 0..32 {
                let low = ((qs[32 * h + l] >> (2 * s)) & 3) as i8;
                let high = (hm[l] >> (4 * h + s)) & 1;
                q[128 * h + 32 * s + l] = low - if high != 0 { 0 } else { 4 };
            }
        }
    }
    q
}

/// Q4_K codes 0..=15, element order.
#[inline(always)]
pub fn q4k_codes(b: &BlockQ4K) -> [u8; QK_K] {
    let qs = b.qs();
    let mut q = [0u8; QK_K];
    for j in 0..4 {
        for l in 0..32 {
            q[64 * j + l] = qs[32 * j + l] & 0x0f;
            q[64 * j + 32 + l] = qs[32 * j + l] >> 4;
        }
    }
    q
}

/// Q5_K codes 0..=31, element order.
#[inline(always)]
pub fn q5k_codes(b: &BlockQ5K) -> [u8; QK_K] {
    let (qs, qh) = (b.qs(), b.qh());
    let mut q = [0u8; QK_K];
    for j in 0..4 {
        for l in 0..32 {
            q[64 * j + l] = (qs[32 * j + l] & 0x0f) | (((qh[l] >> (2 * j)) & 1) << 4);
            q[64 * j + 32 + l] = (qs[32 * j + l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4);
        }
    }
    q
}

/// Q6_K codes -32..=31, element order.
#[inline(always)]
pub fn q6k_codes(b: &BlockQ6K) -> [i8; QK_K] {
    let (ql, qh) = (b.ql(), b.qh());
    let mut q = [0i8; QK_K];
    for h in 0..2 {
        for k in 0..4 {
            for l in 0..32 {
                let lb = ql[64 * h + l + 32 * (k & 1)];
                let low = if k < 2 { lb & 0x0f } else { lb >> 4 };
                let high = (qh[32 * h + l] >> (2 * k)) & 3;
                q[128 * h + 32 * k + l] = (low | (high << 4)) as i8 - 32;
            }
        }
    }
    q
}

/// `y = (d * (sc & 15)) * code - dmin * (sc >> 4)` per group of 16.
pub fn dequantize_row_q2_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q2_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ2K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ2K::new(b);
        let (d, dmin, sc, q) = (b.d(), b.dmin(), b.scales(), q2k_codes(&b));
        for g in 0..16 {
            let dl = d * (sc[g] & 0x0f) as f32;
            let ml = dmin * (sc[g] >> 4) as f32;
            for i in 16 * g..16 * g + 16 {
                y[i] = dl * q[i] as f32 - ml;
            }
        }
    }
}

/// `y = (d * scale) * code` per group of 16.
pub fn dequantize_row_q3_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q3_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ3K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ3K::new(b);
        let (d, sc, q) = (b.d(), q3k_scales(b.scales()), q3k_codes(&b));
        for g in 0..16 {
            let dl = d * sc[g] as f32;
            for i in 16 * g..16 * g + 16 {
                y[i] = dl * q[i] as f32;
            }
        }
    }
}

/// `y = (d * sc) * code - dmin * m` per sub-block of 32.
pub fn dequantize_row_q4_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q4_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ4K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ4K::new(b);
        let (d, dmin, q) = (b.d(), b.dmin(), q4k_codes(&b));
        for s in 0..8 {
            let (sc, m) = k4_scale_min(b.scales(), s);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            for i in 32 * s..32 * s + 32 {
                y[i] = dl * q[i] as f32 - ml;
            }
        }
    }
}

/// `y = (d * sc) * code - dmin * m` per sub-block of 32.
pub fn dequantize_row_q5_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q5_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ5K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ5K::new(b);
        let (d, dmin, q) = (b.d(), b.dmin(), q5k_codes(&b));
        for s in 0..8 {
            let (sc, m) = k4_scale_min(b.scales(), s);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            for i in 32 * s..32 * s + 32 {
                y[i] = dl * q[i] as f32 - ml;
            }
        }
    }
}

/// `y = (d * scale) * code` per group of 16.
pub fn dequantize_row_q6_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q6_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ6K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ6K::new(b);
        let (d, sc, q) = (b.d(), b.scales(), q6k_codes(&b));
        for g in 0..16 {
            let dl = d * sc[g] as i8 as f32;
            for i in 16 * g..16 * g + 16 {
                y[i] = dl * q[i] as f32;
            }
        }
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

// ------------------------------------------------------------------------------------------------------------------
// Dot products: one weight row (n elements of the weight type) with one activation row (n elements of its
// vec_dot_type).
// ------------------------------------------------------------------------------------------------------------------

/// `sum(f(i) for i in 0..n)` in the fixed order a 2 x f32x4 SIMD loop produces: lane `l` (0..8) accumulates
/// `f(i)` for `i % 8 == l` over the whole 8-element chunks (one rounding per product, one per add, no fused
/// multiply-add), then `s_l = acc[l] + acc[l + 4]` (l < 4), total `(s_0 + s_2) + (s_1 + s_3)`, then the remaining
/// `n % 8` terms are added one by one.
#[inline(always)]
pub fn dot_lanes(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let whole = n / 8 * 8;
    let mut i = 0;
    while i < whole {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
        i += 8;
    }
    let mut r = reduce_lanes(acc);
    for i in whole..n {
        r += f(i);
    }
    r
}

/// The final reduction of [`dot_lanes`]: `(acc0+acc4 + acc2+acc6) + (acc1+acc5 + acc3+acc7)`, pairwise as written
/// there.
#[inline(always)]
fn reduce_lanes(acc: [f32; 8]) -> f32 {
    let s = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    (s[0] + s[2]) + (s[1] + s[3])
}

/// [`dot_lanes`] over a weight row of `WS`-byte floats (decoded by `wf`) and an f32 activation row, both as bytes;
/// walks whole 8-element chunks so the per-element reads need no bounds checks.
#[inline(always)]
fn dot_lanes_bytes<const WS: usize>(n: usize, w: &[u8], a: &[u8], wf: impl Fn(&[u8], usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let (wc, ac) = (w.chunks_exact(8 * WS), a.chunks_exact(32));
    let (wt, at) = (wc.remainder(), ac.remainder());
    for (wc, ac) in wc.zip(ac) {
        for (l, acc) in acc.iter_mut().enumerate() {
            *acc += wf(wc, WS * l) * f32_at(ac, 4 * l);
        }
    }
    let mut r = reduce_lanes(acc);
    for i in 0..n % 8 {
        r += wf(wt, WS * i) * f32_at(at, 4 * i);
    }
    r
}

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
fn check_dot(wt: GgmlType, n: usize, w: &[u8], a: &[u8]) {
    check_len(wt, n, w.len(), "weight row");
    check_len(wt.vec_dot_type(), n, a.len(), "activation row");
}

/// F32 weights x f32 activations, [`dot_lanes`] order.
pub fn vec_dot_f32_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::F32, n, w, a);
    dot_lanes_bytes::<4>(n, w, a, f32_at)
}

/// F16 weights (widened exactly) x f32 activations, [`dot_lanes`] order.
pub fn vec_dot_f16_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::F16, n, w, a);
    dot_lanes_bytes::<2>(n, w, a, f16_at)
}

/// BF16 weights (widened exactly) x f32 activations, [`dot_lanes`] order.
pub fn vec_dot_bf16_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::BF16, n, w, a);
    dot_lanes_bytes::<2>(n, w, a, bf16_at)
}

/// `sum((nibble - off) * q8)` over a 32-weight block whose weight `j` is the low nibble of `qs[j]` and weight
/// `j + 16` the high nibble (Q4_0: off 8, Q4_1: off 0); Q8 bytes reinterpreted as i8.
#[inline(always)]
fn idot_nibbles(qs: &[u8; 16], q8: &[u8; QK], off: i32) -> i32 {
    // Computed as sum(nibble * q8) - off * sum(q8): the same integer, and a loop shape compilers vectorize better.
    let (mut s, mut sa) = (0i32, 0i32);
    for j in 0..QK / 2 {
        let (a0, a1) = (q8[j] as i8 as i32, q8[j + QK / 2] as i8 as i32);
        s += (qs[j] & 0x0f) as i32 * a0 + (qs[j] >> 4) as i32 * a1;
        sa += a0 + a1;
    }
    s - off * sa
}

/// As [`idot_nibbles`] with the 5th bit of weight `j` at bit `j` of `qh` (Q5_0: off 16, Q5_1: off 0).
#[inline(always)]
fn idot_q5(qs: &[u8; 16], qh: u32, q8: &[u8; QK], off: i32) -> i32 {
    let mut s = 0i32;
    for j in 0..QK / 2 {
        let h0 = (((qh >> j) & 1) << 4) as i32;
        let h1 = (((qh >> (j + QK / 2)) & 1) << 4) as i32;
        s += (((qs[j] & 0x0f) as i32 | h0) - off) * q8[j] as i8 as i32;
        s += (((qs[j] >> 4) as i32 | h1) - off) * q8[j + QK / 2] as i8 as i32;
    }
    s
}

/// `sum(a * b)` of two blocks of 32 i8 codes (stored as bytes).
#[inline(always)]
fn idot_i8(a: &[u8; QK], b: &[u8; QK]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i8 as i32 * y as i8 as i32).sum()
}

/// Per block: `isum = sum((code - 8) * q8)`; `sumf += (d_w * d_a) * isum`.
pub fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q4_0, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ4_0::SIZE).zip(a.chunks_exact(BlockQ8_0::SIZE)) {
        let (x, y) = (BlockQ4_0::new(wb), BlockQ8_0::new(ab));
        sumf += (x.d() * y.d()) * idot_nibbles(x.qs(), y.qs(), 8) as f32;
    }
    sumf
}

/// Per block: `isum = sum(code * q8)`; `sumf += (d_w * d_a) * isum + m_w * s_a`.
pub fn vec_dot_q4_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q4_1, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ4_1::SIZE).zip(a.chunks_exact(BlockQ8_1::SIZE)) {
        let (x, y) = (BlockQ4_1::new(wb), BlockQ8_1::new(ab));
        sumf += (x.d() * y.d()) * idot_nibbles(x.qs(), y.qs(), 0) as f32 + x.m() * y.s();
    }
    sumf
}

/// Per block: `isum = sum((code - 16) * q8)`; `sumf += (d_w * d_a) * isum`.
pub fn vec_dot_q5_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q5_0, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ5_0::SIZE).zip(a.chunks_exact(BlockQ8_0::SIZE)) {
        let (x, y) = (BlockQ5_0::new(wb), BlockQ8_0::new(ab));
        sumf += (x.d() * y.d()) * idot_q5(x.qs(), x.qh(), y.qs(), 16) as f32;
    }
    sumf
}

/// Per block: `isum = sum(code * q8)`; `sumf += (d_w * d_a) * isum + m_w * s_a`.
pub fn vec_dot_q5_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q5_1, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ5_1::SIZE).zip(a.chunks_exact(BlockQ8_1::SIZE)) {
        let (x, y) = (BlockQ5_1::new(wb), BlockQ8_1::new(ab));
        sumf += (x.d() * y.d()) * idot_q5(x.qs(), x.qh(), y.qs(), 0) as f32 + x.m() * y.s();
    }
    sumf
}

/// Per block: `isum = sum(q_w * q_a)`; `sumf += (d_w * d_a) * isum`.
pub fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q8_0, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ8_0::SIZE).zip(a.chunks_exact(BlockQ8_0::SIZE)) {
        let (x, y) = (BlockQ8_0::new(wb), BlockQ8_0::new(ab));
        sumf += (x.d() * y.d()) * idot_i8(x.qs(), y.qs()) as f32;
    }
    sumf
}

/// Integer dot product of `len` weight codes with Q8 codes starting at element `start` of a Q8_K block.
#[inline(always)]
fn idot_k<T: Copy + Into<i32>>(codes: &[T; QK_K], q8: &[u8; QK_K], start: usize, len: usize) -> i32 {
    codes[start..start + len]
        .iter()
        .zip(&q8[start..start + len])
        .map(|(&c, &a)| c.into() * a as i8 as i32)
        .sum()
}

/// Per block: `isum = sum_g (sc_g & 15) * sum(code * q8)` over the 16 groups,
/// `summs = sum_g (sc_g >> 4) * bsums_g`; `sumf += (d_a * d_w) * isum - (d_a * dmin_w) * summs`.
pub fn vec_dot_q2_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q2_K, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ2K::SIZE).zip(a.chunks_exact(BlockQ8K::SIZE)) {
        let (x, y) = (BlockQ2K::new(wb), BlockQ8K::new(ab));
        let (codes, sc, q8) = (q2k_codes(&x), x.scales(), y.qs());
        let (mut isum, mut summs) = (0i32, 0i32);
        for g in 0..16 {
            isum += (sc[g] & 0x0f) as i32 * idot_k(&codes, q8, 16 * g, 16);
            summs += (sc[g] >> 4) as i32 * y.bsum(g) as i32;
        }
        let dall = y.d() * x.d();
        let dmin = y.d() * x.dmin();
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Per block: `isum = sum_g scale_g * sum(code * q8)` (scales -32..=31, codes -4..=3);
/// `sumf += (d_w * d_a) * isum`.
pub fn vec_dot_q3_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q3_K, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ3K::SIZE).zip(a.chunks_exact(BlockQ8K::SIZE)) {
        let (x, y) = (BlockQ3K::new(wb), BlockQ8K::new(ab));
        let (codes, sc, q8) = (q3k_codes(&x), q3k_scales(x.scales()), y.qs());
        let mut isum = 0i32;
        for g in 0..16 {
            isum += sc[g] as i32 * idot_k(&codes, q8, 16 * g, 16);
        }
        sumf += (x.d() * y.d()) * isum as f32;
    }
    sumf
}

/// Per block: `isum = sum_b sc_b * sum(code * q8)` over the 8 sub-blocks of 32,
/// `summs = sum_b m_b * (bsums_2b + bsums_2b+1)`; `sumf += (d_w * d_a) * isum - (dmin_w * d_a) * summs`.
pub fn vec_dot_q4_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q4_K, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ4K::SIZE).zip(a.chunks_exact(BlockQ8K::SIZE)) {
        let (x, y) = (BlockQ4K::new(wb), BlockQ8K::new(ab));
        let (codes, q8) = (q4k_codes(&x), y.qs());
        let (mut isum, mut summs) = (0i32, 0i32);
        for s in 0..8 {
            let (sc, m) = k4_scale_min(x.scales(), s);
            isum += sc as i32 * idot_k(&codes, q8, 32 * s, 32);
            summs += m as i32 * (y.bsum(2 * s) as i32 + y.bsum(2 * s + 1) as i32);
        }
        sumf += (x.d() * y.d()) * isum as f32 - (x.dmin() * y.d()) * summs as f32;
    }
    sumf
}

/// As Q4_K with 5-bit codes.
pub fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q5_K, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ5K::SIZE).zip(a.chunks_exact(BlockQ8K::SIZE)) {
        let (x, y) = (BlockQ5K::new(wb), BlockQ8K::new(ab));
        let (codes, q8) = (q5k_codes(&x), y.qs());
        let (mut isum, mut summs) = (0i32, 0i32);
        for s in 0..8 {
            let (sc, m) = k4_scale_min(x.scales(), s);
            isum += sc as i32 * idot_k(&codes, q8, 32 * s, 32);
            summs += m as i32 * (y.bsum(2 * s) as i32 + y.bsum(2 * s + 1) as i32);
        }
        sumf += (x.d() * y.d()) * isum as f32 - (x.dmin() * y.d()) * summs as f32;
    }
    sumf
}

/// Per block: `isum = sum_g scale_g * sum(code * q8)` (scales i8, codes -32..=31); `sumf += (d_w * d_a) * isum`.
pub fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q6_K, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ6K::SIZE).zip(a.chunks_exact(BlockQ8K::SIZE)) {
        let (x, y) = (BlockQ6K::new(wb), BlockQ8K::new(ab));
        let (codes, sc, q8) = (q6k_codes(&x), x.scales(), y.qs());
        let mut isum = 0i32;
        for g in 0..16 {
            isum += sc[g] as i8 as i32 * idot_k(&codes, q8, 16 * g, 16);
        }
        sumf += (x.d() * y.d()) * isum as f32;
    }
    sumf
}

// ------------------------------------------------------------------------------------------------------------------
// Matrix-vector and matrix-matrix products.
// ------------------------------------------------------------------------------------------------------------------

/// `out[r] = vec_dot(row r of w, a)` for `r in 0..out.len()`; `w` holds `out.len()` rows of
/// `wt.row_bytes(n_cols)` bytes, `a` one activation row of `n_cols` elements of `wt.vec_dot_type()`.
#[track_caller]
pub fn matvec(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let rb = row_bytes(wt, n_cols);
    check_len(wt.vec_dot_type(), n_cols, a.len(), "activation row");
    let want = out.len().checked_mul(rb).expect("matvec: weight size overflows usize");
    assert!(
        w.len() == want,
        "matvec: {} rows of {rb} bytes need {want} weight bytes, got {}",
        out.len(),
        w.len()
    );
    let k = dot_kernel(wt);
    if rb == 0 {
        out.fill(0.0);
        return;
    }
    for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
        *o = k(n_cols, row, a);
    }
}

/// Batched [`matvec`]: `a` holds `n_tok` activation rows, `out[t * n_rows + r]` = dot(row r, token t) with
/// `n_rows = w.len() / wt.row_bytes(n_cols)`. Panics on length mismatches and when `n_cols == 0` (the number of
/// rows is then undefined).
#[track_caller]
pub fn matmul(wt: GgmlType, n_cols: usize, w: &[u8], a: &[u8], n_tok: usize, out: &mut [f32]) {
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
    if n_rows == 0 {
        return;
    }
    for (o, at) in out.chunks_exact_mut(n_rows).zip(a.chunks_exact(ab)) {
        matvec(wt, n_cols, w, at, o);
    }
}
