//! Text <-> token ids, built from the vocabulary a GGUF file carries (no tokenizer.json needed).
//!
//! The metadata read is the `tokenizer.ggml.*` family of the GGUF spec: `model`, `pre`, `tokens`, `scores`,
//! `token_type`, `merges`, the special token ids and the `add_*` flags. The behaviour mirrors llama.cpp's vocab
//! (its test vectors in `ggml-vocab-*.gguf.inp/.out` are the reference, see tests/tokenizer_vectors.rs):
//!
//! * `model = "gpt2"`: byte-level BPE. Built with the `tokenizers` crate: a `BPE` model from `tokens` + `merges`,
//!   pre-tokenized by a sequence of regex `Split`s chosen from `tokenizer.ggml.pre` and a `ByteLevel` step.
//! * `model = "llama"`: SentencePiece-style BPE driven by token scores (spaces become U+2581 "▁", an optional
//!   space is prepended, characters no token covers fall back to `<0xNN>` byte tokens). The `tokenizers` crate has
//!   no model for this (its `BPE` needs the merge list these files do not carry, and deriving one orders equal-score
//!   merges differently), so the score-driven merge loop is implemented here.
//!
//! Before either model runs, the text is cut at special tokens (control tokens only when `parse_special`,
//! user-defined tokens always), longest token text first, as llama.cpp does.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::gguf::Gguf;
use crate::{Error, Result};

/// GGUF token types (`tokenizer.ggml.token_type`, same numbering as llama.cpp's `llama_token_type`).
pub mod token_type {
    pub const UNDEFINED: i32 = 0;
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// Largest vocabulary accepted; real ones are at most a few hundred thousand tokens. Bounds every per-token table.
const MAX_VOCAB: usize = 1 << 24;

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

/// How the text pieces of a "gpt2" model are cut before BPE, per `tokenizer.ggml.pre`.
struct PreTokenizer {
    /// Applied in order, each splitting the pieces of the previous one; every match and every gap between matches
    /// becomes a piece (the `Isolated` split of HF tokenizers, the `unicode_regex_split` of llama.cpp).
    regexes: &'static [&'static str],
    /// A piece that is itself a token is emitted whole, without running the merges (Llama 3 family).
    ignore_merges: bool,
    /// Default of `add_bos_token` when the key is absent.
    add_bos: bool,
}

// The regexes are the `pre_tokenizer` patterns of the original models' tokenizer.json files (as listed by llama.cpp
// for each `tokenizer.ggml.pre` name). Case-insensitive `(?i:'s|...)` groups are spelled out as `'[sS]` so that
// Unicode case folding (e.g. U+017F LONG S matching "s") cannot change the splits.
const RE_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
// Unicode cased letters (category LC) as DeepSeek's tokenizer.json lists them; written as escapes because several of
// them (U+1FBE, U+1FD3, U+1FDB, U+1F7D, U+2126, U+212A) change under Unicode normalization, which text tools may apply.
const RE_DEEPSEEK_LLM_LETTERS: &str = "\\s?[A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+";
const RE_CJK_HANGUL: &str = r"[一-龥ࠀ-一가-퟿]+";
const RE_BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

fn pre_tokenizer(name: &str) -> Option<PreTokenizer> {
    let p = |regexes, ignore_merges, add_bos| Some(PreTokenizer { regexes, ignore_merges, add_bos });
    match name {
        // llama.cpp's "default" BPE pre-tokenizer (also used when the key is missing).
        "default" => p(&[r"[\p{P}\$\+<=>\^~\|]+", RE_GPT2, r"\p{N}+", "[0-9][0-9][0-9]"], false, false),
        "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "jina-es" | "jina-de" | "jina-v2-es" | "jina-v2-de"
        | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" | "gigachat" | "a.x-4.0" | "mellum" | "modern-bert"
        | "trillion" | "granite-docling" | "exaone4" => p(&[RE_GPT2], false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2" => {
            p(&[RE_LLAMA3], true, true)
        }
        "dbrx" | "smaug-bpe" => p(&[RE_LLAMA3], false, false),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            p(&[r"\p{N}", RE_GPT2], false, false)
        }
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "megrez" | "hunyuan" => p(&[RE_QWEN2], false, false),
        "qwen35" => p(&[RE_QWEN35], false, false),
        "falcon" => p(&[r"[\p{P}\$\+<=>\^~\|`]+", RE_GPT2, "[0-9][0-9][0-9]"], false, false),
        "deepseek-llm" => p(
            &["[\r\n]", RE_DEEPSEEK_LLM_LETTERS, r"\s?[!-/:-~！-／：-～‘-‟　-。]+", r"\s+$", RE_CJK_HANGUL, r"\p{N}+"],
            false,
            false,
        ),
        "deepseek-coder" => p(&["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", RE_CJK_HANGUL, r"\p{N}"], false, false),
        "deepseek-v3" => p(
            &[
                r"\p{N}{1,3}",
                r"[一-龥぀-ゟ゠-ヿ]+",
                r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
            ],
            false,
            false,
        ),
        "poro-chat" | "bloom" | "gpt3-finnish" => p(&[RE_BLOOM], false, false),
        "viking" => p(&[RE_BLOOM, r"\p{N}"], false, false),
        "gpt-4o" | "llama4" | "minimax-m2" => p(&[RE_GPT4O], false, false),
        "tekken" => p(&[RE_TEKKEN], true, true),
        _ => None,
    }
}

/// Which of the two tokenizer algorithms a vocabulary uses.
enum Model {
    /// SentencePiece-style: score-driven merges, "▁" for spaces, `<0xNN>` byte fallback.
    Spm {
        /// Ids of the `<0xNN>` tokens (or single-byte tokens), indexed by byte; `None` = not in the vocabulary.
        byte_tokens: Box<[Option<u32>; 256]>,
    },
    /// Byte-level BPE run by the `tokenizers` crate (pre-tokenizer + `BPE` model, no added tokens).
    Bpe(Box<tokenizers::Tokenizer>),
}

/// A tokenizer built from a GGUF vocabulary. Cheap to share by reference; all methods take `&self`.
pub struct Tokenizer {
    model: Model,
    /// Token texts as stored in the file, concatenated; token `i` is `texts[text_offsets[i]..text_offsets[i + 1]]`.
    texts: String,
    text_offsets: Vec<u32>,
    /// What each token decodes to (bytes, possibly a partial UTF-8 character), same layout as `texts`.
    bytes: Vec<u8>,
    byte_offsets: Vec<u32>,
    /// GGUF token type per token (after llama.cpp's promotion of end-of-generation tokens to control).
    types: Vec<i8>,
    /// Score per token (SPM only, else empty).
    scores: Vec<f32>,
    /// All token ids sorted by text, for binary-search lookup.
    by_text: Vec<u32>,
    max_token_len: usize,
    /// Control, user-defined and unknown tokens sorted by text (for finding which occur in a text).
    special_sorted: Vec<u32>,
    /// `special_first_byte[b]`: some special token text starts with byte `b`.
    special_first_byte: [bool; 256],
    /// Whitespace after (`rstrip`) special tokens is dropped (Phi-3).
    special_rstrip: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    /// End-of-generation ids, sorted.
    eog: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

/// A piece of text after cutting out special tokens.
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// The GGUF spec's byte-level BPE alphabet (GPT-2's `bytes_to_unicode`): bytes '!'..='~', '¡'..='¬', '®'..='ÿ'
/// stand for themselves, the other 68 bytes (in increasing order) are mapped to U+0100, U+0101, ...
fn byte_level_decode(c: char) -> Option<u8> {
    let u = c as u32;
    match u {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(u as u8),
        0x100..=0x120 => Some((u - 0x100) as u8),              // bytes 0x00..=0x20
        0x121..=0x142 => Some((u - 0x121 + 0x7F) as u8),       // bytes 0x7F..=0xA0
        0x143 => Some(0xAD),
        _ => None,
    }
}

/// `<0xNN>` -> NN (the SentencePiece byte-fallback token spelling).
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// C `isspace` on a byte (llama.cpp's lstrip/rstrip test).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
];
// Texts llama.cpp recognises as the end-of-turn token when `tokenizer.ggml.eot_token_id` is absent.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "<end_of_utterance>",
];
// Fill-in-the-middle pad / repo / file-separator tokens: llama.cpp stops generation on them too.
const FIM_EOG_TEXTS: &[&str] =
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
      "<reponame>", "<|file_sep|>"];

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

    fn type_of(&self, id: usize) -> i32 {
        self.token_types.get(id).copied().unwrap_or(token_type::NORMAL)
    }
}

impl Tokenizer {
    /// Builds the tokenizer of a GGUF file from its own vocabulary (see [`TokenizerSpec::from_gguf`]).
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        Tokenizer::from_spec(&TokenizerSpec::from_gguf(g)?)
    }

    /// Builds a tokenizer from plain metadata. Distrusts it: counts, ids and merge strings are checked, and a
    /// problem is an `Error::Format` / `Error::Tokenizer` / `Error::Unsupported` naming it, never a panic.
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Tokenizer> {
        let n = spec.tokens.len();
        if n == 0 {
            return Err(Error::Format("tokenizer.ggml.tokens is empty".into()));
        }
        if n > MAX_VOCAB {
            return Err(Error::Format(format!("tokenizer.ggml.tokens has {n} entries (at most {MAX_VOCAB} accepted)")));
        }
        if !spec.token_types.is_empty() && spec.token_types.len() < n {
            return Err(Error::Format(format!(
                "tokenizer.ggml.token_type has {} entries for {n} tokens",
                spec.token_types.len()
            )));
        }
        let is_spm = match spec.model.as_str() {
            "llama" => true,
            "gpt2" => false,
            other => return Err(Error::Unsupported(format!("tokenizer model '{other}' (supported: llama, gpt2)"))),
        };
        if is_spm && spec.scores.len() < n {
            return Err(Error::Format(format!(
                "tokenizer.ggml.scores has {} entries for {n} tokens (a 'llama' tokenizer needs one per token)",
                spec.scores.len()
            )));
        }
        let pre = if is_spm {
            None
        } else {
            let name = spec.pre.as_deref().unwrap_or("default");
            Some(pre_tokenizer(name).ok_or_else(|| {
                Error::Unsupported(format!("pre-tokenizer '{name}' (tokenizer.ggml.pre) is not implemented"))
            })?)
        };

        // Token texts: an empty entry gets a placeholder name as llama.cpp does, so that it can never match text.
        let mut texts = String::new();
        let mut text_offsets = Vec::with_capacity(n + 1);
        text_offsets.push(0u32);
        for (i, t) in spec.tokens.iter().enumerate() {
            if t.is_empty() {
                texts.push_str(&format!("[EMPTY_{i}]"));
            } else {
                texts.push_str(t);
            }
            let end = u32::try_from(texts.len())
                .map_err(|_| Error::Format("tokenizer.ggml.tokens holds more than 4 GiB of text".into()))?;
            text_offsets.push(end);
        }
        let text_of = |i: usize| &texts[text_offsets[i] as usize..text_offsets[i + 1] as usize];
        let max_token_len = (0..n).map(|i| text_of(i).len()).max().unwrap_or(0);

        // Ids sorted by text: duplicate check for every model, lookup table for SPM.
        let mut by_text: Vec<u32> = (0..n as u32).collect();
        by_text.sort_unstable_by(|&a, &b| text_of(a as usize).cmp(text_of(b as usize)));
        for w in by_text.windows(2) {
            if text_of(w[0] as usize) == text_of(w[1] as usize) {
                return Err(Error::Format(format!(
                    "duplicate token '{}' in tokenizer.ggml.tokens (ids {} and {})",
                    text_of(w[0] as usize),
                    w[0].min(w[1]),
                    w[0].max(w[1])
                )));
            }
        }
        let find = |s: &str| -> Option<u32> {
            by_text.binary_search_by(|&id| text_of(id as usize).cmp(s)).ok().map(|i| by_text[i])
        };

        let mut types: Vec<i8> = (0..n)
            .map(|i| match spec.type_of(i) {
                t @ 0..=6 => t as i8,
                _ => token_type::UNDEFINED as i8,
            })
            .collect();

        // Special ids: a value outside the vocabulary is ignored (llama.cpp warns and keeps its default).
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let (mut bos, mut eos, mut unk) = (in_range(spec.bos_id), in_range(spec.eos_id), in_range(spec.unk_id));
        if is_spm {
            // llama.cpp's defaults for SentencePiece vocabularies: <unk> = 0, <s> = 1, </s> = 2.
            bos = bos.or(in_range(Some(1)));
            eos = eos.or(in_range(Some(2)));
            unk = unk.or(in_range(Some(0)));
        }
        let eot = in_range(spec.eot_id).or_else(|| EOT_TEXTS.iter().find_map(|t| find(t)));
        let eom = in_range(spec.eom_id).or_else(|| find("<|eom_id|>"));

        let mut eog: Vec<u32> = EOG_TEXTS.iter().chain(FIM_EOG_TEXTS).filter_map(|t| find(t)).collect();
        eog.extend([eos, eot, eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();
        // llama.cpp forces end-of-generation tokens to be control tokens (so they are never produced from plain
        // text and are skipped when decoding without specials).
        for &id in &eog {
            types[id as usize] = token_type::CONTROL as i8;
        }

        let add_bos = spec.add_bos.unwrap_or(if is_spm { true } else { pre.as_ref().is_some_and(|p| p.add_bos) });
        let add_eos = spec.add_eos.unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(Error::Format("add_bos_token is set but tokenizer.ggml.bos_token_id is missing".into()));
        }
        if add_eos && eos.is_none() {
            return Err(Error::Format("add_eos_token is set but tokenizer.ggml.eos_token_id is missing".into()));
        }
        // The space prefix is a SentencePiece notion; llama.cpp never prepends one for BPE vocabularies.
        let add_space_prefix = is_spm && spec.add_space_prefix.unwrap_or(true);

        // Decoded bytes of every token.
        let mut bytes = Vec::with_capacity(texts.len());
        let mut byte_offsets = Vec::with_capacity(n + 1);
        byte_offsets.push(0u32);
        for i in 0..n {
            let text = text_of(i);
            match types[i] as i32 {
                token_type::NORMAL => {
                    if is_spm {
                        bytes.extend_from_slice(text.replace('\u{2581}', " ").as_bytes());
                    } else {
                        let mut buf = [0u8; 4];
                        for c in text.chars() {
                            match byte_level_decode(c) {
                                Some(b) => bytes.push(b),
                                // Not a byte-level character: keep it as UTF-8 rather than lose it.
                                None => bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
                            }
                        }
                    }
                }
                token_type::BYTE => match parse_byte_token(text) {
                    Some(b) => bytes.push(b),
                    None => bytes.extend_from_slice(text.as_bytes()),
                },
                token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN => {
                    bytes.extend_from_slice(text.as_bytes())
                }
                // Unused / undefined tokens decode to nothing (llama.cpp's token_to_piece).
                _ => {}
            }
            let end = u32::try_from(bytes.len())
                .map_err(|_| Error::Format("tokenizer vocabulary decodes to more than 4 GiB".into()))?;
            byte_offsets.push(end);
        }

        // Special tokens cut out of the text before the model runs.
        let mut special_sorted: Vec<u32> = by_text
            .iter()
            .copied()
            .filter(|&id| {
                matches!(types[id as usize] as i32, token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN)
            })
            .collect();
        special_sorted.shrink_to_fit();
        let mut special_first_byte = [false; 256];
        for &id in &special_sorted {
            special_first_byte[text_of(id as usize).as_bytes()[0] as usize] = true;
        }
        // Phi-3: HF marks its added tokens rstrip=True; llama.cpp mirrors that by model name.
        let mut special_rstrip = Vec::new();
        let lname = spec.name.as_deref().unwrap_or("").to_lowercase();
        if lname.contains("phi-3") || lname.contains("phi3") {
            special_rstrip = special_sorted
                .iter()
                .copied()
                .filter(|&id| !matches!(text_of(id as usize), "<unk>" | "<s>" | "<|endoftext|>"))
                .collect();
            special_rstrip.sort_unstable();
        }

        let model = match &pre {
            Some(pre) => Model::Bpe(Box::new(build_bpe(spec, pre, &find)?)),
            None => {
                let mut byte_tokens: Box<[Option<u32>; 256]> = Box::new([None; 256]);
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    *slot = find(&format!("<0x{b:02X}>")).or_else(|| {
                        // llama.cpp falls back to a token spelled as the byte itself.
                        std::str::from_utf8(&[b as u8]).ok().and_then(|s| find(s))
                    });
                }
                Model::Spm { byte_tokens }
            }
        };

        let scores = if is_spm { spec.scores[..n].to_vec() } else { Vec::new() };

        Ok(Tokenizer {
            model,
            texts,
            text_offsets,
            bytes,
            byte_offsets,
            types,
            scores,
            by_text,
            max_token_len,
            special_sorted,
            special_first_byte,
            special_rstrip,
            bos,
            eos,
            unk,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.types.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `add_special` in [`Tokenizer::encode`] prepends BOS / appends EOS (per the metadata).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Ends generation: EOS, EOT, EOM and the control tokens llama.cpp treats as end-of-generation
    /// (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`, `<|endoftext|>`, FIM pad/repo/file-separator, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// The token's text as stored in the vocabulary (e.g. "Ġthe", "▁the", "<|im_end|>"); "" for an id outside it.
    pub fn token_str(&self, id: u32) -> &str {
        let i = id as usize;
        if i >= self.types.len() {
            return "";
        }
        &self.texts[self.text_offsets[i] as usize..self.text_offsets[i + 1] as usize]
    }

    /// The raw bytes the token stands for in decoded text (possibly part of a UTF-8 character). Control tokens give
    /// their text (e.g. `<|im_end|>`), unused tokens and ids outside the vocabulary give nothing.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        if i >= self.types.len() {
            return &[];
        }
        &self.bytes[self.byte_offsets[i] as usize..self.byte_offsets[i + 1] as usize]
    }

    /// GGUF token type of `id` (see [`token_type`]), `None` outside the vocabulary.
    pub fn token_type(&self, id: u32) -> Option<i32> {
        self.types.get(id as usize).map(|&t| t as i32)
    }

    /// Control or unknown token: rendered only when decoding with `skip_special = false`.
    pub fn is_special(&self, id: u32) -> bool {
        matches!(self.token_type(id), Some(token_type::CONTROL | token_type::UNKNOWN))
    }

    /// Looks a token up by its exact vocabulary text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.by_text.binary_search_by(|&id| self.token_str(id).cmp(text)).ok().map(|i| self.by_text[i])
    }

    /// Text -> token ids. `add_special` adds BOS / EOS as the metadata says (`add_bos_token`, `add_eos_token`);
    /// `parse_special` lets control tokens written in the text (e.g. `<|im_start|>`) become those tokens, otherwise
    /// they are tokenized as plain text. User-defined tokens are always matched (llama.cpp and HF do the same).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let fragments = self.partition(text, parse_special);
        match &self.model {
            Model::Spm { byte_tokens } => {
                // A space is prepended to the first text and to every text that follows a special token.
                let mut prev_special = true;
                for f in fragments {
                    match f {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(t) => {
                            let mut s = String::with_capacity(t.len() + 3);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(t);
                            let s = s.replace(' ', "\u{2581}");
                            self.spm_encode(&s, byte_tokens, &mut out)?;
                            prev_special = false;
                        }
                    }
                }
            }
            Model::Bpe(tk) => {
                for f in fragments {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(t) => {
                            let enc = tk.encode_fast(t, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
                            out.extend_from_slice(enc.get_ids());
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    /// Token ids -> text. `skip_special` drops control and unknown tokens (BOS, `<|im_end|>`, ...); otherwise their
    /// text is written. SentencePiece vocabularies with a space prefix lose the one leading space the encoder added
    /// (on the first token after any leading control tokens), so `decode(encode(s)) == s`. Bytes that do not form
    /// valid UTF-8 become U+FFFD. Any id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut buf = Vec::with_capacity(ids.len() * 4);
        let mut at_start = true;
        for &id in ids {
            if id as usize >= self.types.len() {
                return Err(Error::Tokenizer(format!(
                    "token id {id} is outside the vocabulary ({} tokens)",
                    self.types.len()
                )));
            }
            self.append_piece(id, skip_special, &mut at_start, &mut buf);
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Appends what `id` decodes to, applying the skip-special and leading-space rules of [`Tokenizer::decode`].
    fn append_piece(&self, id: u32, skip_special: bool, at_start: &mut bool, buf: &mut Vec<u8>) {
        let special = self.is_special(id);
        if special && skip_special {
            return;
        }
        let mut piece = self.token_bytes(id);
        if *at_start && !special {
            if self.add_space_prefix && piece.first() == Some(&b' ') {
                piece = &piece[1..];
            }
            *at_start = false;
        }
        buf.extend_from_slice(piece);
    }

    /// Cuts `text` at special tokens, llama.cpp's way: special tokens are taken longest text first, and each one is
    /// split out of every remaining text fragment (left to right, non-overlapping) before the next is tried.
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut frags = vec![Fragment::Text(text)];
        if text.is_empty() {
            return Vec::new();
        }
        let allowed = |id: u32| {
            let t = self.types[id as usize] as i32;
            t == token_type::USER_DEFINED || (parse_special && (t == token_type::CONTROL || t == token_type::UNKNOWN))
        };
        // Which special tokens occur at all: walk the sorted special texts as a trie at every start byte.
        let bytes = text.as_bytes();
        let mut present: Vec<u32> = Vec::new();
        for p in 0..bytes.len() {
            if !self.special_first_byte[bytes[p] as usize] {
                continue;
            }
            let (mut lo, mut hi) = (0usize, self.special_sorted.len());
            let mut k = 0;
            while lo < hi && p + k < bytes.len() {
                let c = bytes[p + k];
                let range = &self.special_sorted[lo..hi];
                // Entries are sorted by text, and all of them share bytes[p..p + k]: the ones of length k come first.
                let key = |id: &u32| self.token_str(*id).as_bytes().get(k).copied();
                let start = lo + range.partition_point(|id| key(id) < Some(c));
                let end = lo + range.partition_point(|id| key(id) <= Some(c));
                lo = start;
                hi = end;
                k += 1;
                if lo < hi && self.token_str(self.special_sorted[lo]).len() == k {
                    let id = self.special_sorted[lo];
                    if allowed(id) {
                        present.push(id);
                    }
                }
            }
        }
        if present.is_empty() {
            return frags;
        }
        present.sort_unstable_by(|&a, &b| {
            self.token_str(b).len().cmp(&self.token_str(a).len()).then(a.cmp(&b))
        });
        present.dedup();
        for id in present {
            let tok = self.token_str(id);
            let rstrip = self.special_rstrip.binary_search(&id).is_ok();
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(t) = f else {
                    next.push(f);
                    continue;
                };
                let mut rest = t;
                while let Some(pos) = rest.find(tok) {
                    if pos > 0 {
                        next.push(Fragment::Text(&rest[..pos]));
                    }
                    next.push(Fragment::Token(id));
                    rest = &rest[pos + tok.len()..];
                    if rstrip {
                        rest = rest.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
                    }
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            frags = next;
        }
        frags
    }

    /// Ids of SPM tokens that plain text may merge into: normal and user-defined ones (SentencePiece never produces
    /// control or byte pieces from text; llama.cpp would, e.g. "<0x0A>" typed literally, which we do not copy).
    fn spm_lookup(&self, s: &str) -> Option<u32> {
        if s.len() > self.max_token_len {
            return None;
        }
        let id = self.by_text.binary_search_by(|&id| self.token_str(id).cmp(s)).ok().map(|i| self.by_text[i])?;
        matches!(self.types[id as usize] as i32, token_type::NORMAL | token_type::USER_DEFINED).then_some(id)
    }

    /// SentencePiece BPE over `text` (spaces already replaced by "▁"): start from single characters, repeatedly merge
    /// the adjacent pair whose concatenation is the token with the highest score (leftmost on ties), then emit the
    /// final symbols, spelling any that is not a token as `<0xNN>` byte tokens.
    fn spm_encode(&self, text: &str, byte_tokens: &[Option<u32>; 256], out: &mut Vec<u32>) -> Result<()> {
        // Symbol i covers text[start..start + len]; merged-away symbols have len 0; prev/next link live symbols.
        struct Sym {
            start: usize,
            len: usize,
            prev: Option<usize>,
            next: Option<usize>,
        }
        struct Bigram {
            score: f32,
            left: usize,
            right: usize,
            len: usize,
        }
        impl PartialEq for Bigram {
            fn eq(&self, o: &Self) -> bool {
                self.cmp(o) == Ordering::Equal
            }
        }
        impl Eq for Bigram {}
        impl PartialOrd for Bigram {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Bigram {
            // Max-heap: higher score first, then the leftmost pair.
            fn cmp(&self, o: &Self) -> Ordering {
                self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
            }
        }

        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        for (start, c) in text.char_indices() {
            let i = syms.len();
            syms.push(Sym { start, len: c.len_utf8(), prev: i.checked_sub(1), next: Some(i + 1) });
        }
        if let Some(last) = syms.last_mut() {
            last.next = None;
        } else {
            return Ok(());
        }

        let mut heap = BinaryHeap::new();
        let try_add = |syms: &[Sym], heap: &mut BinaryHeap<Bigram>, left: Option<usize>, right: Option<usize>| {
            let (Some(l), Some(r)) = (left, right) else { return };
            let s = &text[syms[l].start..syms[r].start + syms[r].len];
            if let Some(id) = self.spm_lookup(s) {
                heap.push(Bigram { score: self.scores[id as usize], left: l, right: r, len: s.len() });
            }
        };
        for i in 1..syms.len() {
            try_add(&syms, &mut heap, Some(i - 1), Some(i));
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (b.left, b.right);
            // Stale entry: one side was merged away or grew since the pair was queued.
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.len {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            let after = syms[r].next;
            syms[l].next = after;
            if let Some(a) = after {
                syms[a].prev = Some(l);
            }
            let before = syms[l].prev;
            try_add(&syms, &mut heap, before, Some(l));
            try_add(&syms, &mut heap, Some(l), after);
        }

        let mut i = Some(0);
        while let Some(k) = i {
            let s = &text[syms[k].start..syms[k].start + syms[k].len];
            match self.spm_lookup(s) {
                Some(id) => out.push(id),
                None => {
                    for &b in s.as_bytes() {
                        match byte_tokens[b as usize].or(self.unk) {
                            Some(id) => out.push(id),
                            None => {
                                return Err(Error::Tokenizer(format!(
                                    "cannot encode byte 0x{b:02X}: the vocabulary has no <0x{b:02X}> token and no \
                                     unknown token"
                                )))
                            }
                        }
                    }
                }
            }
            i = syms[k].next;
        }
        Ok(())
    }
}

/// The `tokenizers` pipeline of a "gpt2" vocabulary: regex splits, byte-level mapping, BPE with the file's merges.
fn build_bpe(
    spec: &TokenizerSpec,
    pre: &PreTokenizer,
    find: &dyn Fn(&str) -> Option<u32>,
) -> Result<tokenizers::Tokenizer> {
    use tokenizers::models::bpe::{Merges, Vocab, BPE};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::pre_tokenizers::PreTokenizerWrapper;
    use tokenizers::SplitDelimiterBehavior;

    if spec.merges.is_empty() {
        return Err(Error::Format("tokenizer.ggml.merges is missing (a 'gpt2' tokenizer needs it)".into()));
    }
    let vocab: Vocab = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (if t.is_empty() { format!("[EMPTY_{i}]") } else { t.clone() }, i as u32))
        .collect();
    // "left right", split at the first space after the first byte (a merge side never contains a space in a
    // byte-level vocabulary, where space is "Ġ"). Merges whose sides or result are not tokens could never produce
    // a token; they are dropped (the tokenizers crate rejects them, and its builder assumes they fit).
    let mut merges: Merges = Vec::with_capacity(spec.merges.len());
    let mut joined = String::new();
    for m in &spec.merges {
        // Byte search: the first side may start with a multi-byte character (e.g. "Ġ Ġ").
        let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else { continue };
        let (a, b) = (&m[..pos], &m[pos + 1..]);
        joined.clear();
        joined.push_str(a);
        joined.push_str(b);
        if find(a).is_some() && find(b).is_some() && find(&joined).is_some() {
            merges.push((a.to_owned(), b.to_owned()));
        }
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|e| Error::Tokenizer(format!("building the BPE model: {e}")))?;
    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(pre.regexes.len() + 1);
    for re in pre.regexes {
        let split = Split::new(SplitPattern::Regex((*re).to_owned()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());
    let mut tk = tokenizers::Tokenizer::new(bpe);
    tk.with_pre_tokenizer(Some(Sequence::new(steps)));
    Ok(tk)
}

/// Streams decoded text token by token without ever emitting a broken UTF-8 character: bytes of a character split
/// across tokens (byte-fallback tokens, byte-level BPE pieces) are held back until the character is complete.
#[derive(Clone, Debug)]
pub struct IncrementalDecoder {
    pending: Vec<u8>,
    skip_special: bool,
    /// Apply `decode`'s leading-space rule to the first token pushed.
    at_start: bool,
}

impl Default for IncrementalDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl IncrementalDecoder {
    /// Decodes a sequence from its start like [`Tokenizer::decode`] with `skip_special = true` (so a SentencePiece
    /// reply "▁Hello" streams as "Hello"). Use [`IncrementalDecoder::continuation`] for text that continues a prompt.
    pub fn new() -> Self {
        IncrementalDecoder { pending: Vec::new(), skip_special: true, at_start: true }
    }

    /// Decodes tokens that continue earlier text: no leading space is removed.
    pub fn continuation() -> Self {
        IncrementalDecoder { pending: Vec::new(), skip_special: true, at_start: false }
    }

    /// Whether control tokens are dropped (default) or written as their text.
    pub fn with_skip_special(mut self, skip_special: bool) -> Self {
        self.skip_special = skip_special;
        self
    }

    /// Adds one token; returns the text completed by it (possibly empty). Ids outside the vocabulary add nothing.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        if (id as usize) < tok.vocab_size() {
            tok.append_piece(id, self.skip_special, &mut self.at_start, &mut self.pending);
        }
        self.take_complete()
    }

    /// Returns whatever is held back; an unfinished character becomes U+FFFD.
    pub fn flush(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }

    /// Emits the longest prefix of `pending` made of whole characters; invalid sequences become U+FFFD, an
    /// incomplete character at the end stays pending.
    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            rest = &after[bad..];
                        }
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let drop = self.pending.len() - keep;
        self.pending.drain(..drop);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_is_a_bijection() {
        // Every byte has exactly one character in GPT-2's alphabet: 188 printable ones plus 68 shifted to U+0100...
        let mut seen = [false; 256];
        let chars = (0x21u32..=0x7E).chain(0xA1..=0xAC).chain(0xAE..=0xFF).chain(0x100..=0x143);
        let mut count = 0;
        for u in chars {
            let b = byte_level_decode(char::from_u32(u).unwrap()).unwrap();
            assert!(!seen[b as usize], "byte {b} mapped twice");
            seen[b as usize] = true;
            count += 1;
        }
        assert_eq!(count, 256);
        assert_eq!(byte_level_decode('Ġ'), Some(b' ')); // U+0120, the familiar "Ġ" = space
        assert_eq!(byte_level_decode('Ċ'), Some(b'\n')); // U+010A
        assert_eq!(byte_level_decode('\u{144}'), None);
    }

    fn spm(tokens: &[(&str, f32, i32)]) -> TokenizerSpec {
        TokenizerSpec {
            model: "llama".into(),
            tokens: tokens.iter().map(|t| t.0.to_owned()).collect(),
            scores: tokens.iter().map(|t| t.1).collect(),
            token_types: tokens.iter().map(|t| t.2).collect(),
            ..Default::default()
        }
    }

    const N: i32 = token_type::NORMAL;

    #[test]
    fn spm_merges_follow_scores_then_position() {
        // SentencePiece BPE: the pair forming the best-scoring token merges first, the leftmost on equal scores.
        let mut v = vec![("<unk>", 0.0, token_type::UNKNOWN), ("<s>", 0.0, token_type::CONTROL), ("</s>", 0.0, token_type::CONTROL)];
        v.extend([("\u{2581}", -1.0, N), ("a", -1.0, N), ("b", -1.0, N), ("ab", -2.0, N), ("\u{2581}a", -3.0, N)]);
        let t = Tokenizer::from_spec(&spm(&v)).unwrap();
        // "▁ab": "ab" (-2) beats "▁a" (-3).
        assert_eq!(t.encode("ab", false, false).unwrap(), vec![3, 6]);
        // Equal scores: the left pair ("▁a") wins.
        v[7].1 = -2.0;
        let t = Tokenizer::from_spec(&spm(&v)).unwrap();
        assert_eq!(t.encode("ab", false, false).unwrap(), vec![7, 5]);
        // BOS is added by default for "llama" vocabularies; with no byte tokens a character outside the vocabulary
        // gives <unk>; decoding drops the prefixed space.
        assert_eq!(t.encode("ac", true, false).unwrap(), vec![1, 7, 0]);
        assert_eq!(t.decode(&[1, 7, 5], true).unwrap(), "ab");
        assert_eq!(t.decode(&[1, 7, 5], false).unwrap(), "<s>ab");
    }

    #[test]
    fn spm_byte_fallback_and_control_text() {
        let mut v = vec![("<unk>", 0.0, token_type::UNKNOWN), ("<s>", 0.0, token_type::CONTROL), ("</s>", 0.0, token_type::CONTROL)];
        let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
        v.extend(bytes.iter().map(|b| (b.as_str(), 0.0, token_type::BYTE)));
        v.extend([("\u{2581}", -1.0, N), ("<", -1.0, N), ("s", -1.0, N), (">", -1.0, N), ("<s", -2.0, N), ("s>", -2.0, N)]);
        let t = Tokenizer::from_spec(&spm(&v)).unwrap();
        // é (C3 A9) is not in the vocabulary: two byte tokens after "▁".
        assert_eq!(t.encode("é", false, false).unwrap(), vec![259, 3 + 0xC3, 3 + 0xA9]);
        // "<s>" typed as text never becomes the control token (nor "<0x41>" a byte token) unless parse_special.
        let ids = t.encode("<s> <0x41>", false, false).unwrap();
        assert!(!ids.contains(&1) && !ids.contains(&(3 + 0x41)), "{ids:?}");
        assert_eq!(t.decode(&ids, false).unwrap(), "<s> <0x41>");
        assert_eq!(t.encode("<s>", false, true).unwrap(), vec![1]);
    }

    #[test]
    fn rejects_malformed_specs() {
        let ok = spm(&[("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3), ("a", -1.0, 1)]);
        assert!(Tokenizer::from_spec(&ok).is_ok());
        let check = |spec: TokenizerSpec, code: &str, needle: &str| {
            let e = Tokenizer::from_spec(&spec).err().expect("must fail");
            assert_eq!(e.code(), code, "{e}");
            assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
        };
        check(TokenizerSpec { tokens: vec![], ..ok.clone() }, "format", "empty");
        check(TokenizerSpec { model: "bert".into(), ..ok.clone() }, "unsupported", "bert");
        check(TokenizerSpec { scores: vec![0.0], ..ok.clone() }, "format", "scores");
        check(TokenizerSpec { token_types: vec![1, 1], ..ok.clone() }, "format", "token_type");
        let mut dup = ok.clone();
        dup.tokens[3] = "</s>".into();
        check(dup, "format", "duplicate");
        let gpt2 = TokenizerSpec {
            model: "gpt2".into(),
            pre: Some("gpt-2".into()),
            tokens: vec!["a".into(), "b".into(), "ab".into()],
            merges: vec!["a b".into()],
            ..Default::default()
        };
        assert!(Tokenizer::from_spec(&gpt2).is_ok());
        check(TokenizerSpec { pre: Some("no-such-pre".into()), ..gpt2.clone() }, "unsupported", "no-such-pre");
        check(TokenizerSpec { merges: vec![], ..gpt2.clone() }, "format", "merges");
        check(TokenizerSpec { add_bos: Some(true), bos_id: Some(99), ..gpt2.clone() }, "format", "bos");
        // Malformed merges (no separator, unknown sides, result not a token) are skipped, not fatal.
        let odd = TokenizerSpec { merges: vec!["ab".into(), "".into(), "x y".into(), "b a".into(), "a b".into()], ..gpt2 };
        let t = Tokenizer::from_spec(&odd).unwrap();
        assert_eq!(t.encode("ab", false, false).unwrap(), vec![2]);
        // Special ids outside the vocabulary are ignored.
        let t = Tokenizer::from_spec(&TokenizerSpec { eos_id: Some(1 << 30), ..odd }).unwrap();
        assert_eq!(t.eos_id(), None);
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xff>"), Some(255));
        assert_eq!(parse_byte_token("<0x1>"), None);
        assert_eq!(parse_byte_token("0x41"), None);
    }
}
