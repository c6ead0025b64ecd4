//! KV prefix reuse across calls (what the browser worker relies on since it stopped resetting the engine): a
//! follow-up chat turn prefills only what follows the cached prefix and generates exactly what an engine with an
//! empty cache generates for the same prompt; an abandoned generation (the worker's abort) and a failed call leave
//! the cache consistent with its `cached` tokens. SmolLM2-135M-Instruct Q4_1 (`make models`).
mod common;

use pocketlm::chat::Message;
use pocketlm::generate::{Engine, GenerateOptions};
use pocketlm::sampler::SamplerParams;
use pocketlm::Error;

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampler: SamplerParams { temperature: 0.0, ..SamplerParams::default() },
        ..GenerateOptions::default()
    }
}

fn engine() -> Engine {
    Engine::from_bytes(std::fs::read(common::model_path(common::SMOLLM2)).unwrap(), 512).unwrap()
}

fn prompt(e: &Engine, messages: &[Message]) -> Vec<u32> {
    e.tokenize_prompt(&e.apply_chat_template(messages).unwrap()).unwrap()
}

/// (text, generated ids, prompt tokens, prefilled tokens)
fn run(e: &mut Engine, ids: &[u32], max_tokens: usize) -> (String, Vec<u32>, usize, usize) {
    let text = e.generate(ids, greedy(max_tokens), |_| {}).unwrap();
    let s = e.stats();
    (text, e.generated().to_vec(), s.prompt_tokens, s.prefilled_tokens)
}

#[test]
fn follow_up_turns_prefill_only_new_tokens_and_match_a_fresh_context() {
    let mut e = engine();
    let mut fresh = engine();
    let mut messages = vec![
        Message::new("system", "You are a helpful assistant."),
        Message::new("user", "What is the capital of France?"),
    ];
    let p1 = prompt(&e, &messages);
    let (a1, _, n1, pre1) = run(&mut e, &p1, 24);
    assert_eq!((n1, pre1), (p1.len(), p1.len()));
    messages.push(Message::new("assistant", &a1));
    messages.push(Message::new("user", "And what is it famous for?"));
    let p2 = prompt(&e, &messages);
    let (a2, ids2, n2, pre2) = run(&mut e, &p2, 24);
    assert_eq!(n2, p2.len());
    // The first turn's prompt is a prefix of the second's and came from the cache.
    assert!(pre2 <= p2.len() - p1.len(), "turn 2 prefilled {pre2} of {n2}");
    let (f2, fids2, _, fpre2) = run(&mut fresh, &p2, 24);
    assert_eq!(fpre2, p2.len());
    assert_eq!((a2.as_str(), &ids2), (f2.as_str(), &fids2));

    messages.push(Message::new("assistant", &a2));
    messages.push(Message::new("user", "Name one museum there."));
    let p3 = prompt(&e, &messages);
    let (a3, ids3, n3, pre3) = run(&mut e, &p3, 32);
    assert!(pre3 < n3 && pre3 <= p3.len() - p2.len(), "turn 3 prefilled {pre3} of {n3}");
    fresh.reset();
    let (f3, fids3, _, fpre3) = run(&mut fresh, &p3, 32);
    assert_eq!(fpre3, p3.len());
    assert_eq!((a3.as_str(), &ids3), (f3.as_str(), &fids3));

    // An abandoned generation (the worker stops calling next() when aborted) on a prompt that shares the system
    // turn, then a call that fails (the context is too small for it): the next call still matches a fresh context.
    let other = prompt(&e, &[Message::new("system", "You are a helpful assistant."), Message::new("user", "Count from 1 to 100.")]);
    e.begin(&other, greedy(64)).unwrap();
    assert!(e.stats().prefilled_tokens < other.len());
    for _ in 0..5 {
        e.next().unwrap();
    }
    let long = vec![p3[0]; 600];
    assert!(matches!(e.begin(&long, greedy(4)), Err(Error::ContextOverflow { .. })));
    let (again, again_ids, _, pre) = run(&mut e, &p3, 32);
    assert!(pre < p3.len());
    assert_eq!((again.as_str(), &again_ids), (a3.as_str(), &ids3));
}

/// The chunked prefill (`start` + `prefill` steps, what the browser worker runs to report progress and honour an
/// abort between chunks) computes the same tokens as one `begin`, its progress counts up to the prompt, and a
/// prefill abandoned halfway leaves the cache holding exactly the chunks that ran (the next call reuses them).
#[test]
fn chunked_prefill_matches_one_call_and_an_abandoned_one_is_reused() {
    let mut e = engine();
    let text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ".repeat(8);
    let ids = e.tokenize_prompt(&text).unwrap();
    assert!(ids.len() > 150, "{} tokens", ids.len());
    let (whole, whole_ids, _, _) = run(&mut e, &ids, 16);

    let mut chunked = engine();
    chunked.start(&ids, greedy(16)).unwrap();
    let mut seen = vec![chunked.prefill_progress()];
    while !chunked.prefill(40).unwrap() {
        seen.push(chunked.prefill_progress());
    }
    assert_eq!(seen[0], (0, ids.len(), ids.len()));
    // 40 rounds up to whole batches of 32: 64 tokens per step.
    assert!(seen.windows(2).all(|w| w[1].0 == w[0].0 + 64), "{seen:?}");
    let mut text2 = String::new();
    while let Some(p) = chunked.next().unwrap() {
        text2.push_str(&p);
    }
    assert_eq!((text2.as_str(), chunked.generated()), (whole.as_str(), whole_ids.as_slice()));
    assert_eq!(chunked.stats().prefilled_tokens, ids.len());

    // Abandon a prefill after one step: the next call prefills only what that step did not.
    let mut cut = engine();
    cut.start(&ids, greedy(16)).unwrap();
    assert!(!cut.prefill(64).unwrap());
    let (again, again_ids, n, pre) = run(&mut cut, &ids, 16);
    assert_eq!((n, pre), (ids.len(), ids.len() - 64));
    assert_eq!((again.as_str(), again_ids.as_slice()), (whole.as_str(), whole_ids.as_slice()));
}
