//! The sentence that says why a job can never run: one per binding constraint, with numbers,
//! and present exactly when the scheduler's static filter refuses the job.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::sync::Arc;

use compute::file::builtin_network;
use compute::scheduler::never;
use compute::{JobReq, JobSpec, Network, Policy, Scheduler, Weights};
use serde_json::{Value, json};

/// A batch job with the given fields over a small default (1 GPU, 4 cores, 16 GiB), checked
/// as the service checks it.
fn job(net: &Network, fields: Value) -> JobSpec {
    let mut doc = json!({"kind": "batch_inference", "gpus": 1, "cpu_milli": 4000, "memory_mib": 16384, "duration_s": 600});
    for (k, v) in fields.as_object().unwrap() {
        doc[k] = v.clone();
    }
    let spec: JobSpec = serde_json::from_value(doc).unwrap();
    spec.normalise(net).unwrap()
}

fn sentence(net: &Network, fields: Value) -> String {
    never::summary(&job(net, fields), net).expect("the job never fits")
}

/// The built-in network with every GPU pool of zhangjiakou (Hebei's only cluster) removed.
fn hebei_cpu_only() -> Network {
    let mut spec = builtin_network().unwrap().spec;
    let c = spec.clusters.iter_mut().find(|c| c.id == "zhangjiakou").unwrap();
    c.node_pools.retain(|p| p.gpu_model.is_none());
    Network::build(spec).unwrap()
}

#[test]
fn a_region_with_no_cluster_is_named_with_the_hubs_that_have_clusters() {
    let net = builtin_network().unwrap();
    // `normalise` refuses a region that names nothing; the sentence must still read well for
    // a network changed under a job (so this spec is not normalised).
    let spec: JobSpec = serde_json::from_value(json!({
        "kind": "training", "gpus": 1, "cpu_milli": 1000, "memory_mib": 1024, "duration_s": 60,
        "allowed_regions": ["province:Tibet"]
    }))
    .unwrap();
    assert_eq!(
        never::summary(&spec, &net).unwrap(),
        "No cluster is in the allowed regions (province:Tibet): this network's clusters are in hub:jingjinji, hub:changsanjiao, \
         hub:yuegangao, hub:chengyu, hub:neimenggu, hub:guizhou, hub:gansu and hub:ningxia."
    );
}

#[test]
fn a_gpu_model_missing_from_the_allowed_regions_names_what_is_there_and_where_it_is() {
    let net = builtin_network().unwrap();
    assert_eq!(
        sentence(&net, json!({"gpus": 8, "gpu_models": ["V100M32"], "allowed_regions": ["province:Hebei"]})),
        "No cluster in the allowed regions (province:Hebei) has V100M32 GPUs; the clusters there have T4, G2 and A100 GPUs \
         (V100M32 GPUs are only in tianfu and zhongwei, outside those regions)."
    );
}

#[test]
fn a_gpu_model_no_cluster_has_lists_the_models_the_network_has() {
    let net = builtin_network().unwrap();
    assert_eq!(
        sentence(&net, json!({"gpus": 1, "gpu_models": ["H100"]})),
        "No cluster has H100 GPUs; this network has T4, P100, V100M16, V100M32, A10, G2, G3, A100, H800, L40S and 910B GPUs."
    );
}

#[test]
fn a_gpu_job_in_regions_with_only_cpu_nodes_says_so() {
    let net = hebei_cpu_only();
    assert_eq!(
        sentence(&net, json!({"gpus": 2, "allowed_regions": ["province:Hebei"]})),
        "The job asks for 2 GPUs, but no cluster in the allowed regions (province:Hebei) has GPUs: the clusters there have only CPU nodes."
    );
    assert_eq!(
        sentence(&net, json!({"gpus": 1, "gpu_models": ["A100"], "allowed_regions": ["province:Hebei"]})),
        "No cluster in the allowed regions (province:Hebei) has A100 GPUs; the clusters there have only CPU nodes \
         (A100 GPUs are only in tianfu, guian and zhongwei, outside those regions)."
    );
}

#[test]
fn too_few_cores_on_the_largest_matching_node_names_cores() {
    let net = builtin_network().unwrap();
    assert_eq!(
        sentence(&net, json!({"gpus": 8, "gpu_models": ["V100M32"], "cpu_milli": 120_000, "memory_mib": 512 * 1024})),
        "No node is big enough: the job asks for 8 GPUs, 120 cores and 512 GiB on one node, and the largest node with V100M32 GPUs \
         (pool v100m32-8x of cluster tianfu) has 8 GPUs, 96 cores and 768 GiB: too few cores."
    );
}

#[test]
fn more_gpus_than_any_node_holds_names_gpus() {
    let net = builtin_network().unwrap();
    assert_eq!(
        sentence(&net, json!({"gpus": 16, "cpu_milli": 8000})),
        "No node is big enough: the job asks for 16 GPUs, 8 cores and 16 GiB on one node, and the largest node with GPUs \
         (pool 910b-8x of cluster chongqing) has 8 GPUs, 192 cores and 1024 GiB: too few GPUs."
    );
}

#[test]
fn a_cpu_only_job_too_big_for_any_node_leaves_gpus_out() {
    let net = builtin_network().unwrap();
    assert_eq!(
        sentence(&net, json!({"gpus": 0, "cpu_milli": 300_000, "memory_mib": 4 * 1024 * 1024})),
        "No node is big enough: the job asks for 300 cores and 4096 GiB on one node, and the largest node \
         (pool 910b-8x of cluster chongqing) has 96 cores open to CPU-only work (half of its 192 cores are kept for its \
         GPUs) and 1024 GiB: too few cores and too little memory."
    );
}

#[test]
fn memory_short_inside_the_allowed_regions_names_the_regions_and_memory() {
    let net = builtin_network().unwrap();
    assert_eq!(
        sentence(&net, json!({"gpus": 8, "memory_mib": 1536 * 1024 + 1, "allowed_regions": ["province:Hebei", "province:Shanghai"]})),
        "No node in the allowed regions (province:Hebei and province:Shanghai) is big enough: the job asks for 8 GPUs, 4 cores and \
         1572865 MiB on one node, and the largest node with GPUs (pool a100-8x of cluster zhangjiakou) has 8 GPUs, 128 cores and \
         1024 GiB: too little memory."
    );
}

#[test]
fn a_share_of_a_gpu_is_written_as_a_share() {
    let net = builtin_network().unwrap();
    let s = sentence(&net, json!({"gpus": 1, "gpu_milli": 500, "cpu_milli": 500_000}));
    assert!(s.contains("asks for 0.5 of a GPU, 500 cores and 16 GiB"), "{s}");
    assert!(s.ends_with(": too few cores."), "{s}");
}

#[test]
fn a_job_some_cluster_can_run_has_no_sentence() {
    let net = builtin_network().unwrap();
    assert_eq!(never::summary(&job(&net, json!({"gpus": 0, "cpu_milli": 32_000})), &net), None);
    assert_eq!(never::summary(&job(&net, json!({"gpus": 8, "gpu_models": ["V100M32"], "cpu_milli": 96_000})), &net), None);
}

/// The sentence and the scheduler's filter agree on which jobs can never run, over a grid of
/// shapes, models and regions on the built-in network and on one with a CPU-only province.
#[test]
fn the_sentence_exists_exactly_when_the_scheduler_refuses() {
    for net in [builtin_network().unwrap(), hebei_cpu_only()] {
        let sched = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
        let mut refused = 0;
        for gpus in [0, 1, 2, 4, 8, 9] {
            for models in [json!([]), json!(["V100M32"]), json!(["H100"]), json!(["T4", "A10"])] {
                if gpus == 0 && models != json!([]) {
                    continue;
                }
                for cores in [1_000, 96_000, 128_000, 192_000, 200_000] {
                    for regions in [json!([]), json!(["province:Hebei"]), json!(["hub:chengyu"])] {
                        let spec = job(
                            &net,
                            json!({"gpus": gpus, "gpu_models": models, "cpu_milli": cores, "memory_mib": 800 * 1024, "allowed_regions": regions}),
                        );
                        let refuses = !sched.never_reasons(&JobReq::compile(&spec, &net)).is_empty();
                        refused += usize::from(refuses);
                        assert_eq!(never::summary(&spec, &net).is_some(), refuses, "{spec:?}");
                    }
                }
            }
        }
        assert!(refused > 0, "the grid has jobs that never fit");
    }
}

#[test]
fn a_cpu_only_job_wanting_more_than_half_a_gpu_node_is_refused_not_left_waiting() {
    // The built-in CPU nodes have 32 cores; a GPU node keeps half its cores for its GPUs, so a
    // 120-core CPU-only job could start only while some node's GPUs happen to be busy.
    let net = builtin_network().unwrap();
    let spec: JobSpec =
        serde_json::from_value(json!({"kind": "batch_inference", "gpus": 0, "cpu_milli": 120_000, "memory_mib": 1024, "duration_s": 60}))
            .unwrap();
    let job = JobReq::compile(&spec.clone().normalise(&net).unwrap(), &net);
    let s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    assert!(!s.never_reasons(&job).is_empty());
    let text = never::summary(&spec, &net).unwrap();
    assert!(text.contains("open to CPU-only work (half of its") && text.ends_with("too few cores."), "{text}");
}
