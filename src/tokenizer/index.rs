//! Text -> token id lookup over the vocabulary's texts.

/// Open-addressing hash table of token ids keyed by their text (which stays in `Tokenizer::texts`): one u32 per
/// slot, at most half full, linear probing. Lookups are the inner loop of SentencePiece merging, where a binary search
/// over a 262144-token vocabulary (Gemma 3) cost most of the encoding time in cache misses.
pub(super) struct TextIndex {
    /// `EMPTY` or a token id; `slots.len()` is a power of two >= 2 * number of tokens.
    slots: Vec<u32>,
}

impl TextIndex {
    const EMPTY: u32 = u32::MAX;

    /// FNV-1a, 64-bit: deterministic (no random state to seed on wasm) and plenty for token texts.
    fn hash(s: &str) -> u64 {
        s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// `n` tokens, all texts distinct (checked by the caller); `n <= MAX_VOCAB` keeps the table bounded.
    pub(super) fn build<'a>(n: usize, text_of: impl Fn(usize) -> &'a str) -> TextIndex {
        let size = (2 * n).next_power_of_two().max(2);
        let mut slots = vec![Self::EMPTY; size];
        let mask = size - 1;
        for id in 0..n {
            let mut i = Self::hash(text_of(id)) as usize & mask;
            while slots[i] != Self::EMPTY {
                i = (i + 1) & mask;
            }
            slots[i] = id as u32;
        }
        TextIndex { slots }
    }

    pub(super) fn get<'a>(&self, s: &str, text_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = Self::hash(s) as usize & mask;
        loop {
            let id = self.slots[i];
            if id == Self::EMPTY {
                return None;
            }
            if text_of(id) == s {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
    }
}
