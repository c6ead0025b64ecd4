//! The JavaScript API (wasm32 only): a thin layer over [`crate::generate::Engine`].
//!
//! Weights arrive chunk by chunk ([`WeightLoader::push`]) straight into wasm memory, so the page never holds the
//! whole file in one ArrayBuffer and there is no second full copy. Errors cross as JS `Error`s named
//! `PocketLMError` with a stable `code` (see [`crate::Error::code`]).

use crate::chat::Message;
use crate::constraint::ResponseFormat;
use crate::tools::{Tool, ToolChoice, ToolMessage};
use crate::generate::{Engine as Core, FinishReason, GenerateOptions, Header, KvType, Stats};
use crate::gguf::{self, Gguf};
use crate::sampler::SamplerParams;
use crate::Error;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

/// `initThreadPool(n)` (threads build only): starts `n` Web Workers for rayon's global pool. The JS side calls it with
/// `threads - 1` before `WeightLoader.finish`; the engine's own worker is the remaining thread.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

fn js_error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("PocketLMError");
    let _ = js_sys::Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

/// The engine's error as a `PocketLMError`. The engine names things ("a larger context"); where the fix is a JS
/// option, the option's name is added here, at the boundary that owns the JS shapes.
fn to_js(e: Error) -> JsValue {
    match e {
        Error::ContextOverflow { .. } => js_error(e.code(), &format!("{e} (the load option contextSize)")),
        e => js_error(e.code(), &e.to_string()),
    }
}

/// An engine struct as a plain JS object (nested structs and maps too, `None` as null): what a worker can post
/// to the page as it is.
fn to_plain<T: Serialize + ?Sized>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| js_error("internal", &e.to_string()))
}

/// [`Stats`] as the page sees them: the engine's field names in camelCase, except that a generation that filled
/// the context ([`FinishReason::Context`]) finishes with 'length', as OpenAI reports it, and `contextFull: true`
/// says which limit it was.
fn wire_stats(s: &Stats) -> Result<JsValue, JsValue> {
    let v = to_plain(s)?;
    if s.finish_reason == Some(FinishReason::Context) {
        js_sys::Reflect::set(&v, &"finishReason".into(), &"length".into())?;
        js_sys::Reflect::set(&v, &"contextFull".into(), &true.into())?;
    }
    Ok(v)
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// Which kernels this build runs.
#[wasm_bindgen]
pub fn backend() -> String {
    if cfg!(target_feature = "relaxed-simd") {
        "relaxed-simd"
    } else if cfg!(target_feature = "simd128") {
        "simd128"
    } else {
        "scalar"
    }
    .into()
}

/// Receives the model file in chunks into memory reserved once for the whole file.
#[wasm_bindgen]
pub struct WeightLoader {
    buf: Vec<u8>,
    total: usize,
    /// Built by `checkHeader` once the whole header is in (tokenizer and chat template included), so that work
    /// overlaps the rest of the download or cache read instead of following it.
    header: Option<Header>,
}

#[wasm_bindgen]
impl WeightLoader {
    #[wasm_bindgen(constructor)]
    pub fn new(total_bytes: f64) -> Result<WeightLoader, JsValue> {
        if !(total_bytes.is_finite() && total_bytes >= 0.0 && total_bytes <= usize::MAX as f64) {
            return Err(js_error("memory", &format!("a {total_bytes}-byte model cannot fit in wasm32 memory (4 GB at most)")));
        }
        // The whole file stays in wasm memory next to the KV cache and scratch, all inside wasm32's 4 GiB: refuse
        // here, before any byte is downloaded or stored, a file that leaves less than MIN_ENGINE_BYTES beside it.
        const WASM32_BYTES: f64 = 4294967296.0;
        const MIN_ENGINE_BYTES: f64 = 64.0 * 1048576.0;
        let mem: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
        let in_use = mem.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64;
        if in_use + total_bytes + MIN_ENGINE_BYTES > WASM32_BYTES {
            let mb = |b: f64| (b / 1048576.0).ceil();
            return Err(js_error("memory", &format!(
                "a {} MB model does not fit in wasm32 memory: with the engine ({} MB in use) and at least {} MB for \
                 its KV cache and scratch it needs {} MB, more than the {} MB a wasm32 module can address",
                mb(total_bytes), mb(in_use), mb(MIN_ENGINE_BYTES), mb(in_use + total_bytes + MIN_ENGINE_BYTES),
                mb(WASM32_BYTES))));
        }
        let total = total_bytes as usize;
        let mut buf = Vec::new();
        buf.try_reserve_exact(total).map_err(|_| {
            js_error("memory", &format!("cannot reserve {} MB of wasm memory for the model", total >> 20))
        })?;
        Ok(WeightLoader { buf, total, header: None })
    }

    /// Append a chunk (copied once, from the JS array into wasm memory).
    pub fn push(&mut self, chunk: &js_sys::Uint8Array) -> Result<(), JsValue> {
        let n = chunk.length() as usize;
        let at = self.buf.len();
        if at + n > self.total {
            return Err(js_error("format", &format!("more data than the announced {} bytes", self.total)));
        }
        self.buf.resize(at + n, 0);
        chunk.copy_to(&mut self.buf[at..]);
        Ok(())
    }

    #[wasm_bindgen(getter)]
    pub fn loaded(&self) -> f64 {
        self.buf.len() as f64
    }

    /// Validate the GGUF header and architecture from what has arrived so far, to fail before a long download,
    /// and build the tokenizer and chat template from it. `true` once the whole header was checked; `false` when
    /// it runs past the bytes in hand (call again later).
    #[wasm_bindgen(js_name = checkHeader)]
    pub fn check_header(&mut self) -> Result<bool, JsValue> {
        if self.header.is_some() {
            return Ok(true);
        }
        match Gguf::parse_header(&self.buf, self.total as u64) {
            Ok(g) => {
                self.header = Some(Header::new(g, self.total as u64).map_err(to_js)?);
                Ok(true)
            }
            Err(e) if gguf::is_truncated(&e) && self.buf.len() < self.total => Ok(false),
            Err(e) => Err(to_js(e)),
        }
    }

    /// Build the engine from the complete file. `context_size == 0` is `auto` (crate::context); `kv_type`: `f32`,
    /// `f16` or `q8_0`, absent for the default (f16).
    pub fn finish(self, context_size: usize, kv_type: Option<String>) -> Result<Engine, JsValue> {
        let kv_type = match kv_type.as_deref() {
            None => crate::generate::DEFAULT_KV_TYPE,
            Some(name) => KvType::parse(name).ok_or_else(|| {
                js_error("invalid-argument", &format!("kvType must be 'f32', 'f16' or 'q8_0', got '{name}'"))
            })?,
        };
        if self.buf.len() != self.total {
            return Err(js_error(
                "format",
                &format!("the model is truncated: {} of {} bytes", self.buf.len(), self.total),
            ));
        }
        #[allow(unused_mut)]
        let mut core = match self.header {
            Some(header) => Core::from_header_kv(header, self.buf, context_size, kv_type),
            None => Core::from_bytes_kv(self.buf, context_size, kv_type),
        }
        .map_err(to_js)?;
        // The workers initThreadPool started, plus this thread.
        #[cfg(feature = "threads")]
        core.set_pool(crate::par::Pool::global());
        Ok(Engine { core })
    }
}

/// `begin`'s options: exactly pkg/src/protocol.js's GENERATE_OPTIONS (an unknown field is an error, so the two lists
/// cannot drift apart silently; tests/e2e/wire_schema.test.mjs compares them).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct BeginOptions {
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<usize>,
    seed: Option<f64>,
    stop: Option<Vec<String>>,
    profile: Option<bool>,
    /// The package's `responseFormat`, as JSON text (JSON keeps a schema's integers integers).
    response_format: Option<String>,
}

#[wasm_bindgen]
pub struct Engine {
    core: Core,
}

#[wasm_bindgen]
impl Engine {
    pub fn info(&self) -> Result<JsValue, JsValue> {
        let v = to_plain(&self.core.info)?;
        js_sys::Reflect::set(&v, &"backend".into(), &backend().into())?;
        Ok(v)
    }

    pub fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<u32>, JsValue> {
        self.core.tokenizer.encode(text, add_special, add_special).map_err(to_js)
    }

    pub fn detokenize(&self, ids: Vec<u32>) -> Result<String, JsValue> {
        self.core.tokenizer.decode(&ids, true).map_err(to_js)
    }

    #[wasm_bindgen(js_name = applyChatTemplate)]
    pub fn apply_chat_template(&self, messages: JsValue) -> Result<String, JsValue> {
        let messages: Vec<Message> = serde_wasm_bindgen::from_value(messages)
            .map_err(|e| js_error("invalid-argument", &format!("messages must be [{{role, content}}]: {e}")))?;
        self.core.apply_chat_template(&messages).map_err(to_js)
    }

    /// A conversation with tools, all as JSON text (`messages`: `[{role, content, toolCalls?, toolCallId?}]`,
    /// `tools`: `[{type: 'function', function: {name, description, parameters}}]`, `toolChoice`). Returns
    /// `{prompt, responseFormat}`: the prompt text and, unless the choice is 'none', the reply's format as JSON text
    /// for `begin`'s `responseFormat`.
    #[wasm_bindgen(js_name = applyChatTemplateWithTools)]
    pub fn apply_chat_template_with_tools(&self, messages: &str, tools: &str, tool_choice: &str) -> Result<JsValue, JsValue> {
        let bad = |what: &str, e: serde_json::Error| js_error("invalid-argument", &format!("{what}: {e}"));
        let messages: Vec<ToolMessage> = serde_json::from_str(messages).map_err(|e| bad("messages", e))?;
        let tools: Vec<Tool> = serde_json::from_str(tools).map_err(|e| bad("tools", e))?;
        let choice: serde_json::Value = serde_json::from_str(tool_choice).map_err(|e| bad("toolChoice", e))?;
        let choice = ToolChoice::from_json(Some(&choice)).map_err(to_js)?;
        let (prompt, format) = self.core.apply_chat_template_with_tools(&messages, Some(&tools), &choice).map_err(to_js)?;
        let out = js_sys::Object::new();
        js_sys::Reflect::set(&out, &"prompt".into(), &prompt.into())?;
        if let Some(f) = format {
            js_sys::Reflect::set(&out, &"responseFormat".into(), &f.to_json().into())?;
        }
        Ok(out.into())
    }

    /// Splits a reply made under tools into `{content, toolCalls: [{id, name, arguments}]}` (JSON text); `seq`
    /// numbers the call ids.
    #[wasm_bindgen(js_name = parseToolReply)]
    pub fn parse_tool_reply(&self, text: &str, seq: f64) -> String {
        let (content, calls) = crate::tools::parse_reply(text, seq as u64);
        serde_json::json!({ "content": content, "toolCalls": calls }).to_string()
    }

    /// Tokenize the prompt and check it fits the context; the prefill runs in `prefill` steps (or, for what is left,
    /// in the first `next`).
    pub fn begin(&mut self, prompt: &str, opts: JsValue) -> Result<(), JsValue> {
        let o: BeginOptions = if opts.is_undefined() || opts.is_null() {
            BeginOptions::default()
        } else {
            serde_wasm_bindgen::from_value(opts).map_err(|e| js_error("invalid-argument", &e.to_string()))?
        };
        let d = SamplerParams::default();
        let seed = match o.seed {
            Some(s) if s.is_finite() && s >= 0.0 => s as u64,
            Some(s) => return Err(js_error("invalid-argument", &format!("seed {s} must be a non-negative integer"))),
            None => d.seed,
        };
        let sampler = SamplerParams {
            temperature: o.temperature.unwrap_or(d.temperature),
            top_k: o.top_k.unwrap_or(d.top_k),
            top_p: o.top_p.unwrap_or(d.top_p),
            min_p: o.min_p.unwrap_or(d.min_p),
            repeat_penalty: o.repeat_penalty.unwrap_or(d.repeat_penalty),
            repeat_last_n: o.repeat_last_n.unwrap_or(d.repeat_last_n),
            seed,
        };
        let response_format = match o.response_format.as_deref() {
            None => None,
            Some(json) => Some(serde_json::from_str::<ResponseFormat>(json).map_err(|e| {
                js_error("invalid-argument", &format!("responseFormat: {e}"))
            })?),
        };
        let ids = self.core.tokenize_prompt(prompt).map_err(to_js)?;
        let opts = GenerateOptions {
            max_tokens: o.max_tokens.unwrap_or(GenerateOptions::default().max_tokens),
            sampler,
            stop: o.stop.unwrap_or_default(),
            profile: o.profile.unwrap_or(false),
            response_format,
        };
        self.core.start(&ids, opts).map_err(to_js)
    }

    /// Prefill up to `max_tokens` more prompt tokens (whole batches); `true` once the prompt is all in.
    pub fn prefill(&mut self, max_tokens: usize) -> Result<bool, JsValue> {
        self.core.prefill(max_tokens).map_err(to_js)
    }

    /// `[done, total, promptTokens]`: prompt tokens prefilled so far by the started generation and to prefill in
    /// all (tokens reused from the KV cache are not counted), and the prompt's length; zeros when none is under way.
    #[wasm_bindgen(js_name = prefillProgress)]
    pub fn prefill_progress(&self) -> Vec<f64> {
        let (done, total, prompt) = self.core.prefill_progress();
        vec![done as f64, total as f64, prompt as f64]
    }

    /// One token: the new text piece, or undefined when generation has finished.
    pub fn next(&mut self) -> Result<Option<String>, JsValue> {
        self.core.next().map_err(to_js)
    }

    /// The last generation's [`Stats`] in the shape the page gets (`lastStats`; the worker passes it through).
    pub fn stats(&self) -> Result<JsValue, JsValue> {
        wire_stats(self.core.stats())
    }

    pub fn reset(&mut self) {
        self.core.reset();
    }

    /// A new, empty session (see [`crate::session`]); its id.
    #[wasm_bindgen(js_name = createSession)]
    pub fn create_session(&mut self) -> Result<u32, JsValue> {
        self.core.create_session().map_err(to_js)
    }

    /// Make `id` the session the next `begin` runs in.
    #[wasm_bindgen(js_name = selectSession)]
    pub fn select_session(&mut self, id: u32) -> Result<(), JsValue> {
        self.core.select_session(id).map_err(to_js)
    }

    /// A copy of session `id`; its id.
    #[wasm_bindgen(js_name = cloneSession)]
    pub fn clone_session(&mut self, id: u32) -> Result<u32, JsValue> {
        self.core.clone_session(id).map_err(to_js)
    }

    #[wasm_bindgen(js_name = dropSession)]
    pub fn drop_session(&mut self, id: u32) -> Result<(), JsValue> {
        self.core.drop_session(id).map_err(to_js)
    }

    /// Session `id` and the caller's `meta` bytes as one blob.
    #[wasm_bindgen(js_name = saveSession)]
    pub fn save_session(&mut self, id: u32, meta: &[u8]) -> Result<Vec<u8>, JsValue> {
        self.core.save_session(id, meta).map_err(to_js)
    }

    /// A new session from a saved blob: `[id, meta]`.
    #[wasm_bindgen(js_name = restoreSession)]
    pub fn restore_session(&mut self, blob: &[u8]) -> Result<js_sys::Array, JsValue> {
        let (id, meta) = self.core.restore_session(blob).map_err(to_js)?;
        Ok(js_sys::Array::of2(&id.into(), &js_sys::Uint8Array::from(&meta[..]).into()))
    }

    /// `[{id, tokens, kvBytes, evicted, current}]`.
    pub fn sessions(&self) -> Result<JsValue, JsValue> {
        to_plain(&self.core.sessions())
    }

    /// Bytes all sessions' KV caches may take before idle ones are evicted.
    #[wasm_bindgen(js_name = setKvBudget)]
    pub fn set_kv_budget(&mut self, bytes: f64) {
        self.core.set_kv_budget(if bytes.is_finite() && bytes >= 0.0 { bytes as usize } else { usize::MAX });
    }

    /// Bytes of wasm linear memory in use (the whole memory, as the browser accounts it).
    #[wasm_bindgen(js_name = memoryBytes)]
    pub fn memory_bytes(&self) -> f64 {
        let mem: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
        let buf: js_sys::ArrayBuffer = mem.buffer().unchecked_into();
        buf.byte_length() as f64
    }
}
