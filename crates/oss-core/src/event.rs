//! One GH Archive event (a line of `YYYY-MM-DD-H.json.gz`), kept to what the measures need.
//!
//! Parsing is tolerant: unknown fields are ignored, and so is every payload field a measure does
//! not read, so GitHub's format changes (PushEvents carry no commits since October 2025) pass
//! through. A line that is not an event (not JSON, or without a type, actor, repo or time) is an
//! error naming what is missing, which the ingest counts and skips.

use serde::Deserialize;

/// Longest line read, in bytes: GH Archive's largest events are a few hundred KiB.
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// The event types the measures read; the rest are kept as `Other` for the type counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Issues,
    IssueComment,
    PullRequest,
    PullRequestReviewComment,
    PullRequestReview,
    Push,
    Watch,
    Fork,
    Other,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 9] = [
        Kind::Issues,
        Kind::IssueComment,
        Kind::PullRequest,
        Kind::PullRequestReviewComment,
        Kind::PullRequestReview,
        Kind::Push,
        Kind::Watch,
        Kind::Fork,
        Kind::Other,
    ];

    /// GH Archive's name of the type (`Other` has none of its own).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Issues => "IssuesEvent",
            Kind::IssueComment => "IssueCommentEvent",
            Kind::PullRequest => "PullRequestEvent",
            Kind::PullRequestReviewComment => "PullRequestReviewCommentEvent",
            Kind::PullRequestReview => "PullRequestReviewEvent",
            Kind::Push => "PushEvent",
            Kind::Watch => "WatchEvent",
            Kind::Fork => "ForkEvent",
            Kind::Other => "Other",
        }
    }

    /// The kind's one-byte code in segments.
    pub fn code(self) -> u8 {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(8) as u8
    }

    pub fn from_code(c: u8) -> Kind {
        Kind::ALL.get(usize::from(c)).copied().unwrap_or(Kind::Other)
    }

    pub fn of(name: &str) -> Kind {
        match name {
            "IssuesEvent" => Kind::Issues,
            "IssueCommentEvent" => Kind::IssueComment,
            "PullRequestEvent" => Kind::PullRequest,
            "PullRequestReviewCommentEvent" => Kind::PullRequestReviewComment,
            "PullRequestReviewEvent" => Kind::PullRequestReview,
            "PushEvent" => Kind::Push,
            "WatchEvent" => Kind::Watch,
            "ForkEvent" => Kind::Fork,
            _ => Kind::Other,
        }
    }
}

/// An event, reduced.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: u64,
    /// GH Archive's type name, as written (`IssuesEvent`, …).
    pub type_name: String,
    pub kind: Kind,
    pub actor_id: u64,
    pub actor_login: String,
    pub repo_id: u64,
    pub repo_name: String,
    pub org_id: Option<u64>,
    pub org_login: Option<String>,
    /// Seconds since the epoch (UTC).
    pub at_s: i64,
    /// `opened`, `closed`, `created`, … where the payload has one.
    pub action: Option<String>,
    /// The issue's or pull request's id (not its number), where there is one.
    pub issue_id: Option<u64>,
    /// The issue's or pull request's number in its repo.
    pub number: Option<u32>,
    /// The issue or pull request is titled `[snyk]…` (automated fix proposals).
    pub snyk: bool,
    /// The id of an issue comment or a review comment.
    pub comment_id: Option<u64>,
    /// A closed pull request that was merged, and its author (the merged PR counts for them).
    pub pull_merged: bool,
    pub issue_author_id: Option<u64>,
    pub issue_author_login: Option<String>,
    pub push_id: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("line longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    #[error("{0}: missing or not a valid value")]
    Missing(&'static str),
}

#[derive(Deserialize)]
struct Raw {
    id: Option<Id>,
    #[serde(rename = "type")]
    kind: Option<String>,
    actor: Option<Account>,
    repo: Option<Repo>,
    org: Option<Account>,
    created_at: Option<String>,
    #[serde(default)]
    payload: Payload,
}

/// GH Archive writes ids as numbers, and event ids as strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Number(u64),
    Text(String),
}

impl Id {
    fn get(&self) -> Option<u64> {
        match self {
            Id::Number(n) => Some(*n),
            Id::Text(s) => s.parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct Account {
    id: Option<Id>,
    login: Option<String>,
}

#[derive(Deserialize)]
struct Repo {
    id: Option<Id>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
struct Payload {
    action: Option<String>,
    issue: Option<Item>,
    pull_request: Option<Item>,
    comment: Option<Item>,
    push_id: Option<Id>,
    number: Option<Id>,
}

#[derive(Deserialize)]
struct Item {
    id: Option<Id>,
    merged: Option<bool>,
    user: Option<Account>,
    number: Option<Id>,
    title: Option<String>,
}

/// Reads one line of GH Archive.
pub fn parse(line: &[u8]) -> Result<Event, ParseError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ParseError::TooLong);
    }
    let raw: Raw = serde_json::from_slice(line).map_err(|e| ParseError::Json(e.to_string()))?;
    let type_name = raw.kind.ok_or(ParseError::Missing("type"))?;
    let actor = raw.actor.ok_or(ParseError::Missing("actor"))?;
    let repo = raw.repo.ok_or(ParseError::Missing("repo"))?;
    let at = raw.created_at.ok_or(ParseError::Missing("created_at"))?;
    let at_s = time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ParseError::Missing("created_at"))?
        .unix_timestamp();
    let p = raw.payload;
    let kind = Kind::of(&type_name);
    // A pull request's events name it in `pull_request`; an issue's (and a comment on either) in `issue`.
    let item = if matches!(kind, Kind::PullRequest | Kind::PullRequestReviewComment | Kind::PullRequestReview) {
        p.pull_request.as_ref().or(p.issue.as_ref())
    } else {
        p.issue.as_ref().or(p.pull_request.as_ref())
    };
    let author = item.and_then(|i| i.user.as_ref());
    Ok(Event {
        id: raw.id.and_then(|i| i.get()).ok_or(ParseError::Missing("id"))?,
        kind,
        type_name,
        actor_id: actor.id.and_then(|i| i.get()).ok_or(ParseError::Missing("actor.id"))?,
        actor_login: actor.login.ok_or(ParseError::Missing("actor.login"))?,
        repo_id: repo.id.and_then(|i| i.get()).ok_or(ParseError::Missing("repo.id"))?,
        repo_name: repo.name.ok_or(ParseError::Missing("repo.name"))?,
        org_id: raw.org.as_ref().and_then(|o| o.id.as_ref()).and_then(Id::get),
        org_login: raw.org.and_then(|o| o.login),
        at_s,
        action: p.action,
        issue_id: item.and_then(|i| i.id.as_ref()).and_then(Id::get),
        number: p.number.as_ref().or(item.and_then(|i| i.number.as_ref())).and_then(Id::get).and_then(|n| u32::try_from(n).ok()),
        snyk: item.and_then(|i| i.title.as_deref()).is_some_and(|t| t.get(..6).is_some_and(|h| h.eq_ignore_ascii_case("[snyk]"))),
        comment_id: p.comment.as_ref().and_then(|c| c.id.as_ref()).and_then(Id::get),
        pull_merged: p.pull_request.as_ref().and_then(|pr| pr.merged).unwrap_or(false),
        issue_author_id: author.and_then(|a| a.id.as_ref()).and_then(Id::get),
        issue_author_login: author.and_then(|a| a.login.clone()),
        push_id: p.push_id.and_then(|i| i.get()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn a_merged_pull_request_names_its_author_and_unknown_fields_pass() {
        let line = br#"{"id":"7","type":"PullRequestEvent","actor":{"id":1,"login":"maintainer"},"repo":{"id":9,"name":"o/r"},
            "payload":{"action":"closed","number":3,"pull_request":{"id":44,"merged":true,"user":{"id":2,"login":"author"}},"new_field":[1]},
            "public":true,"created_at":"2021-07-21T06:00:00Z","org":{"id":5,"login":"o"}}"#;
        let e = parse(line).unwrap();
        assert_eq!(
            (e.kind, e.issue_id, e.pull_merged, e.issue_author_login.as_deref()),
            (Kind::PullRequest, Some(44), true, Some("author"))
        );
        assert_eq!((e.org_id, e.at_s), (Some(5), 1_626_847_200));
    }

    #[test]
    fn a_line_without_an_actor_or_time_is_an_error_naming_it() {
        assert_eq!(
            parse(br#"{"id":"1","type":"WatchEvent","repo":{"id":1,"name":"a/b"},"created_at":"2021-07-21T06:00:00Z"}"#),
            Err(ParseError::Missing("actor"))
        );
        let late = br#"{"id":"1","type":"WatchEvent","actor":{"id":1,"login":"a"},"repo":{"id":1,"name":"a/b"},"created_at":"yesterday"}"#;
        assert_eq!(parse(late), Err(ParseError::Missing("created_at")));
        assert!(matches!(parse(b"{not json"), Err(ParseError::Json(_))));
    }
}
