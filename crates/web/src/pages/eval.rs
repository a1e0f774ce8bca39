//! Evaluation: the leaderboard of models × suites, the runs asked of the server (with a form to
//! start one), each run's report (groups, refusal rates, bias scores, chart), and the safety
//! self-assessments attached to filings with each requirement's pass or fail. Operators only,
//! as the API's evaluation routes are.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use eval::service::{NewRun, RunRecord, RunState};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ConsoleError;
use crate::i18n::Lang;
use crate::layout::{Nav, csrf_field, empty_row, fmt_ms, num, page, pct, svg};
use crate::{C, Viewer};

/// Runs listed on the index.
const LIST: i64 = 50;
/// Self-assessments shown, from the newest filings: each is read and parsed per page view.
const ASSESSMENTS: usize = 30;

fn operator(v: &Viewer) -> Result<(), ConsoleError> {
    if v.is_operator() { Ok(()) } else { Err(ConsoleError::OperatorsOnly) }
}

fn state_text(lang: Lang, s: RunState) -> &'static str {
    lang.t(match s {
        RunState::Queued => "queued",
        RunState::Running => "running",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
    })
}

fn figure(r: &RunRecord) -> String {
    r.report.as_ref().and_then(eval::service::headline).map_or_else(|| "—".into(), |(v, e, _)| format!("{} ± {}", pct(v), pct(e)))
}

pub async fn index(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    operator(&v)?;
    let lang = v.lang;
    let svc = c.eval()?;
    let runs = svc.list(LIST).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let all = svc.list(eval::service::MAX_LIST).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let board = eval::service::leaderboard(&all);
    let suites = svc.suites();
    let body = html! {
        h2 id="board-heading" { (lang.t("leaderboard")) }
        p class="muted" { (lang.t("leaderboard_note")) }
        table aria-labelledby="board-heading" {
            thead { tr { th scope="col" { (lang.t("model")) } @for s in &board.suites { th scope="col" class="num" { (s) } } } }
            tbody {
                @if board.rows.is_empty() { (empty_row(lang, board.suites.len() + 1)) }
                @for (model, cells) in &board.rows {
                    tr { th scope="row" { (model) }
                        @for cell in cells { td class="num" { @if let Some(c) = cell { a href={"/evaluation/runs/" (c.run)} { (pct(c.value)) " ± " (pct(c.stderr)) } } @else { "—" } } } }
                }
            }
        }
        h2 id="start-heading" { (lang.t("start_eval")) }
        form class="grid" method="post" action="/evaluation" aria-labelledby="start-heading" {
            (csrf_field(&v))
            div { label for="ev-model" { (lang.t("model")) } input id="ev-model" name="model" required maxlength="256"; }
            div { label for="ev-suite" { (lang.t("suite")) }
                select id="ev-suite" name="suite" { @for s in &suites { option value=(s.name) disabled[!s.data_present] { (s.name) @if !s.data_present { " (" (lang.t("no_data")) ")" } } } } }
            div { label for="ev-subjects" { (lang.t("subjects")) } input id="ev-subjects" name="subjects" placeholder="agronomy,anatomy"; }
            div { label for="ev-limit" { (lang.t("limit_per_subject")) } input id="ev-limit" name="limit" type="number" min="1"; }
            div { label for="ev-judge" { (lang.t("judge_model")) } input id="ev-judge" name="judge" maxlength="256"; }
            div { button type="submit" { (lang.t("run")) } }
        }
        h2 id="runs-heading" { (lang.t("eval_runs")) }
        table aria-labelledby="runs-heading" {
            thead { tr { th scope="col" { (lang.t("run_id")) } th scope="col" { (lang.t("model")) } th scope="col" { (lang.t("suite")) }
                th scope="col" { (lang.t("state")) } th scope="col" class="num" { (lang.t("progress")) } th scope="col" class="num" { (lang.t("result")) }
                th scope="col" { (lang.t("created")) } } }
            tbody {
                @if runs.is_empty() { (empty_row(lang, 7)) }
                @for r in &runs {
                    tr { td { a href={"/evaluation/runs/" (r.id)} { code { (r.id) } } } td { (r.request.model) } td { (r.request.suite) }
                        td { (state_text(lang, r.state)) } td class="num" { (r.done) " / " (r.total) } td class="num" { (figure(r)) } td { (fmt_ms(r.created_ms)) } }
                }
            }
        }
        (assessments(&c, lang).await?)
    };
    Ok(page(&v, Nav::Eval, "/evaluation", lang.t("evaluation"), body))
}

/// The self-assessments attached to filings, newest filings first.
async fn assessments(c: &crate::Console, lang: Lang) -> Result<Markup, ConsoleError> {
    let mut found: Vec<(String, Value)> = Vec::new();
    if let Ok((g, _)) = c.governance() {
        'filings: for view in g.filings.list(None, None, c.now_ms()) {
            for a in view.filing.attachments.iter().rev().filter(|a| a.kind == govern::filings::AttachmentKind::SelfAssessment) {
                if found.len() == ASSESSMENTS {
                    break 'filings;
                }
                let Ok((_, bytes)) = g.filings.attachment(&view.filing.id, &a.sha256, None).await else { continue };
                if let Ok(doc) = serde_json::from_slice::<Value>(&bytes) {
                    found.push((view.filing.id.clone(), doc));
                }
            }
        }
    }
    Ok(html! {
        h2 id="assess-heading" { (lang.t("self_assessments")) }
        table aria-labelledby="assess-heading" {
            thead { tr { th scope="col" { (lang.t("filing")) } th scope="col" { (lang.t("model")) } th scope="col" { (lang.t("profile")) }
                th scope="col" { (lang.t("verdict")) } th scope="col" { (lang.t("requirements")) } } }
            tbody {
                @if found.is_empty() { (empty_row(lang, 5)) }
                @for (filing, a) in &found {
                    tr { td { code { (filing) } } td { (a["model"].as_str().unwrap_or("")) } td { (a["profile"].as_str().unwrap_or("")) }
                        td { strong class={"verdict-" (a["verdict"].as_str().unwrap_or(""))} { (lang.t(verdict_key(a["verdict"].as_str().unwrap_or("")))) } }
                        td { ul class="plain" { @for r in a["requirements"].as_array().into_iter().flatten() { li { (requirement(lang, r)) } } } } }
                }
            }
        }
    })
}

fn verdict_key(v: &str) -> &'static str {
    match v {
        "pass" => "pass",
        "fail" => "fail",
        _ => "incomplete",
    }
}

fn requirement(lang: Lang, r: &Value) -> Markup {
    let threshold = match (r["at_least"].as_f64(), r["at_most"].as_f64()) {
        (Some(t), _) => format!("≥ {}", pct(t)),
        (_, Some(t)) => format!("≤ {}", pct(t)),
        _ => String::new(),
    };
    let status = match r["status"].as_str() {
        Some("pass") => "pass",
        Some("fail") => "fail",
        _ => "not_assessed",
    };
    html! {
        (r["id"].as_str().unwrap_or("")) ": " strong { (lang.t(status)) } " — "
        (r["measured"].as_f64().map_or_else(|| "—".into(), pct)) " (" (threshold) ", n = " (r["n"]) ")"
    }
}

#[derive(Deserialize)]
pub struct RunForm {
    csrf: String,
    model: String,
    suite: String,
    #[serde(default)]
    subjects: String,
    #[serde(default)]
    limit: String,
    #[serde(default)]
    judge: String,
}

pub async fn submit(State(c): C, v: Viewer, Form(f): Form<RunForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    operator(&v)?;
    let limit = match f.limit.trim() {
        "" => None,
        l => Some(l.parse().map_err(|_| ConsoleError::Invalid { field: "limit".into(), reason: format!("{l:?} is not a number") })?),
    };
    let subjects: Vec<String> = f.subjects.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    let judge = Some(f.judge.trim().to_string()).filter(|j| !j.is_empty());
    let req = NewRun { model: f.model.trim().into(), suite: f.suite, subjects, limit, judge, ..NewRun::default() };
    let run = c.eval()?.submit(req, &v.principal.id).await.map_err(|e| match e {
        eval::EvalError::Invalid { field, reason } => ConsoleError::Invalid { field, reason },
        other => ConsoleError::Invalid { field: "suite".into(), reason: other.to_string() },
    })?;
    Ok(Redirect::to(&format!("/evaluation/runs/{}", run.id)).into_response())
}

pub async fn show(State(c): C, v: Viewer, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    operator(&v)?;
    let lang = v.lang;
    let r = c.eval()?.get(&id).await.map_err(|e| ConsoleError::Internal(e.to_string()))?.ok_or(ConsoleError::NotFound)?;
    let body = html! {
        dl class="facts" {
            dt { (lang.t("model")) } dd { (r.request.model) }
            dt { (lang.t("suite")) } dd { (r.request.suite) }
            dt { (lang.t("state")) } dd { (state_text(lang, r.state)) @if let Some(e) = &r.error { " — " (e) } }
            dt { (lang.t("progress")) } dd { (r.done) " / " (r.total) }
            dt { (lang.t("created")) } dd { (fmt_ms(r.created_ms)) }
            @if let Some(rep) = &r.report {
                dt { (lang.t("result")) } dd { (figure(&r)) " (n = " (rep.items) ", " (lang.t("cached")) " " (rep.cached) ", " (lang.t("calls")) " " (rep.calls) ")" }
                @if let Some(x) = rep.refused { dt { (lang.t("refused_must")) } dd { (pct(x.value)) " ± " (pct(x.stderr)) " (n = " (x.n) ")" } }
                @if let Some(x) = rep.over_refused { dt { (lang.t("refused_should")) } dd { (pct(x.value)) " ± " (pct(x.stderr)) " (n = " (x.n) ")" } }
                @if let Some(b) = rep.bias {
                    dt { (lang.t("bias_ambiguous")) } dd { (b.ambiguous.bias.map_or("—".into(), |x| num(x, 3))) " (" (lang.t("accuracy")) " " (pct(b.ambiguous.accuracy.value)) ")" }
                    dt { (lang.t("bias_disambiguated")) } dd { (b.disambiguated.bias.map_or("—".into(), |x| num(x, 3))) " (" (lang.t("accuracy")) " " (pct(b.disambiguated.accuracy.value)) ")" }
                }
            }
        }
        @if let Some(rep) = &r.report {
            figure { (svg(eval::chart::svg(rep))) }
            h2 id="groups-heading" { (lang.t("groups")) }
            table aria-labelledby="groups-heading" {
                thead { tr { th scope="col" { (lang.t("group")) } th scope="col" class="num" { "n" } th scope="col" class="num" { (lang.t("result")) } } }
                tbody {
                    @for g in &rep.groups {
                        tr { th scope="row" { (g.title) } td class="num" { (g.n) }
                            td class="num" {
                                @if let (Some(a), Some(e)) = (g.accuracy, g.stderr) { (pct(a)) " ± " (pct(e)) }
                                @else if let Some(x) = g.refused.or(g.over_refused) { (lang.t("refused")) " " (pct(x.value)) " ± " (pct(x.stderr)) }
                                @else { "—" }
                            } }
                    }
                }
            }
            p { a href={"/api/v1/eval/runs/" (r.id) "/samples"} { (lang.t("download_samples")) } }
        }
    };
    Ok(page(&v, Nav::Eval, "/evaluation", &format!("{} {}", lang.t("eval_run"), r.id), body))
}
