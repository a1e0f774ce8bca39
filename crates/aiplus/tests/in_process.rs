//! The whole server in-process: `aiplus::app` (the router `aiplus serve` runs) on an in-memory
//! store, driven with `oneshot`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Server {
    app: axum::Router,
    token: String,
}

async fn server() -> Server {
    let store = store::Store::memory().await.unwrap();
    let net = compute::file::builtin_network().unwrap();
    let dir = std::env::temp_dir().join(format!("aiplus-in-process-{}", std::process::id()));
    let local: Arc<dyn executor::Executor> = Arc::new(executor::local::LocalExecutor::new(dir.join("jobs")).unwrap());
    let clock: Arc<dyn vocab::Clock> = Arc::new(jobs::SystemClock);
    let svc = jobs::ComputeService::open(
        store.clone(),
        &net,
        compute::Policy::Aiplus,
        compute::Weights::default(),
        Arc::new(jobs::SystemClock),
        jobs::lifecycle::Engines::new(local),
    )
    .await
    .unwrap();
    let svc = Arc::new(svc);
    let identity = Arc::new(identity::Identity::open(store.clone()).await.unwrap());
    let (_, token) = identity.create_operator_token("tests", identity::Role::OperatorAdmin, 0).await.unwrap();
    let (meter, _writer) = gateway::Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    let gw = Arc::new(
        gateway::Gateway::new(
            gateway::GatewayConfig::default(),
            store.clone(),
            identity.clone(),
            Arc::new(identity::Sealer::new([1; 32])),
            meter,
            None,
        )
        .await
        .unwrap(),
    );
    let cfg = web::ConsoleConfig { admin_password: Some("admin-password".into()), ..Default::default() };
    let console = Arc::new(web::Console::new(store.clone(), Some(svc.clone()), gw.clone(), Arc::new(net), cfg, dir));
    // The models service with its loop stopped at once: these tests only route to it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let paths = models::service::Paths {
        models_dir: std::env::temp_dir().join("aiplus-in-process-models"),
        python: "python3".into(),
        vllm_python: "python3".into(),
        allow_local: false,
    };
    let opts = aiplus::model_service::Options { paths, chat: None, fetch: false };
    let (models, _loop) = aiplus::model_service::start(store.clone(), svc.clone(), gw.clone(), opts, stop_rx).await.unwrap();
    let _ = stop_tx.send(true);
    let key = tlog::SignerKey::from_seed("aiplus.test/log", [3; 32]).unwrap();
    let log_key = std::sync::Arc::new(tlog::SignerKey::from_seed("aiplus.test/log", [3; 32]).unwrap());
    let log = std::sync::Arc::new(tlog::Log::open(store.clone(), key, 0, None, None).await.unwrap());
    let options = govern::services::Options {
        calendar: govern::calendar::Calendar::builtin().unwrap(),
        require_filing: false,
        url_ok: Box::new(|_| Ok(())),
        end_user_suspension_ms: 86_400_000,
        clock: clock.clone(),
    };
    let governance = std::sync::Arc::new(govern::Services::open(&store, &log, options).await.unwrap());
    let suites = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
    let eval = aiplus::evaluation::open(store.clone(), &identity, gw.clone(), &suites, &std::env::temp_dir(), "eval", clock.clone())
        .await
        .unwrap();
    let agents = Arc::new(agents::Agents::new(
        store.clone(),
        Arc::new(identity::Sealer::new([1; 32])),
        clock.clone(),
        agents::service::HostRule::default(),
    ));
    let embed = Arc::new(aiplus::agent_search::GatewayEmbed { gw: Arc::downgrade(&gw), model: String::new() });
    let collections = Arc::new(agents::collections::Collections::new(store.clone(), embed, clock.clone()));
    let objects = Arc::new(object_store::memory::InMemory::new());
    let ids = Arc::new(|p: &str| format!("{p}_{}", uuid::Uuid::now_v7().simple()));
    let data = Arc::new(data::exchange::Exchange::new(store.clone(), objects, clock.clone(), ids, Default::default(), None));
    let parts = aiplus::Parts {
        agents,
        collections,
        data,
        oss: Arc::new(oss::ingest::Store::new(&std::env::temp_dir().join(format!("aiplus-inproc-oss-{}", std::process::id())))),
        log_key,
        eval,
        governance,
        log,
        store,
        identity,
        compute: Some(svc),
        gateway: gw,
        console: Some(console),
        models: Some(models),
        hosts: Vec::new(),
        clock,
    };
    let app = aiplus::app(parts);
    Server { app, token }
}

impl Server {
    async fn call(&self, method: &str, path: &str) -> (StatusCode, String) {
        self.send(method, path, &[], "{}").await
    }

    /// A request as the operator, with extra headers and a JSON body.
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, String) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body.to_string())).unwrap();
        let r = self.app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        (status, String::from_utf8_lossy(&r.into_body().collect().await.unwrap().to_bytes()).to_string())
    }
}

/// Every line of the permission table is a route the server has, for that method: none is
/// answered by the gate's "no such route" or by a 405.
#[tokio::test]
async fn every_permission_table_line_is_routed() {
    let s = server().await;
    for rule in api::permissions::TABLE {
        let path = rule.path.replace("{id}", "x").replace("{tenant}", "x").replace("{name}", "x").replace("{code}", "en");
        let (status, body) = s.call(rule.method, &path).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{} {}: {body}", rule.method, rule.path);
        assert!(!body.contains("route \\\""), "{} {} is in the table but not routed: {body}", rule.method, rule.path);
    }
    // And a route that is not in the table does not answer.
    let (status, body) = s.call("GET", "/api/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A method the table does not list for a path it does list is told which ones it has
    // (before the caller is known: GET or POST would tell as much with a 401).
    let (status, body) = s.call("DELETE", "/api/v1/jobs").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(body.contains("GET, POST, HEAD") && body.contains("method-not-allowed"), "{body}");
}

#[tokio::test]
async fn the_whole_server_answers_in_process() {
    let s = server().await;
    let (status, body) = s.call("GET", "/api/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    let who: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((who["kind"].as_str(), who["role"].as_str()), (Some("operator_token"), Some("operator-admin")));
    let (status, body) = s.call("GET", "/api/v1/clusters").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap().as_array().unwrap().len(), 10);
    let req = Request::builder().uri("/api/v1/clusters").body(Body::empty()).unwrap();
    assert_eq!(s.app.clone().oneshot(req).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// The agents page's forms need a console session: without one, declaring and running an agent
/// are sent to the login page, and nothing is declared.
#[tokio::test]
async fn the_agents_forms_need_a_session() {
    let s = server().await;
    for (path, form) in
        [("/agents", "id=a1&tenant=acme&spec=%7B%22model%22%3A%22m%22%7D"), ("/agents/playground", "agent=acme%2Fa1&input=hi")]
    {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let r = s.app.clone().oneshot(req).await.unwrap();
        let to = r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(r.status() == StatusCode::SEE_OTHER && to.starts_with("/login"), "{path}: {} to {to:?}", r.status());
    }
    let (_, list) = s.send("GET", "/api/v1/agents", &[("x-aiplus-tenant", "acme")], "").await;
    assert!(!list.contains("a1"), "{list}");
}

/// One bad request: method, path, headers, body, the status and the field it must name.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], String, StatusCode, &'a str);

/// Every input the identity and model-deployment routes take is checked, and a refusal names
/// the field.
#[tokio::test]
async fn bad_identity_input_is_refused_naming_the_field() {
    let s = server().await;
    let long = "x".repeat(201);
    let field = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap()["field"].as_str().unwrap_or("").to_string();
    let acme = [("x-aiplus-tenant", "acme")];
    let cases: Vec<Case> = vec![
        ("POST", "/api/v1/tenants", &[], r#"{"id": "Not An Id"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "id"),
        ("POST", "/api/v1/tenants", &[], format!(r#"{{"id": "acme", "name": "{long}"}}"#), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        ("POST", "/api/v1/tenants", &[], r#"{"id": "acme", "owner": "x"}"#.into(), StatusCode::BAD_REQUEST, "owner"),
        ("POST", "/api/v1/keys", &acme, r#"{"scopes": []}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "scopes"),
        ("POST", "/api/v1/keys", &acme, r#"{"scopes": ["root"]}"#.into(), StatusCode::BAD_REQUEST, "scopes[0]"),
        ("POST", "/api/v1/keys", &acme, r#"{"role": "operator-admin"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "role"),
        (
            "POST",
            "/api/v1/keys",
            &acme,
            r#"{"role": "tenant-member", "scopes": ["admin"]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        ("POST", "/api/v1/keys", &acme, format!(r#"{{"name": "{long}"}}"#), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        ("POST", "/api/v1/keys", &acme, r#"{"tenant": "acme"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "tenant"),
        ("POST", "/api/v1/keys", &[], "{}".into(), StatusCode::UNPROCESSABLE_ENTITY, "x-aiplus-tenant"),
        ("POST", "/api/v1/keys", &[("x-aiplus-tenant", "Bad Tenant")], "{}".into(), StatusCode::UNPROCESSABLE_ENTITY, "x-aiplus-tenant"),
        ("POST", "/api/v1/operator-tokens", &[], format!(r#"{{"name": "{long}"}}"#), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        (
            "POST",
            "/api/v1/operator-tokens",
            &[],
            r#"{"name": "ci", "role": "tenant-admin"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "role",
        ),
        ("GET", "/api/v1/usage/summary?by=week", &[], String::new(), StatusCode::UNPROCESSABLE_ENTITY, "by"),
        ("GET", "/api/v1/usage/summary?from_ms=5&to_ms=1", &[], String::new(), StatusCode::UNPROCESSABLE_ENTITY, "from_ms"),
        // Models on the compute network.
        ("PUT", "/api/v1/model-deployments/m", &[], r#"{"model": "gpt-9"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "model"),
        (
            "PUT",
            "/api/v1/model-deployments/m",
            &[],
            r#"{"model": "smollm2-135m-instruct", "threads": 0}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "threads",
        ),
        (
            "PUT",
            "/api/v1/model-deployments/m",
            &[],
            r#"{"model": "smollm2-135m-instruct", "replicas": 17}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "replicas",
        ),
        (
            "PUT",
            "/api/v1/model-deployments/m",
            &[],
            r#"{"model": "smollm2-135m-instruct", "ctx_tokens": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ctx_tokens",
        ),
        (
            "PUT",
            "/api/v1/model-deployments/m",
            &[],
            r#"{"model": "smollm2-135m-instruct", "gpus": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "gpus",
        ),
        (
            "PUT",
            "/api/v1/model-deployments/m",
            &[],
            r#"{"model": "smollm2-135m-instruct", "gpu": 1}"#.into(),
            StatusCode::BAD_REQUEST,
            "gpu",
        ),
        ("POST", "/api/v1/model-deployments/nobody/scale", &[], r#"{"replicas": 1}"#.into(), StatusCode::NOT_FOUND, ""),
    ];
    let (status, body) = s.send("POST", "/api/v1/tenants", &[], r#"{"id": "acme"}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (method, path, headers, body, want, want_field) in cases {
        let (status, answer) = s.send(method, path, headers, &body).await;
        assert_eq!(status, want, "{method} {path} {body}: {answer}");
        assert!(field(&answer).starts_with(want_field), "{method} {path} {body}: field {:?}, want {want_field}: {answer}", field(&answer));
    }
    let (status, _) = s.send("POST", "/api/v1/tenants", &[], r#"{"id": "acme"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "a tenant is registered once");
}
