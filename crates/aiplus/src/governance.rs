//! The background work of the governance services: every instance follows filings, incidents
//! and end users, sweeps their deadlines and writes its traffic counters; the instance that runs
//! compute also evaluates the alert rules, delivers webhooks and forgets old counters.

use std::sync::Arc;
use std::time::Duration;

use govern::Services;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vocab::Clock;

use crate::config::Config;

/// How often the traffic counters are written (each write is a commit the store syncs to disk,
/// beside the ledger's), and how often deliveries are tried.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How often counters older than the longest window are deleted.
const PRUNE_EVERY_MS: i64 = 60_000;
const DELIVER_EVERY: Duration = Duration::from_millis(500);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the services as `cfg` says.
pub async fn open(cfg: &Config, store: &store::Store, log: &Arc<tlog::Log>, clock: Arc<dyn Clock>) -> anyhow::Result<Services> {
    let allow_local = cfg.govern.allow_local_webhooks;
    let options = govern::services::Options {
        calendar: cfg.govern.calendar()?,
        require_filing: cfg.govern.require_filing,
        url_ok: Box::new(move |u| outbound::check_url(u, allow_local)),
        end_user_suspension_ms: i64::from(cfg.govern.end_user_suspension_hours) * 3_600_000,
        clock,
    };
    Services::open(store, log, options).await.map_err(|e| anyhow::anyhow!("loading governance: {e}"))
}

/// Starts the background work; `leader` on the one instance that runs compute.
pub fn spawn(
    g: &Services,
    cfg: &Config,
    store: store::Store,
    clock: Arc<dyn Clock>,
    leader: bool,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    // Alone on an embedded store, nothing changes behind this instance's back: looking now and
    // then for deadlines is enough, and spares the store's few connections.
    let follow = if store.shared() { govern::states::FOLLOW_EVERY } else { govern::states::ALONE_FOLLOW_EVERY };
    let mut tasks = vec![g.states.follow(follow, stop.clone()), g.filings.follow(g.alerts.clone(), clock.clone(), follow, stop.clone())];
    let (incidents, end_users, alerts, c) = (g.incidents.clone(), g.end_users.clone(), g.alerts.clone(), clock.clone());
    tasks.push(every(follow, stop.clone(), move || {
        let (incidents, end_users, alerts, now) = (incidents.clone(), end_users.clone(), alerts.clone(), c.now_ms());
        async move {
            incidents.refresh().await?;
            incidents.sweep(&alerts, now).await?;
            end_users.refresh().await?;
            Ok(())
        }
    }));
    let (recorder, s, c) = (g.recorder.clone(), store.clone(), clock.clone());
    tasks.push(every(FLUSH_EVERY, stop.clone(), move || {
        let (recorder, s, now) = (recorder.clone(), s.clone(), c.now_ms());
        async move { recorder.flush(&s, now).await.map(|_| ()) }
    }));
    if leader {
        let (monitor, s, c) = (g.monitor.clone(), store, clock.clone());
        let pruned = Arc::new(std::sync::atomic::AtomicI64::new(0));
        tasks.push(every(Duration::from_millis(cfg.govern.monitor_every_ms), stop.clone(), move || {
            let (monitor, s, now, pruned) = (monitor.clone(), s.clone(), c.now_ms(), pruned.clone());
            async move {
                monitor.evaluate(now).await?;
                if now - pruned.load(std::sync::atomic::Ordering::Relaxed) >= PRUNE_EVERY_MS {
                    pruned.store(now, std::sync::atomic::Ordering::Relaxed);
                    s.prune_monitor_buckets(now - govern::counters::MAX_WINDOW_MS - 2 * govern::counters::BUCKET_MS).await?;
                }
                Ok(())
            }
        }));
        let http = outbound::client(cfg.govern.allow_local_webhooks, WEBHOOK_TIMEOUT).timeout(WEBHOOK_TIMEOUT).build()?;
        let webhooks = g.webhooks.clone();
        tasks.push(every(DELIVER_EVERY, stop, move || {
            let (webhooks, http, now) = (webhooks.clone(), http.clone(), clock.now_ms());
            async move { webhooks.deliver_due(now, |url, body| post(http.clone(), url, body)).await.map(|_| ()) }
        }));
    }
    Ok(tasks)
}

/// Posts a webhook: any 2xx is taken; anything else is a reason to try again.
async fn post(http: reqwest::Client, url: String, body: serde_json::Value) -> Result<(), String> {
    let r = http.post(&url).header("user-agent", "aiplus-webhooks").json(&body).send().await.map_err(|e| e.to_string())?;
    match r.status() {
        s if s.is_success() => Ok(()),
        s => Err(format!("answered {s}")),
    }
}

/// Runs `f` every `period` until `stop`, logging its failures.
fn every<F, Fut>(period: Duration, mut stop: watch::Receiver<bool>, f: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), govern::GovernError>> + Send,
{
    tokio::spawn(async move {
        loop {
            if let Err(e) = f().await {
                tracing::warn!(error = %e, "a governance task failed; it runs again shortly");
            }
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                _ = stop.changed() => return,
            }
        }
    })
}
