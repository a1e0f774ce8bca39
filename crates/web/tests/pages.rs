//! In-process console tests: the real router over a real (in-memory SQLite) store, compute
//! service and gateway, driven with `oneshot`: login, sessions, CSRF, tenant isolation, and
//! snapshots of rendered pages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use jobs::{Clock, ComputeService};
use tower::ServiceExt;

struct FixedClock(i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

/// 2025-01-01 10:00 CST: peak hours in most provinces.
const T0_MS: i64 = 1_735_696_800_000;
static COUNTER: AtomicU64 = AtomicU64::new(0);

struct Env {
    app: Router,
    svc: Arc<ComputeService>,
    gw: Arc<gateway::Gateway>,
}

async fn env() -> Env {
    let store = store::Store::memory().await.unwrap();
    let net = compute::file::builtin_network().unwrap();
    let dir = std::env::temp_dir().join(format!("aiplus-web-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst)));
    let local: Arc<dyn executor::Executor> = Arc::new(executor::local::LocalExecutor::new(dir.join("jobs")).unwrap());
    let svc = Arc::new(
        ComputeService::open(
            store.clone(),
            &net,
            compute::Policy::Aiplus,
            compute::Weights::default(),
            Arc::new(FixedClock(T0_MS)),
            jobs::lifecycle::Engines::new(local),
        )
        .await
        .unwrap(),
    );
    let (meter, _writer) = gateway::Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    let identity = Arc::new(identity::Identity::open(store.clone()).await.unwrap());
    for t in ["acme", "other"] {
        identity.create_tenant(t, None, T0_MS).await.unwrap();
    }
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
    let console = Arc::new(web::Console::new(store, Some(svc.clone()), gw.clone(), Arc::new(net), cfg, dir));
    console.ensure_admin().await.unwrap();
    console.create_account("acme-user", "acme-password", web::Role::Tenant, Some("acme".into())).await.unwrap();
    // The console behind the gate, as `aiplus serve` assembles it.
    let gate = Arc::new(api::gate::Gate {
        identity,
        hosts: api::gate::Hosts::new(&["console.example".into()]),
        clock: Arc::new(FixedClock(T0_MS)),
    });
    Env { app: api::gate::guard(web::router(console), gate), svc, gw }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Env {
    async fn call(&self, req: Request<Body>) -> Answer {
        let r = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let body = String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Answer { status, headers, body }
    }

    async fn get(&self, path: &str, cookie: &str) -> Answer {
        self.call(Request::get(path).header(header::COOKIE, cookie).header(header::ACCEPT_LANGUAGE, "en").body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, path: &str, cookie: &str, form: &str) -> Answer {
        let req = Request::post(path)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap();
        self.call(req).await
    }

    /// Logs in and returns the cookie header and the session's CSRF token.
    async fn login(&self, user: &str, password: &str) -> (String, String) {
        let a = self.post("/login", "", &format!("username={user}&password={password}&next=/jobs")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(a.headers[header::LOCATION], "/jobs");
        let set = a.headers[header::SET_COOKIE].to_str().unwrap().to_string();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
        let cookie = set.split(';').next().unwrap().to_string();
        let page = self.get("/jobs", &cookie).await;
        let csrf = page.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        (cookie, csrf)
    }
}

fn job_spec(command: &str) -> compute::JobSpec {
    serde_json::from_value(serde_json::json!({"kind": "batch_inference", "gpus": 1, "cpu_milli": 1000, "memory_mib": 1024,
                                              "duration_s": 60, "command": ["sh", "-c", command]}))
    .unwrap()
}

#[tokio::test]
async fn pages_need_a_login_and_a_wrong_password_is_refused() {
    let env = env().await;
    let a = env.get("/jobs?state=running", "").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers[header::LOCATION], "/login?next=/jobs%3Fstate%3Drunning");
    let a = env.post("/login", "", "username=admin&password=nope&next=/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("id=\"login-error\""), "{}", a.body);
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    let a = env.get("/jobs", "aiplus_session=forged").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "an unknown session is no session");
    let (cookie, _) = env.login("admin", "admin-password").await;
    let a = env.get("/", &cookie).await;
    assert_eq!(a.status, StatusCode::OK);
    let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn repeated_wrong_passwords_make_the_address_wait_even_with_the_right_one() {
    let env = env().await;
    for _ in 0..=web::throttle::FREE_FAILURES {
        env.post("/login", "", "username=acme-user&password=wrong&next=/").await;
    }
    let a = env.post("/login", "", "username=acme-user&password=acme-password&next=/").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.headers.get(header::SET_COOKIE).is_none() && a.body.contains("Too many failed attempts"), "{}", a.body);
    assert!(a.headers.get(header::RETRY_AFTER).is_some());
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_token_and_this_origin() {
    let env = env().await;
    let (cookie, csrf) = env.login("admin", "admin-password").await;
    let a = env.post("/tenants/acme/keys", &cookie, "csrf=forged").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let req = Request::post("/tenants/acme/keys")
        .header(header::COOKIE, &cookie)
        .header(header::HOST, "console.example")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}")))
        .unwrap();
    assert_eq!(env.call(req).await.status, StatusCode::FORBIDDEN, "another origin is refused even with the token");
    // A name this server was not configured with is refused before anything else (DNS rebinding).
    let req = Request::get("/").header(header::COOKIE, &cookie).header(header::HOST, "evil.example:8080").body(Body::empty()).unwrap();
    assert_eq!(env.call(req).await.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(env.console_keys().await.is_empty(), "nothing was made");
    let a = env.post("/tenants/acme/keys", &cookie, &format!("csrf={csrf}&requests_per_min=5")).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let keys = env.console_keys().await;
    assert_eq!(keys.len(), 1);
    assert!(a.body.contains("id=\"new-secret-value\">ak_"), "the secret is shown on the answer to the post");
    let again = env.get("/tenants/acme", &cookie).await;
    assert!(!again.body.contains("new-secret-value"), "and never again");
    // A bad limit names its field.
    let a = env.post("/tenants/acme/keys", &cookie, &format!("csrf={csrf}&tokens_per_day=lots")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("tokens_per_day"), "{}", a.body);
}

impl Env {
    async fn console_keys(&self) -> Vec<gateway::KeyRecord> {
        let keys: Vec<(String, gateway::KeyRecord)> = self.svc.store().keys(Some("acme")).await.unwrap();
        keys.into_iter().map(|(_, k)| k).collect()
    }
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_jobs_keys_and_usage() {
    let env = env().await;
    let (mine, _) = env.svc.submit("acme".into(), Some("mine".into()), job_spec("true"), None).await.unwrap();
    let (theirs, _) = env.svc.submit("other".into(), Some("theirs".into()), job_spec("true"), None).await.unwrap();
    let (cookie, csrf) = env.login("acme-user", "acme-password").await;
    let list = env.get("/jobs?tenant=other", &cookie).await;
    assert!(list.body.contains(&mine.id) && !list.body.contains(&theirs.id), "the tenant filter cannot widen a tenant's view");
    for path in [format!("/jobs/{}", theirs.id), format!("/jobs/{}/live", theirs.id), "/tenants/other".into(), "/jobs/job_nope".into()] {
        assert_eq!(env.get(&path, &cookie).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(env.get(&format!("/jobs/{}", mine.id), &cookie).await.status, StatusCode::OK);
    assert_eq!(env.post(&format!("/jobs/{}/cancel", theirs.id), &cookie, &format!("csrf={csrf}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(env.post("/tenants/other/keys", &cookie, &format!("csrf={csrf}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(env.get("/sim", &cookie).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        env.post("/accounts", &cookie, &format!("csrf={csrf}&username=x&password=0123456789&tenant=other")).await.status,
        StatusCode::FORBIDDEN
    );
    let t = env.get("/tenants", &cookie).await;
    assert_eq!((t.status, t.headers[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/tenants/acme"));
    // A job a tenant submits is its own, whatever tenant the form names.
    let a = env.post("/jobs", &cookie, &format!("csrf={csrf}&tenant=other&name=sneaky&command=true")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let id = a.headers[header::LOCATION].to_str().unwrap().trim_start_matches("/jobs/").to_string();
    assert_eq!(env.svc.job(&id).await.unwrap().tenant, "acme");
}

#[tokio::test]
async fn a_refused_job_names_the_field_and_keeps_the_form() {
    let env = env().await;
    let (cookie, csrf) = env.login("admin", "admin-password").await;
    let a = env.post("/jobs", &cookie, &format!("csrf={csrf}&tenant=acme&name=keep-me&gpus=two&command=true")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("gpus: &quot;two&quot; is not a whole number"), "{}", a.body);
    assert!(a.body.contains("value=\"keep-me\""));
    let a = env.post("/jobs", &cookie, &format!("csrf={csrf}&tenant=Bad%20Tenant&command=true")).await;
    assert!(a.body.contains("tenant: no tenant &quot;Bad Tenant&quot;; register it first"), "{}", a.body);
    let a = env.post("/jobs", &cookie, &format!("csrf={csrf}&tenant=nobody&command=true")).await;
    assert!(a.body.contains("tenant: no tenant &quot;nobody&quot;"), "a job needs a registered tenant: {}", a.body);
}

#[tokio::test]
async fn a_cpu_only_job_is_submitted_from_the_form_and_shown() {
    let env = env().await;
    let (cookie, csrf) = env.login("acme-user", "acme-password").await;
    // The form's GPU field takes 0 (its `min`), so a browser lets it through.
    let form = env.get("/jobs", &cookie).await;
    assert!(form.body.contains(r#"name="gpus" type="number" min="0""#), "{}", form.body);
    let a = env.post("/jobs", &cookie, &format!("csrf={csrf}&name=cpu-only&gpus=0&cpu_milli=2000&memory_mib=512&command=true")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let id = a.headers[header::LOCATION].to_str().unwrap().trim_start_matches("/jobs/").to_string();
    let job = env.svc.job(&id).await.unwrap();
    assert_eq!((job.tenant.as_str(), job.spec.gpus, job.spec.cpu_milli), ("acme", 0, 2000));
    let placement = job.placement.expect("a CPU-only job is placed at once on an empty network");
    assert!(placement.gpus.is_empty(), "it holds no GPU: {placement:?}");
    let page = env.get(&format!("/jobs/{id}"), &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("cpu-only") && page.body.contains(&placement.pool), "{}", page.body);
    assert!(page.body.contains("<dd>2000</dd>") && !page.body.contains(" · GPU "), "{}", page.body);
    assert!(env.get("/jobs", &cookie).await.body.contains(&id), "the job is in the list");
}

#[tokio::test]
async fn a_job_that_never_fits_says_why_in_the_form() {
    let env = env().await;
    let (cookie, csrf) = env.login("acme-user", "acme-password").await;
    let a = env.post("/jobs", &cookie, &format!("csrf={csrf}&name=huge&gpus=0&cpu_milli=300000&memory_mib=1024&command=true")).await;
    assert_eq!(a.status, StatusCode::OK, "the form is shown again");
    assert!(
        a.body.contains(
            "job: No node is big enough: the job asks for 300 cores and 1 GiB on one node, and the largest node \
             (pool 910b-8x of cluster chongqing) has 96 cores open to CPU-only work (half of its 192 cores are kept for its \
             GPUs) and 1024 GiB: too few cores."
        ),
        "{}",
        a.body
    );
    assert!(a.body.contains("value=\"huge\""), "what was typed is kept");
}

/// Replaces what differs between runs (session tokens, ids) so a page can be snapshot.
fn stable(html: &str, csrf: &str) -> String {
    html.replace(csrf, "<csrf>").replace(env!("CARGO_PKG_VERSION"), "<version>").replace('>', ">\n")
}

#[tokio::test]
async fn the_login_page_and_the_network_page_render_as_recorded() {
    let env = env().await;
    let zh = env.call(Request::get("/login").header(header::ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9").body(Body::empty()).unwrap()).await;
    insta::assert_snapshot!("login_zh", stable(&zh.body, "-"));
    let (cookie, csrf) = env.login("admin", "admin-password").await;
    let a = env.get("/", &cookie).await;
    // The map is tested in map.rs; here the page around it.
    let page = a.body.split("<svg").next().unwrap().to_string() + &a.body[a.body.find("</svg>").unwrap()..];
    insta::assert_snapshot!("network_en", stable(&page, &csrf));
}

/// The map marks the clusters that serve model replicas, and says which models.
#[tokio::test]
async fn the_map_shows_where_model_replicas_serve() {
    let env = env().await;
    let (cookie, _) = env.login("admin", "admin-password").await;
    assert!(!env.get("/", &cookie).await.body.contains("class=\"serving\""), "nothing deployed yet");
    let replica = |id: &str, cluster: &str| {
        serde_json::from_value(serde_json::json!({"id": id, "base_url": "http://127.0.0.1:9/v1", "cluster": cluster})).unwrap()
    };
    env.gw.set_placed("qwen", vec![replica("r1", "qingyang"), replica("r2", "qingyang")]);
    env.gw.set_placed("smol", vec![replica("r3", "tianfu")]);
    let page = env.get("/", &cookie).await.body;
    assert_eq!(page.matches("class=\"serving\"").count(), 2, "one badge per serving cluster");
    assert!(page.contains("; serving qwen ×2</title>") && page.contains("; serving smol ×1</title>"), "{page}");
}

/// Registering a tenant from the console is the operators': a tenant's login is refused, a
/// browser without a session is sent to log in, and a bad id is named.
#[tokio::test]
async fn only_operators_register_tenants_in_the_console() {
    let env = env().await;
    let a = env.post("/tenants", "", "csrf=x&id=newco").await;
    assert!(a.status.is_redirection() && a.headers[header::LOCATION].to_str().unwrap().starts_with("/login"), "{}", a.status);
    let (cookie, csrf) = env.login("acme-user", "acme-password").await;
    let a = env.post("/tenants", &cookie, &format!("csrf={csrf}&id=newco")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let (cookie, csrf) = env.login("admin", "admin-password").await;
    let a = env.post("/tenants", &cookie, &format!("csrf={csrf}&id=Bad%20Id")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("id: use 1-64"), "{}", a.body);
    let a = env.post("/tenants", &cookie, &format!("csrf={csrf}&id=newco&name=New+Co")).await;
    assert_eq!((a.status, a.headers[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/tenants/newco"));
}
