//! Constrained generation on the real SmolLM2 model, natively: JSON Schema, any JSON object, regex, a Lark grammar
//! and tool calls give output in the language (checked here by parsing it with serde_json / by hand; the e2e suite
//! validates 40+ schemas with npm `ajv` in Chromium), bad formats fail before any token, and running out of
//! max_tokens inside a constraint says `length` and `complete: false`.
mod common;

use pocketlm::chat::Message;
use pocketlm::constraint::ResponseFormat;
use pocketlm::generate::{Engine, FinishReason, GenerateOptions};
use pocketlm::sampler::{mask_logits, SamplerParams};
use pocketlm::tools::{parse_reply, Tool, ToolChoice, ToolMessage};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::sync::Mutex;

fn engine() -> &'static Mutex<Engine> {
    static E: OnceLock<Mutex<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        let buf = std::fs::read(common::model_path(common::SMOLLM2)).unwrap();
        Mutex::new(Engine::from_bytes(buf, 1024).unwrap())
    })
}

fn chat_prompt(e: &Engine, user: &str) -> Vec<u32> {
    let p = e.apply_chat_template(&[Message::new("user", user)]).unwrap();
    e.tokenize_prompt(&p).unwrap()
}

fn run(user: &str, format: ResponseFormat, max_tokens: usize, sampler: SamplerParams) -> (String, pocketlm::generate::Stats) {
    let mut e = engine().lock().unwrap_or_else(|p| p.into_inner());
    let ids = chat_prompt(&e, user);
    let opts = GenerateOptions { max_tokens, sampler, response_format: Some(format), ..Default::default() };
    let text = e.generate(&ids, opts, |_| {}).unwrap();
    (text, e.stats().clone())
}

#[test]
fn json_schema_output_parses_and_fits() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "city": {"enum": ["Paris", "London", "Berlin"]},
        },
        "required": ["name", "age", "city"],
        "additionalProperties": false,
    });
    for sampler in [SamplerParams::greedy(), SamplerParams { seed: 7, ..Default::default() }] {
        let (text, stats) = run(
            "Invent a person who lives in a European capital. Reply in JSON.",
            ResponseFormat::JsonSchema { schema: schema.clone() },
            96,
            sampler,
        );
        eprintln!("{text}  {:?}", stats.constraint);
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 3, "{text}");
        assert!(o["name"].as_str().unwrap().chars().count() <= 20);
        let age = o["age"].as_i64().unwrap();
        assert!((0..=120).contains(&age));
        assert!(["Paris", "London", "Berlin"].contains(&o["city"].as_str().unwrap()));
        assert_eq!(stats.finish_reason, Some(FinishReason::Eos));
        let c = stats.constraint.unwrap();
        assert!(c.complete);
        // The grammar forces `{"name": "` and the other keys: fed without sampling.
        assert!(c.forced_tokens > 0, "{c:?}");
        assert_eq!(c.masks + c.forced_tokens, stats.generated_tokens, "one mask per sampled token");
    }
}

#[test]
fn json_object_and_regex() {
    let (text, stats) =
        run("Give a cat's name and color as a JSON object.", ResponseFormat::JsonObject, 200, SamplerParams::greedy());
    assert_eq!(stats.finish_reason, Some(FinishReason::Eos), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert!(v.is_object());

    let (date, stats) = run(
        "When did the Berlin wall fall? Answer with the date.",
        ResponseFormat::Regex { pattern: r"^\d{4}-\d{2}-\d{2}$".into() },
        32,
        SamplerParams::greedy(),
    );
    let b = date.as_bytes();
    assert!(
        b.len() == 10 && b[4] == b'-' && b[7] == b'-' && date.chars().filter(char::is_ascii_digit).count() == 8,
        "{date:?}"
    );
    assert_eq!(stats.finish_reason, Some(FinishReason::Eos));
}

/// Evaluates `sum` of the arithmetic grammar below; None if the text is not in the language.
fn eval(s: &[u8], i: &mut usize) -> Option<i64> {
    fn atom(s: &[u8], i: &mut usize) -> Option<i64> {
        if s.get(*i) == Some(&b'(') {
            *i += 1;
            let v = eval(s, i)?;
            (s.get(*i) == Some(&b')')).then(|| *i += 1)?;
            return Some(v);
        }
        let start = *i;
        while s.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        std::str::from_utf8(&s[start..*i]).ok()?.parse().ok()
    }
    fn term(s: &[u8], i: &mut usize) -> Option<i64> {
        let mut v = atom(s, i)?;
        while s.get(*i) == Some(&b'*') {
            *i += 1;
            v = v.checked_mul(atom(s, i)?)?;
        }
        Some(v)
    }
    let mut v = term(s, i)?;
    while let Some(&op @ (b'+' | b'-')) = s.get(*i) {
        *i += 1;
        let t = term(s, i)?;
        v = if op == b'+' { v.checked_add(t)? } else { v.checked_sub(t)? };
    }
    Some(v)
}

#[test]
fn lark_grammar_is_honoured() {
    let lark = r#"
start: sum
sum: term (("+" | "-") term)*
term: atom ("*" atom)*
atom: NUMBER | "(" sum ")"
NUMBER: /[0-9]{1,4}/
"#;
    let (text, stats) =
        run("Write an arithmetic expression that equals 12.", ResponseFormat::Grammar { lark: lark.into() }, 24, SamplerParams::greedy());
    let mut i = 0;
    let v = eval(text.as_bytes(), &mut i);
    if stats.finish_reason == Some(FinishReason::Eos) {
        assert!(v.is_some() && i == text.len(), "{text:?} is not an expression");
    } else {
        // Stopped at max_tokens: a prefix of an expression, and reported as incomplete.
        assert_eq!(stats.finish_reason, Some(FinishReason::Length));
        assert!(text.bytes().all(|b| b.is_ascii_digit() || b"+-*()".contains(&b)), "{text:?}");
    }
}

#[test]
fn bad_formats_fail_before_any_token() {
    let mut e = engine().lock().unwrap_or_else(|p| p.into_inner());
    let ids = chat_prompt(&e, "Hi");
    for (format, needle) in [
        (ResponseFormat::JsonSchema { schema: json!({"type": "strnig"}) }, "strnig"),
        (ResponseFormat::JsonSchema { schema: json!(true) }, "must be a JSON object"),
        (ResponseFormat::Regex { pattern: "(unclosed".into() }, "regex"),
        (ResponseFormat::Grammar { lark: "start: missing_rule".into() }, "missing_rule"),
        (ResponseFormat::JsonSchema { schema: json!({"$ref": "https://example.com/s.json"}) }, "$ref"),
    ] {
        let opts = GenerateOptions { response_format: Some(format.clone()), ..Default::default() };
        let err = e.begin(&ids, opts).unwrap_err();
        assert_eq!(err.code(), "invalid-argument", "{format:?}: {err}");
        assert!(err.to_string().contains(needle), "{format:?}: '{err}' should name '{needle}'");
        assert!(e.generated().is_empty());
    }
}

#[test]
fn max_tokens_inside_a_constraint_is_length_and_incomplete() {
    let schema = json!({"type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"]});
    let (text, stats) = run("Tell a long story.", ResponseFormat::JsonSchema { schema }, 8, SamplerParams::greedy());
    assert_eq!(stats.finish_reason, Some(FinishReason::Length));
    assert_eq!(stats.generated_tokens, 8);
    assert!(!stats.constraint.unwrap().complete);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[test]
fn tool_call_round_trip() {
    let tools: Vec<Tool> = serde_json::from_value(json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
            "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "description": "Current time in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
            "required": ["city"], "additionalProperties": false}}}
    ]))
    .unwrap();
    let mut e = engine().lock().unwrap_or_else(|p| p.into_inner());
    let mut messages: Vec<ToolMessage> =
        serde_json::from_value(json!([{"role": "user", "content": "What is the weather in Paris?"}])).unwrap();
    let (prompt, format) = e.apply_chat_template_with_tools(&messages, Some(&tools), &ToolChoice::Required).unwrap();
    assert!(prompt.contains("get_weather") && prompt.contains("<tool_call>"));
    let ids = e.tokenize_prompt(&prompt).unwrap();
    let opts = GenerateOptions { max_tokens: 64, sampler: SamplerParams::greedy(), response_format: format, ..Default::default() };
    let text = e.generate(&ids, opts, |_| {}).unwrap();
    let (content, calls) = parse_reply(&text, 1);
    assert_eq!(calls.len(), 1, "{text}");
    assert_eq!(content, None);
    let args: Value = serde_json::from_str(&calls[0].arguments).unwrap();
    match calls[0].name.as_str() {
        "get_weather" => {
            assert!(args["city"].is_string() && ["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()))
        }
        "get_time" => assert!(args["city"].is_string()),
        other => panic!("unknown tool {other}"),
    }
    // The result goes back as a tool message; the next reply (auto) is text or a call, and the prompt carries both.
    messages.push(serde_json::from_value(json!({"role": "assistant", "content": null, "toolCalls": calls})).unwrap());
    messages.push(
        serde_json::from_value(json!({"role": "tool", "toolCallId": calls[0].id, "content": "{\"temperature\": 21}"}))
            .unwrap(),
    );
    let (prompt, format) = e.apply_chat_template_with_tools(&messages, Some(&tools), &ToolChoice::Auto).unwrap();
    assert!(prompt.contains("<tool_response>\n{\"temperature\": 21}\n</tool_response>"), "{prompt}");
    assert!(prompt.contains(&format!("<tool_call>\n{{\"name\": \"{}\"", calls[0].name)));
    let ids = e.tokenize_prompt(&prompt).unwrap();
    let opts = GenerateOptions { max_tokens: 48, sampler: SamplerParams::greedy(), response_format: format, ..Default::default() };
    let text = e.generate(&ids, opts, |_| {}).unwrap();
    let (content, calls) = parse_reply(&text, 2);
    assert!(!calls.is_empty() || content.is_some_and(|c| !c.starts_with('<')), "{text}");
}

#[test]
fn mask_sets_disallowed_logits_to_minus_infinity() {
    let mut logits: Vec<f32> = (0..70).map(|i| i as f32).collect();
    // ids 1, 33, 64 allowed (bit 1 of word 0, bit 1 of word 1, bit 0 of word 2)
    mask_logits(&mut logits, &[0b10, 0b10, 0b1]);
    for (i, &l) in logits.iter().enumerate() {
        if [1, 33, 64].contains(&i) {
            assert_eq!(l, i as f32);
        } else {
            assert_eq!(l, f32::NEG_INFINITY, "id {i}");
        }
    }
}
