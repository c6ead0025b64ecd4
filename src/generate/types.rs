//! The plain data of the engine's API: what a loaded model is ([`ModelInfo`]), how to generate
//! ([`GenerateOptions`]) and what a generation did ([`Stats`], [`ConstraintStats`], [`FinishReason`]).

use crate::constraint::ResponseFormat;
use crate::profile::StageTime;
use crate::sampler::SamplerParams;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub architecture: String,
    pub name: String,
    pub parameters: u64,
    /// The weight type of most matrices, e.g. "Q4_1".
    pub quantization: String,
    pub file_bytes: u64,
    pub context_size: usize,
    pub train_context: usize,
    pub vocab_size: usize,
    pub layers: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub chat_template: bool,
    /// KV cache and scratch buffers.
    pub state_bytes: usize,
    /// How the KV cache stores keys and values: "f32", "f16" or "q8_0".
    pub kv_type: String,
    /// Bytes of the KV cache alone (part of `state_bytes`).
    pub kv_bytes: usize,
    /// Threads the forward pass runs on ([`Engine::set_pool`](super::Engine::set_pool)).
    pub threads: usize,
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampler: SamplerParams,
    pub stop: Vec<String>,
    /// Time each stage of the prefill and of every decode step ([`Stats::prefill_profile`], [`Stats::profile`]).
    pub profile: bool,
    /// Constrain the output to this format (JSON Schema, regex, grammar): see [`crate::constraint`].
    pub response_format: Option<ResponseFormat>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            sampler: SamplerParams::default(),
            stop: Vec::new(),
            profile: false,
            response_format: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    Eos,
    /// A stop string appeared (it is not part of the output).
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The context is full.
    Context,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Prompt tokens actually run through the model (the rest were reused from the KV cache).
    pub prefilled_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub finish_reason: Option<FinishReason>,
    /// With [`GenerateOptions::profile`]: milliseconds per generated token in each stage of the decode step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Vec<StageTime>>,
    /// With [`GenerateOptions::profile`]: milliseconds per prefilled prompt token in each stage of the prefill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_profile: Option<Vec<StageTime>>,
    /// With [`GenerateOptions::response_format`]: what the constraint cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<ConstraintStats>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintStats {
    /// Building the vocabulary's token trie and grammar tables: once per model, on the first constrained call
    /// (0 on later calls).
    pub vocab_ms: f64,
    /// Compiling this call's schema, regex or grammar.
    pub compile_ms: f64,
    /// Token masks computed (one per sampled token).
    pub masks: usize,
    pub mask_mean_ms: f64,
    pub mask_p99_ms: f64,
    /// Generated tokens the grammar forced (fed without sampling).
    pub forced_tokens: usize,
    /// The output so far is complete in the format (false when generation stopped inside it, e.g. at maxTokens).
    pub complete: bool,
}
