//! Constrained decoding: output that always parses. A [`ResponseFormat`] (JSON Schema, any JSON object, a regular
//! expression or a Lark grammar) becomes a [`Constraint`] that, before each token is sampled, says which tokens keep
//! the output inside the language, and after it is sampled, which tokens are forced (fast-forward: fed without
//! sampling). The grammar engine is the `llguidance` crate; this module gives it the model's vocabulary as a token
//! trie ([`Grammars`], built once per model) and keeps llguidance's types out of the rest of the engine.
//!
//! Vocabulary -> trie: every token's decoded bytes ([`Tokenizer::token_bytes`]); control tokens (`<|im_end|>`,
//! `<end_of_turn>`, ...) are marked special by prefixing byte 0xFF (llguidance's convention), so grammars never
//! produce them as text; unused tokens and the embedding's padding rows past the vocabulary are empty (never
//! allowed). The end-of-generation tokens all count as EOS: allowed exactly when the grammar accepts.

use crate::clock::now_ms;
use crate::tokenizer::{token_type, Tokenizer};
use crate::{Error, Result};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{InferenceCapabilities, TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Compiled formats [`Grammars`] keeps for reuse.
const COMPILED_KEPT: usize = 8;

/// What the output must be. JSON form (package option `responseFormat`, CLI flags):
/// `{"type": "json_schema", "schema": {...}}`, `{"type": "json_object"}`, `{"type": "regex", "pattern": "..."}`,
/// `{"type": "grammar", "lark": "..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormat {
    /// A JSON value valid for the schema (the subset of draft 2020-12 that llguidance supports; `$ref` to `#/...`).
    JsonSchema { schema: Value },
    /// Any JSON object.
    JsonObject,
    /// A string matching the whole regular expression (Rust `regex` syntax, which covers the common JS syntax; a
    /// leading `^` and trailing `$` are accepted and mean nothing more, since the whole output must match).
    Regex { pattern: String },
    /// A Lark grammar (llguidance's dialect: `start` rule, `%json {...}` for embedded schemas).
    Grammar { lark: String },
}

/// JSON layout when the schema does not choose one (its own `x-guidance` key wins): `", "` and `": "` separators and
/// no other whitespace, so a small model cannot wander into runs of spaces or newlines between tokens.
fn json_layout() -> Value {
    serde_json::json!({ "item_separator": ", ", "key_separator": ": ", "whitespace_flexible": false })
}

impl ResponseFormat {
    /// The JSON form (see the type's documentation).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a response format serializes")
    }

    fn grammar(&self) -> Result<TopLevelGrammar> {
        Ok(match self {
            ResponseFormat::JsonSchema { schema } => {
                let Value::Object(map) = schema else {
                    // `true` / `false` schemas are valid JSON Schema but useless (anything / nothing) here.
                    return Err(Error::InvalidArgument(format!(
                        "response format json_schema: the schema must be a JSON object, got {}",
                        short_json(schema)
                    )));
                };
                let mut schema = Value::Object(map.clone());
                ecma_patterns(&mut schema);
                if let Value::Object(map) = &mut schema {
                    map.entry("x-guidance").or_insert_with(json_layout);
                }
                TopLevelGrammar::from_json_schema(schema)
            }
            ResponseFormat::JsonObject => {
                TopLevelGrammar::from_json_schema(serde_json::json!({"type": "object", "x-guidance": json_layout()}))
            }
            ResponseFormat::Regex { pattern } => {
                if pattern.is_empty() {
                    return Err(Error::InvalidArgument("response format regex: the pattern is empty".into()));
                }
                let p = pattern.strip_prefix('^').unwrap_or(pattern);
                let p = match p.strip_suffix('$') {
                    Some(q) if !q.ends_with('\\') => q,
                    _ => p,
                };
                TopLevelGrammar::from_regex(&ecma_classes(p))
            }
            ResponseFormat::Grammar { lark } => {
                if lark.trim().is_empty() {
                    return Err(Error::InvalidArgument("response format grammar: the Lark grammar is empty".into()));
                }
                TopLevelGrammar::from_lark(lark.clone())
            }
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            ResponseFormat::JsonSchema { .. } => "json_schema",
            ResponseFormat::JsonObject => "json_object",
            ResponseFormat::Regex { .. } => "regex",
            ResponseFormat::Grammar { .. } => "grammar",
        }
    }
}

/// `\d`, `\w` (and `\D`, `\W`) as ECMAScript defines them, ASCII only (`[0-9]`, `[A-Za-z0-9_]`), for the Rust
/// regex syntax llguidance reads, where they are Unicode classes (`\d` would allow '٣' or '🯸'). JSON Schema's
/// `pattern` is ECMA-262 too, and a JS RegExp's `\d` never matches those, so a page checking the output with its own
/// RegExp or a validator (ajv) would reject it.
pub fn ecma_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') => out.push_str(if in_class { "0-9" } else { "[0-9]" }),
                Some('w') => out.push_str(if in_class { "A-Za-z0-9_" } else { "[A-Za-z0-9_]" }),
                Some('D') if !in_class => out.push_str("[^0-9]"),
                Some('W') if !in_class => out.push_str("[^A-Za-z0-9_]"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A ']' right after '[' or '[^' is a literal.
                let rest = chars.as_str();
                let lead = if rest.starts_with('^') { 1 } else { 0 };
                if rest[lead..].starts_with(']') {
                    out.push_str(&rest[..lead + 1]);
                    chars = rest[lead + 1..].chars();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// [`ecma_classes`] on every `pattern` and `patternProperties` key of a schema.
fn ecma_patterns(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                match (k.as_str(), item) {
                    ("pattern", Value::String(p)) => *p = ecma_classes(p),
                    ("patternProperties", Value::Object(props)) => {
                        let old = std::mem::take(props);
                        for (key, mut sub) in old {
                            ecma_patterns(&mut sub);
                            props.insert(ecma_classes(&key), sub);
                        }
                    }
                    (_, item) => ecma_patterns(item),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(ecma_patterns),
        _ => {}
    }
}

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}...", &s[..s.char_indices().take_while(|(i, _)| *i < 80).last().map_or(0, |(i, c)| i + c.len_utf8())])
    } else {
        s
    }
}

/// The model's vocabulary as llguidance sees it: the trie, and canonical tokenization through the model's own
/// tokenizer (so forced text is fed as the tokens the model would have seen in training).
struct VocabEnv {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for VocabEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        // Forced text is normally whole characters; a split character falls back to the trie's greedy match.
        match std::str::from_utf8(s) {
            Ok(text) => self.tokenizer.encode(text, false, false).unwrap_or_else(|_| self.trie.greedy_tokenize(s)),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// Per-model grammar machinery: the token trie and llguidance's parser factory (lexer slices precomputed over the
/// vocabulary). Built once, on the first constrained generation; every [`Constraint`] borrows it.
pub struct Grammars {
    factory: Arc<ParserFactory>,
    /// The last few compiled formats (key: their JSON form), most recent last. A generation runs on a clone, which
    /// shares the lexer's lazily built automaton with the cached one: an app that asks for the same schema again
    /// skips compiling it and finds its lexer states already built (cold masks cost several times warm ones).
    compiled: Mutex<Vec<(String, Matcher)>>,
    /// Time to build the trie and the factory.
    pub build_ms: f64,
}

impl Grammars {
    /// `vocab_size`: the model's logits (the embedding's rows), at least the tokenizer's vocabulary.
    pub fn new(tokenizer: Arc<Tokenizer>, vocab_size: usize) -> Result<Grammars> {
        let t0 = now_ms();
        let n = tokenizer.vocab_size();
        if vocab_size < n || vocab_size > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!("vocabulary of {vocab_size} logits for {n} tokens")));
        }
        let mut words: Vec<Vec<u8>> = Vec::with_capacity(vocab_size);
        for id in 0..n as u32 {
            let t = tokenizer.token_type(id);
            words.push(match t {
                Some(token_type::UNUSED) => Vec::new(),
                _ if tokenizer.is_special(id) || tokenizer.is_eog(id) => {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(tokenizer.token_str(id).as_bytes());
                    w
                }
                _ => tokenizer.token_bytes(id).to_vec(),
            });
        }
        words.resize(vocab_size, Vec::new());
        let eog: Vec<u32> = tokenizer.eog_ids().to_vec();
        let Some(&eos) = eog.first() else {
            return Err(Error::Unsupported(
                "constrained generation needs an end-of-generation token, and the vocabulary has none".into(),
            ));
        };
        let info = TokRxInfo {
            vocab_size: vocab_size as u32,
            tok_eos: eos,
            tok_bos: tokenizer.bos_id(),
            tok_pad: None,
            tok_unk: None,
            tok_end_of_turn: None,
        };
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eog);
        let env: TokEnv = Arc::new(VocabEnv { trie, tokenizer });
        let caps = InferenceCapabilities { ff_tokens: true, ..Default::default() };
        let slices = llguidance::earley::SlicedBiasComputer::general_slices();
        let mut factory = ParserFactory::new(&env, caps, &slices)
            .map_err(|e| Error::Internal(format!("grammar engine setup: {e}")))?;
        factory.quiet();
        Ok(Grammars { factory: Arc::new(factory), compiled: Mutex::new(Vec::new()), build_ms: now_ms() - t0 })
    }

    /// A fresh constraint for one generation. An invalid or unsupported schema, regex or grammar is an
    /// [`Error::InvalidArgument`] naming the format and llguidance's reason (which names the construct).
    pub fn constraint(&self, format: &ResponseFormat) -> Result<Constraint> {
        let t0 = now_ms();
        let key = format.to_json();
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = compiled.iter().position(|(k, _)| *k == key) {
            let entry = compiled.remove(i);
            let matcher = entry.1.clone();
            compiled.push(entry);
            return Ok(Constraint { matcher, compile_ms: now_ms() - t0, mask_ms: Vec::new(), forced: 0 });
        }
        let grammar = format.grammar()?;
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::InvalidArgument(format!("response format {}: {}", format.kind(), first_line(&e.to_string()))))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::InvalidArgument(format!("response format {}: {}", format.kind(), first_line(&e))));
        }
        if compiled.len() >= COMPILED_KEPT {
            compiled.remove(0);
        }
        compiled.push((key, matcher.clone()));
        Ok(Constraint { matcher, compile_ms: now_ms() - t0, mask_ms: Vec::new(), forced: 0 })
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    if line.len() > 300 {
        format!("{}...", &line[..line.floor_char_boundary(300)])
    } else {
        line.to_string()
    }
}

/// One generation's grammar state.
pub struct Constraint {
    matcher: Matcher,
    /// Time to compile the grammar (lexer and parser tables) for this generation.
    pub compile_ms: f64,
    /// Time of each mask computation, in order.
    pub mask_ms: Vec<f64>,
    /// Tokens fed because the grammar forced them (not sampled).
    pub forced: usize,
}

impl Constraint {
    /// Sets every logit the grammar does not allow at this point to -inf. `logits` has one entry per vocabulary id.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let t0 = now_ms();
        let allowed = self.matcher.compute_mask().map_err(|e| self.failure(e))?;
        if allowed.is_zero() {
            return Err(Error::Internal("the grammar allows no token here".into()));
        }
        crate::sampler::mask_logits(logits, allowed.as_slice());
        self.mask_ms.push(now_ms() - t0);
        Ok(())
    }

    /// The tokens the grammar forces before anything is sampled (already advanced past).
    pub fn start(&mut self) -> Result<Vec<u32>> {
        let ff = self.matcher.consume_ff_tokens();
        if let Some(e) = self.matcher.get_error() {
            return Err(Error::InvalidArgument(format!("response format: {}", first_line(&e))));
        }
        self.forced += ff.len();
        Ok(ff)
    }

    /// Advances past the sampled `token` and returns the tokens the grammar forces next (already advanced past:
    /// the caller feeds them to the model without sampling).
    pub fn commit(&mut self, token: u32) -> Result<Vec<u32>> {
        self.matcher.consume_token(token).map_err(|e| self.failure(e))?;
        if self.matcher.is_stopped() {
            return Ok(Vec::new());
        }
        let ff = self.matcher.consume_ff_tokens();
        if let Some(e) = self.matcher.get_error() {
            return Err(Error::Internal(format!("grammar: {}", first_line(&e))));
        }
        self.forced += ff.len();
        Ok(ff)
    }

    /// The grammar is complete and allows nothing more (not even more of a repeated item): generation is over.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// The output so far is a complete sentence of the language.
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// Mask time statistics: (mean, 99th percentile) in milliseconds, over this generation's masks.
    pub fn mask_stats(&self) -> (f64, f64) {
        if self.mask_ms.is_empty() {
            return (0.0, 0.0);
        }
        let mean = self.mask_ms.iter().sum::<f64>() / self.mask_ms.len() as f64;
        let mut sorted = self.mask_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let i = ((sorted.len() as f64 * 0.99).ceil() as usize).clamp(1, sorted.len()) - 1;
        (mean, sorted[i])
    }

    fn failure(&self, e: impl std::fmt::Display) -> Error {
        Error::Internal(format!("grammar: {}", first_line(&e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecma_classes_are_ascii() {
        assert_eq!(ecma_classes(r"\d{4}-\d\d"), "[0-9]{4}-[0-9][0-9]");
        assert_eq!(ecma_classes(r"[\d.]+\w\W\D"), "[0-9.]+[A-Za-z0-9_][^A-Za-z0-9_][^0-9]");
        assert_eq!(ecma_classes(r"\\d[]\d]\s"), r"\\d[]0-9]\s");
        assert_eq!(ecma_classes(r"[^]\w]"), "[^]A-Za-z0-9_]");
        let mut schema = serde_json::json!({"properties": {"a": {"pattern": "^\\d+$"}},
            "patternProperties": {"^\\w$": {"pattern": "\\d"}}});
        ecma_patterns(&mut schema);
        assert_eq!(schema["properties"]["a"]["pattern"], "^[0-9]+$");
        assert_eq!(schema["patternProperties"]["^[A-Za-z0-9_]$"]["pattern"], "[0-9]");
    }
}
