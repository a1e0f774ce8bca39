//! The permission table: every route of the server (the management API under `/api/v1`, the
//! OpenAI-compatible API under `/v1`, `/metrics` and the console), each with the one
//! [`Access`] that decides who may call it. The gate in front of the router ([`crate::gate`])
//! answers 404 for a route that is not here, so a route added without a line here cannot be
//! reached, and a test checks the table against the OpenAPI document and the routers.

use axum::http::Method;
use identity::{Access, Scope};

/// One route and who may call it.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub method: &'static str,
    /// As registered with axum (`/api/v1/jobs/{id}`).
    pub path: &'static str,
    pub access: Access,
}

const fn rule(method: &'static str, path: &'static str, access: Access) -> Rule {
    Rule { method, path, access }
}

const PUBLIC: Access = Access::Public;
const ANYONE: Access = Access::Authenticated;
const OP_READ: Access = Access::Operator { write: false };
const OP_WRITE: Access = Access::Operator { write: true };
const JOBS_READ: Access = Access::Tenant { scope: Scope::Jobs, write: false, admin: false };
const JOBS_WRITE: Access = Access::Tenant { scope: Scope::Jobs, write: true, admin: false };
const USAGE_READ: Access = Access::Tenant { scope: Scope::Usage, write: false, admin: false };
const TENANT_ADMIN_READ: Access = Access::Tenant { scope: Scope::Admin, write: false, admin: true };
const TENANT_ADMIN_WRITE: Access = Access::Tenant { scope: Scope::Admin, write: true, admin: true };
const AGENTS_READ: Access = Access::Tenant { scope: Scope::Inference, write: false, admin: false };
const AGENTS_WRITE: Access = Access::Tenant { scope: Scope::Inference, write: true, admin: false };
const DATA_READ: Access = Access::Tenant { scope: Scope::Data, write: false, admin: false };
const DATA_WRITE: Access = Access::Tenant { scope: Scope::Data, write: true, admin: false };
const INFERENCE: Access = Access::TenantOnly { scope: Scope::Inference };
const PAGE: Access = Access::Console { operator: false };
const OP_PAGE: Access = Access::Console { operator: true };

pub const TABLE: &[Rule] = &[
    // ---- system ----
    rule("GET", "/healthz", PUBLIC),
    rule("GET", "/metrics", OP_READ),
    rule("GET", "/api/v1/openapi.json", ANYONE),
    rule("GET", "/api/v1/whoami", ANYONE),
    // ---- compute network: tenants read it to place their jobs; operators change it ----
    rule("GET", "/api/v1/network", JOBS_READ),
    rule("GET", "/api/v1/hubs", JOBS_READ),
    rule("POST", "/api/v1/hubs", OP_WRITE),
    rule("GET", "/api/v1/hubs/{id}", JOBS_READ),
    rule("PUT", "/api/v1/hubs/{id}", OP_WRITE),
    rule("GET", "/api/v1/clusters", JOBS_READ),
    rule("POST", "/api/v1/clusters", OP_WRITE),
    rule("GET", "/api/v1/clusters/{id}", JOBS_READ),
    rule("PUT", "/api/v1/clusters/{id}", OP_WRITE),
    // ---- jobs: a tenant's own ----
    rule("GET", "/api/v1/jobs", JOBS_READ),
    rule("POST", "/api/v1/jobs", JOBS_WRITE),
    rule("GET", "/api/v1/jobs/{id}", JOBS_READ),
    rule("POST", "/api/v1/jobs/{id}/cancel", JOBS_WRITE),
    rule("GET", "/api/v1/jobs/{id}/placement", JOBS_READ),
    rule("GET", "/api/v1/jobs/{id}/events", JOBS_READ),
    rule("GET", "/api/v1/jobs/{id}/logs", JOBS_READ),
    // ---- the usage ledger: a tenant's own ----
    rule("GET", "/api/v1/usage", USAGE_READ),
    rule("GET", "/api/v1/usage/summary", USAGE_READ),
    // ---- identity: tenants, keys, operator tokens ----
    rule("GET", "/api/v1/tenants", OP_READ),
    rule("POST", "/api/v1/tenants", OP_WRITE),
    rule("GET", "/api/v1/tenants/{tenant}", TENANT_ADMIN_READ),
    rule("PUT", "/api/v1/tenants/{tenant}", OP_WRITE),
    rule("GET", "/api/v1/keys", TENANT_ADMIN_READ),
    rule("POST", "/api/v1/keys", TENANT_ADMIN_WRITE),
    rule("POST", "/api/v1/keys/{id}/revoke", TENANT_ADMIN_WRITE),
    rule("GET", "/api/v1/operator-tokens", OP_READ),
    rule("POST", "/api/v1/operator-tokens", OP_WRITE),
    rule("POST", "/api/v1/operator-tokens/{id}/revoke", OP_WRITE),
    // ---- the gateway's models and health: they name upstream servers, so operators only ----
    rule("GET", "/api/v1/model-deployments", OP_READ),
    rule("GET", "/api/v1/model-deployments/{name}", OP_READ),
    rule("PUT", "/api/v1/model-deployments/{name}", OP_WRITE),
    rule("DELETE", "/api/v1/model-deployments/{name}", OP_WRITE),
    rule("POST", "/api/v1/model-deployments/{name}/scale", OP_WRITE),
    rule("GET", "/api/v1/models", OP_READ),
    rule("GET", "/api/v1/models/{name}", OP_READ),
    rule("PUT", "/api/v1/models/{name}", OP_WRITE),
    rule("DELETE", "/api/v1/models/{name}", OP_WRITE),
    rule("GET", "/api/v1/gateway", OP_READ),
    // ---- the transparency log: public by design (anyone may mirror and check it), except
    // the full records behind the leaves ----
    rule("GET", "/log/checkpoint", PUBLIC),
    rule("GET", "/log/key", PUBLIC),
    rule("GET", "/log/tile/{*path}", PUBLIC),
    rule("GET", "/api/v1/log/proof", PUBLIC),
    rule("GET", "/api/v1/log/consistency", PUBLIC),
    rule("GET", "/api/v1/log/entries/{index}", OP_READ),
    // ---- governance: model states, read and changed by operators ----
    rule("GET", "/api/v1/model-states", OP_READ),
    rule("GET", "/api/v1/model-states/{name}", OP_READ),
    rule("PUT", "/api/v1/model-states/{name}", OP_WRITE),
    // ---- filings and alerts: operators write; a tenant reads those made for it ----
    rule("GET", "/api/v1/filings", TENANT_ADMIN_READ),
    rule("POST", "/api/v1/filings", OP_WRITE),
    rule("GET", "/api/v1/filings/{id}", TENANT_ADMIN_READ),
    rule("POST", "/api/v1/filings/{id}/actions", OP_WRITE),
    rule("GET", "/api/v1/filings/{id}/history", TENANT_ADMIN_READ),
    rule("POST", "/api/v1/filings/{id}/attachments", OP_WRITE),
    rule("GET", "/api/v1/filings/{id}/attachments/{sha256}", TENANT_ADMIN_READ),
    rule("GET", "/api/v1/alerts", TENANT_ADMIN_READ),
    rule("POST", "/api/v1/alerts/{id}/ack", OP_WRITE),
    // ---- monitoring: rules, flags and webhooks are operators'; incidents and end users a
    // tenant's admin reads for its own tenant ----
    rule("GET", "/api/v1/alert-rules", OP_READ),
    rule("GET", "/api/v1/alert-rules/{name}", OP_READ),
    rule("PUT", "/api/v1/alert-rules/{name}", OP_WRITE),
    rule("DELETE", "/api/v1/alert-rules/{name}", OP_WRITE),
    rule("POST", "/api/v1/model-flags", OP_WRITE),
    rule("GET", "/api/v1/webhook-deliveries", OP_READ),
    rule("POST", "/api/v1/webhook-deliveries/{id}/retry", OP_WRITE),
    rule("GET", "/api/v1/incidents", TENANT_ADMIN_READ),
    rule("POST", "/api/v1/incidents", OP_WRITE),
    rule("GET", "/api/v1/incidents/{id}", TENANT_ADMIN_READ),
    rule("POST", "/api/v1/incidents/{id}/steps", OP_WRITE),
    rule("GET", "/api/v1/end-users", TENANT_ADMIN_READ),
    rule("POST", "/api/v1/end-users/{tenant}/{user}/lift", OP_WRITE),
    // ---- evaluation: operators run and read it (runs are billed to the evaluation tenant) ----
    rule("GET", "/api/v1/eval/suites", OP_READ),
    rule("GET", "/api/v1/eval/runs", OP_READ),
    rule("POST", "/api/v1/eval/runs", OP_WRITE),
    rule("GET", "/api/v1/eval/runs/{id}", OP_READ),
    rule("GET", "/api/v1/eval/runs/{id}/samples", OP_READ),
    rule("GET", "/api/v1/eval/runs/{id}/chart", OP_READ),
    rule("GET", "/api/v1/eval/leaderboard", OP_READ),
    // ---- agents: a tenant's own, declared with the inference scope they are used with ----
    rule("GET", "/api/v1/agents", AGENTS_READ),
    rule("GET", "/api/v1/agents/{id}", AGENTS_READ),
    rule("PUT", "/api/v1/agents/{id}", AGENTS_WRITE),
    rule("DELETE", "/api/v1/agents/{id}", AGENTS_WRITE),
    rule("GET", "/api/v1/agents/{id}/versions", AGENTS_READ),
    // ---- the data exchange: a tenant's own datasets and uploads; every tenant's listings ----
    // ---- open-source contribution evaluation: GH Archive is public, so any signed-in principal ----
    rule("GET", "/api/v1/oss/rankings", ANYONE),
    rule("GET", "/api/v1/oss/developers/{login}", ANYONE),
    rule("GET", "/api/v1/oss/repos/{owner}/{repo}", ANYONE),
    rule("POST", "/api/v1/oss/reports", OP_WRITE),
    rule("GET", "/api/v1/oss/reports", OP_READ),
    rule("GET", "/api/v1/oss/reports/{id}", ANYONE),
    rule("GET", "/api/v1/datasets", DATA_READ),
    rule("POST", "/api/v1/datasets", DATA_WRITE),
    rule("GET", "/api/v1/datasets/{id}", DATA_READ),
    rule("PUT", "/api/v1/datasets/{id}/listing", DATA_WRITE),
    rule("POST", "/api/v1/datasets/{id}/versions", DATA_WRITE),
    rule("GET", "/api/v1/datasets/{id}/versions/{version}", DATA_READ),
    rule("GET", "/api/v1/datasets/{id}/versions/{version}/croissant", DATA_READ),
    rule("POST", "/api/v1/datasets/{id}/versions/{version}/publish", DATA_WRITE),
    rule("GET", "/api/v1/datasets/{id}/versions/{version}/files/{file}", DATA_READ),
    rule("GET", "/api/v1/datasets/{id}/versions/{version}/valuations", DATA_READ),
    rule("POST", "/api/v1/datasets/{id}/versions/{version}/valuations", DATA_WRITE),
    rule("GET", "/api/v1/catalogue", ANYONE),
    rule("GET", "/api/v1/contracts", DATA_READ),
    rule("POST", "/api/v1/contracts", DATA_WRITE),
    rule("GET", "/api/v1/contracts/{id}", DATA_READ),
    rule("GET", "/api/v1/contracts/{id}/files/{file}", DATA_READ),
    rule("GET", "/api/v1/contracts/{id}/runs", DATA_READ),
    rule("POST", "/api/v1/contracts/{id}/runs", DATA_WRITE),
    rule("GET", "/api/v1/contracts/{id}/runs/{run}", DATA_READ),
    rule("GET", "/api/v1/contracts/{id}/runs/{run}/outputs/{name}", DATA_READ),
    rule("GET", "/api/v1/settlements", DATA_READ),
    rule("POST", "/api/v1/settlements", OP_WRITE),
    rule("GET", "/api/v1/registrations", DATA_READ),
    rule("POST", "/api/v1/registrations", DATA_WRITE),
    rule("GET", "/api/v1/registrations/{id}", DATA_READ),
    rule("POST", "/api/v1/registrations/{id}/objections", DATA_WRITE),
    rule("POST", "/api/v1/registrations/{id}/actions", OP_WRITE),
    rule("GET", "/api/v1/registration-notices", ANYONE),
    rule("POST", "/api/v1/uploads", DATA_WRITE),
    rule("GET", "/api/v1/uploads/{id}", DATA_READ),
    rule("DELETE", "/api/v1/uploads/{id}", DATA_WRITE),
    rule("PUT", "/api/v1/uploads/{id}/chunks/{ix}", DATA_WRITE),
    rule("POST", "/api/v1/uploads/{id}/complete", DATA_WRITE),
    // ---- collections for file_search: a tenant's own documents, embedded as the caller ----
    rule("GET", "/api/v1/collections", AGENTS_READ),
    rule("GET", "/api/v1/collections/{id}", AGENTS_READ),
    rule("DELETE", "/api/v1/collections/{id}", AGENTS_WRITE),
    rule("PUT", "/api/v1/collections/{id}/documents/{doc}", AGENTS_WRITE),
    rule("DELETE", "/api/v1/collections/{id}/documents/{doc}", AGENTS_WRITE),
    rule("POST", "/api/v1/collections/{id}/search", AGENTS_READ),
    // ---- OpenAI-compatible: a tenant's key with the inference scope ----
    rule("GET", "/v1/models", INFERENCE),
    rule("POST", "/v1/chat/completions", INFERENCE),
    rule("POST", "/v1/completions", INFERENCE),
    rule("POST", "/v1/responses", INFERENCE),
    rule("GET", "/v1/responses/{id}", INFERENCE),
    rule("POST", "/v1/responses/{id}/cancel", INFERENCE),
    rule("POST", "/v1/conversations", INFERENCE),
    rule("GET", "/v1/conversations/{id}", INFERENCE),
    rule("POST", "/v1/conversations/{id}", INFERENCE),
    rule("DELETE", "/v1/conversations/{id}", INFERENCE),
    rule("GET", "/v1/conversations/{id}/items", INFERENCE),
    rule("POST", "/v1/conversations/{id}/items", INFERENCE),
    rule("GET", "/v1/conversations/{id}/items/{item_id}", INFERENCE),
    rule("DELETE", "/v1/conversations/{id}/items/{item_id}", INFERENCE),
    rule("POST", "/v1/embeddings", INFERENCE),
    // ---- the console: a logged-in browser; pages filter by the viewer's tenant ----
    rule("GET", "/", PAGE),
    rule("GET", "/network/live", PAGE),
    rule("GET", "/login", PUBLIC),
    rule("POST", "/login", PUBLIC),
    rule("POST", "/logout", PAGE),
    rule("GET", "/lang/{code}", PUBLIC),
    rule("GET", "/clusters/{id}", PAGE),
    rule("GET", "/jobs", PAGE),
    rule("POST", "/jobs", PAGE),
    rule("GET", "/jobs/live", PAGE),
    rule("GET", "/jobs/{id}", PAGE),
    rule("POST", "/jobs/{id}/cancel", PAGE),
    rule("GET", "/jobs/{id}/live", PAGE),
    rule("GET", "/sim", OP_PAGE),
    rule("POST", "/sim", OP_PAGE),
    rule("GET", "/sim/runs/{id}", OP_PAGE),
    rule("GET", "/sim/runs/{id}/status", OP_PAGE),
    rule("GET", "/sim/{id}", OP_PAGE),
    rule("GET", "/sim/{id}/chart.svg", OP_PAGE),
    rule("GET", "/targets", OP_PAGE),
    rule("POST", "/targets", OP_PAGE),
    rule("GET", "/targets.csv", OP_PAGE),
    rule("GET", "/models", PAGE),
    rule("GET", "/agents", PAGE),
    rule("POST", "/agents", PAGE),
    rule("POST", "/agents/playground", PAGE),
    rule("GET", "/data", PAGE),
    rule("GET", "/oss", PAGE),
    rule("GET", "/oss/developers/{login}", PAGE),
    rule("POST", "/oss/developers/{login}/report", OP_PAGE),
    rule("GET", "/oss/reports/{id}", PAGE),
    rule("GET", "/oss/repos/{owner}/{repo}", PAGE),
    rule("GET", "/data/{tenant}/{id}", PAGE),
    rule("GET", "/evaluation", OP_PAGE),
    rule("POST", "/evaluation", OP_PAGE),
    rule("GET", "/evaluation/runs/{id}", OP_PAGE),
    rule("GET", "/governance", PAGE),
    rule("POST", "/governance/models/{name}", OP_PAGE),
    rule("GET", "/governance/log", PAGE),
    rule("GET", "/tenants", PAGE),
    rule("GET", "/tenants/{tenant}", PAGE),
    rule("POST", "/tenants/{tenant}/keys", PAGE),
    rule("POST", "/tenants/{tenant}/keys/{id}/revoke", PAGE),
    rule("POST", "/tenants/{tenant}/settings", PAGE),
    rule("POST", "/tenants", OP_PAGE),
    rule("POST", "/accounts", OP_PAGE),
    rule("GET", "/static/app.css", PUBLIC),
    rule("GET", "/static/app.js", PUBLIC),
    rule("GET", "/static/sim.js", PUBLIC),
    rule("GET", "/favicon.ico", PUBLIC),
];

/// The table by (method, path), built once: the gate looks a route up on every request.
static BY_ROUTE: std::sync::LazyLock<rustc_hash::FxHashMap<(&'static str, &'static str), &'static Rule>> =
    std::sync::LazyLock::new(|| TABLE.iter().map(|r| ((r.method, r.path), r)).collect());

/// The rule of a route, by method and the path as registered. `HEAD` is a `GET`.
pub fn find(method: &Method, path: &str) -> Option<&'static Rule> {
    let m = if method == Method::HEAD { "GET" } else { method.as_str() };
    BY_ROUTE.get(&(m, path)).copied()
}

/// The methods a registered path answers, for a 405's `Allow` header; empty for an unknown path.
pub fn methods_of(path: &str) -> Vec<&'static str> {
    let mut m: Vec<&'static str> = TABLE.iter().filter(|r| r.path == path).map(|r| r.method).collect();
    if m.contains(&"GET") {
        m.push("HEAD");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_declared_once() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{} {} twice", a.method, a.path);
            }
        }
        assert!(find(&Method::HEAD, "/healthz").is_some());
        assert!(find(&Method::GET, "/api/v1/nothing").is_none());
        assert_eq!(methods_of("/api/v1/jobs"), ["GET", "POST", "HEAD"]);
        assert!(methods_of("/api/v1/nothing").is_empty());
    }
}
