//! API keys: a random secret shown once, stored only as its SHA-256, scoped to a tenant.
//!
//! The gateway checks keys against an in-memory copy of the active hashes, refreshed when a key
//! is created or revoked, so no request waits on the database.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::limits::Limits;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    /// The first characters of the secret, to recognise it in lists.
    pub prefix: String,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
    /// This key's own limits (the tenant's apply as well).
    #[serde(default)]
    pub limits: Limits,
}

/// Who a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub tenant: String,
    pub limits: Limits,
}

pub fn hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new secret: `ak_` and 244 random bits from the OS (two UUIDv4s).
pub fn new_secret() -> String {
    format!("ak_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

#[derive(Default)]
pub struct KeyRing {
    by_hash: RwLock<HashMap<String, Caller>>,
}

impl KeyRing {
    /// Replaces the active keys: (hash, record).
    pub fn load(&self, keys: impl IntoIterator<Item = (String, KeyRecord)>) {
        let map = keys
            .into_iter()
            .filter(|(_, r)| r.revoked_ms.is_none())
            .map(|(h, r)| (h, Caller { key_id: r.id, tenant: r.tenant, limits: r.limits }))
            .collect();
        if let Ok(mut g) = self.by_hash.write() {
            *g = map;
        }
    }

    /// The caller of a bearer secret, if it is an active key.
    pub fn check(&self, secret: &str) -> Option<Caller> {
        self.by_hash.read().ok()?.get(&hash(secret)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_keys_pass_and_only_hashes_are_kept() {
        let ring = KeyRing::default();
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        let rec = |id: &str, revoked: Option<i64>| KeyRecord {
            id: id.into(),
            tenant: "t".into(),
            prefix: "ak_".into(),
            created_ms: 0,
            revoked_ms: revoked,
            limits: Limits::default(),
        };
        ring.load([(hash(&a), rec("k1", None)), (hash(&b), rec("k2", Some(5)))]);
        assert_eq!(ring.check(&a).map(|c| c.key_id), Some("k1".into()));
        assert_eq!(ring.check(&b), None, "revoked");
        assert_eq!(ring.check("ak_guess"), None);
        assert_eq!(hash("abc").len(), 64);
    }
}
