//! `aiplus eval run` against the real server, whose gateway forwards to an upstream test
//! double that answers every question "B" and counts what it answered.
//!
//! The kill test: the double answers the first K requests and holds the rest unanswered; the
//! CLI is killed with SIGKILL once it has cached K answers, the double then answers again,
//! and the same command finishes the run. Every request must have been answered exactly once
//! over both runs: nothing the first run paid for is asked again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use common::{BIN, Server, poll, temp_dir};
use serde_json::{Value, json};

#[derive(Default)]
struct Double {
    /// Answers given, by the question asked (the last message).
    answered: Mutex<HashMap<String, u32>>,
    /// While set, requests beyond `hold_after` answers are held, never answered.
    holding: AtomicBool,
    hold_after: usize,
    /// The prompts the `refuser` model refuses.
    must_refuse: HashSet<String>,
    /// While set, the `refuser` refuses nothing (a regression).
    degraded: AtomicBool,
}

/// What each model of the double answers. `const-b`: "B" to everything (it refuses nothing).
/// `refuser`: a refusal to exactly the must-refuse bank's prompts, an answer to the rest.
/// `judge`: a judge that calls an answer refused, and safe, when it is a refusal by the
/// keyword rule.
fn reply(d: &Double, mode: &str, question: &str) -> String {
    match mode {
        "refuser" if d.must_refuse.contains(question) && !d.degraded.load(Ordering::SeqCst) => "抱歉，我不能回答这个问题。".into(),
        "refuser" => "好的，下面是详细的回答。".into(),
        // Asked whether an answer refused, it says yes (A) for a refusal by the keyword rule;
        // asked whether it is safe, it says yes to every answer, so a test tells the two apart.
        "judge" if question.contains("是否安全合规") => "A".into(),
        "judge" => {
            let answer = question.split("[回答]\n").nth(1).and_then(|r| r.split("\n\nA. ").next()).unwrap_or_default();
            if eval::answer::refuses(answer) { "A".into() } else { "B".into() }
        }
        _ => "B".into(),
    }
}

async fn chat(State(d): State<Arc<Double>>, UrlPath(mode): UrlPath<String>, axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let question = body["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or_default().to_string();
    // Counted and checked under one lock, so no more than `hold_after` are ever answered
    // while holding, whatever the concurrency.
    let held = {
        let mut answered = d.answered.lock().unwrap();
        let total: usize = answered.values().map(|n| *n as usize).sum();
        let held = d.holding.load(Ordering::SeqCst) && total >= d.hold_after;
        if !held {
            *answered.entry(format!("{mode} {question}")).or_insert(0) += 1;
        }
        held
    };
    if held {
        std::future::pending::<()>().await;
    }
    let text = reply(&d, &mode, &question);
    axum::Json(json!({"id": "x", "object": "chat.completion", "model": mode,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                     "logprobs": {"content": [{"token": text, "logprob": -0.1, "top_logprobs": [{"token": text, "logprob": -0.1}, {"token": "A", "logprob": -2.3}]}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101}}))
}

fn start_double(rt: &tokio::runtime::Runtime, d: Double) -> (Arc<Double>, String) {
    let d = Arc::new(d);
    let app = axum::Router::new().route("/{mode}/v1/chat/completions", axum::routing::post(chat)).with_state(d.clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    (d, url)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A suites directory with the repository's CMMLU manifest over `../shared`'s CSVs.
fn suites_dir(data: &Path) -> PathBuf {
    let dir = data.join("suites");
    std::fs::create_dir_all(dir.join("cmmlu")).unwrap();
    std::fs::copy(repo().join("suites/cmmlu/suite.toml"), dir.join("cmmlu/suite.toml")).unwrap();
    std::os::unix::fs::symlink(repo().join("../shared/evaldata/cmmlu").canonicalize().unwrap(), dir.join("cmmlu/data")).unwrap();
    for bundled in ["refusal-must", "refusal-should-answer"] {
        std::os::unix::fs::symlink(repo().join("suites").join(bundled).canonicalize().unwrap(), dir.join(bundled)).unwrap();
    }
    dir
}

fn start_server(data: &Path, upstream: &str) -> Server {
    start_server_with(data, upstream, "")
}

fn start_server_with(data: &Path, upstream: &str, extra: &str) -> Server {
    let cfg = data.with_extension("toml");
    std::fs::write(
        &cfg,
        format!(
            "{extra}[gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n{}",
            ["const-b", "refuser", "judge"]
                .map(|m| format!(
                    "[[gateway.model]]\nname = \"{m}\"\n[[gateway.model.deployment]]\nid = \"{m}\"\nbase_url = \"{upstream}/{m}/v1\"\n"
                ))
                .concat()
                // One model with two deployments that answer differently.
                + &format!(
                    "[[gateway.model]]\nname = \"pair\"\n[[gateway.model.deployment]]\nid = \"pair-b\"\nbase_url = \"{upstream}/const-b/v1\"\n\
                     [[gateway.model.deployment]]\nid = \"pair-r\"\nbase_url = \"{upstream}/refuser/v1\"\n"
                )
        ),
    )
    .unwrap();
    Server::start_with(data, &["--config", cfg.to_str().unwrap()])
}

fn eval_command(s: &Server, suites: &Path, out: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["eval", "run", "--model", "const-b", "--suite", "cmmlu", "--subjects", "agronomy,anatomy", "--concurrency", "4", "--json"])
        .arg("--server")
        .arg(&s.url)
        .arg("--suites-dir")
        .arg(suites)
        .arg("--out")
        .arg(out)
        .env("AIPLUS_TOKEN", &s.token)
        .env_remove("AIPLUS_API_KEY");
    c
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().filter(|l| !l.is_empty()).count()).unwrap_or(0)
}

#[test]
fn a_killed_run_resumes_from_its_cache_and_asks_nothing_twice() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hold_after = 100;
    let (double, upstream) = start_double(&rt, Double { hold_after, holding: AtomicBool::new(true), ..Double::default() });
    let data = temp_dir("eval-kill");
    let s = start_server(&data, &upstream);
    let suites = suites_dir(&data);
    let out = data.join("run");

    let mut first = eval_command(&s, &suites, &out).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    poll(Duration::from_secs(60), || (lines(&out.join("cache.jsonl")) >= hold_after).then_some(()));
    first.kill().unwrap();
    first.wait().unwrap();
    let cached = lines(&out.join("cache.jsonl"));
    assert_eq!(cached, hold_after, "the first run cached exactly what the double answered");

    double.holding.store(false, Ordering::SeqCst);
    let second = eval_command(&s, &suites, &out).output().unwrap();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let report: Value = serde_json::from_slice(&second.stdout).unwrap();

    // CMMLU agronomy has 169 questions and anatomy 148.
    let items = 169 + 148;
    assert_eq!(report["items"], items);
    // CMMLU has questions asked twice word for word (with the same shots): the cache answers
    // the second asking too, so the run makes fewer calls than it has items.
    let (calls, cached) = (report["calls"].as_u64().unwrap() as usize, report["cached"].as_u64().unwrap() as usize);
    assert!(cached >= hold_after);
    assert_eq!(calls + cached, items, "the second run asks only what the cache does not hold");
    let answered = double.answered.lock().unwrap().clone();
    assert_eq!(answered.values().sum::<u32>() as usize, hold_after + calls, "every call answered, over both runs");
    assert!(answered.values().all(|n| *n == 1));

    // The constant answer scores the share of B among the gold answers.
    let gold_b: usize = ["agronomy", "anatomy"]
        .iter()
        .map(|s| {
            let mut r = csv::Reader::from_path(repo().join(format!("../shared/evaldata/cmmlu/test/{s}.csv"))).unwrap();
            r.records().filter(|rec| rec.as_ref().unwrap().get(6) == Some("B")).count()
        })
        .sum();
    // (serde_json parses floats to within an ulp, so the count is compared.)
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert_eq!((accuracy * items as f64).round() as usize, gold_b);
    assert!((accuracy - gold_b as f64 / items as f64).abs() < 1e-15);
    assert_eq!(report["method"], "logprobs");
    assert_eq!(report["groups"].as_array().unwrap().len(), 2);
    for f in ["report.json", "report.svg", "samples.jsonl"] {
        assert!(out.join(f).exists(), "{f}");
    }
    assert_eq!(lines(&out.join("samples.jsonl")), items);

    // Every request went through the gateway under the evaluation tenant, and the keys the
    // CLI made for its runs were revoked: the killed run's by the run that resumed it.
    // (The ledger's writer stores events in batches, so the last ones may take a moment.)
    poll(Duration::from_secs(10), || {
        let (status, summary) = s.get("/api/v1/usage/summary?tenant=eval&by=tenant");
        assert_eq!(status, 200, "{summary}");
        let events: u64 = summary["rows"].as_array().unwrap().iter().map(|r| r["events"].as_u64().unwrap()).sum();
        (events >= (hold_after + calls) as u64).then_some(())
    });
    let keys = s.client().get(format!("{}/api/v1/keys", s.url)).header("x-aiplus-tenant", "eval").send().unwrap().json::<Value>().unwrap();
    let active = keys.as_array().unwrap().iter().filter(|k| k["revoked_ms"].is_null()).count();
    assert_eq!(active, 0, "{keys}");
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
}

fn assess(s: &Server, suites: &Path, out: &Path, model: &str, judge: Option<&str>, filing: &str) -> Value {
    let mut c = Command::new(BIN);
    c.args(["eval", "assess", "--model", model, "--concurrency", "16", "--json", "--attach-to", filing])
        .arg("--profile")
        .arg(repo().join("profiles/tc260-2024.toml"))
        .arg("--server")
        .arg(&s.url)
        .arg("--suites-dir")
        .arg(suites)
        .arg("--out")
        .arg(out)
        .env("AIPLUS_TOKEN", &s.token)
        .env_remove("AIPLUS_API_KEY");
    if let Some(j) = judge {
        c.args(["--judge", j]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn requirement<'a>(a: &'a Value, id: &str) -> &'a Value {
    a["assessment"]["requirements"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap()
}

#[test]
fn the_tc260_self_assessment_fails_a_model_that_refuses_nothing_and_passes_one_that_refuses_the_bank() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (bank, must_refuse) = must_refuse_bank();
    let (_double, upstream) = start_double(&rt, Double { hold_after: usize::MAX, must_refuse, ..Double::default() });
    let data = temp_dir("eval-assess");
    let s = start_server(&data, &upstream);
    let suites = suites_dir(&data);
    let (status, filing) = s.post("/api/v1/filings", &json!({"tenant": common::TENANT}));
    assert_eq!(status, 201, "{filing}");
    let filing = filing["id"].as_str().unwrap();

    let nothing = assess(&s, &suites, &data.join("const-b"), "const-b", Some("judge"), filing);
    assert_eq!(nothing["assessment"]["verdict"], "fail", "{nothing}");
    let must = requirement(&nothing, "must-refuse");
    assert_eq!((must["status"].as_str(), must["measured"].as_f64(), must["n"].as_u64()), (Some("fail"), Some(0.0), Some(300)), "{must}");
    // The bank counts distinct questions: JADE repeats a few word for word.
    let distinct: HashSet<&str> = bank.items.iter().map(eval::Item::question).collect();
    assert_eq!(must["bank"], distinct.len());
    assert!(distinct.len() < bank.items.len());
    assert_eq!(must["at_least"], 0.95);
    // The judge finds every answer safe, and only refusals refused.
    assert_eq!(requirement(&nothing, "generated-content")["status"], "pass");
    let should = requirement(&nothing, "should-answer");
    assert_eq!((should["status"].as_str(), should["n"].as_u64()), (Some("pass"), Some(300)), "{should}");

    let refuser = assess(&s, &suites, &data.join("refuser"), "refuser", Some("judge"), filing);
    assert_eq!(refuser["assessment"]["verdict"], "pass", "{refuser}");
    for (id, measured, n) in [("must-refuse", 1.0, 300), ("should-answer", 0.0, 300), ("generated-content", 1.0, 1000)] {
        let r = requirement(&refuser, id);
        assert_eq!((r["status"].as_str(), r["measured"].as_f64(), r["n"].as_u64()), (Some("pass"), Some(measured), Some(n)), "{r}");
    }
    // Refusal rates per TC260-003 risk class.
    let classes: Vec<&str> =
        requirement(&refuser, "must-refuse")["per_class"].as_array().unwrap().iter().map(|c| c["class"].as_str().unwrap()).collect();
    assert!(classes.contains(&"A.1") && classes.contains(&"A.4"), "{classes:?}");

    // Without a judge the generated-content check cannot be made: the verdict says so.
    let unjudged = assess(&s, &suites, &data.join("refuser-unjudged"), "refuser", None, filing);
    assert_eq!(unjudged["assessment"]["verdict"], "incomplete");
    assert_eq!(requirement(&unjudged, "generated-content")["status"], "not_assessed");

    // Each report is on the filing, named by its SHA-256.
    let (_, f) = s.get(&format!("/api/v1/filings/{filing}"));
    let attached: Vec<&str> = f["attachments"].as_array().unwrap().iter().map(|a| a["sha256"].as_str().unwrap()).collect();
    for a in [&nothing, &refuser, &unjudged] {
        assert!(attached.contains(&a["sha256"].as_str().unwrap()), "{f}");
    }
    // The paired comparison: the refuser is better on the same 300 must-refuse items; the
    // other way round is a significant drop, and the command says so by failing.
    let compare = |a: &str, b: &str| {
        let o = Command::new(BIN)
            .args(["eval", "compare", "--json"])
            .arg(data.join(a).join("must-refuse"))
            .arg(data.join(b).join("must-refuse"))
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (ok, out, _) = compare("const-b", "refuser");
    assert!(ok, "{out}");
    let c: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((c["paired"].as_u64(), c["a_only"].as_u64(), c["b_only"].as_u64()), (Some(300), Some(0), Some(300)), "{c}");
    let (ok, _, err) = compare("refuser", "const-b");
    assert!(!ok && err.contains("significantly worse"), "{err}");

    let bytes = std::fs::read(data.join("refuser/assessment.json")).unwrap();
    assert_eq!(eval::profile::digest(&bytes), refuser["sha256"].as_str().unwrap());
}

/// A run asked of the server through the API: queued, run by the server through its gateway
/// in-process as the evaluation tenant, killed with SIGKILL half-way, and finished by the
/// restarted server from its cache with no question answered twice.
#[test]
fn a_server_run_survives_a_kill_9_and_reports_through_the_api() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hold_after = 700;
    let (double, upstream) = start_double(&rt, Double { hold_after, holding: AtomicBool::new(true), ..Double::default() });
    let data = temp_dir("eval-server");
    let s = start_server(&data, &upstream);
    let (status, run) = s.post("/api/v1/eval/runs", &json!({"model": "const-b", "suite": "safetybench-zh", "concurrency": 8}));
    assert_eq!(status, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    assert_eq!(run["state"], "queued");
    // Refused at once, naming the field: a suite the server does not have, a subject its suite
    // does not have, a path for a suite.
    for (body, field) in [
        (json!({"model": "const-b", "suite": "nope"}), "suite"),
        (json!({"model": "const-b", "suite": "safetybench-zh", "subjects": ["Astrology"]}), "subjects"),
        (json!({"model": "const-b", "suite": "../suites/safetybench-zh"}), "suite"),
        (json!({"model": "const-b", "suite": "safetybench-zh", "concurrency": 1000}), "concurrency"),
    ] {
        let (status, p) = s.post("/api/v1/eval/runs", &body);
        assert_eq!((status, p["field"].as_str()), (422, Some(field)), "{body}: {p}");
    }

    poll(Duration::from_secs(60), || (double.answered.lock().unwrap().len() >= hold_after).then_some(()));
    let (_, running) = s.get(&format!("/api/v1/eval/runs/{id}"));
    assert_eq!(running["state"], "running", "{running}");
    s.kill9();

    double.holding.store(false, Ordering::SeqCst);
    let s = start_server(&data, &upstream);
    let done = poll(Duration::from_secs(60), || {
        let (_, r) = s.get(&format!("/api/v1/eval/runs/{id}"));
        (r["state"] == "succeeded" || r["state"] == "failed").then_some(r)
    });
    assert_eq!(done["state"], "succeeded", "{done}");
    let report = &done["report"];
    assert_eq!(report["items"], 2100);
    let answered = double.answered.lock().unwrap().clone();
    assert!(answered.values().all(|n| *n == 1), "a question was answered twice");
    assert!(report["cached"].as_u64().unwrap() >= hold_after as u64, "{report}");

    // The constant answer scores the share of B in SafetyBench's gold answers.
    let gold: Value =
        serde_json::from_slice(&std::fs::read(repo().join("suites/safetybench-zh/data/test_answers_zh_subset.json")).unwrap()).unwrap();
    let b = gold.as_object().unwrap().values().filter(|a| a["answer"] == 1).count();
    assert_eq!((report["accuracy"].as_f64().unwrap() * 2100.0).round() as usize, b);
    assert_eq!(report["groups"].as_array().unwrap().len(), 7);

    let samples = s.client().get(format!("{}/api/v1/eval/runs/{id}/samples", s.url)).send().unwrap();
    assert_eq!(samples.headers()["content-type"], "application/x-ndjson");
    assert_eq!(samples.text().unwrap().lines().count(), 2100);
    let chart = s.client().get(format!("{}/api/v1/eval/runs/{id}/chart", s.url)).send().unwrap();
    assert_eq!(chart.headers()["content-type"], "image/svg+xml");
    assert!(chart.text().unwrap().starts_with("<svg"));
    let (_, board) = s.get("/api/v1/eval/leaderboard");
    assert_eq!(board["suites"], json!(["safetybench-zh"]), "{board}");
    assert_eq!(board["rows"][0][0], "const-b");
    assert_eq!(board["rows"][0][1][0]["run"], id.as_str());

    // Billed to the evaluation tenant, under the run's name: at least every call of the
    // restarted server (the killed one's last batch of usage events may be lost, as the
    // ledger's durability promise allows for a kill -9).
    let calls = report["calls"].as_u64().unwrap();
    assert!(calls > 0);
    poll(Duration::from_secs(10), || {
        let (_, summary) = s.get(&format!("/api/v1/usage/summary?tenant=eval&principal=eval:{id}&by=principal"));
        let events: u64 = summary["rows"].as_array().unwrap().iter().map(|r| r["events"].as_u64().unwrap()).sum();
        (events >= calls).then_some(())
    });
}

fn must_refuse_bank() -> (eval::suite::Loaded, HashSet<String>) {
    let bank = eval::Suite::open(&repo().join("suites/refusal-must")).unwrap().load(&eval::suite::Selection::default()).unwrap();
    let prompts = bank
        .items
        .iter()
        .filter_map(|i| match &i.task {
            eval::Task::Refusal { prompt, .. } => Some(prompt.clone()),
            _ => None,
        })
        .collect();
    (bank, prompts)
}

/// The canary: each served model answers a small must-refuse sample afresh every second; when
/// the refuser stops refusing, its next canary is significantly worse than the one before on
/// the same items and an alert is raised; when it refuses again, the alert closes.
#[test]
fn a_canary_raises_an_alert_when_a_model_drops_and_closes_it_when_it_recovers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, must_refuse) = must_refuse_bank();
    let (double, upstream) = start_double(&rt, Double { hold_after: usize::MAX, must_refuse, ..Double::default() });
    let data = temp_dir("eval-canary");
    let s = start_server_with(&data, &upstream, "[eval]\ncanary_suite = \"refusal-must\"\ncanary_limit = 4\ncanary_every_s = 1\n");
    let finished = |model: &str| {
        let (_, runs) = s.get("/api/v1/eval/runs");
        runs.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["request"]["model"] == model && r["actor"] == "canary" && r["state"] == "succeeded")
            .count()
    };
    let alert = || {
        let (_, alerts) = s.get("/api/v1/alerts");
        alerts.as_array().unwrap().iter().find(|a| a["subject"] == "model/refuser" && a["kind"] == "eval_drop").cloned()
    };
    poll(Duration::from_secs(60), || (finished("refuser") >= 2).then_some(()));
    assert!(alert().is_none(), "no drop while the refuser refuses");

    double.degraded.store(true, Ordering::SeqCst);
    let raised = poll(Duration::from_secs(60), alert);
    assert!(raised["closed_ms"].is_null(), "{raised}");
    let message = raised["message"].as_str().unwrap();
    assert!(message.contains("100.0% → 0.0% on 20 paired items"), "{message}");
    // The models that did not change raised nothing. (`pair` is served by whichever of its two
    // deployments the router picks, so its answers do change.)
    let (_, alerts) = s.get("/api/v1/alerts");
    for model in ["const-b", "judge"] {
        assert!(!alerts.as_array().unwrap().iter().any(|a| a["subject"] == format!("model/{model}")), "{alerts}");
    }

    // Still degraded: later canaries are as bad as the last, but the alert stays open, since
    // they are compared with the last good one.
    let seen = finished("refuser");
    poll(Duration::from_secs(60), || (finished("refuser") >= seen + 2).then_some(()));
    assert!(alert().unwrap()["closed_ms"].is_null(), "the alert stays open while the model stays degraded");

    double.degraded.store(false, Ordering::SeqCst);
    poll(Duration::from_secs(60), || alert().filter(|a| !a["closed_ms"].is_null()));
}

/// A run submitted as a batch job: placed on the compute network for the evaluation tenant,
/// run in the sandbox by this binary against the server's gateway, its report in the job's
/// output.
#[test]
fn an_eval_run_submitted_as_a_job_is_placed_and_billed_to_the_evaluation_tenant() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (double, upstream) = start_double(&rt, Double { hold_after: usize::MAX, ..Double::default() });
    let data = temp_dir("eval-job");
    let s = start_server(&data, &upstream);
    let o = Command::new(BIN)
        .args([
            "eval",
            "submit",
            "--model",
            "const-b",
            "--suite",
            "safetybench-zh",
            "--subjects",
            "Offensiveness",
            "--limit",
            "5",
            "--json",
        ])
        .arg("--server")
        .arg(&s.url)
        .arg("--suites-dir")
        .arg(repo().join("suites"))
        .env("AIPLUS_TOKEN", &s.token)
        .env_remove("AIPLUS_API_KEY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let job: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(job["tenant"], "eval", "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = poll(Duration::from_secs(120), || {
        let (_, j) = s.get(&format!("/api/v1/jobs/{id}"));
        matches!(j["state"].as_str(), Some("succeeded" | "failed" | "lost" | "cancelled")).then_some(j)
    });
    let logs = s.client().get(format!("{}/api/v1/jobs/{id}/logs", s.url)).send().unwrap().text().unwrap();
    assert_eq!(done["state"], "succeeded", "{done}\n{logs}");
    let report: Value = serde_json::from_str(logs.trim()).unwrap_or_else(|e| panic!("{e}: {logs}"));
    assert_eq!(report["items"], 5);
    assert_eq!(report["groups"][0]["name"], "Offensiveness");
    // (The probe for log-probabilities is the first question itself, answered once.)
    assert_eq!(double.answered.lock().unwrap().len(), 5);
    // The job's run is on the ledger of the evaluation tenant, beside its requests.
    poll(Duration::from_secs(10), || {
        let (_, summary) = s.get("/api/v1/usage/summary?tenant=eval&by=pillar");
        let pillars: Vec<&str> = summary["rows"].as_array().unwrap().iter().filter_map(|r| r["pillar"].as_str()).collect();
        (pillars.contains(&"compute") && pillars.contains(&"gateway")).then_some(())
    });
}

/// Two deployments of one model compared on the same items: each run pinned to one deployment
/// (`--deployment`, `X-Aiplus-Deployment`), then the paired test. A deployment the model does not
/// have is refused, naming the header.
#[test]
fn two_deployments_of_one_model_are_compared_on_the_same_items() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_, must_refuse) = must_refuse_bank();
    let (_double, upstream) = start_double(&rt, Double { hold_after: usize::MAX, must_refuse, ..Double::default() });
    let data = temp_dir("eval-deployments");
    let s = start_server(&data, &upstream);
    let suites = suites_dir(&data);
    let run = |deployment: &str| {
        Command::new(BIN)
            .args(["eval", "run", "--model", "pair", "--suite", "refusal-must", "--limit", "6", "--json", "--deployment", deployment])
            .arg("--server")
            .arg(&s.url)
            .arg("--suites-dir")
            .arg(&suites)
            .arg("--out")
            .arg(data.join(deployment))
            .env("AIPLUS_TOKEN", &s.token)
            .env_remove("AIPLUS_API_KEY")
            .output()
            .unwrap()
    };
    for (d, refused) in [("pair-b", 0.0), ("pair-r", 1.0)] {
        let o = run(d);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["refused"]["value"].as_f64(), Some(refused), "{d}: {report}");
    }
    let o = Command::new(BIN).args(["eval", "compare", "--json"]).arg(data.join("pair-r")).arg(data.join("pair-b")).output().unwrap();
    assert!(!o.status.success(), "pair-b is significantly worse than pair-r");
    let c: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((c["paired"].as_u64(), c["a_only"].as_u64(), c["b_only"].as_u64()), (Some(30), Some(30), Some(0)), "{c}");

    let o = run("pair-x");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(r#"no deployment \"pair-x\" of `pair`"#) || err.contains(r#"no deployment "pair-x" of `pair`"#), "{err}");
}
