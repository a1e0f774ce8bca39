//! What the scheduler knows about load beyond the packing state, so that `aiplus` stops ranking
//! clusters as if the network were quiet.
//!
//! Everything here is kept per node pool and is a deterministic function of the calls made
//! (time comes in as an argument). Three estimates:
//!
//! - **When capacity frees.** Every placement is recorded with the time its run ends (the job's
//!   declared duration after its data arrives). For a pool without room, the expected queueing
//!   delay is the time until the running work that ends first has given back enough capacity
//!   for the job. It counts the pool's total free capacity, not one node's, so it is optimistic;
//!   the scheduler therefore waits only for a pool that is short of capacity in total, never for
//!   one that is merely fragmented, and never for long ([`super::MAX_WAIT_FOR_S`]). A job told
//!   to wait claims the room it waits for, so the jobs after it expect to wait behind it.
//! - **Who else needs it.** Jobs with almost nowhere else to go (residency and GPU model leave
//!   them at most [`MAX_CAPTIVE_POOLS`] pools) are "captive". Their arrivals at each pool are
//!   averaged exponentially over [`CAPTIVE_TAU_S`]: how often they come, how much they take and
//!   what their waiting costs. A job that could go elsewhere, and would leave too little free for
//!   a typical captive arrival, pays for the waiting it causes: arrivals at that rate, each
//!   waiting on average half of the time until capacity frees (at most its own hold).
//! - **How full it would be.** A trace can hand a small pool months-long work before any captive
//!   job has shown up (a cluster's only T4s, say); every captive job after that waits months.
//!   So work that would fill a pool past [`FILL_THRESHOLD`] pays a price that grows with the
//!   square of the excess, per unit taken and per second held (at most [`HOLD_HORIZON_S`]), at
//!   the value of waiting. Below the threshold it is free, so a quiet network is ranked exactly as
//!   before. The price insures against captive demand that has not shown up yet, so it is
//!   scaled by how likely that demand is: the share of recent arrivals, network-wide, that were
//!   captive ([`CaptiveShare`]). With no evidence the share is 1 and the price is whole; on a
//!   network where almost no job is captive (openb's default pod list, where no pod names a GPU
//!   model) the reserve is given back to the cheap, green pools it was keeping idle.
//!
//! The prices rank clusters; they are not part of the objective the simulator reports.

use std::collections::{BTreeMap, HashMap};

use super::Slot;

/// A job with at most this many pools that could ever hold it is captive to them.
pub const MAX_CAPTIVE_POOLS: usize = 2;
/// Time constant of the captive arrival averages: six hours, short enough to follow the daily
/// cycle of arrivals and long enough to smooth over single jobs.
pub const CAPTIVE_TAU_S: f64 = 6.0 * 3600.0;
/// Longest hold the congestion prices charge for: a week. Past it, capacity has turned over
/// many times in every trace replayed here.
pub const HOLD_HORIZON_S: f64 = 7.0 * 86_400.0;
/// Share of a pool that work may fill before the fill price starts.
pub const FILL_THRESHOLD: f64 = 0.75;
/// Most running jobs one estimate of when capacity frees looks at, to keep a decision cheap.
pub const MAX_ENDS_SCAN: usize = 64;
/// Most time-shifted runs a pool keeps booked; a pool with this many takes no more, which keeps
/// every projection of its future load bounded.
pub const MAX_BOOKINGS: usize = 1024;

/// Weight, in arrivals, of the prior that every arrival is captive: what the share of captive
/// arrivals starts from, and falls back to when no job has arrived for a while.
pub const CAPTIVE_PRIOR_ARRIVALS: f64 = 1.0;

/// Seconds as the whole milliseconds every index here is keyed by.
fn ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// The share of recent arrivals that were captive, network-wide: both counts are averaged
/// exponentially over [`CAPTIVE_TAU_S`], with [`CAPTIVE_PRIOR_ARRIVALS`] captive ones added.
#[derive(Clone, Copy, Debug, Default)]
pub struct CaptiveShare {
    captive: f64,
    all: f64,
    at_s: f64,
}

impl CaptiveShare {
    fn decay(&self, now_s: f64) -> f64 {
        (-(now_s - self.at_s).max(0.0) / CAPTIVE_TAU_S).exp()
    }

    /// Counts one arrival at `now_s`.
    pub fn note(&mut self, now_s: f64, captive: bool) {
        let d = self.decay(now_s);
        self.captive = self.captive * d + f64::from(u8::from(captive));
        self.all = self.all * d + 1.0;
        self.at_s = self.at_s.max(now_s);
    }

    /// The share at `now_s`, between 0 and 1.
    pub fn share(&self, now_s: f64) -> f64 {
        let d = self.decay(now_s);
        (self.captive * d + CAPTIVE_PRIOR_ARRIVALS) / (self.all * d + CAPTIVE_PRIOR_ARRIVALS)
    }
}

/// The fill price's weight when a pool would be `used_after` of `total` full: 0 up to
/// [`FILL_THRESHOLD`], then the square of the share of the remaining headroom taken, up to 1.
pub fn fill_weight(used_after: u64, total: u64) -> f64 {
    let u = used_after as f64 / total.max(1) as f64;
    if u <= FILL_THRESHOLD {
        return 0.0;
    }
    ((u - FILL_THRESHOLD) / (1.0 - FILL_THRESHOLD)).min(1.0).powi(2)
}

/// What a job's size is counted in: a GPU job's GPU thousandths, or a CPU-only job's CPU
/// thousandths. Each pool keeps its load in both, since CPU-only jobs run on GPU nodes too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Gpu = 0,
    Cpu = 1,
}

impl Unit {
    fn of(slot: &Slot) -> (Unit, u64) {
        if slot.gpu_mask == 0 {
            (Unit::Cpu, u64::from(slot.cpu_milli))
        } else {
            (Unit::Gpu, u64::from(slot.gpu_mask.count_ones()) * u64::from(slot.gpu_milli))
        }
    }
}

/// One recorded run: where its end sits in the pool's index and what it holds.
#[derive(Clone, Copy, Debug)]
struct Run {
    end_ms: i64,
    seq: u64,
}

#[derive(Clone, Debug, Default)]
pub struct PoolLoad {
    /// Running work by end time, in the pool's unit (GPU or CPU thousandths).
    ends: BTreeMap<(i64, u64), u64>,
    /// Decayed sums over captive arrivals, as of `arrivals_at_s`: how many, the units they take
    /// and the value of their waiting (yuan per second).
    arrivals: f64,
    arrival_units: f64,
    arrival_value_cny_per_s: f64,
    arrivals_at_s: f64,
    /// Runs shifted to a later start, by start (ms, sequence): their end (ms) and units. A
    /// booking is dropped once its start has passed, when the run is placed (or queued) for real.
    bookings: BTreeMap<(i64, u64), (i64, u64)>,
    /// Jobs told to wait for this pool, by when they expect it to have room (ms, sequence): the
    /// units each will take. A claim lapses at that time, when its job is offered the room.
    claims: BTreeMap<(i64, u64), u64>,
}

impl PoolLoad {
    /// Counts a captive arrival that takes `units` and whose waiting costs `value_cny_per_s`,
    /// shared over the `share` pools it could use.
    pub fn note_captive(&mut self, now_s: f64, units: u64, share: usize, value_cny_per_s: f64) {
        let decay = (-(now_s - self.arrivals_at_s).max(0.0) / CAPTIVE_TAU_S).exp();
        let k = 1.0 / share.max(1) as f64;
        self.arrivals = self.arrivals * decay + k;
        self.arrival_units = self.arrival_units * decay + k * units as f64;
        self.arrival_value_cny_per_s = self.arrival_value_cny_per_s * decay + k * value_cny_per_s;
        self.arrivals_at_s = self.arrivals_at_s.max(now_s);
    }

    /// The expected waiting cost of the captive arrivals held up by a job that leaves
    /// `free_after` units free for `hold_s` seconds.
    pub fn blocking_cny(&self, now_s: f64, free_after: u64, hold_s: f64) -> f64 {
        if self.arrivals <= 1e-9 {
            return 0.0;
        }
        let typical_units = self.arrival_units / self.arrivals;
        // Half a unit of slack: the average of equal sizes need not come back exact.
        if free_after as f64 + 0.5 >= typical_units {
            return 0.0;
        }
        let rate_per_s = self.captive_arrivals(now_s) / CAPTIVE_TAU_S;
        let until_s = self.time_until_free(now_s, free_after, typical_units.ceil() as u64).unwrap_or(hold_s);
        let block_s = hold_s.min(until_s);
        rate_per_s * block_s * block_s / 2.0 * (self.arrival_value_cny_per_s / self.arrivals)
    }

    /// Books a run shifted to `[start_s, end_s)`, unless the pool has [`MAX_BOOKINGS`] already.
    pub fn book(&mut self, start_s: f64, end_s: f64, units: u64, seq: u64) -> bool {
        if self.bookings.len() >= MAX_BOOKINGS {
            return false;
        }
        self.bookings.insert((ms(start_s), seq), (ms(end_s), units));
        true
    }

    /// Forgets bookings whose start is at or before `now_s`: by then they are real placements.
    pub fn prune_bookings(&mut self, now_s: f64) {
        let now_ms = ms(now_s);
        while let Some(first) = self.bookings.first_entry() {
            if first.key().0 > now_ms {
                break;
            }
            first.remove();
        }
    }

    /// The units a pool with `free` free now is expected to have free over `[from_s, to_s)`:
    /// what is free now, plus the running work known to end by `from_s`, minus the shifted runs
    /// booked to overlap the interval. Optimistic about work not yet arrived, which is why the
    /// caller also keeps the pool below [`FILL_THRESHOLD`].
    pub fn projected_free(&self, from_s: f64, to_s: f64, free: u64) -> u64 {
        let (from_ms, to_ms) = (ms(from_s), ms(to_s));
        let ending: u64 =
            self.ends.iter().take(MAX_ENDS_SCAN).take_while(|((end_ms, _), _)| *end_ms <= from_ms).map(|(_, units)| *units).sum();
        let booked: u64 =
            self.bookings.range(..(to_ms, 0)).filter(|(_, (end_ms, _))| *end_ms > from_ms).map(|(_, (_, units))| *units).sum();
        (free + ending).saturating_sub(booked)
    }

    /// Records that a job told to wait for this pool will take `units` once it has room, expected
    /// at `until_s`; false when the pool has [`MAX_BOOKINGS`] claims already.
    pub fn claim(&mut self, now_s: f64, until_s: f64, units: u64, seq: u64) -> bool {
        self.prune_claims(now_s);
        if self.claims.len() >= MAX_BOOKINGS {
            return false;
        }
        self.claims.insert((ms(until_s), seq), units);
        true
    }

    fn prune_claims(&mut self, now_s: f64) {
        let now_ms = ms(now_s);
        while let Some(first) = self.claims.first_entry() {
            if first.key().0 >= now_ms {
                break;
            }
            first.remove();
        }
    }

    /// Captive arrivals at this pool over the last [`CAPTIVE_TAU_S`] or so (decayed).
    pub fn captive_arrivals(&self, now_s: f64) -> f64 {
        self.arrivals * (-(now_s - self.arrivals_at_s).max(0.0) / CAPTIVE_TAU_S).exp()
    }

    /// Units claimed by jobs still waiting for this pool at `now_s`.
    pub fn claimed(&self, now_s: f64) -> u64 {
        let now_ms = ms(now_s);
        self.claims.range((now_ms, 0)..).map(|(_, u)| *u).sum()
    }

    /// Seconds from `now_s` until the pool, with `free` units free now, has `need` free, counting
    /// only the running work it knows the end of; `None` past [`MAX_ENDS_SCAN`] runs. A run past
    /// its declared end (a real job may overstay its estimate) may end at any moment or much
    /// later, so nothing is counted on it.
    pub fn time_until_free(&self, now_s: f64, free: u64, need: u64) -> Option<f64> {
        let now_ms = ms(now_s);
        let mut have = free;
        for (&(end_ms, _), &units) in self.ends.iter().take(MAX_ENDS_SCAN) {
            if end_ms == i64::MAX {
                return None;
            }
            if end_ms < now_ms {
                continue;
            }
            have += units;
            if have >= need {
                return Some((end_ms as f64 / 1000.0 - now_s).max(0.0));
            }
        }
        None
    }
}

/// The running work of every pool, keyed so that a release finds its record again.
#[derive(Clone, Debug, Default)]
pub struct Load {
    /// Per cluster, per pool, per [`Unit`].
    pub pools: Vec<Vec<[PoolLoad; 2]>>,
    runs: HashMap<(u16, u16, Slot), Vec<Run>>,
    seq: u64,
}

impl Load {
    pub fn new(pools_per_cluster: impl Iterator<Item = usize>) -> Self {
        Self { pools: pools_per_cluster.map(|n| vec![Default::default(); n]).collect(), runs: HashMap::new(), seq: 0 }
    }

    /// A fresh sequence number, so records made at the same instant stay apart.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Records a run on pool `p` of cluster `c` holding `slot` until `end_s` (`None`: unknown).
    pub fn start(&mut self, c: usize, p: usize, slot: Slot, end_s: Option<f64>) {
        self.seq += 1;
        let end_ms = end_s.map_or(i64::MAX, ms);
        let (unit, units) = Unit::of(&slot);
        let pool = &mut self.pools[c][p][unit as usize];
        *pool.ends.entry((end_ms, self.seq)).or_default() += units;
        self.runs.entry((c as u16, p as u16, slot)).or_default().push(Run { end_ms, seq: self.seq });
    }

    /// Forgets the run that held `slot`, if one was recorded. Runs with identical slots (equal
    /// CPU-only jobs on one node, equal shares of one GPU) cannot be told apart by their
    /// resources, so the one expected to end first is taken as the one that ended: forgetting
    /// another would leave a record whose end has passed, and every estimate would then count
    /// on capacity that is still held.
    pub fn end(&mut self, c: usize, p: usize, slot: Slot) {
        let key = (c as u16, p as u16, slot);
        let Some(runs) = self.runs.get_mut(&key) else { return };
        let Some(first) = runs.iter().enumerate().min_by_key(|(_, r)| (r.end_ms, r.seq)).map(|(i, _)| i) else { return };
        let run = runs.swap_remove(first);
        if runs.is_empty() {
            self.runs.remove(&key);
        }
        self.pools[c][p][Unit::of(&slot).0 as usize].ends.remove(&(run.end_ms, run.seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(node: u32, n: u32) -> Slot {
        Slot { node, gpu_mask: ((1u32 << n) - 1) as u16, gpu_milli: 1000, cpu_milli: 1000, memory_mib: 1024 }
    }

    #[test]
    fn capacity_frees_when_enough_running_work_has_ended() {
        let mut load = Load::new([1].into_iter());
        load.start(0, 0, gpus(0, 1), Some(100.0));
        load.start(0, 0, gpus(1, 2), Some(300.0));
        load.start(0, 0, gpus(2, 4), None);
        // A CPU-only run on the same pool is counted in cores, apart.
        load.start(0, 0, Slot { node: 3, gpu_mask: 0, gpu_milli: 0, cpu_milli: 8000, memory_mib: 1 }, Some(60.0));
        assert_eq!(load.pools[0][0][Unit::Cpu as usize].time_until_free(50.0, 0, 8000), Some(10.0));
        let pool = &load.pools[0][0][Unit::Gpu as usize];
        assert_eq!(pool.time_until_free(50.0, 0, 1000), Some(50.0));
        assert_eq!(pool.time_until_free(50.0, 0, 2500), Some(250.0));
        assert_eq!(pool.time_until_free(50.0, 500, 3500), Some(250.0));
        // The rest is held by a run whose end nobody knows.
        assert_eq!(pool.time_until_free(50.0, 0, 4000), None);
        load.end(0, 0, gpus(0, 1));
        assert_eq!(load.pools[0][0][Unit::Gpu as usize].time_until_free(100.0, 1000, 2500), Some(200.0));
    }

    #[test]
    fn of_runs_with_identical_slots_the_first_to_end_is_the_one_forgotten() {
        let mut load = Load::new([1].into_iter());
        let slot = Slot { node: 0, gpu_mask: 0, gpu_milli: 0, cpu_milli: 4000, memory_mib: 1 };
        load.start(0, 0, slot, Some(100.0));
        load.start(0, 0, slot, Some(500.0));
        // At 100 s one of the two ends; the other still holds its cores until 500 s.
        load.end(0, 0, slot);
        assert_eq!(load.pools[0][0][Unit::Cpu as usize].time_until_free(100.0, 0, 4000), Some(400.0));
    }

    #[test]
    fn a_run_past_its_declared_end_is_not_counted_on() {
        let mut load = Load::new([1].into_iter());
        load.start(0, 0, gpus(0, 1), Some(100.0));
        load.start(0, 0, gpus(1, 1), Some(500.0));
        let pool = &load.pools[0][0][Unit::Gpu as usize];
        assert_eq!(pool.time_until_free(50.0, 0, 1000), Some(50.0));
        // At 200 s the first run is still going, a hundred seconds over: the next end is 500 s.
        assert_eq!(pool.time_until_free(200.0, 0, 1000), Some(300.0));
    }

    #[test]
    fn claims_count_until_their_time_and_then_lapse() {
        let mut pool = PoolLoad::default();
        assert!(pool.claim(0.0, 60.0, 1000, 1));
        assert!(pool.claim(10.0, 90.0, 500, 2));
        assert_eq!(pool.claimed(30.0), 1500);
        assert_eq!(pool.claimed(60.0), 1500);
        assert_eq!(pool.claimed(61.0), 500);
        assert_eq!(pool.claimed(91.0), 0);
        // A claim made later prunes the lapsed ones, so the map stays bounded.
        assert!(pool.claim(100.0, 160.0, 1000, 3));
        assert_eq!(pool.claims.len(), 1);
    }

    #[test]
    fn blocking_prices_the_waiting_of_captive_arrivals() {
        let mut pool = PoolLoad::default();
        // Two captive one-GPU jobs an hour, each worth 10 yuan an hour of waiting, for two days.
        for h in 0..96 {
            pool.note_captive(f64::from(h) * 1800.0, 1000, 1, 10.0 / 3600.0);
        }
        let now = 95.0 * 1800.0;
        // Leaving a GPU free holds nobody up.
        assert_eq!(pool.blocking_cny(now, 1000, 7200.0), 0.0);
        // Taking the last GPU for two hours: about 4 arrivals, waiting an hour each on average.
        let cost = pool.blocking_cny(now, 0, 7200.0);
        assert!((35.0..45.0).contains(&cost), "{cost}");
        // Holding it twice as long costs four times as much: twice the arrivals, twice the wait.
        let longer = pool.blocking_cny(now, 0, 14_400.0);
        assert!((longer / cost - 4.0).abs() < 1e-9, "{longer} vs {cost}");
        // A day without captive arrivals and the price has all but gone.
        assert!(pool.blocking_cny(now + 86_400.0, 0, 7200.0) < cost / 50.0);
    }

    #[test]
    fn projected_free_counts_work_that_ends_and_runs_booked_to_overlap() {
        let mut load = Load::new([1].into_iter());
        load.start(0, 0, gpus(0, 2), Some(1000.0));
        load.start(0, 0, gpus(1, 1), Some(5000.0));
        let pool = &mut load.pools[0][0][Unit::Gpu as usize];
        // Two GPUs free now, and the two-GPU run is over by 2,000 s.
        assert_eq!(pool.projected_free(2000.0, 3000.0, 2000), 4000);
        assert!(pool.book(2500.0, 4000.0, 3000, 1));
        // A booking that overlaps the interval takes its share; one that ends before does not.
        assert_eq!(pool.projected_free(2000.0, 3000.0, 2000), 1000);
        assert_eq!(pool.projected_free(4000.0, 6000.0, 2000), 4000);
        // Once its start has passed, the booking is a real run and is forgotten here.
        pool.prune_bookings(2500.0);
        assert_eq!(pool.projected_free(2000.0, 3000.0, 2000), 4000);
    }

    #[test]
    fn the_captive_share_starts_whole_follows_arrivals_and_returns_to_the_prior() {
        let mut share = CaptiveShare::default();
        assert_eq!(share.share(0.0), 1.0);
        // 99 arrivals at once, none captive: the prior's one arrival in a hundred is left.
        for _ in 0..99 {
            share.note(0.0, false);
        }
        assert!((share.share(0.0) - 0.01).abs() < 1e-12);
        // One in four captive from then on, for a few days: the share settles at a quarter.
        for i in 0..4000 {
            share.note(f64::from(i) * 60.0, i % 4 == 0);
        }
        let now = 3999.0 * 60.0;
        assert!((share.share(now) - 0.25).abs() < 0.01, "{}", share.share(now));
        // A week with no arrivals, and the evidence has decayed back to the prior.
        assert!(share.share(now + 7.0 * 86_400.0) > 0.95);
    }

    #[test]
    fn filling_is_free_up_to_the_threshold_then_grows_with_the_square() {
        assert_eq!(fill_weight(75, 100), 0.0);
        assert!((fill_weight(875, 1000) - 0.25).abs() < 1e-12);
        assert!((fill_weight(100, 100) - 1.0).abs() < 1e-12);
        assert_eq!(fill_weight(0, 0), 0.0);
    }
}
