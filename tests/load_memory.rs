//! Heap used while a model loads, stage by stage (issue 20: wasm memory <= file + KV + 64 MB). A counting global
//! allocator records live and peak bytes; wasm memory only grows, so the peak of each stage is what counts there.
//! Natively pointers are 8 bytes (wasm32: 4), so `String`s, `Vec`s and hash tables weigh more here than in the
//! browser: these figures bound the wasm ones from above.
//!
//! `cargo test --test load_memory -- --nocapture` prints the breakdown for every model present; the assertion is the
//! budget: everything the engine allocates besides the file and the KV cache stays under 64 MB at its peak.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use pocketlm::chat::ChatTemplate;
use pocketlm::generate::{Engine, Header, KvType};
use pocketlm::gguf::Gguf;
use pocketlm::model::{Model, State};
use pocketlm::tokenizer::{Tokenizer, TokenizerSpec};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only the byte counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new >= l.size() {
                let now = LIVE.fetch_add(new - l.size(), Relaxed) + new - l.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

const MB: f64 = 1048576.0;
const CONTEXT: usize = 512;

/// Live and peak bytes above `base` during `f`.
fn measure<T>(base: usize, f: impl FnOnce() -> T) -> (T, f64, f64) {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
    let v = f();
    let live = LIVE.load(Relaxed) as f64 - base as f64;
    let peak = PEAK.load(Relaxed) as f64 - base as f64;
    (v, live / MB, peak / MB)
}

fn breakdown(name: &str) -> Option<f64> {
    let path = common::models_dir().join(name);
    if !path.exists() {
        println!("{name}: missing, skipped");
        return None;
    }
    let buf = std::fs::read(&path).unwrap();
    let base = LIVE.load(Relaxed);
    println!("{name}: file {:.1} MB", buf.len() as f64 / MB);
    let row = |stage: &str, live: f64, peak: f64| println!("  {stage:<34} live {live:>7.1} MB  peak {peak:>7.1} MB");

    // Stage by stage, in the engine's order, each result kept alive as the engine keeps it.
    let (g, live, peak) = measure(base, || Gguf::parse(&buf).unwrap());
    row("GGUF header (metadata, tensors)", live, peak);
    let (tok, live, peak) = measure(base, || Tokenizer::from_gguf(&g).unwrap());
    row("+ tokenizer", live, peak);
    let (chat, live, peak) = measure(base, || ChatTemplate::from_gguf(&g, &tok).ok());
    row("+ chat template", live, peak);
    let (model, live, peak) = measure(base, || Model::from_gguf(&g, &buf).unwrap());
    row("+ weight views", live, peak);
    let (state, live, peak) = measure(base, || State::with_kv(&model.config, CONTEXT, KvType::F32).unwrap());
    let kv = state.kv_bytes() as f64 / MB;
    row(&format!("+ state (KV {kv:.1} MB at {CONTEXT})"), live, peak);
    // The spec alone, as tests and tools build it (owned strings): not on the engine's path.
    drop(state);
    let (spec, _, peak) = measure(base, || TokenizerSpec::from_gguf(&g).unwrap());
    let live = LIVE.load(Relaxed) as f64 / MB;
    let (_, _, peak2) = measure(base, || Tokenizer::from_spec(&spec).unwrap());
    println!("  (off the engine's path: TokenizerSpec::from_gguf + from_spec peak {:.1} MB over the file, live {:.1})",
        peak.max(peak2), live - base as f64 / MB);
    drop(spec);
    drop((model, chat, tok, g));

    // The engine's own path (Header as the browser builds it, then the engine), peak over the whole load.
    let file_len = buf.len() as u64;
    let (engine, live, peak) = measure(base, || {
        let header = Header::new(Gguf::parse(&buf).unwrap(), file_len).unwrap();
        Engine::from_header_kv(header, buf, CONTEXT, KvType::F32).unwrap()
    });
    // `buf` moved into the engine: it is part of `base` already.
    let kv = engine.info.kv_bytes as f64 / MB;
    println!("  engine: live {:.1} MB, peak {:.1} MB = KV {kv:.1} + {:.1} MB beyond file + KV", live, peak, peak - kv);
    Some(peak - kv)
}

#[test]
fn load_stays_within_file_plus_kv_plus_64_mb() {
    let mut worst: Option<f64> = None;
    for name in [common::SMOLLM2, common::GEMMA3, "synthetic-Llama-3.2-1B.Q4_0.gguf"] {
        if let Some(extra) = breakdown(name) {
            worst = Some(worst.map_or(extra, |w: f64| w.max(extra)));
        }
    }
    if let Some(w) = worst {
        assert!(w <= 64.0, "the engine holds {w:.1} MB beyond file + KV (budget 64 MB)");
    }
}
