//! Who may call what, against the real binary: the authorization matrix over every route the
//! live OpenAPI document lists (`/api/v1`, `/v1`, `/metrics`, `/healthz`), tried anonymously and
//! with a member's and an admin's key of tenant A, a key of tenant B, an operator-admin token
//! and an operator-viewer token. The expected answers are written here, route by route, apart
//! from the server's permission table, so a wrong line in either fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

mod common;

use common::{BIN, Server, cluster_spec, model_dir, temp_dir};

/// The callers, in the order of every expectation row.
const WHO: [&str; 6] = ["anonymous", "a-member", "a-admin", "b", "operator", "viewer"];

/// Expected statuses per caller, as in [`WHO`].
type Row = (&'static str, &'static str, [u16; 6]);

/// Every route and what each caller gets. Operators name tenant A in `X-Aiplus-Tenant`; the
/// objects in paths are tenant A's.
const MATRIX: &[Row] = &[
    ("GET", "/healthz", [200, 200, 200, 200, 200, 200]),
    ("GET", "/metrics", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/openapi.json", [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/whoami", [401, 200, 200, 200, 200, 200]),
    // The network: readable with the jobs scope, changed by operator-admin only.
    ("GET", "/api/v1/network", [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/hubs", [401, 200, 200, 200, 200, 200]),
    ("POST", "/api/v1/hubs", [401, 403, 403, 403, 201, 403]),
    ("GET", "/api/v1/hubs/{id}", [401, 200, 200, 200, 200, 200]),
    ("PUT", "/api/v1/hubs/{id}", [401, 403, 403, 403, 200, 403]),
    ("GET", "/api/v1/clusters", [401, 200, 200, 200, 200, 200]),
    ("POST", "/api/v1/clusters", [401, 403, 403, 403, 201, 403]),
    ("GET", "/api/v1/clusters/{id}", [401, 200, 200, 200, 200, 200]),
    ("PUT", "/api/v1/clusters/{id}", [401, 403, 403, 403, 200, 403]),
    // Jobs: B submits its own, but A's job does not exist for B.
    ("GET", "/api/v1/jobs", [401, 200, 200, 200, 200, 200]),
    ("POST", "/api/v1/jobs", [401, 201, 201, 201, 201, 403]),
    ("GET", "/api/v1/jobs/{id}", [401, 200, 200, 404, 200, 200]),
    ("POST", "/api/v1/jobs/{id}/cancel", [401, 200, 200, 404, 200, 403]),
    ("GET", "/api/v1/jobs/{id}/placement", [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/v1/jobs/{id}/events", [401, 200, 200, 404, 200, 200]),
    ("GET", "/api/v1/jobs/{id}/logs", [401, 200, 200, 404, 200, 200]),
    // The ledger: the member's key lacks the usage scope; B reads only its own.
    ("GET", "/api/v1/usage", [401, 403, 200, 200, 200, 200]),
    ("GET", "/api/v1/usage/summary", [401, 403, 200, 200, 200, 200]),
    // Identity.
    ("GET", "/api/v1/tenants", [401, 403, 403, 403, 200, 200]),
    ("POST", "/api/v1/tenants", [401, 403, 403, 403, 201, 403]),
    ("GET", "/api/v1/tenants/{tenant}", [401, 403, 200, 404, 200, 200]),
    ("PUT", "/api/v1/tenants/{tenant}", [401, 403, 403, 403, 200, 403]),
    ("GET", "/api/v1/keys", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/keys", [401, 403, 201, 201, 201, 403]),
    ("POST", "/api/v1/keys/{id}/revoke", [401, 403, 200, 404, 200, 403]),
    ("GET", "/api/v1/operator-tokens", [401, 403, 403, 403, 200, 200]),
    ("POST", "/api/v1/operator-tokens", [401, 403, 403, 403, 201, 403]),
    ("POST", "/api/v1/operator-tokens/{id}/revoke", [401, 403, 403, 403, 200, 403]),
    // The gateway's models name upstream servers: operators only.
    ("GET", "/api/v1/models", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/models/{name}", [401, 403, 403, 403, 200, 200]),
    ("PUT", "/api/v1/models/{name}", [401, 403, 403, 403, 201, 403]),
    ("DELETE", "/api/v1/models/{name}", [401, 403, 403, 403, 204, 403]),
    ("GET", "/api/v1/gateway", [401, 403, 403, 403, 200, 200]),
    // Models on the compute network: operators only (deployed with no replicas here).
    ("GET", "/api/v1/model-deployments", [401, 403, 403, 403, 200, 200]),
    ("PUT", "/api/v1/model-deployments/{name}", [401, 403, 403, 403, 201, 403]),
    ("GET", "/api/v1/model-deployments/{name}", [401, 403, 403, 403, 200, 200]),
    ("POST", "/api/v1/model-deployments/{name}/scale", [401, 403, 403, 403, 200, 403]),
    ("DELETE", "/api/v1/model-deployments/{name}", [401, 403, 403, 403, 204, 403]),
    // The transparency log (the model changes above are its entries): proofs are public, the
    // full records behind the leaves are for operators.
    ("GET", "/api/v1/log/proof", [200, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/log/consistency", [200, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/log/entries/{index}", [401, 403, 403, 403, 200, 200]),
    // Governance: model states, operators only (set to active here, so the model keeps serving).
    ("GET", "/api/v1/model-states", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/model-states/{name}", [401, 403, 403, 403, 200, 200]),
    ("PUT", "/api/v1/model-states/{name}", [401, 403, 403, 403, 200, 403]),
    // Filings and alerts: operators write; a tenant's admin reads those of its own tenant.
    ("GET", "/api/v1/filings", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/filings", [401, 403, 403, 403, 201, 403]),
    ("GET", "/api/v1/filings/{id}", [401, 403, 200, 404, 200, 200]),
    ("POST", "/api/v1/filings/{id}/actions", [401, 403, 403, 403, 200, 403]),
    ("GET", "/api/v1/filings/{id}/history", [401, 403, 200, 404, 200, 200]),
    ("POST", "/api/v1/filings/{id}/attachments", [401, 403, 403, 403, 201, 403]),
    ("GET", "/api/v1/filings/{id}/attachments/{sha256}", [401, 403, 200, 404, 200, 200]),
    ("GET", "/api/v1/alerts", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/alerts/{id}/ack", [401, 403, 403, 403, 200, 403]),
    // Monitoring: rules, flags and webhooks are operators'; incidents and end users are read by
    // a tenant's admin for its own tenant. (No dead letter or suspended end user exists here: the
    // operator passes the gate and meets 404.)
    ("GET", "/api/v1/alert-rules", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/alert-rules/{name}", [401, 403, 403, 403, 200, 200]),
    ("PUT", "/api/v1/alert-rules/{name}", [401, 403, 403, 403, 201, 403]),
    ("DELETE", "/api/v1/alert-rules/{name}", [401, 403, 403, 403, 204, 403]),
    ("POST", "/api/v1/model-flags", [401, 403, 403, 403, 202, 403]),
    ("GET", "/api/v1/webhook-deliveries", [401, 403, 403, 403, 200, 200]),
    ("POST", "/api/v1/webhook-deliveries/{id}/retry", [401, 403, 403, 403, 404, 403]),
    ("GET", "/api/v1/incidents", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/incidents", [401, 403, 403, 403, 201, 403]),
    ("GET", "/api/v1/incidents/{id}", [401, 403, 200, 404, 200, 200]),
    ("POST", "/api/v1/incidents/{id}/steps", [401, 403, 403, 403, 200, 403]),
    ("GET", "/api/v1/end-users", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/end-users/{tenant}/{user}/lift", [401, 403, 403, 403, 404, 403]),
    // Evaluation: the platform's operators only.
    ("GET", "/api/v1/eval/suites", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/eval/runs", [401, 403, 403, 403, 200, 200]),
    ("POST", "/api/v1/eval/runs", [401, 403, 403, 403, 202, 403]),
    ("GET", "/api/v1/eval/runs/{id}", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/eval/runs/{id}/samples", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/eval/runs/{id}/chart", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/eval/leaderboard", [401, 403, 403, 403, 200, 200]),
    // Agents: a tenant's own, declared with the inference scope; A's agent does not exist for B.
    ("GET", "/api/v1/agents", [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/agents/{id}", [401, 200, 200, 404, 200, 200]),
    ("PUT", "/api/v1/agents/{id}", [401, 201, 201, 201, 201, 403]),
    ("DELETE", "/api/v1/agents/{id}", [401, 204, 204, 404, 204, 403]),
    ("GET", "/api/v1/agents/{id}/versions", [401, 200, 200, 404, 200, 200]),
    // Collections: the same; A's collection does not exist for B, but B may fill its own.
    ("GET", "/api/v1/collections", [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/collections/{id}", [401, 200, 200, 404, 200, 200]),
    ("DELETE", "/api/v1/collections/{id}", [401, 204, 204, 404, 204, 403]),
    ("PUT", "/api/v1/collections/{id}/documents/{doc}", [401, 201, 201, 201, 201, 403]),
    ("DELETE", "/api/v1/collections/{id}/documents/{doc}", [401, 204, 204, 404, 204, 403]),
    ("POST", "/api/v1/collections/{id}/search", [401, 200, 200, 404, 200, 200]),
    // The data exchange: a tenant's own datasets and uploads, with the data scope (A's member
    // key lacks it); A's dataset does not exist for B. The catalogue is every tenant's listings.
    // Open-source evaluation: GH Archive is public, so any signed-in principal reads it.
    ("GET", "/api/v1/oss/rankings", [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/oss/developers/{login}", [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/oss/repos/{owner}/{repo}", [401, 200, 200, 200, 200, 200]),
    // Issuing a credit report writes a log leaf in the platform's name; any caller may read one.
    ("POST", "/api/v1/oss/reports", [401, 403, 403, 403, 201, 403]),
    ("GET", "/api/v1/oss/reports", [401, 403, 403, 403, 200, 200]),
    ("GET", "/api/v1/oss/reports/{id}", [401, 200, 200, 200, 200, 200]),
    ("GET", "/api/v1/datasets", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/datasets", [401, 403, 201, 201, 201, 403]),
    ("GET", "/api/v1/datasets/{id}", [401, 403, 200, 404, 200, 200]),
    ("PUT", "/api/v1/datasets/{id}/listing", [401, 403, 200, 404, 200, 403]),
    ("POST", "/api/v1/datasets/{id}/versions", [401, 403, 201, 404, 201, 403]),
    ("GET", "/api/v1/datasets/{id}/versions/{version}", [401, 403, 200, 404, 200, 200]),
    ("GET", "/api/v1/datasets/{id}/versions/{version}/croissant", [401, 403, 200, 404, 200, 200]),
    ("POST", "/api/v1/datasets/{id}/versions/{version}/publish", [401, 403, 200, 404, 200, 403]),
    ("GET", "/api/v1/datasets/{id}/versions/{version}/files/{file}", [401, 403, 200, 404, 200, 200]),
    ("GET", "/api/v1/datasets/{id}/versions/{version}/valuations", [401, 403, 200, 404, 200, 200]),
    ("POST", "/api/v1/datasets/{id}/versions/{version}/valuations", [401, 403, 201, 404, 201, 403]),
    ("GET", "/api/v1/catalogue", [401, 200, 200, 200, 200, 200]),
    // Contracts: B buys A's dataset. A (the seller, or an operator acting for it) cannot buy
    // its own; either party reads the contract; only the buyer reads files under it.
    ("GET", "/api/v1/contracts", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/contracts", [401, 403, 422, 201, 422, 403]),
    ("GET", "/api/v1/contracts/{id}", [401, 403, 200, 200, 200, 200]),
    ("GET", "/api/v1/contracts/{id}/files/{file}", [401, 403, 404, 200, 404, 404]),
    // B's contract is for download: B may not run jobs under it (422); for A it is not there.
    ("GET", "/api/v1/contracts/{id}/runs", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/contracts/{id}/runs", [401, 403, 404, 422, 404, 403]),
    ("GET", "/api/v1/contracts/{id}/runs/{run}", [401, 403, 404, 404, 404, 404]),
    ("GET", "/api/v1/contracts/{id}/runs/{run}/outputs/{name}", [401, 403, 404, 404, 404, 404]),
    ("GET", "/api/v1/settlements", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/settlements", [401, 403, 403, 403, 200, 403]),
    // Registrations: A applies for its own versions (B has none of its own here); others object
    // to one on notice; operators review and decide.
    ("GET", "/api/v1/registrations", [401, 403, 200, 200, 200, 200]),
    ("POST", "/api/v1/registrations", [401, 403, 201, 422, 201, 403]),
    ("GET", "/api/v1/registrations/{id}", [401, 403, 200, 404, 200, 200]),
    ("POST", "/api/v1/registrations/{id}/objections", [401, 403, 422, 200, 422, 403]),
    ("POST", "/api/v1/registrations/{id}/actions", [401, 403, 403, 403, 200, 403]),
    ("GET", "/api/v1/registration-notices", [401, 200, 200, 200, 200, 200]),
    ("POST", "/api/v1/uploads", [401, 403, 201, 201, 201, 403]),
    ("GET", "/api/v1/uploads/{id}", [401, 403, 200, 404, 200, 200]),
    ("DELETE", "/api/v1/uploads/{id}", [401, 403, 200, 404, 200, 403]),
    ("PUT", "/api/v1/uploads/{id}/chunks/{ix}", [401, 403, 200, 404, 200, 403]),
    ("POST", "/api/v1/uploads/{id}/complete", [401, 403, 200, 404, 200, 403]),
    // OpenAI-compatible: a tenant's key; an operator is nobody's tenant.
    ("GET", "/v1/models", [401, 200, 200, 200, 403, 403]),
    ("POST", "/v1/chat/completions", [401, 200, 200, 200, 403, 403]),
    ("POST", "/v1/completions", [401, 200, 200, 200, 403, 403]),
    ("POST", "/v1/responses", [401, 200, 200, 200, 403, 403]),
    ("GET", "/v1/responses/{id}", [401, 200, 200, 404, 403, 403]),
    // Only a background response can be cancelled: A's finished one says so; B has none.
    ("POST", "/v1/responses/{id}/cancel", [401, 400, 400, 404, 403, 403]),
    // Conversations: a tenant's own; A's answers to B like a missing one.
    ("POST", "/v1/conversations", [401, 200, 200, 200, 403, 403]),
    ("GET", "/v1/conversations/{id}", [401, 200, 200, 404, 403, 403]),
    ("POST", "/v1/conversations/{id}", [401, 200, 200, 404, 403, 403]),
    ("DELETE", "/v1/conversations/{id}", [401, 200, 200, 404, 403, 403]),
    ("GET", "/v1/conversations/{id}/items", [401, 200, 200, 404, 403, 403]),
    ("POST", "/v1/conversations/{id}/items", [401, 200, 200, 404, 403, 403]),
    ("GET", "/v1/conversations/{id}/items/{item_id}", [401, 200, 200, 404, 403, 403]),
    ("DELETE", "/v1/conversations/{id}/items/{item_id}", [401, 200, 200, 404, 403, 403]),
    ("POST", "/v1/embeddings", [401, 200, 200, 200, 403, 403]),
];

struct World {
    s: Server,
    http: Client,
    /// Secrets, as in [`WHO`] (anonymous has none).
    creds: [Option<String>; 6],
    upstream: String,
    /// Tenant A's objects.
    job: String,
    response: String,
    /// Tenant A's filing (overdue, so it raised an alert), its attachment's digest, the alert.
    filing: String,
    attachment: String,
    alert: String,
    /// Tenant A's incident.
    incident: String,
    eval_run: String,
    /// Tenant A's open upload of `"y"` (3 bytes: the JSON body a chunk is sent as).
    upload: String,
    /// B's contract for A's dataset `ds0`.
    contract: String,
    /// A's registration of `ds0`, on public notice.
    registration: String,
    report: String,
    n: std::cell::Cell<u32>,
}

impl World {
    fn req(&self, who: usize, method: &str, path: &str) -> RequestBuilder {
        let url = format!("{}{path}", self.s.url);
        let mut r = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            "DELETE" => self.http.delete(url),
            m => panic!("method {m}"),
        };
        if let Some(c) = &self.creds[who] {
            r = r.bearer_auth(c);
        }
        if WHO[who] == "operator" || WHO[who] == "viewer" {
            r = r.header("x-aiplus-tenant", "alpha");
        }
        r
    }

    fn fresh(&self) -> u32 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }

    /// As the operator: a new object of tenant A for a request that uses one up.
    fn op(&self, method: &str, path: &str, body: &Value) -> Value {
        let r = self.req(4, method, path).json(body).send().unwrap();
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    /// A new published version of tenant A's (a dataset of the file `"x"`), to register.
    fn fresh_version(&self, n: u32) -> String {
        let id = format!("rg-{n}");
        self.op("POST", "/api/v1/datasets", &json!({"id": id}));
        self.op("POST", &format!("/api/v1/datasets/{id}/versions"), &croissant_record());
        self.op("POST", &format!("/api/v1/datasets/{id}/versions/1.0.0/publish"), &Value::Null);
        id
    }

    fn job_body(&self) -> Value {
        json!({"kind": "batch_inference", "gpus": 1, "gpu_milli": 100, "cpu_milli": 100, "memory_mib": 64,
               "duration_s": 60, "origin_hub": "changsanjiao", "command": ["sleep", "30"]})
    }

    /// The concrete path and body of one attempt of `who` at a route.
    fn attempt(&self, method: &str, route: &str, who: usize) -> (String, Option<Value>) {
        let n = self.fresh();
        let path = |id: &str| route.replace("{id}", id);
        match (method, route) {
            ("POST", "/api/v1/hubs") => {
                let hubs = self.op("GET", "/api/v1/hubs", &Value::Null);
                let links: Vec<Value> = hubs
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| json!({"to": h["id"], "latency_ms": 12.0, "bandwidth_gbps": 100.0, "source": "test"}))
                    .collect();
                let hub = json!({"id": format!("hub-{n}"), "name_zh": "测试", "name_en": "Test", "side": "east", "lat": 20.0,
                    "lon": 110.3, "intra_latency_ms": 5.0, "intra_bandwidth_gbps": 400.0, "intra_source": "test"});
                (route.into(), Some(json!({"hub": hub, "links": links})))
            }
            ("PUT", "/api/v1/hubs/{id}") => {
                let hub = self.op("GET", "/api/v1/hubs/jingjinji", &Value::Null);
                (path("jingjinji"), Some(json!({"hub": hub})))
            }
            ("GET", "/api/v1/hubs/{id}") => (path("jingjinji"), None),
            ("POST", "/api/v1/clusters") => {
                let mut c = cluster_spec(&self.op("GET", "/api/v1/clusters/qingyang", &Value::Null));
                c["id"] = json!(format!("qingyang-{n}"));
                (route.into(), Some(c))
            }
            ("PUT", "/api/v1/clusters/{id}") => {
                let c = cluster_spec(&self.op("GET", "/api/v1/clusters/qingyang", &Value::Null));
                (path("qingyang"), Some(c))
            }
            ("GET", "/api/v1/clusters/{id}") => (path("qingyang"), None),
            ("POST", "/api/v1/jobs") => (route.into(), Some(self.job_body())),
            ("POST", "/api/v1/jobs/{id}/cancel") => {
                let j = self.op("POST", "/api/v1/jobs", &self.job_body());
                (path(j["id"].as_str().unwrap()), Some(json!({})))
            }
            (_, r) if r.starts_with("/api/v1/jobs/{id}") => (path(&self.job), None),
            ("POST", "/api/v1/tenants") => (route.into(), Some(json!({"id": format!("t-{n}")}))),
            ("GET", "/api/v1/tenants/{tenant}") => (route.replace("{tenant}", "alpha"), None),
            ("PUT", "/api/v1/tenants/{tenant}") => (route.replace("{tenant}", "alpha"), Some(json!({"limits": {}}))),
            ("POST", "/api/v1/keys") => (route.into(), Some(json!({"scopes": ["inference"]}))),
            ("POST", "/api/v1/keys/{id}/revoke") => {
                let k = self.op("POST", "/api/v1/keys", &json!({}));
                (path(k["id"].as_str().unwrap()), Some(json!({})))
            }
            ("POST", "/api/v1/operator-tokens") => (route.into(), Some(json!({"name": format!("bot-{n}")}))),
            ("POST", "/api/v1/operator-tokens/{id}/revoke") => {
                let t = self.op("POST", "/api/v1/operator-tokens", &json!({"name": format!("bot-{n}")}));
                (path(t["id"].as_str().unwrap()), Some(json!({})))
            }
            ("GET", "/api/v1/models/{name}") => (route.replace("{name}", "qwen"), None),
            ("PUT", "/api/v1/models/{name}") => (
                route.replace("{name}", &format!("m-{n}")),
                Some(json!({"deployment": [{"id": format!("d-{n}"), "base_url": format!("{}/ok/v1", self.upstream)}]})),
            ),
            ("DELETE", "/api/v1/models/{name}") => {
                let name = format!("m-{n}");
                let body = json!({"deployment": [{"id": format!("d-{n}"), "base_url": format!("{}/ok/v1", self.upstream)}]});
                self.op("PUT", &format!("/api/v1/models/{name}"), &body);
                (route.replace("{name}", &name), None)
            }
            ("PUT", "/api/v1/model-deployments/{name}") => {
                (route.replace("{name}", &format!("md-{n}")), Some(json!({"model": "smollm2-135m-instruct", "replicas": 0})))
            }
            (_, r) if r.starts_with("/api/v1/model-deployments/{name}") => {
                let name = format!("md-{n}");
                self.op("PUT", &format!("/api/v1/model-deployments/{name}"), &json!({"model": "smollm2-135m-instruct", "replicas": 0}));
                (route.replace("{name}", &name), (method == "POST").then(|| json!({"replicas": 0})))
            }
            ("POST", "/api/v1/filings") => (route.into(), Some(json!({"tenant": "alpha", "content": {"domains": ["客服"]}}))),
            ("POST", "/api/v1/filings/{id}/actions") => {
                let f = self.op("POST", "/api/v1/filings", &json!({"tenant": "alpha"}));
                (path(f["id"].as_str().unwrap()), Some(json!({"action": "update", "content": {"domains": ["教育"]}})))
            }
            ("POST", "/api/v1/filings/{id}/attachments") => {
                let f = self.op("POST", "/api/v1/filings", &json!({"tenant": "alpha"}));
                (format!("{}?kind=test_set&name=t.json", path(f["id"].as_str().unwrap())), Some(json!({"q": n})))
            }
            ("GET", "/api/v1/filings/{id}/attachments/{sha256}") => (path(&self.filing).replace("{sha256}", &self.attachment), None),
            (_, r) if r.starts_with("/api/v1/filings/{id}") => (path(&self.filing), None),
            ("POST", "/api/v1/alerts/{id}/ack") => (path(&self.alert), None),
            ("PUT", "/api/v1/alert-rules/{name}") => (route.replace("{name}", &format!("r-{n}")), Some(rule_body())),
            ("DELETE", "/api/v1/alert-rules/{name}") => {
                self.op("PUT", &format!("/api/v1/alert-rules/r-{n}"), &rule_body());
                (route.replace("{name}", &format!("r-{n}")), None)
            }
            ("GET", "/api/v1/alert-rules/{name}") => (route.replace("{name}", "r0"), None),
            ("POST", "/api/v1/model-flags") => (route.into(), Some(json!({"model": "qwen"}))),
            ("POST", "/api/v1/webhook-deliveries/{id}/retry") => (path("whd_0000"), None),
            ("POST", "/api/v1/incidents") => (route.into(), Some(json!({"title": "测试事件", "grade": "general", "tenant": "alpha"}))),
            ("POST", "/api/v1/incidents/{id}/steps") => (path(&self.incident), Some(json!({"action": "note", "text": "在查"}))),
            ("GET", "/api/v1/incidents/{id}") => (path(&self.incident), None),
            ("POST", "/api/v1/end-users/{tenant}/{user}/lift") => {
                (route.replace("{tenant}", "alpha").replace("{user}", "u-1"), Some(json!({"reason": "申诉通过"})))
            }
            ("GET", "/api/v1/log/proof") => ("/api/v1/log/proof?index=0".into(), None),
            ("GET", "/api/v1/model-states/{name}") => (route.replace("{name}", "qwen"), None),
            ("PUT", "/api/v1/model-states/{name}") => {
                (route.replace("{name}", "qwen"), Some(json!({"status": "active", "reason": "the authorization matrix"})))
            }
            ("GET", "/api/v1/log/consistency") => ("/api/v1/log/consistency?from=1".into(), None),
            ("GET", "/api/v1/log/entries/{index}") => (route.replace("{index}", "0"), None),
            ("GET", "/api/v1/oss/rankings") => ("/api/v1/oss/rankings?period=2021-07&kind=developers".into(), None),
            ("GET", "/api/v1/oss/developers/{login}") => (route.replace("{login}", "gabrieldonadel") + "?period=2021-07", None),
            ("POST", "/api/v1/oss/reports") => (route.into(), Some(json!({"developer": "gabrieldonadel", "period": "2021-06..2021-07"}))),
            ("GET", "/api/v1/oss/reports/{id}") => (path(&self.report), None),
            ("GET", "/api/v1/oss/repos/{owner}/{repo}") => {
                (route.replace("{owner}", "gabrieldonadel").replace("{repo}", "pull-requests-limits") + "?period=2021-07", None)
            }
            ("POST", "/v1/chat/completions") => {
                (route.into(), Some(json!({"model": "qwen", "messages": [{"role": "user", "content": "hi"}]})))
            }
            ("POST", "/v1/completions") => (route.into(), Some(json!({"model": "qwen", "prompt": "hi"}))),
            ("POST", "/api/v1/eval/runs") => (route.into(), Some(eval_run_body())),
            ("GET", "/api/v1/eval/runs/{id}" | "/api/v1/eval/runs/{id}/samples" | "/api/v1/eval/runs/{id}/chart") => {
                (path(&self.eval_run), None)
            }
            ("PUT", "/api/v1/agents/{id}") => (route.replace("{id}", &format!("ag-{n}")), Some(json!({"model": "qwen"}))),
            ("DELETE", "/api/v1/agents/{id}") => {
                self.op("PUT", &format!("/api/v1/agents/ag-{n}"), &json!({"model": "qwen"}));
                (route.replace("{id}", &format!("ag-{n}")), None)
            }
            (_, r) if r.starts_with("/api/v1/agents/{id}") => (route.replace("{id}", "a0"), None),
            ("PUT", "/api/v1/collections/{id}/documents/{doc}") => {
                (route.replace("{id}", &format!("c-{n}")).replace("{doc}", "d0"), Some(json!({"text": "算力网络"})))
            }
            ("DELETE", "/api/v1/collections/{id}" | "/api/v1/collections/{id}/documents/{doc}") => {
                self.op("PUT", &format!("/api/v1/collections/c-{n}/documents/d0"), &json!({"text": "算力网络"}));
                (route.replace("{id}", &format!("c-{n}")).replace("{doc}", "d0"), None)
            }
            ("POST", "/api/v1/collections/{id}/search") => (route.replace("{id}", "c0"), Some(json!({"query": "算力"}))),
            ("GET", "/api/v1/collections/{id}") => (route.replace("{id}", "c0"), None),
            ("POST", "/api/v1/datasets") => (route.into(), Some(json!({"id": format!("ds-{n}")}))),
            ("POST", "/api/v1/datasets/{id}/versions") => {
                self.op("POST", "/api/v1/datasets", &json!({"id": format!("ds-{n}")}));
                (path(&format!("ds-{n}")), Some(croissant_record()))
            }
            ("PUT", "/api/v1/datasets/{id}/listing") => (path("ds0"), Some(listing_body())),
            ("POST", "/api/v1/datasets/{id}/versions/{version}/valuations") => (
                path("vs0").replace("{version}", "1.0.0"),
                Some(json!({"train_file": "train.csv", "test_file": "test.csv", "k": 1, "contributor_column": "who"})),
            ),
            ("GET", "/api/v1/datasets/{id}/versions/{version}/valuations") => (path("vs0").replace("{version}", "1.0.0"), None),
            (_, r) if r.starts_with("/api/v1/datasets/{id}") => {
                let p = path("ds0").replace("{version}", "1.0.0").replace("{file}", "rows.json");
                (p, (method == "POST").then(|| json!({})))
            }
            ("POST", "/api/v1/uploads") => (route.into(), Some(json!({"sha256": sha_hex(format!("\"{n}\"").as_bytes()), "size_bytes": 3}))),
            ("PUT", "/api/v1/uploads/{id}/chunks/{ix}") => (path(&self.upload).replace("{ix}", "0"), Some(json!("y"))),
            ("POST", "/api/v1/uploads/{id}/complete") => {
                // The file `"x"` is held, so a new upload of it is complete at once.
                let u = self.op("POST", "/api/v1/uploads", &json!({"sha256": sha_hex(b"\"x\""), "size_bytes": 3}));
                (path(u["id"].as_str().unwrap()), None)
            }
            ("GET", "/api/v1/uploads/{id}") => (path(&self.upload), None),
            ("DELETE", "/api/v1/uploads/{id}") => {
                let u = self.op("POST", "/api/v1/uploads", &json!({"sha256": sha_hex(format!("del{n}").as_bytes()), "size_bytes": 5}));
                (path(u["id"].as_str().unwrap()), None)
            }
            ("POST", "/api/v1/contracts") => (route.into(), Some(contract_body())),
            ("GET", "/api/v1/contracts/{id}") => (path(&self.contract), None),
            ("GET", "/api/v1/contracts/{id}/files/{file}") => (path(&self.contract).replace("{file}", "rows.json"), None),
            (_, r) if r.starts_with("/api/v1/contracts/{id}/runs") => {
                let p = path(&self.contract).replace("{run}", "drun_0").replace("{name}", "sum.txt");
                (p, (method == "POST").then(|| json!({"command": ["true"], "outputs": ["sum.txt"]})))
            }
            ("POST", "/api/v1/settlements") => (route.into(), Some(json!({"period": "2026-11"}))),
            ("POST", "/api/v1/registrations") => (route.into(), Some(registration_body(&self.fresh_version(n)))),
            ("POST", "/api/v1/registrations/{id}/actions") => {
                let r = self.op("POST", "/api/v1/registrations", &registration_body(&self.fresh_version(n)));
                (path(r["id"].as_str().unwrap()), Some(json!({"action": "reject", "reason": "材料不全"})))
            }
            ("POST", "/api/v1/registrations/{id}/objections") => (path(&self.registration), Some(json!({"reason": "该数据部分来自我方"}))),
            ("GET", "/api/v1/registrations/{id}") => (path(&self.registration), None),
            ("POST", "/v1/responses") => (route.into(), Some(json!({"model": "qwen", "input": "hi"}))),
            (_, "/v1/responses/{id}" | "/v1/responses/{id}/cancel") => (path(&self.response), None),
            ("POST", "/v1/conversations") => (route.into(), Some(json!({"items": [{"role": "user", "content": "你好"}]}))),
            (_, r) if r.starts_with("/v1/conversations/{id}") => {
                // A's own conversation, made afresh for each call (a delete must find one).
                let conv: Value = self
                    .req(2, "POST", "/v1/conversations")
                    .json(&json!({"items": [{"role": "user", "content": "hi", "id": "msg_a"}]}))
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                let route = route.replace("{id}", conv["id"].as_str().unwrap()).replace("{item_id}", "msg_a");
                let body = match (method, r) {
                    ("POST", "/v1/conversations/{id}") => Some(json!({"metadata": {"topic": "算力"}})),
                    ("POST", _) => Some(json!({"items": [{"role": "assistant", "content": "ok"}]})),
                    _ => None,
                };
                (route, body)
            }
            ("POST", "/v1/embeddings") => (route.into(), Some(json!({"model": "emb", "input": ["hi"]}))),
            _ => {
                let _ = who;
                (route.into(), None)
            }
        }
    }
}

fn world(name: &str) -> (tokio::runtime::Runtime, World, std::path::PathBuf) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(gateway::test_double::start()).unwrap();
    let data = temp_dir(name);
    let cfg = data.join("aiplus.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agents]\nembedding_model = \"emb\"\n[gateway]\nallow_local_upstreams = true\n[gateway.embedded]\nenabled = false\n\
             [[gateway.model]]\nname = \"qwen\"\n[[gateway.model.deployment]]\nid = \"mock\"\nbase_url = \"{upstream}/ok/v1\"\n\
             [[gateway.model]]\nname = \"emb\"\n[[gateway.model.deployment]]\nid = \"emb\"\nbase_url = \"{upstream}/ok/v1\"\n"
        ),
    )
    .unwrap();
    // A few hours of real GH Archive for the open-source routes to read.
    let gharchive = data.with_extension("gharchive");
    std::fs::create_dir_all(&gharchive).unwrap();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/oss/gharchive/pinot/2021-07-21-few-hours.json");
    std::fs::copy(sample, gharchive.join("2021-07-21-6.json")).unwrap();
    let ingest = Command::new(BIN).args(["oss", "ingest"]).arg(&gharchive).arg("--data-dir").arg(&data).output().unwrap();
    assert!(ingest.status.success(), "{}", String::from_utf8_lossy(&ingest.stderr));
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let secret = |v: Value| Some(v["secret"].as_str().unwrap().to_string());
    let a_member = secret(s.key("alpha", &json!({"role": "tenant-member", "scopes": ["inference", "jobs"]})));
    let a_admin = secret(s.key("alpha", &json!({"role": "tenant-admin", "scopes": ["inference", "jobs", "usage", "admin", "data"]})));
    let b = secret(s.key("bravo", &json!({"role": "tenant-admin", "scopes": ["inference", "jobs", "usage", "admin", "data"]})));
    let (status, viewer) = s.post("/api/v1/operator-tokens", &json!({"name": "viewer", "role": "operator-viewer"}));
    assert_eq!(status, 201, "{viewer}");
    let creds = [None, a_member, a_admin, b, Some(s.token.clone()), secret(viewer)];
    let mut w = World {
        http: Client::new(),
        creds,
        upstream,
        job: String::new(),
        response: String::new(),
        filing: String::new(),
        attachment: String::new(),
        alert: String::new(),
        incident: String::new(),
        eval_run: String::new(),
        upload: String::new(),
        contract: String::new(),
        registration: String::new(),
        report: String::new(),
        n: 0.into(),
        s,
    };
    let job: Value = w.req(2, "POST", "/api/v1/jobs").json(&w.job_body()).send().unwrap().json().unwrap();
    w.job = job["id"].as_str().unwrap().to_string();
    let resp: Value = w.req(1, "POST", "/v1/responses").json(&json!({"model": "qwen", "input": "hi"})).send().unwrap().json().unwrap();
    w.response = resp["id"].as_str().unwrap().to_string();
    // A filing for tenant A whose service started long ago: overdue at once, so it raises an alert.
    let f = w.op("POST", "/api/v1/filings", &json!({"tenant": "alpha", "content": {"service_started_on": "2020-01-06"}}));
    w.filing = f["id"].as_str().unwrap().to_string();
    let url = format!("{}/api/v1/filings/{}/attachments?kind=keyword_list&name=k.txt", w.s.url, w.filing);
    let a: Value = w.http.post(url).bearer_auth(&w.s.token).body("关键词\n").send().unwrap().json().unwrap();
    w.attachment = a["attachments"][0]["sha256"].as_str().unwrap().to_string();
    w.alert = common::poll(std::time::Duration::from_secs(10), || {
        let alerts = w.op("GET", "/api/v1/alerts", &Value::Null);
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["subject"] == format!("filing/{}", w.filing))
            .map(|a| a["id"].as_str().unwrap().to_string())
    });
    w.op("PUT", "/api/v1/agents/a0", &json!({"model": "qwen"}));
    let r = w.op("POST", "/api/v1/oss/reports", &json!({"developer": "gabrieldonadel", "period": "2021-07"}));
    w.report = r["id"].as_str().unwrap().to_string();
    w.op("PUT", "/api/v1/collections/c0/documents/d0", &json!({"text": "全国一体化算力网络"}));
    // Tenant A's published, listed dataset, with one hosted file (`"x"`), and an open upload.
    w.op("POST", "/api/v1/datasets", &json!({"id": "ds0"}));
    let up = w.op("POST", "/api/v1/uploads", &json!({"sha256": sha_hex(b"\"x\""), "size_bytes": 3}));
    let chunk = format!("/api/v1/uploads/{}/chunks/0", up["id"].as_str().unwrap());
    w.op("PUT", &chunk, &json!("x"));
    w.op("POST", &format!("/api/v1/uploads/{}/complete", up["id"].as_str().unwrap()), &Value::Null);
    w.op("POST", "/api/v1/datasets/ds0/versions", &croissant_record());
    w.op("POST", "/api/v1/datasets/ds0/versions/1.0.0/publish", &Value::Null);
    w.op("PUT", "/api/v1/datasets/ds0/listing", &listing_body());
    let c: Value = w.req(3, "POST", "/api/v1/contracts").json(&contract_body()).send().unwrap().json().unwrap();
    w.contract = c["id"].as_str().expect("B's contract").to_string();
    let r = w.op("POST", "/api/v1/registrations", &registration_body("ds0"));
    w.registration = r["id"].as_str().unwrap().to_string();
    w.op("POST", &format!("/api/v1/registrations/{}/actions", w.registration), &json!({"action": "pass", "reason": "形式审查通过"}));
    // Tenant A's dataset with a training and a test table, to be valued.
    let (train, test) = ("f,who,label\n0,ann,0\n1,bo,1\n".as_bytes(), "f,label\n0,0\n1,1\n".as_bytes());
    for file in [train, test] {
        let up = w.op("POST", "/api/v1/uploads", &json!({"sha256": sha_hex(file), "size_bytes": file.len()}));
        let id = up["id"].as_str().unwrap();
        assert!(w.req(4, "PUT", &format!("/api/v1/uploads/{id}/chunks/0")).body(file.to_vec()).send().unwrap().status().is_success());
        w.op("POST", &format!("/api/v1/uploads/{id}/complete"), &Value::Null);
    }
    w.op("POST", "/api/v1/datasets", &json!({"id": "vs0"}));
    let mut tables = croissant_record();
    tables["distribution"] = json!([
        {"@type": "cr:FileObject", "@id": "train.csv", "name": "train.csv", "contentUrl": "train.csv", "encodingFormat": "text/csv", "sha256": sha_hex(train)},
        {"@type": "cr:FileObject", "@id": "test.csv", "name": "test.csv", "contentUrl": "test.csv", "encodingFormat": "text/csv", "sha256": sha_hex(test)}
    ]);
    w.op("POST", "/api/v1/datasets/vs0/versions", &tables);
    w.op("POST", "/api/v1/datasets/vs0/versions/1.0.0/publish", &Value::Null);
    let open = w.op("POST", "/api/v1/uploads", &json!({"sha256": sha_hex(b"\"y\""), "size_bytes": 3}));
    w.upload = open["id"].as_str().unwrap().to_string();
    let rule = w.op("PUT", "/api/v1/alert-rules/r0", &rule_body());
    assert_eq!(rule["name"], "r0");
    let incident = w.op("POST", "/api/v1/incidents", &json!({"title": "数据泄露", "grade": "major", "tenant": "alpha"}));
    w.incident = incident["id"].as_str().unwrap().to_string();
    // A finished evaluation run (one SafetyBench question to the mock model).
    let run = w.op("POST", "/api/v1/eval/runs", &eval_run_body());
    w.eval_run = run["id"].as_str().unwrap().to_string();
    common::poll(std::time::Duration::from_secs(30), || {
        let r = w.op("GET", &format!("/api/v1/eval/runs/{}", w.eval_run), &Value::Null);
        (r["state"] == "succeeded").then_some(())
    });
    (rt, w, data)
}

fn eval_run_body() -> Value {
    json!({"model": "qwen", "suite": "safetybench-zh", "subjects": ["Offensiveness"], "limit": 1})
}

fn registration_body(dataset: &str) -> Value {
    json!({"kind": "first", "dataset": dataset, "version": "1.0.0",
           "rights": [{"right": "holding", "holder": "alpha", "scope": "全部", "from": "2026-01-01"}],
           "authorization": {"basis": "self_collected", "description": "自有数据"},
           "classification": {"category": "enterprise", "grade": "general"},
           "licence_chain": [{"source": "alpha", "licence": "proprietary"}]})
}

fn listing_body() -> Value {
    json!({"version": "1.0.0", "offer": {"price": {"unit": "per_call", "fen": 5}, "modes": ["download"], "max_days": 30}})
}

fn contract_body() -> Value {
    json!({"seller": "alpha", "dataset": "ds0", "purpose": "授权矩阵", "days": 1, "mode": "download"})
}

fn sha_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// A Croissant record of one hosted file, `rows.json` (the 3 bytes `"x"`).
fn croissant_record() -> Value {
    json!({
        "@context": {"@vocab": "https://schema.org/", "sc": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
                     "dct": "http://purl.org/dc/terms/", "conformsTo": "dct:conformsTo"},
        "@type": "sc:Dataset", "name": "rows", "conformsTo": "http://mlcommons.org/croissant/1.1", "version": "1.0.0",
        "distribution": [{"@type": "cr:FileObject", "@id": "rows.json", "name": "rows.json", "contentUrl": "rows.json",
                          "encodingFormat": "application/json", "sha256": sha_hex(b"\"x\"")}]
    })
}

fn rule_body() -> Value {
    json!({"metric": "block_rate", "window_s": 60, "fire_above": 0.5, "clear_below": 0.1})
}

#[test]
fn every_route_answers_each_caller_as_the_matrix_says() {
    let (_rt, w, data) = world("authz-matrix");
    let (status, doc) = w.s.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = MATRIX.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected, "the document and this matrix list the same routes");

    let mut wrong = Vec::new();
    let mut anonymous_2xx = Vec::new();
    for (method, route, want) in MATRIX {
        for (who, want) in want.iter().enumerate() {
            let (path, body) = w.attempt(method, route, who);
            let mut r = w.req(who, method, &path);
            if let Some(b) = &body {
                r = r.json(b);
            }
            let resp = r.send().unwrap();
            let got = resp.status().as_u16();
            let text = resp.text().unwrap_or_default();
            if got != *want {
                wrong.push(format!(
                    "{method} {path} as {}: got {got}, want {want}: {}",
                    WHO[who],
                    text.chars().take(300).collect::<String>()
                ));
            }
            // Public on purpose: liveness, and the transparency log's proofs (which hold only
            // public leaves and hashes, like the tiles under /log/).
            if who == 0 && (200..300).contains(&got) && !["/healthz", "/api/v1/log/proof", "/api/v1/log/consistency"].contains(route) {
                anonymous_2xx.push(format!("{method} {path}"));
            }
            // A tenant's lists never hold another tenant's objects.
            if WHO[who] == "b" && got == 200 && method == &"GET" {
                assert!(!text.contains(&w.job), "{path} shows B tenant A's job");
                // (The transparency log's public leaves name subjects by id on purpose.)
                for (what, id) in [("filing", &w.filing), ("incident", &w.incident), ("alert", &w.alert)] {
                    assert!(route.starts_with("/api/v1/log/") || !text.contains(id.as_str()), "{path} shows B tenant A's {what}");
                }
                if *route == "/api/v1/usage" || *route == "/api/v1/keys" || *route == "/api/v1/usage/summary" {
                    assert!(!text.contains("\"tenant\":\"alpha\""), "{path} shows B tenant A's records: {text}");
                }
            }
        }
    }
    assert!(anonymous_2xx.is_empty(), "anonymous 2xx outside the public routes: {anonymous_2xx:?}");
    assert!(wrong.is_empty(), "{} answers differ from the matrix:\n{}", wrong.len(), wrong.join("\n"));
    let _ = std::fs::remove_dir_all(&data);
}

/// Another tenant's object answers exactly like one that does not exist: same status, same
/// body but for the id.
#[test]
fn another_tenants_object_answers_exactly_like_a_missing_one() {
    let (_rt, w, data) = world("authz-missing");
    let b = 3;
    let a_key = w.op("POST", "/api/v1/keys", &json!({}));
    let a_key = a_key["id"].as_str().unwrap();
    for (method, real, missing) in [
        ("GET", format!("/api/v1/jobs/{}", w.job), "/api/v1/jobs/job_0000".to_string()),
        ("GET", format!("/api/v1/jobs/{}/logs", w.job), "/api/v1/jobs/job_0000/logs".into()),
        ("POST", format!("/api/v1/jobs/{}/cancel", w.job), "/api/v1/jobs/job_0000/cancel".into()),
        ("POST", format!("/api/v1/keys/{a_key}/revoke"), "/api/v1/keys/key_0000/revoke".into()),
        ("GET", format!("/v1/responses/{}", w.response), "/v1/responses/resp_0000".into()),
        ("GET", "/api/v1/tenants/alpha".into(), "/api/v1/tenants/nobody".into()),
        ("GET", format!("/api/v1/filings/{}", w.filing), "/api/v1/filings/fil_0000".into()),
        ("GET", format!("/api/v1/filings/{}/history", w.filing), "/api/v1/filings/fil_0000/history".into()),
        ("GET", format!("/api/v1/incidents/{}", w.incident), "/api/v1/incidents/inc_0000".into()),
    ] {
        let answer = |path: &str| {
            let r = w.req(b, method, path).json(&json!({})).send().unwrap();
            (r.status().as_u16(), r.text().unwrap())
        };
        let (s1, b1) = answer(&real);
        let (s2, b2) = answer(&missing);
        let id = |p: &str| {
            let p = p.trim_end_matches("/logs").trim_end_matches("/cancel").trim_end_matches("/revoke").trim_end_matches("/history");
            p.rsplit('/').next().unwrap().to_string()
        };
        assert_eq!(s1, s2, "{method} {real}");
        assert_eq!(b1.replace(&id(&real), "<id>"), b2.replace(&id(&missing), "<id>"), "{method} {real}");
    }
    // Naming another tenant in X-Aiplus-Tenant is no way around it.
    let r = w.req(b, "GET", &format!("/api/v1/jobs/{}", w.job)).header("x-aiplus-tenant", "alpha").send().unwrap();
    assert_eq!(r.status(), 404);
    // Nor is a tenant in the body.
    let mut body = w.job_body();
    body["tenant"] = json!("alpha");
    let r = w.req(b, "POST", "/api/v1/jobs").json(&body).send().unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().unwrap()["field"], "tenant");
    // A job B submits is B's, and B's list holds only B's jobs.
    let j: Value = w.req(b, "POST", "/api/v1/jobs").json(&w.job_body()).send().unwrap().json().unwrap();
    assert_eq!(j["tenant"], "bravo");
    let list: Value = w.req(b, "GET", "/api/v1/jobs?tenant=alpha").send().unwrap().json().unwrap();
    assert!(list.as_array().unwrap().iter().all(|j| j["tenant"] == "bravo"), "{list}");
    // A key cannot mint a key stronger than itself.
    let r = w.req(1, "POST", "/api/v1/keys").json(&json!({})).send().unwrap();
    assert_eq!(r.status(), 403, "a member cannot make keys");
    let narrow = w.s.key("alpha", &json!({"role": "tenant-admin", "scopes": ["admin"]}));
    let r = w.http.post(format!("{}/api/v1/keys", w.s.url)).bearer_auth(narrow["secret"].as_str().unwrap());
    let r = r.json(&json!({"scopes": ["inference", "jobs"]})).send().unwrap();
    assert_eq!(r.status(), 422, "an admin-only key cannot make an inference key");
    let _ = std::fs::remove_dir_all(&data);
}

/// A console session may call the JSON API, but its writes need the session's CSRF token in a
/// header; a `Host` that is not ours is refused whatever the credential.
#[test]
fn cookie_writes_need_the_csrf_header_and_foreign_hosts_are_refused() {
    let (_rt, w, data) = world("authz-cookie");
    let password = std::fs::read_to_string(data.join("console-admin-password")).unwrap();
    let browser = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = browser.post(format!("{}/login", w.s.url)).form(&[("username", "admin"), ("password", password.trim())]).send().unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = browser.get(format!("{}/", w.s.url)).header("cookie", &cookie).send().unwrap().text().unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let create =
        || browser.post(format!("{}/api/v1/keys", w.s.url)).header("cookie", &cookie).header("x-aiplus-tenant", "alpha").json(&json!({}));
    assert_eq!(create().send().unwrap().status(), 403, "no CSRF header");
    assert_eq!(create().header("x-csrf-token", "forged").send().unwrap().status(), 403);
    assert_eq!(create().header("x-csrf-token", &csrf).send().unwrap().status(), 201);
    let r = browser.get(format!("{}/api/v1/keys", w.s.url)).header("cookie", &cookie).send().unwrap();
    assert_eq!(r.status(), 200, "reads need no CSRF token");

    let op = w.creds[4].clone().unwrap();
    let r = w.http.get(format!("{}/api/v1/whoami", w.s.url)).bearer_auth(&op).header("host", "rebound.example.com").send().unwrap();
    assert_eq!(r.status(), 421);
    assert_eq!(r.json::<Value>().unwrap()["field"], "host");
    let r = w.http.get(format!("{}/api/v1/whoami", w.s.url)).bearer_auth(&op).header("host", "localhost:1").send().unwrap();
    assert_eq!(r.status(), 200);
    let _ = std::fs::remove_dir_all(&data);
}

/// A fresh data directory gets an operator token (mode 0600) and the server says where; a
/// restart keeps it; `aiplus login` stores it for the CLI.
#[test]
fn a_fresh_server_writes_an_operator_token_and_the_cli_logs_in_with_it() {
    let data = temp_dir("authz-token");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("AIPLUS_LOG", "warn")
        .env("AIPLUS_EMBED", "false")
        .env("AIPLUS_EMBED_DIR", model_dir())
        .env("AIPLUS_MODELS_CHAT", "")
        .env_remove("AIPLUS_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    while !said.contains("operator token") {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "the server ended without naming the token file: {said}");
        said.push_str(&line);
    }
    let file = data.join("operator-token");
    assert!(said.contains(file.to_str().unwrap()), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    let home = data.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(&home)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AIPLUS_TOKEN")
            .env_remove("AIPLUS_TOKEN_FILE")
            .env("AIPLUS_SERVER", &url)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (ok, _, err) = cli(&["clusters", "list"]);
    assert!(!ok && err.contains("401") && err.contains("aiplus login"), "without a token: {err}");
    let (ok, out, err) = cli(&["login", "--token-file", file.to_str().unwrap()]);
    assert!(ok && out.contains("operator-admin"), "{out}{err}");
    assert!(home.join(".config/aiplus/token").exists());
    let (ok, out, err) = cli(&["clusters", "list"]);
    assert!(ok && out.contains("tianfu"), "{out}{err}");
    let (ok, out, err) = cli(&["operator-tokens", "create", "ci-dashboard", "--json"]);
    assert!(ok, "{err}");
    let viewer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(viewer["role"], "operator-viewer");
    let (ok, _, err) = cli(&["login", "--token", "aot_wrong"]);
    assert!(!ok && err.contains("401"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();

    // A restart on the same directory makes no new token; the old one still works.
    let before = std::fs::read_to_string(&file).unwrap();
    let s = Server::start(&data);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    assert_eq!(s.get("/api/v1/whoami").1["role"], "operator-admin");
    let _ = std::fs::remove_dir_all(&data);
}
