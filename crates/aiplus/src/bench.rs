//! `aiplus compute bench`: the scheduler's speed, measured (never asserted in a test).
//!
//! 1. A large replay (default 1,000,000 jobs: the openb pod list repeated, with the node list
//!    repeated alongside so the load per GPU stays the trace's): wall time and peak memory
//!    (VmHWM of this process, read before anything else is allocated).
//! 2. Placement decisions per second on one thread, at about 15,000 nodes: openb's 1,523 nodes
//!    replicated over the 10 clusters. Jobs cycle through the pod list; the oldest running job
//!    is released whenever the network is about 70% full, so decisions see a busy, fragmented
//!    network rather than an empty one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use compute::scheduler::{Decision, JobReq};
use compute::{Network, Policy, Scheduler, Weights};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value = "../shared/traces/alibaba-gpu-v2023/openb_pod_list_gpuspec33.csv")]
    pub pods: PathBuf,
    #[arg(long, default_value = "../shared/traces/alibaba-gpu-v2023/openb_node_list_all_node.csv")]
    pub nodes: PathBuf,
    /// Copies of the node list per cluster for the decision benchmark (1 gives ~15,000 nodes).
    #[arg(long, default_value_t = 1)]
    pub node_copies_per_cluster: u32,
    /// Placement decisions to time.
    #[arg(long, default_value_t = 500_000)]
    pub decisions: u64,
    /// Jobs in the replay; 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    pub replay_jobs: usize,
    /// Policy of the replay.
    #[arg(long, default_value = "aiplus")]
    pub replay_policy: String,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct BenchReport {
    replay_jobs: usize,
    replay_wall_s: Option<f64>,
    replay_peak_rss_mib: Option<f64>,
    replay_placed: Option<u64>,
    replay_violations: Option<u64>,
    /// Copies of the trace's node list in the replay (fewer than of the pod list past the
    /// network's node limit).
    replay_node_copies: Option<u32>,
    decision_nodes: u64,
    decision_gpus: u64,
    decisions: u64,
    decisions_per_s: f64,
    decision_us_mean: f64,
    placed_share: f64,
}

pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let policy = Policy::parse(&args.replay_policy).with_context(|| format!("--replay-policy: unknown policy {:?}", args.replay_policy))?;
    let base = compute::file::builtin_network()?;
    let nodes = sim::trace::read_nodes_file(&args.nodes)?;
    let pods = sim::trace::read_pods_file(&args.pods)?;
    let mut report = BenchReport {
        replay_jobs: args.replay_jobs,
        replay_wall_s: None,
        replay_peak_rss_mib: None,
        replay_placed: None,
        replay_violations: None,
        replay_node_copies: None,
        decision_nodes: 0,
        decision_gpus: 0,
        decisions: args.decisions,
        decisions_per_s: 0.0,
        decision_us_mean: 0.0,
        placed_share: 0.0,
    };

    if args.replay_jobs > 0 {
        if !args.json {
            eprintln!("replaying {} jobs under {} ...", args.replay_jobs, policy.name());
        }
        let copies = args.replay_jobs.div_ceil(pods.len()) as u32;
        // The node list is copied with the pod list to keep the load per GPU, up to the most
        // nodes a network may have; past that (a 10,000,000-job replay) the GPUs are busier.
        let most_copies = (compute::network::MAX_NODES / nodes.len().max(1) as u64) as u32;
        let node_copies = copies.min(most_copies.max(1));
        report.replay_node_copies = Some(node_copies);
        let opts = sim::SimOptions {
            scenario: sim::ScenarioOptions {
                seed: 1,
                node_scale: f64::from(node_copies),
                job_copies: copies,
                max_jobs: Some(args.replay_jobs),
                time_compression: 1.0,
                deferrable_share: sim::scenario::DEFAULT_DEFERRABLE_SHARE,
            },
            policies: vec![policy],
            weights: Weights::default(),
            sample_interval_s: Some(86_400.0),
            bound_iterations: 0,
        };
        let bar = indicatif::ProgressBar::new(args.replay_jobs as u64);
        if args.json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let started = Instant::now();
        let r = sim::simulate(&base.spec, &nodes, &pods, &opts, &mut |_, p| bar.set_position(p.done))?;
        bar.finish_and_clear();
        report.replay_wall_s = Some(started.elapsed().as_secs_f64());
        report.replay_peak_rss_mib = peak_rss_mib();
        report.replay_placed = r.policies.first().map(|p| p.placed);
        report.replay_violations = r.policies.first().map(|p| p.violations);
    }

    // The decision benchmark's network: every cluster gets the whole openb node list.
    let mut spec = base.spec.clone();
    for c in &mut spec.clusters {
        c.node_pools.clear();
    }
    let mut one = spec.clone();
    one.clusters.truncate(1);
    for cluster in &mut spec.clusters {
        let scenario = sim::scenario::build(
            &one,
            &nodes,
            &[],
            sim::ScenarioOptions {
                seed: 1,
                node_scale: f64::from(args.node_copies_per_cluster),
                job_copies: 0,
                max_jobs: Some(0),
                time_compression: 1.0,
                deferrable_share: sim::scenario::DEFAULT_DEFERRABLE_SHARE,
            },
        );
        cluster.node_pools = scenario.network.clusters[0].node_pools.clone();
    }
    let net = Arc::new(Network::build(spec)?);
    report.decision_nodes = net.clusters.iter().flat_map(|c| &c.pools).map(|p| u64::from(p.nodes)).sum();
    report.decision_gpus = net.clusters.iter().flat_map(|c| &c.pools).map(|p| u64::from(p.nodes) * u64::from(p.gpus_per_node)).sum();
    let sc = sim::scenario::build(
        &net.spec,
        &[],
        &pods,
        sim::ScenarioOptions {
            seed: 2,
            node_scale: 0.0,
            job_copies: 1,
            max_jobs: None,
            time_compression: 1.0,
            deferrable_share: sim::scenario::DEFAULT_DEFERRABLE_SHARE,
        },
    );
    let mut jobs = Vec::with_capacity(sc.jobs.len());
    for j in &sc.jobs {
        jobs.push(JobReq::compile(&j.spec.clone().normalise(&net)?, &net));
    }
    let mut sched = Scheduler::new(net.clone(), Policy::Aiplus, Weights::default());
    let total_gpu: u64 = (0..net.clusters.len()).map(|c| sched.gpu_usage(c).1).sum();
    let mut running = std::collections::VecDeque::new();
    let mut used: u64 = 0;
    let mut placed = 0u64;
    let started = Instant::now();
    for i in 0..args.decisions {
        let job = &jobs[(i as usize) % jobs.len()];
        let now = sim::scenario::TRACE_EPOCH_S + i as f64;
        if let Decision::Placed { allocation, .. } = sched.place(job, now, 0.0) {
            placed += 1;
            used += u64::from(allocation.slot.gpu_milli) * u64::from(allocation.slot.gpu_mask.count_ones());
            running.push_back(allocation);
        }
        while used * 10 > total_gpu * 7 {
            let Some(a) = running.pop_front() else { break };
            used -= u64::from(a.slot.gpu_milli) * u64::from(a.slot.gpu_mask.count_ones());
            sched.release(a);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    report.decisions_per_s = args.decisions as f64 / secs;
    report.decision_us_mean = secs * 1e6 / args.decisions as f64;
    report.placed_share = placed as f64 / args.decisions as f64;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if let (Some(w), Some(m)) = (report.replay_wall_s, report.replay_peak_rss_mib) {
        println!(
            "replay: {} jobs under {} on {} copies of the node list in {w:.1} s, peak memory {m:.0} MiB ({} placed, {} violations)",
            report.replay_jobs,
            policy.name(),
            report.replay_node_copies.unwrap_or(0),
            report.replay_placed.unwrap_or(0),
            report.replay_violations.unwrap_or(0)
        );
    }
    println!(
        "placement: {:.0} decisions/s on one thread ({:.2} µs each) at {} nodes / {} GPUs; {:.1}% placed",
        report.decisions_per_s,
        report.decision_us_mean,
        report.decision_nodes,
        report.decision_gpus,
        report.placed_share * 100.0
    );
    Ok(())
}
