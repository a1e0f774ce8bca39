//! The JSON Schemas of the OpenAPI document: request bodies as precise as JSON Schema can say
//! (types, ranges, patterns, sizes), responses with the members a client may rely on, and the
//! query parameters of the list operations. Rules across fields or objects (a cluster's hub
//! must exist; a share of a GPU needs `gpus = 1`) are in the descriptions and answer 422.
//!
//! The limits are the code's own constants, so the document cannot drift from what is
//! enforced; schemathesis checks the rest against the running server (tests/api_fuzz.rs).

use serde_json::{Value, json};

/// Characters a name may not hold: Unicode's control characters (C0, DEL and C1).
pub(super) const NO_CONTROLS: &str = "\\u0000-\\u001f\\u007f-\\u009f";

/// A string of 1..=`max` characters without control characters (descriptions, sources).
pub(super) fn text(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": format!("^[^{NO_CONTROLS}]*$")})
}

/// Free text of the network file (names, sources): anything with a non-blank character.
fn prose() -> Value {
    json!({"type": "string", "pattern": "\\S"})
}

/// A name that may be left blank for its default (keys' and tokens' names).
fn name(max: usize) -> Value {
    nullable(json!({"type": "string", "maxLength": max, "pattern": format!("^[^{NO_CONTROLS}]*$")}))
}

/// An optional field that may also be sent as `null`, meaning "not set".
pub(super) fn nullable(schema: Value) -> Value {
    json!({"anyOf": [{"type": "null"}, schema]})
}

pub(super) fn id_pattern() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"})
}

pub(super) fn uint(max: u64) -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": max})
}

fn number(min: f64, max: f64) -> Value {
    json!({"type": "number", "minimum": min, "maximum": max})
}

pub(super) fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
}

fn limits() -> Value {
    let n = nullable(json!({"type": "integer", "minimum": 1, "maximum": identity::limits::MAX_LIMIT}));
    object(&[], json!({"requests_per_min": n, "tokens_per_min": n, "tokens_per_day": n}))
}

/// `hub:<id>` or `province:<Name>`: a name of 1..=100 characters after the colon, no control
/// characters, not starting with a space (trailing spaces are trimmed).
pub(super) fn region() -> Value {
    json!({"type": "string", "pattern": format!("^(hub|province):[^\\s{NO_CONTROLS}][^{NO_CONTROLS}]{{0,{}}}$", vocab::region::MAX_NAME_CHARS - 1)})
}

fn hub() -> Value {
    object(
        &["id", "name_zh", "name_en", "side", "lat", "lon", "intra_latency_ms", "intra_bandwidth_gbps", "intra_source"],
        json!({
            "id": id_pattern(), "name_zh": prose(), "name_en": prose(), "side": {"enum": ["east", "west"]},
            "lat": number(-90.0, 90.0), "lon": number(-180.0, 180.0),
            "intra_latency_ms": number(0.0, 1000.0), "intra_bandwidth_gbps": number(0.001, 1.0e6),
            "intra_source": prose()}),
    )
}

fn link() -> Value {
    object(
        &["to", "latency_ms", "bandwidth_gbps", "source"],
        json!({"to": id_pattern(), "latency_ms": number(0.0, 1000.0), "bandwidth_gbps": number(0.001, 1.0e6), "source": prose()}),
    )
}

fn tariff() -> Value {
    object(
        &["flat_cny_per_kwh", "flat_source", "peak_multiplier", "valley_multiplier", "multiplier_source", "hours", "hours_source"],
        json!({"flat_cny_per_kwh": number(0.0, 10.0), "flat_source": prose(),
               "peak_multiplier": number(1.0, 5.0), "valley_multiplier": number(0.0, 1.0),
               "sharp_multiplier": nullable(number(1.0, 6.0)), "deep_multiplier": nullable(number(0.0, 1.0)),
               "multiplier_source": prose(),
               "hours": {"type": "string", "pattern": "^[VFPSD]{24}$",
                         "description": "24 letters, hour 00 first: V valley, F flat, P peak, S sharp, D deep valley (S and D need their multipliers)."},
               "hours_source": prose()}),
    )
}

fn node_pool() -> Value {
    object(
        &["name", "gpus_per_node", "cpu_milli", "memory_mib", "nodes", "source"],
        json!({"name": prose(), "gpu_model": nullable(text(100)), "gpus_per_node": uint(u64::from(compute::network::MAX_GPUS_PER_NODE)),
               "cpu_milli": {"type": "integer", "minimum": 1, "maximum": compute::job::MAX_CPU_MILLI},
               "memory_mib": {"type": "integer", "minimum": 1, "maximum": compute::job::MAX_MEMORY_MIB},
               "nodes": {"type": "integer", "minimum": 1, "maximum": compute::network::MAX_NODES}, "source": prose()}),
    )
}

fn cluster() -> Value {
    let mut c = object(
        &[
            "id",
            "hub",
            "name_zh",
            "name_en",
            "province",
            "lat",
            "lon",
            "pue",
            "pue_source",
            "carbon_kg_per_kwh",
            "carbon_source",
            "green_share",
            "green_source",
            "tariff",
        ],
        json!({"id": id_pattern(), "hub": id_pattern(), "name_zh": prose(), "name_en": prose(), "province": prose(),
               "lat": number(-90.0, 90.0), "lon": number(-180.0, 180.0),
               "pue": number(1.0, 3.0), "pue_source": prose(),
               "carbon_kg_per_kwh": number(0.0, 2.0), "carbon_source": prose(),
               "green_share": number(0.0, 1.0), "green_source": prose(),
               "tariff": tariff(),
               "node_pool": {"type": "array", "maxItems": compute::network::MAX_POOLS_PER_CLUSTER, "items": node_pool()}}),
    );
    c["description"] = json!("A [[cluster]] of the network file. Its hub must exist, and the network's node total stays within its limit.");
    c
}

fn job_spec() -> Value {
    let env_value = json!({"type": "string", "maxLength": compute::job::MAX_ARG_BYTES, "pattern": "^[^\\u0000]*$"});
    let mut j = object(
        &["kind", "cpu_milli", "memory_mib", "duration_s", "command"],
        json!({
            "kind": {"enum": ["training", "batch_inference", "online_inference"]},
            "gpus": uint(u64::from(compute::job::MAX_GPUS)),
            "gpu_milli": {"type": "integer", "minimum": 0, "maximum": 1000, "description": "Thousandths of each GPU; 1000 (the default when gpus > 0) for whole GPUs. A share below 1000 needs gpus = 1."},
            "gpu_models": {"type": "array", "maxItems": compute::job::MAX_LISTED, "items": text(100)},
            "cpu_milli": {"type": "integer", "minimum": 1, "maximum": compute::job::MAX_CPU_MILLI},
            "memory_mib": uint(u64::from(compute::job::MAX_MEMORY_MIB)),
            "duration_s": {"type": "integer", "minimum": 1, "maximum": compute::job::MAX_DURATION_S},
            "dataset": nullable(object(&["cluster", "size_gb"], json!({"cluster": id_pattern(), "size_gb": number(0.0, compute::job::MAX_DATASET_GB)}))),
            "allowed_regions": {"type": "array", "maxItems": compute::job::MAX_LISTED, "items": region()},
            "origin_hub": nullable(id_pattern()),
            "priority": {"type": "integer", "minimum": -100, "maximum": 100, "description": "Higher runs first; a tenant member may ask up to 10, a tenant admin 50, an operator 100."},
            "command": {"type": "array", "minItems": 1, "maxItems": compute::job::MAX_ARGS,
                        "items": {"type": "string", "maxLength": compute::job::MAX_ARG_BYTES, "pattern": "^[^\\u0000]*$"},
                        "description": "The program and its arguments (argv, not a shell line); the program name is not blank."},
            "env": {"type": "object", "maxProperties": compute::job::MAX_ENV, "propertyNames": {"pattern": "^(?!AIPLUS_)[A-Za-z_][A-Za-z0-9_]{0,127}$"},
                    "additionalProperties": env_value},
            "on_lost": {"enum": ["requeue", "fail"]},
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": compute::job::MAX_ATTEMPTS},
            "network": {"enum": ["none", "full"]},
            "time_limit_s": nullable(json!({"type": "integer", "minimum": 1, "maximum": compute::job::MAX_TIME_LIMIT_S})),
            "deadline_s": nullable(json!({"type": "integer", "minimum": 1, "maximum": compute::job::MAX_DURATION_S + compute::job::MAX_DEADLINE_SLACK_S,
                "description": "Seconds after submission by which the job should have finished (at least duration_s, at most 30 days more). Waiting within that slack is free, and aiplus may start the job later, in a cheaper and greener hour, using at most half of it."})),
            "action_area": action_area()}),
    );
    j["description"] = json!(
        "A job. Its tenant is the caller's (an operator names it in X-Aiplus-Tenant; a `tenant` field is refused). \
        GPU models, hubs, clusters and regions must name parts of the network, and a job no cluster can run answers 422: its `detail` names the binding constraint (region, GPU model or node size) with numbers, its `exclusions` the reason per cluster."
    );
    j
}

fn deployment() -> Value {
    object(
        &["id", "base_url"],
        json!({"id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
               "base_url": {"type": "string", "format": "uri", "maxLength": 2000, "pattern": "^https?://"},
               "api_key": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 4000}], "writeOnly": true, "description": "Stored sealed; never returned."},
               "upstream_model": nullable(text(256)), "cluster": nullable(id_pattern()),
               "weight": {"type": "integer", "minimum": 1, "maximum": 1000}, "timeout_s": {"type": "integer", "minimum": 1, "maximum": 3600},
               "context_length": nullable(json!({"type": "integer", "minimum": 1, "maximum": 100_000_000})),
               "input_cny_per_1k": number(0.0, 1.0e6), "output_cny_per_1k": number(0.0, 1.0e6)}),
    )
}

fn model_deployment() -> Value {
    let names: Vec<&str> = models::catalog::BUILTIN.iter().map(|m| m.name).collect();
    let gguf = object(
        &["sha256"],
        json!({"path": nullable(json!({"type": "string", "pattern": "^/", "maxLength": 4096})),
               "url": nullable(json!({"type": "string", "pattern": "^https?://[^\\s]+$", "maxLength": models::catalog::MAX_URL_CHARS})),
               "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
               "size_bytes": nullable(json!({"type": "integer", "minimum": 1, "maximum": models::catalog::MAX_GGUF_BYTES}))}),
    );
    object(
        &["model"],
        json!({"model": {"type": "string", "minLength": 1, "maxLength": 64, "description": format!("A built-in model ({}), or with gguf a label of the weights", names.join(", "))},
               "gguf": nullable(gguf),
               "engine": {"enum": ["llama.cpp", "vllm"], "default": "llama.cpp"},
               "gpus": {"type": "integer", "minimum": 0, "maximum": models::MAX_GPUS, "default": 0},
               "replicas": uint(u64::from(models::deployer::MAX_REPLICAS)),
               "threads": {"type": "integer", "minimum": 1, "maximum": models::MAX_THREADS},
               "ctx_tokens": {"type": "integer", "minimum": models::MIN_CTX_TOKENS, "maximum": models::MAX_CTX_TOKENS},
               "memory_mib": {"type": "integer", "minimum": 1, "maximum": compute::job::MAX_MEMORY_MIB},
               "regions": {"type": "array", "maxItems": compute::job::MAX_LISTED, "items": region()},
               "action_area": action_area()}),
    )
}

/// The "AI+" Action's six areas, which a job or a model may be tagged with.
fn action_area() -> Value {
    let names: Vec<&str> = vocab::ActionArea::ALL.iter().map(|a| a.as_str()).collect();
    nullable(json!({"enum": names, "description": "Which of the AI+ Action's six areas the work serves; its runs' ledger rows carry it."}))
}

fn deployment_view() -> Value {
    record(
        &["name", "spec", "replicas"],
        json!({"name": {"type": "string"}, "spec": {"type": "object"},
        "replicas": list(record(&["job_id", "port", "state", "healthy"], json!({"job_id": {"type": "string"}, "port": {"type": "integer"},
            "state": {"enum": ["pending", "running", "ended", "unknown"]}, "cluster": {"type": ["string", "null"]}, "healthy": {"type": "boolean"}})))}),
    )
}

/// The request bodies, by the names `OPERATIONS` uses, and `Problem`.
pub fn requests_with(problem: Value) -> Value {
    let mut all = requests_core(problem);
    if let Some(map) = all.as_object_mut() {
        map.extend(super::data_schemas::requests().into_iter().map(|(k, v)| (k.to_string(), v)));
        map.extend(super::oss_schemas::requests().into_iter().map(|(k, v)| (k.to_string(), v)));
    }
    all
}

fn requests_core(problem: Value) -> Value {
    json!({
        "Problem": problem,
        "Limits": limits(),
        "KeyCreate": object(&[], json!({
            "role": nullable(json!({"enum": ["tenant-member", "tenant-admin"], "default": "tenant-member"})),
            "scopes": nullable(json!({"type": "array", "items": {"enum": ["inference", "jobs", "usage", "admin", "data"]}, "default": ["inference"]})),
            "name": name(identity::MAX_NAME_CHARS),
            "limits": {"$ref": "#/components/schemas/Limits"}})),
        "TenantCreate": object(&["id"], json!({"id": id_pattern(), "name": name(identity::MAX_NAME_CHARS)})),
        "TokenCreate": object(&["name"], json!({"name": {"type": "string", "maxLength": identity::MAX_NAME_CHARS, "pattern": format!("^[^{NO_CONTROLS}]*$"),
                                                         "description": "Blank for \"operator\"."},
            "role": {"enum": ["operator-viewer", "operator-admin"], "default": "operator-viewer"}})),
        "TenantSettings": object(&[], json!({"limits": {"$ref": "#/components/schemas/Limits"},
            "regions": {"type": "array", "maxItems": gateway::tenants::MAX_REGIONS, "items": region()}})),
        "Model": object(&["deployment"], json!({"routing": {"enum": ["weighted", "least-latency"]},
            "deployment": {"type": "array", "minItems": 1, "maxItems": 64, "items": deployment()}})),
        "JobSubmission": job_spec(),
        "HubRegistration": object(&["hub"], json!({"hub": hub(), "links": {"type": "array", "maxItems": compute::network::MAX_HUBS, "items": link()}})),
        "Cluster": cluster(),
        "OpenAI": {"type": "object", "description": "As in OpenAI's OpenAPI spec; errors use OpenAI's error shape."},
        "ModelDeployment": model_deployment(),
        "Scale": object(&["replicas"], json!({"replicas": uint(u64::from(models::deployer::MAX_REPLICAS))})),
        "ModelStateChange": model_state_change(),
        "FilingCreate": super::govern_schemas::filing_create(),
        "FilingAction": super::govern_schemas::filing_action(),
        "AlertRule": super::govern_schemas::alert_rule(),
        "ModelFlag": super::govern_schemas::model_flag(),
        "IncidentCreate": super::govern_schemas::incident_create(),
        "IncidentStep": super::govern_schemas::incident_step(),
        "EndUserLift": super::govern_schemas::end_user_lift(),
        "EvalRun": super::eval_schemas::eval_run(),
        "AgentSpec": super::agent_schemas::agent_spec(),
        "CollectionDocument": super::agent_schemas::collection_document(),
        "CollectionSearch": super::agent_schemas::collection_search(),
        "Binary": {"type": "string", "format": "binary", "description": "The file's bytes, as `application/octet-stream`."},
        "OpenAIError": record(&["error"], json!({"error": record(&["message", "type"], json!({"message": {"type": "string"}, "type": {"type": "string"},
            "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}))})),
    })
}

/// A model's governance change: `tenants`, `regions` and `limits` only with `restricted`, which
/// needs at least one of them.
fn model_state_change() -> Value {
    let mut o = object(
        &["status", "reason"],
        json!({"status": {"enum": ["active", "restricted", "suspended"]},
               "reason": {"type": "string", "minLength": 1, "maxLength": govern::states::MAX_REASON_CHARS, "pattern": "\\S"},
               "tenants": {"type": "array", "maxItems": govern::states::MAX_TENANTS, "items": id_pattern()},
               "regions": {"type": "array", "maxItems": govern::states::MAX_REGIONS, "items": region()},
               "limits": nullable(json!({"$ref": "#/components/schemas/Limits"}))}),
    );
    o["if"] = json!({"properties": {"status": {"const": "restricted"}}});
    o["then"] = json!({"anyOf": [
        {"required": ["tenants"], "properties": {"tenants": {"minItems": 1}}},
        {"required": ["regions"], "properties": {"regions": {"minItems": 1}}},
        {"required": ["limits"], "properties": {"limits": {"type": "object", "minProperties": 1}}}]});
    o["else"] = json!({"properties": {"tenants": {"maxItems": 0}, "regions": {"maxItems": 0}, "limits": {"type": "null"}}});
    o
}

fn model_state() -> Value {
    record(
        &["model", "status"],
        json!({"model": {"type": "string"}, "status": {"enum": ["active", "restricted", "suspended"]},
               "tenants": {"type": "array", "items": {"type": "string"}}, "regions": {"type": "array", "items": {"type": "string"}},
               "limits": {"type": "object"}, "reason": {"type": "string"}, "actor": {"type": "string"},
               "actor_role": {"type": "string"}, "at_ms": {"type": "integer"}, "log_index": {"type": "integer"}}),
    )
}

pub(super) fn record(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn tenant_view() -> Value {
    record(
        &["tenant", "name", "created_ms", "settings"],
        json!({"tenant": {"type": "string"}, "name": {"type": "string"},
        "created_ms": {"type": "integer"}, "settings": record(&["limits", "regions"], json!({"limits": {"type": "object"},
        "regions": {"type": "array", "items": {"type": "string"}}}))}),
    )
}

fn key_record(secret: bool) -> Value {
    let mut required = vec!["id", "tenant", "prefix", "created_ms", "limits", "role", "scopes"];
    if secret {
        required.push("secret");
    }
    record(
        &required,
        json!({"id": {"type": "string"}, "tenant": {"type": "string"}, "prefix": {"type": "string"},
        "created_ms": {"type": "integer"}, "revoked_ms": {"type": "integer"}, "limits": {"type": "object"},
        "role": {"enum": ["tenant-member", "tenant-admin"]}, "scopes": {"type": "array", "items": {"type": "string"}},
        "name": {"type": "string"}, "secret": {"type": "string", "pattern": "^ak_"}}),
    )
}

fn token_record(secret: bool) -> Value {
    let mut required = vec!["id", "name", "role", "prefix", "created_ms"];
    if secret {
        required.push("secret");
    }
    record(
        &required,
        json!({"id": {"type": "string"}, "name": {"type": "string"}, "role": {"enum": ["operator-viewer", "operator-admin"]},
        "prefix": {"type": "string"}, "created_ms": {"type": "integer"}, "revoked_ms": {"type": "integer"},
        "secret": {"type": "string", "pattern": "^aot_"}}),
    )
}

fn job() -> Value {
    record(
        &["id", "tenant", "state", "state_reason", "spec", "submitted_at", "updated_at", "attempt", "cancel_requested"],
        json!({
        "id": {"type": "string"}, "tenant": {"type": "string"},
        "state": {"enum": ["queued", "placed", "submitted", "running", "succeeded", "failed", "cancelled", "lost"]},
        "state_reason": {"type": "string"}, "spec": {"type": "object"}, "submitted_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}, "attempt": {"type": "integer", "minimum": 1},
        "cancel_requested": {"type": "boolean"}, "placement": {"type": ["object", "null"]}, "run": {"type": ["object", "null"]},
        "exit_code": {"type": ["integer", "null"]}, "usage": {"type": ["object", "null"]}}),
    )
}

pub(super) fn list(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// The response bodies of the JSON operations, by (method, path).
pub fn responses() -> Vec<(&'static str, &'static str, Value)> {
    let hub_out =
        record(&["id", "name_zh", "name_en", "side", "lat", "lon"], json!({"id": {"type": "string"}, "side": {"enum": ["east", "west"]}}));
    let cluster_out = record(&["id", "hub", "province", "tariff"], json!({"id": {"type": "string"}, "hub": {"type": "string"}}));
    vec![
        (
            "get",
            "/api/v1/whoami",
            record(
                &["id", "kind", "role", "scopes"],
                json!({"id": {"type": "string"},
            "kind": {"enum": ["api_key", "operator_token", "session"]}, "role": {"type": "string"}, "tenant": {"type": ["string", "null"]},
            "scopes": {"type": "array", "items": {"type": "string"}}, "acting_for": {"type": ["string", "null"]}}),
            ),
        ),
        (
            "get",
            "/api/v1/network",
            record(
                &["schema", "hub", "cluster", "link", "gpu_model"],
                json!({"schema": {"const": 1}, "hub": {"type": "array"},
            "cluster": {"type": "array"}, "link": {"type": "array"}, "gpu_model": {"type": "array"}}),
            ),
        ),
        ("get", "/api/v1/hubs", list(hub_out.clone())),
        ("get", "/api/v1/hubs/{id}", hub_out),
        ("get", "/api/v1/clusters", list(cluster_out.clone())),
        ("get", "/api/v1/clusters/{id}", cluster_out),
        ("get", "/api/v1/jobs", list(job())),
        ("post", "/api/v1/jobs", job()),
        ("get", "/api/v1/jobs/{id}", job()),
        ("post", "/api/v1/jobs/{id}/cancel", job()),
        (
            "get",
            "/api/v1/jobs/{id}/events",
            list(record(
                &["seq", "at", "state", "attempt", "reason"],
                json!({"seq": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"}, "state": {"type": "string"}, "attempt": {"type": "integer"}, "reason": {"type": "string"}}),
            )),
        ),
        ("get", "/api/v1/keys", list(key_record(false))),
        ("post", "/api/v1/keys", key_record(true)),
        ("post", "/api/v1/keys/{id}/revoke", key_record(false)),
        ("get", "/api/v1/tenants", list(tenant_view())),
        ("post", "/api/v1/tenants", tenant_view()),
        ("get", "/api/v1/tenants/{tenant}", tenant_view()),
        ("put", "/api/v1/tenants/{tenant}", tenant_view()),
        ("get", "/api/v1/operator-tokens", list(token_record(false))),
        ("post", "/api/v1/operator-tokens", token_record(true)),
        ("post", "/api/v1/operator-tokens/{id}/revoke", token_record(false)),
        ("get", "/api/v1/model-deployments", list(deployment_view())),
        ("get", "/api/v1/model-deployments/{name}", deployment_view()),
        ("put", "/api/v1/model-deployments/{name}", deployment_view()),
        ("post", "/api/v1/model-deployments/{name}/scale", deployment_view()),
        (
            "get",
            "/api/v1/usage/summary",
            record(&["rows", "truncated"], json!({"rows": {"type": "array"}, "truncated": {"type": "boolean"}})),
        ),
        ("get", "/api/v1/model-states", list(model_state())),
        ("get", "/api/v1/model-states/{name}", model_state()),
        ("put", "/api/v1/model-states/{name}", model_state()),
        (
            "get",
            "/api/v1/log/proof",
            record(
                &["index", "size", "leaf", "proof", "checkpoint"],
                json!({"index": {"type": "integer"}, "size": {"type": "integer"}, "leaf": {"type": "string"},
                       "proof": {"type": "array", "items": {"type": "string"}}, "checkpoint": {"type": "string"}}),
            ),
        ),
        (
            "get",
            "/api/v1/log/consistency",
            record(
                &["size1", "size2", "proof", "checkpoint1", "checkpoint2"],
                json!({"size1": {"type": "integer"}, "size2": {"type": "integer"}, "proof": {"type": "array", "items": {"type": "string"}},
                       "checkpoint1": {"type": "string"}, "checkpoint2": {"type": "string"}}),
            ),
        ),
        (
            "get",
            "/api/v1/log/entries/{index}",
            record(&["index", "leaf", "record"], json!({"index": {"type": "integer"}, "leaf": {"type": "object"}, "record": {}})),
        ),
        ("get", "/api/v1/usage", list(record(&["tenant", "pillar"], json!({"tenant": {"type": "string"}, "pillar": {"type": "string"}})))),
    ]
    .into_iter()
    .chain(super::govern_schemas::responses())
    .chain(super::eval_schemas::responses())
    .chain(super::agent_schemas::responses())
    .chain(super::data_schemas::responses())
    .collect()
}

pub(super) fn param_text() -> Value {
    json!({"type": "string", "maxLength": api::usage_routes::MAX_PARAM_CHARS})
}

/// The query parameters of an operation.
pub fn query(method: &str, path: &str) -> Vec<Value> {
    let p = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description});
    let ms = json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX});
    let page = json!({"type": "integer", "minimum": 1, "maximum": jobs::compute_service::MAX_PAGE});
    match (method, path) {
        ("get", "/api/v1/jobs") => vec![
            p("tenant", id_pattern(), "Operators: only this tenant's jobs."),
            p(
                "state",
                json!({"enum": ["queued", "placed", "submitted", "running", "succeeded", "failed", "cancelled", "lost"]}),
                "Only jobs in this state.",
            ),
            p("after", param_text(), "The id of the last job of the previous page."),
            p("limit", page, "Most jobs in the page."),
        ],
        ("get", "/api/v1/jobs/{id}/logs") => vec![
            p("offset", json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}), "The byte to start from."),
            p("follow", json!({"type": "boolean"}), "Stream new output as server-sent events until the job ends."),
        ],
        ("get", "/api/v1/log/proof") => vec![
            json!({"name": "index", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0, "maximum": i64::MAX}, "description": "The entry."}),
            p("size", json!({"type": "integer", "minimum": 1, "maximum": i64::MAX}), "The tree size (default: the latest checkpoint's)."),
        ],
        ("get", "/api/v1/log/consistency") => vec![
            json!({"name": "from", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}, "description": "The older tree size."}),
            p(
                "to",
                json!({"type": "integer", "minimum": 1, "maximum": i64::MAX}),
                "The newer tree size (default: the latest checkpoint's).",
            ),
        ],
        ("get", "/api/v1/usage") => vec![
            p("tenant", id_pattern(), "Operators: only this tenant's events."),
            p("pillar", param_text(), "Only this pillar's events."),
            p("from_ms", ms.clone(), "Unix milliseconds, inclusive."),
            p("to_ms", ms, "Unix milliseconds, exclusive."),
            p("limit", json!({"type": "integer", "minimum": 1, "maximum": api::usage_routes::MAX_PAGE}), "Most events."),
        ],
        ("get", "/api/v1/usage/summary") => vec![
            p("tenant", id_pattern(), "Operators: only this tenant's events."),
            p("pillar", param_text(), "Only this pillar's events."),
            p("principal", param_text(), "Only this principal's events."),
            p("model", param_text(), "Only this model's events."),
            p("from_ms", ms.clone(), "Unix milliseconds, inclusive."),
            p("to_ms", ms, "Unix milliseconds, exclusive."),
            p(
                "by",
                json!({"type": "string", "pattern": "^\\s*(day|tenant|pillar|principal|model)?\\s*(,\\s*(day|tenant|pillar|principal|model)?\\s*)*$"}),
                "What to group by, comma-separated (default: all; empty: one row of totals).",
            ),
        ],
        ("get", "/api/v1/eval/runs") => super::eval_schemas::query(method, path),
        ("get", p) if p.starts_with("/api/v1/oss/") => super::oss_schemas::query(path),
        ("get", "/api/v1/agents/{id}") => super::agent_schemas::query(method, path),
        _ => super::govern_schemas::query(method, path),
    }
}
