//! When `aiplus` holds a job back for a pool that is full now: only for a short wait that saves
//! more than it costs, behind the jobs already waiting for the same room.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::sync::Arc;

use common::{cluster, hub, plain_job, pool};
use compute::network::{GpuModelSpec, NetworkSpec, Side};
use compute::scheduler::{Allocation, Decision, MAX_WAIT_FOR_S};
use compute::{JobReq, JobSpec, Network, Policy, Scheduler, Weights};

const T0: f64 = 1_735_660_800.0;

/// One cluster with one node of two T4s (70 W) and two nodes of eight V100s (300 W).
fn network() -> Network {
    let gpu = |name: &str, w: f64| GpuModelSpec { name: name.into(), power_w: w, memory_gib: 16.0, source: "test".into() };
    Network::build(NetworkSpec {
        schema: 1,
        gpu_models: vec![gpu("T4", 70.0), gpu("V100", 300.0)],
        hubs: vec![hub("west", Side::West)],
        clusters: vec![cluster("w1", "west", "Gansu", 0.35, 0.5, vec![pool("t4", Some("T4"), 2, 1), pool("v100", Some("V100"), 8, 2)])],
        links: vec![],
    })
    .unwrap()
}

/// A one-GPU job that accepts any GPU model.
fn any_gpu(net: &Network, duration_s: u64) -> JobReq {
    let spec = JobSpec { gpu_models: vec![], ..plain_job(1, 1000, "T4", 4_000, 16_384, duration_s) };
    JobReq::compile(&spec.normalise(net).unwrap(), net)
}

fn placed(d: Decision) -> (Allocation, String) {
    match d {
        Decision::Placed { allocation, explanation } => (allocation, explanation.chosen.pool.clone()),
        other => panic!("not placed: {other:?}"),
    }
}

/// Fills both T4s: one frees at `T0 + 120`, the other holds on for a day.
fn with_t4s_full(net: &Network) -> (Scheduler, Allocation) {
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    let (ends_soon, pool) = placed(s.place(&any_gpu(net, 120), T0, 0.0));
    assert_eq!(pool, "t4");
    let (_, pool) = placed(s.place(&any_gpu(net, 86_400), T0, 0.0));
    assert_eq!(pool, "t4");
    (s, ends_soon)
}

#[test]
fn a_month_long_job_waits_a_minute_for_a_t4_and_a_short_one_does_not() {
    let net = network();
    let (mut s, ends_soon) = with_t4s_full(&net);
    let month = any_gpu(&net, 30 * 86_400);
    // A T4 frees in a minute; a month on it instead of a V100 saves far more than the minute's
    // waiting costs, so the job is held back although the V100s have room.
    assert!(matches!(s.place(&month, T0 + 60.0, 0.0), Decision::HoldBack { .. }));
    // Ten minutes on a T4 would save a few fen: the short job goes to a V100 now.
    let (_, pool) = placed(s.place(&any_gpu(&net, 600), T0 + 60.0, 0.0));
    assert_eq!(pool, "v100");
    // When the T4 frees, the job held back takes it.
    s.release(ends_soon);
    let (_, pool) = placed(s.place(&month, T0 + 120.0, 60.0));
    assert_eq!(pool, "t4");
}

#[test]
fn a_second_job_expects_to_wait_behind_the_first() {
    let net = network();
    let (mut s, _) = with_t4s_full(&net);
    let month = any_gpu(&net, 30 * 86_400);
    assert!(matches!(s.place(&month, T0 + 60.0, 0.0), Decision::HoldBack { .. }));
    // The T4 that frees in a minute is claimed; the next one frees in a day, too long to wait.
    let (_, pool) = placed(s.place(&month, T0 + 61.0, 0.0));
    assert_eq!(pool, "v100");
    // The first job, offered again before its T4 frees, still waits for it: its own claim does
    // not count against it.
    assert!(matches!(s.place(&month, T0 + 90.0, 30.0), Decision::HoldBack { .. }));
}

#[test]
fn no_job_is_held_back_longer_than_the_limit_in_all() {
    let net = network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    let frees_at = T0 + MAX_WAIT_FOR_S - 10.0;
    placed(s.place(&any_gpu(&net, (MAX_WAIT_FOR_S - 10.0) as u64), T0, 0.0));
    placed(s.place(&any_gpu(&net, 86_400), T0, 0.0));
    let month = any_gpu(&net, 30 * 86_400);
    // Arrived now, it would wait 1,785 s in all, within the limit: it waits.
    assert!(matches!(s.place(&month, T0 + 5.0, 0.0), Decision::HoldBack { .. }));
    // One that has queued for 100 s already (it arrived before the T4s filled) would wait
    // 1,870 s in all: it goes to a V100 now.
    let (_, pool) = placed(s.place(&month, T0 + 20.0, 100.0));
    assert_eq!(pool, "v100");
    assert!(100.0 + (frees_at - (T0 + 20.0)) > MAX_WAIT_FOR_S);
}

#[test]
fn nearest_never_holds_a_job_back() {
    let net = network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Nearest, Weights::default());
    let (_, pool) = placed(s.place(&any_gpu(&net, 120), T0, 0.0));
    assert_eq!(pool, "t4");
    placed(s.place(&any_gpu(&net, 86_400), T0, 0.0));
    let (_, pool) = placed(s.place(&any_gpu(&net, 30 * 86_400), T0 + 60.0, 0.0));
    assert_eq!(pool, "v100");
}
