//! pocketlm: a small-LLM inference engine for the browser (wasm32 + SIMD128) and the host.
//!
//! Data flows one way: bytes -> [`gguf`] view -> [`tensor`] views -> [`model`] forward -> logits -> [`sampler`] ->
//! token -> [`tokenizer`] text -> ([`wasm`] API on wasm32).

pub mod clock;
pub mod error;
pub mod gguf;
pub mod model;
pub mod sampler;
pub mod tensor;

pub use error::{Error, Result};
