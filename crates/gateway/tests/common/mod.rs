//! What the gateway's integration tests share: the router behind the real gate.

#![allow(dead_code, reason = "each test binary uses part of this module")]

use std::sync::Arc;

/// The router behind the gate, as `aiplus serve` assembles it, and a client that carries an
/// operator token.
pub async fn guarded(router: axum::Router, identity: Arc<identity::Identity>) -> (axum::Router, reqwest::Client) {
    let (_, token) = identity.create_operator_token("tests", identity::Role::OperatorAdmin, 0).await.unwrap();
    let gate = Arc::new(api::gate::Gate { identity, hosts: api::gate::Hosts::default(), clock: Arc::new(jobs::SystemClock) });
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    (api::gate::guard(router, gate), reqwest::Client::builder().default_headers(h).build().unwrap())
}
