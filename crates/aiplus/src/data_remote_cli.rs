//! The `aiplus data` commands that talk to a running server: upload a file in resumable chunks
//! with a progress bar, create a dataset, add a version from its Croissant record, publish it,
//! list datasets, sign a contract, run a compute-to-data job and fetch its outputs, and settle a
//! month. Tables and text by default, JSON with `--json`.

use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::client::{Server, TENANT_HEADER, call, client_with_timeout, print_json, s};

#[derive(clap::Args, Debug)]
pub struct Remote {
    #[command(flatten)]
    server: Server,
    /// The tenant acted for (operators must name one; a tenant's key acts for its own).
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum RemoteCommand {
    /// Upload a file in chunks. The file is hashed first; its SHA-256 is its address. An
    /// interrupted upload resumes with --resume UPLOAD_ID (printed when it starts): only the
    /// missing chunks are sent. A file the tenant already holds completes at once.
    Upload {
        file: PathBuf,
        #[arg(long)]
        resume: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Create a dataset; --residency keeps its files in a region (province:<Name> or hub:<id>).
    Create {
        id: String,
        #[arg(long)]
        residency: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Add a version from a Croissant JSON-LD record (its `version` is the version).
    AddVersion {
        dataset: String,
        record: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Publish a version once all its hosted files are uploaded.
    Publish {
        dataset: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the tenant's datasets and their versions.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Sign a contract, as the buyer, for a listed dataset on its listing's terms.
    Sign {
        /// The seller tenant.
        seller: String,
        dataset: String,
        /// What the data is for (stated in the contract).
        #[arg(long)]
        purpose: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// `download` (metered reads) or `compute` (compute-to-data: jobs over files you never read).
        #[arg(long, default_value = "download")]
        mode: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a job over a compute contract's dataset (可用不可见): it sees the files read-only at
    /// /data, has no network, and writes to /out. Waits for the end, then saves the declared
    /// outputs that passed the output check into --out-dir. Example:
    /// aiplus data run dct_… --output sum.txt -- sh -c 'wc -l < /data/loans.csv > /out/sum.txt'
    Run {
        contract: String,
        /// A file of /out to bring back (repeat for more).
        #[arg(long = "output", required = true)]
        outputs: Vec<String>,
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        cpu_milli: u32,
        #[arg(long, default_value_t = 1024)]
        memory_mib: u32,
        /// The job's estimated run time; it is stopped at twice this plus an hour.
        #[arg(long, default_value_t = 600)]
        duration_s: u64,
        /// Makes a retry of the same command the same run.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Settle a month (YYYY-MM): split each contract's revenue among its dataset's
    /// contributors by Shapley share, after the platform's fee. Running it again changes nothing.
    Settle {
        #[arg(long)]
        period: String,
        #[command(flatten)]
        remote: Remote,
    },
}

impl RemoteCommand {
    fn remote(&self) -> &Remote {
        match self {
            RemoteCommand::Upload { remote, .. }
            | RemoteCommand::Create { remote, .. }
            | RemoteCommand::AddVersion { remote, .. }
            | RemoteCommand::Publish { remote, .. }
            | RemoteCommand::List { remote }
            | RemoteCommand::Sign { remote, .. }
            | RemoteCommand::Run { remote, .. }
            | RemoteCommand::Settle { remote, .. } => remote,
        }
    }
}

pub fn run(cmd: RemoteCommand) -> anyhow::Result<()> {
    let remote = cmd.remote();
    let c = client_with_timeout(Some(std::time::Duration::from_secs(600)))?;
    let base = format!("{}/api/v1", remote.server.server.trim_end_matches('/'));
    let with_tenant = |r: reqwest::blocking::RequestBuilder| match &remote.tenant {
        Some(t) => r.header(TENANT_HEADER, t),
        None => r,
    };
    let v = match &cmd {
        RemoteCommand::Upload { file, resume, .. } => upload(&c, &base, &with_tenant, file, resume.as_deref())?,
        RemoteCommand::Create { id, residency, .. } => {
            call(with_tenant(c.post(format!("{base}/datasets")).json(&json!({"id": id, "residency": residency}))))?
        }
        RemoteCommand::AddVersion { dataset, record, .. } => {
            let text = std::fs::read(record).with_context(|| format!("reading {}", record.display()))?;
            let req = c.post(format!("{base}/datasets/{dataset}/versions")).header("content-type", "application/ld+json").body(text);
            call(with_tenant(req))?
        }
        RemoteCommand::Publish { dataset, version, .. } => {
            call(with_tenant(c.post(format!("{base}/datasets/{dataset}/versions/{version}/publish"))))?
        }
        RemoteCommand::List { .. } => call(with_tenant(c.get(format!("{base}/datasets"))))?,
        RemoteCommand::Sign { seller, dataset, purpose, days, mode, .. } => {
            let body = json!({"seller": seller, "dataset": dataset, "purpose": purpose, "days": days, "mode": mode});
            call(with_tenant(c.post(format!("{base}/contracts")).json(&body)))?
        }
        RemoteCommand::Run { contract, outputs, out_dir, cpu_milli, memory_mib, duration_s, idempotency_key, command, .. } => {
            let body =
                json!({"command": command, "outputs": outputs, "cpu_milli": cpu_milli, "memory_mib": memory_mib, "duration_s": duration_s});
            let runs = format!("{base}/contracts/{contract}/runs");
            let mut req = c.post(&runs).json(&body);
            if let Some(k) = idempotency_key {
                req = req.header("idempotency-key", k);
            }
            let run = call(with_tenant(req))?;
            let run = wait_for_run(&c, &with_tenant, &format!("{runs}/{}", s(&run["id"])), &run)?;
            save_outputs(&c, &with_tenant, &format!("{runs}/{}", s(&run["id"])), &run, out_dir)?;
            run
        }
        RemoteCommand::Settle { period, .. } => call(with_tenant(c.post(format!("{base}/settlements")).json(&json!({"period": period}))))?,
    };
    if remote.server.json {
        return print_json(&v);
    }
    print_text(&cmd, &v);
    Ok(())
}

/// Polls a run until it ends, with a spinner that says its state.
fn wait_for_run(c: &reqwest::blocking::Client, with_tenant: &WithTenant, url: &str, first: &Value) -> anyhow::Result<Value> {
    let bar = indicatif::ProgressBar::new_spinner();
    let mut run = first.clone();
    while ["staging", "running"].contains(&run["state"].as_str().unwrap_or("")) {
        bar.set_message(format!("run {} {}", s(&run["id"]), s(&run["state"])));
        bar.tick();
        std::thread::sleep(std::time::Duration::from_millis(500));
        run = call(with_tenant(c.get(url)))?;
    }
    bar.finish_and_clear();
    Ok(run)
}

/// Saves a finished run's outputs into `dir`; a run that did not succeed is an error, with why.
fn save_outputs(c: &reqwest::blocking::Client, with_tenant: &WithTenant, url: &str, run: &Value, dir: &Path) -> anyhow::Result<()> {
    if run["state"] != "succeeded" {
        anyhow::bail!("run {} {}: {}", s(&run["id"]), s(&run["state"]), s(&run["reason"]));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for out in run["results"].as_array().into_iter().flatten() {
        // The server checked each name (no directory part); the check here keeps a file in `dir`.
        let name = s(&out["name"]);
        anyhow::ensure!(
            !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'),
            "the server named an odd output {name:?}"
        );
        let r = with_tenant(c.get(format!("{url}/outputs/{name}"))).send()?;
        anyhow::ensure!(r.status().is_success(), "fetching output {name}: {}", r.status());
        std::fs::write(dir.join(&name), r.bytes()?).with_context(|| format!("writing {}", dir.join(&name).display()))?;
    }
    Ok(())
}

fn sha256_of(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let size = f.metadata()?.len();
    let bar = indicatif::ProgressBar::new(size).with_message("hashing");
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok((hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(), size))
}

type WithTenant<'a> = dyn Fn(reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder + 'a;

fn upload(c: &reqwest::blocking::Client, base: &str, with_tenant: &WithTenant, file: &Path, resume: Option<&str>) -> anyhow::Result<Value> {
    let (sha, size) = sha256_of(file)?;
    let up = match resume {
        Some(id) => call(with_tenant(c.get(format!("{base}/uploads/{id}"))))?,
        None => {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            call(with_tenant(c.post(format!("{base}/uploads")).json(&json!({"sha256": sha, "size_bytes": size, "name": name}))))?
        }
    };
    anyhow::ensure!(up["sha256"] == json!(sha), "upload {} is of another file (SHA-256 {})", s(&up["id"]), s(&up["sha256"]));
    let id = s(&up["id"]);
    if up["state"] == "complete" {
        return Ok(up);
    }
    eprintln!("upload {id} (resume with --resume {id})");
    let chunk = up["chunk_bytes"].as_u64().context("the server named no chunk size")?;
    let missing: Vec<u64> = up["missing"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
    let bar = indicatif::ProgressBar::new(size);
    bar.inc(size.saturating_sub(missing.len() as u64 * chunk).min(size));
    let mut f = std::fs::File::open(file)?;
    let mut buf = vec![0u8; usize::try_from(chunk)?];
    let mut left = missing;
    // A status lists at most 1000 missing chunks; ask again until none are.
    while !left.is_empty() {
        for ix in &left {
            f.seek(std::io::SeekFrom::Start(ix * chunk))?;
            let want = usize::try_from(chunk.min(size - ix * chunk))?;
            f.read_exact(&mut buf[..want])?;
            let digest: String = sha2::Sha256::digest(&buf[..want]).iter().map(|b| format!("{b:02x}")).collect();
            let req = c.put(format!("{base}/uploads/{id}/chunks/{ix}")).header("x-chunk-sha256", digest).body(buf[..want].to_vec());
            call(with_tenant(req)).with_context(|| format!("sending chunk {ix}"))?;
            bar.inc(want as u64);
        }
        let status = call(with_tenant(c.get(format!("{base}/uploads/{id}"))))?;
        left = status["missing"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
    }
    bar.finish_and_clear();
    call(with_tenant(c.post(format!("{base}/uploads/{id}/complete"))))
}

fn print_text(cmd: &RemoteCommand, v: &Value) {
    match cmd {
        RemoteCommand::Upload { .. } => println!("{} {} {} bytes ({})", s(&v["id"]), s(&v["sha256"]), v["size_bytes"], s(&v["state"])),
        RemoteCommand::Create { .. } => println!("dataset {} created", s(&v["id"])),
        RemoteCommand::AddVersion { .. } | RemoteCommand::Publish { .. } => {
            let missing: Vec<String> = v["missing_files"].as_array().into_iter().flatten().map(s).collect();
            println!("{} {} {} missing files: {}", s(&v["dataset"]), s(&v["version"]), s(&v["state"]), missing.join(", "));
        }
        RemoteCommand::List { .. } => {
            println!("{:<24} {:<18} {:<10} VERSIONS", "DATASET", "RESIDENCY", "LISTED");
            for d in v["data"].as_array().into_iter().flatten() {
                let versions: Vec<String> =
                    d["versions"].as_array().into_iter().flatten().map(|x| format!("{} ({})", s(&x["version"]), s(&x["state"]))).collect();
                println!("{:<24} {:<18} {:<10} {}", s(&d["id"]), s(&d["residency"]), s(&d["listed_version"]), versions.join(", "));
            }
        }
        RemoteCommand::Sign { .. } => {
            println!(
                "contract {} for {}/{}@{} ({}) until {} ms",
                s(&v["id"]),
                s(&v["seller"]),
                s(&v["dataset"]),
                s(&v["version"]),
                s(&v["mode"]),
                v["to_ms"]
            );
        }
        RemoteCommand::Run { out_dir, .. } => {
            for o in v["results"].as_array().into_iter().flatten() {
                println!("{} {} bytes sha256 {}", out_dir.join(s(&o["name"])).display(), o["bytes"], s(&o["sha256"]));
            }
            println!("run {} succeeded on job {}; charged {} fen", s(&v["id"]), s(&v["job"]), v["amount_fen"]);
        }
        RemoteCommand::Settle { .. } => {
            println!("{:<28} {:>12} {:>10}  PAYOUTS (fen)", "CONTRACT", "REVENUE", "FEE");
            for st in v["data"].as_array().into_iter().flatten() {
                let payouts: Vec<String> = st["lines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|l| l["role"] == "payout")
                    .map(|l| format!("{} {}", s(&l["party"]), l["fen"]))
                    .collect();
                println!("{:<28} {:>12} {:>10}  {}", s(&st["contract"]), st["revenue_fen"], st["fee_fen"], payouts.join(", "));
            }
        }
    }
}
