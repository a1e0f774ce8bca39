//! Console accounts, logging in, and CSRF protection.
//!
//! An account is an operator (sees everything) or belongs to one tenant (sees only that
//! tenant's jobs, keys and usage). Passwords are stored as Argon2id PHC strings. A session id is
//! 244 random bits held only in an `HttpOnly; SameSite=Strict` cookie; the store keeps its
//! SHA-256, so a leaked database does not leak live sessions. The gate in front of the router
//! (`api::gate`, in front of the console) turns the cookie into a principal; a page's [`Viewer`] is made from it. Every
//! form that changes something carries the session's CSRF token, and a POST whose `Origin`
//! names another site is refused before any handler runs.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
pub use identity::SESSION_COOKIE;
use identity::secret::{hash as sha256_hex, random_token};
pub use identity::{Account, AccountRole as Role};
use identity::{Principal, SessionDoc, write_secret_file};
use serde::Deserialize;

use crate::error::ConsoleError;
use crate::i18n::Lang;
use crate::{Console, SharedConsole};

pub const LANG_COOKIE: &str = "aiplus_lang";
/// Longest accepted password, so hashing cost stays bounded.
pub const MAX_PASSWORD_BYTES: usize = 256;
pub const MIN_PASSWORD_CHARS: usize = 10;

/// A form whose only field is the CSRF token (logout, cancel, revoke).
#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// Who is looking at a page, and in which language.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub name: String,
    pub role: Role,
    pub tenant: Option<String>,
    pub csrf: String,
    pub lang: Lang,
    /// The principal the gate resolved from the session, for the domain calls that need it.
    pub principal: Arc<Principal>,
}

impl Viewer {
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// The tenant whose data this viewer may see: `None` for an operator (all of them).
    pub fn scope(&self) -> Option<&str> {
        match self.role {
            Role::Operator => None,
            Role::Tenant => Some(self.tenant.as_deref().unwrap_or("")),
        }
    }

    /// Whether this viewer may see data of `tenant`.
    pub fn may_see(&self, tenant: &str) -> bool {
        self.scope().is_none_or(|t| t == tenant)
    }

    /// Checks a submitted form's CSRF token in constant time.
    pub fn check_csrf(&self, token: &str) -> Result<(), ConsoleError> {
        // A session always has a token; an empty one (never issued) matches nothing.
        if !self.csrf.is_empty() && identity::secret::constant_time_eq(&self.csrf, token) { Ok(()) } else { Err(ConsoleError::Csrf) }
    }

    /// The viewer of a principal the gate resolved from a session.
    pub fn of(p: Arc<Principal>, lang: Lang) -> Self {
        let role = if p.is_operator() { Role::Operator } else { Role::Tenant };
        Self { name: p.id.clone(), role, tenant: p.tenant.clone(), csrf: p.csrf.clone().unwrap_or_default(), lang, principal: p }
    }
}

pub fn hash_password(password: &str) -> Result<String, ConsoleError> {
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).map_err(|e| ConsoleError::Internal(format!("salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ConsoleError::Internal(format!("hashing a password: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Checks a new password, naming the field.
pub fn validate_password(field: &str, password: &str) -> Result<(), ConsoleError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(ConsoleError::Invalid {
            field: field.into(),
            reason: format!("use {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes"),
        });
    }
    Ok(())
}

pub fn validate_username(field: &str, name: &str) -> Result<(), ConsoleError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(ConsoleError::Invalid { field: field.into(), reason: "use 1-64 of a-z, 0-9, '-', '_', '.'".into() }) }
}

impl Console {
    /// Makes the first operator account when there is none, so a fresh install can log in:
    /// with the configured password, or a random one written (mode 0600) to
    /// `<data dir>/console-admin-password` and named in the log.
    pub async fn ensure_admin(&self) -> Result<(), ConsoleError> {
        let accounts: Vec<(String, Account)> = self.store.console_users().await?;
        if accounts.iter().any(|(_, a)| a.role == Role::Operator) {
            return Ok(());
        }
        let (password, written) = match &self.cfg.admin_password {
            Some(p) => (p.clone(), None),
            None => {
                let p = random_token()[..20].to_string();
                let path = self.data_dir.join("console-admin-password");
                write_secret_file(&path, &p).map_err(|e| ConsoleError::Internal(format!("{}: {e}", path.display())))?;
                (p, Some(path))
            }
        };
        validate_password("console.admin_password", &password)?;
        let account = Account { role: Role::Operator, tenant: None, password: hash_password(&password)?, created_ms: self.now_ms() };
        if self.store.insert_console_user("admin", &account).await? {
            match written {
                Some(path) => tracing::warn!(path = %path.display(), "console: log in as \"admin\" with the password in this file"),
                None => tracing::info!("console: log in as \"admin\" with console.admin_password"),
            }
        }
        Ok(())
    }

    /// Creates an account; an existing name is refused.
    pub async fn create_account(&self, name: &str, password: &str, role: Role, tenant: Option<String>) -> Result<(), ConsoleError> {
        validate_username("username", name)?;
        validate_password("password", password)?;
        if role == Role::Tenant {
            let t = tenant.as_deref().unwrap_or("");
            if !crate::tenant_id_ok(t) {
                return Err(ConsoleError::Invalid { field: "tenant".into(), reason: "use 1-64 of a-z, 0-9, '-', '_'".into() });
            }
        }
        let password = self.hash_blocking(password.to_string()).await?;
        let account = Account { role, tenant, password, created_ms: self.now_ms() };
        if !self.store.insert_console_user(name, &account).await? {
            return Err(ConsoleError::Invalid { field: "username".into(), reason: format!("an account {name:?} already exists") });
        }
        Ok(())
    }

    async fn hash_blocking(&self, password: String) -> Result<String, ConsoleError> {
        let _permit = self.hash_permits.acquire().await.map_err(|_| ConsoleError::Internal("shutting down".into()))?;
        tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(|e| ConsoleError::Internal(e.to_string()))?
    }

    /// Checks a username and password from `address` and opens a session; returns the cookie
    /// value. An address that failed too often waits first (`crate::throttle`).
    pub async fn login(&self, name: &str, password: &str, address: std::net::IpAddr) -> Result<String, ConsoleError> {
        let now = self.now_ms();
        let wait_ms = self.logins.wait_ms(name, address, now);
        if wait_ms > 0 {
            return Err(ConsoleError::Locked { retry_after_s: wait_ms.unsigned_abs().div_ceil(1000) });
        }
        let account: Option<Account> = if name.len() <= 64 { self.store.console_user(name).await? } else { None };
        // Verify against a dummy hash when the account does not exist, so timing does not tell
        // which usernames exist.
        let phc = account.as_ref().map_or_else(|| DUMMY_HASH.to_string(), |a| a.password.clone());
        let pw = password.chars().take(MAX_PASSWORD_BYTES).collect::<String>();
        let ok = {
            let _permit = self.hash_permits.acquire().await.map_err(|_| ConsoleError::Internal("shutting down".into()))?;
            tokio::task::spawn_blocking(move || verify_password(&pw, &phc)).await.map_err(|e| ConsoleError::Internal(e.to_string()))?
        };
        let ok = ok && account.is_some();
        self.logins.record(name, address, ok, now);
        if !ok {
            return Err(ConsoleError::LoginFailed);
        }
        let id = random_token();
        let doc = SessionDoc { csrf: random_token(), created_ms: now };
        let expires = now + i64::from(self.cfg.session_hours) * 3_600_000;
        self.store.insert_session(&sha256_hex(&id), name, expires, &doc).await?;
        let _ = self.store.delete_expired_sessions(now).await;
        Ok(id)
    }

    pub async fn logout(&self, session_id: &str) -> Result<(), ConsoleError> {
        Ok(self.store.delete_session(&sha256_hex(session_id)).await?)
    }

    /// The viewer of a session cookie, if the session is live and its account exists.
    pub async fn viewer(&self, session_id: &str, lang: Lang) -> Result<Option<Viewer>, ConsoleError> {
        let p = self.identity().session(session_id, self.now_ms()).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
        Ok(p.map(|p| Viewer::of(Arc::new(p), lang)))
    }

    /// The `Set-Cookie` value for a new session.
    pub fn session_cookie(&self, id: &str) -> String {
        let max_age = i64::from(self.cfg.session_hours) * 3600;
        let secure = if self.cfg.secure_cookies { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }
}

/// An Argon2id hash of a random string: verifying against it costs what a real check costs.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Jm7V1vF6P3n1Hf2m0rQ0nJ0wQm1dY1mE0u2b3cE6b3U";

/// The value of cookie `name` in a request.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    vocab::text::cookie(headers.get_all(axum::http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()), name)
}

/// The language of a request: its cookie, else its `Accept-Language`.
pub fn lang_of(parts: &Parts) -> Lang {
    cookie(&parts.headers, LANG_COOKIE).and_then(Lang::parse).unwrap_or_else(|| {
        Lang::from_accept_language(parts.headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
    })
}

/// The request's language, for pages anyone may see (the login page).
pub struct PageLang(pub Lang);

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PageLang(lang_of(parts)))
    }
}

/// Not logged in: pages send the browser to the login form (and back afterwards).
pub struct LoginRequired(String);

impl IntoResponse for LoginRequired {
    fn into_response(self) -> Response {
        Redirect::to(&format!("/login?next={}", crate::layout::url_encode(&self.0))).into_response()
    }
}

/// The viewer is the session principal the gate resolved; a page reached without one (a
/// router assembled without the gate) sends the browser to log in.
impl FromRequestParts<SharedConsole> for Viewer {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &SharedConsole) -> Result<Self, Self::Rejection> {
        let lang = lang_of(parts);
        match parts.extensions.get::<Arc<Principal>>().filter(|p| p.kind == identity::Kind::Session) {
            Some(p) => Ok(Viewer::of(p.clone(), lang)),
            None => Err(LoginRequired(parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string()).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

    use super::*;

    #[test]
    fn passwords_hash_and_verify_and_the_dummy_hash_parses() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the dummy must parse, or unknown users would answer faster");
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let p = identity::Principal::internal_operator();
        let v = Viewer {
            name: "n".into(),
            role: Role::Tenant,
            tenant: Some("acme".into()),
            csrf: "abc".into(),
            lang: Lang::En,
            principal: Arc::new(p),
        };
        assert!(v.check_csrf("abc").is_ok());
        assert!(v.check_csrf("abd").is_err());
        assert!(v.check_csrf("ab").is_err());
        assert!(v.check_csrf("").is_err());
        assert!(v.may_see("acme") && !v.may_see("other"));
    }
}
