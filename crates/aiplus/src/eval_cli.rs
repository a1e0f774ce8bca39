//! `aiplus eval`: runs a suite against a model a running server serves, through its gateway,
//! so every request is admitted, metered, limited and routed like any other, under an
//! evaluation tenant (`eval` unless told otherwise). The run's directory keeps the request
//! cache (a killed run started again resumes where it stopped), the per-sample log, the report
//! and its chart.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eval::prompt::{Asking, Endpoint, Method};
use eval::run::{CallError, Counts, Model, Options, Spec};
use eval::suite::{Selection, Suite};
use serde_json::{Value, json};

use crate::client;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(clap::Subcommand, Debug)]
enum EvalCommand {
    /// Run a suite against a model: accuracy (or refusal rates, or bias scores) with standard
    /// errors overall and per subject, written to the run's directory as report.json,
    /// report.svg and samples.jsonl. Running it again resumes from the request cache.
    Run(Box<RunArgs>),
    /// List the suites of the suites directory.
    Suites(SuitesArgs),
    /// Measure the harness itself: items per second against a zero-delay test double of a
    /// model, fresh and from the cache.
    Bench(crate::eval_bench::BenchArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum MethodArg {
    /// Log-probabilities if the model returns them, else generation.
    Auto,
    Logprobs,
    Generate,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum EndpointArg {
    Chat,
    Completions,
}

#[derive(clap::Args, Debug)]
struct SuitesArgs {
    /// Where suites are: one directory per suite, each with a suite.toml.
    #[arg(long, env = "AIPLUS_EVAL_SUITES", default_value = "suites")]
    suites_dir: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    server: client::Server,
    /// The model, as the gateway names it (`name`, or `name@version` for one version).
    #[arg(long)]
    model: String,
    /// A suite's name in the suites directory, or the path of a suite directory.
    #[arg(long)]
    suite: String,
    /// Where suites are: one directory per suite, each with a suite.toml.
    #[arg(long, env = "AIPLUS_EVAL_SUITES", default_value = "suites")]
    suites_dir: PathBuf,
    /// Only these subjects (categories, risk classes), comma-separated.
    #[arg(long, value_delimiter = ',')]
    subjects: Vec<String>,
    /// At most this many items per subject.
    #[arg(long)]
    limit: Option<usize>,
    /// Examples before each question (default: the suite's).
    #[arg(long)]
    shots: Option<usize>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Attempts per item when the gateway answers 429 or 5xx or does not answer.
    #[arg(long, default_value_t = 4)]
    attempts: u32,
    #[arg(long, value_enum, default_value = "auto")]
    method: MethodArg,
    #[arg(long, value_enum, default_value = "chat")]
    endpoint: EndpointArg,
    /// The run's directory (default: aiplus-eval/<suite>/<model>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// An API key with the inference scope. Without one, the CLI's operator token makes a
    /// key for --tenant for the run and revokes it at the end.
    #[arg(long, env = "AIPLUS_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The evaluation tenant the run's requests are made and billed under (made if missing).
    #[arg(long, default_value = "eval")]
    tenant: String,
    /// How long one request may take.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
}

/// Largest answer the CLI reads from the gateway.
const MAX_ANSWER_BYTES: usize = 4 << 20;

pub(crate) fn suite_dir(suites_dir: &Path, suite: &str) -> PathBuf {
    let direct = PathBuf::from(suite);
    if direct.join("suite.toml").exists() { direct } else { suites_dir.join(suite) }
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    match args.command {
        EvalCommand::Run(a) => run(*a),
        EvalCommand::Suites(a) => suites(a),
        EvalCommand::Bench(a) => crate::eval_bench::run(a),
    }
}

fn suites(a: SuitesArgs) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(&a.suites_dir).with_context(|| format!("reading {}", a.suites_dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("suite.toml").exists()).collect();
    dirs.sort();
    let mut rows = Vec::new();
    for d in dirs {
        let s = Suite::open(&d)?;
        let data = s.data_dir().exists();
        rows.push(json!({"name": s.manifest.name, "title": s.manifest.title, "format": format!("{:?}", s.manifest.format).to_lowercase(),
                         "licence": s.manifest.licence, "data_present": data, "dir": d.display().to_string()}));
    }
    if a.json {
        return client::print_json(&Value::Array(rows));
    }
    for r in rows {
        println!(
            "{:<24} {:<12} {:<20} {}",
            client::s(&r["name"]),
            client::s(&r["format"]),
            client::s(&r["licence"]),
            if r["data_present"] == json!(true) { "" } else { "(no data)" }
        );
    }
    Ok(())
}

/// The key the run's requests carry, and the id of a key made for the run (to revoke).
fn credential(a: &RunArgs, base: &str, out: &Path) -> anyhow::Result<(String, Option<String>)> {
    if let Some(k) = &a.key {
        return Ok((k.clone(), None));
    }
    let c = client::client()?;
    let tenant = c.get(format!("{base}/api/v1/tenants/{}", a.tenant)).send().context("could not reach the aiplus server (see --server)")?;
    if tenant.status() == reqwest::StatusCode::NOT_FOUND {
        client::call(c.post(format!("{base}/api/v1/tenants")).json(&json!({"id": a.tenant, "name": "Evaluation"})))?;
    } else if !tenant.status().is_success() {
        bail!(
            "{}: the CLI's credential cannot manage tenant {:?}; pass an API key with --key or AIPLUS_API_KEY",
            tenant.status(),
            a.tenant
        );
    }
    // The key is named after the run's directory, so a run killed before it could revoke its
    // key has it revoked by the run that resumes it.
    let name = {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        out.hash(&mut h);
        format!("aiplus eval run {:016x}", h.finish())
    };
    let keys = client::call(c.get(format!("{base}/api/v1/keys")).header(client::TENANT_HEADER, &a.tenant))?;
    for stale in keys.as_array().into_iter().flatten().filter(|k| k["name"] == name.as_str() && k["revoked_ms"].is_null()) {
        if let Some(id) = stale["id"].as_str() {
            client::call(c.post(format!("{base}/api/v1/keys/{id}/revoke")).header(client::TENANT_HEADER, &a.tenant))?;
        }
    }
    let key = client::call(
        c.post(format!("{base}/api/v1/keys"))
            .header(client::TENANT_HEADER, &a.tenant)
            .json(&json!({"name": name, "scopes": ["inference"]})),
    )?;
    let secret = key["secret"].as_str().context("the server made a key without a secret")?;
    Ok((secret.to_string(), key["id"].as_str().map(String::from)))
}

/// The model's identity in cache keys: `name@version` when the gateway serves versions of
/// it (the newest, which is what a request for the family gets), else the name.
fn cache_model(http: &reqwest::blocking::Client, base: &str, key: &str, model: &str) -> String {
    if model.contains('@') {
        return model.to_string();
    }
    let listed: Option<Value> = http.get(format!("{base}/v1/models")).bearer_auth(key).send().ok().and_then(|r| r.json().ok());
    let prefix = format!("{model}@");
    let mut versions: Vec<String> = listed
        .as_ref()
        .and_then(|v| v["data"].as_array())
        .map(|d| d.iter().filter_map(|m| m["id"].as_str()).filter(|id| id.starts_with(&prefix)).map(String::from).collect())
        .unwrap_or_default();
    versions.sort_by(|a, b| gateway::models::version_cmp(a, b));
    versions.pop().unwrap_or_else(|| model.to_string())
}

struct Http {
    http: reqwest::Client,
    base: String,
    key: String,
}

fn retry_after_ms(h: &reqwest::header::HeaderMap) -> Option<u64> {
    h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(|s| s * 1000)
}

impl Model for Http {
    async fn call(&self, endpoint: Endpoint, body: &Value) -> Result<Value, CallError> {
        let retry = |e: reqwest::Error| CallError::Retry { reason: e.to_string(), after_ms: None };
        let mut resp =
            self.http.post(format!("{}/v1{}", self.base, endpoint.path())).bearer_auth(&self.key).json(body).send().await.map_err(retry)?;
        let status = resp.status();
        let after_ms = retry_after_ms(resp.headers());
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(retry)? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(CallError::Fail(format!("answer larger than {MAX_ANSWER_BYTES} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = || v["error"]["message"].as_str().map_or_else(|| format!("{status}"), |m| format!("{status}: {m}"));
        if status.is_success() {
            return Ok(v);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(CallError::Retry { reason: message(), after_ms });
        }
        if v["error"]["code"] == "content_blocked" {
            return Err(CallError::Blocked(message()));
        }
        Err(CallError::Fail(message()))
    }
}

fn progress(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items  {per_sec}  ETA {eta}  {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    let suite = Suite::open(&suite_dir(&a.suites_dir, &a.suite))?;
    let shots = a.shots.unwrap_or(suite.manifest.shots);
    if shots > eval::suite::MAX_SHOTS {
        bail!("--shots: at most {}", eval::suite::MAX_SHOTS);
    }
    let opts = Options { concurrency: a.concurrency, attempts: a.attempts, ..Options::default() };
    opts.validate()?;
    let loaded = suite.load(&Selection { groups: a.subjects.clone(), limit: a.limit })?;
    let out =
        a.out.clone().unwrap_or_else(|| PathBuf::from("aiplus-eval").join(&suite.manifest.name).join(a.model.replace(['/', '\\'], "_")));
    std::fs::create_dir_all(&out).with_context(|| format!("making {}", out.display()))?;
    let base = a.server.server.trim_end_matches('/').to_string();
    let (key, minted) = credential(&a, &base, &std::path::absolute(&out)?)?;
    let outcome = evaluate(&a, &suite, &loaded, shots, &opts, &out, &base, &key);
    if let Some(id) = minted {
        // The key lived for this run only.
        let revoked = client::client()
            .and_then(|c| client::call(c.post(format!("{base}/api/v1/keys/{id}/revoke")).header(client::TENANT_HEADER, &a.tenant)));
        if let Err(e) = revoked {
            eprintln!("warning: could not revoke the run's key {id}: {e:#}");
        }
    }
    let report = outcome?;
    if a.server.json {
        client::print_json(&serde_json::to_value(&report)?)?;
    } else {
        print_report(&report, &out);
    }
    if report.errors > 0 {
        bail!("{} of {} items got no answer (see samples.jsonl); run the same command again to retry them", report.errors, report.items);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "the run's parts, each used once")]
fn evaluate(
    a: &RunArgs,
    suite: &Suite,
    loaded: &eval::suite::Loaded,
    shots: usize,
    opts: &Options,
    out: &Path,
    base: &str,
    key: &str,
) -> anyhow::Result<eval::Report> {
    let blocking = client::client()?;
    let cache_model = cache_model(&blocking, base, key, &a.model);
    let cache = eval::cache::FileCache::open(&out.join("cache.jsonl"))?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(a.timeout_s)).build()?;
    let model = Http { http, base: base.to_string(), key: key.to_string() };
    let endpoint = match a.endpoint {
        EndpointArg::Chat => Endpoint::Chat,
        EndpointArg::Completions => Endpoint::Completions,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let counts = Counts::default();
    let asking = Asking { endpoint, method: Method::Generate, shots };
    let spec = Spec { suite, loaded, model: &a.model, cache_model: &cache_model, asking };
    let method = match a.method {
        MethodArg::Logprobs => Method::Logprobs,
        MethodArg::Generate => Method::Generate,
        MethodArg::Auto => rt.block_on(eval::run::probe_method(&model, &cache, &spec, &counts)),
    };
    let asking = Asking { method, ..asking };
    let plan = eval::run::plan(&Spec { asking, ..spec });
    let bar = progress(plan.len() as u64);
    let tick = |c: &Counts| {
        bar.set_position(c.done.load(Ordering::Relaxed));
        bar.set_message(format!("{} cached, {} failed", c.cached.load(Ordering::Relaxed), c.failed.load(Ordering::Relaxed)));
    };
    let outcomes = rt.block_on(eval::run::run(&model, &cache, endpoint, &plan, opts, &counts, &tick));
    bar.finish_and_clear();
    cache.sync()?;
    let samples: Vec<eval::report::Sample> = outcomes.iter().filter_map(|o| eval::report::sample(loaded, asking, o)).collect();
    let has_choice = loaded.items.iter().any(|i| matches!(i.task, eval::Task::Choice(_)));
    let mut report = eval::report::report(suite, loaded, &a.model, has_choice.then_some(method), shots, &samples);
    report.calls = counts.calls.load(Ordering::Relaxed);
    report.duration_ms = started.elapsed().as_millis() as u64;
    write_run(out, &report, &samples)?;
    Ok(report)
}

fn write_run(out: &Path, report: &eval::Report, samples: &[eval::report::Sample]) -> anyhow::Result<()> {
    let mut lines = String::new();
    for s in samples {
        lines.push_str(&serde_json::to_string(s)?);
        lines.push('\n');
    }
    std::fs::write(out.join("samples.jsonl"), lines)?;
    std::fs::write(out.join("report.json"), serde_json::to_string_pretty(report)?)?;
    std::fs::write(out.join("report.svg"), eval::chart::svg(report))?;
    Ok(())
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn print_report(r: &eval::Report, out: &Path) {
    println!(
        "{} on {} ({} items, {} answered from the cache, {} calls, {:.1} s)",
        r.model,
        r.suite,
        r.items,
        r.cached,
        r.calls,
        r.duration_ms as f64 / 1000.0
    );
    if let (Some(acc), Some(se)) = (r.accuracy, r.stderr) {
        println!("accuracy {} ± {}", pct(acc), pct(se));
    }
    if let Some(x) = r.refused {
        println!("refused {} ± {} of {} must-refuse prompts", pct(x.value), pct(x.stderr), x.n);
    }
    if let Some(x) = r.over_refused {
        println!("refused {} ± {} of {} should-answer prompts", pct(x.value), pct(x.stderr), x.n);
    }
    if let Some(b) = r.bias {
        let bias = |v: Option<f64>| v.map_or("-".into(), |b| format!("{b:+.3}"));
        println!(
            "ambiguous: accuracy {}, bias {}; disambiguated: accuracy {}, bias {}",
            pct(b.ambiguous.accuracy.value),
            bias(b.ambiguous.bias),
            pct(b.disambiguated.accuracy.value),
            bias(b.disambiguated.bias)
        );
    }
    for g in &r.groups {
        let figure = match (g.accuracy, g.stderr, g.refused.or(g.over_refused)) {
            (Some(a), Some(e), _) => format!("{} ± {}", pct(a), pct(e)),
            (_, _, Some(x)) => format!("refused {} ± {}", pct(x.value), pct(x.stderr)),
            _ => "-".into(),
        };
        println!("  {:<40} {:>6}  {}", g.title, g.n, figure);
    }
    println!("written to {}", out.display());
}
