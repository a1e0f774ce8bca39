//! Simulation reports: run a replay from the console (a synthetic openb-shaped trace, or openb
//! files on the server), keep it, and open saved ones with charts of cost, carbon, waiting and
//! utilisation per policy and per hub. Operators only: a replay takes a core for a while. A
//! replay runs in the background (`runs`), one at a time, with a page that shows its progress.

pub mod runs;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use compute::Policy;
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use crate::charts::{Kind, Series, render};
use crate::error::ConsoleError;
use crate::layout::{Nav, csrf_field, empty_row, fmt_ms, num, page, pct, svg};
use crate::{C, Viewer};
use runs::overall_text;

/// Saved reports listed on the index.
const LIST: u32 = 50;
/// Most nodes a synthetic trace may have.
const MAX_NODES: usize = 20_000;

fn operator(v: &Viewer) -> Result<(), ConsoleError> {
    if v.is_operator() { Ok(()) } else { Err(ConsoleError::OperatorsOnly) }
}

pub async fn index(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    operator(&v)?;
    let lang = v.lang;
    let reports: Vec<(String, i64, Value)> = c.store.report_summaries(LIST).await?;
    let replays = c.sim_runs.list();
    let body = html! {
        h2 id="run-heading" { (lang.t("run_sim")) }
        form class="grid" method="post" action="/sim" aria-labelledby="run-heading" data-busy="…" {
            (csrf_field(&v))
            fieldset class="wide" {
                legend { (lang.t("source")) }
                label { input type="radio" name="source" value="synthetic" checked; (lang.t("synthetic")) }
                label { input type="radio" name="source" value="files"; (lang.t("files")) }
            }
            div { label for="sim-jobs" { (lang.t("sim_jobs")) } input id="sim-jobs" name="jobs" type="number" min="1" max=(c.cfg.max_sim_jobs) value="500"; }
            div { label for="sim-nodes" { (lang.t("nodes")) } input id="sim-nodes" name="nodes" type="number" min="1" max=(MAX_NODES) value="150"; }
            div { label for="sim-seed" { (lang.t("seed")) } input id="sim-seed" name="seed" type="number" min="0" value="1"; }
            div { label for="sim-tc" { (lang.t("time_compression")) } input id="sim-tc" name="time_compression" type="number" min="0.001" step="any" value="20"; }
            div { label for="sim-ns" { (lang.t("node_scale")) } input id="sim-ns" name="node_scale" type="number" min="0.001" step="any" value="1"; }
            fieldset class="wide" {
                legend { (lang.t("policies")) }
                @for p in Policy::ALL { label { input type="checkbox" name=(p.name()) value="on" checked; (p.name()) } }
            }
            div class="wide" { label for="sim-pods" { (lang.t("pods_path")) } input id="sim-pods" name="pods_path" placeholder="/path/openb_pod_list_default.csv"; }
            div class="wide" { label for="sim-node-list" { (lang.t("nodes_path")) } input id="sim-node-list" name="nodes_path" placeholder="/path/openb_node_list_all_node.csv"; }
            div { button type="submit" { (lang.t("run")) } }
        }
        // Runs of this process, so an operator who left a run's page can go back to it.
        @if !replays.is_empty() {
            h2 id="runs-heading" { (lang.t("sim_runs")) }
            table aria-labelledby="runs-heading" id="sim-runs" {
                thead { tr { th scope="col" { (lang.t("sim_run")) } th scope="col" { (lang.t("started")) } th scope="col" { (lang.t("state")) }
                    th scope="col" class="num" { (lang.t("progress")) } th scope="col" { (lang.t("report")) } } }
                tbody {
                    @for r in &replays {
                        tr { td { a href={"/sim/runs/" (r.id)} { code { (r.id) } } } td { (fmt_ms(r.started_ms)) } td { (runs::phase_label(lang, r)) }
                            td class="num" { (overall_text(lang, r)) }
                            td { @if let Some(id) = &r.report_id { a href={"/sim/" (id)} { code { (id) } } } } }
                    }
                }
            }
        }
        h2 id="saved-heading" { (lang.t("saved_reports")) }
        table aria-labelledby="saved-heading" {
            thead { tr { th scope="col" { (lang.t("report")) } th scope="col" { (lang.t("created")) } th scope="col" { (lang.t("source")) }
                th scope="col" class="num" { (lang.t("sim_jobs")) } th scope="col" class="num" { "GPUs" } th scope="col" class="num" { (lang.t("seed")) } } }
            tbody {
                @if reports.is_empty() { (empty_row(lang, 6)) }
                @for (id, at, s) in &reports {
                    tr { td { a href={"/sim/" (id)} { code { (id) } } } td { (fmt_ms(*at)) } td { (s["source"].as_str().unwrap_or("")) }
                        td class="num" { (s["jobs"]) } td class="num" { (s["gpus"]) } td class="num" { (s["seed"]) } }
                }
            }
        }
    };
    Ok(page(&v, Nav::Sim, "/sim", lang.t("sim"), body))
}

#[derive(Deserialize)]
pub struct RunForm {
    csrf: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    jobs: String,
    #[serde(default)]
    nodes: String,
    #[serde(default)]
    seed: String,
    #[serde(default)]
    time_compression: String,
    #[serde(default)]
    node_scale: String,
    nearest: Option<String>,
    #[serde(rename = "round-robin")]
    round_robin: Option<String>,
    cheapest: Option<String>,
    aiplus: Option<String>,
    #[serde(default)]
    pods_path: String,
    #[serde(default)]
    nodes_path: String,
}

fn parse<T: std::str::FromStr>(field: &str, s: &str, default: T) -> Result<T, ConsoleError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(default);
    }
    s.parse().map_err(|_| ConsoleError::Invalid { field: field.into(), reason: format!("{s:?} is not a number") })
}

pub async fn run(State(c): C, v: Viewer, Form(f): Form<RunForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    operator(&v)?;
    let jobs: usize = parse("jobs", &f.jobs, 500)?;
    if !(1..=c.cfg.max_sim_jobs).contains(&jobs) {
        return Err(ConsoleError::Invalid { field: "jobs".into(), reason: format!("use 1 to {}", c.cfg.max_sim_jobs) });
    }
    let nodes: usize = parse("nodes", &f.nodes, 150)?;
    if !(1..=MAX_NODES).contains(&nodes) {
        return Err(ConsoleError::Invalid { field: "nodes".into(), reason: format!("use 1 to {MAX_NODES}") });
    }
    let seed: u64 = parse("seed", &f.seed, 1)?;
    let time_compression: f64 = parse("time_compression", &f.time_compression, 1.0)?;
    let node_scale: f64 = parse("node_scale", &f.node_scale, 1.0)?;
    for (field, x) in [("time_compression", time_compression), ("node_scale", node_scale)] {
        if !(x.is_finite() && x > 0.0 && x <= 10_000.0) {
            return Err(ConsoleError::Invalid { field: field.into(), reason: "use a number above 0, at most 10000".into() });
        }
    }
    let policies: Vec<Policy> =
        [(&f.nearest, Policy::Nearest), (&f.round_robin, Policy::RoundRobin), (&f.cheapest, Policy::Cheapest), (&f.aiplus, Policy::Aiplus)]
            .into_iter()
            .filter(|(on, _)| on.is_some())
            .map(|(_, p)| p)
            .collect();
    if policies.is_empty() {
        return Err(ConsoleError::Invalid { field: "policies".into(), reason: "choose at least one policy".into() });
    }
    let source = if f.source == "files" { "files" } else { "synthetic" };
    let (pods_path, nodes_path) = (f.pods_path.trim().to_string(), f.nodes_path.trim().to_string());
    if source == "files" {
        for (field, p) in [("pods_path", &pods_path), ("nodes_path", &nodes_path)] {
            if !p.ends_with(".csv") {
                return Err(ConsoleError::Invalid {
                    field: field.into(),
                    reason: "give the path of an openb .csv file on the server".into(),
                });
            }
        }
    }
    // Taken here, before anything starts, so a second replay is refused at once; the
    // background task owns it until the report is saved or the replay failed.
    let Ok(permit) = c.sim_permit.clone().try_acquire_owned() else { return Err(ConsoleError::Busy(v.lang.t("sim_busy").into())) };
    let base = match &c.compute {
        Some(svc) => svc.network().await.spec.clone(),
        None => c.seed_network.spec.clone(),
    };
    let opts = sim::SimOptions {
        scenario: sim::ScenarioOptions {
            seed,
            node_scale,
            job_copies: 1,
            time_compression,
            max_jobs: Some(jobs),
            deferrable_share: sim::scenario::DEFAULT_DEFERRABLE_SHARE,
        },
        policies,
        weights: compute::Weights::default(),
        sample_interval_s: None,
        bound_iterations: sim::DEFAULT_BOUND_ITERATIONS,
    };
    let req = runs::Request { source, jobs, nodes, seed, time_compression, node_scale, pods_path, nodes_path, opts };
    let run_id = runs::start(&c, permit, base, req);
    Ok(Redirect::to(&format!("/sim/runs/{run_id}")).into_response())
}

async fn load(c: &crate::SharedConsole, id: &str) -> Result<store::ReportRow<Value, Value>, ConsoleError> {
    if id.len() > 64 {
        return Err(ConsoleError::NotFound);
    }
    c.store.report(id).await?.ok_or(ConsoleError::NotFound)
}

pub async fn show(State(c): C, v: Viewer, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    operator(&v)?;
    let lang = v.lang;
    let row = load(&c, &id).await?;
    let r = &row.doc["report"];
    let policies = r["policies"].as_array().cloned().unwrap_or_default();
    let f = |p: &Value, k: &str| p[k].as_f64().unwrap_or(f64::NAN);
    let nearest = policies.iter().find(|p| p["name"] == "nearest");
    let rel = |p: &Value, k: &str| nearest.map_or(f64::NAN, |n| if f(n, k) > 0.0 { f(p, k) / f(n, k) } else { f64::NAN });
    let labels: Vec<String> = policies.iter().map(|p| p["name"].as_str().unwrap_or("").to_string()).collect();
    let series = vec![
        Series { name: lang.t("energy_cost"), values: policies.iter().map(|p| rel(p, "energy_cost_cny")).collect() },
        Series { name: lang.t("carbon_kg"), values: policies.iter().map(|p| rel(p, "carbon_kg")).collect() },
        Series { name: lang.t("wait_p95"), values: policies.iter().map(|p| rel(p, "wait_s_p95")).collect() },
        Series { name: lang.t("utilisation"), values: policies.iter().map(|p| f(p, "utilisation")).collect() },
    ];
    let bars = render("policies", lang.t("policy_bars"), &labels, &series, Kind::Bars);
    let lb = &r["lower_bound"];
    let body = html! {
        p { (lang.t("created")) " " (fmt_ms(row.created_ms)) " · " (lang.t("source")) " " (row.summary["source"].as_str().unwrap_or(""))
            " · " (lang.t("sim_jobs")) " " (r["jobs"]) " · GPUs " (r["gpus"]) " · " (lang.t("seed")) " " (r["seed"]) }
        h2 id="policies-heading" { (lang.t("policies")) }
        table aria-labelledby="policies-heading" id="policy-table" {
            thead { tr { th scope="col" { (lang.t("policy")) } th scope="col" class="num" { (lang.t("energy_cost")) } th scope="col" class="num" { (lang.t("carbon_kg")) }
                th scope="col" class="num" { (lang.t("total_cny")) } th scope="col" class="num" { (lang.t("wait_p50")) } th scope="col" class="num" { (lang.t("wait_p95")) }
                th scope="col" class="num" { (lang.t("utilisation")) } th scope="col" class="num" { (lang.t("unplaced")) } th scope="col" class="num" { (lang.t("violations")) } } }
            tbody {
                @for p in &policies {
                    tr { th scope="row" { (p["name"].as_str().unwrap_or("")) } td class="num" { (num(f(p, "energy_cost_cny"), 2)) } td class="num" { (num(f(p, "carbon_kg"), 1)) }
                        td class="num" { (num(f(p, "objective_cny"), 2)) } td class="num" { (num(f(p, "wait_s_p50"), 1)) } td class="num" { (num(f(p, "wait_s_p95"), 1)) }
                        td class="num" { (pct(f(p, "utilisation"))) } td class="num" { (p["unplaced"]) } td class="num" { (p["violations"]) } }
                }
                tr { th scope="row" { (lang.t("lower_bound")) } td class="num" { (num(f(lb, "energy_cost_cny"), 2)) } td class="num" { (num(f(lb, "carbon_kg"), 1)) }
                    td class="num" { (num(f(lb, "objective_cny"), 2)) } td {} td {} td {} td {} td {} }
            }
        }
        figure { (svg(bars)) }
        h2 id="chart-heading" { (lang.t("chart_alt")) }
        figure {
            img src={"/sim/" (id) "/chart.svg"} alt=(lang.t("chart_alt")) loading="lazy";
        }
    };
    Ok(page(&v, Nav::Sim, &format!("/sim/{id}"), &format!("{} · {id}", lang.t("report")), body))
}

pub async fn chart(State(c): C, v: Viewer, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    operator(&v)?;
    let row = load(&c, &id).await?;
    let mut r = row.doc["chart_svg"].as_str().unwrap_or("").to_string().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    crate::assets::secure_headers(r.headers_mut());
    Ok(r)
}
