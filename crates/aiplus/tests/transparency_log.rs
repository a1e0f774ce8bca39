//! The transparency log, black-box: every governance change the server makes is a leaf whose
//! inclusion proof verifies offline (`aiplus log verify`, no server) against a checkpoint
//! signed with the key in the data dir; the log is served as C2SP tlog-tiles without a
//! credential and a mirror rebuilds the checkpoint's root from the tiles; and a store whose
//! history was rewritten, or rolled back with its checkpoints, does not start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, Server, temp_dir};
use serde_json::{Value, json};

fn cli(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).env("AIPLUS_SERVER", &s.url).env("AIPLUS_TOKEN", &s.token).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn offline(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).env("AIPLUS_SERVER", "http://127.0.0.1:9").output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Runs SQL on the server's SQLite store, as an attacker with the database file would.
fn sql(data: &Path, statement: &str) {
    let db = data.join("aiplus.db");
    let script =
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); n=c.execute(sys.argv[2]).rowcount; c.commit(); sys.exit(0 if n == 1 else 3)";
    let ok = Command::new("python3").args(["-c", script, db.to_str().unwrap(), statement]).status().unwrap().success();
    assert!(ok, "{statement}");
}

/// The server refuses to start, saying why on stderr.
fn refuses_to_start(data: &Path, why: &str) {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("AIPLUS_LOG", "warn")
        .env("AIPLUS_MODELS_CHAT", "")
        .env("AIPLUS_EMBED", "false")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("transparency log") && err.contains(why), "{err}");
}

#[test]
fn governance_changes_are_provable_offline_and_a_rewritten_history_does_not_start() {
    let data = temp_dir("tlog");
    let s = Server::start_with(&data, &[]);
    let public = data.join("log-key.pub");
    assert!(std::fs::read_to_string(&public).unwrap().starts_with("aiplus.local/log+"));

    // Three governance changes: a model deployed, scaled, undeployed.
    let (st, body) = s.put("/api/v1/model-deployments/qwen", &json!({"model": "smollm2-135m-instruct", "replicas": 1}));
    assert_eq!(st, 201, "{body}");
    let (st, body) = s.post("/api/v1/model-deployments/qwen/scale", &json!({"replicas": 0}));
    assert_eq!(st, 200, "{body}");
    let r = s.client().delete(format!("{}/api/v1/model-deployments/qwen", s.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);

    let (ok, cp, err) = cli(&s, &["log", "checkpoint"]);
    assert!(ok, "{err}");
    assert!(cp.starts_with("aiplus.local/log\n3\n"), "{cp}");
    let cp_file = data.join("checkpoint.txt");
    std::fs::write(&cp_file, &cp).unwrap();
    for (i, kind) in ["model.deployed", "model.scaled", "model.undeployed"].iter().enumerate() {
        let (ok, proof, err) = cli(&s, &["log", "proof", &i.to_string()]);
        assert!(ok, "{err}");
        let doc: Value = serde_json::from_str(&proof).unwrap();
        let leaf: Value = serde_json::from_str(doc["leaf"].as_str().unwrap()).unwrap();
        assert_eq!(
            (leaf["kind"].as_str(), leaf["subject"].as_str(), leaf["actor_role"].as_str()),
            (Some(*kind), Some("model/qwen"), Some("operator-admin"))
        );
        let file = data.join(format!("proof{i}.json"));
        std::fs::write(&file, &proof).unwrap();
        // Offline: no server is reachable at AIPLUS_SERVER.
        let (ok, out) = offline(&[
            "log",
            "verify",
            "--proof",
            file.to_str().unwrap(),
            "--checkpoint",
            cp_file.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ]);
        assert!(ok && out.contains(&format!("entry {i} is in the log")), "{out}");
        // A leaf rewritten in the proof document fails.
        let forged = proof.replace(kind, "model.activated");
        std::fs::write(&file, forged).unwrap();
        let (ok, out) = offline(&["log", "verify", "--proof", file.to_str().unwrap(), "--key", public.to_str().unwrap()]);
        assert!(!ok, "{out}");
        // The full record is for operators, and names who did it.
        let (st, e) = s.get(&format!("/api/v1/log/entries/{i}"));
        assert_eq!(st, 200, "{e}");
        assert!(e["record"]["actor"].as_str().is_some_and(|a| !a.is_empty()), "{e}");
    }
    let (ok, c, err) = cli(&s, &["log", "consistency", "1"]);
    assert!(ok, "{err}");
    let file = data.join("consistency.json");
    std::fs::write(&file, c).unwrap();
    let (ok, out) = offline(&["log", "verify", "--proof", file.to_str().unwrap(), "--key", public.to_str().unwrap()]);
    assert!(ok && out.contains("the tree of 1 entries is a prefix of the tree of 3"), "{out}");
    // A key that is not the log's verifies nothing.
    let other = "aiplus.local/log+12345678+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    let (ok, _) = offline(&["log", "verify", "--proof", data.join("proof0.json").to_str().unwrap(), "--key", other]);
    assert!(!ok);

    // The tiles, without a credential: a mirror rebuilds the root from them.
    let anon = reqwest::blocking::Client::new();
    let get = |p: &str| anon.get(format!("{}{p}", s.url)).send().unwrap();
    let tile = get("/log/tile/0/000.p/3");
    assert_eq!(tile.status().as_u16(), 200);
    assert_eq!(tile.headers()["content-type"], "application/octet-stream");
    let tile = tile.bytes().unwrap();
    let bundle = get("/log/tile/entries/000.p/3").bytes().unwrap();
    let entries = tlog::tiles::read_bundle(&bundle).unwrap();
    let mut mirror = tlog::Tree::new();
    for (e, h) in entries.iter().zip(tile.chunks(32)) {
        assert_eq!(tlog::leaf_hash(e).0.as_slice(), h);
        mirror.push(tlog::leaf_hash(e));
    }
    let key = tlog::VerifierKey::parse(get("/log/key").text().unwrap().trim()).unwrap();
    let checkpoint = tlog::Checkpoint::open(&get("/log/checkpoint").text().unwrap(), &key).unwrap();
    assert_eq!((mirror.root(3).unwrap(), checkpoint.size), (checkpoint.root, 3));
    assert_eq!(get("/log/tile/0/000.p/4").status().as_u16(), 404);
    assert_eq!(get("/log/tile/0/0").status().as_u16(), 422);
    assert_eq!(get("/api/v1/log/entries/0").status().as_u16(), 401, "full records need a credential");
    // Bad input names the field.
    for (path, status, field) in [
        ("/api/v1/log/entries/abc", 422, "index"),
        ("/api/v1/log/entries/000000000000000000001", 422, "index"),
        ("/api/v1/log/proof", 400, "query"),
        ("/api/v1/log/proof?index=x", 400, "query"),
        ("/api/v1/log/consistency?from=0", 422, "from"),
    ] {
        let (st, body) = s.get(path);
        assert_eq!((st, body["field"].as_str()), (status, Some(field)), "{path}: {body}");
    }
    // Proofs of entries or trees that do not exist answer 404.
    assert_eq!(s.get("/api/v1/log/proof?index=3").0, 404);
    assert_eq!(s.get("/api/v1/log/consistency?from=2&to=9").0, 404);
    drop(s);

    // Rewritten history: a leaf, then a record, then a deleted entry; each stops the start.
    sql(&data, "UPDATE tlog_entries SET leaf = replace(leaf, 'model.scaled', 'model.created') WHERE idx = 1");
    refuses_to_start(&data, "entries no longer hash to checkpoint 3");
    sql(&data, "UPDATE tlog_entries SET leaf = replace(leaf, 'model.created', 'model.scaled') WHERE idx = 1");
    sql(&data, "UPDATE tlog_entries SET record = replace(record, '\"replicas\":0', '\"replicas\":9') WHERE idx = 1");
    refuses_to_start(&data, "entry 1: the record does not match");
    sql(&data, "UPDATE tlog_entries SET record = replace(record, '\"replicas\":9', '\"replicas\":0') WHERE idx = 1");
    sql(&data, "DELETE FROM tlog_entries WHERE idx = 2");
    refuses_to_start(&data, "covers entries that are gone");
    // Removed with its checkpoint, the store agrees with itself; the newest checkpoint the
    // server saw, kept beside its key, does not.
    sql(&data, "DELETE FROM tlog_checkpoints WHERE size = 3");
    refuses_to_start(&data, "this server saw a checkpoint of 3: entries were removed");
    let _ = std::fs::remove_dir_all(&data);
}

/// Every kind of governance change the server makes, made through the API: each is a log entry
/// whose inclusion proof verifies offline against the signed checkpoint; then one stored leaf
/// is rewritten, and the server refuses the store.
#[test]
fn every_kind_of_governance_change_is_a_leaf_that_verifies_offline() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir("tlog-kinds");
    std::fs::create_dir_all(&data).unwrap();
    let keywords = data.join("keywords.txt");
    std::fs::write(&keywords, "违禁词\n").unwrap();
    let cfg = data.join("aiplus.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n[gateway.guardrail]\nkeywords_file = \"{}\"\n\
             [[gateway.model]]\nname = \"qwen\"\n[[gateway.model.deployment]]\nid = \"mock\"\nbase_url = \"{upstream}/ok/v1\"\n",
            keywords.display()
        ),
    )
    .unwrap();
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let ok = |(st, body): (u16, Value)| {
        assert!((200..300).contains(&st), "{st}: {body}");
        body
    };
    let http = s.client();
    // Models on the compute network.
    ok(s.put("/api/v1/model-deployments/md", &json!({"model": "smollm2-135m-instruct", "replicas": 0})));
    ok(s.post("/api/v1/model-deployments/md/scale", &json!({"replicas": 0})));
    assert_eq!(http.delete(format!("{}/api/v1/model-deployments/md", s.url)).send().unwrap().status().as_u16(), 204);
    // Model states.
    for change in [
        json!({"status": "restricted", "reason": "r", "tenants": ["alpha"]}),
        json!({"status": "suspended", "reason": "s"}),
        json!({"status": "active", "reason": "a"}),
    ] {
        ok(s.put("/api/v1/model-states/qwen", &change));
    }
    // A filing through its whole lifecycle.
    let f = ok(s.post("/api/v1/filings", &json!({"content": {"domains": ["客服"]}})));
    let id = f["id"].as_str().unwrap().to_string();
    let act = |a: Value| ok(s.post(&format!("/api/v1/filings/{id}/actions"), &a));
    let content = json!({
        "kind": "algorithm", "entity": {"name": "示例公司", "credit_code": "91110108MA01ABCDE0"},
        "responsible": {"name": "张三", "phone": "010-1"}, "algorithm": {"name": "推荐", "type": "personalised_push", "role": "service_provider"},
        "domains": ["资讯"], "products": [{"name": "示例", "form": "app"}], "models": ["qwen"], "service_started_on": "2026-12-01"
    });
    act(json!({"action": "update", "content": content}));
    let attach = |name: &str| {
        let url = format!("{}/api/v1/filings/{id}/attachments?kind=self_assessment&name={name}", s.url);
        let v: Value = http.post(url).body(format!("report {name}")).send().unwrap().json().unwrap();
        v["attachments"].as_array().unwrap().last().unwrap()["sha256"].as_str().unwrap().to_string()
    };
    let first = attach("a.pdf");
    act(json!({"action": "detach", "sha256": first}));
    attach("b.pdf");
    act(json!({"action": "submit"}));
    act(json!({"action": "return", "reason": "补充材料"}));
    act(json!({"action": "submit"}));
    act(json!({"action": "file", "filing_number": "网信算备110108000000000001号"}));
    act(json!({"action": "change", "changed_on": "2026-12-02"}));
    act(json!({"action": "end_service", "ended_on": "2026-12-02"}));
    act(json!({"action": "cancel", "reason": "服务下线"}));
    // An incident with every kind of step.
    let i = ok(s.post("/api/v1/incidents", &json!({"title": "数据泄露", "grade": "major"})));
    let iid = i["id"].as_str().unwrap().to_string();
    for step in [
        json!({"action": "report", "to": "省网信办", "text": "首报"}),
        json!({"action": "measure", "text": "暂停服务"}),
        json!({"action": "note", "text": "调查中"}),
        json!({"action": "regrade", "grade": "serious", "text": "影响扩大"}),
        json!({"action": "close", "text": "处置完毕"}),
    ] {
        ok(s.post(&format!("/api/v1/incidents/{iid}/steps"), &step));
    }
    // An alert rule set and deleted.
    ok(s.put("/api/v1/alert-rules/r", &json!({"metric": "error_rate", "window_s": 60, "fire_above": 0.5, "clear_below": 0.1})));
    assert_eq!(http.delete(format!("{}/api/v1/alert-rules/r", s.url)).send().unwrap().status().as_u16(), 204);
    // An end user suspended after three blocked inputs, then lifted.
    let key = s.key("alpha", &json!({"scopes": ["inference"]}))["secret"].as_str().unwrap().to_string();
    let chat = |text: &str| {
        let body = json!({"model": "qwen", "user": "u-1", "messages": [{"role": "user", "content": text}]});
        reqwest::blocking::Client::new()
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..3 {
        assert_eq!(chat("违禁词"), 400);
    }
    common::poll(std::time::Duration::from_secs(10), || (chat("你好") == 403).then_some(()));
    ok(s.post("/api/v1/end-users/alpha/u-1/lift", &json!({"reason": "复核"})));

    // Every entry verifies offline against the latest checkpoint, and every kind is there.
    let (ok_cp, cp, err) = cli(&s, &["log", "checkpoint"]);
    assert!(ok_cp, "{err}");
    let cp_file = data.join("checkpoint.txt");
    std::fs::write(&cp_file, &cp).unwrap();
    let size: u64 = cp.lines().nth(1).unwrap().parse().unwrap();
    let public = data.join("log-key.pub");
    let mut kinds = std::collections::BTreeSet::new();
    for i in 0..size {
        let (ok_p, proof, err) = cli(&s, &["log", "proof", &i.to_string()]);
        assert!(ok_p, "{err}");
        let leaf: Value = serde_json::from_str(serde_json::from_str::<Value>(&proof).unwrap()["leaf"].as_str().unwrap()).unwrap();
        kinds.insert(leaf["kind"].as_str().unwrap().to_string());
        let file = data.join(format!("proof{i}.json"));
        std::fs::write(&file, &proof).unwrap();
        let args = [
            "log",
            "verify",
            "--proof",
            file.to_str().unwrap(),
            "--checkpoint",
            cp_file.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ];
        let (verified, out) = offline(&args);
        assert!(verified && out.contains(&format!("entry {i} is in the log")), "{out}");
    }
    let expected = [
        "model.deployed",
        "model.scaled",
        "model.undeployed",
        "model.restricted",
        "model.suspended",
        "model.active",
        "filing.create",
        "filing.update",
        "filing.attach",
        "filing.detach",
        "filing.submit",
        "filing.return",
        "filing.file",
        "filing.change",
        "filing.end_service",
        "filing.cancel",
        "incident.opened",
        "incident.report",
        "incident.measure",
        "incident.note",
        "incident.regrade",
        "incident.closed",
        "rule.set",
        "rule.deleted",
        "end_user.suspended",
        "end_user.lifted",
    ];
    let expected: std::collections::BTreeSet<String> = expected.iter().map(|k| k.to_string()).collect();
    assert_eq!(kinds, expected, "every kind of governance change, each verified offline ({size} entries)");
    drop(s);

    // One stored leaf rewritten (the incident's report): the server refuses the store.
    sql(&data, "UPDATE tlog_entries SET leaf = replace(leaf, 'incident.report', 'incident.note') WHERE leaf LIKE '%incident.report%'");
    refuses_to_start(&data, "entries no longer hash to checkpoint");
    let _ = std::fs::remove_dir_all(&data);
}
