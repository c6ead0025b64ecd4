//! Sampler behaviour against independently computed expectations: argmax, softmax distributions (chi-square on
//! many seeded draws), the top-k / top-p / min-p candidate sets computed here from their definitions, and
//! llama.cpp's repetition-penalty rule.
use pocketlm::sampler::{Sampler, SamplerParams};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations made by the current thread (tests run on parallel threads, so a global count would mix).
struct CountingAlloc;
thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}
// SAFETY: forwards every call unchanged to the system allocator; the counter is a const-initialized thread-local
// Cell without destructor, so touching it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

/// Plain sampling at temperature `t`, every filter off.
fn plain(t: f32, seed: u64) -> SamplerParams {
    SamplerParams { temperature: t, top_k: 0, top_p: 1.0, min_p: 0.0, repeat_penalty: 1.0, repeat_last_n: 64, seed }
}

/// Deterministic pseudo-random logits for tests (an LCG, independent of the sampler's generator).
fn test_logits(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

fn argmax_ref(l: &[f32]) -> u32 {
    let mut best = 0;
    for i in 1..l.len() {
        if l[i] > l[best] {
            best = i;
        }
    }
    best as u32
}

fn softmax(l: &[f32], t: f64) -> Vec<f64> {
    let m = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = l.iter().map(|&x| ((x as f64 - m) / t).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// Draws `n` samples and returns the count per token.
fn histogram(s: &mut Sampler, logits: &[f32], n: usize) -> Vec<usize> {
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..n {
        let mut l = logits.to_vec();
        counts[s.sample(&mut l, &[]) as usize] += 1;
    }
    counts
}

/// Pearson chi-square of `counts` against probabilities `p` (tokens with p == 0 must have count 0).
fn chi_square(counts: &[usize], p: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    let mut chi = 0.0;
    for (&c, &pi) in counts.iter().zip(p) {
        if pi == 0.0 {
            assert_eq!(c, 0, "a token with probability 0 was drawn");
            continue;
        }
        let e = pi * n as f64;
        chi += (c as f64 - e).powi(2) / e;
    }
    chi
}

// Chi-square upper quantile 0.99999 for 7 degrees of freedom is ~35.3 and for 2 is ~23.0: a correct sampler with a
// fixed seed fails these with probability ~1e-5; a wrong distribution (e.g. temperature ignored) fails by far.
const CHI2_7DOF: f64 = 35.3;
const CHI2_2DOF: f64 = 23.0;

#[test]
fn greedy_is_argmax() {
    let mut s = Sampler::new(SamplerParams::greedy(), 1000).unwrap();
    for seed in 0..50 {
        let logits = test_logits(1000, seed, 5.0);
        let mut l = logits.clone();
        assert_eq!(s.sample(&mut l, &[]), argmax_ref(&logits));
    }
    // Exact tie: the lowest id; NaN never wins.
    let mut l = vec![0.0, 3.0, f32::NAN, 3.0];
    let mut s = Sampler::new(SamplerParams::greedy(), 4).unwrap();
    assert_eq!(s.sample(&mut l, &[]), 1);
    let mut l = vec![f32::NAN, -1.0, f32::NAN, -2.0];
    assert_eq!(s.sample(&mut l, &[]), 1);
}

#[test]
fn same_seed_same_sequence_different_seed_differs() {
    let logits = test_logits(64, 3, 1.0); // flat-ish: many plausible tokens
    let run = |seed: u64| {
        let mut s = Sampler::new(plain(1.0, seed), 64).unwrap();
        (0..200).map(|_| s.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    // reseed restarts the sequence.
    let mut s = Sampler::new(plain(1.0, 42), 64).unwrap();
    let first: Vec<u32> = (0..20).map(|_| s.sample(&mut logits.clone(), &[])).collect();
    s.reseed(42);
    let again: Vec<u32> = (0..20).map(|_| s.sample(&mut logits.clone(), &[])).collect();
    assert_eq!(first, again);
}

#[test]
fn top_k_one_is_greedy() {
    for seed in 0..50 {
        let logits = test_logits(500, seed, 2.0);
        let p = SamplerParams { top_k: 1, ..plain(1.5, seed) };
        let mut s = Sampler::new(p, 500).unwrap();
        for _ in 0..5 {
            assert_eq!(s.sample(&mut logits.clone(), &[]), argmax_ref(&logits));
        }
    }
}

#[test]
fn tiny_top_p_is_argmax() {
    for seed in 0..50 {
        let logits = test_logits(500, seed + 100, 2.0);
        let p = SamplerParams { top_p: 1e-6, ..plain(1.0, seed) };
        let mut s = Sampler::new(p, 500).unwrap();
        for _ in 0..5 {
            assert_eq!(s.sample(&mut logits.clone(), &[]), argmax_ref(&logits));
        }
    }
}

#[test]
fn min_p_filters() {
    // Probabilities at temperature 1 ~ [0.47, 0.29, 0.17, 0.064, 0.0064...]; min_p 0.5 keeps tokens with
    // p >= 0.5 * p_max, i.e. exactly ids 0 and 1 (p1/p0 = e^-0.5 = 0.61, p2/p0 = e^-1 = 0.37).
    let logits = vec![0.0, -0.5, -1.0, -2.0, -4.3, -5.0];
    let p = SamplerParams { min_p: 0.5, ..plain(1.0, 9) };
    let mut s = Sampler::new(p, logits.len()).unwrap();
    let counts = histogram(&mut s, &logits, 20_000);
    assert!(counts[2..].iter().all(|&c| c == 0), "{counts:?}");
    // Within the kept pair, the draw follows the renormalized softmax.
    let kept = softmax(&logits[..2], 1.0);
    let chi = chi_square(&counts[..2], &kept);
    assert!(chi < 20.0, "chi-square {chi} for {counts:?}"); // 1 dof, 0.99999 quantile ~19.5
}

#[test]
fn repetition_penalty_rule() {
    let greedy_pen = |pen: f32, last_n: usize| SamplerParams {
        repeat_penalty: pen,
        repeat_last_n: last_n,
        ..SamplerParams::greedy()
    };
    // Positive logit divided: 2.0 / 1.1 = 1.818 < 1.9, so the pick moves from 0 to 1.
    let mut s = Sampler::new(greedy_pen(1.1, 64), 4).unwrap();
    let mut l = vec![2.0, 1.9, -1.0, -0.5];
    assert_eq!(s.sample(&mut l.clone(), &[]), 0);
    assert_eq!(s.sample(&mut l, &[0]), 1);
    assert!((l[0] - 2.0 / 1.1).abs() < 1e-6 && l[1] == 1.9);
    // Negative logit multiplied: -1.0 * 1.1 = -1.1 < -1.05.
    let mut l = vec![-1.0, -1.05, -3.0, -2.0];
    assert_eq!(s.sample(&mut l, &[0]), 1);
    assert!((l[0] + 1.1).abs() < 1e-6);
    // Each distinct id once: [0, 0] gives 2.0/1.1 = 1.818 > 1.7 (twice would be 1.65 < 1.7).
    let mut l = vec![2.0, 1.7, 0.0, 0.0];
    assert_eq!(s.sample(&mut l, &[0, 0, 0]), 0);
    // Only the last repeat_last_n ids count: with a window of 2, the 0 at the front is outside.
    let mut s = Sampler::new(greedy_pen(1.1, 2), 4).unwrap();
    let mut l = vec![2.0, 1.9, -1.0, -0.5];
    assert_eq!(s.sample(&mut l, &[0, 3, 3]), 0);
    // Out-of-vocabulary history ids are ignored; penalty 1 is a no-op.
    let mut l = vec![2.0, 1.9, -1.0, -0.5];
    assert_eq!(s.sample(&mut l, &[99, u32::MAX]), 0);
    let mut s = Sampler::new(greedy_pen(1.0, 64), 4).unwrap();
    let mut l = vec![2.0, 1.9, -1.0, -0.5];
    assert_eq!(s.sample(&mut l, &[0]), 0);
    assert_eq!(l, vec![2.0, 1.9, -1.0, -0.5]);
}

#[test]
fn distribution_matches_softmax() {
    let logits = vec![1.0, 0.5, 0.0, -0.5, 2.0, -1.0, 0.25, 1.5];
    for (t, seed) in [(1.0f32, 1u64), (0.5, 2), (2.0, 3)] {
        let mut s = Sampler::new(plain(t, seed), logits.len()).unwrap();
        let counts = histogram(&mut s, &logits, 100_000);
        let chi = chi_square(&counts, &softmax(&logits, t as f64));
        assert!(chi < CHI2_7DOF, "temperature {t}: chi-square {chi}, counts {counts:?}");
        // A wrong temperature is detected by the same statistic (guards the test itself).
        let wrong = softmax(&logits, if t == 1.0 { 1.3 } else { 1.0 });
        assert!(chi_square(&counts, &wrong) > 10.0 * CHI2_7DOF);
    }
}

#[test]
fn top_k_and_top_p_distributions() {
    let logits = vec![1.0, 0.5, 0.0, -0.5, 2.0, -1.0, 0.25, 1.5];
    // top-k 3 keeps ids 4, 7, 0 (logits 2.0, 1.5, 1.0) with renormalized softmax.
    let mut s = Sampler::new(SamplerParams { top_k: 3, ..plain(1.0, 5) }, 8).unwrap();
    let counts = histogram(&mut s, &logits, 60_000);
    let mut p = vec![0.0; 8];
    let kept = softmax(&[1.0, 2.0, 1.5], 1.0);
    (p[0], p[4], p[7]) = (kept[0], kept[1], kept[2]);
    let chi = chi_square(&counts, &p);
    assert!(chi < CHI2_2DOF, "top-k chi-square {chi}, counts {counts:?}");

    // top-p: the smallest most-likely prefix reaching 0.6, computed here from the definition.
    let full = softmax(&logits, 1.0);
    let mut order: Vec<usize> = (0..8).collect();
    order.sort_by(|&a, &b| full[b].partial_cmp(&full[a]).unwrap());
    let mut acc = 0.0;
    let mut keep = Vec::new();
    for &i in &order {
        keep.push(i);
        acc += full[i];
        if acc >= 0.6 {
            break;
        }
    }
    assert!(keep.len() >= 2 && keep.len() < 8);
    let z: f64 = keep.iter().map(|&i| full[i]).sum();
    let mut p = vec![0.0; 8];
    for &i in &keep {
        p[i] = full[i] / z;
    }
    let mut s = Sampler::new(SamplerParams { top_p: 0.6, ..plain(1.0, 6) }, 8).unwrap();
    let counts = histogram(&mut s, &logits, 60_000);
    let chi = chi_square(&counts, &p);
    assert!(chi < CHI2_7DOF, "top-p keep {keep:?}: chi-square {chi}, counts {counts:?}");
}

#[test]
fn invalid_params_rejected() {
    let ok = SamplerParams::default();
    assert!(Sampler::new(ok.clone(), 10).is_ok());
    let cases = [
        SamplerParams { temperature: f32::NAN, ..ok.clone() },
        SamplerParams { temperature: -0.1, ..ok.clone() },
        SamplerParams { temperature: f32::INFINITY, ..ok.clone() },
        SamplerParams { top_p: 0.0, ..ok.clone() },
        SamplerParams { top_p: 1.5, ..ok.clone() },
        SamplerParams { top_p: f32::NAN, ..ok.clone() },
        SamplerParams { min_p: -0.01, ..ok.clone() },
        SamplerParams { min_p: 1.01, ..ok.clone() },
        SamplerParams { min_p: f32::NAN, ..ok.clone() },
        SamplerParams { repeat_penalty: 0.0, ..ok.clone() },
        SamplerParams { repeat_penalty: -1.0, ..ok.clone() },
        SamplerParams { repeat_penalty: f32::NAN, ..ok.clone() },
    ];
    for p in cases {
        let e = Sampler::new(p.clone(), 10).expect_err(&format!("{p:?} accepted"));
        assert_eq!(e.code(), "invalid-argument", "{p:?}: {e}");
    }
    assert_eq!(Sampler::new(ok, 0).unwrap_err().code(), "invalid-argument");
}

#[test]
fn params_json_defaults() {
    let d = SamplerParams::default();
    let got = (d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.repeat_last_n);
    assert_eq!(got, (0.8, 40, 0.95, 0.05, 1.0, 64));
    let p: SamplerParams = serde_json::from_str(r#"{"temperature": 0, "seed": 7}"#).unwrap();
    assert_eq!(p, SamplerParams { temperature: 0.0, seed: 7, ..d.clone() });
    let back: SamplerParams = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
    assert_eq!(back, d);
}

#[test]
fn degenerate_logits() {
    // All -inf or NaN: still an in-range id, no panic.
    let mut s = Sampler::new(plain(1.0, 1), 5).unwrap();
    assert!(s.sample(&mut vec![f32::NEG_INFINITY; 5], &[]) < 5);
    assert!(s.sample(&mut vec![f32::NAN; 5], &[]) < 5);
    // NaN and -inf are never drawn while a finite logit exists.
    for _ in 0..200 {
        let mut l = vec![f32::NAN, 0.0, f32::NEG_INFINITY, -0.1, f32::NAN];
        let t = s.sample(&mut l, &[]);
        assert!(t == 1 || t == 3, "{t}");
    }
}

#[test]
fn sample_does_not_allocate() {
    let n = 5000;
    let logits = test_logits(n, 11, 3.0);
    let history: Vec<u32> = (0..100).map(|i| (i * 37 % n) as u32).collect();
    for p in [
        SamplerParams { repeat_penalty: 1.3, ..plain(0.9, 1) },           // full sort
        SamplerParams { top_k: 50, top_p: 0.9, min_p: 0.05, repeat_penalty: 1.1, ..plain(0.7, 2) },
        SamplerParams { repeat_penalty: 1.2, ..SamplerParams::greedy() },
    ] {
        let mut s = Sampler::new(p, n).unwrap();
        let mut buf = logits.clone();
        let before = allocs();
        for _ in 0..20 {
            buf.copy_from_slice(&logits);
            s.sample(&mut buf, &history);
        }
        assert_eq!(allocs() - before, 0, "{:?}", s.params());
    }
    // The counter works (guards the test itself).
    let before = allocs();
    let v = vec![1u8; 10];
    assert!(allocs() > before && v.len() == 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Any valid parameters: the pick is in range and among the top_k largest logits (ties included).
    #[test]
    fn pick_respects_top_k(
        logits in prop::collection::vec(-20.0f32..20.0, 1..300),
        temp in 0.0f32..3.0, k in 0usize..20, top_p in 0.01f32..=1.0, min_p in 0.0f32..=1.0,
        seed in any::<u64>(),
    ) {
        let n = logits.len();
        let p = SamplerParams {
            temperature: temp, top_k: k, top_p, min_p, repeat_penalty: 1.0, repeat_last_n: 0, seed,
        };
        let mut s = Sampler::new(p, n).unwrap();
        let t = s.sample(&mut logits.clone(), &[]) as usize;
        prop_assert!(t < n);
        if k > 0 {
            let above = logits.iter().filter(|&&x| x > logits[t]).count();
            prop_assert!(above < k, "picked {} with {} larger logits, k = {}", t, above, k);
        }
        // min_p is relative to the best token at the sampling temperature: the pick passes it.
        if temp > 0.0 {
            let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let rel = (((logits[t] - m) / temp) as f64).exp();
            prop_assert!(rel >= min_p as f64 * 0.999 || logits[t] == m);
        }
    }
}
