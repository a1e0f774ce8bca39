//! The tenant registry's record and the one rule for tenant ids.

use serde::{Deserialize, Serialize};

/// A tenant id: 1-64 of a-z, 0-9, '-', '_' (the same rule for keys, settings, jobs and logins).
pub fn tenant_id_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The reason a tenant id is refused, for error messages.
pub const TENANT_ID_RULE: &str = "use 1-64 of a-z, 0-9, '-', '_'";

/// Longest display name of a tenant.
pub const MAX_NAME_CHARS: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Stored in its own column; migrated tenants have `{}` as their document.
    #[serde(default)]
    pub id: String,
    /// A display name; the id when none was given.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_ms: i64,
}
