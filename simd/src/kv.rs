//! KV-cache storage types and the attention kernels that read them.
//!
//! A cache holds rows of `kv_dim` values per position (keys or values), stored as f32, f16 (IEEE half, as bits) or
//! q8_0 (ggml's layout: blocks of 32 values, one f16 scale `d` and 32 signed bytes, value = d * q).
//!
//! The kernels take a [`KvRows`] view: the stored values from some element offset on, with row `j` of width `w` at
//! elements `j * stride .. j * stride + w`. f32 rows go to the f32 kernels of [`crate::ops`] unchanged. For f16 and
//! q8_0 the specification ([`scalar`]) decodes one row at a time ([`KvRows::row_f32`]) and runs the f32 kernels'
//! arithmetic on it; the SIMD128 kernels (`simd128::kv`) read the stored rows in place, widening 8 values at a time
//! as they load them, with the same bits.

use crate::ops;
use half::f16;

/// Values per q8_0 block.
pub const Q8_BLOCK: usize = 32;

/// Widest row the f16/q8_0 kernels decode at once (a head's width; Gemma 3 uses 256).
pub const MAX_ROW: usize = 512;

/// How the KV cache stores its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KvType {
    /// 4 bytes per value.
    #[default]
    F32,
    /// 2 bytes per value.
    F16,
    /// 34 bytes per 32 values (1.0625 bytes per value).
    Q8_0,
}

impl KvType {
    /// The option's spelling: `f32`, `f16`, `q8_0`.
    pub fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
        }
    }

    pub fn parse(s: &str) -> Option<KvType> {
        match s {
            "f32" => Some(KvType::F32),
            "f16" => Some(KvType::F16),
            "q8_0" => Some(KvType::Q8_0),
            _ => None,
        }
    }

    /// Bytes that `n` values take (`n` a multiple of [`Q8_BLOCK`] for q8_0).
    pub fn bytes(self, n: usize) -> usize {
        match self {
            KvType::F32 => 4 * n,
            KvType::F16 => 2 * n,
            KvType::Q8_0 => n / Q8_BLOCK * std::mem::size_of::<BlockQ8>(),
        }
    }
}

/// One q8_0 block as ggml lays it out (`block_q8_0`): value i = f16(d) * qs[i].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct BlockQ8 {
    /// Scale, f16 bits.
    pub d: u16,
    pub qs: [i8; Q8_BLOCK],
}
const _: () = assert!(std::mem::size_of::<BlockQ8>() == 34);

/// Stored values, read-only, from element `offset` of `data` on.
#[derive(Clone, Copy, Debug)]
pub enum KvRows<'a> {
    F32(&'a [f32]),
    F16(&'a [u16], usize),
    Q8_0(&'a [BlockQ8], usize),
}

impl<'a> KvRows<'a> {
    /// Values from this view's start on.
    pub fn len(&self) -> usize {
        match *self {
            KvRows::F32(s) => s.len(),
            KvRows::F16(s, o) => s.len() - o,
            KvRows::Q8_0(b, o) => b.len() * Q8_BLOCK - o,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same view starting `n` values later.
    pub fn skip(self, n: usize) -> KvRows<'a> {
        match self {
            KvRows::F32(s) => KvRows::F32(&s[n..]),
            KvRows::F16(s, o) => KvRows::F16(s, o + n),
            KvRows::Q8_0(b, o) => KvRows::Q8_0(b, o + n),
        }
    }

    /// Decodes values `at .. at + out.len()` of this view into `out` (the specification of the f16/q8_0 storage).
    pub fn row_f32(&self, at: usize, out: &mut [f32]) {
        match *self {
            KvRows::F32(s) => out.copy_from_slice(&s[at..at + out.len()]),
            KvRows::F16(s, o) => {
                let n = out.len();
                for (y, &h) in out.iter_mut().zip(&s[o + at..o + at + n]) {
                    *y = f16::from_bits(h).to_f32();
                }
            }
            KvRows::Q8_0(b, o) => {
                let start = o + at;
                for (i, y) in out.iter_mut().enumerate() {
                    let e = start + i;
                    let blk = &b[e / Q8_BLOCK];
                    *y = f16::from_bits(blk.d).to_f32() * blk.qs[e % Q8_BLOCK] as f32;
                }
            }
        }
    }
}

// The byte views below hand the stored values to code that reads little-endian bytes (ggml's layouts).
const _: () = assert!(cfg!(target_endian = "little"), "the KV byte views assume a little-endian target");

/// f16 bits as their little-endian bytes.
pub(crate) fn u16_bytes(x: &[u16]) -> &[u8] {
    // SAFETY: any u16 memory is valid as bytes (alignment 1, no invalid values); same lifetime and span.
    unsafe { core::slice::from_raw_parts(x.as_ptr() as *const u8, core::mem::size_of_val(x)) }
}

/// q8_0 blocks as ggml's `block_q8_0` bytes.
pub(crate) fn block_bytes(x: &[BlockQ8]) -> &[u8] {
    // SAFETY: BlockQ8 is repr(C) u16 + [i8; 32], 34 bytes with no padding (size asserted above), so every byte is
    // initialized; same lifetime and span.
    unsafe { core::slice::from_raw_parts(x.as_ptr() as *const u8, core::mem::size_of_val(x)) }
}

impl KvRows<'_> {
    /// The first `out.len()` values of this view, as [`KvRows::row_f32`] gives them, through the (vectorized)
    /// dequantizer of the same format: for a batch of queries that read the same rows, decoding once and running the
    /// f32 kernels gives the bits of the in-place kernels at a fraction of the conversions. q8_0: the view must start
    /// on a block and `out` be whole blocks.
    #[track_caller]
    pub fn decode(&self, out: &mut [f32]) {
        let n = out.len();
        match *self {
            KvRows::F32(s) => out.copy_from_slice(&s[..n]),
            KvRows::F16(s, o) => crate::dequantize_row(crate::GgmlType::F16, u16_bytes(&s[o..o + n]), out),
            KvRows::Q8_0(b, o) => {
                assert!(o % Q8_BLOCK == 0 && n % Q8_BLOCK == 0, "q8_0 decode of {n} values at {o}: not whole blocks");
                crate::dequantize_row(crate::GgmlType::Q8_0, block_bytes(&b[o / Q8_BLOCK..(o + n) / Q8_BLOCK]), out)
            }
        }
    }
}

/// Encodes `x` as f16 bits (round to nearest even).
pub fn store_f16(x: &[f32], out: &mut [u16]) {
    assert_eq!(x.len(), out.len(), "store_f16: length mismatch");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f16::from_f32(v).to_bits();
    }
}

/// Encodes `x` (a whole number of blocks) as q8_0: per block d = max|x| / 127, q = round(x / d).
pub fn store_q8_0(x: &[f32], out: &mut [BlockQ8]) {
    assert!(x.len() == out.len() * Q8_BLOCK, "store_q8_0: {} values into {} blocks", x.len(), out.len());
    for (xb, blk) in x.chunks_exact(Q8_BLOCK).zip(out) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        blk.d = f16::from_f32(d).to_bits();
        for (q, &v) in blk.qs.iter_mut().zip(xb) {
            *q = (v * id).round().clamp(-127.0, 127.0) as i8;
        }
    }
}

/// `scores[j] = dot(q, row j of keys) * scale`, rows `stride` values apart (see [`ops::attn_scores`]). f32 rows go to
/// the f32 kernel; f16 and q8_0 rows are read in place by the SIMD128 build, with the bits of [`scalar::attn_scores`].
#[track_caller]
pub fn attn_scores(q: &[f32], keys: KvRows, stride: usize, scale: f32, scores: &mut [f32]) {
    if let KvRows::F32(k) = keys {
        return ops::attn_scores(q, k, stride, scale, scores);
    }
    check(q.len(), stride, scores.len(), keys.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return crate::simd128::kv::attn_scores(q, keys, stride, scale, scores);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::attn_scores(q, keys, stride, scale, scores)
}

/// `out = sum_j probs[j] * row j of values`, rows `stride` values apart (see [`ops::attn_values`]); f16 and q8_0 as
/// in [`attn_scores`], with the bits of [`scalar::attn_values`].
#[track_caller]
pub fn attn_values(probs: &[f32], values: KvRows, stride: usize, out: &mut [f32]) {
    if let KvRows::F32(v) = values {
        return ops::attn_values(probs, v, stride, out);
    }
    check(out.len(), stride, probs.len(), values.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return crate::simd128::kv::attn_values(probs, values, stride, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::attn_values(probs, values, stride, out)
}

/// The specification of the f16/q8_0 kernels: decode each row ([`KvRows::row_f32`]), then the f32 kernels'
/// arithmetic ([`ops::scalar`]). Lengths are checked by the callers in [`super`].
pub mod scalar {
    use super::{KvRows, MAX_ROW};
    use crate::ops::scalar::{axpy, dot_f32};

    /// Scalar [`super::attn_scores`] (rows at most [`MAX_ROW`] wide).
    pub fn attn_scores(q: &[f32], keys: KvRows, stride: usize, scale: f32, scores: &mut [f32]) {
        let mut buf = [0.0f32; MAX_ROW];
        let row = &mut buf[..q.len()];
        for (j, s) in scores.iter_mut().enumerate() {
            keys.row_f32(j * stride, row);
            *s = dot_f32(q, row) * scale;
        }
    }

    /// Scalar [`super::attn_values`] (rows at most [`MAX_ROW`] wide).
    pub fn attn_values(probs: &[f32], values: KvRows, stride: usize, out: &mut [f32]) {
        let mut buf = [0.0f32; MAX_ROW];
        let row = &mut buf[..out.len()];
        out.fill(0.0);
        for (j, &p) in probs.iter().enumerate() {
            values.row_f32(j * stride, row);
            axpy(out, p, row);
        }
    }
}

/// [`attn_scores`], softmax, [`attn_values`] (see [`ops::attend`]).
pub fn attend(q: &[f32], keys: KvRows, values: KvRows, stride: usize, scale: f32, scores: &mut [f32], out: &mut [f32]) {
    attn_scores(q, keys, stride, scale, scores);
    ops::softmax_inplace(scores);
    attn_values(scores, values, stride, out);
}

#[track_caller]
fn check(w: usize, stride: usize, n: usize, have: usize) {
    assert!(w <= MAX_ROW, "KV row of {w} values is wider than {MAX_ROW}");
    if n > 0 {
        let need = (n - 1) * stride + w;
        assert!(need <= have, "KV rows: {n} rows of {w} (stride {stride}) need {need} values, {have} given");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-r, r).
    fn data(n: usize, seed: u64, r: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * r
            })
            .collect()
    }

    #[test]
    fn q8_0_round_trip_error_is_within_half_a_step() {
        let x = data(256, 1, 3.0);
        let mut b = vec![BlockQ8::default(); 8];
        store_q8_0(&x, &mut b);
        let mut y = vec![0.0; 256];
        KvRows::Q8_0(&b, 0).row_f32(0, &mut y);
        for (blk, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (a, b) in xs.iter().zip(ys) {
                // Half a quantization step, plus the f16 rounding of the scale (2^-11 relative).
                assert!((a - b).abs() <= amax / 127.0 * 0.5 + amax * 1e-3, "block {blk}: {a} vs {b}");
            }
        }
        // All-zero blocks stay zero (no division by zero).
        let mut z = [BlockQ8::default()];
        store_q8_0(&[0.0; 32], &mut z);
        assert!(z[0].qs.iter().all(|&q| q == 0));
    }

    #[test]
    fn attention_on_f16_and_q8_0_rows_matches_f32_within_the_type_error() {
        let (hd, kvd, n) = (64, 192, 37);
        let q = data(hd, 2, 1.0);
        let keys = data(n * kvd, 3, 2.0);
        let vals = data(n * kvd, 4, 2.0);
        let (mut k16, mut v16) = (vec![0u16; keys.len()], vec![0u16; vals.len()]);
        store_f16(&keys, &mut k16);
        store_f16(&vals, &mut v16);
        let (mut k8, mut v8) = (vec![BlockQ8::default(); keys.len() / 32], vec![BlockQ8::default(); vals.len() / 32]);
        store_q8_0(&keys, &mut k8);
        store_q8_0(&vals, &mut v8);
        // Head 1 of 3 (offset 64 into each row).
        let off = hd;
        let mut s32 = vec![0.0; n];
        let mut o32 = vec![0.0; hd];
        attend(&q, KvRows::F32(&keys[off..]), KvRows::F32(&vals[off..]), kvd, 0.125, &mut s32, &mut o32);
        for (kr, vr, tol) in [
            (KvRows::F16(&k16, off), KvRows::F16(&v16, off), 2e-3f32),
            (KvRows::Q8_0(&k8, off), KvRows::Q8_0(&v8, off), 3e-2),
        ] {
            let mut s = vec![0.0; n];
            let mut o = vec![0.0; hd];
            attend(&q, kr, vr, kvd, 0.125, &mut s, &mut o);
            for (a, b) in s32.iter().zip(&s) {
                assert!((a - b).abs() <= tol, "{kr:?}: prob {a} vs {b}");
            }
            for (a, b) in o32.iter().zip(&o) {
                assert!((a - b).abs() <= tol * 2.0, "output {a} vs {b}");
            }
        }
    }

    #[test]
    fn the_decoded_kernels_equal_f32_kernels_on_the_decoded_values() {
        // The f16/q8_0 kernels are "decode, then the f32 kernel": on rows decoded up front they give the same bits.
        let (hd, kvd, n) = (64, 128, 20);
        let q = data(hd, 5, 1.0);
        let keys = data(n * kvd, 6, 1.5);
        let mut k8 = vec![BlockQ8::default(); keys.len() / 32];
        store_q8_0(&keys, &mut k8);
        let mut dec = vec![0.0; keys.len()];
        KvRows::Q8_0(&k8, 0).row_f32(0, &mut dec);
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        attn_scores(&q, KvRows::Q8_0(&k8, 0).skip(hd), kvd, 0.3, &mut a);
        ops::attn_scores(&q, &dec[hd..], kvd, 0.3, &mut b);
        assert_eq!(a, b);
        let probs = data(n, 7, 1.0);
        let (mut oa, mut ob) = (vec![0.0; 16], vec![0.0; 16]);
        // A column run that starts inside a block (16 columns at offset 16).
        attn_values(&probs, KvRows::Q8_0(&k8, 16), kvd, &mut oa);
        ops::attn_values(&probs, &dec[16..], kvd, &mut ob);
        assert_eq!(oa, ob);
    }

    #[test]
    fn decode_gives_the_values_of_row_f32() {
        let x = data(4 * 64, 9, 5.0);
        let mut h = vec![0u16; x.len()];
        store_f16(&x, &mut h);
        let mut b = vec![BlockQ8::default(); x.len() / 32];
        store_q8_0(&x, &mut b);
        for rows in [KvRows::F16(&h, 32), KvRows::Q8_0(&b, 64)] {
            let (mut a, mut want) = (vec![0.0; 128], vec![0.0; 128]);
            rows.decode(&mut a);
            rows.row_f32(0, &mut want);
            assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn names_round_trip() {
        for t in [KvType::F32, KvType::F16, KvType::Q8_0] {
            assert_eq!(KvType::parse(t.name()), Some(t));
        }
        assert_eq!(KvType::parse("q4_0"), None);
        assert_eq!(KvType::Q8_0.bytes(64), 68);
    }
}
