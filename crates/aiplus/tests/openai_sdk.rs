//! The official `openai` Python SDK (from PyPI, installed by `scripts/test`) as a real client of
//! the real binary: models, chat, a stream with its usage chunk, and errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, temp_dir};
use serde_json::json;

/// The real binary with one gateway model, "qwen", served by the upstream test double, and a key
/// for tenant acme. The runtime keeps the double alive; `extra` goes into the `[gateway]` table.
fn gateway_server(name: &str, extra: &str) -> (tokio::runtime::Runtime, Server, String, std::path::PathBuf) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir(name);
    let cfg = data.join("aiplus.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\n{extra}\n[[gateway.model]]\nname = \"qwen\"\n[[gateway.model.deployment]]\nid = \"mock\"\nbase_url = \"{upstream}/ok/v1\"\n\
             [[gateway.model]]\nname = \"qwen-tools\"\n[[gateway.model.deployment]]\nid = \"tools\"\nbase_url = \"{upstream}/tools/v1\"\n"
        ),
    )
    .unwrap();
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let (status, key) = s.post("/api/v1/keys", &json!({"tenant": "acme"}));
    assert_eq!(status, 201, "{key}");
    (rt, s, key["secret"].as_str().unwrap().to_string(), data)
}

#[test]
fn the_openai_sdk_talks_to_the_gateway() {
    let (_rt, s, secret, data) = gateway_server("openai-sdk", "");
    wait_for_embedded(&s);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_sdk.py");
    let out = Command::new("python3").arg(script).arg(&s.url).arg(&secret).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK script failed (is the openai package installed? scripts/test installs it):\n{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("openai-sdk: ok"));
    // Every request, failed ones included, reaches the usage ledger.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, usage) = s.get("/api/v1/usage?tenant=acme&pillar=gateway");
    let seen: Vec<(String, u64)> = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["usage"]["endpoint"].as_str().unwrap().to_string(), u["usage"]["status"].as_u64().unwrap()))
        .collect();
    let expect = [
        ("models", 200),
        ("chat.completions", 200),
        ("chat.completions", 200),
        ("completions", 200),
        ("chat.completions", 200),
        ("responses", 200),
        ("responses", 200),
        ("responses", 200),
        ("responses", 200),
        ("responses", 200),
        ("embeddings", 200),
        ("embeddings", 200),
        ("chat.completions", 404),
        ("responses", 400),
    ];
    assert_eq!(seen, expect.map(|(e, s)| (e.to_string(), s)), "{usage}");
    let _ = std::fs::remove_dir_all(&data);
}

/// Waits until the embedded model is loaded (the first test run fetches it from PyPI).
fn wait_for_embedded(s: &Server) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let (_, st) = s.get("/api/v1/gateway");
        let state = st["embedded"]["state"].as_str().unwrap_or("").to_string();
        if state == "ready" {
            return;
        }
        assert!(!state.starts_with("failed"), "the embedded model failed: {state}");
        assert!(std::time::Instant::now() < deadline, "the embedded model was not ready in 300 s: {state}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The durability promise of gateway metering: a clean shutdown (SIGTERM) stores every event
/// still in the writer's channel; none is lost.
#[test]
fn a_clean_shutdown_keeps_every_usage_event() {
    // A 30 s flush interval: only the drain at shutdown can have stored the events.
    let (_rt, s, secret, data) = gateway_server("meter-drain", "meter_flush_ms = 30000");
    let cfg = data.join("aiplus.toml");
    let client = reqwest::blocking::Client::new();
    let n = 200;
    for _ in 0..n {
        let r = client
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(&secret)
            .json(&json!({"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Stop at once, without waiting for the writer's next flush.
    assert!(s.terminate().success());
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let (_, usage) = s.get("/api/v1/usage?tenant=acme&pillar=gateway&limit=10000");
    assert_eq!(usage.as_array().unwrap().len(), n, "every answered request is in the ledger after a clean shutdown");
    let _ = std::fs::remove_dir_all(&data);
}
