//! The gateway's operator side, in-process against the upstream test double: limits, tenant
//! regions, models managed through the API (upstream keys never shown), Responses streams that
//! break, upstream 429 fallback, and the Prometheus metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;
use common::guarded;

use std::sync::Arc;
use std::time::Duration;

use gateway::{Gateway, GatewayConfig, Meter, Site, Sites};
use serde_json::{Value, json};

/// Two clusters: `c-east` in hub jingjinji (dearer), `c-west` in hub ningxia (cheaper).
struct TwoSites;

impl Sites for TwoSites {
    fn site(&self, cluster: &str, _now_ms: i64) -> Option<Site> {
        match cluster {
            "c-east" => Some(Site { hub: "jingjinji".into(), province: "Hebei".into(), cost_cny_per_kwh: 0.9 }),
            "c-west" => Some(Site { hub: "ningxia".into(), province: "Ningxia".into(), cost_cny_per_kwh: 0.4 }),
            _ => None,
        }
    }
}

struct Env {
    url: String,
    store: store::Store,
    http: reqwest::Client,
}

impl Env {
    async fn start() -> Self {
        let upstream = gateway::test_double::start().await.unwrap();
        let cfg: GatewayConfig = toml::from_str(&format!(
            r#"
max_attempts = 3
[[model]]
name = "regional"
[[model.deployment]]
id = "east"
base_url = "{upstream}/ok/v1"
cluster = "c-east"
[[model.deployment]]
id = "west"
base_url = "{upstream}/ok/v1"
cluster = "c-west"
[[model]]
name = "busy"
[[model.deployment]]
id = "throttled"
base_url = "{upstream}/rate/v1"
weight = 1000
[[model.deployment]]
id = "spare"
base_url = "{upstream}/ok/v1"
[[model]]
name = "wobbly"
[[model.deployment]]
id = "flaky"
base_url = "{upstream}/flaky-50/v1"
[[model.deployment]]
id = "steady"
base_url = "{upstream}/ok/v1"
[[model]]
name = "quickest"
routing = "least-latency"
[[model.deployment]]
id = "slowish"
base_url = "{upstream}/delay-40/v1"
[[model.deployment]]
id = "quick"
base_url = "{upstream}/ok/v1"
[[model]]
name = "flaky-stream"
[[model.deployment]]
id = "broken"
base_url = "{upstream}/broken/v1"
"#
        ))
        .unwrap();
        let store = store::Store::memory().await.unwrap();
        let (meter, _writer) = Meter::start(store.clone(), Duration::from_millis(10));
        let identity = Arc::new(identity::Identity::open(store.clone()).await.unwrap());
        // The upstream doubles listen on loopback.
        let cfg = GatewayConfig { allow_local_upstreams: true, ..cfg };
        let gw = Arc::new(
            Gateway::new(cfg, store.clone(), identity.clone(), Arc::new(identity::Sealer::new([1; 32])), meter, Some(Arc::new(TwoSites)))
                .await
                .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (app, http) = guarded(gateway::router(gw), identity).await;
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Env { url, store, http }
    }

    /// A key for the tenant the body's `tenant` names (registered first); the rest of the body
    /// (role, scopes, limits) is the key's.
    async fn key(&self, mut body: Value) -> String {
        let tenant = body.as_object_mut().unwrap().remove("tenant").unwrap();
        let tenant = tenant.as_str().unwrap();
        self.http.post(format!("{}/api/v1/tenants", self.url)).json(&json!({"id": tenant})).send().await.unwrap();
        let r = self.http.post(format!("{}/api/v1/keys", self.url)).header("x-aiplus-tenant", tenant).json(&body).send().await.unwrap();
        let r: Value = r.json().await.unwrap();
        r["secret"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
    }

    async fn chat(&self, key: &str, model: &str) -> reqwest::Response {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        self.http.post(format!("{}/v1/chat/completions", self.url)).bearer_auth(key).json(&body).send().await.unwrap()
    }

    /// The tenant's ledger once it holds `n` events, or after 10 s whatever it holds. The writer
    /// flushes in batches, and a loaded CI machine can take longer than any fixed sleep.
    async fn usage(&self, tenant: &str, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let rows: Vec<store::UsageRow<Value>> = self.store.usage(Some(tenant), Some("gateway"), 0, i64::MAX, 1000).await.unwrap();
            if rows.len() >= n || std::time::Instant::now() > deadline {
                return rows.into_iter().map(|r| r.doc).collect();
            }
            tokio::time::sleep(gateway::meter::FLUSH_EVERY).await;
        }
    }
}

#[tokio::test]
async fn a_key_over_its_request_limit_gets_429_with_retry_after_and_is_metered() {
    let env = Env::start().await;
    let key = env.key(json!({"tenant": "acme", "limits": {"requests_per_min": 3}})).await;
    for _ in 0..3 {
        assert_eq!(env.chat(&key, "regional").await.status(), 200);
    }
    let r = env.chat(&key, "regional").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("3 requests per minute"), "{body}");
    let statuses: Vec<u64> = env.usage("acme", 4).await.iter().map(|u| u["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Bad limits are refused, naming the field.
    let r = env
        .http
        .post(format!("{}/api/v1/keys", env.url))
        .header("x-aiplus-tenant", "acme")
        .json(&json!({"limits": {"tokens_per_day": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "limits.tokens_per_day");
    let metrics = env.http.get(format!("{}/metrics", env.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("aiplus_gateway_limit_rejections_total{scope=\"key\",limit=\"requests per minute\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_tenant_token_budget_is_shared_by_its_keys() {
    let env = Env::start().await;
    let put = || env.http.put(format!("{}/api/v1/tenants/acme", env.url)).json(&json!({"limits": {"tokens_per_day": 600}})).send();
    assert_eq!(put().await.unwrap().status(), 404, "settings need a registered tenant");
    let r = env.http.post(format!("{}/api/v1/tenants", env.url)).json(&json!({"id": "acme"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(put().await.unwrap().status(), 200);
    let (k1, k2) = (env.key(json!({"tenant": "acme"})).await, env.key(json!({"tenant": "acme"})).await);
    // Each request reserves its prompt estimate plus 256 answer tokens, then settles at the
    // 14 tokens the upstream reports: the budget admits requests while a reservation fits.
    let mut ok = 0;
    for i in 0..60 {
        let k = if i % 2 == 0 { &k1 } else { &k2 };
        if env.chat(k, "regional").await.status() == 200 {
            ok += 1;
        }
    }
    let used: u64 =
        env.usage("acme", 60).await.iter().map(|u| u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap()).sum();
    assert!(used <= 600, "settled usage stays within the budget: {used}");
    assert!((20..60).contains(&ok), "admitted until the budget ran out: {ok}");
}

#[tokio::test]
async fn tenant_regions_pick_deployments_and_the_cheaper_site_wins_among_equals() {
    let env = Env::start().await;
    let key = env.key(json!({"tenant": "acme"})).await;
    // No regions: weights are equal, so the cheaper site (west) answers first, then they alternate.
    for _ in 0..4 {
        assert_eq!(env.chat(&key, "regional").await.status(), 200);
    }
    let deployments: Vec<String> =
        env.usage("acme", 4).await.iter().map(|u| u["refs"]["deployment"].as_str().unwrap().to_string()).collect();
    assert_eq!(deployments, ["west", "east", "west", "east"]);

    let gov = env.key(json!({"tenant": "gov"})).await;
    let r = env.http.put(format!("{}/api/v1/tenants/gov", env.url)).json(&json!({"regions": ["hub:jingjinji"]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..4 {
        assert_eq!(env.chat(&gov, "regional").await.status(), 200);
    }
    assert!(env.usage("gov", 4).await.iter().all(|u| u["refs"]["deployment"] == "east"), "only the allowed region serves gov");
    // A model with no deployment in the tenant's regions is refused, not served elsewhere.
    let r = env.chat(&gov, "busy").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "region_not_allowed");
    let r = env.http.put(format!("{}/api/v1/tenants/gov", env.url)).json(&json!({"regions": ["moon:base"]})).send().await.unwrap();
    // A value serde cannot read is a malformed request (400), as everywhere in the API.
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "regions[0]");
}

#[tokio::test]
async fn an_upstream_429_falls_back_and_is_counted() {
    let env = Env::start().await;
    let key = env.key(json!({"tenant": "acme"})).await;
    let r = env.chat(&key, "busy").await;
    assert_eq!(r.status(), 200);
    assert_eq!(env.usage("acme", 1).await[0]["refs"]["deployment"], "spare");
    let metrics = env.http.get(format!("{}/metrics", env.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("aiplus_gateway_upstream_errors_total{deployment=\"throttled\",reason=\"429\"} 1"), "{metrics}");
    assert!(metrics.contains("aiplus_gateway_requests_total{endpoint=\"chat.completions\",model=\"busy\",status=\"200\"} 1"), "{metrics}");
    assert!(metrics.contains("aiplus_gateway_request_duration_seconds_count{endpoint=\"chat.completions\"} 1"), "{metrics}");
    assert!(metrics.contains("aiplus_gateway_tokens_total{model=\"busy\",direction=\"input\"} 11"), "{metrics}");
}

#[tokio::test]
async fn models_managed_through_the_api_work_and_never_show_their_upstream_key() {
    let env = Env::start().await;
    let upstream = gateway::test_double::start().await.unwrap();
    let key = env.key(json!({"tenant": "acme"})).await;
    let body = json!({"routing": "least-latency", "deployment": [{"id": "up", "base_url": format!("{upstream}/auth/v1"), "api_key": "sk-upstream"}]});
    let r = env.http.put(format!("{}/api/v1/models/m2", env.url)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let shown = r.text().await.unwrap();
    assert!(!shown.contains("sk-upstream"), "{shown}");
    let listed = env.http.get(format!("{}/api/v1/models", env.url)).send().await.unwrap().text().await.unwrap();
    assert!(listed.contains("\"m2\"") && !listed.contains("sk-upstream"), "{listed}");
    // The upstream only answers with its key: the gateway sends it.
    assert_eq!(env.chat(&key, "m2").await.status(), 200);

    // Config models belong to aiplus.toml; bad deployments are refused with the field named.
    let r = env.http.put(format!("{}/api/v1/models/regional", env.url)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let bad = json!({"deployment": [{"id": "x", "base_url": "ftp://nope"}]});
    let r = env.http.put(format!("{}/api/v1/models/m3", env.url)).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "deployment[0].base_url");
    let dup = json!({"deployment": [{"id": "east", "base_url": "http://x/v1"}]});
    let r = env.http.put(format!("{}/api/v1/models/m3", env.url)).json(&dup).send().await.unwrap();
    assert_eq!(r.status(), 422, "deployment ids are unique across models");

    let r = env.http.delete(format!("{}/api/v1/models/m2", env.url)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(env.chat(&key, "m2").await.status(), 404);
}

#[tokio::test]
async fn a_broken_responses_stream_ends_with_an_error_and_a_failed_response() {
    let env = Env::start().await;
    let key = env.key(json!({"tenant": "acme"})).await;
    let r = env
        .http
        .post(format!("{}/v1/responses", env.url))
        .bearer_auth(&key)
        .json(&json!({"model": "flaky-stream", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "error",
            "response.failed"
        ],
        "{text}"
    );
    assert!(text.contains("stream_interrupted"), "{text}");
    let u = env.usage("acme", 1).await;
    assert_eq!((u[0]["endpoint"].as_str(), u[0]["status"].as_u64(), u[0]["stream"].as_bool()), (Some("responses"), Some(502), Some(true)));
    assert!(u[0]["output_tokens"].as_u64().unwrap() > 0, "what was streamed is counted: {u:?}");
}

#[tokio::test]
async fn a_flaky_deployment_fails_over_without_the_client_noticing() {
    let env = Env::start().await;
    let key = env.key(json!({"tenant": "acme"})).await;
    for _ in 0..10 {
        assert_eq!(env.chat(&key, "wobbly").await.status(), 200);
    }
    let metrics = env.http.get(format!("{}/metrics", env.url)).send().await.unwrap().text().await.unwrap();
    let failures: u64 = metrics
        .lines()
        .find(|l| l.starts_with("aiplus_gateway_upstream_errors_total{deployment=\"flaky\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Half of flaky's requests fail (every second one); each failure moved on to steady.
    assert!(failures >= 2, "{metrics}");
    let served_by_steady = env.usage("acme", 10).await.iter().filter(|u| u["refs"]["deployment"] == "steady").count() as u64;
    assert!(served_by_steady >= failures, "{served_by_steady} >= {failures}");
}

#[tokio::test]
async fn least_latency_routing_learns_the_quicker_deployment() {
    let env = Env::start().await;
    let key = env.key(json!({"tenant": "acme"})).await;
    for _ in 0..12 {
        assert_eq!(env.chat(&key, "quickest").await.status(), 200);
    }
    let by: Vec<String> = env.usage("acme", 12).await.iter().map(|u| u["refs"]["deployment"].as_str().unwrap().to_string()).collect();
    // Both are tried once while untried counts as fastest; then the 40 ms one is avoided.
    assert!(by[..2].contains(&"slowish".to_string()), "{by:?}");
    assert!(by[2..].iter().all(|d| d == "quick"), "{by:?}");
    let status: Value = env.http.get(format!("{}/api/v1/gateway", env.url)).send().await.unwrap().json().await.unwrap();
    let quickest = status["models"].as_array().unwrap().iter().find(|m| m["name"] == "quickest").unwrap();
    let slowish = quickest["deployments"].as_array().unwrap().iter().find(|d| d["id"] == "slowish").unwrap();
    assert!(slowish["latency_ms_ewma"].as_f64().unwrap() >= 40.0, "{slowish}");
}

/// Every endpoint refuses a model none of whose deployments the tenant's regions allow the same
/// way, through the one admission pipeline: 403, `permission_error`, `region_not_allowed`.
#[tokio::test]
async fn a_region_refusal_is_the_same_on_every_endpoint() {
    let env = Env::start().await;
    let key = env.key(json!({"tenant": "far"})).await;
    let r = env.http.put(format!("{}/api/v1/tenants/far", env.url)).json(&json!({"regions": ["province:Xizang"]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (path, body) in [
        ("chat/completions", json!({"model": "regional", "messages": [{"role": "user", "content": "hi"}]})),
        ("completions", json!({"model": "regional", "prompt": "hi"})),
        ("responses", json!({"model": "regional", "input": "hi"})),
        ("embeddings", json!({"model": "regional", "input": ["hi"]})),
    ] {
        let r = env.http.post(format!("{}/v1/{path}", env.url)).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(
            (e["error"]["type"].as_str(), e["error"]["code"].as_str()),
            (Some("permission_error"), Some("region_not_allowed")),
            "{path}: {e}"
        );
    }
    let statuses: Vec<u64> = env.usage("far", 4).await.iter().map(|u| u["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [403, 403, 403, 403], "each refusal is metered once");
}
