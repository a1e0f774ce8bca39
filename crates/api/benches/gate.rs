//! What the gate costs a request, in-process and without a network: the same trivial route
//! called through `oneshot` bare and behind the gate (Host check, permission table, bearer key
//! lookup, the access check, the principal handed over). Run: `cargo bench -p api --bench gate`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark: failures should be loud")]

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use tower::ServiceExt;

/// A route of the OpenAI-compatible surface that reads the caller, as the gateway's do.
async fn handler(who: Option<Extension<Arc<identity::Principal>>>) -> &'static str {
    if who.is_some() { "ok" } else { "anonymous" }
}

fn request(secret: &str) -> Request<Body> {
    Request::builder()
        .uri("/v1/models")
        .header("host", "127.0.0.1:8080")
        .header("authorization", format!("Bearer {secret}"))
        .body(Body::empty())
        .unwrap()
}

async fn per_request_ns(app: &axum::Router, secret: &str, n: u32) -> f64 {
    for _ in 0..n / 10 {
        app.clone().oneshot(request(secret)).await.unwrap();
    }
    let start = Instant::now();
    for _ in 0..n {
        let r = app.clone().oneshot(request(secret)).await.unwrap();
        assert!(r.status().is_success());
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = store::Store::memory().await.unwrap();
        let identity = Arc::new(identity::Identity::open(store).await.unwrap());
        identity.create_tenant("acme", None, 0).await.unwrap();
        let (_, secret) =
            identity.create_key(&identity::Principal::internal_operator(), "acme", identity::NewKey::default(), 0).await.unwrap();
        let bare = axum::Router::new().route("/v1/models", get(handler));
        let gate = Arc::new(api::gate::Gate { identity, hosts: api::gate::Hosts::default(), clock: Arc::new(jobs::SystemClock) });
        let guarded = api::gate::guard(axum::Router::new().route("/v1/models", get(handler)), gate);
        let n = 200_000;
        let mut rounds = Vec::new();
        for _ in 0..5 {
            let a = per_request_ns(&bare, &secret, n).await;
            let b = per_request_ns(&guarded, &secret, n).await;
            rounds.push((a, b));
        }
        rounds.sort_by(|x, y| (x.1 - x.0).total_cmp(&(y.1 - y.0)));
        let (a, b) = rounds[rounds.len() / 2];
        println!(
            "bare route: {a:.0} ns/request; behind the gate: {b:.0} ns/request; the gate adds {:.0} ns (median of 5 rounds of {n})",
            b - a
        );
    });
}
