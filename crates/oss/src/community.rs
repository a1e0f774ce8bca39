//! Community OpenRank of a set of repos (one repo, or an organisation's `owner/*`) over the
//! stored months, as OpenDigger's `communityOpenrank.ts` computes it: each month starts from the
//! community's values in the months before, so the chain runs from the first stored month, or
//! from [`MAX_CHAIN_MONTHS`] before the month asked for, which bounds the work of one request.
//!
//! Each month's result is kept under `openrank/community/<set>/YYYY-MM.json` with a fingerprint
//! of what it rests on (the month's segments, the month before's fingerprint, the parameters,
//! the set, the bot rules and aliases); a month is recomputed only when that changes. At most
//! [`MAX_SETS`] sets are kept; beyond that, results are computed and not kept.

use std::collections::BTreeSet;

use oss_core::community::{self, CommunityParams, Node};
use oss_core::row::Row;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ingest::{Store, hex};
use crate::measure::{People, load_month, month_fingerprint};
use crate::segment::write_atomic;
use crate::{Error, month_index};

/// A node of a community and its OpenRank: (kind: `user`, `issue`, `pull` or `community`, name, value).
pub type Member = (String, String, f64);

/// Communities whose months are kept.
pub const MAX_SETS: usize = 10_000;
/// Months before the one asked for that the chain starts at, at most.
pub const MAX_CHAIN_MONTHS: i32 = 36;

/// A month's community result, as kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommunityMonth {
    pub month: String,
    pub fingerprint: String,
    pub iterations: u32,
    pub delta: f64,
    pub converged: bool,
    pub tolerance: f64,
    pub max_iterations: u32,
    /// Named, highest first.
    pub members: Vec<Member>,
    /// The values by node, for the months after: (0 user, 1 issue, 2 pull, 3 root; id; number; value).
    nodes: Vec<(u8, u64, u32, f64)>,
}

fn encode(n: &Node) -> (u8, u64, u32) {
    match *n {
        Node::User(id) => (0, id, 0),
        Node::Issue(repo, num, pull) => (if pull { 2 } else { 1 }, repo, num),
        Node::Root => (3, 0, 0),
    }
}

fn decode(k: u8, a: u64, b: u32) -> Node {
    match k {
        0 => Node::User(a),
        1 | 2 => Node::Issue(a, b, k == 2),
        _ => Node::Root,
    }
}

/// Whether a repo name is one of the set's (`owner/name`, or `owner/*` for every repo of an owner).
fn in_set(set: &BTreeSet<String>, name: &str) -> bool {
    set.contains(name) || set.iter().any(|r| r.strip_suffix('*').is_some_and(|owner| r.ends_with("/*") && name.starts_with(owner)))
}

/// Where a community's months are kept: one directory per set and per bot rules and aliases,
/// so that callers with other rules do not overwrite each other's chains.
fn set_dir(store: &Store, set: &BTreeSet<String>, people: &People) -> std::path::PathBuf {
    let mut h = Sha256::new();
    h.update(people.describe().as_bytes());
    h.update(b"\n");
    for r in set {
        h.update(r.as_bytes());
        h.update(b"\n");
    }
    store.root.join("openrank").join("community").join(&hex(&h.finalize())[..24])
}

fn kept(dir: &std::path::Path, month: &str) -> Result<Option<CommunityMonth>, Error> {
    match std::fs::read(dir.join(format!("{month}.json"))) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| Error::Corrupt(format!("community {month}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(month)(e)),
    }
}

/// Whether a new set may be kept: it is kept already, or fewer than [`MAX_SETS`] are.
fn may_keep(dir: &std::path::Path) -> bool {
    dir.exists() || dir.parent().and_then(|p| std::fs::read_dir(p).ok()).is_none_or(|rd| rd.count() < MAX_SETS)
}

/// Community OpenRank of `repos` in `month`, every stored month before it computed (or reused)
/// first as its history.
pub fn community_openrank(store: &Store, month: &str, repos: &BTreeSet<String>, people: &People) -> Result<CommunityMonth, Error> {
    let p = CommunityParams::OPENDIGGER;
    let target = month_index(month)?;
    let dir = set_dir(store, repos, people);
    let keep = may_keep(&dir);
    let first = target - MAX_CHAIN_MONTHS;
    let mut months: Vec<String> =
        store.months()?.into_iter().filter(|m| month_index(m).is_ok_and(|i| (first..=target).contains(&i))).collect();
    if months.last().map(String::as_str) != Some(month) {
        months.push(month.to_string());
    }
    let mut history = community::History::new();
    let mut before = String::new();
    let mut last = None;
    for mo in &months {
        let idx = month_index(mo)?;
        let mut h = Sha256::new();
        h.update(format!("{p:?}\n{repos:?}\n{}\n{before}\n{}", people.describe(), month_fingerprint(store, mo)?));
        let fp = hex(&h.finalize());
        let m = match kept(&dir, mo)? {
            Some(m) if m.fingerprint == fp => m,
            _ => {
                let m = compute(store, mo, idx, &fp, repos, &history, people, &p)?;
                if keep {
                    let json = serde_json::to_vec(&m).map_err(|e| Error::Corrupt(e.to_string()))?;
                    write_atomic(&dir.join(format!("{mo}.json")), &json)?;
                }
                m
            }
        };
        history.insert(idx, m.nodes.iter().map(|&(k, a, b, v)| (decode(k, a, b), v)).collect());
        // Only the months a month looks back on are needed.
        history.retain(|i, _| *i > idx - p.history_months - 1);
        before = fp;
        last = Some(m);
    }
    last.ok_or_else(|| Error::invalid("period", "no month"))
}

#[allow(clippy::too_many_arguments, reason = "one month of the chain, with everything it rests on")]
fn compute(
    store: &Store,
    month: &str,
    idx: i32,
    fp: &str,
    repos: &BTreeSet<String>,
    history: &community::History,
    people: &People,
    p: &CommunityParams,
) -> Result<CommunityMonth, Error> {
    let (rows, names, _) = load_month(store, month, people)?;
    let ids: BTreeSet<u64> = names.repos.iter().filter(|(_, (_, n))| in_set(repos, n)).map(|(id, _)| *id).collect();
    let mine: Vec<Row> = rows.into_iter().filter(|r| ids.contains(&r.repo)).collect();
    let links = community::links(&mine, &people.bots().ids(&names), p);
    let m = community::month(&links, history, idx, p).map_err(|e| Error::invalid(e.field, e.reason))?;
    let mut members: Vec<Member> = m
        .values
        .iter()
        .map(|(n, v)| match n {
            Node::User(id) => ("user".to_string(), names.login(*id).unwrap_or("").to_string(), *v),
            Node::Issue(repo, num, pull) => {
                (if *pull { "pull" } else { "issue" }.to_string(), format!("{}#{num}", names.repo_name(*repo).unwrap_or("")), *v)
            }
            Node::Root => ("community".to_string(), String::new(), *v),
        })
        .collect();
    members.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.1.cmp(&b.1)));
    Ok(CommunityMonth {
        month: month.to_string(),
        fingerprint: fp.to_string(),
        iterations: m.iterations,
        delta: m.delta,
        converged: m.converged,
        tolerance: m.settings.tolerance,
        max_iterations: m.settings.max_iterations,
        members,
        nodes: m.values.iter().map(|(n, v)| (encode(n).0, encode(n).1, encode(n).2, *v)).collect(),
    })
}
