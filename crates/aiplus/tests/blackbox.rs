//! Black-box tests: the real `aiplus` binary on port 0 with its own data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;

use common::{BIN, Server, TENANT, job, local_runs, stop_jobs, temp_dir, wait_all_final};

#[test]
fn acknowledged_jobs_survive_kill_9() {
    let data = temp_dir("kill9");
    let s = Server::start(&data);
    let mut acked = Vec::new();
    for i in 0..40 {
        let (status, j) = s.submit(&job(i, &data));
        assert_eq!(status, 201, "{j}");
        acked.push((j["id"].as_str().unwrap().to_string(), j["placement"]["allocation"].clone()));
    }
    let (_, before) = s.get("/api/v1/clusters");
    s.kill9();

    let s = Server::start(&data);
    for (id, allocation) in &acked {
        let (status, j) = s.get(&format!("/api/v1/jobs/{id}"));
        assert_eq!(status, 200, "acknowledged job {id} lost after kill -9");
        assert_eq!(&j["placement"]["allocation"], allocation, "job {id} moved after the restart");
    }
    let (_, after) = s.get("/api/v1/clusters");
    let used = |v: &Value| v.as_array().unwrap().iter().map(|c| c["gpus_used"].as_f64().unwrap()).collect::<Vec<_>>();
    assert_eq!(used(&before), used(&after), "capacity held by placed jobs must be the same after a restart");
    let (_, list) = s.get("/api/v1/jobs?limit=1000");
    assert_eq!(list.as_array().unwrap().len(), acked.len(), "no job appeared twice");

    stop_jobs(&data);
    let ids: Vec<String> = acked.iter().map(|(id, _)| id.clone()).collect();
    assert!(wait_all_final(&s, &ids).iter().all(|st| st == "succeeded"));
    // A graceful stop exits cleanly.
    assert!(s.terminate().success());
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn cli_talks_to_the_server() {
    let data = temp_dir("cli");
    let s = Server::start(&data);
    let cli = |args: &[&str]| {
        let out = Command::new(BIN).args(args).env("AIPLUS_SERVER", &s.url).env("AIPLUS_TOKEN", &s.token).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (ok, out, err) = cli(&[
        "jobs",
        "submit",
        "--json",
        "--tenant",
        "acme",
        "--kind",
        "training",
        "--gpus",
        "2",
        "--cpu-milli",
        "8000",
        "--memory-mib",
        "32000",
        "--duration-s",
        "600",
        "--region",
        "province:Sichuan",
        "--idempotency-key",
        "k1",
        "--action-area",
        "science",
        "--",
        "sleep",
        "1",
    ]);
    assert!(ok, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["placement"]["cluster"], "tianfu", "residency province:Sichuan allows only Tianfu");
    assert_eq!(j["spec"]["action_area"], "science");
    let (ok, _, err) = cli(&["jobs", "submit", "--tenant", "acme", "--action-area", "defence", "--", "true"]);
    assert!(!ok && err.contains("one of science, industry"), "an unknown area is refused with the six listed: {err}");
    let id = j["id"].as_str().unwrap();

    let (ok, out, _) = cli(&["jobs", "placement", id]);
    assert!(ok);
    assert!(out.contains("placed on tianfu"), "{out}");
    let (ok, out, _) = cli(&["jobs", "list"]);
    assert!(ok && out.contains(id), "{out}");
    let (ok, out, _) = cli(&["clusters", "list", "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().len(), 10);

    // Bad input: the CLI exits non-zero and repeats the server's field and reason.
    let (ok, _, err) = cli(&[
        "jobs",
        "submit",
        "--tenant",
        "acme",
        "--kind",
        "training",
        "--gpus",
        "2",
        "--cpu-milli",
        "0",
        "--memory-mib",
        "1",
        "--duration-s",
        "1",
        "--",
        "true",
    ]);
    assert!(!ok);
    assert!(err.contains("cpu_milli"), "{err}");
    let (ok, _, err) =
        cli(&["jobs", "submit", "--tenant", "acme", "--kind", "training", "--cpu-milli", "1", "--memory-mib", "1", "--duration-s", "1"]);
    assert!(!ok && err.contains("command"), "an empty command is refused: {err}");

    // The submitted job (sleep 1) runs: its events and (empty) logs are readable, and -f ends.
    let (ok, _, err) = cli(&["jobs", "logs", "-f", id]);
    assert!(ok, "{err}");
    assert!(err.contains("ended: succeeded"), "{err}");
    let (ok, out, _) = cli(&["jobs", "events", id]);
    assert!(ok && out.contains("running") && out.contains("succeeded"), "{out}");
    let (ok, _, err) = cli(&["jobs", "cancel", "job_missing"]);
    assert!(!ok && err.contains("404"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_cpu_only_job_runs_from_the_cli() {
    let data = temp_dir("cli-cpu");
    let s = Server::start(&data);
    let cli = |args: &[&str]| {
        let out = Command::new(BIN).args(args).env("AIPLUS_SERVER", &s.url).env("AIPLUS_TOKEN", &s.token).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let submit = |cpu_milli: &str| {
        cli(&[
            "jobs",
            "submit",
            "--json",
            "--tenant",
            TENANT,
            "--kind",
            "batch_inference",
            "--gpus",
            "0",
            "--cpu-milli",
            cpu_milli,
            "--memory-mib",
            "512",
            "--duration-s",
            "60",
            "--",
            "echo",
            "cpu-only ran",
        ])
    };
    let (ok, out, err) = submit("2000");
    assert!(ok, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["spec"]["gpus"], 0);
    assert_eq!(j["placement"]["gpus"], serde_json::json!([]), "a CPU-only job holds no GPU: {j}");
    // The pool it was placed on is one of its cluster's, with the cores it asked for.
    let (_, cluster) = s.get(&format!("/api/v1/clusters/{}", j["placement"]["cluster"].as_str().unwrap()));
    let pool = cluster["node_pool"].as_array().unwrap().iter().find(|p| p["name"] == j["placement"]["pool"]).unwrap();
    assert!(pool["cpu_milli"].as_u64().unwrap() >= 2000, "{pool}");
    let id = j["id"].as_str().unwrap();

    // It runs to success on the local executor, and says so.
    let (ok, out, err) = cli(&["jobs", "logs", "-f", id]);
    assert!(ok, "{err}");
    assert!(err.contains("ended: succeeded"), "{err}");
    assert!(out.contains("cpu-only ran"), "{out}");
    // `jobs get` shows it with 0 GPUs: the table's fifth column, and the JSON's spec.
    let (ok, out, _) = cli(&["jobs", "get", id]);
    assert!(ok);
    let row: Vec<&str> = out.lines().find(|l| l.starts_with(id)).unwrap().split_whitespace().collect();
    assert_eq!((row[2], row[4]), ("succeeded", "0"), "{out}");
    let (ok, out, _) = cli(&["jobs", "get", "--json", id]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["spec"]["gpus"], 0);

    // A CPU-only job bigger than any node is refused with the sentence that says what is short.
    let (ok, _, err) = submit("300000");
    assert!(!ok);
    assert!(err.contains("the job asks for 300 cores and 512 MiB on one node") && err.contains("too few cores"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_bad_network_file_names_file_line_and_field() {
    let dir = temp_dir("badnet");
    let net = dir.join("net.toml");
    std::fs::write(&net, "schema = 1\n[[hub]]\nid = \"x\"\nname_zh = \"x\"\nname_en = \"x\"\nside = \"north\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env("AIPLUS_NETWORK", &net)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("net.toml:6"), "{err}");
    assert!(err.contains("north"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn simulate_writes_json_and_chart() {
    let out_dir = temp_dir("sim");
    let traces = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/alibaba-gpu-v2023");
    let out = Command::new(BIN)
        .args(["compute", "simulate", "--quiet", "--jobs", "400", "--node-scale", "0.1", "--time-compression", "20", "--out"])
        .arg(&out_dir)
        .arg("--pods")
        .arg(traces.join("openb_pod_list_gpuspec33.csv"))
        .arg("--nodes")
        .arg(traces.join("openb_node_list_all_node.csv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["jobs"], 400);
    for p in report["policies"].as_array().unwrap() {
        for k in
            ["name", "energy_cost_cny", "carbon_kg", "wait_s_p50", "wait_s_p95", "utilisation", "transfer_gb", "unplaced", "violations"]
        {
            assert!(!p[k].is_null(), "policy is missing {k}");
        }
        assert_eq!(p["violations"], 0);
    }
    assert!(report["lower_bound"]["energy_cost_cny"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(out_dir.join("report.svg")).unwrap().starts_with("<svg"));
    // A bad trace row is reported with its file and line.
    let bad = out_dir.join("bad.csv");
    std::fs::write(&bad, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\np,1,1,1,2000,,LS,Running,0,5,0\n").unwrap();
    let out = Command::new(BIN)
        .args(["compute", "simulate", "--quiet", "--pods"])
        .arg(&bad)
        .arg("--nodes")
        .arg(traces.join("openb_node_list_all_node.csv"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:2: gpu_milli"), "{err}");
    // The bound's price updates are capped, and the refusal names the flag.
    let out = Command::new(BIN).args(["compute", "simulate", "--quiet", "--bound-iterations", "10001"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bound-iterations") && err.contains("10001"), "{err}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn kill_9_during_concurrent_submissions_loses_no_acknowledged_job() {
    let data = temp_dir("kill9-concurrent");
    let s = Server::start(&data);
    let url = s.url.clone();
    let operator = s.client();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            let data = data.clone();
            let client = operator.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..400 {
                    let req = client
                        .post(format!("{url}/api/v1/jobs"))
                        .header("x-aiplus-tenant", TENANT)
                        .timeout(std::time::Duration::from_secs(5));
                    let Ok(r) = req.json(&job(w * 1000 + i, &data)).send() else { break };
                    if r.status().as_u16() != 201 {
                        break;
                    }
                    let j: Value = r.json().unwrap();
                    acked.push(j["id"].as_str().unwrap().to_string());
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    s.kill9();
    let acked: Vec<String> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(!acked.is_empty(), "the server acknowledged nothing before the kill");

    let s = Server::start(&data);
    for id in &acked {
        assert_eq!(s.get(&format!("/api/v1/jobs/{id}")).0, 200, "acknowledged job {id} lost");
    }
    let (_, list) = s.get("/api/v1/jobs?limit=1000");
    let stored = list.as_array().unwrap().len();
    // Requests in flight at the kill may have been stored without their answer arriving: at
    // most one per writer.
    assert!(stored >= acked.len() && stored <= acked.len() + 4, "{stored} stored for {} acknowledged", acked.len());
    stop_jobs(&data);
    let all: Vec<String> = list.as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect();
    wait_all_final(&s, &all);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn kill_9_with_jobs_running_ends_every_job_exactly_once() {
    let data = temp_dir("kill9-running");
    let s = Server::start(&data);
    let ids: Vec<String> = (0..20).map(|i| s.submit(&job(i, &data)).1["id"].as_str().unwrap().to_string()).collect();
    // Let the lifecycle hand them to the engine, then kill aiplus while they run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ids.iter().any(|id| s.get(&format!("/api/v1/jobs/{id}")).1["state"] != "running") {
        assert!(std::time::Instant::now() < deadline, "jobs did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    s.kill9();
    // The jobs finish while aiplus is down.
    stop_jobs(&data);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = Server::start(&data);
    let states = wait_all_final(&s, &ids);
    assert!(states.iter().all(|st| st == "succeeded"), "{states:?}");
    for id in &ids {
        assert_eq!(local_runs(&data, id), 1, "job {id} did not run exactly once");
        let (_, ev) = s.get(&format!("/api/v1/jobs/{id}/events"));
        let ends = ev.as_array().unwrap().iter().filter(|e| e["state"] == "succeeded").count();
        assert_eq!(ends, 1, "job {id} ended {ends} times");
    }
    let (_, usage) = s.get("/api/v1/usage?tenant=acme");
    assert_eq!(usage.as_array().unwrap().len(), ids.len(), "one usage event per job");
    let _ = std::fs::remove_dir_all(&data);
}
