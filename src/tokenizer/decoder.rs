//! Token ids -> text as a stream, one whole character at a time.

use super::Tokenizer;

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
