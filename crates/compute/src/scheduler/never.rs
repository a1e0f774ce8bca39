//! Why a job can never run, in words a user understands.
//!
//! [`Scheduler::never_reasons`](super::Scheduler::never_reasons) gives one reason per cluster,
//! which is what a program needs but not what a person reads: ten lines of
//! `node_shape_too_small` do not say that the job asked for 120 cores where the largest
//! node has 96. This module finds the one constraint that binds and says it with numbers,
//! following the same order as the scheduler's filter: residency first, then the GPU model,
//! then the shape of one node.
//!
//! It reads only the network (the pools' sizes, not their free capacity), so its answer is the
//! same as the scheduler's static filter: it says something exactly when `never_reasons` is
//! not empty.

use vocab::Region;

use super::{JobReq, model_fits};
use crate::job::JobSpec;
use crate::network::{ClusterIx, Network, NodePool};

/// Why no cluster of `net` can ever run `spec`, in one or two sentences naming the binding
/// constraint with numbers; `None` when some cluster could run it. `spec` is one that
/// [`JobSpec::normalise`] accepted.
pub fn summary(spec: &JobSpec, net: &Network) -> Option<String> {
    describe(&JobReq::compile(spec, net), &spec.allowed_regions, net)
}

/// [`summary`] for a compiled job; `regions` are the job's allowed regions, which the compiled
/// form keeps only as a set of clusters, to name them in the sentence.
pub fn describe(job: &JobReq, regions: &[Region], net: &Network) -> Option<String> {
    let n = net.clusters.len();
    if n == 0 {
        return Some("This network has no clusters, so no job can run on it yet.".into());
    }
    let allowed: Vec<ClusterIx> = (0..n).filter(|&c| job.allowed & (1 << c) != 0).collect();
    let regions_text = join(&regions.iter().map(ToString::to_string).collect::<Vec<_>>(), "and");
    if allowed.is_empty() {
        let mut hubs: Vec<String> = Vec::new();
        for c in &net.clusters {
            let hub = format!("hub:{}", net.spec.hubs[c.hub].id);
            if !hubs.contains(&hub) {
                hubs.push(hub);
            }
        }
        return Some(format!(
            "No cluster is in the allowed regions ({regions_text}): this network's clusters are in {}.",
            join(&hubs, "and")
        ));
    }
    // Residency is named only when it removed clusters; a region list that allows every
    // cluster is no part of why the job cannot run.
    let scoped = allowed.len() < n;
    let scope = if scoped { format!(" in the allowed regions ({regions_text})") } else { String::new() };
    let matching: Vec<(ClusterIx, usize)> = allowed
        .iter()
        .flat_map(|&c| (0..net.clusters[c].pools.len()).map(move |p| (c, p)))
        .filter(|&(c, p)| model_fits(job, net.clusters[c].pools[p].gpu))
        .collect();
    if matching.is_empty() {
        return Some(no_model(job, net, &allowed, scoped, &scope));
    }
    if matching.iter().any(|&(c, p)| shape_fits(job, &net.clusters[c].pools[p])) {
        return None;
    }
    Some(too_small(job, net, &matching, &scope))
}

/// Whether one empty node of `pool` could hold the job: the rule of `PoolState::shape_fits`,
/// read from the network instead of the scheduler's state (they are built from the same
/// numbers).
fn shape_fits(job: &JobReq, pool: &NodePool) -> bool {
    pool.nodes > 0
        && u32::from(job.gpus) <= pool.gpus_per_node
        && job.cpu_milli <= node_cores(job, pool)
        && job.memory_mib <= pool.memory_mib
}

/// The cores of a node of `pool` the job may have (see [`super::node_cpu_milli_for`]).
fn node_cores(job: &JobReq, pool: &NodePool) -> u32 {
    super::node_cpu_milli_for(job.gpus, pool.cpu_milli, pool.gpus_per_node)
}

/// The sentence for a job whose GPU model (or any GPU, or any node at all) is missing from
/// the clusters it may use.
fn no_model(job: &JobReq, net: &Network, allowed: &[ClusterIx], scoped: bool, scope: &str) -> String {
    if job.gpus == 0 {
        // A CPU-only job fits any pool's model, so only clusters without pools get here.
        return format!("No cluster{scope} has any nodes, so there is nowhere to run the job.");
    }
    let models_in = |clusters: &mut dyn Iterator<Item = ClusterIx>| -> Vec<usize> {
        let mut seen = 0u64;
        for c in clusters {
            for pool in &net.clusters[c].pools {
                if let Some(g) = pool.gpu {
                    seen |= 1 << g;
                }
            }
        }
        (0..net.spec.gpu_models.len()).filter(|&g| seen & (1 << g) != 0).collect()
    };
    let names = |models: &[usize]| -> Vec<String> { models.iter().map(|&g| net.spec.gpu_models[g].name.clone()).collect() };
    let there = models_in(&mut allowed.iter().copied());
    let (who, verb) = if scoped { ("the clusters there", "have") } else { ("this network", "has") };
    if any_model(job, net) {
        // Any model would do, so the clusters have no GPUs at all.
        return format!("The job asks for {}, but no cluster{scope} has GPUs: {who} {verb} only CPU nodes.", gpu_ask(job));
    }
    let wanted: Vec<usize> = (0..net.spec.gpu_models.len()).filter(|&g| job.gpu_models & (1 << g) != 0).collect();
    let wanted_text = format!("{} GPUs", join(&names(&wanted), "or"));
    let has = if there.is_empty() {
        format!("{who} {verb} only CPU nodes")
    } else {
        format!("{who} {verb} {} GPUs", join(&names(&there), "and"))
    };
    let mut out = format!("No cluster{scope} has {wanted_text}; {has}");
    if scoped {
        // The model may exist outside the regions: say where, so the user can choose between
        // widening the regions and changing the model.
        let elsewhere: Vec<String> = (0..net.clusters.len())
            .filter(|&c| job.allowed & (1 << c) == 0)
            .filter(|&c| net.clusters[c].pools.iter().any(|p| p.gpu.is_some_and(|g| job.gpu_models & (1 << g) != 0)))
            .map(|c| net.clusters[c].id.clone())
            .collect();
        if !elsewhere.is_empty() {
            out.push_str(&format!(" ({wanted_text} are only in {}, outside those regions)", join(&elsewhere, "and")));
        }
    }
    out.push('.');
    out
}

/// One dimension of a node: GPUs, cores or memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dim {
    Gpus,
    Cores,
    Memory,
}

impl Dim {
    fn short(self) -> &'static str {
        match self {
            Dim::Gpus => "too few GPUs",
            Dim::Cores => "too few cores",
            Dim::Memory => "too little memory",
        }
    }
}

/// The sentence for a job that no single node of a matching pool can hold: what it asks for,
/// what the largest such node has, and which dimensions fall short.
fn too_small(job: &JobReq, net: &Network, matching: &[(ClusterIx, usize)], scope: &str) -> String {
    // GPUs are compared only for a GPU job: a CPU-only job uses a GPU node's cores, not its GPUs.
    let dims: &[Dim] = if job.gpus > 0 { &[Dim::Gpus, Dim::Cores, Dim::Memory] } else { &[Dim::Cores, Dim::Memory] };
    let ask = |d: Dim| -> f64 {
        match d {
            Dim::Gpus => f64::from(job.gpus),
            Dim::Cores => f64::from(job.cpu_milli),
            Dim::Memory => f64::from(job.memory_mib),
        }
    };
    let has = |pool: &NodePool, d: Dim| -> f64 {
        match d {
            Dim::Gpus => f64::from(pool.gpus_per_node),
            Dim::Cores => f64::from(node_cores(job, pool)),
            Dim::Memory => f64::from(pool.memory_mib),
        }
    };
    let shortfalls = |pool: &NodePool| -> Vec<Dim> { dims.iter().copied().filter(|&d| ask(d) > has(pool, d)).collect() };
    // The node to compare with is the one that falls short in the fewest dimensions and, among
    // those, by the least (the sum of asked over had in the short dimensions), so the sentence
    // names what is really missing rather than everything a small node lacks. A pool with no
    // nodes has no node to compare with.
    let cost = |pool: &NodePool| -> (usize, f64) {
        let short = shortfalls(pool);
        (short.len(), short.iter().map(|&d| ask(d) / has(pool, d).max(1.0)).sum())
    };
    let best = matching.iter().copied().filter(|&(c, p)| net.clusters[c].pools[p].nodes > 0).min_by(|&(c1, p1), &(c2, p2)| {
        let (a, b) = (&net.clusters[c1].pools[p1], &net.clusters[c2].pools[p2]);
        let (ka, kb) = (cost(a), cost(b));
        // Ties go to the bigger node, dimension by dimension, so "largest" is true.
        let bigger = dims.iter().fold(std::cmp::Ordering::Equal, |o, &d| o.then(has(b, d).total_cmp(&has(a, d))));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(bigger)
    });
    let with = match (job.gpus, any_model(job, net)) {
        (0, _) => String::new(),
        (_, true) => " with GPUs".into(),
        (_, false) => {
            let wanted: Vec<String> = (0..net.spec.gpu_models.len())
                .filter(|&g| job.gpu_models & (1 << g) != 0)
                .map(|g| net.spec.gpu_models[g].name.clone())
                .collect();
            format!(" with {} GPUs", join(&wanted, "or"))
        }
    };
    let Some((c, p)) = best else {
        return format!("No cluster{scope} has a node{with}: the pools that would do have no nodes.");
    };
    let pool = &net.clusters[c].pools[p];
    let ask_text: Vec<String> = dims
        .iter()
        .map(|&d| match d {
            Dim::Gpus => gpu_ask(job),
            Dim::Cores => cores(job.cpu_milli),
            Dim::Memory => memory(job.memory_mib),
        })
        .collect();
    let has_text: Vec<String> = dims
        .iter()
        .map(|&d| match d {
            Dim::Gpus => plural(u64::from(pool.gpus_per_node), "GPU", "GPUs"),
            Dim::Cores if node_cores(job, pool) < pool.cpu_milli => {
                format!(
                    "{} open to CPU-only work (half of its {} are kept for its GPUs)",
                    cores(node_cores(job, pool)),
                    cores(pool.cpu_milli)
                )
            }
            Dim::Cores => cores(pool.cpu_milli),
            Dim::Memory => memory(pool.memory_mib),
        })
        .collect();
    let short: Vec<String> = shortfalls(pool).iter().map(|d| d.short().to_string()).collect();
    format!(
        "No node{scope} is big enough: the job asks for {} on one node, and the largest node{with} (pool {} of cluster {}) has {}: {}.",
        join(&ask_text, "and"),
        pool.name,
        net.clusters[c].id,
        join(&has_text, "and"),
        join(&short, "and"),
    )
}

/// Whether the job accepts every GPU model of the network (it named none, or named them all).
fn any_model(job: &JobReq, net: &Network) -> bool {
    (0..net.spec.gpu_models.len()).all(|g| job.gpu_models & (1 << g) != 0)
}

/// What a GPU job asks for: whole GPUs, or a share of one.
fn gpu_ask(job: &JobReq) -> String {
    if job.gpus == 1 && job.gpu_milli < 1000 {
        return format!("{} of a GPU", decimal(u64::from(job.gpu_milli), 1000));
    }
    plural(u64::from(job.gpus), "GPU", "GPUs")
}

/// Thousandths of a core as cores, exactly (`1.5 cores`, `1 core`).
fn cores(milli: u32) -> String {
    let n = decimal(u64::from(milli), 1000);
    if milli == 1000 { format!("{n} core") } else { format!("{n} cores") }
}

/// MiB as GiB when it is a whole number of them, and as MiB otherwise, so that the number
/// shown is exact and the job's ask and the node's size never round to the same figure.
fn memory(mib: u32) -> String {
    if mib.is_multiple_of(1024) { format!("{} GiB", mib / 1024) } else { format!("{mib} MiB") }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") }
}

/// `value / scale` written exactly, without trailing zeros (`scale` is a power of ten).
fn decimal(value: u64, scale: u64) -> String {
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `a`, `a and b`, `a, b and c` (with `or` in place of `and` when asked).
fn join(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_exactly() {
        assert_eq!(cores(120_000), "120 cores");
        assert_eq!(cores(1000), "1 core");
        assert_eq!(cores(1500), "1.5 cores");
        assert_eq!(cores(250), "0.25 cores");
        assert_eq!(memory(524_288), "512 GiB");
        assert_eq!(memory(1500), "1500 MiB");
        assert_eq!(join(&["a".into(), "b".into(), "c".into()], "or"), "a, b or c");
    }
}
