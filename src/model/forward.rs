//! The forward pass, in the order data flows: token embeddings, RoPE angles, then per layer the attention block
//! (norm, Q/K/V projections, QK-norm and RoPE, the KV cache, causal grouped-query attention, output projection,
//! residual) and the feed-forward block (norm, gate and up, activation, down, residual), then the final norm and
//! the output head. Tokens run in batches of [`MAX_BATCH`]; each stage is a parallel loop on the state's pool
//! whose split changes no bits.

use super::{Activation, Config, Model, State};
use crate::mark;
use crate::par::{Disjoint, Team};
use crate::project::{project, Out, PARALLEL_TOKENS};
use crate::{Error, Result};
use pocketlm_simd::kv::{self, KvRows, KvType};
use pocketlm_simd::{self as k, ops};

/// Tokens processed together in prefill: weights are streamed once per batch instead of once per token.
pub const MAX_BATCH: usize = 32;

/// Row chunks per thread of a layer's matrix products: a little slack for a thread that falls behind. Prefill
/// chunks are long (every chunk does all the batch's tokens), so more of them cost little and even out better.
fn chunks_per_thread(n: usize) -> usize {
    if n > 1 {
        4
    } else {
        2
    }
}

/// What `forward` leaves in `State::logits`.
pub enum Logits<'f> {
    /// Only the last token's logits (generation).
    Last,
    /// Every token's logits, handed to the callback in order (perplexity).
    All(&'f mut dyn FnMut(usize, &[f32])),
}

impl Model {
    /// Run `tokens` at positions `pos..pos + tokens.len()` through the model, filling the KV cache.
    /// The caller checks `pos + tokens.len() <= state.context` (see [`crate::generate`]).
    pub fn forward(&self, buf: &[u8], s: &mut State, tokens: &[u32], pos: usize, mut logits: Logits) -> Result<()> {
        if pos + tokens.len() > s.context {
            return Err(Error::ContextOverflow { needed: pos + tokens.len(), context: s.context });
        }
        // The one allocation of a forward pass: the cache grows (by pages) to positions it has not held yet (and
        // with an f16/q8_0 cache, the decoded copy of one layer's rows with it).
        s.kv.reserve(pos + tokens.len(), s.context)?;
        let c = &self.config;
        let decoded = 2 * s.kv.capacity() * c.kv_dim();
        let shared = tokens.len() > 1 || c.n_heads > c.n_kv_heads;
        if shared && s.kv.kv_type() != KvType::F32 && s.kv_f32.len() < decoded {
            s.kv_f32 = Vec::new();
            s.kv_f32 = super::state::alloc_f32(decoded, "decoded KV rows")?;
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(Error::InvalidArgument(format!("token id {bad} outside the vocabulary of {}", c.vocab_size)));
        }
        let pool = s.pool.clone();
        pool.session(|team| {
            for (chunk_i, chunk) in tokens.chunks(MAX_BATCH).enumerate() {
                let p0 = pos + chunk_i * MAX_BATCH;
                let last_chunk = (chunk_i + 1) * MAX_BATCH >= tokens.len();
                self.forward_batch(team, buf, s, chunk, p0);
                match &mut logits {
                    Logits::Last => {
                        if last_chunk {
                            self.head(team, buf, s, chunk.len() - 1);
                        }
                    }
                    Logits::All(cb) => {
                        for t in 0..chunk.len() {
                            self.head(team, buf, s, t);
                            cb(p0 + t - pos, &s.logits);
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// One batch of tokens at positions `pos..pos + tokens.len()` through every layer; the hidden states are left in
    /// `s.x`.
    fn forward_batch(&self, team: &Team, buf: &[u8], s: &mut State, tokens: &[u32], pos: usize) {
        let c = &self.config;
        let w = &self.weights;
        let n = tokens.len();
        let dim = c.dim;

        // Token embeddings, dequantized row by row.
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &mut s.x[t * dim..(t + 1) * dim];
            k::dequantize_row(w.token_embd.typ, w.token_embd.row(buf, tok as usize), row);
            if c.embed_scale != 1.0 {
                ops::scale(row, c.embed_scale);
            }
        }
        mark!(s.profile, Embed);
        // RoPE angles depend on the position and base only: once per token for every layer and head (the local base
        // too when some layers slide), not once per layer.
        let nr = c.n_rot;
        let bases: &[f32] = if c.sliding_window > 0 { &[c.rope_base, c.rope_base_local] } else { &[c.rope_base] };
        let factors = w.rope_factors(c, s.context);
        let cs = Disjoint::new(&mut s.rope_cs);
        per_token(team, n, &|t| {
            for (b, &base) in bases.iter().enumerate() {
                let at = (b * MAX_BATCH + t) * nr;
                // SAFETY: token t alone writes its rows of the tables.
                let table = unsafe { cs.slice(at..at + nr) };
                ops::rope_angles_scaled(table, nr, pos + t, base, c.rope_freq_scale, factors, c.rope_attn_factor);
            }
        });
        mark!(s.profile, Rope);

        for li in 0..w.layers.len() {
            self.attention(team, buf, s, li, n, pos);
            self.feed_forward(team, buf, s, li, n);
        }
    }

    /// Layer `li`'s attention block for the batch's `n` tokens at positions `pos..`:
    /// `x += post_norm(wo · attention(rope(q), rope(k), v))` with q, k, v projected from `norm(x)`.
    fn attention(&self, team: &Team, buf: &[u8], s: &mut State, li: usize, n: usize, pos: usize) {
        let c = &self.config;
        let l = &self.weights.layers[li];
        let (dim, qd, kvd, hd, nr) = (c.dim, c.q_dim(), c.kv_dim(), c.head_dim, c.n_rot);
        rmsnorm_tokens(team, &mut s.xb, &s.x, n, dim, &l.attn_norm, c.rms_eps);
        mark!(s.profile, Norm);
        let qkv = &mut [Out { w: &l.wq, out: &mut s.q }, Out { w: &l.wk, out: &mut s.k }, Out { w: &l.wv, out: &mut s.v }];
        project(team, buf, &s.xb[..n * dim], n, &mut s.act_q, &mut s.mm, qkv, chunks_per_thread(n));
        add_bias(&mut s.q, &l.bq, n);
        add_bias(&mut s.k, &l.bk, n);
        add_bias(&mut s.v, &l.bv, n);
        mark!(s.profile, Qkv);

        let sliding = c.is_sliding(li);
        let cap = s.kv.capacity();
        let tables = &s.rope_cs[if sliding { MAX_BATCH * nr } else { 0 }..];
        let (q, k) = (Disjoint::new(&mut s.q), Disjoint::new(&mut s.k));
        let (kc, vc, v) = (s.kv.key.writer(), s.kv.value.writer(), &s.v);
        per_token(team, n, &|t| {
            let p = pos + t;
            // SAFETY: token t alone uses its rows of q, k and its cache rows (position p).
            let (q, k) = unsafe { (q.slice(t * qd..(t + 1) * qd), k.slice(t * kvd..(t + 1) * kvd)) };
            let cs = &tables[t * nr..(t + 1) * nr];
            for h in q.chunks_exact_mut(hd) {
                if let Some(qn) = &l.q_norm {
                    ops::rmsnorm_inplace(h, qn, c.rms_eps);
                }
                ops::rope_with(h, cs, c.rope_neox);
            }
            for h in k.chunks_exact_mut(hd) {
                if let Some(kn) = &l.k_norm {
                    ops::rmsnorm_inplace(h, kn, c.rms_eps);
                }
                ops::rope_with(h, cs, c.rope_neox);
            }
            let at = (li * cap + p) * kvd;
            // SAFETY: token t alone writes its cache rows (position p).
            unsafe {
                kc.write(at, k);
                vc.write(at, &v[t * kvd..(t + 1) * kvd]);
            }
        });
        mark!(s.profile, Rope);

        // Causal grouped-query attention over the cache; output into xb (n, q_dim). Prefill (or one thread): one
        // task per head, each with its own row of scores; a head's arithmetic does not depend on which thread
        // runs it. Decode on several threads: `attend_token`.
        let group = c.n_heads / c.n_kv_heads;
        let ctx = s.context;
        // Rows 0..pos + n of this layer (row j at j * kvd).
        let rows = (pos + n) * kvd;
        let layer = li * cap * kvd..li * cap * kvd + rows;
        let (mut layer_k, mut layer_v) = (s.kv.key.rows(layer.clone()), s.kv.value.rows(layer));
        // Several queries reading an f16/q8_0 layer (a batch, or the query heads that share a KV head): its rows
        // decoded once for all of them (keys and values, two tasks), then the f32 kernels. The same bits as the
        // in-place kernels (simd/src/kv.rs), which convert each row again for every query.
        if (n > 1 || group > 1) && !matches!(layer_k, KvRows::F32(_)) {
            let half = s.kv_f32.len() / 2;
            let (kd, vd) = s.kv_f32.split_at_mut(half);
            let (kd, vd) = (Disjoint::new(&mut kd[..rows]), Disjoint::new(&mut vd[..rows]));
            team.run(2, &|i| {
                // SAFETY: task 0 alone writes the keys' copy, task 1 the values'.
                unsafe {
                    if i == 0 {
                        layer_k.decode(kd.slice(0..rows))
                    } else {
                        layer_v.decode(vd.slice(0..rows))
                    }
                }
            });
            (layer_k, layer_v) = (KvRows::F32(&s.kv_f32[..rows]), KvRows::F32(&s.kv_f32[half..half + rows]));
        }
        if n == 1 && team.threads() > 1 {
            // Decode on several threads: split so that threads do not read the same KV head twice.
            let start = if sliding && pos + 1 > c.sliding_window { pos + 1 - c.sliding_window } else { 0 };
            let (k, v) = (layer_k.skip(start * kvd), layer_v.skip(start * kvd));
            attend_token(team, c, &s.q[..qd], k, v, ctx, &mut s.att, &mut s.xb[..qd]);
        } else {
            let (q, xb, att) = (&s.q, Disjoint::new(&mut s.xb), Disjoint::new(&mut s.att));
            team.run(c.n_heads, &|h| {
                // SAFETY: task h alone uses scores row h.
                let att_h = unsafe { att.slice(h * ctx..(h + 1) * ctx) };
                for t in 0..n {
                    let p = pos + t;
                    let start = if sliding && p + 1 > c.sliding_window { p + 1 - c.sliding_window } else { 0 };
                    // Rows start..=p of this head's KV head: row j at (start + j) * kvd + kh * hd.
                    let at = start * kvd + (h / group) * hd;
                    // SAFETY: task h alone writes head h's columns of xb.
                    let out = unsafe { xb.slice(t * qd + h * hd..t * qd + (h + 1) * hd) };
                    kv::attend(
                        &q[t * qd + h * hd..t * qd + (h + 1) * hd],
                        layer_k.skip(at),
                        layer_v.skip(at),
                        kvd,
                        c.attn_scale,
                        &mut att_h[..=p - start],
                        out,
                    );
                }
            });
        }
        mark!(s.profile, Attention);
        let wo = &mut [Out { w: &l.wo, out: &mut s.xb2 }];
        project(team, buf, &s.xb[..n * qd], n, &mut s.act_q, &mut s.mm, wo, chunks_per_thread(n));
        mark!(s.profile, AttnOut);
        residual_tokens(team, &mut s.x, &mut s.xb2, n, dim, l.post_attn_norm.as_deref(), c.rms_eps);
        mark!(s.profile, Residual);
    }

    /// Layer `li`'s feed-forward block for the batch's `n` tokens: `x += post_norm(down(act(gate(y)) * up(y)))`,
    /// `y = norm(x)`.
    fn feed_forward(&self, team: &Team, buf: &[u8], s: &mut State, li: usize, n: usize) {
        let c = &self.config;
        let l = &self.weights.layers[li];
        let (dim, ffn) = (c.dim, c.ffn_dim);
        rmsnorm_tokens(team, &mut s.xb, &s.x, n, dim, &l.ffn_norm, c.rms_eps);
        mark!(s.profile, Norm);
        let gate_up = &mut [Out { w: &l.w_gate, out: &mut s.hb }, Out { w: &l.w_up, out: &mut s.hb2 }];
        project(team, buf, &s.xb[..n * dim], n, &mut s.act_q, &mut s.mm, gate_up, chunks_per_thread(n));
        mark!(s.profile, GateUp);
        let (gate, up) = (Disjoint::new(&mut s.hb), &s.hb2);
        per_token(team, n, &|t| {
            // SAFETY: token t alone uses its row of the gate.
            let (g, u) = (unsafe { gate.slice(t * ffn..(t + 1) * ffn) }, &up[t * ffn..(t + 1) * ffn]);
            match c.activation {
                Activation::Silu => ops::silu_mul(g, u),
                Activation::GeluTanh => ops::gelu_tanh_mul(g, u),
            }
        });
        mark!(s.profile, Activation);
        let down = &mut [Out { w: &l.w_down, out: &mut s.xb2 }];
        project(team, buf, &s.hb[..n * ffn], n, &mut s.act_q, &mut s.mm, down, chunks_per_thread(n));
        mark!(s.profile, Down);
        residual_tokens(team, &mut s.x, &mut s.xb2, n, dim, l.post_ffn_norm.as_deref(), c.rms_eps);
        mark!(s.profile, Residual);
    }

    /// Final norm and output head for token `t` of the last batch -> `s.logits`.
    fn head(&self, team: &Team, buf: &[u8], s: &mut State, t: usize) {
        let c = &self.config;
        let x = &mut s.xb[..c.dim];
        ops::rmsnorm(x, &s.x[t * c.dim..(t + 1) * c.dim], &self.weights.output_norm, c.rms_eps);
        // The largest matrix (SmolLM2: 28 MB): chunks of several MB still stream in long runs, and four per thread
        // let the other thread take over when one falls behind (with one chunk per thread, 2-thread runs where one
        // thread was slower spent 1.8 instead of 1.2 ms per token here).
        let outs = &mut [Out { w: &self.weights.output, out: &mut s.logits }];
        project(team, buf, &s.xb[..c.dim], 1, &mut s.act_q, &mut s.mm, outs, 4);
        mark!(s.profile, Head);
    }
}

fn add_bias(y: &mut [f32], b: &Option<Vec<f32>>, n: usize) {
    if let Some(b) = b {
        for row in y.chunks_exact_mut(b.len()).take(n) {
            ops::add_inplace(row, b);
        }
    }
}

/// Runs `f(t)` for every token `t < n`: as a parallel loop when there are enough tokens to pay for one, else inline.
/// The per-token work of the forward pass (norms, RoPE, residuals) computes each token alone, so the split changes
/// no bits.
fn per_token(team: &Team, n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n >= PARALLEL_TOKENS {
        team.run(n, f);
    } else {
        (0..n).for_each(f);
    }
}

/// `out[t] = rmsnorm(x[t]) * weight` for the first `n` rows of width `dim`.
fn rmsnorm_tokens(team: &Team, out: &mut [f32], x: &[f32], n: usize, dim: usize, weight: &[f32], eps: f32) {
    let out = Disjoint::new(out);
    per_token(team, n, &|t| {
        // SAFETY: token t alone writes its row.
        ops::rmsnorm(unsafe { out.slice(t * dim..(t + 1) * dim) }, &x[t * dim..(t + 1) * dim], weight, eps);
    });
}

/// `x[t] += y[t]` for the first `n` rows of width `dim`, `y[t]` first normed in place when the block has a norm
/// after it (Gemma 3).
fn residual_tokens(team: &Team, x: &mut [f32], y: &mut [f32], n: usize, dim: usize, norm: Option<&[f32]>, eps: f32) {
    let (x, y) = (Disjoint::new(x), Disjoint::new(y));
    per_token(team, n, &|t| {
        // SAFETY: token t alone uses its rows.
        let (x, y) = unsafe { (x.slice(t * dim..(t + 1) * dim), y.slice(t * dim..(t + 1) * dim)) };
        if let Some(w) = norm {
            ops::rmsnorm_inplace(y, w, eps);
        }
        ops::add_inplace(x, y);
    });
}

/// Most column runs one KV head's weighted values are split into by [`attend_token`].
const MAX_COL_SPLIT: usize = 4;

/// One token's attention on several threads, split so that no two threads read the same cached keys or values.
///
/// With grouped-query attention several query heads read one KV head. One task per query head (as in prefill)
/// has each thread fetch a shared KV head again, and at decode the cache comes from DRAM (the weights streamed
/// through the caches since the previous token), so on two threads it ran no faster than on one. Here, three
/// loops:
/// 1. scores: tasks over runs of positions, each for every head (its key rows are read once, for all the heads
///    that share them);
/// 2. softmax: one task per head;
/// 3. weighted values: tasks over (KV head, run of columns), each for every head of that KV head.
///
/// Per head these are [`ops::attend`]'s three steps, which give the same bits however they are split.
/// `keys`/`values`: the cached rows attended to (`kv_dim` values each); `att`: `(n_heads, ctx)` scores;
/// `out`: `(n_heads, head_dim)`.
#[allow(clippy::too_many_arguments)]
fn attend_token(team: &Team, c: &Config, q: &[f32], keys: KvRows, values: KvRows, ctx: usize, att: &mut [f32], out: &mut [f32]) {
    let (hd, kvd, group) = (c.head_dim, c.kv_dim(), c.n_heads / c.n_kv_heads);
    let len = keys.len() / kvd;
    let threads = team.threads();

    // 1. Scores, runs of positions (multiples of 4, the kernel's tile), two per thread.
    let run = len.div_ceil(2 * threads).next_multiple_of(4).max(4);
    let scores = Disjoint::new(att);
    team.run(len.div_ceil(run), &|i| {
        let (r0, r1) = (i * run, ((i + 1) * run).min(len));
        for h in 0..c.n_heads {
            // SAFETY: task i alone writes positions r0..r1 of every head's scores.
            let s = unsafe { scores.slice(h * ctx + r0..h * ctx + r1) };
            let kh = h / group;
            kv::attn_scores(&q[h * hd..(h + 1) * hd], keys.skip(r0 * kvd + kh * hd), kvd, c.attn_scale, s);
        }
    });
    // 2. Softmax, one task per head.
    team.run(c.n_heads, &|h| {
        // SAFETY: task h alone uses head h's scores.
        ops::softmax_inplace(unsafe { scores.slice(h * ctx..h * ctx + len) });
    });
    // 3. Weighted values, (KV head, column run) tasks: enough runs for two tasks per thread, columns in multiples of
    //    16 where the head allows (the kernel's width).
    let mut split = 1;
    while split < MAX_COL_SPLIT && c.n_kv_heads * split < 2 * threads && hd % (2 * split) == 0 && hd / (2 * split) >= 16 {
        split *= 2;
    }
    let cols = hd / split;
    // SAFETY: the loops above have returned; this is the only piece of the scores alive.
    let probs = &*unsafe { scores.slice(0..c.n_heads * ctx) };
    let out = Disjoint::new(out);
    team.run(c.n_kv_heads * split, &|task| {
        let (kh, d) = (task / split, task % split);
        for h in kh * group..(kh + 1) * group {
            // SAFETY: task (kh, d) alone writes columns d * cols.. of the heads of KV head kh.
            let o = unsafe { out.slice(h * hd + d * cols..h * hd + (d + 1) * cols) };
            kv::attn_values(&probs[h * ctx..h * ctx + len], values.skip(kh * hd + d * cols), kvd, o);
        }
    });
}
