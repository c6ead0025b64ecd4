//! SentencePiece ("llama" vocabularies): score-driven merges over characters with `<0xNN>` byte fallback.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{token_type, Tokenizer};
use crate::{Error, Result};

/// `<0xNN>` -> NN (the SentencePiece byte-fallback token spelling).
pub(super) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl Tokenizer {
    /// Ids of SPM tokens that plain text may merge into: normal and user-defined ones (SentencePiece never produces
    /// control or byte pieces from text; llama.cpp would, e.g. "<0x0A>" typed literally, which we do not copy).
    fn spm_lookup(&self, s: &str) -> Option<u32> {
        if s.len() > self.max_token_len {
            return None;
        }
        let id = self.index.get(s, |id| self.token_str(id))?;
        matches!(self.types[id as usize] as i32, token_type::NORMAL | token_type::USER_DEFINED).then_some(id)
    }

    /// SentencePiece BPE over `text` (spaces already replaced by "▁"): start from single characters, repeatedly merge
    /// the adjacent pair whose concatenation is the token with the highest score (leftmost on ties), then emit the
    /// final symbols, spelling any that is not a token as `<0xNN>` byte tokens.
    pub(super) fn spm_encode(&self, text: &str, byte_tokens: &[Option<u32>; 256], out: &mut Vec<u32>) -> Result<()> {
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
