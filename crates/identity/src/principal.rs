//! A principal is whoever a request speaks for, resolved once per request from its credential.

use std::sync::Arc;

use crate::limits::Limits;
use crate::role::{Role, Scope, Scopes};

/// Which kind of credential proved who the principal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An API key (`ak_…`): a tenant's service account.
    ApiKey,
    /// An operator token (`aot_…`): the CLI and automation of the platform's operators.
    OperatorToken,
    /// A console login (a session cookie).
    Session,
    /// A pillar acting inside the process for a tenant (an evaluation run, a canary): no
    /// credential, since no request carried one.
    Internal,
}

/// The tenant a request acts for: a tenant principal's own, or the one an operator named
/// (checked to exist); `None` for an operator that named none. The gate resolves it once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActingFor(pub Option<String>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The key id, token id or console user name.
    pub id: String,
    pub kind: Kind,
    pub role: Role,
    /// The tenant a tenant principal belongs to; `None` for operators.
    pub tenant: Option<String>,
    pub scopes: Scopes,
    /// The key's own limits (API keys only; the tenant's apply as well).
    pub limits: Limits,
    /// The names of this principal's and its tenant's limit counters (`key:<id>`,
    /// `tenant:<t>`), made once when the credential is loaded so a request never formats them.
    pub key_scope: Arc<str>,
    pub tenant_scope: Arc<str>,
    /// A console session's CSRF token, which its forms and cookie-authenticated JSON writes
    /// must carry.
    pub csrf: Option<String>,
}

impl Principal {
    pub fn is_operator(&self) -> bool {
        self.role.is_operator()
    }

    /// The tenant of a tenant principal, or "" for an operator.
    pub fn tenant_id(&self) -> &str {
        self.tenant.as_deref().unwrap_or("")
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// Whether this principal may see objects of `tenant`: operators see every tenant's.
    pub fn may_see(&self, tenant: &str) -> bool {
        self.is_operator() || self.tenant.as_deref() == Some(tenant)
    }

    /// The tenant whose objects a listing is limited to: `None` for operators (all of them,
    /// or the one they name), the own tenant for everyone else whatever they name.
    pub fn list_scope(&self, named: Option<String>) -> Option<String> {
        if self.is_operator() { named } else { Some(self.tenant_id().to_string()) }
    }

    /// A principal that is not loaded from the store: an operator acting from inside the
    /// process (start-up tasks, tests).
    pub fn internal_operator() -> Self {
        Self::new("internal".into(), Kind::OperatorToken, Role::OperatorAdmin, None, Scopes::ALL, Limits::default())
    }

    /// A principal for work a pillar does inside the process under a tenant: a member with the
    /// given scopes, named `id` in the ledger (e.g. `eval:<run id>`).
    pub fn internal_tenant(id: String, tenant: String, scopes: &[Scope]) -> Self {
        Self::new(id, Kind::Internal, Role::TenantMember, Some(tenant), Scopes::of(scopes), Limits::default())
    }

    pub(crate) fn new(id: String, kind: Kind, role: Role, tenant: Option<String>, scopes: Scopes, limits: Limits) -> Self {
        let key_scope = Arc::from(format!("key:{id}"));
        let tenant_scope = Arc::from(format!("tenant:{}", tenant.as_deref().unwrap_or("")));
        Self { id, kind, role, tenant, scopes: scopes_for(role, scopes), limits, key_scope, tenant_scope, csrf: None }
    }
}

/// A credential never holds more than its role allows, whatever its record says.
fn scopes_for(role: Role, scopes: Scopes) -> Scopes {
    let allowed = role.allowed_scopes();
    let mut out = Scopes::NONE;
    for s in scopes.iter().filter(|s| allowed.contains(*s)) {
        out = Scopes::of(&[s]).union(out);
    }
    out
}
