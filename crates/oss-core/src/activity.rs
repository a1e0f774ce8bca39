//! OpenDigger's activity: how much a developer did in a repo in a period.
//!
//! From `src/metrics/indices.ts` (`basicActivitySqlComponent`) of X-lab2017/open-digger: per
//! developer and repo, count distinct
//! - issue comments (`IssueCommentEvent`, `created`), weight 0.5252;
//! - issues opened (`IssuesEvent`, `opened`), weight 2.2235;
//! - pull requests opened (`PullRequestEvent`, `opened`), weight 4.0679;
//! - review comments (`PullRequestReviewCommentEvent`, `created` or `added`), weight 0.7427;
//! - pull requests merged (`PullRequestEvent`, `closed` and merged), weight 2.0339, credited to the
//!   pull request's author, not to whoever merged it;
//!
//! and the developer's activity is the square root of the weighted sum. A repo's activity is the
//! sum of its developers' activities.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::Kind;
use crate::row::{Action, Row};

pub const ISSUE_COMMENT_WEIGHT: f64 = 0.5252;
pub const OPEN_ISSUE_WEIGHT: f64 = 2.2235;
pub const OPEN_PULL_WEIGHT: f64 = 4.0679;
pub const REVIEW_COMMENT_WEIGHT: f64 = 0.7427;
pub const PULL_MERGED_WEIGHT: f64 = 2.0339;

/// One developer's counts in one repo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub issue_comment: u64,
    pub open_issue: u64,
    pub open_pull: u64,
    pub review_comment: u64,
    pub merged_pull: u64,
}

impl Counts {
    /// OpenDigger's activity of these counts.
    pub fn activity(&self) -> f64 {
        (ISSUE_COMMENT_WEIGHT * self.issue_comment as f64
            + OPEN_ISSUE_WEIGHT * self.open_issue as f64
            + OPEN_PULL_WEIGHT * self.open_pull as f64
            + REVIEW_COMMENT_WEIGHT * self.review_comment as f64
            + PULL_MERGED_WEIGHT * self.merged_pull as f64)
            .sqrt()
    }
}

/// Every (repo, developer) with counts, in id order, from a period's rows. `skip` holds the ids
/// of bots.
pub fn counts(rows: &[Row], skip: &BTreeSet<u64>) -> Vec<((u64, u64), Counts)> {
    // Distinct (repo, developer, category, item) keys, sorted and deduplicated: exact, and fast
    // for tens of millions of rows.
    let mut keys: Vec<(u64, u64, u8, u64)> = Vec::with_capacity(rows.len() / 2);
    for r in rows {
        let (who, cat, id) = match (r.kind, r.action) {
            (Kind::IssueComment, Action::Created) => (r.actor, 0, r.comment),
            (Kind::Issues, Action::Opened) => (r.actor, 1, r.issue),
            (Kind::PullRequest, Action::Opened) => (r.actor, 2, r.issue),
            (Kind::PullRequestReviewComment, Action::Created | Action::Added) => (r.actor, 3, r.comment),
            (Kind::PullRequest, Action::Closed) if r.merged => (r.author, 4, r.issue),
            _ => continue,
        };
        if who != 0 && id != 0 && !skip.contains(&who) {
            keys.push((r.repo, who, cat, id));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let mut out: Vec<((u64, u64), Counts)> = Vec::new();
    for (repo, who, cat, _) in keys {
        if out.last().is_none_or(|(k, _)| *k != (repo, who)) {
            out.push(((repo, who), Counts::default()));
        }
        if let Some((_, c)) = out.last_mut() {
            match cat {
                0 => c.issue_comment += 1,
                1 => c.open_issue += 1,
                2 => c.open_pull += 1,
                3 => c.review_comment += 1,
                _ => c.merged_pull += 1,
            }
        }
    }
    out
}

/// Each repo's activity: the sum of its developers', in developer order.
pub fn repo_activity(counts: &[((u64, u64), Counts)]) -> BTreeMap<u64, f64> {
    let mut out = BTreeMap::new();
    for ((repo, _), c) in counts {
        *out.entry(*repo).or_insert(0.0) += c.activity();
    }
    out
}

/// Each developer's activity over all repos: the sum of their per-repo activities, in repo order.
pub fn developer_activity(counts: &[((u64, u64), Counts)]) -> BTreeMap<u64, f64> {
    let mut per: BTreeMap<u64, Vec<(u64, f64)>> = BTreeMap::new();
    for ((repo, who), c) in counts {
        per.entry(*who).or_default().push((*repo, c.activity()));
    }
    per.into_iter()
        .map(|(who, mut v)| {
            v.sort_by_key(|x| x.0);
            (who, v.iter().map(|x| x.1).sum())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::event::parse;
    use crate::row::{Names, reduce};

    fn ev(kind: &str, action: &str, actor: u64, extra: &str) -> Row {
        let line = format!(
            r#"{{"id":"1","type":"{kind}","actor":{{"id":{actor},"login":"u{actor}"}},"repo":{{"id":7,"name":"o/r"}},"created_at":"2021-07-21T06:00:00Z","payload":{{"action":"{action}"{extra}}}}}"#
        );
        reduce(&parse(line.as_bytes()).unwrap(), &mut Names::default())
    }

    #[test]
    fn counts_are_of_distinct_ids_and_a_merge_counts_for_the_author() {
        let mut rows = vec![];
        for _ in 0..2 {
            rows.push(ev("IssueCommentEvent", "created", 1, r#","issue":{"id":5},"comment":{"id":50}"#));
        }
        rows.push(ev("IssuesEvent", "opened", 1, r#","issue":{"id":5}"#));
        rows.push(ev("PullRequestEvent", "closed", 2, r#","pull_request":{"id":6,"merged":true,"user":{"id":1,"login":"u1"}}"#));
        rows.push(ev("PullRequestEvent", "closed", 2, r#","pull_request":{"id":8,"merged":false,"user":{"id":1,"login":"u1"}}"#));
        let all = counts(&rows, &BTreeSet::new());
        let want = Counts { issue_comment: 1, open_issue: 1, merged_pull: 1, ..Counts::default() };
        assert_eq!(all, [((7, 1), want)]);
        let a = (ISSUE_COMMENT_WEIGHT + OPEN_ISSUE_WEIGHT + PULL_MERGED_WEIGHT).sqrt();
        assert!((want.activity() - a).abs() < 1e-12);
        assert_eq!(repo_activity(&all), BTreeMap::from([(7, want.activity())]));
        assert!(counts(&rows, &BTreeSet::from([1])).is_empty(), "a bot's work counts for nobody");
    }
}
