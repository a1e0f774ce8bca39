//! A filing's lifecycle, as a pure function of its record, an action and the time:
//!
//! ```text
//!   draft ──submit──▶ submitted ──file(number)──▶ filed ──change──▶ changed
//!     ▲                   │                          ▲                 │
//!     └──────return───────┘                          └──file(number)── submitted ◀─submit─┘
//!   any state but cancelled ──cancel──▶ cancelled
//! ```
//!
//! The rules set three deadlines, each of working days (see [`crate::calendar`]):
//! - file within 10 working days of the service starting (互联网信息服务算法推荐管理规定 Art. 24);
//! - file a change within 10 working days of it (Art. 25);
//! - cancel within 20 working days of the service ending (Art. 25).
//!
//! [`due`] says which one binds a record now; a filing past it is overdue and raises an alert.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::GovernError;
use crate::calendar::{Calendar, end_of_day_ms};
use crate::filings::{Attachment, Content, MAX_ATTACHMENTS, check_text};

pub const FILE_WITHIN_WORKDAYS: u32 = 10;
pub const CHANGE_WITHIN_WORKDAYS: u32 = 10;
pub const CANCEL_WITHIN_WORKDAYS: u32 = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Draft,
    Submitted,
    Filed,
    /// Filed, with a change not yet filed: the filing still stands.
    Changed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Submitted => "submitted",
            State::Filed => "filed",
            State::Changed => "changed",
            State::Cancelled => "cancelled",
        }
    }

    /// Whether its content and attachments may change: a draft, or a change being prepared.
    pub fn editable(self) -> bool {
        matches!(self, State::Draft | State::Changed)
    }

    /// Whether a filing in this state stands (`was_filed`: it was filed before): a change in
    /// progress, or sent to the CAC, leaves the filed version standing.
    pub fn in_force(self, was_filed: bool) -> bool {
        matches!(self, State::Filed | State::Changed) || (self == State::Submitted && was_filed)
    }
}

/// A filing as stored: its content, its state and what the lifecycle recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filing {
    pub id: String,
    /// The tenant the filing is for; none for the operator's own services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub state: State,
    pub content: Content,
    pub attachments: Vec<Attachment>,
    /// Given by the CAC when filed (网信算备…); kept through changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filing_number: Option<String>,
    /// When the filing stood last: a change still filed under it, a return goes back to `changed`.
    #[serde(default)]
    pub was_filed: bool,
    /// The model versions as the CAC filed them: a change's new models count only once the
    /// change is filed too.
    #[serde(default)]
    pub filed_models: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_on: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ended_on: Option<Date>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Counts the changes; a change names the revision it was made on.
    pub rev: u64,
    /// The transparency-log entry of the latest change.
    pub log_index: u64,
}

/// What an operator does to a filing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Replaces the content of a draft or of a change in progress.
    Update { content: Content },
    /// Adds an attachment (already stored) to a draft or a change in progress; one of each name.
    Attach { attachment: Attachment },
    /// Removes the attachment with this digest.
    Detach { sha256: String },
    /// Sends a complete draft or change to the CAC.
    Submit,
    /// The CAC sent a submission back.
    Return { reason: String },
    /// The CAC filed it, with its number.
    File { filing_number: String },
    /// The filed facts changed on `changed_on`, with the new content if given.
    Change {
        changed_on: Date,
        #[serde(default)]
        content: Option<Content>,
    },
    /// The service ended on `ended_on`; the filing must be cancelled within 20 working days.
    EndService { ended_on: Date },
    /// Cancels (注销) the filing, or withdraws a draft.
    Cancel { reason: String },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Update { .. } => "update",
            Action::Attach { .. } => "attach",
            Action::Detach { .. } => "detach",
            Action::Submit => "submit",
            Action::Return { .. } => "return",
            Action::File { .. } => "file",
            Action::Change { .. } => "change",
            Action::EndService { .. } => "end_service",
            Action::Cancel { .. } => "cancel",
        }
    }
}

fn not_now(f: &Filing, a: &Action) -> GovernError {
    GovernError::Conflict(format!("a {} filing cannot take `{}`", f.state.as_str(), a.name()))
}

fn reason_ok(reason: &str) -> Result<(), GovernError> {
    let n = reason.trim().chars().count();
    if n == 0 || n > crate::states::MAX_REASON_CHARS || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(GovernError::Invalid { field: "reason", reason: "say why, in 1 to 1000 characters".into() });
    }
    Ok(())
}

/// Applies `action` to `f` at `now_ms`: the record after it, or why it cannot be taken.
pub fn apply(f: &Filing, action: &Action, now_ms: i64) -> Result<Filing, GovernError> {
    use State::*;
    let mut next = f.clone();
    let editable = f.state.editable();
    match action {
        Action::Update { content } if editable => {
            content.check()?;
            next.content = content.clone();
        }
        Action::Attach { attachment } if editable => {
            check_text("attachment.name", &attachment.name)?;
            next.attachments.retain(|a| !(a.kind == attachment.kind && a.name == attachment.name));
            if next.attachments.len() >= MAX_ATTACHMENTS {
                return Err(GovernError::Invalid { field: "attachments", reason: format!("at most {MAX_ATTACHMENTS}") });
            }
            next.attachments.push(attachment.clone());
        }
        Action::Detach { sha256 } if editable => {
            next.attachments.retain(|a| &a.sha256 != sha256);
            if next.attachments.len() == f.attachments.len() {
                return Err(GovernError::NotFound { what: "attachment", id: sha256.clone() });
            }
        }
        Action::Submit if editable => {
            f.content.complete(&f.attachments)?;
            next.state = Submitted;
        }
        Action::Return { reason } if f.state == Submitted => {
            reason_ok(reason)?;
            next.state = if f.was_filed { Changed } else { Draft };
        }
        Action::File { filing_number } if f.state == Submitted => {
            let n = filing_number.trim();
            if n.is_empty() {
                return Err(GovernError::Invalid { field: "filing_number", reason: "the number the CAC gave".into() });
            }
            check_text("filing_number", n)?;
            next.state = Filed;
            next.filing_number = Some(n.to_string());
            next.was_filed = true;
            next.filed_models = f.content.models.clone();
            next.changed_on = None;
        }
        Action::Change { changed_on, content } if f.state == Filed => {
            if let Some(c) = content {
                c.check()?;
                next.content = c.clone();
            }
            next.state = Changed;
            next.changed_on = Some(*changed_on);
        }
        Action::EndService { ended_on } if f.state != Cancelled && f.service_ended_on.is_none() => {
            next.service_ended_on = Some(*ended_on);
        }
        Action::Cancel { reason } if f.state != Cancelled => {
            reason_ok(reason)?;
            next.state = Cancelled;
            next.filed_models.clear();
        }
        _ => return Err(not_now(f, action)),
    }
    next.updated_ms = now_ms;
    next.rev = f.rev + 1;
    Ok(next)
}

/// A deadline that binds a filing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Due {
    /// `file`, `file_change` or `cancel`.
    pub what: &'static str,
    /// The last day (China's date) to do it.
    pub on: Date,
    /// Whether the calendar knows that year's holidays; if not, only weekends were skipped.
    pub calendar_known: bool,
    pub overdue: bool,
}

/// The deadline binding `f` at `now_ms`, if any: cancelling an ended service first, then filing
/// a change in progress, then filing a service that started.
pub fn due(f: &Filing, cal: &Calendar, now_ms: i64) -> Option<Due> {
    let (what, from, n) = match (f.state, f.service_ended_on, f.changed_on, f.content.service_started_on) {
        (State::Cancelled, ..) => return None,
        (_, Some(ended), ..) => ("cancel", ended, CANCEL_WITHIN_WORKDAYS),
        (State::Changed, _, Some(changed), _) => ("file_change", changed, CHANGE_WITHIN_WORKDAYS),
        (State::Draft, _, _, Some(started)) => ("file", started, FILE_WITHIN_WORKDAYS),
        _ => return None,
    };
    let on = cal.add_workdays(from, n);
    Some(Due { what, on, calendar_known: cal.knows(on), overdue: now_ms >= end_of_day_ms(on) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;
    use crate::calendar::china_date;
    use crate::filings::tests::{all_attachments, complete_service};

    fn draft() -> Filing {
        Filing {
            id: "fil_1".into(),
            tenant: None,
            state: State::Draft,
            content: complete_service(),
            attachments: Vec::new(),
            filing_number: None,
            was_filed: false,
            filed_models: Vec::new(),
            changed_on: None,
            service_ended_on: None,
            created_ms: 0,
            updated_ms: 0,
            rev: 1,
            log_index: 0,
        }
    }

    fn run(mut f: Filing, actions: &[Action]) -> Result<Filing, GovernError> {
        for a in actions {
            f = apply(&f, a, 1)?;
        }
        Ok(f)
    }

    fn attach_all() -> Vec<Action> {
        all_attachments().into_iter().map(|attachment| Action::Attach { attachment }).collect()
    }

    fn date(s: &str) -> Date {
        Date::parse(s, &time::format_description::well_known::Iso8601::DATE).unwrap()
    }

    #[test]
    fn the_whole_lifecycle_in_order() {
        let mut actions = attach_all();
        actions.push(Action::Submit);
        actions.push(Action::File { filing_number: "Beijing-Example-202612010001".into() });
        let f = run(draft(), &actions).unwrap();
        assert_eq!((f.state, f.rev), (State::Filed, 7));
        assert!(f.state.in_force(f.was_filed));
        assert_eq!(f.filed_models, ["chat@1"]);
        let changed = run(f, &[Action::Change { changed_on: date("2026-12-02"), content: None }]).unwrap();
        assert_eq!(changed.state, State::Changed);
        assert!(changed.state.in_force(changed.was_filed), "the filing stands while its change is filed");
        let sent = run(changed.clone(), &[Action::Submit]).unwrap();
        assert!(sent.state.in_force(sent.was_filed), "a change sent to the CAC leaves the filed version standing");
        let returned = run(changed, &[Action::Submit, Action::Return { reason: "资料不全".into() }]).unwrap();
        assert_eq!(returned.state, State::Changed, "a returned change goes back to changed, still filed");
        let cancelled = run(returned, &[Action::Cancel { reason: "service ended".into() }]).unwrap();
        assert_eq!(cancelled.state, State::Cancelled);
        assert!(!cancelled.state.in_force(cancelled.was_filed) && cancelled.filed_models.is_empty());
        assert!(matches!(apply(&cancelled, &Action::Submit, 2), Err(GovernError::Conflict(_))));
    }

    #[test]
    fn actions_out_of_turn_are_conflicts_and_incomplete_submissions_name_the_field() {
        assert!(matches!(apply(&draft(), &Action::File { filing_number: "x".into() }, 1), Err(GovernError::Conflict(_))));
        assert!(matches!(apply(&draft(), &Action::Submit, 1), Err(GovernError::Invalid { field: "attachments", .. })));
        let submitted = run(draft(), &[attach_all(), vec![Action::Submit]].concat()).unwrap();
        let update = Action::Update { content: complete_service() };
        assert!(matches!(apply(&submitted, &update, 1), Err(GovernError::Conflict(_))), "a submission is frozen");
        let blank = Action::File { filing_number: " ".into() };
        assert!(matches!(apply(&submitted, &blank, 1), Err(GovernError::Invalid { field: "filing_number", .. })));
        let back = apply(&submitted, &Action::Return { reason: "x".into() }, 1).unwrap();
        assert_eq!(back.state, State::Draft);
    }

    #[test]
    fn deadlines_follow_the_rules_in_working_days() {
        let cal = Calendar::builtin().unwrap();
        // A service started on Wednesday 2 December 2026 must be filed by Wednesday 16 December.
        let mut f = draft();
        f.content.service_started_on = Some(date("2026-12-02"));
        let on_time = end_of_day_ms(date("2026-12-16")) - 1;
        let d = due(&f, &cal, on_time).unwrap();
        assert_eq!((d.what, d.on, d.overdue, d.calendar_known), ("file", date("2026-12-16"), false, true));
        assert_eq!(china_date(on_time), date("2026-12-16"));
        assert!(due(&f, &cal, on_time + 1).unwrap().overdue, "overdue from midnight in China");
        // Submitted: the clock is the CAC's now.
        let submitted = run(f, &[attach_all(), vec![Action::Submit]].concat()).unwrap();
        assert_eq!(due(&submitted, &cal, on_time + 1), None);
        // A change on Thursday 24 September 2026 is due on 15 October (the holidays skipped).
        let filed = run(submitted, &[Action::File { filing_number: "n".into() }]).unwrap();
        let changed = run(filed, &[Action::Change { changed_on: date("2026-09-24"), content: None }]).unwrap();
        assert_eq!(due(&changed, &cal, 0).unwrap().on, date("2026-10-15"));
        // An ended service: 20 working days to cancel, whatever else is pending.
        let ended = run(changed, &[Action::EndService { ended_on: date("2026-12-02") }]).unwrap();
        let d = due(&ended, &cal, 0).unwrap();
        assert_eq!((d.what, d.on), ("cancel", date("2026-12-30")));
        let done = run(ended, &[Action::Cancel { reason: "ended".into() }]).unwrap();
        assert_eq!(due(&done, &cal, i64::MAX / 2), None);
    }
}
