//! The page shell (head, navigation, language switch, logout) and small formatting helpers
//! the pages share.

use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::assets;
use crate::auth::Viewer;
use crate::i18n::Lang;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Network,
    Jobs,
    Sim,
    Targets,
    Models,
    Tenants,
    Govern,
    Eval,
    Agents,
    Data,
    Oss,
    None,
}

const NAV: [(Nav, &str, &str); 11] = [
    (Nav::Network, "/", "network"),
    (Nav::Jobs, "/jobs", "jobs"),
    (Nav::Sim, "/sim", "sim"),
    (Nav::Targets, "/targets", "targets"),
    (Nav::Models, "/models", "models"),
    (Nav::Tenants, "/tenants", "tenants"),
    (Nav::Govern, "/governance", "governance"),
    (Nav::Eval, "/evaluation", "evaluation"),
    (Nav::Agents, "/agents", "agents"),
    (Nav::Data, "/data", "data"),
    (Nav::Oss, "/oss", "oss"),
];

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (lang.t("app")) }
            link rel="stylesheet" href=(assets::CSS_URL);
            link rel="icon" href="/favicon.ico" type="image/svg+xml";
            script src=(assets::JS_URL) defer {}
        }
    }
}

/// A whole page for a logged-in viewer.
pub fn page(v: &Viewer, current: Nav, path: &str, title: &str, body: Markup) -> Response {
    let lang = v.lang;
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title))
            body {
                a class="skip" href="#main" { (lang.t("skip")) }
                header class="top" {
                    a class="brand" href="/" { (lang.t("app")) }
                    nav aria-label=(lang.t("nav")) {
                        ul {
                            // Pages with platform-wide figures are listed for operators only.
                            @for (nav, href, key) in NAV.into_iter().filter(|n| n.0 != Nav::Targets || v.is_operator()) {
                                li { a href=(href) aria-current=[(nav == current).then_some("page")] { (lang.t(key)) } }
                            }
                        }
                    }
                    div class="who" {
                        (lang_switch(lang, path))
                        span { (lang.t("signed_in_as")) " " strong { (v.name) }
                            @if let Some(t) = &v.tenant { " (" (lang.t("tenant")) " " (t) ")" } @else { " (" (lang.t("operator")) ")" } }
                        form class="inline" method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" { (lang.t("logout")) }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    with_headers(markup)
}

/// A page for someone not logged in (the login form).
pub fn bare_page(lang: Lang, path: &str, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title))
            body {
                header class="top" {
                    a class="brand" href="/" { (lang.t("app")) }
                    div class="who" { (lang_switch(lang, path)) }
                }
                main id="main" class="login" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    with_headers(markup)
}

fn with_headers(markup: Markup) -> Response {
    let mut r = markup.into_response();
    assets::secure_headers(r.headers_mut());
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    r
}

fn lang_switch(lang: Lang, path: &str) -> Markup {
    let next = url_encode(path);
    html! {
        span role="group" aria-label=(lang.t("language")) {
            a href={"/lang/zh?next=" (next)} lang="zh-CN" hreflang="zh-CN" aria-current=[(lang == Lang::Zh).then_some("true")] { "中文" }
            " | "
            a href={"/lang/en?next=" (next)} lang="en" hreflang="en" aria-current=[(lang == Lang::En).then_some("true")] { "English" }
        }
    }
}

/// The CSRF field every state-changing form carries.
pub fn csrf_field(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

pub use vocab::text::percent_encode as url_encode;

/// A redirect target from a form or query: only a path on this site, never `//host`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        // Browsers drop tabs and newlines from a URL, so `/\t/evil` would become `//evil`:
        // control characters are refused along with `//` and backslashes.
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control) => n.to_string(),
        _ => "/".to_string(),
    }
}

/// China Standard Time, in which the tariffs' hours are written.
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// `2026-11-22 18:42` in China Standard Time.
pub fn fmt_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms + CST_OFFSET_MS) * 1_000_000).ok();
    t.map_or_else(String::new, |t| {
        format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
    })
}

/// An RFC 3339 time from a job document, shown like [`fmt_ms`].
pub fn fmt_rfc3339(s: &str) -> String {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| fmt_ms((t.unix_timestamp_nanos() / 1_000_000) as i64))
        .unwrap_or_else(|_| s.to_string())
}

/// A number with a fixed number of decimals and thin grouping of thousands.
pub fn num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') { "-" } else { "" };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

pub fn pct(v: f64) -> String {
    format!("{}%", num(v * 100.0, 1))
}

/// A state badge; the class carries the colour, the text the meaning.
pub fn state_badge(lang: Lang, state: &str) -> Markup {
    html! { span class={"badge state-" (state)} { (state_label(lang, state)) } }
}

pub fn state_label(lang: Lang, state: &str) -> &'static str {
    match (lang, state) {
        (Lang::Zh, "queued") => "排队",
        (Lang::Zh, "placed") => "已调度",
        (Lang::Zh, "submitted") => "已提交",
        (Lang::Zh, "running") => "运行中",
        (Lang::Zh, "succeeded") => "成功",
        (Lang::Zh, "failed") => "失败",
        (Lang::Zh, "cancelled") => "已取消",
        (Lang::Zh, "lost") => "丢失",
        (_, "queued") => "queued",
        (_, "placed") => "placed",
        (_, "submitted") => "submitted",
        (_, "running") => "running",
        (_, "succeeded") => "succeeded",
        (_, "failed") => "failed",
        (_, "cancelled") => "cancelled",
        (_, "lost") => "lost",
        _ => "?",
    }
}

/// An empty-table row spanning `cols` columns.
pub fn empty_row(lang: Lang, cols: usize) -> Markup {
    html! { tr class="empty-row" { td colspan=(cols) class="muted" { (lang.t("empty_table")) } } }
}

/// Inline SVG produced by our own renderers (which escape their text).
pub fn svg(s: String) -> PreEscaped<String> {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn numbers_group_thousands_and_keep_signs() {
        assert_eq!(num(1234567.891, 2), "1,234,567.89");
        assert_eq!(num(-1234.5, 0), "-1,234");
        assert_eq!(num(-0.0001, 2), "0.00");
        assert_eq!(num(999.0, 0), "999");
        assert_eq!(num(f64::NAN, 1), "—");
        assert_eq!(pct(0.4567), "45.7%");
    }

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(safe_next(Some("/jobs?state=running")), "/jobs?state=running");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/", "a tab the browser would drop");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn times_show_in_china_standard_time() {
        // 2026-01-01T00:00:00Z is 08:00 in Beijing.
        assert_eq!(fmt_ms(1_767_225_600_000), "2026-01-01 08:00:00");
        assert_eq!(fmt_rfc3339("2026-01-01T00:00:00Z"), "2026-01-01 08:00:00");
        assert_eq!(url_encode("/jobs?x=1 2"), "/jobs%3Fx%3D1%202");
    }
}
