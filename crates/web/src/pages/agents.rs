//! Agents: a tenant's agents (an operator sees every tenant's) with their model and tools, and
//! the agent runs of the last 24 hours with their usage, from the usage ledger: each run's
//! model steps (the gateway's events marked with their run, `refs.agent_run`) and tool calls (the
//! agents pillar's events), tokens and tool calls per run.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::Response;
use gateway::meter::RequestDetail;
use maud::html;
use serde::Deserialize;

use super::playground::{DeclareForm, declare_form, editing, play_form};
use crate::error::ConsoleError;
use crate::layout::{Nav, empty_row, fmt_ms, num, page, url_encode};
use crate::{C, Viewer};

/// Most ledger rows the page reads of each pillar.
const MAX_ROWS: u32 = 50_000;
/// Runs listed, newest first.
const RUNS: usize = 100;
const DAY_MS: i64 = 86_400_000;

/// One agent run's usage, from its ledger events.
#[derive(Debug, Default, PartialEq)]
pub struct RunUsage {
    pub tenant: String,
    pub agent: String,
    pub started_ms: i64,
    pub steps: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub tool_calls: u64,
    pub failed_tools: u64,
}

/// A run's entry, started at its earliest event.
fn run_of<'a>(out: &'a mut BTreeMap<String, RunUsage>, id: &str, tenant: &str, at_ms: i64) -> &'a mut RunUsage {
    let r = out.entry(id.to_string()).or_insert_with(|| RunUsage { tenant: tenant.to_string(), started_ms: at_ms, ..Default::default() });
    r.started_ms = r.started_ms.min(at_ms);
    r
}

/// Groups the ledger's step and tool-call events by response id.
pub fn runs(steps: &[ledger::Entry<RequestDetail>], tools: &[ledger::Entry<agents::usage::ToolDetail>]) -> BTreeMap<String, RunUsage> {
    let mut out: BTreeMap<String, RunUsage> = BTreeMap::new();
    for e in steps {
        let id = e.doc.reference("agent_run");
        if id.is_empty() {
            continue;
        }
        let r = run_of(&mut out, id, &e.tenant, e.at_ms);
        r.steps += 1;
        r.input_tokens += e.doc.detail.input_tokens;
        r.output_tokens += e.doc.detail.output_tokens;
    }
    for e in tools {
        let id = e.doc.reference("response_id");
        if id.is_empty() {
            continue;
        }
        let r = run_of(&mut out, id, &e.tenant, e.at_ms);
        r.agent = e.doc.reference("agent").to_string();
        r.tool_calls += 1;
        r.failed_tools += u64::from(e.doc.detail.status != "completed");
    }
    out
}

#[derive(Debug, Default, Deserialize)]
pub struct IndexQuery {
    /// `<tenant>/<id>`: the agent whose declaration the form starts from.
    edit: Option<String>,
}

pub async fn index(State(c): C, v: Viewer, Query(q): Query<IndexQuery>) -> Result<Response, ConsoleError> {
    let form = match &q.edit {
        Some(which) => Some(editing(&c, &v, which).await?),
        None => None,
    };
    render(&c, &v, form.as_ref(), None).await
}

/// The page, with the declaration form filled (an agent to change, or a refused attempt and
/// why).
pub async fn render(
    c: &crate::SharedConsole,
    v: &Viewer,
    form: Option<&DeclareForm>,
    refused: Option<&str>,
) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    let list = c.agents()?.list(v.scope()).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let from = c.now_ms() - DAY_MS;
    let steps: Vec<ledger::Entry<RequestDetail>> = c.store.usage(v.scope(), Some("gateway"), from, i64::MAX, MAX_ROWS).await?;
    let tools: Vec<ledger::Entry<agents::usage::ToolDetail>> =
        c.store.usage(v.scope(), Some(agents::usage::PILLAR), from, i64::MAX, MAX_ROWS).await?;
    let mut recent: Vec<(String, RunUsage)> = runs(&steps, &tools).into_iter().collect();
    recent.sort_by_key(|r| std::cmp::Reverse(r.1.started_ms));
    recent.truncate(RUNS);
    let body = html! {
        p class="muted" { (lang.t("agents_note")) }
        h2 id="agents-heading" { (lang.t("agents")) }
        table aria-labelledby="agents-heading" {
            thead { tr {
                th scope="col" { (lang.t("name")) }
                @if v.is_operator() { th scope="col" { (lang.t("tenant")) } }
                th scope="col" class="num" { (lang.t("version")) } th scope="col" { (lang.t("model")) } th scope="col" { (lang.t("tools")) }
                th scope="col" class="num" { (lang.t("max_steps")) } th scope="col" { (lang.t("created")) }
            } }
            tbody {
                @if list.is_empty() { (empty_row(lang, if v.is_operator() { 7 } else { 6 })) }
                @for a in &list {
                    tr {
                        th scope="row" { code { "agent:" (a.id) } " " a href={ "/agents?edit=" (url_encode(&a.tenant)) "/" (url_encode(&a.id)) "#declare-heading" } { (lang.t("change")) } }
                        @if v.is_operator() { td { (a.tenant) } }
                        td class="num" { (a.version) }
                        td { (a.spec.model) }
                        td { @for t in &a.spec.tools { span class="badge" { (tool_label(t)) } " " } }
                        td class="num" { (a.spec.limits.max_steps) }
                        td { (fmt_ms(a.created_ms)) }
                    }
                }
            }
        }
        (play_form(v, &list))
        h2 id="runs-heading" { (lang.t("agent_runs_24h")) }
        table aria-labelledby="runs-heading" {
            thead { tr {
                th scope="col" { (lang.t("response")) } th scope="col" { (lang.t("agent")) }
                @if v.is_operator() { th scope="col" { (lang.t("tenant")) } }
                th scope="col" { (lang.t("started")) } th scope="col" class="num" { (lang.t("steps")) }
                th scope="col" class="num" { (lang.t("tool_calls")) } th scope="col" class="num" { (lang.t("tokens_in")) }
                th scope="col" class="num" { (lang.t("tokens_out")) }
            } }
            tbody {
                @if recent.is_empty() { (empty_row(lang, if v.is_operator() { 8 } else { 7 })) }
                @for (id, r) in &recent {
                    tr {
                        th scope="row" { code { (id) } }
                        td { @if r.agent.is_empty() { "—" } @else { (r.agent) } }
                        @if v.is_operator() { td { (r.tenant) } }
                        td { (fmt_ms(r.started_ms)) }
                        td class="num" { (r.steps) }
                        td class="num" { (r.tool_calls) @if r.failed_tools > 0 { " (" (r.failed_tools) " " (lang.t("failed")) ")" } }
                        td class="num" { (num(r.input_tokens as f64, 0)) }
                        td class="num" { (num(r.output_tokens as f64, 0)) }
                    }
                }
            }
        }
        (declare_form(v, form, refused))
    };
    Ok(page(v, Nav::Agents, "/agents", lang.t("agents"), body))
}

fn tool_label(t: &agents::Tool) -> String {
    match t {
        agents::Tool::Function { name, .. } => format!("fn:{name}"),
        agents::Tool::Mcp(s) if s.is_stdio() => format!("mcp:{} (stdio)", s.server_label),
        agents::Tool::Mcp(s) => format!("mcp:{}", s.server_label),
        agents::Tool::FileSearch { collection_ids, .. } => format!("file_search:{}", collection_ids.join(",")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::borrow::Cow;

    use super::*;

    fn event<D>(tenant: &str, at_ms: i64, refs: &[(&'static str, &str)], detail: D) -> ledger::Entry<D> {
        store::UsageRow {
            id: format!("e{at_ms}"),
            at_ms,
            tenant: tenant.into(),
            pillar: "x".into(),
            doc: ledger::UsageEvent {
                principal: None,
                subject: ledger::Subject::default(),
                quantity: 1.0,
                unit: ledger::Unit::Requests,
                price_cny_per_unit: 0.0,
                energy_kwh: 0.0,
                carbon_kg: 0.0,
                money_cny: 0.0,
                refs: refs.iter().map(|(k, v)| (Cow::Borrowed(*k), v.to_string())).collect(),
                detail,
            },
        }
    }

    fn step(tokens: (u64, u64)) -> RequestDetail {
        RequestDetail {
            endpoint: "responses".into(),
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            tokens_reported: true,
            latency_ms: 1,
            status: 200,
            stream: false,
            blocked: false,
            refused: false,
        }
    }

    #[test]
    fn runs_sum_their_steps_and_tool_calls() {
        let steps = vec![
            event("t", 10, &[("request_id", "resp_a/step/1"), ("agent_run", "resp_a")], step((10, 4))),
            event("t", 20, &[("request_id", "resp_a/step/2"), ("agent_run", "resp_a")], step((30, 4))),
            event("t", 5, &[("request_id", "plain-request")], step((1, 1))),
            // A client that names its request like a step is still not an agent's.
            event("t", 6, &[("request_id", "resp_a/step/3")], step((1, 1))),
        ];
        let tool =
            |status: &str| agents::usage::ToolDetail { server_label: "s".into(), tool: "x".into(), status: status.into(), latency_ms: 1 };
        let tools = vec![
            event("t", 15, &[("response_id", "resp_a"), ("agent", "agent:h@1")], tool("completed")),
            event("t", 16, &[("response_id", "resp_a"), ("agent", "agent:h@1")], tool("failed")),
        ];
        let r = runs(&steps, &tools);
        assert_eq!(r.len(), 1, "a request that is not an agent's step is no run");
        assert_eq!(r["resp_a"].steps, 2, "only the gateway's mark makes a step");
        let a = &r["resp_a"];
        assert_eq!((a.steps, a.input_tokens, a.output_tokens, a.tool_calls, a.failed_tools), (2, 40, 8, 2, 1));
        assert_eq!((a.agent.as_str(), a.started_ms), ("agent:h@1", 10));
    }
}
