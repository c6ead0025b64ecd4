//! The tokenizer part of a GGUF's metadata (`tokenizer.ggml.*`) as plain data.

use std::borrow::Cow;

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
        Ok(SpecRef::from_gguf(g)?.to_owned())
    }

    /// The same metadata borrowed.
    pub(super) fn borrow(&self) -> SpecRef<'_> {
        SpecRef {
            model: &self.model,
            pre: self.pre.as_deref(),
            tokens: self.tokens.iter().map(String::as_str).collect(),
            scores: Cow::Borrowed(&self.scores),
            token_types: Cow::Borrowed(&self.token_types),
            merges: self.merges.iter().map(String::as_str).collect(),
            bos_id: self.bos_id,
            eos_id: self.eos_id,
            eot_id: self.eot_id,
            eom_id: self.eom_id,
            unk_id: self.unk_id,
            pad_id: self.pad_id,
            add_bos: self.add_bos,
            add_eos: self.add_eos,
            add_space_prefix: self.add_space_prefix,
            name: self.name.as_deref(),
        }
    }
}

/// [`TokenizerSpec`] with its strings borrowed, from a spec or straight from a parsed GGUF header: the tokenizer is
/// built from this, so building it from a file copies no vocabulary or merge string (for a 128k-token vocabulary
/// with 280k merges the owned copies were ~13 MB of wasm memory at load, issue 20).
pub(super) struct SpecRef<'a> {
    pub model: &'a str,
    pub pre: Option<&'a str>,
    pub tokens: Vec<&'a str>,
    pub scores: Cow<'a, [f32]>,
    pub token_types: Cow<'a, [i32]>,
    pub merges: Vec<&'a str>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub eot_id: Option<u32>,
    pub eom_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub add_space_prefix: Option<bool>,
    pub name: Option<&'a str>,
}

impl<'a> SpecRef<'a> {
    /// See [`TokenizerSpec::from_gguf`].
    pub(super) fn from_gguf(g: &'a Gguf) -> Result<SpecRef<'a>> {
        let tokens = g.opt_str_array("tokenizer.ggml.tokens")?.ok_or_else(|| Error::MissingKey("tokenizer.ggml.tokens".into()))?;
        // A token id key whose value does not fit u32 is kept as u32::MAX, which from_spec then ignores as out of range.
        let id = |key: &str| -> Result<Option<u32>> {
            Ok(g.opt_u64(key)?.map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
        };
        Ok(SpecRef {
            model: g.req_str("tokenizer.ggml.model")?,
            pre: g.opt_str("tokenizer.ggml.pre")?,
            tokens,
            // llama.cpp also accepts integer scores; opt_f32_array converts any numeric array.
            scores: Cow::Owned(g.opt_f32_array("tokenizer.ggml.scores")?.unwrap_or_default()),
            token_types: Cow::Owned(g.opt_i32_array("tokenizer.ggml.token_type")?.unwrap_or_default()),
            merges: g.opt_str_array("tokenizer.ggml.merges")?.unwrap_or_default(),
            bos_id: id("tokenizer.ggml.bos_token_id")?,
            eos_id: id("tokenizer.ggml.eos_token_id")?,
            eot_id: id("tokenizer.ggml.eot_token_id")?,
            eom_id: id("tokenizer.ggml.eom_token_id")?,
            unk_id: id("tokenizer.ggml.unknown_token_id")?,
            pad_id: id("tokenizer.ggml.padding_token_id")?,
            add_bos: g.opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: g.opt_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: g.opt_bool("tokenizer.ggml.add_space_prefix")?,
            name: g.opt_str("general.name")?,
        })
    }

    fn to_owned(&self) -> TokenizerSpec {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TokenizerSpec {
            model: self.model.to_owned(),
            pre: self.pre.map(str::to_owned),
            tokens: owned(&self.tokens),
            scores: self.scores.to_vec(),
            token_types: self.token_types.to_vec(),
            merges: owned(&self.merges),
            bos_id: self.bos_id,
            eos_id: self.eos_id,
            eot_id: self.eot_id,
            eom_id: self.eom_id,
            unk_id: self.unk_id,
            pad_id: self.pad_id,
            add_bos: self.add_bos,
            add_eos: self.add_eos,
            add_space_prefix: self.add_space_prefix,
            name: self.name.map(str::to_owned),
        }
    }

    pub(super) fn type_of(&self, id: usize) -> i32 {
        self.token_types.get(id).copied().unwrap_or(token_type::NORMAL)
    }
}
