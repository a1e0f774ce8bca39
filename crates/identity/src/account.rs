//! Console accounts and their sessions, as stored. The console owns logging in (passwords,
//! lockouts, forms); identity turns a live session into a [`Principal`](crate::Principal).

use serde::{Deserialize, Serialize};

/// What a console account is: an operator (sees everything) or one tenant's user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    Operator,
    Tenant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub role: AccountRole,
    /// The tenant a `tenant` account belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Argon2id, PHC string format.
    pub password: String,
    pub created_ms: i64,
}

/// A live session, stored under the SHA-256 of its id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionDoc {
    pub csrf: String,
    pub created_ms: i64,
}
