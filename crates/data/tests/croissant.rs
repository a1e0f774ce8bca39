//! Croissant validation side by side with the reference validator: the 58 published example
//! records (mlcommons/croissant `datasets/1.0` and `1.1`) must import, and each invalid graph
//! of mlcroissant's own test suite must be refused with exactly the errors mlcroissant
//! printed for it (its `output.txt`). The material is in `../shared/croissant`; see its
//! SOURCES.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/croissant")
}

fn files(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, keep, out);
        } else if keep(&p) {
            out.push(p);
        }
    }
}

#[test]
fn all_58_published_examples_import() {
    let mut records = Vec::new();
    // The examples' own data files (`data/…json`) and expected records (`output/…`) are not
    // records.
    let root = shared().join("datasets");
    let keep = |p: &Path| {
        let s = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        s.ends_with(".json") && !s.contains("/data/") && !s.contains("/output/")
    };
    files(&root, &keep, &mut records);
    assert_eq!(records.len(), 58);
    let mut refused = Vec::new();
    for path in &records {
        let text = std::fs::read_to_string(path).unwrap();
        match data::croissant::validate_text(&text) {
            Ok(ds) => {
                // Recipes may be minimal; every published dataset has files.
                if path.ends_with("metadata.json") {
                    assert!(!ds.files.is_empty() || !ds.file_sets.is_empty(), "{}: no distribution read", path.display());
                }
            }
            Err(report) => refused.push(format!("{}:\n{report}", path.display())),
        }
    }
    assert!(refused.is_empty(), "{} refused:\n{}", refused.len(), refused.join("\n\n"));
}

#[test]
fn every_invalid_graph_is_refused_with_mlcroissants_errors() {
    let mut outputs = Vec::new();
    files(&shared().join("invalid"), &|p| p.ends_with("output.txt"), &mut outputs);
    assert_eq!(outputs.len(), 30);
    let mut mismatches = Vec::new();
    for out in &outputs {
        let dir = out.parent().unwrap();
        let expected = expected_errors(&std::fs::read_to_string(out).unwrap());
        assert!(!expected.is_empty(), "{}", out.display());
        let text = std::fs::read_to_string(dir.join("metadata.json")).unwrap();
        let Err(report) = data::croissant::validate_text(&text) else {
            mismatches.push(format!("{}: accepted", dir.display()));
            continue;
        };
        if report.errors != expected {
            mismatches.push(format!("{}:\n  expected {expected:#?}\n  got {:#?}", dir.display(), report.errors));
        }
    }
    assert!(mismatches.is_empty(), "{} of 30 differ:\n{}", mismatches.len(), mismatches.join("\n"));
}

/// The error lines of an mlcroissant report (warnings follow them and are not compared).
fn expected_errors(report: &str) -> BTreeSet<String> {
    let mut errors = BTreeSet::new();
    let mut in_errors = false;
    for line in report.lines() {
        if line.starts_with("Found the following") {
            in_errors = line.contains("error(s)");
        } else if let Some(issue) = line.strip_prefix("  -  ")
            && in_errors
        {
            errors.insert(issue.to_owned());
        }
    }
    errors
}

#[test]
fn what_the_exchange_reads_from_a_record_is_right() {
    let read = |rel: &str| data::croissant::validate_text(&std::fs::read_to_string(shared().join(rel)).unwrap()).unwrap();
    let titanic = read("datasets/1.0/titanic/metadata.json");
    assert_eq!(titanic.conforms_to, data::croissant::Version::V1_0);
    let csv = titanic.files.iter().find(|f| f.content_url.as_deref() == Some("data/titanic.csv")).expect("titanic.csv");
    assert_eq!(csv.sha256.as_deref().map(str::len), Some(64));
    assert!(titanic.record_sets.iter().any(|rs| rs.fields.iter().any(|f| f.data_types.iter().any(|t| t.ends_with("Integer")))));
    let wildchat = read("datasets/1.1/huggingface-wildchat/metadata.json");
    assert_eq!(wildchat.derived_from, vec!["https://huggingface.co/datasets/allenai/WildChat-1M-Full"]);
    assert_eq!(wildchat.conforms_to, data::croissant::Version::V1_1);
}
