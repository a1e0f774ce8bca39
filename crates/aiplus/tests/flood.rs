//! A flood against the real binary: 10,000 requests with distinct 1 MiB model names, 300 live
//! log followers that open and drop, and 100 failed logins for `admin` from one address. The
//! server's memory stays bounded, the ledger does not grow, and `admin` still logs in from
//! another address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::time::{Duration, Instant};

use serde_json::json;

mod common;

use common::{Server, temp_dir};

/// The most the flood may add to the server's peak resident memory.
const MAX_RSS_GROWTH_MIB: u64 = 128;
const REQUESTS: usize = 10_000;
const WRITERS: usize = 4;

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// The gateway's events in the ledger (the quiet job below adds a run of its own).
fn ledger_rows(s: &Server) -> usize {
    s.get("/api/v1/usage?pillar=gateway&limit=1000").1.as_array().map_or(0, Vec::len)
}

#[test]
fn a_flood_of_junk_leaves_memory_bounded_the_ledger_unchanged_and_admin_able_to_log_in() {
    let data = temp_dir("flood");
    // Without the embedded model, whose loading in the background would blur the memory figures.
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, format!("{}[gateway.embedded]\nenabled = false\n", common::sandbox_config(&data))).unwrap();
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let key = s.key("acme", &json!({}))["secret"].as_str().unwrap().to_string();
    // One answered request first, so the baselines include a warmed-up gateway and its event.
    let http = reqwest::blocking::Client::new();
    let warm = http.get(format!("{}/v1/models", s.url)).bearer_auth(&key).send().unwrap();
    assert_eq!(warm.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ledger_rows(&s) == 0 {
        assert!(Instant::now() < deadline, "the answered request was never metered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rows_before = ledger_rows(&s);
    let rss_before = peak_rss_mib(s.child.id());

    // 10,000 chat requests, each naming a different 1 MiB model.
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, key) = (s.url.clone(), key.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut body =
                    format!(r#"{{"messages":[{{"role":"user","content":"hi"}}],"model":"{}"}}"#, "m".repeat(1 << 20)).into_bytes();
                let at = body.len() - (1 << 20) - 2;
                let mut statuses = Vec::new();
                for i in 0..REQUESTS / WRITERS {
                    // A distinct name each time: a counter written over the name's first bytes.
                    let tag = format!("{w:02}-{i:08}");
                    body[at..at + tag.len()].copy_from_slice(tag.as_bytes());
                    let r = http
                        .post(format!("{url}/v1/chat/completions"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .unwrap();
                    statuses.push(r.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let flood_s = started.elapsed().as_secs_f64();
    assert_eq!(statuses.len(), REQUESTS);
    assert!(statuses.iter().all(|&st| (400..500).contains(&st)), "every junk request is refused as the client's fault");
    eprintln!("flood: {REQUESTS} requests of 1 MiB in {flood_s:.1} s");

    // 300 live log followers of a quiet job, opened 30 at a time and dropped.
    let (status, j) = s.submit(&common::job(0, &data));
    assert_eq!(status, 201, "{j}");
    let id = j["id"].as_str().unwrap().to_string();
    let client = s.client();
    let follow = || client.get(format!("{}/api/v1/jobs/{id}/logs?follow=true", s.url)).header("x-aiplus-tenant", "acme").send().unwrap();
    for _ in 0..10 {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut open = Vec::new();
        while open.len() < 30 {
            let r = follow();
            if r.status() == 200 {
                open.push(r);
            } else {
                assert!(Instant::now() < deadline, "dropped followers did not free their places: {}", r.status());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        drop(open);
    }
    common::stop_jobs(&data);

    // 100 failed logins for admin from 127.0.0.1 (most are refused before the password check).
    let from = |ip: [u8; 4]| {
        let no_redirects = reqwest::redirect::Policy::none();
        reqwest::blocking::Client::builder().local_address(std::net::IpAddr::from(ip)).redirect(no_redirects).build().unwrap()
    };
    let attacker = from([127, 0, 0, 1]);
    let mut refused = 0;
    for _ in 0..100 {
        let r =
            attacker.post(format!("{}/login", s.url)).form(&[("username", "admin"), ("password", "guess"), ("next", "/")]).send().unwrap();
        refused += usize::from(r.status() == 429);
    }
    assert!(refused >= 90, "the address is slowed down: {refused} of 100 refused");

    // The real admin, from another address, gets in (after at most the account's capped delay).
    let password = std::fs::read_to_string(data.join("console-admin-password")).unwrap();
    let admin = from([127, 0, 0, 2]);
    let deadline = Instant::now() + Duration::from_secs(7);
    loop {
        let r = admin
            .post(format!("{}/login", s.url))
            .form(&[("username", "admin"), ("password", password.trim()), ("next", "/")])
            .send()
            .unwrap();
        if r.status() == 429 {
            assert!(Instant::now() < deadline, "admin was locked out");
            let wait_s: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(wait_s <= 5, "admin waits at most the account's capped delay, not {wait_s} s");
            std::thread::sleep(Duration::from_secs(wait_s));
            continue;
        }
        assert!(r.status() == 303 && r.headers().contains_key("set-cookie"), "admin logged in: {}", r.status());
        break;
    }

    let rss = peak_rss_mib(s.child.id());
    eprintln!("flood: peak RSS {rss_before} MiB before, {rss} MiB after");
    assert!(rss <= rss_before + MAX_RSS_GROWTH_MIB, "peak RSS grew from {rss_before} to {rss} MiB");
    // The meter flushes within 50 ms; anything the flood had queued would be stored by now.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ledger_rows(&s), rows_before, "junk requests never reach the ledger");
    assert_eq!(s.get("/healthz").0, 200);
    let _ = std::fs::remove_dir_all(&data);
}
