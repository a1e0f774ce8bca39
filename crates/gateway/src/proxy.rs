//! The OpenAI-compatible handlers and the key management handlers.
//!
//! A chat request tries the model's deployments in the router's order. Connect errors, timeouts,
//! 429 and 5xx move on to the next deployment (with a short backoff); other 4xx answers are the
//! client's problem and are passed back as they are. A stream that has started is never retried:
//! if the upstream breaks mid-stream, the client gets an SSE error event and the end of the
//! stream, and the usage seen so far is still metered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::admission::{Attempt, Fallback, Metered, RequestError, Target, admit};
use crate::config::DeploymentConfig;
use crate::limits::DEFAULT_ANSWER_TOKENS;
use crate::{Caller, Gateway};

type Gw = State<Arc<Gateway>>;

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
pub fn openai_error(status: StatusCode, kind: &str, code: &str, message: impl Into<String>, param: Option<&str>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The caller the gate resolved. Without the gate in front (a router assembled wrongly) there
/// is none, and the request is refused: deny by default.
pub(crate) type Who = Option<Extension<Caller>>;

pub(crate) fn unauthorized() -> Response {
    openai_error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect or missing API key: send `Authorization: Bearer <key>` with a key from /api/v1/keys",
        None,
    )
}

pub async fn models(State(gw): Gw, who: Who, headers: HeaderMap) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let tenant = caller.tenant.clone().unwrap_or_default();
    match Metered::new(&gw, caller, &headers, "models", String::new(), false, 0) {
        Ok(m) => m.send(&gw, None, Some((0, 0)), 0, 200),
        Err(refused) => return refused.into_response(),
    }
    // A model governance withholds from this tenant (suspended, or restricted to others) is
    // not offered to it.
    let offered = |m: &str| gw.policy.as_ref().is_none_or(|p| p.decide(m, &tenant) == vocab::ModelDecision::Allow);
    let catalog = gw.catalog();
    let mut data: Vec<Value> = catalog
        .order
        .iter()
        .filter(|m| offered(m))
        .map(|m| {
            let ctx = catalog.routes.get(m).and_then(|r| r.model.deployments.iter().filter_map(|d| d.context_length).min());
            json!({"id": m, "object": "model", "created": 0, "owned_by": "aiplus", "context_length": ctx})
        })
        .collect();
    // A versioned name is offered when one of its versions is.
    let mut families: Vec<&String> = catalog.versions.iter().filter(|(_, v)| v.iter().any(|m| offered(m))).map(|(f, _)| f).collect();
    families.sort();
    data.extend(families.into_iter().map(|f| json!({"id": f, "object": "model", "created": 0, "owned_by": "aiplus"})));
    if let Some(e) = gw.embedded.as_ref().filter(|e| offered(&e.name)) {
        data.push(json!({"id": e.name, "object": "model", "created": 0, "owned_by": "aiplus-embedded", "ready": e.is_ready()}));
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// What a client gets when the guardrail stops `what` ("the request", "the answer").
pub(crate) fn blocked_error(what: &'static str) -> Response {
    RequestError::Blocked(what).into_response()
}

/// A rough token count (4 characters a token) for when the upstream reports none.
pub(crate) fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

fn prompt_chars(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map_or(0, |ms| ms.iter().map(|m| m["content"].as_str().map_or_else(|| m["content"].to_string().len(), str::len)).sum())
}

/// Most tokens one answer is believed to have used, in each direction. An upstream is not
/// trusted: a larger count is cut to this, so sums over the ledger cannot overflow.
pub(crate) const MAX_REPORTED_TOKENS: u64 = 1 << 40;

/// Most bytes of a whole (not streamed) upstream answer that are read.
pub(crate) const MAX_UPSTREAM_BODY_BYTES: usize = 16 << 20;

/// The usage an upstream reports in an answer or a stream's last chunk, cut to
/// [`MAX_REPORTED_TOKENS`].
pub(crate) fn usage_of(v: &Value) -> Option<(u64, u64)> {
    let u = v.get("usage")?;
    let count = |k: &str| u.get(k).and_then(Value::as_u64).map(|n| n.min(MAX_REPORTED_TOKENS));
    Some((count("prompt_tokens")?, count("completion_tokens")?))
}

/// What the client is told when an upstream refuses (a 3xx or 4xx). The upstream's own body is
/// not passed on: only its message, cut to 300 printable characters, and its code when it is a
/// plain identifier. A redirect, which is never followed, and a refused upstream key (the
/// operator's problem, not the caller's) are 502.
pub(crate) fn upstream_refusal(status: u16, body: &[u8]) -> Response {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = if v["error"].is_object() { &v["error"] } else { &v };
    let message: String = err["message"].as_str().unwrap_or("").chars().filter(|c| !c.is_control()).take(300).collect();
    let code = err["code"].as_str().filter(|c| !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let (status, code) = match status {
        300..=399 => (StatusCode::BAD_GATEWAY, "upstream_redirect"),
        401 | 403 => (StatusCode::BAD_GATEWAY, "upstream_unauthorized"),
        s => (StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY), code.unwrap_or("upstream_refused")),
    };
    let message = if message.is_empty() {
        format!("the model's server refused the request ({status})")
    } else {
        format!("the model's server refused the request: {message}")
    };
    let kind = if status == StatusCode::BAD_GATEWAY { "upstream_error" } else { "invalid_request_error" };
    openai_error(status, kind, code, message, None)
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

    /// The generated text in a stream frame.
    fn delta_text(self, v: &Value) -> &str {
        let c = &v["choices"][0];
        let t = match self {
            Kind::Chat => &c["delta"]["content"],
            Kind::Completion => &c["text"],
        };
        t.as_str().unwrap_or("")
    }
}

/// The parts of a whole chat or completion answer the gateway reads.
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(default, borrow)]
    choices: Vec<AnswerChoice<'a>>,
    #[serde(default)]
    usage: Option<UsageCounts>,
}

#[derive(serde::Deserialize)]
struct AnswerChoice<'a> {
    #[serde(default, borrow)]
    message: Option<AnswerMessage<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
    /// Completions put the text here.
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct AnswerMessage<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
    /// OpenAI's field for a model that declined to answer.
    #[serde(default, borrow)]
    refusal: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct UsageCounts {
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Answer<'_> {
    fn text(&self) -> &str {
        let Some(c) = self.choices.first() else { return "" };
        c.message.as_ref().and_then(|m| m.content.as_deref()).or(c.text.as_deref()).unwrap_or("")
    }

    /// Whether the model declined: a `refusal`, or an answer cut by its content filter.
    fn refused(&self) -> bool {
        self.choices.first().is_some_and(|c| {
            c.message.as_ref().and_then(|m| m.refusal.as_deref()).is_some_and(|r| !r.is_empty())
                || c.finish_reason.as_deref() == Some("content_filter")
        })
    }
}

/// Whether a streamed frame says the model declined (a `refusal` delta, or `content_filter`).
pub(crate) fn refusal_in(v: &Value) -> bool {
    let c = &v["choices"][0];
    c["delta"]["refusal"].as_str().is_some_and(|r| !r.is_empty()) || c["finish_reason"] == "content_filter"
}

pub async fn chat_completions(state: Gw, who: Who, headers: HeaderMap, body: Bytes) -> Response {
    complete(state, who, headers, body, Kind::Chat).await
}

pub async fn completions(state: Gw, who: Who, headers: HeaderMap, body: Bytes) -> Response {
    complete(state, who, headers, body, Kind::Completion).await
}

/// What the gateway reads of a chat or completion request before it admits it: the JSON object
/// (or why it is not one), its model, whether it streams, and its input's token estimate. Any
/// bytes at all are read without panicking; the fuzz target `chat_request` holds it to that.
pub struct Inspected {
    pub parsed: Result<Value, String>,
    pub model: String,
    pub stream: bool,
    pub input_estimate: u64,
}

pub fn inspect(kind: Kind, body: &[u8]) -> Inspected {
    let parsed: Result<Value, String> = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(e) => Err(format!("the body is not valid JSON: {e}")),
    };
    let req = parsed.as_ref().ok();
    let model = req.and_then(|r| r["model"].as_str()).unwrap_or("").to_string();
    let stream = req.and_then(|r| r["stream"].as_bool()).unwrap_or(false);
    let input_estimate = req.map_or(0, |r| estimate_tokens(kind.input_chars(r)));
    Inspected { parsed, model, stream, input_estimate }
}

/// The input checks and what is counted of a request's input, as the pipeline runs them after
/// admission: the missing field, if any, the input text, and the answer's token allowance.
pub fn input_of(kind: Kind, req: &Value) -> (Result<(), (&'static str, &'static str)>, String, u64) {
    (kind.input_ok(req), kind.input_text(req), answer_tokens(req))
}

async fn complete(State(gw): Gw, who: Who, headers: HeaderMap, body: Bytes, kind: Kind) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let started = Instant::now();
    let Inspected { parsed, model, stream, input_estimate } = inspect(kind, &body);
    let mut metered = match Metered::new(&gw, caller, &headers, kind.endpoint(), model, stream, input_estimate) {
        Ok(m) => Metered { started, ..m },
        Err(refused) => return refused.into_response(),
    };
    if metered.end_user.is_none() {
        metered.end_user = parsed.as_ref().ok().and_then(crate::admission::end_user_of);
    }
    match text(&gw, &mut metered, parsed, &body, kind).await {
        Ok(r) => r,
        Err(e) => metered.refuse(&gw, e),
    }
}

/// One chat or completion request through the admission pipeline.
async fn text(
    gw: &Arc<Gateway>,
    metered: &mut Metered,
    parsed: Result<Value, String>,
    body: &Bytes,
    kind: Kind,
) -> Result<Response, RequestError> {
    let req = parsed.map_err(|why| RequestError::invalid("invalid_json", why, None))?;
    if metered.model.is_empty() {
        return Err(RequestError::invalid("missing_required_parameter", "you must provide a model", Some("model")));
    }
    kind.input_ok(&req).map_err(|(param, why)| RequestError::invalid("missing_required_parameter", why, Some(param)))?;
    let input = kind.input_text(&req);
    let estimate = metered.input_estimate;
    let target = admit(gw, metered, &[&input], false, |_| estimate + answer_tokens(&req)).await?;
    let Target::Upstream { route, .. } = &target else { return Err(RequestError::ModelNotFound(metered.model.clone())) };
    let deployments = target.deployments();
    let mut tries = Fallback::new(gw, deployments);
    while let Some(d) = tries.next().await {
        match try_deployment(gw, route, d, &req, body, metered, kind).await {
            Attempt::Done(answer) => return Ok(answer),
            Attempt::Retry(why) => tries.failed(d, why),
        }
    }
    Err(tries.exhausted(&metered.model))
}

/// Tokens an answer may take: what the request allows, or [`DEFAULT_ANSWER_TOKENS`].
pub(crate) fn answer_tokens(req: &Value) -> u64 {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| req[*k].as_u64())
        .unwrap_or(DEFAULT_ANSWER_TOKENS)
        .min(1 << 20)
}

/// Sends `req` to one deployment's `path`. Connect errors, timeouts, 429 and 5xx are failures
/// (counted against the deployment, `Err` with the reason); any other answer is the client's.
pub(crate) async fn call_upstream(
    gw: &Gateway,
    route: &crate::router::ModelRoute,
    d: &DeploymentConfig,
    req: &Value,
    raw: Option<&Bytes>,
    path: &str,
) -> Result<reqwest::Response, String> {
    let url = route.endpoint(d, path)?;
    let call = gw.http.post(url).timeout(Duration::from_secs(d.timeout_s));
    // The client's own bytes go on unchanged unless the model name must be rewritten: no
    // second serialisation on the hot path.
    // A request for a versioned name (`chat`) names the version that serves it (`chat@1`).
    let rename =
        d.upstream_model.as_deref().or_else(|| (req["model"].as_str() != Some(&route.model.name)).then_some(route.model.name.as_str()));
    let mut call = match (raw, rename) {
        (Some(raw), None) => call.header(header::CONTENT_TYPE, "application/json").body(raw.clone()),
        (_, rename) => {
            let mut body = req.clone();
            if let Some(m) = rename {
                body["model"] = json!(m);
            }
            call.json(&body)
        }
    };
    if let Some(k) = gw.catalog().keys.get(&d.id) {
        call = call.bearer_auth(k);
    }
    let sent = Instant::now();
    let resp = match call.send().await {
        Ok(r) => r,
        Err(e) => {
            upstream_failed(gw, route, d, if e.is_timeout() { "timeout" } else { "connect" });
            return Err(if e.is_timeout() { "timed out".into() } else { format!("unreachable ({e})") });
        }
    };
    let status = resp.status();
    if status.as_u16() == 429 || status.is_server_error() {
        upstream_failed(gw, route, d, &status.as_u16().to_string());
        return Err(format!("answered {status}"));
    }
    route.record(&d.id, true, Some(sent.elapsed()), Instant::now());
    Ok(resp)
}

/// The pause before retry `n` (1-based) of a request: 50, 100, 200, 400 ms.
pub(crate) fn backoff(n: usize) -> Duration {
    Duration::from_millis(25 << n.min(4))
}

/// Counts a failed attempt against a deployment.
fn upstream_failed(gw: &Gateway, route: &crate::router::ModelRoute, d: &DeploymentConfig, reason: &str) {
    route.record(&d.id, false, None, Instant::now());
    gw.metrics.add("aiplus_gateway_upstream_errors_total", &[("deployment", &d.id), ("reason", reason)], 1);
}

async fn try_deployment(
    gw: &Arc<Gateway>,
    route: &crate::router::ModelRoute,
    d: &DeploymentConfig,
    req: &Value,
    raw: &Bytes,
    metered: &Metered,
    kind: Kind,
) -> Attempt {
    let resp = match call_upstream(gw, route, d, req, Some(raw), kind.path()).await {
        Ok(r) => r,
        Err(why) => return Attempt::Retry(why),
    };
    let status = resp.status();
    if !status.is_success() || !metered.stream {
        // A whole answer: read it (up to a cap), meter it, pass it on.
        let bytes = match outbound::read_capped(resp, MAX_UPSTREAM_BODY_BYTES).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                upstream_failed(gw, route, d, "too_large");
                return Attempt::Retry(format!("answered with more than {} MiB", MAX_UPSTREAM_BODY_BYTES >> 20));
            }
            Err(e) => return Attempt::Retry(format!("body failed ({e})")),
        };
        if !status.is_success() {
            metered.send(gw, Some(d), None, 0, status.as_u16());
            return Attempt::Done(upstream_refusal(status.as_u16(), &bytes));
        }
        // Only the text and the usage are read, borrowed from the answer's bytes.
        let parsed: Option<Answer<'_>> = serde_json::from_slice(&bytes).ok();
        let answer = parsed.as_ref().map_or("", Answer::text);
        let usage = parsed
            .as_ref()
            .and_then(|a| a.usage.as_ref())
            .map(|u| (u.prompt_tokens.min(MAX_REPORTED_TOKENS), u.completion_tokens.min(MAX_REPORTED_TOKENS)));
        let output_chars = answer.len();
        if let Some(g) = gw.guard.as_ref().filter(|g| g.check_output)
            && g.find(answer).is_some()
        {
            metered.send_blocked(gw, Some(d), usage, output_chars);
            return Attempt::Done(blocked_error("the answer"));
        }
        metered.send_answer(gw, Some(d), usage, output_chars, status.as_u16(), parsed.as_ref().is_some_and(Answer::refused));
        let bytes = match kind {
            Kind::Chat => with_tool_calls(bytes, req),
            Kind::Completion => bytes,
        };
        let mut r = Response::new(Body::from(bytes));
        *r.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Attempt::Done(r);
    }
    let tools = if kind == Kind::Chat { crate::toolcalls::tool_names(req) } else { Vec::new() };
    Attempt::Done(stream_through(gw.clone(), d.clone(), resp, metered, kind, tools))
}

/// A whole chat answer with a tool call written as text turned into `tool_calls`, when the
/// request offered tools (`toolcalls`); otherwise the upstream's bytes as they came.
fn with_tool_calls(bytes: Bytes, req: &Value) -> Bytes {
    let tools = crate::toolcalls::tool_names(req);
    if tools.is_empty() {
        return bytes;
    }
    let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else { return bytes };
    if crate::toolcalls::fix_answer(&mut answer, &tools) { Bytes::from(answer.to_string()) } else { bytes }
}

/// SSE lines for frames the gateway re-emits.
fn frames_bytes(frames: &[Value]) -> Bytes {
    Bytes::from(frames.iter().map(|f| format!("data: {f}\n\n")).collect::<String>())
}

/// Passes an upstream SSE stream to the client chunk by chunk, watching it for usage. When the
/// request offered `tools`, frames are re-emitted through `toolcalls::StreamFix` instead, so a
/// call written as text reaches the client as `tool_calls`.
fn stream_through(
    gw: Arc<Gateway>,
    d: DeploymentConfig,
    resp: reqwest::Response,
    metered: &Metered,
    kind: Kind,
    tools: Vec<String>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let meta = Metered { stream: true, ..metered.clone() };
    tokio::spawn(async move {
        let mut upstream = resp.bytes_stream();
        let mut lines = crate::sse::DataLines::default();
        let mut usage = None;
        let mut output_chars = 0usize;
        let mut status = 200u16;
        let mut watch = crate::guardrail::StreamWatch::default();
        let mut blocked = false;
        let mut refused = false;
        let mut fix = (!tools.is_empty()).then(|| crate::toolcalls::StreamFix::new(tools));
        while let Some(chunk) = upstream.next().await {
            if let Some((code, message)) = crate::admission::withheld(&gw, &meta) {
                // Suspended or restricted while streaming: the stream ends with the reason.
                let err = json!({"error": {"message": message, "type": "permission_error", "param": "model", "code": code}});
                let _ = tx.send(Ok(Bytes::from(format!("data: {err}\n\n")))).await;
                status = 403;
                break;
            }
            match chunk {
                Ok(bytes) => {
                    let mut out = Vec::new();
                    for v in lines.feed(&bytes) {
                        usage = usage_of(&v).or(usage);
                        refused |= refusal_in(&v);
                        let piece = kind.delta_text(&v);
                        output_chars += piece.len();
                        if let Some(g) = gw.guard.as_ref().filter(|g| g.check_output)
                            && watch.push(g, piece)
                        {
                            blocked = true;
                        }
                        if let Some(f) = fix.as_mut() {
                            out.extend(f.frame(v));
                        }
                    }
                    if blocked {
                        // This chunk is not forwarded: the client gets an error event instead.
                        let err = json!({"error": {"message": "the answer was blocked by the guardrail", "type": "invalid_request_error", "param": null, "code": "content_blocked"}});
                        let _ = tx.send(Ok(Bytes::from(format!("data: {err}\n\n")))).await;
                        status = 400;
                        break;
                    }
                    let bytes = if fix.is_some() { frames_bytes(&out) } else { bytes };
                    if !bytes.is_empty() && tx.send(Ok(bytes)).await.is_err() {
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
        // Re-emitted frames end with what was held back and the `[DONE]` the reader skipped.
        if let Some(mut f) = fix.filter(|_| status == 200 && !blocked) {
            let mut tail = frames_bytes(&f.finish()).to_vec();
            tail.extend_from_slice(b"data: [DONE]\n\n");
            let _ = tx.send(Ok(Bytes::from(tail))).await;
        }
        if blocked {
            meta.send_blocked(&gw, Some(&d), usage, output_chars);
        } else {
            meta.send_answer(&gw, Some(&d), usage, output_chars, status, refused);
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

// ---- key management (tenant admins and operators) ----

/// The caller and the tenant it acts for, as the gate resolved them.
pub(crate) type Acting = Extension<identity::ActingFor>;

/// `POST /api/v1/keys`: a key for the caller's tenant (an operator names it in
/// `X-Aiplus-Tenant`) with a role, scopes and limits. The answer carries the secret, once.
pub async fn create_key(State(gw): Gw, Extension(who): Extension<Caller>, Extension(acting): Acting, body: Bytes) -> Response {
    let nk: identity::NewKey = match problem::parse_json(&body) {
        Ok(k) => k,
        Err(e) if e.field == "tenant" || e.reason.contains("unknown field `tenant`") => {
            let why = "the tenant comes from the credential, not the body (operators name it in the X-Aiplus-Tenant header)";
            return problem(problem::Kind::Invalid, "tenant", why);
        }
        Err(e) => return bad_json(e),
    };
    let Some(tenant) = acting.0 else {
        return problem(problem::Kind::Invalid, "x-aiplus-tenant", "an operator names the tenant the key is for in this header");
    };
    match gw.identity.create_key(&who, &tenant, nk, now_ms()).await {
        // The only time the secret leaves the server.
        Ok((rec, secret)) => {
            let mut v = json!(rec);
            v["secret"] = json!(secret);
            (StatusCode::CREATED, axum::Json(v)).into_response()
        }
        Err(e) => identity_problem(&e),
    }
}

/// `GET /api/v1/keys`: the caller's tenant's keys; an operator's, every tenant's (or the named one's).
pub async fn list_keys(State(gw): Gw, Extension(who): Extension<Caller>, Extension(acting): Acting) -> Response {
    match gw.identity.keys(who.list_scope(acting.0).as_deref()).await {
        Ok(keys) => axum::Json(keys).into_response(),
        Err(e) => identity_problem(&e),
    }
}

pub async fn revoke_key(State(gw): Gw, Extension(who): Extension<Caller>, Extension(acting): Acting, Path(id): Path<String>) -> Response {
    match gw.identity.revoke_key(&id, who.list_scope(acting.0).as_deref(), now_ms()).await {
        Ok(rec) => axum::Json(rec).into_response(),
        Err(e) => identity_problem(&e),
    }
}

/// The one mapping from identity's errors to problem+json in the gateway.
pub(crate) fn identity_problem(e: &identity::IdentityError) -> Response {
    use identity::IdentityError as E;
    match e {
        E::Invalid { field, reason } => problem(problem::Kind::Invalid, field, reason),
        E::NotFound { what, id } => problem(problem::Kind::NotFound, "id", &format!("no {what} {id:?}")),
        E::Conflict { what, id } => problem(problem::Kind::Conflict, "id", &format!("{what} {id:?} already exists")),
        E::Limit { field, reason } => problem(problem::Kind::Limit, field, reason),
        E::Store(_) | E::File { .. } => {
            tracing::error!(error = %e, "identity");
            problem(problem::Kind::Internal, "store", "could not store the change; nothing was changed")
        }
    }
}

/// The one mapping from management errors to problem+json.
pub(crate) fn admin_problem(e: &crate::admin::AdminError) -> Response {
    use crate::admin::AdminError;
    match e {
        AdminError::Invalid { field, reason } => problem(problem::Kind::Invalid, field, reason),
        AdminError::NotFound { what, id } => problem(problem::Kind::NotFound, "id", &format!("no {what} {id:?}")),
        AdminError::Store(why) => problem(problem::Kind::Internal, "store", why),
    }
}

/// `/api/v1/gateway`: the models, each deployment's health, and the embedded model's state.
pub async fn status(State(gw): Gw) -> Response {
    let embedded = gw.embedded_state().map(|(name, state)| json!({"name": name, "state": state}));
    axum::Json(json!({"models": gw.health(), "embedded": embedded})).into_response()
}

/// `/metrics`: the gateway's counters plus, per deployment, its smoothed latency and breaker.
pub async fn metrics(State(gw): Gw) -> Response {
    let now = Instant::now();
    let mut ewma = Vec::new();
    let mut open = Vec::new();
    let catalog = gw.catalog();
    for name in &catalog.order {
        let Some(route) = catalog.routes.get(name) else { continue };
        for (id, lat_ms, is_open) in route.health(now) {
            let labels = vec![("model", name.clone()), ("deployment", id)];
            if let Some(ms) = lat_ms {
                ewma.push((labels.clone(), ms / 1000.0));
            }
            open.push((labels, if is_open { 1.0 } else { 0.0 }));
        }
    }
    let text = gw.metrics.render(&[
        ("aiplus_gateway_deployment_latency_ewma_seconds", "Smoothed time to answer headers, per deployment.", ewma),
        ("aiplus_gateway_deployment_breaker_open", "1 while a deployment's circuit breaker is open.", open),
    ]);
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// A problem+json answer of the management routes, in the API's one vocabulary
/// (`problem::Kind`). An internal failure names no field: its reason is the whole story.
pub(crate) fn problem(kind: problem::Kind, field: &str, reason: &str) -> Response {
    if kind == problem::Kind::Internal {
        return problem::Problem::new(kind, reason).into_response();
    }
    problem::Problem::field(kind, field, reason).into_response()
}

/// A management body that could not be read.
pub(crate) fn bad_json(e: problem::BadJson) -> Response {
    problem(problem::Kind::Malformed, &e.field, &e.reason)
}
