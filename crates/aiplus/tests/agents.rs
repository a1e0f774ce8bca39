//! Agents on the real binary, driven by real clients against real tool servers: the official
//! `openai` SDK and the OpenAI Agents SDK (`openai-agents`) as clients, and an MCP server made
//! with the official MCP Python SDK (`tests/agents/mcp_server.py`) as the tool server, spoken
//! to in both spec versions. The model steps go to the upstream test double's `script` mode,
//! which calls the tools the user message scripts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, poll, temp_dir};
use serde_json::{Value, json};

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents")
}

/// The MCP test server over streamable HTTP on a free port; its calls are logged to a file.
struct McpServer {
    child: Child,
    url: String,
    calls: PathBuf,
}

impl McpServer {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let calls = dir.join(format!("mcp-calls-{port}.txt"));
        std::fs::write(&calls, "").unwrap();
        let child = Command::new("python3")
            .arg(here().join("mcp_server.py"))
            .args(["http", &port.to_string()])
            .arg(&calls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with the mcp package (scripts/test installs it)");
        let url = format!("http://127.0.0.1:{port}/mcp");
        poll(Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        McpServer { child, url, calls }
    }

    /// The calls the server has really run, a line each.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls).unwrap().lines().map(String::from).collect()
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with the `script` model and agents allowed to reach this host's MCP servers.
fn server(name: &str) -> (tokio::runtime::Runtime, Server, PathBuf) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir(name);
    let cfg = data.join("aiplus.toml");
    let keywords = data.join("keywords.txt");
    std::fs::write(&keywords, "机密数据\n").unwrap();
    // Stdio MCP servers run in the job sandbox, which shows them the Python and the test
    // server only through these read-only directories.
    let (_, prefix) = python();
    let read_only = format!("[{:?}, {:?}]", prefix, here().display().to_string());
    std::fs::write(
        &cfg,
        format!(
            "[executor.local]\nread_only = {read_only}\n\
             [agents]\nallowed_hosts = [\"127.0.0.1\"]\nallow_local = true\nallow_stdio = true\n\
             [gateway]\nallow_local_upstreams = true\n[gateway.guardrail]\nkeywords_file = \"{}\"\n[[gateway.model]]\nname = \"script\"\n[[gateway.model.deployment]]\nid = \"script\"\nbase_url = \"{upstream}/script/v1\"\n",
            keywords.display()
        ),
    )
    .unwrap();
    let s = Server::start_with_env(&data, &["--config", cfg.to_str().unwrap()], &[("AIPLUS_SECRET_CANARY", "leak-me")]);
    (rt, s, data)
}

/// The test's Python: its executable and the prefix it lives under.
fn python() -> (String, String) {
    let out = Command::new("python3").args(["-c", "import sys; print(sys.executable); print(sys.base_prefix)"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    (lines.next().unwrap().to_string(), lines.next().unwrap().to_string())
}

fn secret(s: &Server, tenant: &str) -> String {
    s.key(tenant, &json!({}))["secret"].as_str().unwrap().to_string()
}

fn call(s: &Server, key: &str, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut r =
        reqwest::blocking::Client::new().request(method, format!("{}{path}", s.url)).bearer_auth(key).timeout(Duration::from_secs(60));
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

/// Declares an agent as the tenant whose key this is.
fn declare(s: &Server, key: &str, id: &str, spec: &Value) -> Value {
    let (status, body) = call(s, key, reqwest::Method::PUT, &format!("/api/v1/agents/{id}"), Some(spec));
    assert!(status == 201 || status == 200, "{status} {body}");
    body
}

fn mcp_tool(label: &str, url: &str, version: &str, approval: Value) -> Value {
    json!({"type": "mcp", "server_label": label, "server_url": url, "protocol_version": version,
           "headers": {"Authorization": "Bearer tool-secret"}, "require_approval": approval})
}

/// Runs a client script; its last stdout line is a JSON report.
fn client(script: &str, args: &[&str]) -> Value {
    let out = Command::new("python3").arg(here().join(script)).args(args).env("OPENAI_AGENTS_DISABLE_TRACING", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed (are openai and openai-agents installed? scripts/test installs them):\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// The tenant's ledger events of one pillar, once at least `n` are there.
fn ledger(s: &Server, tenant: &str, pillar: &str, n: usize) -> Vec<Value> {
    poll(Duration::from_secs(15), || {
        let (_, v) = s.get(&format!("/api/v1/usage?tenant={tenant}&pillar={pillar}&limit=1000"));
        let events = v.as_array().cloned().unwrap_or_default();
        (events.len() >= n).then_some(events)
    })
}

#[test]
fn an_agent_runs_mcp_tools_server_side_in_both_protocol_versions() {
    let (_rt, s, data) = server("agents-mcp");
    let mcp = McpServer::start(&data);
    let key = secret(&s, "acme");
    let agent = declare(
        &s,
        &key,
        "helper",
        &json!({"instructions": "Use the tools.", "model": "script", "tools": [
            mcp_tool("calc", &mcp.url, "2025-11-25", json!("never")),
            mcp_tool("calc26", &mcp.url, "2026-07-28", json!("never"))]}),
    );
    assert_eq!(agent["version"], 1);
    assert_eq!(agent["tools"][0]["headers"]["Authorization"], "***", "a stored credential is never shown back: {agent}");

    let report = client("openai_client.py", &["mcp", &s.url, &key]);
    // Whole: both servers listed, each version's call made, and the model's answer from both.
    let whole = &report["whole"];
    let types: Vec<&str> = whole["output"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["mcp_list_tools", "mcp_list_tools", "mcp_call", "mcp_call", "message"], "{whole}");
    assert_eq!(whole["output"][2]["server_label"], "calc");
    assert_eq!(whole["output"][2]["output"], "5");
    assert_eq!(whole["output"][3]["server_label"], "calc26");
    assert_eq!(whole["output"][3]["output"], "hi");
    assert_eq!(whole["output_text"], "done: 5; hi");
    assert!(whole["output"][0]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "add"), "{whole}");
    // The stream: typed events of each step, numbered from 0 without gaps.
    let events = report["stream"]["events"].as_array().unwrap();
    let seq: Vec<u64> = events.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
    assert_eq!(seq, (0..seq.len() as u64).collect::<Vec<_>>());
    let added: Vec<&str> =
        events.iter().filter(|e| e["type"] == "response.output_item.added").map(|e| e["item"]["type"].as_str().unwrap()).collect();
    assert_eq!(added, ["mcp_list_tools", "mcp_list_tools", "mcp_call", "mcp_call", "message"]);
    for ty in ["response.created", "response.mcp_call.completed", "response.output_text.delta", "response.completed"] {
        assert!(events.iter().any(|e| e["type"] == ty), "no {ty} in {events:?}");
    }
    // Each tool call was made once per run (two runs), by the real server.
    assert_eq!(mcp.calls(), ["add {\"a\": 2, \"b\": 3}", "echo {\"text\": \"hi\"}", "add {\"a\": 2, \"b\": 3}", "echo {\"text\": \"hi\"}"]);

    // The ledger: one gateway event per model step, named by the response, whose tokens sum to
    // the response's usage; one agents event per tool call.
    let id = whole["id"].as_str().unwrap();
    let steps: Vec<Value> = ledger(&s, "acme", "gateway", 6)
        .into_iter()
        .filter(|e| e["usage"]["refs"]["request_id"].as_str().is_some_and(|r| r.starts_with(&format!("{id}/step/"))))
        .collect();
    assert_eq!(steps.len(), 3, "three model steps: calc, calc26, the answer");
    assert!(steps.iter().all(|e| e["usage"]["refs"]["agent_run"] == id), "the gateway marks each step with its run: {steps:?}");
    // A client that names its own request like a step, and sends the internal header too, is
    // not counted as an agent's: the public router drops the header.
    let forged = format!("{id}/step/9");
    reqwest::blocking::Client::new()
        .post(format!("{}/v1/responses", s.url))
        .bearer_auth(&key)
        .header("x-request-id", &forged)
        .header(gateway::AGENT_RUN_HEADER, id)
        .json(&json!({"model": "script", "input": "hi"}))
        .timeout(Duration::from_secs(60))
        .send()
        .unwrap();
    let row = poll(Duration::from_secs(15), || {
        ledger(&s, "acme", "gateway", 1).into_iter().find(|e| e["usage"]["refs"]["request_id"] == forged.as_str())
    });
    assert!(row["usage"]["refs"].get("agent_run").is_none(), "{row}");
    let sum = |k: &str| steps.iter().map(|e| e["usage"][k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("input_tokens"), whole["usage"]["input_tokens"].as_u64().unwrap());
    assert_eq!(sum("output_tokens"), whole["usage"]["output_tokens"].as_u64().unwrap());
    let tools: Vec<Value> = ledger(&s, "acme", "agents", 4).into_iter().filter(|e| e["usage"]["refs"]["response_id"] == id).collect();
    assert_eq!(tools.len(), 2);
    assert!(tools.iter().all(|e| e["usage"]["subject"]["kind"] == "tool_call" && e["usage"]["status"] == "completed"), "{tools:?}");

    // The CLI: declare from TOML as the tenant, list, and run with each step printed.
    let toml_file = data.join("calc.toml");
    std::fs::write(
        &toml_file,
        format!(
            "model = \"script\"\ninstructions = \"用工具计算\"\n[limits]\nmax_steps = 4\n\n[[tools]]\ntype = \"mcp\"\nserver_label = \"calc\"\nserver_url = \"{}\"\nrequire_approval = \"never\"\n",
            mcp.url
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(common::BIN).args(args).args(["--server", &s.url]).env("AIPLUS_TOKEN", &key).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let put: Value = serde_json::from_str(&cli(&["agents", "put", "calc", toml_file.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!((put["version"].clone(), put["limits"]["max_steps"].clone()), (json!(1), json!(4)));
    let listed = cli(&["agents", "list"]);
    assert!(listed.contains("calc") && listed.contains("mcp:calc26"), "{listed}");
    let ran = cli(&["agents", "run", "calc", "call calc__add {\"a\": 40, \"b\": 2}"]);
    assert!(ran.contains("[calc] add({\"a\": 40, \"b\": 2}) → 42"), "{ran}");
    assert!(ran.contains("done: 42") && ran.contains("completed · 2 steps"), "{ran}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn function_tools_go_back_to_the_client_and_approvals_gate_mcp_calls() {
    let (_rt, s, data) = server("agents-client");
    let mcp = McpServer::start(&data);
    let key = secret(&s, "acme");
    declare(
        &s,
        &key,
        "gated",
        &json!({"model": "script", "tools": [
            {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
            mcp_tool("ops", &mcp.url, "2026-07-28", json!({"never": {"tool_names": ["echo", "leak"]}}))]}),
    );
    let report = client("openai_client.py", &["gated", &s.url, &key]);
    // A function tool: the run stops with the call; the client's output continues it.
    assert_eq!(report["function"]["first"], json!(["mcp_list_tools", "function_call"]));
    assert_eq!(report["function"]["final_text"], "done: 42 degrees");
    // An approval-gated tool is not called until approved, and never when denied.
    assert_eq!(report["approval"]["asked"], "count");
    assert_eq!(report["approval"]["denied_text"], "done: The user denied this tool call.");
    assert_eq!(report["approval"]["again_calls"], json!([]), "answering an approval twice runs nothing more");
    assert_eq!(report["approval"]["approved_text"], "done: counted");
    let counted: Vec<String> = mcp.calls().into_iter().filter(|c| c.starts_with("count")).collect();
    assert_eq!(counted, ["count {\"label\": \"yes\"}"], "only the approved call ran, once");
    // A tool's output the guardrail blocks never reaches the model.
    let (status, r) =
        call(&s, &key, reqwest::Method::POST, "/v1/responses", Some(&json!({"model": "agent:gated", "input": "call ops__leak {}"})));
    assert_eq!(status, 200, "{r}");
    let leak = r["output"].as_array().unwrap().iter().find(|i| i["type"] == "mcp_call").unwrap().clone();
    assert_eq!((leak["status"].as_str(), leak["output"].is_null()), (Some("failed"), true), "{leak}");
    assert!(!r.to_string().contains("机密数据"), "{r}");
    assert!(mcp.calls().contains(&"leak {}".to_string()), "the tool ran; its output was withheld");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_agents_sdk_drives_an_agent_with_its_own_function_tool() {
    let (_rt, s, data) = server("agents-sdk");
    let mcp = McpServer::start(&data);
    let key = secret(&s, "acme");
    declare(&s, &key, "helper", &json!({"model": "script", "tools": [mcp_tool("calc", &mcp.url, "2025-11-25", json!("never"))]}));
    let report = client("agents_sdk.py", &[&s.url, &key]);
    assert_eq!(report["final_output"], "done: 5; sunny in Guiyang");
    assert_eq!(report["local_calls"], json!(["Guiyang"]));
    assert_eq!(mcp.calls(), ["add {\"a\": 2, \"b\": 3}"], "the server-side tool ran once although the SDK resent the history");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn another_tenants_agents_and_responses_answer_like_missing_ones() {
    let (_rt, s, data) = server("agents-tenants");
    let acme = secret(&s, "acme");
    let beta = secret(&s, "beta");
    declare(&s, &acme, "helper", &json!({"model": "script"}));
    let (status, r) = call(&s, &acme, reqwest::Method::POST, "/v1/responses", Some(&json!({"model": "agent:helper", "input": "hi"})));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["output"][0]["content"][0]["text"], "hello from script");
    let id = r["id"].as_str().unwrap();
    let (own, _) = call(&s, &acme, reqwest::Method::GET, &format!("/v1/responses/{id}"), None);
    assert_eq!(own, 200);
    let missing = |key: &str, m: reqwest::Method, path: &str, body: Option<&Value>| {
        let (status, body) = call(&s, key, m, path, body);
        (status, body["error"]["code"].clone(), body["title"].clone())
    };
    assert_eq!(
        missing(&beta, reqwest::Method::GET, "/api/v1/agents/helper", None),
        missing(&beta, reqwest::Method::GET, "/api/v1/agents/nobody", None)
    );
    assert_eq!(missing(&beta, reqwest::Method::GET, "/api/v1/agents/helper", None).0, 404);
    let run = |model: &str| missing(&beta, reqwest::Method::POST, "/v1/responses", Some(&json!({"model": model, "input": "hi"})));
    assert_eq!(run("agent:helper"), run("agent:nobody"));
    assert_eq!(run("agent:helper").0, 404);
    assert_eq!(missing(&beta, reqwest::Method::GET, &format!("/v1/responses/{id}"), None).0, 404);
    let prev = json!({"model": "agent:helper", "input": "hi", "previous_response_id": id});
    assert_eq!(call(&s, &beta, reqwest::Method::POST, "/v1/responses", Some(&prev)).0, 404, "beta has no agent helper");
    let (status, list) = call(&s, &beta, reqwest::Method::GET, "/api/v1/agents", None);
    assert_eq!((status, list["data"].as_array().unwrap().len()), (200, 0));
    // An agent's regions narrow where its steps are served: the script model has no place in the
    // network, so an agent bound to a hub is refused by the gateway, as a request would be.
    declare(&s, &acme, "bound", &json!({"model": "script", "regions": ["hub:guizhou"]}));
    let (status, r) = call(&s, &acme, reqwest::Method::POST, "/v1/responses", Some(&json!({"model": "agent:bound", "input": "hi"})));
    assert_eq!((status, r["error"]["code"].clone()), (403, json!("region_not_allowed")), "{r}");
    let (status, r) = call(&s, &acme, reqwest::Method::PUT, "/api/v1/agents/bad", Some(&json!({"model": "script", "regions": ["贵州"]})));
    assert_eq!((status, r["field"].clone()), (422, json!("regions[0]")), "{r}");
    // A change makes a version; the old one can still be pinned; a delete removes them all.
    declare(&s, &acme, "helper", &json!({"model": "script", "instructions": "v2"}));
    let (_, v) = call(&s, &acme, reqwest::Method::GET, "/api/v1/agents/helper/versions", None);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let pinned = json!({"model": "agent:helper@1", "input": "hi"});
    let (status, r) = call(&s, &acme, reqwest::Method::POST, "/v1/responses", Some(&pinned));
    assert_eq!((status, r["agent"]["version"].clone()), (200, json!(1)));
    // Governance binds an agent's steps as it binds any request: a model restricted to other
    // tenants cannot be used through an agent either, and is again once it is lifted.
    let (status, v) = s.put("/api/v1/model-states/script", &json!({"status": "restricted", "reason": "pilot", "tenants": ["beta"]}));
    assert_eq!(status, 200, "{v}");
    let (status, r) = call(&s, &acme, reqwest::Method::POST, "/v1/responses", Some(&pinned));
    assert_eq!((status, r["error"]["code"].clone()), (403, json!("model_restricted")), "{r}");
    let (status, v) = s.put("/api/v1/model-states/script", &json!({"status": "active", "reason": "pilot over"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(call(&s, &acme, reqwest::Method::POST, "/v1/responses", Some(&pinned)).0, 200);
    assert_eq!(call(&s, &acme, reqwest::Method::DELETE, "/api/v1/agents/helper", None).0, 204);
    assert_eq!(call(&s, &acme, reqwest::Method::POST, "/v1/responses", Some(&pinned)).0, 404);
    let _ = std::fs::remove_dir_all(&data);
}

/// A server started again on the same data directory and config.
fn restart(data: &Path) -> Server {
    let cfg = data.join("aiplus.toml");
    Server::start_with(data, &["--config", cfg.to_str().unwrap()])
}

fn get_response(s: &Server, key: &str, id: &str) -> Value {
    let (status, r) = call(s, key, reqwest::Method::GET, &format!("/v1/responses/{id}"), None);
    assert_eq!(status, 200, "{r}");
    r
}

/// The events of a background response after a cursor, read to its end.
fn follow(s: &Server, key: &str, id: &str, after: i64) -> Vec<Value> {
    let url = format!("{}/v1/responses/{id}?stream=true&starting_after={after}", s.url);
    let body = reqwest::blocking::Client::new().get(url).bearer_auth(key).timeout(Duration::from_secs(120)).send().unwrap().text().unwrap();
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
}

#[test]
fn a_background_run_survives_kill_9_and_calls_no_tool_twice() {
    let (rt, s, data) = server("agents-background");
    let mcp = McpServer::start(&data);
    let key = secret(&s, "acme");
    declare(
        &s,
        &key,
        "worker",
        &json!({"model": "script", "limits": {"timeout_s": 300},
        "tools": [mcp_tool("ops", &mcp.url, "2026-07-28", json!("never"))]}),
    );
    let script = "call ops__count {\"label\": \"before\"}\nstep2 ops__slow {\"seconds\": 5}\nstep3 ops__count {\"label\": \"after\"}";
    let (status, queued) = call(
        &s,
        &key,
        reqwest::Method::POST,
        "/v1/responses",
        Some(&json!({"model": "agent:worker", "input": script, "background": true})),
    );
    assert_eq!(status, 200, "{queued}");
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_str().unwrap().to_string();
    // Killed while the slow tool runs: the first call is done, the second in flight.
    poll(Duration::from_secs(30), || mcp.calls().iter().any(|c| c.starts_with("slow")).then_some(()));
    let during = get_response(&s, &key, &id);
    assert_eq!(during["status"], "in_progress", "{during}");
    // The ledger stores an event within a flush interval (50 ms) and a commit; the kill comes
    // well after the first call's and the steps', as the ledger's durability promise needs.
    std::thread::sleep(Duration::from_secs(1));
    s.kill9();
    let s = restart(&data);
    let done = poll(Duration::from_secs(90), || {
        let r = get_response(&s, &key, &id);
        (r["status"] != "in_progress" && r["status"] != "queued").then_some(r)
    });
    assert_eq!(done["status"], "completed", "{done}");
    let calls = mcp.calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("count {\"label\": \"before\"}")).count(), 1, "{calls:?}");
    assert_eq!(calls.iter().filter(|c| c.starts_with("slow")).count(), 1, "the interrupted call is not made again: {calls:?}");
    assert_eq!(calls.iter().filter(|c| c.starts_with("count {\"label\": \"after\"}")).count(), 1, "{calls:?}");
    let mcp_calls: Vec<&Value> = done["output"].as_array().unwrap().iter().filter(|i| i["type"] == "mcp_call").collect();
    assert_eq!(mcp_calls.len(), 3);
    assert_eq!(mcp_calls[1]["status"], "failed");
    assert!(mcp_calls[1]["error"].as_str().unwrap().contains("not made again"), "{}", mcp_calls[1]);
    // The stream, from the start and from a cursor: numbered without gaps over both lives.
    let events = follow(&s, &key, &id, -1);
    let seq: Vec<i64> = events.iter().map(|e| e["sequence_number"].as_i64().unwrap()).collect();
    assert_eq!(seq, (0..seq.len() as i64).collect::<Vec<_>>());
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    let tail = follow(&s, &key, &id, seq[seq.len() - 3]);
    assert_eq!(tail.len(), 2);
    // The ledger holds each tool call once.
    let tools: Vec<Value> = ledger(&s, "acme", "agents", 3).into_iter().filter(|e| e["usage"]["refs"]["response_id"] == id).collect();
    assert_eq!(tools.len(), 3, "{tools:?}");
    drop(rt);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_background_run_can_be_followed_live_and_cancelled() {
    let (_rt, s, data) = server("agents-cancel");
    let mcp = McpServer::start(&data);
    let key = secret(&s, "acme");
    declare(&s, &key, "worker", &json!({"model": "script", "tools": [mcp_tool("ops", &mcp.url, "2025-11-25", json!("never"))]}));
    let script = "call ops__slow {\"seconds\": 3}\nstep2 ops__count {\"label\": \"never\"}";
    let body = json!({"model": "agent:worker", "input": script, "background": true});
    let (_, queued) = call(&s, &key, reqwest::Method::POST, "/v1/responses", Some(&body));
    let id = queued["id"].as_str().unwrap().to_string();
    poll(Duration::from_secs(30), || mcp.calls().iter().any(|c| c.starts_with("slow")).then_some(()));
    let (status, cancelled) = call(&s, &key, reqwest::Method::POST, &format!("/v1/responses/{id}/cancel"), None);
    assert_eq!((status, cancelled["status"].clone()), (200, json!("cancelled")), "{cancelled}");
    let beta = secret(&s, "beta");
    assert_eq!(call(&s, &beta, reqwest::Method::POST, &format!("/v1/responses/{id}/cancel"), None).0, 404);
    // The slow call ends, and nothing after it runs.
    std::thread::sleep(Duration::from_secs(4));
    assert!(!mcp.calls().iter().any(|c| c.contains("never")), "{:?}", mcp.calls());
    assert_eq!(get_response(&s, &key, &id)["status"], "cancelled");
    let (status, again) = call(&s, &key, reqwest::Method::POST, &format!("/v1/responses/{id}/cancel"), None);
    assert_eq!((status, again["error"]["code"].clone()), (400, json!("not_cancellable")));
    // A background stream from the start: followed live to its end.
    let body = json!({"model": "agent:worker", "input": "call ops__count {\"label\": \"x\"}", "background": true, "stream": true});
    let r = reqwest::blocking::Client::new().post(format!("{}/v1/responses", s.url)).bearer_auth(&key).json(&body).send().unwrap();
    let text = r.text().unwrap();
    let types: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.contains(&"response.mcp_call.completed".to_string()), "{types:?}");
    assert_eq!(types.last().unwrap(), "response.completed");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_conversation_carries_agent_and_model_turns_for_the_openai_sdk() {
    let (_rt, s, data) = server("agents-conversations");
    let mcp = McpServer::start(&data);
    let key = secret(&s, "acme");
    declare(&s, &key, "helper", &json!({"model": "script", "tools": [mcp_tool("calc", &mcp.url, "2026-07-28", json!("never"))]}));
    let r = client("openai_client.py", &["conversations", &s.url, &key]);
    assert_eq!(r["first_text"], "done: 5");
    assert_eq!(r["first_conversation"], r["id"]);
    // The model's turn read the conversation: the script double answers "done: " with the
    // outputs of the tools called since the last user message, and 谢谢 is that message now.
    assert_eq!(r["second_text"], "hello from script");
    assert_eq!(
        r["kinds"],
        json!(["message", "message", "mcp_list_tools", "mcp_call", "message", "message", "message"]),
        "the first item, then each turn's input and output"
    );
    assert_eq!(r["page"], json!([2, true]));
    assert_eq!(r["older"], 5, "newest first by default; after the second newest come five older");
    assert_eq!(r["one"], "再见");
    assert_eq!(r["metadata"], json!({"topic": "数学"}));
    assert_eq!(r["deleted"], true);
    // Another tenant's conversation answers like a missing one, and so does a deleted one.
    let conv = json!({"items": [{"role": "user", "content": "hi"}]});
    let (_, c) = call(&s, &key, reqwest::Method::POST, "/v1/conversations", Some(&conv));
    let id = c["id"].as_str().unwrap();
    let beta = secret(&s, "beta");
    let get = |k: &str, id: &str| call(&s, k, reqwest::Method::GET, &format!("/v1/conversations/{id}/items"), None).0;
    assert_eq!((get(&key, id), get(&beta, id), get(&beta, "conv_nobody")), (200, 404, 404));
    let on = json!({"model": "agent:helper", "input": "hi", "conversation": id});
    assert_eq!(call(&s, &beta, reqwest::Method::POST, "/v1/responses", Some(&on)).0, 404, "beta has no agent helper");
    let plain = json!({"model": "script", "input": "hi", "conversation": id});
    let (status, body) = call(&s, &beta, reqwest::Method::POST, "/v1/responses", Some(&plain));
    assert_eq!((status, body["error"]["code"].clone()), (400, json!("conversation_not_found")));
    // Limits: at most 20 items a call.
    let many: Vec<Value> = (0..21).map(|i| json!({"role": "user", "content": format!("{i}")})).collect();
    let (status, body) = call(&s, &key, reqwest::Method::POST, &format!("/v1/conversations/{id}/items"), Some(&json!({"items": many})));
    assert_eq!((status, body["error"]["param"].clone()), (400, json!("items")));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_stdio_mcp_server_runs_in_the_job_sandbox_in_both_protocol_versions() {
    let (_rt, s, data) = server("agents-stdio");
    let key = secret(&s, "acme");
    let (python, _) = python();
    let server_py = here().join("mcp_server.py").display().to_string();
    let secret_key = data.join("secret.key").display().to_string();
    for version in ["2025-11-25", "2026-07-28"] {
        let label = format!("box{}", &version[..4]);
        declare(
            &s,
            &key,
            &label,
            &json!({"model": "script", "tools": [{"type": "mcp", "server_label": "box", "protocol_version": version,
            "command": [python, server_py, "stdio", "/work/calls.txt"], "env": {"GREETING": "你好"}, "require_approval": "never"}]}),
        );
        let script = format!(
            "call box__add {{\"a\": 1, \"b\": 2}}\nstep2 box__peek {{\"path\": {secret_key:?}}}\nstep3 box__getenv {{\"name\": \"AIPLUS_SECRET_CANARY\"}}\nstep4 box__getenv {{\"name\": \"GREETING\"}}"
        );
        let (status, r) =
            call(&s, &key, reqwest::Method::POST, "/v1/responses", Some(&json!({"model": format!("agent:{label}"), "input": script})));
        assert_eq!(status, 200, "{r}");
        let outputs: Vec<Value> =
            r["output"].as_array().unwrap().iter().filter(|i| i["type"] == "mcp_call").map(|i| i["output"].clone()).collect();
        assert_eq!(
            outputs,
            [json!("3"), json!("unreadable: FileNotFoundError"), json!("unset"), json!("你好")],
            "{version}: it answers, cannot see the data directory or the server's environment, and gets its own: {r}"
        );
    }
    let calls = std::fs::read_to_string(data.join("agents/stdio/acme/calls.txt")).unwrap();
    assert_eq!(calls.lines().filter(|l| l.starts_with("add")).count(), 2, "its /work is the tenant's own directory: {calls}");
    let _ = std::fs::remove_dir_all(&data);
}

/// Puts a document into one of the tenant's collections; the embedded embedder may still be
/// loading just after start (503), so that is waited out.
fn put_doc(s: &Server, key: &str, collection: &str, id: &str, body: &Value) -> (u16, Value) {
    let path = format!("/api/v1/collections/{collection}/documents/{id}");
    poll(Duration::from_secs(60), || {
        let (status, v) = call(s, key, reqwest::Method::PUT, &path, Some(body));
        (status != 503).then_some((status, v))
    })
}

#[test]
fn file_search_finds_the_tenants_own_documents_with_the_embedded_embedder() {
    let (_rt, s, data) = server("agents-file-search");
    let acme = secret(&s, "acme");
    let beta = secret(&s, "beta");
    let docs = [
        ("compute", "The national computing power network schedules AI training jobs to hubs where electricity is cheap and green."),
        ("pandas", "Giant pandas live in the mountains of Sichuan and spend most of the day eating bamboo."),
        ("tea", "Longjing green tea is grown near West Lake in Hangzhou and picked in early spring."),
    ];
    for (id, text) in docs {
        let body = json!({"text": text, "filename": format!("{id}.txt"), "attributes": {"topic": id}});
        let (status, v) = put_doc(&s, &acme, "kb", id, &body);
        assert_eq!((status, v["chunks"].clone()), (201, json!(1)), "{v}");
    }
    // A retried PUT replaces the document: nothing doubles.
    let (status, _) = put_doc(&s, &acme, "kb", "tea", &json!({"text": docs[2].1, "filename": "tea.txt"}));
    assert_eq!(status, 200);
    let (_, list) = call(&s, &acme, reqwest::Method::GET, "/api/v1/collections", None);
    assert_eq!((list["data"][0]["id"].clone(), list["data"][0]["documents"].clone()), (json!("kb"), json!(3)), "{list}");

    // The search route and the agent's tool rank the same way.
    let (status, found) = call(
        &s,
        &acme,
        reqwest::Method::POST,
        "/api/v1/collections/kb/search",
        Some(&json!({"query": "What do pandas eat?", "max_num_results": 2})),
    );
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["data"][0]["file_id"], "pandas", "{found}");
    assert_eq!(found["data"].as_array().unwrap().len(), 2);
    declare(
        &s,
        &acme,
        "librarian",
        &json!({"model": "script",
        "tools": [{"type": "file_search", "vector_store_ids": ["kb"], "max_num_results": 2}]}),
    );
    let ask = json!({"model": "agent:librarian", "input": "call file_search {\"queries\": [\"bears that eat bamboo\"]}"});
    let (status, r) = call(&s, &acme, reqwest::Method::POST, "/v1/responses", Some(&ask));
    assert_eq!(status, 200, "{r}");
    let fs = &r["output"][0];
    assert_eq!((fs["type"].as_str(), fs["status"].as_str()), (Some("file_search_call"), Some("completed")), "{r}");
    assert_eq!(fs["queries"], json!(["bears that eat bamboo"]));
    assert_eq!(fs["results"][0]["file_id"], "pandas");
    assert_eq!(fs["results"][0]["attributes"]["topic"], "pandas");
    assert_eq!(fs["results"].as_array().unwrap().len(), 2);
    let answer = r["output"][1]["content"][0]["text"].as_str().unwrap();
    assert!(answer.starts_with("done: ") && answer.contains("pandas.txt"), "{answer}");
    // A client that sends the whole history back (no previous_response_id) may include the
    // search item, as OpenAI's clients do.
    let history = json!({"model": "agent:librarian", "input": [{"role": "user", "content": ask["input"]}, r["output"][0], r["output"][1],
        {"role": "user", "content": "thanks"}]});
    let (status, again) = call(&s, &acme, reqwest::Method::POST, "/v1/responses", Some(&history));
    assert_eq!(status, 200, "{again}");
    // The search is a tool call in the ledger; the embeddings it made are the tenant's usage.
    let events = ledger(&s, "acme", "agents", 1);
    assert!(events.iter().any(|e| e["usage"]["tool"] == "file_search" && e["usage"]["refs"]["response_id"] == r["id"]), "{events:?}");
    // Four documents put and two searches: six embeddings requests, each metered to acme (the
    // ledger also holds the refusals while the embedder was loading, with no tokens).
    let embedded = ledger(&s, "acme", "gateway", 8);
    let counted = embedded.iter().filter(|e| e["usage"]["endpoint"] == "embeddings" && e["usage"]["input_tokens"].as_u64() > Some(0));
    assert_eq!(counted.count(), 6, "{embedded:?}");
    // Streamed, the search carries OpenAI's typed events.
    let streamed = reqwest::blocking::Client::new()
        .post(format!("{}/v1/responses", s.url))
        .bearer_auth(&acme)
        .json(&json!({"model": "agent:librarian", "input": ask["input"], "stream": true}))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for ty in ["response.file_search_call.in_progress", "response.file_search_call.searching", "response.file_search_call.completed"] {
        assert!(streamed.contains(ty), "{ty} missing from {streamed}");
    }
    // The answer streams as the model writes it: several deltas, which add up to the text.
    let events: Vec<Value> =
        streamed.lines().filter_map(|l| l.strip_prefix("data: ")).filter_map(|d| serde_json::from_str(d).ok()).collect();
    let deltas: Vec<&str> =
        events.iter().filter(|e| e["type"] == "response.output_text.delta").filter_map(|e| e["delta"].as_str()).collect();
    let done = events.iter().find(|e| e["type"] == "response.completed").unwrap();
    let text = done["response"]["output"][1]["content"][0]["text"].as_str().unwrap();
    assert!(deltas.len() > 2, "{deltas:?}");
    assert_eq!(deltas.concat(), text);
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["sequence_number"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "sequence numbers count up: {seqs:?}");
    // Every item opened is done, at the index it opened at, and they are the response's output.
    let at = |ty: &str| {
        events.iter().filter(|e| e["type"] == ty).map(|e| (e["output_index"].clone(), e["item"]["id"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(at("response.output_item.added"), at("response.output_item.done"));
    let ids: Vec<Value> = done["response"]["output"].as_array().unwrap().iter().map(|i| i["id"].clone()).collect();
    assert_eq!(at("response.output_item.done").into_iter().map(|(_, id)| id).collect::<Vec<_>>(), ids);

    // Another tenant: acme's collection answers like a missing one, and its own agent naming
    // it finds nothing.
    let missing = |path: &str, m: reqwest::Method, body: Option<&Value>| {
        let (status, v) = call(&s, &beta, m, path, body);
        (status, v["title"].clone(), v["detail"].as_str().map(|d| d.replace("kb", "nobody")))
    };
    assert_eq!(
        missing("/api/v1/collections/kb", reqwest::Method::GET, None),
        missing("/api/v1/collections/nobody", reqwest::Method::GET, None)
    );
    assert_eq!(missing("/api/v1/collections/kb", reqwest::Method::GET, None).0, 404);
    let q = json!({"query": "pandas"});
    assert_eq!(missing("/api/v1/collections/kb/search", reqwest::Method::POST, Some(&q)).0, 404);
    declare(&s, &beta, "snoop", &json!({"model": "script", "tools": [{"type": "file_search", "collection_ids": ["kb"]}]}));
    let (_, r) = call(&s, &beta, reqwest::Method::POST, "/v1/responses", Some(&json!({"model": "agent:snoop", "input": ask["input"]})));
    assert_eq!(r["output"][0]["results"], json!([]), "{r}");

    // Bad input names its field.
    let (status, v) = put_doc(&s, &acme, "kb", "empty", &json!({"text": "  "}));
    assert_eq!((status, v["field"].clone()), (422, json!("text")), "{v}");
    let (status, v) = call(
        &s,
        &acme,
        reqwest::Method::PUT,
        "/api/v1/agents/bad",
        Some(&json!({"model": "script",
        "tools": [{"type": "file_search", "collection_ids": []}]})),
    );
    assert_eq!((status, v["field"].clone()), (422, json!("tools[0].collection_ids")), "{v}");
    let (status, v) = call(
        &s,
        &acme,
        reqwest::Method::PUT,
        "/api/v1/agents/bad",
        Some(&json!({"model": "script",
        "tools": [{"type": "file_search", "collection_ids": ["kb", "kb"]}]})),
    );
    assert_eq!((status, v["field"].clone()), (422, json!("tools[0].collection_ids[1]")), "{v}");
    // The CLI fills and searches a collection from files.
    let notes = data.join("grid notes.md");
    std::fs::write(&notes, "东数西算：把东部的算力需求引导到西部，利用西部的绿色电力。").unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(common::BIN).args(args).args(["--server", &s.url, "--json"]).env("AIPLUS_TOKEN", &acme).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let added = cli(&["collections", "add", "kb2", notes.to_str().unwrap()]);
    assert_eq!((added["data"][0]["id"].clone(), added["data"][0]["filename"].clone()), (json!("grid-notes"), json!("grid notes.md")));
    let hits = cli(&["collections", "search", "kb2", "西部绿色电力"]);
    assert_eq!(hits["data"][0]["file_id"], "grid-notes", "{hits}");
    // Deletes: a document, then the collection.
    assert_eq!(call(&s, &acme, reqwest::Method::DELETE, "/api/v1/collections/kb/documents/tea", None).0, 204);
    let (_, kb) = call(&s, &acme, reqwest::Method::GET, "/api/v1/collections/kb", None);
    assert_eq!(kb["documents"].as_array().unwrap().len(), 2);
    assert_eq!(call(&s, &beta, reqwest::Method::DELETE, "/api/v1/collections/kb", None).0, 404);
    assert_eq!(call(&s, &acme, reqwest::Method::DELETE, "/api/v1/collections/kb", None).0, 204);
    assert_eq!(call(&s, &acme, reqwest::Method::GET, "/api/v1/collections/kb", None).0, 404);
    let _ = std::fs::remove_dir_all(&data);
}
