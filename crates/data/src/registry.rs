//! Data registration (数据登记): who holds which of the three rights the Data Twenty Articles
//! separate over a dataset version, and the procedure that makes it a registration.
//!
//! - The rights: holding of the data resource (持有权), processing and use (加工使用权), and
//!   operation of data products (经营权), each with its holder, scope and term.
//! - An application also states the source's authorisation, the classification and grade
//!   (分类分级), and the licence chain (each upstream source's licence).
//! - Kinds: first, change, correction, transfer, cancellation. Every kind but the first names
//!   the registration it follows by its code.
//! - The procedure: application → formal review → public notice, during which anyone may object
//!   → registration, with a code. An upheld objection or a failed review rejects it.
//!
//! This module is the pure part: the shapes, their checks and the state machine, with the time
//! given. The service stores each registration and writes every step to the transparency log.

use serde::{Deserialize, Serialize};

use crate::exchange::{DataError, invalid};

pub const MAX_RIGHTS: usize = 16;
pub const MAX_LICENCE_CHAIN: usize = 64;
pub const MAX_TEXT_CHARS: usize = 500;
pub const MAX_OBJECTIONS: usize = 100;
/// How long a public notice runs unless the operator configures otherwise: ten days.
pub const DEFAULT_NOTICE_MS: i64 = 10 * 86_400_000;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    /// 数据资源持有权.
    Holding,
    /// 数据加工使用权.
    Processing,
    /// 数据产品经营权.
    Operation,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RightGrant {
    pub right: Right,
    /// Who holds it: a tenant of the platform or another party, by name.
    pub holder: String,
    /// What it covers (which uses, which parts of the data).
    pub scope: String,
    /// Its term, as dates (YYYY-MM-DD); no end date means until cancelled.
    pub from: String,
    #[serde(default)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    First,
    Change,
    Correction,
    Transfer,
    Cancellation,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Collected by the applicant itself.
    SelfCollected,
    /// Under a licence from its source.
    Licensed,
    /// Public data, under the rules for its opening.
    Public,
    /// Personal information with its subjects' consent.
    Consent,
    /// Under a contract with its source.
    Contract,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    pub basis: Basis,
    pub description: String,
    /// The SHA-256 of a file the applicant uploaded as evidence (a licence, a contract).
    #[serde(default)]
    pub evidence_sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Public,
    Enterprise,
    Personal,
}

/// The grade of the Data Security Law: general, important (重要数据) or core (核心数据).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    General,
    Important,
    Core,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Classification {
    pub category: Category,
    pub grade: Grade,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LicenceLink {
    pub source: String,
    pub licence: String,
}

/// An application.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistrationIn {
    pub kind: Kind,
    pub dataset: String,
    pub version: String,
    pub rights: Vec<RightGrant>,
    pub authorization: Authorization,
    pub classification: Classification,
    pub licence_chain: Vec<LicenceLink>,
    /// The code of the registration this one changes, corrects, transfers or cancels.
    #[serde(default)]
    pub previous: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applied, awaiting formal review.
    Applied,
    /// Passed review; on public notice until `notice_until_ms`.
    Notice,
    Registered,
    Rejected,
    /// Registered, then followed by a change, correction or transfer.
    Superseded,
    /// Registered, then cancelled.
    Cancelled,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Objection {
    pub id: String,
    /// The tenant that objected.
    pub by: String,
    pub reason: String,
    pub at_ms: i64,
    /// `upheld` or `dismissed`, once the operator has decided.
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub action: String,
    pub actor_role: String,
    pub reason: Option<String>,
    pub at_ms: i64,
    /// The transparency log's entry for this step.
    pub log_index: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Registration {
    pub object: String,
    pub id: String,
    pub tenant: String,
    pub rev: i64,
    pub application: RegistrationIn,
    pub state: State,
    pub code: Option<String>,
    pub notice_until_ms: Option<i64>,
    pub objections: Vec<Objection>,
    pub steps: Vec<Step>,
    pub created_ms: i64,
}

/// What an operator does to a registration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Formal review passed: the public notice starts.
    Pass { reason: String },
    /// Formal review failed.
    Reject { reason: String },
    /// An objection is founded: the registration is rejected.
    Uphold { objection: String, reason: String },
    /// An objection is unfounded: the notice goes on.
    Dismiss { objection: String, reason: String },
    /// The notice is over with no objection pending: the registration is made, with a code.
    Finalize,
}

fn text(field: &str, s: &str) -> Result<(), DataError> {
    if s.trim().is_empty() || s.chars().count() > MAX_TEXT_CHARS || s.chars().any(char::is_control) {
        return Err(invalid(field, format!("1 to {MAX_TEXT_CHARS} characters without control characters")));
    }
    Ok(())
}

fn date(field: &str, s: &str) -> Result<time::Date, DataError> {
    let bad = || invalid(field, format!("{s:?} is not a date (YYYY-MM-DD)"));
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d): (i32, u8, u8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    let month = time::Month::try_from(m).map_err(|_| bad())?;
    time::Date::from_calendar_date(y, month, d).map_err(|_| bad())
}

impl RegistrationIn {
    /// Checks the application on its own, naming the first bad field.
    pub fn check(&self) -> Result<(), DataError> {
        if self.rights.is_empty() || self.rights.len() > MAX_RIGHTS {
            return Err(invalid("rights", format!("1 to {MAX_RIGHTS} rights")));
        }
        for (i, r) in self.rights.iter().enumerate() {
            text(&format!("rights[{i}].holder"), &r.holder)?;
            text(&format!("rights[{i}].scope"), &r.scope)?;
            let from = date(&format!("rights[{i}].from"), &r.from)?;
            if let Some(until) = &r.until
                && date(&format!("rights[{i}].until"), until)? < from
            {
                return Err(invalid(format!("rights[{i}].until"), "ends before it starts"));
            }
        }
        text("authorization.description", &self.authorization.description)?;
        if let Some(sha) = &self.authorization.evidence_sha256
            && !crate::exchange::is_sha256(sha)
        {
            return Err(invalid("authorization.evidence_sha256", "64 lower-case hex digits"));
        }
        if self.licence_chain.is_empty() || self.licence_chain.len() > MAX_LICENCE_CHAIN {
            return Err(invalid("licence_chain", format!("1 to {MAX_LICENCE_CHAIN} links: each upstream source with its licence")));
        }
        for (i, l) in self.licence_chain.iter().enumerate() {
            text(&format!("licence_chain[{i}].source"), &l.source)?;
            text(&format!("licence_chain[{i}].licence"), &l.licence)?;
        }
        if self.classification.category == Category::Personal && self.authorization.basis != Basis::Consent {
            return Err(invalid("authorization.basis", "personal information is registered on its subjects' consent"));
        }
        match (self.kind, &self.previous) {
            (Kind::First, Some(_)) => Err(invalid("previous", "a first registration follows none")),
            (Kind::First, None) => Ok(()),
            (_, None) => Err(invalid("previous", "the code of the registration this one follows")),
            (_, Some(code)) => text("previous", code),
        }
    }
}

impl Registration {
    /// Applies an operator's action at `now_ms`; the step to log, or why it cannot be taken.
    pub fn act(&mut self, action: &Action, now_ms: i64, notice_ms: i64) -> Result<(&'static str, Option<String>), DataError> {
        let conflict = |what: &str| DataError::Conflict(format!("registration {} is {:?}; {what}", self.id, self.state));
        match action {
            Action::Pass { reason } | Action::Reject { reason } => {
                text("reason", reason)?;
                if self.state != State::Applied {
                    return Err(conflict("only an application is reviewed"));
                }
                if matches!(action, Action::Pass { .. }) {
                    self.state = State::Notice;
                    self.notice_until_ms = Some(now_ms.saturating_add(notice_ms));
                    Ok(("registration.review_passed", Some(reason.clone())))
                } else {
                    self.state = State::Rejected;
                    Ok(("registration.rejected", Some(reason.clone())))
                }
            }
            Action::Uphold { objection, reason } | Action::Dismiss { objection, reason } => {
                text("reason", reason)?;
                if self.state != State::Notice {
                    return Err(conflict("objections are decided during the notice"));
                }
                let upheld = matches!(action, Action::Uphold { .. });
                let o = self
                    .objections
                    .iter_mut()
                    .find(|o| o.id == *objection && o.resolution.is_none())
                    .ok_or_else(|| invalid("objection", format!("{objection:?} is no pending objection")))?;
                o.resolution = Some(if upheld { "upheld" } else { "dismissed" }.into());
                if upheld {
                    self.state = State::Rejected;
                    return Ok(("registration.objection_upheld", Some(reason.clone())));
                }
                Ok(("registration.objection_dismissed", Some(reason.clone())))
            }
            Action::Finalize => {
                if self.state != State::Notice {
                    return Err(conflict("only a registration on notice is made"));
                }
                if self.notice_until_ms.is_some_and(|u| now_ms < u) {
                    return Err(DataError::Conflict(format!("the public notice runs until {} ms", self.notice_until_ms.unwrap_or(0))));
                }
                if self.objections.iter().any(|o| o.resolution.is_none()) {
                    return Err(DataError::Conflict("an objection is pending; decide it first".into()));
                }
                self.state = State::Registered;
                Ok(("registration.registered", None))
            }
        }
    }

    /// Records an objection during the notice.
    pub fn object(&mut self, id: String, by: &str, reason: &str, now_ms: i64) -> Result<(), DataError> {
        text("reason", reason)?;
        if self.state != State::Notice || self.notice_until_ms.is_some_and(|u| now_ms >= u) {
            return Err(DataError::Conflict(format!("registration {} is not on public notice", self.id)));
        }
        if self.objections.len() >= MAX_OBJECTIONS {
            return Err(DataError::Limit(format!("a registration takes at most {MAX_OBJECTIONS} objections")));
        }
        self.objections.push(Objection { id, by: by.to_string(), reason: reason.to_string(), at_ms: now_ms, resolution: None });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn application() -> RegistrationIn {
        serde_json::from_value(serde_json::json!({
            "kind": "first", "dataset": "loans", "version": "1.0.0",
            "rights": [{"right": "holding", "holder": "alpha", "scope": "全部数据", "from": "2026-01-01"}],
            "authorization": {"basis": "self_collected", "description": "自有业务数据"},
            "classification": {"category": "enterprise", "grade": "general"},
            "licence_chain": [{"source": "alpha 自有", "licence": "proprietary"}]
        }))
        .unwrap()
    }

    fn registration() -> Registration {
        Registration {
            object: "data.registration".into(),
            id: "reg_1".into(),
            tenant: "alpha".into(),
            rev: 1,
            application: application(),
            state: State::Applied,
            code: None,
            notice_until_ms: None,
            objections: vec![],
            steps: vec![],
            created_ms: 0,
        }
    }

    #[test]
    fn applications_are_checked_naming_the_field() {
        application().check().unwrap();
        let field = |f: fn(&mut RegistrationIn)| {
            let mut a = application();
            f(&mut a);
            match a.check().unwrap_err() {
                DataError::Invalid { field, .. } => field,
                e => panic!("{e}"),
            }
        };
        assert_eq!(field(|a| a.rights.clear()), "rights");
        assert_eq!(field(|a| a.rights[0].from = "2026-13-01".into()), "rights[0].from");
        assert_eq!(field(|a| a.rights[0].until = Some("2025-01-01".into())), "rights[0].until");
        assert_eq!(field(|a| a.licence_chain.clear()), "licence_chain");
        assert_eq!(field(|a| a.kind = Kind::Transfer), "previous");
        assert_eq!(field(|a| a.classification.category = Category::Personal), "authorization.basis");
    }

    #[test]
    fn the_procedure_runs_review_then_notice_then_registration() {
        let mut r = registration();
        assert!(r.act(&Action::Finalize, 0, 100).is_err(), "not before review");
        r.act(&Action::Pass { reason: "材料齐全".into() }, 0, 100).unwrap();
        assert_eq!((r.state, r.notice_until_ms), (State::Notice, Some(100)));
        r.object("obj_1".into(), "beta", "我方持有该数据", 10).unwrap();
        assert!(matches!(r.act(&Action::Finalize, 200, 100), Err(DataError::Conflict(_))), "an objection is pending");
        r.act(&Action::Dismiss { objection: "obj_1".into(), reason: "证据不足".into() }, 20, 100).unwrap();
        assert!(matches!(r.act(&Action::Finalize, 99, 100), Err(DataError::Conflict(_))), "the notice runs");
        assert!(r.object("obj_2".into(), "beta", "again", 100).is_err(), "the notice is over");
        assert_eq!(r.act(&Action::Finalize, 100, 100).unwrap().0, "registration.registered");
        assert_eq!(r.state, State::Registered);
    }

    #[test]
    fn an_upheld_objection_or_a_failed_review_rejects() {
        let mut r = registration();
        r.act(&Action::Reject { reason: "缺少授权证明".into() }, 0, 100).unwrap();
        assert_eq!(r.state, State::Rejected);
        let mut r = registration();
        r.act(&Action::Pass { reason: "ok".into() }, 0, 100).unwrap();
        r.object("obj_1".into(), "beta", "我方持有该数据", 1).unwrap();
        r.act(&Action::Uphold { objection: "obj_1".into(), reason: "异议成立".into() }, 2, 100).unwrap();
        assert_eq!(r.state, State::Rejected);
        assert!(r.act(&Action::Finalize, 200, 100).is_err());
    }
}
