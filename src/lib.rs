//! pocketlm: a small-LLM inference engine for the browser (wasm32 + SIMD128) and the host.
//!
//! Data flows one way: bytes -> [`gguf`] view -> [`tensor`] views -> [`model`] forward -> logits -> [`sampler`] ->
//! token -> [`tokenizer`] text -> ([`wasm`] API on wasm32).

pub mod error;
pub mod gguf;
pub mod sampler;

pub use error::{Error, Result};
