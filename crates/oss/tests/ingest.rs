//! Ingest into segments, on the real GH Archive samples and generated events: bad lines counted
//! with their place, idempotent per file, resumable after a crash, and the measures over what was
//! stored equal to the core's over the events themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use oss::generate::{self, Settings};
use oss::ingest::{Store, files_in, ingest_file, ingest_files};
use oss::measure::{self, People};
use oss::segment;
use oss_core::event::{Kind, parse};
use oss_core::global::GlobalParams;
use oss_core::people::Alias;
use oss_core::row::{Action, Names, Row, reduce};
use proptest::prelude::*;

fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/oss").join(path)
}

/// The two real samples as GH Archive would name them: the 800 events of 2021-07-21 and the
/// quickwit bulk file (100 events between 100 Elasticsearch action lines).
fn samples(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(shared("gharchive/pinot/2021-07-21-few-hours.json"), dir.join("2021-07-21-6.json")).unwrap();
    std::fs::copy(shared("gharchive/quickwit/gharchive-bulk.json.gz"), dir.join("2015-02-01-0.json.gz")).unwrap();
    files_in(dir).unwrap()
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn real_events_ingest_with_bad_lines_counted_in_place_and_a_second_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let files = samples(&tmp.path().join("src"));
    let store = Store::new(&tmp.path().join("data"));
    let sum = ingest_files(&store, &files, 2, &|_, _| {}).unwrap();
    assert_eq!((sum.files, sum.unchanged, sum.events), (2, 0, 900));
    // Every other line of the bulk file is an action line, not an event: counted, placed, skipped.
    assert_eq!(sum.bad_lines, 100);
    assert_eq!(sum.bad[0].file, "2015-02-01-0.json.gz");
    assert_eq!(sum.bad.iter().take(3).map(|b| b.line).collect::<Vec<_>>(), [1, 3, 5]);
    assert!(sum.bad[0].reason.contains("type"), "{}", sum.bad[0].reason);
    assert_eq!(store.months().unwrap(), ["2015-02", "2021-07"]);

    let before = tree(&store.root);
    let again = ingest_files(&store, &files, 1, &|_, _| {}).unwrap();
    assert_eq!((again.unchanged, again.events), (2, 900));
    assert_eq!(tree(&store.root), before, "a second ingest writes nothing");
}

#[test]
fn a_crash_before_a_files_manifest_redoes_that_file_only_and_ends_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let files = samples(&tmp.path().join("src"));
    let clean = Store::new(&tmp.path().join("clean"));
    ingest_files(&clean, &files, 1, &|_, _| {}).unwrap();

    // The crashed run: the first file done, the second's segment written (torn, as a temporary
    // file) but its manifest not.
    let crashed = Store::new(&tmp.path().join("crashed"));
    ingest_file(&crashed, &files[0]).unwrap();
    let torn = crashed.month_dir("2021-07").join(".2021-07-21-6.json.seg.4242.0.tmp");
    std::fs::create_dir_all(torn.parent().unwrap()).unwrap();
    std::fs::write(&torn, b"AIPOSEG1 half a segm").unwrap();
    let resumed = ingest_files(&crashed, &files, 1, &|_, _| {}).unwrap();
    assert_eq!((resumed.files, resumed.unchanged), (2, 1), "only the unfinished file is done again");
    assert!(!torn.exists(), "the torn temporary file is replaced");
    assert_eq!(tree(&crashed.root), tree(&clean.root));
}

#[test]
fn a_republished_file_replaces_its_rows_and_leaves_no_stale_month() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&tmp.path().join("data"));
    let f = tmp.path().join("2026-09-30-23.json");
    let line = |id: u64, at: &str| {
        format!(
            r#"{{"id":"{id}","type":"WatchEvent","actor":{{"id":1,"login":"a"}},"repo":{{"id":2,"name":"o/r"}},"payload":{{"action":"started"}},"created_at":"{at}"}}"#
        )
    };
    std::fs::write(&f, format!("{}\n{}\n", line(1, "2026-09-30T23:59:59Z"), line(2, "2026-10-01T00:00:00Z"))).unwrap();
    let (m, fresh) = ingest_file(&store, &f).unwrap();
    assert!(fresh);
    assert_eq!(m.months.keys().collect::<Vec<_>>(), ["2026-09", "2026-10"]);
    std::fs::write(&f, format!("{}\n", line(1, "2026-09-30T23:59:59Z"))).unwrap();
    let (m, fresh) = ingest_file(&store, &f).unwrap();
    assert!(fresh);
    assert_eq!(m.months.keys().collect::<Vec<_>>(), ["2026-09"]);
    assert!(store.segments("2026-10").unwrap().is_empty(), "the month the file no longer has is emptied");
}

#[test]
fn two_files_of_one_name_are_refused_and_a_lost_segment_is_written_again() {
    let tmp = tempfile::tempdir().unwrap();
    let files = samples(&tmp.path().join("src"));
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&files[1], other.join("2021-07-21-6.json")).unwrap();
    let store = Store::new(&tmp.path().join("data"));
    let err = ingest_files(&store, &[files[1].clone(), other.join("2021-07-21-6.json")], 2, &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("same name"), "{err}");
    ingest_files(&store, &files, 1, &|_, _| {}).unwrap();
    let seg = store.segments("2021-07").unwrap().remove(0);
    std::fs::remove_file(&seg).unwrap();
    let again = ingest_files(&store, &files, 1, &|_, _| {}).unwrap();
    assert_eq!(again.unchanged, 1, "the file whose segment is gone is ingested again");
    assert!(seg.exists());
}

/// What a cluster job does per day, in process: each day's files ingested into a staging store
/// of their own, then merged. The data dir ends byte for byte as a local ingest leaves it; a
/// second merge changes nothing; a staged segment that does not hold what its manifest says is
/// refused before anything of its unit is written.
#[test]
fn staged_days_merge_into_exactly_what_a_local_ingest_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Settings { seed: 5, events: 3000, developers: 300, repos: 100, hours: 48, ..Default::default() };
    let files = generated(&tmp.path().join("src"), &s);
    let local = Store::new(&tmp.path().join("local"));
    ingest_files(&local, &files, 2, &|_, _| {}).unwrap();

    let days = oss::stage::by_day(&files).unwrap();
    assert_eq!(days.keys().collect::<Vec<_>>(), ["2026-09-01", "2026-09-02"]);
    assert!(days.values().all(|f| f.len() == 24));
    let merged = Store::new(&tmp.path().join("merged"));
    let mut events = 0;
    for (day, files) in &days {
        let staged = Store::new(&tmp.path().join("staging").join(day));
        assert!(!oss::stage::staged_all(&staged, files).unwrap());
        assert!(oss::stage::merge(&merged, &staged, files).is_err(), "nothing staged yet: nothing to merge");
        ingest_files(&staged, files, 1, &|_, _| {}).unwrap();
        assert!(oss::stage::staged_all(&staged, files).unwrap());
        let sum = oss::stage::merge(&merged, &staged, files).unwrap();
        assert_eq!((sum.files, sum.unchanged), (24, 0));
        events += sum.events;
        let again = oss::stage::merge(&merged, &staged, files).unwrap();
        assert_eq!((again.files, again.unchanged), (24, 24));
    }
    assert_eq!(events, 3000);
    assert_eq!(tree(&merged.root), tree(&local.root));

    // A staged segment swapped for another unit's: the merge refuses it and writes nothing.
    let day = &days["2026-09-01"];
    let staged = Store::new(&tmp.path().join("staging/2026-09-01"));
    let (a, b) = (oss::ingest::unit_name(&day[0]).unwrap(), oss::ingest::unit_name(&day[1]).unwrap());
    let (sa, sb) = (staged.month_dir("2026-09").join(format!("{a}.seg")), staged.month_dir("2026-09").join(format!("{b}.seg")));
    std::fs::copy(&sb, &sa).unwrap();
    let fresh = Store::new(&tmp.path().join("fresh"));
    let err = oss::stage::merge(&fresh, &staged, day).unwrap_err().to_string();
    assert!(err.contains("not the segment its manifest names"), "{err}");
    assert!(fresh.manifest(&a).unwrap().is_none());
}

#[test]
fn an_edited_segment_fails_its_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let files = samples(&tmp.path().join("src"));
    let store = Store::new(&tmp.path().join("data"));
    ingest_files(&store, &files, 1, &|_, _| {}).unwrap();
    let seg = store.segments("2021-07").unwrap().remove(0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let err = measure::activity(&store, "2021-07", &People::default()).unwrap_err().to_string();
    assert!(err.contains("hash"), "{err}");
}

#[test]
fn activity_read_back_from_segments_equals_the_cores_on_the_events() {
    let tmp = tempfile::tempdir().unwrap();
    let files = samples(&tmp.path().join("src"));
    let store = Store::new(&tmp.path().join("data"));
    ingest_files(&store, &files, 1, &|_, _| {}).unwrap();
    let people = People { bots: Some(oss_core::people::Bots::none()), aliases: vec![] };
    let (repos, _) = measure::activity(&store, "2021-07", &people).unwrap();
    let text = std::fs::read(shared("gharchive/pinot/2021-07-21-few-hours.json")).unwrap();
    let mut names = Names::default();
    let rows: Vec<Row> = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| reduce(&parse(l).unwrap(), &mut names)).collect();
    let want = oss_core::activity::repo_activity(&oss_core::activity::counts(&rows, &BTreeSet::new()));
    assert_eq!(repos.len(), want.len());
    for r in &repos {
        assert_eq!(r.activity, want[&r.id], "{}", r.name);
        assert_eq!(Some(r.name.as_str()), names.repo_name(r.id));
    }
}

fn generated(dir: &Path, s: &Settings) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    generate::generate(s, dir, &|_| {}).unwrap()
}

#[test]
fn the_generator_is_seeded_parses_cleanly_and_has_the_real_mix_and_bots() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Settings { events: 20_000, developers: 2_000, repos: 1_000, hours: 2, ..Settings::default() };
    let a = generated(&tmp.path().join("a"), &s);
    let b = generated(&tmp.path().join("b"), &s);
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap(), "same seed, same bytes");
    }
    let mut text = String::new();
    for f in &a {
        flate2::read::GzDecoder::new(std::fs::File::open(f).unwrap()).read_to_string(&mut text).unwrap();
    }
    let events: Vec<_> = text.lines().map(|l| parse(l.as_bytes()).unwrap()).collect();
    assert_eq!(events.len(), 20_000);
    let share = |k: Kind| events.iter().filter(|e| e.kind == k).count() as f64 / 20_000.0;
    // The real sample: 425 of 800 pushes, 64 pull request events, 36 issue comments.
    assert!((share(Kind::Push) - 425.0 / 800.0).abs() < 0.02, "{}", share(Kind::Push));
    assert!((share(Kind::PullRequest) - 64.0 / 800.0).abs() < 0.01);
    assert!((share(Kind::IssueComment) - 36.0 / 800.0).abs() < 0.01);
    let bots = events.iter().filter(|e| oss_core::people::Bots::default().is_bot(&e.actor_login)).count();
    assert!(bots > 200, "bots among the most active: {bots}");
    // Heavy tail: the top 1% of developers do far more than 1% of the work.
    let mut per: std::collections::BTreeMap<u64, usize> = Default::default();
    for e in &events {
        *per.entry(e.actor_id).or_default() += 1;
    }
    let mut counts: Vec<usize> = per.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = counts.iter().take(20).sum();
    assert!(top > 20_000 / 5, "top 20 of 2000 developers: {top} events");
}

#[test]
fn global_openrank_inherits_month_to_month_reuses_results_and_recomputes_after_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&tmp.path().join("data"));
    let sep = Settings { events: 6_000, developers: 300, repos: 100, hours: 2, ..Settings::default() };
    // 2026-10-01.
    let oct = Settings { start_s: 1_790_812_800, seed: 2, ..sep.clone() };
    for s in [&sep, &oct] {
        ingest_files(&store, &generated(&tmp.path().join("src"), s), 1, &|_, _| {}).unwrap();
    }
    let p = GlobalParams::OPENDIGGER;
    let months = measure::global_openrank(&store, "2026-10", &p, &People::default(), &|_| {}).unwrap();
    assert_eq!(months.iter().map(|m| m.month.as_str()).collect::<Vec<_>>(), ["2026-09", "2026-10"]);
    assert!(months.iter().all(|m| m.converged && m.iterations <= p.settings.max_iterations));
    assert!(months[1].values.iter().all(|r| r.openrank >= 0.0));
    assert!(!months[1].values.iter().any(|r| r.name.ends_with("[bot]")), "bots are not ranked");

    // October alone, without September's history, gives other values.
    let alone = Store::new(&tmp.path().join("alone"));
    ingest_files(&alone, &generated(&tmp.path().join("src2"), &oct), 1, &|_, _| {}).unwrap();
    let solo = measure::global_openrank(&alone, "2026-10", &p, &People::default(), &|_| {}).unwrap();
    assert_ne!(solo[0].values, months[1].values, "October inherits from September");

    // A second run reuses both stored months; a changed September recomputes October too.
    let again = measure::global_openrank(&store, "2026-10", &p, &People::default(), &|_| {}).unwrap();
    assert_eq!(again, months);
    let extra = tmp.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("2026-09-15-0.json"), r#"{"id":"9","type":"IssuesEvent","actor":{"id":77,"login":"late"},"repo":{"id":5000001,"name":"owner0/repo1"},"payload":{"action":"opened","issue":{"id":99,"number":1}},"created_at":"2026-09-15T00:00:00Z"}"#).unwrap();
    ingest_files(&store, &files_in(&extra).unwrap(), 1, &|_, _| {}).unwrap();
    let changed = measure::global_openrank(&store, "2026-10", &p, &People::default(), &|_| {}).unwrap();
    assert_ne!(changed[0].fingerprint, months[0].fingerprint);
    assert_ne!(changed[1].fingerprint, months[1].fingerprint, "October rests on September");
}

#[test]
fn aliases_merge_accounts_and_the_merge_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(&tmp.path().join("data"));
    let f = tmp.path().join("2026-09-01-0.json");
    let ev = |id: u64, actor: u64, login: &str, issue: u64| {
        format!(
            r#"{{"id":"{id}","type":"IssuesEvent","actor":{{"id":{actor},"login":"{login}"}},"repo":{{"id":1,"name":"o/r"}},"payload":{{"action":"opened","issue":{{"id":{issue},"number":{issue}}}}},"created_at":"2026-09-01T00:00:00Z"}}"#
        )
    };
    std::fs::write(&f, [ev(1, 10, "alice", 1), ev(2, 11, "alice-work", 2), ev(3, 12, "bob", 3)].join("\n")).unwrap();
    ingest_file(&store, &f).unwrap();
    let people = People { bots: None, aliases: vec![Alias { developer: "alice".into(), logins: vec!["alice-work".into()] }] };
    let (_, devs) = measure::activity(&store, "2026-09", &people).unwrap();
    let alice = devs.iter().find(|d| d.name == "alice").unwrap();
    assert_eq!(alice.counts.open_issue, 2, "both accounts' issues count for alice");
    assert!(!devs.iter().any(|d| d.name == "alice-work"));
    let m = measure::global_openrank(&store, "2026-09", &GlobalParams::OPENDIGGER, &people, &|_| {}).unwrap();
    assert_eq!(m[0].merges, [("alice-work".to_string(), "alice".to_string())]);
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    let row = (any::<i32>(), 0u8..9, 0u16..3, 0u8..8, any::<[u64; 8]>(), any::<u32>(), any::<bool>(), any::<bool>()).prop_map(
        |(at, kind, other, action, ids, number, merged, snyk)| Row {
            at_s: i64::from(at),
            kind: Kind::from_code(kind),
            other_type: if Kind::from_code(kind) == Kind::Other { other } else { 0 },
            action: Action::from_code(action),
            actor: ids[0],
            repo: ids[1],
            org: ids[2],
            event_id: ids[3],
            issue: ids[4],
            number,
            comment: ids[5],
            push: ids[6],
            merged,
            author: ids[7],
            snyk,
        },
    );
    prop::collection::vec(row, 0..60)
}

proptest! {
    #[test]
    fn segments_give_back_what_was_written(rows in rows(), logins in prop::collection::btree_map(1u64..50, "[a-z\\[\\]-]{1,12}", 0..10)) {
        let mut names = Names::default();
        for (id, l) in &logins {
            names.actor(*id, 5, l);
            names.repo(*id, 5, &format!("o/{l}"));
        }
        names.other_type("CreateEvent");
        let bytes = segment::encode(&rows, &names).unwrap();
        let (back, back_names) = segment::decode(&bytes).unwrap();
        prop_assert_eq!(back, rows);
        prop_assert_eq!(back_names, names);
    }
}

/// Community OpenRank runs its chain from the first stored month, as OpenDigger's does: the
/// last month equals a chain computed here with the core from the first month, and differs from
/// one started only three months back. Each month is kept and reused; a changed early month
/// changes the months after it.
#[test]
fn community_openrank_chains_from_the_first_month_and_keeps_each_month() {
    use oss_core::community::{self, CommunityParams, History};
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let months = ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09"];
    for (i, m) in months.iter().enumerate() {
        let start_s = time::OffsetDateTime::parse(&format!("{m}-01T00:00:00Z"), &time::format_description::well_known::Rfc3339).unwrap();
        let s = Settings {
            seed: i as u64 + 1,
            events: 3000,
            developers: 60,
            repos: 4,
            start_s: start_s.unix_timestamp(),
            hours: 2,
            ..Default::default()
        };
        generated(&src, &s);
    }
    let store = Store::new(&tmp.path().join("data"));
    ingest_files(&store, &files_in(&src).unwrap(), 2, &|_, _| {}).unwrap();
    let top = measure::activity(&store, "2026-05", &People::default()).unwrap().0.remove(0).name;
    let set = BTreeSet::from([top.clone()]);
    let people = People::default();
    let got = oss::community::community_openrank(&store, "2026-09", &set, &people).unwrap();

    let p = CommunityParams::OPENDIGGER;
    let chain = |from: usize| {
        let mut history = History::new();
        let mut last = None;
        for m in &months[from..] {
            let (rows, names, _) = measure::load_month(&store, m, &people).unwrap();
            let ids: BTreeSet<u64> = names.repos.iter().filter(|(_, (_, n))| *n == top).map(|(id, _)| *id).collect();
            let mine: Vec<Row> = rows.into_iter().filter(|r| ids.contains(&r.repo)).collect();
            let bots = oss_core::people::Bots::default().ids(&names);
            let out = community::month(&community::links(&mine, &bots, &p), &history, oss::month_index(m).unwrap(), &p).unwrap();
            history.insert(oss::month_index(m).unwrap(), out.values.iter().copied().collect());
            last = Some((out, names));
        }
        let (out, names) = last.unwrap();
        let mut users: Vec<(String, f64)> = out
            .values
            .iter()
            .filter_map(|(n, v)| match n {
                community::Node::User(id) => Some((names.login(*id).unwrap().to_string(), *v)),
                _ => None,
            })
            .collect();
        users.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        users
    };
    let users: Vec<(String, f64)> = got.members.iter().filter(|m| m.0 == "user").map(|m| (m.1.clone(), m.2)).collect();
    assert!(users.len() > 5, "{users:?}");
    assert_eq!(users, chain(0), "the chain from the first month");
    assert_ne!(users, chain(1), "a chain started three months back gives other values");

    let kept = |m: &str| {
        let dir = store.root.join("openrank/community");
        let set_dir = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        std::fs::read(set_dir.join(format!("{m}.json"))).unwrap()
    };
    let before = kept("2026-09");
    assert_eq!(oss::community::community_openrank(&store, "2026-09", &set, &people).unwrap(), got);
    assert_eq!(kept("2026-09"), before, "reused, not recomputed");

    // May's hours again, from another seed: every month after it moves.
    let start_s = time::OffsetDateTime::parse("2026-05-01T00:00:00Z", &time::format_description::well_known::Rfc3339).unwrap();
    let s =
        Settings { seed: 99, events: 3000, developers: 60, repos: 4, start_s: start_s.unix_timestamp(), hours: 2, ..Default::default() };
    let redo = generated(&tmp.path().join("redo"), &s);
    ingest_files(&store, &redo, 1, &|_, _| {}).unwrap();
    let after = oss::community::community_openrank(&store, "2026-09", &set, &people).unwrap();
    assert_ne!(after.fingerprint, got.fingerprint);
    assert_ne!(after.members, got.members, "a changed first month changes the last");
}

/// A developer's report and a repo's activity read only their own rows; they equal what the
/// whole month's activity says of them, to the bit.
#[test]
fn one_developers_or_repos_rows_give_what_the_whole_month_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Settings { seed: 8, events: 20_000, developers: 500, repos: 100, hours: 6, ..Default::default() };
    let files = generated(&tmp.path().join("src"), &s);
    let store = Store::new(&tmp.path().join("data"));
    ingest_files(&store, &files, 2, &|_, _| {}).unwrap();
    let people = People::default();
    let (repos, devs) = measure::activity(&store, "2026-09", &people).unwrap();
    for d in devs.iter().take(10).chain(devs.iter().rev().take(3)) {
        let r = oss::report::build(&store, &d.name, "2026-09", &people).unwrap();
        assert_eq!(r["months"][0]["activity"].as_f64().unwrap().to_bits(), d.activity.to_bits(), "{}", d.name);
        let per_repo: f64 = r["months"][0]["repos"].as_array().unwrap().iter().map(|x| x["activity"].as_f64().unwrap()).sum();
        assert!((per_repo - d.activity).abs() < 1e-9, "{}", d.name);
    }
    for r in repos.iter().take(10).chain(repos.iter().rev().take(3)) {
        let one = measure::repo_activity(&store, "2026-09", &r.name, &people).unwrap().unwrap();
        assert_eq!(&one, r);
    }
    assert!(measure::repo_activity(&store, "2026-09", "nobody/nothing", &people).unwrap().is_none());
}
