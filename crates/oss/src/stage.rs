//! Ingest spread over a cluster's engine: the files grouped into one job per day, each job
//! ingesting its day into a staging store of its own, and the staged units merged into the
//! data dir's store once the job has succeeded.
//!
//! The engines and the jobs' lifecycle belong to the binary; this module knows only files. A
//! merge copies a unit's segments and then writes its manifest through [`Store::commit`], as a
//! local ingest does, so a merge cut off anywhere is simply done again, and a unit already in
//! the store with the same contents is left as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Error;
use crate::ingest::{Manifest, Store, Summary, hex, unit_name};
use crate::segment;

/// The group of files whose names carry no day.
pub const UNDATED: &str = "undated";

/// A GH Archive file's day, `YYYY-MM-DD`, from its name (`2026-09-01-13.json.gz`).
pub fn day_of(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shaped = digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7) && b.get(7) == Some(&b'-') && digits(8..10);
    let hour = b.get(10) == Some(&b'-') && b.get(11).is_some_and(u8::is_ascii_digit);
    (shaped && hour).then(|| &name[..10])
}

/// Files grouped by day, in day order; files not named by the hour form one group, [`UNDATED`].
/// Two files of one unit name are refused, as in a local ingest.
pub fn by_day(files: &[PathBuf]) -> Result<BTreeMap<String, Vec<PathBuf>>, Error> {
    crate::ingest::check_unique(files)?;
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let name = unit_name(f)?;
        let day = day_of(&name).unwrap_or(UNDATED).to_string();
        out.entry(day).or_default().push(f.clone());
    }
    Ok(out)
}

/// Whether a staging store holds a manifest for every one of `files`: the job that ingested
/// them finished, whatever its engine now remembers of it.
pub fn staged_all(staged: &Store, files: &[PathBuf]) -> Result<bool, Error> {
    for f in files {
        if staged.manifest(&unit_name(f)?)?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Adopts the staged units of `files` into `store`. Each staged segment is decoded (which
/// checks its hash) before it is copied; a unit the store already holds with the same contents
/// counts as unchanged.
pub fn merge(store: &Store, staged: &Store, files: &[PathBuf]) -> Result<Summary, Error> {
    let mut sum = Summary::default();
    for f in files {
        let name = unit_name(f)?;
        let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let m = staged.manifest(&name)?.ok_or_else(|| Error::Corrupt(format!("the staging store has no manifest for {name}")))?;
        let before = store.manifest(&name)?;
        if let Some(b) = before.as_ref().filter(|b| store.is_current(b, &m.sha256)) {
            sum.add(b.clone(), false, bytes);
            continue;
        }
        let segments = staged_segments(staged, &m)?;
        store.commit(before.as_ref(), &m, &segments)?;
        sum.add(m, true, bytes);
    }
    sum.sort();
    Ok(sum)
}

/// A staged unit's segments, each checked whole and the one its manifest names (by hash, or
/// by row count in a manifest from before segments were hashed).
fn staged_segments(staged: &Store, m: &Manifest) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut out = Vec::with_capacity(m.months.len());
    for (month, rows) in &m.months {
        let path: &Path = &staged.month_dir(month).join(format!("{}.seg", m.name));
        let bytes = std::fs::read(path).map_err(Error::io(path.display().to_string()))?;
        let (decoded, _) = segment::decode(&bytes)?;
        let named = match m.segments.get(month) {
            Some(sha) => *sha == hex(&Sha256::digest(&bytes)),
            None => decoded.len() as u64 == *rows,
        };
        if !named {
            return Err(Error::Corrupt(format!("{}: not the segment its manifest names", path.display())));
        }
        out.push((month.clone(), bytes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_come_from_hourly_names_only() {
        assert_eq!(day_of("2026-09-01-13.json.gz"), Some("2026-09-01"));
        assert_eq!(day_of("2026-09-01-0.json"), Some("2026-09-01"));
        assert_eq!(day_of("2026-09-01.json"), None);
        assert_eq!(day_of("events.ndjson"), None);
        assert_eq!(day_of("2026-9-01-1.json"), None);
    }
}
