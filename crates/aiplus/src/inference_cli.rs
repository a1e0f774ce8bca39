//! `aiplus compute inference-sim`: replay LLM inference traces as autoscaled online-inference
//! services placed in the compute network, under each policy.

use std::path::PathBuf;

use anyhow::Context;
use sim::inference::{InferenceError, InferenceOptions, InferenceReport, ServiceTrace};

use crate::simulate::{load_weights, parse_policies};

#[derive(clap::Args, Debug)]
pub struct InferenceSimArgs {
    /// Trace files of the Azure LLM inference trace 2023 (columns
    /// TIMESTAMP,ContextTokens,GeneratedTokens), one service each, named after the part of the
    /// file name after its last `_` (AzureLLMInferenceTrace_code.csv is `code`). Repeat the flag
    /// or list several files after it.
    #[arg(long = "trace", required = true, num_args = 1.., value_name = "CSV")]
    pub traces: Vec<PathBuf>,
    /// Network file; the built-in 8 hubs and 10 clusters when absent.
    #[arg(long)]
    pub network: Option<PathBuf>,
    /// Seed of the draw of each request's origin hub and residency (and of the copies' offsets).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Divide the gaps between arrivals by this to load the network more (1: as recorded;
    /// 0.01..=10000).
    #[arg(long, default_value_t = 1.0)]
    pub time_compression: f64,
    /// Replay the traces this many times (1..=100), each copy with its own origins and
    /// residency and arriving up to 60 s after the original.
    #[arg(long, default_value_t = 1)]
    pub copies: u32,
    /// Multiply every node pool of the network by this (rounded to whole nodes; 0.001..=100).
    #[arg(long, default_value_t = 1.0)]
    pub node_scale: f64,
    /// Share of requests that may only be served in their origin hub (0..=1).
    #[arg(long, default_value_t = 0.2)]
    pub pinned_share: f64,
    /// Policies to run, comma-separated: nearest, round-robin, cheapest, aiplus.
    #[arg(long, value_delimiter = ',', default_value = "nearest,round-robin,cheapest,aiplus")]
    pub policies: Vec<String>,
    /// Weights of the aiplus objective, as a TOML file with the keys of `[scheduler.weights]`.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Print the whole report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the report's chart (SVG) to this file.
    #[arg(long, value_name = "SVG")]
    pub chart: Option<PathBuf>,
}

/// The command-line flag behind an option of the replay, so a refusal names what to change.
fn flag_error(e: InferenceError) -> anyhow::Error {
    match e {
        InferenceError::Option { field, reason }
            if ["time_compression", "copies", "node_scale", "pinned_share"].contains(&field.as_str()) =>
        {
            anyhow::anyhow!("--{}: {reason}", field.replace('_', "-"))
        }
        InferenceError::Option { field, reason } if field == "services" => anyhow::anyhow!("--trace: {reason}"),
        other => other.into(),
    }
}

pub fn run(args: InferenceSimArgs) -> anyhow::Result<()> {
    let policies = parse_policies(&args.policies)?;
    let weights = load_weights(args.weights.as_ref())?;
    let base = match &args.network {
        Some(p) => compute::file::load_network_file(p)?,
        None => compute::file::builtin_network()?,
    };
    let mut services = Vec::with_capacity(args.traces.len());
    for path in &args.traces {
        let service = ServiceTrace::from_file(path)?;
        if services.iter().any(|s: &ServiceTrace| s.name == service.name) {
            anyhow::bail!("--trace: two files name the service {:?}; give each service one file", service.name);
        }
        services.push(service);
    }
    let opts = InferenceOptions {
        seed: args.seed,
        policies,
        weights,
        time_compression: args.time_compression,
        copies: args.copies,
        node_scale: args.node_scale,
        pinned_share: args.pinned_share,
        ..InferenceOptions::default()
    };
    let started = std::time::Instant::now();
    let report = sim::inference::simulate(&base.spec, &services, &opts).map_err(flag_error)?;
    let elapsed = started.elapsed();
    if let Some(path) = &args.chart {
        std::fs::write(path, sim::inference::chart::render_svg(&report)).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_table(&report, elapsed.as_secs_f64());
    if let Some(path) = &args.chart {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print_table(r: &InferenceReport, elapsed_s: f64) {
    let services: Vec<String> = r
        .services
        .iter()
        .map(|s| format!("{} {} requests, SLO TTFT {} ms / TBT {} ms", s.name, s.requests, s.slo.ttft_ms, s.slo.tbt_ms))
        .collect();
    println!("{} requests replayed from {} (seed {}, {:.1} s)", r.requests, r.trace_start_cst, r.seed, elapsed_s);
    println!("services: {}", services.join("; "));
    println!(
        "{:<12} {:>6} {:>9} {:>8} {:>10} {:>10} {:>6} {:>10} {:>10} {:>10} {:>12} {:>10} {:>8}",
        "policy",
        "slo",
        "ttft_slo",
        "tbt_slo",
        "ttft_p50",
        "ttft_p99",
        "peak",
        "replica_h",
        "energy_kwh",
        "wh_per_1k",
        "cny_per_1k",
        "gco2_per_1k",
        "unserved"
    );
    for p in &r.policies {
        println!(
            "{:<12} {:>6.3} {:>9.3} {:>8.3} {:>8.0}ms {:>8.0}ms {:>6} {:>10.2} {:>10.2} {:>10.4} {:>12.6} {:>10.4} {:>8}",
            p.name,
            p.slo_attainment,
            p.ttft_slo_attainment,
            p.tbt_slo_attainment,
            p.ttft_ms_p50,
            p.ttft_ms_p99,
            p.replicas_peak,
            p.replica_hours,
            p.energy_kwh,
            p.energy_wh_per_1k_tokens,
            p.energy_cost_cny_per_1k_tokens,
            p.carbon_g_per_1k_tokens,
            p.unserved
        );
    }
    let c = &r.comparison;
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    println!(
        "aiplus vs nearest: carbon per 1k tokens {}x, energy cost per 1k tokens {}x, energy per 1k tokens {}x, TTFT p99 {}x, SLO attainment {:+.3}",
        f(c.aiplus_carbon_per_1k_tokens_vs_nearest),
        f(c.aiplus_energy_cost_per_1k_tokens_vs_nearest),
        f(c.aiplus_energy_per_1k_tokens_vs_nearest),
        f(c.aiplus_ttft_p99_vs_nearest),
        c.aiplus_slo_attainment_minus_nearest.unwrap_or(0.0)
    );
}
