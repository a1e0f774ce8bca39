//! `/v1/responses`: OpenAI's Responses API (create, retrieve, and streaming with the typed
//! `response.*` events), served over any upstream that speaks Chat Completions.
//!
//! A request is translated to a chat request (instructions → a system message, input items →
//! messages, function tools and `text.format` → `tools` and `response_format`), sent through the
//! same routing, limits, guardrail and metering as chat, and the answer is translated back:
//! text → a `message` output item, tool calls → `function_call` items. Finished responses are
//! kept in the store (unless the request says `store: false`), so they outlive the process and
//! are shared by instances, for `GET /v1/responses/{id}` and for `previous_response_id`: each
//! tenant keeps at most [`MAX_STORED_BYTES_PER_TENANT`], its oldest forgotten first. A response
//! is stored before its answer (or the stream's `response.completed`) is sent, so the next
//! request can name it at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::Gateway;
use crate::admission::{Fallback, Metered, RequestError, Target, admit};
use crate::config::DeploymentConfig;
use crate::proxy::{
    MAX_UPSTREAM_BODY_BYTES, Who, answer_tokens, blocked_error, call_upstream, estimate_tokens, openai_error, unauthorized,
    upstream_refusal, usage_of,
};

/// Bytes of stored responses (with their conversations) one tenant keeps.
pub const MAX_STORED_BYTES_PER_TENANT: i64 = 64 << 20;

/// A stored response: the response object and the conversation including its answer (for
/// `previous_response_id`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    response: Value,
    messages: Vec<Value>,
}

/// A tenant's stored response, if it has one of that id (another tenant's answers like none).
async fn load(gw: &Gateway, id: &str, tenant: &str) -> Result<Option<Stored>, RequestError> {
    let doc = gw.store.response(id, tenant).await.map_err(|e| {
        tracing::error!(error = %e, "reading a stored response");
        RequestError::Internal { code: "store_unavailable", message: "stored responses cannot be read now; retry".into() }
    })?;
    Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
}

type Bad = (String, String);

fn bad(field: impl Into<String>, why: impl Into<String>) -> Bad {
    (field.into(), why.into())
}

/// The text of a content value: a string, or the text parts of an array.
fn content_text(c: &Value) -> Option<String> {
    match c {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("")),
        _ => None,
    }
}

/// Input items → chat messages.
fn input_messages(req: &Value) -> Result<Vec<Value>, Bad> {
    let mut out = Vec::new();
    match &req["input"] {
        Value::String(s) => out.push(json!({"role": "user", "content": s})),
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                match it["type"].as_str().unwrap_or("message") {
                    "message" => {
                        let role = match it["role"].as_str() {
                            Some(r @ ("user" | "assistant" | "system")) => r,
                            Some("developer") => "system",
                            _ => return Err(bad(format!("input[{i}].role"), "must be user, assistant, system or developer")),
                        };
                        let content = match &it["content"] {
                            Value::Array(parts) if parts.iter().any(|p| p["type"] == "input_image") => {
                                // Images go on as chat content parts; text parts become text parts.
                                Value::Array(
                                    parts
                                        .iter()
                                        .map(|p| match p["type"].as_str() {
                                            Some("input_image") => json!({"type": "image_url", "image_url": {"url": p["image_url"]}}),
                                            _ => json!({"type": "text", "text": p["text"]}),
                                        })
                                        .collect(),
                                )
                            }
                            c => Value::String(
                                content_text(c)
                                    .ok_or_else(|| bad(format!("input[{i}].content"), "must be a string or an array of parts"))?,
                            ),
                        };
                        out.push(json!({"role": role, "content": content}));
                    }
                    "function_call" => out.push(json!({"role": "assistant", "content": null, "tool_calls": [{
                        "id": it["call_id"], "type": "function",
                        "function": {"name": it["name"], "arguments": it["arguments"]}}]})),
                    "function_call_output" => out.push(
                        json!({"role": "tool", "tool_call_id": it["call_id"], "content": content_text(&it["output"]).unwrap_or_default()}),
                    ),
                    other => return Err(bad(format!("input[{i}].type"), format!("{other:?} is not supported here"))),
                }
            }
        }
        Value::Null => return Err(bad("input", "you must provide an input")),
        _ => return Err(bad("input", "must be a string or an array of input items")),
    }
    Ok(out)
}

/// The chat request that carries a Responses request upstream.
fn to_chat(req: &Value, history: Vec<Value>, stream: bool) -> Result<(Value, Vec<Value>), Bad> {
    let mut messages = Vec::new();
    if let Some(i) = req["instructions"].as_str() {
        messages.push(json!({"role": "system", "content": i}));
    }
    messages.extend(history);
    messages.extend(input_messages(req)?);
    let mut chat = json!({"model": req["model"], "messages": messages, "stream": stream});
    for k in ["temperature", "top_p", "user", "parallel_tool_calls", "metadata"] {
        if !req[k].is_null() {
            chat[k] = req[k].clone();
        }
    }
    if let Some(n) = req["max_output_tokens"].as_u64() {
        chat["max_tokens"] = json!(n);
    }
    if stream {
        chat["stream_options"] = json!({"include_usage": true});
    }
    if let Some(tools) = req["tools"].as_array() {
        let mut out = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            if t["type"] != "function" {
                return Err(bad(format!("tools[{i}].type"), "only function tools are supported"));
            }
            out.push(json!({"type": "function", "function": {
                "name": t["name"], "description": t["description"], "parameters": t["parameters"], "strict": t["strict"]}}));
        }
        chat["tools"] = Value::Array(out);
    }
    match &req["tool_choice"] {
        Value::Null => {}
        Value::String(s) => chat["tool_choice"] = json!(s),
        v => chat["tool_choice"] = json!({"type": "function", "function": {"name": v["name"]}}),
    }
    match req["text"]["format"]["type"].as_str() {
        None | Some("text") => {}
        Some("json_object") => chat["response_format"] = json!({"type": "json_object"}),
        Some("json_schema") => {
            let f = &req["text"]["format"];
            chat["response_format"] =
                json!({"type": "json_schema", "json_schema": {"name": f["name"], "schema": f["schema"], "strict": f["strict"]}});
        }
        Some(other) => return Err(bad("text.format.type", format!("{other:?} is not text, json_object or json_schema"))),
    }
    let messages = chat["messages"].as_array().cloned().unwrap_or_default();
    Ok((chat, messages))
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn call_item(call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"type": "function_call", "id": new_id("fc"), "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"})
}

/// A `response` object as the Responses API returns it.
pub fn response_object(id: &str, created_at: i64, req: &Value, status: &str, output: Vec<Value>, usage: Option<(u64, u64)>) -> Value {
    let usage = usage.map(|(i, o)| {
        json!({"input_tokens": i, "input_tokens_details": {"cached_tokens": 0},
               "output_tokens": o, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": i.saturating_add(o)})
    });
    json!({
        "id": id, "object": "response", "created_at": created_at, "status": status,
        "error": null, "incomplete_details": null,
        "instructions": req["instructions"], "max_output_tokens": req["max_output_tokens"],
        "model": req["model"], "output": output, "parallel_tool_calls": req["parallel_tool_calls"].as_bool().unwrap_or(true),
        "previous_response_id": req["previous_response_id"], "reasoning": {"effort": null, "summary": null},
        "store": req["store"].as_bool().unwrap_or(true), "temperature": req["temperature"].as_f64().unwrap_or(1.0),
        "text": {"format": if req["text"]["format"].is_null() { json!({"type": "text"}) } else { req["text"]["format"].clone() }},
        "tool_choice": if req["tool_choice"].is_null() { json!("auto") } else { req["tool_choice"].clone() },
        "tools": if req["tools"].is_null() { json!([]) } else { req["tools"].clone() },
        "top_p": req["top_p"].as_f64().unwrap_or(1.0), "truncation": "disabled",
        "usage": usage, "user": req["user"], "metadata": if req["metadata"].is_null() { json!({}) } else { req["metadata"].clone() },
        "conversation": match crate::conversations::named(req) {
            Some(Ok(id)) => json!({"id": id}),
            _ => Value::Null,
        },
    })
}

/// Output items from a chat completion's first choice.
fn output_of(chat: &Value) -> (Vec<Value>, String) {
    let msg = &chat["choices"][0]["message"];
    let text = msg["content"].as_str().unwrap_or("").to_string();
    let mut out = Vec::new();
    if !text.is_empty() || msg["tool_calls"].is_null() {
        out.push(message_item(&new_id("msg"), &text, "completed"));
    }
    for c in msg["tool_calls"].as_array().into_iter().flatten() {
        out.push(call_item(
            c["id"].as_str().unwrap_or(""),
            c["function"]["name"].as_str().unwrap_or(""),
            c["function"]["arguments"].as_str().unwrap_or(""),
        ));
    }
    (out, text)
}

pub async fn retrieve(
    State(gw): State<Arc<Gateway>>,
    who: Who,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<RetrieveQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let q = match query {
        Ok(q) => q.0,
        Err(e) => return openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_value", e.body_text(), None),
    };
    if q.stream == Some(true) {
        let answer = match gw.agents.get() {
            Some(host) => host.follow(caller, id.clone(), q.starting_after).await,
            None => None,
        };
        return answer.unwrap_or_else(|| not_found(&id));
    }
    let metered = match Metered::new(&gw, caller, &headers, "responses.retrieve", String::new(), false, 0) {
        Ok(m) => m,
        Err(refused) => return refused.into_response(),
    };
    match load(&gw, &id, metered.caller.tenant_id()).await {
        Err(e) => metered.refuse(&gw, e),
        Ok(Some(stored)) => {
            metered.send(&gw, None, Some((0, 0)), 0, 200);
            axum::Json(stored.response).into_response()
        }
        Ok(None) => {
            metered.send(&gw, None, Some((0, 0)), 0, 404);
            not_found(&id)
        }
    }
}

/// Serves the models named `agent:…`: the agents pillar, plugged in by the binary
/// ([`Gateway::serve_agents`]), so the gateway needs no agent code of its own.
pub trait AgentHost: Send + Sync {
    fn create(&self, caller: crate::Caller, headers: HeaderMap, req: Value) -> Pin<Box<dyn Future<Output = Response> + Send + 'static>>;
    /// A background response's events after a cursor, then live until it ends; `None`: the
    /// caller has no background response of that id.
    fn follow(
        &self,
        caller: crate::Caller,
        id: String,
        starting_after: Option<i64>,
    ) -> Pin<Box<dyn Future<Output = Option<Response>> + Send + 'static>>;
    /// Cancels a background response; `None`: the caller has no response of that id.
    fn cancel(&self, caller: crate::Caller, id: String) -> Pin<Box<dyn Future<Output = Option<Response>> + Send + 'static>>;
}

/// `GET /v1/responses/{id}`'s query: `stream=true` follows a background response's events
/// after `starting_after`.
#[derive(serde::Deserialize, Default)]
pub struct RetrieveQuery {
    stream: Option<bool>,
    starting_after: Option<i64>,
}

fn not_found(id: &str) -> Response {
    openai_error(StatusCode::NOT_FOUND, "invalid_request_error", "not_found", format!("No response with id '{id}' found."), None)
}

/// `POST /v1/responses/{id}/cancel`: only a background response can be cancelled.
pub async fn cancel(State(gw): State<Arc<Gateway>>, who: Who, Path(id): Path<String>) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let answer = match gw.agents.get() {
        Some(host) => host.cancel(caller, id.clone()).await,
        None => None,
    };
    answer.unwrap_or_else(|| not_found(&id))
}

impl Gateway {
    /// Plugs in the agents pillar; the first one plugged in stays.
    pub fn serve_agents(&self, host: Arc<dyn AgentHost>) {
        let _ = self.agents.set(host);
    }
}

pub async fn create(State(gw): State<Arc<Gateway>>, who: Who, headers: HeaderMap, body: Bytes) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let req: Option<Value> = serde_json::from_slice(&body).ok().filter(Value::is_object);
    let model = req.as_ref().and_then(|r| r["model"].as_str()).unwrap_or("").to_string();
    if model.starts_with("agent:")
        && let Some(req) = req
    {
        return match gw.agents.get() {
            Some(host) => host.create(caller, headers, req).await,
            None => openai_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("The model '{model}' does not exist"),
                Some("model"),
            ),
        };
    }
    let stream = req.as_ref().and_then(|r| r["stream"].as_bool()).unwrap_or(false);
    let mut metered = match Metered::new(&gw, caller, &headers, "responses", model, stream, 0) {
        Ok(m) => m,
        Err(refused) => return refused.into_response(),
    };
    if metered.end_user.is_none() {
        metered.end_user = req.as_ref().and_then(crate::admission::end_user_of);
    }
    match respond(&gw, &mut metered, req).await {
        Ok(r) => r,
        Err(e) => metered.refuse(&gw, e),
    }
}

/// One Responses request through the admission pipeline: translated to chat, sent with
/// fallback, and translated back.
async fn respond(gw: &Arc<Gateway>, metered: &mut Metered, req: Option<Value>) -> Result<Response, RequestError> {
    let req = req.ok_or_else(|| RequestError::invalid("invalid_json", "the body must be a JSON object", None))?;
    if metered.model.is_empty() {
        return Err(RequestError::invalid("missing_required_parameter", "you must provide a model", Some("model")));
    }
    let stream = metered.stream;
    let conversation = match crate::conversations::named(&req) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err((field, why))) => return Err(RequestError::invalid("invalid_value", format!("{field}: {why}"), Some(&field))),
    };
    let history = match req["previous_response_id"].as_str() {
        None if conversation.is_some() => conversation_history(gw, metered, conversation.as_deref().unwrap_or("")).await?,
        None => Vec::new(),
        Some(prev) => match load(gw, prev, metered.caller.tenant_id()).await? {
            Some(stored) => stored.messages.into_iter().filter(|m| m["role"] != "system").collect(),
            None => {
                let why = format!("Previous response with id '{prev}' not found.");
                return Err(RequestError::invalid("previous_response_not_found", why, Some("previous_response_id")));
            }
        },
    };
    let (chat, messages) = to_chat(&req, history, stream)
        .map_err(|(field, why)| RequestError::invalid("invalid_value", format!("{field}: {why}"), Some(&field)))?;
    let prompt: String = messages.iter().filter_map(|m| content_text(&m["content"])).collect::<Vec<_>>().join("\n");
    metered.input_estimate = estimate_tokens(prompt.len());
    let estimate = metered.input_estimate;
    let target = admit(gw, metered, &[&prompt], false, |_| estimate + answer_tokens(&req)).await?;
    let Target::Upstream { route, .. } = &target else { return Err(RequestError::ModelNotFound(metered.model.clone())) };
    let deployments = target.deployments();
    let mut tries = Fallback::new(gw, deployments);
    while let Some(d) = tries.next().await {
        let resp = match call_upstream(gw, route, d, &chat, None, "chat/completions").await {
            Ok(r) => r,
            Err(why) => {
                tries.failed(d, why);
                continue;
            }
        };
        if !resp.status().is_success() {
            // The upstream refused the request itself (3xx, 4xx): the client hears why, sanitised.
            let status = resp.status().as_u16();
            let bytes = outbound::read_capped(resp, MAX_UPSTREAM_BODY_BYTES).await.ok().flatten().unwrap_or_default();
            metered.send(gw, Some(d), None, 0, status);
            return Ok(upstream_refusal(status, &bytes));
        }
        let ctx = Ctx { gw: gw.clone(), d: d.clone(), req, messages, metered: metered.clone(), conversation };
        return Ok(if stream { ctx.stream(resp) } else { ctx.whole(resp).await });
    }
    Err(tries.exhausted(&metered.model))
}

/// The chat messages of a tenant's conversation (its messages and function calls; other items,
/// an agent's tool calls, are what an agent reads).
async fn conversation_history(gw: &Gateway, metered: &Metered, id: &str) -> Result<Vec<Value>, RequestError> {
    let items = crate::conversations::history(&gw.store, metered.caller.tenant_id(), id).await.map_err(|e| {
        tracing::error!(error = %e, "reading a conversation");
        RequestError::Internal { code: "store_unavailable", message: "conversations cannot be read now; retry".into() }
    })?;
    let Some(items) = items else {
        let why = format!("Conversation with id '{id}' not found.");
        return Err(RequestError::invalid("conversation_not_found", why, Some("conversation")));
    };
    let usable: Vec<Value> =
        items.into_iter().filter(|i| matches!(i["type"].as_str(), Some("message" | "function_call" | "function_call_output"))).collect();
    input_messages(&json!({"input": usable}))
        .map(|m| m.into_iter().filter(|m| m["role"] != "system").collect())
        .map_err(|(field, why)| RequestError::invalid("invalid_value", format!("conversation {field}: {why}"), Some("conversation")))
}

/// A chat frame as the stream goes on: through `fix` when the request offered tools.
fn fixed(fix: &mut Option<crate::toolcalls::StreamFix>, v: Value) -> Vec<Value> {
    match fix {
        Some(f) => f.frame(v),
        None => vec![v],
    }
}

/// One answered request, being turned into a response.
struct Ctx {
    gw: Arc<Gateway>,
    d: DeploymentConfig,
    req: Value,
    messages: Vec<Value>,
    metered: Metered,
    /// The conversation the turn is added to.
    conversation: Option<String>,
}

impl Ctx {
    /// Stores a finished response. The answer has been produced and metered by now, so a
    /// store that fails is logged, not passed on: the client still gets its answer.
    async fn keep(&self, id: &str, response: &Value, answer: &str) {
        if let Some(conv) = &self.conversation {
            let input = match &self.req["input"] {
                Value::String(s) => vec![json!({"type": "message", "role": "user", "content": s})],
                Value::Array(a) => a.clone(),
                _ => Vec::new(),
            };
            let output = response["output"].as_array().cloned().unwrap_or_default();
            let tenant = self.metered.caller.tenant_id();
            crate::conversations::append_turn(&self.gw.store, tenant, conv, crate::proxy::now_ms(), &input, &output).await;
        }
        if self.req["store"].as_bool() == Some(false) {
            return;
        }
        let mut messages = self.messages.clone();
        messages.push(json!({"role": "assistant", "content": answer}));
        let Ok(doc) = serde_json::to_string(&Stored { response: response.clone(), messages }) else { return };
        let tenant = self.metered.caller.tenant_id();
        if doc.len() as i64 > MAX_STORED_BYTES_PER_TENANT {
            tracing::warn!(id, tenant, bytes = doc.len(), "a response larger than a tenant's whole quota is not stored");
            return;
        }
        if let Err(e) = self.gw.store.put_response(id, tenant, crate::proxy::now_ms(), &doc, MAX_STORED_BYTES_PER_TENANT).await {
            tracing::error!(id, tenant, error = %e, "storing a response");
        }
    }

    async fn whole(self, resp: reqwest::Response) -> Response {
        let created_at = crate::proxy::now_ms() / 1000;
        let body = outbound::read_capped(resp, MAX_UPSTREAM_BODY_BYTES).await.ok().flatten();
        let mut chat: Value = match body.and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(v) => v,
            None => {
                self.metered.send(&self.gw, Some(&self.d), None, 0, 502);
                return openai_error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "bad_upstream_answer",
                    "the upstream's answer was not JSON",
                    None,
                );
            }
        };
        let text_before = output_of(&chat).1;
        crate::toolcalls::fix_answer(&mut chat, &crate::toolcalls::tool_names(&self.req));
        let (output, text) = output_of(&chat);
        if let Some(g) = self.gw.guard.as_ref().filter(|g| g.check_output)
            && g.find(&text_before).is_some()
        {
            self.metered.send_blocked(&self.gw, Some(&self.d), usage_of(&chat), text.len());
            return blocked_error("the answer");
        }
        let usage = usage_of(&chat).unwrap_or((self.metered.input_estimate, estimate_tokens(text.len())));
        self.metered.send(&self.gw, Some(&self.d), usage_of(&chat), text.len(), 200);
        let id = new_id("resp");
        let response = response_object(&id, created_at, &self.req, "completed", output, Some(usage));
        self.keep(&id, &response, &text).await;
        axum::Json(response).into_response()
    }

    /// Reads the upstream's chat chunks and writes the Responses event stream.
    fn stream(self, resp: reqwest::Response) -> Response {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        tokio::spawn(async move {
            let id = new_id("resp");
            let msg_id = new_id("msg");
            let created_at = crate::proxy::now_ms() / 1000;
            let mut seq = 0u64;
            let mut frame = |v: Value| {
                let ty = v["type"].as_str().unwrap_or("").to_string();
                let mut v = v;
                v["sequence_number"] = json!(seq);
                seq += 1;
                Ok::<_, std::io::Error>(Bytes::from(format!("event: {ty}\ndata: {v}\n\n")))
            };
            let pending = response_object(&id, created_at, &self.req, "in_progress", vec![], None);
            for ty in ["response.created", "response.in_progress"] {
                if tx.send(frame(json!({"type": ty, "response": pending}))).await.is_err() {
                    self.metered.send(&self.gw, Some(&self.d), None, 0, 499);
                    return;
                }
            }
            let mut upstream = resp.bytes_stream();
            let mut lines = crate::sse::DataLines::default();
            let mut text = String::new();
            let mut started = false;
            let mut usage = None;
            // Tool calls arrive in pieces: (id, name, arguments) by index.
            let mut calls: Vec<(String, String, String)> = Vec::new();
            let mut watch = crate::guardrail::StreamWatch::default();
            let mut failure: Option<(u16, &str, String)> = None;
            // With tools offered, a call written as text becomes tool-call frames (`toolcalls`).
            let tools = crate::toolcalls::tool_names(&self.req);
            let mut fix = (!tools.is_empty()).then(|| crate::toolcalls::StreamFix::new(tools));
            let mut ended = false;
            'read: while !ended {
                let batch: Vec<Value> = match upstream.next().await {
                    Some(Ok(bytes)) => lines.feed(&bytes).flat_map(|v| fixed(&mut fix, v)).collect(),
                    Some(Err(e)) => {
                        failure = Some((502, "stream_interrupted", format!("the upstream stream broke: {e}")));
                        break;
                    }
                    None => {
                        ended = true;
                        fix.as_mut().map(crate::toolcalls::StreamFix::finish).unwrap_or_default()
                    }
                };
                if let Some((code, message)) = crate::admission::withheld(&self.gw, &self.metered) {
                    failure = Some((403, code, message));
                    break;
                }
                for v in batch {
                    usage = usage_of(&v).or(usage);
                    let delta = &v["choices"][0]["delta"];
                    for c in delta["tool_calls"].as_array().into_iter().flatten() {
                        let i = c["index"].as_u64().unwrap_or(0).min(127) as usize;
                        if calls.len() <= i {
                            calls.resize(i + 1, Default::default());
                        }
                        if let Some(s) = c["id"].as_str() {
                            calls[i].0 = s.to_string();
                        }
                        if let Some(s) = c["function"]["name"].as_str() {
                            calls[i].1.push_str(s);
                        }
                        if let Some(s) = c["function"]["arguments"].as_str() {
                            calls[i].2.push_str(s);
                        }
                    }
                    let Some(piece) = delta["content"].as_str().filter(|p| !p.is_empty()) else { continue };
                    if let Some(g) = self.gw.guard.as_ref().filter(|g| g.check_output)
                        && watch.push(g, piece)
                    {
                        failure = Some((400, "content_blocked", "the answer was blocked by the guardrail".into()));
                        break 'read;
                    }
                    if !started {
                        started = true;
                        let item = json!({"type": "message", "id": msg_id, "status": "in_progress", "role": "assistant", "content": []});
                        let part = json!({"type": "output_text", "text": "", "annotations": []});
                        let added = [
                            json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
                            json!({"type": "response.content_part.added", "item_id": msg_id, "output_index": 0, "content_index": 0, "part": part}),
                        ];
                        for f in added {
                            if tx.send(frame(f)).await.is_err() {
                                failure = Some((499, "client_gone", String::new()));
                                break 'read;
                            }
                        }
                    }
                    text.push_str(piece);
                    let f = json!({"type": "response.output_text.delta", "item_id": msg_id, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []});
                    if tx.send(frame(f)).await.is_err() {
                        failure = Some((499, "client_gone", String::new()));
                        break 'read;
                    }
                }
            }
            let output_chars = text.len() + calls.iter().map(|c| c.2.len()).sum::<usize>();
            if let Some((status, code, message)) = failure {
                if status != 499 {
                    let err = json!({"type": "error", "code": code, "message": message, "param": null});
                    let _ = tx.send(frame(err)).await;
                    let mut failed = response_object(&id, created_at, &self.req, "failed", vec![], usage);
                    failed["error"] = json!({"code": code, "message": message});
                    let _ = tx.send(frame(json!({"type": "response.failed", "response": failed}))).await;
                }
                if status == 400 {
                    self.metered.send_blocked(&self.gw, Some(&self.d), usage, output_chars);
                } else {
                    self.metered.send(&self.gw, Some(&self.d), usage, output_chars, status);
                }
                return;
            }
            let mut frames = Vec::new();
            let mut output = Vec::new();
            if started {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                frames.push(json!({"type": "response.output_text.done", "item_id": msg_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}));
                frames.push(
                    json!({"type": "response.content_part.done", "item_id": msg_id, "output_index": 0, "content_index": 0, "part": part}),
                );
                let item = message_item(&msg_id, &text, "completed");
                frames.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
                output.push(item);
            }
            for (call_id, name, args) in &calls {
                let item = call_item(call_id, name, args);
                let ix = output.len();
                frames.push(json!({"type": "response.output_item.added", "output_index": ix, "item": item}));
                frames.push(
                    json!({"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": ix, "arguments": args}),
                );
                frames.push(json!({"type": "response.output_item.done", "output_index": ix, "item": item}));
                output.push(item);
            }
            let final_usage = usage.unwrap_or((self.metered.input_estimate, estimate_tokens(output_chars)));
            let done = response_object(&id, created_at, &self.req, "completed", output, Some(final_usage));
            // Stored before `response.completed` goes out, so the client can name it at once.
            self.keep(&id, &done, &text).await;
            frames.push(json!({"type": "response.completed", "response": done}));
            let mut status = 200;
            for f in frames {
                if tx.send(frame(f)).await.is_err() {
                    status = 499;
                    break;
                }
            }
            self.metered.send(&self.gw, Some(&self.d), usage, output_chars, status);
        });
        let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut r = Response::new(body);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_translate_to_chat_with_tools_formats_and_history() {
        let req = json!({
            "model": "m", "instructions": "be brief", "max_output_tokens": 50,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                      {"type": "function_call_output", "call_id": "c1", "output": "42"}],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": true}},
        });
        let (chat, messages) = to_chat(&req, vec![json!({"role": "assistant", "content": "before"})], true).unwrap();
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(chat["messages"][1]["content"], "before");
        assert_eq!(chat["messages"][2], json!({"role": "user", "content": "hi"}));
        assert_eq!(chat["messages"][3], json!({"role": "tool", "tool_call_id": "c1", "content": "42"}));
        assert_eq!(messages.len(), 4);
        assert_eq!(chat["max_tokens"], 50);
        assert_eq!(chat["tools"][0]["function"]["name"], "f");
        assert_eq!(chat["tool_choice"]["function"]["name"], "f");
        assert_eq!(chat["response_format"]["json_schema"]["name"], "s");
        assert_eq!(chat["stream_options"]["include_usage"], true);
        let bad = to_chat(&json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}), vec![], false).unwrap_err();
        assert_eq!(bad.0, "input[0].role");
        let bad = to_chat(&json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}), vec![], false).unwrap_err();
        assert_eq!(bad.0, "tools[0].type");
        assert_eq!(to_chat(&json!({"model": "m"}), vec![], false).unwrap_err().0, "input");
    }

    #[test]
    fn chat_answers_become_output_items() {
        let chat = json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4}});
        let (out, text) = output_of(&chat);
        assert_eq!(text, "");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["type"], "function_call");
        assert_eq!(out[0]["call_id"], "call_1");
        let r = response_object("resp_1", 0, &json!({"model": "m"}), "completed", out, usage_of(&chat));
        assert_eq!(r["usage"]["total_tokens"], 7);
        assert_eq!(r["object"], "response");
    }
}
