//! The scratch of the forward pass and the KV cache of the conversation being run: [`State`], sized once from the
//! config and the context length, so `forward` allocates nothing but the cache's growth.

use super::{Config, MAX_BATCH};
use crate::kv_cache::KvCache;
use crate::par::Pool;
use crate::profile::Profile;
use crate::project::MAX_OUTS;
use crate::{Error, Result};
use pocketlm_simd::kv::KvType;

/// Allocate a zeroed f32 buffer, failing with a clear error instead of aborting when memory is short.
pub(super) fn alloc_f32(n: usize, what: &str) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::OutOfMemory(format!("cannot allocate {} MB for {what}", (n * 4) >> 20))
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Activations and scratch, sized once from the config and the context length, and the KV cache of the
/// conversation being run.
pub struct State {
    pub context: usize,
    pub kv_type: KvType,
    /// Where `forward`'s parallel loops run (one thread unless [`State::set_pool`] says otherwise).
    pub(super) pool: Pool,
    pub(super) x: Vec<f32>,      // (MAX_BATCH, dim) residual stream
    pub(super) xb: Vec<f32>,     // (MAX_BATCH, max(dim, q_dim)) normed input / attention output
    pub(super) xb2: Vec<f32>,    // (MAX_BATCH, dim) projection output
    pub(super) q: Vec<f32>,      // (MAX_BATCH, q_dim)
    pub(super) k: Vec<f32>,      // (MAX_BATCH, kv_dim)
    pub(super) v: Vec<f32>,      // (MAX_BATCH, kv_dim)
    pub(super) hb: Vec<f32>,     // (MAX_BATCH, ffn) gate
    pub(super) hb2: Vec<f32>,    // (MAX_BATCH, ffn) up
    pub(super) att: Vec<f32>,    // (n_heads, context) attention scores, one row per head (heads run in parallel)
    pub(super) rope_cs: Vec<f32>, // (2, MAX_BATCH, n_rot) cos/sin of each position's RoPE angles (global, local base), shared by every head and layer
    pub(super) act_q: Vec<u8>,   // (MAX_OUTS, MAX_BATCH, activation_row_bytes(max width)) quantized activations
    pub(super) mm: Vec<f32>,     // (MAX_BATCH, max(q_dim + 2 kv_dim, 2 ffn, dim)) row chunks of parallel products
    /// The current conversation's keys and values, grown as positions are used ([`KvCache`]); the engine swaps
    /// sessions' caches in and out of here, the scratch above is shared by all of them.
    pub kv: KvCache,
    /// (2, kv capacity, kv_dim): one layer's cached keys, then values, decoded to f32 for the queries that read
    /// them when the cache is f16/q8_0 (grown with the cache by `forward`; empty for f32).
    pub(super) kv_f32: Vec<f32>,
    pub logits: Vec<f32>,  // (vocab)
    /// Time per stage of `forward`, when profiling (see [`crate::profile`]); the caller calls `start()`.
    pub profile: Option<Profile>,
}

impl State {
    /// A state with an f32 KV cache (full precision: what the checks against reference implementations use; the
    /// engine's default is [`crate::generate::DEFAULT_KV_TYPE`]).
    pub fn new(c: &Config, context: usize) -> Result<State> {
        State::with_kv(c, context, KvType::F32)
    }

    /// A state whose KV cache stores `kv_type` values. q8_0 needs a kv_dim and head_dim that are multiples of 32.
    pub fn with_kv(c: &Config, context: usize, kv_type: KvType) -> Result<State> {
        let kv = KvCache::new(c, kv_type)?;
        // The whole context must be addressable, even though the cache grows to it only as positions are used.
        let full = crate::context::kv_bytes(c, kv_type, context);
        if full > isize::MAX as u64 {
            return Err(Error::OutOfMemory(format!("a KV cache of {context} positions ({} MB) is not addressable here", full >> 20)));
        }
        let wide = c.dim.max(c.q_dim()).max(c.ffn_dim);
        // f32 activations are the widest encoding; one set per distinct activation type of a fused product.
        let act_bytes = MAX_OUTS * MAX_BATCH * wide * 4;
        let mm_rows = (c.q_dim() + 2 * c.kv_dim()).max(2 * c.ffn_dim).max(c.dim);
        let att = c.n_heads.checked_mul(context).ok_or_else(|| Error::OutOfMemory("attention scores".into()))?;
        let mut act_q = Vec::new();
        act_q.try_reserve_exact(act_bytes).map_err(|_| Error::OutOfMemory("activation buffer".into()))?;
        act_q.resize(act_bytes, 0);
        Ok(State {
            context,
            pool: Pool::single(),
            x: alloc_f32(MAX_BATCH * c.dim, "activations")?,
            xb: alloc_f32(MAX_BATCH * c.dim.max(c.q_dim()), "activations")?,
            xb2: alloc_f32(MAX_BATCH * c.dim, "activations")?,
            q: alloc_f32(MAX_BATCH * c.q_dim(), "queries")?,
            k: alloc_f32(MAX_BATCH * c.kv_dim(), "keys")?,
            v: alloc_f32(MAX_BATCH * c.kv_dim(), "values")?,
            hb: alloc_f32(MAX_BATCH * c.ffn_dim, "FFN activations")?,
            hb2: alloc_f32(MAX_BATCH * c.ffn_dim, "FFN activations")?,
            att: alloc_f32(att, "attention scores")?,
            rope_cs: alloc_f32(2 * MAX_BATCH * c.n_rot, "RoPE angles")?,
            act_q,
            mm: alloc_f32(MAX_BATCH * mm_rows, "activations")?,
            kv_type,
            kv,
            kv_f32: Vec::new(),
            logits: alloc_f32(c.vocab_size, "logits")?,
            profile: None,
        })
    }

    /// Bytes held by this state: scratch, and the KV cache of a full context.
    pub fn bytes(&self) -> usize {
        4 * (self.x.len() + self.xb.len() + self.xb2.len() + self.q.len() + self.k.len() + self.v.len()
            + self.hb.len() + self.hb2.len() + self.att.len() + self.rope_cs.len() + self.mm.len()
            + self.logits.len() + self.kv_f32.len())
            + self.act_q.len()
            + self.kv_bytes()
    }

    /// Bytes of a KV cache that holds the whole context (what one conversation can grow to; `kv.bytes()` is what
    /// the current one holds now).
    pub fn kv_bytes(&self) -> usize {
        self.kv.bytes_for(self.context)
    }

    /// Run `forward` on `pool`'s threads; the logits are the same bits for every thread count.
    pub fn set_pool(&mut self, pool: Pool) {
        self.pool = pool;
    }

    /// Threads `forward` runs on.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}
