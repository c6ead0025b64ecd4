//! The scalar reference kernels against independent references:
//! - dequantization and the weight quantizers against PyPI gguf (fixtures from scripts/fixtures/quant_ref.py):
//!   bit-exact (NaN matches any NaN);
//! - the quantized dot products against (a) an f64 recomputation from the activation codes, within the f32 rounding
//!   bound derived in `check_vec_dot`, and (b) the f64 dot product of the gguf-verified dequantized weights with the
//!   unquantized activations, within the bound the activation quantization implies;
//! - matvec == vec_dot per row and matmul == matvec per token, bit for bit.
mod util;

use pocketlm_simd::blocks::*;
use pocketlm_simd::{self as simd, reference as r, GgmlType};
use util::*;

use GgmlType::*;
const WEIGHT_TYPES: [GgmlType; 13] = [
    F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
];
const EPS32: f64 = 1.0 / (1u64 << 24) as f64; // unit roundoff of f32

fn row_bytes(t: GgmlType, n: usize) -> usize {
    t.row_bytes(n as u64).unwrap() as usize
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures: gguf's dequantization and quantization.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn fixtures_cover_every_weight_type_and_real_rows() {
    let cases = load_cases();
    for t in WEIGHT_TYPES {
        assert!(cases.iter().any(|c| c.t == t), "no fixture case for {t}");
    }
    for t in [Q4_K, Q6_K, Q5_0, Q8_0, Q4_1] {
        assert!(
            cases.iter().any(|c| c.t == t && c.name.starts_with("real_")),
            "no real-model rows of {t}"
        );
    }
    for t in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16] {
        assert!(
            cases.iter().any(|c| c.t == t && c.input.is_some()),
            "no gguf quantize case for {t}"
        );
    }
}

#[test]
fn dequantize_matches_gguf_bit_exact() {
    let cases = load_cases();
    let mut checked = 0;
    for c in &cases {
        for row in 0..c.rows {
            let mut out = vec![f32::NAN; c.cols];
            simd::dequantize_row(c.t, c.raw_row(row), &mut out);
            let want = c.deq_row(row);
            if let Some(i) = (0..c.cols).find(|&i| !same_f32(out[i], want[i])) {
                panic!(
                    "{} ({}) row {row} element {i}: ours {} gguf {}",
                    c.name, c.source, out[i], want[i]
                );
            }
            checked += c.cols;
        }
    }
    eprintln!(
        "dequantize: {} cases, {checked} values bit-identical to gguf",
        cases.len()
    );
}

#[test]
fn weight_quantizers_match_gguf_bytes() {
    let cases = load_cases();
    let mut n_cases = 0;
    for c in cases.iter().filter(|c| c.input.is_some()) {
        let input = c.input.as_ref().unwrap();
        for row in 0..c.rows {
            let x = &input[row * c.cols..(row + 1) * c.cols];
            let mut q = vec![0u8; c.row_bytes()];
            r::quantize_row(c.t, x, &mut q);
            let want = c.raw_row(row);
            if let Some(i) = (0..q.len()).find(|&i| q[i] != want[i]) {
                let bsz = c.t.type_size();
                panic!(
                    "{} row {row}: byte {i} (block {}) ours {:02x?} gguf {:02x?}",
                    c.name,
                    i / bsz,
                    &q[i / bsz * bsz..(i / bsz + 1) * bsz],
                    &want[i / bsz * bsz..(i / bsz + 1) * bsz]
                );
            }
        }
        n_cases += 1;
    }
    // 5 block types x 4 lengths + F16/BF16 x 2 lengths.
    assert!(n_cases >= 24, "only {n_cases} quantize cases");
}

// ---------------------------------------------------------------------------------------------------------------
// Dot products.
// ---------------------------------------------------------------------------------------------------------------

/// Per element of a weight row: the magnitude of the "min" subtracted from (or added to) its group, |M_i|, 0 for
/// types without one. The kernels compute `d*code` and `M` terms separately, so their f32 rounding scales with
/// `|d*code| + |M| <= |w| + 2|M|`, not with |w|.
fn weight_min_terms(t: GgmlType, w: &[u8], n: usize) -> Vec<f64> {
    let mut m = vec![0.0f64; n];
    match t {
        Q4_1 => w
            .chunks_exact(BlockQ4_1::SIZE)
            .enumerate()
            .for_each(|(b, c)| m[b * QK..(b + 1) * QK].fill(BlockQ4_1::new(c).m().abs() as f64)),
        Q5_1 => w
            .chunks_exact(BlockQ5_1::SIZE)
            .enumerate()
            .for_each(|(b, c)| m[b * QK..(b + 1) * QK].fill(BlockQ5_1::new(c).m().abs() as f64)),
        Q2_K => w.chunks_exact(BlockQ2K::SIZE).enumerate().for_each(|(b, c)| {
            let blk = BlockQ2K::new(c);
            for g in 0..16 {
                let v = (blk.dmin() * (blk.scales()[g] >> 4) as f32).abs() as f64;
                m[b * QK_K + 16 * g..b * QK_K + 16 * g + 16].fill(v);
            }
        }),
        Q4_K | Q5_K => w.chunks_exact(t.type_size()).enumerate().for_each(|(b, c)| {
            let (dmin, sc) = if t == Q4_K {
                let k = BlockQ4K::new(c);
                (k.dmin(), *k.scales())
            } else {
                let k = BlockQ5K::new(c);
                (k.dmin(), *k.scales())
            };
            for s in 0..8 {
                let v = (dmin * k4_scale_min(&sc, s).1 as f32).abs() as f64;
                m[b * QK_K + 32 * s..b * QK_K + 32 * s + 32].fill(v);
            }
        }),
        _ => {}
    }
    m
}

/// The activation row as (code, block scale) per element, plus per block the Q8_1 `s` (else 0).
fn activation_codes(vt: GgmlType, a: &[u8], n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut q, mut d, mut s) = (vec![0.0; n], vec![0.0; n], vec![]);
    let bs = vt.block_size();
    for (b, c) in a.chunks_exact(vt.type_size()).enumerate() {
        let (codes, scale, sb): (&[u8], f32, f32) = match vt {
            Q8_0 => (BlockQ8_0::new(c).qs(), BlockQ8_0::new(c).d(), 0.0),
            Q8_1 => (BlockQ8_1::new(c).qs(), BlockQ8_1::new(c).d(), BlockQ8_1::new(c).s()),
            Q8_K => (BlockQ8K::new(c).qs(), BlockQ8K::new(c).d(), 0.0),
            _ => unreachable!(),
        };
        for i in 0..bs {
            q[b * bs + i] = codes[i] as i8 as f64;
            d[b * bs + i] = scale as f64;
        }
        s.push(sb as f64);
    }
    (q, d, s)
}

/// Checks `vec_dot(w, quantize_activation(x))` for one weight row and returns |error| / sum|w||x| against the
/// unquantized dot product.
///
/// Bounds (u = 2^-24, the f32 unit roundoff; a' = dequantized activation, M = weight group min, see above):
/// 1. Against the f64 recomputation from the activation codes `E = sum_b d_b * sum_i w_i q_i` (for Q8_1:
///    `sum_b [d_b * sum_i (w_i - m_b) q_i + m_b * s_b]`, the kernel's own formula): only f32 rounding separates them
///    — the rounding inside the dequantized w (<= 3 ops), the per-block scale products and the block-by-block
///    f32 sum, so |vec_dot - E| <= (n_blocks + 8) * u * sum_i (|w_i| + 2|M_i|) |a'_i|.
/// 2. Against the exact `sum w_i x_i`: in addition the activation quantization error per element,
///    Q8_0/Q8_1 (d = amax/127 rounded to f16): |x - f16(d) q| <= d (0.5 + 2e-5) + 127 max(d 2^-11, 2^-25);
///    Q8_K (d = 1/(-127/max) in f32): |x - d q| <= amax/127 (0.5 + 3e-5); and for Q8_1 the `m * s` term, where
///    s = f16(d sum q) instead of f16(d) sum q: |m| (2^-10 + u) 32 amax per block.
fn check_vec_dot(t: GgmlType, n: usize, w: &[u8], x: &[f32], label: &str) -> f64 {
    let vt = t.vec_dot_type();
    let mut a = vec![0u8; simd::activation_row_bytes(t, n)];
    assert_eq!(a.len(), row_bytes(vt, n));
    simd::quantize_activation(t, x, &mut a);
    let got = simd::vec_dot(t, n, w, &a) as f64;
    let mut wd = vec![0f32; n];
    simd::dequantize_row(t, w, &mut wd);
    let wd: Vec<f64> = wd.iter().map(|&v| v as f64).collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mins = weight_min_terms(t, w, n);
    let ideal: f64 = wd.iter().zip(&x64).map(|(w, x)| w * x).sum();
    let scale: f64 = wd.iter().zip(&x64).map(|(w, x)| (w * x).abs()).sum();

    if vt == F32 {
        // The activation is exact; only the 8-lane f32 summation (n/8 adds per lane + 3) and products round.
        let bound = (n / 8 + 8) as f64 * EPS32 * scale;
        assert!(
            (got - ideal).abs() <= bound,
            "{label}: vec_dot {got} vs exact {ideal} (bound {bound})"
        );
        return (got - ideal).abs() / scale.max(f64::MIN_POSITIVE);
    }

    let (q, d, s) = activation_codes(vt, &a, n);
    let bs = vt.block_size();
    let wbs = t.block_size();
    // 1. Exact recomputation from the codes.
    let mut exact = 0.0f64;
    for b in 0..n / bs {
        let range = b * bs..(b + 1) * bs;
        if vt == Q8_1 {
            // Weight and activation blocks coincide (32); the weight's m is its min term, with sign.
            let m = match t {
                Q4_1 => BlockQ4_1::new(&w[b * BlockQ4_1::SIZE..(b + 1) * BlockQ4_1::SIZE]).m(),
                Q5_1 => BlockQ5_1::new(&w[b * BlockQ5_1::SIZE..(b + 1) * BlockQ5_1::SIZE]).m(),
                _ => unreachable!(),
            } as f64;
            let sum: f64 = range.clone().map(|i| (wd[i] - m) * q[i]).sum();
            exact += d[b * bs] * sum + m * s[b];
        } else {
            let sum: f64 = range.clone().map(|i| wd[i] * q[i]).sum();
            exact += d[b * bs] * sum;
        }
    }
    let a_abs: Vec<f64> = (0..n).map(|i| (d[i] * q[i]).abs()).collect();
    let weighted: f64 = (0..n).map(|i| (wd[i].abs() + 2.0 * mins[i]) * a_abs[i]).sum();
    let n_blocks = n / wbs.min(bs);
    let fl_bound = (n_blocks + 8) as f64 * EPS32 * weighted + 1e-30;
    assert!(
        (got - exact).abs() <= fl_bound,
        "{label}: vec_dot {got} vs recomputation from the codes {exact}: diff {} > bound {fl_bound}",
        (got - exact).abs()
    );

    // 2. Against the unquantized activations.
    let mut bound = fl_bound;
    for b in 0..n / bs {
        let range = b * bs..(b + 1) * bs;
        let amax = range.clone().map(|i| x64[i].abs()).fold(0.0, f64::max);
        let dq = amax / 127.0;
        let per_elem = match vt {
            Q8_K => dq * (0.5 + 3e-5),
            _ => dq * (0.5 + 2e-5) + 127.0 * (dq * 2f64.powi(-11)).max(2f64.powi(-25)),
        };
        for i in range.clone() {
            let err = (x64[i] - d[i] * q[i]).abs();
            assert!(
                err <= per_elem,
                "{label}: activation {i} quantized with error {err} > {per_elem}"
            );
            bound += wd[i].abs() * per_elem;
        }
        if vt == Q8_1 {
            bound += mins[b * bs] * (2f64.powi(-10) + EPS32) * 32.0 * amax;
        }
    }
    let err = (got - ideal).abs();
    assert!(
        err <= bound,
        "{label}: vec_dot {got} vs exact {ideal}: error {err} > bound {bound}"
    );
    err / scale.max(f64::MIN_POSITIVE)
}

/// Activation rows for the dot tests: plain normal, per-block magnitudes over 6 decades, and one with a zero block
/// (scale 0) and a single huge outlier.
fn activations(rng: &mut Rng, n: usize) -> Vec<Vec<f32>> {
    let plain = rng.normals(n, 1.0);
    let mut spread = rng.normals(n, 1.0);
    for chunk in spread.chunks_mut(32) {
        let s = 10f64.powf(rng.range(-3.0, 3.0)) as f32;
        chunk.iter_mut().for_each(|v| *v *= s);
    }
    let mut holes = rng.normals(n, 0.5);
    let z = (rng.next_u64() as usize % (n / 32)) * 32;
    holes[z..z + 32].fill(0.0);
    holes[rng.next_u64() as usize % n] = 300.0;
    vec![plain, spread, holes]
}

fn finite_row(t: GgmlType, w: &[u8], n: usize) -> bool {
    let mut wd = vec![0f32; n];
    simd::dequantize_row(t, w, &mut wd);
    wd.iter().all(|v| v.is_finite())
}

#[test]
fn vec_dot_on_fixture_rows() {
    let cases = load_cases();
    let mut rng = Rng::new(7);
    let (mut n_rows, mut worst) = (0, 0.0f64);
    for c in cases.iter().filter(|c| c.t.is_supported_weight()) {
        let n = c.cols;
        if n % c.t.vec_dot_type().block_size() != 0 {
            continue;
        }
        for row in 0..c.rows {
            let w = c.raw_row(row);
            if !finite_row(c.t, w, n) {
                continue; // edge-case blocks whose f16 scale overflowed: covered by the dequantize test
            }
            for (k, x) in activations(&mut rng, n).iter().enumerate() {
                let rel = check_vec_dot(c.t, n, w, x, &format!("{} row {row} activation {k}", c.name));
                if k == 0 {
                    // Gaussian activations: the actual error is far inside the worst-case bound.
                    assert!(rel < 1e-2, "{} row {row}: relative error {rel}", c.name);
                    worst = worst.max(rel);
                }
            }
            n_rows += 1;
        }
    }
    assert!(n_rows > 100, "only {n_rows} rows checked");
    eprintln!("vec_dot: {n_rows} fixture rows; worst |err| / sum|w||x| (gaussian activations) {worst:.2e}");
}

/// A weight row of `n` elements: our quantizers on normal data for the simple types (verified against gguf by the
/// fixture tests), random bytes with sane f16 super-block scales for the K types.
fn random_weight_row(rng: &mut Rng, t: GgmlType, n: usize) -> Vec<u8> {
    let mut w = vec![0u8; row_bytes(t, n)];
    match t {
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => {
            w = rng.bytes(w.len());
            let fields: &[usize] = match t {
                Q2_K => &[BlockQ2K::D, BlockQ2K::DMIN],
                Q3_K => &[BlockQ3K::D],
                Q4_K => &[BlockQ4K::D, BlockQ4K::DMIN],
                Q5_K => &[BlockQ5K::D, BlockQ5K::DMIN],
                _ => &[BlockQ6K::D],
            };
            for blk in w.chunks_exact_mut(t.type_size()) {
                for &off in fields {
                    put_f16(blk, off, rng.range(0.001, 0.1) as f32);
                }
            }
        }
        _ => r::quantize_row(t, &rng.normals(n, 0.05), &mut w),
    }
    w
}

#[test]
fn vec_dot_on_random_weights_all_types() {
    let mut rng = Rng::new(11);
    let mut worst = 0.0f64;
    for t in WEIGHT_TYPES {
        let sizes: &[usize] = if t.block_size() == QK_K {
            &[256, 512, 1536, 2048]
        } else {
            &[32, 96, 576, 1536]
        };
        for &n in sizes {
            for rep in 0..3 {
                let w = random_weight_row(&mut rng, t, n);
                for (k, x) in activations(&mut rng, n).iter().enumerate() {
                    let rel = check_vec_dot(t, n, &w, x, &format!("{t} n={n} rep {rep} activation {k}"));
                    if k == 0 {
                        assert!(rel < 1e-2, "{t} n={n}: relative error {rel}");
                        worst = worst.max(rel);
                    }
                }
            }
        }
    }
    eprintln!("vec_dot random weights: worst |err| / sum|w||x| {worst:.2e}");
}

#[test]
fn float_vec_dot_sums_in_the_documented_lane_order() {
    // F32/F16/BF16 dot products promise the summation order of `dot_lanes` (what ops::dot_f32 uses), so they must
    // equal ops::dot_f32 on the widened weights bit for bit, whatever n % 8 is.
    let mut rng = Rng::new(19);
    for n in (0..41).chain([576, 1001]) {
        let x = rng.normals(n, 1.0);
        let a: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        for t in [F32, F16, BF16] {
            let mut w = vec![0u8; row_bytes(t, n)];
            r::quantize_row(t, &rng.normals(n, 1.0), &mut w);
            let mut wd = vec![0f32; n];
            simd::dequantize_row(t, &w, &mut wd);
            let got = simd::vec_dot(t, n, &w, &a);
            assert_eq!(
                got.to_bits(),
                pocketlm_simd::ops::dot_f32(&wd, &x).to_bits(),
                "{t} n={n}"
            );
        }
    }
}

#[test]
fn matvec_and_matmul_equal_vec_dot() {
    let mut rng = Rng::new(13);
    for t in WEIGHT_TYPES {
        let (n, rows, toks) = (512, 5, 3);
        let w: Vec<u8> = (0..rows).flat_map(|_| random_weight_row(&mut rng, t, n)).collect();
        let ab = simd::activation_row_bytes(t, n);
        let mut a = vec![0u8; toks * ab];
        for tok in 0..toks {
            simd::quantize_activation(t, &rng.normals(n, 1.0), &mut a[tok * ab..(tok + 1) * ab]);
        }
        let rb = row_bytes(t, n);
        let mut out = vec![0f32; rows];
        simd::matvec(t, n, &w, &a[..ab], &mut out);
        for (row, &o) in out.iter().enumerate() {
            let v = simd::vec_dot(t, n, &w[row * rb..(row + 1) * rb], &a[..ab]);
            assert_eq!(o.to_bits(), v.to_bits(), "{t} matvec row {row}");
        }
        let mut mm = vec![f32::NAN; toks * rows];
        simd::matmul(t, n, &w, &a, toks, &mut mm);
        for tok in 0..toks {
            let mut mv = vec![0f32; rows];
            simd::matvec(t, n, &w, &a[tok * ab..(tok + 1) * ab], &mut mv);
            for row in 0..rows {
                assert_eq!(
                    mm[tok * rows + row].to_bits(),
                    mv[row].to_bits(),
                    "{t} matmul token {tok} row {row}"
                );
            }
        }
        // Degenerate shapes are fine: no rows, no tokens.
        simd::matvec(t, n, &[], &a[..ab], &mut []);
        simd::matmul(t, n, &w, &[], 0, &mut []);
    }
}

#[test]
fn matvec_on_fixture_matrices() {
    let cases = load_cases();
    let mut rng = Rng::new(17);
    let mut n_cases = 0;
    for c in cases.iter().filter(|c| c.t.is_supported_weight() && c.rows > 1) {
        let n = c.cols;
        let ab = simd::activation_row_bytes(c.t, n);
        let mut a = vec![0u8; 2 * ab];
        simd::quantize_activation(c.t, &rng.normals(n, 1.0), &mut a[..ab]);
        simd::quantize_activation(c.t, &rng.normals(n, 3.0), &mut a[ab..]);
        let mut mm = vec![0f32; 2 * c.rows];
        simd::matmul(c.t, n, &c.raw, &a, 2, &mut mm);
        for tok in 0..2 {
            for row in 0..c.rows {
                let v = simd::vec_dot(c.t, n, c.raw_row(row), &a[tok * ab..(tok + 1) * ab]);
                assert!(same_f32(mm[tok * c.rows + row], v), "{} token {tok} row {row}", c.name);
            }
        }
        n_cases += 1;
    }
    assert!(n_cases > 20);
}

// ---------------------------------------------------------------------------------------------------------------
// Activation quantizers: ggml's rounding rules on hand-made inputs.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn q8_0_and_q8_1_round_half_away_from_zero() {
    // amax = 127 makes d = 1 exactly, so the codes are round(x): ggml's roundf rounds halves away from zero.
    let mut x = [0f32; 32];
    x[..8].copy_from_slice(&[127.0, 2.5, -2.5, 0.5, -0.5, 1.499_999_9, -126.5, 3.0]);
    let want: [i8; 8] = [127, 3, -3, 1, -1, 1, -127, 3];
    let mut q0 = [0u8; 34];
    r::quantize_row_q8_0(&x, &mut q0);
    let b = BlockQ8_0::new(&q0);
    assert_eq!(b.d(), 1.0);
    assert_eq!(b.qs()[..8].iter().map(|&v| v as i8).collect::<Vec<_>>(), want);
    assert!(b.qs()[8..].iter().all(|&v| v == 0));
    let mut q1 = [0u8; 36];
    r::quantize_row_q8_1(&x, &mut q1);
    let b1 = BlockQ8_1::new(&q1);
    assert_eq!(b1.d(), 1.0);
    assert_eq!(&q1[BlockQ8_1::QS..], &q0[BlockQ8_0::QS..]);
    let sum: i32 = want.iter().map(|&v| v as i32).sum();
    assert_eq!(b1.s(), sum as f32, "s = d * sum(codes)");

    // All zeros: d = 0, codes 0, s = 0.
    r::quantize_row_q8_1(&[0.0; 32], &mut q1);
    assert!(q1.iter().all(|&v| v == 0));
}

#[test]
fn q8_1_s_uses_the_unrounded_scale() {
    // amax = 1 -> d = 1/127 (f32), whose f16 rounding differs; s must be f16(sum * d_f32), not f16(d_f16) * sum.
    let mut x = [0.55f32; 32];
    x[0] = 1.0;
    let mut q = [0u8; 36];
    r::quantize_row_q8_1(&x, &mut q);
    let b = BlockQ8_1::new(&q);
    let d32 = 1.0f32 / 127.0;
    let sum: i32 = b.qs().iter().map(|&v| v as i8 as i32).sum();
    assert_eq!(sum, 127 + 31 * 70); // round(0.55 * 127) = round(69.85) = 70
    let f16 = |v: f32| half::f16::from_f32(v).to_f32();
    // The two readings differ for this input (18.1 vs 18.08), so the check below tells them apart.
    assert_ne!(f16(sum as f32 * d32), f16(sum as f32 * f16(d32)));
    assert_eq!(b.s(), f16(sum as f32 * d32));
}

#[test]
fn q8_k_rounds_half_to_even_and_sums_groups() {
    // Largest magnitude -127: iscale = -127 / -127 = 1, d = 1, codes = nearest_int(x) (halves to even).
    let mut x = [0f32; 256];
    x[..8].copy_from_slice(&[-127.0, 2.5, -2.5, 0.5, -0.5, 3.5, 1.5, 126.5]);
    x[16] = 5.0; // second group
    let mut q = vec![0u8; 292];
    r::quantize_row_q8_k(&x, &mut q);
    let b = BlockQ8K::new(&q);
    assert_eq!(b.d(), 1.0);
    let codes: Vec<i8> = b.qs().iter().map(|&v| v as i8).collect();
    assert_eq!(&codes[..8], &[-127, 2, -2, 0, 0, 4, 2, 126]);
    assert_eq!(codes[16], 5);
    assert_eq!(b.bsum(0), -127 + 2 - 2 + 4 + 2 + 126);
    assert_eq!(b.bsum(1), 5);
    assert!((2..16).all(|g| b.bsum(g) == 0));

    // Largest magnitude +127: iscale = -1, d = -1, codes = -x.
    let mut y = [0f32; 256];
    y[0] = 127.0;
    y[1] = 2.5;
    r::quantize_row_q8_k(&y, &mut q);
    let b = BlockQ8K::new(&q);
    assert_eq!(b.d(), -1.0);
    assert_eq!(b.qs()[0] as i8, -127);
    assert_eq!(b.qs()[1] as i8, -2);

    // Zero block: everything zero.
    r::quantize_row_q8_k(&[0.0; 256], &mut q);
    assert!(q.iter().all(|&v| v == 0));
}

#[test]
fn float_weights_take_f32_activation_bytes() {
    let x = [1.5f32, -0.0, 3.25e-20, f32::MAX];
    let want: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    for t in [F32, F16, BF16] {
        assert_eq!(simd::activation_row_bytes(t, 4), 16);
        let mut a = vec![0u8; 16];
        simd::quantize_activation(t, &x, &mut a);
        assert_eq!(a, want, "{t}");
    }
    assert_eq!(simd::activation_row_bytes(Q4_K, 512), 2 * 292);
    assert_eq!(simd::activation_row_bytes(Q4_1, 64), 2 * 36);
    assert_eq!(simd::activation_row_bytes(Q5_0, 64), 2 * 34);
}

#[test]
fn f16_and_bf16_weight_quantizers_round_to_nearest_even() {
    // Facts of IEEE half / bfloat16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 (-> 1, even); 65520 rounds to inf.
    let x = [
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        65520.0,
        -2f32.powi(-25) * 3.0,
    ];
    let mut h = [0u8; 8];
    r::quantize_row(F16, &x, &mut h);
    let bits: Vec<u16> = h.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(bits, [0x3c00, 0x3c02, 0x7c00, 0x8002]);
    let y = [1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8), -2.0, f32::INFINITY];
    r::quantize_row(BF16, &y, &mut h);
    let bits: Vec<u16> = h.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(bits, [0x3f80, 0x3f82, 0xc000, 0x7f80]);
}

// ---------------------------------------------------------------------------------------------------------------
// Caller bugs panic.
// ---------------------------------------------------------------------------------------------------------------

#[test]
#[should_panic(expected = "must be 18 bytes")]
fn dequantize_wrong_length_panics() {
    simd::dequantize_row(Q4_0, &[0u8; 17], &mut [0f32; 32]);
}

#[test]
#[should_panic(expected = "not a whole number")]
fn partial_block_panics() {
    simd::dequantize_row(Q4_K, &[0u8; 144], &mut [0f32; 128]);
}

#[test]
#[should_panic(expected = "activation row")]
fn vec_dot_wrong_activation_type_panics() {
    // A Q8_0-sized activation for Q4_1 weights (which take Q8_1).
    simd::vec_dot(Q4_1, 32, &[0u8; 20], &[0u8; 34]);
}

#[test]
#[should_panic(expected = "not a supported weight type")]
fn vec_dot_unsupported_type_panics() {
    simd::vec_dot(Q8_1, 32, &[0u8; 36], &[0u8; 4 * 32]);
}

#[test]
#[should_panic(expected = "matvec")]
fn matvec_wrong_weight_size_panics() {
    simd::matvec(Q8_0, 32, &[0u8; 34 * 3], &[0u8; 34], &mut [0f32; 2]);
}

#[test]
#[should_panic(expected = "matmul")]
fn matmul_wrong_output_size_panics() {
    simd::matmul(Q8_0, 32, &[0u8; 34 * 3], &[0u8; 34 * 2], 2, &mut [0f32; 5]);
}

#[test]
#[should_panic(expected = "destination row")]
fn quantize_activation_wrong_length_panics() {
    simd::quantize_activation(Q6_K, &[0f32; 256], &mut [0u8; 291]);
}
