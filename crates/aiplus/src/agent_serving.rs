//! Agents plugged into the gateway: `POST /v1/responses` with `model: "agent:<id>[@version]"`
//! runs the agent's loop here, each model step a Responses request through the gateway's
//! admission pipeline in-process, as the caller (so the tenant's regions, limits, filings and
//! metering apply to every step), each tool call an event in the usage ledger. The finished
//! response is stored like any other, for `GET /v1/responses/{id}` and `previous_response_id`.

use std::sync::{Arc, Weak};

use agents::run::{BoxFuture, Deps, Model, Outcome, Status, StepError};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gateway::proxy::openai_error;
use serde_json::{Value, json};

/// Settings a request may pass on to each model step.
const STEP_OPTIONS: [&str; 3] = ["temperature", "top_p", "user"];
/// Items of a request's `input`, and of a conversation carried over.
pub const MAX_INPUT_ITEMS: usize = 1000;

pub struct Host {
    /// Weak: the gateway holds this host.
    pub gw: Weak<gateway::Gateway>,
    pub agents: Arc<agents::Agents>,
    pub store: store::Store,
    pub meter: agents::usage::Meter,
    pub http: reqwest::Client,
    pub clock: Arc<dyn vocab::Clock>,
}

/// One model step through the gateway, as the run's caller.
struct GatewayModel {
    gw: Weak<gateway::Gateway>,
    caller: gateway::Caller,
}

impl Model for GatewayModel {
    fn respond(&self, step_id: String, body: Value) -> BoxFuture<Result<Value, StepError>> {
        let gw = self.gw.clone();
        let caller = self.caller.clone();
        Box::pin(async move {
            let gone = || StepError { status: 503, code: "shutting_down".into(), message: "the server is stopping".into() };
            let gw = gw.upgrade().ok_or_else(gone)?;
            let bytes = Bytes::from(body.to_string());
            let (status, _, answer) = gw.call_as(caller, gateway::InProcess::Responses, None, Some(&step_id), bytes).await;
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            if status.is_success() && v.is_object() {
                return Ok(v);
            }
            Err(StepError {
                status: status.as_u16(),
                code: v["error"]["code"].as_str().unwrap_or("model_step_failed").into(),
                message: v["error"]["message"].as_str().unwrap_or("the model step failed").into(),
            })
        })
    }
}

fn invalid(message: impl Into<String>, param: &str) -> Response {
    openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_value", message, Some(param))
}

fn now_s(clock: &dyn vocab::Clock) -> i64 {
    clock.now_ms() / 1000
}

impl gateway::responses::AgentHost for Host {
    fn create(&self, caller: gateway::Caller, _headers: HeaderMap, req: Value) -> BoxFuture<Response> {
        let host = Host {
            gw: self.gw.clone(),
            agents: self.agents.clone(),
            store: self.store.clone(),
            meter: self.meter.clone(),
            http: self.http.clone(),
            clock: self.clock.clone(),
        };
        Box::pin(async move { host.respond(caller, req).await })
    }
}

/// A request that breaks a rule: the message, and the parameter it names.
type Bad = (String, String);

fn bad(message: impl Into<String>, param: &str) -> Bad {
    (message.into(), param.to_string())
}

/// A request's new items: a string is one user message.
fn input_items(req: &Value) -> Result<Vec<Value>, Bad> {
    let items = match &req["input"] {
        Value::String(s) => vec![json!({"type": "message", "role": "user", "content": s})],
        Value::Array(a) => a.clone(),
        Value::Null => return Err(bad("you must provide an input", "input")),
        _ => return Err(bad("input: must be a string or an array of input items", "input")),
    };
    if items.len() > MAX_INPUT_ITEMS {
        return Err(bad(format!("input: at most {MAX_INPUT_ITEMS} items"), "input"));
    }
    for (i, it) in items.iter().enumerate() {
        let ty = it["type"].as_str().unwrap_or("message");
        let known = [
            "message",
            "function_call",
            "function_call_output",
            "mcp_approval_response",
            "mcp_call",
            "mcp_list_tools",
            "mcp_approval_request",
        ];
        if !it.is_object() || !known.contains(&ty) {
            return Err(bad(format!("input[{i}].type: {ty:?} is not supported for agents"), &format!("input[{i}].type")));
        }
        if ty == "mcp_approval_response" && (it["approval_request_id"].as_str().is_none() || !it["approve"].is_boolean()) {
            return Err(bad(
                format!("input[{i}]: an approval response names approval_request_id and says approve: true or false"),
                &format!("input[{i}]"),
            ));
        }
    }
    Ok(items)
}

/// The client's own function tools, added to the agent's (the Agents SDK sends its agent's).
fn client_tools(req: &Value, spec: &mut agents::AgentSpec) -> Result<(), Bad> {
    for (i, t) in req["tools"].as_array().into_iter().flatten().enumerate() {
        if t["type"] != "function" {
            return Err(bad(format!("tools[{i}].type: an agent's other tools are declared on the agent"), &format!("tools[{i}].type")));
        }
        let tool: agents::Tool = serde_json::from_value(json!({"type": "function", "name": t["name"], "description": t["description"],
            "parameters": if t["parameters"].is_null() { json!({"type": "object", "properties": {}}) } else { t["parameters"].clone() }}))
        .map_err(|e| bad(format!("tools[{i}]: {e}"), &format!("tools[{i}]")))?;
        spec.tools.push(tool);
    }
    Ok(())
}

impl Host {
    async fn respond(self, caller: gateway::Caller, mut req: Value) -> Response {
        let model = req["model"].as_str().unwrap_or("").to_string();
        let (id, version) = match agents::service::parse_model(&model) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return invalid(e.to_string(), "model"),
            None => return invalid("not an agent", "model"),
        };
        let tenant = caller.tenant_id().to_string();
        let mut agent = match self.agents.get(&tenant, &id, version).await {
            Ok(a) => a,
            Err(agents::AgentError::NotFound { .. }) => {
                let why = format!("The model '{model}' does not exist");
                return openai_error(StatusCode::NOT_FOUND, "invalid_request_error", "model_not_found", why, Some("model"));
            }
            Err(e) => return server_error(&e.to_string()),
        };
        if let Err((message, param)) = client_tools(&req, &mut agent.spec) {
            return invalid(message, &param);
        }
        if let Err(e) = agent.spec.check(&["*".to_string()], true) {
            return invalid(e.to_string(), "tools");
        }
        let input = match input_items(&req) {
            Ok(i) => i,
            Err((message, param)) => return invalid(message, &param),
        };
        let history = match req["previous_response_id"].as_str() {
            None => Vec::new(),
            Some(prev) => match self.history(prev, &tenant).await {
                Ok(Some(h)) => h,
                Ok(None) => {
                    let why = format!("Previous response with id '{prev}' not found.");
                    return openai_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "previous_response_not_found",
                        why,
                        Some("previous_response_id"),
                    );
                }
                Err(e) => return server_error(&e),
            },
        };
        let options: serde_json::Map<String, Value> =
            STEP_OPTIONS.iter().filter(|k| !req[**k].is_null()).map(|k| (k.to_string(), req[*k].clone())).collect();
        let response_id = new_id("resp");
        let recorder = agents::usage::LedgerRecorder {
            meter: self.meter.clone(),
            clock: self.clock.clone(),
            tenant: tenant.clone(),
            principal: caller.id.clone(),
            agent: format!("agent:{}@{}", agent.id, agent.version),
        };
        let gw = self.gw.upgrade();
        let guard = gw.map(|g| Arc::new(move |t: &str| g.guard_blocks(t)) as agents::run::Guard);
        let deps = Deps {
            model: Arc::new(GatewayModel { gw: self.gw.clone(), caller: caller.clone() }),
            http: self.http.clone(),
            recorder: Arc::new(recorder),
            guard,
            ids: Arc::new(new_id),
        };
        req["model"] = json!(model);
        let created_at = now_s(self.clock.as_ref());
        let run = Running { host: self, tenant, agent, deps, response_id, req, created_at };
        if run.req["stream"].as_bool() == Some(true) {
            run.stream(history, input, options)
        } else {
            run.whole(history, input, options).await
        }
    }

    /// The items a stored response leaves for the next one: an agent's whole conversation, or
    /// a plain response's messages.
    async fn history(&self, id: &str, tenant: &str) -> Result<Option<Vec<Value>>, String> {
        let doc = self.store.response(id, tenant).await.map_err(|e| e.to_string())?;
        let Some(doc) = doc.and_then(|d| serde_json::from_str::<Value>(&d).ok()) else { return Ok(None) };
        if let Some(items) = doc["items"].as_array() {
            return Ok(Some(items.clone()));
        }
        let messages = doc["messages"].as_array().into_iter().flatten();
        Ok(Some(
            messages
                .filter(|m| matches!(m["role"].as_str(), Some("user" | "assistant")) && m["content"].is_string())
                .map(|m| json!({"type": "message", "role": m["role"], "content": m["content"]}))
                .collect(),
        ))
    }
}

fn server_error(why: &str) -> Response {
    tracing::error!(error = why, "serving an agent");
    openai_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "store_unavailable", "the agent could not be read now; retry", None)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// One agent request being answered.
struct Running {
    host: Host,
    tenant: String,
    agent: agents::Agent,
    deps: Deps,
    response_id: String,
    req: Value,
    created_at: i64,
}

impl Running {
    /// The response object for an outcome, stored (unless `store: false`) before it is sent.
    async fn finish(&self, outcome: Outcome) -> Value {
        let (status, error, reason) = match &outcome.status {
            Status::Completed => ("completed", Value::Null, Value::Null),
            Status::Incomplete(why) => ("incomplete", Value::Null, json!({"reason": why})),
            Status::Failed(e) => ("failed", json!({"code": e.code, "message": e.message}), Value::Null),
        };
        let usage = Some((outcome.input_tokens, outcome.output_tokens));
        let mut r =
            gateway::responses::response_object(&self.response_id, self.created_at, &self.req, status, outcome.output.clone(), usage);
        r["error"] = error;
        r["incomplete_details"] = reason;
        r["agent"] = json!({"id": self.agent.id, "version": self.agent.version, "steps": outcome.steps});
        if self.req["store"].as_bool() != Some(false) {
            let doc = json!({"response": r, "messages": [], "items": outcome.items});
            let doc = doc.to_string();
            let now_ms = self.host.clock.now_ms();
            let quota = gateway::responses::MAX_STORED_BYTES_PER_TENANT;
            if let Err(e) = self.host.store.put_response(&self.response_id, &self.tenant, now_ms, &doc, quota).await {
                tracing::error!(id = %self.response_id, error = %e, "storing an agent's response");
            }
        }
        r
    }

    async fn whole(self, history: Vec<Value>, input: Vec<Value>, options: serde_json::Map<String, Value>) -> Response {
        let outcome = agents::run::run(&self.agent, &self.deps, &self.response_id, history, input, &options, None).await;
        if let Status::Failed(e) = &outcome.status
            && outcome.output.is_empty()
        {
            // Nothing happened yet: the client hears the model's refusal as the gateway said it.
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
            return openai_error(status, "invalid_request_error", &e.code, e.message.clone(), None);
        }
        axum::Json(self.finish(outcome).await).into_response()
    }

    /// The typed event stream: `response.created`, each step's events as they happen, and the
    /// final `response.completed` (or `.incomplete`, `.failed`), numbered in order.
    fn stream(self, history: Vec<Value>, input: Vec<Value>, options: serde_json::Map<String, Value>) -> Response {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        tokio::spawn(async move {
            let mut out = Numbered { seq: 0, client: Some(tx) };
            let pending = gateway::responses::response_object(&self.response_id, self.created_at, &self.req, "in_progress", vec![], None);
            out.send(json!({"type": "response.created", "response": pending})).await;
            out.send(json!({"type": "response.in_progress", "response": pending})).await;
            let (etx, mut erx) = tokio::sync::mpsc::channel::<Value>(256);
            let (agent, deps, id) = (self.agent.clone(), self.deps.clone(), self.response_id.clone());
            let run = tokio::spawn(async move { agents::run::run(&agent, &deps, &id, history, input, &options, Some(etx)).await });
            while let Some(ev) = erx.recv().await {
                out.send(ev).await;
            }
            let outcome = match run.await {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(error = %e, "an agent run ended abnormally");
                    return;
                }
            };
            let done = self.finish(outcome).await;
            let ty = match done["status"].as_str() {
                Some("completed") => "response.completed",
                Some("incomplete") => "response.incomplete",
                _ => "response.failed",
            };
            out.send(json!({"type": ty, "response": done})).await;
        });
        let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut r = Response::new(body);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    }
}

/// Numbers a stream's events and writes them to the client while it listens. A client that
/// left does not stop the run: the response is still stored.
struct Numbered {
    seq: u64,
    client: Option<tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>>,
}

impl Numbered {
    async fn send(&mut self, mut v: Value) {
        let ty = v["type"].as_str().unwrap_or("").to_string();
        v["sequence_number"] = json!(self.seq);
        self.seq += 1;
        let frame = Bytes::from(format!("event: {ty}\ndata: {v}\n\n"));
        if let Some(c) = &self.client
            && c.send(Ok(frame)).await.is_err()
        {
            self.client = None;
        }
    }
}
