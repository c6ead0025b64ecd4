//! f32 vector operations of the forward pass. Each vectorized op dispatches to its SIMD128 version on wasm32 built with
//! `simd128` and to its scalar specification in [`scalar`] elsewhere (the crate's one dispatch idiom, see `lib.rs`);
//! the SIMD versions compute the specification's bits (see `simd/tests/parity.rs`).
//!
//! All slices are plain f32 vectors of one token (a hidden state, one attention head, a row of scores). Functions
//! taking two or more slices panic when their lengths differ: a caller bug.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::simd128::ops as simd128;

#[track_caller]
fn same_len(what: &str, a: usize, b: usize) {
    assert!(a == b, "{what}: lengths differ ({a} vs {b})");
}

/// `sum(a[i] * b[i])`, summed in the fixed 8-lane order of [`crate::reference::dot_lanes`].
#[track_caller]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    same_len("dot_f32", a.len(), b.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::dot_f32(a, b);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::dot_f32(a, b)
}

/// `y += alpha * x` (one rounding for the product, one for the sum).
#[track_caller]
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    same_len("axpy", y.len(), x.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::axpy(y, alpha, x);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::axpy(y, alpha, x)
}

/// `x *= s`.
pub fn scale(x: &mut [f32], s: f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::scale(x, s);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::scale(x, s)
}

/// `y += x`.
#[track_caller]
pub fn add_inplace(y: &mut [f32], x: &[f32]) {
    same_len("add_inplace", y.len(), x.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::add_inplace(y, x);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::add_inplace(y, x)
}

/// `1 / sqrt(mean(x^2) + eps)` with the sum of squares in f64 (as ggml's `rms_norm`, which sums in `ggml_float`).
/// The squares are exact in f64; they are summed in four lanes (`x[4k + l]` into lane `l`), then
/// `(l0 + l2) + (l1 + l3)`, then the `len % 4` tail in order: the order of the SIMD128 version, so both give the
/// same bits.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    let whole = x.len() / 4 * 4;
    let mut lanes = [0.0f64; 4];
    for chunk in x[..whole].chunks_exact(4) {
        for (acc, &v) in lanes.iter_mut().zip(chunk) {
            *acc += v as f64 * v as f64;
        }
    }
    let mut sum = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
    for &v in &x[whole..] {
        sum += v as f64 * v as f64;
    }
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// `out = x / sqrt(mean(x^2) + eps) * weight`, elementwise: `out[i] = (x[i] * scale) * weight[i]`.
#[track_caller]
pub fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    same_len("rmsnorm", out.len(), x.len());
    same_len("rmsnorm", x.len(), weight.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::rmsnorm(out, x, weight, eps);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::rmsnorm(out, x, weight, eps)
}

/// [`rmsnorm`] in place.
#[track_caller]
pub fn rmsnorm_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
    same_len("rmsnorm_inplace", x.len(), weight.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::rmsnorm_inplace(x, weight, eps);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::rmsnorm_inplace(x, weight, eps)
}

/// `x = exp(x - max(x)) / sum(exp(x - max(x)))`; `-inf` entries (masked positions) become 0. The sum is taken in
/// f64. When every entry is `-inf` (nothing to attend to) the result is all zeros rather than NaN. `exp` is
/// [`scalar::exp`] (a few ulp), which the SIMD version computes lane-wise with the same operations.
pub fn softmax_inplace(x: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::softmax_inplace(x);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::softmax_inplace(x)
}

/// `gate = silu(gate) * up`, silu(g) = g / (1 + exp(-g)) (SwiGLU feed-forward of Llama / SmolLM2 / Qwen).
#[track_caller]
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    same_len("silu_mul", gate.len(), up.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::silu_mul(gate, up);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::silu_mul(gate, up)
}

/// `gate = gelu(gate) * up` with the tanh approximation (GeGLU of Gemma, ggml's `gelu`):
/// gelu(g) = 0.5 * g * (1 + tanh(sqrt(2 / pi) * g * (1 + 0.044715 * g^2))), computed as the identical
/// `g / (1 + exp(-2z)) * up` with `z = sqrt(2 / pi) * g * (1 + 0.044715 * g^2)` (`1 + tanh(z) = 2 / (1 + exp(-2z))`),
/// which has no cancellation where tanh is near -1.
#[track_caller]
pub fn gelu_tanh_mul(gate: &mut [f32], up: &[f32]) {
    same_len("gelu_tanh_mul", gate.len(), up.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::gelu_tanh_mul(gate, up);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::gelu_tanh_mul(gate, up)
}

/// One query head's causal attention over `n = scores.len()` cached positions (grouped-query: several query heads
/// read the same key/value head). Row `j` of the keys is `keys[j * stride..j * stride + hd]` (`hd = q.len()`; the
/// cache holds every KV head of a position in one row of `stride` values), the same for values. Computes
/// `scores[j] = dot_f32(q, key_j) * scale`, [`softmax_inplace`] of the scores, then
/// `out = Σ_j scores[j] * value_j`, summed over `j` in order from zero (as `out.fill(0)` then [`axpy`] per `j`).
/// Equal, bit for bit, to [`attn_scores`] then [`softmax_inplace`] then [`attn_values`] (which split it between
/// threads).
#[track_caller]
pub fn attend(q: &[f32], keys: &[f32], values: &[f32], stride: usize, scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let (hd, n) = (q.len(), scores.len());
    same_len("attend", hd, out.len());
    check_rows("attend", n, stride, hd, keys.len());
    check_rows("attend", n, stride, hd, values.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::attend(q, keys, values, stride, scale, scores, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::attend(q, keys, values, stride, scale, scores, out)
}

/// The first step of [`attend`]: `scores[j] = dot_f32(q, key_j) * scale` for `j < scores.len()`, key row `j` at
/// `keys[j * stride..j * stride + q.len()]`.
#[track_caller]
pub fn attn_scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, scores: &mut [f32]) {
    check_rows("attn_scores", scores.len(), stride, q.len(), keys.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::attn_scores(q, keys, stride, scale, scores);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::attn_scores(q, keys, stride, scale, scores)
}

/// The last step of [`attend`], for any run of columns: `out = Σ_j probs[j] * value_j[..out.len()]` over `j` in
/// order from zero (as `out.fill(0)` then one [`axpy`] per `j`), value row `j` at `values[j * stride..]`. Each
/// output value's arithmetic does not depend on `out.len()`, so columns can be split between threads.
#[track_caller]
pub fn attn_values(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
    check_rows("attn_values", probs.len(), stride, out.len(), values.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::attn_values(probs, values, stride, out);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    scalar::attn_values(probs, values, stride, out)
}

#[track_caller]
fn check_rows(what: &str, n: usize, stride: usize, width: usize, have: usize) {
    assert!(stride >= width, "{what}: row stride {stride} is shorter than the row ({width})");
    let need = if n == 0 { 0 } else { (n - 1) * stride + width };
    assert!(have >= need, "{what}: {n} rows of stride {stride} need {need} values, have {have}");
}

/// `(cos, sin)` of `theta_i = pos * freq_scale * base^(-2i / n_rot)` for pair `i`.
///
/// The angle is computed in f64 and rounded once: llama.cpp builds it in f32 as a running product
/// (`theta *= powf(base, -2 / n_rot)` starting from `pos`), whose error grows with `pos` (about 1e-4 rad at
/// pos = 4096); ours is the correctly rounded angle, so results agree with llama.cpp within that error.
#[inline(always)]
fn rope_cs(i: usize, n_rot: usize, pos: usize, theta_base: f32, freq_scale: f32) -> (f32, f32) {
    let inv_freq = libm::pow(theta_base as f64, -2.0 * i as f64 / n_rot as f64);
    let theta = pos as f64 * freq_scale as f64 * inv_freq;
    (libm::cos(theta) as f32, libm::sin(theta) as f32)
}

/// [`rope_cs`] with the angle divided by `factor` (in f64, before rounding).
#[inline(always)]
fn rope_cs_divided(i: usize, n_rot: usize, pos: usize, theta_base: f32, freq_scale: f32, factor: f32) -> (f32, f32) {
    let inv_freq = libm::pow(theta_base as f64, -2.0 * i as f64 / n_rot as f64);
    let theta = pos as f64 * freq_scale as f64 * inv_freq / factor as f64;
    (libm::cos(theta) as f32, libm::sin(theta) as f32)
}

#[track_caller]
fn check_rope(x: &[f32], n_rot: usize) {
    assert!(n_rot.is_multiple_of(2), "rope: n_rot {n_rot} must be even");
    assert!(
        n_rot <= x.len(),
        "rope: n_rot {n_rot} exceeds the head size {}",
        x.len()
    );
}

/// Rotary embedding of one head `x` (head_dim values, `n_rot <= head_dim`, even), "normal" mode (Llama, SmolLM2):
/// pairs `(x[2i], x[2i+1])` for `i < n_rot / 2` are rotated by `theta_i`; values from `n_rot` on are unchanged.
/// `(a, b) -> (a cos - b sin, a sin + b cos)`.
#[track_caller]
pub fn rope_normal(x: &mut [f32], n_rot: usize, pos: usize, theta_base: f32, freq_scale: f32) {
    check_rope(x, n_rot);
    rotate(x, n_rot, false, |i| rope_cs(i, n_rot, pos, theta_base, freq_scale));
}

/// Rotary embedding, "neox" mode (Qwen, Gemma): pairs `(x[i], x[i + n_rot/2])` for `i < n_rot / 2` are rotated by
/// `theta_i`; values from `n_rot` on are unchanged.
#[track_caller]
pub fn rope_neox(x: &mut [f32], n_rot: usize, pos: usize, theta_base: f32, freq_scale: f32) {
    check_rope(x, n_rot);
    rotate(x, n_rot, true, |i| rope_cs(i, n_rot, pos, theta_base, freq_scale));
}

/// The `(cos, sin)` pairs of one position for every rotated pair, `cs[2i] = cos theta_i, cs[2i + 1] = sin theta_i`
/// (`cs.len() == n_rot`): computed once per token and layer and applied to every head with [`rope_with`], which
/// gives the same bits as [`rope_normal`] / [`rope_neox`] (the same angles, the same rotation).
#[track_caller]
pub fn rope_angles(cs: &mut [f32], n_rot: usize, pos: usize, theta_base: f32, freq_scale: f32) {
    rope_angles_scaled(cs, n_rot, pos, theta_base, freq_scale, None, 1.0);
}

/// [`rope_angles`] with per-pair frequency factors and a magnitude scale, as ggml's `rope_ext` with `freq_factors`
/// and `attn_factor` (ext_factor 0): pair `i` rotates by `theta_i / factors[i]` (Llama 3.x `rope_freqs`, Phi-3
/// LongRoPE `rope_factors_long/short`) and both cos and sin are multiplied by `mscale` (LongRoPE's attention
/// factor). `factors.len() == n_rot / 2`. With no factors and `mscale == 1` the bits equal [`rope_angles`]'s.
#[track_caller]
pub fn rope_angles_scaled(
    cs: &mut [f32],
    n_rot: usize,
    pos: usize,
    theta_base: f32,
    freq_scale: f32,
    factors: Option<&[f32]>,
    mscale: f32,
) {
    assert!(cs.len() == n_rot && n_rot.is_multiple_of(2), "rope_angles: table of {} for n_rot {n_rot}", cs.len());
    if let Some(f) = factors {
        assert!(f.len() == n_rot / 2, "rope_angles: {} frequency factors for n_rot {n_rot}", f.len());
    }
    for (i, pair) in cs.chunks_exact_mut(2).enumerate() {
        let (mut c, mut s) = match factors {
            None => rope_cs(i, n_rot, pos, theta_base, freq_scale),
            Some(f) => rope_cs_divided(i, n_rot, pos, theta_base, freq_scale, f[i]),
        };
        if mscale != 1.0 {
            c *= mscale;
            s *= mscale;
        }
        pair[0] = c;
        pair[1] = s;
    }
}

/// Rotary embedding of one head with a table from [`rope_angles`] (`n_rot = cs.len()`); `neox` picks the layout.
#[track_caller]
pub fn rope_with(x: &mut [f32], cs: &[f32], neox: bool) {
    check_rope(x, cs.len());
    rotate(x, cs.len(), neox, |i| (cs[2 * i], cs[2 * i + 1]));
}

#[inline(always)]
fn rotate(x: &mut [f32], n_rot: usize, neox: bool, cs: impl Fn(usize) -> (f32, f32)) {
    let half = n_rot / 2;
    for i in 0..half {
        let (c, s) = cs(i);
        let (ia, ib) = if neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
        let (a, b) = (x[ia], x[ib]);
        x[ia] = a * c - b * s;
        x[ib] = a * s + b * c;
    }
}

/// The scalar specification of the vectorized ops above (also their implementation off wasm32).
pub mod scalar {
    use super::{rms_scale, same_len};
    use crate::reference::dot_lanes;

    /// Scalar [`super::dot_f32`].
    #[track_caller]
    pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        same_len("dot_f32", a.len(), b.len());
        dot_lanes(a.len(), |i| a[i] * b[i])
    }

    /// Scalar [`super::axpy`].
    #[track_caller]
    pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
        same_len("axpy", y.len(), x.len());
        for (y, &x) in y.iter_mut().zip(x) {
            *y += alpha * x;
        }
    }

    /// Scalar [`super::scale`].
    pub fn scale(x: &mut [f32], s: f32) {
        for v in x {
            *v *= s;
        }
    }

    /// Scalar [`super::add_inplace`].
    #[track_caller]
    pub fn add_inplace(y: &mut [f32], x: &[f32]) {
        same_len("add_inplace", y.len(), x.len());
        for (y, &x) in y.iter_mut().zip(x) {
            *y += x;
        }
    }

    /// Scalar [`super::attend`].
    pub fn attend(q: &[f32], keys: &[f32], values: &[f32], stride: usize, scale: f32, scores: &mut [f32], out: &mut [f32]) {
        attn_scores(q, keys, stride, scale, scores);
        softmax_inplace(scores);
        attn_values(scores, values, stride, out);
    }

    /// Scalar [`super::attn_scores`].
    pub fn attn_scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, scores: &mut [f32]) {
        let hd = q.len();
        for (j, s) in scores.iter_mut().enumerate() {
            *s = dot_f32(q, &keys[j * stride..j * stride + hd]) * scale;
        }
    }

    /// Scalar [`super::attn_values`].
    pub fn attn_values(probs: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
        let w = out.len();
        out.fill(0.0);
        for (j, &p) in probs.iter().enumerate() {
            axpy(out, p, &values[j * stride..j * stride + w]);
        }
    }

    /// Scalar [`super::rmsnorm`].
    #[track_caller]
    pub fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
        same_len("rmsnorm", out.len(), x.len());
        same_len("rmsnorm", x.len(), weight.len());
        let s = rms_scale(x, eps);
        for ((o, &x), &w) in out.iter_mut().zip(x).zip(weight) {
            *o = (x * s) * w;
        }
    }

    /// Scalar [`super::rmsnorm_inplace`].
    #[track_caller]
    pub fn rmsnorm_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
        same_len("rmsnorm_inplace", x.len(), weight.len());
        let s = rms_scale(x, eps);
        for (x, &w) in x.iter_mut().zip(weight) {
            *x = (*x * s) * w;
        }
    }

    /// `e^x` within a few ulp of the correctly rounded value over the whole f32 range (subnormal results, 0 below
    /// about -103.97, inf above about 88.72, NaN for NaN): Cody-Waite reduction `x = n ln2 + r`, |r| <= ln2/2, with
    /// ln2 split so `n * LN2_HI` is exact; `e^r` by its degree-7 Taylor polynomial (truncation error below
    /// 0.35^8 / 8! = 5e-9 relative); `2^n` applied as two halves so each factor is a normal f32 for n in -150..=128.
    /// Every step is one IEEE f32 operation (no fused multiply-add), the same ones the SIMD128 version does per
    /// lane, so both give identical bits.
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        const LOG2E: f32 = core::f32::consts::LOG2_E;
        const LN2_HI: f32 = 355.0 / 512.0; // 9 significant bits: n * LN2_HI is exact
        const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 - LN2_HI
        // Clamp to where the result is 0 or inf anyway; a NaN passes through (both comparisons are false).
        let x = if x < -104.0 { -104.0 } else { x };
        let x = if 88.8 < x { 88.8 } else { x };
        let n = (x * LOG2E).round_ties_even();
        let r = x + n * -LN2_HI;
        let r = r + n * -LN2_LO;
        let mut p = 1.0f32 / 5040.0;
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = c + p * r;
        }
        let ni = n as i32; // saturating; NaN -> 0 (as i32x4.trunc_sat_f32x4_s)
        let n1 = ni >> 1;
        let n2 = ni - n1;
        let pow2 = |k: i32| f32::from_bits(((k + 127) << 23) as u32);
        (p * pow2(n1)) * pow2(n2)
    }

    /// Scalar [`super::softmax_inplace`]: the f64 sum in four lanes, then `(l0 + l2) + (l1 + l3)`, then the tail
    /// (the SIMD128 version's order).
    pub fn softmax_inplace(x: &mut [f32]) {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        if max == f32::NEG_INFINITY {
            x.fill(0.0);
            return;
        }
        let whole = x.len() / 4 * 4;
        let mut lanes = [0.0f64; 4];
        for chunk in x[..whole].chunks_exact_mut(4) {
            for (acc, v) in lanes.iter_mut().zip(chunk) {
                *v = exp(*v - max);
                *acc += *v as f64;
            }
        }
        let mut sum = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
        for v in &mut x[whole..] {
            *v = exp(*v - max);
            sum += *v as f64;
        }
        // sum >= 1 (the max entry contributes exp(0) = 1), so the division is safe.
        let inv = (1.0 / sum) as f32;
        for v in x.iter_mut() {
            *v *= inv;
        }
    }

    /// Scalar [`super::silu_mul`].
    #[track_caller]
    pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
        same_len("silu_mul", gate.len(), up.len());
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + exp(-*g)) * u;
        }
    }

    /// Scalar [`super::gelu_tanh_mul`].
    #[track_caller]
    pub fn gelu_tanh_mul(gate: &mut [f32], up: &[f32]) {
        same_len("gelu_tanh_mul", gate.len(), up.len());
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        const GELU_COEF_A: f32 = 0.044_715;
        for (g, &u) in gate.iter_mut().zip(up) {
            let x = *g;
            let z = (SQRT_2_OVER_PI * x) * (1.0 + (GELU_COEF_A * x) * x);
            *g = x / (1.0 + exp(-(z + z))) * u;
        }
    }
}
