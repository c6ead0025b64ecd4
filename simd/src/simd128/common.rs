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

// Scalar field reads (block scales, mins) with the same readers as the reference kernels.
pub(super) use crate::bytes::{bf16_at, f16_at, f32_at, u32_at};

/// 2^112 = 2^(127 - 15): the bias difference between binary32 and binary16 exponents.
const TWO_POW_112: f32 = f32::from_bits((112 + 127) << 23);

/// Four halves held in the high 16 bits of each u32 lane (the low 16 bits are ignored) -> f32x4, exact (the
/// lane-wise [`crate::bytes::f16_to_f32`]). An arithmetic shift right by 3 puts the half's exponent and mantissa at
/// bits 13..28 of an f32 and keeps the sign at bit 31; masking clears the copies of the sign and the low half.
/// Exponent 31 (inf/NaN) is recognized after scaling by |x| >= 2^16 (the largest finite half is 65504) and gets all
/// exponent bits.
#[inline(always)]
pub(super) fn f16hi_to_f32x4(x: v128) -> v128 {
    let v = v128_and(i32x4_shr(x, 3), u32x4_splat(0x8fff_e000));
    let f = f32x4_mul(v, f32x4_splat(TWO_POW_112));
    let infnan = f32x4_ge(f32x4_abs(f), f32x4_splat(65536.0));
    v128_or(f, v128_and(infnan, u32x4_splat(0x7f80_0000)))
}

/// Four halves held in the low 16 bits of each u32 lane -> f32x4, exact.
#[inline(always)]
pub(super) fn f16x4_to_f32x4(h: v128) -> v128 {
    f16hi_to_f32x4(i32x4_shl(h, 16))
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

/// `acc + a * b` on f32x4, multiply then add (two roundings) in both builds. `f32x4.relaxed_madd` is deliberately
/// not used: the relaxed-SIMD spec lets it fuse or not depending on the CPU, so float dots (attention, F32/F16/BF16
/// weights) would differ from the scalar reference and between machines, and greedy text would drift from the
/// native CLI's at near-ties. Measured cost of giving it up: none visible end to end (the quantized kernels carry
/// the time; see bench/README.md).
#[inline(always)]
pub(super) fn madd_f32(a: v128, b: v128, acc: v128) -> v128 {
    f32x4_add(acc, f32x4_mul(a, b))
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
        // As i16 lanes: the even bytes (codes masked, activations sign-extended from the low byte) and the odd bytes
        // (shifted down). Cheaper than widening low and high halves, and the sum is the same.
        let ue = v128_and(u, u16x8_splat(0x00ff));
        let uo = u16x8_shr(u, 8);
        let ye = i16x8_shr(i16x8_shl(y, 8), 8);
        let yo = i16x8_shr(y, 8);
        i32x4_add(acc, i32x4_add(i32x4_dot_i16x8(ue, ye), i32x4_dot_i16x8(uo, yo)))
    }
}

/// Moves bit `from` of every byte to bit `to` and keeps only the bits in `mask`. The shift runs on 16-bit lanes
/// (one instruction; 8-bit shifts have no x86 equivalent and cost a shift plus a mask), which is exact as long as
/// `mask` keeps only bits that come from the same byte: bits `0..=7 - (from - to)` when shifting right, bits
/// `to - from..=7` when shifting left.
#[inline(always)]
pub(super) fn move_bits(v: v128, from: u32, to: u32, mask: v128) -> v128 {
    if from >= to {
        v128_and(u16x8_shr(v, from - to), mask)
    } else {
        v128_and(u16x8_shl(v, to - from), mask)
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
    /// Offset of the weight codes as `isums` dots them (Q4_0: 8, Q5_0: 16, else 0): the block's integer dot is
    /// `isum - OFFSET * Σq8`, with `Σq8` (Q8_0 codes at `A_QS`, 32 of them) computed once per activation block.
    const OFFSET: i32 = 0;
    const A_QS: usize = 0;
    /// Whether [`matvec`] prefetches large matrices of this format (measured: 4x on a 30 MB Q8_0 matrix, none for
    /// Q4_1, slower for the K formats, whose super-blocks already give the hardware long sequential runs).
    const PREFETCH: bool = true;
    /// The exact integer sums of one weight block `w` (`WB` bytes) with one activation block `a` (`AB` bytes), as
    /// i32x4 partial sums: the code dot product (group scales applied for K formats) and, for `KMin`, the min term
    /// `Σ m_g * bsum_g` (zero otherwise).
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128);
}

/// Lane `l` of an `R x T` tile holds pair (row `l / T`, token `l % T`); lanes past `R * T` repeat lane 0.
#[inline(always)]
const fn lane_pair(l: usize, r: usize, t: usize) -> (usize, usize) {
    let l = if l < r * t { l } else { 0 };
    (l / t, l % t)
}

/// The weight scale fields of one block for the four lanes of an `R x T` tile, as raw u32: lane `l` holds the 4
/// bytes at `off` of `w[row of l]` (`FOUR`), or the 2 bytes at `off` in its high half (low half zero). Lane loads;
/// a splat load when there is one row.
#[inline(always)]
fn gather_w<const R: usize, const T: usize, const FOUR: bool>(w: &[&[u8]; R], off: usize) -> v128 {
    let field = |l: usize| w[lane_pair(l, R, T).0][off..off + if FOUR { 4 } else { 2 }].as_ptr();
    // SAFETY: every pointer comes from a bounds-checked subslice of the loaded width; wasm lane and splat loads are
    // 1-aligned, so any address is fine.
    unsafe {
        if FOUR {
            let p = |l: usize| field(l) as *const u32;
            if R == 1 {
                return v128_load32_splat(p(0));
            }
            let v = v128_load32_zero(p(0));
            let v = v128_load32_lane::<1>(v, p(1));
            let v = v128_load32_lane::<2>(v, p(2));
            v128_load32_lane::<3>(v, p(3))
        } else {
            let p = |l: usize| field(l) as *const u16;
            if R == 1 {
                return v128_load16_splat(p(0));
            }
            // u16 lanes 1, 3, 5, 7 are the high halves of the u32 lanes.
            let v = v128_load16_lane::<1>(u16x8_splat(0), p(0));
            let v = v128_load16_lane::<3>(v, p(1));
            let v = v128_load16_lane::<5>(v, p(2));
            v128_load16_lane::<7>(v, p(3))
        }
    }
}

/// An activation block's scales laid out for the lanes of a tile: `d` (Q8_0/Q8_1 f16 or Q8_K f32, widened) and
/// Q8_1's `s`, lane `l` from the token of lane `l`. Computed once per activation block per call instead of once per
/// weight row.
#[derive(Clone, Copy)]
pub(super) struct AScale {
    d: v128,
    s: v128,
    /// `OFFSET * Σq8` per lane (i32), for offset-coded weights.
    off: v128,
}

/// Activation blocks whose scales are prepared at a time (stack buffer of `2 * 16 * SCALE_CHUNK` bytes); longer rows
/// are processed in column chunks, carrying each lane's running sum across chunks.
const SCALE_CHUNK: usize = 256;

/// `out[i]` = the scales of activation block `b0 + i` for an `R x T` tile over tokens `a`.
#[inline(always)]
fn activation_scales<K: BlockDot, const R: usize, const T: usize>(a: &[&[u8]; T], b0: usize, out: &mut [AScale]) {
    for (i, o) in out.iter_mut().enumerate() {
        let blk = |t: usize| &a[t][(b0 + i) * K::AB..(b0 + i + 1) * K::AB];
        let d = |l: usize| {
            let b = blk(lane_pair(l, R, T).1);
            if K::A_D_F32 {
                f32_at(b, K::A_D)
            } else {
                f16_at(b, K::A_D)
            }
        };
        let s = |l: usize| if matches!(K::COMBINE, Combine::Min) { f16_at(blk(lane_pair(l, R, T).1), K::A_S) } else { 0.0 };
        let off = |l: usize| {
            if K::OFFSET == 0 {
                return 0;
            }
            let b = blk(lane_pair(l, R, T).1);
            K::OFFSET * hsum_i32(i32x4_add(sum_i8(load(b, K::A_QS)), sum_i8(load(b, K::A_QS + 16))))
        };
        *o = AScale {
            d: f32x4(d(0), d(1), d(2), d(3)),
            s: f32x4(s(0), s(1), s(2), s(3)),
            off: i32x4(off(0), off(1), off(2), off(3)),
        };
    }
}

/// Dots of `R` weight rows with `T` activation rows (`R * T <= 4`) over blocks `b0..b0 + sc.len()`, continuing the
/// running sums `acc`; lane `r * T + t` is row `r` times token `t`. Block index outermost: each weight block is
/// loaded and unpacked once for the `T` tokens and each activation block once for the `R` rows (after inlining the
/// repeats are common subexpressions). The integer sums of the up to four pairs are reduced together
/// ([`hsum4_i32`]) and combined lane-wise with the block scales exactly as the reference does for one pair, so every
/// lane equals the reference's `vec_dot`. `w[r]`, `a[t]`: whole rows; `sc`: [`activation_scales`] of those blocks.
#[inline(always)]
fn tile<K: BlockDot, const R: usize, const T: usize, const PF: bool>(
    mut acc: v128,
    b0: usize,
    w: [&[u8]; R],
    a: [&[u8]; T],
    sc: &[AScale],
    pf: &[u8],
) -> v128 {
    const { assert!(R * T <= 4 && R > 0 && T > 0) };
    let b1 = b0 + sc.len();
    let w = w.map(|w| &w[b0 * K::WB..b1 * K::WB]);
    let a = a.map(|a| &a[b0 * K::AB..b1 * K::AB]);
    for (b, sc) in sc.iter().enumerate() {
        // Prefetch: one read per 64-byte line of the next `R` rows' share of this block (see [`matvec`]).
        let mut p = b * R * K::WB;
        while PF && p < ((b + 1) * R * K::WB).min(pf.len()) {
            // SAFETY: `p < pf.len()`; a volatile read so the otherwise unused load is kept.
            unsafe { core::ptr::read_volatile(pf.as_ptr().add(p)) };
            p += 64;
        }
        let wb: [&[u8]; R] = core::array::from_fn(|r| &w[r][b * K::WB..(b + 1) * K::WB]);
        let ab: [&[u8]; T] = core::array::from_fn(|t| &a[t][b * K::AB..(b + 1) * K::AB]);
        // The four lanes written out (not a loop): LLVM does not always unroll a loop over `isums`, and then keeps
        // the sums in memory and reloads the shared block for every pair.
        let pair = |l: usize| {
            if l < R * T {
                let (r, t) = lane_pair(l, R, T);
                K::isums(wb[r], ab[t])
            } else {
                (i32x4_splat(0), i32x4_splat(0))
            }
        };
        let (p0, q0) = pair(0);
        let (p1, q1) = pair(1);
        let (p2, q2) = pair(2);
        let (p3, q3) = pair(3);
        let isum = hsum4_i32([p0, p1, p2, p3]);
        let isum = f32x4_convert_i32x4(if K::OFFSET != 0 { i32x4_sub(isum, sc.off) } else { isum });
        let c = match K::COMBINE {
            Combine::Sym => {
                let dw = f16hi_to_f32x4(gather_w::<R, T, false>(&wb, K::W_D));
                f32x4_mul(f32x4_mul(dw, sc.d), isum)
            }
            Combine::Min => {
                // The min is right after d (`W_M == W_D + 2`): one 4-byte load per block gives both halves.
                let dm = gather_w::<R, T, true>(&wb, K::W_D);
                let (dw, mw) = (f16x4_to_f32x4(dm), f16hi_to_f32x4(dm));
                f32x4_add(f32x4_mul(f32x4_mul(dw, sc.d), isum), f32x4_mul(mw, sc.s))
            }
            Combine::KMin => {
                let dm = gather_w::<R, T, true>(&wb, K::W_D);
                let (dw, mw) = (f16x4_to_f32x4(dm), f16hi_to_f32x4(dm));
                let imin = f32x4_convert_i32x4(hsum4_i32([q0, q1, q2, q3]));
                f32x4_sub(f32x4_mul(f32x4_mul(dw, sc.d), isum), f32x4_mul(f32x4_mul(mw, sc.d), imin))
            }
        };
        acc = f32x4_add(acc, c);
    }
    acc
}

/// Checks the layout assumptions [`tile`] relies on (constant-folded).
#[inline(always)]
fn check_layout<K: BlockDot>() {
    if !matches!(K::COMBINE, Combine::Sym) {
        assert!(K::W_M == K::W_D + 2 && K::W_D + 4 <= K::WB, "{}: the min must follow d", core::any::type_name::<K>());
    }
    if matches!(K::COMBINE, Combine::Min) {
        assert!(K::A_S == K::A_D + 2, "{}: s must follow d", core::any::type_name::<K>());
    }
}

/// `Σ w·a` of one row: `w` is `nb * K::WB` bytes, `a` `nb * K::AB` bytes.
pub(super) fn vec_dot<K: BlockDot>(nb: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut out = [0.0f32];
    matvec::<K>(nb, w, a, &mut out);
    out[0]
}

/// `out[r] = Σ w_r·a` for `out.len()` consecutive weight rows of `nb` blocks, four rows per tile: the activation
/// block (and its scales) is loaded once per four rows. Matrices larger than the caches are limited by how many
/// cache misses are in flight; wasm has no prefetch instruction, but a load whose value is unused still starts its
/// miss at once without holding up the computation, so for large matrices each tile reads one byte per 64-byte line
/// of the next four rows, spread over its blocks ([`BlockDot::PREFETCH`]).
pub(super) fn matvec<K: BlockDot>(nb: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    check_layout::<K>();
    let rb = nb * K::WB;
    assert!(w.len() >= rb * out.len() && a.len() >= nb * K::AB, "matvec: inputs too short");
    let mut sc = [AScale { d: f32x4_splat(0.0), s: f32x4_splat(0.0), off: i32x4_splat(0) }; SCALE_CHUNK];
    let prefetch = K::PREFETCH && w.len() >= PREFETCH_BYTES;
    let mut b0 = 0;
    while b0 < nb {
        let sc = &mut sc[..(nb - b0).min(SCALE_CHUNK)];
        activation_scales::<K, 4, 1>(&[a], b0, sc);
        let mut chunks = out.chunks_exact_mut(4);
        let mut r0 = 0;
        for o in &mut chunks {
            let rows: [&[u8]; 4] = core::array::from_fn(|i| &w[(r0 + i) * rb..(r0 + i + 1) * rb]);
            let acc = if b0 == 0 { f32x4_splat(0.0) } else { load_f32(o, 0) };
            // The next tile's bytes for this chunk of blocks (rows are contiguous: 4 * rb bytes from row r0 + 4).
            let next = if b0 == 0 { &w[((r0 + 4) * rb).min(w.len())..((r0 + 8) * rb).min(w.len())] } else { &[] };
            let v = if prefetch {
                tile::<K, 4, 1, true>(acc, b0, rows, [a], sc, next)
            } else {
                tile::<K, 4, 1, false>(acc, b0, rows, [a], sc, &[])
            };
            store_f32(o, 0, v);
            r0 += 4;
        }
        for o in chunks.into_remainder() {
            let acc = f32x4_splat(if b0 == 0 { 0.0 } else { *o });
            *o = f32x4_extract_lane::<0>(tile::<K, 1, 1, false>(acc, b0, [&w[r0 * rb..(r0 + 1) * rb]], [a], sc, &[]));
            r0 += 1;
        }
        b0 += sc.len();
    }
}

/// Matrices from this size on are prefetched in [`matvec`]. A model's matrices are read once per token and the
/// whole model is larger than the caches (SmolLM2 Q8_0: 145 MB against a 32 MiB L3), so even a layer's small
/// matrices come from DRAM: prefetching them measured SmolLM2 Q8_0 decode 31 -> 57 tok/s (Q4_1 unchanged within
/// noise) in Chromium. Only tiny matrices, which stay cached, skip the extra loads.
const PREFETCH_BYTES: usize = 64 << 10;

/// Weight rows handled together in [`matmul`]: their blocks stay in L1 while every token passes over them.
const MATMUL_ROWS: usize = 64;

/// `out[t * n_rows + r] = Σ w_r·a_t` (token-major) for `n_tok` activation rows, four tokens per tile over bands of
/// rows, so each weight block is streamed from memory once per batch and unpacked once per four tokens. The last
/// `n_tok % 4` tokens (and a single token: the decode step) go through [`matvec`], whose four-row tiles and
/// read-ahead are the fast path for one token; both are bit-exact with the reference, so the split changes no bits.
pub(super) fn matmul<K: BlockDot>(nb: usize, w: &[u8], a: &[u8], n_tok: usize, out: &mut [f32]) {
    check_layout::<K>();
    if n_tok == 0 || nb == 0 {
        return;
    }
    let (rb, ab) = (nb * K::WB, nb * K::AB);
    let n_rows = out.len() / n_tok;
    assert!(w.len() >= rb * n_rows && a.len() >= ab * n_tok, "matmul: inputs too short");
    let n4 = n_tok / 4 * 4;
    let mut sc = [AScale { d: f32x4_splat(0.0), s: f32x4_splat(0.0), off: i32x4_splat(0) }; SCALE_CHUNK];
    for r_start in (0..n_rows).step_by(MATMUL_ROWS) {
        let rows = r_start..(r_start + MATMUL_ROWS).min(n_rows);
        for t0 in (0..n4).step_by(4) {
            let toks: [&[u8]; 4] = core::array::from_fn(|i| &a[(t0 + i) * ab..(t0 + i + 1) * ab]);
            let mut b0 = 0;
            while b0 < nb {
                let sc = &mut sc[..(nb - b0).min(SCALE_CHUNK)];
                activation_scales::<K, 1, 4>(&toks, b0, sc);
                for r in rows.clone() {
                    let o = |i: usize| (t0 + i) * n_rows + r;
                    let acc =
                        if b0 == 0 { f32x4_splat(0.0) } else { f32x4(out[o(0)], out[o(1)], out[o(2)], out[o(3)]) };
                    let v = tile::<K, 1, 4, false>(acc, b0, [&w[r * rb..(r + 1) * rb]], toks, sc, &[]);
                    out[o(0)] = f32x4_extract_lane::<0>(v);
                    out[o(1)] = f32x4_extract_lane::<1>(v);
                    out[o(2)] = f32x4_extract_lane::<2>(v);
                    out[o(3)] = f32x4_extract_lane::<3>(v);
                }
                b0 += sc.len();
            }
        }
    }
    for t in n4..n_tok {
        matvec::<K>(nb, &w[..n_rows * rb], &a[t * ab..(t + 1) * ab], &mut out[t * n_rows..(t + 1) * n_rows]);
    }
}
