//! The operator CLI for a running server: hubs, clusters and jobs over the HTTP API.
//! Every command prints a readable table, or the raw JSON with `--json` for scripts.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct Server {
    /// Base URL of the aiplus server.
    #[arg(long, env = "AIPLUS_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct HubsArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(clap::Args, Debug)]
pub struct ClustersArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: RegistryCommand,
}

/// The same four operations on hubs and on clusters.
#[derive(clap::Subcommand, Debug)]
enum RegistryCommand {
    /// List them (clusters with live use, tariff now and carbon intensity).
    List,
    /// Show one.
    Get { id: String },
    /// Register one from a JSON file. A cluster is the fields of a [[cluster]] in the network
    /// file; a hub is {"hub": {...}, "links": [{"to", "latency_ms", "bandwidth_gbps", "source"}]}.
    Register { file: PathBuf },
    /// Replace one's description from a JSON file (a hub's links named there are replaced too).
    Update { id: String, file: PathBuf },
}

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum JobsCommand {
    /// Submit a job from flags or from a JSON file (--file); flags override the file.
    Submit(Box<SubmitArgs>),
    /// List jobs, oldest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// queued, placed or cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this job id (the last id of the previous page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one job.
    Get { id: String },
    /// Cancel a queued or placed job.
    Cancel { id: String },
    /// Where a job was placed and why: the score terms of the chosen cluster and the runners-up.
    Placement { id: String },
    /// The job's output; with -f, follow it until the job ends.
    Logs {
        id: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// The job's lifecycle: every state it went through, when and why.
    Events { id: String },
    /// Measure the lifecycle (latency, jobs/s, recovery after kill -9) on a server it starts.
    Bench(crate::jobs_bench::JobsBenchArgs),
}

#[derive(clap::Args, Debug)]
struct SubmitArgs {
    /// A JSON job description; the flags below override its fields.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The tenant the job is for, when an operator submits it (a tenant's key needs none).
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// training, batch_inference or online_inference.
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    gpus: Option<u32>,
    /// Thousandths of one GPU (with --gpus 1), e.g. 500 for half a GPU.
    #[arg(long)]
    gpu_milli: Option<u32>,
    /// Allowed GPU model; repeat for several.
    #[arg(long = "gpu-model")]
    gpu_models: Vec<String>,
    #[arg(long)]
    cpu_milli: Option<u32>,
    #[arg(long)]
    memory_mib: Option<u32>,
    #[arg(long)]
    duration_s: Option<u64>,
    /// Cluster holding the input data.
    #[arg(long)]
    dataset_cluster: Option<String>,
    #[arg(long)]
    dataset_gb: Option<f64>,
    /// Allowed region, province:<Name> or hub:<id>; repeat for several.
    #[arg(long = "region")]
    regions: Vec<String>,
    #[arg(long)]
    origin_hub: Option<String>,
    #[arg(long)]
    priority: Option<i32>,
    /// Which of the AI+ Action's six areas the job serves: science, industry, consumption,
    /// livelihood, governance or global_cooperation. Its GPU-hours count towards that area.
    #[arg(long, value_parser = parse_action_area)]
    action_area: Option<vocab::ActionArea>,
    /// Resubmitting with the same key returns the first job instead of a new one.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Environment variable for the command, NAME=VALUE; repeat for several.
    #[arg(long = "env", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// The command to run and its arguments, after `--`: `aiplus jobs submit ... -- python train.py`.
    #[arg(last = true)]
    command: Vec<String>,
}

pub(crate) fn parse_action_area(s: &str) -> Result<vocab::ActionArea, String> {
    vocab::ActionArea::parse(s).ok_or_else(|| {
        let names: Vec<&str> = vocab::ActionArea::ALL.iter().map(|a| a.as_str()).collect();
        format!("one of {}", names.join(", "))
    })
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

/// A client that sends the CLI's credential (see [`token`]) with every request.
pub(crate) fn client() -> anyhow::Result<reqwest::blocking::Client> {
    client_with_timeout(Some(std::time::Duration::from_secs(30)))
}

/// [`client`] with another timeout (`None` for streams that last as long as a job).
pub(crate) fn client_with_timeout(timeout: Option<std::time::Duration>) -> anyhow::Result<reqwest::blocking::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token()? {
        let mut v =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).context("the token has characters a header cannot carry")?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    Ok(reqwest::blocking::Client::builder().timeout(timeout).default_headers(headers).build()?)
}

/// Where `aiplus login` keeps the CLI's token: `AIPLUS_TOKEN_FILE`, else
/// `$XDG_CONFIG_HOME/aiplus/token` (`~/.config/aiplus/token`).
pub(crate) fn token_file() -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("AIPLUS_TOKEN_FILE") {
        return Some(PathBuf::from(f));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("aiplus").join("token"))
}

/// The CLI's credential, an operator token or an API key: `AIPLUS_TOKEN`, else the file of
/// `aiplus login`, else the operator token a local `aiplus serve` wrote to
/// `./aiplus-data/operator-token` on its first start. None: requests go without one.
pub(crate) fn token() -> anyhow::Result<Option<String>> {
    if let Ok(t) = std::env::var("AIPLUS_TOKEN") {
        return Ok(Some(t.trim().to_string()));
    }
    let local = PathBuf::from("aiplus-data").join("operator-token");
    for f in token_file().into_iter().chain([local]) {
        match std::fs::read_to_string(&f) {
            Ok(t) => return Ok(Some(t.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading the token file {}", f.display())),
        }
    }
    Ok(None)
}

/// The header an operator names the tenant it acts for in.
pub(crate) const TENANT_HEADER: &str = "x-aiplus-tenant";

/// Sends a request; a problem+json answer becomes an error naming the field and the reason.
pub(crate) fn call(req: reqwest::blocking::RequestBuilder) -> anyhow::Result<Value> {
    let resp = req.send().context("could not reach the aiplus server (is `aiplus serve` running? see --server)")?;
    let status = resp.status();
    let body: Value = resp.json().unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = body.get("detail").and_then(Value::as_str).unwrap_or("no detail");
        let mut msg = format!("{status}: {detail}");
        if status == reqwest::StatusCode::UNAUTHORIZED {
            msg.push_str("\n  log in with `aiplus login --token-file <data dir>/operator-token`, or set AIPLUS_TOKEN");
        }
        if let Some(ex) = body.get("exclusions").and_then(Value::as_array) {
            for e in ex {
                msg.push_str(&format!("\n  {}: {}", e["cluster"].as_str().unwrap_or("?"), e["reason"].as_str().unwrap_or("?")));
            }
        }
        bail!(msg);
    }
    Ok(body)
}

pub(crate) fn read_json(file: &PathBuf) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", file.display()))
}

pub(crate) fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Number(n) => n.as_f64().map_or(n.to_string(), |f| if f.fract() == 0.0 { format!("{f:.0}") } else { format!("{f:.3}") }),
        other => other.to_string(),
    }
}

/// Runs a registry command against `/api/v1/{what}`.
fn registry(server: &Server, what: &str, command: &RegistryCommand) -> anyhow::Result<Value> {
    let c = client()?;
    let base = format!("{}/api/v1/{what}", server.server.trim_end_matches('/'));
    match command {
        RegistryCommand::List => call(c.get(&base)),
        RegistryCommand::Get { id } => call(c.get(format!("{base}/{id}"))),
        RegistryCommand::Register { file } => call(c.post(&base).json(&read_json(file)?)),
        RegistryCommand::Update { id, file } => call(c.put(format!("{base}/{id}")).json(&read_json(file)?)),
    }
}

pub fn hubs(args: HubsArgs) -> anyhow::Result<()> {
    let v = registry(&args.server, "hubs", &args.command)?;
    if args.server.json {
        return print_json(&v);
    }
    let rows = if let Value::Array(a) = &v { a.clone() } else { vec![v] };
    println!("{:<14} {:<10} {:<36} {:>5} {:>8} {:>8}", "id", "name", "english", "side", "lat", "lon");
    for h in rows {
        println!(
            "{:<14} {:<10} {:<36} {:>5} {:>8} {:>8}",
            s(&h["id"]),
            s(&h["name_zh"]),
            s(&h["name_en"]),
            s(&h["side"]),
            s(&h["lat"]),
            s(&h["lon"])
        );
    }
    Ok(())
}

pub fn clusters(args: ClustersArgs) -> anyhow::Result<()> {
    let v = registry(&args.server, "clusters", &args.command)?;
    if args.server.json {
        return print_json(&v);
    }
    let rows = if let Value::Array(a) = &v { a.clone() } else { vec![v] };
    println!(
        "{:<12} {:<12} {:<14} {:>6} {:>10} {:>9} {:>7} {:>14}",
        "id", "hub", "province", "pue", "gpus used", "gpus", "tariff", "kgCO2/kWh eff"
    );
    for r in rows {
        println!(
            "{:<12} {:<12} {:<14} {:>6} {:>10} {:>9} {:>7} {:>14}",
            s(&r["id"]),
            s(&r["hub"]),
            s(&r["province"]),
            s(&r["pue"]),
            s(&r["gpus_used"]),
            s(&r["gpus_total"]),
            s(&r["tariff_now_cny_per_kwh"]),
            s(&r["effective_carbon_kg_per_kwh"])
        );
    }
    Ok(())
}

pub fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    if let JobsCommand::Bench(b) = args.command {
        return crate::jobs_bench::run(b);
    }
    let c = client()?;
    let base = format!("{}/api/v1/jobs", args.server.server.trim_end_matches('/'));
    let v = match args.command {
        JobsCommand::Submit(sub) => {
            let tenant = sub.tenant.clone();
            let (body, key) = submission(*sub)?;
            let mut req = c.post(&base).json(&body);
            if let Some(k) = key {
                req = req.header("idempotency-key", k);
            }
            if let Some(t) = tenant {
                req = req.header(TENANT_HEADER, t);
            }
            call(req)?
        }
        JobsCommand::List { tenant, state, limit, after } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            q.extend(tenant.map(|t| ("tenant", t)));
            q.extend(state.map(|t| ("state", t)));
            q.extend(after.map(|t| ("after", t)));
            call(c.get(&base).query(&q))?
        }
        JobsCommand::Get { id } => call(c.get(format!("{base}/{id}")))?,
        JobsCommand::Cancel { id } => call(c.post(format!("{base}/{id}/cancel")))?,
        JobsCommand::Logs { id, follow } => return logs(&c, &base, &id, follow),
        JobsCommand::Bench(_) => return Ok(()),
        JobsCommand::Events { id } => {
            let v = call(c.get(format!("{base}/{id}/events")))?;
            if !args.server.json {
                println!("{:>4} {:<26} {:<10} {:>7}  reason", "seq", "at", "state", "attempt");
                for e in v.as_array().into_iter().flatten() {
                    println!("{:>4} {:<26} {:<10} {:>7}  {}", s(&e["seq"]), s(&e["at"]), s(&e["state"]), s(&e["attempt"]), s(&e["reason"]));
                }
                return Ok(());
            }
            v
        }
        JobsCommand::Placement { id } => {
            let v = call(c.get(format!("{base}/{id}/placement")))?;
            if !args.server.json {
                print_placement(&v);
                return Ok(());
            }
            v
        }
    };
    if args.server.json {
        return print_json(&v);
    }
    let rows = if let Value::Array(a) = &v { a.clone() } else { vec![v] };
    println!("{:<38} {:<12} {:<10} {:<16} {:>5} {:<12} submitted", "id", "tenant", "state", "kind", "gpus", "cluster");
    for j in rows {
        println!(
            "{:<38} {:<12} {:<10} {:<16} {:>5} {:<12} {}",
            s(&j["id"]),
            s(&j["tenant"]),
            s(&j["state"]),
            s(&j["spec"]["kind"]),
            s(&j["spec"]["gpus"]),
            s(&j["placement"]["cluster"]),
            s(&j["submitted_at"])
        );
    }
    Ok(())
}

/// Prints a job's output; with `follow`, reads the server's SSE stream until the `end` event.
fn logs(c: &reqwest::blocking::Client, base: &str, id: &str, follow: bool) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    if !follow {
        let resp = c.get(format!("{base}/{id}/logs")).send().context("could not reach the aiplus server")?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body: Value = resp.json().unwrap_or(Value::Null);
            bail!("{status}: {}", body.get("detail").and_then(Value::as_str).unwrap_or("no detail"));
        }
        std::io::stdout().write_all(&resp.bytes()?)?;
        return Ok(());
    }
    // A follow stream may stay open for the whole run: no overall timeout.
    let client = client_with_timeout(None)?;
    let resp = client.get(format!("{base}/{id}/logs")).query(&[("follow", "true")]).send().context("could not reach the aiplus server")?;
    if !resp.status().is_success() {
        bail!("{}: could not follow the logs of {id}", resp.status());
    }
    let mut event = String::new();
    let mut out = std::io::stdout().lock();
    for line in std::io::BufReader::new(resp).lines() {
        let line = line?;
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            match event.as_str() {
                "log" => {
                    out.write_all(v["text"].as_str().unwrap_or("").as_bytes())?;
                    out.flush()?;
                }
                "end" => {
                    eprintln!("[job {id} ended: {}]", s(&v["state"]));
                    return Ok(());
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn submission(a: SubmitArgs) -> anyhow::Result<(Value, Option<String>)> {
    let mut body = match &a.file {
        Some(f) => read_json(f)?,
        None => json!({}),
    };
    let Some(obj) = body.as_object_mut() else { bail!("the job file must hold a JSON object") };
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            obj.insert(k.into(), v);
        }
    };
    set("name", a.name.map(Value::from));
    set("kind", a.kind.map(Value::from));
    set("gpus", a.gpus.map(Value::from));
    set("gpu_milli", a.gpu_milli.map(Value::from));
    set("gpu_models", (!a.gpu_models.is_empty()).then(|| Value::from(a.gpu_models.clone())));
    set("cpu_milli", a.cpu_milli.map(Value::from));
    set("memory_mib", a.memory_mib.map(Value::from));
    set("duration_s", a.duration_s.map(Value::from));
    set("allowed_regions", (!a.regions.is_empty()).then(|| Value::from(a.regions.clone())));
    set("origin_hub", a.origin_hub.map(Value::from));
    set("priority", a.priority.map(Value::from));
    set("action_area", a.action_area.map(|x| Value::from(x.as_str())));
    set("command", (!a.command.is_empty()).then(|| Value::from(a.command.clone())));
    set("env", (!a.env.is_empty()).then(|| Value::Object(a.env.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect())));
    match (a.dataset_cluster, a.dataset_gb) {
        (Some(cl), Some(gb)) => set("dataset", Some(json!({"cluster": cl, "size_gb": gb}))),
        (None, None) => {}
        _ => bail!("--dataset-cluster and --dataset-gb go together"),
    }
    Ok((body, a.idempotency_key))
}

fn print_placement(v: &Value) {
    println!("job {}: {} ({})", s(&v["job_id"]), s(&v["state"]), s(&v["state_reason"]));
    let p = &v["placement"];
    if p.is_null() {
        return;
    }
    println!(
        "placed on {} / {} (hub {}), node {}, GPUs {} at {} milli",
        s(&p["cluster"]),
        s(&p["pool"]),
        s(&p["hub"]),
        s(&p["node"]),
        p["gpus"],
        s(&p["gpu_milli"])
    );
    println!(
        "\n{:<3} {:<12} {:>10} {:>10} {:>10} {:>11} {:>10} {:>10} {:>11}",
        "", "cluster", "kWh", "energy ¥", "kgCO2", "transfer s", "delay ¥", "total ¥", "tariff now"
    );
    let e = &p["explanation"];
    let mut rows = vec![("*", &e["chosen"])];
    if let Some(r) = e["runners_up"].as_array() {
        rows.extend(r.iter().map(|x| ("", x)));
    }
    for (mark, t) in rows {
        println!(
            "{:<3} {:<12} {:>10} {:>10} {:>10} {:>11} {:>10} {:>10} {:>11}",
            mark,
            s(&t["cluster"]),
            s(&t["energy_kwh"]),
            s(&t["energy_cost_cny"]),
            s(&t["carbon_kg"]),
            s(&t["transfer_s"]),
            s(&t["delay_cost_cny"]),
            s(&t["total_cny"]),
            s(&t["tariff_now_cny_per_kwh"])
        );
    }
    if let Some(ex) = e["excluded"].as_array() {
        for x in ex {
            println!("    {:<12} excluded: {}", s(&x["cluster"]), s(&x["reason"]));
        }
    }
}
