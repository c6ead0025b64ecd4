//! Float dot products: the fixed 8-lane summation order every float dot follows ([`dot_lanes`], also the order of
//! `crate::ops::dot_f32` and attention), and F32 / F16 / BF16 weights against f32 activations; the specification of
//! `crate::simd128::float`.

// Index loops mirror the block layouts (element e, group e / 16) more readably than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::*;

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
