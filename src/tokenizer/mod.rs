//! Text <-> token ids, built from the vocabulary a GGUF file carries (no tokenizer.json needed).
//!
//! The metadata read is the `tokenizer.ggml.*` family of the GGUF spec: `model`, `pre`, `tokens`, `scores`,
//! `token_type`, `merges`, the special token ids and the `add_*` flags. The behaviour mirrors llama.cpp's vocab
//! (its test vectors in `ggml-vocab-*.gguf.inp/.out` are the reference, see tests/tokenizer_vectors.rs):
//!
//! * `model = "gpt2"`: byte-level BPE. Pre-tokenized with the `tokenizers` crate (a sequence of regex `Split`s
//!   chosen from `tokenizer.ggml.pre` and a `ByteLevel` step), then the file's `merges` in that crate's order
//!   (`bpe.rs`, over a compact merge table instead of the crate's `BPE` model and its string maps).
//! * `model = "llama"`: SentencePiece-style BPE driven by token scores (spaces become U+2581 "▁", an optional
//!   space is prepended, characters no token covers fall back to `<0xNN>` byte tokens). The `tokenizers` crate has
//!   no model for this (its `BPE` needs the merge list these files do not carry, and deriving one orders equal-score
//!   merges differently), so the score-driven merge loop is implemented here.
//!
//! Before either model runs, the text is cut at special tokens (control tokens only when `parse_special`,
//! user-defined tokens always), longest token text first, as llama.cpp does.


mod bpe;
mod decoder;
mod index;
mod pretokenize;
mod spec;
mod special;
mod spm;

pub use decoder::IncrementalDecoder;
pub use spec::TokenizerSpec;
use spec::SpecRef;

use bpe::{byte_level_decode, ByteBpe};
use index::TextIndex;
use pretokenize::pre_tokenizer;
use special::{Fragment, EOG_TEXTS, EOT_TEXTS, FIM_EOG_TEXTS};
use spm::parse_byte_token;

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

/// Which of the two tokenizer algorithms a vocabulary uses.
enum Model {
    /// SentencePiece-style: score-driven merges, "▁" for spaces, `<0xNN>` byte fallback.
    Spm {
        /// Ids of the `<0xNN>` tokens (or single-byte tokens), indexed by byte; `None` = not in the vocabulary.
        byte_tokens: Box<[Option<u32>; 256]>,
    },
    /// Byte-level BPE: the `tokenizers` crate's pre-tokenizer, then the file's merges.
    Bpe(ByteBpe),
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
    /// Text -> id lookup (hash index over `texts`).
    index: TextIndex,
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

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &match self.model {
                Model::Spm { .. } => "llama (SentencePiece)",
                Model::Bpe(_) => "gpt2 (byte-level BPE)",
            })
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eog", &self.eog)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer of a GGUF file from its own vocabulary (see [`TokenizerSpec::from_gguf`]).
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        Tokenizer::build(&SpecRef::from_gguf(g)?)
    }

    /// Builds a tokenizer from plain metadata. Distrusts it: counts, ids and merge strings are checked, and a
    /// problem is an `Error::Format` / `Error::Tokenizer` / `Error::Unsupported` naming it, never a panic.
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Tokenizer> {
        Tokenizer::build(&spec.borrow())
    }

    fn build(spec: &SpecRef<'_>) -> Result<Tokenizer> {
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
        let is_spm = match spec.model {
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
            let name = spec.pre.unwrap_or("default");
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
        let index = TextIndex::build(n, text_of);
        let find = |s: &str| -> Option<u32> { index.get(s, |id| text_of(id as usize)) };

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
        let lname = spec.name.unwrap_or("").to_lowercase();
        if lname.contains("phi-3") || lname.contains("phi3") {
            special_rstrip = special_sorted
                .iter()
                .copied()
                .filter(|&id| !matches!(text_of(id as usize), "<unk>" | "<s>" | "<|endoftext|>"))
                .collect();
            special_rstrip.sort_unstable();
        }

        let model = match &pre {
            Some(pre) => Model::Bpe(ByteBpe::new(&spec.merges, pre, &find)?),
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
            index,
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
        self.index.get(text, |id| self.token_str(id))
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
            Model::Bpe(bpe) => {
                let find = |s: &str| self.token_id(s);
                for f in fragments {
                    match f {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(t) => bpe.encode(t, &find, &mut out)?,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
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
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
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
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
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
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
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
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xff>"), Some(255));
        assert_eq!(parse_byte_token("<0x1>"), None);
        assert_eq!(parse_byte_token("0x41"), None);
    }
}
