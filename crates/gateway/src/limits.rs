//! Request and token limits per key and per tenant: requests a minute, tokens a minute and a
//! token budget a day, in fixed windows (UTC minutes and days).
//!
//! The counts live in the store (`limit_windows`), so they are shared by every gateway
//! instance on one PostgreSQL database and survive restarts. An instance does not ask the
//! store for every request: it *leases* a slice of a window (about 1/200 of the limit, at
//! least what the request needs) and spends it locally. The store never grants past the
//! limit, so the instances together never admit more than the limit, whatever their number;
//! at most each instance's unspent slice (under 0.5% of the limit) goes unused.
//!
//! Tokens are reserved before the upstream call (the prompt estimate plus the answer's
//! `max_tokens`, or [`DEFAULT_ANSWER_TOKENS`]) and settled after it: unspent tokens go back to
//! the instance's slice, tokens beyond the reservation are charged to the store.

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use store::Store;

/// Tokens reserved for an answer whose request sets no `max_tokens`.
pub const DEFAULT_ANSWER_TOKENS: u64 = 256;
/// A lease takes about 1/LEASE_DIVISOR of the limit, so unspent leases stay under 1%.
pub const LEASE_DIVISOR: u64 = 200;
/// Local slices kept before stale windows are dropped.
const MAX_SLICES: usize = 100_000;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

pub use identity::Limits;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{who} limit of {limit} {what} reached; retry in {retry_after_s} s")]
    Exceeded { who: String, what: &'static str, limit: u64, retry_after_s: u64 },
    #[error("the limit store is unavailable ({0}); nothing was spent")]
    Store(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Requests,
    TokensMinute,
    TokensDay,
}

impl Kind {
    fn window_ms(self) -> i64 {
        match self {
            Kind::Requests | Kind::TokensMinute => MINUTE_MS,
            Kind::TokensDay => DAY_MS,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Kind::Requests => "rpm",
            Kind::TokensMinute => "tpm",
            Kind::TokensDay => "tpd",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Requests => "requests per minute",
            Kind::TokensMinute => "tokens per minute",
            Kind::TokensDay => "tokens per day",
        }
    }
}

/// One counter a request draws on: a scope (`key:<id>`, `tenant:<t>`), a kind and a window.
#[derive(Clone, Debug)]
struct Draw {
    scope: Arc<str>,
    window: i64,
    kind: Kind,
    amount: u64,
}

impl Draw {
    fn slot(&self) -> Slot {
        (self.scope.clone(), self.kind, self.window)
    }

    /// The counter's name in the store.
    fn counter(&self) -> String {
        format!("{}:{}", self.scope, self.kind.tag())
    }
}

/// A local slice's key; cloning it only counts a reference.
type Slot = (Arc<str>, Kind, i64);

/// What a request holds between its start and its end.
#[derive(Clone, Debug, Default)]
pub struct Reservation {
    draws: Vec<Draw>,
    settled: Arc<AtomicBool>,
}

pub struct Limiter {
    store: Store,
    /// Leased but unspent units, by (scope, kind, window).
    slices: Mutex<FxHashMap<Slot, u64>>,
}

impl Limiter {
    pub fn new(store: Store) -> Self {
        Self { store, slices: Mutex::new(FxHashMap::default()) }
    }

    /// Takes one request and `tokens` tokens from every limit that applies, or nothing. Each
    /// scope names its counters (`key:<id>`, `tenant:<t>`, `model:<m>:<t>`).
    pub async fn reserve(&self, scopes: &[(&Arc<str>, &Limits)], tokens: u64, now_ms: i64) -> Result<Reservation, Refusal> {
        let mut taken: Vec<Draw> = Vec::new();
        for &(scope, l) in scopes {
            for (kind, limit, amount) in [
                (Kind::Requests, l.requests_per_min, 1),
                (Kind::TokensMinute, l.tokens_per_min, tokens),
                (Kind::TokensDay, l.tokens_per_day, tokens),
            ] {
                let Some(limit) = limit else { continue };
                let draw = Draw { scope: scope.clone(), window: now_ms.div_euclid(kind.window_ms()), kind, amount };
                match self.take(&draw, limit).await {
                    Ok(true) => taken.push(draw),
                    Ok(false) => {
                        self.give_back(&taken);
                        let retry_after_s = ((draw.window + 1) * draw.kind.window_ms() - now_ms).max(0).div_euclid(1000) as u64 + 1;
                        let who = scope.replacen(':', " ", 1);
                        return Err(Refusal::Exceeded { who, what: draw.kind.what(), limit, retry_after_s });
                    }
                    Err(e) => {
                        self.give_back(&taken);
                        return Err(Refusal::Store(e.to_string()));
                    }
                }
            }
        }
        Ok(Reservation { draws: taken, settled: Arc::new(AtomicBool::new(false)) })
    }

    /// Takes `draw.amount` from the local slice, leasing more from the store when it is short.
    async fn take(&self, draw: &Draw, limit: u64) -> Result<bool, store::StoreError> {
        let key = draw.slot();
        let short = {
            let Ok(mut slices) = self.slices.lock() else { return Ok(false) };
            let have = slices.entry(key.clone()).or_insert(0);
            if *have >= draw.amount {
                *have -= draw.amount;
                return Ok(true);
            }
            draw.amount - *have
        };
        let lease = short.max(limit.div_ceil(LEASE_DIVISOR));
        let granted = self.store.lease(&draw.counter(), draw.window, clamp(lease), clamp(limit)).await?.max(0) as u64;
        let Ok(mut slices) = self.slices.lock() else { return Ok(false) };
        if slices.len() > MAX_SLICES {
            let window = draw.window;
            slices.retain(|(_, _, w), _| *w >= window - 1);
        }
        let have = slices.entry(key).or_insert(0);
        *have += granted;
        if *have >= draw.amount {
            *have -= draw.amount;
            Ok(true)
        } else {
            // Not enough left in the window; what was leased stays here for smaller requests.
            Ok(false)
        }
    }

    fn give_back(&self, draws: &[Draw]) {
        let Ok(mut slices) = self.slices.lock() else { return };
        for d in draws {
            *slices.entry(d.slot()).or_insert(0) += d.amount;
        }
    }

    /// Settles a reservation with the tokens really used. Only the first call counts.
    pub fn settle(self: &Arc<Self>, r: &Reservation, used_tokens: u64) {
        if r.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut extra: Vec<(String, i64, u64)> = Vec::new();
        if let Ok(mut slices) = self.slices.lock() {
            for d in r.draws.iter().filter(|d| d.kind != Kind::Requests) {
                let have = slices.entry(d.slot()).or_insert(0);
                if used_tokens <= d.amount {
                    *have += d.amount - used_tokens;
                } else {
                    let over = used_tokens - d.amount;
                    let local = over.min(*have);
                    *have -= local;
                    if over > local {
                        extra.push((d.counter(), d.window, over - local));
                    }
                }
            }
        }
        if !extra.is_empty() {
            // Off the request path: the answer is already on its way.
            let me = self.clone();
            tokio::spawn(async move {
                for (scope, window, n) in extra {
                    if let Err(e) = me.store.charge(&scope, window, clamp(n)).await {
                        tracing::warn!(error = %e, scope, "charging tokens beyond a reservation failed");
                    }
                }
            });
        }
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn rpm(n: u64) -> Limits {
        Limits { requests_per_min: Some(n), ..Limits::default() }
    }

    #[tokio::test]
    async fn a_burst_gets_exactly_the_limit_and_the_next_minute_starts_fresh() {
        let l = Limiter::new(Store::memory().await.unwrap());
        let mut ok = 0;
        for _ in 0..150 {
            if l.reserve(&[(&scope("key:k"), &rpm(100)), (&scope("tenant:t"), &Limits::default())], 10, 5_000).await.is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 100);
        let refused = l.reserve(&[(&scope("key:k"), &rpm(100)), (&scope("tenant:t"), &Limits::default())], 10, 59_999).await.unwrap_err();
        assert!(matches!(refused, Refusal::Exceeded { retry_after_s: 1, .. }), "{refused:?}");
        assert!(l.reserve(&[(&scope("key:k"), &rpm(100)), (&scope("tenant:t"), &Limits::default())], 10, 60_000).await.is_ok());
    }

    #[tokio::test]
    async fn the_tenant_limit_binds_across_its_keys_and_settling_returns_unused_tokens_once() {
        let l = Arc::new(Limiter::new(Store::memory().await.unwrap()));
        let tenant = Limits { tokens_per_min: Some(1000), ..Limits::default() };
        let a = l.reserve(&[(&scope("key:a"), &rpm(1000)), (&scope("tenant:t"), &tenant)], 600, 0).await.unwrap();
        assert!(l.reserve(&[(&scope("key:b"), &rpm(1000)), (&scope("tenant:t"), &tenant)], 600, 0).await.is_err(), "600 + 600 > 1000");
        // Settling with fewer tokens returns the rest (300); a second settle is ignored.
        l.settle(&a, 300);
        l.settle(&a, 0);
        assert!(
            l.reserve(&[(&scope("key:b"), &rpm(1000)), (&scope("tenant:t"), &tenant)], 700, 0).await.is_ok(),
            "1000 - 600 + 300 = 700 left"
        );
        assert!(
            l.reserve(&[(&scope("key:b"), &rpm(1000)), (&scope("tenant:t"), &tenant)], 1, 0).await.is_err(),
            "nothing left: the second settle gave nothing back"
        );
    }

    #[tokio::test]
    async fn tokens_beyond_a_reservation_are_charged() {
        let l = Arc::new(Limiter::new(Store::memory().await.unwrap()));
        let day = Limits { tokens_per_day: Some(10_000), ..Limits::default() };
        let r = l.reserve(&[(&scope("key:k"), &day), (&scope("tenant:t"), &Limits::default())], 100, 0).await.unwrap();
        l.settle(&r, 20_000);
        for _ in 0..100 {
            if l.store.counter("key:k:tpd", 0).await.unwrap() >= 20_000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(l.store.counter("key:k:tpd", 0).await.unwrap() >= 20_000);
        assert!(
            l.reserve(&[(&scope("key:k"), &day), (&scope("tenant:t"), &Limits::default())], 1, 1000).await.is_err(),
            "the day's budget is gone"
        );
    }
}
