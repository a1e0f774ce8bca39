//! Replays running in the background: the form's post starts one and answers at once with its
//! run page, which shows each policy's progress and follows it without reloading (a JSON status
//! polled by `static/sim.js`). A run is this process's work, so its state lives in memory; its
//! report, once saved, is in the store like any other.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use compute::Policy;
use maud::html;
use serde_json::{Value, json};

use super::operator;
use crate::error::ConsoleError;
use crate::i18n::Lang;
use crate::layout::{Nav, fmt_ms, num, page};
use crate::{C, SharedConsole, Viewer};

/// Finished runs remembered for their pages; older ones are forgotten (their reports stay in
/// the store). Only one run goes at a time, so the list holds at most this many and one more.
pub const KEEP_FINISHED: usize = 16;
/// Longest run id looked up; anything longer is no run of ours.
const MAX_ID_CHARS: usize = 64;

/// Where a run is. The bounds are computed after every policy has replayed, with no progress
/// of their own: naming that phase keeps full bars from looking stuck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Preparing,
    Replaying,
    Bound,
    Saving,
    Finished,
    Failed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Replaying => "replaying",
            Phase::Bound => "bound",
            Phase::Saving => "saving",
            Phase::Finished => "finished",
            Phase::Failed => "failed",
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        lang.t(match self {
            Phase::Preparing => "sim_phase_preparing",
            Phase::Replaying => "sim_phase_replaying",
            Phase::Bound => "sim_phase_bound",
            Phase::Saving => "sim_phase_saving",
            Phase::Finished => "sim_phase_finished",
            Phase::Failed => "sim_phase_failed",
        })
    }

    pub fn is_over(self) -> bool {
        matches!(self, Phase::Finished | Phase::Failed)
    }

    /// What the status answers in `state`: a script needs only to know whether to keep asking.
    fn state(self) -> &'static str {
        match self {
            Phase::Finished => "finished",
            Phase::Failed => "failed",
            _ => "running",
        }
    }
}

/// One policy's replay: jobs finished of all (0 of 0 until the replay first reports, when the
/// total is not known beforehand).
#[derive(Clone, Debug)]
pub struct PolicyProgress {
    pub policy: Policy,
    pub done: u64,
    pub total: u64,
}

#[derive(Clone, Debug)]
pub struct RunState {
    pub id: String,
    pub started_ms: i64,
    pub source: &'static str,
    pub phase: Phase,
    pub policies: Vec<PolicyProgress>,
    pub report_id: Option<String>,
    pub error: Option<String>,
}

/// The replays of this process, oldest first, bounded by [`KEEP_FINISHED`].
#[derive(Default)]
pub struct SimRuns {
    runs: Mutex<VecDeque<RunState>>,
}

impl SimRuns {
    /// The list is plain data, every change to it a single assignment, so a holder that
    /// panicked left nothing half-done: poisoning is ignored rather than failing every page.
    fn lock(&self) -> MutexGuard<'_, VecDeque<RunState>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a run, forgetting the oldest finished ones beyond [`KEEP_FINISHED`].
    pub fn add(&self, run: RunState) {
        let mut runs = self.lock();
        runs.push_back(run);
        while runs.iter().filter(|r| r.phase.is_over()).count() > KEEP_FINISHED {
            let Some(oldest) = runs.iter().position(|r| r.phase.is_over()) else { break };
            runs.remove(oldest);
        }
    }

    pub fn get(&self, id: &str) -> Option<RunState> {
        self.lock().iter().find(|r| r.id == id).cloned()
    }

    /// Every remembered run, newest first.
    pub fn list(&self) -> Vec<RunState> {
        self.lock().iter().rev().cloned().collect()
    }

    /// Changes a run's state; a run no longer remembered is left alone.
    fn update(&self, id: &str, f: impl FnOnce(&mut RunState)) {
        if let Some(r) = self.lock().iter_mut().find(|r| r.id == id) {
            f(r);
        }
    }
}

/// What a validated form asks to replay.
pub struct Request {
    pub source: &'static str,
    pub jobs: usize,
    pub nodes: usize,
    pub seed: u64,
    pub time_compression: f64,
    pub node_scale: f64,
    pub pods_path: String,
    pub nodes_path: String,
    pub opts: sim::SimOptions,
}

/// Starts a replay on a blocking task that holds `permit` until the report is saved (or the
/// replay failed), and returns the run's id at once.
pub fn start(c: &SharedConsole, permit: tokio::sync::OwnedSemaphorePermit, base: compute::NetworkSpec, req: Request) -> String {
    let id = format!("run_{}", uuid::Uuid::now_v7().simple());
    // A synthetic trace has as many jobs as asked; files say how many only once read.
    let expected = if req.source == "synthetic" { req.jobs as u64 } else { 0 };
    c.sim_runs.add(RunState {
        id: id.clone(),
        started_ms: c.now_ms(),
        source: req.source,
        phase: Phase::Preparing,
        policies: req.opts.policies.iter().map(|&policy| PolicyProgress { policy, done: 0, total: expected }).collect(),
        report_id: None,
        error: None,
    });
    let (c, run_id) = (c.clone(), id.clone());
    tokio::spawn(async move {
        let _permit = permit;
        let outcome = match replay(&c, &run_id, base, &req).await {
            Ok((report, chart)) => {
                c.sim_runs.update(&run_id, |r| r.phase = Phase::Saving);
                save(&c, &req, report, chart).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(report_id) => c.sim_runs.update(&run_id, |r| {
                r.phase = Phase::Finished;
                r.report_id = Some(report_id);
            }),
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "a replay from the console failed");
                c.sim_runs.update(&run_id, |r| {
                    r.phase = Phase::Failed;
                    r.error = Some(e.to_string());
                });
            }
        }
    });
    id
}

/// Reads or draws the trace and replays it off the async threads, reporting progress into the
/// run's state as the simulator reports it.
async fn replay(c: &SharedConsole, run_id: &str, base: compute::NetworkSpec, req: &Request) -> Result<(Value, String), ConsoleError> {
    let (c, run_id) = (c.clone(), run_id.to_string());
    let (source, jobs, nodes, seed) = (req.source, req.jobs, req.nodes, req.seed);
    let (pods_path, nodes_path, opts) = (req.pods_path.clone(), req.nodes_path.clone(), req.opts.clone());
    let last = opts.policies.last().copied();
    tokio::task::spawn_blocking(move || -> Result<(Value, String), ConsoleError> {
        let (node_list, pod_list) = if source == "files" {
            let bad = |field: &str, e: sim::trace::TraceError| ConsoleError::Invalid { field: field.into(), reason: e.to_string() };
            (
                sim::trace::read_nodes_file(std::path::Path::new(&nodes_path)).map_err(|e| bad("nodes_path", e))?,
                sim::trace::read_pods_file(std::path::Path::new(&pods_path)).map_err(|e| bad("pods_path", e))?,
            )
        } else {
            sim::synthetic::generate(seed, jobs, nodes)
        };
        c.sim_runs.update(&run_id, |r| r.phase = Phase::Replaying);
        let report = sim::simulate(&base, &node_list, &pod_list, &opts, &mut |policy, p| {
            c.sim_runs.update(&run_id, |r| {
                if let Some(x) = r.policies.iter_mut().find(|x| x.policy == policy) {
                    (x.done, x.total) = (p.done, p.total);
                }
                // Policies replay in the order asked; when the last is done, the bounds follow.
                if Some(policy) == last && p.done >= p.total {
                    r.phase = Phase::Bound;
                }
            });
        })
        .map_err(|e| ConsoleError::Invalid { field: "trace".into(), reason: e.to_string() })?;
        let chart = sim::chart::render_svg(&report);
        let doc = serde_json::to_value(&report).map_err(|e| ConsoleError::Internal(e.to_string()))?;
        Ok((doc, chart))
    })
    .await
    .map_err(|e| ConsoleError::Internal(format!("the replay stopped: {e}")))?
}

/// Stores the report (the store keeps only the newest `console.max_sim_reports`); its id.
async fn save(c: &SharedConsole, req: &Request, report: Value, chart: String) -> Result<String, ConsoleError> {
    let id = format!("sim_{}", uuid::Uuid::now_v7().simple());
    let summary = json!({"source": req.source, "jobs": report["jobs"], "nodes": report["nodes"], "gpus": report["gpus"], "seed": report["seed"],
                         "time_compression": req.time_compression, "node_scale": req.node_scale});
    c.store.insert_report(&id, c.now_ms(), &summary, &json!({"report": report, "chart_svg": chart}), c.cfg.max_sim_reports).await?;
    Ok(id)
}

fn find(c: &SharedConsole, id: &str) -> Result<RunState, ConsoleError> {
    if id.len() > MAX_ID_CHARS {
        return Err(ConsoleError::NotFound);
    }
    c.sim_runs.get(id).ok_or(ConsoleError::NotFound)
}

/// "12,000 / 20,000 jobs", or "— jobs" before the total is known.
fn jobs_text(lang: Lang, done: u64, total: u64) -> String {
    if total == 0 {
        return format!("— {}", lang.t("jobs_unit"));
    }
    format!("{} / {} {}", num(done as f64, 0), num(total as f64, 0), lang.t("jobs_unit"))
}

/// All policies' jobs together, for the list of runs.
pub fn overall_text(lang: Lang, r: &RunState) -> String {
    let total: u64 = r.policies.iter().map(|p| p.total).sum();
    let done: u64 = r.policies.iter().map(|p| p.done).sum();
    jobs_text(lang, done, total)
}

pub fn phase_label(lang: Lang, r: &RunState) -> &'static str {
    r.phase.label(lang)
}

pub async fn show(State(c): C, v: Viewer, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    operator(&v)?;
    let lang = v.lang;
    let r = find(&c, &id)?;
    let body = html! {
        div id="sim-run" data-sim-run=(r.id) data-state=(r.phase.state()) {
            p { (lang.t("started")) " " (fmt_ms(r.started_ms)) " · " (lang.t("source")) " " (lang.t(if r.source == "files" { "files" } else { "synthetic" })) }
            p id="sim-phase" role="status" { (r.phase.label(lang)) }
            h2 id="progress-heading" { (lang.t("progress")) }
            ul class="sim-progress" aria-labelledby="progress-heading" {
                @for p in &r.policies {
                    li {
                        label for={"sim-progress-" (p.policy.name())} { (p.policy.name()) }
                        " "
                        // Without a total yet, no value: the bar shows as indeterminate.
                        @if p.total > 0 {
                            progress id={"sim-progress-" (p.policy.name())} max=(p.total) value=(p.done) { (jobs_text(lang, p.done, p.total)) }
                        } @else {
                            progress id={"sim-progress-" (p.policy.name())} { (jobs_text(lang, p.done, p.total)) }
                        }
                        " "
                        span id={"sim-text-" (p.policy.name())} { (jobs_text(lang, p.done, p.total)) }
                    }
                }
            }
            @if let Some(report) = &r.report_id {
                p { a id="sim-report-link" href={"/sim/" (report)} { (lang.t("open_report")) } }
            }
            @if let Some(e) = &r.error {
                p id="sim-error" class="error" role="alert" { (e) }
            }
            @if !r.phase.is_over() {
                p id="sim-refresh" { (lang.t("sim_run_note")) " " a href={"/sim/runs/" (r.id)} { (lang.t("refresh")) } }
            }
        }
        script src=(crate::assets::SIM_JS_URL) defer {}
    };
    Ok(page(&v, Nav::Sim, &format!("/sim/runs/{id}"), &format!("{} · {id}", lang.t("sim_run")), body))
}

/// The run's state as JSON, for the run page's script: texts come ready to show, in the
/// viewer's language.
pub async fn status(State(c): C, v: Viewer, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    operator(&v)?;
    let lang = v.lang;
    let r = find(&c, &id)?;
    let policies: Vec<Value> = r
        .policies
        .iter()
        .map(|p| json!({"name": p.policy.name(), "done": p.done, "total": p.total, "text": jobs_text(lang, p.done, p.total)}))
        .collect();
    let body = json!({
        "id": r.id,
        "state": r.phase.state(),
        "phase": r.phase.name(),
        "phase_label": r.phase.label(lang),
        "policies": policies,
        "report_url": r.report_id.as_ref().map(|id| format!("/sim/{id}")),
        "error": r.error,
    });
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    crate::assets::secure_headers(resp.headers_mut());
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, phase: Phase) -> RunState {
        RunState { id: id.into(), started_ms: 0, source: "synthetic", phase, policies: vec![], report_id: None, error: None }
    }

    #[test]
    fn only_the_newest_finished_runs_are_remembered_and_running_ones_never_forgotten() {
        let runs = SimRuns::default();
        runs.add(run("running", Phase::Replaying));
        for i in 0..KEEP_FINISHED + 3 {
            runs.add(run(&format!("done{i}"), if i % 2 == 0 { Phase::Finished } else { Phase::Failed }));
        }
        let ids: Vec<String> = runs.list().into_iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), KEEP_FINISHED + 1);
        assert_eq!(ids.first().map(String::as_str), Some("done18"), "newest first");
        assert!(ids.contains(&"running".to_string()), "a running run is kept however old");
        assert!(runs.get("done2").is_none() && runs.get("done3").is_some(), "the oldest finished go first");
    }
}
