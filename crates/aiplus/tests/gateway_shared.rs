//! Two gateway instances (real binaries) on one PostgreSQL store: a key made on one works on
//! the other, a burst over a key's limit split across both admits exactly the limit (±1%),
//! and every request of both lands in the one usage ledger. Also: only one instance may run
//! compute on a shared store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Server, temp_dir};
use serde_json::json;

/// Starts one instance on the shared store; `compute` says whether it runs the compute lifecycle.
/// Instances on one store share the transparency log's key (the first one makes it).
fn instance(name: &str, url: &str, upstream: &str, compute: bool) -> (Server, std::path::PathBuf) {
    let data = temp_dir(name);
    let cfg = data.join("aiplus.toml");
    let key = std::env::temp_dir().join(format!("aiplus-shared-log-key-{}", url.rsplit('/').next().unwrap_or("db")));
    std::fs::write(
        &cfg,
        format!(
            "[server]\ncompute = {compute}\n[store]\nurl = \"{url}\"\n[govern]\nlog_key_file = \"{}\"\n[gateway]\nallow_local_upstreams = true\nmeter_flush_ms = 20\n\
             [[gateway.model]]\nname = \"qwen\"\n[[gateway.model.deployment]]\nid = \"mock\"\nbase_url = \"{upstream}/fast/v1\"\n",
            key.display()
        ),
    )
    .unwrap();
    (Server::start_with(&data, &["--config", cfg.to_str().unwrap()]), data)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_instances_share_keys_limits_and_the_ledger() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(url) = rt.block_on(store::testing::fresh_postgres()) else { return };
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let (a, da) = instance("shared-a", &url, &upstream, true);
    let (mut b, db) = instance("shared-b", &url, &upstream, false);
    // The first instance made the operator token; the second shares its database and so its token.
    b.token = a.token.clone();

    let limit = 1000u64;
    let key = a.key("acme", &json!({"limits": {"requests_per_min": limit}}));
    let secret = key["secret"].as_str().unwrap().to_string();
    // B learns of the key from the store within its refresh interval.
    let client = reqwest::blocking::Client::new();
    wait_until("instance B to know the key", || {
        client.get(format!("{}/v1/models", b.url)).bearer_auth(&secret).send().unwrap().status() == 200
    });

    // Start the burst early in a minute, so it cannot straddle two limit windows.
    let second_of_minute = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() % 60;
    while second_of_minute() > 30 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = 1600u64;
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let base = if t % 2 == 0 { a.url.clone() } else { b.url.clone() };
            let (secret, ok, refused) = (secret.clone(), ok.clone(), refused.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                for _ in 0..sent / 16 {
                    let r = client
                        .post(format!("{base}/v1/chat/completions"))
                        .bearer_auth(&secret)
                        .json(&json!({"model": "qwen", "messages": [{"role": "user", "content": "hi"}]}))
                        .send()
                        .unwrap();
                    match r.status().as_u16() {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        429 => {
                            assert!(r.headers().contains_key("retry-after"));
                            let body: serde_json::Value = r.json().unwrap();
                            assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
                            refused.fetch_add(1, Ordering::Relaxed)
                        }
                        s => panic!("unexpected status {s}: {}", r.text().unwrap_or_default()),
                    };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (ok, refused) = (ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    eprintln!("two instances, limit {limit}/min, {sent} sent: {ok} admitted, {refused} refused");
    assert_eq!(ok + refused, sent);
    assert!(ok <= limit, "never more than the limit: {ok}");
    assert!(ok >= limit - limit / 100, "within 1% of the limit: {ok}");

    // Every request, admitted or refused, on either instance, is in the one ledger.
    wait_until("the ledger to hold every request", || {
        let (_, usage) = a.get("/api/v1/usage?tenant=acme&pillar=gateway&limit=10000");
        let rows = usage.as_array().unwrap();
        rows.iter().filter(|u| u["usage"]["endpoint"] == "chat.completions").count() as u64 == sent
    });
    let (_, usage) = a.get("/api/v1/usage?tenant=acme&pillar=gateway&limit=10000");
    let refused_in_ledger = usage.as_array().unwrap().iter().filter(|u| u["usage"]["status"] == 429).count() as u64;
    assert_eq!(refused_in_ledger, refused);
    // The gateway-only instance summarises the same ledger by day, key and model.
    let (status, summary) = b.get(&format!("/api/v1/usage/summary?tenant=acme&model=qwen&principal={}", key["id"].as_str().unwrap()));
    assert_eq!(status, 200, "{summary}");
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["events"].as_u64().unwrap()).sum::<u64>(), sent, "{summary}");
    assert_eq!(rows.iter().map(|r| r["errors"].as_u64().unwrap()).sum::<u64>(), refused, "{summary}");
    assert_eq!(rows.iter().map(|r| r["input_tokens"].as_u64().unwrap()).sum::<u64>(), ok * 11, "the mock reports 11 prompt tokens");

    // A revocation on B reaches A.
    let (status, _) = b.post(&format!("/api/v1/keys/{}/revoke", key["id"].as_str().unwrap()), &json!({}));
    assert_eq!(status, 200);
    wait_until("instance A to drop the revoked key", || {
        client.get(format!("{}/v1/models", a.url)).bearer_auth(&secret).send().unwrap().status() == 401
    });

    // A second compute instance on the same store is refused, with the reason.
    let data = temp_dir("shared-c");
    let cfg = data.join("aiplus.toml");
    std::fs::write(&cfg, format!("[store]\nurl = \"{url}\"\n[gateway.embedded]\nenabled = false\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiplus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.compute = false"), "{}", String::from_utf8_lossy(&out.stderr));
    for d in [da, db, data] {
        let _ = std::fs::remove_dir_all(d);
    }
}
