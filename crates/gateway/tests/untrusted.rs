//! Upstreams are not trusted: what a hostile or broken model server sends back is cut, cleaned
//! or refused, and the keys the gateway holds for it are sealed in the store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;
use common::{Env, chat, post, serve, usage};

use std::collections::BTreeMap;

use gateway::{GatewayConfig, Meter};
use serde_json::{Value, json};

async fn start(upstream: &str) -> Env {
    let models = ["refuse", "redirect", "huge", "greedy"]
        .map(|m| format!("[[model]]\nname = \"{m}\"\n[[model.deployment]]\nid = \"{m}\"\nbase_url = \"{upstream}/{m}/v1\"\n"))
        .join("");
    // The doubles listen on loopback, which the operator must allow.
    let cfg: GatewayConfig = toml::from_str(&format!("max_attempts = 1\nallow_local_upstreams = true\n{models}")).unwrap();
    let store = store::Store::memory().await.unwrap();
    let (meter, _writer) = Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    serve(cfg, store, meter).await.0
}

#[tokio::test]
async fn an_upstream_refusal_reaches_the_client_only_as_a_clean_message() {
    let env = start(&gateway::test_double::start().await.unwrap()).await;
    let r = post(&env, &chat("refuse", false), Some(&env.key)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded", "a plain code is kept");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("the model's server refused the request: <b>bad</b>[31mxxx"), "{message}");
    assert!(!message.chars().any(char::is_control), "control characters are dropped: {message:?}");
    assert!(message.chars().count() <= 300 + 45, "cut to 300 characters: {}", message.len());
    assert!(!v.to_string().contains("Traceback"), "nothing but the message is passed on: {v}");

    // A redirect is not followed (it would carry the upstream key elsewhere): it is a 502.
    let r = post(&env, &chat("redirect", false), Some(&env.key)).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "upstream_redirect");
}

#[tokio::test]
async fn an_oversized_answer_is_not_read_whole_and_huge_token_counts_saturate() {
    let env = start(&gateway::test_double::start().await.unwrap()).await;
    let r = post(&env, &chat("huge", false), Some(&env.key)).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("more than 16 MiB"), "{v}");

    let r = post(&env, &chat("greedy", false), Some(&env.key)).await;
    assert_eq!(r.status(), 200);
    let u = usage(&env, 2).await;
    let greedy = u.iter().find(|e| e["refs"]["model"] == "greedy").unwrap();
    assert_eq!(greedy["input_tokens"], 1u64 << 40, "{greedy}");
    assert_eq!(greedy["quantity"].as_f64().unwrap(), (2u64 << 40) as f64);
    // The cut keeps sums over the ledger far from overflowing.
    let rows: Vec<ledger::Entry<Value>> = env.store.usage(Some("acme"), Some("gateway"), 0, i64::MAX, 1000).await.unwrap();
    let greedy_row = rows.into_iter().find(|r| r.doc.reference("model") == "greedy").unwrap();
    let by = ledger::summary::GroupBy { model: true, ..Default::default() };
    let sums = ledger::summary::summarize(&vec![greedy_row; 1 << 12], by);
    assert_eq!(sums[0].input_tokens, (1u64 << 40) << 12);
}

#[tokio::test]
async fn upstreams_on_this_host_are_refused_unless_the_operator_allows_them() {
    let err = toml::from_str::<GatewayConfig>(
        "[[model]]\nname = \"m\"\n[[model.deployment]]\nid = \"d\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
    )
    .unwrap()
    .validate()
    .unwrap_err();
    assert!(err.starts_with("gateway.model[0].deployment[0].base_url:") && err.contains("this host"), "{err}");

    // Through the API, on a gateway that does not allow them.
    let store = store::Store::memory().await.unwrap();
    let (meter, _writer) = Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    let env = serve(GatewayConfig::default(), store, meter).await.0;
    for url in ["http://169.254.169.254/latest/v1", "http://localhost:8080/v1", "http://[::1]/v1"] {
        let body = json!({"deployment": [{"id": "meta", "base_url": url}]});
        let r = env.op.put(format!("{}/api/v1/models/meta", env.url)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 422, "{url}");
        let v: Value = r.json().await.unwrap();
        assert!(v.to_string().contains("base_url"), "the error names the field: {v}");
    }
}

#[tokio::test]
async fn upstream_keys_are_stored_sealed_and_old_clear_ones_are_sealed_at_start() {
    let upstream = gateway::test_double::start().await.unwrap();
    let env = start(&upstream).await;
    let body = json!({"deployment": [{"id": "up", "base_url": format!("{upstream}/auth/v1"), "api_key": "sk-upstream"}]});
    let r = env.op.put(format!("{}/api/v1/models/secured", env.url)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let stored: Vec<(String, Value, BTreeMap<String, String>)> = env.store.models().await.unwrap();
    let sealed = &stored.iter().find(|(n, _, _)| n == "secured").unwrap().2["up"];
    assert!(identity::Sealer::is_sealed(sealed) && !sealed.contains("sk-upstream"), "{sealed}");
    assert_eq!(post(&env, &chat("secured", false), Some(&env.key)).await.status(), 200, "the sealed key opens and is sent");

    // A database from before sealing: the clear key is sealed when the gateway starts.
    let store = store::Store::memory().await.unwrap();
    let model = json!({"name": "old", "deployment": [{"id": "old", "base_url": format!("{upstream}/auth/v1")}]});
    store.put_model("old", &model, &BTreeMap::from([("old".to_string(), "sk-upstream".to_string())])).await.unwrap();
    let (meter, _writer) = Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    let env = serve(GatewayConfig { allow_local_upstreams: true, ..GatewayConfig::default() }, store.clone(), meter).await.0;
    let stored: Vec<(String, Value, BTreeMap<String, String>)> = store.models().await.unwrap();
    assert!(identity::Sealer::is_sealed(&stored[0].2["old"]), "{:?}", stored[0].2);
    assert_eq!(post(&env, &chat("old", false), Some(&env.key)).await.status(), 200);
}
