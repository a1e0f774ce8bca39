//! The job lifecycle against the real local executor, driven tick by tick.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::sync::Arc;
use std::time::Duration;

use compute::JobSpec;
use jobs::compute_service::{Job, JobState};
use jobs::{ComputeService, SystemClock};

async fn service(name: &str) -> (Arc<ComputeService>, std::path::PathBuf) {
    service_with(name, jobs::lifecycle::MAX_CALLS_PER_TICK).await
}

async fn service_with(name: &str, calls_per_tick: usize) -> (Arc<ComputeService>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("aiplus-lifecycle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = store::Store::open(&dir.join("db")).await.unwrap();
    let local: Arc<dyn executor::Executor> = Arc::new(executor::local::LocalExecutor::new(dir.join("jobs")).unwrap());
    let net = compute::file::builtin_network().unwrap();
    let svc = ComputeService::open(
        store,
        &net,
        compute::Policy::Aiplus,
        compute::Weights::default(),
        Arc::new(SystemClock),
        jobs::lifecycle::Engines::new(local).with_max_calls_per_tick(calls_per_tick),
    )
    .await
    .unwrap();
    (Arc::new(svc), dir)
}

fn spec(command: &[&str]) -> JobSpec {
    serde_json::from_value(serde_json::json!({
        "kind": "batch_inference", "gpus": 1, "gpu_milli": 250, "cpu_milli": 1000, "memory_mib": 512,
        "duration_s": 60, "command": command,
    }))
    .unwrap()
}

/// Ticks until the job reaches a final state (or `until` holds).
async fn drive(svc: &ComputeService, id: &str, until: impl Fn(&Job) -> bool) -> Job {
    for _ in 0..400 {
        svc.tick().await.unwrap();
        let job = svc.job(id).await.unwrap();
        if until(&job) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never got there: {:?}", svc.job(id).await.unwrap().state);
}

#[tokio::test]
async fn a_job_runs_to_success_with_events_logs_and_one_usage_event() {
    let (svc, _dir) = service("ok").await;
    let tagged = compute::JobSpec {
        action_area: Some(vocab::ActionArea::Science),
        ..spec(&["sh", "-c", "echo hello from $AIPLUS_JOB_ID; sleep 0.3"])
    };
    let (job, _) = svc.submit("acme".into(), None, tagged, None).await.unwrap();
    let done = drive(&svc, &job.id, |j| j.state.is_terminal()).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.exit_code, Some(0));
    let states: Vec<JobState> = svc.events(&job.id).await.unwrap().into_iter().map(|e| e.event.state).collect();
    assert_eq!(states.first(), Some(&JobState::Queued));
    for s in [JobState::Placed, JobState::Submitted, JobState::Running, JobState::Succeeded] {
        assert!(states.contains(&s), "missing {s:?} in {states:?}");
    }
    let (logs, _) = svc.logs(&job.id, 0).await.unwrap();
    assert_eq!(String::from_utf8(logs.data).unwrap().trim(), format!("hello from {}", job.id));
    let usage: Vec<store::UsageRow<serde_json::Value>> = svc.store().usage(Some("acme"), Some("compute"), 0, i64::MAX, 100).await.unwrap();
    assert_eq!(usage.len(), 1);
    let e = &usage[0].doc;
    assert_eq!((e["unit"].as_str(), e["subject"]["kind"].as_str()), (Some("gpu_seconds"), Some("job_run")), "{e}");
    let gpu_s = e["quantity"].as_f64().unwrap();
    assert!(gpu_s > 0.0 && gpu_s < 60.0 * 0.25, "{gpu_s}");
    assert!(e["energy_kwh"].as_f64().unwrap() > 0.0);
    assert!(e["money_cny"].as_f64().unwrap() > 0.0 && e["carbon_kg"].as_f64().unwrap() > 0.0, "{e}");
    assert_eq!(e["refs"]["job"], job.id.as_str());
    assert_eq!(e["refs"]["action_area"], "science", "the run's GPU-seconds count towards the job's action area");
    // The capacity is free again.
    let used: f64 = svc.clusters().await.iter().map(|c| c.gpus_used).sum();
    assert_eq!(used, 0.0);
}

#[tokio::test]
async fn failure_and_cancellation_are_recorded() {
    let (svc, _dir) = service("fail").await;
    let (bad, _) = svc.submit("acme".into(), None, spec(&["sh", "-c", "echo oops >&2; exit 7"]), None).await.unwrap();
    let bad = drive(&svc, &bad.id, |j| j.state.is_terminal()).await;
    assert_eq!((bad.state, bad.exit_code), (JobState::Failed, Some(7)));

    let (long, _) = svc.submit("acme".into(), None, spec(&["sleep", "60"]), None).await.unwrap();
    drive(&svc, &long.id, |j| j.state == JobState::Running).await;
    let c = svc.cancel(&long.id).await.unwrap();
    assert!(c.cancel_requested);
    let done = drive(&svc, &long.id, |j| j.state.is_terminal()).await;
    assert_eq!(done.state, JobState::Cancelled);
    let usage: Vec<store::UsageRow<serde_json::Value>> = svc.store().usage(Some("acme"), None, 0, i64::MAX, 100).await.unwrap();
    assert_eq!(usage.len(), 2, "a failed and a cancelled run are both metered");
}

#[tokio::test]
async fn a_lost_job_is_requeued_by_policy_and_runs_as_a_new_attempt() {
    let (svc, dir) = service("lost").await;
    // The first attempt waits to be killed; the second succeeds.
    let script = "if [ \"$AIPLUS_ATTEMPT\" = 2 ]; then echo second; else sleep 60; fi";
    let (job, _) = svc.submit("acme".into(), None, spec(&["sh", "-c", script]), None).await.unwrap();
    drive(&svc, &job.id, |j| j.state == JobState::Running).await;
    let pid_file = dir.join("jobs").join(&job.id).join("1").join("pid");
    let pid = std::fs::read_to_string(pid_file).unwrap();
    std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", pid.trim())]).status().unwrap();
    let done = drive(&svc, &job.id, |j| j.state.is_terminal()).await;
    assert_eq!((done.state, done.attempt), (JobState::Succeeded, 2), "{done:?}");
    let states: Vec<(JobState, u32)> = svc.events(&job.id).await.unwrap().into_iter().map(|e| (e.event.state, e.event.attempt)).collect();
    assert!(states.contains(&(JobState::Lost, 1)) && states.contains(&(JobState::Queued, 2)), "{states:?}");

    // With on_lost = fail, a lost job stays lost.
    let mut s = spec(&["sleep", "60"]);
    s.on_lost = compute::LostPolicy::Fail;
    let (job, _) = svc.submit("acme".into(), None, s, None).await.unwrap();
    drive(&svc, &job.id, |j| j.state == JobState::Running).await;
    let pid = std::fs::read_to_string(dir.join("jobs").join(&job.id).join("1").join("pid")).unwrap();
    std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", pid.trim())]).status().unwrap();
    let done = drive(&svc, &job.id, |j| j.state.is_terminal()).await;
    assert_eq!((done.state, done.attempt), (JobState::Lost, 1));
}

#[tokio::test]
async fn empty_and_bad_commands_are_refused() {
    let (svc, _dir) = service("bad").await;
    let err = svc.submit("acme".into(), None, spec(&[]), None).await.unwrap_err();
    assert!(err.to_string().starts_with("command:"), "{err}");
    let err = svc.submit("acme".into(), None, spec(&[""]), None).await.unwrap_err();
    assert!(err.to_string().starts_with("command[0]:"), "{err}");
    let mut s = spec(&["true"]);
    s.env.insert("AIPLUS_JOB_ID".into(), "spoof".into());
    let err = svc.submit("acme".into(), None, s, None).await.unwrap_err();
    assert!(err.to_string().starts_with("env.AIPLUS_JOB_ID:"), "{err}");
    assert!(svc.jobs(None, None, None, None).await.unwrap().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn with_more_jobs_than_calls_per_tick_every_job_still_gets_its_turn() {
    let (svc, _dir) = service_with("turns", 4).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(svc.submit("acme".into(), None, spec(&["sleep", "30"]), None).await.unwrap().0.id);
    }
    for _ in 0..200 {
        svc.tick().await.unwrap();
        let mut running = 0;
        for id in &ids {
            running += usize::from(svc.job(id).await.unwrap().state == JobState::Running);
        }
        if running == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in &ids {
        assert_eq!(svc.job(id).await.unwrap().state, JobState::Running, "job {id} never got its turn");
        svc.cancel(id).await.unwrap();
    }
    for id in &ids {
        drive(&svc, id, |j| j.state.is_terminal()).await;
    }
}

#[tokio::test]
async fn a_keyed_retry_returns_the_first_job_even_if_the_body_changed() {
    let (svc, _dir) = service("retry").await;
    let (first, created) = svc.submit("acme".into(), None, spec(&["true"]), Some("k-1".into())).await.unwrap();
    assert!(created);
    let (again, created) = svc.submit("acme".into(), None, spec(&[]), Some("k-1".into())).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    // Another tenant's key space is its own.
    let err = svc.submit("other".into(), None, spec(&[]), Some("k-1".into())).await.unwrap_err();
    assert!(err.to_string().starts_with("command:"), "{err}");
}

#[tokio::test]
async fn one_tenant_cannot_fill_the_queue_and_others_still_queue() {
    let (svc, dir) = service("queue-cap").await;
    svc.set_max_queued_per_tenant(2);
    // With its engine gone, every cluster is unhealthy: jobs wait in the queue.
    std::fs::remove_dir_all(dir.join("jobs")).unwrap();
    svc.check_engines().await;
    for _ in 0..2 {
        let (job, _) = svc.submit("acme".into(), None, spec(&["true"]), None).await.unwrap();
        assert_eq!(job.state, JobState::Queued);
    }
    let err = svc.submit("acme".into(), None, spec(&["true"]), None).await.unwrap_err();
    assert!(matches!(err, jobs::JobsError::Limit(_)), "{err:?}");
    let (other, _) = svc.submit("globex".into(), None, spec(&["true"]), None).await.unwrap();
    assert_eq!(other.state, JobState::Queued, "another tenant still gets in");
}

#[tokio::test]
async fn a_caller_asks_for_no_more_priority_than_its_role_allows() {
    let (svc, _dir) = service("priority").await;
    let mut s = spec(&["true"]);
    s.priority = 60;
    let member = jobs::Submitter::principal("key_1".into(), 10);
    let err = svc.submit_as(member, "acme".into(), None, s.clone(), None).await.unwrap_err();
    assert!(err.to_string().starts_with("priority:"), "{err}");
    let (job, _) = svc.submit_as(jobs::Submitter::platform(), "acme".into(), None, s, None).await.unwrap();
    assert_eq!(job.spec.priority, 60);
}

#[tokio::test]
async fn only_the_data_exchange_submits_a_sealed_job_and_its_output_is_never_shown() {
    let (svc, _dir) = service("sealed").await;
    let sealed = compute::JobSpec { sealed: Some("drun_1".into()), ..spec(&["true"]) };
    for by in [jobs::Submitter::platform(), jobs::Submitter::principal("key_1".into(), 10)] {
        let err = svc.submit_as(by, "acme".into(), None, sealed.clone(), None).await.unwrap_err();
        assert!(err.to_string().starts_with("sealed:"), "{err}");
    }
    let (job, _) = svc.submit_as(jobs::Submitter::data_exchange(None), "acme".into(), None, sealed, None).await.unwrap();
    let err = svc.logs(&job.id, 0).await.unwrap_err();
    assert!(matches!(err, jobs::JobsError::Conflict(_)), "{err}");
    let (plain, _) = svc.submit("acme".into(), None, spec(&["true"]), None).await.unwrap();
    assert!(svc.logs(&plain.id, 0).await.is_ok(), "an ordinary job's output is shown");
}

/// A clock the test sets.
struct SetClock(std::sync::atomic::AtomicI64);

impl jobs::compute_service::Clock for SetClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn open_at(dir: &std::path::Path, clock: Arc<SetClock>) -> ComputeService {
    let store = store::Store::open(&dir.join("db")).await.unwrap();
    let local: Arc<dyn executor::Executor> = Arc::new(executor::local::LocalExecutor::new(dir.join("jobs")).unwrap());
    let net = compute::file::builtin_network().unwrap();
    ComputeService::open(store, &net, compute::Policy::Aiplus, compute::Weights::default(), clock, jobs::lifecycle::Engines::new(local))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_deadline_job_submitted_at_the_evening_peak_waits_for_a_cheaper_hour_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("aiplus-lifecycle-shift-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // 18:00 China Standard Time on 2025-01-01: the evening peak in most provinces.
    let six_pm_ms = 1_735_660_800_000 + 18 * 3_600_000;
    let clock = Arc::new(SetClock(six_pm_ms.into()));
    let svc = open_at(&dir, clock.clone()).await;
    let mut job_spec = spec(&["true"]);
    job_spec.deadline_s = Some(60 + 24 * 3600);
    let (job, _) = svc.submit("acme".into(), None, job_spec, None).await.unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert!(job.placement.is_none());
    let reason = job.state_reason.clone().unwrap_or_default();
    assert!(reason.starts_with("deferred to 2025-01-01T"), "{reason}");
    // An hour later it is still waiting for its hour, across a restart of the service too.
    clock.0.store(six_pm_ms + 3_600_000, std::sync::atomic::Ordering::SeqCst);
    svc.tick().await.unwrap();
    drop(svc);
    let svc = open_at(&dir, clock.clone()).await;
    svc.tick().await.unwrap();
    let waiting = svc.job(&job.id).await.unwrap();
    assert_eq!((waiting.state, waiting.placement.is_none()), (JobState::Queued, true));
    assert!(waiting.state_reason.unwrap_or_default().starts_with("deferred to"));
    // Twelve hours on, half its slack is spent and it is placed, once, at no delay cost.
    clock.0.store(six_pm_ms + 12 * 3_600_000, std::sync::atomic::Ordering::SeqCst);
    svc.tick().await.unwrap();
    let placed = svc.job(&job.id).await.unwrap();
    let placement = placed.placement.expect("placed once its hour came");
    assert_eq!(placement.explanation.chosen.delay_cost_cny, 0.0);
    let states: Vec<JobState> = svc.events(&job.id).await.unwrap().into_iter().map(|e| e.event.state).collect();
    assert_eq!(states.iter().filter(|s| **s == JobState::Placed).count(), 1, "{states:?}");
}

/// One cluster with one T4 (70 W) and two nodes of eight V100s (300 W) in two pools: a job that
/// accepts any GPU prefers the T4, and with three pools to choose from it is not captive to any.
const ONE_T4: &str = r#"
schema = 1
[[gpu_model]]
name = "T4"
power_w = 70
memory_gib = 16
source = "test"
[[gpu_model]]
name = "V100"
power_w = 300
memory_gib = 16
source = "test"
[[hub]]
id = "west"
name_zh = "west"
name_en = "west"
side = "west"
lat = 36.0
lon = 104.0
intra_latency_ms = 5.0
intra_bandwidth_gbps = 400.0
intra_source = "test"
[[cluster]]
id = "w1"
hub = "west"
name_zh = "w1"
name_en = "w1"
province = "Gansu"
lat = 36.0
lon = 104.0
pue = 1.2
pue_source = "test"
carbon_kg_per_kwh = 0.5
carbon_source = "test"
green_share = 0.2
green_source = "test"
[cluster.tariff]
flat_cny_per_kwh = 0.4
flat_source = "test"
peak_multiplier = 1.0
valley_multiplier = 1.0
multiplier_source = "test"
hours = "FFFFFFFFFFFFFFFFFFFFFFFF"
hours_source = "test"
[[cluster.node_pool]]
name = "t4"
gpu_model = "T4"
gpus_per_node = 1
cpu_milli = 16000
memory_mib = 65536
nodes = 1
source = "test"
[[cluster.node_pool]]
name = "v100"
gpu_model = "V100"
gpus_per_node = 8
cpu_milli = 64000
memory_mib = 262144
nodes = 1
source = "test"
[[cluster.node_pool]]
name = "v100-b"
gpu_model = "V100"
gpus_per_node = 8
cpu_milli = 64000
memory_mib = 262144
nodes = 1
source = "test"
"#;

#[tokio::test]
async fn a_job_held_back_for_a_gpu_whose_run_overstays_goes_elsewhere_in_time() {
    let dir = std::env::temp_dir().join(format!("aiplus-lifecycle-holdback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t0_ms = 1_735_660_800_000;
    let clock = Arc::new(SetClock(t0_ms.into()));
    let store = store::Store::open(&dir.join("db")).await.unwrap();
    let local: Arc<dyn executor::Executor> = Arc::new(executor::local::LocalExecutor::new(dir.join("jobs")).unwrap());
    let net = compute::file::parse_network("one-t4.toml", ONE_T4).unwrap();
    let svc = ComputeService::open(
        store,
        &net,
        compute::Policy::Aiplus,
        compute::Weights::default(),
        clock.clone(),
        jobs::lifecycle::Engines::new(local),
    )
    .await
    .unwrap();
    let any_gpu = |command: &[&str], duration_s: u64| JobSpec { gpu_models: vec![], gpu_milli: 1000, duration_s, ..spec(command) };
    // It says it will take a minute, and takes longer.
    let (first, _) = svc.submit("acme".into(), None, any_gpu(&["sleep", "30"], 60), None).await.unwrap();
    assert_eq!(first.placement.as_ref().map(|p| p.explanation.chosen.pool.as_str()), Some("t4"));
    // A month-long job is held back for the T4 that should free in a minute, though a V100 is free.
    let (month, _) = svc.submit("acme".into(), None, any_gpu(&["true"], 30 * 86_400), None).await.unwrap();
    assert_eq!((month.state, month.placement.is_none()), (JobState::Queued, true));
    let reason = month.state_reason.clone().unwrap_or_default();
    assert!(reason.starts_with("held back for a cheaper, less power-hungry GPU expected to free by 2024-12-31T16:01:00Z"), "{reason}");
    // Just before the minute is up nothing has changed: it still waits.
    clock.0.store(t0_ms + 59_000, std::sync::atomic::Ordering::SeqCst);
    svc.tick().await.unwrap();
    assert!(svc.job(&month.id).await.unwrap().placement.is_none(), "placed before its time");
    // The minute passes and the T4's run overstays; nothing ends, so nothing offers the queue.
    // The job is looked at again at its time, no longer counts on the overdue run, and takes a
    // V100.
    clock.0.store(t0_ms + 61_000, std::sync::atomic::Ordering::SeqCst);
    svc.tick().await.unwrap();
    let placed = svc.job(&month.id).await.unwrap();
    assert_eq!(placed.placement.map(|p| p.explanation.chosen.pool), Some("v100".to_string()));
    assert!(!svc.job(&first.id).await.unwrap().state.is_terminal(), "the T4's run is still going");
    // Asked to stop; whether the process has ended yet does not matter here (it ends on its own
    // within half a minute).
    svc.cancel(&first.id).await.unwrap();
}
