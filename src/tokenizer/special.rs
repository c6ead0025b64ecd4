//! Special tokens: which ones end generation, and cutting them out of text before the model's algorithm runs.

use super::{token_type, Tokenizer};

/// A piece of text after cutting out special tokens.
pub(super) enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// C `isspace` on a byte (llama.cpp's lstrip/rstrip test).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

pub(super) const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
];
// Texts llama.cpp recognises as the end-of-turn token when `tokenizer.ggml.eot_token_id` is absent.
pub(super) const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "<end_of_utterance>",
];
// Fill-in-the-middle pad / repo / file-separator tokens: llama.cpp stops generation on them too.
pub(super) const FIM_EOG_TEXTS: &[&str] =
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
      "<reponame>", "<|file_sep|>"];

impl Tokenizer {
    /// Cuts `text` at special tokens, llama.cpp's way: special tokens are taken longest text first, and each one is
    /// split out of every remaining text fragment (left to right, non-overlapping) before the next is tried.
    pub(super) fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut frags = vec![Fragment::Text(text)];
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
}
