//! One GH Archive event (a line of `YYYY-MM-DD-H.json.gz`), kept to what the measures need.
//!
//! Parsing is tolerant: unknown fields are ignored, and so is every payload field a measure does
//! not read, so GitHub's format changes (PushEvents carry no commits since October 2025) pass
//! through. A line that is not an event (not JSON, or without a type, actor, repo or time) is an
//! error naming what is missing, which the ingest counts and skips.

use std::borrow::Cow;

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

/// An event, reduced. Strings borrow from the line where they can (no escapes in them).
#[derive(Clone, Debug, PartialEq)]
pub struct Event<'a> {
    pub id: u64,
    /// GH Archive's type name, as written (`IssuesEvent`, …).
    pub type_name: Cow<'a, str>,
    pub kind: Kind,
    pub actor_id: u64,
    pub actor_login: Cow<'a, str>,
    pub repo_id: u64,
    pub repo_name: Cow<'a, str>,
    pub org_id: Option<u64>,
    pub org_login: Option<Cow<'a, str>>,
    /// Seconds since the epoch (UTC).
    pub at_s: i64,
    /// `opened`, `closed`, `created`, … where the payload has one.
    pub action: Option<Cow<'a, str>>,
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
    pub issue_author_login: Option<Cow<'a, str>>,
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
struct Raw<'a> {
    #[serde(default, deserialize_with = "id")]
    id: Option<u64>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    actor: Option<Account<'a>>,
    #[serde(borrow)]
    repo: Option<Repo<'a>>,
    #[serde(borrow)]
    org: Option<Account<'a>>,
    #[serde(borrow)]
    created_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    payload: Payload<'a>,
}

/// GH Archive writes ids as numbers, and event ids as strings; anything else reads as no id.
fn id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an id")
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.parse().ok())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_option(V)
}

#[derive(Deserialize)]
struct Account<'a> {
    #[serde(default, deserialize_with = "id")]
    id: Option<u64>,
    #[serde(borrow)]
    login: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Repo<'a> {
    #[serde(default, deserialize_with = "id")]
    id: Option<u64>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct Payload<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    issue: Option<Item<'a>>,
    #[serde(borrow)]
    pull_request: Option<Item<'a>>,
    #[serde(borrow)]
    comment: Option<Item<'a>>,
    #[serde(default, deserialize_with = "id")]
    push_id: Option<u64>,
    #[serde(default, deserialize_with = "id")]
    number: Option<u64>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(default, deserialize_with = "id")]
    id: Option<u64>,
    merged: Option<bool>,
    #[serde(borrow)]
    user: Option<Account<'a>>,
    #[serde(default, deserialize_with = "id")]
    number: Option<u64>,
    #[serde(borrow)]
    title: Option<Cow<'a, str>>,
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of GH Archive's usual `YYYY-MM-DDTHH:MM:SSZ`, read directly (it is
/// most of the parse time otherwise); any other RFC 3339 form goes through the full parser.
fn timestamp(at: &str) -> Option<i64> {
    let b = at.as_bytes();
    let fixed = b.len() == 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'Z';
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        at.get(r)?.bytes().try_fold(0i64, |a, c| c.is_ascii_digit().then(|| a * 10 + i64::from(c - b'0')))
    };
    if fixed {
        let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let days = match mo {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if (1..=12).contains(&mo) && (1..=days).contains(&d) && h < 24 && mi < 60 && s < 61 {
            return Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s);
        }
        return None;
    }
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// Reads one line of GH Archive.
pub fn parse(line: &[u8]) -> Result<Event<'_>, ParseError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ParseError::TooLong);
    }
    let raw: Raw = serde_json::from_slice(line).map_err(|e| ParseError::Json(e.to_string()))?;
    let type_name = raw.kind.ok_or(ParseError::Missing("type"))?;
    let actor = raw.actor.ok_or(ParseError::Missing("actor"))?;
    let repo = raw.repo.ok_or(ParseError::Missing("repo"))?;
    let at = raw.created_at.ok_or(ParseError::Missing("created_at"))?;
    let at_s = timestamp(&at).ok_or(ParseError::Missing("created_at"))?;
    let p = raw.payload;
    let kind = Kind::of(&type_name);
    // A pull request's events name it in `pull_request`; an issue's (and a comment on either) in `issue`.
    let (first, second) = if matches!(kind, Kind::PullRequest | Kind::PullRequestReviewComment | Kind::PullRequestReview) {
        (p.pull_request.as_ref(), p.issue.as_ref())
    } else {
        (p.issue.as_ref(), p.pull_request.as_ref())
    };
    let item = first.or(second);
    let author = item.and_then(|i| i.user.as_ref());
    Ok(Event {
        id: raw.id.ok_or(ParseError::Missing("id"))?,
        kind,
        actor_id: actor.id.ok_or(ParseError::Missing("actor.id"))?,
        actor_login: actor.login.ok_or(ParseError::Missing("actor.login"))?,
        repo_id: repo.id.ok_or(ParseError::Missing("repo.id"))?,
        repo_name: repo.name.ok_or(ParseError::Missing("repo.name"))?,
        org_id: raw.org.as_ref().and_then(|o| o.id),
        org_login: raw.org.and_then(|o| o.login),
        at_s,
        issue_id: item.and_then(|i| i.id),
        number: p.number.or(item.and_then(|i| i.number)).and_then(|n| u32::try_from(n).ok()),
        snyk: item.and_then(|i| i.title.as_deref()).is_some_and(|t| t.get(..6).is_some_and(|h| h.eq_ignore_ascii_case("[snyk]"))),
        comment_id: p.comment.as_ref().and_then(|c| c.id),
        pull_merged: p.pull_request.as_ref().and_then(|pr| pr.merged).unwrap_or(false),
        issue_author_id: author.and_then(|a| a.id),
        issue_author_login: author.and_then(|a| a.login.clone()),
        push_id: p.push_id,
        action: p.action,
        type_name,
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

#[cfg(test)]
mod time_tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use proptest::prelude::*;

    use super::timestamp;

    proptest! {
        #[test]
        fn the_fast_timestamp_agrees_with_the_full_parser(s in -2_000_000_000i64..8_000_000_000) {
            let t = time::OffsetDateTime::from_unix_timestamp(s).unwrap();
            let text = format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
            prop_assert_eq!(timestamp(&text), Some(s));
            prop_assert_eq!(timestamp(&format!("{}.5+00:00", &text[..19])), Some(s));
        }
    }

    #[test]
    fn impossible_times_are_refused() {
        for bad in [
            "2021-13-01T00:00:00Z",
            "2021-01-01T24:00:00Z",
            "2021-01-0xT00:00:00Z",
            "2021-02-31T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "yesterday",
        ] {
            assert_eq!(timestamp(bad), None, "{bad}");
        }
        assert_eq!(timestamp("2024-02-29T00:00:00Z"), Some(1_709_164_800));
    }
}
