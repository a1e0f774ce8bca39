//! aiplus against real engines: Slurm (slurmctld + slurmd from Debian) and Ray (from PyPI),
//! installed and started by `scripts/test` through `scripts/engines/*.sh`.
//!
//! Each engine goes through the same story: a job completes, one fails, one is cancelled while
//! running; aiplus is killed -9 with jobs running and every job still ends exactly once; the
//! engine is stopped mid-job, the job is lost and its cluster unhealthy, then the engine comes
//! back and the job runs again as a new attempt.
//!
//! Without the engines (`SLURM_CONF` / `AIPLUS_RAY_URL` unset) these tests fail, unless
//! `AIPLUS_SKIP_ENGINES=1` says on purpose that they should not run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, job, sandbox_config, signals, stop_jobs, temp_dir, wait_all_final};
use serde_json::{Value, json};

const CLUSTERS: [&str; 10] =
    ["zhangjiakou", "yrd-demo", "wuhu", "shaoguan", "tianfu", "chongqing", "horinger", "guian", "qingyang", "zhongwei"];

fn engines_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/engines")
}

/// The config that sends every cluster's jobs to `kind`, or None when the engine is not running.
fn engine_config(kind: &str, dir: &Path) -> Option<String> {
    let clusters = CLUSTERS.map(|c| format!("{c:?}")).join(", ");
    let body = match kind {
        "slurm" => {
            std::env::var("SLURM_CONF").ok()?;
            format!("kind = \"slurm\"\nclusters = [{clusters}]\nshared_dir = \"{}\"\n", dir.join("slurm-shared").display())
        }
        "ray" => format!("kind = \"ray\"\nclusters = [{clusters}]\nurl = \"{}\"\n", std::env::var("AIPLUS_RAY_URL").ok()?),
        _ => return None,
    };
    Some(format!("{}\n[executor]\ntick_ms = 200\n\n[[executor.engine]]\n{body}", sandbox_config(dir)))
}

/// [`engine_config`], or `None` when the engine is not running and `AIPLUS_SKIP_ENGINES=1` says
/// on purpose that its tests should not run; without that, a missing engine fails the test.
fn running_engine_config(kind: &str, dir: &Path) -> Option<String> {
    let config = engine_config(kind, dir);
    if config.is_none() {
        assert!(
            std::env::var("AIPLUS_SKIP_ENGINES").as_deref() == Ok("1"),
            "{kind} is not running: start it with scripts/test (or set AIPLUS_SKIP_ENGINES=1 to skip on purpose)"
        );
        eprintln!("SKIPPED: {kind} not running and AIPLUS_SKIP_ENGINES=1");
    }
    config
}

fn engine_script(kind: &str, action: &str) {
    let ok =
        Command::new(engines_dir().join(format!("{kind}.sh"))).arg(action).stdout(std::process::Stdio::null()).status().unwrap().success();
    assert!(ok, "{kind}.sh {action} failed");
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn state(s: &Server, id: &str) -> Value {
    s.get(&format!("/api/v1/jobs/{id}")).1
}

fn submit(s: &Server, body: Value) -> String {
    let (status, j) = s.submit(&body);
    assert_eq!(status, 201, "{j}");
    j["id"].as_str().unwrap().to_string()
}

fn small(command: &[&str]) -> Value {
    json!({"kind": "batch_inference", "gpus": 1, "gpu_milli": 1000, "cpu_milli": 1000, "memory_mib": 100,
           "duration_s": 600, "command": command})
}

/// Held by the tests that stop and start an engine and by those that would not survive it.
static ENGINE_STOPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn suite(kind: &str) {
    let _stops = ENGINE_STOPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let data = temp_dir(&format!("engine-{kind}"));
    let Some(config) = running_engine_config(kind, &data) else { return };
    let config_file = data.join("aiplus.toml");
    std::fs::write(&config_file, config).unwrap();
    let cfg = config_file.display().to_string();
    let s = Server::start_with(&data, &["--config", &cfg]);

    // Complete, with output.
    let ok = submit(&s, small(&["sh", "-c", "echo hello from $AIPLUS_JOB_ID"]));
    assert_eq!(wait_all_final(&s, std::slice::from_ref(&ok)), ["succeeded"]);
    let j = state(&s, &ok);
    assert_eq!(j["run"]["engine"], kind);
    let logs = s.client().get(format!("{}/api/v1/jobs/{ok}/logs", s.url)).send().unwrap().text().unwrap();
    assert!(logs.contains(&format!("hello from {ok}")), "{kind} logs: {logs:?}");

    // Fail with a status.
    let bad = submit(&s, small(&["sh", "-c", "exit 3"]));
    assert_eq!(wait_all_final(&s, std::slice::from_ref(&bad)), ["failed"]);
    assert_eq!(state(&s, &bad)["exit_code"], 3);

    // Cancel while running.
    let long = submit(&s, small(&["sleep", "300"]));
    wait_for("the long job to run", Duration::from_secs(60), || state(&s, &long)["state"] == "running");
    assert_eq!(s.post(&format!("/api/v1/jobs/{long}/cancel"), &json!({})).0, 200);
    assert_eq!(wait_all_final(&s, std::slice::from_ref(&long)), ["cancelled"]);

    // kill -9 aiplus with jobs running: each ends exactly once, once aiplus is back.
    let ids: Vec<String> = (0..2).map(|i| submit(&s, job(i, &data))).collect();
    wait_for("jobs to run", Duration::from_secs(60), || ids.iter().all(|id| state(&s, id)["state"] == "running"));
    s.kill9();
    stop_jobs(&data);
    let s = Server::start_with(&data, &["--config", &cfg]);
    assert!(wait_all_final(&s, &ids).iter().all(|st| st == "succeeded"));
    let ran = std::fs::read_to_string(data.join("ran.txt")).unwrap();
    for id in &ids {
        assert_eq!(ran.lines().filter(|l| l == id).count(), 1, "{kind}: job {id} did not run exactly once: {ran}");
    }

    // The engine goes away mid-job: the job is lost, the clusters unhealthy; it comes back and
    // the job runs again as attempt 2.
    std::fs::remove_file(signals(&data).join("stop")).unwrap();
    let victim = submit(&s, job(99, &data));
    wait_for("the victim to run", Duration::from_secs(60), || state(&s, &victim)["state"] == "running");
    engine_script(kind, if kind == "slurm" { "stop-slurmd" } else { "stop" });
    wait_for("the cluster to turn unhealthy", Duration::from_secs(60), || s.get("/api/v1/clusters/tianfu").1["engine_healthy"] == false);
    let (status, p) = s.submit(&small(&["true"]));
    assert!(status == 201 && p["state"] == "queued", "nothing is placed on an unhealthy cluster: {p}");
    let lost = |s: &Server| {
        let ev = s.get(&format!("/api/v1/jobs/{victim}/events")).1;
        ev.as_array().unwrap().iter().any(|e| e["state"] == "lost")
    };
    if kind == "slurm" {
        // slurmctld declares the node dead after SlurmdTimeout and the job NODE_FAIL.
        wait_for("the victim to be lost", Duration::from_secs(120), || lost(&s));
    } else {
        // A stopped Ray head cannot say what became of the job: aiplus waits rather than
        // guess (a guess could run it twice), and learns it was lost when the head answers.
        std::thread::sleep(Duration::from_secs(2));
        assert!(!lost(&s), "nothing is known about the job while Ray is down");
    }
    stop_jobs(&data);
    engine_script(kind, if kind == "slurm" { "start-slurmd" } else { "start" });
    wait_for("the cluster to recover", Duration::from_secs(120), || s.get("/api/v1/clusters/tianfu").1["engine_healthy"] == true);
    assert_eq!(wait_all_final(&s, std::slice::from_ref(&victim)), ["succeeded"]);
    assert_eq!(state(&s, &victim)["attempt"], 2);
    assert!(lost(&s), "attempt 1 was recorded as lost");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn slurm_runs_jobs_for_real() {
    suite("slurm");
}

#[test]
fn ray_runs_jobs_for_real() {
    suite("ray");
}

/// A model deployed where Slurm (or Ray) runs every cluster's jobs: its replica is llama.cpp's
/// server started by that engine, found by its health URL and served by the gateway; undeployed,
/// the engine stops it.
fn model_on(kind: &str) {
    let data = temp_dir(&format!("engine-model-{kind}"));
    let Some(config) = running_engine_config(kind, &data) else { return };
    common::fetch_small_model();
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, config).unwrap();
    let models = common::chat_models_dir();
    let s = Server::start_with_env(&data, &["--config", cfg.to_str().unwrap()], &[("AIPLUS_MODELS_DIR", models.to_str().unwrap())]);
    let body = json!({"model": common::SMALL_MODEL, "ctx_tokens": 2048, "memory_mib": 512});
    assert_eq!(s.put("/api/v1/model-deployments/smol", &body).0, 201);
    let secret = s.key("acme", &json!({}))["secret"].as_str().unwrap().to_string();
    let answer = common::chat_until_served(&s, &secret, "smol", &[503]);
    assert_eq!(answer["model"], "smol");

    let (_, d) = s.get("/api/v1/model-deployments/smol");
    let replica = d["replicas"][0].clone();
    let job = state(&s, replica["job_id"].as_str().unwrap());
    assert_eq!((job["run"]["engine"].as_str(), job["state"].as_str()), (Some(kind), Some("running")), "{job}");
    let port = replica["port"].as_u64().unwrap();

    assert_eq!(s.client().delete(format!("{}/api/v1/model-deployments/smol", s.url)).send().unwrap().status().as_u16(), 204);
    let id = replica["job_id"].as_str().unwrap().to_string();
    wait_for("the replica's job to be cancelled", Duration::from_secs(60), || state(&s, &id)["state"] == "cancelled");
    let health = format!("http://127.0.0.1:{port}/health");
    wait_for("the engine to stop llama.cpp's server", Duration::from_secs(60), || reqwest::blocking::get(&health).is_err());
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_model_replica_runs_on_slurm() {
    model_on("slurm");
}

#[test]
fn a_model_replica_runs_on_ray() {
    model_on("ray");
}

fn aiplus_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_aiplus")).args(args).output().unwrap();
    assert!(out.status.success(), "aiplus {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// What a data dir's oss store holds, for comparing two: every manifest, and the activity of
/// every repo and developer in the month.
fn oss_contents(data: &Path) -> Value {
    let d = data.to_str().unwrap();
    let mut manifests = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(data.join("oss/ingested")).unwrap() {
        let p = e.unwrap().path();
        manifests.insert(
            p.file_name().unwrap().to_string_lossy().into_owned(),
            serde_json::from_slice::<Value>(&std::fs::read(&p).unwrap()).unwrap(),
        );
    }
    let activity =
        |who: &str| aiplus_json(&["oss", "activity", who, "--period", "2026-09", "--limit", "100000", "--data-dir", d, "--json"]);
    json!({"manifests": manifests, "repos": activity("--repos"), "developers": activity("--developers")})
}

/// The days' job records; with `submitted`, only those of jobs known to have been submitted.
fn job_records(shared: &Path, submitted: bool) -> Vec<Value> {
    let Ok(days) = std::fs::read_dir(shared) else { return vec![] };
    // A record without a handle is an attempt about to be submitted, or one whose handle the
    // kill kept from being written (a job that then finished before the rerun found it is
    // merged from its staged output, and its record keeps no handle).
    days.filter_map(|d| std::fs::read(d.ok()?.path().join("job.json")).ok())
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .filter(|j| !submitted || j["handle"].is_string())
        .collect()
}

/// `aiplus oss ingest --on-cluster`: per-day jobs on the engine, merged into the data dir, give
/// exactly what a local ingest of the same files gives. Run again, nothing is submitted. Killed
/// -9 while its jobs run and run again, it picks up the jobs it had submitted instead of
/// submitting them again, and the result is still the local one.
fn oss_ingest_on(kind: &str) {
    let _stops = ENGINE_STOPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let data = temp_dir(&format!("engine-oss-{kind}"));
    let Some(config) = running_engine_config(kind, &data) else { return };
    let cfg = data.join("aiplus.toml");
    std::fs::write(&cfg, config).unwrap();
    let cfg = cfg.to_str().unwrap();
    let src = data.join("gharchive");
    let src_s = src.to_str().unwrap();
    let generate = ["oss", "generate", src_s, "--events", "6000", "--hours", "72", "--seed", "11", "--developers", "400", "--repos", "150"];
    assert!(Command::new(env!("CARGO_BIN_EXE_aiplus")).args(generate).status().unwrap().success());
    let local = data.join("local");
    let sum = aiplus_json(&["oss", "ingest", src_s, "--data-dir", local.to_str().unwrap(), "--json"]);
    assert_eq!((sum["files"].as_u64(), sum["events"].as_u64()), (Some(72), Some(6000)));
    let expected = oss_contents(&local);

    let remote = data.join("remote");
    let r = remote.to_str().unwrap();
    let on = ["oss", "ingest", src_s, "--on-cluster", "tianfu", "--config", cfg, "--data-dir", r, "--json"];
    let first = aiplus_json(&on);
    assert_eq!((first["engine"].as_str(), first["days"].as_u64(), first["submitted"].as_u64()), (Some(kind), Some(3), Some(3)), "{first}");
    assert_eq!((first["merged"]["files"].as_u64(), first["merged"]["events"].as_u64()), (Some(72), Some(6000)), "{first}");
    assert_eq!(oss_contents(&remote), expected, "{kind}: the merged store differs from a local ingest");
    let again = aiplus_json(&on);
    assert_eq!((again["submitted"].as_u64(), again["merged_before"].as_u64()), (Some(0), Some(3)), "{again}");
    assert_eq!((again["merged"]["files"].as_u64(), again["merged"]["unchanged"].as_u64()), (Some(72), Some(72)), "{again}");

    // kill -9 once a job is submitted; the rerun picks the submitted jobs up.
    let (remote2, shared2) = (data.join("remote2"), data.join("shared2"));
    let args = [
        "oss",
        "ingest",
        src_s,
        "--on-cluster",
        "tianfu",
        "--config",
        cfg,
        "--data-dir",
        remote2.to_str().unwrap(),
        "--shared-dir",
        shared2.to_str().unwrap(),
        "--json",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_aiplus")).args(args).stdout(std::process::Stdio::null()).spawn().unwrap();
    wait_for("a job to be submitted", Duration::from_secs(60), || !job_records(&shared2, true).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    let before_kill = job_records(&shared2, true).len() as u64;
    let rerun = aiplus_json(&args);
    let picked = ["reattached", "staged_before", "merged_before"].iter().map(|k| rerun[k].as_u64().unwrap()).sum::<u64>();
    assert!(picked >= before_kill && before_kill >= 1, "{kind}: {before_kill} jobs were submitted before the kill: {rerun}");
    assert_eq!(picked + rerun["submitted"].as_u64().unwrap(), 3, "{rerun}");
    let records = job_records(&shared2, false);
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|j| j["attempt"] == 1), "no day ran a second attempt: {records:?}");
    assert_eq!(oss_contents(&remote2), expected, "{kind}: after kill -9, the merged store differs from a local ingest");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn oss_ingest_fans_out_on_slurm() {
    oss_ingest_on("slurm");
}

#[test]
fn oss_ingest_fans_out_on_ray() {
    oss_ingest_on("ray");
}
