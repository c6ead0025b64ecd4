//! The 32-element formats: Q4_0, Q5_0, Q8_0 against Q8_0 activations and Q4_1, Q5_1 against Q8_1 activations.
//! Block layouts from ggml's `ggml-common.h` (see `crate::blocks`): nibble formats keep element `j` (0..16) in the
//! low nibble of `qs[j]` and element `j + 16` in its high nibble; Q5 formats add bit `j` of the u32 `qh` as bit 4.
//!
//! Per block the integer dot `Σ code·q8` is exact (i32x4 partial sums), then scaled once by `d_w · d_a` in f32, as
//! ggml does; Q4_1/Q5_1 add their minimum through the activation's precomputed `s = d_a · Σq8` (`m_w · s_a`).

use super::common::*;
use core::arch::wasm32::*;

/// Activation block offsets (ggml `block_q8_0`: d f16, qs[32]; `block_q8_1`: d f16, s f16, qs[32]).
const Q8_0_QS: usize = 2;
const Q8_1_S: usize = 2;
const Q8_1_QS: usize = 4;

/// The 32 codes of a nibble block: (elements 0..16, elements 16..32), each 0..=15.
#[inline(always)]
fn nibbles(w: &[u8], off: usize) -> (v128, v128) {
    let q = load(w, off);
    let m = u8x16_splat(0x0f);
    (v128_and(q, m), move_bits(q, 4, 0, m))
}

/// Bit 4 of the 32 Q5 codes from the little-endian u32 `qh` (bit `j` belongs to element `j`), as 0 or 16 per byte:
/// (elements 0..16, elements 16..32).
#[inline(always)]
fn q5_high(qh: u32) -> (v128, v128) {
    let v = u32x4_splat(qh);
    // Byte k of the result holds qh byte k / 8 (first vector) or 2 + k / 8 (second) ...
    let b0 = i8x16_shuffle::<0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1>(v, v);
    let b1 = i8x16_shuffle::<2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3>(v, v);
    // ... and is tested against bit k % 8.
    let bit = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    let h0 = v128_and(i8x16_eq(v128_and(b0, bit), bit), u8x16_splat(16));
    let h1 = v128_and(i8x16_eq(v128_and(b1, bit), bit), u8x16_splat(16));
    (h0, h1)
}

/// `Σ u[i] · y[i]` over 32 elements, unsigned codes `u` < 128.
#[inline(always)]
fn unsigned_dot(u0: v128, u1: v128, y0: v128, y1: v128) -> v128 {
    dot_u7(u0, y0, dot_u7(u1, y1, i32x4_splat(0)))
}

const ZERO: v128 = i32x4(0, 0, 0, 0);

/// Q4_0 × Q8_0. Weight block (18 bytes): d f16, qs[16]; value = (nibble - 8) · d.
pub(super) struct Q4_0;
impl BlockDot for Q4_0 {
    const WB: usize = 18;
    const AB: usize = 34;
    const COMBINE: Combine = Combine::Sym;
    const W_D: usize = 0;
    const W_M: usize = 0;
    const A_D: usize = 0;
    const OFFSET: i32 = 8;
    const A_QS: usize = Q8_0_QS;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let (u0, u1) = nibbles(w, 2);
        (unsigned_dot(u0, u1, load(a, Q8_0_QS), load(a, Q8_0_QS + 16)), ZERO)
    }
}

/// Q4_1 × Q8_1. Weight block (20 bytes): d f16, m f16, qs[16]; value = nibble · d + m.
pub(super) struct Q4_1;
impl BlockDot for Q4_1 {
    const WB: usize = 20;
    const AB: usize = 36;
    const COMBINE: Combine = Combine::Min;
    const W_D: usize = 0;
    const W_M: usize = 2;
    const A_D: usize = 0;
    const A_S: usize = Q8_1_S;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let (u0, u1) = nibbles(w, 4);
        (unsigned_dot(u0, u1, load(a, Q8_1_QS), load(a, Q8_1_QS + 16)), ZERO)
    }
}

/// Q5_0 × Q8_0. Weight block (22 bytes): d f16, qh u32, qs[16]; value = (code - 16) · d.
pub(super) struct Q5_0;
impl BlockDot for Q5_0 {
    const WB: usize = 22;
    const AB: usize = 34;
    const COMBINE: Combine = Combine::Sym;
    const W_D: usize = 0;
    const W_M: usize = 0;
    const A_D: usize = 0;
    const OFFSET: i32 = 16;
    const A_QS: usize = Q8_0_QS;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let (l0, l1) = nibbles(w, 6);
        let (h0, h1) = q5_high(u32_at(w, 2));
        let y0 = load(a, Q8_0_QS);
        let y1 = load(a, Q8_0_QS + 16);
        (unsigned_dot(v128_or(l0, h0), v128_or(l1, h1), y0, y1), ZERO)
    }
}

/// Q5_1 × Q8_1. Weight block (24 bytes): d f16, m f16, qh u32, qs[16]; value = code · d + m.
pub(super) struct Q5_1;
impl BlockDot for Q5_1 {
    const WB: usize = 24;
    const AB: usize = 36;
    const COMBINE: Combine = Combine::Min;
    const W_D: usize = 0;
    const W_M: usize = 2;
    const A_D: usize = 0;
    const A_S: usize = Q8_1_S;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let (l0, l1) = nibbles(w, 8);
        let (h0, h1) = q5_high(u32_at(w, 4));
        let y0 = load(a, Q8_1_QS);
        let y1 = load(a, Q8_1_QS + 16);
        (unsigned_dot(v128_or(l0, h0), v128_or(l1, h1), y0, y1), ZERO)
    }
}

/// Q8_0 × Q8_0. Weight block (34 bytes): d f16, qs[32] i8; value = q · d. Both sides are full i8 (neither fits the
/// i7 operand of the relaxed dot), so both builds use the exact widening dot.
pub(super) struct Q8_0;
impl BlockDot for Q8_0 {
    const WB: usize = 34;
    const AB: usize = 34;
    const COMBINE: Combine = Combine::Sym;
    const W_D: usize = 0;
    const W_M: usize = 0;
    const A_D: usize = 0;
    #[inline(always)]
    fn isums(w: &[u8], a: &[u8]) -> (v128, v128) {
        let lo = dot_i8(load(w, 2), load(a, Q8_0_QS), ZERO);
        (dot_i8(load(w, 18), load(a, Q8_0_QS + 16), lo), ZERO)
    }
}
