//! Open-source contribution evaluation: rankings of projects and developers by global OpenRank
//! for a month, a developer's page (activity and OpenRank per month, per repo, events by type)
//! and a repo's page (activity over a year, top contributors by community OpenRank). They read
//! the months `aiplus oss ingest` stored in the data dir, on the blocking pool.

use std::collections::BTreeSet;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use oss::measure::{self, People};
use oss_core::global::GlobalParams;
use serde::Deserialize;

use crate::charts::{Kind, Series, render};
use crate::error::ConsoleError;
use crate::layout::{Nav, csrf_field, empty_row, num, page, svg, url_encode};
use crate::{C, Viewer};

/// The page's own strings: (key, Chinese, English).
pub const STRINGS: &[(&str, &str, &str)] = &[
    ("oss", "开源贡献", "Open source"),
    (
        "oss_note",
        "按 OpenDigger 方法计算：活跃度与全域 OpenRank（开发者—仓库图，逐月继承），社区 OpenRank（仓库内开发者—议题图）。数据来自 GH Archive（aiplus oss ingest）。",
        "OpenDigger's method: activity and global OpenRank (the developer–repo graph, inherited month to month), and community OpenRank (developers and issues inside a repo). From GH Archive (aiplus oss ingest).",
    ),
    ("oss_month", "月份", "Month"),
    ("oss_projects", "项目排名", "Projects"),
    ("oss_developers", "开发者排名", "Developers"),
    ("oss_activity", "活跃度", "Activity"),
    ("oss_repo", "仓库", "Repo"),
    ("oss_developer", "开发者", "Developer"),
    ("oss_events", "事件", "Events"),
    ("oss_top", "社区 OpenRank 贡献者", "Top contributors by community OpenRank"),
    ("oss_iterations", "迭代次数", "Iterations"),
    ("oss_no_months", "尚未导入任何 GH Archive 数据。", "No GH Archive data has been ingested yet."),
    ("oss_issue", "签发贡献证明", "Issue a signed credit report"),
    ("oss_period", "期间（起..止）", "Period (FROM..TO)"),
    (
        "oss_issue_note",
        "证明由平台日志密钥签名，并作为透明日志条目记录；登记方可用 aiplus oss verify 离线核验。",
        "The report is signed with the platform's log key and recorded as a transparency-log leaf; a registrar checks it offline with aiplus oss verify.",
    ),
];

#[derive(Deserialize, Default)]
pub struct MonthQuery {
    period: Option<String>,
}

fn store(c: &crate::Console) -> Result<std::sync::Arc<oss::ingest::Store>, ConsoleError> {
    c.oss.clone().ok_or(ConsoleError::NotFound)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, oss::Error> + Send + 'static) -> Result<T, ConsoleError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(oss::Error::Invalid { field, reason })) => Err(ConsoleError::Invalid { field, reason }),
        Ok(Err(e)) => Err(ConsoleError::Internal(e.to_string())),
        Err(e) => Err(ConsoleError::Internal(e.to_string())),
    }
}

/// The month asked for, or the latest stored.
fn month(q: &MonthQuery, months: &[String]) -> Option<String> {
    q.period.clone().or_else(|| months.last().cloned())
}

pub async fn index(State(c): C, v: Viewer, Query(q): Query<MonthQuery>) -> Result<Response, ConsoleError> {
    let st = store(&c)?;
    let lang = v.lang;
    let s2 = st.clone();
    let months = blocking(move || s2.months()).await?;
    let Some(period) = month(&q, &months) else {
        return Ok(page(
            &v,
            Nav::Oss,
            "/oss",
            lang.t("oss"),
            html! { p class="muted" { (lang.t("oss_note")) } p { (lang.t("oss_no_months")) } },
        ));
    };
    let p2 = period.clone();
    let all = blocking(move || measure::global_openrank(&st, &p2, &GlobalParams::OPENDIGGER, &People::default(), &|_| {})).await?;
    let m = all.into_iter().find(|m| m.month == period).ok_or(ConsoleError::NotFound)?;
    let table = |kind: &str, heading: &'static str, id: &str| {
        let rows: Vec<_> = m.values.iter().filter(|r| r.kind == kind).take(20).collect();
        html! {
            h2 id=(id) { (lang.t(heading)) }
            table aria-labelledby=(id) {
                thead { tr { th scope="col" class="num" { "#" } th scope="col" { (lang.t(if kind == "repo" { "oss_repo" } else { "oss_developer" })) } th scope="col" class="num" { "OpenRank" } th scope="col" class="num" { (lang.t("oss_activity")) } } }
                tbody {
                    @if rows.is_empty() { (empty_row(lang, 4)) }
                    @for (i, r) in rows.iter().enumerate() {
                        tr {
                            td class="num" { (i + 1) }
                            th scope="row" {
                                @if kind == "repo" { a href={ "/oss/repos/" (r.name) "?period=" (period) } { (r.name) } }
                                @else { a href={ "/oss/developers/" (url_encode(&r.name)) "?period=" (period) } { (r.name) } }
                            }
                            td class="num" { (num(r.openrank, 3)) }
                            td class="num" { (num(r.activity, 1)) }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        p class="muted" { (lang.t("oss_note")) }
        form method="get" action="/oss" {
            label for="period" { (lang.t("oss_month")) " " }
            select id="period" name="period" { @for mo in &months { option value=(mo) selected[*mo == period] { (mo) } } }
            " " button type="submit" { "OK" }
        }
        p class="muted" { (lang.t("oss_iterations")) ": " (m.iterations) " (tolerance " (m.tolerance) ", cap " (m.max_iterations) ")" }
        (table("repo", "oss_projects", "oss-projects"))
        (table("user", "oss_developers", "oss-developers"))
    };
    Ok(page(&v, Nav::Oss, "/oss", lang.t("oss"), body))
}

pub async fn developer(State(c): C, v: Viewer, Path(login): Path<String>, Query(q): Query<MonthQuery>) -> Result<Response, ConsoleError> {
    let st = store(&c)?;
    let lang = v.lang;
    let s2 = st.clone();
    let months = blocking(move || s2.months()).await?;
    let last = month(&q, &months).ok_or(ConsoleError::NotFound)?;
    // A year up to the month asked for.
    let idx = oss::month_index(&last).map_err(|e| ConsoleError::Invalid { field: "period".into(), reason: e.to_string() })?;
    let period = format!("{}..{last}", oss::month_name(idx - 11));
    let period_shown = format!("{last}..{last}");
    let who = login.clone();
    let report = match blocking(move || oss::report::build(&st, &who, &period, &People::default())).await {
        Err(ConsoleError::Invalid { field, .. }) if field == "developer" => return Err(ConsoleError::NotFound),
        other => other?,
    };
    let ms = report["months"].as_array().cloned().unwrap_or_default();
    let labels: Vec<String> = ms.iter().map(|m| m["month"].as_str().unwrap_or("").to_string()).collect();
    let series = |f: &str| ms.iter().map(|m| m[f].as_f64().unwrap_or(0.0)).collect::<Vec<f64>>();
    let chart = render(
        "oss-dev",
        lang.t("oss_activity"),
        &labels,
        &[Series { name: lang.t("oss_activity"), values: series("activity") }, Series { name: "OpenRank", values: series("openrank") }],
        Kind::Bars,
    );
    let body = html! {
        (svg(chart))
        h2 id="dev-repos" { (lang.t("oss_repo")) }
        table aria-labelledby="dev-repos" {
            thead { tr { th scope="col" { (lang.t("oss_month")) } th scope="col" { (lang.t("oss_repo")) } th scope="col" class="num" { (lang.t("oss_activity")) } } }
            tbody {
                @for m in &ms { @for r in m["repos"].as_array().into_iter().flatten() {
                    tr { td { (m["month"].as_str().unwrap_or("")) } th scope="row" { (r["repo"].as_str().unwrap_or("")) } td class="num" { (num(r["activity"].as_f64().unwrap_or(0.0), 3)) } }
                } }
            }
        }
        h2 { (lang.t("oss_events")) }
        ul { @for m in &ms { @if m["events"].as_object().is_some_and(|e| !e.is_empty()) {
            li { (m["month"].as_str().unwrap_or("")) ": " @for (k, n) in m["events"].as_object().into_iter().flatten() { (k) " " (n) "; " } }
        } } }
        @if v.is_operator() {
            h2 id="issue" { (lang.t("oss_issue")) }
            p class="muted" { (lang.t("oss_issue_note")) }
            form method="post" action=(format!("/oss/developers/{}/report", url_encode(&login))) {
                (csrf_field(&v))
                label for="report-period" { (lang.t("oss_period")) " " }
                input id="report-period" name="period" value=(period_shown) required pattern="[0-9]{4}-[0-9]{2}(\\.\\.[0-9]{4}-[0-9]{2})?";
                " " button type="submit" { (lang.t("oss_issue")) }
            }
        }
    };
    Ok(page(&v, Nav::Oss, "/oss", &login, body))
}

pub async fn repo(
    State(c): C,
    v: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<MonthQuery>,
) -> Result<Response, ConsoleError> {
    let st = store(&c)?;
    let lang = v.lang;
    let s2 = st.clone();
    let months = blocking(move || s2.months()).await?;
    let last = month(&q, &months).ok_or(ConsoleError::NotFound)?;
    let full = format!("{owner}/{name}");
    let wanted = full.clone();
    let (points, top) = blocking(move || {
        let idx = oss::month_index(&last)?;
        let mut points = Vec::new();
        for i in (idx - 11)..=idx {
            let mo = oss::month_name(i);
            let activity = measure::repo_activity(&st, &mo, &wanted, &People::default())?.map_or(0.0, |r| r.activity);
            points.push((mo, activity));
        }
        let members = oss::community::community_openrank(&st, &last, &BTreeSet::from([wanted]), &People::default())?.members;
        Ok((points, members.into_iter().filter(|m| m.0 == "user").take(20).collect::<Vec<_>>()))
    })
    .await?;
    if points.iter().all(|p| p.1 == 0.0) && top.is_empty() {
        return Err(ConsoleError::NotFound);
    }
    let labels: Vec<String> = points.iter().map(|p| p.0.clone()).collect();
    let chart = render(
        "oss-repo",
        lang.t("oss_activity"),
        &labels,
        &[Series { name: lang.t("oss_activity"), values: points.iter().map(|p| p.1).collect() }],
        Kind::Line,
    );
    let body = html! {
        (svg(chart))
        h2 id="repo-top" { (lang.t("oss_top")) }
        table aria-labelledby="repo-top" {
            thead { tr { th scope="col" class="num" { "#" } th scope="col" { (lang.t("oss_developer")) } th scope="col" class="num" { "OpenRank" } } }
            tbody {
                @if top.is_empty() { (empty_row(lang, 3)) }
                @for (i, (_, dev, value)) in top.iter().enumerate() {
                    tr { td class="num" { (i + 1) } th scope="row" { a href={ "/oss/developers/" (url_encode(dev)) } { (dev) } } td class="num" { (num(*value, 3)) } }
                }
            }
        }
    };
    Ok(page(&v, Nav::Oss, "/oss", &full, body))
}

#[derive(Deserialize)]
pub struct IssueForm {
    csrf: String,
    period: String,
}

/// Issues a developer's signed credit report (operators), as `POST /api/v1/oss/reports` does,
/// and shows its printable page.
pub async fn issue(State(c): C, v: Viewer, Path(login): Path<String>, Form(f): Form<IssueForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    if !v.is_operator() {
        return Err(ConsoleError::OperatorsOnly);
    }
    let st = store(&c)?;
    let key = c.oss_key.clone().ok_or(ConsoleError::NotFound)?;
    let (_, log) = c.governance()?;
    let actor = (v.name.as_str(), v.principal.role.as_str());
    let issued = api::oss_routes::issue(st, People::default(), (log, &key), &login, &f.period, actor, c.now_ms()).await;
    let id = match issued {
        Ok((signed, _)) => signed.content_sha256,
        Err(api::problem::ApiError::NotFound { .. }) => return Err(ConsoleError::NotFound),
        Err(api::problem::ApiError::Invalid { field, reason }) => return Err(ConsoleError::Invalid { field, reason }),
        Err(e) => return Err(ConsoleError::Internal(e.to_string())),
    };
    Ok(Redirect::to(&format!("/oss/reports/{id}")).into_response())
}

/// An issued report's printable page (its signed JSON is at `/api/v1/oss/reports/{id}`).
pub async fn report(State(c): C, _v: Viewer, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let st = store(&c)?;
    let signed = blocking(move || oss::report::saved(&st, &id)).await?.ok_or(ConsoleError::NotFound)?;
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], oss::report::html(&signed)).into_response();
    crate::assets::secure_headers(r.headers_mut());
    Ok(r)
}
