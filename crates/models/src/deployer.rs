//! Keeping a model's replicas: the decisions, as a pure function. Given what is wanted (a
//! model and its replica count) and what is seen (each replica job's state and whether it
//! answers its health check), [`plan`] says which jobs to submit or cancel and which replicas
//! the gateway may route to now. The service around it does the I/O: it submits and cancels
//! jobs, probes health URLs, and hands the routes to the gateway.
//!
//! A replica is routed to only while its job runs and it answers health. One that stops
//! answering, or whose job ends or is lost, leaves the routes at once (requests already sent
//! finish: the gateway routes new requests only). A lost job is re-placed by the job lifecycle
//! under its `on_lost` policy; a job that ended for good is replaced by a new one, up to the
//! count, at most [`MAX_STARTS_PER_PLAN`] at a time so a model that cannot start does not fill
//! the queue.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most replicas one model may have.
pub const MAX_REPLICAS: u32 = 16;
/// Most new replica jobs one plan submits for one model.
pub const MAX_STARTS_PER_PLAN: usize = 2;

/// What the job of a replica is doing, as the job lifecycle says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Queued, placed or submitted: not running yet (or running again after a loss).
    Pending,
    /// Running on a cluster.
    Running { cluster: String },
    /// Ended for good: succeeded, failed or cancelled, or lost past its attempts.
    Ended,
}

/// One replica as the service knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub job_id: String,
    pub port: u16,
}

/// What is seen of a replica now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub state: JobState,
    /// Whether its health URL answered 2xx on the last probe.
    pub healthy: bool,
}

/// A replica the gateway may send requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The deployment's id in the gateway: the replica's job.
    pub id: String,
    pub port: u16,
    pub cluster: String,
}

/// What to do for one model now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// This many new replicas to start.
    pub start: usize,
    /// The jobs of replicas to stop (scaled down or undeployed), newest first.
    pub cancel: Vec<String>,
    /// Replicas whose jobs ended for good: forget them.
    pub forget: Vec<String>,
    /// The replicas to route to.
    pub routes: Vec<Route>,
}

/// The plan for a model that should have `wanted` replicas (0: undeployed), given its known
/// replicas (oldest first) and what is seen of them.
pub fn plan(wanted: u32, replicas: &[Replica], seen: &BTreeMap<String, Seen>) -> Plan {
    let wanted = wanted.min(MAX_REPLICAS) as usize;
    let mut p = Plan::default();
    let mut live = Vec::new();
    for r in replicas {
        match seen.get(&r.job_id) {
            Some(Seen { state: JobState::Ended, .. }) => p.forget.push(r.job_id.clone()),
            other => live.push((r, other)),
        }
    }
    // Scaling down stops the newest first: the oldest have warm caches and proven health.
    while live.len() > wanted {
        if let Some((r, _)) = live.pop() {
            p.cancel.push(r.job_id.clone());
        }
    }
    p.start = (wanted - live.len()).min(MAX_STARTS_PER_PLAN);
    for (r, s) in live {
        if let Some(Seen { state: JobState::Running { cluster }, healthy: true }) = s {
            p.routes.push(Route { id: r.job_id.clone(), port: r.port, cluster: cluster.clone() });
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, port: u16) -> Replica {
        Replica { job_id: id.into(), port }
    }

    fn running(healthy: bool) -> Seen {
        Seen { state: JobState::Running { cluster: "zjk".into() }, healthy }
    }

    fn seen(pairs: &[(&str, Seen)]) -> BTreeMap<String, Seen> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn a_new_model_starts_its_replicas_a_few_at_a_time() {
        let p = plan(3, &[], &BTreeMap::new());
        assert_eq!((p.start, p.cancel.len(), p.routes.len()), (MAX_STARTS_PER_PLAN, 0, 0));
        let p = plan(3, &[r("a", 1), r("b", 2)], &seen(&[("a", running(false)), ("b", Seen { state: JobState::Pending, healthy: false })]));
        assert_eq!(p.start, 1);
        assert!(p.routes.is_empty(), "nothing is routed before it answers health");
    }

    #[test]
    fn only_running_healthy_replicas_are_routed() {
        let p = plan(3, &[r("a", 1), r("b", 2), r("c", 3)], &seen(&[("a", running(true)), ("b", running(false)), ("c", running(true))]));
        assert_eq!(p.routes.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(p.routes[0], Route { id: "a".into(), port: 1, cluster: "zjk".into() });
        assert_eq!(p.start, 0);
        // A replica that is not seen at all (its job unknown for now) is kept but not routed.
        let p = plan(1, &[r("a", 1)], &BTreeMap::new());
        assert_eq!((p.start, p.routes.len(), p.forget.len()), (0, 0, 0));
    }

    #[test]
    fn a_lost_replica_leaves_the_routes_and_one_that_ended_is_replaced() {
        // Lost: the lifecycle queues it again, so it is pending, kept, and not routed.
        let p = plan(2, &[r("a", 1), r("b", 2)], &seen(&[("a", running(true)), ("b", Seen { state: JobState::Pending, healthy: false })]));
        assert_eq!((p.start, p.routes.len()), (0, 1));
        // Ended for good: forgotten and replaced.
        let p = plan(2, &[r("a", 1), r("b", 2)], &seen(&[("a", running(true)), ("b", Seen { state: JobState::Ended, healthy: false })]));
        assert_eq!((p.start, p.forget.clone()), (1, vec!["b".to_string()]));
    }

    #[test]
    fn scaling_down_stops_the_newest_and_undeploying_stops_all() {
        let all = [r("a", 1), r("b", 2), r("c", 3)];
        let s = seen(&[("a", running(true)), ("b", running(true)), ("c", running(true))]);
        let p = plan(1, &all, &s);
        assert_eq!(p.cancel, ["c", "b"]);
        assert_eq!(p.routes.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["a"], "stopping replicas take no new requests");
        let p = plan(0, &all, &s);
        assert_eq!((p.cancel.len(), p.routes.len(), p.start), (3, 0, 0));
        assert_eq!(plan(99, &[], &BTreeMap::new()).start, MAX_STARTS_PER_PLAN, "the count is capped");
    }
}
