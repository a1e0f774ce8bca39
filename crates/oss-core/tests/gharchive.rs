//! Real GH Archive events (`../shared/oss/`) through the parser and the activity measure, checked
//! against counts and activities computed here independently, from the raw JSON, with the
//! formula written out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use oss_core::activity;
use oss_core::event::parse;
use oss_core::row::{Names, reduce};
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
        *ours.entry(e.type_name.to_string()).or_default() += 1;
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
    let mut names = Names::default();
    let rows: Vec<_> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| reduce(&parse(l).unwrap(), &mut names)).collect();
    let ours = activity::repo_activity(&activity::counts(&rows, &BTreeSet::new()));
    let want = activity_by_hand(&text);
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
        let bytes = shared(file);
        let e = parse(&bytes).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert_eq!(e.type_name, "PushEvent", "{file}");
        assert!(e.push_id.is_some(), "{file}: the push is counted by its id in either format");
    }
}

/// OpenDigger's global activity per (repo, developer), from the raw JSON: distinct issues opened
/// (×22.235), issue comments (×5.252), issues closed (×9.712), review comments (×7.427), pull
/// requests opened (×40.679) and pushes (×14.695), rounded to 3 decimals; kept only where the
/// developer had an issue, comment or pull request event there, and leaving out events on issues
/// titled `[snyk]…` (the sample has one: a Snyk upgrade PR closed).
#[test]
fn global_activity_agrees_with_the_formula_by_hand() {
    let text = pinot();
    let mut sets: BTreeMap<(u64, u64), [BTreeSet<u64>; 6]> = BTreeMap::new();
    let mut valid = BTreeSet::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let e: Value = serde_json::from_slice(line).unwrap();
        let key = (e["repo"]["id"].as_u64().unwrap(), e["actor"]["id"].as_u64().unwrap());
        let p = &e["payload"];
        let action = p["action"].as_str().unwrap_or("");
        let ty = e["type"].as_str().unwrap();
        let title = p["issue"]["title"].as_str().or(p["pull_request"]["title"].as_str()).unwrap_or("");
        if title.to_lowercase().starts_with("[snyk]") {
            continue;
        }
        if matches!(
            (ty, action),
            ("IssuesEvent", "opened" | "closed")
                | ("IssueCommentEvent", "created")
                | ("PullRequestReviewCommentEvent", "created")
                | ("PullRequestEvent", "opened" | "closed")
        ) {
            valid.insert(key);
        }
        let (cat, id) = match (ty, action) {
            ("IssuesEvent", "opened") => (0, &p["issue"]["id"]),
            ("IssueCommentEvent", _) => (1, &p["comment"]["id"]),
            ("IssuesEvent", "closed") => (2, &p["issue"]["id"]),
            ("PullRequestReviewCommentEvent", _) => (3, &p["comment"]["id"]),
            ("PullRequestEvent", "opened") => (4, &p["pull_request"]["id"]),
            ("PushEvent", _) => (5, &p["push_id"]),
            _ => continue,
        };
        sets.entry(key).or_default()[cat].insert(id.as_u64().unwrap());
    }
    let weights = [22.235, 5.252, 9.712, 7.427, 40.679, 14.695];
    let want: BTreeMap<(u64, u64), f64> = sets
        .iter()
        .filter(|(k, _)| valid.contains(k))
        .map(|(k, s)| (*k, ((0..6).map(|c| s[c].len() as f64 * weights[c]).sum::<f64>() * 1000.0).round() / 1000.0))
        .collect();
    let mut names = Names::default();
    let rows: Vec<_> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| reduce(&parse(l).unwrap(), &mut names)).collect();
    let ours: BTreeMap<(u64, u64), f64> =
        oss_core::global::pairs(&rows, &BTreeSet::new(), &oss_core::global::GlobalParams::OPENDIGGER.weights)
            .into_iter()
            .map(|p| ((p.repo, p.user), p.activity))
            .collect();
    assert!(want.len() > 20, "{}", want.len());
    assert_eq!(ours, want);
}
