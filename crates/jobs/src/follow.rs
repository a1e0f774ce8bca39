//! Live followers of a job (the API's `logs?follow=true`, the console's live job page): how
//! many may be open, and how a follower notices at once that its client left.
//!
//! Each follower is a task that polls the job every half second. It holds a [`Slot`]: at most
//! [`MAX_FOLLOWERS`] in all and [`MAX_FOLLOWERS_PER_TENANT`] for one tenant's jobs, so one tenant
//! cannot take every slot. It waits with [`wait_or_left`], which returns as soon as the client's
//! end of the channel is gone, so a follower of a quiet job ends within a poll of its client
//! leaving, not when the job next prints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most followers open at once.
pub const MAX_FOLLOWERS: usize = 256;
/// Most followers of one tenant's jobs open at once.
pub const MAX_FOLLOWERS_PER_TENANT: usize = 32;

#[derive(Default)]
struct Counts {
    total: usize,
    per_tenant: HashMap<String, usize>,
}

/// The follower slots of one server.
#[derive(Clone, Default)]
pub struct Slots {
    counts: Arc<Mutex<Counts>>,
}

/// A follower's place; dropping it frees the place.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    tenant: String,
}

/// Why no slot was given: a sentence for the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy(pub String);

impl Slots {
    /// A slot for following a job of `tenant`, if one is free.
    pub fn take(&self, tenant: &str) -> Result<Slot, Busy> {
        let mut c = self.counts.lock().map_err(|_| Busy("the follower table is unavailable".into()))?;
        if c.total >= MAX_FOLLOWERS {
            return Err(Busy(format!("{MAX_FOLLOWERS} live streams are open on this server; retry later")));
        }
        let mine = c.per_tenant.get(tenant).copied().unwrap_or(0);
        if mine >= MAX_FOLLOWERS_PER_TENANT {
            return Err(Busy(format!("{MAX_FOLLOWERS_PER_TENANT} live streams of this tenant's jobs are open; close one first")));
        }
        c.total += 1;
        c.per_tenant.insert(tenant.to_string(), mine + 1);
        Ok(Slot { counts: self.counts.clone(), tenant: tenant.to_string() })
    }

    /// How many followers are open.
    pub fn open(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_tenant.get_mut(&self.tenant) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_tenant.remove(&self.tenant);
                }
            }
        }
    }
}

/// Waits `poll`, or less if the follower's client left; true when it left.
pub async fn wait_or_left<T>(tx: &tokio::sync::mpsc::Sender<T>, poll: Duration) -> bool {
    tokio::select! {
        () = tx.closed() => true,
        () = tokio::time::sleep(poll) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_tenant_and_in_all_and_freed_on_drop() {
        let slots = Slots::default();
        let mine: Vec<Slot> = (0..MAX_FOLLOWERS_PER_TENANT).map(|_| slots.take("a").unwrap()).collect();
        assert!(slots.take("a").is_err(), "one tenant cannot take more");
        let others: Vec<Slot> =
            (0..MAX_FOLLOWERS - MAX_FOLLOWERS_PER_TENANT).map(|i| slots.take(&format!("t{}", i % 100)).unwrap()).collect();
        assert!(slots.take("z").is_err(), "the server-wide cap holds");
        drop(mine);
        assert_eq!(slots.open(), others.len());
        assert!(slots.take("a").is_ok());
    }

    #[tokio::test]
    async fn a_follower_notices_at_once_that_its_client_left() {
        let (tx, rx) = tokio::sync::mpsc::channel::<u8>(1);
        let started = std::time::Instant::now();
        let waiter = tokio::spawn(async move { wait_or_left(&tx, Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert!(waiter.await.unwrap());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
