//! `aiplus jobs bench`: the job lifecycle's speed, measured against a server this command
//! starts itself (its own data directory, port 0, an optional engine config).
//!
//! 1. Submit-to-running latency: jobs submitted one at a time; for each, the time from its
//!    `queued` event to its `running` event (both stamped by the server); the median.
//! 2. Throughput: N trivial jobs (`true`) submitted back to back; jobs/s from the first submit
//!    until the last one is recorded as ended.
//! 3. Recovery: M jobs running (each waits for a file), kill -9 of the server, the jobs end
//!    while it is down, the server restarts; the time from the restart until every job is
//!    recorded as succeeded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct JobsBenchArgs {
    /// Engine config for the server (the `[executor]` part of aiplus.toml); local when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Jobs for the latency measurement.
    #[arg(long, default_value_t = 20)]
    latency_jobs: usize,
    /// Trivial jobs for the throughput measurement; 0 skips it.
    #[arg(long, default_value_t = 1000)]
    throughput_jobs: usize,
    /// Running jobs when the server is killed; 0 skips the recovery measurement.
    #[arg(long, default_value_t = 100)]
    recovery_jobs: usize,
    /// Working directory (data directory, job files); a temporary one when absent.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path, config: Option<&Path>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        // The default chat model would download and run beside the measurement: off.
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .env("AIPLUS_LOG", "warn")
            .env("AIPLUS_MODELS_CHAT", "");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("server did not start: {line:?}"))?
            .to_string();
        Ok(Self { child, url })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn job(command: Value, env: Value) -> Value {
    json!({"kind": "batch_inference", "gpus": 1, "gpu_milli": 10, "cpu_milli": 10, "memory_mib": 16,
           "duration_s": 60, "command": command, "env": env})
}

fn submit(http: &reqwest::blocking::Client, url: &str, body: &Value) -> anyhow::Result<String> {
    let r: Value = http.post(format!("{url}/api/v1/jobs")).json(body).send()?.error_for_status()?.json()?;
    Ok(r["id"].as_str().context("no id")?.to_string())
}

fn states(http: &reqwest::blocking::Client, url: &str, ids: &[String]) -> anyhow::Result<Vec<String>> {
    ids.iter()
        .map(|id| {
            let j: Value = http.get(format!("{url}/api/v1/jobs/{id}")).send()?.json()?;
            Ok(j["state"].as_str().unwrap_or("?").to_string())
        })
        .collect()
}

fn wait_final(http: &reqwest::blocking::Client, url: &str, ids: &[String], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<String> = ids.to_vec();
    while !pending.is_empty() {
        if Instant::now() > deadline {
            bail!("{} jobs did not end in {timeout:?}", pending.len());
        }
        let st = states(http, url, &pending)?;
        pending = pending
            .into_iter()
            .zip(st)
            .filter(|(_, s)| !["succeeded", "failed", "cancelled", "lost"].contains(&s.as_str()))
            .map(|(id, _)| id)
            .collect();
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn event_ms(at: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub fn run(args: JobsBenchArgs) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("aiplus-jobs-bench-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut server = Server::start(&dir, args.config.as_deref())?;
    // The operator token the fresh server wrote; the bench's jobs are tenant bench's.
    let token = std::fs::read_to_string(dir.join("data").join(identity::OPERATOR_TOKEN_FILE))?.trim().to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    headers.insert(crate::client::TENANT_HEADER, reqwest::header::HeaderValue::from_static("bench"));
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).default_headers(headers).build()?;
    http.post(format!("{}/api/v1/tenants", server.url)).json(&json!({"id": "bench"})).send()?.error_for_status()?;
    let mut report = serde_json::Map::new();
    let engine: Value = http.get(format!("{}/api/v1/clusters/tianfu", server.url)).send()?.json()?;
    report.insert("engine".into(), engine["engine"].clone());

    // 1. Latency, one job at a time.
    let mut latencies = Vec::new();
    for _ in 0..args.latency_jobs {
        let id = submit(&http, &server.url, &job(json!(["true"]), json!({})))?;
        wait_final(&http, &server.url, std::slice::from_ref(&id), Duration::from_secs(120))?;
        let ev: Value = http.get(format!("{}/api/v1/jobs/{id}/events", server.url)).send()?.json()?;
        let at = |state: &str| {
            ev.as_array().and_then(|a| a.iter().find(|e| e["state"] == state)).and_then(|e| e["at"].as_str()).and_then(event_ms)
        };
        if let (Some(q), Some(r)) = (at("queued"), at("running").or(at("succeeded"))) {
            latencies.push(r - q);
        }
    }
    latencies.sort_unstable();
    if let Some(m) = latencies.get(latencies.len() / 2) {
        report.insert("submit_to_running_ms_p50".into(), json!(m));
        report.insert("submit_to_running_ms_max".into(), json!(latencies.last()));
    }

    // 2. Throughput.
    if args.throughput_jobs > 0 {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(args.throughput_jobs);
        for _ in 0..args.throughput_jobs {
            ids.push(submit(&http, &server.url, &job(json!(["true"]), json!({})))?);
        }
        let submitted_s = started.elapsed().as_secs_f64();
        wait_final(&http, &server.url, &ids, Duration::from_secs(1800))?;
        let total_s = started.elapsed().as_secs_f64();
        report.insert("throughput_jobs".into(), json!(args.throughput_jobs));
        report.insert("submit_s".into(), json!(submitted_s));
        report.insert("jobs_per_s".into(), json!(args.throughput_jobs as f64 / total_s));
    }

    // 3. Recovery after kill -9.
    if args.recovery_jobs > 0 {
        let stop = dir.join("stop");
        let script = "while [ ! -e \"$STOP\" ]; do sleep 0.05; done";
        let mut ids = Vec::with_capacity(args.recovery_jobs);
        for _ in 0..args.recovery_jobs {
            ids.push(submit(&http, &server.url, &job(json!(["sh", "-c", script]), json!({"STOP": stop.display().to_string()})))?);
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        while states(&http, &server.url, &ids)?.iter().any(|s| s != "running") {
            if Instant::now() > deadline {
                bail!("the recovery jobs did not all start");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server.child.kill()?;
        server.child.wait()?;
        std::fs::write(&stop, b"")?;
        std::thread::sleep(Duration::from_millis(500));
        let restarted = Instant::now();
        server = Server::start(&dir, args.config.as_deref())?;
        let up_s = restarted.elapsed().as_secs_f64();
        wait_final(&http, &server.url, &ids, Duration::from_secs(600))?;
        let all = states(&http, &server.url, &ids)?;
        report.insert("recovery_jobs".into(), json!(args.recovery_jobs));
        report.insert("recovery_server_up_s".into(), json!(up_s));
        report.insert("recovery_all_recorded_s".into(), json!(restarted.elapsed().as_secs_f64()));
        report.insert("recovery_all_succeeded".into(), json!(all.iter().all(|s| s == "succeeded")));
    }
    drop(server);
    let report = Value::Object(report);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (k, v) in report.as_object().into_iter().flatten() {
            println!("{k:<28} {v}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
