//! `aiplus eval run` against the real server, whose gateway forwards to an upstream test
//! double that answers every question "B" and counts what it answered.
//!
//! The kill test: the double answers the first K requests and holds the rest unanswered; the
//! CLI is killed with SIGKILL once it has cached K answers, the double then answers again,
//! and the same command finishes the run. Every request must have been answered exactly once
//! over both runs: nothing the first run paid for is asked again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use common::{BIN, Server, poll, temp_dir};
use serde_json::{Value, json};

#[derive(Default)]
struct Double {
    /// Answers given, by the question asked (the last message).
    answered: Mutex<HashMap<String, u32>>,
    /// While set, requests beyond `hold_after` answers are held, never answered.
    holding: AtomicBool,
    hold_after: usize,
}

async fn chat(State(d): State<Arc<Double>>, axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let question = body["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].to_string()).unwrap_or_default();
    let over = d.answered.lock().unwrap().values().map(|n| *n as usize).sum::<usize>() >= d.hold_after;
    if d.holding.load(Ordering::SeqCst) && over {
        std::future::pending::<()>().await;
    }
    *d.answered.lock().unwrap().entry(question).or_insert(0) += 1;
    axum::Json(json!({"id": "x", "object": "chat.completion", "model": "const-b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "B"}, "finish_reason": "stop",
                     "logprobs": {"content": [{"token": "B", "logprob": -0.1, "top_logprobs": [{"token": "B", "logprob": -0.1}, {"token": "A", "logprob": -2.3}]}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101}}))
}

fn start_double(rt: &tokio::runtime::Runtime, hold_after: usize) -> (Arc<Double>, String) {
    let d = Arc::new(Double { hold_after, holding: AtomicBool::new(true), ..Double::default() });
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat)).with_state(d.clone());
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
    dir
}

fn start_server(data: &Path, upstream: &str) -> Server {
    let cfg = data.with_extension("toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n\
             [[gateway.model]]\nname = \"const-b\"\n[[gateway.model.deployment]]\nid = \"double\"\nbase_url = \"{upstream}/v1\"\n"
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
    let (double, upstream) = start_double(&rt, hold_after);
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
