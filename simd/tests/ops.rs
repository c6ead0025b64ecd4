//! The f32 ops against straightforward f64 formulas, with tolerances from f32 rounding (u = 2^-24).
mod util;

use pocketlm_simd::ops;
use util::Rng;

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

#[test]
fn dot_f32_within_summation_bound() {
    let mut rng = Rng::new(1);
    for n in [0, 1, 3, 7, 8, 9, 15, 16, 17, 64, 100, 576, 4099] {
        for sigma in [1e-3, 1.0, 1e3] {
            let (a, b) = (rng.normals(n, sigma), rng.normals(n, 1.0));
            let got = ops::dot_f32(&a, &b) as f64;
            let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let mag: f64 = a.iter().zip(&b).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum();
            // Each lane sums n/8 products, then 3 pairwise adds, then the n % 8 tail: <= (n/8 + 12) roundings.
            let bound = (n / 8 + 12) as f64 * U * mag + 1e-300;
            assert!((got - exact).abs() <= bound, "n={n}: {got} vs {exact} (bound {bound})");
        }
    }
    assert_eq!(ops::dot_f32(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
}

#[test]
fn elementwise_ops() {
    let mut rng = Rng::new(2);
    let n = 1000;
    let (x, y0) = (rng.normals(n, 2.0), rng.normals(n, 2.0));
    let alpha = 0.37f32;
    let mut y = y0.clone();
    ops::axpy(&mut y, alpha, &x);
    for i in 0..n {
        let exact = y0[i] as f64 + alpha as f64 * x[i] as f64;
        let bound = 2.0 * U * (y0[i].abs() as f64 + (alpha * x[i]).abs() as f64);
        assert!((y[i] as f64 - exact).abs() <= bound, "axpy {i}");
    }
    let mut s = x.clone();
    ops::scale(&mut s, -1.5e-3);
    for i in 0..n {
        let exact = x[i] as f64 * -1.5e-3f32 as f64;
        assert!((s[i] as f64 - exact).abs() <= U * exact.abs(), "scale {i}");
    }
    let mut z = y0.clone();
    ops::add_inplace(&mut z, &x);
    for i in 0..n {
        let exact = y0[i] as f64 + x[i] as f64;
        assert!((z[i] as f64 - exact).abs() <= U * exact.abs(), "add {i}");
    }
}

#[test]
fn rmsnorm_matches_f64() {
    let mut rng = Rng::new(3);
    for (n, sigma, eps) in [
        (576, 1.0, 1e-5f32),
        (640, 30.0, 1e-6),
        (1, 0.5, 1e-5),
        (256, 1e-4, 1e-6),
    ] {
        let x = rng.normals(n, sigma);
        let w: Vec<f32> = (0..n).map(|_| rng.range(0.5, 1.5) as f32).collect();
        let mut out = vec![0f32; n];
        ops::rmsnorm(&mut out, &x, &w, eps);
        let xd = f64s(&x);
        let mean: f64 = xd.iter().map(|v| v * v).sum::<f64>() / n as f64;
        let inv = 1.0 / (mean + eps as f64).sqrt();
        for i in 0..n {
            let exact = xd[i] * inv * w[i] as f64;
            // mean rounded to f32, + eps, sqrt, reciprocal, two products: about 8 roundings of the value.
            assert!(
                (out[i] as f64 - exact).abs() <= 8.0 * U * exact.abs() + 1e-30,
                "n={n} i={i}"
            );
        }
        let mut inplace = x.clone();
        ops::rmsnorm_inplace(&mut inplace, &w, eps);
        assert_eq!(inplace, out);
    }
}

#[test]
fn softmax_matches_f64() {
    let mut rng = Rng::new(4);
    for (n, sigma) in [(1, 1.0), (7, 3.0), (300, 10.0), (1024, 1.0)] {
        let x = rng.normals(n, sigma);
        let mut p = x.clone();
        ops::softmax_inplace(&mut p);
        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for i in 0..n {
            let exact = e[i] / sum;
            // x - max rounds to f32 (absolute error u * |x - max|, which exp turns into relative error), then exp,
            // the reciprocal of the sum and the product add a few u.
            let tol = ((x[i] as f64 - max).abs() + 6.0) * U * exact + 1e-44;
            assert!((p[i] as f64 - exact).abs() <= tol, "n={n} i={i}: {} vs {exact}", p[i]);
        }
    }
    // Large logits do not overflow; masked (-inf) entries get exactly 0.
    let mut x = [1000.0f32, 1001.0, f32::NEG_INFINITY, 999.0];
    ops::softmax_inplace(&mut x);
    let e = [(-1f64).exp(), 1.0, 0.0, (-2f64).exp()];
    let s: f64 = e.iter().sum();
    for i in 0..4 {
        assert!((x[i] as f64 - e[i] / s).abs() <= 1e-6, "{i}: {}", x[i]);
    }
    assert_eq!(x[2], 0.0);
    // Everything masked: zeros, not NaN.
    let mut m = [f32::NEG_INFINITY; 3];
    ops::softmax_inplace(&mut m);
    assert_eq!(m, [0.0; 3]);
    ops::softmax_inplace(&mut []);
}

#[test]
fn gated_activations_match_f64() {
    let mut rng = Rng::new(5);
    let n = 2000;
    let mut g = rng.normals(n, 4.0);
    g[0] = -100.0;
    g[1] = 100.0;
    g[2] = 0.0;
    let up = rng.normals(n, 1.0);
    let mut s = g.clone();
    ops::silu_mul(&mut s, &up);
    let mut ge = g.clone();
    ops::gelu_tanh_mul(&mut ge, &up);
    for i in 0..n {
        let (x, u) = (g[i] as f64, up[i] as f64);
        let silu = x / (1.0 + (-x).exp()) * u;
        assert!(
            (s[i] as f64 - silu).abs() <= 1e-6 * silu.abs() + 1e-30,
            "silu {x}: {} vs {silu}",
            s[i]
        );
        let c = (2.0 / std::f64::consts::PI).sqrt();
        let gelu = 0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh()) * u;
        // tanh near -1 cancels against 1 for negative x: absolute error ~ u * |x u|.
        let tol = 1e-6 * gelu.abs() + 4.0 * U * (x * u).abs() + 1e-30;
        assert!((ge[i] as f64 - gelu).abs() <= tol, "gelu {x}: {} vs {gelu}", ge[i]);
    }
}

/// f64 rotation of one head; `pair(i)` gives the two indices rotated by theta_i.
fn rope_f64(
    x: &[f32],
    n_rot: usize,
    pos: usize,
    base: f32,
    fs: f32,
    pair: impl Fn(usize) -> (usize, usize),
) -> Vec<f64> {
    let mut y = f64s(x);
    for i in 0..n_rot / 2 {
        let theta = pos as f64 * fs as f64 * (base as f64).powf(-(2.0 * i as f64) / n_rot as f64);
        let (j, k) = pair(i);
        let (a, b) = (x[j] as f64, x[k] as f64);
        y[j] = a * theta.cos() - b * theta.sin();
        y[k] = a * theta.sin() + b * theta.cos();
    }
    y
}

#[test]
fn rope_matches_f64() {
    let mut rng = Rng::new(6);
    for (head, n_rot, base, fs) in [
        (64, 64, 10000.0f32, 1.0f32),
        (128, 128, 1e6, 1.0),
        (256, 256, 1e4, 0.125),
        (96, 32, 1e4, 1.0),
    ] {
        for pos in [0, 1, 17, 511, 4095, 32767] {
            let x = rng.normals(head, 1.0);
            let mut a = x.clone();
            ops::rope_normal(&mut a, n_rot, pos, base, fs);
            let ea = rope_f64(&x, n_rot, pos, base, fs, |i| (2 * i, 2 * i + 1));
            let mut b = x.clone();
            ops::rope_neox(&mut b, n_rot, pos, base, fs);
            let eb = rope_f64(&x, n_rot, pos, base, fs, |i| (i, i + n_rot / 2));
            for i in 0..head {
                // cos/sin rounded to f32, two products and a sum: error <= 4u * (|a| + |b|) of the pair.
                let tol = 4.0 * U * 2.0 * x.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                assert!((a[i] as f64 - ea[i]).abs() <= tol, "normal head {head} pos {pos} i {i}");
                assert!((b[i] as f64 - eb[i]).abs() <= tol, "neox head {head} pos {pos} i {i}");
            }
            // A table from rope_angles applied with rope_with gives the same bits (the model's path).
            let mut cs = vec![0.0; n_rot];
            ops::rope_angles(&mut cs, n_rot, pos, base, fs);
            let (mut ta, mut tb) = (x.clone(), x.clone());
            ops::rope_with(&mut ta, &cs, false);
            ops::rope_with(&mut tb, &cs, true);
            assert_eq!(ta, a, "rope_with normal, head {head} pos {pos}");
            assert_eq!(tb, b, "rope_with neox, head {head} pos {pos}");
            // Values past n_rot are untouched; position 0 is the identity, bit for bit.
            assert_eq!(&a[n_rot..], &x[n_rot..]);
            assert_eq!(&b[n_rot..], &x[n_rot..]);
            if pos == 0 {
                assert_eq!(a, x);
                assert_eq!(b, x);
            }
        }
    }
}

#[test]
fn rope_scores_depend_only_on_relative_position() {
    // The property RoPE exists for: <rope(q, p), rope(k, p')> depends on p - p' only.
    let mut rng = Rng::new(8);
    let (q, k) = (rng.normals(64, 1.0), rng.normals(64, 1.0));
    for rope in [
        ops::rope_normal as fn(&mut [f32], usize, usize, f32, f32),
        ops::rope_neox,
    ] {
        let score = |pq: usize, pk: usize| {
            let (mut a, mut b) = (q.clone(), k.clone());
            rope(&mut a, 64, pq, 10000.0, 1.0);
            rope(&mut b, 64, pk, 10000.0, 1.0);
            ops::dot_f32(&a, &b)
        };
        let s0 = score(10, 3);
        for (pq, pk) in [(107, 100), (1007, 1000), (7, 0)] {
            assert!((score(pq, pk) - s0).abs() < 1e-4, "{pq},{pk}");
        }
        assert!(
            (score(10, 3) - score(3, 10)).abs() > 1e-3,
            "a rotation that ignores position would pass"
        );
    }
}

#[test]
#[should_panic(expected = "lengths differ")]
fn mismatched_lengths_panic() {
    ops::dot_f32(&[1.0; 3], &[1.0; 4]);
}

#[test]
#[should_panic(expected = "exceeds the head size")]
fn rope_too_many_dims_panics() {
    ops::rope_neox(&mut [0.0; 8], 16, 1, 1e4, 1.0);
}

#[test]
fn exp_within_a_few_ulp_over_the_f32_range() {
    // A dense sweep of the inputs whose result is a normal f32, plus the edges of the range.
    let mut worst = 0.0f64;
    let mut x = -87.3f32;
    while x < 88.7 {
        let exact = (x as f64).exp();
        let got = ops::scalar::exp(x) as f64;
        let ulp = exact * U * 2.0; // one ulp of the f32 result is between exact * 2^-24 and exact * 2^-23
        worst = worst.max((got - exact).abs() / ulp);
        x += 0.000_731;
    }
    assert!(worst <= 3.0, "exp: worst error {worst:.2} ulp");
    // Subnormal results: within one subnormal step (2^-149) of the exact value.
    for x in [-88.0f32, -95.0, -100.0, -103.0] {
        let exact = (x as f64).exp();
        assert!((ops::scalar::exp(x) as f64 - exact).abs() <= 2f64.powi(-149), "exp({x})");
    }
    assert_eq!(ops::scalar::exp(-104.5), 0.0);
    assert_eq!(ops::scalar::exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(ops::scalar::exp(0.0), 1.0);
    assert_eq!(ops::scalar::exp(89.0), f32::INFINITY);
    assert_eq!(ops::scalar::exp(f32::INFINITY), f32::INFINITY);
    assert!(ops::scalar::exp(f32::NAN).is_nan());
}
