//! Llama 3.x RoPE frequency factors (`rope_freqs.weight`), tied and untied output heads, Phi-3 (fused QKV and
//! gate/up matrices, NEOX RoPE, sliding window over every layer, LongRoPE short/long factors with the attention
//! factor) against the independent numpy references (scripts/reference/llama_ref.py, phi3_ref.py) on tiny
//! random-weight files written by PyPI gguf (scripts/fixtures/tiny_llama3_phi3.py); and a file carrying a tensor no
//! model reads, which must be refused naming it. Weights are F32/F16 (f32 activations): agreement to float32
//! rounding, as tests/forward_qwen_tiny.rs.
mod common;

use pocketlm::gguf::Gguf;
use pocketlm::model::{Logits, Model, State};
use serde_json::Value;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn argmax(x: &[f32]) -> usize {
    x.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
}

fn reference() -> Value {
    serde_json::from_slice(&std::fs::read(common::fixture_path("tiny_llama3_phi3_ref.json")).unwrap()).unwrap()
}

/// Every position's logits, as one prefill batch or token by token (the decode path).
fn logits(m: &Model, buf: &[u8], toks: &[u32], context: usize, tokenwise: bool) -> Vec<Vec<f32>> {
    let mut s = State::new(&m.config, context).unwrap();
    let mut got = Vec::new();
    if tokenwise {
        for (p, &t) in toks.iter().enumerate() {
            m.forward(buf, &mut s, &[t], p, Logits::Last).unwrap();
            got.push(s.logits.clone());
        }
    } else {
        let mut cb = |_: usize, l: &[f32]| got.push(l.to_vec());
        m.forward(buf, &mut s, toks, 0, Logits::All(&mut cb)).unwrap();
    }
    got
}

fn max_diff(got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs())).fold(0.0f32, f32::max)
}

/// Checks `case` against the reference; returns the model and file for further checks.
fn check(case: &str) -> (Model, Vec<u8>, Value) {
    let json = reference();
    let r = json["cases"][case].clone();
    let buf = std::fs::read(common::fixture_path(r["file"].as_str().unwrap())).unwrap();
    let g = Gguf::parse(&buf).unwrap();
    let m = Model::from_gguf(&g, &buf).unwrap();
    let context = r["context"].as_u64().unwrap() as usize;
    let toks = ids(&r["ids"]);
    let want: Vec<Vec<f32>> = r["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    for tokenwise in [false, true] {
        let got = logits(&m, &buf, &toks, context, tokenwise);
        let worst = max_diff(&got, &want);
        eprintln!("{case} (tokenwise {tokenwise}): max |logit - reference| {worst:.2e} over {} positions", got.len());
        // As forward_qwen_tiny.rs: f32 summation order only (reference f32 vs f64 ~1e-5, logit std 3-9).
        assert!(worst < 5e-4, "{case}: logits differ from the reference by {worst}");
        for (p, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(argmax(a), argmax(b), "{case}: top token at position {p}");
        }
    }
    let mut s = State::new(&m.config, context).unwrap();
    let prompt = ids(&r["prompt"]);
    m.forward(&buf, &mut s, &prompt, 0, Logits::Last).unwrap();
    for (j, &w) in ids(&r["greedy_ids"]).iter().enumerate() {
        let t = argmax(&s.logits) as u32;
        assert_eq!(t, w, "{case}: greedy step {j}");
        m.forward(&buf, &mut s, &[t], prompt.len() + j, Logits::Last).unwrap();
    }
    (m, buf, r)
}

/// The reference's logits move by more than `at_least` when the model loses `what`: the check above can fail.
fn matters(m: &Model, buf: &[u8], r: &Value, at_least: f32, what: &str) {
    let want: Vec<Vec<f32>> = r["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    let got = logits(m, buf, &ids(&r["ids"]), r["context"].as_u64().unwrap() as usize, false);
    let d = max_diff(&got, &want);
    eprintln!("without {what}: max |logit - reference| {d:.2}");
    assert!(d > at_least, "without {what} the logits move only by {d}");
}

#[test]
fn llama3_rope_freqs_tied_head_matches_reference() {
    let (mut m, buf, r) = check("llama3");
    assert!(m.weights.rope_freqs.is_some());
    assert_eq!(m.weights.output.offset, m.weights.token_embd.offset, "no output.weight: the head is the embedding");
    m.weights.rope_freqs = None;
    matters(&m, &buf, &r, 0.1, "rope_freqs");
}

#[test]
fn llama3_untied_head_matches_reference() {
    let (m, _, _) = check("llama3_untied");
    assert_ne!(m.weights.output.offset, m.weights.token_embd.offset);
}

#[test]
fn phi3_fused_matrices_and_sliding_window_match_reference() {
    let (m, _, _) = check("phi3");
    let c = &m.config;
    assert_eq!((c.arch.as_str(), c.rope_neox, c.sliding_window, c.sliding_pattern), ("phi3", true, 8, 0));
    // 48 positions with a window of 8 in every layer: the window changes these logits.
    let mut no_window = Model { config: m.config.clone(), weights: m.weights };
    no_window.config.sliding_window = 0;
    let json = reference();
    let r = &json["cases"]["phi3"];
    let buf = std::fs::read(common::fixture_path("tiny_phi3.gguf")).unwrap();
    matters(&no_window, &buf, r, 0.1, "the sliding window");
}

#[test]
fn phi3_longrope_short_factors_match_reference() {
    let (m, buf, r) = check("phi3_longrope_short");
    assert_eq!(m.config.rope_orig_context, 32);
    assert!(m.config.rope_attn_factor > 1.1);
    // The same file at context 64 uses the long factors: other logits at the same positions.
    let mut r_long = r.clone();
    r_long["context"] = 64.into();
    matters(&m, &buf, &r_long, 0.1, "the short factors (context 64 takes the long ones)");
}

#[test]
fn phi3_longrope_long_factors_match_reference() {
    let (mut m, buf, r) = check("phi3_longrope_long");
    m.config.rope_attn_factor = 1.0;
    matters(&m, &buf, &r, 0.1, "the LongRoPE attention factor");
}

#[test]
fn a_tensor_no_model_reads_is_refused_naming_it() {
    let json = reference();
    let buf = std::fs::read(common::fixture_path(json["extra_tensor_file"].as_str().unwrap())).unwrap();
    let extra = json["extra_tensor"].as_str().unwrap();
    let g = Gguf::parse(&buf).unwrap();
    // From the header alone (what the browser checks before the weights arrive) and when loading the model.
    for e in [Model::check_header(&g).unwrap_err(), Model::from_gguf(&g, &buf).err().unwrap()] {
        assert_eq!(e.code(), "unsupported");
        match &e {
            pocketlm::Error::UnknownTensor { name, arch } => assert_eq!((name.as_str(), arch.as_str()), (extra, "llama")),
            other => panic!("expected UnknownTensor, got {other}"),
        }
        assert!(e.to_string().contains(extra), "{e}");
    }
}

#[test]
fn longrope_needs_both_factor_sets() {
    // Rename the tensor rope_factors_short.weight in place (same length): the long factors alone are refused, since
    // a context up to the original one would have no factors to use.
    let mut buf = std::fs::read(common::fixture_path("tiny_phi3_longrope.gguf")).unwrap();
    let pat = b"rope_factors_short.weight";
    let at = buf.windows(pat.len()).position(|w| w == pat).expect("tensor name in the header");
    buf[at + 17] = b'x';
    let g = Gguf::parse(&buf).unwrap();
    match Model::check_header(&g) {
        Err(pocketlm::Error::MissingTensor(name)) => assert_eq!(name, "rope_factors_short.weight"),
        Err(e) => panic!("expected MissingTensor, got {e}"),
        Ok(_) => panic!("accepted a LongRoPE file without its short factors"),
    }
}
