//! The agent loop, run server-side for one Responses request:
//! 1. list each MCP server's tools (an `mcp_list_tools` output item);
//! 2. call the model with the conversation and every tool as a function tool;
//! 3. run the MCP calls it asks for (`mcp_call` items), or stop for the client: a function
//!    tool's `function_call`, or an `mcp_approval_request` for a tool that waits for approval;
//! 4. feed the results back and repeat, until the model answers or a limit is hit.
//!
//! Everything a run has done is its [`State`], saved through a [`Checkpoint`] after every step
//! and call, so a background run resumes after a crash where it was. An MCP call is saved as
//! in flight *before* it is made: a call the crash interrupted is reported to the model as
//! interrupted and never made again, so no tool runs twice. Events for the stream go to an
//! optional channel as they happen; the caller numbers them.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::items::model_input;
use crate::mcp::Client;
use crate::service::Agent;
use crate::spec::{McpServer, Tool};

mod deps;
mod search;
mod stream;
#[cfg(test)]
mod tests;

pub use deps::{Approvals, BoxFuture, Checkpoint, Deps, Guard, InMemory, MemoryApprovals, Model, Record, Recorder, Search, StepError};

/// Separates a server's label from its tool's name in the function name the model sees.
pub const SEPARATOR: &str = "__";
/// The longest time one tool call may take, whatever time the run has left.
pub const MAX_TOOL_CALL_S: u64 = 60;
/// What a denied or guardrail-withheld call tells the model.
pub const DENIED: &str = "The user denied this tool call.";
pub const WITHHELD: &str = "[the tool's output was withheld by the guardrail]";
/// What a call that could not be recorded says (the ledger is behind; nothing was called).
pub const BUSY: &str = "the usage ledger is behind, so the tool was not called; retry shortly";
/// What a call the server's stop interrupted says: it may or may not have run, and is not
/// made again.
pub const INTERRUPTED: &str = "the server stopped during this call; it was not made again, and may or may not have taken effect";

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Status {
    Completed,
    /// A limit stopped it: `max_steps`, `max_output_tokens` or `timeout`.
    Incomplete(String),
    /// A model step failed.
    Failed(StepError),
    /// The client cancelled it (background runs), or another instance took it over: a save
    /// was refused. The caller tells which from the stored record.
    Cancelled,
}

/// Everything a run has done so far; what a checkpoint saves.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// The request's items not yet taken in.
    pub input: Vec<Value>,
    /// The conversation: history, input and what the run added.
    pub items: Vec<Value>,
    /// This response's output items.
    pub output: Vec<Value>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub steps: u32,
    /// The model's tools, once the servers were listed.
    pub tools: Option<Vec<Value>>,
    /// Approval answers (`mcp_approval_response`) and model calls (`function_call`) to act on.
    pub queue: Vec<Value>,
    /// The run stops for the client once the queue is done.
    pub stop: bool,
    /// The model answered without asking for tools.
    pub answered: bool,
    /// The MCP call being made, saved before it is made.
    pub in_flight: Option<Value>,
    /// Time the run has used, over its lives.
    pub elapsed_ms: u64,
    pub status: Option<Status>,
}

impl State {
    /// A new run: the previous response's items, then the request's.
    pub fn new(history: Vec<Value>, input: Vec<Value>) -> Self {
        State { items: history, input, ..State::default() }
    }
}

/// A run in progress.
struct Run<'a> {
    agent: &'a Agent,
    deps: &'a Deps,
    response_id: &'a str,
    events: Option<mpsc::Sender<Value>>,
    checkpoint: &'a dyn Checkpoint,
    clients: std::collections::BTreeMap<String, Client>,
    /// The message a streamed step is writing: opened at its first delta.
    open: Option<stream::Open>,
    s: State,
    started: Instant,
    deadline: Instant,
}

/// Runs (or resumes) an agent on a state. `options` are the request's model settings
/// (temperature, top_p ...), passed on to each step. The returned state carries the status.
pub async fn run(
    agent: &Agent,
    deps: &Deps,
    response_id: &str,
    state: State,
    options: &serde_json::Map<String, Value>,
    events: Option<mpsc::Sender<Value>>,
    checkpoint: &dyn Checkpoint,
) -> State {
    let left_ms = (agent.spec.limits.timeout_s * 1000).saturating_sub(state.elapsed_ms);
    let started = Instant::now();
    let clients = agent
        .spec
        .mcp_servers()
        .filter_map(|s| {
            let client = match (&deps.spawner, s.is_stdio()) {
                (_, false) => Client::new(deps.http.clone(), s.clone()),
                (Some(spawner), true) => Client::stdio(spawner.clone(), &agent.tenant, s.clone()),
                (None, true) => return None,
            };
            Some((s.server_label.clone(), client))
        })
        .collect();
    let deadline = started + Duration::from_millis(left_ms);
    let mut r = Run { agent, deps, response_id, events, checkpoint, clients, open: None, s: state, started, deadline };
    let status = r.go(options).await;
    r.s.status = Some(status);
    r.s.elapsed_ms = r.elapsed_ms();
    r.s
}

impl Run<'_> {
    fn elapsed_ms(&self) -> u64 {
        self.s.elapsed_ms.saturating_add(self.started.elapsed().as_millis() as u64)
    }

    /// Saves the state; false: stop now.
    async fn save(&mut self) -> bool {
        let mut s = self.s.clone();
        s.elapsed_ms = self.elapsed_ms();
        self.checkpoint.save(&s).await
    }

    async fn go(&mut self, options: &serde_json::Map<String, Value>) -> Status {
        if self.s.tools.is_none() {
            self.take_input();
            self.list_tools().await;
            if !self.save().await {
                return Status::Cancelled;
            }
        }
        if let Some(mut call) = self.s.in_flight.take() {
            call["status"] = json!("failed");
            call["error"] = json!(INTERRUPTED);
            // It was attempted, so it is in the ledger (its event was to be written after it).
            if let Some(record) = self.deps.recorder.begin() {
                record(self.response_id, &call, 0);
            }
            let ix = self.s.output.len();
            self.send(json!({"type": "response.mcp_call.failed", "item_id": call["id"], "output_index": ix})).await;
            self.done_item(call).await;
            if !self.save().await {
                return Status::Cancelled;
            }
        }
        let limits = self.agent.spec.limits;
        loop {
            while !self.s.queue.is_empty() {
                let entry = self.s.queue.remove(0);
                let in_time = self.act(entry).await;
                if !self.save().await {
                    return Status::Cancelled;
                }
                if !in_time {
                    return Status::Incomplete("timeout".into());
                }
            }
            if self.s.stop || self.s.answered {
                return Status::Completed;
            }
            if self.s.steps >= limits.max_steps {
                return Status::Incomplete("max_steps".into());
            }
            let left = limits.max_output_tokens.saturating_sub(self.s.output_tokens);
            if left == 0 {
                return Status::Incomplete("max_output_tokens".into());
            }
            self.s.steps += 1;
            let Some(answer) = self.step(self.s.steps, left, options).await else { return Status::Incomplete("timeout".into()) };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    // What streamed before the failure is closed, so every item the stream
                    // opened is done.
                    self.close_open("incomplete").await;
                    return Status::Failed(e);
                }
            };
            // Messages first: a streamed one is already open at the next output index, and is
            // closed (with what streamed, if the answer has no message) before anything follows.
            let (messages, others): (Vec<Value>, Vec<Value>) =
                answer["output"].as_array().cloned().unwrap_or_default().into_iter().partition(|i| i["type"] == "message");
            for item in messages {
                self.emit_message(item).await;
            }
            self.close_open("completed").await;
            for item in others.into_iter().filter(|i| i["type"] == "function_call") {
                if self.runs_here(item["name"].as_str().unwrap_or("")) {
                    self.s.queue.push(item);
                } else {
                    self.s.stop = true;
                    self.emit_item(item).await;
                }
            }
            self.s.answered = self.s.queue.is_empty() && !self.s.stop;
            if !self.save().await {
                return Status::Cancelled;
            }
        }
    }

    /// Takes the request's items into the conversation; approvals answered for the first time
    /// go to the queue. An approval answered before (a client resending the history, or
    /// answering twice) is not acted on again: a tool runs at most once per approval.
    ///
    /// Only a request the server made (in the stored history, not in the client's input) can be
    /// approved: the queued answer carries that request, so a client cannot make up a call.
    fn take_input(&mut self) {
        let mut answered: Vec<Value> =
            self.s.items.iter().filter(|i| i["type"] == "mcp_approval_response").map(|i| i["approval_request_id"].clone()).collect();
        let asked: Vec<Value> = self.s.items.iter().filter(|i| i["type"] == "mcp_approval_request").cloned().collect();
        for item in std::mem::take(&mut self.s.input) {
            if item["type"] == "mcp_approval_response"
                && !answered.contains(&item["approval_request_id"])
                && let Some(request) = asked.iter().find(|r| r["id"] == item["approval_request_id"])
            {
                let mut entry = item.clone();
                entry["request"] = request.clone();
                self.s.queue.push(entry);
                answered.push(item["approval_request_id"].clone());
            }
            self.s.items.push(item);
        }
    }

    /// Acts on one queued entry: an approval answer, or a call the model asked for. False when
    /// the run ran out of time.
    async fn act(&mut self, entry: Value) -> bool {
        if entry["type"] == "mcp_approval_response" {
            return self.answer_approval(&entry).await;
        }
        if entry["name"] == crate::spec::FILE_SEARCH {
            self.file_search(entry["arguments"].as_str().unwrap_or("{}")).await;
            return self.left().is_some();
        }
        let Some((server, tool)) = self.mcp_target(entry["name"].as_str().unwrap_or("")) else { return true };
        if server.require_approval.required(&tool) {
            let req = json!({"type": "mcp_approval_request", "id": (self.deps.ids)("mcpr"),
                "server_label": server.server_label, "name": tool, "arguments": entry["arguments"]});
            self.emit_item(req).await;
            self.s.stop = true;
            return true;
        }
        self.call(&server, &tool, entry["arguments"].as_str().unwrap_or("{}"), None).await
    }

    /// Whether the run makes a call the model asked for itself (an MCP tool, `file_search`),
    /// rather than handing it to the client.
    fn runs_here(&self, function: &str) -> bool {
        (function == crate::spec::FILE_SEARCH && self.agent.spec.file_search().is_some()) || self.mcp_target(function).is_some()
    }

    /// The declared server and tool a function name the model called stands for.
    fn mcp_target(&self, function: &str) -> Option<(McpServer, String)> {
        let (label, tool) = function.split_once(SEPARATOR)?;
        let server = self.agent.spec.mcp_servers().find(|s| s.server_label == label)?;
        server.offers(tool).then(|| (server.clone(), tool.to_string()))
    }

    fn left(&self) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Lists each server's tools: an `mcp_list_tools` item each, and the model's tools.
    async fn list_tools(&mut self) {
        let mut tools = Vec::new();
        for t in &self.agent.spec.tools {
            if let Tool::Function { name, description, parameters } = t {
                tools.push(json!({"type": "function", "name": name, "description": description, "parameters": parameters}));
            }
        }
        if self.agent.spec.file_search().is_some() {
            tools.push(search::function());
        }
        for server in self.agent.spec.mcp_servers() {
            let label = &server.server_label;
            let id = (self.deps.ids)("mcpl");
            let timeout = self.left().unwrap_or_default().min(Duration::from_secs(MAX_TOOL_CALL_S));
            let mut item = json!({"type": "mcp_list_tools", "id": id, "server_label": label, "tools": [], "error": null});
            self.send(json!({"type": "response.mcp_list_tools.in_progress", "item_id": id, "output_index": self.s.output.len()})).await;
            let listed = match (self.allowed(server), self.clients.get(label)) {
                (Err(e), _) => Err(e),
                (Ok(()), Some(c)) => c.list_tools(timeout).await.map_err(|e| e.to_string()),
                (Ok(()), None) => Err(format!("no MCP server {label:?} is declared")),
            };
            match listed {
                Ok(listed) => {
                    for t in &listed {
                        tools.push(json!({"type": "function", "name": format!("{label}{SEPARATOR}{}", t.name),
                            "description": t.description, "parameters": t.input_schema}));
                    }
                    item["tools"] = json!(
                        listed
                            .iter()
                            .map(|t| json!({"name": t.name, "description": t.description,
                        "input_schema": t.input_schema, "annotations": t.annotations}))
                            .collect::<Vec<_>>()
                    );
                    self.send(json!({"type": "response.mcp_list_tools.completed", "item_id": id, "output_index": self.s.output.len()}))
                        .await;
                }
                Err(e) => {
                    item["error"] = json!(e);
                    self.send(json!({"type": "response.mcp_list_tools.failed", "item_id": id, "output_index": self.s.output.len()})).await;
                }
            }
            self.emit_item(item).await;
        }
        self.s.tools = Some(tools);
    }

    /// Whether the operator's allowlist lets the run reach a server now.
    fn allowed(&self, server: &McpServer) -> Result<(), String> {
        if server.is_stdio() {
            return match self.deps.spawner {
                Some(_) => Ok(()),
                None => Err("stdio MCP servers run in the job sandbox, which this server does not have".into()),
            };
        }
        let url = server.server_url.as_deref().unwrap_or_default();
        outbound::check_url(url, self.deps.hosts.allow_local)?;
        crate::spec::host_allowed(url, &self.deps.hosts.allowed_hosts)
    }

    /// A client's first answer to an approval request it was asked: the call runs (approved)
    /// or the model hears it was denied. False when the run ran out of time.
    async fn answer_approval(&mut self, answer: &Value) -> bool {
        let id = answer["approval_request_id"].as_str().unwrap_or("");
        let request = &answer["request"];
        let label = request["server_label"].as_str().unwrap_or("");
        let tool = request["name"].as_str().unwrap_or("").to_string();
        let server = self.agent.spec.mcp_servers().find(|s| s.server_label == label && s.offers(&tool)).cloned();
        match server {
            Some(server) if answer["approve"].as_bool() == Some(true) => {
                // Two requests that carry on from the same response could both hold the answer:
                // only the first to claim the approval makes the call.
                if !self.deps.approvals.claim(id).await {
                    return true;
                }
                let args = request["arguments"].as_str().unwrap_or("{}").to_string();
                self.call(&server, &tool, &args, Some(id)).await
            }
            _ => true,
        }
    }

    /// Calls an MCP tool: an `mcp_call` item, a ledger event. It is saved as in flight before
    /// it is made. False when the run is out of time.
    async fn call(&mut self, server: &McpServer, tool: &str, arguments: &str, approval: Option<&str>) -> bool {
        let Some(left) = self.left() else { return false };
        let id = (self.deps.ids)("mcp");
        let ix = self.s.output.len();
        let mut item = json!({"type": "mcp_call", "id": id, "server_label": server.server_label, "name": tool,
            "arguments": arguments, "output": null, "error": null, "status": "in_progress"});
        if let Some(a) = approval {
            item["approval_request_id"] = json!(a);
        }
        self.s.in_flight = Some(item.clone());
        if !self.save().await {
            // Cancelled or taken over before the call: it is not made.
            self.s.in_flight = None;
            return true;
        }
        self.send(json!({"type": "response.output_item.added", "output_index": ix, "item": item})).await;
        self.send(json!({"type": "response.mcp_call_arguments.done", "item_id": id, "output_index": ix, "arguments": arguments})).await;
        self.send(json!({"type": "response.mcp_call.in_progress", "item_id": id, "output_index": ix})).await;
        let started = Instant::now();
        let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
        let record = self.deps.recorder.begin();
        let result = match (&record, self.allowed(server), self.clients.get(&server.server_label)) {
            (None, ..) => Err(BUSY.to_string()),
            (Some(_), Err(e), _) => Err(e),
            (Some(_), Ok(()), Some(c)) => {
                c.call_tool(tool, args, left.min(Duration::from_secs(MAX_TOOL_CALL_S))).await.map_err(|e| e.to_string())
            }
            (Some(_), Ok(()), None) => Err(format!("no MCP server {:?} is declared", server.server_label)),
        };
        match result {
            Ok(out) if self.deps.guard.as_ref().is_some_and(|g| g(&out.text)) => item["error"] = json!(WITHHELD),
            Ok(out) if out.is_error => item["error"] = json!(out.text),
            Ok(out) => item["output"] = json!(out.text),
            Err(e) => item["error"] = json!(e),
        }
        let failed = !item["error"].is_null();
        item["status"] = json!(if failed { "failed" } else { "completed" });
        if let Some(record) = record {
            record(self.response_id, &item, started.elapsed().as_millis() as u64);
        }
        let ty = if failed { "response.mcp_call.failed" } else { "response.mcp_call.completed" };
        self.send(json!({"type": ty, "item_id": id, "output_index": ix})).await;
        self.s.in_flight = None;
        self.done_item(item).await;
        true
    }

    /// One model step; `None` when the run ran out of time first.
    async fn step(&mut self, n: u32, max_output_tokens: u64, options: &serde_json::Map<String, Value>) -> Option<Result<Value, StepError>> {
        let left = self.left()?;
        let mut body = json!({"model": self.agent.spec.model, "input": model_input(&self.s.items), "store": false,
                              "max_output_tokens": max_output_tokens});
        if !self.agent.spec.instructions.is_empty() {
            body["instructions"] = json!(self.agent.spec.instructions);
        }
        if let Some(tools) = self.s.tools.as_ref().filter(|t| !t.is_empty()) {
            body["tools"] = json!(tools);
        }
        for (k, v) in options {
            body[k.as_str()] = v.clone();
        }
        let step_id = format!("{}/step/{n}", self.response_id);
        let answer = match self.events.is_some() && self.deps.stream_steps {
            true => tokio::time::timeout(left, self.streamed(step_id, body)).await.ok(),
            false => tokio::time::timeout(left, self.deps.model.respond(step_id, body)).await.ok(),
        };
        let Some(answer) = answer else {
            self.close_open("incomplete").await;
            return None;
        };
        if let Ok(a) = &answer {
            self.s.input_tokens = self.s.input_tokens.saturating_add(a["usage"]["input_tokens"].as_u64().unwrap_or(0));
            self.s.output_tokens = self.s.output_tokens.saturating_add(a["usage"]["output_tokens"].as_u64().unwrap_or(0));
        }
        Some(answer)
    }

    async fn send(&self, event: Value) {
        if let Some(tx) = &self.events {
            // A client that left does not stop the run: its result is still stored.
            let _ = tx.send(event).await;
        }
    }

    /// An item that is done: the stream's `output_item.done`, and into output and conversation.
    async fn done_item(&mut self, item: Value) {
        let ix = self.s.output.len();
        self.send(json!({"type": "response.output_item.done", "output_index": ix, "item": item})).await;
        self.s.output.push(item.clone());
        self.s.items.push(item);
    }

    /// An output item that is whole when it appears (a function call, an approval request,
    /// a tool list).
    async fn emit_item(&mut self, item: Value) {
        let ix = self.s.output.len();
        self.send(json!({"type": "response.output_item.added", "output_index": ix, "item": item})).await;
        if item["type"] == "function_call" {
            self.send(json!({"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": ix,
                             "arguments": item["arguments"]}))
                .await;
        }
        self.done_item(item).await;
    }
}
