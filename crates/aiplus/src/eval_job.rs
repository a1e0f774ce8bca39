//! `aiplus eval submit`: an evaluation run as a batch job on the compute network, so a large
//! run is placed, limited and billed like any job of the evaluation tenant. The job runs this
//! same binary's `eval run` in its sandbox against the server's gateway, with a key of the
//! evaluation tenant made for it; its report is the job's output (and `/work/run` holds the
//! run's files while the job's directory is kept).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::json;

use crate::client;
use crate::eval_session::{Conn, What, credential};

#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    conn: Conn,
    /// The suite is named in the suites directory, which the server must show to the
    /// evaluation tenant's jobs: the server's own `eval.suites_dir`.
    #[command(flatten)]
    what: What,
    /// Where the job is asked from (its data's hub), for placement.
    #[arg(long, default_value = "jingjinji")]
    origin_hub: String,
    /// CPU the job holds, in thousandths of a core.
    #[arg(long, default_value_t = 1000)]
    cpu_milli: u32,
    #[arg(long, default_value_t = 1024)]
    memory_mib: u32,
    /// How long the job may run.
    #[arg(long, default_value_t = 3600)]
    duration_s: u64,
}

/// The environment variable the job's key is handed in.
const KEY_VAR: &str = "EVAL_KEY";

pub fn submit(a: SubmitArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this binary")?;
    // The server shows its suites directory to the evaluation tenant's jobs by canonical path.
    let suites = std::fs::canonicalize(&a.conn.suites_dir).with_context(|| format!("--suites-dir: {}", a.conn.suites_dir.display()))?;
    if !suites.join(&a.what.suite).join("suite.toml").exists() {
        bail!("--suite: no suite {:?} in {}", a.what.suite, suites.display());
    }
    let base = a.conn.server.server.trim_end_matches('/').to_string();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let (key, _) = credential(&a.conn, &base, &PathBuf::from(format!("job {} {} {stamp}", a.what.suite, a.what.model)))?;
    let mut command: Vec<String> = vec![exe.display().to_string(), "eval".into(), "run".into(), "--json".into()];
    let mut arg = |k: &str, v: String| command.extend([k.to_string(), v]);
    arg("--server", base.clone());
    arg("--key-env", KEY_VAR.into());
    arg("--model", a.what.model.clone());
    arg("--suite", a.what.suite.clone());
    arg("--suites-dir", suites.display().to_string());
    arg("--out", "/work/run".into());
    arg("--concurrency", a.conn.concurrency.to_string());
    arg("--attempts", a.conn.attempts.to_string());
    arg("--timeout-s", a.conn.timeout_s.to_string());
    arg("--tenant", a.conn.tenant.clone());
    if !a.what.subjects.is_empty() {
        arg("--subjects", a.what.subjects.join(","));
    }
    if let Some(l) = a.what.limit {
        arg("--limit", l.to_string());
    }
    if let Some(s) = a.what.shots {
        arg("--shots", s.to_string());
    }
    if let Some(j) = &a.conn.judge {
        arg("--judge", j.clone());
    }
    let body = json!({
        "name": format!("eval {} on {}", a.what.model, a.what.suite),
        "kind": "batch_inference",
        "gpus": 0,
        "cpu_milli": a.cpu_milli,
        "memory_mib": a.memory_mib,
        "duration_s": a.duration_s,
        "origin_hub": a.origin_hub,
        // The job asks the server's gateway, so it needs the network (jobs have none unless
        // they ask).
        "network": "full",
        "command": command,
        "env": {KEY_VAR: key},
    });
    let c = client::client()?;
    let job = client::call(c.post(format!("{base}/api/v1/jobs")).header(client::TENANT_HEADER, &a.conn.tenant).json(&body))?;
    if a.conn.server.json {
        return client::print_json(&job);
    }
    println!(
        "submitted job {} for tenant {}: `aiplus jobs get {0}`, and its report with `aiplus jobs logs {0}`",
        client::s(&job["id"]),
        a.conn.tenant
    );
    Ok(())
}
