//! Row dequantization, the specification of `crate::simd128::dequant`: `dst.len()` elements from a row of
//! `dst.len() / block_size` blocks, one or two f32 operations per value in ggml's `dequantize_row_*` order.

// Index loops mirror the block layouts (element e, group e / 16) more readably than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::*;

pub fn dequantize_row_f32(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::F32, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32_at(b, 0);
    }
}

pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::F16, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = f16_at(b, 0);
    }
}

pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::BF16, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = bf16_at(b, 0);
    }
}

/// `y = (code - 8) * d`.
pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q4_0, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ4_0::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ4_0::new(b);
        let (d, qs) = (b.d(), b.qs());
        for j in 0..QK / 2 {
            y[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// `y = code * d + m`.
pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q4_1, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ4_1::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ4_1::new(b);
        let (d, m, qs) = (b.d(), b.m(), b.qs());
        for j in 0..QK / 2 {
            y[j] = (qs[j] & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (qs[j] >> 4) as f32 * d + m;
        }
    }
}

/// The 32 unsigned 5-bit codes of a Q5_0 / Q5_1 block from its `qs` nibbles and `qh` bits.
#[inline(always)]
fn q5_codes(qs: &[u8; 16], qh: u32) -> [u8; QK] {
    let mut q = [0u8; QK];
    for j in 0..QK / 2 {
        q[j] = (qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + QK / 2] = (qs[j] >> 4) | ((((qh >> (j + QK / 2)) & 1) as u8) << 4);
    }
    q
}

/// `y = (code - 16) * d`.
pub fn dequantize_row_q5_0(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q5_0, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ5_0::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ5_0::new(b);
        let d = b.d();
        for (y, q) in y.iter_mut().zip(q5_codes(b.qs(), b.qh())) {
            *y = (q as i32 - 16) as f32 * d;
        }
    }
}

/// `y = code * d + m`.
pub fn dequantize_row_q5_1(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q5_1, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ5_1::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ5_1::new(b);
        let (d, m) = (b.d(), b.m());
        for (y, q) in y.iter_mut().zip(q5_codes(b.qs(), b.qh())) {
            *y = q as f32 * d + m;
        }
    }
}

/// `y = code * d`.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q8_0, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ8_0::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ8_0::new(b);
        let d = b.d();
        for (y, &q) in y.iter_mut().zip(b.qs()) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// `y = code * d` (`s` is redundant for dequantization).
pub fn dequantize_row_q8_1(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q8_1, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ8_1::SIZE).zip(dst.chunks_exact_mut(QK)) {
        let b = BlockQ8_1::new(b);
        let d = b.d();
        for (y, &q) in y.iter_mut().zip(b.qs()) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// `y = code * d` with the f32 `d`.
pub fn dequantize_row_q8_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q8_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ8K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ8K::new(b);
        let d = b.d();
        for (y, &q) in y.iter_mut().zip(b.qs()) {
            *y = q as i8 as f32 * d;
        }
    }
}

/// `y = (d * (sc & 15)) * code - dmin * (sc >> 4)` per group of 16.
pub fn dequantize_row_q2_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q2_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ2K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ2K::new(b);
        let (d, dmin, sc, q) = (b.d(), b.dmin(), b.scales(), q2k_codes(&b));
        for g in 0..16 {
            let dl = d * (sc[g] & 0x0f) as f32;
            let ml = dmin * (sc[g] >> 4) as f32;
            for i in 16 * g..16 * g + 16 {
                y[i] = dl * q[i] as f32 - ml;
            }
        }
    }
}

/// `y = (d * scale) * code` per group of 16.
pub fn dequantize_row_q3_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q3_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ3K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ3K::new(b);
        let (d, sc, q) = (b.d(), q3k_scales(b.scales()), q3k_codes(&b));
        for g in 0..16 {
            let dl = d * sc[g] as f32;
            for i in 16 * g..16 * g + 16 {
                y[i] = dl * q[i] as f32;
            }
        }
    }
}

/// `y = (d * sc) * code - dmin * m` per sub-block of 32.
pub fn dequantize_row_q4_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q4_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ4K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ4K::new(b);
        let (d, dmin, q) = (b.d(), b.dmin(), q4k_codes(&b));
        for s in 0..8 {
            let (sc, m) = k4_scale_min(b.scales(), s);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            for i in 32 * s..32 * s + 32 {
                y[i] = dl * q[i] as f32 - ml;
            }
        }
    }
}

/// `y = (d * sc) * code - dmin * m` per sub-block of 32.
pub fn dequantize_row_q5_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q5_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ5K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ5K::new(b);
        let (d, dmin, q) = (b.d(), b.dmin(), q5k_codes(&b));
        for s in 0..8 {
            let (sc, m) = k4_scale_min(b.scales(), s);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            for i in 32 * s..32 * s + 32 {
                y[i] = dl * q[i] as f32 - ml;
            }
        }
    }
}

/// `y = (d * scale) * code` per group of 16.
pub fn dequantize_row_q6_k(src: &[u8], dst: &mut [f32]) {
    check_len(GgmlType::Q6_K, dst.len(), src.len(), "source row");
    for (b, y) in src.chunks_exact(BlockQ6K::SIZE).zip(dst.chunks_exact_mut(QK_K)) {
        let b = BlockQ6K::new(b);
        let (d, sc, q) = (b.d(), b.scales(), q6k_codes(&b));
        for g in 0..16 {
            let dl = d * sc[g] as i8 as f32;
            for i in 16 * g..16 * g + 16 {
                y[i] = dl * q[i] as f32;
            }
        }
    }
}
