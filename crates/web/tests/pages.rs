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
    store: store::Store,
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
    let console = Arc::new(web::Console::new(store.clone(), Some(svc.clone()), gw.clone(), Arc::new(net), cfg, dir));
    console.ensure_admin().await.unwrap();
    console.create_account("acme-user", "acme-password", web::Role::Tenant, Some("acme".into())).await.unwrap();
    // The console behind the gate, as `aiplus serve` assembles it.
    let gate = Arc::new(api::gate::Gate {
        identity,
        hosts: api::gate::Hosts::new(&["console.example".into()]),
        clock: Arc::new(FixedClock(T0_MS)),
    });
    Env { app: api::gate::guard(web::router(console), gate), svc, gw, store }
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
    // The live streams, replay runs and the targets are pages too: no session, no answer but
    // the way to the login.
    for path in ["/jobs/live", "/network/live", "/sim/runs/run_x", "/sim/runs/run_x/status", "/targets", "/targets.csv"] {
        let a = env.get(path, "").await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert!(a.headers[header::LOCATION].to_str().unwrap().starts_with("/login?next="), "{path}");
    }
    assert_eq!(env.post("/targets", "", "name=x&value=1&unit=%25&source=x&date=2025-06-30").await.status, StatusCode::SEE_OTHER);
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
    // The map is tested in src/map/; here the page around it.
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

/// Reads the next server-sent event of a live page, which must be called `name`, as its JSON.
async fn next_event(body: &mut Body, buf: &mut String, name: &str) -> serde_json::Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                assert!(frame.contains(&format!("event: {name}")), "{frame}");
                return serde_json::from_str(data).unwrap();
            }
            continue;
        }
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame()).await.expect("an event within 10 s");
        let frame = frame.expect("the stream is open").unwrap();
        if let Ok(data) = frame.into_data() {
            buf.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

/// The rows of the next `jobs` event of a live list.
async fn next_jobs_event(body: &mut Body, buf: &mut String) -> Vec<serde_json::Value> {
    next_event(body, buf, "jobs").await["rows"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_jobs_list_is_live_and_a_tenant_streams_only_its_own_jobs() {
    let env = env().await;
    let (mine, _) = env.svc.submit("acme".into(), Some("mine".into()), job_spec("true"), None).await.unwrap();
    env.svc.submit("other".into(), Some("theirs".into()), job_spec("true"), None).await.unwrap();
    let (cookie, _) = env.login("acme-user", "acme-password").await;
    let page = env.get("/jobs?tenant=other", &cookie).await;
    assert!(page.body.contains("data-live-jobs=\"/jobs/live?state=&amp;tenant=other\""), "{}", page.body);
    // Asking for another tenant's list streams one's own, as the page does.
    let req = Request::get("/jobs/live?tenant=other").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
    let r = env.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = r.into_body();
    let mut buf = String::new();
    let rows = next_jobs_event(&mut body, &mut buf).await;
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [mine.id.as_str()]);
    assert_eq!(rows[0]["tenant"], "acme");
    // A job submitted elsewhere (here, straight to the service, as the CLI's API call does)
    // arrives on the open stream without a reload; another tenant's does not.
    env.svc.submit("other".into(), Some("theirs-too".into()), job_spec("true"), None).await.unwrap();
    let (next, _) = env.svc.submit("acme".into(), Some("next".into()), job_spec("true"), None).await.unwrap();
    let rows = next_jobs_event(&mut body, &mut buf).await;
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{rows:?}");
    assert!(ids.contains(&next.id.as_str()) && ids.contains(&mine.id.as_str()));
    assert!(rows.iter().all(|r| r["tenant"] == "acme"));
    // A bad filter is refused by name before any stream opens.
    let bad = env.get("/jobs/live?state=sleeping", &cookie).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("state"), "{}", bad.body);
}

#[tokio::test]
async fn live_lists_share_the_follower_cap_and_a_closed_one_gives_its_place_back() {
    let env = env().await;
    let (cookie, _) = env.login("acme-user", "acme-password").await;
    let open = || async {
        let req = Request::get("/jobs/live").header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
        env.app.clone().oneshot(req).await.unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..jobs::follow::MAX_FOLLOWERS_PER_TENANT {
        let r = open().await;
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    assert_eq!(open().await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(env.svc.follow.open(), jobs::follow::MAX_FOLLOWERS_PER_TENANT);
    // The browser leaves one page: its stream ends within a poll and the place is free again.
    drop(held.pop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while env.svc.follow.open() == jobs::follow::MAX_FOLLOWERS_PER_TENANT {
        assert!(std::time::Instant::now() < deadline, "the closed stream kept its place");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(open().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_network_overview_is_live() {
    let env = env().await;
    let (cookie, _) = env.login("acme-user", "acme-password").await;
    let page = env.get("/", &cookie).await;
    assert!(page.body.contains("data-live-network=\"/network/live\""));
    assert!(page.body.contains("data-cluster=\"guian\""), "each cluster's row is addressable");
    let req =
        Request::get("/network/live").header(header::COOKIE, &cookie).header(header::ACCEPT_LANGUAGE, "en").body(Body::empty()).unwrap();
    let r = env.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.into_body();
    let mut buf = String::new();
    let first = next_event(&mut body, &mut buf, "network").await;
    assert_eq!(first["queued"].as_u64().unwrap() + first["running"].as_u64().unwrap(), 0);
    let clusters = first["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 10);
    let guian = clusters.iter().find(|c| c["id"] == "guian").unwrap();
    assert_eq!(guian["health"], "healthy");
    assert_eq!(guian["circle"], "cluster c-ok");
    assert!(page.body.contains("class=\"cluster c-ok\" data-cluster=\"guian\""), "the map's circle is addressable, with the same classes");
    assert!(guian["busy"].as_str().unwrap().starts_with("0.0 / "), "{guian}");
    // A job placed meanwhile changes the counts and a cluster's cells: the page hears of it.
    env.svc.submit("acme".into(), Some("live".into()), job_spec("sleep 5"), None).await.unwrap();
    let next = next_event(&mut body, &mut buf, "network").await;
    assert_eq!(next["queued"].as_u64().unwrap() + next["running"].as_u64().unwrap(), 1, "{next}");
    assert_ne!(next["clusters"], first["clusters"], "the cluster it took shows it busy");
}

/// A small synthetic replay with two policies, as the form posts it.
fn small_replay(csrf: &str) -> String {
    format!("csrf={csrf}&source=synthetic&jobs=40&nodes=20&seed=3&time_compression=20&node_scale=1&nearest=on&aiplus=on")
}

impl Env {
    /// Posts the replay form and returns the run's id from the redirect to its page.
    async fn start_replay(&self, cookie: &str, form: &str) -> String {
        let a = self.post("/sim", cookie, form).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let location = a.headers[header::LOCATION].to_str().unwrap();
        location.strip_prefix("/sim/runs/").unwrap_or_else(|| panic!("not a run page: {location}")).to_string()
    }

    async fn run_status(&self, cookie: &str, id: &str) -> serde_json::Value {
        let a = self.get(&format!("/sim/runs/{id}/status"), cookie).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
        serde_json::from_str(&a.body).unwrap()
    }

    /// Polls a run's status until the run is over; fails after `within_s` seconds.
    async fn wait_for_run(&self, cookie: &str, id: &str, within_s: u64) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(within_s);
        loop {
            let s = self.run_status(cookie, id).await;
            if s["state"] != "running" {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "the run is still going after {within_s} s: {s}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Starting a replay answers at once with the run's page; the page has a labelled progress bar
/// per policy, its status follows the replay to the saved report, and the index lists the run.
#[tokio::test]
async fn a_replay_runs_in_the_background_with_progress_and_ends_at_its_report() {
    let env = env().await;
    let (cookie, csrf) = env.login("admin", "admin-password").await;
    let id = env.start_replay(&cookie, &small_replay(&csrf)).await;
    assert!(id.starts_with("run_"), "{id}");
    let page = env.get(&format!("/sim/runs/{id}"), &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    for part in [
        format!("data-sim-run=\"{id}\""),
        "<label for=\"sim-progress-aiplus\">aiplus</label>".into(),
        "<progress id=\"sim-progress-aiplus\" max=\"40\" value=\"".into(),
        "<label for=\"sim-progress-nearest\">nearest</label>".into(),
        "/static/sim.js?v=".into(),
    ] {
        assert!(page.body.contains(&part), "{part} in {}", page.body);
    }
    assert!(!page.body.contains("sim-progress-cheapest"), "only the policies asked for");

    let s = env.wait_for_run(&cookie, &id, 300).await;
    assert_eq!(s["state"], "finished", "{s}");
    assert_eq!(s["phase"], "finished");
    let policies = s["policies"].as_array().unwrap();
    assert_eq!(policies.iter().map(|p| p["name"].as_str().unwrap()).collect::<Vec<_>>(), ["nearest", "aiplus"]);
    for p in policies {
        assert!(p["total"].as_u64().unwrap() > 0 && p["done"] == p["total"], "{p}");
        assert_eq!(p["text"], format!("{} / {} jobs", p["done"], p["total"]));
    }
    let report = s["report_url"].as_str().unwrap();
    assert!(report.starts_with("/sim/sim_"), "{report}");
    let shown = env.get(report, &cookie).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body.matches("<th scope=\"row\">").count(), 3, "two policies and the lower bound: {}", shown.body);

    // Coming back to the run shows where it ended, and the index lists it with its report.
    let page = env.get(&format!("/sim/runs/{id}"), &cookie).await;
    assert!(page.body.contains(&format!("id=\"sim-report-link\" href=\"{report}\"")), "{}", page.body);
    assert!(page.body.contains("data-state=\"finished\"") && !page.body.contains("sim-refresh"), "{}", page.body);
    let index = env.get("/sim", &cookie).await;
    assert!(
        index.body.contains(&format!("href=\"/sim/runs/{id}\"")) && index.body.contains(&format!("href=\"{report}\"")),
        "{}",
        index.body
    );

    let js = env.get("/static/sim.js", "").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript") && js.body.contains("data-sim-run"));
}

/// A named pipe the replay blocks on while reading its node list, so a test decides when the
/// replay may go on. Dropped without being fed (a failed assertion), it is fed nothing, so the
/// replay ends and the test's runtime can shut down.
#[cfg(unix)]
struct Pipe {
    path: std::path::PathBuf,
    fed: bool,
}

#[cfg(unix)]
impl Pipe {
    fn new(path: std::path::PathBuf) -> Self {
        let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
        Self { path, fed: false }
    }

    async fn feed(mut self, text: &'static str) {
        self.fed = true;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || std::fs::write(path, text)).await.unwrap().unwrap();
    }
}

#[cfg(unix)]
impl Drop for Pipe {
    fn drop(&mut self) {
        if !self.fed {
            let path = self.path.clone();
            std::thread::spawn(move || std::fs::write(path, ""));
        }
    }
}

/// One replay at a time: while one runs (here held reading a pipe) a second is refused with
/// the busy message; a failed replay shows its error, and frees the way for the next.
#[cfg(unix)]
#[tokio::test]
async fn a_second_replay_is_refused_while_one_runs_and_a_failed_one_says_why() {
    let env = env().await;
    let (cookie, csrf) = env.login("admin", "admin-password").await;
    let dir = std::env::temp_dir().join(format!("aiplus-web-pipe-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    let pipe = Pipe::new(dir.join("nodes.csv"));
    std::fs::write(dir.join("pods.csv"), "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n").unwrap();
    let form =
        format!("csrf={csrf}&source=files&aiplus=on&nodes_path={}&pods_path={}", pipe.path.display(), dir.join("pods.csv").display());
    let held = env.start_replay(&cookie, &form).await;
    let s = env.run_status(&cookie, &held).await;
    assert_eq!((s["state"].as_str(), s["phase"].as_str()), (Some("running"), Some("preparing")), "{s}");
    assert_eq!(s["policies"][0]["text"], "— jobs", "a file's total is not known before it is read");
    let page = env.get(&format!("/sim/runs/{held}"), &cookie).await;
    assert!(page.body.contains("<progress id=\"sim-progress-aiplus\">"), "no value yet: indeterminate: {}", page.body);
    assert!(page.body.contains(&format!("<a href=\"/sim/runs/{held}\">Refresh</a>")), "a refresh link without script: {}", page.body);

    let busy = env.post("/sim", &cookie, &small_replay(&csrf)).await;
    assert_eq!(busy.status, StatusCode::TOO_MANY_REQUESTS, "{}", busy.body);
    assert!(busy.body.contains("A replay is already running"), "{}", busy.body);
    assert_eq!(env.get("/sim", &cookie).await.body.matches("href=\"/sim/runs/").count(), 1, "the refused one never started");

    pipe.feed("this is not a node list\n").await;
    let s = env.wait_for_run(&cookie, &held, 60).await;
    assert_eq!(s["state"], "failed", "{s}");
    assert!(s["error"].as_str().unwrap().starts_with("nodes_path: "), "{s}");
    assert!(s["report_url"].is_null());
    let page = env.get(&format!("/sim/runs/{held}"), &cookie).await;
    assert!(page.body.contains("id=\"sim-error\"") && page.body.contains("nodes_path: "), "{}", page.body);

    let next = env.start_replay(&cookie, &small_replay(&csrf)).await;
    assert_eq!(env.wait_for_run(&cookie, &next, 300).await["state"], "finished", "the permit was given back");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs are operators' like the reports, and a run that is not there answers like a missing page.
#[tokio::test]
async fn replay_runs_are_for_operators_and_unknown_ones_are_not_found() {
    let env = env().await;
    let (admin, csrf) = env.login("admin", "admin-password").await;
    for path in ["/sim/runs/run_nope", "/sim/runs/run_nope/status", &format!("/sim/runs/{}", "x".repeat(100))] {
        let a = env.get(path, &admin).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
    }
    let id = env.start_replay(&admin, &small_replay(&csrf)).await;
    let (tenant, tenant_csrf) = env.login("acme-user", "acme-password").await;
    for path in [format!("/sim/runs/{id}"), format!("/sim/runs/{id}/status")] {
        assert_eq!(env.get(&path, &tenant).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(env.post("/sim", &tenant, &small_replay(&tenant_csrf)).await.status, StatusCode::FORBIDDEN);
    assert!(!env.get("/sim", &tenant).await.body.contains(&id));
    env.wait_for_run(&admin, &id, 300).await;
}

/// A gateway request of `tenant` in the ledger, an hour before `T0_MS`.
/// A gateway request's ledger row; an agent's step carries the run the gateway marked it with.
fn gateway_request(id: &str, tenant: &str, request_id: &str, agent_run: Option<&str>) -> store::UsageRow<serde_json::Value> {
    let mut refs = serde_json::json!({"model": "qwen", "request_id": request_id});
    if let Some(run) = agent_run {
        refs["agent_run"] = run.into();
    }
    store::UsageRow {
        id: id.into(),
        at_ms: T0_MS - 3_600_000,
        tenant: tenant.into(),
        pillar: "gateway".into(),
        doc: serde_json::json!({"subject": {"kind": "request", "id": request_id}, "quantity": 10, "unit": "tokens", "refs": refs}),
    }
}

/// A job run's ledger row of acme, an hour before `T0_MS`, tagged with an action area or not.
fn job_run(id: &str, gpu_seconds: f64, area: Option<&str>) -> store::UsageRow<serde_json::Value> {
    let mut refs = serde_json::json!({"job": id});
    if let Some(a) = area {
        refs["action_area"] = a.into();
    }
    store::UsageRow {
        id: id.into(),
        at_ms: T0_MS - 3_600_000,
        tenant: "acme".into(),
        pillar: "compute".into(),
        doc: serde_json::json!({"subject": {"kind": "job_run", "id": id}, "quantity": gpu_seconds, "unit": "gpu_seconds", "refs": refs}),
    }
}

#[tokio::test]
async fn the_targets_page_measures_agents_from_the_ledger_and_keeps_entered_figures_apart() {
    let env = env().await;
    // acme ran an agent (two model steps); other called models directly three times, once
    // with a request id made to look like a step's, which does not make it one.
    let rows = [
        gateway_request("u1", "acme", "resp_1/step/1", Some("resp_1")),
        gateway_request("u2", "acme", "resp_1/step/2", Some("resp_1")),
        gateway_request("u3", "other", "plain-1", None),
        gateway_request("u4", "other", "plain-2", None),
        gateway_request("u5", "other", "resp_x/step/1", None),
        // Two job runs: two GPU-hours tagged science, one untagged hour that counts nowhere.
        job_run("r1", 7200.0, Some("science")),
        job_run("r2", 3600.0, None),
    ];
    let none: Vec<(&str, &str, &serde_json::Value)> = vec![];
    let no_events: Vec<(&str, i64, &serde_json::Value)> = vec![];
    env.store.record(&store::Record { jobs: none, events: no_events, usage: rows.iter().collect() }).await.unwrap();
    let tenants: Vec<(String, i64, serde_json::Value)> = env.store.tenants().await.unwrap();
    assert_eq!(tenants.len(), 2, "{tenants:?}");
    env.svc.submit("acme".into(), None, job_spec("true"), None).await.unwrap();
    // A job from Beijing-Tianjin-Hebei: its explanation prices the nearest hub's cluster too.
    let from_north = compute::JobSpec {
        origin_hub: Some("jingjinji".into()),
        gpus: 8,
        gpu_models: vec!["A100".into()],
        duration_s: 36_000,
        ..job_spec("true")
    };
    let (north, _) = env.svc.submit("acme".into(), None, from_north, None).await.unwrap();
    let why = &north.placement.as_ref().unwrap().explanation;
    let near = why.nearest.as_ref().unwrap();
    let saved = (near.energy_cost_cny + near.carbon_cost_cny) - (why.chosen.energy_cost_cny + why.chosen.carbon_cost_cny);
    assert!(saved > 0.0, "aiplus placed it better than nearest would: {near:?} vs {:?}", why.chosen);

    let (op, csrf) = env.login("admin", "admin-password").await;
    let a = env.get("/targets", &op).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let measured = a.body.split("id=\"measured\"").nth(1).unwrap().split("</table>").next().unwrap();
    let row = |id: &str| measured.split(&format!("data-indicator=\"{id}\"")).nth(1).unwrap().split("</tr>").next().unwrap().to_string();
    assert!(row("tenants_with_agents").contains("50.0%"), "one of two tenants: {}", row("tenants_with_agents"));
    assert!(row("agent_traffic").contains("40.0%"), "two of five requests: {}", row("agent_traffic"));
    assert!(row("gpu_hours_science").contains("2.0 GPU-h"), "{}", row("gpu_hours_science"));
    assert!(row("gpu_hours_industry").contains("0.0 GPU-h"), "{}", row("gpu_hours_industry"));
    assert!(row("gpu_hours_industry").contains("Definition and source as above."), "the areas share one definition");
    assert!(
        a.body.contains("id=\"trend-gpu_hours_science\"") && !a.body.contains("id=\"trend-gpu_hours_industry\""),
        "one chart for the six areas"
    );
    assert!(row("placement_savings").contains(&format!("¥{saved:.2}")), "{saved} in {}", row("placement_savings"));
    assert!(
        row("carbon_per_gpu_hour").contains("kgCO2/GPU-h") && !row("carbon_per_gpu_hour").contains(">0.000 kg"),
        "{}",
        row("carbon_per_gpu_hour")
    );
    assert!(row("datasets_registered").contains(">0<") || row("datasets_registered").contains("0"));
    assert!(a.body.contains("2027 ≥70%") && a.body.contains("2030 ≥90%"), "the adoption charts draw the targets");
    assert!(a.body.contains("href=\"/targets\" aria-current=\"page\""));

    // An operator enters a survey figure; a bad field is named.
    let bad = env.post("/targets", &op, &format!("csrf={csrf}&name=Adoption&value=lots&unit=%25&source=x&date=2025-06-30")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("value: &quot;lots&quot; is not a number"), "{}", bad.body);
    let form = format!("csrf={csrf}&name=National+adoption&value=55.5&unit=%25&source=CAICT+survey%2C+2025&date=2025-06-30");
    let ok = env.post("/targets", &op, &form).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let forged = env.post("/targets", &op, "csrf=nope&name=x&value=1&unit=%25&source=x&date=2025-06-30").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let a = env.get("/targets", &op).await;
    let entered = a.body.split("id=\"entered\"").nth(1).unwrap().split("</table>").next().unwrap();
    assert!(entered.contains("National adoption") && entered.contains("55.50") && entered.contains("CAICT survey, 2025"), "{entered}");
    let measured = a.body.split("id=\"measured\"").nth(1).unwrap().split("</table>").next().unwrap();
    assert!(!measured.contains("National adoption"));

    // The CSV: measured rows per month, the entered row, a comma quoted.
    let csv = env.get("/targets.csv", &op).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
    assert!(csv.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines[0], "kind,indicator,name,period,value,unit,definition,source");
    assert!(
        lines.iter().any(|l| l.starts_with("measured,tenants_with_agents,Tenants with active agents,2025-01,50.000000,%,")),
        "{}",
        csv.body
    );
    assert!(lines.iter().any(|l| l.starts_with("measured,agent_traffic,Model traffic served through agents,2025-01,40.000000,%,")));
    assert_eq!(lines.iter().filter(|l| l.starts_with("measured,tenants_with_agents,")).count(), 12, "a row per month");
    assert!(
        lines.iter().any(|l| l.starts_with("measured,gpu_hours_science,GPU-hours · science and technology,2025-01,2,GPU-h,")),
        "{}",
        csv.body
    );
    assert!(lines.contains(&"entered,,National adoption,2025-06-30,55.5,%,Entered by an operator,\"CAICT survey, 2025\""), "{}", csv.body);

    // Tenants see neither the page nor its export, nor its link.
    let (tenant, _) = env.login("acme-user", "acme-password").await;
    assert_eq!(env.get("/targets", &tenant).await.status, StatusCode::FORBIDDEN);
    assert_eq!(env.get("/targets.csv", &tenant).await.status, StatusCode::FORBIDDEN);
    assert!(!env.get("/jobs", &tenant).await.body.contains("href=\"/targets\""));
}

#[tokio::test]
async fn a_job_submitted_from_the_console_may_name_its_action_area() {
    let env = env().await;
    let (cookie, csrf) = env.login("acme-user", "acme-password").await;
    let form = env.get("/jobs", &cookie).await;
    assert!(form.body.contains("<option value=\"global_cooperation\">Global cooperation</option>"), "the six areas are offered");
    let a = env.post("/jobs", &cookie, &format!("csrf={csrf}&name=tagged&command=true&action_area=livelihood")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let path = a.headers[header::LOCATION].to_str().unwrap().to_string();
    let id = path.trim_start_matches("/jobs/");
    assert_eq!(env.svc.job(id).await.unwrap().spec.action_area, Some(vocab::ActionArea::Livelihood));
    assert!(env.get(&path, &cookie).await.body.contains("Livelihood"), "the job's page says its area");
    let bad = env.post("/jobs", &cookie, &format!("csrf={csrf}&name=bad&command=true&action_area=defence")).await;
    assert_eq!(bad.status, StatusCode::OK, "the form comes back with the reason");
    assert!(bad.body.contains("action_area: &quot;defence&quot; is not one of the six action areas"), "{}", bad.body);
}
