//! The output check a compute-to-data run's outputs pass before they leave.

use std::collections::HashSet;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use crate::exchange::OutputRules;

/// A line of an output repeats a record only if the record has at least this many bytes, so
/// that a short figure (a count, a mean) is never taken for a copied row.
pub const MIN_RECORD_BYTES: usize = 8;

/// A run's staged dataset, as the output check reads it.
pub struct Staging {
    pub dir: PathBuf,
    /// Files whose first line is a header (CSV), which an output may repeat.
    pub headed: Vec<String>,
}

/// The output check: every declared output is a regular file in `out`, together within the
/// contract's size cap, and (unless the rules allow it) none repeats a record of the staged
/// files. Answers the outputs' bytes, or why none may leave.
pub fn check_outputs(out: &Path, data: &Staging, names: &[String], rules: &OutputRules) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    let mut total = 0u64;
    for name in names {
        let path = out.join(name);
        let meta = std::fs::symlink_metadata(&path).map_err(|_| format!("output {name}: the job did not write it"))?;
        if !meta.file_type().is_file() {
            return Err(format!("output {name}: not a regular file"));
        }
        total = total.saturating_add(meta.len());
        if total > rules.max_bytes {
            return Err(format!("outputs: more than the contract's {} bytes", rules.max_bytes));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("output {name}: {e}"))?;
        if bytes.len() as u64 != meta.len() {
            return Err(format!("output {name}: it changed while it was checked"));
        }
        files.push((name.clone(), bytes));
    }
    if rules.forbid_records {
        let lines: HashSet<&[u8]> = files
            .iter()
            .flat_map(|(_, b)| b.split(|&c| c == b'\n'))
            .map(<[u8]>::trim_ascii)
            .filter(|l| l.len() >= MIN_RECORD_BYTES)
            .collect();
        // Which record matched is not said: that would tell the buyer where a guessed row is.
        if first_repeated_record(data, &lines, rules.max_bytes).map_err(|e| format!("reading the staged dataset: {e}"))? {
            return Err("outputs: they repeat a record of the dataset; raw records may not leave".into());
        }
    }
    Ok(files)
}

/// Whether a record of the staged files is among `lines`. A line longer than `longest` (the
/// outputs' cap, so longer than any output line) is skipped without being held in memory.
fn first_repeated_record(data: &Staging, lines: &HashSet<&[u8]>, longest: u64) -> std::io::Result<bool> {
    use std::io::Read as _;
    if lines.is_empty() {
        return Ok(false);
    }
    let mut names: Vec<_> = std::fs::read_dir(&data.dir)?.collect::<Result<Vec<_>, _>>()?;
    names.sort_by_key(std::fs::DirEntry::file_name);
    for entry in names {
        let mut r = std::io::BufReader::new(std::fs::File::open(entry.path())?);
        let mut line = Vec::new();
        let mut n = 0u64;
        loop {
            line.clear();
            if (&mut r).take(longest.saturating_add(1)).read_until(b'\n', &mut line)? == 0 {
                break;
            }
            n += 1;
            if !line.ends_with(b"\n") && line.len() as u64 > longest {
                r.skip_until(b'\n')?;
                continue;
            }
            let header = n == 1 && data.headed.iter().any(|h| entry.file_name() == h.as_str());
            if !header && lines.contains(line.trim_ascii()) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(name: &str) -> (PathBuf, Staging) {
        let root = std::env::temp_dir().join(format!("aiplus-c2d-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("data/loans.csv"), "name,age,amount\nalice,34,5200.50\nbob,51,880.00\n").unwrap();
        (root.join("out"), Staging { dir: root.join("data"), headed: vec!["loans.csv".into()] })
    }

    #[test]
    fn the_output_check_lets_a_statistic_out_and_keeps_records_in() {
        let (out, data) = dirs("check");
        let rules = OutputRules::default();
        std::fs::write(out.join("sum.txt"), "name,age,amount\n6080.5\n").unwrap();
        std::fs::write(out.join("extra.bin"), "never leaves").unwrap();
        let ok = check_outputs(&out, &data, &["sum.txt".into()], &rules).unwrap();
        assert_eq!(
            ok,
            [("sum.txt".to_string(), b"name,age,amount\n6080.5\n".to_vec())],
            "only the declared output leaves; a header is no record"
        );
        // A copied row, even among other lines and with other spacing, is caught.
        std::fs::write(out.join("sum.txt"), "total 6080.5\n  bob,51,880.00 \n").unwrap();
        let err = check_outputs(&out, &data, &["sum.txt".into()], &rules).unwrap_err();
        assert!(err.contains("repeat a record of the dataset") && !err.contains("loans.csv"), "which record is not said: {err}");
        let allowed = OutputRules { forbid_records: false, ..rules };
        assert!(check_outputs(&out, &data, &["sum.txt".into()], &allowed).is_ok(), "the seller may turn the rule off");
        // Over the cap, missing, or a link to the data: refused.
        let unheaded = Staging { headed: Vec::new(), ..data };
        std::fs::write(out.join("sum.txt"), "name,age,amount\n").unwrap();
        assert!(check_outputs(&out, &unheaded, &["sum.txt".into()], &rules).is_err(), "a first line is a record unless a header");
        let data = unheaded;
        let small = OutputRules { max_bytes: 4, ..rules };
        assert!(check_outputs(&out, &data, &["sum.txt".into()], &small).unwrap_err().contains("more than the contract's 4 bytes"));
        assert!(check_outputs(&out, &data, &["none.txt".into()], &rules).unwrap_err().contains("did not write it"));
        std::os::unix::fs::symlink(data.dir.join("loans.csv"), out.join("link.csv")).unwrap();
        assert!(check_outputs(&out, &data, &["link.csv".into()], &rules).unwrap_err().contains("not a regular file"));
        std::fs::remove_dir_all(out.parent().unwrap()).unwrap();
    }
}
