//! Chat templates: expected prompts written from each model family's documented prompt format, and every template /
//! conversation pair of `chat_refs.json` (scripts/fixtures/chat_refs.py, `make fixtures`) as rendered by Python's
//! Jinja2 under transformers' settings.
mod common;

use pocketlm::chat::{ChatTemplate, Message};
use pocketlm::gguf::{is_truncated, Gguf};
use pocketlm::tokenizer::Tokenizer;
use std::io::Read;

fn load_gguf(path: &std::path::Path) -> Gguf {
    let mut f = std::fs::File::open(path).unwrap();
    let file_len = f.metadata().unwrap().len();
    let mut buf = Vec::new();
    let mut want = 1u64 << 20;
    loop {
        let take = want.min(file_len) - buf.len() as u64;
        (&mut f).take(take).read_to_end(&mut buf).unwrap();
        match Gguf::parse_header(&buf, file_len) {
            Ok(g) => return g,
            Err(e) if is_truncated(&e) && (buf.len() as u64) < file_len => want *= 4,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

fn load(file: &str) -> (Gguf, Tokenizer) {
    let g = load_gguf(&common::model_path(file));
    let t = Tokenizer::from_gguf(&g).unwrap();
    (g, t)
}

fn template_file(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fixtures/chat_templates").join(name);
    std::fs::read_to_string(p).unwrap()
}

fn msgs(pairs: &[(&str, &str)]) -> Vec<Message> {
    pairs.iter().map(|(r, c)| Message::new(r, c)).collect()
}

#[test]
fn smollm2_real_template_is_chatml() {
    let (g, tok) = load(common::SMOLLM2);
    let t = ChatTemplate::from_gguf(&g, &tok).unwrap();
    assert_eq!(t.fallback(), None, "SmolLM2's file carries its template");
    // ChatML: "<|im_start|>{role}\n{content}<|im_end|>\n" per message, "<|im_start|>assistant\n" to prompt; SmolLM2's
    // template supplies its default system prompt when the conversation has none.
    let out = t.render(&msgs(&[("user", "Hello")]), true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    );
    let conv = msgs(&[("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye")]);
    let out = t.render(&conv, false).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
    );
    // SmolLM2 adds no BOS, so render is the template's output verbatim, and the control tokens tokenize as such.
    assert_eq!(out, t.render_template(&conv, false).unwrap());
    let ids = tok.encode(&out, true, true).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 4);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 4);
}

#[test]
fn llama3_template() {
    // Meta-Llama-3-8B-Instruct's template; Llama 3's documented format is
    // <|begin_of_text|>{<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>}...
    // <|start_header_id|>assistant<|end_header_id|>\n\n
    let (_, tok) = load("vocab/ggml-vocab-llama-bpe.gguf");
    let t = ChatTemplate::from_source(&template_file("llama3.jinja"), &tok).unwrap();
    let conv = msgs(&[("system", "You are a helpful assistant."), ("user", "What is the capital of France?")]);
    let want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>\
                <|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>\
                <|start_header_id|>assistant<|end_header_id|>\n\n";
    assert_eq!(t.render_template(&conv, true).unwrap(), want);
    // The Llama 3 tokenizer adds BOS itself, so render leaves it out and the prompt gets exactly one.
    assert!(tok.add_bos());
    let prompt = t.render(&conv, true).unwrap();
    assert_eq!(prompt, want.strip_prefix("<|begin_of_text|>").unwrap());
    let ids = tok.encode(&prompt, true, true).unwrap();
    let id = |s: &str| tok.token_id(s).unwrap();
    assert_eq!(&ids[..2], &[128000, id("<|start_header_id|>")]);
    assert_eq!(ids.iter().filter(|&&i| i == 128000).count(), 1);
    assert_eq!(ids.iter().filter(|&&i| i == id("<|eot_id|>")).count(), 2);
    assert!(tok.is_eog(id("<|eot_id|>")));
}

#[test]
fn llama3_2_template_with_date() {
    // Llama-3.2-1B-Instruct's template: the system header carries the knowledge cut-off and today's date
    // (strftime_now("%d %b %Y")), per Meta's Llama 3.1+ prompt format.
    let t = ChatTemplate::new(&template_file("llama3_2.jinja"), "<|begin_of_text|>", "<|eot_id|>")
        .unwrap()
        .with_time(1_721_952_000); // 2024-07-26 UTC
    let out = t.render_template(&msgs(&[("system", "You are a helpful assistant"), ("user", "Hi")]), true).unwrap();
    assert_eq!(
        out,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n\
         Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n\
         You are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn gemma3_template() {
    // Gemma 3 IT's template (the 270M GGUF has none of its own). Gemma's documented format: <bos>, then
    // <start_of_turn>user|model\n{content}<end_of_turn>\n per turn, a system prompt goes at the start of the first
    // user turn followed by a blank line, and <start_of_turn>model\n asks for the reply.
    let (g, tok) = load(common::GEMMA3);
    let real = ChatTemplate::from_source(&template_file("gemma3.jinja"), &tok).unwrap();
    let conv = msgs(&[
        ("system", "You are terse."),
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", " What is 2+2? "),
    ]);
    let want = "<bos><start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n\
                <start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n";
    assert_eq!(real.render_template(&conv, true).unwrap(), want);
    let prompt = real.render(&conv, true).unwrap();
    assert_eq!(prompt, want.strip_prefix("<bos>").unwrap());
    let ids = tok.encode(&prompt, true, true).unwrap();
    assert_eq!(&ids[..2], &[2, tok.token_id("<start_of_turn>").unwrap()]);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1);

    // Without a template in the file, the vocabulary's <start_of_turn> selects the built-in Gemma format, which
    // must agree with the real template.
    let fallback = ChatTemplate::from_gguf(&g, &tok).unwrap();
    assert_eq!(fallback.fallback(), Some("gemma"));
    for (c, gen) in [(&conv[..], true), (&conv[..3], false), (&conv[1..2], true)] {
        assert_eq!(fallback.render(c, gen).unwrap(), real.render(c, gen).unwrap());
    }

    // The real template rejects conversations that do not alternate, through raise_exception.
    let err = real.render(&msgs(&[("user", "a"), ("user", "b")]), true).unwrap_err();
    assert_eq!(err.code(), "template");
    assert!(err.to_string().contains("Conversation roles must alternate user/assistant/user/assistant/..."), "{err}");
}

#[test]
fn template_errors() {
    // Does not compile.
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }}", "", "").unwrap_err();
    assert_eq!(err.code(), "template");
    assert!(err.to_string().contains("does not compile"), "{err}");
    // Fails while rendering: calling an undefined function.
    let t = ChatTemplate::new("{{ no_such_function(messages) }}", "", "").unwrap();
    let err = t.render(&msgs(&[("user", "x")]), true).unwrap_err();
    assert_eq!(err.code(), "template");
    assert!(err.to_string().contains("rendering the chat template failed"), "{err}");
    // No template in the file and no format the vocabulary points to (GPT-2, Llama 2 SentencePiece).
    for file in ["vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-llama-spm.gguf"] {
        let (g, tok) = load(file);
        let err = ChatTemplate::from_gguf(&g, &tok).unwrap_err();
        assert_eq!(err.code(), "template", "{file}");
        assert!(err.to_string().contains("no chat template"), "{file}: {err}");
    }
}

#[test]
fn chatml_fallback_for_im_start_vocabularies() {
    // llama.cpp's starcoder vocabulary has no template and no <|im_start|>; SmolLM2's has both tokens, so when the
    // template is missing the ChatML fallback must reproduce what its real (ChatML) template renders for a
    // conversation that has a system message.
    let (g, tok) = load(common::SMOLLM2);
    let real = ChatTemplate::from_gguf(&g, &tok).unwrap();
    let mut no_template = g.clone();
    no_template.metadata.retain(|(k, _)| k != "tokenizer.chat_template");
    assert!(no_template.get("tokenizer.chat_template").is_none());
    let fallback = ChatTemplate::from_gguf(&no_template, &tok).unwrap();
    assert_eq!(fallback.fallback(), Some("chatml"));
    let conv = msgs(&[("system", "S"), ("user", "U"), ("assistant", "A"), ("user", "V")]);
    for gen in [true, false] {
        assert_eq!(fallback.render(&conv, gen).unwrap(), real.render(&conv, gen).unwrap());
    }
    let (g, tok) = load("vocab/ggml-vocab-starcoder.gguf");
    assert!(ChatTemplate::from_gguf(&g, &tok).is_err());
}

#[test]
fn matches_jinja2() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture_path("chat_refs.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut names = std::collections::BTreeSet::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        names.insert(name);
        let t = ChatTemplate::new(c["template"].as_str().unwrap(), c["bos"].as_str().unwrap(), c["eos"].as_str().unwrap())
            .unwrap()
            .with_time(c["now"].as_i64().unwrap());
        let messages: Vec<Message> = serde_json::from_value(c["messages"].clone()).unwrap();
        let gen = c["add_generation_prompt"].as_bool().unwrap();
        let got = t.render_template(&messages, gen);
        match (c.get("output"), c.get("error")) {
            (Some(want), _) => assert_eq!(got.unwrap(), want.as_str().unwrap(), "{name} {messages:?} gen={gen}"),
            (None, Some(want)) => {
                let err = got.unwrap_err();
                assert!(err.to_string().contains(want.as_str().unwrap()), "{name}: {err}");
            }
            _ => panic!("case without output or error"),
        }
    }
    assert_eq!(names.len(), 6, "{names:?}");
}
