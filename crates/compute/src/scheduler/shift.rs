//! Time-shifting: starting deferrable work later, in cheaper and greener hours.
//!
//! A job with a deadline tells the scheduler how long it may wait (its slack). When such a job
//! could start now, `aiplus` also prices starting it later within that slack, on every cluster
//! that could hold it: the cheapest start of the run under the cluster's time-of-use tariff
//! ([`crate::tariff::Tariff::cheapest_start`]), with its carbon and transfer as usual and no
//! delay cost (the tenant gave the slack away). If the best later start beats the best start now
//! by at least [`MIN_SAVING_SHARE`], the job is deferred to it ([`super::Decision::Defer`]); the
//! caller offers it again then, and the same rule decides afresh with the slack that is left, so
//! a deferral can never outlive the deadline. A shift uses at most half the slack
//! ([`SLACK_RESERVE_SHARE`]): the rest is for waiting if the job finds no room when it returns.
//!
//! A deferral is only worth it if there is room when the hour comes. So the later start must
//! leave its pool at most [`SHIFT_FILL_MAX`] full, both now and on a projection of the load then:
//! what is free now, plus the running work due to end by then, minus the shifted runs already
//! booked to overlap.
//! Each deferral books its run, so the valley hour does not attract more work than it can hold.

use super::{ClusterIx, JobReq, Scheduler, ScoreTerms};

/// Shortest shift worth making: a quarter of an hour. Shorter ones save little and would have the
/// caller offer the job again and again.
pub const MIN_SHIFT_S: f64 = 900.0;
/// Least share of the start-now cost a shift must save.
pub const MIN_SAVING_SHARE: f64 = 0.02;
/// Most a shift may fill its pool, now and on the projection for its start. Work that is not
/// deferrable keeps arriving meanwhile and the projection cannot see it, so a shift is only
/// made into a pool with room to spare; on the busy openb replays a bar at the fill threshold
/// (3/4) let returning work crowd out what arrived meanwhile.
pub const SHIFT_FILL_MAX: f64 = 0.5;
/// Share of a job's slack a shift leaves unused, so that a job that finds no room when it comes
/// back can still wait for capacity and meet its deadline. On the busy openb default replay
/// (seed 7919, 20x arrivals, a tenth of the nodes) shifts that could use all the slack made 18
/// of 118 shifted jobs miss their deadlines.
pub const SLACK_RESERVE_SHARE: f64 = 0.5;

/// A decision to start a job later: when, where it would then run, and both prices.
#[derive(Clone, Debug, PartialEq)]
pub struct Shift {
    pub until_s: f64,
    pub cluster: ClusterIx,
    pub pool: usize,
    /// The objective terms of the best start now, which the shift is measured against.
    pub now: ScoreTerms,
    /// The terms of the later start.
    pub later: ScoreTerms,
}

impl Scheduler {
    /// The best later start of `job` within its slack, if it beats starting now (`now_rank`, the
    /// best candidate's rank, whose terms are `now`) by [`MIN_SAVING_SHARE`]. Books it when so.
    pub(super) fn shift(&mut self, job: &JobReq, now_s: f64, queue_s: f64, now_rank: f64, now: &ScoreTerms) -> Option<Shift> {
        let free_left_s = job.slack_s * (1.0 - SLACK_RESERVE_SHARE) - queue_s;
        if free_left_s < MIN_SHIFT_S {
            return None;
        }
        let mut best: Option<Shift> = None;
        let worth_below = now_rank * (1.0 - MIN_SAVING_SHARE);
        for c in 0..self.net.clusters.len() {
            // No start on this cluster can cost less than its cheapest hour throughout, with the
            // carbon that does not depend on the hour: if that already loses, skip the search.
            let beat = best.as_ref().map_or(worth_below, |b| b.later.total_cny.min(worth_below));
            let Some((p, floor_cny)) = self.shift_floor(job, c) else { continue };
            if floor_cny >= beat {
                continue;
            }
            if let Some(until_s) = self.shift_start(job, c, p, now_s, free_left_s) {
                let later = self.score(job, c, p, until_s, queue_s + (until_s - now_s));
                if best.as_ref().is_none_or(|b| later.total_cny < b.later.total_cny) {
                    best = Some(Shift { until_s, cluster: c, pool: p, now: now.clone(), later });
                }
            }
        }
        let shift = best?;
        if shift.later.total_cny > worth_below {
            return None;
        }
        let (unit, units) = self.units(job);
        let seq = self.load.next_seq();
        let end_s = shift.until_s + shift.later.transfer_s + job.duration_s;
        self.load.pools[shift.cluster][shift.pool][unit as usize].book(shift.until_s, end_s, units, seq).then_some(shift)
    }

    /// The pool a shift to cluster `c` would use (its least power-hungry one that could hold
    /// the job) and a floor under the cost of any start there: the cluster's cheapest hour
    /// throughout, plus the carbon, which does not depend on the hour.
    fn shift_floor(&self, job: &JobReq, c: ClusterIx) -> Option<(usize, f64)> {
        if self.static_exclusion(job, c).is_some() || !self.is_healthy(c) {
            return None;
        }
        let p = self.clusters[c].order.iter().copied().find(|&p| self.pool_matches(job, c, p))?;
        let cluster = &self.net.clusters[c];
        let kwh = self.power_kw(job, c, p) * cluster.pue * job.duration_s / 3600.0;
        Some((p, kwh * (cluster.tariff.min_price() + cluster.effective_carbon_kg_per_kwh * self.weights.carbon_cny_per_kg)))
    }

    /// When a shift to pool `p` of cluster `c` would start: the cheapest start within
    /// `free_left_s`, if that is at least [`MIN_SHIFT_S`] away and the pool has room to spare
    /// now and on the projection for then.
    fn shift_start(&mut self, job: &JobReq, c: ClusterIx, p: usize, now_s: f64, free_left_s: f64) -> Option<f64> {
        let (unit, units) = self.units(job);
        let (free, total) = self.free_units(c, p, unit);
        let most = (SHIFT_FILL_MAX * total as f64) as u64;
        let room = |free: u64| free >= units && total - free + units <= most;
        if !room(free) {
            return None;
        }
        let cluster = &self.net.clusters[c];
        let transfer_s = job.dataset.map_or(0.0, |(from, gb)| if from == c { 0.0 } else { self.net.transfer_s(from, c, gb) });
        let window_s = free_left_s - transfer_s;
        if window_s < MIN_SHIFT_S {
            return None;
        }
        let kw = self.power_kw(job, c, p) * cluster.pue;
        let (delay_s, _) = cluster.tariff.cheapest_start(now_s + transfer_s, job.duration_s, kw, 0.0, window_s, window_s);
        if delay_s < MIN_SHIFT_S {
            return None;
        }
        let until_s = now_s + delay_s;
        let load = &mut self.load.pools[c][p][unit as usize];
        load.prune_bookings(now_s);
        room(load.projected_free(until_s, until_s + transfer_s + job.duration_s, free).min(total)).then_some(until_s)
    }
}
