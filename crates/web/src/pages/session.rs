//! Logging in and out, and the language switch.

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, extract::State};
use maud::html;
use serde::Deserialize;

use crate::auth::{CsrfForm, LANG_COOKIE, PageLang, SESSION_COOKIE, Viewer, cookie};
use crate::error::ConsoleError;
use crate::i18n::Lang;
use crate::layout::{bare_page, safe_next, url_encode};
use crate::{C, SharedConsole};

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn form(lang: Lang, next: &str, error: Option<&str>) -> Response {
    bare_page(
        lang,
        &format!("/login?next={}", url_encode(next)),
        lang.t("login"),
        html! {
            @if let Some(e) = error { p class="error-detail" role="alert" id="login-error" { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                div {
                    label for="username" { (lang.t("username")) }
                    input id="username" name="username" autocomplete="username" required autofocus maxlength="64"
                        aria-describedby=[error.map(|_| "login-error")];
                }
                div {
                    label for="password" { (lang.t("password")) }
                    input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256";
                }
                button type="submit" { (lang.t("login")) }
            }
        },
    )
}

pub async fn login_form(PageLang(lang): PageLang, Query(q): Query<NextQuery>) -> Response {
    form(lang, &safe_next(q.next.as_deref()), None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(c): State<SharedConsole>,
    PageLang(lang): PageLang,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    // In-process callers (tests) have no peer: they share the unspecified address.
    let address = peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0.0.ip());
    match c.login(&f.username, &f.password, address).await {
        Ok(id) => {
            let mut r = Redirect::to(&next).into_response();
            if let Ok(v) = HeaderValue::from_str(&c.session_cookie(&id)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(ConsoleError::LoginFailed) => {
            // The form again with the reason, as a page (200): the browser shows it like any
            // other page instead of reporting a failed load.
            form(lang, &next, Some(lang.t("login_failed")))
        }
        Err(ConsoleError::Locked { retry_after_s }) => {
            // The form again, as 429 with Retry-After, so scripts know to wait.
            let mut r = form(lang, &next, Some(lang.t("login_locked")));
            *r.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
            if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

pub async fn logout(State(c): C, v: Viewer, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        c.logout(id).await?;
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("aiplus_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
    Ok(r)
}

/// Sets the language cookie and goes back. A GET is fine: it changes a preference in the
/// browser, nothing on the server.
pub async fn set_lang(Path(code): Path<String>, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    let mut r = Redirect::to(&next).into_response();
    if let Some(lang) = Lang::parse(&code) {
        let short = if lang == Lang::Zh { "zh" } else { "en" };
        if let Ok(v) = HeaderValue::from_str(&format!("{LANG_COOKIE}={short}; Path=/; SameSite=Lax; Max-Age=31536000")) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    r
}
