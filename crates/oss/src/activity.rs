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

use crate::event::{Event, Kind};

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

/// The distinct ids each count is of, for one developer in one repo.
#[derive(Default)]
struct Seen {
    issue_comment: BTreeSet<u64>,
    open_issue: BTreeSet<u64>,
    open_pull: BTreeSet<u64>,
    review_comment: BTreeSet<u64>,
    merged_pull: BTreeSet<u64>,
}

/// Which of a developer's sets an event adds to.
type Pick = fn(&mut Seen) -> &mut BTreeSet<u64>;

/// Activity being counted: add events in any order, read the counts.
#[derive(Default)]
pub struct Tally {
    seen: BTreeMap<(u64, u64), Seen>,
}

impl Tally {
    pub fn add(&mut self, e: &Event) {
        let action = e.action.as_deref().unwrap_or("");
        let (who, set, id): (u64, Pick, Option<u64>) = match (e.kind, action) {
            (Kind::IssueComment, "created") => (e.actor_id, |s| &mut s.issue_comment, e.comment_id),
            (Kind::Issues, "opened") => (e.actor_id, |s| &mut s.open_issue, e.issue_id),
            (Kind::PullRequest, "opened") => (e.actor_id, |s| &mut s.open_pull, e.issue_id),
            (Kind::PullRequestReviewComment, "created" | "added") => (e.actor_id, |s| &mut s.review_comment, e.comment_id),
            (Kind::PullRequest, "closed") if e.pull_merged => match e.issue_author_id {
                Some(author) => (author, |s| &mut s.merged_pull, e.issue_id),
                None => return,
            },
            _ => return,
        };
        if let Some(id) = id {
            set(self.seen.entry((e.repo_id, who)).or_default()).insert(id);
        }
    }

    /// Every (repo, developer) with counts, in id order.
    pub fn counts(&self) -> impl Iterator<Item = ((u64, u64), Counts)> + '_ {
        self.seen.iter().map(|(k, s)| {
            let n = |x: &BTreeSet<u64>| x.len() as u64;
            let c = Counts {
                issue_comment: n(&s.issue_comment),
                open_issue: n(&s.open_issue),
                open_pull: n(&s.open_pull),
                review_comment: n(&s.review_comment),
                merged_pull: n(&s.merged_pull),
            };
            (*k, c)
        })
    }

    /// Each repo's activity: the sum of its developers'.
    pub fn repo_activity(&self) -> BTreeMap<u64, f64> {
        let mut out = BTreeMap::new();
        for ((repo, _), c) in self.counts() {
            *out.entry(repo).or_insert(0.0) += c.activity();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::event::parse;

    fn ev(kind: &str, action: &str, actor: u64, extra: &str) -> Event {
        let line = format!(
            r#"{{"id":"1","type":"{kind}","actor":{{"id":{actor},"login":"u{actor}"}},"repo":{{"id":7,"name":"o/r"}},"created_at":"2021-07-21T06:00:00Z","payload":{{"action":"{action}"{extra}}}}}"#
        );
        parse(line.as_bytes()).unwrap()
    }

    #[test]
    fn counts_are_of_distinct_ids_and_a_merge_counts_for_the_author() {
        let mut t = Tally::default();
        for _ in 0..2 {
            t.add(&ev("IssueCommentEvent", "created", 1, r#","issue":{"id":5},"comment":{"id":50}"#));
        }
        t.add(&ev("IssuesEvent", "opened", 1, r#","issue":{"id":5}"#));
        t.add(&ev("PullRequestEvent", "closed", 2, r#","pull_request":{"id":6,"merged":true,"user":{"id":1,"login":"u1"}}"#));
        t.add(&ev("PullRequestEvent", "closed", 2, r#","pull_request":{"id":8,"merged":false,"user":{"id":1,"login":"u1"}}"#));
        let all: Vec<_> = t.counts().collect();
        let want = Counts { issue_comment: 1, open_issue: 1, merged_pull: 1, ..Counts::default() };
        assert_eq!(all, [((7, 1), want)]);
        let a = (ISSUE_COMMENT_WEIGHT + OPEN_ISSUE_WEIGHT + PULL_MERGED_WEIGHT).sqrt();
        assert!((want.activity() - a).abs() < 1e-12);
        assert_eq!(t.repo_activity(), BTreeMap::from([(7, want.activity())]));
    }
}
