//! ggml quantization block layouts, as little-endian views over unaligned bytes.
//!
//! Source of the layouts: ggml's `ggml-common.h` (`block_q4_0` ... `block_q8_K`, `QK_K = 256`,
//! `K_SCALE_SIZE = 12`) and the matching `dequantize_row_*` functions of `ggml-quants.c` for the meaning of the bits
//! (facts only; the code here is our own). GGUF stores the blocks exactly as these C structs on a little-endian host:
//! fields packed without padding (`ggml_half` is 2 bytes, `block_q8_K.d` is a 4-byte f32 at offset 0 so that struct
//! has no padding either), multi-byte fields little-endian.
//!
//! A weight row of `n` elements is `n / block_size` consecutive blocks (`GgmlType::row_bytes`). The bytes usually come
//! straight from the model file in memory, so nothing here assumes alignment: every accessor reads with the
//! little-endian readers of [`crate::bytes`] and never reinterprets memory.
//!
//! Each `Block*` type wraps a `&[u8; SIZE]`; `new` panics when given a slice of another length (a caller bug: the
//! kernels only ever pass `chunks_exact(SIZE)` pieces). Field offsets are public consts so the quantizers (and SIMD
//! kernels) can write / load fields directly; each block's offsets are checked at compile time to add up to `SIZE`,
//! and `SIZE` is checked against [`crate::types`] in this module's tests.

/// Weights per block of the 32-element formats (ggml `QK4_0`, `QK4_1`, `QK5_0`, `QK5_1`, `QK8_0`, `QK8_1`).
pub const QK: usize = 32;
/// Weights per super-block of the K formats (ggml `QK_K`).
pub const QK_K: usize = 256;
/// Bytes of the packed 6-bit scales/mins of Q4_K and Q5_K, and of the packed 6-bit scales of Q3_K.
pub const K_SCALE_SIZE: usize = 12;

// The little-endian field readers and half / bfloat16 conversions live in crate::bytes; re-exported here so
// `blocks::*` gives a block kernel everything it reads fields with.
pub use crate::bytes::*;

#[inline(always)]
fn arr<const N: usize>(b: &[u8], off: usize) -> &[u8; N] {
    b[off..off + N].try_into().expect("field inside the block")
}

macro_rules! block_new {
    ($name:ident) => {
        impl<'a> $name<'a> {
            /// View over one block; panics unless `b.len() == Self::SIZE`.
            #[inline(always)]
            pub fn new(b: &'a [u8]) -> Self {
                match b.try_into() {
                    Ok(b) => Self(b),
                    Err(_) => panic!(
                        concat!(stringify!($name), ": {} bytes, expected {}"),
                        b.len(),
                        Self::SIZE
                    ),
                }
            }
            /// The raw bytes of the block.
            #[inline(always)]
            pub fn bytes(&self) -> &'a [u8] {
                self.0
            }
        }
    };
}

/// `block_q4_0`: 32 weights, 18 bytes. Weight `j` (0..16) is the low nibble of `qs[j]`, weight `j + 16` the high
/// nibble; value = `(nibble - 8) * d`.
#[derive(Clone, Copy)]
pub struct BlockQ4_0<'a>(&'a [u8; 18]);
block_new!(BlockQ4_0);
impl<'a> BlockQ4_0<'a> {
    pub const SIZE: usize = 18;
    /// `d: ggml_half` — the scale.
    pub const D: usize = 0;
    /// `qs: [u8; 16]` — 32 unsigned 4-bit codes (nibble order above).
    pub const QS: usize = 2;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 16] {
        arr(self.0, Self::QS)
    }
}
const _: () = assert!(BlockQ4_0::QS + 16 == BlockQ4_0::SIZE);

/// `block_q4_1`: 32 weights, 20 bytes. Nibble order as Q4_0; value = `nibble * d + m`.
#[derive(Clone, Copy)]
pub struct BlockQ4_1<'a>(&'a [u8; 20]);
block_new!(BlockQ4_1);
impl<'a> BlockQ4_1<'a> {
    pub const SIZE: usize = 20;
    /// `d: ggml_half` — the scale.
    pub const D: usize = 0;
    /// `m: ggml_half` — the minimum (added after scaling).
    pub const M: usize = 2;
    /// `qs: [u8; 16]` — 32 unsigned 4-bit codes.
    pub const QS: usize = 4;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    #[inline(always)]
    pub fn m(&self) -> f32 {
        f16_at(self.0, Self::M)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 16] {
        arr(self.0, Self::QS)
    }
}
const _: () = assert!(BlockQ4_1::QS + 16 == BlockQ4_1::SIZE);

/// `block_q5_0`: 32 weights, 22 bytes. Weight `j` has low 4 bits from the nibbles of `qs` (order as Q4_0) and its
/// 5th bit at bit `j` of the little-endian u32 `qh`; value = `(code - 16) * d`.
#[derive(Clone, Copy)]
pub struct BlockQ5_0<'a>(&'a [u8; 22]);
block_new!(BlockQ5_0);
impl<'a> BlockQ5_0<'a> {
    pub const SIZE: usize = 22;
    /// `d: ggml_half` — the scale.
    pub const D: usize = 0;
    /// `qh: [u8; 4]` — bit `j` of this little-endian u32 is bit 4 of weight `j`.
    pub const QH: usize = 2;
    /// `qs: [u8; 16]` — the low 4 bits of the 32 codes.
    pub const QS: usize = 6;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    #[inline(always)]
    pub fn qh(&self) -> u32 {
        u32_at(self.0, Self::QH)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 16] {
        arr(self.0, Self::QS)
    }
}
const _: () = assert!(BlockQ5_0::QS + 16 == BlockQ5_0::SIZE);

/// `block_q5_1`: 32 weights, 24 bytes. Codes as Q5_0; value = `code * d + m`.
#[derive(Clone, Copy)]
pub struct BlockQ5_1<'a>(&'a [u8; 24]);
block_new!(BlockQ5_1);
impl<'a> BlockQ5_1<'a> {
    pub const SIZE: usize = 24;
    /// `d: ggml_half` — the scale.
    pub const D: usize = 0;
    /// `m: ggml_half` — the minimum.
    pub const M: usize = 2;
    /// `qh: [u8; 4]` — bit `j` of this little-endian u32 is bit 4 of weight `j`.
    pub const QH: usize = 4;
    /// `qs: [u8; 16]` — the low 4 bits of the 32 codes.
    pub const QS: usize = 8;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    #[inline(always)]
    pub fn m(&self) -> f32 {
        f16_at(self.0, Self::M)
    }
    #[inline(always)]
    pub fn qh(&self) -> u32 {
        u32_at(self.0, Self::QH)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 16] {
        arr(self.0, Self::QS)
    }
}
const _: () = assert!(BlockQ5_1::QS + 16 == BlockQ5_1::SIZE);

/// `block_q8_0`: 32 values, 34 bytes; value `j` = `qs[j] * d`. Used for weights and as the activation type of
/// Q4_0 / Q5_0 / Q8_0 weights.
#[derive(Clone, Copy)]
pub struct BlockQ8_0<'a>(&'a [u8; 34]);
block_new!(BlockQ8_0);
impl<'a> BlockQ8_0<'a> {
    pub const SIZE: usize = 34;
    /// `d: ggml_half` — the scale.
    pub const D: usize = 0;
    /// `qs: [i8; 32]` — the codes, in order.
    pub const QS: usize = 2;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    /// The codes as raw bytes (reinterpret each as `i8`).
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 32] {
        arr(self.0, Self::QS)
    }
}
const _: () = assert!(BlockQ8_0::QS + 32 == BlockQ8_0::SIZE);

/// `block_q8_1`: 32 values, 36 bytes; value `j` = `qs[j] * d`. The activation type of Q4_1 / Q5_1 weights: `s`
/// lets their `+ m` term be applied once per block (`m * s` instead of `m * d * sum(qs)`).
#[derive(Clone, Copy)]
pub struct BlockQ8_1<'a>(&'a [u8; 36]);
block_new!(BlockQ8_1);
impl<'a> BlockQ8_1<'a> {
    pub const SIZE: usize = 36;
    /// `d: ggml_half` — the scale.
    pub const D: usize = 0;
    /// `s: ggml_half` — `d * sum(qs)`, computed in f32 from the unrounded d, then rounded to half.
    pub const S: usize = 2;
    /// `qs: [i8; 32]` — the codes, in order.
    pub const QS: usize = 4;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    #[inline(always)]
    pub fn s(&self) -> f32 {
        f16_at(self.0, Self::S)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 32] {
        arr(self.0, Self::QS)
    }
}
const _: () = assert!(BlockQ8_1::QS + 32 == BlockQ8_1::SIZE);

/// `block_q2_K`: 256 weights in 16 groups of 16, 84 bytes. Weight `e = 128*h + 32*s + l` (h < 2, s < 4, l < 32)
/// has the 2-bit code `(qs[32*h + l] >> 2*s) & 3` and group `e / 16`; value =
/// `d * (scales[g] & 15) * code - dmin * (scales[g] >> 4)`.
#[derive(Clone, Copy)]
pub struct BlockQ2K<'a>(&'a [u8; 84]);
block_new!(BlockQ2K);
impl<'a> BlockQ2K<'a> {
    pub const SIZE: usize = 84;
    /// `scales: [u8; 16]` — per group: low nibble = 4-bit scale, high nibble = 4-bit min.
    pub const SCALES: usize = 0;
    /// `qs: [u8; 64]` — 2-bit codes, four per byte (layout above).
    pub const QS: usize = 16;
    /// `d: ggml_half` — super-block scale of the scales.
    pub const D: usize = 80;
    /// `dmin: ggml_half` — super-block scale of the mins.
    pub const DMIN: usize = 82;
    #[inline(always)]
    pub fn scales(&self) -> &'a [u8; 16] {
        arr(self.0, Self::SCALES)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 64] {
        arr(self.0, Self::QS)
    }
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    #[inline(always)]
    pub fn dmin(&self) -> f32 {
        f16_at(self.0, Self::DMIN)
    }
}
const _: () = assert!(BlockQ2K::SCALES + 16 == BlockQ2K::QS && BlockQ2K::QS + 64 == BlockQ2K::D);
const _: () = assert!(BlockQ2K::DMIN + 2 == BlockQ2K::SIZE);

/// `block_q3_K`: 256 weights in 16 groups of 16, 110 bytes. Weight `e = 128*h + 32*s + l` has low bits
/// `(qs[32*h + l] >> 2*s) & 3`, high bit `(hmask[l] >> (4*h + s)) & 1`; code = `low - (high ? 0 : 4)` in -4..=3;
/// value = `d * (scale[e / 16] - 32) * code` with the 6-bit scales of [`q3k_scales`].
#[derive(Clone, Copy)]
pub struct BlockQ3K<'a>(&'a [u8; 110]);
block_new!(BlockQ3K);
impl<'a> BlockQ3K<'a> {
    pub const SIZE: usize = 110;
    /// `hmask: [u8; 32]` — the high bit of each code (set = no -4 offset).
    pub const HMASK: usize = 0;
    /// `qs: [u8; 64]` — low 2 bits of the codes, four per byte.
    pub const QS: usize = 32;
    /// `scales: [u8; 12]` — sixteen 6-bit scales, packed (see [`q3k_scales`]).
    pub const SCALES: usize = 96;
    /// `d: ggml_half` — super-block scale.
    pub const D: usize = 108;
    #[inline(always)]
    pub fn hmask(&self) -> &'a [u8; 32] {
        arr(self.0, Self::HMASK)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 64] {
        arr(self.0, Self::QS)
    }
    #[inline(always)]
    pub fn scales(&self) -> &'a [u8; 12] {
        arr(self.0, Self::SCALES)
    }
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
}
const _: () = assert!(BlockQ3K::QS + 64 == BlockQ3K::SCALES && BlockQ3K::SCALES + 12 == BlockQ3K::D);
const _: () = assert!(BlockQ3K::D + 2 == BlockQ3K::SIZE);

/// The sixteen signed scales of a Q3_K block (already minus 32, so in -32..=31). Scale `i`: low 4 bits from byte
/// `i % 8` (low nibble for i < 8, high nibble for i >= 8), high 2 bits from byte `8 + i % 4` at bit `2 * (i / 4)`.
#[inline(always)]
pub fn q3k_scales(sc: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 { sc[i] & 0x0f } else { sc[i - 8] >> 4 };
        let high = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = (low | (high << 4)) as i8 - 32;
    }
    out
}

/// `block_q4_K`: 256 weights in 8 sub-blocks of 32, 144 bytes. Weight `e = 64*j + l` (l < 32) is the low nibble of
/// `qs[32*j + l]` in sub-block `2*j`; weight `64*j + 32 + l` is its high nibble, in sub-block `2*j + 1`; value =
/// `d * sc[b] * code - dmin * m[b]` with the 6-bit `(sc, m)` of [`k4_scale_min`].
#[derive(Clone, Copy)]
pub struct BlockQ4K<'a>(&'a [u8; 144]);
block_new!(BlockQ4K);
impl<'a> BlockQ4K<'a> {
    pub const SIZE: usize = 144;
    /// `d: ggml_half` — super-block scale of the scales.
    pub const D: usize = 0;
    /// `dmin: ggml_half` — super-block scale of the mins.
    pub const DMIN: usize = 2;
    /// `scales: [u8; 12]` — eight 6-bit scales and eight 6-bit mins, packed (see [`k4_scale_min`]).
    pub const SCALES: usize = 4;
    /// `qs: [u8; 128]` — 4-bit codes (layout above).
    pub const QS: usize = 16;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    #[inline(always)]
    pub fn dmin(&self) -> f32 {
        f16_at(self.0, Self::DMIN)
    }
    #[inline(always)]
    pub fn scales(&self) -> &'a [u8; 12] {
        arr(self.0, Self::SCALES)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 128] {
        arr(self.0, Self::QS)
    }
}
const _: () = assert!(BlockQ4K::SCALES + 12 == BlockQ4K::QS && BlockQ4K::QS + 128 == BlockQ4K::SIZE);

/// The 6-bit (scale, min) pair of sub-block `j` (0..8) of a Q4_K / Q5_K block (ggml's `get_scale_min_k4`):
/// for j < 4 the low 6 bits of bytes `j` and `j + 4`; for j >= 4 the nibbles of byte `j + 4` joined with the top
/// 2 bits of bytes `j - 4` (scale) and `j` (min).
#[inline(always)]
pub fn k4_scale_min(sc: &[u8; 12], j: usize) -> (u8, u8) {
    if j < 4 {
        (sc[j] & 63, sc[j + 4] & 63)
    } else {
        (
            (sc[j + 4] & 0x0f) | ((sc[j - 4] >> 6) << 4),
            (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4),
        )
    }
}

/// `block_q5_K`: 256 weights in 8 sub-blocks of 32, 176 bytes. As Q4_K, plus a 5th bit: weight `64*j + l` takes
/// bit `2*j` of `qh[l]`, weight `64*j + 32 + l` bit `2*j + 1` (worth 16); value = `d * sc[b] * code - dmin * m[b]`.
#[derive(Clone, Copy)]
pub struct BlockQ5K<'a>(&'a [u8; 176]);
block_new!(BlockQ5K);
impl<'a> BlockQ5K<'a> {
    pub const SIZE: usize = 176;
    /// `d: ggml_half` — super-block scale of the scales.
    pub const D: usize = 0;
    /// `dmin: ggml_half` — super-block scale of the mins.
    pub const DMIN: usize = 2;
    /// `scales: [u8; 12]` — as Q4_K ([`k4_scale_min`]).
    pub const SCALES: usize = 4;
    /// `qh: [u8; 32]` — the 5th bit of the codes (layout above).
    pub const QH: usize = 16;
    /// `qs: [u8; 128]` — the low 4 bits, laid out as Q4_K.
    pub const QS: usize = 48;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
    #[inline(always)]
    pub fn dmin(&self) -> f32 {
        f16_at(self.0, Self::DMIN)
    }
    #[inline(always)]
    pub fn scales(&self) -> &'a [u8; 12] {
        arr(self.0, Self::SCALES)
    }
    #[inline(always)]
    pub fn qh(&self) -> &'a [u8; 32] {
        arr(self.0, Self::QH)
    }
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 128] {
        arr(self.0, Self::QS)
    }
}
const _: () = assert!(BlockQ5K::SCALES + 12 == BlockQ5K::QH && BlockQ5K::QH + 32 == BlockQ5K::QS);
const _: () = assert!(BlockQ5K::QS + 128 == BlockQ5K::SIZE);

/// `block_q6_K`: 256 weights in 16 groups of 16, 210 bytes. Weight `e = 128*h + 32*k + l` (h < 2, k < 4, l < 32)
/// has low 4 bits from `ql[64*h + l + 32*(k & 1)]` (low nibble for k < 2, high nibble for k >= 2) and high 2 bits
/// `(qh[32*h + l] >> 2*k) & 3`; code = that 6-bit number - 32; value = `d * scales[e / 16] * code`.
#[derive(Clone, Copy)]
pub struct BlockQ6K<'a>(&'a [u8; 210]);
block_new!(BlockQ6K);
impl<'a> BlockQ6K<'a> {
    pub const SIZE: usize = 210;
    /// `ql: [u8; 128]` — low 4 bits of the codes (layout above).
    pub const QL: usize = 0;
    /// `qh: [u8; 64]` — high 2 bits of the codes, four per byte.
    pub const QH: usize = 128;
    /// `scales: [i8; 16]` — signed 8-bit scale per group of 16.
    pub const SCALES: usize = 192;
    /// `d: ggml_half` — super-block scale.
    pub const D: usize = 208;
    #[inline(always)]
    pub fn ql(&self) -> &'a [u8; 128] {
        arr(self.0, Self::QL)
    }
    #[inline(always)]
    pub fn qh(&self) -> &'a [u8; 64] {
        arr(self.0, Self::QH)
    }
    /// The scales as raw bytes (reinterpret each as `i8`).
    #[inline(always)]
    pub fn scales(&self) -> &'a [u8; 16] {
        arr(self.0, Self::SCALES)
    }
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_at(self.0, Self::D)
    }
}
const _: () = assert!(BlockQ6K::QH + 64 == BlockQ6K::SCALES && BlockQ6K::SCALES + 16 == BlockQ6K::D);
const _: () = assert!(BlockQ6K::D + 2 == BlockQ6K::SIZE);

/// `block_q8_K`: 256 values, 292 bytes; value `j` = `qs[j] * d`. The activation type of all K weights. `bsums[g]`
/// is the sum of the 16 codes of group `g`, so the K kernels apply their per-group mins with 16 multiplies.
#[derive(Clone, Copy)]
pub struct BlockQ8K<'a>(&'a [u8; 292]);
block_new!(BlockQ8K);
impl<'a> BlockQ8K<'a> {
    pub const SIZE: usize = 292;
    /// `d: f32` — the scale (a full float, unlike the other formats).
    pub const D: usize = 0;
    /// `qs: [i8; 256]` — the codes, in order.
    pub const QS: usize = 4;
    /// `bsums: [i16; 16]` — sum of `qs[16*g .. 16*g + 16]`.
    pub const BSUMS: usize = 260;
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f32_at(self.0, Self::D)
    }
    /// The codes as raw bytes (reinterpret each as `i8`).
    #[inline(always)]
    pub fn qs(&self) -> &'a [u8; 256] {
        arr(self.0, Self::QS)
    }
    #[inline(always)]
    pub fn bsum(&self, g: usize) -> i16 {
        i16_at(self.0, Self::BSUMS + 2 * g)
    }
}
const _: () = assert!(BlockQ8K::QS + 256 == BlockQ8K::BSUMS && BlockQ8K::BSUMS + 32 == BlockQ8K::SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgmlType;

    #[test]
    fn sizes_match_type_table() {
        let cases = [
            (GgmlType::Q4_0, BlockQ4_0::SIZE, QK),
            (GgmlType::Q4_1, BlockQ4_1::SIZE, QK),
            (GgmlType::Q5_0, BlockQ5_0::SIZE, QK),
            (GgmlType::Q5_1, BlockQ5_1::SIZE, QK),
            (GgmlType::Q8_0, BlockQ8_0::SIZE, QK),
            (GgmlType::Q8_1, BlockQ8_1::SIZE, QK),
            (GgmlType::Q2_K, BlockQ2K::SIZE, QK_K),
            (GgmlType::Q3_K, BlockQ3K::SIZE, QK_K),
            (GgmlType::Q4_K, BlockQ4K::SIZE, QK_K),
            (GgmlType::Q5_K, BlockQ5K::SIZE, QK_K),
            (GgmlType::Q6_K, BlockQ6K::SIZE, QK_K),
            (GgmlType::Q8_K, BlockQ8K::SIZE, QK_K),
        ];
        for (t, size, bs) in cases {
            assert_eq!(t.type_size(), size, "{t}");
            assert_eq!(t.block_size(), bs, "{t}");
        }
    }

    #[test]
    fn k_scale_unpacking() {
        // Scale/min j < 4 in the low 6 bits of bytes j / j+4; j >= 4 split across byte j+4 and the top bits.
        let mut sc = [0u8; 12];
        sc[0] = 0b11_000101; // scale0 = 5, top bits 3 -> high bits of scale4
        sc[4] = 0b10_000111; // min0 = 7, top bits 2 -> high bits of min4
        sc[8] = 0x9a; // scale4 low = 0xa, min4 low = 0x9
        assert_eq!(k4_scale_min(&sc, 0), (5, 7));
        assert_eq!(k4_scale_min(&sc, 4), (0x3a, 0x29));
        // Q3_K: scale 9 = low nibble from high half of byte 1, high bits from byte 9 bits 4..6.
        let mut s3 = [0u8; 12];
        s3[1] = 0x70;
        s3[9] = 0b0010_0000;
        let v = q3k_scales(&s3);
        assert_eq!(v[9], (0x7 | (2 << 4)) - 32);
        assert_eq!(v[0], -32);
    }
}
