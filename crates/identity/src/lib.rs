//! Identity: who is calling, and what they may do. Floor 2 of the house (see ARCHITECTURE.md):
//! it knows the store, and nothing of HTTP.
//!
//! - **Tenants** are a registry ([`Tenant`]): a key, a job, a login or a setting names a tenant
//!   that exists, or it is refused.
//! - **Principals** ([`Principal`]) are operators, tenants' members and service accounts, each
//!   with a [`Role`]; credentials carry [`Scopes`].
//! - **Credentials**: API keys (`ak_…`, a tenant's), operator tokens (`aot_…`), and console
//!   sessions. Secrets are random and stored only as their SHA-256.
//! - **Permissions**: every route declares an [`Access`]; [`check`] decides it.
//!
//! Keys and tokens are checked against an in-memory table keyed by digest, refreshed from the
//! store (every 2 s by the server, and at once after a change here), so no request waits on
//! the database to be authenticated. Sessions are read from the store, as browsers are few.
//!
//! Architecture invariant: nothing here reads a clock or draws a random number except to make
//! a new secret; times come in as arguments.

pub mod access;
pub mod account;
pub mod limits;
pub mod principal;
pub mod role;
pub mod seal;
pub mod secret;
pub mod tenant;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use access::{Access, Denied, check};
pub use account::{Account, AccountRole, SessionDoc};
pub use limits::Limits;
pub use principal::{ActingFor, Kind, Principal};
pub use role::{Role, Scope, Scopes};
pub use seal::{SealError, Sealer};
pub use tenant::{TENANT_ID_RULE, Tenant, tenant_id_ok};

/// An API key, as stored (never its secret).
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
    /// Keys made before roles existed were a member's inference keys, and stay so.
    #[serde(default = "member")]
    pub role: Role,
    #[serde(default = "inference_only")]
    pub scopes: Scopes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn member() -> Role {
    Role::TenantMember
}

fn inference_only() -> Scopes {
    Scopes::of(&[Scope::Inference])
}

/// What a new key should be; every field has a default (a member's inference key, no limits).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub scopes: Option<Scopes>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub name: Option<String>,
}

/// An operator token, as stored (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A field of the input is wrong; `field` names it.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// No such object, or one the caller may not see (the two answer alike).
    #[error("no {what} {id:?}")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id:?} already exists")]
    Conflict { what: &'static str, id: String },
    /// A limit on what one tenant may hold is reached; `field` names what.
    #[error("{field}: {reason}")]
    Limit { field: String, reason: String },
    /// The store failed; nothing was changed (or the change is not yet visible).
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("{path}: {source}")]
    File { path: String, source: std::io::Error },
}

fn invalid(field: &str, reason: impl Into<String>) -> IdentityError {
    IdentityError::Invalid { field: field.into(), reason: reason.into() }
}

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "aiplus_session";

/// Most active (unrevoked) keys one tenant may hold.
pub const MAX_ACTIVE_KEYS_PER_TENANT: usize = 1_000;
/// Most keys one tenant may ever have made, revoked ones included (each stays on record).
pub const MAX_KEYS_PER_TENANT: usize = 10_000;

/// Most tenants one deployment registers; each is held in memory by every instance.
pub const MAX_TENANTS: usize = 10_000;
/// Most operator tokens ever made, revoked ones included (each stays on record).
pub const MAX_OPERATOR_TOKENS: usize = 1_000;

/// Longest key or token name.
pub const MAX_NAME_CHARS: usize = 200;
/// The file, in the data directory, that holds the first operator token.
pub const OPERATOR_TOKEN_FILE: &str = "operator-token";

pub struct Identity {
    store: store::Store,
    /// Active keys and tokens by the digest of their secret.
    ring: RwLock<rustc_hash::FxHashMap<[u8; 32], Arc<Principal>>>,
    tenants: RwLock<BTreeMap<String, Tenant>>,
}

impl Identity {
    /// Loads the registry and the active credentials.
    pub async fn open(store: store::Store) -> Result<Self, IdentityError> {
        let id = Self { store, ring: RwLock::default(), tenants: RwLock::default() };
        id.reload().await?;
        Ok(id)
    }

    /// Re-reads tenants, keys and tokens from the store (other instances change them too).
    pub async fn reload(&self) -> Result<(), IdentityError> {
        let keys: Vec<(String, KeyRecord)> = self.store.keys(None).await?;
        let tokens: Vec<(String, TokenRecord)> = self.store.operator_tokens().await?;
        let tenants: Vec<(String, i64, Tenant)> = self.store.tenants().await?;
        let mut ring = rustc_hash::FxHashMap::default();
        // One tenant scope name per tenant, shared by all its keys.
        let mut tenant_scopes: BTreeMap<String, Arc<str>> = BTreeMap::new();
        // A key is always a tenant's: one whose record says otherwise is not loaded.
        for (h, k) in keys.into_iter().filter(|(_, k)| k.revoked_ms.is_none() && !k.role.is_operator() && tenant_id_ok(&k.tenant)) {
            let Some(d) = secret::digest_of(&h) else { continue };
            let mut p = Principal::new(k.id, Kind::ApiKey, k.role, Some(k.tenant.clone()), k.scopes, k.limits);
            p.tenant_scope = tenant_scopes.entry(k.tenant).or_insert_with(|| p.tenant_scope.clone()).clone();
            ring.insert(d, Arc::new(p));
        }
        for (h, t) in tokens.into_iter().filter(|(_, t)| t.revoked_ms.is_none() && t.role.is_operator()) {
            let Some(d) = secret::digest_of(&h) else { continue };
            ring.insert(d, Arc::new(Principal::new(t.id, Kind::OperatorToken, t.role, None, Scopes::ALL, Limits::default())));
        }
        let tenants = tenants.into_iter().map(|(id, created_ms, t)| (id.clone(), Tenant { id, created_ms, ..t })).collect();
        if let Ok(mut r) = self.ring.write() {
            *r = ring;
        }
        if let Ok(mut t) = self.tenants.write() {
            *t = tenants;
        }
        Ok(())
    }

    /// The principal of a bearer secret, if it is an active key or operator token.
    pub fn bearer(&self, secret: &str) -> Option<Arc<Principal>> {
        self.ring.read().ok()?.get(&secret::digest(secret)).cloned()
    }

    /// The principal of a console session cookie, if the session is live and its account exists.
    pub async fn session(&self, session_id: &str, now_ms: i64) -> Result<Option<Principal>, IdentityError> {
        let Some((name, doc)) = self.store.session::<SessionDoc>(&secret::hash(session_id), now_ms).await? else { return Ok(None) };
        let Some(account) = self.store.console_user::<Account>(&name).await? else { return Ok(None) };
        // Console users of a tenant manage its keys there, so they are its admins.
        let role = match account.role {
            AccountRole::Operator => Role::OperatorAdmin,
            AccountRole::Tenant if account.tenant.as_deref().is_some_and(tenant_id_ok) => Role::TenantAdmin,
            // A tenant's login without a tenant is a damaged record: it opens nothing.
            AccountRole::Tenant => return Ok(None),
        };
        let mut p = Principal::new(name, Kind::Session, role, account.tenant, Scopes::ALL, Limits::default());
        p.csrf = Some(doc.csrf);
        Ok(Some(p))
    }

    // ---- tenants ----

    pub fn tenants(&self) -> Vec<Tenant> {
        self.tenants.read().map(|t| t.values().cloned().collect()).unwrap_or_default()
    }

    pub fn tenant(&self, id: &str) -> Option<Tenant> {
        self.tenants.read().ok()?.get(id).cloned()
    }

    /// The tenant `id`, or NotFound (also for an id that breaks the rule).
    pub fn existing_tenant(&self, id: &str) -> Result<Tenant, IdentityError> {
        self.tenant(id).ok_or_else(|| IdentityError::NotFound { what: "tenant", id: id.into() })
    }

    /// Registers a tenant; an existing id is a conflict.
    pub async fn create_tenant(&self, id: &str, name: Option<&str>, now_ms: i64) -> Result<Tenant, IdentityError> {
        if !tenant_id_ok(id) {
            return Err(invalid("id", TENANT_ID_RULE));
        }
        let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(id);
        if name.chars().count() > tenant::MAX_NAME_CHARS {
            return Err(invalid("name", format!("at most {} characters", tenant::MAX_NAME_CHARS)));
        }
        if self.tenants.read().map_or(0, |t| t.len()) >= MAX_TENANTS {
            return Err(IdentityError::Limit { field: "id".into(), reason: format!("at most {MAX_TENANTS} tenants") });
        }
        let t = Tenant { id: id.into(), name: name.into(), created_ms: now_ms };
        if !self.store.insert_tenant(id, now_ms, &t).await? {
            return Err(IdentityError::Conflict { what: "tenant", id: id.into() });
        }
        // The new tenant joins the in-memory registry directly: re-reading every tenant, key and
        // token for each registration would make registering n tenants cost n².
        if let Ok(mut all) = self.tenants.write() {
            all.insert(t.id.clone(), t.clone());
        }
        Ok(t)
    }

    /// The tenant a request acts for. A tenant's principal acts for its own tenant (naming
    /// another answers like a missing tenant); an operator acts for the tenant it names, which
    /// must exist, or for none.
    pub fn acting_for(&self, p: &Principal, named: Option<&str>) -> Result<Option<String>, IdentityError> {
        let missing = |n: &str| Err(IdentityError::NotFound { what: "tenant", id: n.into() });
        if !p.is_operator() {
            // Decided by role, not by whether a tenant is set: a tenant's principal without a
            // tenant (a damaged record) acts for nobody.
            let Some(own) = &p.tenant else { return missing(named.unwrap_or("")) };
            return match named {
                Some(n) if n != own => missing(n),
                _ => Ok(Some(own.clone())),
            };
        }
        match named {
            Some(n) if self.tenant(n).is_some() => Ok(Some(n.into())),
            Some(n) => missing(n),
            None => Ok(None),
        }
    }

    // ---- API keys ----

    /// Makes a key for `tenant` on behalf of `by`. The secret is returned here and never again.
    /// A tenant's principal cannot make a key that may do more than itself.
    pub async fn create_key(&self, by: &Principal, tenant: &str, new: NewKey, now_ms: i64) -> Result<(KeyRecord, String), IdentityError> {
        self.existing_tenant(tenant)?;
        let role = new.role.unwrap_or(Role::TenantMember);
        if role.is_operator() {
            return Err(invalid("role", "a key belongs to a tenant: tenant-admin or tenant-member"));
        }
        let scopes = new.scopes.unwrap_or_else(inference_only);
        if scopes == Scopes::NONE {
            return Err(invalid("scopes", "name at least one of inference, jobs, usage, admin, data"));
        }
        if !scopes.is_subset(role.allowed_scopes()) {
            return Err(invalid("scopes", format!("a {} key cannot hold `admin`", role.as_str())));
        }
        if !by.is_operator() && (!scopes.is_subset(by.scopes) || (role == Role::TenantAdmin && by.role != Role::TenantAdmin)) {
            return Err(invalid("scopes", "a key cannot be given more than the credential that makes it holds"));
        }
        new.limits.validate("limits.").map_err(|e| split_field(&e))?;
        if !by.is_operator() {
            within_limits(&new.limits, &by.limits)?;
        }
        let name = check_name(new.name)?;
        // Active keys from the in-memory table (a change elsewhere shows within its refresh),
        // all keys from the store.
        let active =
            self.ring.read().map_or(0, |r| r.values().filter(|p| p.kind == Kind::ApiKey && p.tenant.as_deref() == Some(tenant)).count());
        if active >= MAX_ACTIVE_KEYS_PER_TENANT {
            return Err(IdentityError::Limit {
                field: "keys".into(),
                reason: format!("a tenant holds at most {MAX_ACTIVE_KEYS_PER_TENANT} active keys; revoke one first"),
            });
        }
        if self.store.key_count(tenant).await? >= MAX_KEYS_PER_TENANT as i64 {
            return Err(IdentityError::Limit {
                field: "keys".into(),
                reason: format!("a tenant may make at most {MAX_KEYS_PER_TENANT} keys in all, revoked ones included"),
            });
        }
        let secret = secret::new_secret("ak_");
        let rec = KeyRecord {
            id: format!("key_{}", uuid::Uuid::now_v7().simple()),
            tenant: tenant.into(),
            prefix: secret[..10].to_string(),
            created_ms: now_ms,
            revoked_ms: None,
            limits: new.limits,
            role,
            scopes,
            name,
        };
        self.store.insert_key(&rec.id, &secret::hash(&secret), &rec.tenant, &rec).await?;
        // Usable at once on this instance, without re-reading every key; the next refresh
        // (`reload`) rebuilds the table from the store as usual.
        let mut p = Principal::new(rec.id.clone(), Kind::ApiKey, rec.role, Some(rec.tenant.clone()), rec.scopes, rec.limits);
        if let Ok(mut r) = self.ring.write() {
            if let Some(same) = r.values().find(|o| o.tenant.as_deref() == Some(tenant)) {
                p.tenant_scope = same.tenant_scope.clone();
            }
            r.insert(secret::digest(&secret), Arc::new(p));
        }
        Ok((rec, secret))
    }

    /// Every key (never a secret), optionally of one tenant, oldest first.
    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, IdentityError> {
        let keys: Vec<(String, KeyRecord)> = self.store.keys(tenant).await?;
        Ok(keys.into_iter().map(|(_, k)| k).collect())
    }

    /// Revokes a key; revoking a revoked key changes nothing. With `tenant`, only that tenant's
    /// key is found, so one tenant cannot revoke another's.
    pub async fn revoke_key(&self, id: &str, tenant: Option<&str>, now_ms: i64) -> Result<KeyRecord, IdentityError> {
        let Some(mut rec) = self.keys(tenant).await?.into_iter().find(|k| k.id == id) else {
            return Err(IdentityError::NotFound { what: "key", id: id.into() });
        };
        if rec.revoked_ms.is_none() {
            rec.revoked_ms = Some(now_ms);
            self.store.update_key(&rec.id, &rec).await?;
            self.reload().await?;
        }
        Ok(rec)
    }

    // ---- operator tokens ----

    pub async fn create_operator_token(&self, name: &str, role: Role, now_ms: i64) -> Result<(TokenRecord, String), IdentityError> {
        if !role.is_operator() {
            return Err(invalid("role", "an operator token is operator-admin or operator-viewer"));
        }
        let name = check_name(Some(name.to_string()))?.unwrap_or_else(|| "operator".into());
        if self.store.operator_tokens::<TokenRecord>().await?.len() >= MAX_OPERATOR_TOKENS {
            return Err(IdentityError::Limit { field: "name".into(), reason: format!("at most {MAX_OPERATOR_TOKENS} operator tokens") });
        }
        let secret = secret::new_secret("aot_");
        let rec = TokenRecord {
            id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
            name,
            role,
            prefix: secret[..12].to_string(),
            created_ms: now_ms,
            revoked_ms: None,
        };
        self.store.insert_operator_token(&rec.id, &secret::hash(&secret), &rec).await?;
        // Usable at once, as a new key is (see `create_key`).
        let p = Principal::new(rec.id.clone(), Kind::OperatorToken, rec.role, None, Scopes::ALL, Limits::default());
        if let Ok(mut r) = self.ring.write() {
            r.insert(secret::digest(&secret), Arc::new(p));
        }
        Ok((rec, secret))
    }

    pub async fn operator_tokens(&self) -> Result<Vec<TokenRecord>, IdentityError> {
        let t: Vec<(String, TokenRecord)> = self.store.operator_tokens().await?;
        Ok(t.into_iter().map(|(_, t)| t).collect())
    }

    pub async fn revoke_operator_token(&self, id: &str, now_ms: i64) -> Result<TokenRecord, IdentityError> {
        let Some(mut rec) = self.operator_tokens().await?.into_iter().find(|t| t.id == id) else {
            return Err(IdentityError::NotFound { what: "token", id: id.into() });
        };
        if rec.revoked_ms.is_none() {
            rec.revoked_ms = Some(now_ms);
            self.store.update_operator_token(&rec.id, &rec).await?;
            self.reload().await?;
        }
        Ok(rec)
    }

    /// On a fresh install (no active operator token), makes an operator-admin token and
    /// writes it to `<data_dir>/operator-token` (mode 0600). Returns the file's path when it
    /// wrote one.
    pub async fn ensure_operator_token(&self, data_dir: &Path, now_ms: i64) -> Result<Option<PathBuf>, IdentityError> {
        if self.operator_tokens().await?.iter().any(|t| t.revoked_ms.is_none()) {
            return Ok(None);
        }
        let (_, secret) = self.create_operator_token("first operator (operator-token file)", Role::OperatorAdmin, now_ms).await?;
        let path = data_dir.join(OPERATOR_TOKEN_FILE);
        write_secret_file(&path, &secret).map_err(|source| IdentityError::File { path: path.display().to_string(), source })?;
        Ok(Some(path))
    }
}

/// A key made by a tenant's key may not be looser than its maker: each limit its maker has is
/// set on the new key too, no higher.
fn within_limits(new: &Limits, maker: &Limits) -> Result<(), IdentityError> {
    for (field, n, m) in [
        ("limits.requests_per_min", new.requests_per_min, maker.requests_per_min),
        ("limits.tokens_per_min", new.tokens_per_min, maker.tokens_per_min),
        ("limits.tokens_per_day", new.tokens_per_day, maker.tokens_per_day),
    ] {
        if let Some(m) = m
            && n.is_none_or(|n| n > m)
        {
            return Err(invalid(field, format!("at most {m}, the limit of the key that makes it")));
        }
    }
    Ok(())
}

fn check_name(name: Option<String>) -> Result<Option<String>, IdentityError> {
    match name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) {
        Some(n) if n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) => {
            Err(invalid("name", format!("at most {MAX_NAME_CHARS} printable characters")))
        }
        n => Ok(n),
    }
}

fn split_field(e: &str) -> IdentityError {
    match e.split_once(": ") {
        Some((f, r)) => invalid(f, r),
        None => invalid("body", e),
    }
}

/// Writes a secret to a file only its owner can read (mode 0600 on Unix), durably.
pub fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    async fn identity() -> Identity {
        let id = Identity::open(store::Store::memory().await.unwrap()).await.unwrap();
        for t in ["a", "b"] {
            id.create_tenant(t, None, 0).await.unwrap();
        }
        id
    }

    /// The registry and the operator tokens stop at their limits, answering which one.
    #[tokio::test]
    async fn tenants_and_operator_tokens_are_limited() {
        let id = identity().await;
        for i in 2..MAX_TENANTS {
            id.create_tenant(&format!("t{i}"), None, 0).await.unwrap();
        }
        assert_eq!(id.tenants().len(), MAX_TENANTS);
        let err = id.create_tenant("one-more", None, 0).await.unwrap_err();
        assert!(matches!(&err, IdentityError::Limit { field, .. } if field == "id"), "{err}");
        assert!(id.tenant("one-more").is_none());
        let id = identity().await;
        for i in 0..MAX_OPERATOR_TOKENS {
            id.create_operator_token(&format!("op{i}"), Role::OperatorViewer, 0).await.unwrap();
        }
        let err = id.create_operator_token("one-more", Role::OperatorViewer, 0).await.unwrap_err();
        assert!(matches!(&err, IdentityError::Limit { field, .. } if field == "name"), "{err}");
    }

    #[tokio::test]
    async fn a_key_cannot_make_a_key_looser_or_stronger_than_itself() {
        let id = identity().await;
        let op = Principal::internal_operator();
        let capped = NewKey {
            role: Some(Role::TenantAdmin),
            scopes: Some(Scopes::ALL),
            limits: Limits { requests_per_min: Some(10), ..Limits::default() },
            name: None,
        };
        let (_, secret) = id.create_key(&op, "a", capped, 0).await.unwrap();
        let admin = id.bearer(&secret).unwrap();
        let err = id.create_key(&admin, "a", NewKey::default(), 0).await.unwrap_err();
        assert!(matches!(&err, IdentityError::Invalid { field, .. } if field == "limits.requests_per_min"), "{err}");
        let tighter = NewKey { limits: Limits { requests_per_min: Some(5), ..Limits::default() }, ..NewKey::default() };
        assert!(id.create_key(&admin, "a", tighter, 0).await.is_ok());
        let (_, member) =
            id.create_key(&op, "a", NewKey { scopes: Some(Scopes::of(&[Scope::Jobs])), ..NewKey::default() }, 0).await.unwrap();
        let member = id.bearer(&member).unwrap();
        let stronger = NewKey { scopes: Some(Scopes::of(&[Scope::Jobs, Scope::Inference])), ..NewKey::default() };
        assert!(id.create_key(&member, "a", stronger, 0).await.is_err());
        let admin_key = NewKey { role: Some(Role::TenantAdmin), scopes: Some(Scopes::of(&[Scope::Admin])), ..NewKey::default() };
        assert!(id.create_key(&op, "a", admin_key, 0).await.is_ok());
        let op_key = NewKey { role: Some(Role::OperatorAdmin), ..NewKey::default() };
        assert!(id.create_key(&op, "a", op_key, 0).await.is_err(), "a key is always a tenant's");
        assert!(matches!(id.create_key(&op, "nobody", NewKey::default(), 0).await, Err(IdentityError::NotFound { .. })));
    }

    #[tokio::test]
    async fn a_tenant_acts_only_for_itself_and_an_operator_only_for_a_registered_tenant() {
        let id = identity().await;
        let op = Principal::internal_operator();
        let (_, secret) = id.create_key(&op, "a", NewKey::default(), 0).await.unwrap();
        let key = id.bearer(&secret).unwrap();
        assert_eq!(id.acting_for(&key, None).unwrap(), Some("a".into()));
        assert_eq!(id.acting_for(&key, Some("a")).unwrap(), Some("a".into()));
        assert!(
            matches!(id.acting_for(&key, Some("b")), Err(IdentityError::NotFound { .. })),
            "naming another tenant looks like a missing one"
        );
        assert_eq!(id.acting_for(&op, Some("b")).unwrap(), Some("b".into()));
        assert_eq!(id.acting_for(&op, None).unwrap(), None);
        assert!(id.acting_for(&op, Some("nobody")).is_err());
        let orphan = Principal::new("x".into(), Kind::ApiKey, Role::TenantAdmin, None, Scopes::ALL, Limits::default());
        assert!(id.acting_for(&orphan, Some("b")).is_err(), "a tenant's role with no tenant acts for nobody");
        assert!(id.acting_for(&orphan, None).is_err());
    }

    #[tokio::test]
    async fn revoked_keys_and_tokens_stop_at_once_and_damaged_records_never_load() {
        let id = identity().await;
        let op = Principal::internal_operator();
        let (rec, secret) = id.create_key(&op, "a", NewKey::default(), 0).await.unwrap();
        let (tok, token) = id.create_operator_token("ci", Role::OperatorViewer, 0).await.unwrap();
        assert!(id.bearer(&secret).is_some() && id.bearer(&token).unwrap().role == Role::OperatorViewer);
        id.revoke_key(&rec.id, Some("b"), 1).await.unwrap_err();
        id.revoke_key(&rec.id, Some("a"), 1).await.unwrap();
        id.revoke_operator_token(&tok.id, 1).await.unwrap();
        assert!(id.bearer(&secret).is_none() && id.bearer(&token).is_none());
        // A key record that claims an operator's role is a tenant's key gone wrong: not loaded.
        let forged = KeyRecord { id: "key_forged".into(), role: Role::OperatorAdmin, ..rec };
        id.store.insert_key("key_forged", &secret::hash("ak_forged"), "a", &forged).await.unwrap();
        id.reload().await.unwrap();
        assert!(id.bearer("ak_forged").is_none());
    }
}
