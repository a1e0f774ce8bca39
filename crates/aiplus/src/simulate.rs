//! `aiplus compute simulate`: replay a trace over the network and write the report.

use std::path::PathBuf;

use anyhow::Context;
use compute::{Policy, Weights};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sim::{ScenarioOptions, SimOptions};

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Pod list of the Alibaba GPU 2023 ("openb") trace.
    #[arg(long, default_value = "../shared/traces/alibaba-gpu-v2023/openb_pod_list_gpuspec33.csv")]
    pub pods: PathBuf,
    /// Node list of the same trace.
    #[arg(long, default_value = "../shared/traces/alibaba-gpu-v2023/openb_node_list_all_node.csv")]
    pub nodes: PathBuf,
    /// Network file; the built-in 8 hubs and 10 clusters when absent.
    #[arg(long)]
    pub network: Option<PathBuf>,
    /// Seed of the scenario draw (origins, datasets, residency, node assignment).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replay this many jobs: the pod list is repeated (and the node list with it, to keep the
    /// load per GPU) until it reaches this count. Default: the trace once.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Divide the trace's arrival times by this to load the network (run times stay as traced).
    /// The published openb pod list never keeps more than about 1% of its GPUs busy, so the
    /// default replay, as recorded, has no contention; try 20 with --node-scale 0.1 for a busy one.
    #[arg(long, default_value_t = 1.0)]
    pub time_compression: f64,
    /// Scale the trace's node list: 0.1 keeps about one node in ten (seeded), 2 doubles it.
    /// With --jobs above the trace's size, this is multiplied by the number of pod-list copies.
    #[arg(long, default_value_t = 1.0)]
    pub node_scale: f64,
    /// Share of best-effort (batch) jobs given a deadline 1-24 h beyond their run time, which
    /// lets aiplus shift them to cheaper, greener hours (the trace has no deadlines: 0, the
    /// default, gives none one).
    #[arg(long, default_value_t = sim::scenario::DEFAULT_DEFERRABLE_SHARE)]
    pub deferrable_share: f64,
    /// Policies to run, comma-separated: nearest, round-robin, cheapest, aiplus.
    #[arg(long, value_delimiter = ',', default_value = "nearest,round-robin,cheapest,aiplus")]
    pub policies: Vec<String>,
    /// Weights of the aiplus objective, as a TOML file with the keys of `[scheduler.weights]`.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Interval of the time series in the report, in hours; default 1/120 of the arrival window.
    #[arg(long)]
    pub sample_hours: Option<f64>,
    /// Price updates of the lower bound that respects capacity over time (0: leave it out and
    /// measure gaps against the capacity-free bound only). Its cost grows with jobs x pools.
    #[arg(long, default_value_t = sim::DEFAULT_BOUND_ITERATIONS, value_parser = clap::value_parser!(u32).range(0..=i64::from(sim::MAX_BOUND_ITERATIONS)))]
    pub bound_iterations: u32,
    /// Directory for report.json and report.svg.
    #[arg(long, default_value = "reports/simulate")]
    pub out: PathBuf,
    /// Print the whole report as JSON on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

pub fn parse_policies(names: &[String]) -> anyhow::Result<Vec<Policy>> {
    names
        .iter()
        .map(|n| {
            Policy::parse(n.trim())
                .with_context(|| format!("--policies: unknown policy {n:?}; use nearest, round-robin, cheapest or aiplus"))
        })
        .collect()
}

pub fn load_weights(path: Option<&PathBuf>) -> anyhow::Result<Weights> {
    let Some(path) = path else { return Ok(Weights::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let w: Weights = toml::from_str(&text).with_context(|| format!("{}: bad weights", path.display()))?;
    w.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(w)
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let policies = parse_policies(&args.policies)?;
    let weights = load_weights(args.weights.as_ref())?;
    if let Some(h) = args.sample_hours
        && !(1.0 / 60.0..=24.0 * 365.0).contains(&h)
    {
        anyhow::bail!("--sample-hours: must be between 1/60 (a minute) and 8760 (a year), got {h}");
    }
    let base = match &args.network {
        Some(p) => compute::file::load_network_file(p)?,
        None => compute::file::builtin_network()?,
    };
    let nodes = sim::trace::read_nodes_file(&args.nodes)?;
    let pods = sim::trace::read_pods_file(&args.pods)?;
    if pods.is_empty() || nodes.is_empty() {
        anyhow::bail!("the trace has no pods or no nodes");
    }
    if !(args.time_compression >= 1.0 && args.time_compression <= 1.0e6) {
        anyhow::bail!("--time-compression: must be 1..=1000000, got {}", args.time_compression);
    }
    if !(args.node_scale > 0.0 && args.node_scale <= 1000.0) {
        anyhow::bail!("--node-scale: must be above 0 and at most 1000, got {}", args.node_scale);
    }
    if !(0.0..=1.0).contains(&args.deferrable_share) {
        anyhow::bail!("--deferrable-share: must be between 0 and 1, got {}", args.deferrable_share);
    }
    let jobs = args.jobs.unwrap_or(pods.len());
    if jobs == 0 || jobs > 10_000_000 {
        anyhow::bail!("--jobs: must be 1..=10000000, got {jobs}");
    }
    let copies = jobs.div_ceil(pods.len()) as u32;
    let opts = SimOptions {
        scenario: ScenarioOptions {
            seed: args.seed,
            node_scale: args.node_scale * f64::from(copies),
            job_copies: copies,
            max_jobs: Some(jobs),
            time_compression: args.time_compression,
            deferrable_share: args.deferrable_share,
        },
        policies: policies.clone(),
        weights,
        sample_interval_s: args.sample_hours.map(|h| h * 3600.0),
        bound_iterations: args.bound_iterations,
    };
    let multi = MultiProgress::new();
    if args.quiet {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} jobs {per_sec} eta {eta}")?.progress_chars("=> ");
    let bars: Vec<ProgressBar> = policies
        .iter()
        .map(|p| {
            let b = multi.add(ProgressBar::new(jobs as u64));
            b.set_style(style.clone());
            b.set_prefix(p.name());
            b
        })
        .collect();
    let started = std::time::Instant::now();
    let report = sim::simulate(&base.spec, &nodes, &pods, &opts, &mut |p, pr| {
        if let Some(i) = policies.iter().position(|q| *q == p) {
            bars[i].set_position(pr.done);
            if pr.done >= pr.total {
                bars[i].finish();
            }
        }
    })?;
    let elapsed = started.elapsed();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(args.out.join("report.json"), &json)?;
    std::fs::write(args.out.join("report.svg"), sim::chart::render_svg(&report))?;
    if args.json {
        println!("{json}");
        return Ok(());
    }
    println!("{} jobs on {} nodes ({} GPUs), seed {}, {:.1} s", report.jobs, report.nodes, report.gpus, report.seed, elapsed.as_secs_f64());
    println!(
        "{:<12} {:>12} {:>10} {:>9} {:>9} {:>10} {:>6} {:>11} {:>8} {:>10} {:>13}",
        "policy",
        "energy_cny",
        "carbon_kg",
        "wait_p50",
        "wait_p95",
        "start_p95",
        "util",
        "transfer_gb",
        "unplaced",
        "violations",
        "objective_cny"
    );
    for p in &report.policies {
        println!(
            "{:<12} {:>12.0} {:>10.0} {:>9.0} {:>9.0} {:>10.0} {:>6.3} {:>11.0} {:>8} {:>10} {:>13.0}",
            p.name,
            p.energy_cost_cny,
            p.carbon_kg,
            p.wait_s_p50,
            p.wait_s_p95,
            p.start_delay_s_p95,
            p.utilisation,
            p.transfer_gb,
            p.unplaced,
            p.violations,
            p.objective_cny
        );
    }
    let lb = &report.lower_bound;
    println!("{:<12} {:>12.0} {:>10.0} {:>83.0}", "lower bound", lb.energy_cost_cny, lb.carbon_kg, lb.objective_cny);
    if let Some(t) = &report.time_indexed_bound {
        println!(
            "{:<12} {:>106.0}   (capacity over time; {} price updates, best at {})",
            "time-indexed", t.objective_cny, t.iterations, t.best_iteration
        );
    }
    let c = &report.comparison;
    let f = |v: Option<f64>| v.map_or("unbounded".to_string(), |v| format!("{v:.3}"));
    println!(
        "aiplus vs nearest: energy cost {}x, carbon {}x, p95 wait {}x; gap to bound: objective {}, energy {}, carbon {}",
        f(c.aiplus_energy_cost_vs_nearest),
        f(c.aiplus_carbon_vs_nearest),
        f(c.aiplus_wait_p95_vs_nearest),
        f(c.aiplus_objective_gap_to_bound),
        f(c.aiplus_energy_cost_gap_to_bound),
        f(c.aiplus_carbon_gap_to_bound)
    );
    println!("wrote {} and report.svg", args.out.join("report.json").display());
    Ok(())
}
