//! Float weights (F32, F16, BF16) against f32 activations (little-endian bytes), and the plain f32 dot product.
//!
//! The reference sums in a fixed 8-lane order (`crate::reference::dot_lanes`): lane `i % 8` accumulates
//! `w[i] * a[i]` over whole chunks of 8, then `(s0 + s2) + (s1 + s3)` with `s_l = acc[l] + acc[l + 4]`, then the
//! remaining `n % 8` products one by one. Two f32x4 accumulators per (row, token) reproduce that exactly in both
//! builds ([`madd_f32`] never fuses).

use super::common::*;
use core::arch::wasm32::*;

/// A row format read as floats: how to widen 8 consecutive values (starting at element `i`, a multiple of 8) to two
/// f32x4, and one to f32. Values come in blocks of `BLOCK` elements taking `BYTES` bytes (1 and the width for plain
/// floats; q8_0 KV rows are blocks of 32 in 34 bytes, `super::kv`).
pub(super) trait FloatRow {
    const BLOCK: usize = 1;
    const BYTES: usize;
    fn load8(w: &[u8], i: usize) -> (v128, v128);
    fn one(w: &[u8], i: usize) -> f32;
    /// Bytes of `n` values (`n` a multiple of `BLOCK`).
    #[inline(always)]
    fn span(n: usize) -> usize {
        n / Self::BLOCK * Self::BYTES
    }
}

pub(super) struct F32;
impl FloatRow for F32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn load8(w: &[u8], i: usize) -> (v128, v128) {
        (load(w, 4 * i), load(w, 4 * i + 16))
    }
    #[inline(always)]
    fn one(w: &[u8], i: usize) -> f32 {
        f32_at(w, 4 * i)
    }
}

pub(super) struct F16;
impl FloatRow for F16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn load8(w: &[u8], i: usize) -> (v128, v128) {
        let h = load(w, 2 * i);
        (f16x4_to_f32x4(u32x4_extend_low_u16x8(h)), f16x4_to_f32x4(u32x4_extend_high_u16x8(h)))
    }
    #[inline(always)]
    fn one(w: &[u8], i: usize) -> f32 {
        f16_at(w, 2 * i)
    }
}

/// bfloat16 is the top half of an f32: widening is a 16-bit shift.
pub(super) struct BF16;
impl FloatRow for BF16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn load8(w: &[u8], i: usize) -> (v128, v128) {
        let h = load(w, 2 * i);
        (i32x4_shl(u32x4_extend_low_u16x8(h), 16), i32x4_shl(u32x4_extend_high_u16x8(h), 16))
    }
    #[inline(always)]
    fn one(w: &[u8], i: usize) -> f32 {
        bf16_at(w, 2 * i)
    }
}

/// Dots of `R` weight rows with `T` activation rows of `n` elements (`R * T <= 4`), in the reference's 8-lane order;
/// result lane `r * T + t`. `w[r]`: `W::span(n)` bytes; `a[t]`: `4 * n` bytes (f32, little-endian). The four
/// (row, token) pairs are written out with their accumulators in separate variables: a loop over arrays of
/// accumulators stays a loop and keeps them in memory.
#[inline(always)]
pub(super) fn tile<W: FloatRow, const R: usize, const T: usize>(n: usize, w: [&[u8]; R], a: [&[u8]; T]) -> [f32; 4] {
    const { assert!(R * T <= 4 && R > 0 && T > 0) };
    let w = w.map(|w| &w[..W::span(n)]);
    let a = a.map(|a| &a[..4 * n]);
    let whole = n / 8 * 8;
    let zero = f32x4_splat(0.0);
    let (mut lo, mut hi) = ([zero; 4], [zero; 4]);
    let mut i = 0;
    while i < whole {
        // After inlining, the weight chunk of a row is loaded and widened once for its T tokens.
        let step = |l: usize, lo: v128, hi: v128| {
            if l >= R * T {
                return (lo, hi);
            }
            let (w0, w1) = W::load8(w[l / T], i);
            let at = a[l % T];
            (madd_f32(w0, load(at, 4 * i), lo), madd_f32(w1, load(at, 4 * i + 16), hi))
        };
        let (l0, h0) = step(0, lo[0], hi[0]);
        let (l1, h1) = step(1, lo[1], hi[1]);
        let (l2, h2) = step(2, lo[2], hi[2]);
        let (l3, h3) = step(3, lo[3], hi[3]);
        (lo, hi) = ([l0, l1, l2, l3], [h0, h1, h2, h3]);
        i += 8;
    }
    core::array::from_fn(|l| {
        if l >= R * T {
            return 0.0;
        }
        let (wr, at) = (w[l / T], a[l % T]);
        let mut s = hsum_f32(f32x4_add(lo[l], hi[l]));
        for j in whole..n {
            s += W::one(wr, j) * f32_at(at, 4 * j);
        }
        s
    })
}

pub(super) fn vec_dot<W: FloatRow>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    tile::<W, 1, 1>(n, [w], [a])[0]
}

/// `out[r] = w_r · a`, four rows per tile (the activation chunk is loaded once for four rows).
pub(super) fn matvec<W: FloatRow>(n: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let rb = W::span(n);
    let mut chunks = out.chunks_exact_mut(4);
    let mut r0 = 0;
    for o in &mut chunks {
        let rows: [&[u8]; 4] = core::array::from_fn(|i| &w[(r0 + i) * rb..(r0 + i + 1) * rb]);
        o.copy_from_slice(&tile::<W, 4, 1>(n, rows, [a]));
        r0 += 4;
    }
    for o in chunks.into_remainder() {
        *o = vec_dot::<W>(n, &w[r0 * rb..(r0 + 1) * rb], a);
        r0 += 1;
    }
}

/// Token-major `out[t * n_rows + r] = w_r · a_t`, four tokens per tile over bands of 16 rows (each weight chunk is
/// widened once per four tokens).
pub(super) fn matmul<W: FloatRow>(n: usize, w: &[u8], a: &[u8], n_tok: usize, out: &mut [f32]) {
    if n_tok == 0 {
        return;
    }
    let (rb, ab) = (W::span(n), 4 * n);
    let n_rows = out.len() / n_tok;
    for r_start in (0..n_rows).step_by(16) {
        let r_end = (r_start + 16).min(n_rows);
        for t0 in (0..n_tok / 4 * 4).step_by(4) {
            let toks: [&[u8]; 4] = core::array::from_fn(|i| &a[(t0 + i) * ab..(t0 + i + 1) * ab]);
            for r in r_start..r_end {
                let res = tile::<W, 1, 4>(n, [&w[r * rb..(r + 1) * rb]], toks);
                for (i, v) in res.iter().enumerate() {
                    out[(t0 + i) * n_rows + r] = *v;
                }
            }
        }
    }
    // The last n_tok % 4 tokens (a single one in the decode step): four-row tiles over the whole matrix.
    for t in n_tok / 4 * 4..n_tok {
        matvec::<W>(n, &w[..n_rows * rb], &a[t * ab..(t + 1) * ab], &mut out[t * n_rows..(t + 1) * n_rows]);
    }
}

/// The bytes of an f32 slice (little-endian on wasm32), for [`tile`].
pub(super) fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: any f32 memory is valid as bytes (u8 has alignment 1 and no invalid values); same lifetime and span.
    unsafe { core::slice::from_raw_parts(x.as_ptr() as *const u8, core::mem::size_of_val(x)) }
}

/// One query head's attention (see `crate::ops::attend`; lengths checked there): its three steps in turn.
pub(crate) fn attend(q: &[f32], keys: &[f32], values: &[f32], stride: usize, scale: f32, scores: &mut [f32], out: &mut [f32]) {
    attn_scores(q, keys, stride, scale, scores);
    super::ops::softmax_inplace(scores);
    attn_values(scores, values, stride, out);
}

/// `scores[j] = dot(q, key_j) * scale` (see `crate::ops::attn_scores`).
pub(crate) fn attn_scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, scores: &mut [f32]) {
    scores_in::<F32>(q, f32_bytes(keys), 0, stride, scale, scores);
}

/// `out = Σ_j probs[j] * value_j` (see `crate::ops::attn_values`).
pub(crate) fn attn_values(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
    values_in::<F32>(probs, f32_bytes(values), 0, stride, out);
}

/// Attention scores against key rows stored as `W` in `w`: key row `j` is the `q.len()` values from element
/// `at + j * stride` (`at` and `stride` multiples of `W::BLOCK`). Four key rows per [`tile`] against the query,
/// each dot in the reference's 8-lane order (`k * q` and `q * k` are the same IEEE product), so the result is
/// bit for bit `dot_f32(q, decoded key_j) * scale`.
pub(super) fn scores_in<W: FloatRow>(q: &[f32], w: &[u8], at: usize, stride: usize, scale: f32, scores: &mut [f32]) {
    let (hd, n) = (q.len(), scores.len());
    let qb = f32_bytes(q);
    let key = |j: usize| &w[W::span(at + j * stride)..];
    let n4 = n / 4 * 4;
    for j in (0..n4).step_by(4) {
        let d = tile::<W, 4, 1>(hd, [key(j), key(j + 1), key(j + 2), key(j + 3)], [qb]);
        for (s, d) in scores[j..j + 4].iter_mut().zip(d) {
            *s = d * scale;
        }
    }
    for j in n4..n {
        scores[j] = tile::<W, 1, 1>(hd, [key(j)], [qb])[0] * scale;
    }
}

/// Weighted sum of value rows stored as `W` in `w`: row `j` is the `out.len()` values from element
/// `at + j * stride` (for q8_0 rows, `at` and `stride` multiples of 8: each group of 8 within one block). 16
/// output values at a time held in four accumulators over every position `j` in order, `acc + p_j * v_j` without
/// fusing: per element the same operations as zeroing `out` and one `axpy` per `j` over the decoded rows.
pub(super) fn values_in<W: FloatRow>(probs: &[f32], w: &[u8], at: usize, stride: usize, out: &mut [f32]) {
    let hd = out.len();
    let h16 = hd / 16 * 16;
    for c in (0..h16).step_by(16) {
        let zero = f32x4_splat(0.0);
        let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
        for (j, &p) in probs.iter().enumerate() {
            let e = at + j * stride + c;
            let (v0, v1) = W::load8(w, e);
            let (v2, v3) = W::load8(w, e + 8);
            let pv = f32x4_splat(p);
            a0 = madd_f32(pv, v0, a0);
            a1 = madd_f32(pv, v1, a1);
            a2 = madd_f32(pv, v2, a2);
            a3 = madd_f32(pv, v3, a3);
        }
        store_f32(out, c, a0);
        store_f32(out, c + 4, a1);
        store_f32(out, c + 8, a2);
        store_f32(out, c + 12, a3);
    }
    for (i, o) in out.iter_mut().enumerate().skip(h16) {
        let mut acc = 0.0f32;
        for (j, &p) in probs.iter().enumerate() {
            acc += p * W::one(w, at + j * stride + i);
        }
        *o = acc;
    }
}

/// `Σ a[i] * b[i]` over f32 slices of equal length, in the reference's 8-lane order.
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let whole = n / 8 * 8;
    let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0));
    let mut i = 0;
    while i < whole {
        lo = madd_f32(load_f32(a, i), load_f32(b, i), lo);
        hi = madd_f32(load_f32(a, i + 4), load_f32(b, i + 4), hi);
        i += 8;
    }
    let mut s = hsum_f32(f32x4_add(lo, hi));
    for j in whole..n {
        s += a[j] * b[j];
    }
    s
}
