//! `aiplus log`: the transparency log from a running server (checkpoint, proof, consistency,
//! entry), and `verify`, which needs no server: it checks a proof document against a signed
//! checkpoint with the log's public key, as an auditor would.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::client::{Server, call, client, print_json};

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(clap::Subcommand, Debug)]
enum LogCommand {
    /// The latest signed checkpoint (a C2SP signed note); save it to verify proofs against.
    Checkpoint,
    /// The log's public key (`<name>+<id>+<key>`); get it from the operator over a channel you
    /// trust, not only from the server it vouches for.
    Key,
    /// The inclusion proof of entry INDEX (JSON, for `aiplus log verify`).
    Proof {
        index: u64,
        /// The tree size to prove it in (default: the latest checkpoint's).
        #[arg(long)]
        size: Option<u64>,
    },
    /// The consistency proof from the tree of FROM entries to the latest (or --to).
    Consistency {
        from: u64,
        #[arg(long)]
        to: Option<u64>,
    },
    /// An entry with its full record (operators).
    Entry { index: u64 },
    /// Verify a proof offline: its checkpoint must be signed by --key, and an inclusion proof
    /// must lead to that checkpoint's root (and be for --checkpoint, when given).
    Verify {
        /// A proof document from `aiplus log proof` or `aiplus log consistency`.
        #[arg(long)]
        proof: PathBuf,
        /// A checkpoint you fetched yourself (`aiplus log checkpoint`); the proof must be for it.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The log's public key, or a file holding it (the server's `log-key.pub`).
        #[arg(long)]
        key: String,
    },
}

fn text(req: reqwest::blocking::RequestBuilder) -> anyhow::Result<String> {
    let resp = req.send().context("could not reach the aiplus server (is `aiplus serve` running? see --server)")?;
    let status = resp.status();
    let body = resp.text()?;
    anyhow::ensure!(status.is_success(), "{status}: {body}");
    Ok(body)
}

pub fn run(args: LogArgs) -> anyhow::Result<()> {
    let base = args.server.server.trim_end_matches('/').to_string();
    let c = client()?;
    let show = |v: Value| -> anyhow::Result<()> { print_json(&v) };
    match args.command {
        LogCommand::Checkpoint => {
            let note = text(c.get(format!("{base}/log/checkpoint")))?;
            if args.server.json {
                let (body, _) = tlog::note::split(&note)?;
                let cp = tlog::Checkpoint::parse(body)?;
                show(serde_json::json!({"origin": cp.origin, "size": cp.size, "root": cp.root.to_base64(), "note": note}))
            } else {
                print!("{note}");
                Ok(())
            }
        }
        LogCommand::Key => {
            print!("{}", text(c.get(format!("{base}/log/key")))?);
            Ok(())
        }
        LogCommand::Proof { index, size } => {
            let mut q = vec![("index", index.to_string())];
            q.extend(size.map(|s| ("size", s.to_string())));
            show(call(c.get(format!("{base}/api/v1/log/proof")).query(&q))?)
        }
        LogCommand::Consistency { from, to } => {
            let mut q = vec![("from", from.to_string())];
            q.extend(to.map(|s| ("to", s.to_string())));
            show(call(c.get(format!("{base}/api/v1/log/consistency")).query(&q))?)
        }
        LogCommand::Entry { index } => show(call(c.get(format!("{base}/api/v1/log/entries/{index}")))?),
        LogCommand::Verify { proof, checkpoint, key } => verify(&proof, checkpoint.as_ref(), &key, args.server.json),
    }
}

/// The offline check; no server is contacted.
fn verify(proof: &PathBuf, checkpoint: Option<&PathBuf>, key: &str, json: bool) -> anyhow::Result<()> {
    let key_text = if std::path::Path::new(key).is_file() {
        std::fs::read_to_string(key).with_context(|| format!("reading {key}"))?
    } else {
        key.to_string()
    };
    let key = tlog::VerifierKey::parse(&key_text).context("--key")?;
    let doc: tlog::ProofDoc =
        serde_json::from_str(&std::fs::read_to_string(proof).with_context(|| format!("reading {}", proof.display()))?)
            .with_context(|| format!("{}: not a proof document of `aiplus log proof` or `aiplus log consistency`", proof.display()))?;
    let trusted = checkpoint.map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))).transpose()?;
    let (what, size, root) = match &doc {
        tlog::ProofDoc::Inclusion(p) => {
            let c = p.verify(&key, trusted.as_deref()).context("the inclusion proof does not verify")?;
            (format!("entry {} is in the log", p.index), c.size, c.root)
        }
        tlog::ProofDoc::Consistency(p) => {
            let (c1, c2) = p.verify(&key).context("the consistency proof does not verify")?;
            if let Some(t) = &trusted {
                let t = tlog::Checkpoint::open(t, &key)?;
                anyhow::ensure!(
                    t == c2 || t == c1,
                    "the proof is for trees of {} and {} entries; the checkpoint given is of {}",
                    c1.size,
                    c2.size,
                    t.size
                );
            }
            (format!("the tree of {} entries is a prefix of the tree of {}", c1.size, c2.size), c2.size, c2.root)
        }
    };
    if json {
        print_json(&serde_json::json!({"verified": true, "statement": what, "size": size, "root": root.to_base64(), "key": key.name()}))
    } else {
        println!("verified: {what} (tree of {size} entries, root {}, signed by {})", root.to_base64(), key.name());
        Ok(())
    }
}
