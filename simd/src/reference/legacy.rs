//! The 32-element formats' dot products: Q4_0, Q5_0, Q8_0 against Q8_0 activations and Q4_1, Q5_1 against Q8_1;
//! the specification of `crate::simd128::legacy`.

// Index loops mirror the block layouts (element e, group e / 16) more readably than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::*;

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
