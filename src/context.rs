//! The context an engine is built with: positions its sessions can hold (prompt and reply together).
//!
//! `auto` (the default, asked for with 0) is the model's trained context, lowered in steps of [`CONTEXT_STEP`]
//! until a full KV cache (keys and values of every layer at every position, in the engine's KV type) fits the
//! budget: the larger of [`KV_BUDGET_FLOOR`] and a quarter of the model file. Never below [`CONTEXT_STEP`] (or
//! the trained context when that is smaller). A size asked for is taken as it is, up to the trained context. The
//! cache itself grows with use ([`crate::kv_cache`]): the context bounds it, it is not allocated up front.

use pocketlm_simd::kv::KvType;
use crate::model::Config;
use crate::{Error, Result};

/// The KV budget of `auto` is at least this many bytes (256 MiB).
pub const KV_BUDGET_FLOOR: u64 = 256 << 20;

/// `auto` contexts are multiples of this (the KV cache's page, [`crate::kv_cache::KV_PAGE`]).
pub const CONTEXT_STEP: usize = crate::kv_cache::KV_PAGE;

/// Bytes of keys and values of every layer at `positions` positions.
pub fn kv_bytes(c: &Config, kv: KvType, positions: usize) -> u64 {
    2 * c.n_layers as u64 * kv.bytes(c.kv_dim()) as u64 * positions as u64
}

/// The KV budget of `auto` for a model file of `file_bytes` bytes.
pub fn kv_budget(file_bytes: u64) -> u64 {
    KV_BUDGET_FLOOR.max(file_bytes / 4)
}

/// The `auto` context (see the module's rule).
pub fn auto_context(c: &Config, kv: KvType, file_bytes: u64) -> usize {
    let budget = kv_budget(file_bytes);
    let mut n = c.train_context;
    while n > CONTEXT_STEP && kv_bytes(c, kv, n) > budget {
        n = (n - 1) / CONTEXT_STEP * CONTEXT_STEP;
    }
    n
}

/// The context for a request: 0 is `auto`, anything else is checked against the trained context.
pub fn resolve(c: &Config, kv: KvType, file_bytes: u64, asked: usize) -> Result<usize> {
    if asked == 0 {
        return Ok(auto_context(c, kv, file_bytes));
    }
    if asked > c.train_context {
        return Err(Error::InvalidArgument(format!(
            "context size {asked} is larger than the model's trained context of {}",
            c.train_context
        )));
    }
    Ok(asked)
}
