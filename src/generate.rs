//! The engine: one loaded model (weights buffer, tokenizer, chat template, KV cache) and the generation loop
//! (prefill, then one token per `next` call) with stop strings, max tokens and EOS. Nothing here knows JavaScript;
//! the wasm API and the CLI both drive this.

use crate::chat::{ChatTemplate, Message};
use crate::clock::now_ms;
use crate::constraint::{Constraint, Grammars, ResponseFormat};
use crate::mark;
use crate::profile::{Profile, Stage, StageTime};
use crate::gguf::Gguf;
use crate::model::{Logits, Model, State};
pub use pocketlm_simd::kv::KvType;
use crate::sampler::{Sampler, SamplerParams};
use crate::session::Sessions;
use crate::tokenizer::{IncrementalDecoder, Tokenizer};
use crate::tools::{Tool, ToolChoice, ToolMessage};
use crate::{Error, Result};
use serde::Serialize;
use std::sync::Arc;

/// How the KV cache is stored when the caller does not choose: half the bytes of f32, perplexity within 0.1 % of
/// it (tests/kv_types.rs).
pub const DEFAULT_KV_TYPE: KvType = KvType::F16;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub architecture: String,
    pub name: String,
    pub parameters: u64,
    /// The weight type of most matrices, e.g. "Q4_1".
    pub quantization: String,
    pub file_bytes: u64,
    pub context_size: usize,
    pub train_context: usize,
    pub vocab_size: usize,
    pub layers: usize,
    pub embedding: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub chat_template: bool,
    /// KV cache and scratch buffers.
    pub state_bytes: usize,
    /// How the KV cache stores keys and values: "f32", "f16" or "q8_0".
    pub kv_type: String,
    /// Bytes of the KV cache alone (part of `state_bytes`).
    pub kv_bytes: usize,
    /// Threads the forward pass runs on ([`Engine::set_pool`]).
    pub threads: usize,
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    pub sampler: SamplerParams,
    pub stop: Vec<String>,
    /// Time each stage of the prefill and of every decode step ([`Stats::prefill_profile`], [`Stats::profile`]).
    pub profile: bool,
    /// Constrain the output to this format (JSON Schema, regex, grammar): see [`crate::constraint`].
    pub response_format: Option<ResponseFormat>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            sampler: SamplerParams::default(),
            stop: Vec::new(),
            profile: false,
            response_format: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    Eos,
    /// A stop string appeared (it is not part of the output).
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The context is full.
    Context,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Prompt tokens actually run through the model (the rest were reused from the KV cache).
    pub prefilled_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub finish_reason: Option<FinishReason>,
    /// With [`GenerateOptions::profile`]: milliseconds per generated token in each stage of the decode step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Vec<StageTime>>,
    /// With [`GenerateOptions::profile`]: milliseconds per prefilled prompt token in each stage of the prefill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_profile: Option<Vec<StageTime>>,
    /// With [`GenerateOptions::response_format`]: what the constraint cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<ConstraintStats>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintStats {
    /// Building the vocabulary's token trie and grammar tables: once per model, on the first constrained call
    /// (0 on later calls).
    pub vocab_ms: f64,
    /// Compiling this call's schema, regex or grammar.
    pub compile_ms: f64,
    /// Token masks computed (one per sampled token).
    pub masks: usize,
    pub mask_mean_ms: f64,
    pub mask_p99_ms: f64,
    /// Generated tokens the grammar forced (fed without sampling).
    pub forced_tokens: usize,
    /// The output so far is complete in the format (false when generation stopped inside it, e.g. at maxTokens).
    pub complete: bool,
}

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

/// What an engine builds from the GGUF header alone (the architecture check, the tokenizer and the chat
/// template): the browser builds it as soon as the header has arrived, while the tensor data is still being read,
/// so its cost (mostly the tokenizer: ~70 ms natively, ~150-250 ms in wasm for SmolLM2) overlaps the loading.
pub struct Header {
    gguf: Gguf,
    file_len: u64,
    tokenizer: Tokenizer,
    chat: std::result::Result<ChatTemplate, String>,
}

impl Header {
    /// `gguf` parsed from the first bytes of a file of `file_len` bytes ([`Gguf::parse_header`]).
    pub fn new(gguf: Gguf, file_len: u64) -> Result<Header> {
        // Unknown architectures, bad hyperparameters and unknown, missing or misshapen tensors fail here.
        crate::model::Model::check_header(&gguf)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let chat = ChatTemplate::from_gguf(&gguf, &tokenizer).map_err(|e| e.to_string());
        Ok(Header { gguf, file_len, tokenizer, chat })
    }
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
    /// Build an engine over the whole GGUF file in `buf` (taken, not copied), its KV cache in [`DEFAULT_KV_TYPE`].
    /// `context == 0` is `auto` ([`crate::context`]: the trained context within a KV memory budget).
    pub fn from_bytes(buf: Vec<u8>, context: usize) -> Result<Engine> {
        Engine::from_bytes_kv(buf, context, DEFAULT_KV_TYPE)
    }

    /// [`Engine::from_bytes`] with the KV cache stored as `kv_type`.
    pub fn from_bytes_kv(buf: Vec<u8>, context: usize, kv_type: KvType) -> Result<Engine> {
        let header = Header::new(Gguf::parse(&buf)?, buf.len() as u64)?;
        Engine::from_header_kv(header, buf, context, kv_type)
    }

    /// Build an engine from a [`Header`] prepared while the file was arriving and the whole file in `buf`.
    pub fn from_header(header: Header, buf: Vec<u8>, context: usize) -> Result<Engine> {
        Engine::from_header_kv(header, buf, context, DEFAULT_KV_TYPE)
    }

    /// [`Engine::from_header`] with the KV cache stored as `kv_type`.
    pub fn from_header_kv(header: Header, buf: Vec<u8>, context: usize, kv_type: KvType) -> Result<Engine> {
        let Header { gguf, file_len, tokenizer, chat } = header;
        if buf.len() as u64 != file_len {
            return Err(Error::InvalidArgument(format!(
                "the header was read from a file of {file_len} bytes, the data has {}",
                buf.len()
            )));
        }
        let model = Model::from_gguf(&gguf, &buf)?;
        let c = &model.config;
        let context = crate::context::resolve(c, kv_type, buf.len() as u64, context)?;
        if tokenizer.vocab_size() > c.vocab_size {
            return Err(Error::Format(format!(
                "tokenizer has {} tokens but the embedding only {}",
                tokenizer.vocab_size(),
                c.vocab_size
            )));
        }
        let state = State::with_kv(c, context, kv_type)?;
        let counts = model.weights.type_counts();
        let info = ModelInfo {
            architecture: c.arch.clone(),
            name: gguf.opt_str("general.name")?.unwrap_or("").to_string(),
            parameters: gguf.tensors.iter().map(|t| t.n_elements()).sum(),
            // Informative only: a file_type of the wrong kind is ignored, not an error.
            quantization: crate::model::quantization_label(gguf.opt_u64("general.file_type").ok().flatten(), &counts),
            file_bytes: buf.len() as u64,
            context_size: context,
            train_context: c.train_context,
            vocab_size: c.vocab_size,
            layers: c.n_layers,
            embedding: c.dim,
            heads: c.n_heads,
            kv_heads: c.n_kv_heads,
            chat_template: chat.is_ok(),
            state_bytes: state.bytes(),
            kv_type: kv_type.name().to_string(),
            kv_bytes: state.kv_bytes(),
            threads: state.threads(),
        };
        Ok(Engine {
            buf,
            gguf,
            model,
            tokenizer: Arc::new(tokenizer),
            grammars: None,
            chat,
            state,
            cached: Vec::new(),
            sessions: Sessions::default(),
            gen: None,
            pending: None,
            stats: Stats::default(),
            info,
        })
    }

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

/// Byte index where the earliest stop string starts in `text`.
fn first_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

/// How much of `text` can be released: all of it except a suffix that is a proper prefix of some stop string.
fn safe_prefix_len(text: &str, stops: &[String]) -> usize {
    let mut hold = 0;
    for s in stops {
        // Longest suffix of `text` that is a prefix of `s` (shorter than `s`, else it would have matched).
        let max = (s.len() - 1).min(text.len());
        for len in (1..=max).rev() {
            let start = text.len() - len;
            if text.is_char_boundary(start) && s.starts_with(&text[start..]) {
                hold = hold.max(len);
                break;
            }
        }
    }
    text.len() - hold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_string_holdback() {
        let stops = vec!["\nUser:".to_string(), "###".to_string()];
        assert_eq!(safe_prefix_len("hello", &stops), 5);
        assert_eq!(safe_prefix_len("hello\nUs", &stops), 5);
        assert_eq!(safe_prefix_len("hello #", &stops), 6);
        assert_eq!(safe_prefix_len("héllo", &[]), "héllo".len());
        assert_eq!(first_stop("abc###def\nUser:", &stops), Some(3));
        assert_eq!(first_stop("abc", &stops), None);
    }

    #[test]
    fn log_softmax_matches_definition() {
        let l = [1.0f32, 2.0, 3.0];
        let z: f64 = l.iter().map(|&x| (x as f64).exp()).sum();
        assert!((log_softmax_at(&l, 2) - (3.0f64.exp() / z).ln()).abs() < 1e-12);
    }
}
