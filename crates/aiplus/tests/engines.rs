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

fn suite(kind: &str) {
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
