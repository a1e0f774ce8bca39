//! The operator console in a real browser: `crates/web/tests/browser/walk.js` drives Debian's
//! Chromium (headless, through playwright-core from npm; `scripts/test` installs both) through
//! the real binary. Screenshots land in `target/console-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, temp_dir};

const ADMIN_PASSWORD: &str = "operator-password-for-tests";

#[test]
fn an_operator_and_a_tenant_walk_the_console_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if std::env::var("AIPLUS_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("AIPLUS_SKIP_BROWSER=1: the browser test is skipped on purpose");
        return;
    }
    assert!(
        Path::new(&chromium).exists() && dir.join("node_modules/playwright-core").exists(),
        "the browser test needs Debian's chromium and playwright-core: run scripts/test (it installs both), \
         or set AIPLUS_SKIP_BROWSER=1 to skip it"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir("console-browser");
    let cfg = data.join("aiplus.toml");
    std::fs::write(
        &cfg,
        format!(
            "[console]\nadmin_password = \"{ADMIN_PASSWORD}\"\n[agents]\nembedding_model = \"emb\"\n\
             [gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n\
             [[gateway.model]]\nname = \"qwen\"\n[[gateway.model.deployment]]\nid = \"mock\"\ncluster = \"guian\"\nbase_url = \"{upstream}/ok/v1\"\n\
             [[gateway.model]]\nname = \"script\"\n[[gateway.model.deployment]]\nid = \"script\"\nbase_url = \"{upstream}/script/v1\"\n\
             [[gateway.model]]\nname = \"emb\"\n[[gateway.model.deployment]]\nid = \"emb\"\nbase_url = \"{upstream}/ok/v1\"\n"
        ),
    )
    .unwrap();
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    // An agent of another tenant's, and one run of it, for the agents page (acme must not see it).
    s.register_tenant("agentco");
    let r = s
        .client()
        .put(format!("{}/api/v1/agents/helper", s.url))
        .header("x-aiplus-tenant", "agentco")
        .json(&serde_json::json!({"model": "qwen",
        "tools": [{"type": "function", "name": "lookup"}]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let key = s.key("agentco", &serde_json::json!({}));
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/responses", s.url))
        .bearer_auth(key["secret"].as_str().unwrap())
        .json(&serde_json::json!({"model": "agent:helper", "input": "hi"}))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 200, "{}", r.text().unwrap_or_default());
    // A document in acme's collection, for the playground's file_search (the walk declares
    // the agent that searches it through the console's form).
    s.register_tenant("acme");
    let r = s
        .client()
        .put(format!("{}/api/v1/collections/kb/documents/plan", s.url))
        .header("x-aiplus-tenant", "acme")
        .json(&serde_json::json!({"text": "全国一体化算力网络：东数西算。", "filename": "plan.md"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap_or_default());
    exchange_fixtures(&s);
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = Command::new("node")
        .arg(dir.join("walk.js"))
        .env("AIPLUS_URL", &s.url)
        .env("AIPLUS_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("AIPLUS_ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .env("AIPLUS_BIN", common::BIN)
        .env("AIPLUS_TOKEN", &s.token)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser walk failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("console walk: ok"), "{stdout}");
    let shots = std::fs::read_dir(&artifacts).unwrap().count();
    assert!(shots >= 10, "{shots} screenshots");
    let _ = std::fs::remove_dir_all(&data);
}

/// acme's listed dataset "credit" (a training and a test table) with a valuation, for the data
/// pages' catalogue and charts; and agentco's unlisted "secret", which acme must not see.
fn exchange_fixtures(s: &Server) {
    use sha2::Digest as _;
    let sha = |b: &[u8]| sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>();
    let call = |tenant: &str, method: reqwest::Method, path: &str, body: Option<serde_json::Value>, raw: Option<Vec<u8>>| {
        let mut r = s.client().request(method, format!("{}{path}", s.url)).header("x-aiplus-tenant", tenant);
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(b) = raw {
            r = r.body(b);
        }
        let r = r.send().unwrap();
        let status = r.status();
        let v: serde_json::Value = r.json().unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    };
    let mut train = String::from("x,who,label\n");
    for i in 0..24 {
        let who = ["华北数据", "西部医院", "江南研究所"][i % 3];
        train.push_str(&format!("{},{who},{}\n", i, u8::from(i >= 12) ^ u8::from(i % 7 == 0)));
    }
    let test = "x,label\n1,0\n5,0\n13,1\n20,1\n";
    let files = [("train.csv", train.into_bytes()), ("test.csv", test.as_bytes().to_vec())];
    for (_, bytes) in &files {
        let up = call(
            "acme",
            reqwest::Method::POST,
            "/api/v1/uploads",
            Some(serde_json::json!({"sha256": sha(bytes), "size_bytes": bytes.len()})),
            None,
        );
        let id = up["id"].as_str().unwrap();
        call("acme", reqwest::Method::PUT, &format!("/api/v1/uploads/{id}/chunks/0"), None, Some(bytes.clone()));
        call("acme", reqwest::Method::POST, &format!("/api/v1/uploads/{id}/complete"), None, None);
    }
    let distribution: Vec<serde_json::Value> = files
        .iter()
        .map(|(name, bytes)| {
            serde_json::json!({"@type": "cr:FileObject", "@id": name, "name": name, "contentUrl": name,
                                                "encodingFormat": "text/csv", "sha256": sha(bytes)})
        })
        .collect();
    let record = |name: &str| {
        serde_json::json!({
            "@context": {"@vocab": "https://schema.org/", "sc": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
                         "dct": "http://purl.org/dc/terms/", "conformsTo": "dct:conformsTo"},
            "@type": "sc:Dataset", "name": name, "description": "信贷风控样本", "conformsTo": "http://mlcommons.org/croissant/1.1",
            "version": "1.0.0", "license": "https://spdx.org/licenses/CC-BY-4.0.html", "distribution": distribution
        })
    };
    call("acme", reqwest::Method::POST, "/api/v1/datasets", Some(serde_json::json!({"id": "credit"})), None);
    call("acme", reqwest::Method::POST, "/api/v1/datasets/credit/versions", Some(record("信贷样本")), None);
    call("acme", reqwest::Method::POST, "/api/v1/datasets/credit/versions/1.0.0/publish", None, None);
    let valuation = serde_json::json!({"train_file": "train.csv", "test_file": "test.csv", "k": 3, "contributor_column": "who"});
    call("acme", reqwest::Method::POST, "/api/v1/datasets/credit/versions/1.0.0/valuations", Some(valuation), None);
    let listing = serde_json::json!({"version": "1.0.0", "offer": {"price": {"unit": "per_call", "fen": 500}, "modes": ["download"], "max_days": 90}});
    call("acme", reqwest::Method::PUT, "/api/v1/datasets/credit/listing", Some(listing), None);
    call("agentco", reqwest::Method::POST, "/api/v1/datasets", Some(serde_json::json!({"id": "secret"})), None);
}
