//! Property tests: whatever the jobs and the order of arrivals and departures, the scheduler
//! never breaks a hard constraint, never over-commits a node, and is deterministic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use common::{plain_job, small_network};
use compute::scheduler::{Allocation, Decision};
use compute::{JobKind, JobReq, JobSpec, Network, Policy, Region, Scheduler, Weights};
use proptest::prelude::*;
use std::sync::Arc;

fn job_strategy() -> impl Strategy<Value = JobSpec> {
    (
        prop_oneof![Just(0u32), Just(1), Just(1), Just(2), Just(4), Just(8)],
        prop_oneof![Just(1000u32), 100u32..1000],
        prop_oneof![Just(vec![]), Just(vec!["T4".to_string()]), Just(vec!["V100".to_string()])],
        1_000u32..40_000,
        1_024u32..200_000,
        60u64..20_000,
        prop_oneof![
            Just(vec![]),
            Just(vec![Region::Province("Hebei".into())]),
            Just(vec![Region::Hub("west".into()), Region::Hub("south".into())]),
        ],
        prop::option::of((0usize..4, 0.0f64..500.0)),
        prop::option::of(prop_oneof![Just("east"), Just("west"), Just("south")]),
        prop::option::of(0u64..86_400),
    )
        .prop_map(|(gpus, milli, models, cpu, mem, dur, regions, data, origin, slack)| {
            let gpu_milli = if gpus == 0 {
                0
            } else if gpus == 1 {
                milli
            } else {
                1000
            };
            JobSpec {
                kind: JobKind::Training,
                gpus,
                gpu_milli,
                gpu_models: if gpus == 0 { vec![] } else { models },
                cpu_milli: cpu,
                memory_mib: mem,
                duration_s: dur,
                dataset: data.map(|(c, gb)| compute::DatasetRef { cluster: ["e1", "e2", "w1", "s1"][c].into(), size_gb: gb }),
                allowed_regions: regions,
                origin_hub: origin.map(Into::into),
                priority: 0,
                deadline_s: slack.map(|s| dur + s),
                ..plain_job(0, 0, "T4", 1, 1, 1)
            }
        })
}

/// Runs jobs in order; after each arrival, releases the oldest running job if `release_every`
/// divides the step. Returns what happened, for comparing runs.
fn run(net: &Network, policy: Policy, jobs: &[JobSpec], release_every: usize) -> Vec<Option<Allocation>> {
    let mut s = Scheduler::new(Arc::new(net.clone()), policy, Weights::default());
    let mut running: std::collections::VecDeque<(JobSpec, Allocation)> = Default::default();
    let mut out = Vec::new();
    for (i, spec) in jobs.iter().enumerate() {
        let spec = spec.clone().normalise(net).unwrap();
        let job = JobReq::compile(&spec, net);
        let t = 1_735_660_800.0 + i as f64 * 600.0;
        match s.place(&job, t, 0.0) {
            Decision::Placed { allocation, explanation } => {
                check_placement(net, &spec, &job, allocation);
                assert_eq!(explanation.chosen.cluster, net.clusters[allocation.cluster as usize].id);
                running.push_back((spec, allocation));
                out.push(Some(allocation));
            }
            Decision::Defer(shift) => {
                // A shift is worth its while and still meets the deadline.
                let delay = shift.until_s - t;
                let usable = job.slack_s * (1.0 - compute::scheduler::shift::SLACK_RESERVE_SHARE);
                assert!(delay >= compute::scheduler::shift::MIN_SHIFT_S && delay + shift.later.transfer_s <= usable + 1e-6);
                assert!(shift.later.total_cny < shift.now.total_cny + shift.now.congestion_cny);
                out.push(None);
            }
            Decision::HoldBack { until_s } => {
                // A job is held back for no longer than the limit, counted from its arrival.
                assert!(until_s >= t && until_s - t <= compute::scheduler::MAX_WAIT_FOR_S, "{until_s} at {t}");
                out.push(None);
            }
            Decision::Wait | Decision::Never(_) => out.push(None),
        }
        check_capacity(&s, net);
        if release_every > 0
            && i % release_every == 0
            && let Some((_, a)) = running.pop_front()
        {
            s.release(a);
            check_capacity(&s, net);
        }
    }
    out
}

fn check_placement(net: &Network, spec: &JobSpec, job: &JobReq, a: Allocation) {
    let c = &net.clusters[a.cluster as usize];
    assert!(job.allowed & (1 << a.cluster) != 0, "residency broken: {spec:?} on {}", c.id);
    assert!(vocab::allows(&spec.allowed_regions, Some(net.place(a.cluster as usize))), "residency broken: {spec:?} on {}", c.id);
    let p = &c.pools[a.pool as usize];
    if spec.gpus == 0 {
        assert_eq!(a.slot.gpu_mask, 0);
    } else {
        let g = p.gpu.expect("a GPU job on a GPU pool");
        if !spec.gpu_models.is_empty() {
            assert!(spec.gpu_models.contains(&net.spec.gpu_models[g].name), "GPU model constraint broken");
        }
        assert_eq!(a.slot.gpu_mask.count_ones(), spec.gpus, "wrong number of GPUs");
        assert_eq!(u32::from(a.slot.gpu_milli), spec.gpu_milli);
    }
}

fn check_capacity(s: &Scheduler, net: &Network) {
    for (c, cluster) in net.clusters.iter().enumerate() {
        for (p, pool) in cluster.pools.iter().enumerate() {
            let st = s.pool_state(c, p);
            st.check_invariants().unwrap();
            assert!(st.gpu_free().iter().all(|&f| f <= 1000), "a GPU over-committed");
            for n in 0..pool.nodes as usize {
                let (cpu, mem) = st.host_free(n);
                assert!(cpu <= pool.cpu_milli && mem <= pool.memory_mib, "host over-committed");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn constraints_and_capacity_hold(jobs in prop::collection::vec(job_strategy(), 1..120), policy in 0usize..4, release in 0usize..4) {
        let net = small_network();
        run(&net, Policy::ALL[policy], &jobs, release);
    }

    #[test]
    fn same_input_same_placements(jobs in prop::collection::vec(job_strategy(), 1..80), policy in 0usize..4) {
        let net = small_network();
        let a = run(&net, Policy::ALL[policy], &jobs, 2);
        let b = run(&net, Policy::ALL[policy], &jobs, 2);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn released_capacity_is_all_given_back(jobs in prop::collection::vec(job_strategy(), 1..60)) {
        let net = small_network();
        let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
        let mut allocs = Vec::new();
        for spec in &jobs {
            let job = JobReq::compile(&spec.clone().normalise(&net).unwrap(), &net);
            if let Decision::Placed { allocation, .. } = s.place(&job, 1_735_660_800.0, 0.0) {
                allocs.push(allocation);
            }
        }
        for a in allocs {
            s.release(a);
        }
        for c in 0..net.clusters.len() {
            prop_assert_eq!(s.gpu_usage(c).0, 0);
            prop_assert_eq!(s.cpu_usage(c).0, 0);
        }
    }
}

/// A training job with no data, residency or origin, for the example tests below.
#[test]
fn aiplus_prefers_the_cheap_green_cluster_and_explains_why() {
    let net = small_network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    let spec = JobSpec { origin_hub: Some("east".into()), ..plain_job(8, 1000, "V100", 32_000, 100_000, 86_400) }.normalise(&net).unwrap();
    let job = JobReq::compile(&spec, &net);
    let Decision::Placed { explanation, .. } = s.place(&job, 1_735_660_800.0, 0.0) else { panic!("not placed") };
    assert_eq!(explanation.chosen.cluster, "w1");
    assert_eq!(explanation.runners_up.len(), 1);
    assert_eq!(explanation.runners_up[0].cluster, "e2");
    assert!(explanation.chosen.total_cny < explanation.runners_up[0].total_cny);
    // One day of 8 × 300 W of GPU and 32 cores × 4.3 W of CPU, at PUE 1.2.
    let expected_kwh = (8.0 * 300.0 + 32.0 * 4.3) / 1000.0 * 1.2 * 24.0;
    assert!((explanation.chosen.energy_kwh - expected_kwh).abs() < 1e-9, "{}", explanation.chosen.energy_kwh);
    // The T4-only clusters are excluded for their GPU model.
    assert!(explanation.excluded.iter().any(|e| e.cluster == "s1"));

    // Nearest keeps the same job in its origin hub.
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Nearest, Weights::default());
    let Decision::Placed { explanation, .. } = s.place(&job, 1_735_660_800.0, 0.0) else { panic!("not placed") };
    assert_eq!(explanation.chosen.cluster, "e2");
}

#[test]
fn impossible_jobs_are_never_and_full_clusters_wait() {
    let net = small_network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    let mut spec = plain_job(8, 1000, "T4", 1000, 1024, 60);
    // No T4 node holds 8 GPUs.
    let job = JobReq::compile(&spec.clone().normalise(&net).unwrap(), &net);
    assert!(matches!(s.place(&job, 0.0, 0.0), Decision::Never(r) if r.len() == 4));
    // Eight-GPU V100 jobs: four nodes in all, then the fifth waits.
    spec.gpu_models = vec!["V100".into()];
    let job = JobReq::compile(&spec.normalise(&net).unwrap(), &net);
    for _ in 0..4 {
        assert!(matches!(s.place(&job, 0.0, 0.0), Decision::Placed { .. }));
    }
    assert_eq!(s.place(&job, 0.0, 0.0), Decision::Wait);
}

#[test]
fn shares_pack_onto_partly_used_gpus_first() {
    let net = small_network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    let mut share = |milli: u32| {
        let spec = JobSpec { allowed_regions: vec![Region::Hub("south".into())], ..plain_job(1, milli, "T4", 1000, 1024, 600) };
        let job = JobReq::compile(&spec.normalise(&net).unwrap(), &net);
        match s.place(&job, 0.0, 0.0) {
            Decision::Placed { allocation, .. } => allocation.slot,
            other => panic!("{other:?}"),
        }
    };
    let a = share(500);
    let b = share(300);
    let c = share(200);
    // All three fit on one GPU (500 + 300 + 200 = 1000), leaving every other GPU whole.
    assert_eq!((a.node, a.gpu_mask), (b.node, b.gpu_mask));
    assert_eq!((a.node, a.gpu_mask), (c.node, c.gpu_mask));
}

#[test]
fn occupy_retakes_exact_slots_and_refuses_overcommit() {
    let net = Arc::new(small_network());
    let mut a = Scheduler::new(net.clone(), Policy::Aiplus, Weights::default());
    let spec = plain_job(8, 1000, "V100", 1000, 1024, 60).normalise(&net).unwrap();
    let job = JobReq::compile(&spec, &net);
    let Decision::Placed { allocation, .. } = a.place(&job, 0.0, 0.0) else { panic!() };
    // A fresh scheduler (a restart) takes the same slot once, and refuses it a second time.
    let mut b = Scheduler::new(net.clone(), Policy::Aiplus, Weights::default());
    assert!(b.occupy(&job, allocation));
    assert!(!b.occupy(&job, allocation));
    assert_eq!(a.gpu_usage(allocation.cluster as usize), b.gpu_usage(allocation.cluster as usize));
    let mut bogus = allocation;
    bogus.slot.node = 999;
    assert!(!b.occupy(&job, bogus));
    // A job whose constraints exclude the pool cannot take it back.
    let t4_only = JobReq::compile(&plain_job(8, 1000, "T4", 1000, 1024, 60), &net);
    let mut c = Scheduler::new(net.clone(), Policy::Aiplus, Weights::default());
    assert!(!c.occupy(&t4_only, allocation));
}

#[test]
fn a_long_job_does_not_fill_a_pool_it_can_avoid() {
    let net = small_network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    let month = plain_job(8, 1000, "V100", 32_000, 100_000, 30 * 86_400);
    let job = JobReq::compile(&month.normalise(&net).unwrap(), &net);
    // The first month-long job takes half of w1, the cheap green cluster, at no congestion price.
    let Decision::Placed { explanation, .. } = s.place(&job, 1_735_660_800.0, 0.0) else { panic!("not placed") };
    assert_eq!(explanation.chosen.cluster, "w1");
    assert_eq!(explanation.chosen.congestion_cny, 0.0);
    // The second would fill w1 for a month: it goes to e2, dearer but left with room, and the
    // explanation shows why.
    let Decision::Placed { explanation, .. } = s.place(&job, 1_735_660_800.0, 0.0) else { panic!("not placed") };
    assert_eq!(explanation.chosen.cluster, "e2", "{explanation:#?}");
    let w1 = explanation.runners_up.iter().find(|t| t.cluster == "w1").unwrap();
    assert!(w1.total_cny < explanation.chosen.total_cny, "w1 is cheaper on the objective alone");
    assert!(w1.congestion_cny > explanation.chosen.total_cny - w1.total_cny, "{w1:?}");
    // A one-minute job holds nothing for long: it still takes the cheap cluster's last node.
    let minute = plain_job(8, 1000, "V100", 32_000, 100_000, 60);
    let job = JobReq::compile(&minute.normalise(&net).unwrap(), &net);
    let Decision::Placed { explanation, .. } = s.place(&job, 1_735_660_800.0, 0.0) else { panic!("not placed") };
    assert_eq!(explanation.chosen.cluster, "w1");
}

#[test]
fn the_reserve_is_given_back_when_arrivals_are_not_captive_and_kept_when_they_are() {
    let net = small_network();
    let t0 = 1_735_660_800.0;
    let month = JobReq::compile(&plain_job(8, 1000, "V100", 32_000, 100_000, 30 * 86_400).normalise(&net).unwrap(), &net);
    // Tiny CPU-only jobs: allowed anywhere they could use six pools; kept to the south hub, only
    // s1's, which makes them captive there. Neither touches a V100.
    let tiny = |regions: Vec<Region>| {
        let spec = JobSpec { gpus: 0, gpu_milli: 0, gpu_models: vec![], allowed_regions: regions, ..plain_job(0, 0, "T4", 10, 16, 60) };
        JobReq::compile(&spec.normalise(&net).unwrap(), &net)
    };
    let second_month_goes_to = |arrival: &JobReq| {
        let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
        let Decision::Placed { explanation, .. } = s.place(&month, t0, 0.0) else { panic!("not placed") };
        assert_eq!(explanation.chosen.cluster, "w1");
        for i in 0..200 {
            assert!(matches!(s.arrive(arrival, t0 + f64::from(i)), Decision::Placed { .. }));
        }
        let Decision::Placed { explanation, .. } = s.place(&month, t0 + 200.0, 0.0) else { panic!("not placed") };
        explanation.chosen.cluster
    };
    // With no evidence (the test above) the last of w1 is kept in reserve. After 200 arrivals of
    // which none was captive, the reserve is all but free and the cheap, green cluster is filled.
    assert_eq!(second_month_goes_to(&tiny(vec![])), "w1");
    // After 200 captive ones the reserve is kept: the second month-long job goes to e2.
    assert_eq!(second_month_goes_to(&tiny(vec![Region::Hub("south".into())])), "e2");
}

#[test]
fn an_explanation_prices_what_nearest_would_have_chosen() {
    let net = small_network();
    let from_east = JobSpec { origin_hub: Some("east".into()), ..plain_job(1, 1000, "V100", 4000, 1024, 3600) };
    let job = JobReq::compile(&from_east.clone().normalise(&net).unwrap(), &net);
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    let Decision::Placed { explanation, .. } = s.place(&job, 1_735_660_800.0, 0.0) else { panic!("not placed") };
    // aiplus goes west; nearest would have stayed in the east, on its first V100 cluster.
    assert_eq!(explanation.chosen.cluster, "w1");
    let nearest = explanation.nearest.expect("an origin hub gives a nearest choice");
    assert_eq!(nearest.cluster, "e2");
    assert!(nearest.total_cny > explanation.chosen.total_cny, "{nearest:?} vs {:?}", explanation.chosen);
    // Under nearest itself the two are the same cluster.
    let mut n = Scheduler::new(Arc::new(net.clone()), Policy::Nearest, Weights::default());
    let Decision::Placed { explanation, .. } = n.place(&job, 1_735_660_800.0, 0.0) else { panic!("not placed") };
    assert_eq!(explanation.nearest.map(|t| t.cluster), Some(explanation.chosen.cluster));
    // Without an origin hub there is nothing to compare with.
    let anywhere = JobReq::compile(&plain_job(1, 1000, "V100", 4000, 1024, 3600).normalise(&net).unwrap(), &net);
    let Decision::Placed { explanation, .. } = s.place(&anywhere, 1_735_660_800.0, 0.0) else { panic!("not placed") };
    assert_eq!(explanation.nearest, None);
}

#[test]
fn a_cpu_only_job_uses_a_gpu_nodes_spare_cores_but_leaves_its_gpus_usable() {
    let net = small_network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    // Only s1 (two 2-T4 nodes of 64 cores, no CPU-only pool) is allowed.
    let cpu_job = |cores: u32| {
        let spec = JobSpec {
            gpus: 0,
            gpu_milli: 0,
            gpu_models: vec![],
            allowed_regions: vec![Region::Hub("south".into())],
            ..plain_job(0, 0, "T4", cores * 1000, 1024, 3600)
        };
        JobReq::compile(&spec.normalise(&net).unwrap(), &net)
    };
    // Half of an idle node's cores are open to CPU-only work, on each node...
    for _ in 0..2 {
        let Decision::Placed { allocation, explanation } = s.place(&cpu_job(32), 0.0, 0.0) else { panic!("not placed") };
        assert_eq!(explanation.chosen.cluster, "s1");
        assert_eq!(allocation.slot.gpu_mask, 0);
    }
    // ...and no more, so both nodes keep cores for their free GPUs.
    assert_eq!(s.place(&cpu_job(1), 0.0, 0.0), Decision::Wait);
    let t4 = JobReq::compile(
        &JobSpec { allowed_regions: vec![Region::Hub("south".into())], ..plain_job(2, 1000, "T4", 32_000, 1024, 60) }
            .normalise(&net)
            .unwrap(),
        &net,
    );
    assert!(matches!(s.place(&t4, 0.0, 0.0), Decision::Placed { .. }));
}

/// 10:00 China Standard Time on 2025-01-01 (a peak hour in the test tariff), and the midnight
/// after it, when the valley starts.
const PEAK_10H: f64 = 1_735_660_800.0 + 10.0 * 3600.0;
const NEXT_MIDNIGHT: f64 = 1_735_660_800.0 + 24.0 * 3600.0;

fn west_v100_job(net: &Network, deadline_s: Option<u64>) -> JobReq {
    let spec = JobSpec { allowed_regions: vec![Region::Hub("west".into())], deadline_s, ..plain_job(1, 1000, "V100", 4000, 1024, 3600) };
    JobReq::compile(&spec.normalise(net).unwrap(), net)
}

#[test]
fn a_deadline_job_at_the_peak_is_shifted_to_the_valley_and_runs_when_it_comes_back() {
    let net = small_network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    // Without a deadline, every second of waiting counts: it starts now, at the peak.
    assert!(matches!(s.place(&west_v100_job(&net, None), PEAK_10H, 0.0), Decision::Placed { .. }));
    // With 30 h of slack (15 h of it usable for shifting), the valley from midnight is in reach.
    let job = west_v100_job(&net, Some(3600 + 30 * 3600));
    let Decision::Defer(shift) = s.place(&job, PEAK_10H, 0.0) else { panic!("not shifted") };
    assert_eq!(shift.until_s, NEXT_MIDNIGHT);
    assert_eq!(net.clusters[shift.cluster].id, "w1");
    // The valley costs 0.4/1.7 of the peak, and waiting within the slack costs nothing.
    let ratio = shift.later.energy_cost_cny / shift.now.energy_cost_cny;
    assert!((ratio - 0.4 / 1.7).abs() < 1e-9, "{ratio}");
    assert_eq!(shift.later.delay_cost_cny, 0.0);
    assert!(shift.later.total_cny < shift.now.total_cny);
    // Back at midnight, nothing later is cheaper: it is placed, still at no delay cost.
    let Decision::Placed { explanation, .. } = s.place(&job, NEXT_MIDNIGHT, NEXT_MIDNIGHT - PEAK_10H) else { panic!("not placed") };
    assert_eq!((explanation.chosen.cluster.as_str(), explanation.chosen.delay_cost_cny), ("w1", 0.0));
    // Waiting past the slack is charged again, at the job's value of time.
    let late = s.score(&job, shift.cluster, 0, NEXT_MIDNIGHT, 30.0 * 3600.0 + 60.0);
    assert!((late.delay_cost_cny - 60.0 * s.delay_cny_per_s(&job)).abs() < 1e-9, "{}", late.delay_cost_cny);
}

#[test]
fn shifts_book_their_hour_so_the_valley_is_not_oversubscribed() {
    let net = small_network();
    let mut s = Scheduler::new(Arc::new(net.clone()), Policy::Aiplus, Weights::default());
    let job = west_v100_job(&net, Some(3600 + 30 * 3600));
    // w1 has 16 V100s; shifts may book at most half of them for the valley.
    let outcomes: Vec<bool> = (0..10).map(|_| matches!(s.place(&job, PEAK_10H, 0.0), Decision::Defer(_))).collect();
    assert_eq!(outcomes, [true, true, true, true, true, true, true, true, false, false]);
    // Once the valley has come, the bookings are spent: a new job may be shifted again.
    assert!(matches!(s.place(&job, NEXT_MIDNIGHT + 11.0 * 3600.0, 0.0), Decision::Defer(_)));
}

#[test]
fn a_deadline_must_leave_room_for_the_run_and_at_most_30_days_of_slack() {
    let net = small_network();
    let job = |d: u64| JobSpec { deadline_s: Some(d), ..plain_job(1, 1000, "T4", 1000, 1024, 3600) }.normalise(&net);
    let early = job(3599).unwrap_err();
    assert_eq!(early.field, "deadline_s");
    assert!(early.reason.contains("duration_s (3600)"), "{early}");
    assert_eq!(job(3600 + compute::job::MAX_DEADLINE_SLACK_S + 1).unwrap_err().field, "deadline_s");
    assert_eq!(job(3600).unwrap().slack_s(), 0);
    assert_eq!(job(3600 + compute::job::MAX_DEADLINE_SLACK_S).unwrap().slack_s(), compute::job::MAX_DEADLINE_SLACK_S);
    assert_eq!(JobReq::compile(&job(3600 + 7200).unwrap(), &net).slack_s, 7200.0);
}
