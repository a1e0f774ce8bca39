//! Model governance states against the real binary: suspending, restricting and activating a
//! model with the CLI changes what the gateway answers at once, every change is a leaf whose
//! proof verifies offline. (Two instances sharing PostgreSQL under a streaming load, where a
//! suspension made on one binds both within a second: tests/filings.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::process::Command;
use std::time::Instant;

use common::{BIN, Server, temp_dir};
use serde_json::{Value, json};

fn config(data: &std::path::Path, upstream: &str, extra: &str) -> std::path::PathBuf {
    let cfg = data.join("aiplus.toml");
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{extra}[gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n\
             [[gateway.model]]\nname = \"qwen\"\n[[gateway.model.deployment]]\nid = \"mock\"\nbase_url = \"{upstream}/ok/v1\"\n\
             [[gateway.model]]\nname = \"long\"\n[[gateway.model.deployment]]\nid = \"drip\"\nbase_url = \"{upstream}/drip/v1\"\n\
             [[gateway.model]]\nname = \"west\"\n[[gateway.model.deployment]]\nid = \"guian\"\ncluster = \"guian\"\nbase_url = \"{upstream}/ok/v1\"\n"
        ),
    )
    .unwrap();
    cfg
}

/// A chat for `key`: the status and the error code, if any.
fn chat(s: &Server, key: &str) -> (u16, Option<String>) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(key)
        .json(&json!({"model": "qwen", "messages": [{"role": "user", "content": "你好"}]}))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().map(String::from))
}

/// The models `/v1/models` offers `key`.
fn offered(s: &Server, key: &str) -> Vec<String> {
    let v: Value = reqwest::blocking::Client::new().get(format!("{}/v1/models", s.url)).bearer_auth(key).send().unwrap().json().unwrap();
    v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
}

fn cli(s: &Server, args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).env("AIPLUS_SERVER", &s.url).env("AIPLUS_TOKEN", &s.token).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn secret(s: &Server, tenant: &str) -> String {
    s.key(tenant, &json!({"scopes": ["inference"]}))["secret"].as_str().unwrap().to_string()
}

#[test]
fn suspend_restrict_and_activate_bind_the_gateway_and_are_logged() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir("states");
    let cfg = config(&data, &upstream, "");
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let (alpha, bravo) = (secret(&s, "alpha"), secret(&s, "bravo"));
    assert_eq!(chat(&s, &alpha).0, 200);

    cli(&s, &["models", "suspend", "qwen", "--reason", "评测发现违规内容"]);
    for k in [&alpha, &bravo] {
        assert_eq!(chat(&s, k), (403, Some("model_suspended".into())));
    }
    assert!(!offered(&s, &alpha).contains(&"qwen".to_string()), "a suspended model is not offered");
    let table = cli(&s, &["models", "restrict", "qwen", "--reason", "limited pilot", "--tenant", "alpha"]);
    assert!(table.contains("restricted") && table.contains("alpha"), "{table}");
    assert_eq!(chat(&s, &alpha).0, 200);
    assert_eq!(chat(&s, &bravo), (403, Some("model_restricted".into())));
    assert!(offered(&s, &alpha).contains(&"qwen".to_string()) && !offered(&s, &bravo).contains(&"qwen".to_string()));
    cli(&s, &["models", "activate", "qwen", "--reason", "fixed"]);
    assert_eq!(chat(&s, &bravo).0, 200);

    // A bad change names the field and changes nothing.
    let (st, body) = s.put("/api/v1/model-states/qwen", &json!({"status": "restricted", "reason": "x"}));
    assert_eq!((st, body["field"].as_str()), (422, Some("tenants")), "{body}");

    // Three leaves, in order, each provable offline with the server's public key.
    let states: Value = serde_json::from_str(&cli(&s, &["models", "states", "--json"])).unwrap();
    assert_eq!(states[0]["status"], "active");
    let last = states[0]["log_index"].as_u64().unwrap();
    for (i, kind) in [(last - 2, "model.suspended"), (last - 1, "model.restricted"), (last, "model.active")] {
        let proof = cli(&s, &["log", "proof", &i.to_string()]);
        assert!(proof.contains(kind), "{proof}");
        let file = data.join(format!("p{i}.json"));
        std::fs::write(&file, proof).unwrap();
        let out = Command::new(BIN)
            .args(["log", "verify", "--proof", file.to_str().unwrap(), "--key", data.join("log-key.pub").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let (_, entry) = s.get(&format!("/api/v1/log/entries/{}", last - 2));
    assert_eq!(entry["record"]["reason"], "评测发现违规内容");

    // A stream in flight when its model is suspended ends with the reason, at its next chunk.
    let mut r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&alpha)
        .json(&json!({"model": "long", "stream": true, "messages": [{"role": "user", "content": "写一篇长文"}]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut first = [0u8; 64];
    std::io::Read::read(&mut r, &mut first).unwrap();
    let t0 = Instant::now();
    cli(&s, &["models", "suspend", "long", "--reason", "mid-stream"]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut r, &mut rest).unwrap();
    assert!(rest.contains("\"code\":\"model_suspended\"") && !rest.contains("[DONE]"), "{rest}");
    assert!(rest.matches("字").count() < 90, "the stream ran on: {} frames", rest.matches("字").count());
    println!("a suspended model's stream ended {} ms after the suspension was asked for", t0.elapsed().as_millis());

    // A restart keeps the state.
    cli(&s, &["models", "suspend", "qwen", "--reason", "again"]);
    drop(s);
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(chat(&s, &alpha), (403, Some("model_suspended".into())));
    let _ = std::fs::remove_dir_all(&data);
}

/// A restriction short of a refusal: to deployments in named regions, and to limits per tenant
/// below the tenants' own.
#[test]
fn a_restriction_by_region_or_by_lower_limits_binds_the_gateway() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir("states-bounds");
    let cfg = config(&data, &upstream, "");
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let alpha = secret(&s, "alpha");
    let chat_with = |model: &str| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(&alpha)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "你好"}]}))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap_or(Value::Null);
        (
            status,
            body["error"]["code"].as_str().unwrap_or_default().to_string(),
            body["error"]["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    // `west` runs in Gui'an (hub guizhou): restricted to that hub it serves, to another it does not.
    cli(&s, &["models", "restrict", "west", "--reason", "数据不出贵州", "--region", "hub:guizhou"]);
    assert_eq!(chat_with("west").0, 200);
    let table = cli(&s, &["models", "restrict", "west", "--reason", "only Beijing", "--region", "hub:jingjinji"]);
    assert!(table.contains("hub:jingjinji"), "{table}");
    let (status, code, message) = chat_with("west");
    assert_eq!((status, code.as_str()), (403, "model_restricted"), "{message}");
    assert!(message.contains("hub:jingjinji"), "{message}");
    // `qwen` (in no region) limited to 2 requests a minute per tenant: the third waits, others are untouched.
    cli(&s, &["models", "restrict", "qwen", "--reason", "capacity", "--requests-per-min", "2"]);
    assert_eq!(chat_with("qwen").0, 200);
    assert_eq!(chat_with("qwen").0, 200);
    let (status, code, message) = chat_with("qwen");
    assert_eq!((status, code.as_str()), (429, "rate_limit_exceeded"), "{message}");
    assert!(message.contains("model"), "{message}");
    assert_eq!(chat_with("long").0, 200, "another model keeps its own limits");
    // A restriction names what it restricts to; active takes none of it.
    let (st, body) = s.put("/api/v1/model-states/qwen", &json!({"status": "active", "reason": "x", "regions": ["hub:guizhou"]}));
    assert_eq!((st, body["field"].as_str()), (422, Some("regions")), "{body}");
    let (st, body) = s.put("/api/v1/model-states/qwen", &json!({"status": "restricted", "reason": "x", "limits": {"requests_per_min": 0}}));
    assert_eq!((st, body["field"].as_str()), (422, Some("limits")), "{body}");
    let _ = std::fs::remove_dir_all(&data);
}
