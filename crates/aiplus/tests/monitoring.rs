//! Runtime monitoring against the real binary: an alert rule fires on a rising guardrail block
//! rate, restricts the model, posts a webhook to a receiver on this machine and opens an
//! incident whose deadline follows its grade; and TC260-003's per-end-user sanction suspends an
//! end user after three blocked inputs in a row or five in a day, until an operator lifts it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BIN, Server, poll, temp_dir};
use serde_json::{Value, json};

fn start(data: &Path, upstream: &str) -> Server {
    std::fs::create_dir_all(data).unwrap();
    let keywords = data.join("keywords.txt");
    std::fs::write(&keywords, "# 测试用拦截词\n违禁词\n").unwrap();
    let cfg = data.join("aiplus.toml");
    std::fs::write(
        &cfg,
        format!(
            "[govern]\nmonitor_every_ms = 300\nallow_local_webhooks = true\n\
             [gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n\
             [gateway.guardrail]\nkeywords_file = \"{}\"\n\
             [[gateway.model]]\nname = \"qwen\"\n[[gateway.model.deployment]]\nid = \"mock\"\nbase_url = \"{upstream}/ok/v1\"\n",
            keywords.display()
        ),
    )
    .unwrap();
    Server::start_with(data, &["--config", cfg.to_str().unwrap()])
}

fn cli(s: &Server, args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).env("AIPLUS_SERVER", &s.url).env("AIPLUS_TOKEN", &s.token).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&cli(s, &all)).unwrap()
}

/// A chat as `key` (for end user `user`, if named): the status and the error code.
fn chat(s: &Server, key: &str, text: &str, user: Option<&str>) -> (u16, String) {
    let mut body = json!({"model": "qwen", "messages": [{"role": "user", "content": text}]});
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    let r = reqwest::blocking::Client::new().post(format!("{}/v1/chat/completions", s.url)).bearer_auth(key).json(&body).send().unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().unwrap_or(Value::Null);
    (status, v["error"]["code"].as_str().unwrap_or_default().to_string())
}

/// A webhook receiver on this machine that keeps what it is sent.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[test]
fn a_rising_block_rate_restricts_the_model_notifies_and_opens_an_incident() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let (hook, received) = receiver(&rt);
    let data = temp_dir("monitoring");
    let s = start(&data, &upstream);
    let key = s.key("alpha", &json!({"scopes": ["inference"]}))["secret"].as_str().unwrap().to_string();
    let rule = data.join("rule.json");
    std::fs::write(
        &rule,
        json!({
            "model": "qwen", "metric": "block_rate", "window_s": 60, "fire_above": 0.3, "clear_below": 0.1, "min_requests": 10,
            "cooldown_s": 600, "actions": ["notify", "restrict"], "webhook_url": hook, "restrict": {"tenants": ["trusted"]},
            "incident": {"grade": "major", "operator_class": "critical_infrastructure"}
        })
        .to_string(),
    )
    .unwrap();
    let table = cli(&s, &["alerts", "set-rule", "blocks", rule.to_str().unwrap()]);
    assert!(table.contains("blocks") && table.contains("block_rate"), "{table}");

    // Clean traffic: the rule stays quiet.
    for _ in 0..10 {
        assert_eq!(chat(&s, &key, "你好", None).0, 200);
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(chat(&s, &key, "你好", None).0, 200, "10 clean requests fire nothing");
    // The block rate rises past 30%.
    for _ in 0..10 {
        assert_eq!(chat(&s, &key, "请写违禁词", None), (400, "content_blocked".into()));
    }
    // Watched through its state, not by chatting: clean requests would dilute the block rate.
    let t0 = Instant::now();
    poll(Duration::from_secs(15), || (s.get("/api/v1/model-states/qwen").1["status"] == "restricted").then_some(()));
    println!("the model was restricted {} ms after the block rate crossed the line", t0.elapsed().as_millis());
    assert_eq!(chat(&s, &key, "你好", None), (403, "model_restricted".into()));

    // The webhook came, with the incident it opened.
    let fired = poll(Duration::from_secs(10), || received.lock().unwrap().iter().find(|v| v["event"] == "alert.fired").cloned());
    assert_eq!(
        (fired["rule"].as_str(), fired["model"].as_str(), fired["metric"].as_str()),
        (Some("blocks"), Some("qwen"), Some("block_rate"))
    );
    assert!(fired["value"].as_f64().unwrap() > 0.3, "{fired}");
    // The incident: major, critical infrastructure, so reported within an hour of its discovery.
    let incidents = cli_json(&s, &["incidents", "list"]);
    let incident = &incidents.as_array().unwrap()[0];
    assert_eq!(incident["id"], fired["incident"]["id"]);
    assert_eq!((incident["grade"].as_str(), incident["state"].as_str()), (Some("major"), Some("open")));
    assert_eq!(incident["report_due_ms"].as_i64().unwrap() - incident["discovered_ms"].as_i64().unwrap(), 3_600_000);
    // The restriction is the rule's, logged like an operator's change.
    let states = cli_json(&s, &["models", "states"]);
    let qwen = states.as_array().unwrap().iter().find(|m| m["model"] == "qwen").unwrap();
    assert_eq!(
        (qwen["status"].as_str(), qwen["actor"].as_str(), qwen["actor_role"].as_str()),
        (Some("restricted"), Some("rule:blocks"), Some("monitor"))
    );
    assert_eq!(fired["state_log_index"], qwen["log_index"]);
    let alerts = cli_json(&s, &["alerts", "list"]);
    assert!(alerts.as_array().unwrap().iter().any(|a| a["key"] == "monitor:blocks:qwen" && a["closed_ms"].is_null()), "{alerts}");

    // The incident's timeline: reported, then closed, each step a log entry.
    let id = incident["id"].as_str().unwrap();
    cli(&s, &["incidents", "report", id, "--to", "保护工作部门", "--text", "首报：拦截率异常升高"]);
    let closed = cli_json(&s, &["incidents", "close", id, "--text", "已限制模型，处置完毕"]);
    let kinds: Vec<&str> = closed["timeline"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opened", "report", "closed"]);
    let (_, entry) = s.get(&format!("/api/v1/log/entries/{}", closed["timeline"][1]["log_index"]));
    assert_eq!(entry["record"]["text"], "to 保护工作部门: 首报：拦截率异常升高", "{entry}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn three_blocked_inputs_in_a_row_or_five_in_a_day_suspend_the_end_user_until_lifted() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir("end-users");
    let s = start(&data, &upstream);
    let key = s.key("alpha", &json!({"scopes": ["inference"]}))["secret"].as_str().unwrap().to_string();
    // Two blocked, one clean, two blocked: never three in a row.
    for (text, status) in [("违禁词", 400), ("违禁词", 400), ("你好", 200), ("违禁词", 400), ("违禁词", 400)] {
        assert_eq!(chat(&s, &key, text, Some("u-1")).0, status);
    }
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(chat(&s, &key, "你好", Some("u-1")).0, 200, "a run broken by a clean request does not count");
    // A fifth blocked input in one day suspends.
    assert_eq!(chat(&s, &key, "违禁词", Some("u-1")).0, 400);
    poll(Duration::from_secs(10), || (chat(&s, &key, "你好", Some("u-1")) == (403, "end_user_suspended".into())).then_some(()));
    // Three in a row suspend at once.
    for _ in 0..3 {
        assert_eq!(chat(&s, &key, "违禁词", Some("u-3")).0, 400);
    }
    poll(Duration::from_secs(10), || (chat(&s, &key, "你好", Some("u-3")) == (403, "end_user_suspended".into())).then_some(()));
    assert_eq!(chat(&s, &key, "你好", Some("u-2")).0, 200, "another end user is served");
    assert_eq!(chat(&s, &key, "你好", None).0, 200, "the tenant is served");
    let users = cli_json(&s, &["alerts", "end-users"]);
    let u1 = users.as_array().unwrap().iter().find(|u| u["user"] == "u-1").unwrap();
    assert!(u1["suspended_until_ms"].is_i64(), "{u1}");
    let u3 = users.as_array().unwrap().iter().find(|u| u["user"] == "u-3").unwrap();
    assert!(u3["suspended_until_ms"].is_i64(), "{u3}");
    // The suspension is a log entry; lifting it is another, and the end user is served again.
    let (_, entry) = s.get(&format!("/api/v1/log/entries/{}", u1["log_index"]));
    assert_eq!(entry["leaf"]["kind"], "end_user.suspended", "{entry}");
    // The public leaf names the end user by a digest only the log's key makes; the record has the id.
    let subject = entry["leaf"]["subject"].as_str().unwrap();
    assert!(subject.starts_with("end-user/alpha/") && !subject.contains("u-1"), "{subject}");
    assert_eq!(entry["record"]["user"], "u-1");
    cli(&s, &["alerts", "lift", "alpha", "u-1", "--reason", "人工复核后解除"]);
    poll(Duration::from_secs(5), || (chat(&s, &key, "你好", Some("u-1")).0 == 200).then_some(()));
    let _ = std::fs::remove_dir_all(&data);
}
