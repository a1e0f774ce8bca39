//! A test double of an upstream OpenAI-compatible model server (what vLLM, llama.cpp or a
//! commercial API would be), for tests and benchmarks. It is not a model: answers are fixed.
//!
//! Behaviour by URL prefix, `<base>/<mode>/v1/chat/completions`:
//! - `ok`: answers "hello from ok" with usage 11 prompt / 3 completion tokens; streams
//!   "hel" + "lo" (and a usage chunk with `choices: []` when asked), 30 ms apart;
//! - `texttools` answers chat with a tool call written as text (`TEXT_TOOL_CALL`), whole or
//!   streamed in pieces, as small models do;
//! - `/v1/completions` (not streamed) answers "hello from <mode>" with usage 5 / 3;
//! - `/v1/embeddings` answers one fixed 3-dimensional vector per input;
//! - `fail`: 500; `slow`: answers after 2 s; `broken`: a stream that dies after two frames;
//! - `rate`: 429 with `retry-after: 1`; `tools`: asks for a call of the function `lookup`;
//! - `script`: an agent's model, scripted by the last user message ([`scripted`]): lines
//!   `step<k> <tool> <json arguments>` are the calls of its k-th step (`call` is `step1`),
//!   and a step with none answers `done: ` and the tools' last outputs. Usage: 10 prompt
//!   tokens per message, 4 completion tokens;
//! - `auth`: like `ok`, but only with `Authorization: Bearer sk-upstream` (else 401);
//! - `fast`: like `ok` with no pacing at all (the benchmark's zero-delay upstream);
//! - `drip`: streams 100 frames of one character, 30 ms apart (a long answer in flight);
//! - hostile ones: `refuse` (400 with an oversized, control-laden message and an internal
//!   field), `redirect` (307 to `ok`), `huge` (a 17 MiB answer), `greedy` (usage of
//!   `u64::MAX` tokens each way);
//! - `delay-<ms>`: like `ok` after `<ms>`, plus a jitter of 0..`<ms>`/10 ms that repeats
//!   every 10 requests; `flaky-<pct>`: 500 for `<pct>` of requests, spread evenly and the
//!   same on every run (request k fails when ⌊(k+1)·pct/100⌋ > ⌊k·pct/100⌋).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Requests seen per mode (`delay-40`, `flaky-50`...), for their repeatable patterns: each
/// mode counts its own, so concurrent tests of other modes cannot shift a pattern.
fn seen(mode: &str) -> u64 {
    static SEEN: std::sync::Mutex<Option<std::collections::HashMap<String, u64>>> = std::sync::Mutex::new(None);
    let Ok(mut g) = SEEN.lock() else { return 0 };
    let n = g.get_or_insert_with(Default::default).entry(mode.to_string()).or_insert(0);
    *n += 1;
    *n - 1
}

/// What a mode does before answering: wait, or refuse instead (`Some`).
async fn misbehave(mode: &str) -> Option<Response> {
    let (name, arg) = mode.split_once('-').map_or((mode, 0), |(n, a)| (n, a.parse::<u64>().unwrap_or(0)));
    match name {
        "fail" => Some((StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response()),
        "rate" => Some((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response()),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            None
        }
        "delay" => {
            let k = seen(mode);
            let jitter_us = (k % 10) * arg * 100 / 10;
            tokio::time::sleep(Duration::from_millis(arg) + Duration::from_micros(jitter_us)).await;
            None
        }
        "refuse" => {
            let message = format!("<b>bad</b>\u{7}\u{1b}[31m{}", "x".repeat(5000));
            let body = json!({"error": {"message": message, "type": "invalid_request_error", "code": "context_length_exceeded",
                                        "internal": "Traceback: /srv/model/secret.py line 7"}});
            Some((StatusCode::BAD_REQUEST, axum::Json(body)).into_response())
        }
        "redirect" => Some((StatusCode::TEMPORARY_REDIRECT, [("location", "/ok/v1/chat/completions")], "").into_response()),
        "huge" => Some(format!("{{\"pad\": \"{}\"}}", "x".repeat(17 << 20)).into_response()),
        "flaky" => {
            let k = seen(mode);
            let fails = (k + 1) * arg.min(100) / 100 > k * arg.min(100) / 100;
            fails.then(|| (StatusCode::INTERNAL_SERVER_ERROR, "flaky upstream").into_response())
        }
        _ => None,
    }
}

/// What `texttools` answers: a tool call written as text in a fenced block, as small models do.
pub const TEXT_TOOL_CALL: &str = "```json\n{\"name\": \"lookup\", \"arguments\": {\"q\": \"hub\"}}\n```";

/// The `script` mode's answer to a chat request, and its prompt tokens: the calls the last
/// user message scripts for this step (offered tools only), or `done: ` with the outputs of
/// the tools called since.
pub fn scripted(req: &Value) -> (Value, u64) {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let prompt_tokens = 10 * messages.len() as u64;
    let user_at = messages.iter().rposition(|m| m["role"] == "user").unwrap_or(0);
    let script = messages.get(user_at).and_then(|m| m["content"].as_str()).unwrap_or("").to_string();
    let since = &messages[user_at.saturating_add(1).min(messages.len())..];
    let step = 1 + since.iter().filter(|m| m["role"] == "assistant" && m["tool_calls"].is_array()).count();
    let offered: Vec<&str> = req["tools"].as_array().into_iter().flatten().filter_map(|t| t["function"]["name"].as_str()).collect();
    let mut calls = Vec::new();
    for line in script.lines() {
        let line = line.trim();
        let line = line.strip_prefix("call ").map(|l| format!("step1 {l}")).unwrap_or_else(|| line.to_string());
        let mut parts = line.splitn(3, ' ');
        let (Some(tag), Some(name), args) = (parts.next(), parts.next(), parts.next()) else { continue };
        if tag == format!("step{step}") && offered.contains(&name) {
            let id = format!("call_{}_{}", messages.len(), calls.len());
            calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.unwrap_or("{}")}}));
        }
    }
    if !calls.is_empty() {
        return (json!({"role": "assistant", "content": null, "tool_calls": calls}), prompt_tokens);
    }
    let outputs: Vec<&str> = since.iter().filter(|m| m["role"] == "tool").filter_map(|m| m["content"].as_str()).collect();
    let text = if outputs.is_empty() { "hello from script".to_string() } else { format!("done: {}", outputs.join("; ")) };
    (json!({"role": "assistant", "content": text}), prompt_tokens)
}

/// The `script` mode's answer streamed as a real server would: its text a word at a time (so a
/// client sees several deltas), its tool calls in one chunk, then the usage and `[DONE]`.
fn scripted_stream(req: &Value, message: &Value, prompt_tokens: u64) -> Response {
    let chunk = |delta: Value, usage: Option<Value>| {
        let choices = if usage.is_some() { json!([]) } else { json!([{"index": 0, "delta": delta, "finish_reason": null}]) };
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": req["model"],
            "choices": choices, "usage": usage})
        )
    };
    let mut frames = String::new();
    if let Some(text) = message["content"].as_str() {
        for piece in text.split_inclusive(' ') {
            frames.push_str(&chunk(json!({"role": "assistant", "content": piece}), None));
        }
    }
    if let Some(calls) = message["tool_calls"].as_array() {
        let indexed: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                c["index"] = json!(i);
                c
            })
            .collect();
        frames.push_str(&chunk(json!({"role": "assistant", "tool_calls": indexed}), None));
    }
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": 4, "total_tokens": prompt_tokens + 4});
    frames.push_str(&chunk(Value::Null, Some(usage)));
    frames.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], Body::from(frames)).into_response()
}

/// Test double of an upstream model server. Behaviour by path: `ok`, `fail` (500), `slow`
/// (answers after 2 s), `broken` (a stream that dies after two chunks).
/// Starts the double on a free loopback port; returns its base URL (add `/<mode>/v1`).
pub async fn start() -> std::io::Result<String> {
    serve_on("127.0.0.1:0").await
}

/// Starts the double on `addr` (port 0 picks one); returns its base URL.
pub async fn serve_on(addr: &str) -> std::io::Result<String> {
    async fn chat(Path(mode): Path<String>, headers: axum::http::HeaderMap, axum::Json(req): axum::Json<Value>) -> Response {
        if mode == "auth" && headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer sk-upstream") {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": {"message": "bad upstream key", "type": "invalid_request_error", "code": "invalid_api_key"}})),
            )
                .into_response();
        }
        let stream = req["stream"].as_bool().unwrap_or(false);
        let include_usage = req["stream_options"]["include_usage"].as_bool().unwrap_or(false);
        if let Some(refused) = misbehave(&mode).await {
            return refused;
        }
        if mode == "script" {
            let (message, prompt_tokens) = scripted(&req);
            if stream {
                return scripted_stream(&req, &message, prompt_tokens);
            }
            return axum::Json(json!({
                "id": "chatcmpl-s", "object": "chat.completion", "created": 1, "model": req["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 4, "total_tokens": prompt_tokens + 4}
            }))
            .into_response();
        }
        if !stream {
            let message = if mode == "tools" {
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"hub\"}"}}]})
            } else if mode == "texttools" {
                json!({"role": "assistant", "content": TEXT_TOOL_CALL})
            } else {
                json!({"role": "assistant", "content": format!("hello from {mode}")})
            };
            let usage = if mode == "greedy" {
                json!({"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX, "total_tokens": u64::MAX})
            } else {
                json!({"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14})
            };
            return axum::Json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": req["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage
            }))
            .into_response();
        }
        let chunk = |delta: Value| {
            Ok(format!(
                "data: {}\n\n",
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": req["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
            ))
        };
        let mut frames: Vec<Result<String, std::io::Error>> = if mode == "tools" {
            vec![
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":"}}]}),
                ),
                chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"hub\"}"}}]})),
            ]
        } else if mode == "texttools" {
            // The call written as text, cut at awkward places.
            let (a, rest) = TEXT_TOOL_CALL.split_at(5);
            let (b, c) = rest.split_at(20);
            [a, b, c].iter().map(|t| chunk(json!({"content": t}))).collect()
        } else if mode == "drip" {
            (0..100).map(|_| chunk(json!({"content": "字"}))).collect()
        } else {
            ["hel", "lo"].iter().map(|t| chunk(json!({"content": t}))).collect()
        };
        if mode == "broken" {
            frames.push(Err(std::io::Error::other("connection reset")));
        } else {
            if include_usage {
                frames.push(Ok(format!("data: {}\n\n", json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": req["model"], "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}))));
            }
            frames.push(Ok("data: [DONE]\n\n".into()));
        }
        if mode == "fast" {
            return ([("content-type", "text/event-stream")], Body::from(frames.into_iter().flatten().collect::<String>())).into_response();
        }
        // Frames are paced like a real server's tokens, so the headers and the first frames
        // reach the gateway before a `broken` stream dies.
        let paced = futures_util::StreamExt::then(futures_util::stream::iter(frames), |f| async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            f
        });
        let body = Body::from_stream(paced);
        ([("content-type", "text/event-stream")], body).into_response()
    }
    async fn embeddings(Path(mode): Path<String>, axum::Json(req): axum::Json<Value>) -> Response {
        if let Some(refused) = misbehave(&mode).await {
            return refused;
        }
        let n = req["input"].as_array().map_or(1, Vec::len);
        let data: Vec<Value> = (0..n).map(|i| json!({"object": "embedding", "index": i, "embedding": [0.6, 0.8, 0.0]})).collect();
        axum::Json(json!({"object": "list", "data": data, "model": req["model"], "usage": {"prompt_tokens": 2 * n, "total_tokens": 2 * n}}))
            .into_response()
    }
    async fn completion(Path(mode): Path<String>, axum::Json(req): axum::Json<Value>) -> Response {
        if let Some(refused) = misbehave(&mode).await {
            return refused;
        }
        axum::Json(json!({
            "id": "cmpl-1", "object": "text_completion", "created": 1, "model": req["model"],
            "choices": [{"index": 0, "text": format!("hello from {mode}"), "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        }))
        .into_response()
    }
    let app = Router::new()
        .route("/{mode}/v1/chat/completions", axum::routing::post(chat))
        .route("/{mode}/v1/completions", axum::routing::post(completion))
        .route("/{mode}/v1/embeddings", axum::routing::post(embeddings));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}
