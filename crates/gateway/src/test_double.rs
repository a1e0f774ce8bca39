//! A test double of an upstream OpenAI-compatible model server (what vLLM, llama.cpp or a
//! commercial API would be), for tests and benchmarks. It is not a model: answers are fixed.
//!
//! Behaviour by URL prefix, `<base>/<mode>/v1/chat/completions`:
//! - `ok`: answers "hello from ok" with usage 11 prompt / 3 completion tokens; streams
//!   "hel" + "lo" (and a usage chunk with `choices: []` when asked), 30 ms apart;
//! - `/v1/completions` (not streamed) answers "hello from <mode>" with usage 5 / 3;
//! - `fail`: 500; `slow`: answers after 2 s; `broken`: a stream that dies after two frames.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Test double of an upstream model server. Behaviour by path: `ok`, `fail` (500), `slow`
/// (answers after 2 s), `broken` (a stream that dies after two chunks).
/// Starts the double on a free loopback port; returns its base URL (add `/<mode>/v1`).
pub async fn start() -> std::io::Result<String> {
    async fn chat(Path(mode): Path<String>, axum::Json(req): axum::Json<Value>) -> Response {
        let stream = req["stream"].as_bool().unwrap_or(false);
        let include_usage = req["stream_options"]["include_usage"].as_bool().unwrap_or(false);
        match mode.as_str() {
            "fail" => return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
            "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
            _ => {}
        }
        if !stream {
            return axum::Json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": req["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("hello from {mode}")}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
            }))
            .into_response();
        }
        let mut frames: Vec<Result<String, std::io::Error>> = ["hel", "lo"]
            .iter()
            .map(|t| Ok(format!("data: {}\n\n", json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": req["model"], "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]}))))
            .collect();
        if mode == "broken" {
            frames.push(Err(std::io::Error::other("connection reset")));
        } else {
            if include_usage {
                frames.push(Ok(format!("data: {}\n\n", json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": req["model"], "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}))));
            }
            frames.push(Ok("data: [DONE]\n\n".into()));
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
    async fn completion(Path(mode): Path<String>, axum::Json(req): axum::Json<Value>) -> Response {
        if mode == "fail" {
            return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
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
        .route("/{mode}/v1/completions", axum::routing::post(completion));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}
