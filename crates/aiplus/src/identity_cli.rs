//! `aiplus login` and `aiplus operator-tokens`: the CLI's own credential, and the operators'
//! tokens for automation.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::client::{Server, call, print_json, s, token_file};

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    server: Server,
    /// The token itself (an operator token `aot_…` or an API key `ak_…`).
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// A file holding the token, such as `<data dir>/operator-token` written by `aiplus serve`.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// Checks a token against the server and stores it (mode 0600) where the CLI looks for it.
pub fn login(args: LoginArgs) -> anyhow::Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?.trim().to_string(),
        (None, None) => bail!("give --token or --token-file (aiplus serve writes <data dir>/operator-token on its first start)"),
    };
    let c = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let who = call(c.get(format!("{}/api/v1/whoami", args.server.server.trim_end_matches('/'))).bearer_auth(&token))?;
    let path = token_file().context("no place for the token file: set AIPLUS_TOKEN_FILE or HOME")?;
    identity::write_secret_file(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    if args.server.json {
        return print_json(&json!({"who": who, "token_file": path}));
    }
    let tenant = who["tenant"].as_str().map(|t| format!(" of tenant {t}")).unwrap_or_default();
    println!("logged in as {} ({}{tenant}); token kept in {}", s(&who["id"]), s(&who["role"]), path.display());
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct TokensArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TokensCommand {
    /// Make an operator token; its secret is printed once.
    Create {
        /// What the token is for (shown in lists).
        name: String,
        /// operator-viewer (default: may read everything, change nothing) or operator-admin.
        #[arg(long, default_value = "operator-viewer")]
        role: String,
    },
    /// List operator tokens (prefixes only).
    List,
    /// Revoke a token; every instance stops accepting it within seconds.
    Revoke { id: String },
}

pub fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    let c = crate::client::client()?;
    let base = format!("{}/api/v1/operator-tokens", args.server.server.trim_end_matches('/'));
    let v: Value = match &args.command {
        TokensCommand::Create { name, role } => call(c.post(&base).json(&json!({"name": name, "role": role})))?,
        TokensCommand::List => call(c.get(&base))?,
        TokensCommand::Revoke { id } => call(c.post(format!("{base}/{id}/revoke")))?,
    };
    if args.server.json {
        return print_json(&v);
    }
    match &args.command {
        TokensCommand::Create { .. } => {
            println!("token {} ({})", s(&v["id"]), s(&v["role"]));
            println!("secret (shown once, keep it safe): {}", s(&v["secret"]));
        }
        TokensCommand::List => {
            println!("{:<40} {:<16} {:<14} {:<8} name", "id", "role", "prefix", "state");
            for t in v.as_array().into_iter().flatten() {
                let state = if t["revoked_ms"].is_null() { "active" } else { "revoked" };
                println!("{:<40} {:<16} {:<14} {:<8} {}", s(&t["id"]), s(&t["role"]), s(&t["prefix"]), state, s(&t["name"]));
            }
        }
        TokensCommand::Revoke { .. } => println!("revoked {}", s(&v["id"])),
    }
    Ok(())
}
