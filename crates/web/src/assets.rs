//! The console's static files, compiled into the binary, and the security headers every
//! console response carries.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub const CSS: &str = include_str!("../static/app.css");
pub const JS: &str = include_str!("../static/app.js");
/// The simulation run page's progress poller, loaded by that page only.
pub const SIM_JS: &str = include_str!("../static/sim.js");
pub const FAVICON: &str = include_str!("../static/favicon.svg");
/// Versioned so a new binary's assets are fetched fresh while old ones are cached for long.
pub const CSS_URL: &str = concat!("/static/app.css?v=", env!("CARGO_PKG_VERSION"));
pub const JS_URL: &str = concat!("/static/app.js?v=", env!("CARGO_PKG_VERSION"));
pub const SIM_JS_URL: &str = concat!("/static/sim.js?v=", env!("CARGO_PKG_VERSION"));

/// Scripts only from this origin (no inline script, no eval); inline styles are allowed for
/// the server-drawn SVG charts. Nothing may frame the console.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    secure_headers(r.headers_mut());
    r
}

pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

pub async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

pub async fn sim_js() -> Response {
    asset(SIM_JS, "text/javascript; charset=utf-8")
}

pub async fn favicon() -> Response {
    asset(FAVICON, "image/svg+xml")
}
