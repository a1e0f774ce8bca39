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
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = Command::new("node")
        .arg(dir.join("walk.js"))
        .env("AIPLUS_URL", &s.url)
        .env("AIPLUS_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("AIPLUS_ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser walk failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("console walk: ok"), "{stdout}");
    let shots = std::fs::read_dir(&artifacts).unwrap().count();
    assert!(shots >= 10, "{shots} screenshots");
    let _ = std::fs::remove_dir_all(&data);
}
