//! The gate: one deny-by-default layer in front of every route. For each request it
//!
//! 1. refuses a `Host` that is not a configured name (DNS rebinding);
//! 2. finds the route's rule in [`crate::permissions::TABLE`] (absent: 404, the route does
//!    not answer);
//! 3. resolves the caller: a bearer API key or operator token, else a console session cookie;
//!    a cookie-authenticated write to the JSON APIs must also carry the session's CSRF token
//!    in `X-CSRF-Token` (a cross-site form cannot set a header);
//! 4. checks the rule ([`identity::check`]) and hands the principal to the handler as a request
//!    extension (`Extension<Arc<Principal>>`).
//!
//! Refusals speak the dialect of the surface they guard: OpenAI's error shape under `/v1`, a
//! redirect to the login page for the console, problem+json elsewhere.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use identity::{Identity, Principal};

use crate::problem::ApiError;
use vocab::Clock;

pub use identity::SESSION_COOKIE;
/// The header a cookie-authenticated JSON write carries its session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The header an operator names the tenant it acts for in.
pub const TENANT_HEADER: &str = "x-aiplus-tenant";

/// The names this server answers to, besides IP literals and `localhost`.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    names: Vec<String>,
}

impl Hosts {
    pub fn new(names: &[String]) -> Self {
        Self { names: names.iter().map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect() }
    }

    /// Whether a `Host` header value is one of ours. An IP literal cannot be re-pointed by DNS,
    /// so it is always accepted; a name must be `localhost` or configured.
    pub fn allows(&self, host: &str) -> bool {
        // Compared without allocating: the gate runs this on every request.
        let h = host.trim();
        let name = match h.strip_prefix('[') {
            Some(v6) => {
                return v6.split_once(']').is_some_and(|(ip, rest)| {
                    ip.parse::<std::net::Ipv6Addr>().is_ok() && (rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port))
                });
            }
            None => h.rsplit_once(':').filter(|(_, port)| is_port(port)).map_or(h, |(n, _)| n),
        };
        name.parse::<std::net::Ipv4Addr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

pub struct Gate {
    pub identity: Arc<Identity>,
    pub hosts: Hosts,
    pub clock: Arc<dyn Clock>,
}

/// Which surface a path belongs to, for the shape of a refusal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Surface {
    OpenAi,
    Api,
    Console,
}

impl Surface {
    fn of(path: &str) -> Self {
        if path.starts_with("/v1/") {
            Surface::OpenAi
        } else if path.starts_with("/api/") || path.starts_with("/log/") || path == "/metrics" || path == "/healthz" {
            Surface::Api
        } else {
            Surface::Console
        }
    }
}

/// Puts the gate in front of every route of `router` (call it on the whole, merged router).
pub fn guard(router: axum::Router, gate: Arc<Gate>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(gate, self::gate))
}

/// The middleware; install with `axum::middleware::from_fn_with_state(gate, api::gate::gate)`
/// as the last layer of the whole router, so that every route is behind it.
pub async fn gate(State(g): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let surface = Surface::of(req.uri().path());
    // A request without `Host` (HTTP/1.0, in-process calls) cannot come from a browser, and so
    // cannot be a rebinding attack; one with a `Host` must name us.
    if let Some(host) = req.headers().get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !g.hosts.allows(host) {
            return refuse(surface, ApiError::UnknownHost(host.chars().take(100).collect()), &req);
        }
    }
    let matched = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let Some(rule) = matched.as_deref().and_then(|m| crate::permissions::find(req.method(), m)) else {
        // A known path asked with another method says which methods it has; who may call
        // them is not revealed before the caller is known, and the methods are public anyway.
        let allow = matched.as_deref().map(crate::permissions::methods_of).unwrap_or_default();
        if !allow.is_empty() {
            return refuse(surface, ApiError::MethodNotAllowed { allow: allow.join(", ") }, &req);
        }
        return refuse(surface, ApiError::NotFound { what: "route", id: req.uri().path().chars().take(200).collect() }, &req);
    };
    let who = match resolve(&g, surface, req.method(), req.headers()).await {
        Ok(who) => who,
        Err(e) => return refuse(surface, e, &req),
    };
    if let Err(d) = identity::check(rule.access, who.as_deref()) {
        return refuse(surface, ApiError::from(d), &req);
    }
    if let Some(p) = who {
        // The OpenAI-compatible routes act as the key's own tenant and read no `ActingFor`.
        if matches!(rule.access, identity::Access::TenantOnly { .. }) {
            req.extensions_mut().insert(p);
            return next.run(req).await;
        }
        let named = match named_tenant(req.headers()) {
            Ok(n) => n.map(str::to_string),
            Err(e) => return refuse(surface, e, &req),
        };
        match g.identity.acting_for(&p, named.as_deref()) {
            Ok(t) => req.extensions_mut().insert(identity::ActingFor(t)),
            Err(e) => return refuse(surface, ApiError::from(e), &req),
        };
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

/// The caller of a request, if it names one; an invalid credential is an error, never anonymous.
async fn resolve(g: &Gate, surface: Surface, method: &Method, headers: &HeaderMap) -> Result<Option<Arc<Principal>>, ApiError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let secret = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
        return match g.identity.bearer(secret) {
            Some(p) => Ok(Some(p)),
            None => Err(ApiError::Unauthenticated("the bearer credential is not an active API key or operator token".into())),
        };
    }
    let Some(session) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let Some(p) = g.identity.session(session, g.clock.now_ms()).await? else { return Ok(None) };
    let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    // Console forms carry their token in the form, checked by the console; the JSON APIs take
    // it in a header, which another site's page cannot set.
    if write && surface != Surface::Console {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !p.csrf.as_deref().is_some_and(|t| identity::secret::constant_time_eq(t, sent)) {
            return Err(ApiError::Forbidden(format!("a write with a session cookie needs the session's CSRF token in {CSRF_HEADER}")));
        }
    }
    Ok(Some(Arc::new(p)))
}

fn refuse(surface: Surface, e: ApiError, req: &Request) -> Response {
    match surface {
        Surface::Api => e.into_response(),
        Surface::OpenAi => {
            let (kind, code) = match &e {
                ApiError::Unauthenticated(_) => ("invalid_request_error", "invalid_api_key"),
                ApiError::Forbidden(_) => ("permission_error", "permission_denied"),
                ApiError::NotFound { .. } => ("invalid_request_error", "unknown_url"),
                _ => ("invalid_request_error", "invalid_request"),
            };
            let body = serde_json::json!({"error": {"message": e.to_string(), "type": kind, "param": null, "code": code}});
            (e.status(), axum::Json(body)).into_response()
        }
        Surface::Console => match e {
            ApiError::Unauthenticated(_) => {
                let next = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let mut r = Redirect::to(&format!("/login?next={}", vocab::text::percent_encode(next))).into_response();
                if *req.method() != Method::GET {
                    // A form posted after the session ended: see the login page, then retry.
                    *r.status_mut() = StatusCode::SEE_OTHER;
                }
                r
            }
            e => {
                let mut r = (e.status(), e.to_string()).into_response();
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
                r
            }
        },
    }
}

/// The value of cookie `name` in a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    vocab::text::cookie(headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()), name)
}

/// The tenant named in [`TENANT_HEADER`], if any.
pub fn named_tenant(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    match headers.get(TENANT_HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|t| identity::tenant_id_ok(t))
            .map(Some)
            .ok_or_else(|| ApiError::Invalid { field: TENANT_HEADER.into(), reason: identity::TENANT_ID_RULE.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_localhost_and_configured_names_pass() {
        let h = Hosts::new(&["aiplus.example.cn".into()]);
        for ok in ["127.0.0.1:8080", "10.1.2.3", "[::1]:8080", "localhost:80", "LOCALHOST", "aiplus.example.cn:443", "aiplus.example.cn"] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:8080",
            "aiplus.example.cn.evil.com",
            "[zz]:1",
            "127.0.0.1.evil.com",
            "",
            "[::1].evil.com",
            "[::1]:x",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("aiplus_lang=en; aiplus_session=abc"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "aiplus"), None);
    }
}
