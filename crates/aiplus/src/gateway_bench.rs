//! `aiplus gateway bench`: what the gateway adds on top of its upstream, measured against a
//! zero-delay mock with auth, limits and metering on, and the same harness against LiteLLM's
//! proxy in the same run (`--litellm`).
//!
//! Three processes share the machine: the mock upstream (`aiplus gateway mock`), the proxy under
//! test (the real `aiplus serve`, or LiteLLM) and this load generator. Figures:
//! - added latency at concurrency 1: percentiles through the proxy minus direct to the mock;
//! - throughput with 64 connections (each a bare hyper HTTP/1.1 connection sending a body
//!   encoded once, so the generator's own share of the cores stays small): closed loop; if its
//!   p99 is 10 ms or more, the highest
//!   paced rate (latency counted from each request's scheduled time) whose p99 stays under,
//!   found by a five-step binary search;
//! - added time to first token on streams, at concurrency 1;
//! - the proxy's peak RSS, and with `--soak-s` its RSS over a long run at a steady rate.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Requests per concurrency-1 phase.
    #[arg(long, default_value_t = 3000)]
    pub requests: usize,
    /// Length of each 64-connection phase.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Connections of the throughput phase.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// The p99 the throughput must keep.
    #[arg(long, default_value_t = 10.0)]
    pub p99_ms_max: f64,
    /// Also run the harness against LiteLLM's proxy (installed with scripts/bench/litellm.sh).
    #[arg(long)]
    pub litellm: bool,
    /// After the main phases, run this long at a steady rate, sampling RSS every 10 s.
    #[arg(long, default_value_t = 0)]
    pub soak_s: u64,
    /// The soak's rate; default half the measured throughput.
    #[arg(long)]
    pub soak_rps: Option<f64>,
    /// Extra settings for the gateway under test, as TOML lines of its `[gateway]` table (for
    /// example `meter_flush_ms = 1000`), to see what a setting costs.
    #[arg(long)]
    pub gateway_toml: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct MockArgs {
    /// Address to listen on; the chosen URL is printed on the first line.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Instead of the mock, a bare forwarder to this URL (no auth, parsing or metering): the
    /// floor of what any proxy on this HTTP stack adds.
    #[arg(long)]
    pub forward: Option<String>,
}

/// The zero-delay upstream: the gateway's test double, in its own process (or the floor
/// forwarder, with `--forward`, on the runtime `aiplus serve` uses).
pub fn mock(args: MockArgs) -> anyhow::Result<()> {
    let rt = match &args.forward {
        Some(_) => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        None => tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?,
    };
    rt.block_on(async {
        let url = match args.forward {
            Some(upstream) => crate::floor_proxy::serve(&args.listen, upstream).await?,
            None => gateway::test_double::serve_on(&args.listen).await?,
        };
        println!("{url}");
        std::future::pending::<()>().await;
        Ok(())
    })
}

#[derive(Serialize, Clone, Copy, Default)]
struct Percentiles {
    p50_us: f64,
    p99_us: f64,
}

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1].as_secs_f64() * 1e6;
    Percentiles { p50_us: at(0.50), p99_us: at(0.99) }
}

#[derive(Serialize, Clone, Copy, Default)]
struct Throughput {
    /// Requests per second that met the p99 goal (0 if no rate did).
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Closed loop (as fast as the connections go) or paced at a target rate.
    paced: bool,
    errors: u64,
    /// The closed loop's own figures, whatever its p99.
    closed_rps: f64,
    closed_p99_ms: f64,
}

#[derive(Serialize, Default)]
struct ProxyReport {
    name: String,
    c1: Percentiles,
    added_c1: Percentiles,
    ttft: Percentiles,
    added_ttft: Percentiles,
    /// Failed requests at concurrency 1 and on streams (not timed).
    c1_errors: u64,
    ttft_errors: u64,
    throughput: Throughput,
    peak_rss_mib: f64,
    soak_rss_mib: Vec<f64>,
    soak_requests: usize,
}

#[derive(Serialize, Default)]
struct Report {
    direct_c1: Percentiles,
    direct_ttft: Percentiles,
    proxies: Vec<ProxyReport>,
}

/// One target of the load: a chat URL and its key, with both request bodies encoded once, so
/// the load generator spends its share of the two cores on sending, not on building requests.
#[derive(Clone)]
struct Target {
    url: reqwest::Url,
    auth: Option<reqwest::header::HeaderValue>,
    body: bytes::Bytes,
    stream_body: bytes::Bytes,
}

impl Target {
    fn new(url: &str, key: Option<&str>) -> anyhow::Result<Self> {
        let body = |stream: bool| {
            serde_json::to_vec(
                &serde_json::json!({"model": "bench", "messages": [{"role": "user", "content": "hi"}], "stream": stream, "max_tokens": 16}),
            )
            .map(bytes::Bytes::from)
        };
        Ok(Self {
            url: reqwest::Url::parse(url)?,
            auth: key.map(|k| reqwest::header::HeaderValue::from_str(&format!("Bearer {k}"))).transpose()?,
            body: body(false)?,
            stream_body: body(true)?,
        })
    }

    fn request(&self, http: &reqwest::Client, stream: bool) -> reqwest::RequestBuilder {
        let body = if stream { self.stream_body.clone() } else { self.body.clone() };
        let r = http.post(self.url.clone()).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        match &self.auth {
            Some(a) => r.header(reqwest::header::AUTHORIZATION, a.clone()),
            None => r,
        }
    }
}

async fn one(http: &reqwest::Client, t: &Target) -> Result<(), String> {
    let r = t.request(http, false).send().await.map_err(|e| e.to_string())?;
    let ok = r.status().is_success();
    let _ = r.bytes().await.map_err(|e| e.to_string())?;
    if ok { Ok(()) } else { Err("status".into()) }
}

/// Latencies of the requests that succeeded, and how many failed (a failed request is counted,
/// not timed, and does not end the run).
#[derive(Default)]
struct Sample {
    lat: Vec<Duration>,
    errors: u64,
}

impl Sample {
    /// The percentiles, and the errors (the first one said on stderr).
    fn summary(self, what: &str, first_error: Option<String>) -> (Percentiles, u64) {
        if let Some(e) = first_error {
            eprintln!("{what}: {} failed requests; the first: {e}", self.errors);
        }
        (percentiles(self.lat), self.errors)
    }
}

/// Concurrency 1: `n` requests one after another (after a short warm-up).
async fn c1(http: &reqwest::Client, t: &Target, n: usize) -> (Percentiles, u64) {
    let mut s = Sample { lat: Vec::with_capacity(n), errors: 0 };
    let mut first = None;
    for i in 0..n + 50 {
        let start = Instant::now();
        match one(http, t).await {
            Ok(()) if i >= 50 => s.lat.push(start.elapsed()),
            Ok(()) => {}
            Err(e) => {
                s.errors += 1;
                first.get_or_insert(e);
            }
        }
    }
    s.summary(&format!("concurrency 1 to {}", t.url), first)
}

/// Time to the first body chunk of a stream, `n` times one after another.
async fn ttft(http: &reqwest::Client, t: &Target, n: usize) -> (Percentiles, u64) {
    let mut s = Sample { lat: Vec::with_capacity(n), errors: 0 };
    let mut first = None;
    for i in 0..n + 20 {
        let start = Instant::now();
        match first_chunk(http, t).await {
            Ok(took) if i >= 20 => s.lat.push(took.duration_since(start)),
            Ok(_) => {}
            Err(e) => {
                s.errors += 1;
                first.get_or_insert(e);
            }
        }
    }
    s.summary(&format!("streams to {}", t.url), first)
}

/// One stream, read to its end; when its first chunk came.
async fn first_chunk(http: &reqwest::Client, t: &Target) -> Result<Instant, String> {
    let mut r = t.request(http, true).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("status {}", r.status()));
    }
    r.chunk().await.map_err(|e| e.to_string())?;
    let at = Instant::now();
    while r.chunk().await.map_err(|e| e.to_string())?.is_some() {}
    Ok(at)
}

/// One connection of the load: hyper's bare HTTP/1.1 client on its own TCP stream, as oha and
/// wrk have, so that the generator takes little of the cores it shares with what it measures.
type Conn = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

async fn connect(t: &Target) -> Result<Conn, String> {
    let host = t.url.host_str().unwrap_or("127.0.0.1");
    let port = t.url.port_or_known_default().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let (conn, driver) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
    tokio::spawn(driver);
    Ok(conn)
}

/// One request on `conn`, its answer read to the end.
async fn send_on(conn: &mut Conn, t: &Target) -> Result<(), String> {
    use http_body_util::BodyExt;
    conn.ready().await.map_err(|e| e.to_string())?;
    let mut req = hyper::Request::post(t.url.path())
        .header(reqwest::header::HOST, t.url.authority())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if let Some(a) = &t.auth {
        req = req.header(reqwest::header::AUTHORIZATION, a.clone());
    }
    let req = req.body(http_body_util::Full::new(t.body.clone())).map_err(|e| e.to_string())?;
    let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
    let ok = resp.status().is_success();
    resp.into_body().collect().await.map_err(|e| e.to_string())?;
    if ok { Ok(()) } else { Err("status".into()) }
}

/// `conns` connections for `dur`; with `rate`, each request is scheduled (rate spread over the
/// connections) and its latency counts from its scheduled time. A connection that fails is
/// opened again for the next request.
async fn load(t: &Target, conns: usize, dur: Duration, rate: Option<f64>) -> (Vec<Duration>, u64, Duration) {
    let start = Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut conn: Option<Conn> = None;
                let interval = rate.map(|r| Duration::from_secs_f64(conns as f64 / r));
                let mut k = 0u32;
                loop {
                    let due = match interval {
                        Some(iv) => start + iv.mul_f64(f64::from(k) + i as f64 / conns as f64),
                        None => Instant::now().max(start),
                    };
                    if due >= start + dur {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    let sent = match conn.as_mut() {
                        Some(c) => send_on(c, &t).await,
                        None => match connect(&t).await {
                            Ok(c) => send_on(conn.insert(c), &t).await,
                            Err(e) => Err(e),
                        },
                    };
                    if sent.is_ok() {
                        lat.push(due.elapsed());
                    } else {
                        errors += 1;
                        conn = None;
                    }
                    k += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((l, e)) = task.await {
            all.extend(l);
            errors += e;
        }
    }
    (all, errors, start.elapsed())
}

/// Closed loop first; if its p99 misses the goal, paced rates stepping down from it.
async fn throughput(t: &Target, args: &BenchArgs) -> Throughput {
    let dur = Duration::from_secs(args.duration_s);
    let (lat, errors, took) = load(t, args.connections, dur, None).await;
    let rps = lat.len() as f64 / took.as_secs_f64();
    let p = percentiles(lat);
    let closed_p99_ms = p.p99_us / 1000.0;
    if closed_p99_ms < args.p99_ms_max {
        return Throughput { rps, p50_ms: p.p50_us / 1000.0, p99_ms: closed_p99_ms, paced: false, errors, closed_rps: rps, closed_p99_ms };
    }
    // Binary search on the paced rate: five steps between nothing and the closed-loop rate.
    let (mut lo, mut hi) = (0.0, rps);
    let mut best = Throughput { paced: true, closed_rps: rps, closed_p99_ms, ..Throughput::default() };
    for _ in 0..5 {
        let rate = (lo + hi) / 2.0;
        let (lat, errors, took) = load(t, args.connections, dur, Some(rate)).await;
        let achieved = lat.len() as f64 / took.as_secs_f64();
        let p = percentiles(lat);
        if p.p99_us / 1000.0 < args.p99_ms_max {
            lo = rate;
            best = Throughput {
                rps: achieved,
                p50_ms: p.p50_us / 1000.0,
                p99_ms: p.p99_us / 1000.0,
                paced: true,
                errors,
                closed_rps: rps,
                closed_p99_ms,
            };
        } else {
            hi = rate;
        }
    }
    best
}

fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A child process that is killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child and reads the URL it prints (the first line with `http://`).
fn start_child(mut cmd: Command) -> anyhow::Result<(Proc, String)> {
    use std::io::BufRead;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let proc_ = Proc(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().context("the child exited before printing its address")??;
        if let Some(i) = line.find("http://") {
            break line[i..].split_whitespace().next().unwrap_or_default().to_string();
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((proc_, url))
}

async fn measure(
    name: &str,
    http: &reqwest::Client,
    t: &Target,
    pid: u32,
    args: &BenchArgs,
    report: &Report,
) -> anyhow::Result<ProxyReport> {
    eprintln!("{name}: concurrency 1 ...");
    let (c1p, c1_errors) = c1(http, t, args.requests).await;
    eprintln!("{name}: time to first token ...");
    let (tt, ttft_errors) = ttft(http, t, args.requests / 5).await;
    eprintln!("{name}: {} connections ...", args.connections);
    let tp = throughput(t, args).await;
    let mut soak = Vec::new();
    let soak_rps = args.soak_rps.unwrap_or(tp.rps.max(tp.closed_rps) / 2.0);
    let mut soak_done = 0usize;
    if args.soak_s > 0 && soak_rps > 0.0 {
        eprintln!("{name}: soak for {} s at {soak_rps:.0} req/s ...", args.soak_s);
        let end = Instant::now() + Duration::from_secs(args.soak_s);
        while Instant::now() < end {
            let (lat, _, _) = load(t, args.connections, Duration::from_secs(10), Some(soak_rps)).await;
            soak_done += lat.len();
            soak.push(rss_mib(pid, "VmRSS:"));
        }
    }
    let sub = |a: Percentiles, b: Percentiles| Percentiles { p50_us: a.p50_us - b.p50_us, p99_us: a.p99_us - b.p99_us };
    Ok(ProxyReport {
        name: name.into(),
        c1: c1p,
        added_c1: sub(c1p, report.direct_c1),
        ttft: tt,
        added_ttft: sub(tt, report.direct_ttft),
        c1_errors,
        ttft_errors,
        throughput: tp,
        peak_rss_mib: rss_mib(pid, "VmHWM:"),
        soak_rss_mib: soak,
        soak_requests: soak_done,
    })
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = std::env::temp_dir().join(format!("aiplus-gateway-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (_mock, mock_url) = start_child({
        let mut c = Command::new(&exe);
        c.args(["gateway", "mock"]);
        c
    })?;
    let upstream = format!("{mock_url}/fast/v1");
    let (floor_proc, floor_url) = start_child({
        let mut c = Command::new(&exe);
        c.args(["gateway", "mock", "--forward", &mock_url]);
        c
    })?;
    let cfg = dir.join("aiplus.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nallow_local_upstreams = true\n{}\n[gateway.embedded]\nenabled = false\n[[gateway.model]]\nname = \"bench\"\n\
             [[gateway.model.deployment]]\nid = \"mock\"\nbase_url = \"{upstream}\"\n",
            args.gateway_toml.as_deref().unwrap_or("")
        ),
    )?;
    let (gw, gw_url) = start_child({
        let mut c = Command::new(&exe);
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--config")
            .arg(&cfg)
            .env("AIPLUS_LOG", "warn")
            // The default chat model would download and run beside the measurement: off.
            .env("AIPLUS_MODELS_CHAT", "");
        c
    })?;
    let http = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(256).build()?;
    let report = rt.block_on(async {
        // The operator token the fresh server wrote registers tenant bench and makes its key.
        let token = std::fs::read_to_string(dir.join("data").join(identity::OPERATOR_TOKEN_FILE))?.trim().to_string();
        http.post(format!("{gw_url}/api/v1/tenants"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"id": "bench"}))
            .send()
            .await?
            .error_for_status()?;
        // Limits on (far above the load, so they bind nothing but are checked on every request).
        let key: serde_json::Value = http
            .post(format!("{gw_url}/api/v1/keys"))
            .bearer_auth(&token)
            .header(crate::client::TENANT_HEADER, "bench")
            .json(&serde_json::json!({"limits": {"requests_per_min": 100_000_000u64, "tokens_per_min": 1_000_000_000_000u64, "tokens_per_day": 1_000_000_000_000u64}}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let secret = key["secret"].as_str().context("no key secret")?.to_string();
        let direct = Target::new(&format!("{upstream}/chat/completions"), None)?;
        let mut report = Report::default();
        eprintln!("direct to the mock: concurrency 1 and time to first token ...");
        let (c1p, c1_errors) = c1(&http, &direct, args.requests).await;
        let (ttft, ttft_errors) = ttft(&http, &direct, args.requests / 5).await;
        anyhow::ensure!(c1_errors + ttft_errors == 0, "the mock itself failed {} requests", c1_errors + ttft_errors);
        (report.direct_c1, report.direct_ttft) = (c1p, ttft);
        // The floor: what one more hop through a bare forwarder adds.
        let floor = Target::new(&format!("{floor_url}/fast/v1/chat/completions"), None)?;
        let r = measure("floor", &http, &floor, floor_proc.0.id(), &args, &report).await?;
        report.proxies.push(r);
        let aiplus = Target::new(&format!("{gw_url}/v1/chat/completions"), Some(&secret))?;
        let r = measure("aiplus", &http, &aiplus, gw.0.id(), &args, &report).await?;
        report.proxies.push(r);
        if args.litellm {
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/litellm.sh");
            anyhow::ensure!(Command::new(&script).arg("install").status()?.success(), "installing LiteLLM failed");
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            anyhow::ensure!(
                Command::new(&script).args(["start", &port.to_string(), &upstream, "bench"]).status()?.success(),
                "starting LiteLLM failed"
            );
            let pid: u32 = std::fs::read_to_string(std::env::temp_dir().join("aiplus-litellm/litellm.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let lite = Target::new(&format!("http://127.0.0.1:{port}/v1/chat/completions"), Some("sk-litellm-bench"))?;
            let r = measure("litellm", &http, &lite, pid, &args, &report).await;
            let _ = Command::new(&script).arg("stop").status();
            report.proxies.push(r?);
        }
        anyhow::Ok(report)
    })?;
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| format!("writing {}", out.display()))?;
    }
    if args.json {
        println!("{json}");
        return Ok(());
    }
    println!(
        "direct to the mock: c=1 p50 {:.0} µs, p99 {:.0} µs; TTFT p50 {:.0} µs",
        report.direct_c1.p50_us, report.direct_c1.p99_us, report.direct_ttft.p50_us
    );
    println!(
        "{:<8} {:>13} {:>13} {:>14} {:>15} {:>8} {:>14} {:>8} {:>7} {:>9}",
        "proxy",
        "added p50 µs",
        "added p99 µs",
        "added TTFT µs",
        "req/s p99<goal",
        "p99 ms",
        "req/s flat out",
        "p99 ms",
        "errors",
        "peak MiB"
    );
    for p in &report.proxies {
        println!(
            "{:<8} {:>13.0} {:>13.0} {:>14.0} {:>15.0} {:>8.2} {:>14.0} {:>8.2} {:>7} {:>9.1}",
            p.name,
            p.added_c1.p50_us,
            p.added_c1.p99_us,
            p.added_ttft.p50_us,
            p.throughput.rps,
            p.throughput.p99_ms,
            p.throughput.closed_rps,
            p.throughput.closed_p99_ms,
            p.c1_errors + p.ttft_errors + p.throughput.errors,
            p.peak_rss_mib
        );
        if !p.soak_rss_mib.is_empty() {
            let (min, max) = p.soak_rss_mib.iter().fold((f64::MAX, 0.0f64), |(a, b), x| (a.min(*x), b.max(*x)));
            println!(
                "         soak ({} requests) RSS: first {:.1} MiB, last {:.1} MiB, min {min:.1}, max {max:.1}",
                p.soak_requests,
                p.soak_rss_mib[0],
                p.soak_rss_mib[p.soak_rss_mib.len() - 1]
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let p = percentiles(v);
        assert_eq!((p.p50_us, p.p99_us), (50.0, 99.0));
        assert_eq!(percentiles(vec![]).p99_us, 0.0);
    }
}
