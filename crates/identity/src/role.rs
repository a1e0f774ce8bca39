//! Roles say what kind of principal someone is; scopes narrow what one credential may do.
//!
//! A role is fixed by who the principal is (an operator of the platform, or an admin or member
//! of one tenant). Scopes belong to a credential: an API key made for inference only cannot
//! submit jobs even if its principal could. A console session carries every scope its role
//! allows.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the platform: may read and change everything, for any tenant.
    OperatorAdmin,
    /// Watches the platform: may read everything, change nothing.
    OperatorViewer,
    /// Runs one tenant: its keys, jobs, usage and settings as far as operators allow.
    TenantAdmin,
    /// Uses one tenant's models and jobs.
    TenantMember,
}

impl Role {
    pub fn is_operator(self) -> bool {
        matches!(self, Role::OperatorAdmin | Role::OperatorViewer)
    }

    /// Whether this role may change things (as opposed to only reading them).
    pub fn may_write(self) -> bool {
        !matches!(self, Role::OperatorViewer)
    }

    /// The scopes a principal of this role may hold at most.
    pub fn allowed_scopes(self) -> Scopes {
        match self {
            Role::OperatorAdmin | Role::OperatorViewer | Role::TenantAdmin => Scopes::ALL,
            Role::TenantMember => Scopes::ALL.without(Scope::Admin),
        }
    }

    /// The highest job priority this role may ask for (priorities run -100..=100, higher first):
    /// tenants' callers cannot put their jobs ahead of every queue.
    pub fn max_job_priority(self) -> i32 {
        match self {
            Role::OperatorAdmin | Role::OperatorViewer => 100,
            Role::TenantAdmin => 50,
            Role::TenantMember => 10,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::OperatorAdmin => "operator-admin",
            Role::OperatorViewer => "operator-viewer",
            Role::TenantAdmin => "tenant-admin",
            Role::TenantMember => "tenant-member",
        }
    }
}

/// What a credential may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The OpenAI-compatible API under `/v1`.
    Inference,
    /// Submitting, reading and cancelling jobs; reading the network they run on.
    Jobs,
    /// Reading the usage ledger.
    Usage,
    /// Managing the tenant itself: its keys and the view of its settings.
    Admin,
    /// The data exchange: datasets, their files and versions.
    Data,
}

impl Scope {
    pub const EVERY: [Scope; 5] = [Scope::Inference, Scope::Jobs, Scope::Usage, Scope::Admin, Scope::Data];

    fn bit(self) -> u8 {
        match self {
            Scope::Inference => 1,
            Scope::Jobs => 2,
            Scope::Usage => 4,
            Scope::Admin => 8,
            Scope::Data => 16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Inference => "inference",
            Scope::Jobs => "jobs",
            Scope::Usage => "usage",
            Scope::Admin => "admin",
            Scope::Data => "data",
        }
    }
}

/// A set of scopes, stored and sent as a list of names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);
    pub const ALL: Scopes = Scopes(31);

    pub fn of(scopes: &[Scope]) -> Self {
        Scopes(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn union(self, other: Scopes) -> Self {
        Scopes(self.0 | other.0)
    }

    pub fn without(self, s: Scope) -> Self {
        Scopes(self.0 & !s.bit())
    }

    /// Whether every scope of `self` is also in `other`.
    pub fn is_subset(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::EVERY.into_iter().filter(move |s| self.contains(*s))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<Scope> = Vec::deserialize(d)?;
        Ok(Scopes::of(&v))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn scopes_round_trip_as_names_and_members_never_hold_admin() {
        let s = Scopes::of(&[Scope::Jobs, Scope::Inference]);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"["inference","jobs"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(r#"["jobs","inference"]"#).unwrap(), s);
        assert!(serde_json::from_str::<Scopes>(r#"["root"]"#).is_err());
        assert!(s.is_subset(Scopes::ALL) && !Scopes::ALL.is_subset(s));
        assert!(!Role::TenantMember.allowed_scopes().contains(Scope::Admin));
        assert!(Role::TenantAdmin.allowed_scopes().contains(Scope::Admin));
        assert_eq!(serde_json::to_string(&Role::OperatorViewer).unwrap(), r#""operator-viewer""#);
    }
}
