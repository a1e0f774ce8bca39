//! The simulator on a slice of the real openb trace (read from ../shared, as tests may).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::path::PathBuf;

use compute::{Policy, Weights};
use sim::scenario::DEFAULT_DEFERRABLE_SHARE;
use sim::{Report, ScenarioOptions, SimOptions};

fn trace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/alibaba-gpu-v2023")
}

fn run(seed: u64, max_jobs: usize, node_scale: f64, time_compression: f64) -> Report {
    run_with(seed, max_jobs, node_scale, time_compression, DEFAULT_DEFERRABLE_SHARE)
}

fn run_with(seed: u64, max_jobs: usize, node_scale: f64, time_compression: f64, deferrable_share: f64) -> Report {
    let net = compute::file::builtin_network().unwrap();
    let nodes = sim::trace::read_nodes_file(&trace_dir().join("openb_node_list_all_node.csv")).unwrap();
    let pods = sim::trace::read_pods_file(&trace_dir().join("openb_pod_list_gpuspec33.csv")).unwrap();
    let opts = SimOptions {
        scenario: ScenarioOptions { seed, node_scale, job_copies: 1, max_jobs: Some(max_jobs), time_compression, deferrable_share },
        policies: Policy::ALL.to_vec(),
        weights: Weights::default(),
        sample_interval_s: Some(86_400.0),
        bound_iterations: sim::DEFAULT_BOUND_ITERATIONS,
    };
    sim::simulate(&net.spec, &nodes, &pods, &opts, &mut |_, _| {}).unwrap()
}

/// The report's headline numbers, rounded so the snapshot is about behaviour, not float noise.
fn headline(r: &Report) -> serde_json::Value {
    let round = |v: f64| (v * 100.0).round() / 100.0;
    serde_json::json!({
        "jobs": r.jobs,
        "nodes": r.nodes,
        "gpus": r.gpus,
        "policies": r.policies.iter().map(|p| serde_json::json!({
            "name": p.name,
            "placed": p.placed,
            "energy_cost_cny": round(p.energy_cost_cny),
            "carbon_kg": round(p.carbon_kg),
            "objective_cny": round(p.objective_cny),
            "wait_s_p50": round(p.wait_s_p50),
            "wait_s_p95": round(p.wait_s_p95),
            "utilisation": round(p.utilisation),
            "transfer_gb": round(p.transfer_gb),
            "unplaced": p.unplaced,
            "violations": p.violations,
            "deadline_misses": p.deadline_misses,
            "shifted_jobs": p.shifted.jobs,
            "shift_energy_cost_saved_cny": round(p.shifted.energy_cost_saved_cny),
            "series_points": p.series.first().map_or(0, |s| s.utilisation.len()),
        })).collect::<Vec<_>>(),
        "lower_bound": {
            "energy_cost_cny": round(r.lower_bound.energy_cost_cny),
            "carbon_kg": round(r.lower_bound.carbon_kg),
            "objective_cny": round(r.lower_bound.objective_cny),
        },
        "time_indexed_bound": r.time_indexed_bound.as_ref().map(|t| round(t.objective_cny)),
    })
}

#[test]
fn slice_of_openb_report_snapshot() {
    // A busy slice: 1,500 pods on a tenth of the nodes, arrivals 20× faster, so queues form.
    let r = run(7, 1500, 0.1, 20.0);
    insta::assert_json_snapshot!("openb_slice_1500", headline(&r));
}

#[test]
fn same_seed_same_report_other_seed_other_report() {
    let a = run(3, 800, 0.1, 20.0);
    let b = run(3, 800, 0.1, 20.0);
    assert_eq!(a, b, "a seed must reproduce the run exactly");
    let c = run(4, 800, 0.1, 20.0);
    assert_ne!(headline(&a), headline(&c), "the seed must matter");
}

#[test]
fn bound_is_below_every_policy_and_no_constraint_is_broken() {
    for (scale, compression) in [(1.0, 1.0), (0.1, 20.0)] {
        let r = run(11, 2000, scale, compression);
        let lb = &r.lower_bound;
        for p in &r.policies {
            assert_eq!(p.violations, 0, "{} broke a hard constraint", p.name);
            // Policies that left jobs unplaced ran fewer jobs than the bound counts; compare
            // only complete runs.
            if p.unplaced == lb.never {
                assert!(p.energy_cost_cny >= lb.energy_cost_cny * (1.0 - 1e-9), "{}: cost below the bound", p.name);
                assert!(p.carbon_kg >= lb.carbon_kg * (1.0 - 1e-9), "{}: carbon below the bound", p.name);
                assert!(p.objective_cny >= lb.objective_cny * (1.0 - 1e-9), "{}: objective below the bound", p.name);
            }
        }
    }
}

#[test]
fn aiplus_beats_nearest_on_the_recorded_replay() {
    // The recorded trace (no load scaling): the placements alone decide cost and carbon.
    let r = run(1, 8152, 1.0, 1.0);
    let c = &r.comparison;
    assert!(c.aiplus_energy_cost_vs_nearest.unwrap() <= 0.8, "{c:?}");
    assert!(c.aiplus_carbon_vs_nearest.unwrap() <= 0.9, "{c:?}");
    assert!(c.aiplus_wait_p95_vs_nearest.unwrap() <= 1.1, "{c:?}");
    assert!(c.aiplus_objective_gap_to_bound.unwrap() <= 0.05, "{c:?}");
}

#[test]
fn chart_is_a_complete_svg_with_every_policy() {
    let r = run(5, 300, 0.1, 20.0);
    let svg = sim::chart::render_svg(&r);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for p in Policy::ALL {
        assert!(svg.contains(p.name()), "{} missing from the chart", p.name());
    }
    assert!(svg.matches("<path").count() >= 4 * 4, "expected one line per hub per panel");
}

/// `n` jobs that each take one A10 (a model only one pool of 16 single-GPU nodes has) for an
/// hour, all arriving at once.
fn a10_rush(n: usize) -> (std::sync::Arc<compute::Network>, Vec<sim::scenario::SimJob>, Vec<compute::scheduler::JobReq>) {
    let net = std::sync::Arc::new(compute::Network::build(compute::file::builtin_network().unwrap().spec).unwrap());
    let t0 = sim::scenario::TRACE_EPOCH_S + 3.0 * 3600.0;
    let mut jobs = Vec::new();
    let mut compiled = Vec::new();
    for i in 0..n {
        let spec: compute::JobSpec = serde_json::from_value(serde_json::json!({
            "kind": "batch_inference", "gpus": 1, "gpu_models": ["A10"], "cpu_milli": 1000,
            "memory_mib": 1024, "duration_s": 3600,
        }))
        .unwrap();
        let spec = spec.normalise(&net).unwrap();
        compiled.push(compute::scheduler::JobReq::compile(&spec, &net));
        jobs.push(sim::scenario::SimJob { arrival_s: t0 + i as f64 * 1e-3, spec });
    }
    (net, jobs, compiled)
}

#[test]
fn time_indexed_bound_sees_the_queue_a_full_pool_forces() {
    // 48 GPU-hours of work for 16 GPUs: a third waits an hour, a third two. The capacity-free
    // bound sees no wait at all; the time-indexed one must see most of it, and stay below what
    // a real schedule pays.
    let (net, jobs, compiled) = a10_rush(48);
    let w = Weights::default();
    let free = sim::bound::lower_bound(&net, &jobs, &compiled, w).objective_cny;
    let run = sim::engine::run_policy(&net, &jobs, &compiled, Policy::Aiplus, w, None, &mut |_| {});
    assert_eq!(run.placed, 48);
    let ti = sim::time_indexed::time_indexed_bound(&net, &jobs, &compiled, w, run.objective_cny, 200).objective_cny;
    assert!(ti <= run.objective_cny * (1.0 + 1e-9), "bound {ti} above a feasible schedule's {}", run.objective_cny);
    let waiting = run.objective_cny - free;
    assert!(waiting > 400.0, "the rush must cost real waiting: {waiting}");
    assert!(ti - free >= 0.8 * waiting, "time-indexed {ti} sees too little of the wait ({free} → {})", run.objective_cny);
}

#[test]
fn time_indexed_bound_sees_a_queue_for_cores_when_gpus_are_free() {
    // The A10 pool becomes 2 nodes of 4 GPUs and 32 cores, and 8 one-GPU jobs each want 32
    // cores: the GPUs could hold all 8 at once, the cores only 2. Only the CPU rows see the wait.
    let mut spec = compute::file::builtin_network().unwrap().spec;
    let pool = spec.clusters.iter_mut().flat_map(|c| &mut c.node_pools).find(|p| p.gpu_model.as_deref() == Some("A10")).unwrap();
    (pool.nodes, pool.gpus_per_node, pool.cpu_milli) = (2, 4, 32_000);
    let net = std::sync::Arc::new(compute::Network::build(spec).unwrap());
    let t0 = sim::scenario::TRACE_EPOCH_S + 3.0 * 3600.0;
    let (mut jobs, mut compiled) = (Vec::new(), Vec::new());
    for i in 0..8 {
        let spec: compute::JobSpec = serde_json::from_value(serde_json::json!({
            "kind": "batch_inference", "gpus": 1, "gpu_models": ["A10"], "cpu_milli": 32_000,
            "memory_mib": 1024, "duration_s": 3600,
        }))
        .unwrap();
        let spec = spec.normalise(&net).unwrap();
        compiled.push(compute::scheduler::JobReq::compile(&spec, &net));
        jobs.push(sim::scenario::SimJob { arrival_s: t0 + f64::from(i) * 1e-3, spec });
    }
    let w = Weights::default();
    let free = sim::bound::lower_bound(&net, &jobs, &compiled, w).objective_cny;
    let run = sim::engine::run_policy(&net, &jobs, &compiled, Policy::Aiplus, w, None, &mut |_| {});
    assert_eq!(run.placed, 8);
    let ti = sim::time_indexed::time_indexed_bound(&net, &jobs, &compiled, w, run.objective_cny, 200).objective_cny;
    assert!(ti <= run.objective_cny * (1.0 + 1e-9), "bound {ti} above a feasible schedule's {}", run.objective_cny);
    // Two at a time: 0 + 0 + 1 + 1 + 2 + 2 + 3 + 3 = 12 hours of waiting, at 19.6 yuan an hour
    // (a GPU's 10 and 32 cores' 9.6).
    let waiting = run.objective_cny - free;
    assert!((waiting - 12.0 * 19.6).abs() < 1.0, "the schedule waits 12 job-hours: {waiting}");
    assert!(ti - free >= 0.8 * waiting, "time-indexed {ti} sees too little of the wait ({free} → {})", run.objective_cny);
}

#[test]
fn time_indexed_bound_is_below_every_policy_on_a_busy_replay() {
    let r = run(11, 2000, 0.1, 20.0);
    let ti = r.time_indexed_bound.as_ref().unwrap();
    assert!(ti.objective_cny >= r.lower_bound.objective_cny * 0.999, "{ti:?} vs {:?}", r.lower_bound);
    for p in &r.policies {
        if p.unplaced == r.lower_bound.never {
            assert!(p.objective_cny >= ti.objective_cny * (1.0 - 1e-9), "{}: objective below the time-indexed bound", p.name);
        }
    }
}

#[test]
fn every_openb_pod_list_replays_and_one_without_times_gets_a_seeded_arrival_process() {
    let net = compute::file::builtin_network().unwrap();
    let nodes = sim::trace::read_nodes_file(&trace_dir().join("openb_node_list_all_node.csv")).unwrap();
    for variant in ["default", "gpushare100", "gpuspec33", "multigpu50"] {
        let pods = sim::trace::read_pods_file(&trace_dir().join(format!("openb_pod_list_{variant}.csv"))).unwrap();
        assert_eq!(pods.iter().all(|p| p.timed), variant != "multigpu50", "{variant}");
        let opts = |seed| SimOptions {
            scenario: ScenarioOptions {
                seed,
                node_scale: 1.0,
                job_copies: 1,
                max_jobs: Some(400),
                time_compression: 1.0,
                deferrable_share: DEFAULT_DEFERRABLE_SHARE,
            },
            policies: vec![Policy::Nearest, Policy::Aiplus],
            weights: Weights::default(),
            sample_interval_s: None,
            bound_iterations: 5,
        };
        let r = sim::simulate(&net.spec, &nodes, &pods, &opts(2), &mut |_, _| {}).unwrap();
        assert_eq!(r.jobs, 400, "{variant}");
        for p in &r.policies {
            assert_eq!(p.violations, 0, "{variant}: {}", p.name);
            assert!(p.placed > 300, "{variant}: {} placed only {}", p.name, p.placed);
        }
        if variant == "multigpu50" {
            // The drawn arrivals follow the seed: the same seed, the same report; another, another.
            assert_eq!(r, sim::simulate(&net.spec, &nodes, &pods, &opts(2), &mut |_, _| {}).unwrap());
            assert_ne!(
                r.policies[0].energy_cost_cny,
                sim::simulate(&net.spec, &nodes, &pods, &opts(3), &mut |_, _| {}).unwrap().policies[0].energy_cost_cny
            );
        }
    }
}

#[test]
fn deadline_work_is_shifted_by_aiplus_only_saves_energy_and_meets_its_deadlines() {
    let every = run_with(3, 1500, 1.0, 1.0, 1.0);
    let none = run_with(3, 1500, 1.0, 1.0, 0.0);
    let find = |r: &Report, n: &str| r.policies.iter().find(|p| p.name == n).unwrap().clone();
    let (a, a0) = (find(&every, "aiplus"), find(&none, "aiplus"));
    assert!(a.shifted.jobs > 0 && a.shifted.gpu_hours > 0.0 && a.shifted.hours_shifted > 0.0, "{:?}", a.shifted);
    assert!(a.shifted.energy_cost_saved_cny > 0.0, "{:?}", a.shifted);
    assert!(a.energy_cost_cny < a0.energy_cost_cny, "{} vs {}", a.energy_cost_cny, a0.energy_cost_cny);
    assert_eq!((a.deadline_misses, a.violations, a0.shifted.jobs), (0, 0, 0));
    // Shifted time is not queueing: on this quiet replay nobody queues.
    assert_eq!(a.wait_s_p95, 0.0);
    for p in every.policies.iter().filter(|p| p.name != "aiplus") {
        assert_eq!(p.shifted.jobs, 0, "{}", p.name);
    }
    // Free waiting within the slack is in both bounds, so they stay below every policy.
    let tib = every.time_indexed_bound.as_ref().unwrap().objective_cny;
    for p in &every.policies {
        assert!(every.lower_bound.objective_cny <= p.objective_cny + 1e-6 && tib <= p.objective_cny + 1e-6, "{}: {tib}", p.name);
    }
}
