//! The gateway against a mock upstream. `MockUpstream` is a test double of an OpenAI-compatible
//! model server (what vLLM or llama.cpp would be): deterministic answers, chosen by URL prefix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;
use common::{Env, chat, post, serve, usage};

use std::time::Duration;

use gateway::{GatewayConfig, Meter};
use serde_json::{Value, json};

async fn start() -> Env {
    start_with("").await
}

/// Starts the gateway with `extra` appended to its config (e.g. a `[guardrail]` table).
async fn start_with(extra: &str) -> Env {
    let upstream = gateway::test_double::start().await.unwrap();
    let cfg: GatewayConfig = toml::from_str(&format!(
        r#"
max_attempts = 3
allow_local_upstreams = true
[[model]]
name = "qwen"
[[model.deployment]]
id = "bad"
base_url = "{upstream}/fail/v1"
[[model.deployment]]
id = "good"
base_url = "{upstream}/ok/v1"
cluster = "guian"
input_cny_per_1k = 2.0
output_cny_per_1k = 6.0
[[model]]
name = "down"
[[model.deployment]]
id = "bad1"
base_url = "{upstream}/fail/v1"
[[model.deployment]]
id = "slow"
base_url = "{upstream}/slow/v1"
timeout_s = 1
[[model]]
name = "flaky-stream"
[[model.deployment]]
id = "broken"
base_url = "{upstream}/broken/v1"
{extra}
"#
    ))
    .unwrap();
    let store = store::Store::memory().await.unwrap();
    let (meter, _writer) = Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    serve(cfg, store, meter).await.0
}

#[tokio::test]
async fn falls_back_past_a_failing_deployment_and_meters_reported_tokens() {
    let env = start().await;
    for _ in 0..4 {
        let r = post(&env, &chat("qwen", false), Some(&env.key)).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello from ok");
    }
    let u = usage(&env, 4).await;
    assert_eq!(u.len(), 4);
    for e in &u {
        assert_eq!(
            (e["refs"]["deployment"].as_str(), e["input_tokens"].as_u64(), e["output_tokens"].as_u64()),
            (Some("good"), Some(11), Some(3))
        );
        assert!((e["money_cny"].as_f64().unwrap() - (11.0 * 2.0 + 3.0 * 6.0) / 1000.0).abs() < 1e-12);
        assert_eq!((e["unit"].as_str(), e["quantity"].as_f64()), (Some("tokens"), Some(14.0)), "{e}");
        assert_eq!(e["refs"]["cluster"], "guian");
    }
}

#[tokio::test]
async fn every_deployment_down_is_a_clear_error_without_a_hang() {
    let env = start().await;
    let started = std::time::Instant::now();
    let r = post(&env, &chat("down", false), Some(&env.key)).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unavailable");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("bad1: answered 500") && msg.contains("slow: timed out"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(usage(&env, 1).await[0]["status"], 502, "failures are metered too");
}

#[tokio::test]
async fn streams_pass_through_with_the_usage_chunk_and_are_metered() {
    let env = start().await;
    let r = post(&env, &chat("qwen", true), Some(&env.key)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.last(), Some(&"data: [DONE]"));
    let usage_frame: Value = serde_json::from_str(frames[frames.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage_frame["choices"], json!([]), "the usage chunk carries choices: []");
    let u = usage(&env, 1).await;
    assert_eq!((u[0]["input_tokens"].as_u64(), u[0]["output_tokens"].as_u64(), u[0]["stream"].as_bool()), (Some(7), Some(2), Some(true)));
}

#[tokio::test]
async fn a_broken_stream_ends_with_an_error_event_and_is_still_metered() {
    let env = start().await;
    let r = post(&env, &chat("flaky-stream", true), Some(&env.key)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("\"hel\"") && text.contains("stream_interrupted"), "{text}");
    let u = usage(&env, 1).await;
    assert_eq!(u[0]["status"], 502);
    assert_eq!(u[0]["tokens_reported"], false);
    assert_eq!(u[0]["output_tokens"], 2, "estimated from the 5 characters streamed");
}

#[tokio::test]
async fn keys_are_required_hashed_and_revocable() {
    let env = start().await;
    assert_eq!(post(&env, &chat("qwen", false), None).await.status(), 401);
    let r = post(&env, &chat("qwen", false), Some("ak_wrong")).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let keys: Value = env.op.get(format!("{}/api/v1/keys", env.url)).send().await.unwrap().json().await.unwrap();
    let listed = keys.to_string();
    assert!(!listed.contains(&env.key), "the secret is never listed");
    let id = keys[0]["id"].as_str().unwrap();
    let stored: Vec<(String, Value)> = env.store.keys(None).await.unwrap();
    assert_eq!(stored[0].0, identity::secret::hash(&env.key), "only the hash is stored");
    env.op.post(format!("{}/api/v1/keys/{id}/revoke", env.url)).send().await.unwrap();
    assert_eq!(post(&env, &chat("qwen", false), Some(&env.key)).await.status(), 401);
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let env = start().await;
    let r = post(&env, &json!({"messages": []}), Some(&env.key)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "model");
    let r = post(&env, &json!({"model": "gpt-9", "messages": []}), Some(&env.key)).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "model_not_found");
    let models: Value =
        reqwest::Client::new().get(format!("{}/v1/models", env.url)).bearer_auth(&env.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_keyword_guardrail_blocks_requests_and_answers_and_meters_them() {
    let dir = std::env::temp_dir().join(format!("aiplus-guard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("keywords.txt");
    std::fs::write(&list, "# test list\n炸药配方\nfrom ok\n").unwrap();
    let env = start_with(&format!("[guardrail]\nkeywords_file = \"{}\"\ncheck_output = true\n", list.display())).await;
    let ask = |text: &str, stream: bool| json!({"model": "qwen", "messages": [{"role": "user", "content": text}], "stream": stream});

    // The request names a listed keyword: refused before any upstream is called.
    let r = post(&env, &ask("请告诉我炸药配方", false), Some(&env.key)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "content_blocked");
    // The upstream's whole answer ("hello from ok") holds a listed keyword.
    let r = post(&env, &ask("say hi", false), Some(&env.key)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().starts_with("the answer"), "{v}");
    let u = usage(&env, 2).await;
    assert_eq!(u.len(), 2);
    assert!(u.iter().all(|e| e["blocked"] == true && e["status"] == 400), "{u:?}");
    assert_eq!(u[1]["output_tokens"], 3, "the blocked answer's tokens were still used");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_keyword_split_across_stream_frames_is_caught() {
    let dir = std::env::temp_dir().join(format!("aiplus-guard-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("keywords.txt");
    std::fs::write(&list, "HELLO\n").unwrap();
    let env = start_with(&format!("[guardrail]\nkeywords_file = \"{}\"\ncheck_output = true\n", list.display())).await;
    // The double streams "hel" then "lo": only the two together match.
    let r =
        post(&env, &json!({"model": "qwen", "messages": [{"role": "user", "content": "greet me"}], "stream": true}), Some(&env.key)).await;
    let text = r.text().await.unwrap();
    assert!(text.contains("\"hel\"") && !text.contains("\"lo\""), "the second frame must not reach the client: {text}");
    assert!(text.contains("content_blocked"), "{text}");
    assert_eq!(usage(&env, 1).await[0]["blocked"], true);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// When the ledger's queue is full, a request is refused with 503 before anything is done for
/// it; every request that was answered has its event, stored once the ledger drains.
#[tokio::test]
async fn a_full_ledger_refuses_requests_instead_of_losing_their_events() {
    let upstream = gateway::test_double::start().await.unwrap();
    let cfg: GatewayConfig = toml::from_str(&format!(
        "allow_local_upstreams = true\n[[model]]\nname = \"qwen\"\n[[model.deployment]]\nid = \"good\"\nbase_url = \"{upstream}/ok/v1\"\n"
    ))
    .unwrap();
    let store = store::Store::memory().await.unwrap();
    // One place in the queue, and a writer that waits an hour between batches.
    let (meter, writer) = Meter::start_with_depth(store.clone(), Duration::from_secs(3600), 1);
    let (env, gw, server) = serve(cfg, store.clone(), meter).await;
    let url = env.url.clone();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = post(&env, &chat("qwen", false), Some(&env.key)).await;
        statuses.push(r.status().as_u16());
        if r.status() == 503 {
            assert_eq!(r.headers()["retry-after"], "1");
            assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "ledger_unavailable");
        }
        // Let the writer take what it can before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The writer holds the first event in its batch, the queue's one place holds the second.
    assert_eq!(statuses, [200, 200, 503, 503]);
    let metrics = env.op.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("aiplus_gateway_ledger_refusals_total{endpoint=\"chat.completions\"} 2"), "{metrics}");
    // Shutting down drains the ledger: both answered requests are there, the refused ones not.
    server.abort();
    let _ = server.await;
    drop(gw);
    drop(env);
    writer.await.unwrap();
    let rows: Vec<store::UsageRow<Value>> = store.usage(Some("acme"), Some("gateway"), 0, i64::MAX, 100).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.doc["status"].as_u64().unwrap()).collect::<Vec<_>>(), [200, 200]);
}

/// A model name longer than 256 bytes is refused before it reaches the metrics or the ledger.
#[tokio::test]
async fn an_overlong_model_name_never_reaches_metrics_or_the_ledger() {
    let env = start().await;
    let name = "m".repeat(1 << 20);
    let r = post(&env, &json!({"model": name, "messages": [{"role": "user", "content": "hi"}]}), Some(&env.key)).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!((e["error"]["param"].as_str(), e["error"]["code"].as_str()), (Some("model"), Some("invalid_value")), "{e}");
    let metrics = env.op.get(format!("{}/metrics", env.url)).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("mmmmmmmm"), "the name is in no metric label");
    tokio::time::sleep(gateway::meter::FLUSH_EVERY * 4).await;
    let rows: Vec<store::UsageRow<Value>> = env.store.usage(Some("acme"), None, 0, i64::MAX, 100).await.unwrap();
    assert!(rows.is_empty(), "nothing was metered: {}", rows.len());
}

#[tokio::test]
async fn a_tenant_holds_a_bounded_number_of_active_keys() {
    let env = start().await;
    let make = || env.op.post(format!("{}/api/v1/keys", env.url)).header("x-aiplus-tenant", "acme").json(&json!({})).send();
    // The environment made one key already.
    for _ in 1..identity::MAX_ACTIVE_KEYS_PER_TENANT {
        assert_eq!(make().await.unwrap().status(), 201);
    }
    let r = make().await.unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "keys", "{v}");
    let keys: Value =
        env.op.get(format!("{}/api/v1/keys", env.url)).header("x-aiplus-tenant", "acme").send().await.unwrap().json().await.unwrap();
    let id = keys[0]["id"].as_str().unwrap();
    env.op.post(format!("{}/api/v1/keys/{id}/revoke", env.url)).header("x-aiplus-tenant", "acme").send().await.unwrap();
    assert_eq!(make().await.unwrap().status(), 201, "revoking one makes room");
}

#[tokio::test]
async fn stored_responses_survive_a_restart_and_stay_with_their_tenant() {
    let upstream = gateway::test_double::start().await.unwrap();
    let cfg = format!(
        "allow_local_upstreams = true\n[[model]]\nname = \"qwen\"\n[[model.deployment]]\nid = \"good\"\nbase_url = \"{upstream}/ok/v1\"\n"
    );
    let store = store::Store::memory().await.unwrap();
    let (meter, _writer) = Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    let (env, _gw, server) = serve(toml::from_str(&cfg).unwrap(), store.clone(), meter).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v1/responses", env.url))
        .bearer_auth(&env.key)
        .json(&json!({"model": "qwen", "input": "hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    server.abort();

    // A new gateway on the same store: the response is still there, and still chains.
    let (meter, _writer) = Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    let (again, _gw, _server) = serve(toml::from_str(&cfg).unwrap(), store.clone(), meter).await;
    let got = http.get(format!("{}/v1/responses/{id}", again.url)).bearer_auth(&env.key).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.json::<Value>().await.unwrap()["id"], id.as_str());
    let next = http
        .post(format!("{}/v1/responses", again.url))
        .bearer_auth(&env.key)
        .json(&json!({"model": "qwen", "input": "and again", "previous_response_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    // Another tenant's key cannot read it: it answers like a missing one.
    let other: Value =
        again.op.post(format!("{}/api/v1/tenants", again.url)).json(&json!({"id": "globex"})).send().await.unwrap().json().await.unwrap();
    assert_eq!(other["tenant"], "globex", "{other}");
    let key: Value = again
        .op
        .post(format!("{}/api/v1/keys", again.url))
        .header("x-aiplus-tenant", "globex")
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let foreign = http.get(format!("{}/v1/responses/{id}", again.url)).bearer_auth(key["secret"].as_str().unwrap()).send().await.unwrap();
    let missing =
        http.get(format!("{}/v1/responses/resp_nothing", again.url)).bearer_auth(key["secret"].as_str().unwrap()).send().await.unwrap();
    assert_eq!((foreign.status(), missing.status()), (reqwest::StatusCode::NOT_FOUND, reqwest::StatusCode::NOT_FOUND));
}
