//! Filings against the real binary: a filing goes from draft to filed through the CLI, with its
//! attachments stored by SHA-256 and every change a log leaf that verifies offline; an overdue
//! filing raises an alert that closes when it is submitted; with `govern.require_filing` only
//! filed model versions serve, and a versioned name (`chat`) falls back to its newest filed,
//! allowed version when the newest is suspended.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Server, poll, temp_dir};
use serde_json::{Value, json};

fn config(data: &Path, upstream: &str, extra: &str) -> std::path::PathBuf {
    let cfg = data.join("aiplus.toml");
    std::fs::create_dir_all(data).unwrap();
    let model = |name: &str, id: &str, path: &str| {
        format!("[[gateway.model]]\nname = \"{name}\"\n[[gateway.model.deployment]]\nid = \"{id}\"\nbase_url = \"{upstream}/{path}/v1\"\n")
    };
    let text = format!(
        "{extra}[gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n{}{}",
        model("chat@1", "v1", "ok"),
        model("chat@2", "v2", "ok")
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn cli(s: &Server, args: &[&str]) -> Result<String, String> {
    let out = Command::new(BIN).args(args).env("AIPLUS_SERVER", &s.url).env("AIPLUS_TOKEN", &s.token).output().unwrap();
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

fn cli_json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&cli(s, &all).unwrap_or_else(|e| panic!("{args:?}: {e}"))).unwrap()
}

/// A chat for `model`: the status, and the model version that answered or the error code.
pub fn chat(s: &Server, key: &str, model: &str) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "你好"}]}))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    let what = body["model"].as_str().or(body["error"]["code"].as_str()).unwrap_or_default().to_string();
    (status, what)
}

fn content(models: &[&str], started: &str) -> Value {
    json!({
        "kind": "generative_service",
        "entity": {"name": "示例智能科技有限公司", "credit_code": "91110108MA01ABCDE0", "address": "北京市海淀区"},
        "responsible": {"name": "张三", "title": "安全负责人", "phone": "010-12345678", "email": "safety@example.cn"},
        "algorithm": {"name": "示例对话生成算法", "type": "generative_synthesis", "role": "service_provider"},
        "domains": ["政务咨询"],
        "products": [{"name": "示例助手", "form": "api"}],
        "base_model": {"name": "Qwen2.5", "filing_number": "Beijing-Qwen-20230831S0001"},
        "corpus": {"sources": [{"name": "公开网页", "kind": "open", "licence": "CC-BY-4.0"}], "scale_tokens": 18_000_000_000u64},
        "models": models,
        "service_started_on": started
    })
}

const KINDS: [&str; 4] = ["self_assessment", "keyword_list", "test_set", "service_agreement"];

/// Files a complete filing for `models` through the CLI; its id.
fn file_through_the_cli(s: &Server, data: &Path, models: &[&str], tenant: Option<&str>, number: &str) -> String {
    let file = data.join(format!("content-{number}.json"));
    std::fs::write(&file, content(models, "2026-12-01").to_string()).unwrap();
    let mut args = vec!["filings", "new", file.to_str().unwrap()];
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    let id = cli_json(s, &args)["id"].as_str().unwrap().to_string();
    for kind in KINDS {
        let f = data.join(format!("{kind}-{number}.txt"));
        std::fs::write(&f, format!("{kind} of {number}: 评估报告")).unwrap();
        cli(s, &["filings", "attach", &id, "--kind", kind, f.to_str().unwrap()]).unwrap();
    }
    cli(s, &["filings", "submit", &id]).unwrap();
    let filed = cli_json(s, &["filings", "file", &id, "--number", number]);
    assert_eq!((filed["state"].as_str(), filed["filing_number"].as_str()), (Some("filed"), Some(number)), "{filed}");
    id
}

#[test]
fn filings_gate_the_gateway_and_a_suspended_version_falls_back_to_a_filed_one() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir("filings");
    let cfg = config(&data, &upstream, "[govern]\nrequire_filing = true\n");
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let key = s.key("alpha", &json!({"scopes": ["inference"]}))["secret"].as_str().unwrap().to_string();

    // Nothing is filed: nothing serves.
    assert_eq!(chat(&s, &key, "chat"), (403, "model_not_filed".into()));
    assert_eq!(chat(&s, &key, "chat@1"), (403, "model_not_filed".into()));

    // A draft whose service started long ago is overdue at once, and says so in an alert.
    let late = data.join("late.json");
    std::fs::write(&late, content(&["chat@1"], "2020-01-06").to_string()).unwrap();
    let draft = cli_json(&s, &["filings", "new", late.to_str().unwrap(), "--tenant", "alpha"]);
    let id = draft["id"].as_str().unwrap().to_string();
    assert_eq!((draft["due"]["what"].as_str(), draft["due"]["overdue"].as_bool()), (Some("file"), Some(true)), "{draft}");
    assert_eq!(draft["due"]["on"], "2020-01-20", "10 working days from Monday 6 January 2020");
    let alert = poll(Duration::from_secs(10), || {
        let alerts = cli_json(&s, &["alerts", "list"]);
        alerts.as_array().unwrap().iter().find(|a| a["subject"] == format!("filing/{id}")).cloned()
    });
    assert_eq!((alert["kind"].as_str(), alert["tenant"].as_str()), (Some("filing.overdue"), Some("alpha")), "{alert}");

    // Bad input names the field; actions out of turn are conflicts.
    let (st, body) = s.post(&format!("/api/v1/filings/{id}/actions"), &json!({"action": "submit"}));
    assert_eq!((st, body["field"].as_str()), (422, Some("attachments")), "{body}");
    let (st, body) = s.post(&format!("/api/v1/filings/{id}/actions"), &json!({"action": "file", "filing_number": "x"}));
    assert_eq!(st, 409, "{body}");
    let (st, body) = s.post("/api/v1/filings", &json!({"content": {"entity": {"credit_code": "123"}}}));
    assert_eq!((st, body["field"].as_str()), (422, Some("entity.credit_code")), "{body}");
    let wrong = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/filings/{id}/attachments?kind=test_set&name=t.txt&sha256={}", s.url, "0".repeat(64)))
        .bearer_auth(&s.token)
        .body("题目")
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 422);
    assert_eq!(wrong.json::<Value>().unwrap()["field"], "sha256");
    let stale = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/filings/{id}/actions", s.url))
        .bearer_auth(&s.token)
        .header("if-match", "\"99\"")
        .json(&json!({"action": "update", "content": {}}))
        .send()
        .unwrap();
    assert_eq!(stale.status().as_u16(), 409);

    // Attached, submitted: the alert closes.
    for kind in KINDS {
        let f = data.join(format!("{kind}.txt"));
        std::fs::write(&f, format!("{kind}: 材料")).unwrap();
        cli(&s, &["filings", "attach", &id, "--kind", kind, f.to_str().unwrap()]).unwrap();
    }
    cli(&s, &["filings", "submit", &id]).unwrap();
    poll(Duration::from_secs(10), || {
        let alerts = cli_json(&s, &["alerts", "list"]);
        alerts.as_array().unwrap().iter().any(|a| a["id"] == alert["id"] && a["closed_ms"].is_number()).then_some(())
    });
    let table = cli(&s, &["filings", "list"]).unwrap();
    assert!(table.contains(&id) && table.contains("submitted"), "{table}");
    cli(&s, &["filings", "file", &id, "--number", "Beijing-Example-202612010001"]).unwrap();

    // chat@1 is filed, chat@2 is not: `chat` is served by chat@1, and chat@2 not at all.
    assert_eq!(chat(&s, &key, "chat"), (200, "chat@1".into()));
    assert_eq!(chat(&s, &key, "chat@2"), (403, "model_not_filed".into()));
    let models: Value =
        reqwest::blocking::Client::new().get(format!("{}/v1/models", s.url)).bearer_auth(&key).send().unwrap().json().unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["chat@1", "chat"], "a versioned name is offered with the versions that may serve");
    // Once chat@2 is filed too, `chat` goes to the newest.
    let second = file_through_the_cli(&s, &data, &["chat@2"], None, "Beijing-Example-202612010002");
    assert_eq!(chat(&s, &key, "chat"), (200, "chat@2".into()));
    // Suspending chat@2 sends `chat` back to chat@1 at once; a request pinned to chat@2 is refused.
    cli(&s, &["models", "suspend", "chat@2", "--reason", "监测发现风险"]).unwrap();
    assert_eq!(chat(&s, &key, "chat"), (200, "chat@1".into()));
    assert_eq!(chat(&s, &key, "chat@2"), (403, "model_suspended".into()));

    // The history, each change a leaf that verifies offline against the log's key.
    let history = cli_json(&s, &["filings", "history", &id]);
    let actions: Vec<&str> = history.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "attach", "attach", "attach", "attach", "submit", "file"]);
    for e in history.as_array().unwrap() {
        let i = e["log_index"].as_u64().unwrap().to_string();
        let proof = cli(&s, &["log", "proof", &i]).unwrap();
        let doc: Value = serde_json::from_str(&proof).unwrap();
        let leaf: Value = serde_json::from_str(doc["leaf"].as_str().unwrap()).unwrap();
        assert_eq!(
            (leaf["kind"].as_str().unwrap(), leaf["subject"].as_str().unwrap()),
            (format!("filing.{}", e["action"].as_str().unwrap()).as_str(), format!("filing/{id}").as_str())
        );
        let file = data.join(format!("proof-{i}.json"));
        std::fs::write(&file, proof).unwrap();
        let out = Command::new(BIN)
            .args(["log", "verify", "--proof", file.to_str().unwrap(), "--key", data.join("log-key.pub").to_str().unwrap()])
            .env("AIPLUS_SERVER", "http://127.0.0.1:9")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    // An attachment comes back as stored; the tenant it is for reads it, another tenant cannot.
    let shown = cli_json(&s, &["filings", "show", &id]);
    let a = &shown["attachments"][2];
    let out = data.join("downloaded.txt");
    cli(&s, &["filings", "download", &id, a["sha256"].as_str().unwrap(), "--out", out.to_str().unwrap()]).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("{}: 材料", a["kind"].as_str().unwrap()));
    let admin = |t: &str| s.key(t, &json!({"role": "tenant-admin", "scopes": ["admin"]}))["secret"].as_str().unwrap().to_string();
    let read = |k: &str, path: &str| {
        reqwest::blocking::Client::new().get(format!("{}{path}", s.url)).bearer_auth(k).send().unwrap().status().as_u16()
    };
    assert_eq!(read(&admin("alpha"), &format!("/api/v1/filings/{id}")), 200);
    assert_eq!(read(&admin("bravo"), &format!("/api/v1/filings/{id}")), 404);
    assert_eq!(read(&admin("alpha"), &format!("/api/v1/filings/{second}")), 404, "the operator's own filing is not alpha's");

    // Cancelling chat@1's filing leaves `chat` nothing to fall back to; a restart keeps it so.
    cli(&s, &["filings", "cancel", &id, "--reason", "服务下线"]).unwrap();
    assert_eq!(chat(&s, &key, "chat"), (403, "model_suspended".into()));
    drop(s);
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(chat(&s, &key, "chat"), (403, "model_suspended".into()));
    cli(&s, &["models", "activate", "chat@2", "--reason", "整改完成"]).unwrap();
    assert_eq!(chat(&s, &key, "chat"), (200, "chat@2".into()));
    let _ = std::fs::remove_dir_all(&data);
}

/// What one streamed request came to: where it was sent, when it started, and the version
/// that streamed it or the error.
struct Outcome {
    instance: usize,
    started: std::time::Instant,
    served: String,
}

/// Two instances on one PostgreSQL store, with a streaming load of `chat` on both: suspending
/// chat@2 on A stops new chat@2 streams on both within a second of A's answer (measured), and
/// the traffic falls back to chat@1, the filed version before it, without a refusal.
#[test]
fn under_a_streaming_load_a_suspension_moves_every_instance_to_the_filed_version_within_a_second() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(url) = rt.block_on(store::testing::fresh_postgres()) else { return };
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let log_key = std::env::temp_dir().join(format!("aiplus-filings-log-key-{}", std::process::id()));
    let _ = std::fs::remove_file(&log_key);
    let shared = format!("[store]\nurl = \"{url}\"\n[govern]\nlog_key_file = \"{}\"\n", log_key.display());
    let (da, db) = (temp_dir("filings-a"), temp_dir("filings-b"));
    let start = |d: &Path, compute: bool| {
        let cfg = config(d, &upstream, &format!("[server]\ncompute = {compute}\n{shared}"));
        Server::start_with(d, &["--config", cfg.to_str().unwrap()])
    };
    let a = start(&da, true);
    let b = start(&db, false);
    let key = a.key("alpha", &json!({"scopes": ["inference"]}))["secret"].as_str().unwrap().to_string();

    // chat@1 is filed (through A); B knows it once its copy of the filing says so.
    let (st, f) = a.post("/api/v1/filings", &json!({"content": content(&["chat@1"], "2026-12-01")}));
    assert_eq!(st, 201, "{f}");
    let id = f["id"].as_str().unwrap();
    for kind in KINDS {
        let r =
            a.client().post(format!("{}/api/v1/filings/{id}/attachments?kind={kind}&name={kind}.pdf", a.url)).body(kind).send().unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    for action in [json!({"action": "submit"}), json!({"action": "file", "filing_number": "Beijing-Example-1"})] {
        let (st, body) = a.post(&format!("/api/v1/filings/{id}/actions"), &action);
        assert_eq!(st, 200, "{body}");
    }
    // (The instances share one operator token: A's, made first.)
    poll(Duration::from_secs(10), || {
        let got: Value = a.client().get(format!("{}/api/v1/filings/{id}", b.url)).send().unwrap().json().unwrap();
        (got["state"] == "filed").then_some(())
    });
    poll(Duration::from_secs(10), || (chat(&b, &key, "chat") == (200, "chat@2".to_string())).then_some(()));

    // The load: two streaming clients per instance, one request after another.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for (instance, url) in [a.url.clone(), a.url.clone(), b.url.clone(), b.url.clone()].into_iter().enumerate() {
        let (stop, outcomes, key) = (stop.clone(), outcomes.clone(), key.clone());
        clients.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let body = json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "写一首诗"}]});
                let r = http.post(format!("{url}/v1/chat/completions")).bearer_auth(&key).json(&body).send().unwrap();
                let status = r.status().as_u16();
                let text = r.text().unwrap_or_default();
                let served = match (status, text.find("\"model\":\"")) {
                    (200, Some(i)) if !text.contains("\"error\"") => text[i + 9..].split('"').next().unwrap_or_default().to_string(),
                    _ => format!("{status} {}", text.chars().take(200).collect::<String>()),
                };
                outcomes.lock().unwrap().push(Outcome { instance: instance / 2, started: t, served });
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(800));
    let (st, body) = a.put("/api/v1/model-states/chat@2", &json!({"status": "suspended", "reason": "监测发现风险"}));
    assert_eq!(st, 200, "{body}");
    let mark = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    // Each stream's start, in ms after A answered the suspension (negative: before).
    let since =
        |o: &Outcome| if o.started >= mark { (o.started - mark).as_millis() as i64 } else { -((mark - o.started).as_millis() as i64) };
    let outcomes = outcomes.lock().unwrap();
    for instance in [0, 1] {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.instance == instance).collect();
        let last_v2 = mine.iter().filter(|o| o.served == "chat@2").map(|o| since(o)).max().unwrap();
        let after: Vec<&&Outcome> = mine.iter().filter(|o| since(o) > 1000).collect();
        let before = mine.iter().filter(|o| since(o) < 0 && o.served == "chat@2").count();
        println!(
            "instance {}: {before} streams by chat@2 before the suspension; the last chat@2 stream started {last_v2} ms after A's answer; {} streams from 1 s on",
            ["A", "B"][instance],
            after.len()
        );
        assert!(before > 0, "no load before the suspension");
        assert!(last_v2 < 1000, "instance {instance} started a chat@2 stream {last_v2} ms after the suspension");
        assert!(after.len() > 5, "too little load after the suspension");
        let stray: Vec<&String> = after.iter().map(|o| &o.served).filter(|s| *s != "chat@1").collect();
        assert!(stray.is_empty(), "instance {instance} after 1 s: {stray:?}");
    }
    let _ = std::fs::remove_file(&log_key);
    for d in [da, db] {
        let _ = std::fs::remove_dir_all(d);
    }
}
