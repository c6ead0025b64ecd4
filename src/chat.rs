//! Chat templates: the Jinja template a GGUF carries in `tokenizer.chat_template` (the Hugging Face `chat_template`),
//! rendered with minijinja set up the way transformers' `apply_chat_template` sets up Jinja2: `trim_blocks` and
//! `lstrip_blocks`, loop controls, the globals `raise_exception` and `strftime_now`, a `tojson` filter with Python's
//! `json.dumps` output, Python string / dict methods (`.strip()`, `.startswith()`, `.items()`, ... via
//! minijinja-contrib's pycompat), and the variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`,
//! `tools` (none) and `documents` (none).

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind};

use crate::gguf::Gguf;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// One chat message. `role` is usually "system", "user" or "assistant".
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.to_owned(), content: content.to_owned() }
    }
}

const TEMPLATE_NAME: &str = "chat_template";

/// ChatML, used when a file has no template but its vocabulary has `<|im_start|>` / `<|im_end|>` (the format those
/// tokens exist for: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, `<|im_start|>assistant\n` to prompt).
const CHATML: &str = "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}\
{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

/// Gemma's turn format, used when a file has no template but its vocabulary has `<start_of_turn>` / `<end_of_turn>`
/// (Gemma 3 270M's GGUF ships without one): BOS, then `<start_of_turn>{user|model}\n{content}<end_of_turn>\n` per
/// message with the assistant called "model", a system message prepended to the first user message followed by a
/// blank line, and `<start_of_turn>model\n` to prompt.
const GEMMA: &str = "{{ bos_token }}\
{%- if messages and messages[0].role == 'system' %}{% set sys = messages[0].content | trim + '\\n\\n' %}\
{% set rest = messages[1:] %}{% else %}{% set sys = '' %}{% set rest = messages %}{% endif %}\
{%- for m in rest %}{{ '<start_of_turn>' + ('model' if m.role == 'assistant' else m.role) + '\\n' }}\
{%- if loop.first %}{{ sys }}{% endif %}{{ m.content | trim + '<end_of_turn>\\n' }}{%- endfor %}\
{%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{%- endif %}";

/// A compiled chat template together with the special-token strings it may use.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    /// The tokenizer adds BOS itself (`add_bos_token`), so [`ChatTemplate::render`] drops a leading BOS the template
    /// wrote (as llama.cpp does) and the prompt ends up with exactly one.
    strip_bos: bool,
    fallback: Option<&'static str>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("fallback", &self.fallback).field("source", &self.source).finish()
    }
}

impl ChatTemplate {
    /// The template of a GGUF file (`tokenizer.chat_template`), with BOS / EOS strings from its tokenizer. Without
    /// that key a built-in format is used only when the vocabulary shows which one the model was trained on:
    /// ChatML if it has `<|im_start|>` and `<|im_end|>`, Gemma turns if it has `<start_of_turn>` and `<end_of_turn>`;
    /// otherwise `Error::Template`.
    pub fn from_gguf(g: &Gguf, tok: &Tokenizer) -> Result<ChatTemplate> {
        let source = g.opt_str("tokenizer.chat_template").map_err(|e| Error::Template(e.to_string()))?;
        if let Some(s) = source {
            return ChatTemplate::from_source(s, tok);
        }
        let has = |t: &str| tok.token_id(t).is_some();
        let (name, src) = if has("<|im_start|>") && has("<|im_end|>") {
            ("chatml", CHATML)
        } else if has("<start_of_turn>") && has("<end_of_turn>") {
            ("gemma", GEMMA)
        } else {
            return Err(Error::Template(
                "the model has no chat template (tokenizer.chat_template) and its vocabulary matches no built-in format"
                    .into(),
            ));
        };
        let mut t = ChatTemplate::from_source(src, tok)?;
        t.fallback = Some(name);
        Ok(t)
    }

    /// Compiles `source` with BOS / EOS strings from `tok`; [`ChatTemplate::render`] then yields text for
    /// `tok.encode(text, true, true)`.
    pub fn from_source(source: &str, tok: &Tokenizer) -> Result<ChatTemplate> {
        let token = |id: Option<u32>| id.map(|i| tok.token_str(i).to_owned()).unwrap_or_default();
        let mut t = ChatTemplate::new(source, &token(tok.bos_id()), &token(tok.eos_id()))?;
        t.strip_bos = tok.add_bos() && !t.bos_token.is_empty();
        Ok(t)
    }

    /// Compiles `source` with the given BOS / EOS strings; nothing is stripped from the output.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        // Jinja2 as configured by transformers (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)).
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("raise_exception: {msg}")))
        });
        env.add_filter("tojson", tojson);
        // Printed values as Python prints them: True / False / None (minijinja would write true / false / none).
        env.set_formatter(|out, state, value| {
            let python = match value.kind() {
                minijinja::value::ValueKind::Bool => Some(if value.is_true() { "True" } else { "False" }),
                minijinja::value::ValueKind::None => Some("None"),
                _ => None,
            };
            match python {
                Some(s) => out.write_str(s).map_err(minijinja::Error::from),
                None => minijinja::escape_formatter(out, state, value),
            }
        });
        set_clock(&mut env, None);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|e| Error::Template(format!("the chat template does not compile: {}", describe(&e))))?;
        Ok(ChatTemplate {
            env,
            source: source.to_owned(),
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
            strip_bos: false,
            fallback: None,
        })
    }

    /// Makes `strftime_now` report this instant (seconds since 1970-01-01 UTC) instead of the current time.
    pub fn with_time(mut self, unix_seconds: i64) -> Self {
        set_clock(&mut self.env, Some(unix_seconds));
        self
    }

    /// The template text (the built-in one when the file had none).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `Some("chatml")` / `Some("gemma")` when the file had no template and a built-in format is used.
    pub fn fallback(&self) -> Option<&'static str> {
        self.fallback
    }

    /// The prompt for `messages`, ready for `Tokenizer::encode(prompt, true, true)`: the template's output minus a
    /// leading BOS when the tokenizer adds one itself. `add_generation_prompt` ends it with the assistant's turn
    /// header. Errors (including the template's own `raise_exception`) are `Error::Template`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// [`ChatTemplate::render`] with the `tools` variable set (for templates that render tools themselves, see
    /// [`ChatTemplate::renders_tools`]) and messages of any serializable shape (e.g. with `tool_calls`).
    pub fn render_with_tools<M: serde::Serialize>(
        &self,
        messages: &[M],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let out = self.render_template_with(messages, tools, add_generation_prompt)?;
        if self.strip_bos {
            if let Some(rest) = out.strip_prefix(self.bos_token.as_str()) {
                return Ok(rest.to_owned());
            }
        }
        Ok(out)
    }

    /// The template reads a `tools` variable (tool-calling templates such as Qwen 2.5's and Hermes').
    pub fn renders_tools(&self) -> bool {
        self.source.contains("tools")
    }

    /// Exactly what the template produces (BOS included if it writes one).
    pub fn render_template(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_template_with(messages, None, add_generation_prompt)
    }

    fn render_template_with<M: serde::Serialize>(
        &self,
        messages: &[M],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(|e| Error::Template(describe(&e)))?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => tools.map_or(Value::from(()), Value::from_serialize),
            documents => Value::from(()),
        };
        tmpl.render(ctx).map_err(|e| Error::Template(format!("rendering the chat template failed: {}", describe(&e))))
    }
}

/// minijinja's message plus the line it happened on.
fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    if let Some(src) = std::error::Error::source(e) {
        s.push_str(&format!(": {src}"));
    }
    s
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent)`, i.e. ", " and ": "
/// separators without indent, "," and newlines with it; non-ASCII is written as is. Mapping keys come out in
/// minijinja's order (sorted).
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    // Accepted for compatibility; Python's defaults are what we produce anyway.
    let _: Option<Value> = kwargs.get("ensure_ascii")?;
    let _: Option<Value> = kwargs.get("sort_keys")?;
    let _: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    write_py_json(&json, indent, 0, &mut out);
    Ok(Value::from(out))
}

/// `json.dumps(v, ensure_ascii=False)`: ", " and ": " separators, the same layout constrained JSON output uses.
pub(crate) fn py_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_py_json(v, None, 0, &mut out);
    out
}

fn write_py_json(v: &serde_json::Value, indent: Option<usize>, level: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                write_py_json(item, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                out.push_str(&J::String(k.clone()).to_string());
                out.push_str(": ");
                write_py_json(item, indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
        // Scalars and empty containers: serde_json's spelling matches Python's for these (escapes \" \\ \n \r \t
        // \b \f and \u00XX for other control characters, nothing else).
        other => out.push_str(&other.to_string()),
    }
}

/// Registers `strftime_now(format)`: the current local time (browser) / UTC time (host), or a fixed instant.
fn set_clock(env: &mut Environment<'static>, fixed: Option<i64>) {
    env.add_function("strftime_now", move |fmt: String| -> std::result::Result<String, minijinja::Error> {
        let t = match fixed {
            Some(secs) => CivilTime::from_unix(secs),
            None => CivilTime::now(),
        };
        Ok(t.strftime(&fmt))
    });
}

/// A calendar date and time of day.
#[derive(Clone, Copy, Debug)]
struct CivilTime {
    year: i64,
    month: u32, // 1..=12
    day: u32,   // 1..=31
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32, // 0 = Sunday
    yday: u32,    // 1..=366
}

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

impl CivilTime {
    /// Proleptic Gregorian calendar from days since 1970-01-01 (the era-based conversion: 400-year eras of 146097
    /// days, years counted from March so the leap day is last).
    fn from_unix(secs: i64) -> CivilTime {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let z = days + 719_468; // days since 0000-03-01
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097); // [0, 146096]
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
        let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let cum = [0u32, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yday = cum[month as usize - 1] + day + u32::from(month > 2 && is_leap(year));
        CivilTime {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            weekday: (days + 4).rem_euclid(7) as u32, // 1970-01-01 was a Thursday
            yday,
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn now() -> CivilTime {
        // The browser's local time, like Python's datetime.now(): shift UTC by the page's time-zone offset.
        let d = js_sys::Date::new_0();
        let local_ms = d.get_time() - d.get_timezone_offset() * 60_000.0;
        CivilTime::from_unix((local_ms / 1000.0).floor() as i64)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn now() -> CivilTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        CivilTime::from_unix(secs)
    }

    /// The C `strftime` conversions templates use (C locale); unknown ones are copied through.
    fn strftime(&self, fmt: &str) -> String {
        let mut out = String::new();
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let month = MONTHS[self.month as usize - 1];
            let day = DAYS[self.weekday as usize];
            let h12 = if self.hour % 12 == 0 { 12 } else { self.hour % 12 };
            match chars.next() {
                Some('Y') => out.push_str(&self.year.to_string()),
                Some('y') => out.push_str(&format!("{:02}", self.year.rem_euclid(100))),
                Some('m') => out.push_str(&format!("{:02}", self.month)),
                Some('d') => out.push_str(&format!("{:02}", self.day)),
                Some('e') => out.push_str(&format!("{:2}", self.day)),
                Some('j') => out.push_str(&format!("{:03}", self.yday)),
                Some('H') => out.push_str(&format!("{:02}", self.hour)),
                Some('I') => out.push_str(&format!("{h12:02}")),
                Some('M') => out.push_str(&format!("{:02}", self.minute)),
                Some('S') => out.push_str(&format!("{:02}", self.second)),
                Some('p') => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
                Some('B') => out.push_str(month),
                Some('b') | Some('h') => out.push_str(&month[..3]),
                Some('A') => out.push_str(day),
                Some('a') => out.push_str(&day[..3]),
                Some('w') => out.push_str(&self.weekday.to_string()),
                Some('F') => out.push_str(&format!("{}-{:02}-{:02}", self.year, self.month, self.day)),
                Some('T') => out.push_str(&format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn civil_dates() {
        // Known instants (date(1) / Python's datetime.utcfromtimestamp).
        let t = CivilTime::from_unix(0);
        assert_eq!((t.year, t.month, t.day, t.weekday, t.yday), (1970, 1, 1, 4, 1));
        let t = CivilTime::from_unix(951_782_400); // 2000-02-29 00:00:00, a Tuesday
        assert_eq!((t.year, t.month, t.day, t.weekday, t.yday), (2000, 2, 29, 2, 60));
        let t = CivilTime::from_unix(1_721_952_000 + 3_723); // 2024-07-26 01:02:03 UTC, a Friday
        assert_eq!(t.strftime("%d %b %Y %H:%M:%S %A %j %I%p %%"), "26 Jul 2024 01:02:03 Friday 208 01AM %");
        let t = CivilTime::from_unix(1_721_952_000 + 13 * 3600); // 13:00 -> 01PM
        assert_eq!(t.strftime("%I%p"), "01PM");
        let t = CivilTime::from_unix(-1); // 1969-12-31 23:59:59, a Wednesday
        assert_eq!(t.strftime("%F %T %a %y"), "1969-12-31 23:59:59 Wed 69");
    }

    #[test]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn renders_with_python_semantics() {
        // Jinja2 / Python behaviour the output is compared with (also on wasm32, where the clock comes from JS).
        let src = "{% for m in messages %}{{ m.role.upper() }}:{{ m.content.strip() | tojson }}{% endfor %}\
                   |{{ {'k': [1, none, true]} | tojson }}|{{ messages[0].content.startswith(' h') }}|{{ none }}\
                   |{{ strftime_now('%Y') | length }}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let out = t.render(&[Message::new("user", " hé\n")], true).unwrap();
        assert_eq!(out, "USER:\"hé\"|{\"k\": [1, null, true]}|True|None|4");
    }
}
