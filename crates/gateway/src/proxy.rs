//! The OpenAI-compatible handlers and the key management handlers.
//!
//! A chat request tries the model's deployments in the router's order. Connect errors, timeouts,
//! 429 and 5xx move on to the next deployment (with a short backoff); other 4xx answers are the
//! client's problem and are passed back as they are. A stream that has started is never retried:
//! if the upstream breaks mid-stream, the client gets an SSE error event and the end of the
//! stream, and the usage seen so far is still metered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use store::UsageRow;

use crate::Gateway;
use crate::config::DeploymentConfig;
use crate::keys::{Caller, KeyRecord, hash, new_secret};
use crate::meter::RequestUsage;

type Gw = State<Arc<Gateway>>;

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
pub fn openai_error(status: StatusCode, kind: &str, code: &str, message: impl Into<String>, param: Option<&str>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn authenticate(gw: &Gateway, headers: &HeaderMap) -> Option<Caller> {
    let secret = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    secret.and_then(|s| gw.keys.check(s))
}

fn unauthorized() -> Response {
    openai_error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect or missing API key: send `Authorization: Bearer <key>` with a key from /api/v1/keys",
        None,
    )
}

pub async fn models(State(gw): Gw, headers: HeaderMap) -> Response {
    let Some(caller) = authenticate(&gw, &headers) else { return unauthorized() };
    Metered { caller, endpoint: "models", model: String::new(), stream: false, started: Instant::now(), input_estimate: 0 }.send(
        &gw,
        None,
        Some((0, 0)),
        0,
        200,
    );
    let data: Vec<Value> = gw.model_order.iter().map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "aiplus"})).collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// What a client gets when the guardrail stops `what` ("the request", "the answer").
fn blocked_error(what: &str) -> Response {
    openai_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "content_blocked",
        format!("{what} was blocked by the guardrail: it contains an entry of the keyword list"),
        None,
    )
}

/// A rough token count (4 characters a token) for when the upstream reports none.
fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

fn prompt_chars(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map_or(0, |ms| ms.iter().map(|m| m["content"].as_str().map_or_else(|| m["content"].to_string().len(), str::len)).sum())
}

#[derive(Clone)]
struct Metered {
    caller: Caller,
    endpoint: &'static str,
    model: String,
    stream: bool,
    started: Instant,
    input_estimate: u64,
}

impl Metered {
    fn send(&self, gw: &Gateway, d: Option<&DeploymentConfig>, usage: Option<(u64, u64)>, output_chars: usize, status: u16) {
        self.send_full(gw, d, usage, output_chars, status, false);
    }

    /// A request or answer stopped by the guardrail: status 400, `blocked: true`.
    fn send_blocked(&self, gw: &Gateway, d: Option<&DeploymentConfig>, usage: Option<(u64, u64)>, output_chars: usize) {
        self.send_full(gw, d, usage, output_chars, 400, true);
    }

    fn send_full(
        &self,
        gw: &Gateway,
        d: Option<&DeploymentConfig>,
        usage: Option<(u64, u64)>,
        output_chars: usize,
        status: u16,
        blocked: bool,
    ) {
        let (input_tokens, output_tokens, tokens_reported) = match usage {
            Some((i, o)) => (i, o, true),
            None => (self.input_estimate, estimate_tokens(output_chars), false),
        };
        let cost_cny = d.map_or(0.0, |d| (input_tokens as f64 * d.input_cny_per_1k + output_tokens as f64 * d.output_cny_per_1k) / 1000.0);
        let at_ms = now_ms();
        gw.meter.send(UsageRow {
            id: format!("gateway:{}", uuid::Uuid::now_v7().simple()),
            at_ms,
            tenant: self.caller.tenant.clone(),
            pillar: "gateway".into(),
            doc: RequestUsage {
                key_id: self.caller.key_id.clone(),
                endpoint: self.endpoint.into(),
                model: self.model.clone(),
                deployment: d.map(|d| d.id.clone()),
                cluster: d.and_then(|d| d.cluster.clone()),
                input_tokens,
                output_tokens,
                tokens_reported,
                latency_ms: self.started.elapsed().as_millis() as u64,
                status,
                cost_cny,
                stream: self.stream,
                blocked,
            },
        });
    }
}

fn usage_of(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usage")?;
    Some((u.get("prompt_tokens")?.as_u64()?, u.get("completion_tokens")?.as_u64()?))
}

/// The two text endpoints differ only in their input field and where the text comes back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Chat => "chat/completions",
            Kind::Completion => "completions",
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Kind::Chat => "chat.completions",
            Kind::Completion => "completions",
        }
    }

    fn input_ok(self, req: &Value) -> Result<(), (&'static str, &'static str)> {
        match self {
            Kind::Chat if !req["messages"].is_array() => Err(("messages", "messages must be an array")),
            Kind::Completion if !(req["prompt"].is_string() || req["prompt"].is_array()) => {
                Err(("prompt", "prompt must be a string or an array"))
            }
            _ => Ok(()),
        }
    }

    fn input_chars(self, req: &Value) -> usize {
        match self {
            Kind::Chat => prompt_chars(req),
            Kind::Completion => req["prompt"].as_str().map_or_else(|| req["prompt"].to_string().len(), str::len),
        }
    }

    /// Everything the client wrote, for the input guardrail.
    fn input_text(self, req: &Value) -> String {
        match self {
            Kind::Chat => req["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["content"].as_str().map_or_else(|| m["content"].to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join("\n"),
            Kind::Completion => req["prompt"].as_str().map_or_else(|| req["prompt"].to_string(), str::to_string),
        }
    }

    /// The generated text in a whole answer (`delta = false`) or a stream frame.
    fn text(self, v: &Value, delta: bool) -> &str {
        let c = &v["choices"][0];
        let t = match (self, delta) {
            (Kind::Chat, false) => &c["message"]["content"],
            (Kind::Chat, true) => &c["delta"]["content"],
            (Kind::Completion, _) => &c["text"],
        };
        t.as_str().unwrap_or("")
    }
}

enum Attempt {
    /// A final answer for the client.
    Done(Response),
    /// Try the next deployment; the reason is kept for the final error.
    Retry(String),
}

pub async fn chat_completions(state: Gw, headers: HeaderMap, body: Bytes) -> Response {
    complete(state, headers, body, Kind::Chat).await
}

pub async fn completions(state: Gw, headers: HeaderMap, body: Bytes) -> Response {
    complete(state, headers, body, Kind::Completion).await
}

async fn complete(State(gw): Gw, headers: HeaderMap, body: Bytes, kind: Kind) -> Response {
    let Some(caller) = authenticate(&gw, &headers) else { return unauthorized() };
    let started = Instant::now();
    let parsed: Result<Value, String> = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(e) => Err(format!("the body is not valid JSON: {e}")),
    };
    let req = parsed.as_ref().ok();
    let model = req.and_then(|r| r["model"].as_str()).unwrap_or("").to_string();
    let stream = req.and_then(|r| r["stream"].as_bool()).unwrap_or(false);
    let input_estimate = req.map_or(0, |r| estimate_tokens(kind.input_chars(r)));
    let metered = Metered { caller, endpoint: kind.endpoint(), model: model.clone(), stream, started, input_estimate };
    // Requests refused here are metered too, with their status and no tokens.
    let refuse = |status: StatusCode, code: &str, message: String, param: Option<&str>| {
        metered.send(&gw, None, Some((0, 0)), 0, status.as_u16());
        openai_error(status, "invalid_request_error", code, message, param)
    };
    let req = match parsed {
        Ok(r) => r,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, "invalid_json", why, None),
    };
    if model.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "missing_required_parameter", "you must provide a model".into(), Some("model"));
    }
    if let Err((param, why)) = kind.input_ok(&req) {
        return refuse(StatusCode::BAD_REQUEST, "missing_required_parameter", why.into(), Some(param));
    }
    let Some(route) = gw.routes.get(&model) else {
        return refuse(StatusCode::NOT_FOUND, "model_not_found", format!("The model `{model}` does not exist"), Some("model"));
    };
    if let Some(g) = &gw.guard
        && g.find(&kind.input_text(&req)).is_some()
    {
        metered.send_blocked(&gw, None, Some((0, 0)), 0);
        return blocked_error("the request");
    }
    let mut reasons = Vec::new();
    let plan = route.plan(Instant::now());
    for (n, d) in plan.iter().take(gw.max_attempts as usize).enumerate() {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(25 << n.min(4))).await;
        }
        match try_deployment(&gw, route, d, &req, &metered, kind).await {
            Attempt::Done(resp) => return resp,
            Attempt::Retry(why) => reasons.push(format!("{}: {why}", d.id)),
        }
    }
    metered.send(&gw, None, None, 0, 502);
    openai_error(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "upstream_unavailable",
        format!("every deployment of `{model}` failed: {}", reasons.join("; ")),
        None,
    )
}

async fn try_deployment(
    gw: &Arc<Gateway>,
    route: &crate::router::ModelRoute,
    d: &DeploymentConfig,
    req: &Value,
    metered: &Metered,
    kind: Kind,
) -> Attempt {
    let mut body = req.clone();
    if let Some(m) = &d.upstream_model {
        body["model"] = json!(m);
    }
    let url = format!("{}/{}", d.base_url.trim_end_matches('/'), kind.path());
    let mut call = gw.http.post(url).json(&body).timeout(Duration::from_secs(d.timeout_s));
    if let Some(k) = gw.upstream_keys.get(&d.id) {
        call = call.bearer_auth(k);
    }
    let resp = match call.send().await {
        Ok(r) => r,
        Err(e) => {
            route.record(&d.id, false, Instant::now());
            return Attempt::Retry(if e.is_timeout() { "timed out".into() } else { format!("unreachable ({e})") });
        }
    };
    let status = resp.status();
    if status.as_u16() == 429 || status.is_server_error() {
        route.record(&d.id, false, Instant::now());
        return Attempt::Retry(format!("answered {status}"));
    }
    route.record(&d.id, true, Instant::now());
    if !status.is_success() || !metered.stream {
        // A whole answer: read it, meter it, pass it on.
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Retry(format!("body failed ({e})")),
        };
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        let answer = parsed.as_ref().map_or("", |v| kind.text(v, false));
        let output_chars = answer.len();
        if let Some(g) = gw.guard.as_ref().filter(|g| g.check_output)
            && g.find(answer).is_some()
        {
            metered.send_blocked(gw, Some(d), parsed.as_ref().and_then(usage_of), output_chars);
            return Attempt::Done(blocked_error("the answer"));
        }
        metered.send(gw, Some(d), parsed.as_ref().and_then(usage_of), output_chars, status.as_u16());
        let mut r = Response::new(Body::from(bytes));
        *r.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Attempt::Done(r);
    }
    Attempt::Done(stream_through(gw.clone(), d.clone(), resp, metered, kind))
}

/// Passes an upstream SSE stream to the client chunk by chunk, watching it for usage.
fn stream_through(gw: Arc<Gateway>, d: DeploymentConfig, resp: reqwest::Response, metered: &Metered, kind: Kind) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let meta = Metered { stream: true, ..metered.clone() };
    tokio::spawn(async move {
        let mut upstream = resp.bytes_stream();
        let mut line = Vec::<u8>::new();
        let mut usage = None;
        let mut output_chars = 0usize;
        let mut status = 200u16;
        let mut seen = String::new();
        let mut blocked = false;
        while let Some(chunk) = upstream.next().await {
            match chunk {
                Ok(bytes) => {
                    for &b in bytes.iter() {
                        if b == b'\n' {
                            if let Some(data) = line.strip_prefix(b"data: ")
                                && let Ok(v) = serde_json::from_slice::<Value>(data)
                            {
                                usage = usage_of(&v).or(usage);
                                let piece = kind.text(&v, true);
                                output_chars += piece.len();
                                if let Some(g) = gw.guard.as_ref().filter(|g| g.check_output) {
                                    // Look back far enough for a keyword split across frames.
                                    let keep = g.longest + piece.len();
                                    seen.push_str(piece);
                                    let mut from = seen.len().saturating_sub(keep);
                                    while !seen.is_char_boundary(from) {
                                        from -= 1;
                                    }
                                    if g.find(&seen[from..]).is_some() {
                                        blocked = true;
                                    }
                                    if seen.len() > (1 << 16) {
                                        seen.drain(..from);
                                    }
                                }
                            }
                            line.clear();
                        } else if line.len() < (1 << 20) {
                            line.push(b);
                        }
                    }
                    if blocked {
                        // This chunk is not forwarded: the client gets an error event instead.
                        let err = json!({"error": {"message": "the answer was blocked by the guardrail", "type": "invalid_request_error", "param": null, "code": "content_blocked"}});
                        let _ = tx.send(Ok(Bytes::from(format!("data: {err}\n\n")))).await;
                        status = 400;
                        break;
                    }
                    if tx.send(Ok(bytes)).await.is_err() {
                        // The client went away.
                        status = 499;
                        break;
                    }
                }
                Err(e) => {
                    status = 502;
                    let err = json!({"error": {"message": format!("the upstream stream broke: {e}"), "type": "upstream_error", "param": null, "code": "stream_interrupted"}});
                    let _ = tx.send(Ok(Bytes::from(format!("data: {err}\n\n")))).await;
                    break;
                }
            }
        }
        if blocked {
            meta.send_blocked(&gw, Some(&d), usage, output_chars);
        } else {
            meta.send(&gw, Some(&d), usage, output_chars, status);
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

// ---- key management (operator API) ----

pub async fn create_key(State(gw): Gw, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewKey {
        tenant: String,
    }
    let nk: NewKey = match serde_json::from_slice(&body) {
        Ok(k) => k,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "tenant", &e.to_string()),
    };
    let ok = !nk.tenant.is_empty()
        && nk.tenant.len() <= 64
        && nk.tenant.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "tenant", "use 1-64 of a-z, 0-9, '-', '_'");
    }
    let secret = new_secret();
    let rec = KeyRecord {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        tenant: nk.tenant,
        prefix: secret[..10].to_string(),
        created_ms: now_ms(),
        revoked_ms: None,
    };
    if let Err(e) = gw.store.insert_key(&rec.id, &hash(&secret), &rec.tenant, &rec).await {
        tracing::error!(error = %e, "storing a key");
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "store", "the key could not be stored; nothing was changed");
    }
    if gw.reload_keys().await.is_err() {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "store", "the key was stored but could not be loaded; retry");
    }
    // The only time the secret leaves the server.
    (StatusCode::CREATED, axum::Json(json!({"id": rec.id, "tenant": rec.tenant, "prefix": rec.prefix, "secret": secret}))).into_response()
}

pub async fn list_keys(State(gw): Gw) -> Response {
    match gw.store.keys::<KeyRecord>(None).await {
        Ok(keys) => axum::Json(keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>()).into_response(),
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "store", "could not read keys"),
    }
}

pub async fn revoke_key(State(gw): Gw, Path(id): Path<String>) -> Response {
    let keys: Vec<(String, KeyRecord)> = match gw.store.keys(None).await {
        Ok(k) => k,
        Err(_) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "store", "could not read keys"),
    };
    let Some((_, mut rec)) = keys.into_iter().find(|(_, k)| k.id == id) else {
        return problem(StatusCode::NOT_FOUND, "id", &format!("no key {id:?}"));
    };
    if rec.revoked_ms.is_none() {
        rec.revoked_ms = Some(now_ms());
        if gw.store.update_key(&rec.id, &rec).await.is_err() || gw.reload_keys().await.is_err() {
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "store", "could not revoke; retry");
        }
    }
    axum::Json(rec).into_response()
}

fn problem(status: StatusCode, field: &str, reason: &str) -> Response {
    let body = json!({"type": "/problems/invalid-field", "title": status.canonical_reason().unwrap_or("error"), "status": status.as_u16(),
                      "detail": format!("{field}: {reason}"), "field": field, "reason": reason});
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}
