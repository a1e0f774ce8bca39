//! Global OpenRank for one month, as X-lab's OpenDigger computes it (`globalOpenrank.ts`, restated,
//! with its parameters in [`GlobalParams::OPENDIGGER`]).
//!
//! 1. Per developer and repo, an activity: distinct issues opened (×22.235), issue comments
//!    (×5.252), issues closed (×9.712), review comments (×7.427), pull requests opened (×40.679)
//!    and pushes (×14.695), rounded to 3 decimals. A pair counts only with at least one issue,
//!    comment or pull request event (a push alone does not), and without bots or `[snyk]` issues.
//! 2. Developers active in more than 300 repos are dropped as automated, and their activity is
//!    taken from their repos; a repo left with less than 1 is dropped too.
//! 3. The graph: developer and repo nodes and one background node. A repo gives each developer
//!    0.95 × their share of its activity, and a developer each repo 0.95 × its share of theirs;
//!    every node gives the background 0.05, which gives each node 1/(n − 1). Retention is 0.5 for
//!    developers, 0.3 for repos and 0.15 for the background.
//! 4. A node starts from its last value, × 0.85 per month since (kept only above 0.01), plus, for
//!    a developer, `1 / (1 + e^(0.10425 × (44.08 − activity)))` of this month's activity.
//! 5. OpenRank to tolerance 0.01 or 100 iterations; each node's value is its OpenRank plus an equal
//!    share of the background's.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::Kind;
use crate::openrank::{Graph, Invalid, Ranked, Settings, openrank};
use crate::row::{Action, Row};

/// The weights of global activity, per distinct item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    pub open_issue: f64,
    pub issue_comment: f64,
    pub close_issue: f64,
    pub review_comment: f64,
    pub open_pull: f64,
    pub push: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalParams {
    pub weights: Weights,
    pub user_retention: f64,
    pub repo_retention: f64,
    pub background_retention: f64,
    /// Per month since a node's last value.
    pub attenuation: f64,
    /// Carried values at or below this are dropped.
    pub min_value: f64,
    /// Developers with more repos than this in a month are dropped as automated.
    pub max_repos_per_user: usize,
    /// Share of a node's outflow that goes to the background.
    pub background_share: f64,
    pub settings: Settings,
}

impl GlobalParams {
    /// `globalOpenrank.ts` at open-digger 9dbe621.
    pub const OPENDIGGER: GlobalParams = GlobalParams {
        weights: Weights {
            open_issue: 22.235,
            issue_comment: 5.252,
            close_issue: 9.712,
            review_comment: 7.427,
            open_pull: 40.679,
            push: 14.695,
        },
        user_retention: 0.5,
        repo_retention: 0.3,
        background_retention: 0.15,
        attenuation: 0.85,
        min_value: 0.01,
        max_repos_per_user: 300,
        background_share: 0.05,
        settings: Settings { tolerance: 0.01, max_iterations: 100 },
    };
}

/// OpenDigger's map from a developer's month of activity to the OpenRank it starts with.
pub fn activity_to_openrank(activity: f64) -> f64 {
    1.0 / (1.0 + (0.10425 * (-activity + 44.08)).exp())
}

/// A node of the global graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    User(u64),
    Repo(u64),
}

/// A developer's activity in a repo this month.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    pub repo: u64,
    pub user: u64,
    pub activity: f64,
}

/// Rounds as ClickHouse's `ROUND(x, 3)`.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Ids are packed with their category in the top byte; GitHub's ids are far below 2^56.
const ID_BITS: u32 = 56;

/// The distinct (repo, developer, category, item) keys of a month, gathered a segment at a time:
/// sorting and deduplicating one flat vector is the fastest exact distinct count for tens of
/// millions of rows, and it holds 24 bytes per key rather than the rows themselves.
#[derive(Default)]
pub struct PairKeys {
    keys: Vec<(u64, u64, u64)>,
}

impl PairKeys {
    pub fn add(&mut self, rows: &[Row]) {
        for r in rows {
            if r.snyk || r.actor == 0 {
                continue;
            }
            // Category 6 marks a pair with a "valid" event, which OpenDigger requires besides a
            // positive activity.
            let valid = matches!(
                (r.kind, r.action),
                (Kind::Issues, Action::Opened | Action::Closed)
                    | (Kind::IssueComment, Action::Created)
                    | (Kind::PullRequestReviewComment, Action::Created)
                    | (Kind::PullRequest, Action::Opened | Action::Closed)
            );
            if valid {
                self.keys.push((r.repo, r.actor, 6 << ID_BITS));
            }
            let (cat, id): (u64, u64) = match (r.kind, r.action) {
                (Kind::Issues, Action::Opened) => (0, r.issue),
                (Kind::IssueComment, _) => (1, r.comment),
                (Kind::Issues, Action::Closed) => (2, r.issue),
                (Kind::PullRequestReviewComment, _) => (3, r.comment),
                (Kind::PullRequest, Action::Opened) => (4, r.issue),
                (Kind::Push, _) => (5, r.push),
                _ => continue,
            };
            if id != 0 {
                self.keys.push((r.repo, r.actor, (cat << ID_BITS) | (id & ((1 << ID_BITS) - 1))));
            }
            if self.keys.len() > self.keys.capacity() / 4 * 3 && self.keys.len() > 1 << 22 {
                // Deduplicating as it grows keeps a month of repeated keys from holding memory.
                self.compact();
            }
        }
    }

    fn compact(&mut self) {
        self.keys.sort_unstable();
        self.keys.dedup();
        self.keys.reserve(self.keys.len());
    }

    /// Per (repo, developer), the month's global activity. `skip` holds the ids of bots.
    pub fn finish(mut self, skip: &BTreeSet<u64>, w: &Weights) -> Vec<Pair> {
        self.keys.sort_unstable();
        self.keys.dedup();
        let weight = [w.open_issue, w.issue_comment, w.close_issue, w.review_comment, w.open_pull, w.push];
        let keys = self.keys;
        let mut out = Vec::new();
        let mut i = 0;
        while i < keys.len() {
            let (repo, user) = (keys[i].0, keys[i].1);
            let (mut counts, mut valid) = ([0u64; 6], false);
            while i < keys.len() && (keys[i].0, keys[i].1) == (repo, user) {
                match (keys[i].2 >> ID_BITS) as usize {
                    6 => valid = true,
                    c => counts[c.min(5)] += 1,
                }
                i += 1;
            }
            let activity = round3(counts.iter().zip(weight).map(|(n, w)| *n as f64 * w).sum());
            if valid && activity > 0.0 && !skip.contains(&user) {
                out.push(Pair { repo, user, activity });
            }
        }
        out
    }
}

/// Per (repo, developer), the month's global activity from its rows. `skip` holds the ids of bots.
pub fn pairs(rows: &[Row], skip: &BTreeSet<u64>, w: &Weights) -> Vec<Pair> {
    let mut k = PairKeys::default();
    k.add(rows);
    k.finish(skip, w)
}

/// A node's last value and the month it was computed for (months counted as `year × 12 + month − 1`).
pub type History = BTreeMap<Node, (i32, f64)>;

/// What a node carries into `month` from its history.
pub fn carried(history: &History, node: Node, month: i32, p: &GlobalParams) -> f64 {
    match history.get(&node) {
        Some(&(at, v)) if at < month => {
            let c = v * p.attenuation.powi(month - at);
            if c > p.min_value { c } else { 0.0 }
        }
        _ => 0.0,
    }
}

/// A month's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Month {
    /// Every ranked node and its value, in node order.
    pub values: Vec<(Node, f64)>,
    /// Node activity (a developer's over their repos, a repo's over its developers).
    pub activity: BTreeMap<Node, f64>,
    /// Developers dropped for having more than the allowed number of repos.
    pub dropped_users: Vec<u64>,
    pub iterations: u32,
    pub delta: f64,
    pub converged: bool,
}

/// Global OpenRank of one month from its pairs and the history before it.
pub fn month(pairs_in: &[Pair], history: &History, month: i32, p: &GlobalParams) -> Result<Month, Invalid> {
    let (pairs, activity, dropped_users) = prune(pairs_in, p);
    let nodes: Vec<Node> = activity.keys().copied().collect();
    let init: Vec<f64> = nodes
        .iter()
        .map(|n| {
            let own = match n {
                Node::User(_) => activity_to_openrank(activity[n]),
                Node::Repo(_) => 0.0,
            };
            carried(history, *n, month, p) + own
        })
        .collect();
    let ranked = rank(&pairs, &nodes, &activity, init, p)?;
    let bg = ranked.values.last().copied().unwrap_or(0.0);
    let share = if nodes.is_empty() { 0.0 } else { bg / nodes.len() as f64 };
    let values = nodes.iter().zip(&ranked.values).map(|(n, v)| (*n, v + share)).collect();
    Ok(Month { values, activity, dropped_users, iterations: ranked.iterations, delta: ranked.delta, converged: ranked.converged })
}

/// Drops automated developers (and repos left with almost nothing), and sums node activity in one
/// fixed order.
fn prune(pairs_in: &[Pair], p: &GlobalParams) -> (Vec<Pair>, BTreeMap<Node, f64>, Vec<u64>) {
    let mut pairs = pairs_in.to_vec();
    pairs.sort_by(|a, b| (a.repo, a.user).cmp(&(b.repo, b.user)).then(a.activity.total_cmp(&b.activity)));
    let mut repos_of: BTreeMap<u64, usize> = BTreeMap::new();
    for x in &pairs {
        *repos_of.entry(x.user).or_default() += 1;
    }
    let dropped: BTreeSet<u64> = repos_of.iter().filter(|(_, n)| **n > p.max_repos_per_user).map(|(u, _)| *u).collect();
    let mut activity: BTreeMap<Node, f64> = BTreeMap::new();
    for x in &pairs {
        if !dropped.contains(&x.user) {
            *activity.entry(Node::User(x.user)).or_default() += x.activity;
        }
    }
    let mut repo_total: BTreeMap<u64, f64> = BTreeMap::new();
    for x in &pairs {
        *repo_total.entry(x.repo).or_default() += x.activity;
    }
    let mut touched = BTreeSet::new();
    for x in pairs.iter().filter(|x| dropped.contains(&x.user)) {
        if let Some(t) = repo_total.get_mut(&x.repo) {
            *t -= x.activity;
            touched.insert(x.repo);
        }
    }
    for (repo, total) in repo_total {
        if !(touched.contains(&repo) && total < 1.0) {
            activity.insert(Node::Repo(repo), total);
        }
    }
    pairs.retain(|x| activity.contains_key(&Node::User(x.user)) && activity.contains_key(&Node::Repo(x.repo)));
    (pairs, activity, dropped.into_iter().collect())
}

/// OpenRank over the developer–repo graph with a background node last. Edge weights are shares of
/// activity, so scaling every activity by the same factor leaves the graph unchanged.
pub fn rank(pairs: &[Pair], nodes: &[Node], activity: &BTreeMap<Node, f64>, init: Vec<f64>, p: &GlobalParams) -> Result<Ranked, Invalid> {
    let index: BTreeMap<Node, u32> = nodes.iter().enumerate().map(|(i, n)| (*n, i as u32)).collect();
    let bg = nodes.len() as u32;
    let keep = 1.0 - p.background_share;
    let mut edges = Vec::with_capacity(pairs.len() * 2 + nodes.len() * 2);
    for x in pairs {
        let (r, u) = (Node::Repo(x.repo), Node::User(x.user));
        if let (Some(&ri), Some(&ui), Some(ra), Some(ua)) = (index.get(&r), index.get(&u), activity.get(&r), activity.get(&u)) {
            edges.push((ri, ui, keep * x.activity / ra));
            edges.push((ui, ri, keep * x.activity / ua));
        }
    }
    let spread = if nodes.is_empty() { 0.0 } else { 1.0 / nodes.len() as f64 };
    for i in 0..bg {
        edges.push((i, bg, p.background_share));
        edges.push((bg, i, spread));
    }
    let mut init = init;
    init.push(0.0);
    let retention = nodes
        .iter()
        .map(|n| match n {
            Node::User(_) => p.user_retention,
            Node::Repo(_) => p.repo_retention,
        })
        .chain([p.background_retention])
        .collect();
    openrank(&Graph { init, retention, edges }, p.settings)
}

/// The history after a month: every ranked node's value replaces its last one.
pub fn remember(history: &mut History, m: &Month, month: i32) {
    for (n, v) in &m.values {
        history.insert(*n, (month, *v));
    }
}
