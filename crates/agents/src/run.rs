//! The agent loop, run server-side for one Responses request:
//! 1. list each MCP server's tools (an `mcp_list_tools` output item);
//! 2. call the model with the conversation and every tool as a function tool;
//! 3. run the MCP calls it asks for (`mcp_call` items), or stop for the client: a function
//!    tool's `function_call`, or an `mcp_approval_request` for a tool that waits for approval;
//! 4. feed the results back and repeat, until the model answers or a limit is hit.
//!
//! The conversation is kept as Responses items, as the client sees them; each model step gets it
//! translated to what a model understands (an `mcp_call` becomes a function call and its
//! output). Events for the stream go to an optional channel as they happen; the caller numbers
//! them and wraps them in the response's own events.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::mcp::Client;
use crate::service::Agent;
use crate::spec::{McpServer, Tool};

/// Separates a server's label from its tool's name in the function name the model sees.
pub const SEPARATOR: &str = "__";
/// The longest time one tool call may take, whatever time the run has left.
pub const MAX_TOOL_CALL_S: u64 = 60;
/// What a denied or guardrail-withheld call tells the model.
pub const DENIED: &str = "The user denied this tool call.";
pub const WITHHELD: &str = "[the tool's output was withheld by the guardrail]";
/// What a call that could not be recorded says (the ledger is behind; nothing was called).
pub const BUSY: &str = "the usage ledger is behind, so the tool was not called; retry shortly";

/// Why a model step failed: the gateway's status and error, passed on to the client.
#[derive(Clone, Debug, PartialEq)]
pub struct StepError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One model step: a non-streaming Responses request through the gateway's admission pipeline,
/// as the run's caller, answered with a Responses object. `step_id` names the step in the ledger.
pub trait Model: Send + Sync {
    fn respond(&self, step_id: String, body: Value) -> BoxFuture<Result<Value, StepError>>;
}

/// Writes a tool call's ledger event once the call is done: (response id, `mcp_call` item,
/// latency in ms).
pub type Record = Box<dyn FnOnce(&str, &Value, u64) + Send>;

/// Records tool calls in the usage ledger (one event per call, by its item id). A place is
/// taken before the call, so a call is never made that could not be recorded.
pub trait Recorder: Send + Sync {
    /// `None` when the ledger is behind: the call is not made.
    fn begin(&self) -> Option<Record>;
}

/// The guardrail on tool outputs: whether a text must not reach the model.
pub type Guard = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a run needs besides the agent and the request.
#[derive(Clone)]
pub struct Deps {
    pub model: Arc<dyn Model>,
    /// The outbound client for MCP servers (no redirects, local addresses as the operator says).
    pub http: reqwest::Client,
    pub recorder: Arc<dyn Recorder>,
    /// The guardrail on tool outputs: whether a text must not reach the model.
    pub guard: Option<Guard>,
    /// Item ids (`mcp_…`, `msg_…`): the caller's, so ids stay unique across instances.
    pub ids: Arc<dyn Fn(&str) -> String + Send + Sync>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Completed,
    /// A limit stopped it: `max_steps`, `max_output_tokens` or `timeout`.
    Incomplete(&'static str),
    /// A model step failed.
    Failed(StepError),
}

/// What a run gives back: its output items, the summed usage of its model steps, the
/// conversation after it (for `previous_response_id`) and how it ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub output: Vec<Value>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub steps: u32,
    pub items: Vec<Value>,
    pub status: Status,
}

/// A run in progress.
struct Run<'a> {
    agent: &'a Agent,
    deps: &'a Deps,
    response_id: &'a str,
    events: Option<mpsc::Sender<Value>>,
    clients: BTreeMap<String, Client>,
    /// The model's function tools: the agent's own and each server's (`label__tool`).
    tools: Vec<Value>,
    items: Vec<Value>,
    output: Vec<Value>,
    input_tokens: u64,
    output_tokens: u64,
    steps: u32,
    deadline: Instant,
}

/// Runs an agent on a conversation: `history` (the items of the previous response, if any)
/// followed by `input` (the request's new items). `options` are the request's model settings
/// (temperature, top_p ...), passed on to each step.
pub async fn run(
    agent: &Agent,
    deps: &Deps,
    response_id: &str,
    history: Vec<Value>,
    input: Vec<Value>,
    options: &serde_json::Map<String, Value>,
    events: Option<mpsc::Sender<Value>>,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(agent.spec.limits.timeout_s);
    let clients = agent.spec.mcp_servers().map(|s| (s.server_label.clone(), Client::new(deps.http.clone(), s.clone()))).collect();
    let mut r = Run {
        agent,
        deps,
        response_id,
        events,
        clients,
        tools: Vec::new(),
        items: history,
        output: Vec::new(),
        input_tokens: 0,
        output_tokens: 0,
        steps: 0,
        deadline,
    };
    let status = r.go(input, options).await;
    Outcome { output: r.output, input_tokens: r.input_tokens, output_tokens: r.output_tokens, steps: r.steps, items: r.items, status }
}

impl Run<'_> {
    async fn go(&mut self, input: Vec<Value>, options: &serde_json::Map<String, Value>) -> Status {
        // An approval answered before (a client resending the history, or answering twice) is
        // not acted on again: a tool runs at most once per approval.
        let answered: Vec<Value> =
            self.items.iter().filter(|i| i["type"] == "mcp_approval_response").map(|i| i["approval_request_id"].clone()).collect();
        let mut answers = Vec::new();
        for item in input {
            if item["type"] == "mcp_approval_response" && !answered.contains(&item["approval_request_id"]) {
                answers.push(item.clone());
            }
            self.items.push(item);
        }
        self.list_tools().await;
        for answer in answers {
            if let Some(status) = self.answer_approval(&answer).await {
                return status;
            }
        }
        let limits = self.agent.spec.limits;
        loop {
            if self.steps >= limits.max_steps {
                return Status::Incomplete("max_steps");
            }
            let left = limits.max_output_tokens.saturating_sub(self.output_tokens);
            if left == 0 {
                return Status::Incomplete("max_output_tokens");
            }
            self.steps += 1;
            let Some(answer) = self.step(self.steps, left, options).await else { return Status::Incomplete("timeout") };
            let answer = match answer {
                Ok(a) => a,
                Err(e) => return Status::Failed(e),
            };
            let mut pending = Vec::new();
            let mut stop_for_client = false;
            for item in answer["output"].as_array().cloned().unwrap_or_default() {
                match item["type"].as_str() {
                    Some("function_call") => match self.mcp_target(item["name"].as_str().unwrap_or("")) {
                        Some((server, tool)) => pending.push((server, tool, item)),
                        None => {
                            stop_for_client = true;
                            self.emit_item(item).await;
                        }
                    },
                    Some("message") => self.emit_message(item).await,
                    _ => {}
                }
            }
            if pending.is_empty() && !stop_for_client {
                return Status::Completed;
            }
            for (server, tool, call) in pending {
                if server.require_approval.required(&tool) {
                    let req = json!({"type": "mcp_approval_request", "id": (self.deps.ids)("mcpr"),
                        "server_label": server.server_label, "name": tool, "arguments": call["arguments"]});
                    self.emit_item(req).await;
                    stop_for_client = true;
                } else if !self.call(&server, &tool, call["arguments"].as_str().unwrap_or("{}"), None).await {
                    return Status::Incomplete("timeout");
                }
            }
            if stop_for_client {
                return Status::Completed;
            }
        }
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
        for t in &self.agent.spec.tools {
            if let Tool::Function { name, description, parameters } = t {
                self.tools.push(json!({"type": "function", "name": name, "description": description, "parameters": parameters}));
            }
        }
        let labels: Vec<String> = self.clients.keys().cloned().collect();
        for label in labels {
            let id = (self.deps.ids)("mcpl");
            let timeout = self.left().unwrap_or_default().min(Duration::from_secs(MAX_TOOL_CALL_S));
            let mut item = json!({"type": "mcp_list_tools", "id": id, "server_label": label, "tools": [], "error": null});
            self.send(json!({"type": "response.mcp_list_tools.in_progress", "item_id": id, "output_index": self.output.len()})).await;
            let listed = match self.clients.get(&label) {
                Some(c) => c.list_tools(timeout).await,
                None => continue,
            };
            match listed {
                Ok(tools) => {
                    for t in &tools {
                        self.tools.push(json!({"type": "function", "name": format!("{label}{SEPARATOR}{}", t.name),
                            "description": t.description, "parameters": t.input_schema}));
                    }
                    item["tools"] = json!(
                        tools
                            .iter()
                            .map(|t| json!({"name": t.name, "description": t.description,
                        "input_schema": t.input_schema, "annotations": t.annotations}))
                            .collect::<Vec<_>>()
                    );
                    self.send(json!({"type": "response.mcp_list_tools.completed", "item_id": id, "output_index": self.output.len()})).await;
                }
                Err(e) => {
                    item["error"] = json!(e.to_string());
                    self.send(json!({"type": "response.mcp_list_tools.failed", "item_id": id, "output_index": self.output.len()})).await;
                }
            }
            self.emit_item(item).await;
        }
    }

    /// A client's first answer to an approval request it was asked: the call runs (approved)
    /// or the model hears it was denied. `Some` ends the run (out of time).
    async fn answer_approval(&mut self, answer: &Value) -> Option<Status> {
        let id = answer["approval_request_id"].as_str().unwrap_or("");
        let request = self.items.iter().find(|i| i["type"] == "mcp_approval_request" && i["id"] == id).cloned()?;
        let label = request["server_label"].as_str().unwrap_or("");
        let tool = request["name"].as_str().unwrap_or("").to_string();
        let server = self.agent.spec.mcp_servers().find(|s| s.server_label == label).cloned();
        match server {
            Some(server) if answer["approve"].as_bool() == Some(true) => {
                let args = request["arguments"].as_str().unwrap_or("{}").to_string();
                (!self.call(&server, &tool, &args, Some(id)).await).then_some(Status::Incomplete("timeout"))
            }
            _ => None,
        }
    }

    /// Calls an MCP tool: an `mcp_call` item, a ledger event. False when the run is out of time.
    async fn call(&mut self, server: &McpServer, tool: &str, arguments: &str, approval: Option<&str>) -> bool {
        let Some(left) = self.left() else { return false };
        let id = (self.deps.ids)("mcp");
        let ix = self.output.len();
        let mut item = json!({"type": "mcp_call", "id": id, "server_label": server.server_label, "name": tool,
            "arguments": arguments, "output": null, "error": null, "status": "in_progress"});
        if let Some(a) = approval {
            item["approval_request_id"] = json!(a);
        }
        self.send(json!({"type": "response.output_item.added", "output_index": ix, "item": item})).await;
        self.send(json!({"type": "response.mcp_call_arguments.done", "item_id": id, "output_index": ix, "arguments": arguments})).await;
        self.send(json!({"type": "response.mcp_call.in_progress", "item_id": id, "output_index": ix})).await;
        let started = Instant::now();
        let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
        let record = self.deps.recorder.begin();
        let result = match (&record, self.clients.get(&server.server_label)) {
            (None, _) => Err(BUSY.to_string()),
            (Some(_), Some(c)) => c.call_tool(tool, args, left.min(Duration::from_secs(MAX_TOOL_CALL_S))).await.map_err(|e| e.to_string()),
            (Some(_), None) => Err(format!("no MCP server {:?} is declared", server.server_label)),
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
        self.send(json!({"type": "response.output_item.done", "output_index": ix, "item": item})).await;
        self.output.push(item.clone());
        self.items.push(item);
        true
    }

    /// One model step; `None` when the run ran out of time first.
    async fn step(&mut self, n: u32, max_output_tokens: u64, options: &serde_json::Map<String, Value>) -> Option<Result<Value, StepError>> {
        let left = self.left()?;
        let mut body = json!({"model": self.agent.spec.model, "input": model_input(&self.items), "store": false,
                              "max_output_tokens": max_output_tokens});
        if !self.agent.spec.instructions.is_empty() {
            body["instructions"] = json!(self.agent.spec.instructions);
        }
        if !self.tools.is_empty() {
            body["tools"] = json!(self.tools);
        }
        for (k, v) in options {
            body[k.as_str()] = v.clone();
        }
        let step = self.deps.model.respond(format!("{}/step/{n}", self.response_id), body);
        let answer = tokio::time::timeout(left, step).await.ok()?;
        if let Ok(a) = &answer {
            self.input_tokens = self.input_tokens.saturating_add(a["usage"]["input_tokens"].as_u64().unwrap_or(0));
            self.output_tokens = self.output_tokens.saturating_add(a["usage"]["output_tokens"].as_u64().unwrap_or(0));
        }
        Some(answer)
    }

    async fn send(&self, event: Value) {
        if let Some(tx) = &self.events {
            // A client that left does not stop the run: its result is still stored.
            let _ = tx.send(event).await;
        }
    }

    /// An output item that is whole when it appears (a function call, an approval request,
    /// a tool list).
    async fn emit_item(&mut self, item: Value) {
        let ix = self.output.len();
        self.send(json!({"type": "response.output_item.added", "output_index": ix, "item": item})).await;
        if item["type"] == "function_call" {
            self.send(json!({"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": ix,
                             "arguments": item["arguments"]}))
                .await;
        }
        self.send(json!({"type": "response.output_item.done", "output_index": ix, "item": item})).await;
        self.output.push(item.clone());
        self.items.push(item);
    }

    /// A message from the model, with the text events a streaming client expects.
    async fn emit_message(&mut self, item: Value) {
        let ix = self.output.len();
        let id = item["id"].clone();
        let text: String = item["content"].as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()).collect();
        let mut open = item.clone();
        open["status"] = json!("in_progress");
        open["content"] = json!([]);
        let part = json!({"type": "output_text", "text": "", "annotations": []});
        self.send(json!({"type": "response.output_item.added", "output_index": ix, "item": open})).await;
        self.send(json!({"type": "response.content_part.added", "item_id": id, "output_index": ix, "content_index": 0, "part": part}))
            .await;
        self.send(json!({"type": "response.output_text.delta", "item_id": id, "output_index": ix, "content_index": 0, "delta": text, "logprobs": []}))
            .await;
        self.send(json!({"type": "response.output_text.done", "item_id": id, "output_index": ix, "content_index": 0, "text": text, "logprobs": []}))
            .await;
        let part = json!({"type": "output_text", "text": text, "annotations": []});
        self.send(json!({"type": "response.content_part.done", "item_id": id, "output_index": ix, "content_index": 0, "part": part})).await;
        self.send(json!({"type": "response.output_item.done", "output_index": ix, "item": item})).await;
        self.output.push(item.clone());
        self.items.push(item);
    }
}

/// The conversation as a model sees it: messages, function calls and their outputs. An MCP
/// call is a function call (`label__tool`) with its output or error; an approval request is a
/// call whose output comes with the answer (or says it was denied, or is still pending).
pub fn model_input(items: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        match it["type"].as_str().unwrap_or("message") {
            "mcp_list_tools" | "mcp_approval_response" => {}
            "mcp_call" => {
                let call_id = it["id"].as_str().unwrap_or("");
                let name = format!("{}{SEPARATOR}{}", it["server_label"].as_str().unwrap_or(""), it["name"].as_str().unwrap_or(""));
                out.push(json!({"type": "function_call", "call_id": call_id, "name": name, "arguments": it["arguments"]}));
                let output = match it["output"].as_str() {
                    Some(o) => o.to_string(),
                    None => format!("error: {}", it["error"].as_str().unwrap_or("the call failed")),
                };
                out.push(json!({"type": "function_call_output", "call_id": call_id, "output": output}));
            }
            "mcp_approval_request" => {
                // An approved call is followed by its `mcp_call`, which speaks for it; a denied
                // one tells the model so; an unanswered one is left out.
                let id = &it["id"];
                let answer = items[i..].iter().find(|a| a["type"] == "mcp_approval_response" && a["approval_request_id"] == *id);
                if answer.is_some_and(|a| a["approve"].as_bool() != Some(true)) {
                    let name = format!("{}{SEPARATOR}{}", it["server_label"].as_str().unwrap_or(""), it["name"].as_str().unwrap_or(""));
                    let call_id = id.as_str().unwrap_or("");
                    out.push(json!({"type": "function_call", "call_id": call_id, "name": name, "arguments": it["arguments"]}));
                    out.push(json!({"type": "function_call_output", "call_id": call_id, "output": DENIED}));
                }
            }
            "message" => {
                // Output messages carry ids and statuses the model does not need.
                out.push(json!({"type": "message", "role": it["role"], "content": it["content"]}));
            }
            _ => out.push(it.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::spec::AgentSpec;

    /// A model double that answers from a script: each step takes the next answer (a list of
    /// output items) and reports 10 input and `out` output tokens; it records what it was asked.
    struct Scripted {
        answers: Mutex<Vec<Vec<Value>>>,
        out: u64,
        delay_ms: u64,
        asked: Mutex<Vec<(String, Value)>>,
    }

    impl Model for Scripted {
        fn respond(&self, step_id: String, body: Value) -> BoxFuture<Result<Value, StepError>> {
            self.asked.lock().unwrap().push((step_id, body));
            let next = {
                let mut a = self.answers.lock().unwrap();
                if a.is_empty() { vec![message("fallback")] } else { a.remove(0) }
            };
            let (out, delay_ms) = (self.out, self.delay_ms);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Ok(json!({"output": next, "usage": {"input_tokens": 10, "output_tokens": out}}))
            })
        }
    }

    struct NoLedger;
    impl Recorder for NoLedger {
        fn begin(&self) -> Option<Record> {
            Some(Box::new(|_, _, _| {}))
        }
    }

    fn message(text: &str) -> Value {
        json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]})
    }

    fn function_call(name: &str) -> Value {
        json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name, "arguments": "{}", "status": "completed"})
    }

    fn setup(spec: Value, answers: Vec<Vec<Value>>, out: u64, delay_ms: u64) -> (Agent, Deps, Arc<Scripted>) {
        let spec: AgentSpec = serde_json::from_value(spec).unwrap();
        let agent = Agent { tenant: "t".into(), id: "a".into(), version: 1, created_ms: 0, spec };
        let model = Arc::new(Scripted { answers: Mutex::new(answers), out, delay_ms, asked: Mutex::new(Vec::new()) });
        let deps = Deps {
            model: model.clone(),
            http: reqwest::Client::new(),
            recorder: Arc::new(NoLedger),
            guard: None,
            ids: Arc::new(|p: &str| format!("{p}_x")),
        };
        (agent, deps, model)
    }

    fn user(text: &str) -> Vec<Value> {
        vec![json!({"type": "message", "role": "user", "content": text})]
    }

    #[tokio::test]
    async fn a_function_call_goes_back_to_the_client_and_usage_sums_the_steps() {
        let spec = json!({"model": "m", "instructions": "be kind", "tools": [{"type": "function", "name": "lookup"}]});
        let (agent, deps, model) = setup(spec, vec![vec![function_call("lookup")]], 3, 0);
        let o = run(&agent, &deps, "resp_1", vec![], user("hi"), &serde_json::Map::new(), None).await;
        assert_eq!(o.status, Status::Completed);
        assert_eq!(o.output.len(), 1);
        assert_eq!(o.output[0]["type"], "function_call");
        assert_eq!((o.steps, o.input_tokens, o.output_tokens), (1, 10, 3));
        let asked = model.asked.lock().unwrap().clone();
        assert_eq!(asked[0].0, "resp_1/step/1");
        assert_eq!(asked[0].1["instructions"], "be kind");
        assert_eq!(asked[0].1["tools"][0]["name"], "lookup");
        assert_eq!(asked[0].1["store"], false);
        // The client's output continues it: the model sees the call and its output.
        let (agent, deps, model) = setup(json!({"model": "m"}), vec![vec![message("done")]], 3, 0);
        let output = json!({"type": "function_call_output", "call_id": "call_1", "output": "42"});
        let o2 = run(&agent, &deps, "resp_2", o.items, vec![output], &serde_json::Map::new(), None).await;
        assert_eq!(o2.status, Status::Completed);
        let input = &model.asked.lock().unwrap()[0].1["input"];
        let types: Vec<&str> = input.as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap_or("message")).collect();
        assert_eq!(types, ["message", "function_call", "function_call_output"]);
    }

    #[tokio::test]
    async fn limits_stop_a_run_as_incomplete() {
        // A model that asks for a server tool every step never answers by itself: the calls
        // fail (nothing listens on port 9) and the model is asked again until max_steps.
        let spec = json!({"model": "m", "limits": {"max_steps": 3},
            "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}]});
        let calls: Vec<Vec<Value>> = (0..5).map(|_| vec![function_call("s__x")]).collect();
        let (agent, deps, model) = setup(spec, calls, 1, 0);
        let o = run(&agent, &deps, "r", vec![], user("go"), &serde_json::Map::new(), None).await;
        assert_eq!(o.status, Status::Incomplete("max_steps"));
        assert_eq!(model.asked.lock().unwrap().len(), 3);
        let failed: Vec<&Value> = o.output.iter().filter(|i| i["type"] == "mcp_call").collect();
        assert_eq!(failed.len(), 3);
        assert!(failed.iter().all(|c| c["status"] == "failed" && c["error"].is_string()), "{failed:?}");

        let spec = json!({"model": "m", "limits": {"max_output_tokens": 5},
            "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}]});
        let calls: Vec<Vec<Value>> = (0..5).map(|_| vec![function_call("s__x")]).collect();
        let (agent, deps, model) = setup(spec, calls, 3, 0);
        let o = run(&agent, &deps, "r", vec![], user("go"), &serde_json::Map::new(), None).await;
        assert_eq!(o.status, Status::Incomplete("max_output_tokens"));
        let asked = model.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 2, "3 + 3 tokens pass the limit of 5");
        assert_eq!(asked[1].1["max_output_tokens"], 2, "each step may use only what is left");

        let spec = json!({"model": "m", "limits": {"timeout_s": 1}});
        let (agent, deps, _) = setup(spec, vec![vec![message("late")]], 1, 3000);
        let o = run(&agent, &deps, "r", vec![], user("go"), &serde_json::Map::new(), None).await;
        assert_eq!(o.status, Status::Incomplete("timeout"));
    }

    #[tokio::test]
    async fn an_approval_request_stops_the_run_and_a_denial_reaches_the_model() {
        let spec = json!({"model": "m", "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp"}]});
        let (agent, deps, _) = setup(spec.clone(), vec![vec![function_call("s__rm")]], 1, 0);
        let o = run(&agent, &deps, "r1", vec![], user("go"), &serde_json::Map::new(), None).await;
        let kinds: Vec<&str> = o.output.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["mcp_list_tools", "mcp_approval_request"], "the server is unreachable, yet the call waits for approval");
        assert!(o.output[0]["error"].is_string(), "listing an unreachable server is reported on its item");
        let request = o.output[1]["id"].clone();
        let (agent, deps, model) = setup(spec, vec![vec![message("ok")]], 1, 0);
        let deny = json!({"type": "mcp_approval_response", "approval_request_id": request, "approve": false});
        let o2 = run(&agent, &deps, "r2", o.items, vec![deny], &serde_json::Map::new(), None).await;
        assert_eq!(o2.status, Status::Completed);
        assert!(o2.output.iter().all(|i| i["type"] != "mcp_call"), "a denied call is never made");
        let input = model.asked.lock().unwrap()[0].1["input"].clone();
        assert_eq!(input.as_array().unwrap().last().unwrap()["output"], DENIED);
    }

    #[tokio::test]
    async fn stream_events_follow_the_items() {
        let (agent, deps, _) = setup(json!({"model": "m"}), vec![vec![message("hello")]], 1, 0);
        let (tx, mut rx) = mpsc::channel(64);
        let o = run(&agent, &deps, "r", vec![], user("hi"), &serde_json::Map::new(), Some(tx)).await;
        let mut types = Vec::new();
        while let Ok(e) = rx.try_recv() {
            types.push(e["type"].as_str().unwrap().to_string());
        }
        assert_eq!(
            types,
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done"
            ]
        );
        assert_eq!(o.output[0]["content"][0]["text"], "hello");
    }

    #[test]
    fn the_model_sees_mcp_calls_as_function_calls() {
        let items = vec![
            json!({"type": "message", "role": "user", "content": "go"}),
            json!({"type": "mcp_list_tools", "id": "l", "server_label": "s", "tools": []}),
            json!({"type": "mcp_call", "id": "mcp_1", "server_label": "s", "name": "add", "arguments": "{}", "output": "5", "error": null}),
            json!({"type": "mcp_call", "id": "mcp_2", "server_label": "s", "name": "bad", "arguments": "{}", "output": null, "error": "boom"}),
            json!({"type": "mcp_approval_request", "id": "r1", "server_label": "s", "name": "rm", "arguments": "{}"}),
        ];
        let m = model_input(&items);
        let summary: Vec<String> = m
            .iter()
            .map(|i| format!("{}:{}", i["type"].as_str().unwrap(), i["name"].as_str().or(i["output"].as_str()).unwrap_or("")))
            .collect();
        assert_eq!(
            summary,
            ["message:", "function_call:s__add", "function_call_output:5", "function_call:s__bad", "function_call_output:error: boom"],
            "an unanswered approval request is left out"
        );
    }
}
