//! `aiplus agents`: declare a tenant's agents (from a JSON or TOML file), list and show them
//! with their versions, delete them, and `run` one on the Responses API with each step printed
//! as it streams. Tables and text by default, the server's JSON with `--json`.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use crate::client::{Server, TENANT_HEADER, call, client, client_with_timeout, print_json, s};

#[derive(clap::Args, Debug)]
pub struct AgentsArgs {
    #[command(flatten)]
    server: Server,
    /// The tenant whose agents these are (operators must name one; a tenant's key acts for its own).
    #[arg(long, global = true)]
    tenant: Option<String>,
    #[command(subcommand)]
    command: AgentsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum AgentsCommand {
    /// List agents, the newest version of each.
    List,
    /// Show an agent (its newest version, or --version); MCP header values show as "***".
    Show {
        id: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Declare or change an agent from a file (JSON, or TOML when it ends in .toml):
    /// {"instructions", "model", "tools": [{"type": "function"|"mcp", ...}], "limits": {"max_steps",
    /// "max_output_tokens", "timeout_s"}, "regions", "metadata"}. A change makes a new version.
    Put { id: String, file: PathBuf },
    /// An agent's versions, newest first.
    Versions { id: String },
    /// Delete an agent and all its versions.
    Delete { id: String },
    /// Measure what the agent loop adds per step beyond the model's and the tools' time, with
    /// zero-delay doubles of both (runs on this machine; needs no server).
    Bench(crate::agents_bench::BenchArgs),
    /// Ask an agent (`agent:<id>`, or `<id>@<version>`) and print each step as it streams: tool
    /// lists, tool calls with their arguments and results, the answer, and the usage. Needs an
    /// API key with the inference scope (`aiplus login` with the key, or AIPLUS_TOKEN).
    Run {
        id: String,
        /// The message; read from stdin when absent.
        input: Option<String>,
        /// Continue a conversation from an earlier response.
        #[arg(long)]
        previous_response_id: Option<String>,
    },
}

fn spec_of(file: &PathBuf) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if file.extension().is_some_and(|e| e == "toml") {
        let v: toml::Value = toml::from_str(&text).with_context(|| format!("{}: not valid TOML", file.display()))?;
        return Ok(serde_json::to_value(v)?);
    }
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", file.display()))
}

pub fn agents(args: AgentsArgs) -> anyhow::Result<()> {
    if let AgentsCommand::Bench(b) = args.command {
        return crate::agents_bench::run(b);
    }
    let c = client()?;
    let base = format!("{}/api/v1/agents", args.server.server);
    let with_tenant = |r: reqwest::blocking::RequestBuilder| match &args.tenant {
        Some(t) => r.header(TENANT_HEADER, t),
        None => r,
    };
    let v = match &args.command {
        AgentsCommand::List => call(with_tenant(c.get(&base)))?,
        AgentsCommand::Show { id, version } => {
            let q: Vec<(&str, String)> = version.iter().map(|v| ("version", v.to_string())).collect();
            call(with_tenant(c.get(format!("{base}/{id}")).query(&q)))?
        }
        AgentsCommand::Put { id, file } => call(with_tenant(c.put(format!("{base}/{id}")).json(&spec_of(file)?)))?,
        AgentsCommand::Versions { id } => call(with_tenant(c.get(format!("{base}/{id}/versions"))))?,
        AgentsCommand::Delete { id } => {
            let resp = with_tenant(c.delete(format!("{base}/{id}"))).send().context("could not reach the aiplus server")?;
            if !resp.status().is_success() {
                let body: Value = resp.json().unwrap_or(Value::Null);
                anyhow::bail!("{}", body["detail"].as_str().unwrap_or("the agent could not be deleted"));
            }
            println!("deleted {id}");
            return Ok(());
        }
        AgentsCommand::Run { id, input, previous_response_id } => {
            return run(&args.server, id, input.clone(), previous_response_id.clone());
        }
        // Taken above, before a client is needed.
        AgentsCommand::Bench(_) => return Ok(()),
    };
    if args.server.json {
        return print_json(&v);
    }
    match &args.command {
        AgentsCommand::List => {
            println!("{:<20} {:<12} {:>7} {:<24} TOOLS", "ID", "TENANT", "VERSION", "MODEL");
            for a in v["data"].as_array().into_iter().flatten() {
                let tools: Vec<String> = a["tools"].as_array().into_iter().flatten().map(tool_name).collect();
                println!("{:<20} {:<12} {:>7} {:<24} {}", s(&a["id"]), s(&a["tenant"]), s(&a["version"]), s(&a["model"]), tools.join(", "));
            }
        }
        AgentsCommand::Versions { .. } => {
            for r in v["data"].as_array().into_iter().flatten() {
                println!("{:>7}  created {}", s(&r["version"]), s(&r["created_ms"]));
            }
        }
        _ => print_json(&v)?,
    }
    Ok(())
}

fn tool_name(t: &Value) -> String {
    match t["type"].as_str() {
        Some("mcp") => format!("mcp:{}", s(&t["server_label"])),
        Some("file_search") => {
            let ids: Vec<String> = t["collection_ids"].as_array().into_iter().flatten().map(s).collect();
            format!("file_search:{}", ids.join(","))
        }
        _ => s(&t["name"]),
    }
}

/// Streams one request to an agent and prints its steps.
fn run(server: &Server, id: &str, input: Option<String>, previous: Option<String>) -> anyhow::Result<()> {
    let input = match input {
        Some(i) => i,
        None => std::io::read_to_string(std::io::stdin()).context("reading the message from stdin")?,
    };
    let model = if id.starts_with("agent:") { id.to_string() } else { format!("agent:{id}") };
    let mut body = json!({"model": model, "input": input, "stream": true});
    if let Some(p) = previous {
        body["previous_response_id"] = json!(p);
    }
    let resp = client_with_timeout(None)?
        .post(format!("{}/v1/responses", server.server))
        .json(&body)
        .send()
        .context("could not reach the aiplus server (is `aiplus serve` running? see --server)")?;
    if !resp.status().is_success() {
        let status = resp.status();
        let v: Value = resp.json().unwrap_or(Value::Null);
        anyhow::bail!("{status}: {}", v["error"]["message"].as_str().unwrap_or("the agent could not be asked"));
    }
    let mut data = String::new();
    for line in std::io::BufReader::new(resp).lines() {
        let line = line.context("reading the stream")?;
        if let Some(d) = line.strip_prefix("data: ") {
            data = d.to_string();
        } else if line.is_empty() && !data.is_empty() {
            let ev: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            data.clear();
            if server.json {
                println!("{ev}");
            } else {
                show(&ev);
            }
        }
    }
    Ok(())
}

/// One event, as a person reads a run: what was called with what, and what came back.
fn show(ev: &Value) {
    let item = &ev["item"];
    match (ev["type"].as_str().unwrap_or(""), item["type"].as_str().unwrap_or("")) {
        ("response.output_item.done", "mcp_list_tools") => {
            let names: Vec<String> = item["tools"].as_array().into_iter().flatten().map(|t| s(&t["name"])).collect();
            match item["error"].as_str() {
                Some(e) => println!("[{}] tools not listed: {e}", s(&item["server_label"])),
                None => println!("[{}] tools: {}", s(&item["server_label"]), names.join(", ")),
            }
        }
        ("response.output_item.done", "mcp_call") => {
            let result = item["output"].as_str().map_or_else(|| format!("error: {}", s(&item["error"])), str::to_string);
            println!("[{}] {}({}) → {result}", s(&item["server_label"]), s(&item["name"]), s(&item["arguments"]));
        }
        ("response.output_item.done", "mcp_approval_request") => println!(
            "[{}] {}({}) waits for approval: answer with an mcp_approval_response for {}",
            s(&item["server_label"]),
            s(&item["name"]),
            s(&item["arguments"]),
            s(&item["id"])
        ),
        ("response.output_item.done", "function_call") => {
            println!("function call for the client: {}({}) call_id {}", s(&item["name"]), s(&item["arguments"]), s(&item["call_id"]))
        }
        ("response.output_item.done", "file_search_call") => {
            let hits: Vec<String> = item["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| format!("{} ({:.3})", s(&h["filename"]), h["score"].as_f64().unwrap_or(0.0)))
                .collect();
            match item["status"].as_str() {
                Some("completed") => println!("[file_search] {} → {}", item["queries"], hits.join(", ")),
                _ => println!("[file_search] {} failed: {}", item["queries"], s(&item["error"])),
            }
        }
        ("response.output_text.delta", _) => {
            // Each piece as the model writes it.
            print!("{}", s(&ev["delta"]));
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
        ("response.output_text.done", _) => println!(),
        ("response.completed" | "response.incomplete" | "response.failed", _) => {
            let r = &ev["response"];
            let u = &r["usage"];
            println!(
                "{} · {} steps · {} input + {} output tokens · id {}",
                s(&r["status"]),
                s(&r["agent"]["steps"]),
                s(&u["input_tokens"]),
                s(&u["output_tokens"]),
                s(&r["id"])
            );
            if let Some(reason) = r["incomplete_details"]["reason"].as_str() {
                println!("stopped: {reason}");
            }
            if let Some(e) = r["error"]["message"].as_str() {
                println!("error: {e}");
            }
        }
        _ => {}
    }
}
