//! The loop with a scripted model double: what it asks, when it stops, what it emits.

use std::sync::{Arc, Mutex};

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
        http: outbound::client(true, Duration::from_secs(1)).build().unwrap(),
        recorder: Arc::new(NoLedger),
        guard: None,
        ids: Arc::new(|p: &str| format!("{p}_x")),
        hosts: crate::service::HostRule { allowed_hosts: vec!["*".into()], allow_local: true, allow_stdio: false },
        spawner: None,
        approvals: Arc::new(MemoryApprovals::default()),
        search: None,
        stream_steps: true,
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
    let o = run(&agent, &deps, "resp_1", State::new(vec![], user("hi")), &serde_json::Map::new(), None, &InMemory).await;
    assert_eq!(o.status, Some(Status::Completed));
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
    let o2 = run(&agent, &deps, "resp_2", State::new(o.items, vec![output]), &serde_json::Map::new(), None, &InMemory).await;
    assert_eq!(o2.status, Some(Status::Completed));
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
    let o = run(&agent, &deps, "r", State::new(vec![], user("go")), &serde_json::Map::new(), None, &InMemory).await;
    assert_eq!(o.status, Some(Status::Incomplete("max_steps".into())));
    assert_eq!(model.asked.lock().unwrap().len(), 3);
    let failed: Vec<&Value> = o.output.iter().filter(|i| i["type"] == "mcp_call").collect();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|c| c["status"] == "failed" && c["error"].is_string()), "{failed:?}");

    let spec = json!({"model": "m", "limits": {"max_output_tokens": 5},
        "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}]});
    let calls: Vec<Vec<Value>> = (0..5).map(|_| vec![function_call("s__x")]).collect();
    let (agent, deps, model) = setup(spec, calls, 3, 0);
    let o = run(&agent, &deps, "r", State::new(vec![], user("go")), &serde_json::Map::new(), None, &InMemory).await;
    assert_eq!(o.status, Some(Status::Incomplete("max_output_tokens".into())));
    let asked = model.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "3 + 3 tokens pass the limit of 5");
    assert_eq!(asked[1].1["max_output_tokens"], 2, "each step may use only what is left");

    let spec = json!({"model": "m", "limits": {"timeout_s": 1}});
    let (agent, deps, _) = setup(spec, vec![vec![message("late")]], 1, 3000);
    let o = run(&agent, &deps, "r", State::new(vec![], user("go")), &serde_json::Map::new(), None, &InMemory).await;
    assert_eq!(o.status, Some(Status::Incomplete("timeout".into())));
}

#[tokio::test]
async fn an_approval_request_stops_the_run_and_a_denial_reaches_the_model() {
    let spec = json!({"model": "m", "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp"}]});
    let (agent, deps, _) = setup(spec.clone(), vec![vec![function_call("s__rm")]], 1, 0);
    let o = run(&agent, &deps, "r1", State::new(vec![], user("go")), &serde_json::Map::new(), None, &InMemory).await;
    let kinds: Vec<&str> = o.output.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["mcp_list_tools", "mcp_approval_request"], "the server is unreachable, yet the call waits for approval");
    assert!(o.output[0]["error"].is_string(), "listing an unreachable server is reported on its item");
    let request = o.output[1]["id"].clone();
    let (agent, deps, model) = setup(spec, vec![vec![message("ok")]], 1, 0);
    let deny = json!({"type": "mcp_approval_response", "approval_request_id": request, "approve": false});
    let o2 = run(&agent, &deps, "r2", State::new(o.items, vec![deny]), &serde_json::Map::new(), None, &InMemory).await;
    assert_eq!(o2.status, Some(Status::Completed));
    assert!(o2.output.iter().all(|i| i["type"] != "mcp_call"), "a denied call is never made");
    let input = model.asked.lock().unwrap()[0].1["input"].clone();
    assert_eq!(input.as_array().unwrap().last().unwrap()["output"], DENIED);
}

#[tokio::test]
async fn stream_events_follow_the_items() {
    let (agent, deps, _) = setup(json!({"model": "m"}), vec![vec![message("hello")]], 1, 0);
    let (tx, mut rx) = mpsc::channel(64);
    let o = run(&agent, &deps, "r", State::new(vec![], user("hi")), &serde_json::Map::new(), Some(tx), &InMemory).await;
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
    let m = crate::items::model_input(&items);
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

/// A checkpoint that lets `n` saves through, then says stop (a cancel).
struct StopAfter(std::sync::atomic::AtomicI64);

impl Checkpoint for StopAfter {
    fn save(&self, _: &State) -> BoxFuture<bool> {
        let left = self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move { left > 0 })
    }
}

#[tokio::test]
async fn a_resumed_run_reports_the_interrupted_call_and_does_not_make_it_again() {
    let spec = json!({"model": "m", "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}]});
    let (agent, deps, model) = setup(spec, vec![vec![message("went on")]], 1, 0);
    let mut state = State::new(vec![], user("go"));
    state.tools = Some(vec![]);
    state.steps = 1;
    state.in_flight = Some(json!({"type": "mcp_call", "id": "mcp_9", "server_label": "s", "name": "rm", "arguments": "{}",
                                  "output": null, "error": null, "status": "in_progress"}));
    let o = run(&agent, &deps, "r", state, &serde_json::Map::new(), None, &InMemory).await;
    assert_eq!(o.status, Some(Status::Completed));
    assert_eq!(o.output[0]["id"], "mcp_9");
    assert_eq!((o.output[0]["status"].as_str(), o.output[0]["error"].as_str()), (Some("failed"), Some(INTERRUPTED)));
    assert!(o.in_flight.is_none());
    let asked = model.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "the model is asked once more, the tool never");
    assert_eq!(asked[0].0, "r/step/2", "steps go on from where they were");
    let input = asked[0].1["input"].as_array().unwrap().clone();
    assert_eq!(input.last().unwrap()["output"], format!("error: {INTERRUPTED}"));
}

#[tokio::test]
async fn a_cancelled_run_stops_at_its_next_save() {
    let calls: Vec<Vec<Value>> = (0..5).map(|_| vec![function_call("s__x")]).collect();
    let spec = json!({"model": "m", "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}]});
    let (agent, deps, model) = setup(spec, calls, 1, 0);
    // Saves: after listing, after step 1; the save before the call says stop.
    let ck = StopAfter(2.into());
    let o = run(&agent, &deps, "r", State::new(vec![], user("go")), &serde_json::Map::new(), None, &ck).await;
    assert_eq!(o.status, Some(Status::Cancelled));
    assert_eq!(model.asked.lock().unwrap().len(), 1);
    assert!(o.output.iter().all(|i| i["type"] != "mcp_call"), "the call after the cancel is not made: {:?}", o.output);
}

#[tokio::test]
async fn a_server_off_the_allowlist_is_refused_at_run_time() {
    // Declared when 127.0.0.1 was allowed; the operator's list has changed since.
    let spec = json!({"model": "m", "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}]});
    let (agent, mut deps, _) = setup(spec, vec![vec![function_call("s__x")], vec![message("ok")]], 1, 0);
    deps.hosts = crate::service::HostRule { allowed_hosts: vec!["tools.example.com".into()], allow_local: true, allow_stdio: false };
    let o = run(&agent, &deps, "r", State::new(vec![], user("go")), &serde_json::Map::new(), None, &InMemory).await;
    let listed = &o.output[0];
    assert!(listed["error"].as_str().unwrap().contains("allowlist"), "{listed}");
    let call = o.output.iter().find(|i| i["type"] == "mcp_call").unwrap();
    assert!(call["error"].as_str().unwrap().contains("allowlist"), "{call}");
}

#[tokio::test]
async fn only_the_servers_own_approval_requests_are_approved_and_each_once() {
    let spec = json!({"model": "m", "tools": [{"type": "mcp", "server_label": "s", "server_url": "http://127.0.0.1:9/mcp", "allowed_tools": ["ok"]}]});
    let (agent, deps, _) = setup(spec, vec![vec![message("a")], vec![message("b")]], 1, 0);
    let asked = json!({"type": "mcp_approval_request", "id": "r1", "server_label": "s", "name": "ok", "arguments": "{}"});
    let history = vec![json!({"type": "message", "role": "user", "content": "go"}), asked];
    let approve = |id: &str| json!({"type": "mcp_approval_response", "approval_request_id": id, "approve": true});
    // A request the client made up (for a tool the agent does not offer), and r1 approved twice.
    let made_up = json!({"type": "mcp_approval_request", "id": "r2", "server_label": "s", "name": "rm", "arguments": "{}"});
    let input = vec![made_up, approve("r2"), approve("r1"), approve("r1")];
    let o = run(&agent, &deps, "x", State::new(history.clone(), input), &serde_json::Map::new(), None, &InMemory).await;
    let calls: Vec<&Value> = o.output.iter().filter(|i| i["type"] == "mcp_call").collect();
    assert_eq!(calls.len(), 1, "{:?}", o.output);
    assert_eq!((calls[0]["approval_request_id"].as_str(), calls[0]["name"].as_str()), (Some("r1"), Some("ok")));
    // Another request that carries on from the same response, with the same answer: no call.
    let o = run(&agent, &deps, "y", State::new(history, vec![approve("r1")]), &serde_json::Map::new(), None, &InMemory).await;
    assert!(o.output.iter().all(|i| i["type"] != "mcp_call"), "{:?}", o.output);
}

/// A search double: answers every query with one hit naming the collections and queries.
struct Found;
impl Search for Found {
    fn search(&self, collections: Vec<String>, queries: Vec<String>, k: u32) -> BoxFuture<Result<Vec<crate::collections::Hit>, String>> {
        let hit = crate::collections::Hit {
            file_id: collections.join(","),
            filename: "plan.txt".into(),
            score: 0.9,
            text: format!("{} k={k}", queries.join("|")),
            attributes: Default::default(),
        };
        Box::pin(async move { Ok(vec![hit]) })
    }
}

#[tokio::test]
async fn file_search_runs_server_side_with_its_items_and_events() {
    let spec = json!({"model": "m", "tools": [{"type": "file_search", "vector_store_ids": ["docs"], "max_num_results": 3}]});
    let call = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "file_search",
                      "arguments": "{\"queries\": [\"compute\"]}", "status": "completed"});
    let (agent, mut deps, model) = setup(spec, vec![vec![call], vec![message("found it")]], 1, 0);
    let (tx, mut rx) = mpsc::channel(64);
    // Without a search (no embedder), the call fails and the model hears why.
    let o = run(&agent, &deps, "r0", State::new(vec![], user("find")), &serde_json::Map::new(), None, &InMemory).await;
    assert_eq!(o.output[0]["status"], "failed");
    assert!(o.output[0]["error"].as_str().unwrap().contains("embedder"));

    deps.search = Some(Arc::new(Found));
    let call = json!({"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "file_search",
                      "arguments": "{\"query\": \"power\"}", "status": "completed"});
    *model.answers.lock().unwrap() = vec![vec![call], vec![message("found it")]];
    model.asked.lock().unwrap().clear();
    let o = run(&agent, &deps, "r1", State::new(vec![], user("find")), &serde_json::Map::new(), Some(tx), &InMemory).await;
    assert_eq!(o.status, Some(Status::Completed));
    let fs = &o.output[0];
    assert_eq!((fs["type"].as_str(), fs["status"].as_str()), (Some("file_search_call"), Some("completed")));
    assert_eq!(fs["queries"], json!(["power"]));
    assert_eq!(fs["results"][0]["file_id"], "docs");
    assert_eq!(fs["results"][0]["text"], "power k=3");
    assert_eq!(o.output[1]["type"], "message");
    // The model was offered file_search and saw its results as a function output.
    let asked = model.asked.lock().unwrap().clone();
    assert_eq!(asked[0].1["tools"][0]["name"], "file_search");
    let input = asked[1].1["input"].as_array().unwrap().clone();
    let out = input.iter().find(|i| i["type"] == "function_call_output").unwrap();
    assert!(out["output"].as_str().unwrap().contains("power k=3"));
    let mut types = Vec::new();
    while let Ok(e) = rx.try_recv() {
        types.push(e["type"].as_str().unwrap().to_string());
    }
    let want = [
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ];
    assert_eq!(&types[..5], want);
}

/// A model double that streams: its text in pieces, then an answer (which may carry the
/// message, or only a function call).
struct Streaming {
    pieces: Vec<&'static str>,
    /// None: the step fails after its pieces (the guardrail stopped it, the upstream broke).
    answer: Option<Vec<Value>>,
}

impl Model for Streaming {
    fn respond(&self, _: String, _: Value) -> BoxFuture<Result<Value, StepError>> {
        let answer = self.answer.clone();
        Box::pin(async move { Ok(json!({"output": answer, "usage": {"input_tokens": 1, "output_tokens": 1}})) })
    }

    fn respond_streaming(&self, _: String, _: Value, deltas: mpsc::Sender<String>) -> BoxFuture<Result<Value, StepError>> {
        let (pieces, answer) = (self.pieces.clone(), self.answer.clone());
        Box::pin(async move {
            for p in pieces {
                deltas.send(p.to_string()).await.unwrap();
            }
            match answer {
                Some(a) => Ok(json!({"output": a, "usage": {"input_tokens": 1, "output_tokens": 3}})),
                None => Err(StepError { status: 400, code: "content_blocked".into(), message: "blocked".into() }),
            }
        })
    }
}

async fn streamed_events(pieces: Vec<&'static str>, answer: Option<Vec<Value>>) -> (State, Vec<Value>) {
    let (agent, mut deps, _) = setup(json!({"model": "m"}), vec![], 1, 0);
    deps.model = Arc::new(Streaming { pieces, answer });
    let (tx, mut rx) = mpsc::channel(256);
    let o = run(&agent, &deps, "r", State::new(vec![], user("hi")), &serde_json::Map::new(), Some(tx), &InMemory).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (o, events)
}

#[tokio::test]
async fn a_streamed_step_sends_its_text_as_it_is_written() {
    let (o, events) = streamed_events(vec!["Hel", "lo ", "there"], Some(vec![message("Hello there")])).await;
    assert_eq!(o.status, Some(Status::Completed));
    let of = |ty: &str| events.iter().filter(|e| e["type"] == ty).cloned().collect::<Vec<_>>();
    let deltas: Vec<String> = of("response.output_text.delta").iter().map(|e| e["delta"].as_str().unwrap().to_string()).collect();
    assert_eq!(deltas, ["Hel", "lo ", "there"], "each piece once, nothing repeated at the end");
    assert_eq!(of("response.output_item.added").len(), 1);
    // One id for the message, from its first delta to the output.
    let id = &of("response.output_item.added")[0]["item"]["id"];
    assert!(of("response.output_text.delta").iter().all(|e| e["item_id"] == *id));
    assert_eq!(o.output[0]["id"], *id);
    assert_eq!(of("response.output_text.done")[0]["text"], "Hello there");
    assert_each_item_opens_and_closes_in_order(&events, &o);

    // The answer adds to what streamed: the rest goes as one more delta.
    let (_, events) = streamed_events(vec!["Hel"], Some(vec![message("Hello")])).await;
    let deltas: Vec<String> =
        events.iter().filter(|e| e["type"] == "response.output_text.delta").map(|e| e["delta"].as_str().unwrap().to_string()).collect();
    assert_eq!(deltas, ["Hel", "lo"]);

    // Text streamed, but the answer is a function call only: the message is closed with the
    // streamed text, and the call follows it.
    let (o, events) = streamed_events(vec!["call lookup"], Some(vec![function_call("lookup")])).await;
    assert_eq!((o.output[0]["type"].as_str(), o.output[0]["content"][0]["text"].as_str()), (Some("message"), Some("call lookup")));
    assert_eq!(o.output[1]["type"], "function_call", "{:?}", o.output);
    assert_each_item_opens_and_closes_in_order(&events, &o);

    // A step that fails after some text: its message is closed as incomplete, and the run failed.
    let (o, events) = streamed_events(vec!["secret ", "pla"], None).await;
    assert!(matches!(o.status, Some(Status::Failed(_))));
    assert_eq!((o.output[0]["status"].as_str(), o.output[0]["content"][0]["text"].as_str()), (Some("incomplete"), Some("secret pla")));
    assert_each_item_opens_and_closes_in_order(&events, &o);
}

/// Every item a stream opens is done, once, at the index it was opened at, in output order.
fn assert_each_item_opens_and_closes_in_order(events: &[Value], o: &State) {
    let at = |ty: &str| {
        events
            .iter()
            .filter(|e| e["type"] == ty)
            .map(|e| (e["output_index"].as_u64().unwrap(), e["item"]["id"].clone()))
            .collect::<Vec<_>>()
    };
    let (added, done) = (at("response.output_item.added"), at("response.output_item.done"));
    assert_eq!(added, done, "{events:?}");
    let ids: Vec<Value> = o.output.iter().map(|i| i["id"].clone()).collect();
    assert_eq!(done.iter().map(|d| d.1.clone()).collect::<Vec<_>>(), ids);
    assert!(done.iter().enumerate().all(|(i, d)| d.0 == i as u64), "{done:?}");
}
