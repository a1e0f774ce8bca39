//! One evaluation session with a running server: the key its requests carry (an API key given,
//! or one the CLI's operator token makes for the evaluation tenant and revokes at the end), the
//! HTTP client that asks the server's `/v1` as an `eval::run::Model`, and the runs made with
//! them: a suite's items, then the judge's verdicts on the answers when a judge is named.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eval::pipeline::{Job, Phase};
use eval::prompt::{Endpoint, Method};
use eval::run::{CallError, Counts, Model, Options};
use eval::suite::{Loaded, Suite};
use serde_json::{Value, json};

use crate::client;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum MethodArg {
    /// Log-probabilities if the model returns them, else generation.
    Auto,
    Logprobs,
    Generate,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum EndpointArg {
    Chat,
    Completions,
}

/// What a run asks: the model, and which items of which suite.
#[derive(clap::Args, Debug)]
pub struct What {
    /// The model, as the gateway names it (`name`, or `name@version` for one version).
    #[arg(long)]
    pub model: String,
    /// A suite's name in the suites directory, or the path of a suite directory.
    #[arg(long)]
    pub suite: String,
    /// Only these subjects (categories, risk classes), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub subjects: Vec<String>,
    /// At most this many items per subject.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Examples before each question (default: the suite's).
    #[arg(long)]
    pub shots: Option<usize>,
}

/// How a session reaches the server and asks it.
#[derive(clap::Args, Debug)]
pub struct Conn {
    #[command(flatten)]
    pub server: client::Server,
    /// Where suites are: one directory per suite, each with a suite.toml.
    #[arg(long, env = "AIPLUS_EVAL_SUITES", default_value = "suites")]
    pub suites_dir: PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Attempts per item when the gateway answers 429 or 5xx or does not answer.
    #[arg(long, default_value_t = 4)]
    pub attempts: u32,
    #[arg(long, value_enum, default_value = "auto")]
    pub method: MethodArg,
    #[arg(long, value_enum, default_value = "chat")]
    pub endpoint: EndpointArg,
    /// A model that judges answers: whether they refuse (instead of the keyword rule) and
    /// whether they are safe (open prompts, and TC260-003's generated-content check).
    #[arg(long)]
    pub judge: Option<String>,
    /// An API key with the inference scope. Without one, the CLI's operator token makes a
    /// key for --tenant for the session and revokes it at the end.
    #[arg(long, env = "AIPLUS_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Read the API key from this environment variable instead (a job's key comes this way:
    /// jobs may not set AIPLUS_ variables).
    #[arg(long, conflicts_with = "key")]
    pub key_env: Option<String>,
    /// Only this deployment of the model answers (`X-Aiplus-Deployment`), to compare two
    /// deployments of one model.
    #[arg(long)]
    pub deployment: Option<String>,
    /// The evaluation tenant the requests are made and billed under (made if missing).
    #[arg(long, default_value = "eval")]
    pub tenant: String,
    /// How long one request may take.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

/// Largest answer the CLI reads from the gateway.
const MAX_ANSWER_BYTES: usize = 4 << 20;

pub struct Session {
    base: String,
    tenant: String,
    minted: Option<String>,
    rt: tokio::runtime::Runtime,
    model: Http,
    blocking: reqwest::blocking::Client,
    opts: Options,
    endpoint: Endpoint,
    method: MethodArg,
    pub judge: Option<String>,
}

impl Session {
    /// Opens a session whose key is named after `out`, the run's directory.
    pub fn open(conn: &Conn, out: &Path) -> anyhow::Result<Session> {
        let opts = Options { concurrency: conn.concurrency, attempts: conn.attempts, ..Options::default() };
        opts.validate()?;
        let base = conn.server.server.trim_end_matches('/').to_string();
        let (key, minted) = credential(conn, &base, &std::path::absolute(out)?)?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(conn.timeout_s)).build()?;
        Ok(Session {
            model: Http { http, base: base.clone(), key, deployment: conn.deployment.clone(), judge: conn.judge.clone() },
            base,
            tenant: conn.tenant.clone(),
            minted,
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build()?,
            blocking: client::client()?,
            opts,
            endpoint: match conn.endpoint {
                EndpointArg::Chat => Endpoint::Chat,
                EndpointArg::Completions => Endpoint::Completions,
            },
            method: conn.method,
            judge: conn.judge.clone(),
        })
    }

    /// Revokes the key the session made.
    pub fn close(self) {
        let Some(id) = self.minted else { return };
        let revoked =
            client::call(self.blocking.post(format!("{}/api/v1/keys/{id}/revoke", self.base)).header(client::TENANT_HEADER, &self.tenant));
        if let Err(e) = revoked {
            eprintln!("warning: could not revoke the run's key {id}: {e:#}");
        }
    }

    /// Runs a suite's items against `model`, writing the cache, samples.jsonl, report.json and
    /// report.svg to `out`; with a judge, the answers are judged before the report is made.
    pub fn run_suite(&self, suite: &Suite, loaded: &Loaded, model: &str, shots: usize, out: &Path) -> anyhow::Result<eval::Report> {
        std::fs::create_dir_all(out).with_context(|| format!("making {}", out.display()))?;
        let cache_model =
            eval::cache::pinned(&versioned(&self.blocking, &self.base, &self.model.key, model), self.model.deployment.as_deref());
        let cache = eval::cache::FileCache::open(&out.join("cache.jsonl"))?;
        let started = Instant::now();
        let method = match self.method {
            MethodArg::Logprobs => Some(Method::Logprobs),
            MethodArg::Generate => Some(Method::Generate),
            MethodArg::Auto => None,
        };
        let judge_cache = self.judge.as_deref().map(|j| versioned(&self.blocking, &self.base, &self.model.key, j));
        let job = Job {
            suite,
            loaded,
            model,
            cache_model: &cache_model,
            endpoint: self.endpoint,
            method,
            shots,
            judge: self.judge.as_deref(),
            judge_cache: judge_cache.as_deref(),
        };
        let bar = progress();
        let tick = |phase: Phase, done: u64, total: u64, c: &Counts| {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_prefix(if phase == Phase::Answers { "answers" } else { "judged" });
            bar.set_message(format!("{} cached, {} failed", c.cached.load(Ordering::Relaxed), c.failed.load(Ordering::Relaxed)));
        };
        let (mut report, samples) =
            self.rt.block_on(eval::pipeline::evaluate(&self.model, &cache, &job, &self.opts, &Counts::default(), &tick));
        bar.finish_and_clear();
        cache.sync()?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        write_run(out, &report, &samples)?;
        Ok(report)
    }
}

/// The key the run's requests carry, and the id of a key made for the run (to revoke).
pub(crate) fn credential(a: &Conn, base: &str, out: &Path) -> anyhow::Result<(String, Option<String>)> {
    if let Some(k) = &a.key {
        return Ok((k.clone(), None));
    }
    if let Some(var) = &a.key_env {
        let k = std::env::var(var).with_context(|| format!("--key-env: no variable {var}"))?;
        return Ok((k, None));
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
fn versioned(http: &reqwest::blocking::Client, base: &str, key: &str, model: &str) -> String {
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
    /// The deployment the evaluated model is pinned to; the judge is never pinned.
    deployment: Option<String>,
    judge: Option<String>,
}

impl Http {
    fn pin(&self, r: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
        match &self.deployment {
            Some(d) if body["model"].as_str() != self.judge.as_deref() => r.header("x-aiplus-deployment", d),
            _ => r,
        }
    }
}

fn retry_after_ms(h: &reqwest::header::HeaderMap) -> Option<u64> {
    h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(|s| s * 1000)
}

impl Model for Http {
    async fn call(&self, endpoint: Endpoint, body: &Value) -> Result<Value, CallError> {
        let retry = |e: reqwest::Error| CallError::Retry { reason: e.to_string(), after_ms: None };
        let mut resp = self
            .pin(self.http.post(format!("{}/v1{}", self.base, endpoint.path())), body)
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .map_err(retry)?;
        let status = resp.status();
        let after_ms = retry_after_ms(resp.headers());
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(retry)? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(CallError::Fail(format!("answer larger than {MAX_ANSWER_BYTES} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        eval::run::classify(status.as_u16(), after_ms, &bytes)
    }
}

fn progress() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {prefix}  {per_sec}  ETA {eta}  {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
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
