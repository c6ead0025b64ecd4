//! The forward pass on several threads gives the same bits as on one (src/par.rs, src/project.rs): prefill
//! (batches of up to MAX_BATCH tokens, more than one batch) and decode (one token at a time), every position's
//! logits compared bit for bit. Files: tiny random-weight models with a different weight type per tensor (fused
//! q/k/v and gate/up products with different activation types), with sliding-window layers, and the real SmolLM2.
mod common;

use pocketlm::gguf::Gguf;
use pocketlm::model::{Logits, Model, State};
use pocketlm::par::Pool;

/// Every position's logits: `prefill` tokens as one forward call (several batches when long), then the rest one by
/// one as generation feeds them.
fn run(m: &Model, buf: &[u8], toks: &[u32], prefill: usize, threads: usize) -> Vec<Vec<f32>> {
    let mut s = State::new(&m.config, 128).unwrap();
    s.set_pool(Pool::new(threads).unwrap());
    assert_eq!(s.threads(), threads);
    let mut out = Vec::new();
    let mut cb = |_: usize, l: &[f32]| out.push(l.to_vec());
    m.forward(buf, &mut s, &toks[..prefill], 0, Logits::All(&mut cb)).unwrap();
    for (p, &t) in toks.iter().enumerate().skip(prefill) {
        m.forward(buf, &mut s, &[t], p, Logits::Last).unwrap();
        out.push(s.logits.clone());
    }
    out
}

fn assert_same_bits(file: &str, threads: usize, a: &[Vec<f32>], b: &[Vec<f32>]) {
    assert_eq!(a.len(), b.len());
    for (p, (x, y)) in a.iter().zip(b).enumerate() {
        let diff = x.iter().zip(y).position(|(u, v)| u.to_bits() != v.to_bits());
        assert!(diff.is_none(), "{file}: {threads} threads differ from 1 at position {p}, logit {:?}", diff);
    }
}

fn check(path: &std::path::Path, n_tokens: usize, prefill: usize, thread_counts: &[usize]) {
    let buf = std::fs::read(path).unwrap();
    let g = Gguf::parse(&buf).unwrap();
    let m = Model::from_gguf(&g, &buf).unwrap();
    // Token ids spread over the vocabulary (the model's output need not make sense for this comparison).
    let toks: Vec<u32> = (0..n_tokens).map(|i| ((i * 7919 + 13) % m.config.vocab_size) as u32).collect();
    let one = run(&m, &buf, &toks, prefill, 1);
    for &n in thread_counts {
        assert_same_bits(&path.display().to_string(), n, &one, &run(&m, &buf, &toks, prefill, n));
    }
}

#[test]
fn tiny_models_same_logits_on_2_and_3_threads() {
    for f in ["tiny_llama.gguf", "tiny_qwen2.gguf", "tiny_qwen3.gguf", "tiny_gemma3.gguf"] {
        // 40 prompt tokens = a full batch of 32 and a partial one; then 12 decode steps.
        check(&common::fixture_path(f), 52, 40, &[2, 3]);
    }
}

#[test]
fn smollm2_same_logits_on_2_threads() {
    check(&common::model_path(common::SMOLLM2), 44, 36, &[2]);
}

#[test]
fn pool_rejects_zero_threads() {
    assert!(Pool::new(0).is_err());
    assert_eq!(Pool::new(1).unwrap().threads(), 1);
}
