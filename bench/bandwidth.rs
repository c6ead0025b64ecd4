//! Single-core memory read bandwidth probe for `make bench` (built with plain `rustc -O`, no dependencies).
//!
//! Decoding one token streams every weight matrix through the core once, so tokens/s cannot exceed
//! (read bandwidth of one core) / (weight bytes per token). This measures that bandwidth the simplest honest way:
//! sum a buffer far larger than the last-level cache (default 1 GiB of u64, L3 here is 32 MiB), several passes,
//! one thread. Eight independent accumulators so the loop is limited by loads, not by an add dependency chain.
//! Prints one JSON line: {"bytes", "passes", "best_gb_s", "median_gb_s"} (GB = 1e9 bytes).
//!
//!   bandwidth [MiB] [passes]

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let passes: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let n = mib * (1 << 20) / 8;
    // Written once so every page is really backed by memory (an untouched allocation would read the zero page).
    let buf: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
    let mut rates = Vec::with_capacity(passes);
    let mut check = 0u64;
    for _ in 0..passes {
        let t0 = Instant::now();
        let mut acc = [0u64; 8];
        // black_box: the sum is the same every pass; without it the compiler may compute it once.
        let data: &[u64] = std::hint::black_box(&buf[..]);
        let chunks = data.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for k in 0..8 {
                acc[k] = acc[k].wrapping_add(c[k]);
            }
        }
        let mut s = acc.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        for &x in rest {
            s = s.wrapping_add(x);
        }
        let secs = t0.elapsed().as_secs_f64();
        // The sum is used (printed), so the loop cannot be optimized away.
        check ^= std::hint::black_box(s);
        rates.push((n * 8) as f64 / secs / 1e9);
    }
    let best = rates.iter().cloned().fold(0.0f64, f64::max);
    let mut sorted = rates.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = sorted[sorted.len() / 2];
    println!(
        "{{\"bytes\":{},\"passes\":{},\"best_gb_s\":{:.3},\"median_gb_s\":{:.3},\"checksum\":{}}}",
        n * 8,
        passes,
        best,
        median,
        check
    );
}
