//! `aiplus filings` and `aiplus alerts`: the CAC filings an operator keeps, through their
//! lifecycle, and the alerts that say what needs attention (an overdue filing). Tables for
//! people, `--json` for scripts.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use crate::client::{Server, call, client, print_json, read_json, s};
use crate::gateway_cli::rows;

#[derive(clap::Args, Debug)]
pub struct FilingsArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: FilingsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum FilingsCommand {
    /// List filings, newest first, with the deadline that binds each.
    List {
        /// Only this tenant's filings.
        #[arg(long)]
        tenant: Option<String>,
        /// Only filings in this state (draft, submitted, filed, changed, cancelled).
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one filing in full.
    Show { id: String },
    /// Open a draft from a JSON file of the filing's content (kind, entity, responsible,
    /// algorithm, domains, products, base_model, corpus, models, service_started_on); the
    /// file may leave fields for later.
    New {
        file: PathBuf,
        /// The tenant the filing is for (none: the operator's own service).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Replace a draft's (or a change's) content from a JSON file.
    Update { id: String, file: PathBuf },
    /// Attach a file: self_assessment, keyword_list, test_set or service_agreement.
    Attach {
        id: String,
        #[arg(long)]
        kind: String,
        file: PathBuf,
    },
    /// Remove an attachment by its SHA-256.
    Detach { id: String, sha256: String },
    /// Download an attachment (checked against its SHA-256) to --out.
    Download {
        id: String,
        sha256: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Send a complete draft or change to the CAC.
    Submit { id: String },
    /// Record that the CAC sent a submission back.
    Return {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Record the filing number the CAC gave.
    File {
        id: String,
        #[arg(long)]
        number: String,
    },
    /// Record that the filed facts changed on --on (YYYY-MM-DD), with new content from --file.
    Change {
        id: String,
        #[arg(long)]
        on: String,
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Record that the service ended on --on (YYYY-MM-DD): 20 working days to cancel.
    EndService {
        id: String,
        #[arg(long)]
        on: String,
    },
    /// Cancel (注销) a filing, or withdraw a draft.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// A filing's changes, each with its transparency-log entry.
    History { id: String },
}

#[derive(clap::Args, Debug)]
pub struct AlertsArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: AlertsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum AlertsCommand {
    /// Open alerts, and those closed in the last week.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Acknowledge an alert: it stays open until its cause is gone.
    Ack {
        id: String,
    },
    /// The alert rules over the gateway's traffic.
    Rules,
    /// Create or replace rule NAME from a JSON file: metric (block_rate, refusal_rate,
    /// error_rate, latency_ms_p99, tokens_per_min, flags), window_s, fire_above, clear_below,
    /// min_requests, cooldown_s, actions (notify, restrict, suspend), webhook_url, restrict,
    /// incident {grade, operator_class}.
    SetRule {
        name: String,
        file: PathBuf,
    },
    DeleteRule {
        name: String,
    },
    /// Webhook deliveries (default: the dead letters).
    Deliveries {
        #[arg(long, default_value = "dead")]
        state: String,
    },
    /// Send a dead letter again.
    Retry {
        id: String,
    },
    /// End users with blocked-input strikes or a suspension (TC260-003).
    EndUsers {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Lift an end user's suspension.
    Lift {
        tenant: String,
        user: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct IncidentsArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: IncidentsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum IncidentsCommand {
    /// Incidents, newest first, with their reporting deadlines.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// open, reported or closed.
        #[arg(long)]
        state: Option<String>,
    },
    /// An incident with its timeline.
    Show { id: String },
    /// Open an incident: --grade general|major|serious|especially_serious (一般/较大/重大/特别重大),
    /// --class critical_infrastructure|central_state_organ|other (1, 2 or 4 hours to report).
    Open {
        #[arg(long)]
        title: String,
        #[arg(long)]
        grade: String,
        #[arg(long, default_value = "other")]
        class: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Record a report made to the authority.
    Report {
        id: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: String,
    },
    /// Record a measure taken.
    Measure {
        id: String,
        #[arg(long)]
        text: String,
    },
    Note {
        id: String,
        #[arg(long)]
        text: String,
    },
    /// Change the grade (the deadline follows it).
    Regrade {
        id: String,
        #[arg(long)]
        grade: String,
        #[arg(long)]
        text: String,
    },
    Close {
        id: String,
        #[arg(long)]
        text: String,
    },
}

/// A filing's action, as the API takes it.
fn action(command: &FilingsCommand) -> anyhow::Result<Option<(&str, Value)>> {
    Ok(Some(match command {
        FilingsCommand::Update { id, file } => (id, json!({"action": "update", "content": read_json(file)?})),
        FilingsCommand::Detach { id, sha256 } => (id, json!({"action": "detach", "sha256": sha256})),
        FilingsCommand::Submit { id } => (id, json!({"action": "submit"})),
        FilingsCommand::Return { id, reason } => (id, json!({"action": "return", "reason": reason})),
        FilingsCommand::File { id, number } => (id, json!({"action": "file", "filing_number": number})),
        FilingsCommand::Change { id, on, file } => {
            let mut a = json!({"action": "change", "changed_on": on});
            if let Some(f) = file {
                a["content"] = read_json(f)?;
            }
            (id, a)
        }
        FilingsCommand::EndService { id, on } => (id, json!({"action": "end_service", "ended_on": on})),
        FilingsCommand::Cancel { id, reason } => (id, json!({"action": "cancel", "reason": reason})),
        _ => return Ok(None),
    }))
}

pub fn filings(args: FilingsArgs) -> anyhow::Result<()> {
    let c = client()?;
    let base = format!("{}/api/v1/filings", args.server.server.trim_end_matches('/'));
    let v = match &args.command {
        FilingsCommand::List { tenant, state } => {
            let q: Vec<(&str, &String)> =
                [("tenant", tenant), ("state", state)].into_iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))).collect();
            call(c.get(&base).query(&q))?
        }
        FilingsCommand::Show { id } => call(c.get(format!("{base}/{id}")))?,
        FilingsCommand::New { file, tenant } => call(c.post(&base).json(&json!({"tenant": tenant, "content": read_json(file)?})))?,
        FilingsCommand::Attach { id, kind, file } => {
            let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "attachment".into());
            let url = format!("{base}/{id}/attachments");
            call(
                c.post(url)
                    .query(&[("kind", kind.as_str()), ("name", &name)])
                    .header("content-type", "application/octet-stream")
                    .body(data),
            )?
        }
        FilingsCommand::Download { id, sha256, out } => {
            let resp = c.get(format!("{base}/{id}/attachments/{sha256}")).send().context("could not reach the aiplus server")?;
            if !resp.status().is_success() {
                let status = resp.status();
                let body: Value = resp.json().unwrap_or(Value::Null);
                anyhow::bail!("{status}: {}", body["detail"].as_str().unwrap_or("no detail"));
            }
            let bytes = resp.bytes()?;
            std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            println!("{} bytes written to {}", bytes.len(), out.display());
            return Ok(());
        }
        FilingsCommand::History { id } => call(c.get(format!("{base}/{id}/history")))?,
        other => match action(other)? {
            Some((id, body)) => call(c.post(format!("{base}/{id}/actions")).json(&body))?,
            None => anyhow::bail!("unknown command"),
        },
    };
    if args.server.json {
        return print_json(&v);
    }
    match &args.command {
        FilingsCommand::History { .. } => {
            println!("{:>4} {:<12} {:<10} {:<24} {:>9} detail", "rev", "action", "state", "by", "log entry");
            for e in v.as_array().into_iter().flatten() {
                let by = format!("{} ({})", s(&e["actor"]), s(&e["actor_role"]));
                let detail = if e["detail"].as_object().is_some_and(|o| !o.is_empty()) { e["detail"].to_string() } else { String::new() };
                println!(
                    "{:>4} {:<12} {:<10} {:<24} {:>9} {detail}",
                    s(&e["rev"]),
                    s(&e["action"]),
                    s(&e["state"]),
                    by,
                    s(&e["log_index"])
                );
            }
        }
        _ => {
            println!("{:<36} {:<10} {:<18} {:<10} {:<28} {:<30} due", "id", "tenant", "kind", "state", "number", "algorithm");
            let rows = rows(&v);
            for f in rows {
                let due = match &f["due"] {
                    Value::Null => "-".to_string(),
                    d => format!("{} by {}{}", s(&d["what"]), s(&d["on"]), if d["overdue"] == true { " OVERDUE" } else { "" }),
                };
                println!(
                    "{:<36} {:<10} {:<18} {:<10} {:<28} {:<30} {due}",
                    s(&f["id"]),
                    s(&f["tenant"]),
                    s(&f["content"]["kind"]),
                    s(&f["state"]),
                    s(&f["filing_number"]),
                    s(&f["content"]["algorithm"]["name"])
                );
            }
        }
    }
    Ok(())
}

pub fn alerts(args: AlertsArgs) -> anyhow::Result<()> {
    let c = client()?;
    let base = format!("{}/api/v1/alerts", args.server.server.trim_end_matches('/'));
    let v = match &args.command {
        AlertsCommand::List { tenant } => call(c.get(&base).query(&tenant.iter().map(|t| ("tenant", t)).collect::<Vec<_>>()))?,
        AlertsCommand::Ack { id } => call(c.post(format!("{base}/{id}/ack")))?,
        other => return monitoring(&c, &args.server, other),
    };
    if args.server.json {
        return print_json(&v);
    }
    println!("{:<30} {:<16} {:<10} {:<8} {:<8} message", "id", "kind", "tenant", "open", "acked");
    let rows = rows(&v);
    for a in rows {
        let open = if a["closed_ms"].is_null() { "open" } else { "closed" };
        let acked = if a["acked_by"].is_null() { "-" } else { "yes" };
        println!("{:<30} {:<16} {:<10} {:<8} {:<8} {}", s(&a["id"]), s(&a["kind"]), s(&a["tenant"]), open, acked, s(&a["message"]));
    }
    Ok(())
}

/// The monitoring commands of `aiplus alerts`.
fn monitoring(c: &reqwest::blocking::Client, server: &Server, command: &AlertsCommand) -> anyhow::Result<()> {
    let api = format!("{}/api/v1", server.server.trim_end_matches('/'));
    let v = match command {
        AlertsCommand::Rules => call(c.get(format!("{api}/alert-rules")))?,
        AlertsCommand::SetRule { name, file } => call(c.put(format!("{api}/alert-rules/{name}")).json(&read_json(file)?))?,
        AlertsCommand::DeleteRule { name } => {
            let r = c.delete(format!("{api}/alert-rules/{name}")).send().context("could not reach the aiplus server")?;
            anyhow::ensure!(r.status().is_success(), "{}: {}", r.status(), r.text().unwrap_or_default());
            println!("deleted {name}");
            return Ok(());
        }
        AlertsCommand::Deliveries { state } => call(c.get(format!("{api}/webhook-deliveries")).query(&[("state", state)]))?,
        AlertsCommand::Retry { id } => call(c.post(format!("{api}/webhook-deliveries/{id}/retry")))?,
        AlertsCommand::EndUsers { tenant } => {
            call(c.get(format!("{api}/end-users")).query(&tenant.iter().map(|t| ("tenant", t)).collect::<Vec<_>>()))?
        }
        AlertsCommand::Lift { tenant, user, reason } => {
            call(c.post(format!("{api}/end-users/{tenant}/{user}/lift")).json(&json!({"reason": reason})))?
        }
        AlertsCommand::List { .. } | AlertsCommand::Ack { .. } => anyhow::bail!("not a monitoring command"),
    };
    if server.json {
        return print_json(&v);
    }
    let rows = rows(&v);
    match command {
        AlertsCommand::Rules | AlertsCommand::SetRule { .. } => {
            println!("{:<20} {:<16} {:<16} {:>8} {:>10} {:>10} actions", "rule", "model", "metric", "window s", "fire >", "clear <");
            for r in rows {
                let actions = r["actions"].as_array().map(|a| a.iter().map(s).collect::<Vec<_>>().join(",")).unwrap_or_default();
                let model = if r["model"].is_null() { "(each)".to_string() } else { s(&r["model"]) };
                println!(
                    "{:<20} {:<16} {:<16} {:>8} {:>10} {:>10} {actions}",
                    s(&r["name"]),
                    model,
                    s(&r["metric"]),
                    s(&r["window_s"]),
                    s(&r["fire_above"]),
                    s(&r["clear_below"])
                );
            }
        }
        AlertsCommand::Deliveries { .. } | AlertsCommand::Retry { .. } => {
            println!("{:<38} {:<10} {:>8} {:<40} last error", "delivery", "state", "attempts", "url");
            for d in rows {
                println!(
                    "{:<38} {:<10} {:>8} {:<40} {}",
                    s(&d["id"]),
                    s(&d["state"]),
                    s(&d["attempts"]),
                    s(&d["url"]),
                    s(&d["last_error"])
                );
            }
        }
        _ => {
            println!("{:<12} {:<24} {:>9} {:>7} {:<12} suspended until (ms)", "tenant", "user", "in a row", "today", "day");
            for u in rows {
                println!(
                    "{:<12} {:<24} {:>9} {:>7} {:<12} {}",
                    s(&u["tenant"]),
                    s(&u["user"]),
                    s(&u["in_a_row"]),
                    s(&u["on_day"]),
                    s(&u["day"]),
                    s(&u["suspended_until_ms"])
                );
            }
        }
    }
    Ok(())
}

pub fn incidents(args: IncidentsArgs) -> anyhow::Result<()> {
    let c = client()?;
    let base = format!("{}/api/v1/incidents", args.server.server.trim_end_matches('/'));
    let step = |id: &str, body: Value| call(c.post(format!("{base}/{id}/steps")).json(&body));
    let v = match &args.command {
        IncidentsCommand::List { tenant, state } => {
            let q: Vec<(&str, &String)> =
                [("tenant", tenant), ("state", state)].into_iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))).collect();
            call(c.get(&base).query(&q))?
        }
        IncidentsCommand::Show { id } => call(c.get(format!("{base}/{id}")))?,
        IncidentsCommand::Open { title, grade, class, model, tenant, description } => call(c.post(&base).json(&json!({
            "title": title, "grade": grade, "operator_class": class, "model": model, "tenant": tenant, "description": description
        })))?,
        IncidentsCommand::Report { id, to, text } => step(id, json!({"action": "report", "to": to, "text": text}))?,
        IncidentsCommand::Measure { id, text } => step(id, json!({"action": "measure", "text": text}))?,
        IncidentsCommand::Note { id, text } => step(id, json!({"action": "note", "text": text}))?,
        IncidentsCommand::Regrade { id, grade, text } => step(id, json!({"action": "regrade", "grade": grade, "text": text}))?,
        IncidentsCommand::Close { id, text } => step(id, json!({"action": "close", "text": text}))?,
    };
    if args.server.json {
        return print_json(&v);
    }
    let rows = rows(&v);
    println!("{:<36} {:<18} {:<10} {:<24} {:<16} title", "id", "grade", "state", "report due (ms)", "model");
    for i in &rows {
        let late = i["state"] == "open" && i["report_due_ms"].as_i64().is_some_and(|d| d <= now_ms());
        let due = format!("{}{}", s(&i["report_due_ms"]), if late { " LATE" } else { "" });
        println!("{:<36} {:<18} {:<10} {:<24} {:<16} {}", s(&i["id"]), s(&i["grade"]), s(&i["state"]), due, s(&i["model"]), s(&i["title"]));
    }
    if let [one] = rows.as_slice() {
        for e in one["timeline"].as_array().into_iter().flatten() {
            println!(
                "  {} {:<8} {} (by {}, log entry {})",
                s(&e["at_ms"]),
                s(&e["kind"]),
                s(&e["text"]),
                s(&e["actor"]),
                s(&e["log_index"])
            );
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
