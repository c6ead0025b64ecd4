//! The forward pass against the independent numpy reference (scripts/reference/llama_ref.py) on a tiny
//! random-weight llama whose tensors use every simple weight type (F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
mod common;

use pocketlm::gguf::Gguf;
use pocketlm::model::{Logits, Model, State};
use serde_json::Value;

struct Fixture {
    buf: Vec<u8>,
    seqs: Vec<Value>,
}

fn fixture() -> Fixture {
    let buf = std::fs::read(common::fixture_path("tiny_llama.gguf")).unwrap();
    let json: Value =
        serde_json::from_slice(&std::fs::read(common::fixture_path("tiny_llama_ref.json")).unwrap()).unwrap();
    Fixture { buf, seqs: json["sequences"].as_array().unwrap().clone() }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()).collect()
}

/// Every position's logits, the prompt run as one batch (prefill path).
fn all_logits(m: &Model, buf: &[u8], toks: &[u32]) -> Vec<Vec<f32>> {
    let mut s = State::new(&m.config, 256).unwrap();
    let mut out = Vec::new();
    let mut cb = |_: usize, l: &[f32]| out.push(l.to_vec());
    m.forward(buf, &mut s, toks, 0, Logits::All(&mut cb)).unwrap();
    out
}

fn rms_diff(a: &[f32], b: &[f32]) -> f32 {
    (a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64).sqrt() as f32
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn logits_match_engine_emulation_reference() {
    let f = fixture();
    let g = Gguf::parse(&f.buf).unwrap();
    let m = Model::from_gguf(&g, &f.buf).unwrap();
    for seq in &f.seqs {
        let toks = ids(&seq["ids"]);
        let ours = all_logits(&m, &f.buf, &toks);
        let q8 = rows(&seq["logits_q8act"]);
        let exact = rows(&seq["logits"]);
        assert_eq!(ours.len(), q8.len());
        let (mut worst_q8, mut worst_exact, mut rms_q8, mut rms_exact) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for (p, l) in ours.iter().enumerate() {
            worst_q8 = worst_q8.max(max_abs_diff(l, &q8[p]));
            worst_exact = worst_exact.max(max_abs_diff(l, &exact[p]));
            rms_q8 = rms_q8.max(rms_diff(l, &q8[p]));
            rms_exact = rms_exact.max(rms_diff(l, &exact[p]));
        }
        eprintln!(
            "{} tokens: vs Q8 emulation max {worst_q8:.4} worst-position RMS {rms_q8:.4}; vs exact max {worst_exact:.4} RMS {rms_exact:.4}",
            toks.len()
        );
        // Activation quantization makes logits differ from exact float math: the reference measured up to 0.28
        // max / 0.078 worst-position RMS between its exact and Q8-emulating modes (act_quant_study). Our engine
        // rounds activations the same way but sums in another order, and on this random 2-layer model single
        // rounding flips move logits visibly, so both comparisons use that measured envelope with 50% headroom.
        assert!(worst_q8 < 0.42 && rms_q8 < 0.12, "engine vs Q8-emulation reference: max {worst_q8}, RMS {rms_q8}");
        assert!(worst_exact < 0.42 && rms_exact < 0.12, "engine vs exact reference: max {worst_exact}, RMS {rms_exact}");
    }
}

#[test]
fn decode_step_by_step_matches_batched_prefill() {
    let f = fixture();
    let g = Gguf::parse(&f.buf).unwrap();
    let m = Model::from_gguf(&g, &f.buf).unwrap();
    let toks = ids(&f.seqs[2]["ids"]);
    let batched = all_logits(&m, &f.buf, &toks);
    let mut s = State::new(&m.config, 256).unwrap();
    for (p, &t) in toks.iter().enumerate() {
        m.forward(&f.buf, &mut s, &[t], p, Logits::Last).unwrap();
        let d = max_abs_diff(&s.logits, &batched[p]);
        assert!(d < 1e-3, "position {p}: token-by-token logits differ from the batch by {d}");
    }
}

#[test]
fn greedy_tokens_match_reference() {
    let f = fixture();
    let g = Gguf::parse(&f.buf).unwrap();
    let m = Model::from_gguf(&g, &f.buf).unwrap();
    for seq in &f.seqs {
        let mut toks = ids(&seq["ids"]);
        let want = ids(&seq["greedy_ids_q8act"]);
        let margins: Vec<f64> = seq["greedy_margins_q8act"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let mut s = State::new(&m.config, 256).unwrap();
        m.forward(&f.buf, &mut s, &toks, 0, Logits::Last).unwrap();
        for (j, &w) in want.iter().enumerate() {
            let got = s.logits.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0 as u32;
            if got != w {
                // Only a near-tie in the reference may flip (see llama_ref.py's tolerance notes).
                assert!(margins[j] < 0.05, "step {j}: got {got}, reference {w} with margin {}", margins[j]);
                break;
            }
            toks.push(got);
            m.forward(&f.buf, &mut s, &[got], toks.len() - 1, Logits::Last).unwrap();
        }
    }
}

#[test]
fn rejects_overflow_and_bad_ids() {
    let f = fixture();
    let g = Gguf::parse(&f.buf).unwrap();
    let m = Model::from_gguf(&g, &f.buf).unwrap();
    let mut s = State::new(&m.config, 8).unwrap();
    let e = m.forward(&f.buf, &mut s, &[1; 9], 0, Logits::Last).unwrap_err();
    assert_eq!(e.code(), "context-overflow");
    let e = m.forward(&f.buf, &mut s, &[100_000], 0, Logits::Last).unwrap_err();
    assert_eq!(e.code(), "invalid-argument");
}

