//! SIMD128 (and relaxed-SIMD) kernels against their scalar specification, `pocketlm_simd::reference`.
//!
//! Runs only on wasm32, in headless Chromium (`cargo test --target wasm32-unknown-unknown -p pocketlm-simd`, and the
//! same with `RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" ... --target-dir target/relaxed`): natively the
//! dispatch functions *are* the reference, so there is nothing to compare.
//!
//! What is asserted, per kernel (both builds unless noted):
//! - `quantize_activation` (Q8_0, Q8_1, Q8_K): output bytes identical to `reference::quantize_row`.
//! - `vec_dot`, `matvec`, `matmul` for quantized weights (Q4_0 ... Q6_K): every result has the reference's exact
//!   f32 bits (`to_bits` equal): the integer block sums are exact and the scales are applied in the reference order.
//! - the same for F32 / F16 / BF16 weights (the reference's 8-lane order; no fused multiply-add in either build).
//! - `dequantize_row`: bit-exact (vectorized for F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q8_K, Q4_K,
//!   Q6_K: the formats of embedding tables and activations; Q2_K, Q3_K, Q5_K use the reference itself).
//! - f32 ops (`ops::*` against `ops::scalar::*`): all bit-exact (the specification sums in the SIMD lane order and
//!   its `exp` is the same f32 operations as the SIMD one): `scale`, `add_inplace`, `dot_f32`, `axpy`, `rmsnorm`,
//!   `softmax` (with exact zeros for `-inf`), `silu_mul`, `gelu_tanh_mul`.
//!
//! Data: seeded random rows (a tiny PRNG below) with lengths that leave tails everywhere (1-3 blocks, row counts not
//! a multiple of 4, token counts not a multiple of 4, float rows of every length mod 8), and real rows of the two
//! models embedded from `tests/data/rows.bin` (written by `tests/data/make_rows.py` from the GGUF files).
#![cfg(target_arch = "wasm32")]

use pocketlm_simd::{self as k, ops, reference as r, GgmlType, GgmlType::*};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);


/// splitmix64: a tiny deterministic generator, good enough to spread test values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Roughly normal (sum of four uniforms).
    fn normal(&mut self) -> f32 {
        (self.unit() + self.unit() + self.unit() + self.unit()) * 0.87
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// A finite f16 of either sign between 2^-24 (subnormal) and 2^3, as bits.
    fn f16_bits(&mut self) -> u16 {
        let sign = (self.below(2) as u16) << 15;
        let exp = self.below(19) as u16; // 0 (subnormal) ..= 18 (2^3)
        sign | (exp << 10) | (self.below(1024) as u16)
    }
}

/// An activation row of `n` values, varied per 32-value block: normal values at scales from 1e-3 to 30, an all-zero
/// block, a block with one outlier, and a block of halves whose largest magnitude is 127 (so `x * 127 / amax` lands
/// exactly on .5 ties and exercises the rounding rule).
fn activation(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x = vec![0.0f32; n];
    for (bi, b) in x.chunks_mut(32).enumerate() {
        match (bi + rng.below(7) as usize) % 7 {
            0 => {}
            1 => {
                for v in b.iter_mut() {
                    *v = (rng.below(255) as f32 - 127.0) * 0.5;
                }
                b[0] = -127.0;
            }
            2 => {
                for v in b.iter_mut() {
                    *v = rng.normal() * 0.01;
                }
                let i = rng.below(b.len() as u64) as usize;
                b[i] = 40.0;
            }
            _ => {
                let scale = [1e-3, 0.05, 1.0, 3.0, 30.0][rng.below(5) as usize];
                for v in b.iter_mut() {
                    *v = rng.normal() * scale;
                }
            }
        }
    }
    x
}

/// Byte offsets of the f16 scale fields of one block of `t` (set to sane values in random blocks).
fn f16_fields(t: GgmlType) -> &'static [usize] {
    match t {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => &[],
    }
}

/// `n_rows` weight rows of `t`, `n_cols` each: random bytes (every code and packed-scale pattern, including the -128
/// of Q8_0) with finite random f16 scales, or, for types the reference can quantize, half the time a quantized
/// random matrix.
fn weights(rng: &mut Rng, t: GgmlType, n_rows: usize, n_cols: usize) -> Vec<u8> {
    let rb = r::row_bytes(t, n_cols);
    if t.block_size() > 1 && r::can_quantize(t) && rng.below(2) == 0 {
        let mut w = vec![0u8; rb * n_rows];
        for row in w.chunks_exact_mut(rb) {
            r::quantize_row(t, &activation(rng, n_cols), row);
        }
        return w;
    }
    match t {
        F32 => (0..n_rows * n_cols).flat_map(|_| rng.normal().to_le_bytes()).collect(),
        F16 => (0..n_rows * n_cols).flat_map(|_| rng.f16_bits().to_le_bytes()).collect(),
        // bf16: the top half of an f32, sane exponents only.
        BF16 => (0..n_rows * n_cols).flat_map(|_| ((rng.normal().to_bits() >> 16) as u16).to_le_bytes()).collect(),
        _ => {
            let mut w = rng.bytes(rb * n_rows);
            for b in w.chunks_exact_mut(t.type_size()) {
                for &off in f16_fields(t) {
                    b[off..off + 2].copy_from_slice(&rng.f16_bits().to_le_bytes());
                }
            }
            w
        }
    }
}

const WEIGHT_TYPES: [GgmlType; 13] = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, F16, BF16, F32];

/// Asserts `got` has the reference's exact bits.
fn assert_dot(t: GgmlType, n: usize, got: f32, want: f32, what: &str) {
    assert!(got.to_bits() == want.to_bits(), "{t} {what} n={n}: {got:e} vs reference {want:e}");
}

/// Quantizes `n_tok` activation rows with the dispatched kernel, checks them against the reference, then checks
/// vec_dot, matvec and matmul of `w` (`n_rows` rows) against the reference.
fn check_products(t: GgmlType, n_cols: usize, w: &[u8], acts: &[Vec<f32>], what: &str) {
    let ab = k::activation_row_bytes(t, n_cols);
    let n_rows = w.len() / r::row_bytes(t, n_cols);
    let n_tok = acts.len();
    let mut aq = vec![0u8; ab * n_tok];
    for (x, q) in acts.iter().zip(aq.chunks_exact_mut(ab)) {
        k::quantize_activation(t, x, q);
        let mut want = vec![0u8; ab];
        r::quantize_row(t.vec_dot_type(), x, &mut want);
        assert!(q == &want[..], "{t} {what}: quantize_activation ({}) differs from the reference", t.vec_dot_type());
    }
    let rb = r::row_bytes(t, n_cols);
    let mut out = vec![0.0f32; n_rows];
    let mut want = vec![0.0f32; n_rows];
    for (ti, a) in aq.chunks_exact(ab).enumerate() {
        k::matvec(t, n_cols, w, a, &mut out);
        r::matvec(t, n_cols, w, a, &mut want);
        for (ri, row) in w.chunks_exact(rb).enumerate() {
            let d = k::vec_dot(t, n_cols, row, a);
            assert_dot(t, n_cols, d, want[ri], &format!("{what} vec_dot row {ri} token {ti}"));
            assert_dot(t, n_cols, out[ri], want[ri], &format!("{what} matvec row {ri} token {ti}"));
        }
    }
    let mut out = vec![0.0f32; n_rows * n_tok];
    let mut want = vec![0.0f32; n_rows * n_tok];
    k::matmul(t, n_cols, w, &aq, n_tok, &mut out);
    r::matmul(t, n_cols, w, &aq, n_tok, &mut want);
    for (i, (&o, &e)) in out.iter().zip(&want).enumerate() {
        let (tok, row) = (i / n_rows, i % n_rows);
        assert_dot(t, n_cols, o, e, &format!("{what} matmul row {row} token {tok}"));
    }
}

#[wasm_bindgen_test]
fn random_rows_match_reference() {
    let mut rng = Rng(0x5eed_0001);
    for t in WEIGHT_TYPES {
        let bs = t.block_size();
        // Block counts 1..3 and a model-sized row; for float types every length mod 8 up to 2 chunks, plus 576.
        let cols: Vec<usize> = if bs == 1 { (1..=17).chain([64, 576]).collect() } else { vec![bs, 2 * bs, 3 * bs, 1536] };
        for (i, &n_cols) in cols.iter().enumerate() {
            let n_rows = [1, 3, 4, 5, 7, 8, 13][i % 7];
            let n_tok = [1, 2, 3, 4, 5, 7, 9][(i + 3) % 7];
            let w = weights(&mut rng, t, n_rows, n_cols);
            let acts: Vec<Vec<f32>> = (0..n_tok).map(|_| activation(&mut rng, n_cols)).collect();
            check_products(t, n_cols, &w, &acts, &format!("random {n_rows}x{n_cols}, {n_tok} tokens"));
        }
    }
}

/// Rows longer than the kernels' scale buffer (256 activation blocks): the running sums must carry across chunks.
#[wasm_bindgen_test]
fn long_rows_match_reference() {
    let mut rng = Rng(0x5eed_0004);
    for (t, blocks) in [(Q4_1, 300), (Q8_0, 257), (Q5_0, 513), (Q6_K, 257), (Q4_K, 258)] {
        let n_cols = blocks * t.block_size();
        let w = weights(&mut rng, t, 5, n_cols);
        let acts: Vec<Vec<f32>> = (0..5).map(|_| activation(&mut rng, n_cols)).collect();
        check_products(t, n_cols, &w, &acts, &format!("long 5x{n_cols}, 5 tokens"));
    }
}

/// Matrices of 4 MB and more take matvec's prefetching path (reads ahead into the next rows).
#[wasm_bindgen_test]
fn large_matrices_match_reference() {
    let mut rng = Rng(0x5eed_0006);
    for (t, rows) in [(Q8_0, 7001), (Q4_1, 12003), (Q5_0, 10601)] {
        let n_cols = 576;
        let w = weights(&mut rng, t, rows, n_cols);
        assert!(w.len() >= 4 << 20, "{t}: {} bytes", w.len());
        let x = activation(&mut rng, n_cols);
        let mut a = vec![0u8; k::activation_row_bytes(t, n_cols)];
        k::quantize_activation(t, &x, &mut a);
        let (mut got, mut want) = (vec![0.0f32; rows], vec![0.0f32; rows]);
        k::matvec(t, n_cols, &w, &a, &mut got);
        r::matvec(t, n_cols, &w, &a, &mut want);
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(g.to_bits() == e.to_bits(), "{t} {rows}x{n_cols} matvec row {i}: {g:e} vs reference {e:e}");
        }
    }
}

#[wasm_bindgen_test]
fn quantizers_match_reference_on_random_rows() {
    let mut rng = Rng(0x5eed_0002);
    for t in [Q8_0, Q8_1, Q8_K] {
        for blocks in [1, 2, 5, 9] {
            let n = blocks * t.block_size();
            let x = activation(&mut rng, n);
            let mut got = vec![0u8; r::row_bytes(t, n)];
            let mut want = got.clone();
            // A weight type whose activation type is `t`.
            let wt = match t {
                Q8_0 => Q8_0,
                Q8_1 => Q4_1,
                _ => Q4_K,
            };
            k::quantize_activation(wt, &x, &mut got);
            r::quantize_row(t, &x, &mut want);
            assert!(got == want, "{t}: {n} values quantize differently from the reference");
        }
    }
    // Q8_K's sign rule: the first value of largest magnitude decides the sign of the scale (ties of +a and -a).
    let mut x = vec![0.25f32; 256];
    x[10] = -3.0;
    x[20] = 3.0;
    let mut got = vec![0u8; 292];
    let mut want = got.clone();
    k::quantize_activation(Q6_K, &x, &mut got);
    r::quantize_row(Q8_K, &x, &mut want);
    assert!(got == want, "Q8_K with a +/- tie quantizes differently from the reference");
}

#[wasm_bindgen_test]
fn dequantize_matches_reference() {
    // Half-float edge cases through the vector path (8 values) and the tail: ±inf, NaN, -0, the smallest subnormal,
    // the largest subnormal, the largest finite half.
    let halves: [u16; 11] = [0x7c00, 0xfc00, 0x7e00, 0x8000, 0x0001, 0x03ff, 0x7bff, 0xfbff, 0x7c00, 0x8001, 0x3c00];
    let src: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let (mut got, mut want) = (vec![0.0f32; 11], vec![0.0f32; 11]);
    k::dequantize_row(F16, &src, &mut got);
    r::dequantize_row(F16, &src, &mut want);
    for i in 0..11 {
        let same = got[i].to_bits() == want[i].to_bits() || (got[i].is_nan() && want[i].is_nan());
        assert!(same, "F16 {:#06x}: {} vs reference {}", halves[i], got[i], want[i]);
    }
    let mut rng = Rng(0x5eed_0003);
    for t in [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q8_K, Q4_K, Q6_K] {
        let n = if t.block_size() == 1 { 37 } else { 3 * t.block_size() };
        let src = match t {
            Q8_1 | Q8_K => {
                let mut q = vec![0u8; r::row_bytes(t, n)];
                r::quantize_row(t, &activation(&mut rng, n), &mut q);
                q
            }
            _ => weights(&mut rng, t, 1, n),
        };
        let mut got = vec![0.0f32; n];
        let mut want = vec![0.0f32; n];
        k::dequantize_row(t, &src, &mut got);
        r::dequantize_row(t, &src, &mut want);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g.to_bits() == w.to_bits(), "{t} dequantize element {i}: {g} vs reference {w}");
        }
    }
}

/// One tensor of `tests/data/rows.bin`.
struct Rows {
    name: String,
    t: GgmlType,
    n_cols: usize,
    n_rows: usize,
    data: &'static [u8],
}

fn real_rows() -> Vec<Rows> {
    static BIN: &[u8] = include_bytes!("data/rows.bin");
    assert!(BIN.starts_with(b"PLMROWS1"), "rows.bin: bad magic");
    let u32_at = |o: usize| u32::from_le_bytes(BIN[o..o + 4].try_into().unwrap()) as usize;
    let count = u32_at(8);
    let mut off = 12;
    let mut out = Vec::new();
    for _ in 0..count {
        let nl = u32_at(off);
        let name = String::from_utf8(BIN[off + 4..off + 4 + nl].to_vec()).unwrap();
        off += 4 + nl;
        let (t, n_cols, n_rows, len) = (u32_at(off), u32_at(off + 4), u32_at(off + 8), u32_at(off + 12));
        off += 16;
        let t = GgmlType::from_id(t as u32).expect("rows.bin: known type");
        assert_eq!(len, r::row_bytes(t, n_cols) * n_rows, "rows.bin: {name} length");
        out.push(Rows { name, t, n_cols, n_rows, data: &BIN[off..off + len] });
        off += len;
    }
    assert_eq!(off, BIN.len(), "rows.bin: trailing bytes");
    out
}

/// Real activation-like rows of `n` values for a model: its dequantized token embeddings, concatenated and scaled
/// by its norm weights where the row is longer than one embedding.
fn real_activations(rows: &[Rows], model: &str, n: usize, n_tok: usize) -> Vec<Vec<f32>> {
    let emb = rows.iter().find(|r| r.name.starts_with(model) && r.name.ends_with("token_embd.weight")).unwrap();
    let norm = rows.iter().find(|r| r.name.starts_with(model) && r.t == F32 && r.n_cols == emb.n_cols).unwrap();
    let mut e = vec![0.0f32; emb.n_cols * emb.n_rows];
    r::dequantize_row(emb.t, emb.data, &mut e);
    let mut g = vec![0.0f32; norm.n_cols];
    r::dequantize_row(F32, norm.data, &mut g);
    (0..n_tok)
        .map(|t| {
            (0..n)
                .map(|i| {
                    let j = (t * emb.n_cols + i * 7) % e.len();
                    e[j] * if n > emb.n_cols { g[i % g.len()] } else { 1.0 }
                })
                .collect()
        })
        .collect()
}

#[wasm_bindgen_test]
fn real_rows_match_reference() {
    let rows = real_rows();
    assert!(rows.len() >= 10, "rows.bin holds {} tensors", rows.len());
    for w in &rows {
        let model = w.name.split(':').next().unwrap();
        if w.t == F32 {
            // Norm weights: as activations of every quantizer whose block size divides them.
            for wt in [Q8_0, Q4_1, Q4_K] {
                if w.n_cols % wt.vec_dot_type().block_size() != 0 {
                    continue;
                }
                let mut x = vec![0.0f32; w.n_cols];
                r::dequantize_row(F32, w.data, &mut x);
                let mut got = vec![0u8; k::activation_row_bytes(wt, w.n_cols)];
                let mut want = got.clone();
                k::quantize_activation(wt, &x, &mut got);
                r::quantize_row(wt.vec_dot_type(), &x, &mut want);
                assert!(got == want, "{}: quantizing for {wt} differs from the reference", w.name);
            }
            continue;
        }
        let acts = real_activations(&rows, model, w.n_cols, 5);
        check_products(w.t, w.n_cols, w.data, &acts, &w.name);
        let mut got = vec![0.0f32; w.n_cols];
        let mut want = got.clone();
        let rb = r::row_bytes(w.t, w.n_cols);
        for row in w.data.chunks_exact(rb) {
            k::dequantize_row(w.t, row, &mut got);
            r::dequantize_row(w.t, row, &mut want);
            assert!(
                got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{}: dequantize differs from the reference",
                w.name
            );
        }
    }
}

/// f32 rows for the ops: normal values at the given scale, with a few large-magnitude entries.
fn f32_row(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| if i % 13 == 5 { rng.unit() * 90.0 } else { rng.normal() * scale }).collect()
}

const OP_LENS: [usize; 15] = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 64, 100, 576, 1536];

fn assert_close(what: &str, n: usize, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f32) {
    for i in 0..got.len() {
        let (g, w) = (got[i], want[i]);
        let ok = g.to_bits() == w.to_bits() || (g - w).abs() <= tol(i);
        assert!(ok, "{what} n={n} [{i}]: {g:e} vs reference {w:e} (tolerance {:e})", tol(i));
    }
}

#[wasm_bindgen_test]
fn f32_ops_match_scalar_specification() {
    let mut rng = Rng(0x5eed_0005);
    for n in OP_LENS {
        for scale in [1e-3f32, 1.0, 30.0] {
            let (a, b) = (f32_row(&mut rng, n, scale), f32_row(&mut rng, n, 1.0));
            // dot_f32
            let (got, want) = (ops::dot_f32(&a, &b), ops::scalar::dot_f32(&a, &b));
            assert_close("dot_f32", n, &[got], &[want], |_| 0.0);
            // axpy
            let alpha = 0.37f32;
            let (mut y, mut y_ref) = (b.clone(), b.clone());
            ops::axpy(&mut y, alpha, &a);
            ops::scalar::axpy(&mut y_ref, alpha, &a);
            assert_close("axpy", n, &y, &y_ref, |_| 0.0);
            // scale, add_inplace: exact
            let (mut y, mut y_ref) = (a.clone(), a.clone());
            ops::scale(&mut y, -1.7);
            ops::scalar::scale(&mut y_ref, -1.7);
            assert_close("scale", n, &y, &y_ref, |_| 0.0);
            ops::add_inplace(&mut y, &b);
            ops::scalar::add_inplace(&mut y_ref, &b);
            assert_close("add_inplace", n, &y, &y_ref, |_| 0.0);
            // rmsnorm, out of place and in place
            let (mut o, mut o_ref) = (vec![0.0; n], vec![0.0; n]);
            ops::rmsnorm(&mut o, &a, &b, 1e-6);
            ops::scalar::rmsnorm(&mut o_ref, &a, &b, 1e-6);
            assert_close("rmsnorm", n, &o, &o_ref, |_| 0.0);
            let (mut x, mut x_ref) = (a.clone(), a.clone());
            ops::rmsnorm_inplace(&mut x, &b, 1e-5);
            ops::scalar::rmsnorm_inplace(&mut x_ref, &b, 1e-5);
            assert_close("rmsnorm_inplace", n, &x, &x_ref, |_| 0.0);
            // softmax, with masked (-inf) positions
            let (mut x, mut x_ref) = (a.clone(), a.clone());
            for i in (0..n).filter(|i| i % 7 == 3) {
                x[i] = f32::NEG_INFINITY;
                x_ref[i] = f32::NEG_INFINITY;
            }
            ops::softmax_inplace(&mut x);
            ops::scalar::softmax_inplace(&mut x_ref);
            assert_close("softmax", n, &x, &x_ref, |_| 0.0);
            for i in (0..n).filter(|i| i % 7 == 3) {
                assert!(x[i] == 0.0, "softmax n={n}: masked entry {i} is {}", x[i]);
            }
            // silu_mul, gelu_tanh_mul
            let (mut g, mut g_ref) = (a.clone(), a.clone());
            ops::silu_mul(&mut g, &b);
            ops::scalar::silu_mul(&mut g_ref, &b);
            assert_close("silu_mul", n, &g, &g_ref, |_| 0.0);
            let (mut g, mut g_ref) = (a.clone(), a.clone());
            ops::gelu_tanh_mul(&mut g, &b);
            ops::scalar::gelu_tanh_mul(&mut g_ref, &b);
            assert_close("gelu_tanh_mul", n, &g, &g_ref, |_| 0.0);
        }
    }
    // Attention of one head over a strided cache: every head size (multiple of 16, of 4, neither), lengths with
    // and without a tail of 4, rows longer than the head (GQA cache rows hold several heads).
    for hd in [64usize, 256, 20, 7] {
        for n in [1usize, 3, 4, 9, 130] {
            let stride = hd * 3;
            let q = f32_row(&mut rng, hd, 1.0);
            let keys = f32_row(&mut rng, (n - 1) * stride + hd, 1.0);
            let values = f32_row(&mut rng, (n - 1) * stride + hd, 1.0);
            let (mut s, mut s_ref) = (vec![0.0; n], vec![0.0; n]);
            let (mut o, mut o_ref) = (vec![0.0; hd], vec![0.0; hd]);
            ops::attend(&q, &keys, &values, stride, 0.125, &mut s, &mut o);
            ops::scalar::attend(&q, &keys, &values, stride, 0.125, &mut s_ref, &mut o_ref);
            assert_close("attend scores", n, &s, &s_ref, |_| 0.0);
            assert_close("attend output", hd, &o, &o_ref, |_| 0.0);
            // The same in pieces, as threads split it: scores of two runs of positions, softmax, then the values
            // of runs of columns (16-wide, 4-wide and odd) give the same bits as the whole.
            let mut s2 = vec![0.0; n];
            let cut = n / 2;
            ops::attn_scores(&q, &keys, stride, 0.125, &mut s2[..cut]);
            ops::attn_scores(&q, &keys[cut * stride..], stride, 0.125, &mut s2[cut..]);
            let mut s2_ref = vec![0.0; n];
            ops::scalar::attn_scores(&q, &keys, stride, 0.125, &mut s2_ref);
            assert_close("attn_scores", n, &s2, &s2_ref, |_| 0.0);
            ops::softmax_inplace(&mut s2);
            assert_close("attn_scores + softmax", n, &s2, &s, |_| 0.0);
            let mut o2 = vec![0.0; hd];
            let mut c0 = 0usize;
            for w in [16usize, 4, 3, usize::MAX] {
                let c1 = c0.saturating_add(w).min(hd);
                ops::attn_values(&s2, &values[c0..], stride, &mut o2[c0..c1]);
                let mut o2_ref = vec![0.0; c1 - c0];
                ops::scalar::attn_values(&s2, &values[c0..], stride, &mut o2_ref);
                assert_close("attn_values", c1 - c0, &o2[c0..c1], &o2_ref, |_| 0.0);
                c0 = c1;
            }
            assert_close("attn_values by columns", hd, &o2, &o, |_| 0.0);
        }
    }
    // All positions masked: zeros, not NaN.
    let mut x = vec![f32::NEG_INFINITY; 9];
    ops::softmax_inplace(&mut x);
    assert!(x.iter().all(|&v| v == 0.0), "softmax of all -inf: {x:?}");
}

/// f16 and q8_0 KV attention: the SIMD128 kernels (rows read in place) against `kv::scalar` (decode, then the f32
/// kernels' arithmetic), bit for bit, over head widths 64/256, key runs of every length mod 4, value column runs
/// of 16/4/3/rest at head-aligned and mid-block offsets, and q8_0 runs that start off a block (the fallback).
#[wasm_bindgen_test]
fn kv_attention_matches_scalar_specification() {
    use pocketlm_simd::kv::{self, BlockQ8, KvRows};
    let mut rng = Rng(0x5eed_0006);
    for (hd, n_kv_heads) in [(64usize, 3usize), (256, 1), (32, 2)] {
        let kvd = hd * n_kv_heads;
        for n in [1usize, 3, 4, 7, 37] {
            let keys = f32_row(&mut rng, n * kvd, 2.0);
            let vals = f32_row(&mut rng, n * kvd, 2.0);
            let q = f32_row(&mut rng, hd, 1.0);
            let mut probs = f32_row(&mut rng, n, 1.0);
            ops::softmax_inplace(&mut probs);
            let (mut k16, mut v16) = (vec![0u16; keys.len()], vec![0u16; vals.len()]);
            kv::store_f16(&keys, &mut k16);
            kv::store_f16(&vals, &mut v16);
            let (mut k8, mut v8) = (vec![BlockQ8::default(); keys.len() / 32], vec![BlockQ8::default(); vals.len() / 32]);
            kv::store_q8_0(&keys, &mut k8);
            kv::store_q8_0(&vals, &mut v8);
            for kh in 0..n_kv_heads {
                let at = kh * hd;
                for (name, kr, vr) in [
                    ("f16", KvRows::F16(&k16, 0), KvRows::F16(&v16, 0)),
                    ("q8_0", KvRows::Q8_0(&k8, 0), KvRows::Q8_0(&v8, 0)),
                ] {
                    let what = format!("{name} hd={hd} n={n} head {kh}");
                    let (mut s, mut s_ref) = (vec![0.0; n], vec![0.0; n]);
                    kv::attn_scores(&q, kr.skip(at), kvd, 0.125, &mut s);
                    kv::scalar::attn_scores(&q, kr.skip(at), kvd, 0.125, &mut s_ref);
                    assert_close(&format!("{what} scores"), n, &s, &s_ref, |_| 0.0);
                    // Column runs as attend_token splits them, plus odd widths and a run starting mid-block.
                    for (c0, w) in [(0, hd), (0, hd / 2), (hd / 2, hd / 2), (16, 16), (4, 4), (8, 3), (hd - 5, 5)] {
                        let (mut o, mut o_ref) = (vec![0.0; w], vec![0.0; w]);
                        kv::attn_values(&probs, vr.skip(at + c0), kvd, &mut o);
                        kv::scalar::attn_values(&probs, vr.skip(at + c0), kvd, &mut o_ref);
                        assert_close(&format!("{what} values cols {c0}+{w}"), n, &o, &o_ref, |_| 0.0);
                    }
                }
            }
            // The decoded rows are exactly the stored values: f16 decode of every f16 pattern met here.
            let mut dec = vec![0.0; kvd];
            KvRows::F16(&k16, 0).row_f32(0, &mut dec);
            for (i, (&h, &d)) in k16.iter().zip(&dec).enumerate() {
                assert_eq!(d.to_bits(), half::f16::from_bits(h).to_f32().to_bits(), "f16 decode [{i}]");
            }
        }
    }
}
