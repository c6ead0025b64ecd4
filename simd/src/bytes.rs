//! Little-endian reads and writes of the scalar fields in GGUF data: halves, bfloat16s, f32s and integers at any
//! byte offset, never assuming alignment (the bytes usually come straight from the model file). The one place
//! these are written: block views ([`crate::blocks`]), the reference kernels and the SIMD128 kernels all use them.

/// An IEEE half at `b[off..off + 2]`, little-endian, widened exactly to f32.
#[inline(always)]
pub fn f16_at(b: &[u8], off: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// IEEE half bits -> f32, exact (same value as `half::f16::from_bits(h).to_f32()`, checked for all 65536 inputs
/// in the tests). Written out because it runs once or more per block in every kernel: `half` checks for the x86
/// F16C instruction at run time on every call and uses a branchy fallback elsewhere (wasm32).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    // Exponent and mantissa moved to their f32 positions; multiplying by 2^112 rebiases the exponent (15 -> 127)
    // exactly and turns half subnormals into normal f32s. Exponent 31 (inf / NaN) is mapped to 255 instead.
    let mag = ((h & 0x7fff) as u32) << 13;
    let v = if h & 0x7c00 == 0x7c00 {
        mag | 0x7f80_0000
    } else {
        (f32::from_bits(mag) * f32::from_bits(0x7780_0000)).to_bits()
    };
    f32::from_bits(v | (((h & 0x8000) as u32) << 16))
}

/// An f32 at `b[off..off + 4]`, little-endian.
#[inline(always)]
pub fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// A bfloat16 at `b[off..off + 2]`, little-endian, widened exactly to f32 (bf16 is the top half of an f32).
#[inline(always)]
pub fn bf16_at(b: &[u8], off: usize) -> f32 {
    f32::from_bits((u16::from_le_bytes([b[off], b[off + 1]]) as u32) << 16)
}

/// An i16 at `b[off..off + 2]`, little-endian.
#[inline(always)]
pub fn i16_at(b: &[u8], off: usize) -> i16 {
    i16::from_le_bytes([b[off], b[off + 1]])
}

/// A u32 at `b[off..off + 4]`, little-endian.
#[inline(always)]
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// f32 -> IEEE half bits, round to nearest even, overflow to ±inf (as ggml's `GGML_FP32_TO_FP16` and numpy's
/// `astype(float16)` do).
#[inline(always)]
pub fn f16_bits(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

/// f32 -> bfloat16 bits, round to nearest even; NaN stays NaN (quieted), as ggml's `ggml_compute_fp32_to_bf16`.
#[inline(always)]
pub fn bf16_bits(v: f32) -> u16 {
    let u = v.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        // NaN: keep sign and top payload bits, force the quiet bit so truncation cannot make it an infinity.
        return ((u >> 16) | 64) as u16;
    }
    ((u as u64 + 0x7fff + ((u >> 16) & 1) as u64) >> 16) as u16
}

/// Writes `v` rounded to an IEEE half at `b[off..off + 2]`, little-endian.
#[inline(always)]
pub fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&f16_bits(v).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_and_unaligned_reads() {
        // A half at an odd offset: 1.5 = 0x3e00.
        let b = [0xaa, 0x00, 0x3e, 0x00, 0x00, 0xc0, 0x3f];
        assert_eq!(f16_at(&b, 1), 1.5);
        assert_eq!(f32_at(&b, 3), 1.5);
        assert_eq!(bf16_at(&b, 5), 1.5);
        assert_eq!(i16_at(&[0xfe, 0xff], 0), -2);
        assert_eq!(u32_at(&[1, 2, 3, 4, 5], 1), 0x0504_0302);
    }

    #[test]
    fn f16_to_f32_matches_half_for_every_value() {
        for h in 0..=u16::MAX {
            let (ours, theirs) = (f16_to_f32(h), half::f16::from_bits(h).to_f32());
            assert!(
                ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan()),
                "{h:#06x}"
            );
        }
    }

    #[test]
    fn half_and_bfloat_rounding() {
        // Halfway between two halves rounds to the even one: 1 + 2^-11 -> 1.0; 1 + 3*2^-11 -> 1 + 2^-9.
        assert_eq!(f16_bits(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f16_bits(70000.0), 0x7c00);
        // bf16: 1 + 2^-8 is halfway -> 1.0 (even); 1 + 3*2^-8 -> 1 + 2^-6.
        assert_eq!(bf16_bits(1.0 + 2f32.powi(-8)), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert!(f32::from_bits((bf16_bits(f32::NAN) as u32) << 16).is_nan());
        // A NaN whose payload lives only in the low 16 bits must not become an infinity.
        assert!(f32::from_bits((bf16_bits(f32::from_bits(0x7f80_0001)) as u32) << 16).is_nan());
    }
}
