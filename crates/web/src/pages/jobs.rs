//! Jobs: the queue and history with filters and a submit form; a job's page with its placement
//! explanation, lifecycle events and live logs.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use compute::scheduler::ScoreTerms;
use jobs::compute_service::{Job, JobState};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CsrfForm;
use crate::error::ConsoleError;
use crate::i18n::Lang;
use crate::layout::{Nav, csrf_field, empty_row, fmt_rfc3339, num, page, state_label};
use crate::{C, SharedConsole, Viewer};

/// Most jobs one list page shows.
pub const PAGE_JOBS: u32 = 200;
/// Most log bytes rendered into the page; the rest streams in.
const PAGE_LOG_BYTES: usize = 256 * 1024;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub(crate) state: Option<String>,
    pub(crate) tenant: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
pub struct SubmitForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    gpus: String,
    #[serde(default)]
    cpu_milli: String,
    #[serde(default)]
    memory_mib: String,
    #[serde(default)]
    duration_s: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    regions: String,
    #[serde(default)]
    command: String,
    #[serde(default)]
    action_area: String,
}

fn kind_label(lang: Lang, kind: &str) -> &'static str {
    match kind {
        "training" => lang.t("training"),
        "batch_inference" => lang.t("batch_inference"),
        _ => lang.t("online_inference"),
    }
}

/// An action area's name in the page's language, as the Opinions name it.
pub(crate) fn area_label(lang: Lang, a: vocab::ActionArea) -> &'static str {
    let (zh, en) = a.names();
    if lang == Lang::Zh { zh } else { en }
}

fn blank_or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.trim().is_empty() { default } else { s.trim() }
}

fn parse_num<T: std::str::FromStr>(field: &str, s: &str) -> Result<T, ConsoleError> {
    s.trim().parse().map_err(|_| ConsoleError::Invalid { field: field.into(), reason: format!("{s:?} is not a whole number") })
}

/// Turns the form into a job spec, naming the first bad field.
fn spec_of(f: &SubmitForm) -> Result<compute::JobSpec, ConsoleError> {
    let kind = blank_or(&f.kind, "batch_inference");
    if !["training", "batch_inference", "online_inference"].contains(&kind) {
        return Err(ConsoleError::Invalid { field: "kind".into(), reason: format!("{kind:?} is not a job kind") });
    }
    let action_area = match f.action_area.trim() {
        "" => None,
        a => Some(vocab::ActionArea::parse(a).ok_or_else(|| ConsoleError::Invalid {
            field: "action_area".into(),
            reason: format!("{a:?} is not one of the six action areas"),
        })?),
    };
    let command: Vec<&str> = f.command.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let regions: Vec<&str> = f.regions.split(',').map(str::trim).filter(|r| !r.is_empty()).collect();
    let doc = serde_json::json!({
        "kind": kind,
        "gpus": parse_num::<u32>("gpus", blank_or(&f.gpus, "1"))?,
        "cpu_milli": parse_num::<u32>("cpu_milli", blank_or(&f.cpu_milli, "1000"))?,
        "memory_mib": parse_num::<u32>("memory_mib", blank_or(&f.memory_mib, "1024"))?,
        "duration_s": parse_num::<u64>("duration_s", blank_or(&f.duration_s, "60"))?,
        "priority": parse_num::<i32>("priority", blank_or(&f.priority, "0"))?,
        "allowed_regions": regions,
        "command": command,
        "action_area": action_area,
    });
    serde_json::from_value(doc).map_err(|e| ConsoleError::Invalid { field: "regions".into(), reason: e.to_string() })
}

pub async fn list(State(c): C, v: Viewer, Query(q): Query<ListQuery>) -> Result<Response, ConsoleError> {
    render_list(&c, &v, &q, None).await
}

async fn render_list(
    c: &SharedConsole,
    v: &Viewer,
    q: &ListQuery,
    failed: Option<(&SubmitForm, String)>,
) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    let state = q.state.as_deref().filter(|s| !s.is_empty());
    let rows = visible_rows(c, v, q).await?;
    let jobs: Vec<&Job> = rows.iter().map(|r| &r.doc).collect();
    let f = failed.as_ref().map(|(f, _)| (*f).clone()).unwrap_or_default();
    let body = html! {
        h2 id="submit-heading" { (lang.t("submit_job")) }
        @if let Some((_, why)) = &failed { p class="error-detail" role="alert" id="submit-error" { (lang.t("bad_input")) ": " (why) } }
        form class="grid" method="post" action="/jobs" aria-labelledby="submit-heading" {
            (csrf_field(v))
            div { label for="job-name" { (lang.t("name")) } input id="job-name" name="name" maxlength="128" value=(f.name); }
            @if v.is_operator() {
                div { label for="job-tenant" { (lang.t("tenant")) } input id="job-tenant" name="tenant" required maxlength="64" value=(blank_or(&f.tenant, "")); }
            }
            div { label for="job-kind" { (lang.t("kind")) }
                select id="job-kind" name="kind" {
                    @for k in ["batch_inference", "training", "online_inference"] {
                        option value=(k) selected[f.kind == k] { (kind_label(lang, k)) }
                    }
                }
            }
            div { label for="job-gpus" { (lang.t("gpus")) } input id="job-gpus" name="gpus" type="number" min="0" max="16" value=(blank_or(&f.gpus, "1")); }
            div { label for="job-cpu" { (lang.t("cpu_milli")) } input id="job-cpu" name="cpu_milli" type="number" min="1" value=(blank_or(&f.cpu_milli, "1000")); }
            div { label for="job-mem" { (lang.t("memory_mib")) } input id="job-mem" name="memory_mib" type="number" min="1" value=(blank_or(&f.memory_mib, "1024")); }
            div { label for="job-duration" { (lang.t("duration_s")) } input id="job-duration" name="duration_s" type="number" min="1" value=(blank_or(&f.duration_s, "60")); }
            div { label for="job-priority" { (lang.t("priority")) } input id="job-priority" name="priority" type="number" min="-100" max="100" value=(blank_or(&f.priority, "0")); }
            div { label for="job-area" { (lang.t("action_area")) }
                select id="job-area" name="action_area" {
                    option value="" { (lang.t("action_area_none")) }
                    @for a in vocab::ActionArea::ALL {
                        option value=(a.as_str()) selected[f.action_area == a.as_str()] { (area_label(lang, a)) }
                    }
                }
            }
            div class="wide" { label for="job-regions" { (lang.t("regions")) } input id="job-regions" name="regions" maxlength="512" value=(f.regions); }
            div class="wide" { label for="job-command" { (lang.t("command")) }
                textarea id="job-command" name="command" rows="3" maxlength="8192" { (f.command) } }
            div { button type="submit" { (lang.t("submit")) } }
        }
        h2 id="list-heading" { (lang.t("jobs")) }
        form class="grid" method="get" action="/jobs" aria-label=(lang.t("filter")) {
            div { label for="filter-state" { (lang.t("state")) }
                select id="filter-state" name="state" {
                    option value="" { (lang.t("all")) }
                    @for s in JobState::ALL { option value=(s.as_str()) selected[state == Some(s.as_str())] { (state_label(lang, s.as_str())) } }
                }
            }
            @if v.is_operator() {
                div { label for="filter-tenant" { (lang.t("tenant")) } input id="filter-tenant" name="tenant" value=(q.tenant.as_deref().unwrap_or("")); }
            }
            div { button type="submit" { (lang.t("filter")) } }
        }
        // The rows update live while the page is open (see `live::jobs`); without script the
        // page is as it was rendered.
        div data-live-jobs=(live_url(state, q.tenant.as_deref())) data-empty=(lang.t("empty_table")) {
            (crate::pages::cluster::job_table(lang, "list-heading", &jobs))
        }
    };
    // A refused submission shows this page again with the reason and what was typed (200, so
    // the browser treats it as the page it is).
    Ok(page(v, Nav::Jobs, "/jobs", lang.t("jobs"), body))
}

/// The live stream of a list with this filter.
fn live_url(state: Option<&str>, tenant: Option<&str>) -> String {
    let enc = crate::layout::url_encode;
    format!("/jobs/live?state={}&tenant={}", enc(state.unwrap_or("")), enc(tenant.unwrap_or("")))
}

/// The jobs a list shows: the newest [`PAGE_JOBS`] the viewer may see that match the filter.
/// The page and its live stream both read through here, so they cannot disagree.
pub(crate) async fn visible_rows(c: &SharedConsole, v: &Viewer, q: &ListQuery) -> Result<Vec<store::JobRow<Job>>, ConsoleError> {
    let state = q.state.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = state
        && JobState::parse(s).is_none()
    {
        return Err(ConsoleError::Invalid { field: "state".into(), reason: format!("{s:?} is not a job state") });
    }
    // A tenant sees its own jobs whatever the query asks for.
    let tenant = match v.scope() {
        Some(t) => Some(t.to_string()),
        None => q.tenant.clone().filter(|t| !t.is_empty()),
    };
    Ok(c.store.recent_jobs(tenant.as_deref(), state, PAGE_JOBS).await?)
}

pub async fn submit(State(c): C, v: Viewer, Form(f): Form<SubmitForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    let svc = c.compute()?;
    let tenant = match v.scope() {
        Some(t) => t.to_string(),
        None => f.tenant.trim().to_string(),
    };
    let attempt = async {
        if c.identity().tenant(&tenant).is_none() {
            return Err(ConsoleError::Invalid { field: "tenant".into(), reason: format!("no tenant {tenant:?}; register it first") });
        }
        let spec = spec_of(&f)?;
        let name = Some(f.name.trim().to_string()).filter(|n| !n.is_empty());
        let by = jobs::Submitter::principal(v.principal.id.clone(), v.principal.role.max_job_priority());
        Ok(svc.submit_as(by, tenant.clone(), name, spec, None).await?)
    };
    match attempt.await {
        Ok((job, _)) => Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response()),
        Err(ConsoleError::Invalid { field, reason }) => {
            render_list(&c, &v, &ListQuery::default(), Some((&f, format!("{field}: {reason}")))).await
        }
        Err(e) => Err(e),
    }
}

/// A job the viewer may see, or not found.
async fn visible_job(c: &SharedConsole, v: &Viewer, id: &str) -> Result<Job, ConsoleError> {
    let job = c.compute()?.job(id).await?;
    if !v.may_see(&job.tenant) {
        return Err(ConsoleError::NotFound);
    }
    Ok(job.shown())
}

fn exclude_label(lang: Lang, reason: &str) -> &'static str {
    match (lang, reason) {
        (Lang::Zh, "residency") => "数据驻留要求不允许",
        (Lang::Zh, "no_matching_gpu_model") => "无符合要求的 GPU 型号",
        (Lang::Zh, "node_shape_too_small") => "单节点规格不足",
        (Lang::Zh, "no_capacity_now") => "当前无空闲容量",
        (Lang::Zh, "outside_origin_hub") => "不在来源枢纽",
        (Lang::Zh, "engine_unhealthy") => "执行引擎不可用",
        (_, "residency") => "residency rules forbid it",
        (_, "no_matching_gpu_model") => "no matching GPU model",
        (_, "node_shape_too_small") => "no node is large enough",
        (_, "no_capacity_now") => "no capacity free now",
        (_, "outside_origin_hub") => "outside the origin hub",
        (_, "engine_unhealthy") => "its engine does not answer",
        _ => "?",
    }
}

fn terms_row(lang: Lang, t: &ScoreTerms, chosen: bool) -> Markup {
    html! {
        tr class=[chosen.then_some("chosen")] {
            th scope="row" { a href={"/clusters/" (t.cluster)} { (t.cluster) } " " span class="muted" { "(" (if chosen { lang.t("chosen") } else { lang.t("runner_up") }) ")" } }
            td class="num" { (num(t.energy_cost_cny, 4)) }
            td class="num" { (num(t.carbon_cost_cny, 4)) }
            td class="num" { (num(t.delay_cost_cny, 4)) }
            td class="num" { (num(t.transfer_s, 1)) }
            td class="num" { (num(t.queue_s, 1)) }
            td class="num" { strong { (num(t.total_cny, 4)) } }
        }
    }
}

pub async fn show(State(c): C, v: Viewer, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    let job = visible_job(&c, &v, &id).await?;
    let svc = c.compute()?;
    let events = svc.events(&id).await?;
    let (log, state) = match svc.logs(&id, 0).await {
        Ok((chunk, state)) => (chunk, state),
        // The engine may be unreachable; the page still shows, and the stream retries.
        Err(_) => (executor::LogChunk { data: Vec::new(), next_offset: 0 }, job.state),
    };
    let shown = &log.data[..log.data.len().min(PAGE_LOG_BYTES)];
    let log_offset = shown.len();
    let after_seq = events.last().map_or(0, |e| e.seq);
    let title = job.name.clone().unwrap_or_else(|| job.id.clone());
    let body = html! {
        div data-live-job=(job.id) data-log-offset=(log_offset) data-after-seq=(after_seq) {
            dl class="facts" {
                dt { (lang.t("state")) } dd { span id="job-state" class={"badge state-" (state.as_str())} aria-live="polite" { (state_label(lang, state.as_str())) }
                    " " span id="live-status" class="muted" data-ended="" data-reconnecting="…" {} }
                dt { (lang.t("id")) } dd { code { (job.id) } }
                dt { (lang.t("tenant")) } dd { (job.tenant) }
                dt { (lang.t("kind")) } dd { (kind_label(lang, serde_json::to_value(job.spec.kind).ok().and_then(|k| k.as_str().map(String::from)).as_deref().unwrap_or(""))) }
                @if let Some(a) = job.spec.action_area { dt { (lang.t("action_area")) } dd { (area_label(lang, a)) } }
                // A CPU-only job asks for cores and memory only, so its page shows those rather
                // than "0 × 0" GPUs.
                dt { (lang.t("gpus")) } dd { @if job.spec.gpus == 0 { "0" } @else { (job.spec.gpus) " × " (num(f64::from(job.spec.gpu_milli) / 1000.0, 2)) } }
                dt { (lang.t("cpu_milli")) } dd { (job.spec.cpu_milli) }
                dt { (lang.t("memory_mib")) } dd { (job.spec.memory_mib) }
                dt { (lang.t("submitted")) } dd { (fmt_rfc3339(&job.submitted_at)) }
                dt { (lang.t("attempt")) } dd { (job.attempt) }
                @if let Some(code) = job.exit_code { dt { (lang.t("exit_code")) } dd { (code) } }
                @if let Some(u) = &job.usage { dt { (lang.t("gpu_hours")) } dd { (num(u.gpu_seconds / 3600.0, 4)) " · " (num(u.energy_cost_cny, 4)) " 元" } }
            }
            @if !state.is_terminal() {
                form id="cancel-form" method="post" action={"/jobs/" (job.id) "/cancel"} {
                    (csrf_field(&v))
                    button type="submit" class="danger" { (lang.t("cancel")) }
                }
            }
            h2 id="placement-heading" { (lang.t("placement")) }
            @match &job.placement {
                None => p { (lang.t("not_placed")) " " (job.state_reason.as_deref().unwrap_or("")) },
                Some(p) => {
                    p { (lang.t("policy")) ": " code { (serde_json::to_value(p.explanation.policy).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()) }
                        " · " (lang.t("pool")) " " (p.pool) " · node " (p.node)
                        @if !p.gpus.is_empty() { " · GPU " (p.gpus.iter().map(u8::to_string).collect::<Vec<_>>().join(",")) } }
                    table aria-labelledby="placement-heading" {
                        thead { tr { th scope="col" { (lang.t("cluster")) } th scope="col" class="num" { (lang.t("energy_cost")) } th scope="col" class="num" { (lang.t("carbon_cost")) }
                            th scope="col" class="num" { (lang.t("delay_cost")) } th scope="col" class="num" { (lang.t("transfer_s")) } th scope="col" class="num" { (lang.t("queue_s")) }
                            th scope="col" class="num" { (lang.t("total_cny")) } } }
                        tbody {
                            (terms_row(lang, &p.explanation.chosen, true))
                            @for t in &p.explanation.runners_up { (terms_row(lang, t, false)) }
                        }
                    }
                    @if !p.explanation.excluded.is_empty() {
                        h3 { (lang.t("excluded")) }
                        ul {
                            @for e in &p.explanation.excluded {
                                li { (e.cluster) ": " (exclude_label(lang, serde_json::to_value(e.reason).ok().and_then(|v| v.as_str().map(String::from)).as_deref().unwrap_or(""))) }
                            }
                        }
                    }
                }
            }
            h2 id="events-heading" { (lang.t("events")) }
            table id="job-events" aria-labelledby="events-heading" {
                thead { tr { th scope="col" { (lang.t("time")) } th scope="col" { (lang.t("state")) } th scope="col" { (lang.t("attempt")) } th scope="col" { (lang.t("reason")) } } }
                tbody {
                    @if events.is_empty() { (empty_row(lang, 4)) }
                    @for e in &events {
                        tr { td { (fmt_rfc3339(&e.event.at)) } td { (state_label(lang, e.event.state.as_str())) } td { (e.event.attempt) } td { (e.event.reason) } }
                    }
                }
            }
            h2 id="logs-heading" { (lang.t("logs")) " " span class="badge ok" { (lang.t("live")) } }
            pre id="job-log" class="log" tabindex="0" aria-labelledby="logs-heading" aria-live="off" { (String::from_utf8_lossy(shown)) }
        }
    };
    Ok(page(&v, Nav::Jobs, &format!("/jobs/{id}"), &format!("{} · {title}", lang.t("job")), body))
}

pub async fn cancel(State(c): C, v: Viewer, Path(id): Path<String>, Form(f): Form<CsrfForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    visible_job(&c, &v, &id).await?;
    c.compute()?.cancel(&id).await?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}
