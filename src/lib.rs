//! pocketlm: a small-LLM inference engine for the browser (wasm32 + SIMD128) and the host.
//!
//! Data flows one way: bytes -> [`gguf`] view -> [`tensor`] views -> [`model`] forward -> logits -> [`sampler`] ->
//! token -> [`tokenizer`] text -> [`generate`] loop -> ([`wasm`] API on wasm32, the CLI natively).

pub mod chat;
pub mod clock;
pub mod constraint;
pub mod context;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kv_cache;
pub mod model;
pub mod par;
pub mod profile;
mod project;
pub mod sampler;
pub mod session;
pub mod tensor;
pub mod tokenizer;
pub mod tools;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, Result};
