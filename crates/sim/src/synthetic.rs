//! A synthetic trace in the shape of the Alibaba GPU 2023 ("openb") trace, for replays where
//! the trace files are not at hand (a fresh install, the console). Every distribution below is
//! read off the published files (`openb_pod_list_default.csv`, 8,152 pods, and
//! `openb_node_list_all_node.csv`, 1,523 nodes; see shared/traces/MANIFEST.md), as counts or
//! quantiles, and sampled by inverse transform with piecewise log-linear interpolation between
//! the quantiles. It is not the trace: correlations (a big pod being long, say) are not kept.
//!
//! Like the rest of the simulator it is a pure function of its seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::trace::{TraceNode, TracePod};

/// (GPUs, model, cpu_milli, memory_mib, nodes in the trace): the node types of the node list
/// with their most common CPU and memory.
const NODE_TYPES: [(u32, &str, u32, u32, u32); 10] = [
    (8, "G2", 96_000, 393_216, 549),
    (2, "T4", 104_000, 524_288, 387),
    (0, "", 32_000, 262_144, 310),
    (2, "P100", 16_000, 122_880, 131),
    (8, "G3", 128_000, 786_432, 39),
    (4, "V100M16", 32_000, 131_072, 28),
    (8, "V100M32", 96_000, 786_432, 21),
    (1, "V100M16", 8_000, 32_768, 19),
    (4, "T4", 96_000, 393_216, 17),
    (4, "V100M32", 48_000, 376_832, 9),
];

/// GPUs per pod and how many pods asked for that many.
const NUM_GPU: [(u32, u32); 5] = [(0, 1088), (1, 6989), (2, 16), (4, 15), (8, 44)];
/// Share of one GPU that single-GPU pods asked for (thousandths), with counts; the long tail
/// of rarer shares is folded into its nearest listed value.
const GPU_MILLI: [(u32, u32); 8] = [(1000, 3911), (810, 1078), (470, 750), (320, 328), (650, 253), (230, 140), (460, 128), (590, 75)];
/// Quantiles (share, value) of run time in seconds, CPU in millicores and memory in MiB. The
/// end points (0 and 1) are the files' rounded extremes.
const DURATION_S: [(f64, f64); 8] =
    [(0.0, 10.0), (0.1, 60.0), (0.25, 145.0), (0.5, 485.0), (0.75, 1922.0), (0.9, 6518.0), (0.99, 95_767.0), (1.0, 1_000_000.0)];
const CPU_MILLI: [(f64, f64); 5] = [(0.0, 1000.0), (0.1, 3152.0), (0.5, 11_300.0), (0.9, 16_400.0), (1.0, 32_000.0)];
const MEMORY_MIB: [(f64, f64); 5] = [(0.0, 1024.0), (0.1, 5600.0), (0.5, 41_560.0), (0.9, 58_368.0), (1.0, 131_072.0)];
/// Mean time between pod creations: the file's 12,901,761 s window over its 8,152 pods.
const MEAN_GAP_S: f64 = 1582.65;

fn pick<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|t| t.1).sum();
    let mut x = rng.random_range(0..total.max(1));
    for &(v, w) in table {
        if x < w {
            return v;
        }
        x -= w;
    }
    table[0].0
}

/// Inverse transform between quantiles, linear in the logarithm of the value.
fn quantile(rng: &mut ChaCha8Rng, q: &[(f64, f64)]) -> f64 {
    let u: f64 = rng.random();
    for w in q.windows(2) {
        let ((p0, v0), (p1, v1)) = (w[0], w[1]);
        if u <= p1 {
            let t = if p1 > p0 { (u - p0) / (p1 - p0) } else { 0.0 };
            return (v0.ln() + t * (v1.ln() - v0.ln())).exp();
        }
    }
    q.last().map_or(1.0, |l| l.1)
}

/// `pods` pods and `nodes` nodes drawn to the trace's statistics.
pub fn generate(seed: u64, pods: usize, nodes: usize) -> (Vec<TraceNode>, Vec<TracePod>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006f_7065_6e62);
    let node_table: Vec<(usize, u32)> = NODE_TYPES.iter().enumerate().map(|(i, t)| (i, t.4)).collect();
    let node_list = (0..nodes)
        .map(|_| {
            let (gpus, model, cpu_milli, memory_mib, _) = NODE_TYPES[pick(&mut rng, &node_table)];
            TraceNode { cpu_milli, memory_mib, gpus, model: model.to_string() }
        })
        .collect();
    let mut t = 0.0f64;
    let pod_list = (0..pods)
        .map(|i| {
            // Exponential gaps: a Poisson arrival process at the trace's mean rate.
            let u: f64 = rng.random();
            t += -MEAN_GAP_S * (1.0 - u).ln();
            let num_gpu = pick(&mut rng, &NUM_GPU);
            let gpu_milli = match num_gpu {
                0 => 0,
                1 => pick(&mut rng, &GPU_MILLI),
                _ => 1000,
            };
            let qos = pick(&mut rng, &QOS);
            TracePod {
                name: format!("synthetic-pod-{i:06}"),
                cpu_milli: quantile(&mut rng, &CPU_MILLI).round() as u32,
                memory_mib: quantile(&mut rng, &MEMORY_MIB).round() as u32,
                num_gpu,
                gpu_milli,
                gpu_spec: Vec::new(),
                qos: qos.to_string(),
                creation_s: t as u64,
                duration_s: quantile(&mut rng, &DURATION_S).round().max(1.0) as u64,
                timed: true,
            }
        })
        .collect();
    (node_list, pod_list)
}

/// The published QoS mix of the default pod list (LS, BE, Burstable).
const QOS: [(&str, u32); 3] = [("LS", 4647), ("BE", 3398), ("Burstable", 107)];

/// Gives pods read without times (the `multigpu` lists) a seeded arrival process, in list
/// order: Poisson arrivals at the default list's mean rate, run times drawn from its run-time
/// quantiles and, where the file has none, a QoS drawn from its mix. Timed pods are untouched.
pub fn time_untimed(pods: &mut [TracePod], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0074_696d_6564);
    let mut t = 0.0f64;
    for pod in pods.iter_mut().filter(|p| !p.timed) {
        let u: f64 = rng.random();
        t += -MEAN_GAP_S * (1.0 - u).ln();
        pod.creation_s = t as u64;
        pod.duration_s = quantile(&mut rng, &DURATION_S).round().max(1.0) as u64;
        if pod.qos.is_empty() {
            pod.qos = pick(&mut rng, &QOS).to_string();
        }
        pod.timed = true;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn the_draw_is_reproducible_and_matches_the_trace_shape() {
        let (n1, p1) = generate(7, 20_000, 2_000);
        let (n2, p2) = generate(7, 20_000, 2_000);
        assert_eq!((&n1, &p1), (&n2, &p2), "same seed, same trace");
        assert_ne!(generate(8, 100, 10).1, generate(7, 100, 10).1);
        let share = |k: u32| p1.iter().filter(|p| p.num_gpu == k).count() as f64 / p1.len() as f64;
        // The trace: 13.3% CPU-only pods, 85.7% single-GPU.
        assert!((share(0) - 0.133).abs() < 0.015, "{}", share(0));
        assert!((share(1) - 0.857).abs() < 0.015, "{}", share(1));
        let mut d: Vec<u64> = p1.iter().map(|p| p.duration_s).collect();
        d.sort_unstable();
        let median = d[d.len() / 2] as f64;
        assert!((median / 485.0 - 1.0).abs() < 0.1, "median run time {median} s, trace 485 s");
        let gap = p1.last().unwrap().creation_s as f64 / p1.len() as f64;
        assert!((gap / MEAN_GAP_S - 1.0).abs() < 0.05, "mean gap {gap} s");
        assert!(p1.windows(2).all(|w| w[0].creation_s <= w[1].creation_s), "arrivals in order");
        let gpu_nodes = n1.iter().filter(|n| n.gpus > 0).count() as f64 / n1.len() as f64;
        assert!((gpu_nodes - 0.796).abs() < 0.03, "{gpu_nodes}");
    }
}
