//! API keys: a random secret shown once, stored only as its SHA-256, scoped to a tenant.
//!
//! The gateway checks keys against an in-memory copy of the active hashes, refreshed when a key
//! is created or revoked, so no request waits on the database.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
    /// The names of this key's and its tenant's limit counters (`key:<id>`, `tenant:<t>`),
    /// made once when the key is loaded so a request never formats them.
    pub key_scope: Arc<str>,
    pub tenant_scope: Arc<str>,
}

/// The SHA-256 of a secret, as stored: 64 lowercase hex digits.
pub fn hash(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The digest of a stored hex hash, or None if it is not one.
fn digest_of(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(bytes[2 * i])? << 4) | nibble(bytes[2 * i + 1])?;
    }
    Some(out)
}

/// A new secret: `ak_` and 244 random bits from the OS (two UUIDv4s).
pub fn new_secret() -> String {
    format!("ak_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

#[derive(Default)]
pub struct KeyRing {
    by_digest: RwLock<rustc_hash::FxHashMap<[u8; 32], Caller>>,
}

impl KeyRing {
    /// Replaces the active keys: (hash, record).
    pub fn load(&self, keys: impl IntoIterator<Item = (String, KeyRecord)>) {
        let mut tenants: HashMap<String, Arc<str>> = HashMap::new();
        let mut map = rustc_hash::FxHashMap::default();
        for (h, r) in keys.into_iter().filter(|(_, r)| r.revoked_ms.is_none()) {
            let Some(d) = digest_of(&h) else { continue };
            let tenant_scope = tenants.entry(r.tenant.clone()).or_insert_with(|| Arc::from(format!("tenant:{}", r.tenant))).clone();
            let key_scope = Arc::from(format!("key:{}", r.id));
            map.insert(d, Caller { key_id: r.id, tenant: r.tenant, limits: r.limits, key_scope, tenant_scope });
        }
        if let Ok(mut g) = self.by_digest.write() {
            *g = map;
        }
    }

    /// The caller of a bearer secret, if it is an active key.
    pub fn check(&self, secret: &str) -> Option<Caller> {
        let d: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        self.by_digest.read().ok()?.get(&d).cloned()
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
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "SHA-256 of \"abc\" (FIPS 180-2)");
        assert_eq!(digest_of(&hash("abc")).map(|d| d[0]), Some(0xba));
        assert_eq!(digest_of("not hex"), None);
    }
}
