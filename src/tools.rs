//! Tool (function) calling on top of constrained decoding.
//!
//! The reply format is the one Hermes-style and Qwen 2/2.5 templates use: a call is
//! `<tool_call>\n{"name": NAME, "arguments": {...}}\n</tool_call>`, a tool's result goes back to the model as
//! `<tool_response>\n...\n</tool_response>`. The reply is constrained by a grammar ([`tool_format`]) so that a call
//! always names a declared tool and its arguments are valid JSON for that tool's `parameters` schema.
//!
//! How the tools reach the model: a chat template that uses a `tools` variable renders them itself (and the
//! assistant's `tool_calls` and `tool` messages); for any other template, [`plain_messages`] puts a system prompt
//! describing the tools and the format in front of the conversation and writes earlier calls and results into the
//! assistant's and the user's turns as the text above.

use crate::chat::Message;
use crate::constraint::ResponseFormat;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `{type: "function", function: {name, description, parameters}}` (the OpenAI and Hugging Face shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: Function,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object; absent means no arguments (`{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// Whether and which tool the reply must call.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolChoice {
    /// Text or one call, as the model chooses.
    Auto,
    /// Text only: the tools are not shown to the model.
    None,
    /// One call to any of the tools.
    Required,
    /// One call to this tool.
    Named(String),
}

impl ToolChoice {
    /// `"auto" | "none" | "required" | {type: "function", function: {name}} | {name}`.
    pub fn from_json(v: Option<&Value>) -> Result<ToolChoice> {
        let bad = || {
            Error::InvalidArgument(
                "the tool choice must be 'auto', 'none', 'required' or {type: 'function', function: {name}}".into(),
            )
        };
        Ok(match v {
            None | Some(Value::Null) => ToolChoice::Auto,
            Some(Value::String(s)) => match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                _ => return Err(bad()),
            },
            Some(Value::Object(o)) => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .or_else(|| o.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?;
                ToolChoice::Named(name.to_string())
            }
            Some(_) => return Err(bad()),
        })
    }
}

/// A call the model made: `arguments` is JSON text (as OpenAI returns it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

const CALL_OPEN: &str = "<tool_call>\n";
const CALL_CLOSE: &str = "\n</tool_call>";

/// Checks the declarations: unique, non-empty names of letters, digits, `_` and `-` (at most 64, as OpenAI's), and
/// parameter schemas that are objects.
pub fn validate(tools: &[Tool]) -> Result<()> {
    if tools.is_empty() {
        return Err(Error::InvalidArgument("tools is empty".into()));
    }
    for (i, t) in tools.iter().enumerate() {
        let n = &t.function.name;
        if t.kind != "function" {
            return Err(Error::InvalidArgument(format!("tools[{i}]: type must be 'function', got '{}'", t.kind)));
        }
        if n.is_empty() || n.len() > 64 || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(Error::InvalidArgument(format!(
                "tools[{i}]: the name '{n}' must be 1-64 letters, digits, '_' or '-'"
            )));
        }
        if tools[..i].iter().any(|o| &o.function.name == n) {
            return Err(Error::InvalidArgument(format!("tools[{i}]: the name '{n}' is declared twice")));
        }
        if let Some(p) = &t.function.parameters {
            if !p.is_object() {
                return Err(Error::InvalidArgument(format!("tools[{i}] ('{n}'): parameters must be a JSON Schema object")));
            }
        }
    }
    Ok(())
}

/// The grammar of a reply for `choice` (None for [`ToolChoice::None`]: no constraint). `auto`: text that does not
/// start with `<`, or one call; `required` / a named tool: one call.
pub fn tool_format(tools: &[Tool], choice: &ToolChoice) -> Result<Option<ResponseFormat>> {
    let allowed: Vec<&Tool> = match choice {
        ToolChoice::None => return Ok(None),
        ToolChoice::Auto | ToolChoice::Required => tools.iter().collect(),
        ToolChoice::Named(name) => {
            let t: Vec<&Tool> = tools.iter().filter(|t| &t.function.name == name).collect();
            if t.is_empty() {
                return Err(Error::InvalidArgument(format!("the tool choice names '{name}', which is not among the tools")));
            }
            t
        }
    };
    let calls: Vec<Value> = allowed
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {
                    "name": { "const": t.function.name },
                    "arguments": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                },
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let schema = json!({
        "anyOf": calls,
        "x-guidance": { "item_separator": ", ", "key_separator": ": ", "whitespace_flexible": false },
    });
    let call = format!("call: {} %json {} {}", lark_str(CALL_OPEN), schema, lark_str(CALL_CLOSE));
    let lark = match choice {
        ToolChoice::Auto => format!("start: TEXT | call\nTEXT: /[^<][\\s\\S]*/\n{call}\n"),
        _ => format!("start: call\n{call}\n"),
    };
    Ok(Some(ResponseFormat::Grammar { lark }))
}

/// A Lark string literal (JSON's escapes are Lark's).
fn lark_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Splits a reply into its text and its calls: a reply that is a `<tool_call>` block (as [`tool_format`] makes it)
/// gives the call, with ids `call_{seq}_{i}`; anything else is text. A block whose JSON does not parse (only possible
/// when generation stopped inside it) is left as text.
pub fn parse_reply(text: &str, seq: u64) -> (Option<String>, Vec<ToolCall>) {
    let mut calls = Vec::new();
    let mut rest = text.trim_start();
    while let Some(body) = rest.strip_prefix(CALL_OPEN.trim_end()) {
        let Some(end) = body.find(CALL_CLOSE.trim_start()) else { break };
        let Ok(v) = serde_json::from_str::<Value>(body[..end].trim()) else { break };
        let (Some(name), Some(args)) = (v.get("name").and_then(Value::as_str), v.get("arguments")) else { break };
        calls.push(ToolCall { id: format!("call_{seq}_{}", calls.len()), name: name.to_string(), arguments: args.to_string() });
        rest = body[end + CALL_CLOSE.trim_start().len()..].trim_start();
    }
    if calls.is_empty() {
        return (Some(text.to_string()), calls);
    }
    (if rest.is_empty() { None } else { Some(rest.to_string()) }, calls)
}

/// The system prompt for templates without tool support: the tools' declarations and the call format.
pub fn system_prompt(tools: &[Tool]) -> String {
    let mut s = String::from(
        "You can call functions to help answer. The available functions, as JSON Schema, are:\n<tools>\n",
    );
    for t in tools {
        s.push_str(&serde_json::to_string(&t).expect("tools serialize"));
        s.push('\n');
    }
    s.push_str(
        "</tools>\nTo call a function, reply with only a JSON object with its name and arguments inside \
         <tool_call></tool_call> tags:\n<tool_call>\n{\"name\": \"function name\", \"arguments\": {...}}\n\
         </tool_call>\nThe result will come back inside <tool_response></tool_response> tags. If no function \
         is needed, answer normally.",
    );
    s
}

/// One message of a conversation with tools, as the package sends it: plain messages plus the assistant's calls
/// (`toolCalls`) and tools' results (`role: "tool"`, `toolCallId`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// The conversation written as plain messages for a template without tool support: the tools' system prompt
/// (joined to the caller's system message), calls as `<tool_call>` text in the assistant's turn, results as
/// `<tool_response>` text in a user turn (consecutive results in one turn).
pub fn plain_messages(messages: &[ToolMessage], tools: Option<&[Tool]>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    let mut rest = messages;
    if let Some(tools) = tools {
        let mut system = system_prompt(tools);
        if let Some(first) = messages.first().filter(|m| m.role == "system") {
            system = format!("{}\n\n{system}", first.content.as_deref().unwrap_or(""));
            rest = &messages[1..];
        }
        out.push(Message::new("system", &system));
    }
    for m in rest {
        match m.role.as_str() {
            "tool" => {
                let block = format!("<tool_response>\n{}\n</tool_response>", m.content.as_deref().unwrap_or(""));
                match out.last_mut() {
                    Some(last) if last.role == "user" && last.content.ends_with("</tool_response>") => {
                        last.content.push('\n');
                        last.content.push_str(&block);
                    }
                    _ => out.push(Message::new("user", &block)),
                }
            }
            "assistant" if !m.tool_calls.is_empty() => {
                let mut text = m.content.clone().unwrap_or_default();
                for c in &m.tool_calls {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    let args: Value = serde_json::from_str(&c.arguments).unwrap_or(Value::String(c.arguments.clone()));
                    let call = crate::chat::py_json(&json!({"name": c.name, "arguments": args}));
                    text.push_str(&format!("{CALL_OPEN}{call}{CALL_CLOSE}"));
                }
                out.push(Message::new("assistant", &text));
            }
            _ => out.push(Message::new(&m.role, m.content.as_deref().unwrap_or(""))),
        }
    }
    out
}

/// The conversation in the Hugging Face shape for templates that render tools themselves: `tool_calls` as
/// `[{type, function: {name, arguments}}]` with the arguments as an object, `tool` messages with `tool_call_id`.
pub fn template_messages(messages: &[ToolMessage]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            let mut v = json!({ "role": m.role, "content": m.content.clone().unwrap_or_default() });
            if !m.tool_calls.is_empty() {
                v["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let args: Value = serde_json::from_str(&c.arguments).unwrap_or(json!({}));
                        json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": args}})
                    })
                    .collect();
            }
            if let Some(id) = &m.tool_call_id {
                v["tool_call_id"] = json!(id);
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Tool {
        serde_json::from_value(json!({"type": "function", "function": {"name": "get_weather",
            "description": "Weather in a city", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}}}))
        .unwrap()
    }

    #[test]
    fn parses_a_call_and_text() {
        let (content, calls) =
            parse_reply("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", 7);
        assert_eq!(content, None);
        assert_eq!(calls, vec![ToolCall { id: "call_7_0".into(), name: "get_weather".into(),
            arguments: "{\"city\":\"Paris\"}".into() }]);
        let (content, calls) = parse_reply("It is sunny.", 1);
        assert_eq!(content.as_deref(), Some("It is sunny."));
        assert!(calls.is_empty());
        // Stopped inside the call: stays text.
        let (content, calls) = parse_reply("<tool_call>\n{\"name\": \"get_wea", 1);
        assert!(calls.is_empty());
        assert_eq!(content.as_deref(), Some("<tool_call>\n{\"name\": \"get_wea"));
    }

    #[test]
    fn rejects_bad_declarations() {
        let mut t = weather();
        assert!(validate(&[t.clone()]).is_ok());
        assert!(validate(&[t.clone(), t.clone()]).unwrap_err().to_string().contains("declared twice"));
        t.function.name = "get weather".into();
        assert!(validate(&[t]).unwrap_err().to_string().contains("letters, digits"));
        assert!(tool_format(&[weather()], &ToolChoice::Named("nope".into())).is_err());
        assert_eq!(ToolChoice::from_json(Some(&json!({"type": "function", "function": {"name": "x"}}))).unwrap(),
            ToolChoice::Named("x".into()));
        assert!(ToolChoice::from_json(Some(&json!("sometimes"))).is_err());
    }

    #[test]
    fn plain_messages_write_calls_and_results_as_text() {
        let msgs: Vec<ToolMessage> = serde_json::from_value(json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "toolCalls": [{"id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}]},
            {"role": "tool", "toolCallId": "c1", "content": "{\"temp\": 21}"},
        ]))
        .unwrap();
        let out = plain_messages(&msgs, Some(&[weather()]));
        assert_eq!(out.len(), 4);
        assert!(out[0].content.starts_with("Be brief.\n\nYou can call functions"));
        assert!(out[0].content.contains("\"name\":\"get_weather\""));
        assert_eq!(out[2].content, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
        assert_eq!((out[3].role.as_str(), out[3].content.as_str()), ("user", "<tool_response>\n{\"temp\": 21}\n</tool_response>"));
    }
}
