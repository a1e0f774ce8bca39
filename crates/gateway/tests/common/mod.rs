//! What the gateway's integration tests share: the router behind the real gate.

#![allow(dead_code, reason = "each test binary uses part of this module")]

use std::sync::Arc;
use std::time::Duration;

use gateway::{Gateway, GatewayConfig, Meter};
use serde_json::{Value, json};

/// The router behind the gate, as `aiplus serve` assembles it, and a client that carries an
/// operator token.
pub async fn guarded(router: axum::Router, identity: Arc<identity::Identity>) -> (axum::Router, reqwest::Client) {
    let (_, token) = identity.create_operator_token("tests", identity::Role::OperatorAdmin, 0).await.unwrap();
    let gate = Arc::new(api::gate::Gate { identity, hosts: api::gate::Hosts::default(), clock: Arc::new(jobs::SystemClock) });
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    (api::gate::guard(router, gate), reqwest::Client::builder().default_headers(h).build().unwrap())
}

/// A gateway served on a loopback port behind the gate, with tenant acme and a key of it.
pub struct Env {
    pub url: String,
    pub store: store::Store,
    pub key: String,
    /// A client with an operator token.
    pub op: reqwest::Client,
}

/// Serves a gateway on `store` and `meter` behind the gate, with tenant acme and a key of it.
pub async fn serve(cfg: GatewayConfig, store: store::Store, meter: Meter) -> (Env, Arc<Gateway>, tokio::task::JoinHandle<()>) {
    let identity = Arc::new(identity::Identity::open(store.clone()).await.unwrap());
    if identity.tenant("acme").is_none() {
        identity.create_tenant("acme", None, 0).await.unwrap();
    }
    let gw =
        Arc::new(Gateway::new(cfg, store.clone(), identity.clone(), Arc::new(identity::Sealer::new([1; 32])), meter, None).await.unwrap());
    let (app, op) = guarded(gateway::router(gw.clone()), identity).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let created: Value = op
        .post(format!("{url}/api/v1/keys"))
        .header("x-aiplus-tenant", "acme")
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (Env { url, store, key: created["secret"].as_str().unwrap().to_string(), op }, gw, server)
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "say hello"}], "stream": stream, "stream_options": {"include_usage": true}})
}

pub async fn post(env: &Env, body: &Value, key: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new().post(format!("{}/v1/chat/completions", env.url)).json(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

/// The ledger once it holds `n` events, or after 10 s whatever it holds. The writer flushes in
/// batches, and a loaded CI machine can take longer than any fixed sleep; the caller asserts.
pub async fn usage(env: &Env, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<store::UsageRow<Value>> = env.store.usage(Some("acme"), Some("gateway"), 0, i64::MAX, 1000).await.unwrap();
        if rows.len() >= n || std::time::Instant::now() > deadline {
            return rows.into_iter().map(|r| r.doc).collect();
        }
        tokio::time::sleep(gateway::meter::FLUSH_EVERY).await;
    }
}
