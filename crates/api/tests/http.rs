//! In-process API tests: the real router and store (SQLite), driven with `oneshot`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use jobs::{Clock, ComputeService};
use serde_json::{Value, json};
use tower::ServiceExt;

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// 2025-01-01 10:00 CST: peak hours in most provinces.
const T0_MS: i64 = 1_735_696_800_000;

async fn service(store: store::Store) -> Arc<ComputeService> {
    let net = compute::file::builtin_network().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(TestClock(AtomicI64::new(T0_MS)));
    let dir = std::env::temp_dir().join(format!("aiplus-http-jobs-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst)));
    let local: Arc<dyn executor::Executor> = Arc::new(executor::local::LocalExecutor::new(dir).unwrap());
    let engines = jobs::lifecycle::Engines::new(local);
    Arc::new(ComputeService::open(store, &net, compute::Policy::Aiplus, compute::Weights::default(), clock, engines).await.unwrap())
}

static COUNTER: AtomicI64 = AtomicI64::new(0);

/// The router behind the gate, and an operator token for it. Requests act for tenant acme.
#[derive(Clone)]
struct App {
    router: Router,
    token: String,
}

async fn app() -> App {
    app_on(store::Store::memory().await.unwrap()).await
}

async fn app_on(store: store::Store) -> App {
    let svc = service(store.clone()).await;
    let identity = Arc::new(identity::Identity::open(store).await.unwrap());
    if identity.tenant("acme").is_none() {
        identity.create_tenant("acme", None, T0_MS).await.unwrap();
    }
    let (_, token) = identity.create_operator_token("tests", identity::Role::OperatorAdmin, T0_MS).await.unwrap();
    let gate = Arc::new(api::gate::Gate { identity, hosts: api::gate::Hosts::default(), clock: Arc::new(jobs::SystemClock) });
    App { router: api::gate::guard(api::router(svc), gate), token }
}

async fn call(app: &App, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value, String) {
    call_raw(app, method, uri, body.map(|b| b.to_string()), &[]).await
}

async fn call_raw(app: &App, method: &str, uri: &str, body: Option<String>, headers: &[(&str, &str)]) -> (StatusCode, Value, String) {
    let mut req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {}", app.token));
    if !headers.iter().any(|(k, _)| *k == "x-aiplus-tenant") {
        req = req.header("x-aiplus-tenant", "acme");
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.router.clone().oneshot(req.body(body.map_or(Body::empty(), Body::from)).unwrap()).await.unwrap();
    let status = resp.status();
    let ctype = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), ctype)
}

fn training_job() -> Value {
    json!({
        "name": "pretrain",
        "kind": "training",
        "gpus": 8,
        "cpu_milli": 32000,
        "memory_mib": 200000,
        "duration_s": 7200,
        "dataset": {"cluster": "zhangjiakou", "size_gb": 300.0},
        "origin_hub": "jingjinji",
        "command": ["sh", "-c", "echo training"]
    })
}

#[tokio::test]
async fn hubs_and_clusters_are_listed_with_live_state() {
    let app = app().await;
    let (s, hubs, _) = call(&app, "GET", "/api/v1/hubs", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hubs.as_array().unwrap().len(), 8);
    let (s, c, _) = call(&app, "GET", "/api/v1/clusters/qingyang", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c["hub"], "gansu");
    assert_eq!(c["gpus_used"], 0.0);
    assert!(c["gpus_total"].as_f64().unwrap() > 0.0);
    let (s, p, ctype) = call(&app, "GET", "/api/v1/clusters/atlantis", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(p["status"], 404);
}

#[tokio::test]
async fn submit_places_explains_and_cancel_frees() {
    let app = app().await;
    let (s, job, _) = call(&app, "POST", "/api/v1/jobs", Some(training_job())).await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    assert_eq!(job["state"], "placed");
    let id = job["id"].as_str().unwrap().to_string();
    let cluster = job["placement"]["cluster"].as_str().unwrap().to_string();
    assert_eq!(job["placement"]["gpus"].as_array().unwrap().len(), 8);

    let (s, p, _) = call(&app, "GET", &format!("/api/v1/jobs/{id}/placement"), None).await;
    assert_eq!(s, StatusCode::OK);
    let chosen = &p["placement"]["explanation"]["chosen"];
    assert_eq!(chosen["cluster"], cluster.as_str());
    let runners = p["placement"]["explanation"]["runners_up"].as_array().unwrap();
    assert!(!runners.is_empty());
    for r in runners {
        assert!(r["total_cny"].as_f64().unwrap() >= chosen["total_cny"].as_f64().unwrap(), "runner-up scored better than the choice");
    }

    let (_, c, _) = call(&app, "GET", &format!("/api/v1/clusters/{cluster}"), None).await;
    assert_eq!(c["gpus_used"], 8.0);
    assert_eq!(c["jobs_placed"], 1);

    let (s, cancelled, _) = call(&app, "POST", &format!("/api/v1/jobs/{id}/cancel"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cancelled["state"], "cancelled");
    let (_, c, _) = call(&app, "GET", &format!("/api/v1/clusters/{cluster}"), None).await;
    assert_eq!(c["gpus_used"], 0.0);

    let (_, list, _) = call(&app, "GET", "/api/v1/jobs?tenant=acme&state=cancelled", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

/// The pool a placement names, as the cluster describes it.
async fn placed_pool(app: &App, job: &Value) -> Value {
    let cluster = job["placement"]["cluster"].as_str().unwrap();
    let (_, c, _) = call(app, "GET", &format!("/api/v1/clusters/{cluster}"), None).await;
    c["node_pool"].as_array().unwrap().iter().find(|p| p["name"] == job["placement"]["pool"]).unwrap().clone()
}

#[tokio::test]
async fn a_cpu_only_job_is_placed_on_cores_and_may_not_name_gpu_models() {
    let app = app().await;
    let cpu_job = |cores: u32| json!({"kind": "batch_inference", "gpus": 0, "cpu_milli": cores * 1000, "memory_mib": 4096, "duration_s": 600, "command": ["true"]});
    // Four cores fit a CPU node (32 cores): that is where the scheduler puts them.
    let (s, job, _) = call(&app, "POST", "/api/v1/jobs", Some(cpu_job(4))).await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    assert_eq!(job["state"], "placed");
    assert_eq!(job["spec"]["gpus"], 0);
    assert_eq!(job["placement"]["gpus"], json!([]), "a CPU-only job holds no GPU");
    let pool = placed_pool(&app, &job).await;
    assert!(pool["gpu_model"].is_null() && pool["cpu_milli"].as_u64().unwrap() >= 4000, "{pool}");
    let (_, c, _) = call(&app, "GET", &format!("/api/v1/clusters/{}", job["placement"]["cluster"].as_str().unwrap()), None).await;
    assert_eq!((c["cpu_cores_used"].as_f64(), c["gpus_used"].as_f64()), (Some(4.0), Some(0.0)), "{c}");

    // Forty cores fit no CPU node (32 cores), but do fit a GPU node's spare cores.
    let (s, job, _) = call(&app, "POST", "/api/v1/jobs", Some(cpu_job(40))).await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    assert_eq!(job["placement"]["gpus"], json!([]));
    let pool = placed_pool(&app, &job).await;
    assert!(pool["gpu_model"].is_string() && pool["cpu_milli"].as_u64().unwrap() >= 40_000, "{pool}");

    // GPU models mean nothing without GPUs: refused, naming the field.
    let mut bad = cpu_job(4);
    bad["gpu_models"] = json!(["T4"]);
    let (s, p, ctype) = call(&app, "POST", "/api/v1/jobs", Some(bad)).await;
    assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::UNPROCESSABLE_ENTITY, "{s} {p}");
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(p["field"], "gpu_models", "{p}");
    let (_, list, _) = call(&app, "GET", "/api/v1/jobs", None).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "the refused job was not stored");
}

#[tokio::test]
async fn a_job_that_never_fits_says_in_the_detail_which_dimension_is_short() {
    let app = app().await;
    let mut j = training_job();
    j["gpu_models"] = json!(["V100M32"]);
    j["cpu_milli"] = json!(120_000);
    j["memory_mib"] = json!(512 * 1024);
    let (s, p, ctype) = call(&app, "POST", "/api/v1/jobs", Some(j)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(
        p["detail"],
        "No node is big enough: the job asks for 8 GPUs, 120 cores and 512 GiB on one node, and the largest node with V100M32 GPUs \
         (pool v100m32-8x of cluster tianfu) has 8 GPUs, 96 cores and 768 GiB: too few cores.",
        "{p}"
    );
    // The reason per cluster stays, for programs.
    let exclusions = p["exclusions"].as_array().unwrap();
    assert_eq!(exclusions.len(), 10, "{p}");
    let short: Vec<&str> =
        exclusions.iter().filter(|e| e["reason"] == "node_shape_too_small").map(|e| e["cluster"].as_str().unwrap()).collect();
    assert_eq!(short, ["tianfu", "zhongwei"], "{p}");

    // Memory, when memory is what no node has.
    let mut j = training_job();
    j["memory_mib"] = json!(4 * 1024 * 1024);
    let (s, p, _) = call(&app, "POST", "/api/v1/jobs", Some(j)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["detail"].as_str().unwrap().ends_with("has 8 GPUs, 112 cores and 2048 GiB: too little memory."), "{p}");
}

#[tokio::test]
async fn idempotency_key_returns_the_first_job() {
    let app = app().await;
    let body = training_job().to_string();
    let (s1, a, _) = call_raw(&app, "POST", "/api/v1/jobs", Some(body.clone()), &[("idempotency-key", "run-42")]).await;
    let (s2, b, _) = call_raw(&app, "POST", "/api/v1/jobs", Some(body), &[("idempotency-key", "run-42")]).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(a["id"], b["id"]);
    let (_, list, _) = call(&app, "GET", "/api/v1/jobs", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Only one job's GPUs are held.
    let (_, clusters, _) = call(&app, "GET", "/api/v1/clusters", None).await;
    let used: f64 = clusters.as_array().unwrap().iter().map(|c| c["gpus_used"].as_f64().unwrap()).sum();
    assert_eq!(used, 8.0);
}

#[tokio::test]
async fn bad_requests_name_the_field_and_store_nothing() {
    let app = app().await;
    let (s, _, _) = call(&app, "POST", "/api/v1/jobs", Some(training_job())).await;
    assert_eq!(s, StatusCode::CREATED);

    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({"kind": "training"}), StatusCode::BAD_REQUEST, "cpu_milli"),
        (
            {
                let mut j = training_job();
                j["kind"] = json!("fine_tuning");
                j
            },
            StatusCode::BAD_REQUEST,
            "kind",
        ),
        (
            {
                let mut j = training_job();
                j["dataset"]["size_gb"] = json!("big");
                j
            },
            StatusCode::BAD_REQUEST,
            "dataset.size_gb",
        ),
        (
            {
                let mut j = training_job();
                j["action_area"] = json!("defence");
                j
            },
            StatusCode::BAD_REQUEST,
            "action_area",
        ),
        (
            {
                let mut j = training_job();
                j["dataset"]["size_gb"] = json!(-1.0);
                j
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "dataset.size_gb",
        ),
        (
            {
                let mut j = training_job();
                j["gpus"] = json!(1000);
                j
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "gpus",
        ),
        (
            {
                let mut j = training_job();
                j["duration_s"] = json!(0);
                j
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "duration_s",
        ),
        (
            {
                let mut j = training_job();
                j["gpu_models"] = json!(["TPUv9"]);
                j
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "gpu_models[0]",
        ),
        (
            {
                let mut j = training_job();
                j["allowed_regions"] = json!(["province:Atlantis"]);
                j
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "allowed_regions[0]",
        ),
        (
            {
                let mut j = training_job();
                j["allowed_regions"] = json!(["planet:Mars"]);
                j
            },
            StatusCode::BAD_REQUEST,
            "allowed_regions[0]",
        ),
        (
            {
                let mut j = training_job();
                j["tenant"] = json!("Not An Id");
                j
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "tenant",
        ),
        (
            {
                let mut j = training_job();
                j["surprise"] = json!(1);
                j
            },
            StatusCode::BAD_REQUEST,
            "surprise",
        ),
    ];
    for (body, status, field) in cases {
        let (s, p, ctype) = call(&app, "POST", "/api/v1/jobs", Some(body.clone())).await;
        assert_eq!(s, status, "{body} -> {p}");
        assert_eq!(ctype, "application/problem+json");
        assert!(p["field"].as_str().unwrap_or("").contains(field) || p["detail"].as_str().unwrap().contains(field), "{body} -> {p}");
    }

    // Absurd resources: valid fields, but no node anywhere is that big.
    let mut j = training_job();
    j["memory_mib"] = json!(16 * 1024 * 1024);
    let (s, p, _) = call(&app, "POST", "/api/v1/jobs", Some(j)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["exclusions"].as_array().unwrap().len(), 10, "{p}");

    let (s, p, _) = call_raw(&app, "POST", "/api/v1/jobs", Some("{not json".into()), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    let (s, _, _) = call_raw(&app, "POST", "/api/v1/jobs", Some("x".repeat(2 << 20)), &[]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/jobs")
        .header("authorization", format!("Bearer {}", app.token))
        .header("x-aiplus-tenant", "acme")
        .body(Body::from(training_job().to_string()))
        .unwrap();
    assert_eq!(app.router.clone().oneshot(req).await.unwrap().status(), StatusCode::BAD_REQUEST, "missing content-type");
    let (s, p, _) = call(&app, "GET", "/api/v1/jobs?state=sleeping", None).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("state")));
    let (s, _, _) = call(&app, "GET", "/api/v1/jobs?limit=0", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // The one good job is still there, alone.
    let (_, list, _) = call(&app, "GET", "/api/v1/jobs", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cluster_register_and_update_validate_and_keep_the_old_network_on_error() {
    let app = app().await;
    let (_, qingyang, _) = call(&app, "GET", "/api/v1/clusters/qingyang", None).await;
    let mut new = cluster_spec(&qingyang);
    new["id"] = json!("qingyang-2");
    new["pue"] = json!(0.8);
    let (s, p, _) = call(&app, "POST", "/api/v1/clusters", Some(new.clone())).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(p["field"], "pue", "{p}");
    let (_, list, _) = call(&app, "GET", "/api/v1/clusters", None).await;
    assert_eq!(list.as_array().unwrap().len(), 10, "a rejected cluster must not be stored");

    new["pue"] = json!(1.15);
    new["tariff"]["hours"] = json!("VVV");
    let (s, p, _) = call(&app, "POST", "/api/v1/clusters", Some(new.clone())).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("tariff.hours")), "{p}");

    new["tariff"] = qingyang["tariff"].clone();
    let (s, c, _) = call(&app, "POST", "/api/v1/clusters", Some(new.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let (s, _, _) = call(&app, "POST", "/api/v1/clusters", Some(new.clone())).await;
    assert_eq!(s, StatusCode::CONFLICT);

    new["pue"] = json!(1.3);
    let (s, c, _) = call(&app, "PUT", "/api/v1/clusters/qingyang-2", Some(new.clone())).await;
    assert_eq!((s, c["pue"].as_f64()), (StatusCode::OK, Some(1.3)));
    let (s, _, _) = call(&app, "PUT", "/api/v1/clusters/qingyang", Some(new)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "renaming through PUT is refused");
}

#[tokio::test]
async fn a_cluster_too_large_is_refused_before_anything_is_allocated() {
    let app = app().await;
    let (_, qingyang, _) = call(&app, "GET", "/api/v1/clusters/qingyang", None).await;
    let mut big = cluster_spec(&qingyang);
    big["id"] = json!("huge");
    let pool = big["node_pool"][0].clone();
    big["node_pool"] = Value::Array(
        (0..=compute::network::MAX_POOLS_PER_CLUSTER)
            .map(|i| {
                let mut p = pool.clone();
                p["name"] = json!(format!("p{i}"));
                p
            })
            .collect(),
    );
    let (s, p, _) = call(&app, "POST", "/api/v1/clusters", Some(big.clone())).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("node_pool")), "{p}");
    assert!(p["reason"].as_str().unwrap().contains("at most 64 node pools"), "{p}");

    let mut one = pool.clone();
    one["nodes"] = json!(compute::network::MAX_NODES);
    big["node_pool"] = json!([one]);
    let (s, p, _) = call(&app, "POST", "/api/v1/clusters", Some(big)).await;
    assert_eq!((s, p["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("node_pool")), "{p}");
    assert!(p["reason"].as_str().unwrap().contains("more than 1000000 nodes"), "{p}");
    let (_, list, _) = call(&app, "GET", "/api/v1/clusters", None).await;
    assert_eq!(list.as_array().unwrap().len(), 10, "nothing was added");
}

#[tokio::test]
async fn hub_registration_needs_links_to_every_hub() {
    let app = app().await;
    let hub = json!({"id": "hainan", "name_zh": "海南", "name_en": "Hainan", "side": "east", "lat": 20.0, "lon": 110.3,
        "intra_latency_ms": 5.0, "intra_bandwidth_gbps": 400.0, "intra_source": "test"});
    let (s, p, _) = call(&app, "POST", "/api/v1/hubs", Some(json!({"hub": hub, "links": []}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p["reason"].as_str().unwrap().contains("no link between"), "{p}");
    let (_, hubs, _) = call(&app, "GET", "/api/v1/hubs", None).await;
    let links: Vec<Value> = hubs
        .as_array()
        .unwrap()
        .iter()
        .map(|h| json!({"to": h["id"], "latency_ms": 12.0, "bandwidth_gbps": 100.0, "source": "test"}))
        .collect();
    let (s, _, _) = call(&app, "POST", "/api/v1/hubs", Some(json!({"hub": hub, "links": links}))).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, got, _) = call(&app, "GET", "/api/v1/hubs/hainan", None).await;
    assert_eq!(got["name_en"], "Hainan");
}

#[tokio::test]
async fn queued_jobs_start_when_capacity_frees_and_a_restart_keeps_everything() {
    let dir = std::env::temp_dir().join(format!("aiplus-api-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = store::Store::open(&dir).await.unwrap();
    let app = app_on(store.clone()).await;
    // Fill the only Gansu cluster with whole 8-GPU jobs pinned there, then one more waits.
    let (_, c, _) = call(&app, "GET", "/api/v1/clusters/qingyang", None).await;
    let eight_gpu_nodes: u64 =
        c["node_pool"].as_array().unwrap().iter().filter(|p| p["gpus_per_node"] == 8).map(|p| p["nodes"].as_u64().unwrap()).sum();
    let mut job = training_job();
    job["allowed_regions"] = json!(["hub:gansu"]);
    job["dataset"] = Value::Null;
    let mut ids = Vec::new();
    for _ in 0..eight_gpu_nodes {
        let (s, j, _) = call(&app, "POST", "/api/v1/jobs", Some(job.clone())).await;
        assert_eq!((s, j["state"].as_str()), (StatusCode::CREATED, Some("placed")), "{j}");
        ids.push(j["id"].as_str().unwrap().to_string());
    }
    let (_, waiting, _) = call(&app, "POST", "/api/v1/jobs", Some(job.clone())).await;
    assert_eq!(waiting["state"], "queued", "{waiting}");
    let waiting_id = waiting["id"].as_str().unwrap().to_string();

    // A restart on the same data directory: every job is still there, and capacity is held.
    store.close().await;
    drop(app);
    let store = store::Store::open(&dir).await.unwrap();
    let app = app_on(store).await;
    let (_, c, _) = call(&app, "GET", "/api/v1/clusters/qingyang", None).await;
    assert_eq!(c["gpus_used"].as_f64().unwrap(), 8.0 * eight_gpu_nodes as f64);
    let (_, w, _) = call(&app, "GET", &format!("/api/v1/jobs/{waiting_id}"), None).await;
    assert_eq!(w["state"], "queued");

    // Cancelling one placed job lets the waiting one in.
    let (s, _, _) = call(&app, "POST", &format!("/api/v1/jobs/{}/cancel", ids[0]), None).await;
    assert_eq!(s, StatusCode::OK);
    let (_, w, _) = call(&app, "GET", &format!("/api/v1/jobs/{waiting_id}"), None).await;
    assert_eq!(w["state"], "placed", "{w}");
    assert_eq!(w["placement"]["cluster"], "qingyang");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The spec fields of a cluster as the API returns it (it adds live-use fields).
fn cluster_spec(status: &Value) -> Value {
    let keys = [
        "id",
        "hub",
        "name_zh",
        "name_en",
        "province",
        "lat",
        "lon",
        "pue",
        "pue_source",
        "carbon_kg_per_kwh",
        "carbon_source",
        "green_share",
        "green_source",
        "tariff",
        "node_pool",
    ];
    Value::Object(keys.iter().map(|k| (k.to_string(), status[*k].clone())).collect())
}

#[tokio::test]
async fn a_network_change_never_leaves_a_job_where_its_rules_forbid() {
    let app = app().await;
    let (_, c, _) = call(&app, "GET", "/api/v1/clusters/qingyang", None).await;
    let mut spec = cluster_spec(&c);
    let mut job = training_job();
    job["dataset"] = Value::Null;
    job["gpu_models"] = json!(["G3"]);
    job["allowed_regions"] = json!(["province:Gansu"]);
    let (s, j, _) = call(&app, "POST", "/api/v1/jobs", Some(job)).await;
    assert_eq!((s, j["placement"]["pool"].as_str()), (StatusCode::CREATED, Some("g3-8x")), "{j}");
    let id = j["id"].as_str().unwrap().to_string();

    // Reversing the pools changes their indexes: the job keeps its G3 slot, found by name.
    spec["node_pool"].as_array_mut().unwrap().reverse();
    let (s, _, _) = call(&app, "PUT", "/api/v1/clusters/qingyang", Some(spec.clone())).await;
    assert_eq!(s, StatusCode::OK);
    let (_, j, _) = call(&app, "GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!((j["state"].as_str(), j["placement"]["pool"].as_str()), (Some("placed"), Some("g3-8x")), "{j}");
    let pools = spec["node_pool"].as_array().unwrap();
    let g3_index = pools.iter().position(|p| p["name"] == "g3-8x").unwrap();
    assert_eq!(j["placement"]["allocation"]["pool"], g3_index, "the stored index follows the new order");

    // Moving the cluster out of Gansu: the job may not stay; it waits, holding nothing.
    spec["province"] = json!("Ningxia");
    let (s, _, _) = call(&app, "PUT", "/api/v1/clusters/qingyang", Some(spec)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, j, _) = call(&app, "GET", &format!("/api/v1/jobs/{id}"), None).await;
    assert_eq!(j["state"], "queued", "{j}");
    assert!(j["placement"].is_null());
    let (_, c, _) = call(&app, "GET", "/api/v1/clusters/qingyang", None).await;
    assert_eq!(c["gpus_used"], 0.0);
}

#[tokio::test]
async fn job_environment_values_are_never_echoed() {
    let app = app().await;
    let mut job = training_job();
    job["env"] = json!({"HF_TOKEN": "hf_s3cret-value"});
    let (s, j, _) = call(&app, "POST", "/api/v1/jobs", Some(job)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(j["spec"]["env"]["HF_TOKEN"], api::routes::HIDDEN, "the name stays, the value is hidden: {j}");
    let id = j["id"].as_str().unwrap().to_string();
    for path in [format!("/api/v1/jobs/{id}"), "/api/v1/jobs".to_string()] {
        let (_, body, _) = call(&app, "GET", &path, None).await;
        assert!(!body.to_string().contains("s3cret"), "{path}: {body}");
    }
    let (_, body, _) = call(&app, "POST", &format!("/api/v1/jobs/{id}/cancel"), None).await;
    assert!(!body.to_string().contains("s3cret"), "{body}");
}
