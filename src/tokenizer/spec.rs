//! The tokenizer part of a GGUF's metadata (`tokenizer.ggml.*`) as plain data.

use super::token_type;
use crate::gguf::Gguf;
use crate::{Error, Result};

/// The tokenizer part of a GGUF's metadata as plain data. `Tokenizer::from_spec` builds from it, so a tokenizer
/// can be made without a GGUF file (tests, tools). Empty `scores` / `token_types` / `merges` mean "key absent".
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: names the pre-tokenizer regexes of a "gpt2" model.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, indexed by token id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (needed by "llama" models).
    #[serde(default)]
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type` (see [`token_type`]); absent means every token is normal.
    #[serde(default)]
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`, "left right" in rank order (needed by "gpt2" models).
    #[serde(default)]
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub eot_id: Option<u32>,
    pub eom_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; absent = the model type's default (llama: true, gpt2: false except the
    /// Llama-3-style pre-tokenizers).
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`; absent = false.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`; absent = true for "llama" models.
    pub add_space_prefix: Option<bool>,
    /// `general.name`: llama.cpp keys Phi-3's "strip whitespace after special tokens" rule off it.
    pub name: Option<String>,
}

impl TokenizerSpec {
    /// Reads the `tokenizer.ggml.*` keys (and `general.name`). Missing required keys are `Error::MissingKey`, keys of
    /// the wrong type `Error::WrongType`; consistency is checked later by [`Tokenizer::from_spec`].
    pub fn from_gguf(g: &Gguf) -> Result<TokenizerSpec> {
        let owned = |v: Option<Vec<&str>>| v.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
        let tokens =
            owned(g.opt_str_array("tokenizer.ggml.tokens")?).ok_or_else(|| Error::MissingKey("tokenizer.ggml.tokens".into()))?;
        // A token id key whose value does not fit u32 is kept as u32::MAX, which from_spec then ignores as out of range.
        let id = |key: &str| -> Result<Option<u32>> {
            Ok(g.opt_u64(key)?.map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
        };
        Ok(TokenizerSpec {
            model: g.req_str("tokenizer.ggml.model")?.to_owned(),
            pre: g.opt_str("tokenizer.ggml.pre")?.map(str::to_owned),
            tokens,
            // llama.cpp also accepts integer scores; opt_f32_array converts any numeric array.
            scores: g.opt_f32_array("tokenizer.ggml.scores")?.unwrap_or_default(),
            token_types: g.opt_i32_array("tokenizer.ggml.token_type")?.unwrap_or_default(),
            merges: owned(g.opt_str_array("tokenizer.ggml.merges")?).unwrap_or_default(),
            bos_id: id("tokenizer.ggml.bos_token_id")?,
            eos_id: id("tokenizer.ggml.eos_token_id")?,
            eot_id: id("tokenizer.ggml.eot_token_id")?,
            eom_id: id("tokenizer.ggml.eom_token_id")?,
            unk_id: id("tokenizer.ggml.unknown_token_id")?,
            pad_id: id("tokenizer.ggml.padding_token_id")?,
            add_bos: g.opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: g.opt_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: g.opt_bool("tokenizer.ggml.add_space_prefix")?,
            name: g.opt_str("general.name")?.map(str::to_owned),
        })
    }

    pub(super) fn type_of(&self, id: usize) -> i32 {
        self.token_types.get(id).copied().unwrap_or(token_type::NORMAL)
    }
}
