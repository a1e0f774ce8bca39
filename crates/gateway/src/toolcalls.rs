//! Tool calls from small models. Asked with `tools`, a small model often answers with the call
//! as text instead of OpenAI's `tool_calls`: bare JSON (`{"name": ..., "arguments": ...}`), the
//! same in a Markdown fence, or inside `<tool_call>` tags (the Qwen and Hermes format) when the
//! server did not parse them. When the request has tools, the gateway turns such an answer
//! into `tool_calls`, whole or streamed. Only a call to a tool the request offered counts: any
//! other JSON is the model's answer and is left alone.

use serde_json::{Value, json};

/// Most text a stream holds back while it may still be a tool call; past it, it is passed on.
pub const MAX_HELD_BYTES: usize = 64 << 10;

/// One call: the function's name and its arguments as a JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub arguments: String,
}

/// The names of the function tools a request offers, in the chat shape
/// (`{"type": "function", "function": {"name"}}`) or the Responses shape (`{"type": "function", "name"}`).
pub fn tool_names(req: &Value) -> Vec<String> {
    let name = |t: &Value| t["function"]["name"].as_str().or(t["name"].as_str()).map(str::to_string);
    req["tools"].as_array().into_iter().flatten().filter_map(name).collect()
}

/// The calls `text` consists of, if it is nothing but one or more calls to offered tools.
pub fn parse(text: &str, tools: &[String]) -> Option<Vec<Call>> {
    let t = text.trim();
    let bodies: Vec<&str> = if t.starts_with("<tool_call>") {
        let mut out = Vec::new();
        let mut rest = t;
        while let Some(after) = rest.strip_prefix("<tool_call>") {
            let (inner, tail) = after.split_once("</tool_call>")?;
            out.push(inner.trim());
            rest = tail.trim_start();
        }
        rest.is_empty().then_some(out)?
    } else if let Some(fenced) = t.strip_prefix("```") {
        let body = fenced.strip_suffix("```")?;
        // The fence's language tag, if any, is the rest of its first line.
        let body = match body.split_once('\n') {
            Some((tag, rest)) if !tag.trim_start().starts_with(['{', '[']) => rest,
            _ => body,
        };
        vec![body.trim()]
    } else {
        vec![t]
    };
    let mut calls = Vec::new();
    for body in bodies {
        match serde_json::from_str::<Value>(body).ok()? {
            Value::Array(items) => {
                for item in items {
                    calls.push(call_of(&item, tools)?);
                }
            }
            v => calls.push(call_of(&v, tools)?),
        }
    }
    (!calls.is_empty()).then_some(calls)
}

/// `{"name", "arguments"}` (or `"parameters"`), arguments an object or a JSON text of one.
fn call_of(v: &Value, tools: &[String]) -> Option<Call> {
    let obj = v.as_object()?;
    let name = obj.get("name")?.as_str()?;
    if !tools.iter().any(|t| t == name) || obj.keys().any(|k| !["name", "arguments", "parameters"].contains(&k.as_str())) {
        return None;
    }
    let args = obj.get("arguments").or_else(|| obj.get("parameters")).cloned().unwrap_or_else(|| json!({}));
    let arguments = match args {
        Value::Object(_) => args.to_string(),
        Value::String(s) if serde_json::from_str::<Value>(&s).is_ok_and(|a| a.is_object()) => s,
        _ => return None,
    };
    Some(Call { name: name.to_string(), arguments })
}

/// OpenAI's `tool_calls` entries for `calls` (with `index` for stream deltas).
fn entries(calls: &[Call], indexed: bool) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut e = json!({"id": format!("call_{}", uuid::Uuid::new_v4().simple()), "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments}});
            if indexed {
                e["index"] = json!(i);
            }
            e
        })
        .collect()
}

/// Rewrites a whole chat answer whose message is a call written as text. Returns whether it did.
pub fn fix_answer(answer: &mut Value, tools: &[String]) -> bool {
    let choice = &mut answer["choices"][0];
    let msg = &choice["message"];
    if msg["tool_calls"].as_array().is_some_and(|c| !c.is_empty()) {
        return false;
    }
    let Some(calls) = msg["content"].as_str().and_then(|t| parse(t, tools)) else { return false };
    choice["message"]["content"] = Value::Null;
    choice["message"]["tool_calls"] = Value::Array(entries(&calls, false));
    choice["finish_reason"] = json!("tool_calls");
    true
}

/// A chat stream whose request offered tools: content is held back while it may still be a
/// call, then either passed on as it came or replaced by `tool_calls` deltas.
#[derive(Default)]
pub struct StreamFix {
    tools: Vec<String>,
    /// `None` once the answer is known not to be a call written as text.
    held: Option<(String, Vec<Value>)>,
}

impl StreamFix {
    pub fn new(tools: Vec<String>) -> Self {
        StreamFix { tools, held: Some((String::new(), Vec::new())) }
    }

    /// The frames to send now for one upstream frame.
    pub fn frame(&mut self, v: Value) -> Vec<Value> {
        let Some((text, frames)) = self.held.as_mut() else { return vec![v] };
        let delta = &v["choices"][0]["delta"];
        // An upstream that parses calls itself needs no help.
        if delta["tool_calls"].is_array() {
            return self.release(Some(v));
        }
        text.push_str(delta["content"].as_str().unwrap_or(""));
        frames.push(v);
        if text.len() > MAX_HELD_BYTES || !may_be_call(text) {
            return self.release(None);
        }
        Vec::new()
    }

    /// The frames to send when the upstream stream ends.
    pub fn finish(&mut self) -> Vec<Value> {
        let Some((text, frames)) = self.held.take() else { return Vec::new() };
        let Some(calls) = parse(&text, &self.tools) else { return frames };
        let Some(first) = frames.iter().find(|f| f["choices"][0].is_object()) else { return frames };
        let frame = |delta: Value, finish: Value| {
            json!({"id": first["id"], "object": "chat.completion.chunk", "created": first["created"], "model": first["model"],
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut out = vec![
            frame(json!({"role": "assistant", "content": null, "tool_calls": entries(&calls, true)}), Value::Null),
            frame(json!({}), json!("tool_calls")),
        ];
        // Frames without a choice (the usage frame) still go out, after the calls.
        out.extend(frames.into_iter().filter(|f| !f["choices"][0].is_object()));
        out
    }

    fn release(&mut self, extra: Option<Value>) -> Vec<Value> {
        let mut out = self.held.take().map(|(_, f)| f).unwrap_or_default();
        out.extend(extra);
        out
    }
}

/// Whether text seen so far can still grow into a call written as text.
fn may_be_call(text: &str) -> bool {
    let t = text.trim_start();
    t.is_empty() || t.starts_with(['{', '[']) || ["```", "<tool_call>"].iter().any(|open| t.starts_with(open) || open.starts_with(t))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn tools() -> Vec<String> {
        vec!["get_weather".into()]
    }

    #[test]
    fn calls_written_as_text_are_read_in_every_usual_shape() {
        let want = Call { name: "get_weather".into(), arguments: r#"{"city":"北京"}"#.into() };
        for text in [
            r#"{"name": "get_weather", "arguments": {"city": "北京"}}"#,
            "```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"北京\"}}\n```",
            "```\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"北京\"}}\n```",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\":\\\"北京\\\"}\"}\n</tool_call>",
            r#" [{"name": "get_weather", "arguments": {"city": "北京"}}] "#,
        ] {
            assert_eq!(parse(text, &tools()), Some(vec![want.clone()]), "{text}");
        }
        let two = "<tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"x\"}}</tool_call>";
        assert_eq!(parse(two, &tools()).unwrap().len(), 2);
    }

    #[test]
    fn other_json_and_text_are_the_models_answer() {
        for text in [
            r#"{"name": "delete_everything", "arguments": {}}"#,
            r#"{"name": "get_weather", "arguments": {}, "extra": 1}"#,
            r#"{"name": "get_weather", "arguments": [1]}"#,
            r#"{"city": "北京"}"#,
            "The weather in 北京 is fine.",
            "<tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call> and then some text",
            "",
        ] {
            assert_eq!(parse(text, &tools()), None, "{text}");
        }
    }

    #[test]
    fn a_whole_answer_becomes_tool_calls() {
        let mut a = json!({"choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "```json\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n```"}}]});
        assert!(fix_answer(&mut a, &tools()));
        let m = &a["choices"][0]["message"];
        assert!(m["content"].is_null());
        assert_eq!(m["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert!(m["tool_calls"][0]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(a["choices"][0]["finish_reason"], "tool_calls");
        let mut plain = json!({"choices": [{"message": {"role": "assistant", "content": "Sunny."}}]});
        assert!(!fix_answer(&mut plain, &tools()));
    }

    fn chunk(content: &str) -> Value {
        json!({"id": "c1", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    }

    #[test]
    fn a_streamed_call_is_held_then_sent_as_tool_call_deltas() {
        let mut fix = StreamFix::new(tools());
        let pieces = ["```js", "on\n{\"name\": \"get_", "weather\", \"arguments\": {\"city\": \"Paris\"}}", "\n```"];
        for p in pieces {
            assert!(fix.frame(chunk(p)).is_empty(), "held: {p}");
        }
        let usage = json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}});
        assert!(fix.frame(usage).is_empty());
        let out = fix.finish();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(out[0]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert_eq!(out[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(out[2]["usage"]["completion_tokens"], 9);
    }

    #[test]
    fn a_streamed_answer_in_words_passes_once_it_cannot_be_a_call() {
        let mut fix = StreamFix::new(tools());
        assert!(fix.frame(chunk("  ")).is_empty());
        let out = fix.frame(chunk("Sunny"));
        assert_eq!(out.len(), 2, "the held frame and this one go out together, in order");
        assert_eq!(fix.frame(chunk(" today")).len(), 1, "then frames pass as they come");
        assert!(fix.finish().is_empty());
        // JSON that is not a call to an offered tool is sent as it was, at the end.
        let mut fix = StreamFix::new(tools());
        assert!(fix.frame(chunk("{\"city\": 1}")).is_empty());
        assert_eq!(fix.finish().len(), 1);
    }
}
