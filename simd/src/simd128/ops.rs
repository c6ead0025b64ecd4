//! SIMD128 versions of the f32 ops in `crate::ops` (whose `scalar` module is their specification). Lengths are
//! checked by the dispatching functions there. Each loop runs over whole f32x4 chunks and finishes the `len % 4` tail
//! with the scalar expression of the specification.
//!
//! Agreement with the specification: `dot_f32`, `axpy`, `scale`, `add_inplace` are bit-exact in both builds
//! (same operations per element, same summation order, multiply-adds never fused).
//! So are `rmsnorm` (f64 sum of squares in the specification's four-lane order), `softmax`, `silu_mul` and
//! `gelu_tanh_mul` ([`exp`] is the specification's `scalar::exp` lane-wise, operation for operation).

use super::common::*;
use core::arch::wasm32::*;

pub(crate) use super::float::{attend, attn_scores, attn_values, dot_f32};

/// `y += alpha * x`.
pub(crate) fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let a = f32x4_splat(alpha);
    let whole = n / 4 * 4;
    for i in (0..whole).step_by(4) {
        store_f32(y, i, madd_f32(a, load_f32(x, i), load_f32(y, i)));
    }
    for i in whole..n {
        y[i] += alpha * x[i];
    }
}

/// `x *= s`.
pub(crate) fn scale(x: &mut [f32], s: f32) {
    let sv = f32x4_splat(s);
    let whole = x.len() / 4 * 4;
    for i in (0..whole).step_by(4) {
        store_f32(x, i, f32x4_mul(load_f32(x, i), sv));
    }
    for v in &mut x[whole..] {
        *v *= s;
    }
}

/// `y += x`.
pub(crate) fn add_inplace(y: &mut [f32], x: &[f32]) {
    let n = y.len().min(x.len());
    let whole = n / 4 * 4;
    for i in (0..whole).step_by(4) {
        store_f32(y, i, f32x4_add(load_f32(y, i), load_f32(x, i)));
    }
    for i in whole..n {
        y[i] += x[i];
    }
}

/// `Σ x[i]^2` in f64 (each square exact in f64), two f64x2 accumulators, then the tail.
fn sum_squares_f64(x: &[f32]) -> f64 {
    let whole = x.len() / 4 * 4;
    let (mut lo, mut hi) = (f64x2_splat(0.0), f64x2_splat(0.0));
    for i in (0..whole).step_by(4) {
        let v = load_f32(x, i);
        let a = f64x2_promote_low_f32x4(v);
        let b = f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(v, v));
        lo = f64x2_add(lo, f64x2_mul(a, a));
        hi = f64x2_add(hi, f64x2_mul(b, b));
    }
    let s = f64x2_add(lo, hi);
    let mut sum = f64x2_extract_lane::<0>(s) + f64x2_extract_lane::<1>(s);
    for &v in &x[whole..] {
        sum += v as f64 * v as f64;
    }
    sum
}

/// `1 / sqrt(mean(x^2) + eps)`, as the specification (0 for an empty row).
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let mean = (sum_squares_f64(x) / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `out[i] = (x[i] * scale) * weight[i]`.
fn scale_mul(out: &mut [f32], x: &[f32], weight: &[f32], s: f32) {
    let n = out.len();
    let sv = f32x4_splat(s);
    let whole = n / 4 * 4;
    for i in (0..whole).step_by(4) {
        store_f32(out, i, f32x4_mul(f32x4_mul(load_f32(x, i), sv), load_f32(weight, i)));
    }
    for i in whole..n {
        out[i] = (x[i] * s) * weight[i];
    }
}

pub(crate) fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    scale_mul(out, x, weight, rms_scale(x, eps));
}

pub(crate) fn rmsnorm_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
    let s = rms_scale(x, eps);
    let sv = f32x4_splat(s);
    let whole = x.len() / 4 * 4;
    for i in (0..whole).step_by(4) {
        store_f32(x, i, f32x4_mul(f32x4_mul(load_f32(x, i), sv), load_f32(weight, i)));
    }
    for i in whole..x.len() {
        x[i] = (x[i] * s) * weight[i];
    }
}

/// `e^x` lane-wise: [`crate::ops::scalar::exp`] (see there for the method and accuracy), the same f32 operations
/// in the same order, so the same bits.
#[inline(always)]
pub(super) fn exp(x: v128) -> v128 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 355.0 / 512.0; // 9 significant bits: n * LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 - LN2_HI
    // pmax/pmin keep NaN (the comparison is false) and clamp the rest to where the result is 0 or inf anyway.
    let x = f32x4_pmin(f32x4_pmax(x, f32x4_splat(-104.0)), f32x4_splat(88.8));
    let n = f32x4_nearest(f32x4_mul(x, f32x4_splat(LOG2E)));
    let r = madd_f32(n, f32x4_splat(-LN2_HI), x);
    let r = madd_f32(n, f32x4_splat(-LN2_LO), r);
    let mut p = f32x4_splat(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = madd_f32(p, r, f32x4_splat(c));
    }
    let ni = i32x4_trunc_sat_f32x4(n);
    let n1 = i32x4_shr(ni, 1);
    let n2 = i32x4_sub(ni, n1);
    let pow2 = |k: v128| i32x4_shl(i32x4_add(k, i32x4_splat(127)), 23);
    f32x4_mul(f32x4_mul(p, pow2(n1)), pow2(n2))
}

/// `x = exp(x - max) / Σ exp(x - max)`, the sum in f64; all `-inf` gives zeros (as the specification).
pub(crate) fn softmax_inplace(x: &mut [f32]) {
    let whole = x.len() / 4 * 4;
    let mut m = f32x4_splat(f32::NEG_INFINITY);
    for i in (0..whole).step_by(4) {
        m = f32x4_pmax(m, load_f32(x, i));
    }
    let mut max = hmax_f32(m);
    for &v in &x[whole..] {
        max = max.max(v);
    }
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let mv = f32x4_splat(max);
    let (mut lo, mut hi) = (f64x2_splat(0.0), f64x2_splat(0.0));
    for i in (0..whole).step_by(4) {
        let e = exp(f32x4_sub(load_f32(x, i), mv));
        store_f32(x, i, e);
        lo = f64x2_add(lo, f64x2_promote_low_f32x4(e));
        hi = f64x2_add(hi, f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(e, e)));
    }
    let s = f64x2_add(lo, hi);
    let mut sum = f64x2_extract_lane::<0>(s) + f64x2_extract_lane::<1>(s);
    for v in &mut x[whole..] {
        *v = crate::ops::scalar::exp(*v - max);
        sum += *v as f64;
    }
    scale(x, (1.0 / sum) as f32);
}

/// `gate = gate / (1 + exp(-gate)) * up`.
pub(crate) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let whole = n / 4 * 4;
    let one = f32x4_splat(1.0);
    for i in (0..whole).step_by(4) {
        let g = load_f32(gate, i);
        let s = f32x4_div(g, f32x4_add(one, exp(f32x4_neg(g))));
        store_f32(gate, i, f32x4_mul(s, load_f32(up, i)));
    }
    for i in whole..n {
        let g = gate[i];
        gate[i] = g / (1.0 + crate::ops::scalar::exp(-g)) * up[i];
    }
}

/// `gate = 0.5 * g * (1 + tanh(sqrt(2/pi) * g * (1 + 0.044715 * g^2))) * up`, computed as the identical
/// `g / (1 + exp(-2z)) * up` (`1 + tanh(z) = 2 / (1 + exp(-2z))`), which has no cancellation where tanh is near -1.
pub(crate) fn gelu_tanh_mul(gate: &mut [f32], up: &[f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044_715;
    let n = gate.len().min(up.len());
    let whole = n / 4 * 4;
    let one = f32x4_splat(1.0);
    for i in (0..whole).step_by(4) {
        let x = load_f32(gate, i);
        let inner = f32x4_add(one, f32x4_mul(f32x4_mul(f32x4_splat(GELU_COEF_A), x), x));
        let z = f32x4_mul(f32x4_mul(f32x4_splat(SQRT_2_OVER_PI), x), inner);
        let g = f32x4_div(x, f32x4_add(one, exp(f32x4_neg(f32x4_add(z, z)))));
        store_f32(gate, i, f32x4_mul(g, load_f32(up, i)));
    }
    for i in whole..n {
        let x = gate[i];
        let z = (SQRT_2_OVER_PI * x) * (1.0 + (GELU_COEF_A * x) * x);
        gate[i] = x / (1.0 + crate::ops::scalar::exp(-(z + z))) * up[i];
    }
}
