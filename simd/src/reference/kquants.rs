//! The K formats (256-element super-blocks): each block's codes unpacked into one code per element (used by the
//! dequantizers too), and the dot products against Q8_K activations; the specification of `crate::simd128::kquants`.

// Index loops mirror the block layouts (element e, group e / 16) more readably than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::*;

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
        sumf += k4_block_dot(&q4k_codes(&x), x.scales(), x.d(), x.dmin(), &y);
    }
    sumf
}

/// As Q4_K with 5-bit codes.
pub fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    check_dot(GgmlType::Q5_K, n, w, a);
    let mut sumf = 0.0f32;
    for (wb, ab) in w.chunks_exact(BlockQ5K::SIZE).zip(a.chunks_exact(BlockQ8K::SIZE)) {
        let (x, y) = (BlockQ5K::new(wb), BlockQ8K::new(ab));
        sumf += k4_block_dot(&q5k_codes(&x), x.scales(), x.d(), x.dmin(), &y);
    }
    sumf
}

/// One Q4_K / Q5_K block (element-order `codes`, packed 6-bit `scales` / mins, `d`, `dmin`) against one Q8_K block:
/// `(d_w * d_a) * isum - (dmin_w * d_a) * summs`.
#[inline(always)]
fn k4_block_dot(codes: &[u8; QK_K], scales: &[u8; K_SCALE_SIZE], d: f32, dmin: f32, y: &BlockQ8K) -> f32 {
    let q8 = y.qs();
    let (mut isum, mut summs) = (0i32, 0i32);
    for s in 0..8 {
        let (sc, m) = k4_scale_min(scales, s);
        isum += sc as i32 * idot_k(codes, q8, 32 * s, 32);
        summs += m as i32 * (y.bsum(2 * s) as i32 + y.bsum(2 * s + 1) as i32);
    }
    (d * y.d()) * isum as f32 - (dmin * y.d()) * summs as f32
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
