//! Sessions (src/session.rs): each keeps its own KV cache and prefix reuse; a saved and restored session continues
//! with the uninterrupted run's bits and prefills only the new turn; damaged blobs and blobs of another model are
//! refused with coded errors and change nothing; evicted sessions re-prefill transparently.
//! SmolLM2-135M-Instruct Q4_1 and Q4_0 (`make models`).
mod common;

use pocketlm::chat::Message;
use pocketlm::generate::{Engine, GenerateOptions, KvType};
use pocketlm::sampler::SamplerParams;

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampler: SamplerParams { temperature: 0.0, ..SamplerParams::default() },
        ..GenerateOptions::default()
    }
}

fn engine_of(file: &str, kv: KvType) -> Engine {
    Engine::from_bytes_kv(std::fs::read(common::model_path(file)).unwrap(), 512, kv).unwrap()
}

fn engine(kv: KvType) -> Engine {
    engine_of(common::SMOLLM2, kv)
}

fn prompt(e: &Engine, messages: &[Message]) -> Vec<u32> {
    e.tokenize_prompt(&e.apply_chat_template(messages).unwrap()).unwrap()
}

/// One chat turn in the current session: (reply, prefilled tokens, the first step's logits).
fn turn(e: &mut Engine, messages: &mut Vec<Message>, user: &str) -> (String, usize, Vec<f32>) {
    messages.push(Message::new("user", user));
    let ids = prompt(e, messages);
    e.begin(&ids, greedy(12)).unwrap();
    let logits = e.logits().to_vec();
    let mut text = String::new();
    while let Some(p) = e.next().unwrap() {
        text.push_str(&p);
    }
    messages.push(Message::new("assistant", &text));
    (text, e.stats().prefilled_tokens, logits)
}

fn system() -> Vec<Message> {
    vec![Message::new("system", "You are a helpful assistant.")]
}

#[test]
fn restored_session_continues_bit_identically_prefilling_only_the_new_turn_for_every_kv_type() {
    for kv in [KvType::F32, KvType::F16, KvType::Q8_0] {
        let mut a = engine(kv);
        let s = a.create_session().unwrap();
        a.select_session(s).unwrap();
        let mut msgs = system();
        turn(&mut a, &mut msgs, "What is the capital of France?");
        let meta = serde_json::to_vec(&msgs).unwrap();
        let blob = a.save_session(s, &meta).unwrap();
        let mut uninterrupted = msgs.clone();
        let (text, prefilled, logits) = turn(&mut a, &mut uninterrupted, "And of Italy?");

        let mut b = engine(kv);
        let (r, meta_back) = b.restore_session(&blob).unwrap();
        assert_eq!(meta_back, meta);
        let mut restored: Vec<Message> = serde_json::from_slice(&meta_back).unwrap();
        b.select_session(r).unwrap();
        let (text2, prefilled2, logits2) = turn(&mut b, &mut restored, "And of Italy?");
        assert_eq!(text2, text, "{kv:?}");
        assert_eq!(prefilled2, prefilled, "{kv:?}");
        let new_turn = b.stats().prompt_tokens - blob_tokens(&blob);
        assert!(prefilled2 <= new_turn + 1, "{kv:?}: prefilled {prefilled2}, new turn {new_turn}");
        assert!(logits2.iter().zip(&logits).all(|(x, y)| x.to_bits() == y.to_bits()), "{kv:?}: logits differ");
    }
}

/// Positions a blob holds (header field at byte 32).
fn blob_tokens(b: &[u8]) -> usize {
    u32::from_le_bytes(b[32..36].try_into().unwrap()) as usize
}

#[test]
fn interleaved_sessions_and_clones_answer_as_each_alone() {
    let mut e = engine(KvType::F16);
    let q1 = ["What is the capital of France?", "Name one museum there."];
    let q2 = ["Write a haiku about the sea.", "Now one about snow."];
    // Each conversation alone, in its own fresh session.
    let alone = |qs: &[&str; 2], e: &mut Engine| {
        let s = e.create_session().unwrap();
        e.select_session(s).unwrap();
        let mut m = system();
        let r: Vec<String> = qs.iter().map(|q| turn(e, &mut m, q).0).collect();
        e.drop_session(s).unwrap();
        r
    };
    let (a1, a2) = (alone(&q1, &mut e), alone(&q2, &mut e));
    let (s1, s2) = (e.create_session().unwrap(), e.create_session().unwrap());
    let (mut m1, mut m2) = (system(), system());
    let mut got1 = Vec::new();
    let mut got2 = Vec::new();
    for i in 0..2 {
        e.select_session(s1).unwrap();
        let (t, pre, _) = turn(&mut e, &mut m1, q1[i]);
        if i == 1 {
            assert!(pre < e.stats().prompt_tokens / 2, "session 1's second turn reused its own cache: {pre}");
        }
        got1.push(t);
        e.select_session(s2).unwrap();
        got2.push(turn(&mut e, &mut m2, q2[i]).0);
    }
    assert_eq!((got1, got2), (a1.clone(), a2));

    // A clone goes on independently of its source, from the same cached conversation.
    e.select_session(s1).unwrap();
    let c = e.clone_session(s1).unwrap();
    let mut mc = m1.clone();
    let (tc, prec, _) = { e.select_session(c).unwrap(); turn(&mut e, &mut mc, "What language is spoken there?") };
    e.select_session(s1).unwrap();
    let (t1, pre1, _) = turn(&mut e, &mut m1, "What language is spoken there?");
    assert_eq!((tc, prec), (t1, pre1));
    assert!(prec < e.stats().prompt_tokens / 2);
    e.drop_session(c).unwrap();
    assert!(e.select_session(c).is_err());
    assert_eq!(e.drop_session(0).unwrap_err().code(), "invalid-argument");
}

#[test]
fn damaged_and_foreign_blobs_are_refused_with_codes_and_change_nothing() {
    let mut e = engine(KvType::F16);
    let s = e.create_session().unwrap();
    e.select_session(s).unwrap();
    turn(&mut e, &mut system(), "Hello!");
    let blob = e.save_session(s, b"{}").unwrap();
    let before = e.sessions();
    let code = |e: &mut Engine, b: &[u8]| e.restore_session(b).err().map(|x| x.code());
    for at in [0, 9, 14, 22, 40, blob.len() / 2, blob.len() - 5, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[at] ^= 0x40;
        assert_eq!(code(&mut e, &bad), Some("format"), "byte {at} flipped");
    }
    for len in [0, 10, 44, blob.len() - 1] {
        assert_eq!(code(&mut e, &blob[..len]), Some("format"), "truncated to {len}");
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert_eq!(code(&mut e, &longer), Some("format"));
    assert_eq!(e.sessions(), before);

    // Same architecture and shapes, other weights: only the model hash tells them apart.
    let mut other = engine_of("SmolLM2-135M-Instruct.Q4_0.gguf", KvType::F16);
    assert_eq!(code(&mut other, &blob), Some("session-mismatch"));
    // Same model, another KV type.
    let mut f32kv = engine(KvType::F32);
    assert_eq!(code(&mut f32kv, &blob), Some("session-mismatch"));
    assert_eq!(other.sessions().len(), 1);
    assert_eq!(f32kv.sessions().len(), 1);
}

#[test]
fn evicted_sessions_re_prefill_transparently_and_still_save() {
    let mut e = engine(KvType::F32);
    let (s1, s2) = (e.create_session().unwrap(), e.create_session().unwrap());
    let (mut m1, mut m2) = (system(), system());
    e.select_session(s1).unwrap();
    turn(&mut e, &mut m1, "What is the capital of France?");
    let one = e.sessions().iter().find(|i| i.id == s1).unwrap().kv_bytes;
    assert_eq!(one, 2 * 30 * 256 * 192 * 4, "one page of positions, not the whole context");
    // Room for one session's cache: running s2 evicts s1.
    e.set_kv_budget(one + one / 2);
    e.select_session(s2).unwrap();
    turn(&mut e, &mut m2, "Write a haiku about the sea.");
    let info = e.sessions();
    let i1 = info.iter().find(|i| i.id == s1).unwrap();
    assert!(i1.evicted && i1.kv_bytes == 0 && i1.tokens > 0, "{info:?}");

    // Saving the evicted session runs its tokens again; the restored copy continues as the original would.
    let blob = e.save_session(s1, b"").unwrap();
    assert!(!e.sessions().iter().find(|i| i.id == s1).unwrap().evicted);
    e.set_kv_budget(usize::MAX);
    let (r, _) = e.restore_session(&blob).unwrap();
    e.select_session(r).unwrap();
    let mut mr = m1.clone();
    let (tr, prer, _) = turn(&mut e, &mut mr, "Name one museum there.");

    // An evicted session's next turn prefills its whole prompt and answers as if it had never been evicted.
    e.set_kv_budget(one + one / 2);
    e.select_session(s2).unwrap();
    turn(&mut e, &mut m2, "Now one about snow.");
    assert!(e.sessions().iter().find(|i| i.id == s1).unwrap().evicted);
    e.select_session(s1).unwrap();
    let (t1, pre1, _) = turn(&mut e, &mut m1, "Name one museum there.");
    assert_eq!(pre1, e.stats().prompt_tokens);
    assert_eq!(t1, tr);
    assert!(prer < pre1);
}
