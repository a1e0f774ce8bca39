//! The transparency log's files beside its key: the signing key (`log-key`, 0600, made on first
//! start), its public key (`log-key.pub`, for auditors), and the newest checkpoint this server
//! has seen (`log-key.checkpoint`), kept outside the store so that entries removed from the end
//! of the store together with their checkpoints are noticed at the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;

/// `path` with `suffix` appended to its file name (`log-key` → `log-key.pub`).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Opens the log on `store` with the configured key, checked against the newest checkpoint
/// this server saw.
pub async fn open(cfg: &Config, store: store::Store) -> anyhow::Result<tlog::Log> {
    let path = key_path(cfg);
    let key = key(cfg, &path)?;
    let seen = beside(&path, ".checkpoint");
    let trusted = match std::fs::read_to_string(&seen) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", seen.display())),
    };
    let witness: tlog::log::Witness = Arc::new(move |note: &str| {
        if let Err(e) = keep_newest(&seen, note) {
            tracing::warn!(error = %e, path = %seen.display(), "keeping the newest log checkpoint failed");
        }
    });
    let now = jobs::Clock::now_ms(&jobs::SystemClock);
    tlog::Log::open(store, key, now, trusted.as_deref(), Some(witness)).await.context("opening the transparency log")
}

/// The size a signed checkpoint states (0 when it cannot be read).
fn size_of(note: &str) -> u64 {
    tlog::note::split(note).ok().and_then(|(text, _)| tlog::Checkpoint::parse(text).ok()).map_or(0, |c| c.size)
}

/// Writes `note` to `path` if it is of a larger tree than the one there (instances that share
/// a key share this file; the newest wins), atomically and durably.
fn keep_newest(path: &Path, note: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).map(|t| size_of(&t)).unwrap_or(0);
    let new = size_of(note);
    if new < old || (old > 0 && new == old) {
        return Ok(());
    }
    let tmp = beside(path, &format!(".tmp{}", std::process::id()));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(note.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Where the log's signing key is: `govern.log_key_file`, or `log-key` in the data dir.
pub(crate) fn key_path(cfg: &Config) -> PathBuf {
    cfg.govern.log_key_file.clone().unwrap_or_else(|| cfg.server.data_dir.join("log-key"))
}

/// The log's signing key from `path`, made on first start with its public key beside it.
pub(crate) fn key(cfg: &Config, path: &Path) -> anyhow::Result<tlog::SignerKey> {
    if path.exists() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the log key {}", path.display()))?;
        let key = tlog::SignerKey::parse(&text).with_context(|| format!("the log key {}", path.display()))?;
        if key.name() != cfg.govern.log_origin {
            tracing::info!(key = key.name(), config = %cfg.govern.log_origin, "the log keeps its key's name as its origin");
        }
        return Ok(key);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for the log key: {e}"))?;
    let key = tlog::SignerKey::from_seed(&cfg.govern.log_origin, seed)?;
    identity::write_secret_file(path, &key.encode()).with_context(|| format!("writing the log key {}", path.display()))?;
    let public = beside(path, ".pub");
    std::fs::write(&public, format!("{}\n", key.verifier().encode())).with_context(|| format!("writing {}", public.display()))?;
    tracing::warn!(path = %public.display(), "made the transparency log's key; publish its public key to auditors");
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_newest_checkpoint_is_kept_and_an_older_one_never_replaces_it() {
        let dir = std::env::temp_dir().join(format!("aiplus-log-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log-key.checkpoint");
        let key = tlog::SignerKey::from_seed("t", [9; 32]).unwrap();
        let note = |size: u64| {
            let root = tlog::hash::leaf_hash(&size.to_be_bytes());
            tlog::Checkpoint { origin: "t".into(), size, root, extensions: vec![] }.sign(&key).unwrap()
        };
        for (size, kept) in [(3, 3), (5, 5), (4, 5), (5, 5), (9, 9)] {
            keep_newest(&path, &note(size)).unwrap();
            assert_eq!(size_of(&std::fs::read_to_string(&path).unwrap()), kept);
        }
        assert_eq!(beside(Path::new("/srv/log.key"), ".pub"), Path::new("/srv/log.key.pub"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
