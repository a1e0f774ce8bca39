//! `aiplus collections`: fill a tenant's document collections from text files (each embedded by
//! the server as the tenant), list and show them, search one as an agent's `file_search` would,
//! and delete documents or whole collections. Tables and text by default, JSON with `--json`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::client::{Server, TENANT_HEADER, call, client_with_timeout, print_json, s};

#[derive(clap::Args, Debug)]
pub struct CollectionsArgs {
    #[command(flatten)]
    server: Server,
    /// The tenant whose collections these are (operators must name one; a tenant's key acts for its own).
    #[arg(long, global = true)]
    tenant: Option<String>,
    #[command(subcommand)]
    command: CollectionsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum CollectionsCommand {
    /// List the tenant's collections with their documents, chunks and bytes.
    List,
    /// A collection's documents.
    Show { id: String },
    /// Add text files (UTF-8, at most 256 KiB each) to a collection, creating it. Each file is a
    /// document named after the file (letters, digits, '_' and '-' kept); adding a file again
    /// replaces it.
    Add {
        id: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Search a collection: the passages most similar to the query, best first.
    Search {
        id: String,
        query: String,
        #[arg(long, default_value_t = agents::collections::DEFAULT_RESULTS)]
        max_results: u32,
    },
    /// Delete a collection, or one document of it (--doc).
    Delete {
        id: String,
        #[arg(long)]
        doc: Option<String>,
    },
}

/// A document id from a file name: its stem, with ASCII letters, digits, '_' and '-' kept,
/// other ASCII made '-', and other characters written as their code point (`行动` is
/// `u884cu52a8`), so names in any script stay apart; cut to 64 bytes.
fn doc_id(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut id = String::new();
    for c in stem.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => id.push(c),
            c if c.is_ascii() => id.push('-'),
            c => id.push_str(&format!("u{:x}", c as u32)),
        }
    }
    id.truncate(64);
    if id.is_empty() { "doc".into() } else { id }
}

pub fn collections(args: CollectionsArgs) -> anyhow::Result<()> {
    // Embedding a large document takes a while on a small CPU.
    let c = client_with_timeout(Some(std::time::Duration::from_secs(600)))?;
    let base = format!("{}/api/v1/collections", args.server.server.trim_end_matches('/'));
    let with_tenant = |r: reqwest::blocking::RequestBuilder| match &args.tenant {
        Some(t) => r.header(TENANT_HEADER, t),
        None => r,
    };
    let v = match &args.command {
        CollectionsCommand::List => call(with_tenant(c.get(&base)))?,
        CollectionsCommand::Show { id } => call(with_tenant(c.get(format!("{base}/{id}"))))?,
        CollectionsCommand::Search { id, query, max_results } => {
            call(with_tenant(c.post(format!("{base}/{id}/search")).json(&json!({"query": query, "max_num_results": max_results}))))?
        }
        CollectionsCommand::Add { id, files } => {
            // Two files that would be one document are refused before anything is sent.
            let mut seen = std::collections::BTreeMap::new();
            for f in files {
                if let Some(other) = seen.insert(doc_id(f), f) {
                    anyhow::bail!("{} and {} would both be document {:?}; rename one", other.display(), f.display(), doc_id(f));
                }
            }
            let bar = indicatif::ProgressBar::new(files.len() as u64);
            let mut added = Vec::new();
            for f in files {
                let text = std::fs::read_to_string(f).with_context(|| format!("reading {} (UTF-8 text)", f.display()))?;
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
                let doc = doc_id(f);
                bar.set_message(doc.clone());
                let body = json!({"text": text, "filename": name});
                let r = call(with_tenant(c.put(format!("{base}/{id}/documents/{doc}")).json(&body)))
                    .with_context(|| format!("adding {}", f.display()))?;
                added.push(r);
                bar.inc(1);
            }
            bar.finish_and_clear();
            json!({"object": "list", "data": added})
        }
        CollectionsCommand::Delete { id, doc } => {
            let url = match doc {
                Some(d) => format!("{base}/{id}/documents/{d}"),
                None => format!("{base}/{id}"),
            };
            let resp = with_tenant(c.delete(url)).send().context("could not reach the aiplus server")?;
            if !resp.status().is_success() {
                let body: Value = resp.json().unwrap_or(Value::Null);
                anyhow::bail!("{}", body["detail"].as_str().unwrap_or("could not delete"));
            }
            println!("deleted {}", doc.as_deref().unwrap_or(id));
            return Ok(());
        }
    };
    if args.server.json {
        return print_json(&v);
    }
    print_table(&args.command, &v);
    Ok(())
}

fn print_table(command: &CollectionsCommand, v: &Value) {
    let rows = |v: &Value| v.as_array().cloned().unwrap_or_default();
    match command {
        CollectionsCommand::List => {
            println!("{:<24} {:>9} {:>7} {:>10}", "COLLECTION", "DOCUMENTS", "CHUNKS", "BYTES");
            for c in rows(&v["data"]) {
                println!("{:<24} {:>9} {:>7} {:>10}", s(&c["id"]), s(&c["documents"]), s(&c["chunks"]), s(&c["bytes"]));
            }
        }
        CollectionsCommand::Show { .. } | CollectionsCommand::Add { .. } => {
            println!("{:<24} {:<32} {:>7} {:>10}", "DOCUMENT", "FILENAME", "CHUNKS", "BYTES");
            let docs = if v["documents"].is_array() { &v["documents"] } else { &v["data"] };
            for d in rows(docs) {
                println!("{:<24} {:<32} {:>7} {:>10}", s(&d["id"]), s(&d["filename"]), s(&d["chunks"]), s(&d["bytes"]));
            }
        }
        CollectionsCommand::Search { .. } => {
            for h in rows(&v["data"]) {
                let text: String = s(&h["text"]).chars().take(160).collect();
                println!("{:.3}  {}\n       {}", h["score"].as_f64().unwrap_or(0.0), s(&h["filename"]), text.replace('\n', " "));
            }
        }
        CollectionsCommand::Delete { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_come_from_file_names() {
        assert_eq!(doc_id(Path::new("/a/AI+ plan.md")), "AI--plan");
        assert_eq!(doc_id(Path::new("行动.txt")), "u884cu52a8");
        assert_ne!(doc_id(Path::new("行动.txt")), doc_id(Path::new("计划.txt")));
        assert_eq!(doc_id(Path::new("")), "doc");
        assert_eq!(doc_id(Path::new(&"长".repeat(40))).len(), 64);
    }
}
