//! Online-inference replays: the Azure LLM inference trace 2023 (read from ../shared, as tests
//! may) and synthetic traces, placed in the built-in network under each policy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::path::PathBuf;

use compute::{NetworkSpec, Policy, Weights};
use sim::inference::{InferenceOptions, InferenceReport, PolicyInference, ServiceTrace, Slo, TraceRequest, trace};

fn trace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/azure-llm-2023")
}

fn network() -> NetworkSpec {
    compute::file::builtin_network().unwrap().spec
}

fn real_services() -> Vec<ServiceTrace> {
    ["AzureLLMInferenceTrace_code.csv", "AzureLLMInferenceTrace_conv.csv"]
        .iter()
        .map(|f| ServiceTrace::from_file(&trace_dir().join(f)).unwrap())
        .collect()
}

fn run(services: &[ServiceTrace], opts: &InferenceOptions) -> InferenceReport {
    sim::inference::simulate(&network(), services, opts).unwrap()
}

fn policy<'a>(r: &'a InferenceReport, name: &str) -> &'a PolicyInference {
    r.policies.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn the_real_traces_read_as_two_services() {
    let services = real_services();
    assert_eq!(services.iter().map(|s| (s.name.as_str(), s.requests.len())).collect::<Vec<_>>(), [("code", 8819), ("conv", 19_366)]);
    assert_eq!(services[0].slo, Slo::for_service("code"));
    assert_eq!(
        services[0].requests[0],
        TraceRequest { at_unix_s: services[0].requests[0].at_unix_s, context_tokens: 4808, generated_tokens: 10 }
    );
}

#[test]
fn the_reader_rejects_bad_rows_naming_line_and_column() {
    let read = |text: &str| trace::read("t.csv", Box::new(std::io::Cursor::new(text.to_string())));
    const HEADER: &str = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
    let good = "2023-11-16 18:17:03.9799600,4808,10\n";
    assert_eq!(read(&format!("{HEADER}{good}")).unwrap().len(), 1);
    let cases = [
        (
            format!("{HEADER}{good}2023-11-16 18:17:0x,1,1\n"),
            "t.csv:3: TIMESTAMP: \"2023-11-16 18:17:0x\" is not a time like 2023-11-16 18:17:03.9799600",
        ),
        (format!("{HEADER}{good}2023-11-16 18:17:04,abc,1\n"), "t.csv:3: ContextTokens: \"abc\" is not a whole number"),
        (format!("{HEADER}{good}2023-11-16 18:17:04,5,0\n"), "t.csv:3: GeneratedTokens: must be 1..=32768, got 0"),
        (format!("{HEADER}2023-11-16 18:17:04,200000,1\n"), "t.csv:2: ContextTokens: must be 1..=131072, got 200000"),
        (
            format!("{HEADER}{good}2023-11-16 18:17:02,5,5\n"),
            "t.csv:3: TIMESTAMP: \"2023-11-16 18:17:02\" is earlier than the row before; rows must be in time order",
        ),
        (format!("{HEADER}2023-02-30 00:00:00,5,5\n"), "t.csv:2: TIMESTAMP: \"2023-02-30 00:00:00\" is not a valid date and time"),
        ("TIMESTAMP,ContextTokens\n2023-11-16 18:17:04,5\n".to_string(), "t.csv:1: GeneratedTokens: missing column in the header"),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens,Model\n".to_string(),
            "t.csv:1: Model: unknown column; the header must be TIMESTAMP,ContextTokens,GeneratedTokens",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(read(&text).unwrap_err().to_string(), want);
    }
    // A row with a missing field is refused by the CSV layer, still with its line.
    let err = read(&format!("{HEADER}{good}2023-11-16 18:17:04,5\n")).unwrap_err().to_string();
    assert!(err.starts_with("t.csv:3: csv:"), "{err}");
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_a_different_one() {
    let services = real_services();
    let opts = |seed| InferenceOptions { seed, policies: vec![Policy::Nearest, Policy::Aiplus], ..InferenceOptions::default() };
    let a = run(&services, &opts(7));
    let b = run(&services, &opts(7));
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    let c = run(&services, &opts(8));
    assert_ne!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&c).unwrap());
    // The draw changed where requests come from, so what they cost changed too.
    assert_ne!(policy(&a, "aiplus").carbon_kg, policy(&c, "aiplus").carbon_kg);
}

#[test]
fn every_policy_serves_every_request_within_its_residency() {
    let services = real_services();
    let total: usize = services.iter().map(|s| s.requests.len()).sum();
    let opts = InferenceOptions { pinned_share: 0.5, ..InferenceOptions::default() };
    let net = compute::Network::build(network()).unwrap();
    let drawn = sim::inference::workload::draw(&net, &services, opts.seed, 1.0, 1, opts.pinned_share);
    let pinned = drawn.requests.iter().filter(|q| q.pinned).count();
    assert!((0.45..0.55).contains(&(pinned as f64 / total as f64)), "{pinned} of {total} pinned");
    let r = run(&services, &opts);
    assert_eq!(r.policies.len(), 4);
    for p in &r.policies {
        assert_eq!((p.requests, p.served, p.unserved), (total as u64, total as u64, 0), "{}", p.name);
        assert_eq!(p.residency_violations, 0, "{}", p.name);
        assert_eq!(p.services.iter().map(|s| s.requests).sum::<u64>(), total as u64, "{}", p.name);
        let tokens: u64 = services.iter().flat_map(|s| &s.requests).map(|q| u64::from(q.context_tokens + q.generated_tokens)).sum();
        assert_eq!(p.tokens_in + p.tokens_out, tokens, "{}", p.name);
    }
    // Nearest keeps every replica in its pool's origin hub, so it uses every hub's clusters.
    assert!(policy(&r, "nearest").replica_hours_by_cluster.len() >= 8);
}

#[test]
fn slo_attainment_is_a_share_and_nearest_meets_the_ttft_objective() {
    let r = run(&real_services(), &InferenceOptions::default());
    for p in &r.policies {
        for v in [p.slo_attainment, p.ttft_slo_attainment, p.tbt_slo_attainment] {
            assert!((0.0..=1.0).contains(&v), "{}: {v}", p.name);
        }
        for s in &p.services {
            assert!((0.0..=1.0).contains(&s.ttft_slo_attainment) && (0.0..=1.0).contains(&s.tbt_slo_attainment), "{}", p.name);
        }
        assert!(p.slo_attainment <= p.ttft_slo_attainment.min(p.tbt_slo_attainment), "{}", p.name);
        assert!(p.ttft_ms_p50 <= p.ttft_ms_p95 && p.ttft_ms_p95 <= p.ttft_ms_p99, "{}", p.name);
        assert!(p.energy_kwh > 0.0 && p.carbon_g_per_1k_tokens > 0.0 && p.energy_cost_cny_per_1k_tokens > 0.0, "{}", p.name);
    }
    // Replicas at the origin are a few milliseconds from their users.
    let nearest = policy(&r, "nearest");
    assert!(nearest.ttft_slo_attainment >= 0.99, "{}", nearest.ttft_slo_attainment);
    let svg = sim::inference::chart::render_svg(&r);
    assert!(svg.starts_with("<svg") && r.policies.iter().all(|p| svg.contains(&p.name)));
}

#[test]
fn aiplus_cuts_energy_cost_and_with_carbon_priced_carbon_against_nearest() {
    let services = real_services();
    let opts = InferenceOptions { policies: vec![Policy::Nearest, Policy::Aiplus], ..InferenceOptions::default() };
    let r = run(&services, &opts);
    let (a, n) = (policy(&r, "aiplus"), policy(&r, "nearest"));
    // What the objective minimises at its default weights: at 02:00-03:00 in China the western
    // hubs' valley prices are the lowest.
    assert!(
        a.energy_cost_cny_per_1k_tokens < n.energy_cost_cny_per_1k_tokens,
        "{} vs {}",
        a.energy_cost_cny_per_1k_tokens,
        n.energy_cost_cny_per_1k_tokens
    );
    // At 0.1 yuan/kg the cheapest valley (Guizhou) beats Sichuan's cleaner grid, so aiplus's
    // carbon is not lower there. At 0.5 yuan/kg (500 yuan/t, about the EU ETS price of 2024)
    // carbon outweighs the tariff spread, and aiplus emits less per token than nearest.
    let priced = InferenceOptions { weights: Weights { carbon_cny_per_kg: 0.5, ..Weights::default() }, ..opts };
    let r = run(&services, &priced);
    let (a, n) = (policy(&r, "aiplus"), policy(&r, "nearest"));
    assert!(a.carbon_g_per_1k_tokens < 0.9 * n.carbon_g_per_1k_tokens, "{} vs {}", a.carbon_g_per_1k_tokens, n.carbon_g_per_1k_tokens);
    assert!(a.replica_hours_by_cluster.iter().any(|c| c.cluster == "tianfu" && c.replica_hours > 5.0), "{:?}", a.replica_hours_by_cluster);
}

/// One service whose requests arrive evenly at `rate` per second in each phase.
fn phased(phases: &[(f64, f64)]) -> ServiceTrace {
    let start = 1_700_158_546.0;
    let mut requests = Vec::new();
    let mut t0 = 0.0;
    for &(duration_s, rate) in phases {
        let n = (duration_s * rate) as usize;
        requests.extend((0..n).map(|i| TraceRequest {
            at_unix_s: start + t0 + i as f64 / rate,
            context_tokens: 6000,
            generated_tokens: 50,
        }));
        t0 += duration_s;
    }
    ServiceTrace { name: "synthetic".into(), slo: Slo::for_service("synthetic"), requests }
}

#[test]
fn autoscaling_follows_arrivals() {
    // One hub (Chengdu-Chongqing and its two clusters), so every request falls in one pool and
    // its demand is exactly the trace's: 15 minutes at 8 requests/s, 15 at 16, 20 at 8 again.
    let mut net = network();
    net.hubs.retain(|h| h.id == "chengyu");
    net.clusters.retain(|c| c.hub == "chengyu");
    net.links.clear();
    let service = phased(&[(900.0, 8.0), (900.0, 16.0), (1200.0, 8.0)]);
    let opts = InferenceOptions {
        policies: vec![Policy::Nearest],
        pinned_share: 0.0,
        sample_interval_s: Some(30.0),
        ..InferenceOptions::default()
    };
    let r = sim::inference::simulate(&net, &[service], &opts).unwrap();
    let p = &r.policies[0];
    let (cold_s, cooldown_s, tick_s) = (opts.autoscale.cold_start_s, opts.autoscale.scale_down_cooldown_s, opts.autoscale.scale_interval_s);
    // Sample k is taken at the end of its interval, (k + 1) × 30 s, after that instant's decision.
    let at = |t: f64| ((t / 30.0) as usize) - 1;
    let replicas = |t: f64| p.series.replicas[at(t)];
    let ready = |t: f64| p.series.replicas_ready[at(t)];
    let steady = |from: u32, to: u32| (from..=to).step_by(30).map(|t| replicas(f64::from(t))).collect::<Vec<_>>();
    let before = replicas(900.0);
    assert!(before >= 2, "48,000 prompt tokens/s need several replicas: {before}");
    assert!(steady(30, 900).iter().all(|&n| n == before), "{:?}", p.series.replicas);
    // The rate doubles at 900 s: the next decision places replicas, which serve after the cold start.
    let changed = 900.0 + tick_s;
    assert!(replicas(changed) > before, "{:?}", p.series.replicas);
    assert_eq!(ready(changed + cold_s - 30.0), before, "{:?}", p.series.replicas_ready);
    assert!(ready(changed + cold_s) > before, "{:?}", p.series.replicas_ready);
    let busy = replicas(1800.0);
    assert!(f64::from(busy) >= 1.8 * f64::from(before), "{before} then {busy}");
    assert!(steady(1200, 1800).iter().all(|&n| n == busy), "{:?}", p.series.replicas);
    // The rate halves at 1,800 s: the replicas stay through the cooldown, then drain.
    let dropped = 1800.0 + tick_s;
    assert!(steady(1800, (dropped + cooldown_s - 30.0) as u32).iter().all(|&n| n == busy), "{:?}", p.series.replicas);
    assert!(replicas(dropped + cooldown_s + 30.0) < busy, "{:?}", p.series.replicas);
    assert_eq!(replicas(2970.0), before, "{:?}", p.series.replicas);
    assert_eq!((p.served, p.unserved), (p.requests, 0));
    // The arrival rate is reported as it was drawn.
    assert!((p.series.arrivals_per_s[at(600.0)] - 8.0).abs() < 0.1 && (p.series.arrivals_per_s[at(1500.0)] - 16.0).abs() < 0.1);
}

#[test]
fn bad_options_are_refused_naming_the_option() {
    let services = real_services();
    for (opts, field) in [
        (InferenceOptions { copies: 0, ..InferenceOptions::default() }, "copies"),
        (InferenceOptions { time_compression: f64::NAN, ..InferenceOptions::default() }, "time_compression"),
        (InferenceOptions { node_scale: 0.0, ..InferenceOptions::default() }, "node_scale"),
        (InferenceOptions { pinned_share: 1.5, ..InferenceOptions::default() }, "pinned_share"),
    ] {
        let err = sim::inference::simulate(&network(), &services, &opts).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{field}: ")), "{err}");
    }
}
