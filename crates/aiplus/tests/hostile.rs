//! A hostile tenant's job, against the real binary: everything it tries against the platform,
//! another tenant or its own bill fails or is cut, and the server and the other job go on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Server, temp_dir, wait_all_final};

/// What the hostile job does, in order; each step prints a marker first so the test can tell
/// which attempt produced what. `$D` is the data directory, `$VICTIM` the other tenant's job.
const ATTACK: &str = r#"
echo "== database"; head -c 16 "$D/aiplus.db"; head -c 16 ../../../aiplus.db
echo "== password"; cat "$D/console-admin-password" ../../../console-admin-password
echo "== token"; cat "$D/operator-token" ../../../operator-token
echo "== other tenant"; cat "$D/jobs/$VICTIM/1/output.log" "../../../jobs/$VICTIM/1/output.log"
echo "== environment"; env; cat "/proc/$SERVER_PID/environ"; tr '\0' '\n' < /proc/1/environ
echo "== control files"
echo 0 > ../exit_code && echo "wrote ../exit_code"
echo 0 > "$D/jobs/$AIPLUS_JOB_ID/1/exit_code" && echo "wrote exit_code"
echo 1 > ../pid && echo "wrote ../pid"
echo 1 > "$D/jobs/$AIPLUS_JOB_ID/1/pid" && echo "wrote pid"
echo "== cgroups"
for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/*/*/cgroup.procs; do
  [ -e "$f" ] && { echo $$ > "$f" && echo "moved into $f"; }
done
echo "== network"; bash -c "echo hi > /dev/tcp/127.0.0.1/$PORT" && echo "reached the server"
echo "== flood"; head -c 1073741824 /dev/zero
sleep 600
"#;

const FLOOD_CAP: u64 = 64 << 20;

#[test]
fn a_hostile_job_is_contained_billed_for_its_real_time_and_harms_no_one() {
    let data = temp_dir("hostile");
    let s = Server::start(&data);
    let port = s.url.rsplit(':').next().unwrap().trim_end_matches('/').to_string();

    // Another tenant's job, with a secret in its output, running beside the attack.
    let victim_secret = format!("victim-secret-{}", std::process::id());
    let (status, v) = s.submit(&json!({
        "kind": "batch_inference", "gpus": 1, "gpu_milli": 100, "cpu_milli": 100, "memory_mib": 64, "duration_s": 60,
        "command": ["sh", "-c", format!("echo {victim_secret}; sleep 3; echo victim done")],
    }));
    assert_eq!(status, 201, "{v}");
    let victim = v["id"].as_str().unwrap().to_string();
    wait_until("the victim to run", || s.get(&format!("/api/v1/jobs/{victim}")).1["state"] == "running");

    let key = s.key("mallory", &json!({"role": "tenant-member", "scopes": ["jobs"]}));
    let http = reqwest::blocking::Client::new();
    let body = json!({
        "kind": "batch_inference", "gpus": 1, "cpu_milli": 100, "memory_mib": 64, "duration_s": 3600, "time_limit_s": 8,
        "command": ["sh", "-c", ATTACK],
        "env": {"D": data.display().to_string(), "VICTIM": victim, "SERVER_PID": s.child.id().to_string(), "PORT": port},
    });
    // A member cannot put its job ahead of every queue.
    let mut pushy = body.clone();
    pushy["priority"] = json!(100);
    let r = http.post(format!("{}/api/v1/jobs", s.url)).bearer_auth(key["secret"].as_str().unwrap()).json(&pushy).send().unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(r.json::<Value>().unwrap()["field"], "priority");
    let r = http.post(format!("{}/api/v1/jobs", s.url)).bearer_auth(key["secret"].as_str().unwrap()).json(&body).send().unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let hostile = r.json::<Value>().unwrap()["id"].as_str().unwrap().to_string();
    let started = Instant::now();

    let states = wait_all_final(&s, &[victim.clone(), hostile.clone()]);
    assert_eq!(states, ["succeeded", "failed"]);
    let wall_s = started.elapsed().as_secs_f64();

    // The job ran to its time limit: writing `exit_code` did not end it early.
    let (_, job) = s.get(&format!("/api/v1/jobs/{hostile}"));
    assert_eq!(job["exit_code"], 124, "{job}");
    assert!(job["state_reason"].as_str().unwrap_or("").contains("time limit"), "{job}");

    let attempt = data.join("jobs").join(&hostile).join("1");
    let log = std::fs::read(attempt.join("output.log")).unwrap();
    let head = String::from_utf8_lossy(&log[..log.len().min(64 << 10)]).into_owned();
    let section = |name: &str| -> String {
        let start = head.find(&format!("== {name}\n")).unwrap_or_else(|| panic!("no {name} section in {head}"));
        let rest = &head[start + name.len() + 4..];
        rest[..rest.find("\n== ").unwrap_or(rest.len())].to_string()
    };

    // Nothing of the platform's secrets or the other tenant's output reached the job.
    let password = std::fs::read_to_string(data.join("console-admin-password")).unwrap();
    let token = std::fs::read_to_string(data.join("operator-token")).unwrap();
    for (what, secret) in
        [("the admin password", password.trim()), ("the operator token", token.trim()), ("the victim's output", &victim_secret)]
    {
        assert!(!head.contains(secret), "the job read {what}: {head}");
    }
    assert!(!section("database").contains("SQLite format"), "the job read the database: {}", section("database"));
    // The server's environment (it has AIPLUS_LOG and AIPLUS_EMBED_DIR, and the test's own) is not the job's.
    let env = section("environment");
    for leaked in ["AIPLUS_LOG", "AIPLUS_EMBED_DIR", "CARGO", "RUST"] {
        assert!(!env.contains(leaked), "{leaked} leaked into the job: {env}");
    }
    assert!(env.contains("AIPLUS_JOB_ID=") && env.contains(&format!("VICTIM={victim}")), "{env}");

    // Its control files are out of its reach: the pid file still names the wrapper.
    let control = section("control files");
    assert!(!control.contains("wrote"), "{control}");
    let pid = std::fs::read_to_string(attempt.join("pid")).unwrap();
    assert!(pid.trim().parse::<u32>().unwrap() > 1, "pid file rewritten: {pid:?}");
    let cgroups = section("cgroups");
    assert!(!cgroups.contains("moved into"), "{cgroups}");
    assert!(!section("network").contains("reached the server"), "no network was asked for");

    // 1 GiB of output was cut to the limit, and the log says how much was dropped.
    let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(200)..]).into_owned();
    assert!(log.len() as u64 <= FLOOD_CAP + 200, "output.log is {} bytes", log.len());
    assert!(tail.contains(&format!("[aiplus: output cut at {FLOOD_CAP} bytes;")), "{tail}");

    // Billed for the time it really ran (about its 8 s limit), not its 3600 s estimate.
    let (_, usage) = s.get("/api/v1/usage?tenant=mallory");
    let runs: Vec<&Value> = usage.as_array().unwrap().iter().filter(|u| u["usage"]["subject"]["kind"] == "job_run").collect();
    assert_eq!(runs.len(), 1, "{usage}");
    let gpu_s = runs[0]["usage"]["quantity"].as_f64().unwrap();
    assert!((7.0..=wall_s + 1.0).contains(&gpu_s), "billed {gpu_s} GPU-seconds for a run of at most {wall_s:.1} s");

    // The other tenant's job and the server went on unharmed.
    let victim_log = s.client().get(format!("{}/api/v1/jobs/{victim}/logs", s.url)).send().unwrap().text().unwrap();
    assert_eq!(victim_log, format!("{victim_secret}\nvictim done\n"));
    assert_eq!(s.get("/healthz").0, 200);
    let _ = std::fs::remove_dir_all(&data);
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live log followers are capped per tenant, and a follower whose client left frees its place
/// within a second, even when the job it follows prints nothing.
#[test]
fn followers_are_capped_and_end_within_a_second_of_their_client_leaving() {
    let data = temp_dir("followers");
    let s = Server::start(&data);
    let (status, j) = s.submit(&common::job(0, &data));
    assert_eq!(status, 201, "{j}");
    let id = j["id"].as_str().unwrap().to_string();
    wait_until("the quiet job to run", || s.get(&format!("/api/v1/jobs/{id}")).1["state"] == "running");
    let client = s.client();
    let follow = || client.get(format!("{}/api/v1/jobs/{id}/logs?follow=true", s.url)).header("x-aiplus-tenant", "acme").send().unwrap();
    let open: Vec<reqwest::blocking::Response> = (0..jobs::follow::MAX_FOLLOWERS_PER_TENANT).map(|_| follow()).collect();
    assert!(open.iter().all(|r| r.status() == 200));
    let refused = follow();
    assert_eq!(refused.status(), 429, "one tenant's followers are capped");
    assert!(refused.text().unwrap().contains("live streams"));
    drop(open);
    let left = Instant::now();
    let mut again = Vec::new();
    while again.len() < jobs::follow::MAX_FOLLOWERS_PER_TENANT {
        let r = follow();
        if r.status() == 200 {
            again.push(r);
        } else {
            assert!(left.elapsed() < Duration::from_secs(1), "followers of a quiet job outlived their clients");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    common::stop_jobs(&data);
    let _ = std::fs::remove_dir_all(&data);
}
