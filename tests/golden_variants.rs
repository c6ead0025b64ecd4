//! SmolLM2-135M-Instruct in every 32-element block type (the shipped Q4_1 file; Q8_0, Q4_0, Q5_0, Q5_1 requantized
//! from it by scripts/make_variants.py) against the independent numpy reference (scripts/fixtures/
//! golden_variants.py: llama_ref.py with weights dequantized by PyPI gguf): logits, teacher-forced greedy tokens and
//! the log-likelihood of real text. tests/golden_smollm2.rs covers the Q4_1 file in more depth (4 prompts, the
//! activation-quantization study); this runs the same checks on each weight type's matvec/matmul kernels.
mod common;

use common::logits::{argmax, compare, ids, log_softmax};
use pocketlm::gguf::Gguf;
use pocketlm::model::{Logits, Model, State};
use serde_json::Value;

#[test]
fn smollm2_variants_match_numpy_reference() {
    let golden: Value =
        serde_json::from_slice(&std::fs::read(common::fixture_path("golden_variants.json")).unwrap()).unwrap();
    let all = std::fs::read(common::fixture_path("golden_variants_logits.f32")).unwrap();
    let floats: Vec<f32> = all.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let vocab = golden["vocab"].as_u64().unwrap() as usize;
    let models = golden["models"].as_array().unwrap();
    let n_prompts = models[0]["prompts"].as_array().unwrap().len();
    // shape [model, prompt, kind, vocab], kinds: prefill_exact, final_exact
    let logits = |m: usize, p: usize, kind: usize| {
        let i = (m * n_prompts + p) * 2 + kind;
        &floats[i * vocab..(i + 1) * vocab]
    };
    // golden_llama.py's bounds, derived from its exact-vs-Q8-activation study of this architecture (on Q4_1).
    let tol = &golden["recommended_tolerance"];
    let f = |k: &str| tol[k].as_f64().unwrap();
    let (tol_abs, tol_rms, tol_kl, tie) =
        (f("centered_max_abs"), f("centered_rms"), f("kl"), f("top1_margin_for_agreement"));
    let min_frac = f("top1_agree_fraction_min");
    let text_ids = ids(&golden["nll_text"]["ids"]);

    let mut types = Vec::new();
    for (mi, mj) in models.iter().enumerate() {
        let typ = mj["type"].as_str().unwrap();
        let buf = std::fs::read(common::model_path(mj["model"].as_str().unwrap())).unwrap();
        let g = Gguf::parse(&buf).unwrap();
        let m = Model::from_gguf(&g, &buf).unwrap();
        // The file really holds the type it is named for (all but the Q8_0 embedding and the F32 norms).
        assert_eq!(g.tensor("blk.0.ffn_up.weight").unwrap().typ.name(), typ);
        let mut state = State::new(&m.config, 512).unwrap();
        let (mut matched, mut steps) = (0, 0);
        for (p, prompt) in mj["prompts"].as_array().unwrap().iter().enumerate() {
            let name = prompt["name"].as_str().unwrap();
            let prompt_ids = ids(&prompt["prompt_ids"]);
            m.forward(&buf, &mut state, &prompt_ids, 0, Logits::Last).unwrap();
            let c = compare(logits(mi, p, 0), &state.logits);
            eprintln!("{typ} {name}: prefill: centered max {:.3} rms {:.3} KL {:.5}", c.max_abs, c.rms, c.kl);
            assert!(c.max_abs < tol_abs && c.rms < tol_rms && c.kl < tol_kl, "{typ} {name}: prefill logits out of tolerance");
            assert!(c.ref_top1_in_our_top5, "{typ} {name}: the reference's top token is not in our top 5");
            // Teacher-forced greedy (the decode path), as in golden_smollm2.rs: our top token is the reference's
            // at every step whose reference top-1 margin is not a near-tie.
            let want = ids(&prompt["greedy_ids"]);
            let margins: Vec<f64> =
                prompt["greedy_margins"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let mut pos = prompt_ids.len();
            let mut ours = Vec::new();
            for (j, &w) in want.iter().enumerate() {
                if j + 1 == want.len() {
                    let c = compare(logits(mi, p, 1), &state.logits);
                    assert!(c.max_abs < tol_abs && c.rms < tol_rms && c.kl < tol_kl, "{typ} {name}: final logits out of tolerance");
                }
                let t = argmax(&state.logits) as u32;
                ours.push(t);
                if t == w {
                    matched += 1;
                } else {
                    assert!(margins[j] < tie, "{typ} {name}: step {j}: our token {t}, the reference's {w} (margin {:.3})", margins[j]);
                }
                steps += 1;
                if j + 1 < want.len() {
                    m.forward(&buf, &mut state, &[w], pos, Logits::Last).unwrap();
                    pos += 1;
                }
            }
            let agree = ours.iter().zip(&want).filter(|(a, b)| a == b).count();
            eprintln!("{typ} {name}: {agree}/{} teacher-forced greedy tokens equal; reference text {:?}",
                      want.len(), prompt["greedy_text"].as_str().unwrap());
        }
        assert!(matched as f64 >= min_frac * steps as f64, "{typ}: only {matched}/{steps} greedy tokens agree");

        // Log-likelihood of real text (each token given all before it) against the reference's: the difference
        // must stay within twice what the reference's own Q8-activation emulation moves it, plus 0.01 nats.
        let mut nll = 0.0f64;
        let mut cb = |j: usize, l: &[f32]| {
            if j + 1 < text_ids.len() {
                nll -= log_softmax(l)[text_ids[j + 1] as usize];
            }
        };
        m.forward(&buf, &mut state, &text_ids, 0, Logits::All(&mut cb)).unwrap();
        let nll = nll / (text_ids.len() - 1) as f64;
        let (exact, q8) = (mj["nll_exact"].as_f64().unwrap(), mj["nll_q8act"].as_f64().unwrap());
        let bound = 2.0 * (q8 - exact).abs() + 0.01;
        eprintln!("{typ}: text NLL ours {nll:.4} (ppl {:.3}), reference exact {exact:.4} q8-act {q8:.4}, bound {bound:.4}",
                  nll.exp());
        assert!((nll - exact).abs() <= bound, "{typ}: text NLL {nll:.4} vs the reference's {exact:.4}");
        types.push(typ.to_string());
    }
    assert_eq!(types, ["Q4_1", "Q8_0", "Q4_0", "Q5_0", "Q5_1"]);
}
