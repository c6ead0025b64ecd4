//! Kernel benchmark, not a test: every function is `#[ignore]`d. Run by `scripts/bench_kernels.sh` (`make
//! bench-kernels`), which runs it natively (the scalar reference) and in headless Chromium for the SIMD128 and the
//! relaxed-SIMD builds (the scalar reference compiled to wasm alongside), then prints one table.
//!
//! Output lines (stdout natively, `console.log` in the browser, which the test runner forwards with `--nocapture`):
//! `BENCH <kind> <variant> <type> <shape> <GB/s> <µs per call>`, GB/s = weight bytes streamed per second.
//! kind: `matvec` (one token), `matmul64` (64 tokens; weights are read once per call, so GB/s is weight bytes x 64
//! tokens / time, the rate at which weight-times-token work is done), `quant` (activation quantizer, f32 bytes in),
//! `ops` (f32 ops, bytes of input vectors).

use pocketlm_simd::{self as k, ops, reference as r, GgmlType, GgmlType::*};
use std::hint::black_box;

#[cfg(target_arch = "wasm32")]
// In a dedicated worker, as the engine runs: the page stays responsive for the test runner while kernels spin.
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

macro_rules! say {
    ($($t:tt)*) => {{
        #[cfg(target_arch = "wasm32")]
        wasm_bindgen_test::console_log!($($t)*);
        #[cfg(not(target_arch = "wasm32"))]
        println!($($t)*);
    }};
}

fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        // `performance.now()` of the worker's global scope (sub-millisecond, unlike `Date.now()`).
        use js_sys::{Function, Reflect};
        let perf = Reflect::get(&js_sys::global(), &"performance".into()).expect("performance");
        let now: Function = Reflect::get(&perf, &"now".into()).expect("performance.now").into();
        now.call0(&perf).expect("performance.now()").as_f64().expect("a number")
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static T0: OnceLock<Instant> = OnceLock::new();
        T0.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
    }
}

/// Runs `f` for about `ms` milliseconds: in the browser a function starts in V8's baseline compiler and is optimized
/// in the background once it is hot, so each kernel is warmed up before it is timed.
fn warm_up(ms: f64, mut f: impl FnMut()) {
    let t0 = now_ms();
    while now_ms() - t0 < ms {
        f();
    }
}

/// Seconds per call of `f`: the best of 3 batches of >= 20 ms (the machine may be shared: the best batch is the
/// least disturbed one).
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut reps = 1;
    loop {
        let t0 = now_ms();
        for _ in 0..reps {
            f();
        }
        if now_ms() - t0 >= 5.0 {
            break;
        }
        reps *= 4;
    }
    let t0 = now_ms();
    for _ in 0..reps {
        f();
    }
    let once = (now_ms() - t0).max(1e-3) / reps as f64;
    let reps = ((20.0 / once).ceil() as usize).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t0 = now_ms();
        for _ in 0..reps {
            f();
        }
        best = best.min((now_ms() - t0) / reps as f64);
    }
    best / 1e3
}

/// Labels of the kernels under test: the scalar reference, and the dispatched kernels when they differ from it.
fn variants() -> (&'static str, Option<&'static str>) {
    if cfg!(target_arch = "wasm32") {
        let simd = if cfg!(target_feature = "relaxed-simd") { "relaxed" } else { "simd128" };
        ("wasm-scalar", Some(simd))
    } else {
        ("native-scalar", None)
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Random weights with small finite f16 scales (the speed of the kernels does not depend on the values).
fn weights(rng: &mut Rng, t: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let mut w: Vec<u8> = (0..r::row_bytes(t, cols) * rows).map(|_| rng.next() as u8).collect();
    let scale = 0x2000u16.to_le_bytes(); // 2^-7
    let fields: &[usize] = match t {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        F16 | BF16 => &[],
        _ => &[],
    };
    match t {
        F32 => return (0..rows * cols).flat_map(|_| rng.unit().to_le_bytes()).collect(),
        F16 | BF16 => {
            for h in w.chunks_exact_mut(2) {
                h[1] &= 0x3f; // keep exponents small: finite values
            }
        }
        _ => {
            for b in w.chunks_exact_mut(t.type_size()) {
                for &o in fields {
                    b[o..o + 2].copy_from_slice(&scale);
                }
            }
        }
    }
    w
}

/// SmolLM2-135M's matrix shapes (rows x cols): attn_q/attn_output, attn_k/attn_v, ffn_gate/ffn_up, ffn_down, the
/// tied output head. K types need cols % 256 == 0, so their 576 becomes 768.
const SHAPES: [(usize, usize); 5] = [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)];

fn cols_for(t: GgmlType, cols: usize) -> usize {
    cols.div_ceil(t.vec_dot_type().block_size().max(t.block_size())) * t.vec_dot_type().block_size().max(t.block_size())
}

fn report(kind: &str, variant: &str, t: &str, shape: &str, bytes: f64, secs: f64) {
    say!("BENCH {kind} {variant} {t} {shape} {:.2} {:.1}", bytes / secs / 1e9, secs * 1e6);
}

/// matvec at every shape, then matmul over 64 tokens at the ffn_up shape, scalar reference then SIMD.
fn bench_type(t: GgmlType) {
    let (scalar, simd) = variants();
    let mut rng = Rng(42);
    for (rows, cols) in SHAPES {
        let cols = cols_for(t, cols);
        let shape = format!("{rows}x{cols}");
        let w = weights(&mut rng, t, rows, cols);
        let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
        let mut a = vec![0u8; k::activation_row_bytes(t, cols)];
        k::quantize_activation(t, &x, &mut a);
        let mut out = vec![0.0f32; rows];
        let bytes = w.len() as f64;
        if rows == SHAPES[0].0 {
            warm_up(200.0, || r::matvec(t, cols, black_box(&w), black_box(&a), &mut out));
            warm_up(200.0, || k::matvec(t, cols, black_box(&w), black_box(&a), &mut out));
        }
        let secs = time(|| r::matvec(t, cols, black_box(&w), black_box(&a), &mut out));
        report("matvec", scalar, t.name(), &shape, bytes, secs);
        if let Some(simd) = simd {
            let secs = time(|| k::matvec(t, cols, black_box(&w), black_box(&a), &mut out));
            report("matvec", simd, t.name(), &shape, bytes, secs);
        }
    }
    const N_TOK: usize = 64;
    let (rows, cols) = (1536, cols_for(t, 576));
    let shape = format!("{rows}x{cols}");
    let w = weights(&mut rng, t, rows, cols);
    let x: Vec<f32> = (0..cols * N_TOK).map(|_| rng.unit()).collect();
    let ab = k::activation_row_bytes(t, cols);
    let mut a = vec![0u8; ab * N_TOK];
    for (x, a) in x.chunks_exact(cols).zip(a.chunks_exact_mut(ab)) {
        k::quantize_activation(t, x, a);
    }
    let mut out = vec![0.0f32; rows * N_TOK];
    let bytes = (w.len() * N_TOK) as f64;
    warm_up(200.0, || k::matmul(t, cols, black_box(&w), black_box(&a), N_TOK, &mut out));
    let secs = time(|| r::matmul(t, cols, black_box(&w), black_box(&a), N_TOK, &mut out));
    report("matmul64", scalar, t.name(), &shape, bytes, secs);
    if let Some(simd) = simd {
        let secs = time(|| k::matmul(t, cols, black_box(&w), black_box(&a), N_TOK, &mut out));
        report("matmul64", simd, t.name(), &shape, bytes, secs);
    }
}

/// One benchmark per weight type (each a separate test, so a run can be filtered by name, e.g. `bench_q4_1`).
macro_rules! bench_types {
    ($($name:ident: $t:expr),* $(,)?) => {$(
        #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
        #[cfg_attr(not(target_arch = "wasm32"), test)]
        #[ignore = "benchmark: run by scripts/bench_kernels.sh"]
        fn $name() {
            bench_type($t);
        }
    )*};
}

bench_types! {
    bench_q4_1: Q4_1, bench_q8_0: Q8_0, bench_q4_0: Q4_0, bench_q5_0: Q5_0, bench_q5_1: Q5_1, bench_q4_k: Q4_K,
    bench_q6_k: Q6_K, bench_q2_k: Q2_K, bench_q3_k: Q3_K, bench_q5_k: Q5_K, bench_f16: F16, bench_bf16: BF16,
    bench_f32: F32,
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
#[ignore = "benchmark: run by scripts/bench_kernels.sh"]
fn bench_quantize_and_ops() {
    let (scalar, simd) = variants();
    let mut rng = Rng(44);
    let n = 1536;
    let x: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
    let bytes = (n * 4) as f64;
    for (wt, at) in [(Q8_0, Q8_0), (Q4_1, Q8_1), (Q4_K, Q8_K)] {
        let mut q = vec![0u8; r::row_bytes(at, n)];
        warm_up(100.0, || r::quantize_row(at, black_box(&x), &mut q));
        warm_up(100.0, || k::quantize_activation(wt, black_box(&x), &mut q));
        let secs = time(|| r::quantize_row(at, black_box(&x), &mut q));
        report("quant", scalar, at.name(), &n.to_string(), bytes, secs);
        if let Some(simd) = simd {
            let secs = time(|| k::quantize_activation(wt, black_box(&x), &mut q));
            report("quant", simd, at.name(), &n.to_string(), bytes, secs);
        }
    }
    // The f32 ops: the scalar specification, then the dispatched version the forward pass calls.
    let mut z = y.clone();
    let mut sink = 0.0f32;
    macro_rules! op {
        ($name:literal, $bytes:expr, |$m:ident| $call:expr) => {{
            {
                use ops::scalar as $m;
                warm_up(100.0, || $call);
                let secs = time(|| $call);
                report("ops", scalar, $name, &n.to_string(), $bytes, secs);
            }
            if let Some(simd) = simd {
                use ops as $m;
                warm_up(100.0, || $call);
                let secs = time(|| $call);
                report("ops", simd, $name, &n.to_string(), $bytes, secs);
            }
        }};
    }
    // black_box: the inputs are loop-invariant, and a pure inlined op would otherwise be computed once.
    op!("dot_f32", 2.0 * bytes, |m| sink += m::dot_f32(black_box(&x), black_box(&y)));
    op!("axpy", 2.0 * bytes, |m| m::axpy(black_box(&mut z), 1e-3, black_box(&x)));
    op!("rmsnorm", 2.0 * bytes, |m| m::rmsnorm(black_box(&mut z), black_box(&x), &y, 1e-5));
    op!("softmax", bytes, |m| {
        z.copy_from_slice(&x);
        m::softmax_inplace(black_box(&mut z))
    });
    op!("silu_mul", 2.0 * bytes, |m| {
        z.copy_from_slice(&x);
        m::silu_mul(black_box(&mut z), &y)
    });
    op!("gelu_mul", 2.0 * bytes, |m| {
        z.copy_from_slice(&x);
        m::gelu_tanh_mul(black_box(&mut z), &y)
    });
    assert!(sink.is_finite());
}
