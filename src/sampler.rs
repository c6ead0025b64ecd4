//! Next-token sampling: repetition penalty, then greedy or top-k -> softmax(temperature) -> top-p -> min-p -> draw.
//!
//! Pure Rust with its own seeded generator (xoshiro256** seeded through splitmix64), so the same seed gives the same
//! tokens on the host and on wasm32. A [`Sampler`] owns one vocab-sized candidate buffer allocated in
//! [`Sampler::new`] plus a vocab-sized stamp buffer for the penalty; [`Sampler::sample`] allocates nothing.
//!
//! Order of the stages (differs from llama.cpp in one respect, on purpose): llama.cpp's default chain applies top-p
//! and min-p to the untempered distribution and the temperature last; here the temperature is applied first, so
//! top-p and min-p act on the distribution that is actually drawn from (a higher temperature widens the nucleus).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Sampling settings. Missing fields in JSON take the [`Default`] values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerParams {
    /// Softmax temperature; `0` means greedy (argmax, lowest id on an exact tie). Must be finite and `>= 0`.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` = off.
    pub top_k: usize,
    /// Nucleus: keep the smallest set of most likely tokens whose probability sums to at least `top_p`.
    /// In `(0, 1]`; `1` = off.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the most likely token's. In `[0, 1]`; `0` = off.
    pub min_p: f32,
    /// Penalty for tokens among the last `repeat_last_n` ids of the history (each distinct id once): a positive
    /// logit is divided by it, a negative one multiplied (llama.cpp's rule). Finite and `> 0`; `1` = off.
    pub repeat_penalty: f32,
    /// How many of the most recent history ids the penalty looks at; `0` = none.
    pub repeat_last_n: usize,
    /// Seed of the random generator (draws are reproducible for a given seed and call sequence).
    pub seed: u64,
}

impl Default for SamplerParams {
    /// llama.cpp's command-line defaults (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no repetition
    /// penalty over a 64-token window), except the seed: fixed at 0 rather than random, so runs reproduce unless
    /// the caller picks a seed.
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding (temperature 0), everything else at its default.
    pub fn greedy() -> Self {
        SamplerParams { temperature: 0.0, ..Default::default() }
    }

    /// Checks every field's range; the error names the field and the value.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(format!("temperature must be a finite number >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.min_p >= 0.0 && self.min_p <= 1.0) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad(format!("repeat_penalty must be a finite number > 0, got {}", self.repeat_penalty));
        }
        Ok(())
    }
}

/// xoshiro256** (Blackman & Vigna), state filled from the seed with splitmix64 as its authors recommend.
#[derive(Clone, Debug)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        // splitmix64 never yields four zero words in a row, so the state is never all-zero (xoshiro's one bad state).
        Rng { s: [next(), next(), next(), next()] }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// One candidate token: its id and, in turn, its logit then its (unnormalized) probability.
#[derive(Clone, Copy, Debug)]
struct Cand {
    id: u32,
    v: f32,
}

/// A configured sampler for one vocabulary size. Keep one per generation; its random state advances per draw.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    vocab_size: usize,
    rng: Rng,
    /// Candidates, capacity `vocab_size` (allocated once).
    cand: Vec<Cand>,
    /// `stamp[id] == epoch` marks an id already penalized during the current call; `vocab_size` entries.
    stamp: Vec<u32>,
    epoch: u32,
}

impl Sampler {
    /// A sampler for logits of `vocab_size` entries. Fails with [`Error::InvalidArgument`] on out-of-range
    /// parameters, a zero vocabulary, or one too large for u32 token ids.
    pub fn new(params: SamplerParams, vocab_size: usize) -> Result<Self> {
        params.validate()?;
        if vocab_size == 0 || vocab_size > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!("vocab_size must be in 1..=u32::MAX, got {vocab_size}")));
        }
        let mut cand = Vec::new();
        cand.try_reserve_exact(vocab_size)
            .map_err(|_| Error::OutOfMemory(format!("sampler buffer for {vocab_size} candidates")))?;
        let mut stamp = Vec::new();
        stamp
            .try_reserve_exact(vocab_size)
            .map_err(|_| Error::OutOfMemory(format!("sampler buffer for {vocab_size} ids")))?;
        stamp.resize(vocab_size, 0);
        Ok(Sampler { rng: Rng::new(params.seed), params, vocab_size, cand, stamp, epoch: 0 })
    }

    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Restarts the random sequence as if the sampler had just been made with `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.params.seed = seed;
        self.rng = Rng::new(seed);
    }

    /// Picks the next token id from `logits` (one per vocabulary entry; modified in place by the repetition
    /// penalty) given the ids so far (`history`, oldest first).
    ///
    /// `logits` should hold exactly `vocab_size` values; only the first `min(len, vocab_size)` are read (0 is
    /// returned for an empty slice). NaN logits are never picked; history ids outside the vocabulary are ignored.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        debug_assert_eq!(logits.len(), self.vocab_size, "logits length != vocab size");
        let n = logits.len().min(self.vocab_size);
        let logits = &mut logits[..n];
        if n == 0 {
            return 0;
        }
        self.apply_repeat_penalty(logits, history);
        if self.params.temperature <= 0.0 {
            return argmax(logits);
        }
        self.sample_tempered(logits)
    }

    fn apply_repeat_penalty(&mut self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        if p.repeat_penalty == 1.0 || p.repeat_last_n == 0 || history.is_empty() {
            return;
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: old stamps could collide with the new epoch.
            self.stamp.fill(0);
            self.epoch = 1;
        }
        let window = &history[history.len().saturating_sub(p.repeat_last_n)..];
        for &id in window {
            let i = id as usize;
            if i >= logits.len() || self.stamp[i] == self.epoch {
                continue;
            }
            self.stamp[i] = self.epoch;
            let l = &mut logits[i];
            if *l > 0.0 {
                *l /= p.repeat_penalty;
            } else {
                *l *= p.repeat_penalty;
            }
        }
    }

    fn sample_tempered(&mut self, logits: &[f32]) -> u32 {
        let p = self.params.clone();
        let cand = &mut self.cand;
        cand.clear(); // keeps the capacity: no allocation below (n <= vocab_size = capacity)
        cand.extend(logits.iter().enumerate().map(|(i, &l)| Cand {
            id: i as u32,
            v: if l.is_nan() { f32::NEG_INFINITY } else { l },
        }));
        // Descending logit, ties by ascending id: a total order, so the result does not depend on the sort.
        let by_logit = |a: &Cand, b: &Cand| b.v.total_cmp(&a.v).then(a.id.cmp(&b.id));
        if p.top_k > 0 && p.top_k < cand.len() {
            cand.select_nth_unstable_by(p.top_k - 1, by_logit);
            cand.truncate(p.top_k);
        }
        cand.sort_unstable_by(by_logit);
        let max = cand[0].v;
        if !max.is_finite() {
            // All -inf/NaN (or +inf, where softmax is undefined): fall back to the first in order.
            return cand[0].id;
        }
        // Softmax with temperature, in f64 so small probabilities keep their relative size. cand[0] has p = 1.
        let inv_t = 1.0 / p.temperature as f64;
        let mut total = 0.0f64;
        for c in cand.iter_mut() {
            let e = libm::exp((c.v as f64 - max as f64) * inv_t);
            c.v = e as f32;
            total += e;
        }
        // Top-p: smallest prefix whose probability reaches top_p (at least one token).
        if p.top_p < 1.0 {
            let target = p.top_p as f64 * total;
            let mut acc = 0.0f64;
            let mut keep = cand.len();
            for (i, c) in cand.iter().enumerate() {
                acc += c.v as f64;
                if acc >= target {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep);
        }
        // Min-p: relative to the most likely token, whose unnormalized probability is exactly 1.
        if p.min_p > 0.0 {
            let keep = cand.iter().take_while(|c| c.v >= p.min_p).count().max(1);
            cand.truncate(keep);
        }
        let total: f64 = cand.iter().map(|c| c.v as f64).sum();
        let u = self.rng.next_f64() * total;
        let mut acc = 0.0f64;
        for c in cand.iter() {
            acc += c.v as f64;
            if u < acc {
                return c.id;
            }
        }
        // Rounding left u at (or past) the end: the last token with non-zero probability.
        cand.iter().rev().find(|c| c.v > 0.0).map_or(cand[0].id, |c| c.id)
    }
}

/// Constrained decoding's first step, before the penalty, temperature, top-k, top-p and min-p: every logit whose
/// bit is clear in `allowed` (bit `i % 32` of word `i / 32` stands for id `i`) becomes -inf, so no later stage can
/// pick it. Ids past the bitset are disallowed too.
pub fn mask_logits(logits: &mut [f32], allowed: &[u32]) {
    for (w, chunk) in logits.chunks_mut(32).enumerate() {
        let bits = allowed.get(w).copied().unwrap_or(0);
        if bits == u32::MAX {
            continue;
        }
        if bits == 0 {
            chunk.fill(f32::NEG_INFINITY);
            continue;
        }
        for (b, l) in chunk.iter_mut().enumerate() {
            if bits & (1 << b) == 0 {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// Index of the largest logit, the lowest index on a tie; NaN never wins (index 0 if all are NaN).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    let mut found = false;
    for (i, &v) in logits.iter().enumerate() {
        if !v.is_nan() && (!found || v > best_v) {
            best = i;
            best_v = v;
            found = true;
        }
    }
    best as u32
}
