//! Agents plugged into the gateway: `POST /v1/responses` with `model: "agent:<id>[@version]"`
//! runs the agent's loop here, each model step a Responses request through the gateway's
//! admission pipeline in-process, as the caller (so the tenant's regions, limits, filings and
//! metering apply to every step), each tool call an event in the usage ledger. The finished
//! response is stored like any other, for `GET /v1/responses/{id}` and `previous_response_id`.

use std::sync::{Arc, Weak};

use agents::run::{BoxFuture, Deps, InMemory, State, Status};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gateway::proxy::openai_error;
use serde_json::{Value, json};

/// Settings a request may pass on to each model step.
const STEP_OPTIONS: [&str; 3] = ["temperature", "top_p", "user"];
/// Items of a request's `input`.
pub const MAX_INPUT_ITEMS: usize = 1000;
/// Items of a conversation carried over by `previous_response_id`, with the new input.
pub const MAX_CONVERSATION_ITEMS: usize = 10_000;

#[derive(Clone)]
pub struct Host {
    /// Weak: the gateway holds this host.
    pub gw: Weak<gateway::Gateway>,
    pub agents: Arc<agents::Agents>,
    pub store: store::Store,
    pub meter: agents::usage::Meter,
    pub http: reqwest::Client,
    pub clock: Arc<dyn vocab::Clock>,
    /// This instance, as the owner of the background runs it leases.
    pub instance: String,
    /// Runs stdio MCP servers in the job sandbox; none where there is no sandbox.
    pub spawner: Option<Arc<dyn agents::mcp::Spawn>>,
    /// The tenants' collections `file_search` searches.
    pub collections: Arc<agents::collections::Collections>,
}

/// The client's headers an agent's steps pass on to the gateway.
pub(crate) const FORWARDED: [&str; 2] = ["x-aiplus-regions", "x-aiplus-end-user"];

/// Claims approvals in the store, per tenant.
struct StoreApprovals {
    store: store::Store,
    tenant: String,
    clock: Arc<dyn vocab::Clock>,
}

impl agents::run::Approvals for StoreApprovals {
    fn claim(&self, id: &str) -> BoxFuture<bool> {
        let (store, tenant, id, now) = (self.store.clone(), self.tenant.clone(), id.to_string(), self.clock.now_ms());
        Box::pin(async move {
            match store.claim_agent_approval(&tenant, &id, now).await {
                Ok(first) => first,
                Err(e) => {
                    // Not claimed, not called: a call is never made that might be made twice.
                    tracing::error!(error = %e, "claiming an approval");
                    false
                }
            }
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
    fn create(&self, caller: gateway::Caller, headers: HeaderMap, req: Value) -> BoxFuture<Response> {
        let host = self.clone();
        let forwarded: Vec<(String, String)> =
            FORWARDED.iter().filter_map(|name| Some((name.to_string(), headers.get(*name)?.to_str().ok()?.to_string()))).collect();
        Box::pin(async move {
            match host.prepare(&caller, req, forwarded).await {
                Ok(p) => p.answer(host).await,
                Err(r) => r,
            }
        })
    }

    fn follow(&self, caller: gateway::Caller, id: String, starting_after: Option<i64>) -> BoxFuture<Option<Response>> {
        let host = self.clone();
        Box::pin(async move { crate::agent_background::follow(host, caller.tenant_id().to_string(), id, starting_after).await })
    }

    fn cancel(&self, caller: gateway::Caller, id: String) -> BoxFuture<Option<Response>> {
        let host = self.clone();
        Box::pin(async move { crate::agent_background::cancel(&host, caller.tenant_id(), &id).await })
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
            "file_search_call",
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

/// A request made ready to run: the agent (with the client's own function tools), the
/// conversation so far, and what each step needs.
pub(crate) struct Prepared {
    pub tenant: String,
    pub principal: String,
    /// The client's headers its steps pass on (kept with a background run for its resumption).
    pub forwarded: Vec<(String, String)>,
    pub agent: agents::Agent,
    pub deps: Deps,
    pub response_id: String,
    pub req: Value,
    pub state: State,
    pub options: serde_json::Map<String, Value>,
    pub created_at: i64,
}

fn not_found(model: &str) -> Response {
    let why = format!("The model '{model}' does not exist");
    openai_error(StatusCode::NOT_FOUND, "invalid_request_error", "model_not_found", why, Some("model"))
}

impl Host {
    /// The agent a request names, with the client's function tools added.
    pub(crate) async fn agent_for(&self, tenant: &str, req: &Value) -> Result<agents::Agent, Response> {
        let model = req["model"].as_str().unwrap_or("");
        let (id, version) = match agents::service::parse_model(model) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(invalid(e.to_string(), "model")),
            None => return Err(invalid("not an agent", "model")),
        };
        let mut agent = match self.agents.get(tenant, &id, version).await {
            Ok(a) => a,
            Err(agents::AgentError::NotFound { .. }) => return Err(not_found(model)),
            Err(e) => return Err(server_error(&e.to_string())),
        };
        client_tools(req, &mut agent.spec).map_err(|(message, param)| invalid(message, &param))?;
        agent.spec.check(&["*".to_string()], true).map_err(|e| invalid(e.to_string(), "tools"))?;
        Ok(agent)
    }

    /// What a run of `agent` for `caller` needs: its model steps go through the gateway as the
    /// caller, its tool calls to the ledger, its tool outputs past the guardrail.
    pub(crate) fn deps(&self, caller: &gateway::Caller, agent: &agents::Agent, forwarded: &[(String, String)]) -> Deps {
        let mut forward: Vec<(&'static str, String)> = Vec::new();
        if !agent.spec.regions.is_empty() {
            forward.push((FORWARDED[0], agent.spec.regions.join(",")));
        }
        for (name, value) in forwarded {
            if let Some(known) = FORWARDED.iter().find(|f| **f == name.as_str()) {
                forward.push((known, value.clone()));
            }
        }
        let recorder = agents::usage::LedgerRecorder {
            meter: self.meter.clone(),
            clock: self.clock.clone(),
            tenant: caller.tenant_id().to_string(),
            principal: caller.id.clone(),
            agent: format!("agent:{}@{}", agent.id, agent.version),
        };
        let guard = self.gw.upgrade().map(|g| Arc::new(move |t: &str| g.guard_blocks(t)) as agents::run::Guard);
        Deps {
            model: Arc::new(crate::agent_model::GatewayModel { gw: self.gw.clone(), caller: caller.clone(), forward }),
            http: self.http.clone(),
            recorder: Arc::new(recorder),
            guard,
            ids: Arc::new(new_id),
            hosts: self.agents.hosts.clone(),
            spawner: self.spawner.clone(),
            approvals: Arc::new(StoreApprovals {
                store: self.store.clone(),
                tenant: caller.tenant_id().to_string(),
                clock: self.clock.clone(),
            }),
            search: Some(Arc::new(agents::collections::Scoped {
                collections: self.collections.clone(),
                caller: caller.clone(),
                tenant: caller.tenant_id().to_string(),
            })),
            stream_steps: true,
        }
    }

    async fn prepare(&self, caller: &gateway::Caller, mut req: Value, forwarded: Vec<(String, String)>) -> Result<Prepared, Response> {
        let tenant = caller.tenant_id().to_string();
        let agent = self.agent_for(&tenant, &req).await?;
        let input = input_items(&req).map_err(|(message, param)| invalid(message, &param))?;
        let conversation = match gateway::conversations::named(&req) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err((param, why))) => return Err(invalid(format!("{param}: {why}"), &param)),
        };
        let history = match req["previous_response_id"].as_str() {
            None if conversation.is_some() => {
                let id = conversation.as_deref().unwrap_or("");
                match gateway::conversations::history(&self.store, &tenant, id).await {
                    Ok(Some(items)) => items,
                    Ok(None) => {
                        let why = format!("Conversation with id '{id}' not found.");
                        return Err(openai_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_request_error",
                            "conversation_not_found",
                            why,
                            Some("conversation"),
                        ));
                    }
                    Err(e) => return Err(server_error(&e.to_string())),
                }
            }
            None => Vec::new(),
            Some(prev) => match self.history(prev, &tenant).await {
                Ok(Some(h)) => h,
                Ok(None) => {
                    let why = format!("Previous response with id '{prev}' not found.");
                    let code = "previous_response_not_found";
                    return Err(openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", code, why, Some("previous_response_id")));
                }
                Err(e) => return Err(server_error(&e)),
            },
        };
        if history.len().saturating_add(input.len()) > MAX_CONVERSATION_ITEMS {
            return Err(invalid(format!("the conversation would pass {MAX_CONVERSATION_ITEMS} items; start a new one"), "input"));
        }
        if req["background"].as_bool() == Some(true) && req["store"].as_bool() == Some(false) {
            return Err(invalid("background responses must be stored (store: true)", "store"));
        }
        let options = step_options(&req);
        let mut deps = self.deps(caller, &agent, &forwarded);
        // A background run's events are stored for whoever follows: its steps are asked whole.
        deps.stream_steps = req["background"].as_bool() != Some(true);
        req["model"] = json!(req["model"].as_str().unwrap_or(""));
        Ok(Prepared {
            tenant,
            principal: caller.id.clone(),
            forwarded,
            agent,
            deps,
            response_id: new_id("resp"),
            req,
            state: State::new(history, input),
            options,
            created_at: now_s(self.clock.as_ref()),
        })
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

/// Adds a finished run's turn to the conversation its request names: the request's input and
/// the response's output.
pub(crate) async fn add_to_conversation(host: &Host, tenant: &str, req: &Value, state: &State) {
    if let Some(Ok(conv)) = gateway::conversations::named(req) {
        let input = input_items(req).unwrap_or_default();
        gateway::conversations::append_turn(&host.store, tenant, &conv, host.clock.now_ms(), &input, &state.output).await;
    }
}

/// The request's settings each model step takes.
pub(crate) fn step_options(req: &Value) -> serde_json::Map<String, Value> {
    STEP_OPTIONS.iter().filter(|k| !req[**k].is_null()).map(|k| (k.to_string(), req[*k].clone())).collect()
}

fn server_error(why: &str) -> Response {
    tracing::error!(error = why, "serving an agent");
    openai_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "store_unavailable", "the agent could not be read now; retry", None)
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The response object of a run's state: in progress, or as it ended.
pub(crate) fn response_of(id: &str, created_at: i64, req: &Value, agent: &agents::Agent, state: &State) -> Value {
    let (status, error, reason) = match &state.status {
        None if state.tools.is_none() => ("queued", Value::Null, Value::Null),
        None => ("in_progress", Value::Null, Value::Null),
        Some(Status::Completed) => ("completed", Value::Null, Value::Null),
        Some(Status::Incomplete(why)) => ("incomplete", Value::Null, json!({"reason": why})),
        Some(Status::Failed(e)) => ("failed", json!({"code": e.code, "message": e.message}), Value::Null),
        Some(Status::Cancelled) => ("cancelled", Value::Null, Value::Null),
    };
    let usage = Some((state.input_tokens, state.output_tokens));
    let mut r = gateway::responses::response_object(id, created_at, req, status, state.output.clone(), usage);
    r["error"] = error;
    r["incomplete_details"] = reason;
    r["background"] = json!(req["background"].as_bool().unwrap_or(false));
    r["agent"] = json!({"id": agent.id, "version": agent.version, "steps": state.steps});
    r
}

/// The stored document of a response: the object, and the conversation for the next one.
pub(crate) fn stored_doc(response: &Value, state: &State) -> String {
    json!({"response": response, "messages": [], "items": state.items}).to_string()
}

impl Prepared {
    async fn answer(self, host: Host) -> Response {
        if self.req["background"].as_bool() == Some(true) {
            return crate::agent_background::start(host, self).await;
        }
        if self.req["stream"].as_bool() == Some(true) {
            return self.stream(host);
        }
        let state = agents::run::run(&self.agent, &self.deps, &self.response_id, self.state.clone(), &self.options, None, &InMemory).await;
        if let Some(Status::Failed(e)) = &state.status
            && state.output.is_empty()
        {
            // Nothing happened yet: the client hears the model's refusal as the gateway said it.
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
            return openai_error(status, "invalid_request_error", &e.code, e.message.clone(), None);
        }
        axum::Json(self.finish(&host, &state).await).into_response()
    }

    /// The response object for a finished run, stored (unless `store: false`) before it is sent.
    async fn finish(&self, host: &Host, state: &State) -> Value {
        let r = response_of(&self.response_id, self.created_at, &self.req, &self.agent, state);
        add_to_conversation(host, &self.tenant, &self.req, state).await;
        if self.req["store"].as_bool() != Some(false) {
            let quota = gateway::responses::MAX_STORED_BYTES_PER_TENANT;
            let doc = stored_doc(&r, state);
            if let Err(e) = host.store.put_response(&self.response_id, &self.tenant, host.clock.now_ms(), &doc, quota).await {
                tracing::error!(id = %self.response_id, error = %e, "storing an agent's response");
            }
        }
        r
    }

    /// The typed event stream: `response.created`, each step's events as they happen, and the
    /// final `response.completed` (or `.incomplete`, `.failed`), numbered in order.
    fn stream(self, host: Host) -> Response {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        tokio::spawn(async move {
            let mut out = Numbered { seq: 0, client: Some(tx) };
            let pending = gateway::responses::response_object(&self.response_id, self.created_at, &self.req, "in_progress", vec![], None);
            out.send(json!({"type": "response.created", "response": pending})).await;
            out.send(json!({"type": "response.in_progress", "response": pending})).await;
            let (etx, mut erx) = tokio::sync::mpsc::channel::<Value>(256);
            let (agent, deps, id, state, options) =
                (self.agent.clone(), self.deps.clone(), self.response_id.clone(), self.state.clone(), self.options.clone());
            let run = tokio::spawn(async move { agents::run::run(&agent, &deps, &id, state, &options, Some(etx), &InMemory).await });
            while let Some(ev) = erx.recv().await {
                out.send(ev).await;
            }
            let state = match run.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "an agent run ended abnormally");
                    return;
                }
            };
            let done = self.finish(&host, &state).await;
            out.send(json!({"type": final_event(&done), "response": done})).await;
        });
        sse(rx)
    }
}

/// The event that ends a stream, by the response's status.
pub(crate) fn final_event(response: &Value) -> &'static str {
    match response["status"].as_str() {
        Some("completed") => "response.completed",
        Some("incomplete") => "response.incomplete",
        Some("cancelled") => "response.cancelled",
        _ => "response.failed",
    }
}

/// An SSE response over a channel of frames.
pub(crate) fn sse(rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Response {
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// An SSE frame of an event.
pub(crate) fn frame(v: &Value) -> Bytes {
    Bytes::from(format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or("")))
}

/// Numbers a stream's events and writes them to the client while it listens. A client that
/// left does not stop the run: the response is still stored.
struct Numbered {
    seq: u64,
    client: Option<tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>>,
}

impl Numbered {
    async fn send(&mut self, mut v: Value) {
        v["sequence_number"] = json!(self.seq);
        self.seq += 1;
        if let Some(c) = &self.client
            && c.send(Ok(frame(&v))).await.is_err()
        {
            self.client = None;
        }
    }
}
