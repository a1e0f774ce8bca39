//! GH Archive files into monthly segments.
//!
//! Each source file (an hour, `YYYY-MM-DD-H.json.gz`, or any ndjson file, gzipped or not) is one
//! unit of work, named by its file name. Its rows go to one segment per month they fall in,
//! `months/YYYY-MM/<name>.seg`; then a manifest, `ingested/<name>.json`, records the file's
//! SHA-256, its counts and its bad lines. A file whose manifest has the same hash is skipped, so
//! ingest is idempotent per file and resumes after a crash where it stopped: a file whose
//! manifest was not written is simply done again, overwriting its own segments.
//!
//! A bad line (not JSON, or not an event) is counted and skipped, with its file and line number;
//! it never stops the file.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use oss_core::event::{MAX_LINE_BYTES, parse};
use oss_core::row::{Names, Row, reduce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::segment::{self, write_atomic};
use crate::{Error, month_of};

/// Bad lines kept with their place per file; the rest are only counted.
pub const MAX_BAD_LINES_KEPT: usize = 100;
/// Largest source file read, compressed.
pub const MAX_FILE_BYTES: u64 = 8 << 30;

/// The data dir's oss part.
#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadLine {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

/// What ingesting one file did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub sha256: String,
    pub events: u64,
    pub bad_lines: u64,
    pub bad: Vec<BadLine>,
    /// Rows per month.
    pub months: BTreeMap<String, u64>,
    /// Each month's segment's SHA-256, so that a segment copied from elsewhere (a cluster job's
    /// staging directory) is known to be this unit's. Absent in manifests written before it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, String>,
}

/// What ingesting a set of files did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    /// Files skipped because they were already ingested with the same contents.
    pub unchanged: u64,
    pub events: u64,
    pub bad_lines: u64,
    pub bad: Vec<BadLine>,
    pub bytes: u64,
}

impl Summary {
    /// Counts one file: `fresh` when it was ingested now rather than found unchanged.
    pub fn add(&mut self, m: Manifest, fresh: bool, bytes: u64) {
        self.files += 1;
        self.unchanged += u64::from(!fresh);
        self.events += m.events;
        self.bad_lines += m.bad_lines;
        self.bytes += bytes;
        let room = MAX_BAD_LINES_KEPT.saturating_sub(self.bad.len());
        self.bad.extend(m.bad.into_iter().take(room));
    }

    /// Adds another set's counts (their bad lines as far as there is room).
    pub fn merge(&mut self, other: Summary) {
        self.files += other.files;
        self.unchanged += other.unchanged;
        self.events += other.events;
        self.bad_lines += other.bad_lines;
        self.bytes += other.bytes;
        let room = MAX_BAD_LINES_KEPT.saturating_sub(self.bad.len());
        self.bad.extend(other.bad.into_iter().take(room));
    }

    /// Bad lines in file and line order, whatever order the files were done in.
    pub fn sort(&mut self) {
        self.bad.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    }
}

impl Store {
    pub fn new(data_dir: &Path) -> Store {
        Store { root: data_dir.join("oss") }
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.root.join("ingested").join(format!("{name}.json"))
    }

    pub fn month_dir(&self, month: &str) -> PathBuf {
        self.root.join("months").join(month)
    }

    pub fn manifest(&self, name: &str) -> Result<Option<Manifest>, Error> {
        match std::fs::read(self.manifest_path(name)) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| Error::Corrupt(format!("manifest {name}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(name)(e)),
        }
    }

    /// Whether `m` is stored whole with these contents: its hash is `sha256` and every segment
    /// it lists is still there. Only then is a file skipped.
    pub fn is_current(&self, m: &Manifest, sha256: &str) -> bool {
        m.sha256 == sha256 && m.months.keys().all(|mo| self.month_dir(mo).join(format!("{}.seg", m.name)).exists())
    }

    /// Writes a unit's segments (month, encoded bytes), then its manifest, and removes the
    /// segments an earlier version (`before`) had in months this one has not. The manifest is
    /// written last, so it never lists a segment that is not there, and a crash before it only
    /// means the unit is done again.
    pub fn commit(&self, before: Option<&Manifest>, m: &Manifest, segments: &[(String, Vec<u8>)]) -> Result<(), Error> {
        let name = &m.name;
        for (month, bytes) in segments {
            sweep_torn(&self.month_dir(month), &format!(".{name}.seg."));
            write_atomic(&self.month_dir(month).join(format!("{name}.seg")), bytes)?;
        }
        for old in before.iter().flat_map(|b| b.months.keys()).filter(|mo| !m.months.contains_key(*mo)) {
            let p = self.month_dir(old).join(format!("{name}.seg"));
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(Error::io(p.display().to_string())(e));
            }
        }
        let json = serde_json::to_vec_pretty(m).map_err(|e| Error::Corrupt(e.to_string()))?;
        write_atomic(&self.manifest_path(name), &json)
    }

    /// The months that have segments, in order.
    pub fn months(&self) -> Result<Vec<String>, Error> {
        let dir = self.root.join("months");
        let mut out: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|m| crate::month_index(m).is_ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(Error::io(dir.display().to_string())(e)),
        };
        out.sort();
        Ok(out)
    }

    /// A month's segment files, in name order.
    pub fn segments(&self, month: &str) -> Result<Vec<PathBuf>, Error> {
        let dir = self.month_dir(month);
        let mut out: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "seg")).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(Error::io(dir.display().to_string())(e)),
        };
        out.sort();
        Ok(out)
    }
}

/// A source file's unit name: its whole file name, so `x.json` and `x.json.gz` stay apart.
pub fn unit_name(path: &Path) -> Result<String, Error> {
    let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = file;
    if name.is_empty() || name.starts_with('.') || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(Error::invalid("file", format!("`{file}`: a name of letters, digits, `.`, `_` and `-`")));
    }
    Ok(name.to_string())
}

/// Reads a file's lines (gzip or plain) into rows per month.
fn read_rows(bytes: &[u8], name: &str, m: &mut Manifest) -> Result<BTreeMap<String, (Vec<Row>, Names)>, Error> {
    let inner: Box<dyn Read + '_> =
        if bytes.starts_with(&[0x1f, 0x8b]) { Box::new(flate2::read::MultiGzDecoder::new(bytes)) } else { Box::new(bytes) };
    let mut reader = BufReader::with_capacity(1 << 20, inner);
    let mut out: BTreeMap<String, (Vec<Row>, Names)> = BTreeMap::new();
    let mut line = Vec::with_capacity(1 << 16);
    let mut current: Option<(i64, i64, String)> = None;
    for number in 1u64.. {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::Corrupt(format!("{name}: line {number}: {e}")))?;
        if n == 0 {
            break;
        }
        let mut bad = |reason: String| {
            m.bad_lines += 1;
            if m.bad.len() < MAX_BAD_LINES_KEPT {
                m.bad.push(BadLine { file: name.to_string(), line: number, reason });
            }
        };
        if line.len() > MAX_LINE_BYTES {
            bad(format!("longer than {MAX_LINE_BYTES} bytes"));
            // Skip the rest of the long line.
            let mut rest = Vec::new();
            while !line.ends_with(b"\n")
                && (&mut reader).take(MAX_LINE_BYTES as u64).read_until(b'\n', &mut rest).map_err(|e| Error::Corrupt(e.to_string()))? > 0
            {
                line.clear();
                line.append(&mut rest);
            }
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match parse(text) {
            Ok(e) => {
                // Events come in time order, so the month changes rarely: keep the current one's bounds.
                let month = match &current {
                    Some((lo, hi, mo)) if (*lo..*hi).contains(&e.at_s) => mo.clone(),
                    _ => {
                        let mo = month_of(e.at_s);
                        current = month_bounds(&mo).map(|(lo, hi)| (lo, hi, mo.clone()));
                        mo
                    }
                };
                let slot = out.entry(month).or_default();
                let row = reduce(&e, &mut slot.1);
                slot.0.push(row);
                m.events += 1;
            }
            Err(err) => bad(err.to_string()),
        }
    }
    Ok(out)
}

/// The seconds a month spans, [start, end).
fn month_bounds(month: &str) -> Option<(i64, i64)> {
    let i = crate::month_index(month).ok()?;
    let start = |i: i32| {
        let m = time::Month::try_from((i.rem_euclid(12) + 1) as u8).ok()?;
        time::Date::from_calendar_date(i.div_euclid(12), m, 1).ok().map(|d| d.midnight().assume_utc().unix_timestamp())
    };
    Some((start(i)?, start(i + 1)?))
}

/// Ingests one file, unless it was already ingested with the same contents.
pub fn ingest_file(store: &Store, path: &Path) -> Result<(Manifest, bool), Error> {
    let name = unit_name(path)?;
    let meta = std::fs::metadata(path).map_err(Error::io(path.display().to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::invalid("file", format!("{}: larger than {MAX_FILE_BYTES} bytes", path.display())));
    }
    let bytes = std::fs::read(path).map_err(Error::io(path.display().to_string()))?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let before = store.manifest(&name)?;
    if let Some(m) = before.as_ref().filter(|m| store.is_current(m, &sha256)) {
        return Ok((m.clone(), false));
    }
    let file = path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
    let mut m = Manifest { name, sha256, events: 0, bad_lines: 0, bad: vec![], months: BTreeMap::new(), segments: BTreeMap::new() };
    let months = read_rows(&bytes, &file, &mut m)?;
    if let Some((month, _)) = months.iter().find(|(_, (rows, _))| rows.len() > segment::MAX_ROWS) {
        return Err(Error::invalid("file", format!("{file}: more than {} events in {month}; split the file", segment::MAX_ROWS)));
    }
    let mut segments = Vec::with_capacity(months.len());
    for (month, (rows, names)) in &months {
        let bytes = segment::encode(rows, names)?;
        m.months.insert(month.clone(), rows.len() as u64);
        m.segments.insert(month.clone(), hex(&Sha256::digest(&bytes)));
        segments.push((month.clone(), bytes));
    }
    store.commit(before.as_ref(), &m, &segments)?;
    Ok((m, true))
}

/// Removes what a crashed write of this unit left (`.NAME.seg.PID.N.tmp`); best effort, as a
/// leftover is only wasted space.
fn sweep_torn(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with(prefix) && n.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The GH Archive files of a directory (`*.json.gz`, `*.json`, `*.ndjson`, `*.gz`), in name order.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir.display().to_string()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && [".json.gz", ".json", ".ndjson", ".gz"].iter().any(|x| n.ends_with(x)))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Refuses two files of one unit name: they would be one unit, written by two workers at once.
pub fn check_unique(files: &[PathBuf]) -> Result<(), Error> {
    let mut seen = BTreeMap::new();
    for f in files {
        if let Some(other) = seen.insert(unit_name(f)?, f) {
            return Err(Error::invalid("file", format!("{} and {} have the same name; ingest them apart", other.display(), f.display())));
        }
    }
    Ok(())
}

/// Ingests files on `threads` threads, calling `progress` after each file with (files done, bytes).
pub fn ingest_files(store: &Store, files: &[PathBuf], threads: usize, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<Summary, Error> {
    check_unique(files)?;
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(Summary::default());
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, 256) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    let done = ingest_file(store, path);
                    let Ok(mut sum) = summary.lock() else { break };
                    match done {
                        Ok((m, fresh)) => {
                            sum.add(m, fresh, bytes);
                            progress(sum.files, sum.bytes);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                            next.store(files.len(), Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut sum = summary.into_inner().map_err(|_| Error::Corrupt("a worker panicked".into()))?;
    sum.sort();
    Ok(sum)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
