//! The measures over stored months: activity and global OpenRank (month after month, each
//! inheriting from the ones before). Community OpenRank is in [`crate::community`].
//!
//! Global results are kept per month under `openrank/global/YYYY-MM.json`, with a fingerprint of
//! everything they rest on (the month's ingested files, the month before's result, the
//! parameters, the bot rules and aliases). A month is recomputed only when its fingerprint
//! changes, and then every month after it is too.

use std::collections::BTreeMap;

use oss_core::activity::{self, Counts};
use oss_core::global::{self, GlobalParams, History, Node, PairKeys};
use oss_core::people::{self, Alias, Bots, Merge};
use oss_core::row::{Names, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ingest::{Store, hex};
use crate::segment::{self, write_atomic};
use crate::{Error, month_index};

/// Who counts: the bot rules and the declared aliases.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct People {
    pub bots: Option<Bots>,
    pub aliases: Vec<Alias>,
}

impl People {
    pub(crate) fn bots(&self) -> Bots {
        self.bots.clone().unwrap_or_default()
    }

    /// A stable description, for fingerprints and reports.
    pub fn describe(&self) -> String {
        let b = self.bots();
        let mut s = format!("bots: patterns {:?} logins {:?}; aliases:", b.patterns, b.logins);
        for a in &self.aliases {
            s.push_str(&format!(" {}={:?}", a.developer, a.logins));
        }
        s
    }
}

/// Calls `f` with each segment of a month, its rows already merged by the aliases' ids. Segments
/// are read one at a time, so a month never has to fit in memory as rows; with aliases, whose ids
/// need the names of the whole month, the names are read in a first pass.
fn each_segment(
    store: &Store,
    month: &str,
    people: &People,
    f: &mut dyn FnMut(&mut Vec<Row>, &Names),
) -> Result<(Names, Vec<Merge>), Error> {
    let paths = store.segments(month)?;
    let read = |p: &std::path::PathBuf| -> Result<(Vec<Row>, Names), Error> {
        let bytes = std::fs::read(p).map_err(Error::io(p.display().to_string()))?;
        segment::decode(&bytes).map_err(|e| Error::Corrupt(format!("{}: {e}", p.display())))
    };
    let mut names = Names::default();
    if !people.aliases.is_empty() {
        for p in &paths {
            names.merge(&read(p)?.1);
        }
    }
    let (map, merges) = people::resolve(&people.aliases, &names);
    let mut all = Names::default();
    for p in &paths {
        let (mut rows, n) = read(p)?;
        let remap = all.merge(&n);
        for r in rows.iter_mut().filter(|r| r.kind == oss_core::event::Kind::Other) {
            r.other_type = remap.get(usize::from(r.other_type)).copied().unwrap_or(r.other_type);
        }
        people::merge_rows(&mut rows, &map);
        f(&mut rows, &n);
    }
    Ok((all, merges))
}

/// A month's rows and names, whole.
pub fn load_month(store: &Store, month: &str, people: &People) -> Result<(Vec<Row>, Names, Vec<Merge>), Error> {
    load_month_where(store, month, people, &|_, _| true)
}

/// A month's names and the rows `keep` accepts (given each row and its segment's names), read
/// one segment at a time, so that one developer's or one repo's rows are found without holding
/// the month.
pub fn load_month_where(
    store: &Store,
    month: &str,
    people: &People,
    keep: &dyn Fn(&Row, &Names) -> bool,
) -> Result<(Vec<Row>, Names, Vec<Merge>), Error> {
    let mut kept = Vec::new();
    let (names, merges) = each_segment(store, month, people, &mut |rows, n| kept.extend(rows.drain(..).filter(|r| keep(r, n))))?;
    Ok((kept, names, merges))
}

/// A developer's or repo's activity in a month (OpenDigger's `indices.ts` activity).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivityRow {
    pub id: u64,
    pub name: String,
    pub activity: f64,
    pub counts: CountsOut,
    /// Developers for a repo, repos for a developer.
    pub participants: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CountsOut {
    pub issue_comment: u64,
    pub open_issue: u64,
    pub open_pull: u64,
    pub review_comment: u64,
    pub merged_pull: u64,
}

fn add(a: &mut CountsOut, c: &Counts) {
    a.issue_comment += c.issue_comment;
    a.open_issue += c.open_issue;
    a.open_pull += c.open_pull;
    a.review_comment += c.review_comment;
    a.merged_pull += c.merged_pull;
}

/// Activity by repo and by developer for a month, most active first.
pub fn activity(store: &Store, month: &str, people: &People) -> Result<(Vec<ActivityRow>, Vec<ActivityRow>), Error> {
    let (rows, names, _) = load_month(store, month, people)?;
    Ok(activity_of(&rows, &names, people))
}

/// One repo's activity in a month, if it had any, reading only its rows: those of the hours in
/// which the repo had this name (a repo renamed during the month counts from its new name on).
pub fn repo_activity(store: &Store, month: &str, repo: &str, people: &People) -> Result<Option<ActivityRow>, Error> {
    let (rows, names, _) = load_month_where(store, month, people, &|r, n| n.repo_name(r.repo) == Some(repo))?;
    Ok(activity_of(&rows, &names, people).0.into_iter().find(|r| r.name == repo))
}

/// Activity by repo and by developer over some rows (a repo's alone give that repo's whole
/// activity, since every count of a repo comes from its own rows).
fn activity_of(rows: &[Row], names: &Names, people: &People) -> (Vec<ActivityRow>, Vec<ActivityRow>) {
    let skip = people.bots().ids(names);
    let counts = activity::counts(rows, &skip);
    let mut repos: BTreeMap<u64, ActivityRow> = BTreeMap::new();
    let mut devs: BTreeMap<u64, ActivityRow> = BTreeMap::new();
    for ((repo, dev), c) in &counts {
        for (map, id, name) in [(&mut repos, *repo, names.repo_name(*repo)), (&mut devs, *dev, names.login(*dev))] {
            let e = map.entry(id).or_insert_with(|| ActivityRow {
                id,
                name: name.unwrap_or("").to_string(),
                activity: 0.0,
                counts: CountsOut::default(),
                participants: 0,
            });
            e.activity += c.activity();
            e.participants += 1;
            add(&mut e.counts, c);
        }
    }
    let order = |m: BTreeMap<u64, ActivityRow>| {
        let mut v: Vec<ActivityRow> = m.into_values().collect();
        v.sort_by(|a, b| b.activity.total_cmp(&a.activity).then(a.id.cmp(&b.id)));
        v
    };
    (order(repos), order(devs))
}

/// One node's global OpenRank in a month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// `user` or `repo`.
    pub kind: String,
    pub id: u64,
    pub name: String,
    /// The repo's organisation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub openrank: f64,
    pub activity: f64,
}

/// A month's global OpenRank, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalMonth {
    pub month: String,
    pub fingerprint: String,
    pub tolerance: f64,
    pub max_iterations: u32,
    pub iterations: u32,
    pub delta: f64,
    pub converged: bool,
    pub events: u64,
    pub dropped_users: Vec<u64>,
    pub merges: Vec<(String, String)>,
    /// Highest first.
    pub values: Vec<Ranked>,
}

fn fingerprint(store: &Store, month: &str, before: &str, p: &GlobalParams, people: &People) -> Result<String, Error> {
    let mut h = Sha256::new();
    h.update(format!("{p:?}\n{}\n{before}\n{}", people.describe(), month_fingerprint(store, month)?));
    Ok(hex(&h.finalize()))
}

/// What a month's segments are: their names and their own trailing hashes, hashed.
pub(crate) fn month_fingerprint(store: &Store, month: &str) -> Result<String, Error> {
    let mut h = Sha256::new();
    for seg in store.segments(month)? {
        h.update(seg.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default());
        h.update(tail_hash(&seg)?);
    }
    Ok(hex(&h.finalize()))
}

/// A segment's last 32 bytes (its SHA-256), or all of it when shorter.
fn tail_hash(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let io = |e| Error::io(path.display().to_string())(e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(32))).map_err(io)?;
    let mut tail = Vec::with_capacity(32);
    f.read_to_end(&mut tail).map_err(io)?;
    Ok(tail)
}

fn result_path(store: &Store, month: &str) -> std::path::PathBuf {
    store.root.join("openrank").join("global").join(format!("{month}.json"))
}

/// Reads a stored month's global result.
pub fn stored_global(store: &Store, month: &str) -> Result<Option<GlobalMonth>, Error> {
    match std::fs::read(result_path(store, month)) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| Error::Corrupt(format!("openrank {month}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(month)(e)),
    }
}

/// Global OpenRank of every stored month up to `through`, each inheriting from the ones before;
/// months already computed on the same inputs are reused. Returns the months, oldest first.
pub fn global_openrank(
    store: &Store,
    through: &str,
    p: &GlobalParams,
    people: &People,
    progress: &dyn Fn(&str),
) -> Result<Vec<GlobalMonth>, Error> {
    let last = month_index(through)?;
    let months: Vec<String> = store.months()?.into_iter().filter(|m| month_index(m).is_ok_and(|i| i <= last)).collect();
    let mut history = History::new();
    let mut before = String::new();
    let mut out = Vec::new();
    for month in &months {
        progress(month);
        let fp = fingerprint(store, month, &before, p, people)?;
        let m = match stored_global(store, month)? {
            Some(m) if m.fingerprint == fp => m,
            _ => {
                let m = compute_global(store, month, &fp, &history, p, people)?;
                let json = serde_json::to_vec(&m).map_err(|e| Error::Corrupt(e.to_string()))?;
                write_atomic(&result_path(store, month), &json)?;
                m
            }
        };
        let idx = month_index(month)?;
        for r in &m.values {
            let node = if r.kind == "repo" { Node::Repo(r.id) } else { Node::User(r.id) };
            history.insert(node, (idx, r.openrank));
        }
        before = fp;
        out.push(m);
    }
    Ok(out)
}

fn compute_global(
    store: &Store,
    month: &str,
    fp: &str,
    history: &History,
    p: &GlobalParams,
    people: &People,
) -> Result<GlobalMonth, Error> {
    let mut keys = PairKeys::default();
    let mut events = 0u64;
    let mut orgs: BTreeMap<u64, u64> = BTreeMap::new();
    let (names, merges) = each_segment(store, month, people, &mut |rows, _| {
        events += rows.len() as u64;
        for r in rows.iter().filter(|r| r.org != 0) {
            orgs.insert(r.repo, r.org);
        }
        keys.add(rows);
    })?;
    let pairs = keys.finish(&people.bots().ids(&names), &p.weights);
    let m = global::month(&pairs, history, month_index(month)?, p).map_err(|e| Error::invalid(e.field, e.reason))?;
    let mut values: Vec<Ranked> = m
        .values
        .iter()
        .map(|(n, v)| {
            let (kind, id, name, org) = match n {
                Node::User(id) => ("user", *id, names.login(*id), None),
                Node::Repo(id) => ("repo", *id, names.repo_name(*id), orgs.get(id).and_then(|o| names.org_login(*o))),
            };
            Ranked {
                kind: kind.into(),
                id,
                name: name.unwrap_or("").into(),
                org: org.map(String::from),
                openrank: *v,
                activity: m.activity.get(n).copied().unwrap_or(0.0),
            }
        })
        .collect();
    values.sort_by(|a, b| b.openrank.total_cmp(&a.openrank).then((&a.kind, a.id).cmp(&(&b.kind, b.id))));
    Ok(GlobalMonth {
        month: month.to_string(),
        fingerprint: fp.to_string(),
        tolerance: p.settings.tolerance,
        max_iterations: p.settings.max_iterations,
        iterations: m.iterations,
        delta: m.delta,
        converged: m.converged,
        events,
        dropped_users: m.dropped_users,
        merges: merges.into_iter().map(|x| (x.login, x.into_login)).collect(),
        values,
    })
}
