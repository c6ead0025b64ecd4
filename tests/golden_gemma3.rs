//! Gemma 3 270M (Q4_K_M: Q8_0 embedding, Q5_0 / Q8_0 / Q4_K / Q6_K weights) against the independent numpy
//! reference (scripts/reference/gemma3_ref.py, weights dequantized by PyPI gguf, prompts tokenized by Google's
//! sentencepiece): greedy tokens and logits. Also: architectures we do not run are refused by name.
mod common;

use pocketlm::gguf::Gguf;
use pocketlm::model::{Logits, Model, State};
use common::logits::{argmax, compare, ids};
use serde_json::Value;

#[test]
fn gemma3_matches_numpy_reference() {
    let buf = std::fs::read(common::model_path(common::GEMMA3)).unwrap();
    let golden: Value =
        serde_json::from_slice(&std::fs::read(common::fixture_path("golden_gemma3.json")).unwrap()).unwrap();
    let all = std::fs::read(common::fixture_path("golden_gemma3_logits.f32")).unwrap();
    let vocab = golden["vocab"].as_u64().unwrap() as usize;
    let floats: Vec<f32> = all.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    // shape [prompt, kind, vocab], kinds: prefill_exact, prefill_q8act, final_exact
    let logits = |p: usize, kind: usize| &floats[(p * 3 + kind) * vocab..(p * 3 + kind + 1) * vocab];
    // Tolerances recorded by the reference from its own exact-vs-Q8-activation study over every position of the
    // four prompts + greedy continuations (see golden_gemma3.py's TOLERANCE).
    let tol = &golden["recommended_tolerance"];
    let (tol_abs, tol_rms, tol_kl) =
        (tol["centered_max_abs"].as_f64().unwrap(), tol["centered_rms"].as_f64().unwrap(), tol["kl"].as_f64().unwrap());

    let g = Gguf::parse(&buf).unwrap();
    let m = Model::from_gguf(&g, &buf).unwrap();
    let mut state = State::new(&m.config, 512).unwrap();
    let mut total_matched = 0;
    let prompts = golden["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 4, "the fixture's prompt count");
    for (p, prompt) in prompts.iter().enumerate() {
        let name = prompt["name"].as_str().unwrap();
        let prompt_ids = ids(&prompt["prompt_ids"]);
        m.forward(&buf, &mut state, &prompt_ids, 0, Logits::Last).unwrap();
        for (kind, label) in [(0, "exact"), (1, "q8-activations")] {
            let c = compare(logits(p, kind), &state.logits);
            eprintln!("{name}: prefill vs {label}: centered max {:.3} rms {:.3} KL {:.5}", c.max_abs, c.rms, c.kl);
            assert!(c.max_abs < tol_abs && c.rms < tol_rms && c.kl < tol_kl, "{name}: prefill logits vs {label} out of tolerance");
            assert!(c.ref_top1_in_our_top5, "{name}: the reference's top token is not in our top 5");
        }

        // Greedy decoding, token by token (the decode path), teacher-forced with the reference's greedy ids so
        // that one near-tie cannot end the comparison: at every one of the 32 steps our top token must be the
        // reference's, except where the reference's own top-1 margin is below TIE (the bound the reference derived
        // from the largest top-1/top-2 margin change its Q8-activation emulations showed, with headroom).
        let tie = tol["top1_margin_for_agreement"].as_f64().unwrap();
        let want = ids(&prompt["greedy_ids"]);
        assert_eq!(want.len(), 32, "{name}: the fixture's greedy length");
        let margins: Vec<f64> = prompt["greedy_margins"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let mut pos = prompt_ids.len();
        let (mut matched, mut ties) = (0, 0);
        for (j, &w) in want.iter().enumerate() {
            if j + 1 == want.len() {
                // The logits after prompt + greedy_ids[..31] (those that pick the last token), against the reference's.
                let c = compare(logits(p, 2), &state.logits);
                eprintln!("{name}: step {j} vs exact: centered max {:.3} rms {:.3} KL {:.5}", c.max_abs, c.rms, c.kl);
                assert!(c.max_abs < tol_abs && c.rms < tol_rms && c.kl < tol_kl, "{name}: final logits out of tolerance");
            }
            let t = argmax(&state.logits) as u32;
            if t == w {
                matched += 1;
            } else {
                assert!(
                    margins[j] < tie,
                    "{name}: step {j}: our token {t}, the reference's {w} with margin {:.3}",
                    margins[j]
                );
                ties += 1;
            }
            if j + 1 < want.len() {
                m.forward(&buf, &mut state, &[w], pos, Logits::Last).unwrap();
                pos += 1;
            }
        }
        eprintln!("{name}: {matched}/{} greedy tokens equal the reference ({ties} differ at near-ties)", want.len());
        total_matched += matched;
    }
    eprintln!("greedy tokens equal to the reference: {total_matched}/128");
    let min_frac = tol["top1_agree_fraction_min"].as_f64().unwrap();
    assert!(total_matched as f64 >= min_frac * 128.0, "only {total_matched}/128 greedy tokens agree with the reference");
}

#[test]
fn gemma3_config_from_metadata() {
    // Values read with PyPI gguf from the file (gemma3.* keys); the local RoPE base and the 1-in-6 global layers
    // are Gemma 3 facts the file does not carry.
    let buf = std::fs::read(common::model_path(common::GEMMA3)).unwrap();
    let g = Gguf::parse(&buf).unwrap();
    let c = pocketlm::model::Config::from_gguf(&g).unwrap();
    assert_eq!((c.n_layers, c.dim, c.ffn_dim, c.n_heads, c.n_kv_heads, c.head_dim), (18, 640, 2048, 4, 1, 256));
    assert_eq!((c.vocab_size, c.sliding_window, c.sliding_pattern), (262144, 512, 6));
    assert_eq!((c.rope_base, c.rope_base_local, c.rope_neox), (1_000_000.0, 10_000.0, true));
    assert_eq!(c.activation, pocketlm::model::Activation::GeluTanh);
    assert!((c.embed_scale - 640f32.sqrt()).abs() < 1e-6 && (c.attn_scale - 1.0 / 16.0).abs() < 1e-9);
}

#[test]
fn unsupported_architectures_are_named() {
    // llama.cpp's vocabulary files carry the real architecture names of models we do not run.
    for (file, arch) in [("vocab/ggml-vocab-gemma-4.gguf", "gemma4"), ("vocab/ggml-vocab-mpt.gguf", "mpt"),
                         ("vocab/ggml-vocab-command-r.gguf", "command-r")] {
        let buf = std::fs::read(common::model_path(file)).unwrap();
        let g = Gguf::parse(&buf).unwrap();
        match pocketlm::model::Config::from_gguf(&g) {
            Err(pocketlm::Error::Unsupported(msg)) => {
                assert!(msg.contains(&format!("'{arch}'")), "{file}: message {msg:?} does not name {arch}")
            }
            Err(e) => panic!("{file}: expected Unsupported, got {e:?}"),
            Ok(_) => panic!("{file}: architecture {arch} was accepted"),
        }
    }    // phi3 runs (tests/forward_llama3_phi3.rs): its real header gets past the architecture check to the missing
    // weights of a vocabulary-only file.
    let buf = std::fs::read(common::model_path("vocab/ggml-vocab-phi-3.gguf")).unwrap();
    match pocketlm::model::Config::from_gguf(&Gguf::parse(&buf).unwrap()) {
        Err(pocketlm::Error::MissingTensor(name)) => assert_eq!(name, "token_embd.weight"),
        other => panic!("phi-3 vocabulary file: {:?}", other.map(|c| c.arch)),
    }
}

/// `info.quantization` names the file's type (general.file_type 15 = Q4_K_M), not the type of the most tensors
/// (Q5_0 here); the SmolLM2 file's Q4_1 and a requantized variant's own type likewise.
#[test]
fn info_names_the_files_quantization() {
    use pocketlm::generate::Engine;
    for (file, want) in [(common::GEMMA3, "Q4_K_M"), ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"), ("SmolLM2-135M-Instruct.Q8_0.gguf", "Q8_0")] {
        let e = Engine::from_bytes(std::fs::read(common::model_path(file)).unwrap(), 64).unwrap();
        assert_eq!(e.info.quantization, want, "{file}");
    }
}
