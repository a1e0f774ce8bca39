//! Holding a job back for a pool that is full now.
//!
//! `aiplus` ranks the clusters with room now; a pool that is full now but would be cheaper
//! (a 70 W T4 instead of a 300 W V100, say) is priced at its expected queueing delay: the time
//! until the running work's declared ends give back enough capacity for the job and for the jobs
//! already waiting for the same pool. If that start beats every start with room now by at least
//! [`MIN_WAIT_SAVING_CNY`], the job is held back ([`super::Decision::HoldBack`]) and claims the
//! room it waits for, so the jobs after it expect to wait behind it. The caller offers it again
//! when capacity frees, and the same rule decides afresh; a job is never held back more than
//! [`MAX_WAIT_FOR_S`] in all.

use super::{ClusterIx, JobReq, Scheduler};

/// Longest `aiplus` will hold a job back, in all, for a pool that is full now but draws less
/// (or costs less) than every pool with room: half an hour. The wait is expected from the
/// running work's declared ends and the jobs already waiting for the pool (see
/// [`super::congestion`]). A long job pays for a short wait many times over: on the busy openb
/// replay (default pod list, 20× arrivals, a tenth of the nodes, seed 7919), month-long jobs
/// found the T4s full for a minute or two and took 300 W GPUs for their whole run. With the
/// wait, that replay's objective fell from 6,005 to 5,816 yuan (gpuspec33, same setting: 9,094
/// to 8,605). With 600 s: 5,813 and 9,601; with 7,200 s the waits outgrow their estimates:
/// 5,859 and 9,876.
pub const MAX_WAIT_FOR_S: f64 = 1800.0;

/// Least a wait must save, in yuan, before `aiplus` holds a job back for it. The estimate of
/// when room frees is optimistic, and each job told to wait may delay others; the margin keeps
/// the short jobs that would save a few fen moving. Without it the replay above came to 5,905
/// yuan, with carbon 0.865× nearest's instead of 0.844×.
pub const MIN_WAIT_SAVING_CNY: f64 = 0.5;

/// A pool that jobs with nowhere else to go have reached more than this often in the last
/// [`super::congestion::CAPTIVE_TAU_S`] (decayed) is never waited for: those jobs queue for it
/// unseen by the estimate, and take its room first. On the gpuspec33 replay, waiting for such
/// pools made captive jobs queue for days: 22,596 yuan against 8,605.
pub const MAX_CAPTIVE_ARRIVALS_TO_WAIT: f64 = 0.5;

impl Scheduler {
    /// The pools of cluster `c` that draw less than `fits` (the first with room now, or every
    /// pool when none has room) and are short of capacity in total, each with its expected
    /// queueing delay, when its running work says when that ends and it is soon enough.
    pub(super) fn expected_waits(&self, job: &JobReq, c: ClusterIx, now_s: f64, queue_s: f64, fits: Option<usize>) -> Vec<(usize, f64)> {
        let (unit, units) = self.units(job);
        let mut out = Vec::new();
        for &p in &self.clusters[c].order {
            if Some(p) == fits {
                break;
            }
            if !self.pool_matches(job, c, p) {
                continue;
            }
            let (free, _) = self.free_units(c, p, unit);
            if free >= units {
                continue;
            }
            let load = &self.load.pools[c][p][unit as usize];
            if load.captive_arrivals(now_s) > MAX_CAPTIVE_ARRIVALS_TO_WAIT {
                continue;
            }
            // Jobs already waiting for the pool are served first. A job offered again counts its
            // own claim among them, so it needs no more than the claims in all.
            let claimed = load.claimed(now_s);
            let queued = queue_s > 0.0;
            let need = if queued { units.max(claimed) } else { units + claimed };
            if let Some(wait_s) = load.time_until_free(now_s, free, need)
                && queue_s + wait_s <= MAX_WAIT_FOR_S
            {
                out.push((p, wait_s));
            }
        }
        out
    }

    /// Records that `job`, told to wait on its first offer, expects the room of pool `p` of
    /// cluster `c` in `wait_s`. A job offered again has claimed already.
    pub(super) fn claim(&mut self, job: &JobReq, c: ClusterIx, p: usize, now_s: f64, queue_s: f64, wait_s: f64) {
        if queue_s > 0.0 {
            return;
        }
        let (unit, units) = self.units(job);
        let seq = self.load.next_seq();
        // A pool with its claims at the limit takes no more; the job still waits, unseen by
        // later estimates, which only makes them optimistic for a while.
        self.load.pools[c][p][unit as usize].claim(now_s, now_s + wait_s, units, seq);
    }
}
