//! Real GH Archive events (`../shared/oss/`) through the parser and the activity measure, checked
//! against counts and activities computed here independently, from the raw JSON, with the
//! formula written out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use oss::activity::Tally;
use oss::event::parse;
use serde_json::Value;

fn shared(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../../shared/oss/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn pinot() -> Vec<u8> {
    shared("gharchive/pinot/2021-07-21-few-hours.json")
}

#[test]
fn every_real_event_parses_and_the_type_counts_agree() {
    let text = pinot();
    let mut ours: BTreeMap<String, usize> = BTreeMap::new();
    let mut theirs: BTreeMap<String, usize> = BTreeMap::new();
    for (n, line) in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let e = parse(line).unwrap_or_else(|err| panic!("line {}: {err}", n + 1));
        *ours.entry(e.type_name).or_default() += 1;
        let raw: Value = serde_json::from_slice(line).unwrap();
        *theirs.entry(raw["type"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(ours.values().sum::<usize>(), 800);
    assert_eq!(ours, theirs);
    assert_eq!((ours["PushEvent"], ours["PullRequestEvent"], ours["IssueCommentEvent"]), (425, 64, 36));
}

/// OpenDigger's activity per repo, from the raw JSON: per (repo, developer) the distinct issue
/// comments created (×0.5252), issues opened (×2.2235), pull requests opened (×4.0679), review
/// comments created or added (×0.7427) and pull requests merged, for their author (×2.0339);
/// a developer's activity is the square root of that sum, a repo's the sum over its developers.
fn activity_by_hand(text: &[u8]) -> BTreeMap<u64, f64> {
    let mut sets: BTreeMap<(u64, u64, &str), BTreeSet<u64>> = BTreeMap::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let e: Value = serde_json::from_slice(line).unwrap();
        let (repo, actor) = (e["repo"]["id"].as_u64().unwrap(), e["actor"]["id"].as_u64().unwrap());
        let p = &e["payload"];
        let action = p["action"].as_str().unwrap_or("");
        let (who, what, id) = match (e["type"].as_str().unwrap(), action) {
            ("IssueCommentEvent", "created") => (actor, "issue_comment", &p["comment"]["id"]),
            ("IssuesEvent", "opened") => (actor, "open_issue", &p["issue"]["id"]),
            ("PullRequestEvent", "opened") => (actor, "open_pull", &p["pull_request"]["id"]),
            ("PullRequestReviewCommentEvent", "created" | "added") => (actor, "review_comment", &p["comment"]["id"]),
            ("PullRequestEvent", "closed") if p["pull_request"]["merged"] == true => {
                (p["pull_request"]["user"]["id"].as_u64().unwrap(), "merged_pull", &p["pull_request"]["id"])
            }
            _ => continue,
        };
        sets.entry((repo, who, what)).or_default().insert(id.as_u64().unwrap());
    }
    let weight = |what: &str| match what {
        "issue_comment" => 0.5252,
        "open_issue" => 2.2235,
        "open_pull" => 4.0679,
        "review_comment" => 0.7427,
        _ => 2.0339,
    };
    let mut per_dev: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    for ((repo, who, what), ids) in &sets {
        *per_dev.entry((*repo, *who)).or_default() += weight(what) * ids.len() as f64;
    }
    let mut per_repo = BTreeMap::new();
    for ((repo, _), sum) in per_dev {
        *per_repo.entry(repo).or_insert(0.0) += sum.sqrt();
    }
    per_repo
}

#[test]
fn per_repo_activity_agrees_with_the_formula_by_hand() {
    let text = pinot();
    let mut t = Tally::default();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        t.add(&parse(line).unwrap());
    }
    let (ours, want) = (t.repo_activity(), activity_by_hand(&text));
    assert!(want.len() > 20, "the sample has repos with activity: {}", want.len());
    assert_eq!(ours.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (repo, w) in &want {
        assert!((ours[repo] - w).abs() < 1e-12, "repo {repo}: {} vs {w}", ours[repo]);
    }
}

#[test]
fn old_events_with_fractional_seconds_and_both_push_formats_parse() {
    let mut text = String::new();
    flate2::read::GzDecoder::new(&shared("gharchive/quickwit/gharchive-bulk.json.gz")[..]).read_to_string(&mut text).unwrap();
    // An Elasticsearch bulk file: every other line is an action line, not an event.
    let events: Vec<_> = text.lines().filter(|l| !l.starts_with(r#"{"index""#)).map(|l| parse(l.as_bytes())).collect();
    assert_eq!(events.len(), 100);
    assert!(events.iter().all(Result::is_ok), "{:?}", events.iter().find(|e| e.is_err()));
    for file in ["gharchive_pushevent_pre_drift_2024-05-21-0.json", "gharchive_pushevent_post_drift_2025-12-15-0.json"] {
        let e = parse(&shared(file)).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert_eq!(e.type_name, "PushEvent", "{file}");
        assert!(e.push_id.is_some(), "{file}: the push is counted by its id in either format");
    }
}
