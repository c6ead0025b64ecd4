//! Building blocks shared by the SIMD128 kernels: unaligned loads, half-float conversion, horizontal sums, the
//! 16-lane integer dot products, and the row/token tiling that turns one block kernel into vec_dot, matvec and matmul.

use core::arch::wasm32::*;

/// 16 bytes at `b[off..off + 16]` as a v128 (bounds-checked; the check folds away for constant offsets into
/// fixed-size blocks).
#[inline(always)]
pub(super) fn load(b: &[u8], off: usize) -> v128 {
    let s = &b[off..off + 16];
    // SAFETY: `s` is 16 readable bytes; `v128_load` is a 1-aligned load, so any address is fine.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}

/// Stores `v` at `b[off..off + 16]`.
#[inline(always)]
pub(super) fn store(b: &mut [u8], off: usize, v: v128) {
    let s = &mut b[off..off + 16];
    // SAFETY: `s` is 16 writable bytes; `v128_store` is a 1-aligned store.
    unsafe { v128_store(s.as_mut_ptr() as *mut v128, v) }
}

/// Four f32 at `x[i..i + 4]`.
#[inline(always)]
pub(super) fn load_f32(x: &[f32], i: usize) -> v128 {
    let s = &x[i..i + 4];
    // SAFETY: `s` is 4 readable f32 (16 bytes); the load is 1-aligned.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}

/// Stores four f32 at `x[i..i + 4]`.
#[inline(always)]
pub(super) fn store_f32(x: &mut [f32], i: usize, v: v128) {
    let s = &mut x[i..i + 4];
    // SAFETY: `s` is 4 writable f32 (16 bytes); the store is 1-aligned.
    unsafe { v128_store(s.as_mut_ptr() as *mut v128, v) }
}

#[inline(always)]
pub(super) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline(always)]
pub(super) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_bits(u32_at(b, off))
}

/// 2^112 = 2^(127 - 15): the bias difference between binary32 and binary16 exponents.
const TWO_POW_112: f32 = f32::from_bits((112 + 127) << 23);

/// IEEE binary16 -> binary32, exact (same values as `half::f16::to_f32`, without its branches for subnormals).
/// Moving exponent and mantissa up 13 bits gives an f32 whose exponent is 112 too small; multiplying by 2^112
/// corrects it and normalizes half subnormals exactly. Exponent 31 (inf/NaN) gets the f32 all-ones exponent instead.
#[inline(always)]
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let em = (h & 0x7fff) << 13;
    let mag = if em >= 0x7c00 << 13 { f32::from_bits(em | 0x7f80_0000) } else { f32::from_bits(em) * TWO_POW_112 };
    f32::from_bits(mag.to_bits() | ((h & 0x8000) << 16))
}

/// The half at `b[off..off + 2]`, little-endian.
#[inline(always)]
pub(super) fn f16_at(b: &[u8], off: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// Four halves held in the low 16 bits of each u32 lane -> f32x4, exact (the lane-wise version of [`f16_to_f32`]).
#[inline(always)]
pub(super) fn f16x4_to_f32x4(h: v128) -> v128 {
    let em = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
    let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
    let finite = f32x4_mul(em, f32x4_splat(TWO_POW_112));
    let infnan = v128_or(em, u32x4_splat(0x7f80_0000));
    let is_infnan = i32x4_ge(em, i32x4_splat(0x7c00 << 13));
    v128_or(v128_bitselect(infnan, finite, is_infnan), sign)
}

/// Sum of the four f32 lanes.
#[inline(always)]
pub(super) fn hsum_f32(v: v128) -> f32 {
    let v = f32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let v = f32x4_add(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
    f32x4_extract_lane::<0>(v)
}

/// Sum of the four i32 lanes (wrapping; the kernels' sums stay far below 2^31).
#[inline(always)]
pub(super) fn hsum_i32(v: v128) -> i32 {
    let v = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let v = i32x4_add(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
    i32x4_extract_lane::<0>(v)
}

/// Maximum of the four f32 lanes (inputs are not NaN: they come from `abs` of finite activations).
#[inline(always)]
pub(super) fn hmax_f32(v: v128) -> f32 {
    let v = f32x4_pmax(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let v = f32x4_pmax(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
    f32x4_extract_lane::<0>(v)
}

/// `acc + a * b` on f32x4: fused (one rounding, `f32x4.relaxed_madd`) in the relaxed-SIMD build, multiply then add
/// otherwise.
#[inline(always)]
pub(super) fn madd_f32(a: v128, b: v128, acc: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, acc)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(acc, f32x4_mul(a, b))
    }
}

/// `acc + Σ x[i] * y[i]` over 16 signed 8-bit lanes, as i32x4 partial sums: both sides widened to i16
/// (`i16x8.extend_*_i8x16_s`), multiplied and pair-summed with `i32x4.dot_i16x8_s`. Exact for all i8 inputs.
#[inline(always)]
pub(super) fn dot_i8(x: v128, y: v128, acc: v128) -> v128 {
    let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), i16x8_extend_low_i8x16(y));
    let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), i16x8_extend_high_i8x16(y));
    i32x4_add(acc, i32x4_add(lo, hi))
}

/// `acc + Σ u[i] * y[i]` over 16 lanes, as i32x4 partial sums, for unsigned codes `u` in 0..=127 (4-6 bit weight
/// codes) and signed 8-bit activations `y`. With relaxed SIMD this is one `i32x4.relaxed_dot_i8x16_i7x16_add_s`,
/// whose result is fully determined because the i7 operand has its top bit clear (and the i16 pair sums, at most
/// 2 * 127 * 128 in magnitude, cannot saturate); otherwise the SIMD128 widening dot.
#[inline(always)]
pub(super) fn dot_u7(u: v128, y: v128, acc: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i32x4_relaxed_dot_i8x16_i7x16_add(y, u, acc)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        // Codes < 128 read the same signed or unsigned, so the signed widening serves both operands.
        dot_i8(u, y, acc)
    }
}

/// i32x4 partial sums of the 16 signed bytes of `y` (for the `- offset * Σy` term of offset-coded weights).
#[inline(always)]
pub(super) fn sum_i8(y: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i32x4_relaxed_dot_i8x16_i7x16_add(y, i8x16_splat(1), i32x4_splat(0))
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        i32x4_extadd_pairwise_i16x8(i16x8_extadd_pairwise_i8x16(y))
    }
}

/// Sums of four i32x4 vectors, one total per lane: `[Σp0, Σp1, Σp2, Σp3]` (a transposing horizontal add).
#[inline(always)]
pub(super) fn hsum4_i32(p: [v128; 4]) -> v128 {
    let a = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(p[0], p[1]), i32x4_shuffle::<2, 6, 3, 7>(p[0], p[1]));
    let b = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(p[2], p[3]), i32x4_shuffle::<2, 6, 3, 7>(p[2], p[3]));
    i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(a, b), i32x4_shuffle::<2, 3, 6, 7>(a, b))
}

/// How a block's exact integer sums become its f32 contribution: the reference kernel's expression, evaluated
/// in the same order (`crate::reference`), so each lane's running sum has the reference's bits.
pub(super) enum Combine {
    /// `(d_w * d_a) * isum` (Q4_0, Q5_0, Q8_0, Q3_K, Q6_K).
    Sym,
    /// `(d_w * d_a) * isum + m_w * s_a` (Q4_1, Q5_1 against Q8_1).
    Min,
    /// `(d_w * d_a) * isum - (dmin_w * d_a) * imin` (Q2_K, Q4_K, Q5_K against Q8_K).
    KMin,
}

/// One weight format's dot product with its activation format, block by block. A row of `n` weights is
/// `n / block_size` blocks of `WB` bytes; its activation row as many blocks of `AB` bytes.
pub(super) trait BlockDot {
    const WB: usize;
    const AB: usize;
    const COMBINE: Combine;
    /// Offset of the weight block's f16 `d`, and of its f16 `m` / `dmin` (Min, KMin).
    const W_D: usize;
    const W_M: usize;
    /// The activation's scale: f16 at `A_D` (Q8_0, Q8_1) or f32 when `A_D_F32` (Q8_K); Q8_1's f16 `s` at `A_S`.
    const A_D: usize;
    const A_D_F32: bool = false;
    const A_S: usize = 0;
    /// The exact integer sums of one weight block `w` (`WB` bytes) with one activation block `a` (`AB` bytes), as
    /// i32x4 partial sums: the code dot product (group scales applied for K formats) and, for `KMin`, the min term
    /// `Σ m_g * bsum_g` (zero otherwise).
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128);
}

/// `f32x4` whose lane `l` (< `R * T`) is the f16 at `off` of `blocks[WEIGHT ? l / T : l % T]`: the weight (or
/// activation) scale of the pair in lane `l` of an `R x T` tile. Lanes past `R * T` repeat lane 0.
#[inline(always)]
fn gather_f16<const N: usize, const R: usize, const T: usize, const WEIGHT: bool>(
    blocks: &[&[u8]; N],
    off: usize,
) -> v128 {
    if N == 1 {
        return f32x4_splat(f16_at(blocks[0], off));
    }
    let h = |l: usize| {
        let l = if l < R * T { l } else { 0 };
        let b = blocks[if WEIGHT { l / T } else { l % T }];
        u16::from_le_bytes([b[off], b[off + 1]]) as u32
    };
    f16x4_to_f32x4(u32x4(h(0), h(1), h(2), h(3)))
}

/// As [`gather_f16`] for an f32 field.
#[inline(always)]
fn gather_f32<const N: usize, const R: usize, const T: usize, const WEIGHT: bool>(
    blocks: &[&[u8]; N],
    off: usize,
) -> v128 {
    let f = |l: usize| {
        let l = if l < R * T { l } else { 0 };
        f32_at(blocks[if WEIGHT { l / T } else { l % T }], off)
    };
    if N == 1 {
        return f32x4_splat(f(0));
    }
    f32x4(f(0), f(1), f(2), f(3))
}

/// Dots of `R` weight rows with `T` activation rows (`R * T <= 4`) over `nb` blocks; lane `r * T + t` of the result
/// is row `r` times token `t`. Block index outermost: each weight block is loaded and unpacked once for the `T`
/// tokens and each activation block once for the `R` rows (after inlining, repeats are common subexpressions).
/// The integer sums of the up to four pairs are reduced together ([`hsum4_i32`]) and combined lane-wise with the
/// block scales exactly as the reference does for one pair, so every lane equals the reference's `vec_dot`.
/// `w[r]`: `nb * K::WB` bytes; `a[t]`: `nb * K::AB` bytes.
#[inline(always)]
pub(super) fn tile<K: BlockDot, const R: usize, const T: usize>(nb: usize, w: [&[u8]; R], a: [&[u8]; T]) -> v128 {
    const { assert!(R * T <= 4 && R > 0 && T > 0) };
    let w = w.map(|w| &w[..nb * K::WB]);
    let a = a.map(|a| &a[..nb * K::AB]);
    let mut acc = f32x4_splat(0.0);
    for b in 0..nb {
        let wb: [&[u8]; R] = core::array::from_fn(|r| &w[r][b * K::WB..(b + 1) * K::WB]);
        let ab: [&[u8]; T] = core::array::from_fn(|t| &a[t][b * K::AB..(b + 1) * K::AB]);
        let mut p = [i32x4_splat(0); 4];
        let mut q = [i32x4_splat(0); 4];
        for r in 0..R {
            for t in 0..T {
                (p[r * T + t], q[r * T + t]) = K::isums(wb[r], ab[t]);
            }
        }
        let isum = f32x4_convert_i32x4(hsum4_i32(p));
        // Lane l = r * T + t: weight scales step with r (every T lanes), activation scales with t.
        let dw = gather_f16::<R, R, T, true>(&wb, K::W_D);
        let da = if K::A_D_F32 {
            gather_f32::<T, R, T, false>(&ab, K::A_D)
        } else {
            gather_f16::<T, R, T, false>(&ab, K::A_D)
        };
        let dd = f32x4_mul(dw, da);
        let c = match K::COMBINE {
            Combine::Sym => f32x4_mul(dd, isum),
            Combine::Min => {
                let mw = gather_f16::<R, R, T, true>(&wb, K::W_M);
                let sa = gather_f16::<T, R, T, false>(&ab, K::A_S);
                f32x4_add(f32x4_mul(dd, isum), f32x4_mul(mw, sa))
            }
            Combine::KMin => {
                let imin = f32x4_convert_i32x4(hsum4_i32(q));
                let dmin = f32x4_mul(gather_f16::<R, R, T, true>(&wb, K::W_M), da);
                f32x4_sub(f32x4_mul(dd, isum), f32x4_mul(dmin, imin))
            }
        };
        acc = f32x4_add(acc, c);
    }
    acc
}

/// `Σ w·a` of one row: `w` is `nb * K::WB` bytes, `a` `nb * K::AB` bytes.
#[inline(always)]
pub(super) fn vec_dot<K: BlockDot>(nb: usize, w: &[u8], a: &[u8]) -> f32 {
    f32x4_extract_lane::<0>(tile::<K, 1, 1>(nb, [w], [a]))
}

/// `out[r] = Σ w_r·a` for `out.len()` consecutive weight rows of `nb` blocks, four rows per tile (the activation
/// block is loaded once per four rows).
pub(super) fn matvec<K: BlockDot>(nb: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let rb = nb * K::WB;
    assert!(w.len() >= rb * out.len(), "matvec: weights too short");
    let mut chunks = out.chunks_exact_mut(4);
    let mut r0 = 0;
    for o in &mut chunks {
        let rows: [&[u8]; 4] = core::array::from_fn(|i| &w[(r0 + i) * rb..(r0 + i + 1) * rb]);
        store_f32(o, 0, tile::<K, 4, 1>(nb, rows, [a]));
        r0 += 4;
    }
    for o in chunks.into_remainder() {
        *o = vec_dot::<K>(nb, &w[r0 * rb..(r0 + 1) * rb], a);
        r0 += 1;
    }
}

/// Weight rows handled together in [`matmul`]: their blocks stay in L1 while every token passes over them.
const MATMUL_ROWS: usize = 16;

/// `out[t * n_rows + r] = Σ w_r·a_t` (token-major) for `n_tok` activation rows, four tokens per tile, so each weight
/// block is streamed from memory once per batch and unpacked once per four tokens.
pub(super) fn matmul<K: BlockDot>(nb: usize, w: &[u8], a: &[u8], n_tok: usize, out: &mut [f32]) {
    if n_tok == 0 {
        return;
    }
    let rb = nb * K::WB;
    let ab = nb * K::AB;
    let n_rows = out.len() / n_tok;
    assert!(w.len() >= rb * n_rows && a.len() >= ab * n_tok, "matmul: inputs too short");
    for r_start in (0..n_rows).step_by(MATMUL_ROWS) {
        let r_end = (r_start + MATMUL_ROWS).min(n_rows);
        let mut t0 = 0;
        while t0 + 4 <= n_tok {
            let toks: [&[u8]; 4] = core::array::from_fn(|i| &a[(t0 + i) * ab..(t0 + i + 1) * ab]);
            for r in r_start..r_end {
                let v = tile::<K, 1, 4>(nb, [&w[r * rb..(r + 1) * rb]], toks);
                out[t0 * n_rows + r] = f32x4_extract_lane::<0>(v);
                out[(t0 + 1) * n_rows + r] = f32x4_extract_lane::<1>(v);
                out[(t0 + 2) * n_rows + r] = f32x4_extract_lane::<2>(v);
                out[(t0 + 3) * n_rows + r] = f32x4_extract_lane::<3>(v);
            }
            t0 += 4;
        }
        for t in t0..n_tok {
            let at = &a[t * ab..(t + 1) * ab];
            for r in r_start..r_end {
                out[t * n_rows + r] = vec_dot::<K>(nb, &w[r * rb..(r + 1) * rb], at);
            }
        }
    }
}
