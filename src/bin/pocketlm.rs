//! `pocketlm`: the native command line over the same engine the browser runs.
//!
//! pocketlm generate --model PATH --prompt TEXT [--chat] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
//!                   [--min-p P] [--repeat-penalty R] [--seed S] [--stop S]... [--ctx N] [--threads N] [--json]
//!                   [--profile] [--json-schema FILE | --json-object | --regex R | --grammar FILE] [--kv-type T]
//! pocketlm tokenize --model PATH --text TEXT
//! pocketlm perplexity --model PATH --file TEXT_FILE [--ctx N] [--chunks N] [--threads N] [--json] [--kv-type T]
//! pocketlm kv-bench --model PATH [--kv-type T] [--positions 512,2048,8192] [--tokens N] [--threads N]
//!
//! --kv-type f32 | f16 | q8_0: how the KV cache stores keys and values (default f16).
//!
//! --threads N: threads of the forward pass. Default: all the machine has (`available_parallelism`): any count
//! gives the same bits (tests/threads_parity.rs), so there is nothing to lose by using them.
//! pocketlm inspect PATH

use pocketlm::chat::Message;
use pocketlm::constraint::ResponseFormat;
use pocketlm::generate::{Engine, GenerateOptions, KvType};
use pocketlm::gguf::Gguf;
use pocketlm::sampler::SamplerParams;
use pocketlm::Error;
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage:
  pocketlm generate --model PATH --prompt TEXT [--chat] [--system TEXT] [--max-tokens N] [--temperature T]
                    [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--stop TEXT]...
                    [--ctx N] [--threads N] [--json] [--profile]
                    [--json-schema FILE | --json-object | --regex PATTERN | --grammar LARK_FILE]
                    [--kv-type f32|f16|q8_0]
  pocketlm tokenize --model PATH --text TEXT
  pocketlm perplexity --model PATH --file TEXT_FILE [--ctx N] [--chunks N] [--threads N] [--json] [--kv-type T]
  pocketlm kv-bench --model PATH [--kv-type T] [--positions 512,2048,8192] [--tokens N] [--threads N]
  (--threads: default = the machine's available parallelism; the output is the same for every count)
  pocketlm inspect PATH";

/// Parsed `--flag value` pairs and bare switches; every flag must be one the command knows.
struct Args {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
    positional: Vec<String>,
}

impl Args {
    fn parse(raw: &[String], valued: &[&str], switches: &[&str]) -> Result<Args, String> {
        let mut a = Args { pairs: Vec::new(), switches: Vec::new(), positional: Vec::new() };
        let mut it = raw.iter();
        while let Some(arg) = it.next() {
            if let Some(name) = arg.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (name, None),
                };
                if valued.contains(&name) {
                    let v = match inline {
                        Some(v) => v,
                        None => it.next().ok_or_else(|| format!("--{name} needs a value"))?.clone(),
                    };
                    a.pairs.push((name.to_string(), v));
                } else if switches.contains(&name) && inline.is_none() {
                    a.switches.push(name.to_string());
                } else {
                    return Err(format!("unknown option --{name}"));
                }
            } else {
                a.positional.push(arg.clone());
            }
        }
        Ok(a)
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }
    fn req(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("--{name} is required"))
    }
    fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: '{v}' is not a valid number")),
        }
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = raw.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &raw[1..];
    let result = match cmd.as_str() {
        "generate" => generate(rest),
        "tokenize" => tokenize(rest),
        "perplexity" => perplexity(rest),
        "kv-bench" => kv_bench(rest),
        "inspect" => inspect(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("pocketlm: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn read_model(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read model '{path}': {e}"))
}

fn kv_type(a: &Args) -> Result<KvType, String> {
    match a.get("kv-type") {
        None => Ok(pocketlm::generate::DEFAULT_KV_TYPE),
        Some(s) => KvType::parse(s).ok_or_else(|| format!("--kv-type: '{s}' is not one of f32, f16, q8_0")),
    }
}

fn load(path: &str, ctx: usize, threads: usize, kv: KvType) -> Result<Engine, String> {
    let pool = pocketlm::par::Pool::new(threads).map_err(|e| format!("--threads: {e}"))?;
    let mut engine = Engine::from_bytes_kv(read_model(path)?, ctx, kv).map_err(|e| format!("{path}: {e}"))?;
    engine.set_pool(pool);
    Ok(engine)
}

fn threads(a: &Args) -> Result<usize, String> {
    a.num("threads", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

fn err(e: Error) -> String {
    e.to_string()
}

fn generate(raw: &[String]) -> Result<(), String> {
    let a = Args::parse(
        raw,
        &["model", "prompt", "system", "max-tokens", "temperature", "top-k", "top-p", "min-p", "repeat-penalty",
          "repeat-last-n", "seed", "stop", "ctx", "threads", "json-schema", "regex", "grammar", "kv-type"],
        &["chat", "json", "profile", "json-object"],
    )?;
    let d = SamplerParams::default();
    let sampler = SamplerParams {
        temperature: a.num("temperature", d.temperature)?,
        top_k: a.num("top-k", d.top_k)?,
        top_p: a.num("top-p", d.top_p)?,
        min_p: a.num("min-p", d.min_p)?,
        repeat_penalty: a.num("repeat-penalty", d.repeat_penalty)?,
        repeat_last_n: a.num("repeat-last-n", d.repeat_last_n)?,
        seed: a.num("seed", d.seed)?,
    };
    let opts = GenerateOptions {
        max_tokens: a.num("max-tokens", 256usize)?,
        sampler,
        stop: a.all("stop"),
        profile: a.has("profile"),
        response_format: response_format(&a)?,
    };
    let mut engine = load(a.req("model")?, a.num("ctx", 0usize)?, threads(&a)?, kv_type(&a)?)?;
    let prompt = a.req("prompt")?;
    let text = if a.has("chat") {
        let mut messages = Vec::new();
        if let Some(sys) = a.get("system") {
            messages.push(Message { role: "system".into(), content: sys.into() });
        }
        messages.push(Message { role: "user".into(), content: prompt.into() });
        engine.apply_chat_template(&messages).map_err(err)?
    } else {
        prompt.to_string()
    };
    let ids = engine.tokenize_prompt(&text).map_err(err)?;
    let json = a.has("json");
    let mut stdout = std::io::stdout();
    let out = engine
        .generate(&ids, opts, |piece| {
            if !json {
                let _ = stdout.write_all(piece.as_bytes());
                let _ = stdout.flush();
            }
        })
        .map_err(err)?;
    let s = engine.stats().clone();
    if json {
        let obj = serde_json::json!({
            "text": out,
            "prompt_tokens": ids,
            "tokens": engine.generated(),
            "prefill_tok_s": s.prefill_tokens_per_second,
            "decode_tok_s": s.decode_tokens_per_second,
            "threads": engine.info.threads,
            "finish_reason": s.finish_reason,
            "profile": s.profile,
            "prefill_profile": s.prefill_profile,
            "constraint": s.constraint,
        });
        println!("{obj}");
    } else {
        println!();
    }
    eprintln!(
        "pocketlm: {} prompt tokens, prefill {:.1} tok/s; {} generated, decode {:.1} tok/s; {} threads; finish: {:?}",
        s.prompt_tokens, s.prefill_tokens_per_second, s.generated_tokens, s.decode_tokens_per_second, engine.info.threads,
        s.finish_reason.map(|r| format!("{r:?}").to_lowercase()).unwrap_or_default()
    );
    for (what, profile) in [("prefill", &s.prefill_profile), ("decode", &s.profile)] {
        let Some(profile) = profile else { continue };
        let total: f64 = profile.iter().map(|t| t.ms).sum();
        eprintln!("pocketlm: {what} profile, ms per token ({total:.3} ms in all):");
        for t in profile {
            eprintln!("  {:<11} {:7.3} ms {:5.1}%", t.stage, t.ms, 100.0 * t.ms / total.max(1e-9));
        }
    }
    Ok(())
}

/// At most one of --json-schema FILE, --json-object, --regex PATTERN, --grammar FILE.
fn response_format(a: &Args) -> Result<Option<ResponseFormat>, String> {
    let read = |flag: &str, path: &str| {
        std::fs::read_to_string(path).map_err(|e| format!("--{flag}: cannot read '{path}': {e}"))
    };
    let mut formats = Vec::new();
    if let Some(path) = a.get("json-schema") {
        let schema = serde_json::from_str(&read("json-schema", path)?)
            .map_err(|e| format!("--json-schema: '{path}' is not JSON: {e}"))?;
        formats.push(ResponseFormat::JsonSchema { schema });
    }
    if a.has("json-object") {
        formats.push(ResponseFormat::JsonObject);
    }
    if let Some(pattern) = a.get("regex") {
        formats.push(ResponseFormat::Regex { pattern: pattern.to_string() });
    }
    if let Some(path) = a.get("grammar") {
        formats.push(ResponseFormat::Grammar { lark: read("grammar", path)? });
    }
    if formats.len() > 1 {
        return Err("give at most one of --json-schema, --json-object, --regex, --grammar".into());
    }
    Ok(formats.pop())
}

fn tokenize(raw: &[String]) -> Result<(), String> {
    let a = Args::parse(raw, &["model", "text"], &[])?;
    let path = a.req("model")?;
    let buf = read_model(path)?;
    let g = Gguf::parse(&buf).map_err(|e| format!("{path}: {e}"))?;
    let tok = pocketlm::tokenizer::Tokenizer::from_gguf(&g).map_err(err)?;
    let ids = tok.encode(a.req("text")?, true, false).map_err(err)?;
    println!("{}", serde_json::to_string(&ids).expect("ids serialize"));
    Ok(())
}

fn perplexity(raw: &[String]) -> Result<(), String> {
    let a = Args::parse(raw, &["model", "file", "ctx", "chunks", "threads", "kv-type"], &["json"])?;
    let window = a.num("ctx", 512usize)?;
    let file = a.req("file")?;
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read '{file}': {e}"))?;
    let mut engine = load(a.req("model")?, window, threads(&a)?, kv_type(&a)?)?;
    let mut ids = engine.tokenizer.encode(&text, true, false).map_err(err)?;
    // --chunks N: score only the first N windows (as llama-perplexity's --chunks).
    if let Some(chunks) = a.get("chunks") {
        let n: usize = chunks.parse().map_err(|_| format!("--chunks: '{chunks}' is not a valid number"))?;
        ids.truncate(n.saturating_mul(window));
    }
    let t0 = std::time::Instant::now();
    let (ppl, scored) = engine.perplexity(&ids, window).map_err(err)?;
    let secs = t0.elapsed().as_secs_f64();
    if a.has("json") {
        println!("{}", serde_json::json!({ "ppl": ppl, "tokens": scored, "windows": ids.len() / window, "ctx": window }));
    } else {
        println!("perplexity {ppl:.4} over {scored} scored tokens ({} windows of {window}), {secs:.1} s", ids.len() / window);
    }
    Ok(())
}

/// Decode speed at chosen positions: one token at a time at positions P, P+1, ... with a KV cache of P positions
/// before it. The cache's contents do not change the work attention does, so it is not filled by a prefill (8k tokens
/// of prefill would take minutes); the figure is the forward pass alone (no sampling), tokens per second.
fn kv_bench(raw: &[String]) -> Result<(), String> {
    let a = Args::parse(raw, &["model", "kv-type", "positions", "tokens", "threads"], &[])?;
    let kv = kv_type(&a)?;
    let positions: Vec<usize> = a
        .get("positions")
        .unwrap_or("512,2048,8192")
        .split(',')
        .map(|p| p.trim().parse().map_err(|_| format!("--positions: '{p}' is not a number")))
        .collect::<Result<_, _>>()?;
    let tokens = a.num("tokens", 16usize)?;
    let path = a.req("model")?;
    let buf = read_model(path)?;
    let g = Gguf::parse(&buf).map_err(err)?;
    let model = pocketlm::model::Model::from_gguf(&g, &buf).map_err(err)?;
    let ctx = positions.iter().max().copied().unwrap_or(0) + tokens;
    let mut state = pocketlm::model::State::with_kv(&model.config, ctx, kv).map_err(err)?;
    state.set_pool(pocketlm::par::Pool::new(threads(&a)?).map_err(|e| format!("--threads: {e}"))?);
    println!("kv {} context {ctx}: KV cache {:.1} MB, state {:.1} MB", kv.name(), state.kv_bytes() as f64 / 1048576.0, state.bytes() as f64 / 1048576.0);
    for &p in &positions {
        // One warm-up token, then the timed ones.
        model.forward(&buf, &mut state, &[1], p, pocketlm::model::Logits::Last).map_err(err)?;
        let t0 = std::time::Instant::now();
        for i in 0..tokens {
            model.forward(&buf, &mut state, &[1], p + 1 + i, pocketlm::model::Logits::Last).map_err(err)?;
        }
        let secs = t0.elapsed().as_secs_f64();
        println!("position {p}: {:.1} tok/s", (tokens as f64) / secs);
    }
    Ok(())
}

fn inspect(raw: &[String]) -> Result<(), String> {
    let a = Args::parse(raw, &[], &[])?;
    let [path] = a.positional.as_slice() else { return Err(format!("inspect takes one model path\n{USAGE}")) };
    let engine = load(path, 0, 1, KvType::F32)?;
    let i = &engine.info;
    let c = &engine.model.config;
    println!("file:          {path} ({} bytes, GGUF v{})", i.file_bytes, engine.gguf.version);
    println!("name:          {}", i.name);
    println!("architecture:  {}", i.architecture);
    println!("parameters:    {} ({:.1} M)", i.parameters, i.parameters as f64 / 1e6);
    println!(
        "shape:         {} layers, embedding {}, FFN {}, {} heads / {} KV heads, head dim {}",
        c.n_layers, c.dim, c.ffn_dim, c.n_heads, c.n_kv_heads, c.head_dim
    );
    println!("context:       {} (trained), RoPE base {} ({})", c.train_context, c.rope_base, if c.rope_neox { "neox" } else { "normal" });
    println!("vocab:         {} tokens", engine.tokenizer.vocab_size());
    let mut by_type: Vec<(String, usize)> = Vec::new();
    for t in &engine.gguf.tensors {
        match by_type.iter_mut().find(|(n, _)| *n == t.typ.name()) {
            Some((_, c)) => *c += 1,
            None => by_type.push((t.typ.name().to_string(), 1)),
        }
    }
    by_type.sort_by(|a, b| b.1.cmp(&a.1));
    let types: Vec<String> = by_type.iter().map(|(n, c)| format!("{n} x{c}")).collect();
    println!("tensors:       {} ({})", engine.gguf.tensors.len(), types.join(", "));
    match engine.gguf.opt_str("tokenizer.chat_template").map_err(err)? {
        Some(t) => println!("chat template:\n{t}"),
        None => println!("chat template: none"),
    }
    Ok(())
}
