//! The agents page's two forms: declaring an agent (its declaration as JSON, checked by the
//! agents service like the API's `PUT`), and the playground, which runs an agent on the
//! Responses API as the viewer and streams its events to the page's script as they happen
//! (tool lists, tool calls with arguments and results, searches, the answer, the usage).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, body::Bytes};
use identity::{Principal, Scope};
use maud::{Markup, html};
use serde::Deserialize;

use crate::error::ConsoleError;
use crate::layout::csrf_field;
use crate::{C, Viewer};

/// Longest playground message (the Responses API takes more; a console form needs no more).
pub const MAX_PLAY_INPUT_CHARS: usize = 16_000;

/// What a new agent's declaration starts as in the form.
const EXAMPLE: &str = "{\n  \"model\": \"chat\",\n  \"instructions\": \"You are a helpful assistant.\",\n  \"tools\": []\n}";

#[derive(Debug, Default, Deserialize)]
pub struct DeclareForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub id: String,
    /// Operators name the tenant; a tenant's viewer declares its own.
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub spec: String,
}

#[derive(Debug, Deserialize)]
pub struct PlayForm {
    #[serde(default)]
    csrf: String,
    /// `<tenant>/<agent id>`.
    #[serde(default)]
    agent: String,
    #[serde(default)]
    input: String,
}

impl From<agents::AgentError> for ConsoleError {
    fn from(e: agents::AgentError) -> Self {
        match e {
            agents::AgentError::Invalid { field, reason } => ConsoleError::Invalid { field, reason },
            agents::AgentError::NotFound { .. } => ConsoleError::NotFound,
            other => ConsoleError::Internal(other.to_string()),
        }
    }
}

/// The declaration form: empty, an agent's declaration to change, or the last attempt's
/// values with why it was refused.
pub fn declare_form(v: &Viewer, f: Option<&DeclareForm>, refused: Option<&str>) -> Markup {
    let lang = v.lang;
    let spec = f.map_or(EXAMPLE, |f| f.spec.as_str());
    html! {
        h2 id="declare-heading" { (lang.t("declare_agent")) }
        form class="grid" method="post" action="/agents" aria-labelledby="declare-heading" {
            (csrf_field(v))
            div { label for="agent-id" { (lang.t("agent_id")) }
                input id="agent-id" name="id" required maxlength="64" pattern="[A-Za-z0-9_\\-]{1,64}" value=(f.map_or("", |f| f.id.as_str())); }
            @if v.is_operator() {
                div { label for="agent-tenant" { (lang.t("tenant")) }
                    input id="agent-tenant" name="tenant" required maxlength="64" value=(f.map_or("", |f| f.tenant.as_str())); }
            }
            div class="wide" { label for="agent-spec" { (lang.t("agent_spec")) }
                textarea id="agent-spec" name="spec" rows="8" required aria-describedby="agent-spec-hint" { (spec) }
                small id="agent-spec-hint" class="muted" { (lang.t("agent_spec_hint")) } }
            div { button type="submit" { (lang.t("declare")) } }
            @if let Some(why) = refused { p class="error-detail" role="alert" id="declare-error" { (lang.t("bad_input")) ": " (why) } }
        }
    }
}

/// The playground: an agent, a message, and where its run streams to.
pub fn play_form(v: &Viewer, list: &[agents::Agent]) -> Markup {
    let lang = v.lang;
    html! {
        h2 id="play-heading" { (lang.t("playground")) }
        p class="muted" { (lang.t("playground_note")) }
        form class="grid" method="post" action="/agents/playground" data-playground aria-labelledby="play-heading"
            data-running=(lang.t("running_ellipsis")) data-label-tools=(lang.t("play_tools")) data-label-call=(lang.t("play_call"))
            data-label-search=(lang.t("play_search")) data-label-client=(lang.t("play_client")) data-label-approval=(lang.t("play_approval"))
            data-label-usage=(lang.t("play_usage")) {
            (csrf_field(v))
            div { label for="play-agent" { (lang.t("agent")) }
                select id="play-agent" name="agent" required {
                    @for a in list { option value={ (a.tenant) "/" (a.id) } { "agent:" (a.id) @if v.is_operator() { " (" (a.tenant) ")" } } }
                }
            }
            div class="wide" { label for="play-input" { (lang.t("message")) }
                textarea id="play-input" name="input" rows="3" required maxlength=(MAX_PLAY_INPUT_CHARS) {} }
            div { button type="submit" disabled[list.is_empty()] { (lang.t("run")) } }
        }
        ol id="play-steps" class="steps" aria-live="polite" aria-label=(lang.t("steps")) {}
        p id="play-answer" class="answer" aria-live="polite" {}
        p id="play-usage" class="muted" {}
    }
}

/// `POST /agents`: declares or changes an agent, then back to the page (or the form again,
/// naming the field).
pub async fn declare(State(c): C, v: Viewer, Form(f): Form<DeclareForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    let tenant = match v.scope() {
        Some(t) => t.to_string(),
        None => f.tenant.trim().to_string(),
    };
    let attempt = async {
        if c.identity().tenant(&tenant).is_none() {
            return Err(ConsoleError::Invalid { field: "tenant".into(), reason: format!("no tenant {tenant:?}") });
        }
        let spec: agents::AgentSpec = serde_json::from_str(&f.spec)
            .map_err(|e| ConsoleError::Invalid { field: "spec".into(), reason: format!("not a valid declaration: {e}") })?;
        c.agents()?.put(&tenant, f.id.trim(), spec).await?;
        Ok(())
    };
    match attempt.await {
        Ok(()) => Ok(Redirect::to("/agents").into_response()),
        Err(ConsoleError::Invalid { field, reason }) => super::agents::render(&c, &v, Some(&f), Some(&format!("{field}: {reason}"))).await,
        Err(e) => Err(e),
    }
}

/// An agent's newest declaration as the form shows it for a change: header and environment
/// values read `***`, which the agents service reads back as "keep the stored value".
pub async fn editing(c: &crate::SharedConsole, v: &Viewer, which: &str) -> Result<DeclareForm, ConsoleError> {
    let (tenant, id) = which.split_once('/').ok_or(ConsoleError::NotFound)?;
    if !v.may_see(tenant) {
        return Err(ConsoleError::NotFound);
    }
    let agent = c.agents()?.get(tenant, id, None).await?;
    let spec = serde_json::to_string_pretty(&agent.view().spec).map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(DeclareForm { csrf: String::new(), id: agent.id, tenant: agent.tenant, spec })
}

/// Who a playground run is made as: the viewer when it is the agent's tenant's own session; an
/// operator runs a tenant's agent as an internal member of that tenant named after it, so the
/// usage is the tenant's and the ledger says who caused it.
fn caller_for(v: &Viewer, tenant: &str) -> Result<Arc<Principal>, ConsoleError> {
    if !v.is_operator() {
        return if v.principal.tenant_id() == tenant { Ok(v.principal.clone()) } else { Err(ConsoleError::NotFound) };
    }
    Ok(Arc::new(Principal::internal_tenant(format!("console:{}", v.principal.id), tenant.to_string(), &[Scope::Inference])))
}

/// `POST /agents/playground`: runs the agent, streaming the Responses API's events.
pub async fn play(State(c): C, v: Viewer, Form(f): Form<PlayForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    let (tenant, id) =
        f.agent.split_once('/').ok_or_else(|| ConsoleError::Invalid { field: "agent".into(), reason: "choose an agent".into() })?;
    if !v.may_see(tenant) {
        return Err(ConsoleError::NotFound);
    }
    // Refused here as on the API: another tenant's agent is not found.
    c.agents()?.get(tenant, id, None).await?;
    if f.input.trim().is_empty() || f.input.chars().count() > MAX_PLAY_INPUT_CHARS {
        return Err(ConsoleError::Invalid { field: "input".into(), reason: format!("1 to {MAX_PLAY_INPUT_CHARS} characters") });
    }
    let body = serde_json::json!({"model": format!("agent:{id}"), "input": f.input, "stream": true});
    let who = Some(Extension(caller_for(&v, tenant)?));
    Ok(gateway::responses::create(State(c.gateway.clone()), who, HeaderMap::new(), Bytes::from(body.to_string())).await)
}
