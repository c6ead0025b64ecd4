//! The engine: one loaded model (weights buffer, tokenizer, chat template, KV cache) and the generation loop
//! (prefill, then one token per `next` call) with stop strings, max tokens and EOS. Nothing here knows JavaScript;
//! the wasm API and the CLI both drive this.
//!
//! - `mod.rs`: [`Engine`] and the generation loop ([`Engine::start`], [`Engine::prefill`], [`Engine::next`]);
//! - `load.rs`: [`Header`], what the GGUF header alone gives, and the [`Engine`] constructors;
//! - `types.rs`: the plain data of the API: [`ModelInfo`], [`GenerateOptions`], [`Stats`], [`ConstraintStats`],
//!   [`FinishReason`];
//! - `stop.rs`: stop-string matching and the text held back while a stop string may be completing.

mod load;
mod stop;
mod types;

pub use load::Header;
pub use types::{ConstraintStats, FinishReason, GenerateOptions, ModelInfo, Stats};

use stop::{first_stop, safe_prefix_len};

use crate::chat::{ChatTemplate, Message};
use crate::clock::now_ms;
use crate::constraint::{Constraint, Grammars, ResponseFormat};
use crate::mark;
use crate::profile::{Profile, Stage};
use crate::gguf::Gguf;
use crate::model::{Logits, Model, State};
pub use pocketlm_simd::kv::KvType;
use crate::sampler::Sampler;
use crate::session::Sessions;
use crate::tokenizer::{IncrementalDecoder, Tokenizer};
use crate::tools::{Tool, ToolChoice, ToolMessage};
use crate::{Error, Result};
use std::sync::Arc;

/// How the KV cache is stored when the caller does not choose: half the bytes of f32, perplexity within 0.1 % of
/// it (tests/kv_types.rs).
pub const DEFAULT_KV_TYPE: KvType = KvType::F16;

struct Generation {
    sampler: Sampler,
    decoder: IncrementalDecoder,
    stop: Vec<String>,
    max_tokens: usize,
    /// prompt + generated ids: the repetition-penalty window reads its tail.
    history: Vec<u32>,
    generated: Vec<u32>,
    /// Text decoded but not yet returned, held back while it could be the start of a stop string.
    pending: String,
    /// The last sampled token and any tokens the constraint forced after it, fed to the model at the start of the
    /// next step (so the final token costs nothing).
    to_feed: Vec<u32>,
    constraint: Option<Constraint>,
    finished: bool,
}

/// A started generation whose prompt is still being prefilled ([`Engine::start`], [`Engine::prefill`]).
struct Pending {
    prompt: Vec<u32>,
    opts: GenerateOptions,
    sampler: Sampler,
    constraint: Option<Constraint>,
    vocab_ms: f64,
    forced: Vec<u32>,
    /// Prompt tokens reused from the KV cache.
    keep: usize,
    /// Prefill time so far.
    ms: f64,
}

pub struct Engine {
    pub(crate) buf: Vec<u8>,
    pub gguf: Gguf,
    pub model: Model,
    /// Shared with the grammar machinery (constrained decoding tokenizes forced text with it).
    pub tokenizer: Arc<Tokenizer>,
    /// Built on the first constrained generation.
    grammars: Option<Grammars>,
    chat: std::result::Result<ChatTemplate, String>,
    /// Scratch, and the current session's KV cache.
    pub(crate) state: State,
    /// The current session's tokens whose keys/values are in the cache, at positions 0..len.
    pub(crate) cached: Vec<u32>,
    /// The other sessions, and the KV memory budget ([`crate::session`]).
    pub(crate) sessions: Sessions,
    gen: Option<Generation>,
    /// A generation started but not yet fully prefilled.
    pending: Option<Pending>,
    stats: Stats,
    pub info: ModelInfo,
}

impl Engine {
    pub fn context_size(&self) -> usize {
        self.state.context
    }

    /// Render a conversation with the model's own chat template, ending with the assistant's turn.
    pub fn apply_chat_template(&self, messages: &[Message]) -> Result<String> {
        match &self.chat {
            Ok(t) => t.render(messages, true),
            Err(e) => Err(Error::Template(e.clone())),
        }
    }

    /// The prompt for a conversation with tools, and the format its reply must follow ([`crate::tools`]): a template
    /// that renders tools gets them and the messages as they are; any other gets the tools as a system prompt and
    /// earlier calls and results as text. With `tools` None (or choice `none`), the reply is unconstrained.
    pub fn apply_chat_template_with_tools(
        &self,
        messages: &[ToolMessage],
        tools: Option<&[Tool]>,
        choice: &ToolChoice,
    ) -> Result<(String, Option<ResponseFormat>)> {
        let t = self.chat.as_ref().map_err(|e| Error::Template(e.clone()))?;
        let shown = tools.filter(|_| *choice != ToolChoice::None);
        if let Some(tools) = shown {
            crate::tools::validate(tools)?;
        }
        let prompt = if t.renders_tools() {
            let tools_json = shown.map(|t| serde_json::to_value(t).expect("tools serialize"));
            t.render_with_tools(&crate::tools::template_messages(messages), tools_json.as_ref(), true)?
        } else {
            t.render(&crate::tools::plain_messages(messages, shown), true)?
        };
        let format = match shown {
            Some(tools) => crate::tools::tool_format(tools, choice)?,
            None => None,
        };
        Ok((prompt, format))
    }

    /// Tokenize a prompt as the model expects (BOS as its metadata says; special tokens in the text are parsed,
    /// so a rendered chat template keeps its control tokens).
    pub fn tokenize_prompt(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true, true)
    }

    /// Run the model on `pool`'s threads from now on (the output is the same for every thread count).
    pub fn set_pool(&mut self, pool: crate::par::Pool) {
        self.state.set_pool(pool);
        self.info.threads = self.state.threads();
    }

    /// The grammar machinery for this model's vocabulary, built on first use; also the milliseconds it took to
    /// build now (0 when it already existed).
    pub fn grammars(&mut self) -> Result<(&Grammars, f64)> {
        let mut built = 0.0;
        if self.grammars.is_none() {
            let g = Grammars::new(self.tokenizer.clone(), self.model.config.vocab_size)?;
            built = g.build_ms;
            self.grammars = Some(g);
        }
        Ok((self.grammars.as_ref().expect("built above"), built))
    }

    /// Forget the current session's KV cache and any generation in progress.
    pub fn reset(&mut self) {
        self.cached.clear();
        self.end_generation();
    }

    /// Drop the generation in progress, if any (its tokens stay cached).
    pub(crate) fn end_generation(&mut self) {
        self.gen = None;
        self.pending = None;
        self.state.profile = None;
    }

    /// The logits the last forward pass left: after a prefill, the next token's distribution before sampling.
    pub fn logits(&self) -> &[f32] {
        &self.state.logits
    }

    /// Start generating after `prompt`: prefill what the KV cache does not already hold, leaving the logits of the
    /// last prompt token ready for the first `next`.
    pub fn begin(&mut self, prompt: &[u32], opts: GenerateOptions) -> Result<()> {
        self.start(prompt, opts)?;
        while !self.prefill(usize::MAX)? {}
        Ok(())
    }

    /// [`Engine::begin`] in steps: checks the prompt and options and compiles any constraint, but runs no tokens;
    /// [`Engine::prefill`] then runs the prompt a chunk at a time (a caller can report progress and stop between
    /// chunks). `next` finishes an unfinished prefill itself.
    pub fn start(&mut self, prompt: &[u32], opts: GenerateOptions) -> Result<()> {
        self.gen = None;
        self.pending = None;
        if prompt.is_empty() {
            return Err(Error::InvalidArgument("the prompt is empty (no tokens)".into()));
        }
        // At least one generated token must fit.
        if prompt.len() + 1 > self.state.context {
            return Err(Error::ContextOverflow { needed: prompt.len() + 1, context: self.state.context });
        }
        for s in &opts.stop {
            if s.is_empty() {
                return Err(Error::InvalidArgument("a stop string is empty".into()));
            }
        }
        let sampler = Sampler::new(opts.sampler.clone(), self.model.config.vocab_size)?;
        // The constraint is compiled before the prefill, so a bad schema fails before any work on the prompt.
        let (mut constraint, vocab_ms) = match &opts.response_format {
            Some(f) => {
                let (g, built) = self.grammars()?;
                (Some(g.constraint(f)?), built)
            }
            None => (None, 0.0),
        };
        // What the grammar forces before any choice (e.g. `{"name": "` for an object schema): output from the
        // start, fed with the first step.
        let mut forced = match constraint.as_mut() {
            Some(c) => c.start()?,
            None => Vec::new(),
        };
        forced.truncate(opts.max_tokens);
        self.session_starts(prompt.len(), opts.max_tokens);
        // The whole prompt's room at once: growing chunk by chunk re-lays the cache out several times, and wasm
        // memory keeps the high-water mark of those copies (a 8,058-token prompt: 488 MiB for 180 MiB of f16 KV).
        self.state.kv.reserve(prompt.len() + 1, self.state.context)?;
        // Reuse the cached prefix (multi-turn chat re-sends the conversation); the last prompt token is always
        // recomputed because its logits are needed.
        let mut keep = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        keep = keep.min(prompt.len() - 1);
        self.cached.truncate(keep);
        self.state.profile = opts.profile.then(Profile::default);
        if let Some(p) = self.state.profile.as_mut() {
            p.start();
        }
        self.pending = Some(Pending { prompt: prompt.to_vec(), opts, sampler, constraint, vocab_ms, forced, keep, ms: 0.0 });
        Ok(())
    }

    /// The started generation's prefill: (tokens run so far, tokens to run in all, prompt tokens), the first two not
    /// counting tokens reused from the KV cache; (0, 0, 0) when no prefill is under way.
    pub fn prefill_progress(&self) -> (usize, usize, usize) {
        match &self.pending {
            Some(p) => (self.cached.len() - p.keep, p.prompt.len() - p.keep, p.prompt.len()),
            None => (0, 0, 0),
        }
    }

    /// Run up to `max_tokens` more prompt tokens (rounded up to whole batches, so the result is the same bits as one
    /// call for the whole prompt). `true` once the prompt is all in and generation can start.
    pub fn prefill(&mut self, max_tokens: usize) -> Result<bool> {
        let Some(p) = self.pending.as_mut() else {
            return match self.gen {
                Some(_) => Ok(true),
                None => Err(Error::InvalidArgument("no generation was started (or its prefill failed)".into())),
            };
        };
        let at = self.cached.len();
        let n = max_tokens.max(1).div_ceil(crate::model::MAX_BATCH).saturating_mul(crate::model::MAX_BATCH);
        let end = at.saturating_add(n).min(p.prompt.len());
        let t0 = now_ms();
        // Each chunk leaves its last token's logits; only the final chunk's are used.
        let result = self.model.forward(&self.buf, &mut self.state, &p.prompt[at..end], at, Logits::Last);
        p.ms += now_ms() - t0;
        if let Err(e) = result {
            self.cached.clear();
            self.pending = None;
            self.state.profile = None;
            return Err(e);
        }
        self.cached.extend_from_slice(&p.prompt[at..end]);
        if end < p.prompt.len() {
            return Ok(false);
        }
        let Pending { prompt, opts, sampler, constraint, vocab_ms, forced, keep, ms: prefill_ms } =
            self.pending.take().expect("checked above");
        let prefill_profile = self.state.profile.take().map(|mut p| {
            p.steps = prompt.len() - keep;
            p.per_step()
        });
        let prefilled = prompt.len() - keep;
        self.stats = Stats {
            prompt_tokens: prompt.len(),
            prefilled_tokens: prefilled,
            prefill_ms,
            prefill_tokens_per_second: rate(prefilled, prefill_ms),
            prefill_profile,
            constraint: constraint.as_ref().map(|c| ConstraintStats {
                vocab_ms,
                compile_ms: c.compile_ms,
                ..Default::default()
            }),
            ..Stats::default()
        };
        self.state.profile = opts.profile.then(Profile::default);
        let mut decoder = IncrementalDecoder::new();
        let pending: String = forced.iter().map(|&t| decoder.push(&self.tokenizer, t)).collect();
        self.gen = Some(Generation {
            sampler,
            decoder,
            stop: opts.stop,
            max_tokens: opts.max_tokens,
            history: prompt.iter().chain(&forced).copied().collect(),
            generated: forced.clone(),
            pending,
            to_feed: forced,
            constraint,
            finished: opts.max_tokens == 0,
        });
        if opts.max_tokens == 0 {
            self.stats.finish_reason = Some(FinishReason::Length);
        }
        Ok(true)
    }

    /// Generate one token. `Some(piece)` is the next text (possibly empty while a character or a possible stop
    /// string is incomplete); `None` once generation has finished (see [`Stats::finish_reason`]).
    pub fn next(&mut self) -> Result<Option<String>> {
        if self.pending.is_some() {
            while !self.prefill(usize::MAX)? {}
        }
        let t0 = now_ms();
        let out = self.step();
        self.stats.decode_ms += now_ms() - t0;
        if let Some(g) = &self.gen {
            self.stats.generated_tokens = g.generated.len();
        }
        self.stats.decode_tokens_per_second = rate(self.stats.generated_tokens, self.stats.decode_ms);
        self.stats.profile = self.state.profile.as_ref().map(Profile::per_step);
        out
    }

    fn step(&mut self) -> Result<Option<String>> {
        let Some(g) = self.gen.as_mut() else { return Ok(None) };
        if g.finished {
            return Ok(None);
        }
        if let Some(p) = self.state.profile.as_mut() {
            p.start();
        }
        // Only the tokens a grammar forces at the start can complete it or fill max_tokens before a step.
        if g.constraint.as_ref().is_some_and(Constraint::is_finished) {
            return Ok(Some(self.finish(FinishReason::Eos)));
        }
        if g.generated.len() >= g.max_tokens {
            return Ok(Some(self.finish(FinishReason::Length)));
        }
        if !g.to_feed.is_empty() {
            let feed = std::mem::take(&mut g.to_feed);
            if self.cached.len() + feed.len() > self.state.context {
                return Ok(Some(self.finish(FinishReason::Context)));
            }
            let pos = self.cached.len();
            if let Err(e) = self.model.forward(&self.buf, &mut self.state, &feed, pos, Logits::Last) {
                self.gen = None;
                self.cached.clear();
                return Err(e);
            }
            self.cached.extend_from_slice(&feed);
        }
        let g = self.gen.as_mut().expect("generation in progress");
        if let Some(c) = g.constraint.as_mut() {
            if let Err(e) = c.mask(&mut self.state.logits) {
                self.gen = None;
                return Err(e);
            }
            mark!(self.state.profile, Constraint);
        }
        let tok = g.sampler.sample(&mut self.state.logits, &g.history);
        if let Some(p) = self.state.profile.as_mut() {
            p.mark(Stage::Sample);
            p.steps += 1;
        }
        g.generated.push(tok);
        g.history.push(tok);
        if self.tokenizer.is_eog(tok) {
            return Ok(Some(self.finish(FinishReason::Eos)));
        }
        // Tokens the grammar forces after `tok` join the output (and the next feed) without sampling, as many as
        // max_tokens leaves room for.
        let forced = match g.constraint.as_mut().map(|c| c.commit(tok)) {
            Some(Ok(mut f)) => {
                f.truncate(g.max_tokens.saturating_sub(g.generated.len()));
                f
            }
            Some(Err(e)) => {
                self.gen = None;
                return Err(e);
            }
            None => Vec::new(),
        };
        mark!(self.state.profile, Constraint);
        g.to_feed.push(tok);
        for &t in std::iter::once(&tok).chain(&forced) {
            let piece = g.decoder.push(&self.tokenizer, t);
            g.pending.push_str(&piece);
        }
        g.generated.extend_from_slice(&forced);
        g.history.extend_from_slice(&forced);
        g.to_feed.extend_from_slice(&forced);
        let stop_at = first_stop(&g.pending, &g.stop);
        mark!(self.state.profile, Text);
        if let Some(cut) = stop_at {
            g.pending.truncate(cut);
            return Ok(Some(self.finish(FinishReason::Stop)));
        }
        if g.constraint.as_ref().is_some_and(Constraint::is_finished) {
            return Ok(Some(self.finish(FinishReason::Eos)));
        }
        if g.generated.len() >= g.max_tokens {
            return Ok(Some(self.finish(FinishReason::Length)));
        }
        let safe = safe_prefix_len(&g.pending, &g.stop);
        let out: String = g.pending.drain(..safe).collect();
        Ok(Some(out))
    }

    /// End the generation, returning the text still held back.
    fn finish(&mut self, reason: FinishReason) -> String {
        let g = self.gen.as_mut().expect("generation in progress");
        g.finished = true;
        self.stats.finish_reason = Some(reason);
        if let (Some(c), Some(cs)) = (g.constraint.as_mut(), self.stats.constraint.as_mut()) {
            let (mean, p99) = c.mask_stats();
            cs.masks = c.mask_ms.len();
            cs.mask_mean_ms = mean;
            cs.mask_p99_ms = p99;
            cs.forced_tokens = c.forced;
            cs.complete = c.is_accepting();
        }
        let mut rest = std::mem::take(&mut g.pending);
        if reason != FinishReason::Stop {
            rest.push_str(&g.decoder.flush());
            if let Some(cut) = first_stop(&rest, &g.stop) {
                rest.truncate(cut);
                self.stats.finish_reason = Some(FinishReason::Stop);
            }
        }
        rest
    }

    /// Ids generated so far in the current (or last) generation.
    pub fn generated(&self) -> &[u32] {
        self.gen.as_ref().map(|g| g.generated.as_slice()).unwrap_or(&[])
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Run a whole generation, calling `on_piece` with each non-empty text piece.
    pub fn generate(&mut self, prompt: &[u32], opts: GenerateOptions, mut on_piece: impl FnMut(&str)) -> Result<String> {
        self.begin(prompt, opts)?;
        let mut text = String::new();
        while let Some(piece) = self.next()? {
            if !piece.is_empty() {
                on_piece(&piece);
                text.push_str(&piece);
            }
        }
        Ok(text)
    }

    /// Perplexity over non-overlapping windows of `window` tokens, scoring the second half of each window as
    /// llama.cpp's `llama-perplexity` does (each window starts with BOS when the model adds one).
    /// Returns (perplexity, tokens scored).
    pub fn perplexity(&mut self, ids: &[u32], window: usize) -> Result<(f64, usize)> {
        if window < 4 || window > self.state.context {
            return Err(Error::InvalidArgument(format!(
                "perplexity window {window} must be between 4 and the context size {}",
                self.state.context
            )));
        }
        let n_windows = ids.len() / window;
        if n_windows == 0 {
            return Err(Error::InvalidArgument(format!(
                "the text has {} tokens, fewer than one window of {window}",
                ids.len()
            )));
        }
        let bos = if self.tokenizer.add_bos() { self.tokenizer.bos_id() } else { None };
        let first = window / 2;
        let mut nll = 0.0f64;
        let mut count = 0usize;
        let mut chunk = vec![0u32; window];
        for w in 0..n_windows {
            chunk.copy_from_slice(&ids[w * window..(w + 1) * window]);
            if let Some(b) = bos {
                chunk[0] = b;
            }
            self.reset();
            let targets = &ids[w * window..(w + 1) * window];
            let mut cb = |j: usize, logits: &[f32]| {
                if j >= first && j + 1 < window {
                    nll -= log_softmax_at(logits, targets[j + 1] as usize);
                    count += 1;
                }
            };
            self.model.forward(&self.buf, &mut self.state, &chunk, 0, Logits::All(&mut cb))?;
        }
        self.reset();
        Ok(((nll / count as f64).exp(), count))
    }
}

fn rate(tokens: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        tokens as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

fn log_softmax_at(logits: &[f32], i: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    logits[i] as f64 - max - sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_matches_definition() {
        let l = [1.0f32, 2.0, 3.0];
        let z: f64 = l.iter().map(|&x| (x as f64).exp()).sum();
        assert!((log_softmax_at(&l, 2) - (3.0f64.exp() / z).ln()).abs() < 1e-12);
    }
}
