//! Failed console logins, counted so that guessing is slow and nobody can lock an account out.
//!
//! Three counts, each in a table of at most [`MAX_TRACKED`] entries:
//! - per account and client address: after [`FREE_FAILURES`] failures that address waits 1 s,
//!   then 2 s, 4 s … up to [`MAX_ADDRESS_DELAY_MS`] before it may try that account again;
//! - per client address, over all accounts (password spraying): the same back-off after
//!   [`FREE_ADDRESS_FAILURES`];
//! - per account, over all addresses: a delay of 100 ms per failure past
//!   [`FREE_ACCOUNT_FAILURES`], capped at [`MAX_ACCOUNT_DELAY_MS`]. The cap is what keeps an
//!   attacker from locking the real user out: from an address of their own they wait at most
//!   that long.
//!
//! A refused attempt is not a failure (its password is never checked), so waiting out a delay
//! is the only way on. A success clears its pair and its account.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failures of one account from one address before back-off starts.
pub const FREE_FAILURES: u32 = 3;
/// Failures from one address over all accounts before back-off starts.
pub const FREE_ADDRESS_FAILURES: u32 = 20;
/// Failures of one account over all addresses before its delay starts.
pub const FREE_ACCOUNT_FAILURES: u32 = 10;
/// The longest an address is made to wait.
pub const MAX_ADDRESS_DELAY_MS: i64 = 15 * 60 * 1000;
/// The longest an account's delay makes anyone wait.
pub const MAX_ACCOUNT_DELAY_MS: i64 = 5_000;
/// Entries per table; when full, the entry that failed longest ago is forgotten.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    failures: u32,
    last_ms: i64,
}

struct Table<K> {
    entries: HashMap<K, Entry>,
}

impl<K: Eq + Hash + Clone> Table<K> {
    fn new() -> Self {
        Self { entries: HashMap::new() }
    }

    fn get(&self, k: &K) -> Entry {
        self.entries.get(k).copied().unwrap_or_default()
    }

    fn fail(&mut self, k: &K, now_ms: i64) {
        if self.entries.len() >= MAX_TRACKED
            && !self.entries.contains_key(k)
            && let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_ms).map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        let e = self.entries.entry(k.clone()).or_default();
        e.failures = e.failures.saturating_add(1);
        e.last_ms = now_ms;
    }
}

/// Exponential back-off past `free` failures: 1 s, 2 s, 4 s … capped.
fn backoff_ms(e: Entry, free: u32) -> i64 {
    if e.failures <= free {
        return 0;
    }
    (1000i64 << (e.failures - free - 1).min(20)).min(MAX_ADDRESS_DELAY_MS)
}

fn account_delay_ms(e: Entry) -> i64 {
    (i64::from(e.failures.saturating_sub(FREE_ACCOUNT_FAILURES)) * 100).min(MAX_ACCOUNT_DELAY_MS)
}

struct Tables {
    pairs: Table<(String, IpAddr)>,
    addresses: Table<IpAddr>,
    accounts: Table<String>,
}

/// The login throttle of one server.
pub struct Throttle {
    tables: Mutex<Tables>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self { tables: Mutex::new(Tables { pairs: Table::new(), addresses: Table::new(), accounts: Table::new() }) }
    }
}

impl Throttle {
    /// How long `address` must still wait before it may try `account`; 0 when it may now.
    pub fn wait_ms(&self, account: &str, address: IpAddr, now_ms: i64) -> i64 {
        let Ok(t) = self.tables.lock() else { return MAX_ACCOUNT_DELAY_MS };
        let pair = t.pairs.get(&(account.to_string(), address));
        let from = t.addresses.get(&address);
        let acct = t.accounts.get(&account.to_string());
        let until = [
            pair.last_ms + backoff_ms(pair, FREE_FAILURES),
            from.last_ms + backoff_ms(from, FREE_ADDRESS_FAILURES),
            acct.last_ms + account_delay_ms(acct),
        ];
        until.into_iter().max().unwrap_or(0).saturating_sub(now_ms).max(0)
    }

    /// Records a checked attempt.
    pub fn record(&self, account: &str, address: IpAddr, ok: bool, now_ms: i64) {
        let Ok(mut t) = self.tables.lock() else { return };
        let pair = (account.to_string(), address);
        if ok {
            t.pairs.entries.remove(&pair);
            t.accounts.entries.remove(account);
            return;
        }
        t.pairs.fail(&pair, now_ms);
        t.addresses.fail(&address, now_ms);
        t.accounts.fail(&account.to_string(), now_ms);
    }

    /// Entries held, over the three tables (for tests of the bound).
    pub fn tracked(&self) -> usize {
        self.tables.lock().map(|t| t.pairs.entries.len() + t.addresses.entries.len() + t.accounts.entries.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An attacker who retries whenever allowed, for `n` tries.
    fn attack(t: &Throttle, account: &str, from: IpAddr, n: usize, mut now: i64) -> i64 {
        for _ in 0..n {
            now += t.wait_ms(account, from, now);
            t.record(account, from, false, now);
        }
        now
    }

    #[test]
    fn an_address_backs_off_exponentially_on_one_account() {
        let t = Throttle::default();
        let a = ip("203.0.113.7");
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.wait_ms("admin", a, 0), 0);
            t.record("admin", a, false, 0);
        }
        assert_eq!(t.wait_ms("admin", a, 0), 0, "the next try is still free");
        t.record("admin", a, false, 0);
        assert_eq!(t.wait_ms("admin", a, 0), 1000);
        t.record("admin", a, false, 1000);
        assert_eq!(t.wait_ms("admin", a, 1000), 2000);
        let end = attack(&t, "admin", a, 40, 1000);
        assert_eq!(t.wait_ms("admin", a, end), MAX_ADDRESS_DELAY_MS, "capped");
    }

    #[test]
    fn an_attacker_cannot_lock_the_account_out_of_another_address() {
        let t = Throttle::default();
        let end = attack(&t, "admin", ip("203.0.113.7"), 100, 0);
        let wait = t.wait_ms("admin", ip("198.51.100.1"), end);
        assert!(wait <= MAX_ACCOUNT_DELAY_MS, "the real user waits at most the account cap, not {wait} ms");
        // Many attacking addresses, each within its free tries, still only delay it by the cap.
        let t = Throttle::default();
        let mut now = 0;
        for i in 0..200u32 {
            let from = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            now = attack(&t, "admin", from, FREE_FAILURES as usize, now);
        }
        assert!(t.wait_ms("admin", ip("198.51.100.1"), now) <= MAX_ACCOUNT_DELAY_MS);
        now += MAX_ACCOUNT_DELAY_MS;
        t.record("admin", ip("198.51.100.1"), true, now);
        assert_eq!(t.wait_ms("admin", ip("198.51.100.1"), now), 0, "a success clears the account's delay");
    }

    #[test]
    fn spraying_many_accounts_from_one_address_backs_off_too() {
        let t = Throttle::default();
        let a = ip("203.0.113.9");
        for i in 0..FREE_ADDRESS_FAILURES + 1 {
            t.record(&format!("user{i}"), a, false, 0);
        }
        assert!(t.wait_ms("someone-else", a, 0) >= 1000);
    }

    #[test]
    fn the_tables_stay_bounded() {
        let t = Throttle::default();
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let from = IpAddr::from(i.to_be_bytes());
            t.record(&format!("u{i}"), from, false, i64::from(i));
        }
        assert!(t.tracked() <= 3 * MAX_TRACKED);
    }
}
