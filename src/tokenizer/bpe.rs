//! Byte-level BPE ("gpt2" vocabularies): the byte alphabet, the pre-tokenizer (the `tokenizers` crate's regex
//! `Split`s and `ByteLevel` step) and the merges, applied here.
//!
//! The merges are a table of id pairs sorted for binary search (16 bytes a merge), not the `tokenizers` crate's
//! `BPE` model: that one keeps a `String` -> id map, an id -> `String` map and a pair hash map beside the tokenizer's
//! own tables, and its builder wants every merge as a `(String, String)` first; for Llama 3's 128k tokens and 280k
//! merges that was ~40 MB of wasm memory at load (issue 20). The merge order is the crate's (`Word::merge_all`): the
//! lowest rank first, leftmost on ties, a pair listed twice keeping its later rank.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _, SplitDelimiterBehavior};

use super::pretokenize::PreTokenizer;
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

/// One merge: `left right -> id`, with its rank (position in the file's list).
#[derive(Clone, Copy)]
struct Merge {
    /// `left << 32 | right` (token ids).
    pair: u64,
    rank: u32,
    id: u32,
}

/// A "gpt2" vocabulary's pre-tokenizer and merges. Token texts are looked up through the tokenizer's own index
/// (the `find` argument), so nothing of the vocabulary is copied here.
pub(super) struct ByteBpe {
    pre: PreTokenizerWrapper,
    /// Sorted by `pair`, one entry per pair.
    merges: Vec<Merge>,
    /// A piece that is itself a token is emitted whole (Llama 3).
    ignore_merges: bool,
}

impl ByteBpe {
    /// `merges`: "left right" strings in rank order. Merges whose sides or result are not tokens could never produce
    /// a token and are dropped.
    pub(super) fn new(merges: &[&str], pre: &PreTokenizer, find: &dyn Fn(&str) -> Option<u32>) -> Result<ByteBpe> {
        if merges.is_empty() {
            return Err(Error::Format("tokenizer.ggml.merges is missing (a 'gpt2' tokenizer needs it)".into()));
        }
        let mut table: Vec<Merge> = Vec::with_capacity(merges.len());
        let mut joined = String::new();
        for (rank, m) in merges.iter().enumerate() {
            // "left right", split at the first space after the first byte (a merge side never contains a space in
            // a byte-level vocabulary, where space is "Ġ"; the first side may start with a multi-byte character).
            let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else { continue };
            let (a, b) = (&m[..pos], &m[pos + 1..]);
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            if let (Some(a), Some(b), Some(id)) = (find(a), find(b), find(&joined)) {
                // merges.len() <= the metadata value cap (2^23), so the rank fits u32.
                table.push(Merge { pair: (a as u64) << 32 | b as u64, rank: rank as u32, id });
            }
        }
        // Stable sort keeps ranks ascending within a pair; the last of a pair wins, as in the crate's hash map.
        table.sort_by_key(|m| m.pair);
        let mut merges_out: Vec<Merge> = Vec::with_capacity(table.len());
        for m in table.iter() {
            match merges_out.last_mut() {
                Some(last) if last.pair == m.pair => *last = *m,
                _ => merges_out.push(*m),
            }
        }
        drop(table);
        merges_out.shrink_to_fit();

        let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(pre.regexes.len() + 1);
        for re in pre.regexes {
            let split = Split::new(SplitPattern::Regex((*re).to_owned()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
            steps.push(split.into());
        }
        steps.push(ByteLevel::new(false, false, false).into());
        Ok(ByteBpe { pre: Sequence::new(steps).into(), merges: merges_out, ignore_merges: pre.ignore_merges })
    }

    fn merge(&self, left: u32, right: u32) -> Option<Merge> {
        let pair = (left as u64) << 32 | right as u64;
        self.merges.binary_search_by_key(&pair, |m| m.pair).ok().map(|i| self.merges[i])
    }

    /// Appends the ids of `text` (no special tokens in it) to `out`.
    pub(super) fn encode(&self, text: &str, find: &dyn Fn(&str) -> Option<u32>, out: &mut Vec<u32>) -> Result<()> {
        let mut pieces = PreTokenizedString::from(text);
        self.pre.pre_tokenize(&mut pieces).map_err(|e| Error::Tokenizer(e.to_string()))?;
        for (piece, _, _) in pieces.get_splits(OffsetReferential::Original, OffsetType::None) {
            self.encode_piece(piece, find, out);
        }
        Ok(())
    }

    /// One pre-tokenized piece (byte-level characters): its characters' tokens, merged lowest rank first.
    fn encode_piece(&self, piece: &str, find: &dyn Fn(&str) -> Option<u32>, out: &mut Vec<u32>) {
        if piece.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(id) = find(piece) {
                out.push(id);
                return;
            }
        }
        // A character that is no token is dropped (the crate's BPE without an unknown token does the same).
        let mut buf = [0u8; 4];
        let mut sym: Vec<u32> = piece.chars().filter_map(|c| find(c.encode_utf8(&mut buf))).collect();
        let n = sym.len();
        // A doubly linked list over the symbols; `NONE` ends it, a merged-away symbol is marked dead.
        const NONE: usize = usize::MAX;
        let mut next: Vec<usize> = (1..=n).map(|i| if i < n { i } else { NONE }).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| if i > 0 { i - 1 } else { NONE }).collect();
        let mut alive = vec![true; n];
        // (rank, position of the left symbol, merged id): the smallest pops first.
        let mut queue: BinaryHeap<Reverse<(u32, usize, u32)>> = (0..n.saturating_sub(1))
            .filter_map(|i| self.merge(sym[i], sym[i + 1]).map(|m| Reverse((m.rank, i, m.id))))
            .collect();
        while let Some(Reverse((_, pos, id))) = queue.pop() {
            if !alive[pos] || next[pos] == NONE {
                continue;
            }
            let right = next[pos];
            // An entry made stale by an earlier merge no longer names the pair now at `pos`.
            if self.merge(sym[pos], sym[right]).map(|m| m.id) != Some(id) {
                continue;
            }
            sym[pos] = id;
            alive[right] = false;
            next[pos] = next[right];
            if next[pos] != NONE {
                prev[next[pos]] = pos;
            }
            if prev[pos] != NONE {
                let p = prev[pos];
                if let Some(m) = self.merge(sym[p], sym[pos]) {
                    queue.push(Reverse((m.rank, p, m.id)));
                }
            }
            if next[pos] != NONE {
                if let Some(m) = self.merge(sym[pos], sym[next[pos]]) {
                    queue.push(Reverse((m.rank, pos, m.id)));
                }
            }
        }
        out.extend((0..n).filter(|&i| alive[i]).map(|i| sym[i]));
    }
}
