//! The K formats (256-element super-blocks) against Q8_K activations. Layouts from ggml's `ggml-common.h` (see
//! `crate::blocks` for each field and the element order of the packed codes).
//!
//! Every kernel computes the reference's integers exactly: `isum = Σ_g scale_g · Σ code·q8` over the groups of a
//! super-block and, for formats with mins, `imin = Σ_g min_g · bsum_g`. Codes are dotted as unsigned numbers
//! (0..=63, the 7-bit operand of the relaxed dot); the signed formats' offset (Q3_K: 4, Q6_K: 32) is removed
//! through the activation's group sums: `Σ (u - o)·q8 = Σ u·q8 - o · bsum`, exact because Q8_K's `bsums` are the
//! sums of its codes (as `quantize_row_q8_k` writes them, and as the reference's min terms assume too).

use super::common::*;
use core::arch::wasm32::*;

/// Q8_K block (292 bytes): d f32 at 0, qs[256] i8 at 4, bsums[16] i16 at 260.
const A_QS: usize = 4;
const A_BSUMS: usize = 260;
const ZERO: v128 = i32x4(0, 0, 0, 0);

/// `for $i in 0..$n` written out, so shift counts and offsets are constants (LLVM keeps these loops rolled).
macro_rules! unroll {
    ($i:ident in 2 => $body:block) => {{
        { let $i: usize = 0; $body }
        { let $i: usize = 1; $body }
    }};
    ($i:ident in 4 => $body:block) => {{
        { let $i: usize = 0; $body }
        { let $i: usize = 1; $body }
        { let $i: usize = 2; $body }
        { let $i: usize = 3; $body }
    }};
}

/// `Σ_g s_g · bsum_g` as i32x4 partial sums, for 16 per-group i16 factors `s` (two i16x8: groups 0..8, 8..16).
#[inline(always)]
fn bsum_dot(a: &[u8], s0: v128, s1: v128) -> v128 {
    i32x4_add(i32x4_dot_i16x8(load(a, A_BSUMS), s0), i32x4_dot_i16x8(load(a, A_BSUMS + 16), s1))
}

/// `acc + scale · Σ u·y` over 16 lanes (one group of 16, or half a sub-block of 32 sharing `scale`).
#[inline(always)]
fn group(acc: v128, u: v128, y: v128, scale: i32) -> v128 {
    i32x4_add(acc, i32x4_mul(dot_u7(u, y, ZERO), i32x4_splat(scale)))
}

/// `acc + scale · (Σ u0·y0 + Σ u1·y1)`: a sub-block of 32 with one scale.
#[inline(always)]
fn group32(acc: v128, u0: v128, y0: v128, u1: v128, y1: v128, scale: i32) -> v128 {
    i32x4_add(acc, i32x4_mul(dot_u7(u0, y0, dot_u7(u1, y1, ZERO)), i32x4_splat(scale)))
}

/// The eight 6-bit scales and eight 6-bit mins of a Q4_K / Q5_K block (`k4_scale_min` of `crate::blocks`, four at a
/// time): bytes 0..8 and 8..16 of the result hold scales 0..8 and mins 0..8. `sc` = the 12 packed bytes.
#[inline(always)]
fn k4_scales_mins(sc: &[u8]) -> (u64, u64) {
    let (b0, b1, b2) = (u32_at(sc, 0), u32_at(sc, 4), u32_at(sc, 8));
    // j < 4: low 6 bits of bytes j (scale) and j + 4 (min).
    let s_lo = b0 & 0x3f3f_3f3f;
    let m_lo = b1 & 0x3f3f_3f3f;
    // j >= 4: low / high nibble of byte j + 4, with the top 2 bits of byte j - 4 (scale) or j (min) as bits 4..6.
    let s_hi = (b2 & 0x0f0f_0f0f) | (((b0 >> 6) & 0x0303_0303) << 4);
    let m_hi = ((b2 >> 4) & 0x0f0f_0f0f) | (((b1 >> 6) & 0x0303_0303) << 4);
    (s_lo as u64 | (s_hi as u64) << 32, m_lo as u64 | (m_hi as u64) << 32)
}

/// The min term of Q4_K / Q5_K: mins per sub-block of 32 (bytes of `mins`), each applying to two Q8_K groups.
#[inline(always)]
fn k4_imin(a: &[u8], mins: u64) -> v128 {
    let m = u16x8_extend_low_u8x16(u64x2(mins, 0)); // i16 lanes m0..m7
    let m0 = i8x16_shuffle::<0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7>(m, m);
    let m1 = i8x16_shuffle::<8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 15, 14, 15>(m, m);
    bsum_dot(a, m0, m1)
}

#[inline(always)]
fn byte(v: u64, i: usize) -> i32 {
    ((v >> (8 * i)) & 0xff) as i32
}

/// Q2_K (84 bytes): scales[16] (low nibble scale, high nibble min) at 0, qs[64] at 16, d at 80, dmin at 82.
/// Element `128h + 32s + l` has code `(qs[32h + l] >> 2s) & 3`, in group `8h + 2s + l / 16`.
pub(super) struct Q2K;
impl BlockDot for Q2K {
    const WB: usize = 84;
    const AB: usize = 292;
    const COMBINE: Combine = Combine::KMin;
    const W_D: usize = 80;
    const W_M: usize = 82;
    const A_D: usize = 0;
    const A_D_F32: bool = true;
    const PREFETCH: bool = false;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let three = u8x16_splat(3);
        let mut isum = ZERO;
        unroll!(h in 2 => {
            let q0 = load(w, 16 + 32 * h);
            let q1 = load(w, 16 + 32 * h + 16);
            unroll!(s in 4 => {
                let g = 8 * h + 2 * s;
                let y = A_QS + 128 * h + 32 * s;
                let u0 = move_bits(q0, 2 * s as u32, 0, three);
                let u1 = move_bits(q1, 2 * s as u32, 0, three);
                isum = group(isum, u0, load(a, y), (w[g] & 0x0f) as i32);
                isum = group(isum, u1, load(a, y + 16), (w[g + 1] & 0x0f) as i32);
            });
        });
        let mins = move_bits(load(w, 0), 4, 0, u8x16_splat(0x0f));
        let imin = bsum_dot(a, u16x8_extend_low_u8x16(mins), u16x8_extend_high_u8x16(mins));
        (isum, imin)
    }
}

/// Q3_K (110 bytes): hmask[32] at 0, qs[64] at 32, packed 6-bit scales[12] at 96, d at 108. Element
/// `128h + 32s + l`: low bits `(qs[32h + l] >> 2s) & 3`, high bit `(hmask[l] >> (4h + s)) & 1`; code = low + 4·high
/// - 4, group `8h + 2s + l / 16`, scale - 32.
pub(super) struct Q3K;
impl BlockDot for Q3K {
    const WB: usize = 110;
    const AB: usize = 292;
    const COMBINE: Combine = Combine::Sym;
    const W_D: usize = 108;
    const W_M: usize = 108;
    const A_D: usize = 0;
    const A_D_F32: bool = true;
    const PREFETCH: bool = false;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        // Scale i: low 4 bits from byte i % 8 (low nibble for i < 8, high nibble after), bits 4..6 from byte
        // 8 + i % 4 at bit 2 * (i / 4); four scales per u32.
        let (l0, l1, hb) = (u32_at(w, 96), u32_at(w, 100), u32_at(w, 104));
        let s = [
            (l0 & 0x0f0f_0f0f) | ((hb & 0x0303_0303) << 4),
            (l1 & 0x0f0f_0f0f) | (((hb >> 2) & 0x0303_0303) << 4),
            ((l0 >> 4) & 0x0f0f_0f0f) | (((hb >> 4) & 0x0303_0303) << 4),
            ((l1 >> 4) & 0x0f0f_0f0f) | (((hb >> 6) & 0x0303_0303) << 4),
        ];
        let sc = |g: usize| ((s[g / 4] >> (8 * (g % 4))) & 0xff) as i32 - 32;
        let three = u8x16_splat(3);
        let four = u8x16_splat(4);
        let hm0 = load(w, 0);
        let hm1 = load(w, 16);
        let mut isum = ZERO;
        unroll!(h in 2 => {
            let q0 = load(w, 32 + 32 * h);
            let q1 = load(w, 32 + 32 * h + 16);
            unroll!(j in 4 => {
                let g = 8 * h + 2 * j;
                let y = A_QS + 128 * h + 32 * j;
                let sh = (4 * h + j) as u32;
                // low bits 2j, 2j+1 -> 0, 1; high bit sh -> 2
                let u0 = v128_or(move_bits(q0, 2 * j as u32, 0, three), move_bits(hm0, sh, 2, four));
                let u1 = v128_or(move_bits(q1, 2 * j as u32, 0, three), move_bits(hm1, sh, 2, four));
                isum = group(isum, u0, load(a, y), sc(g));
                isum = group(isum, u1, load(a, y + 16), sc(g + 1));
            });
        });
        // Offset 4: isum -= 4 · Σ_g scale_g · bsum_g.
        let sv = i8x16_sub(u32x4(s[0], s[1], s[2], s[3]), i8x16_splat(32));
        let off = bsum_dot(a, i16x8_extend_low_i8x16(sv), i16x8_extend_high_i8x16(sv));
        (i32x4_sub(isum, i32x4_shl(off, 2)), ZERO)
    }
}

/// Q4_K (144 bytes): d at 0, dmin at 2, packed scales/mins[12] at 4, qs[128] at 16. Element `64j + l` is the low
/// nibble of `qs[32j + l]` (sub-block 2j), element `64j + 32 + l` its high nibble (sub-block 2j + 1).
pub(super) struct Q4K;
impl BlockDot for Q4K {
    const WB: usize = 144;
    const AB: usize = 292;
    const COMBINE: Combine = Combine::KMin;
    const W_D: usize = 0;
    const W_M: usize = 2;
    const A_D: usize = 0;
    const A_D_F32: bool = true;
    const PREFETCH: bool = false;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let (sc, mins) = k4_scales_mins(&w[4..16]);
        let mask = u8x16_splat(0x0f);
        let mut isum = ZERO;
        unroll!(j in 4 => {
            let q0 = load(w, 16 + 32 * j);
            let q1 = load(w, 16 + 32 * j + 16);
            let y = A_QS + 64 * j;
            let (lo0, lo1) = (v128_and(q0, mask), v128_and(q1, mask));
            let (hi0, hi1) = (move_bits(q0, 4, 0, mask), move_bits(q1, 4, 0, mask));
            isum = group32(isum, lo0, load(a, y), lo1, load(a, y + 16), byte(sc, 2 * j));
            isum = group32(isum, hi0, load(a, y + 32), hi1, load(a, y + 48), byte(sc, 2 * j + 1));
        });
        (isum, k4_imin(a, mins))
    }
}

/// Q5_K (176 bytes): d at 0, dmin at 2, scales/mins[12] at 4, qh[32] at 16, qs[128] at 48. As Q4_K, plus bit 4:
/// element `64j + l` takes bit 2j of `qh[l]`, element `64j + 32 + l` bit 2j + 1.
pub(super) struct Q5K;
impl BlockDot for Q5K {
    const WB: usize = 176;
    const AB: usize = 292;
    const COMBINE: Combine = Combine::KMin;
    const W_D: usize = 0;
    const W_M: usize = 2;
    const A_D: usize = 0;
    const A_D_F32: bool = true;
    const PREFETCH: bool = false;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let (sc, mins) = k4_scales_mins(&w[4..16]);
        let mask = u8x16_splat(0x0f);
        let b4 = u8x16_splat(0x10);
        let (qh0, qh1) = (load(w, 16), load(w, 32));
        let mut isum = ZERO;
        unroll!(j in 4 => {
            let q0 = load(w, 48 + 32 * j);
            let q1 = load(w, 48 + 32 * j + 16);
            let y = A_QS + 64 * j;
            // bit 2j of qh -> bit 4 of the low-nibble codes, bit 2j + 1 -> bit 4 of the high-nibble codes.
            let (b_lo, b_hi) = (2 * j as u32, 2 * j as u32 + 1);
            let lo0 = v128_or(v128_and(q0, mask), move_bits(qh0, b_lo, 4, b4));
            let lo1 = v128_or(v128_and(q1, mask), move_bits(qh1, b_lo, 4, b4));
            let hi0 = v128_or(move_bits(q0, 4, 0, mask), move_bits(qh0, b_hi, 4, b4));
            let hi1 = v128_or(move_bits(q1, 4, 0, mask), move_bits(qh1, b_hi, 4, b4));
            isum = group32(isum, lo0, load(a, y), lo1, load(a, y + 16), byte(sc, 2 * j));
            isum = group32(isum, hi0, load(a, y + 32), hi1, load(a, y + 48), byte(sc, 2 * j + 1));
        });
        (isum, k4_imin(a, mins))
    }
}

/// Q6_K (210 bytes): ql[128] at 0, qh[64] at 128, scales[16] i8 at 192, d at 208. Element `128h + 32k + l`: low 4
/// bits from `ql[64h + l + 32(k & 1)]` (low nibble for k < 2, high nibble after), high 2 bits
/// `(qh[32h + l] >> 2k) & 3`; code = that 6-bit number - 32, group `8h + 2k + l / 16`.
pub(super) struct Q6K;
impl BlockDot for Q6K {
    const WB: usize = 210;
    const AB: usize = 292;
    const COMBINE: Combine = Combine::Sym;
    const W_D: usize = 208;
    const W_M: usize = 208;
    const A_D: usize = 0;
    const A_D_F32: bool = true;
    const PREFETCH: bool = false;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let mask = u8x16_splat(0x0f);
        let top = u8x16_splat(0x30);
        let sc = |g: usize| w[192 + g] as i8 as i32;
        let mut isum = ZERO;
        unroll!(h in 2 => {
            let l = [load(w, 64 * h), load(w, 64 * h + 16), load(w, 64 * h + 32), load(w, 64 * h + 48)];
            let qh = [load(w, 128 + 32 * h), load(w, 128 + 32 * h + 16)];
            unroll!(k in 4 => {
                let g = 8 * h + 2 * k;
                let y = A_QS + 128 * h + 32 * k;
                let u: [v128; 2] = core::array::from_fn(|half| {
                    let lb = l[2 * (k & 1) + half];
                    let low = if k < 2 { v128_and(lb, mask) } else { move_bits(lb, 4, 0, mask) };
                    // bits 2k, 2k+1 of qh -> bits 4, 5
                    v128_or(low, move_bits(qh[half], 2 * k as u32, 4, top))
                });
                isum = group(isum, u[0], load(a, y), sc(g));
                isum = group(isum, u[1], load(a, y + 16), sc(g + 1));
            });
        });
        // Offset 32: isum -= 32 · Σ_g scale_g · bsum_g.
        let sv = load(w, 192);
        let off = bsum_dot(a, i16x8_extend_low_i8x16(sv), i16x8_extend_high_i8x16(sv));
        (i32x4_sub(isum, i32x4_shl(off, 5)), ZERO)
    }
}
