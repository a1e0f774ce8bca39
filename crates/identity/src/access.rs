//! The permission a route declares, and the one function that decides it.
//!
//! Every route of the server names one [`Access`] in the permission table (`api::permissions`);
//! the gate in front of the router looks the route up, resolves the caller and calls
//! [`check`]. A route missing from the table does not answer. Object-level rules (a tenant sees
//! only its own jobs) are the handlers' part, and another tenant's object answers like a
//! missing one.

use crate::principal::{Kind, Principal};
use crate::role::{Role, Scope};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a credential (liveness, the login page and its assets).
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// Operators only; a `write` needs operator-admin.
    Operator { write: bool },
    /// A tenant's principal holding `scope` (with `admin`, also the tenant-admin role), acting
    /// on its own tenant; or an operator (a `write` needs operator-admin).
    Tenant { scope: Scope, write: bool, admin: bool },
    /// A tenant's principal holding `scope`; operators are refused, because the route acts as
    /// and meters one tenant (the OpenAI-compatible API).
    TenantOnly { scope: Scope },
    /// A console page: a logged-in browser session (of an operator, with `operator`).
    Console { operator: bool },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No credential, or one that is not valid: 401.
    #[error("authentication required: send `Authorization: Bearer <API key or operator token>`")]
    Unauthenticated,
    /// A valid credential that may not use this route: 403.
    #[error("{0}")]
    Forbidden(String),
}

/// Whether `who` may call a route that declares `access`.
pub fn check(access: Access, who: Option<&Principal>) -> Result<(), Denied> {
    let p = match (access, who) {
        (Access::Public, _) => return Ok(()),
        (_, None) => return Err(Denied::Unauthenticated),
        (_, Some(p)) => p,
    };
    let forbidden = |why: String| Err(Denied::Forbidden(why));
    match access {
        Access::Public | Access::Authenticated => Ok(()),
        Access::Operator { write } => {
            if !p.is_operator() {
                forbidden("only the platform's operators may use this route".into())
            } else if write && !p.role.may_write() {
                forbidden("operator-viewer may read but not change".into())
            } else {
                Ok(())
            }
        }
        Access::Tenant { scope, write, admin } => {
            if p.is_operator() {
                return if write && !p.role.may_write() { forbidden("operator-viewer may read but not change".into()) } else { Ok(()) };
            }
            if p.tenant.is_none() {
                forbidden("this credential belongs to no tenant".into())
            } else if !p.has(scope) {
                forbidden(format!("this credential lacks the `{}` scope", scope.as_str()))
            } else if admin && p.role != Role::TenantAdmin {
                forbidden("only a tenant-admin may use this route".into())
            } else {
                Ok(())
            }
        }
        Access::TenantOnly { scope } => {
            if p.tenant.is_none() {
                forbidden("use an API key of a tenant: this route acts as, and bills, one tenant".into())
            } else if !p.has(scope) {
                forbidden(format!("this credential lacks the `{}` scope", scope.as_str()))
            } else {
                Ok(())
            }
        }
        Access::Console { operator } => {
            if p.kind != Kind::Session {
                Err(Denied::Unauthenticated)
            } else if operator && !p.is_operator() {
                forbidden("only the platform's operators may open this page".into())
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::role::Scopes;

    fn p(kind: Kind, role: Role, tenant: Option<&str>, scopes: &[Scope]) -> Principal {
        Principal::new("x".into(), kind, role, tenant.map(Into::into), Scopes::of(scopes), Limits::default())
    }

    #[test]
    fn every_access_decides_by_role_scope_and_credential() {
        let admin = p(Kind::OperatorToken, Role::OperatorAdmin, None, &Scope::EVERY);
        let viewer = p(Kind::OperatorToken, Role::OperatorViewer, None, &Scope::EVERY);
        let member = p(Kind::ApiKey, Role::TenantMember, Some("a"), &[Scope::Inference, Scope::Jobs]);
        let tadmin = p(Kind::ApiKey, Role::TenantAdmin, Some("a"), &Scope::EVERY);
        let session = p(Kind::Session, Role::TenantAdmin, Some("a"), &Scope::EVERY);
        let orphan = p(Kind::ApiKey, Role::TenantAdmin, None, &Scope::EVERY);
        let read_jobs = Access::Tenant { scope: Scope::Jobs, write: false, admin: false };
        let keys = Access::Tenant { scope: Scope::Admin, write: true, admin: true };
        let v1 = Access::TenantOnly { scope: Scope::Inference };
        assert_eq!(check(Access::Public, None), Ok(()));
        assert_eq!(check(Access::Authenticated, None), Err(Denied::Unauthenticated));
        assert!(check(Access::Operator { write: true }, Some(&admin)).is_ok());
        assert!(check(Access::Operator { write: false }, Some(&viewer)).is_ok());
        assert!(check(Access::Operator { write: true }, Some(&viewer)).is_err());
        assert!(check(Access::Operator { write: false }, Some(&tadmin)).is_err());
        assert!(check(read_jobs, Some(&member)).is_ok());
        assert!(check(read_jobs, Some(&viewer)).is_ok());
        assert!(check(keys, Some(&member)).is_err(), "members never hold admin");
        assert!(check(keys, Some(&tadmin)).is_ok());
        assert!(check(keys, Some(&orphan)).is_err(), "a tenant's role without a tenant opens nothing");
        assert!(check(v1, Some(&orphan)).is_err());
        assert!(check(keys, Some(&viewer)).is_err());
        assert!(check(v1, Some(&member)).is_ok());
        assert!(check(v1, Some(&admin)).is_err(), "operators do not call /v1 as nobody");
        assert!(check(Access::Tenant { scope: Scope::Usage, write: false, admin: false }, Some(&member)).is_err());
        assert!(check(Access::Console { operator: false }, Some(&session)).is_ok());
        assert_eq!(check(Access::Console { operator: false }, Some(&tadmin)), Err(Denied::Unauthenticated));
        assert!(check(Access::Console { operator: true }, Some(&session)).is_err());
    }

    #[test]
    fn a_member_key_cannot_hold_admin_even_if_its_record_says_so() {
        let m = p(Kind::ApiKey, Role::TenantMember, Some("a"), &Scope::EVERY);
        assert!(!m.has(Scope::Admin));
        assert!(m.has(Scope::Jobs));
    }
}
