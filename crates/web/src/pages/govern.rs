//! Governance: each model's state with a one-click suspend (a reason required) and activate,
//! the open and recent alerts, filings with their deadlines, incidents with their reporting
//! deadlines, and the alert rules. A tenant sees its own filings, incidents and alerts, and no
//! model states or rules (the API's permission table says the same).

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::error::ConsoleError;
use crate::layout::{Nav, empty_row, fmt_ms, page};
use crate::{C, Viewer};

/// Alerts shown: the open ones and those opened in the last week, at most this many.
const MAX_ALERTS: i64 = 200;
const WEEK_MS: i64 = 7 * 86_400_000;

fn status_badge(lang: crate::i18n::Lang, status: &str) -> Markup {
    let key = match status {
        "suspended" => "state_suspended",
        "restricted" => "state_restricted",
        _ => "state_active",
    };
    html! { span class={"badge gov-" (status)} { (lang.t(key)) } }
}

pub async fn index(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    let (g, _) = c.governance()?;
    let lang = v.lang;
    let now = c.now_ms();
    let scope = v.scope();
    let alerts = g.alerts.list(scope, now - WEEK_MS, MAX_ALERTS).await?;
    let filings = g.filings.list(scope, None, now);
    let incidents = g.incidents.list(scope, None);
    // Every model the gateway serves, with its state (a model never governed is active).
    let mut models: Vec<String> = c.gateway.health().into_iter().map(|m| m.name).collect();
    for s in g.states.list() {
        if !models.contains(&s.model) {
            models.push(s.model);
        }
    }
    models.sort();
    let rules = if v.is_operator() { g.monitor.rules().await? } else { Vec::new() };
    let body = html! {
        @if v.is_operator() {
            h2 id="states-heading" { (lang.t("model_states")) }
            table aria-labelledby="states-heading" {
                thead { tr {
                    th scope="col" { (lang.t("name")) } th scope="col" { (lang.t("status")) }
                    th scope="col" { (lang.t("reason")) } th scope="col" { (lang.t("changed_by")) } th scope="col" { (lang.t("action")) }
                } }
                tbody {
                    @if models.is_empty() { (empty_row(lang, 5)) }
                    @for m in &models {
                        @let st = g.states.get(m);
                        @let status = st.as_ref().map_or("active", |s| s.status.as_str());
                        tr data-model=(m) {
                            th scope="row" { (m) }
                            td { (status_badge(lang, status)) }
                            td { (st.as_ref().map_or("", |s| s.reason.as_str())) }
                            td { (st.as_ref().map_or(String::new(), |s| format!("{} · {}", s.actor, fmt_ms(s.at_ms)))) }
                            td {
                                form class="inline" method="post" action={"/governance/models/" (segment(m))} {
                                    input type="hidden" name="csrf" value=(v.csrf);
                                    @let id = format!("reason-{m}");
                                    label class="sr" for=(id) { (lang.t("reason")) " " (m) }
                                    input id=(id) name="reason" required maxlength="1000" placeholder=(lang.t("reason"));
                                    @if status == "suspended" {
                                        button type="submit" name="status" value="active" aria-label={(lang.t("activate")) " " (m)} { (lang.t("activate")) }
                                    } @else {
                                        button type="submit" class="danger" name="status" value="suspended" aria-label={(lang.t("suspend")) " " (m)} { (lang.t("suspend")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 id="alerts-heading" { (lang.t("alerts")) }
        table aria-labelledby="alerts-heading" {
            thead { tr {
                th scope="col" { (lang.t("opened")) } th scope="col" { (lang.t("kind")) } th scope="col" { (lang.t("subject")) }
                th scope="col" { (lang.t("status")) } th scope="col" { (lang.t("message")) }
            } }
            tbody {
                @if alerts.is_empty() { (empty_row(lang, 5)) }
                @for a in &alerts {
                    tr {
                        td { (fmt_ms(a.opened_ms)) } td { (a.kind) } td { (a.subject) }
                        td { @if a.closed_ms.is_some() { (lang.t("closed")) } @else { strong { (lang.t("open")) } } }
                        td { (a.message) }
                    }
                }
            }
        }
        h2 id="filings-heading" { (lang.t("filings")) }
        table aria-labelledby="filings-heading" {
            thead { tr {
                th scope="col" { "ID" } th scope="col" { (lang.t("tenant")) } th scope="col" { (lang.t("kind")) }
                th scope="col" { (lang.t("status")) } th scope="col" { (lang.t("filing_number")) } th scope="col" { (lang.t("due")) }
            } }
            tbody {
                @if filings.is_empty() { (empty_row(lang, 6)) }
                @for f in &filings {
                    tr {
                        td { code { (f.filing.id) } } td { (f.filing.tenant.as_deref().unwrap_or("—")) }
                        td { (format!("{:?}", f.filing.content.kind)) } td { (f.filing.state.as_str()) }
                        td { (f.filing.filing_number.as_deref().unwrap_or("—")) }
                        td {
                            @if let Some(d) = &f.due {
                                (d.what) " · " (d.on.to_string())
                                @if d.overdue { " " strong class="overdue" { (lang.t("overdue")) } }
                            } @else { "—" }
                        }
                    }
                }
            }
        }
        h2 id="incidents-heading" { (lang.t("incidents")) }
        table aria-labelledby="incidents-heading" {
            thead { tr {
                th scope="col" { (lang.t("discovered")) } th scope="col" { (lang.t("title")) } th scope="col" { (lang.t("grade")) }
                th scope="col" { (lang.t("status")) } th scope="col" { (lang.t("report_due")) }
            } }
            tbody {
                @if incidents.is_empty() { (empty_row(lang, 5)) }
                @for i in &incidents {
                    @let late = i.state == govern::incidents::State::Open && i.report_due_ms.is_some_and(|d| d <= now);
                    tr {
                        td { (fmt_ms(i.discovered_ms)) } td { (i.title) } td { (grade(lang, i.grade)) }
                        td { (format!("{:?}", i.state).to_lowercase()) }
                        td { (i.report_due_ms.map_or("—".into(), fmt_ms)) @if late { " " strong class="overdue" { (lang.t("overdue")) } } }
                    }
                }
            }
        }
        @if v.is_operator() {
            h2 id="rules-heading" { (lang.t("alert_rules")) }
            table aria-labelledby="rules-heading" {
                thead { tr {
                    th scope="col" { (lang.t("name")) } th scope="col" { (lang.t("models")) } th scope="col" { (lang.t("metric")) }
                    th scope="col" class="num" { (lang.t("fire_above")) } th scope="col" class="num" { (lang.t("clear_below")) }
                } }
                tbody {
                    @if rules.is_empty() { (empty_row(lang, 5)) }
                    @for r in &rules {
                        tr {
                            th scope="row" { (r.name) } td { (r.model.as_deref().unwrap_or("*")) } td { (format!("{:?}", r.metric)) }
                            td class="num" { (r.fire_above) } td class="num" { (r.clear_below) }
                        }
                    }
                }
            }
        }
        p { a href="/governance/log" { (lang.t("log_explorer")) } }
    };
    Ok(page(&v, Nav::Govern, "/governance", lang.t("governance"), body))
}

/// A model name as one path segment (names like `Qwen/Qwen2.5-7B` hold a slash).
fn segment(name: &str) -> String {
    vocab::text::percent_encode(name).replace('/', "%2F")
}

fn grade(lang: crate::i18n::Lang, g: govern::incidents::Grade) -> &'static str {
    use govern::incidents::Grade as G;
    match g {
        G::General => lang.t("grade_general"),
        G::Major => lang.t("grade_major"),
        G::Serious => lang.t("grade_serious"),
        G::EspeciallySerious => lang.t("grade_especially_serious"),
    }
}

#[derive(Deserialize)]
pub struct StateForm {
    csrf: String,
    status: String,
    reason: String,
}

/// Suspends or activates a model, with the operator's reason (a log entry like the API's).
pub async fn set_state(State(c): C, v: Viewer, Path(name): Path<String>, Form(f): Form<StateForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    if !v.is_operator() {
        return Err(ConsoleError::OperatorsOnly);
    }
    let (g, _) = c.governance()?;
    let status = match f.status.as_str() {
        "suspended" => govern::Status::Suspended,
        "active" => govern::Status::Active,
        _ => return Err(ConsoleError::Invalid { field: "status".into(), reason: "suspended or active".into() }),
    };
    let change = govern::Change { status, reason: f.reason, tenants: vec![], regions: vec![], limits: None };
    let actor = govern::states::Actor { id: &v.name, role: v.principal.role.as_str() };
    g.states.set(&name, change, actor, c.now_ms()).await?;
    Ok(Redirect::to("/governance").into_response())
}
