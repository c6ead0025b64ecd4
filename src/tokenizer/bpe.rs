//! Byte-level BPE ("gpt2" vocabularies): the byte alphabet and the `tokenizers` pipeline built from the file's
//! merges.

use super::pretokenize::PreTokenizer;
use super::TokenizerSpec;
use crate::{Error, Result};

/// The GGUF spec's byte-level BPE alphabet (GPT-2's `bytes_to_unicode`): bytes '!'..='~', '¡'..='¬', '®'..='ÿ'
/// stand for themselves, the other 68 bytes (in increasing order) are mapped to U+0100, U+0101, ...
pub(super) fn byte_level_decode(c: char) -> Option<u8> {
    let u = c as u32;
    match u {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(u as u8),
        0x100..=0x120 => Some((u - 0x100) as u8),              // bytes 0x00..=0x20
        0x121..=0x142 => Some((u - 0x121 + 0x7F) as u8),       // bytes 0x7F..=0xA0
        0x143 => Some(0xAD),
        _ => None,
    }
}

/// The `tokenizers` pipeline of a "gpt2" vocabulary: regex splits, byte-level mapping, BPE with the file's merges.
pub(super) fn build_bpe(
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
