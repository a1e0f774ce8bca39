//! The OpenAPI 3.1 document of aiplus's own API (served at `/api/v1/openapi.json`): the
//! compute network and jobs, the usage ledger, and the gateway's management (keys, tenants,
//! models, status, metrics). The OpenAI-compatible `/v1` endpoints follow OpenAI's own spec and
//! are listed here by path only.
//!
//! Written as a table of operations so that adding an endpoint is one line; a test checks that
//! every documented operation is routed.

use serde_json::{Value, json};

mod agent_schemas;
mod data_schemas;
mod eval_schemas;
mod govern_schemas;
mod oss_schemas;
mod schemas;

/// A tenant's id, as `identity::tenant_id_ok` checks it.
const TENANT_PATTERN: &str = "^[a-z0-9_-]{1,64}$";

/// (method, path, tag, summary, request body schema, success status)
type Op = (&'static str, &'static str, &'static str, &'static str, Option<&'static str>, u16);

pub const OPERATIONS: &[Op] = &[
    ("get", "/healthz", "system", "Liveness: 200 while the server runs.", None, 200),
    ("get", "/metrics", "system", "Prometheus metrics of the gateway (text exposition format).", None, 200),
    ("get", "/api/v1/openapi.json", "system", "This document.", None, 200),
    ("get", "/api/v1/whoami", "identity", "Who the caller is: principal, role, tenant, scopes, and the tenant it acts for.", None, 200),
    ("get", "/api/v1/network", "compute", "The whole compute network: hubs, clusters, links, GPU models.", None, 200),
    ("get", "/api/v1/hubs", "compute", "List hubs.", None, 200),
    ("post", "/api/v1/hubs", "compute", "Register a hub with its links to existing hubs.", Some("HubRegistration"), 201),
    ("get", "/api/v1/hubs/{id}", "compute", "One hub.", None, 200),
    ("put", "/api/v1/hubs/{id}", "compute", "Replace a hub's description (and the links named).", Some("HubRegistration"), 200),
    ("get", "/api/v1/clusters", "compute", "List clusters with live use, the tariff now and carbon intensity.", None, 200),
    ("post", "/api/v1/clusters", "compute", "Register a cluster.", Some("Cluster"), 201),
    ("get", "/api/v1/clusters/{id}", "compute", "One cluster with its node pools and live use.", None, 200),
    ("put", "/api/v1/clusters/{id}", "compute", "Replace a cluster's description.", Some("Cluster"), 200),
    ("get", "/api/v1/jobs", "jobs", "List jobs, oldest first (tenant, state, after, limit).", None, 200),
    ("post", "/api/v1/jobs", "jobs", "Submit a job (Idempotency-Key header makes retries safe).", Some("JobSubmission"), 201),
    ("get", "/api/v1/jobs/{id}", "jobs", "One job with its run, attempt and usage.", None, 200),
    ("post", "/api/v1/jobs/{id}/cancel", "jobs", "Cancel a job that has not ended.", None, 200),
    ("get", "/api/v1/jobs/{id}/placement", "jobs", "Where the job was placed and why: score terms, runners-up, exclusions.", None, 200),
    ("get", "/api/v1/jobs/{id}/events", "jobs", "The job's lifecycle events.", None, 200),
    ("get", "/api/v1/jobs/{id}/logs", "jobs", "The job's output from an offset, or followed as SSE (follow=true).", None, 200),
    ("get", "/api/v1/usage", "usage", "Usage ledger events (tenant, pillar, from_ms, to_ms, limit).", None, 200),
    (
        "get",
        "/api/v1/usage/summary",
        "usage",
        "The ledger's summaries by UTC day, tenant, pillar, principal and model (tenant, pillar, principal, model, from_ms, to_ms, by).",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/keys",
        "identity",
        "List API keys (prefixes only): the caller's tenant's, or every tenant's for operators.",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/keys",
        "identity",
        "Create an API key for the caller's tenant; the response carries its secret, once.",
        Some("KeyCreate"),
        201,
    ),
    ("post", "/api/v1/keys/{id}/revoke", "identity", "Revoke a key.", None, 200),
    ("get", "/api/v1/model-states", "govern", "Every model with a governance state (a model never governed is active).", None, 200),
    (
        "get",
        "/api/v1/model-states/{name}",
        "govern",
        "A model's governance state: active, restricted (to listed tenants) or suspended.",
        None,
        200,
    ),
    (
        "put",
        "/api/v1/model-states/{name}",
        "govern",
        "Suspend, restrict or activate a model, with the reason. In force on every instance within a second, and recorded in the transparency log. May answer 422 to a schema-valid request: the model name must have no control character.",
        Some("ModelStateChange"),
        200,
    ),
    ("get", "/api/v1/filings", "govern", "Filings (备案), newest first, each with the deadline that binds it now.", None, 200),
    (
        "post",
        "/api/v1/filings",
        "govern",
        "Open a draft filing: an algorithm filing or a generative-AI service filing, for the operator or for a tenant. A draft may be incomplete. May answer 422 to a schema-valid request: a model name is limited to 256 bytes and the content to 48 KiB of JSON.",
        Some("FilingCreate"),
        201,
    ),
    ("get", "/api/v1/filings/{id}", "govern", "A filing, with its revision as the ETag.", None, 200),
    (
        "post",
        "/api/v1/filings/{id}/actions",
        "govern",
        "Take a lifecycle action: update, detach, submit, return, file, change, end_service, cancel. Send the ETag in If-Match to act only on that revision (409 otherwise). An action the state does not allow answers 409; a submission that lacks a required field or attachment answers 422 naming it, as does a model name over 256 bytes.",
        Some("FilingAction"),
        200,
    ),
    ("get", "/api/v1/filings/{id}/history", "govern", "A filing's changes, oldest first, each with its transparency-log entry.", None, 200),
    (
        "post",
        "/api/v1/filings/{id}/attachments",
        "govern",
        "Attach a file (at most 16 MiB) to a draft or a change in progress. It is stored by its SHA-256; a `sha256` sent along is checked against the bytes (422 if they differ, or if the body is empty). A filing past its draft answers 409.",
        Some("Binary"),
        201,
    ),
    ("get", "/api/v1/filings/{id}/attachments/{sha256}", "govern", "An attachment's bytes, checked against their SHA-256.", None, 200),
    ("get", "/api/v1/alerts", "govern", "Open alerts, and closed ones opened since `since_ms`, newest first.", None, 200),
    ("post", "/api/v1/alerts/{id}/ack", "govern", "Acknowledge an alert (it stays open until its cause is gone).", None, 200),
    ("get", "/api/v1/alert-rules", "govern", "The alert rules over the gateway's traffic.", None, 200),
    ("get", "/api/v1/alert-rules/{name}", "govern", "An alert rule.", None, 200),
    (
        "put",
        "/api/v1/alert-rules/{name}",
        "govern",
        "Create or replace an alert rule: a metric over a rolling window, a line to fire above and a lower one to clear below, a cool-down, and what to do when it fires (notify a webhook, restrict or suspend the model, open an incident). May answer 422 to a schema-valid request: clear_below may not exceed fire_above, notify needs webhook_url, restrict needs restrict, a webhook must be an http(s) URL the server may reach, and a body's name must be the path's.",
        Some("AlertRule"),
        201,
    ),
    ("delete", "/api/v1/alert-rules/{name}", "govern", "Delete an alert rule.", None, 204),
    (
        "post",
        "/api/v1/model-flags",
        "govern",
        "An evaluator flags answers of a model; the `flags` metric counts them.",
        Some("ModelFlag"),
        202,
    ),
    ("get", "/api/v1/webhook-deliveries", "govern", "Webhook deliveries by state; `dead` lists those that failed every retry.", None, 200),
    ("post", "/api/v1/webhook-deliveries/{id}/retry", "govern", "Send a dead letter again (409 if it is not dead).", None, 200),
    ("get", "/api/v1/incidents", "govern", "Incidents, newest first.", None, 200),
    (
        "post",
        "/api/v1/incidents",
        "govern",
        "Open an incident. Its reporting deadline follows its grade and the operator's class (1, 2 or 4 hours from discovery for a major or graver incident). May answer 422 to a schema-valid request: discovered_ms may not be in the future.",
        Some("IncidentCreate"),
        201,
    ),
    ("get", "/api/v1/incidents/{id}", "govern", "An incident with its timeline, each step a transparency-log entry.", None, 200),
    (
        "post",
        "/api/v1/incidents/{id}/steps",
        "govern",
        "Add a report, a measure, a note, a regrade or the closure (409 once closed).",
        Some("IncidentStep"),
        200,
    ),
    ("get", "/api/v1/end-users", "govern", "End users with blocked-input strikes or a suspension (TC260-003).", None, 200),
    (
        "post",
        "/api/v1/end-users/{tenant}/{user}/lift",
        "govern",
        "Lift an end user's suspension, with the reason (409 if not suspended).",
        Some("EndUserLift"),
        200,
    ),
    (
        "get",
        "/api/v1/log/proof",
        "log",
        "The inclusion proof of a transparency-log entry in the tree of `size` entries (default: the latest checkpoint's), with that checkpoint signed: it verifies offline with `aiplus log verify`.",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/log/consistency",
        "log",
        "The consistency proof from the tree of `from` entries to the tree of `to` (default: the latest checkpoint's), with both checkpoints signed.",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/log/entries/{index}",
        "log",
        "A transparency-log entry: its public leaf and the full record it commits to.",
        None,
        200,
    ),
    ("get", "/api/v1/tenants", "identity", "The tenant registry, with each tenant's settings.", None, 200),
    ("post", "/api/v1/tenants", "identity", "Register a tenant.", Some("TenantCreate"), 201),
    ("get", "/api/v1/tenants/{tenant}", "identity", "A tenant with its limits and regions.", None, 200),
    ("put", "/api/v1/tenants/{tenant}", "identity", "Replace a registered tenant's limits and regions.", Some("TenantSettings"), 200),
    ("get", "/api/v1/operator-tokens", "identity", "List operator tokens (prefixes only).", None, 200),
    (
        "post",
        "/api/v1/operator-tokens",
        "identity",
        "Create an operator token; the response carries its secret, once.",
        Some("TokenCreate"),
        201,
    ),
    ("post", "/api/v1/operator-tokens/{id}/revoke", "identity", "Revoke an operator token.", None, 200),
    (
        "get",
        "/api/v1/model-deployments",
        "models",
        "Models deployed on the compute network, with their replicas' jobs, ports, clusters and health.",
        None,
        200,
    ),
    ("get", "/api/v1/model-deployments/{name}", "models", "One model deployment.", None, 200),
    (
        "put",
        "/api/v1/model-deployments/{name}",
        "models",
        "Deploy a built-in model, or any GGUF file by path or URL with its SHA-256, on the compute network as online-inference jobs (or change what is wanted of it); replicas are routed by the gateway once they run and answer health. The server installs missing weights unless `models.fetch` is false. 422 also when fields disagree (a `model` that is not built-in without `gguf`; `gpus` other than 0 with llama.cpp or outside 1-8 with vLLM) or a `gguf.path` names no file on the server.",
        Some("ModelDeployment"),
        201,
    ),
    ("delete", "/api/v1/model-deployments/{name}", "models", "Stop every replica and forget the deployment.", None, 204),
    ("post", "/api/v1/model-deployments/{name}/scale", "models", "Set the replica count.", Some("Scale"), 200),
    ("get", "/api/v1/models", "gateway", "Models (from aiplus.toml and the API) with their deployments.", None, 200),
    ("get", "/api/v1/models/{name}", "gateway", "One model.", None, 200),
    ("put", "/api/v1/models/{name}", "gateway", "Create or replace a model made through the API.", Some("Model"), 201),
    ("delete", "/api/v1/models/{name}", "gateway", "Delete a model made through the API.", None, 204),
    ("get", "/api/v1/gateway", "gateway", "Deployment health (smoothed latency, breakers) and the embedded model's state.", None, 200),
    (
        "get",
        "/api/v1/eval/suites",
        "eval",
        "The evaluation suites of the server's suites directory, and whether their data is there.",
        None,
        200,
    ),
    ("get", "/api/v1/eval/runs", "eval", "Evaluation runs, newest first.", None, 200),
    (
        "post",
        "/api/v1/eval/runs",
        "eval",
        "Queue an evaluation run of a model on a suite; it asks the model through the gateway as the evaluation tenant. 422 names a suite or subject the server does not have.",
        Some("EvalRun"),
        202,
    ),
    ("get", "/api/v1/eval/runs/{id}", "eval", "A run with its progress, and its report once finished.", None, 200),
    ("get", "/api/v1/eval/runs/{id}/samples", "eval", "A finished run's per-sample log, as JSON lines.", None, 200),
    (
        "get",
        "/api/v1/eval/runs/{id}/chart",
        "eval",
        "A finished run's chart (SVG): each group's figure with its standard error.",
        None,
        200,
    ),
    ("get", "/api/v1/eval/leaderboard", "eval", "Models × suites: each model's newest whole-suite figure, best models first.", None, 200),
    (
        "get",
        "/api/v1/agents",
        "agents",
        "Agents, the newest version of each: the caller's tenant's, or every tenant's for operators.",
        None,
        200,
    ),
    ("get", "/api/v1/agents/{id}", "agents", "One agent (`version` for an older one). MCP header values read as \"***\".", None, 200),
    (
        "put",
        "/api/v1/agents/{id}",
        "agents",
        "Declare or change an agent: 201 with a new version, 200 when nothing changed. 422 names a rule the schema cannot say: an MCP server on a host outside the operator's allowlist, a name declared twice, a \"***\" header with no stored value.",
        Some("AgentSpec"),
        201,
    ),
    ("delete", "/api/v1/agents/{id}", "agents", "Delete an agent and every version of it.", None, 204),
    ("get", "/api/v1/agents/{id}/versions", "agents", "An agent's versions, newest first.", None, 200),
    ("get", "/api/v1/collections", "agents", "The tenant's document collections (for file_search), with their sizes.", None, 200),
    ("get", "/api/v1/collections/{id}", "agents", "A collection's documents (without their text).", None, 200),
    ("delete", "/api/v1/collections/{id}", "agents", "Delete a collection and its documents.", None, 204),
    (
        "put",
        "/api/v1/collections/{id}/documents/{doc}",
        "agents",
        "Add a document (201), or replace one (200): chunked and embedded as the caller. 422 when the collection is full.",
        Some("CollectionDocument"),
        201,
    ),
    ("delete", "/api/v1/collections/{id}/documents/{doc}", "agents", "Delete a document.", None, 204),
    (
        "post",
        "/api/v1/collections/{id}/search",
        "agents",
        "Search a collection as file_search does: the best chunks by cosine similarity.",
        Some("CollectionSearch"),
        200,
    ),
    ("get", "/v1/models", "openai", "OpenAI-compatible: list models.", None, 200),
    ("post", "/v1/chat/completions", "openai", "OpenAI-compatible chat completions (streaming with SSE).", Some("OpenAI"), 200),
    ("post", "/v1/completions", "openai", "OpenAI-compatible completions.", Some("OpenAI"), 200),
    ("post", "/v1/embeddings", "openai", "OpenAI-compatible embeddings (the embedded model or an upstream).", Some("OpenAI"), 200),
    (
        "post",
        "/v1/responses",
        "openai",
        "OpenAI-compatible Responses (streaming with typed response.* events); `model: \"agent:<id>[@version]\"` runs an agent's tool loop server-side.",
        Some("OpenAI"),
        200,
    ),
    (
        "get",
        "/v1/responses/{id}",
        "openai",
        "OpenAI-compatible: retrieve a response; a background one with `stream=true` streams its events after `starting_after`.",
        None,
        200,
    ),
    ("post", "/v1/responses/{id}/cancel", "openai", "OpenAI-compatible: cancel a queued or in-progress background response.", None, 200),
    ("post", "/v1/conversations", "openai", "OpenAI-compatible Conversations: create one, with up to 20 items.", Some("OpenAI"), 200),
    ("get", "/v1/conversations/{id}", "openai", "OpenAI-compatible: a conversation.", None, 200),
    ("post", "/v1/conversations/{id}", "openai", "OpenAI-compatible: replace a conversation's metadata.", Some("OpenAI"), 200),
    ("delete", "/v1/conversations/{id}", "openai", "OpenAI-compatible: delete a conversation and its items.", None, 200),
    ("get", "/v1/conversations/{id}/items", "openai", "OpenAI-compatible: a conversation's items (limit, order, after).", None, 200),
    ("post", "/v1/conversations/{id}/items", "openai", "OpenAI-compatible: add up to 20 items to a conversation.", Some("OpenAI"), 200),
    ("get", "/v1/conversations/{id}/items/{item_id}", "openai", "OpenAI-compatible: one item of a conversation.", None, 200),
    ("delete", "/v1/conversations/{id}/items/{item_id}", "openai", "OpenAI-compatible: delete an item of a conversation.", None, 200),
];

fn problem_schema() -> Value {
    json!({"type": "object", "description": "RFC 9457 problem details; `field` names the bad input.", "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer", "minimum": 400, "maximum": 599},
                       "detail": {"type": "string"}, "field": {"type": "string"}, "reason": {"type": "string"}}})
}

/// An error of `path`: problem+json on aiplus's own API, OpenAI's error shape under `/v1`.
fn error_response(path: &str) -> Value {
    if path.starts_with("/v1/") {
        return json!({"description": "An error in OpenAI's shape.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}});
    }
    json!({"description": "An error (RFC 9457).", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

/// What a successful answer of `path` carries: text for health, metrics and logs, OpenAI's
/// shapes for `/v1` (not described here), JSON with `schema` for the rest.
fn success_content(path: &str, schema: Value) -> Option<Value> {
    if let Some(content) = data_schemas::success_content(path).or_else(|| oss_schemas::success_content(path)) {
        return Some(content);
    }
    match path {
        "/healthz" => Some(json!({"text/plain": {"schema": {"type": "string"}}})),
        "/metrics" => Some(json!({"text/plain": {"schema": {"type": "string"}}})),
        // With `follow=true`: `log` events whose data is {"offset", "text"}, then one `end`
        // event whose data is {"state"}; an event is described by its fields.
        "/api/v1/jobs/{id}/logs" => Some(json!({"text/plain": {"schema": {"type": "string"}}, "text/event-stream": {"schema": {
            "type": "object", "required": ["event", "data"],
            "properties": {"event": {"enum": ["log", "end"]}, "data": {"type": "string", "contentMediaType": "application/json"}}}}})),
        "/api/v1/filings/{id}/attachments/{sha256}" => {
            Some(json!({"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}))
        }
        "/api/v1/eval/runs/{id}/samples" => Some(json!({"application/x-ndjson": {"schema": {"type": "string"}}})),
        "/api/v1/eval/runs/{id}/chart" => Some(json!({"image/svg+xml": {"schema": {"type": "string"}}})),
        p if p.starts_with("/v1/") => None,
        "/api/v1/models/{name}" if schema == json!({}) => Some(json!({"application/json": {"schema": {"type": "object"}}})),
        _ => Some(json!({"application/json": {"schema": schema}})),
    }
}

/// Who may call an operation, in words, for the document's readers.
fn access_text(a: identity::Access) -> String {
    use identity::Access as A;
    match a {
        A::Public => "anyone".into(),
        A::Authenticated => "any authenticated caller".into(),
        A::Operator { write: false } => "operators".into(),
        A::Operator { write: true } => "operator-admin".into(),
        A::Tenant { scope, write, admin } => format!(
            "a tenant's {}credential with the `{}` scope, for its own tenant; {}",
            if admin { "tenant-admin " } else { "" },
            scope.as_str(),
            if write { "or operator-admin" } else { "or operators" }
        ),
        A::TenantOnly { scope } => format!("a tenant's API key with the `{}` scope", scope.as_str()),
        A::Console { .. } => "a console session".into(),
    }
}

/// POSTs that answer 200 with what exists when asked to make it again.
const REPEATS_ANSWER_200: &[&str] = &["/api/v1/oss/reports"];

/// Every operation: the table above, then each pillar's own.
fn operations() -> impl Iterator<Item = &'static Op> {
    OPERATIONS.iter().chain(data_schemas::OPERATIONS).chain(oss_schemas::OPERATIONS)
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    let responses = schemas::responses();
    for (method, path, tag, summary, body, ok) in operations() {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = if name == "tenant" {
                    json!({"type": "string", "pattern": TENANT_PATTERN})
                } else if path.starts_with("/api/v1/agents/") || path.starts_with("/api/v1/collections/") {
                    json!({"type": "string", "pattern": agent_schemas::NAME_PATTERN})
                } else if let Some(schema) = data_schemas::path_param(path, name) {
                    schema
                } else if let Some(schema) = oss_schemas::path_param(path, name) {
                    schema
                } else {
                    json!({"type": "string", "minLength": 1, "maxLength": 256})
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .chain(schemas::query(method, path))
            .collect();
        let mut op = json!({
            "tags": [tag], "summary": summary, "operationId": format!("{method}_{}", path.replace(['/', '{', '}', '.'], "_").trim_matches('_')),
            "responses": {
                ok.to_string(): {"description": "Success"},
                "default": error_response(path)
            }
        });
        let schema = responses.iter().find(|(m, p, _)| m == method && p == path).map_or(json!({}), |(.., s)| s.clone());
        if let Some(content) = success_content(path, schema).filter(|_| *ok != 204) {
            op["responses"][ok.to_string()]["content"] = content.clone();
            // A PUT that replaces what exists answers 200 with the same body, as does a POST
            // that finds what it would make already made.
            if (*method == "put" || REPEATS_ANSWER_200.contains(path)) && *ok == 201 {
                op["responses"]["200"] = json!({"description": "Replaced", "content": content});
            }
        }
        let mut params = params;
        params.push(json!({"$ref": "#/components/parameters/ActingTenant"}));
        op["parameters"] = Value::Array(params);
        match api::permissions::find(&method.to_uppercase().parse().unwrap_or(axum::http::Method::GET), path) {
            Some(rule) if rule.access == identity::Access::Public => op["security"] = json!([]),
            Some(rule) => {
                op["security"] = json!([{"bearer": []}, {"session": []}]);
                op["x-aiplus-access"] = json!(access_text(rule.access));
            }
            None => {}
        }
        if let Some(schema) = body {
            let media = if *schema == "Binary" { "application/octet-stream" } else { "application/json" };
            op["requestBody"] =
                json!({"required": true, "content": {media: {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "aiplus", "version": env!("CARGO_PKG_VERSION"),
                 "description": "The aiplus server: compute network and jobs, usage ledger, and the model gateway's management API."},
        "paths": paths,
        "components": {
            "schemas": schemas::requests_with(problem_schema()),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API key (`ak_…`, a tenant's, with scopes) or an operator token (`aot_…`)."},
                "session": {"type": "apiKey", "in": "cookie", "name": "aiplus_session",
                            "description": "A console login; writes also need the session's CSRF token in X-CSRF-Token."}
            },
            "parameters": {
                "ActingTenant": {"name": "X-Aiplus-Tenant", "in": "header", "required": false, "schema": {"type": "string", "pattern": TENANT_PATTERN},
                                 "description": "The tenant an operator acts for. A tenant's credential acts for its own tenant; naming another answers 404."}
            }
        },
        "security": [{"bearer": []}, {"session": []}],
    })
}

pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_once_with_its_path_parameters() {
        let doc = document();
        let mut n = 0;
        for (method, path, ..) in operations() {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path}");
            // Query parameters are listed by `schemas::query`; here, the path's and the header.
            let params = op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] != "query").count();
            assert_eq!(params, path.matches('{').count() + 1, "{method} {path}: its path parameters and X-Aiplus-Tenant");
            n += 1;
        }
        let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(documented, n, "no operation twice");
        for (.., body, _) in operations() {
            if let Some(b) = body {
                assert!(doc["components"]["schemas"][b].is_object(), "schema {b}");
            }
        }
    }

    /// The document and the permission table list the same routes of `/api/v1`, `/v1`,
    /// `/metrics` and `/healthz`: an undocumented route, or a documented one nobody may call,
    /// fails here.
    #[test]
    fn the_document_and_the_permission_table_list_the_same_routes() {
        let documented: std::collections::BTreeSet<(String, String)> =
            operations().map(|(m, p, ..)| (m.to_uppercase(), p.to_string())).collect();
        let guarded: std::collections::BTreeSet<(String, String)> = api::permissions::TABLE
            .iter()
            .filter(|r| r.path.starts_with("/api/") || r.path.starts_with("/v1/") || r.path == "/metrics" || r.path == "/healthz")
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(documented, guarded);
    }
}
