//! The transformer: config from GGUF metadata, weights as views into the model buffer, and the forward pass.
//!
//! One config-driven decoder covers the llama family (llama, and the knobs qwen2/qwen3/gemma3/phi3 need: QKV bias,
//! QK-norm, post-norms, GELU, embedding scale, NEOX RoPE, RoPE frequency factors, sliding-window layers, fused
//! QKV and gate/up matrices). All scratch buffers are allocated once in [`State`]; `forward` allocates nothing but
//! the KV cache's growth to positions it has not held yet ([`crate::kv_cache::KvCache::reserve`]).
//!
//! - `config.rs`: [`Config`], the hyperparameters from the GGUF metadata, and [`Arch`], the one table of what
//!   differs between the architectures;
//! - `weights.rs`: [`Weights`], every tensor looked up by name and borrowed in place (a file with a tensor the
//!   loader does not read is refused);
//! - `state.rs`: [`State`], the scratch buffers and the current conversation's KV cache;
//! - `forward.rs`: [`Model::forward`], in data-flow order, with the attention and feed-forward blocks.

mod config;
mod forward;
mod state;
mod weights;

pub use config::{Activation, Arch, Config};
pub use forward::{Logits, MAX_BATCH};
pub use state::State;
pub use weights::{quantization_label, Layer, Weights};

use crate::gguf::Gguf;
use crate::Result;

pub struct Model {
    pub config: Config,
    pub weights: Weights,
}

impl Model {
    pub fn from_gguf(g: &Gguf, buf: &[u8]) -> Result<Model> {
        let config = Config::from_gguf(g)?;
        let weights = Weights::from_gguf(g, buf, &config)?;
        Ok(Model { config, weights })
    }

    /// Everything [`Model::from_gguf`] checks that the header alone tells (architecture, hyperparameters, tensor
    /// names, shapes and types, no unknown tensor): a browser fails here before the weights arrive.
    pub fn check_header(g: &Gguf) -> Result<Config> {
        let config = Config::from_gguf(g)?;
        Weights::read(g, None, &config)?;
        Ok(config)
    }
}
