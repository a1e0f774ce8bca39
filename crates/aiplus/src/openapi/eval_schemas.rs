//! The evaluation part of the document: suites, runs, their reports and the leaderboard. The
//! limits are `eval`'s own constants.

use eval::service::{MAX_LIST, MAX_NAME_BYTES, MAX_SERVER_CONCURRENCY, MAX_SUBJECTS};
use serde_json::{Value, json};

use super::schemas::{NO_CONTROLS, list, object, record};

fn name() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_BYTES, "pattern": format!("^[^{NO_CONTROLS}]+$")})
}

/// `POST /api/v1/eval/runs`.
pub fn eval_run() -> Value {
    object(
        &["model", "suite"],
        json!({
            "model": name(),
            "suite": {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$", "description": "A suite of the server's suites directory (GET /api/v1/eval/suites)."},
            "subjects": {"type": "array", "maxItems": MAX_SUBJECTS, "items": name(), "description": "Only these subjects, categories or risk classes."},
            "limit": {"type": "integer", "minimum": 1, "maximum": eval::suite::MAX_ITEMS, "description": "At most this many items per subject."},
            "shots": {"type": "integer", "minimum": 0, "maximum": eval::suite::MAX_SHOTS},
            "method": {"enum": ["logprobs", "generate"], "description": "Default: log-probabilities if the model gives them, else generation."},
            "endpoint": {"enum": ["chat", "completions"], "default": "chat"},
            "judge": name(),
            "concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_SERVER_CONCURRENCY, "default": 4},
            "deployment": {"type": "string", "pattern": "^[!-~]{1,128}$", "description": "Only this deployment of the model answers (to compare two deployments of one model)."},
            "fresh": {"type": "boolean", "default": false, "description": "Ask everything again instead of reusing earlier runs' answers."},
        }),
    )
}

fn run_view() -> Value {
    record(
        &["id", "tenant", "actor", "request", "state", "created_ms"],
        json!({"id": {"type": "string"}, "tenant": {"type": "string"}, "actor": {"type": "string"}, "request": {"type": "object"},
               "state": {"enum": ["queued", "running", "succeeded", "failed"]}, "created_ms": {"type": "integer"},
               "started_ms": {"type": "integer"}, "finished_ms": {"type": "integer"}, "done": {"type": "integer"}, "total": {"type": "integer"},
               "error": {"type": "string"}, "report": {"type": "object", "description": "accuracy and stderr overall and per group; refusal rates; bias scores"},
               "samples_sha256": {"type": "string"}}),
    )
}

pub fn responses() -> Vec<(&'static str, &'static str, Value)> {
    let suite = record(
        &["name", "data_present"],
        json!({"name": {"type": "string"}, "title": {"type": "string"}, "licence": {"type": "string"}, "data_present": {"type": "boolean"}}),
    );
    vec![
        ("get", "/api/v1/eval/suites", list(suite)),
        ("get", "/api/v1/eval/runs", list(run_view())),
        ("post", "/api/v1/eval/runs", run_view()),
        ("get", "/api/v1/eval/runs/{id}", run_view()),
        (
            "get",
            "/api/v1/eval/leaderboard",
            record(&["suites", "rows"], json!({"suites": list(json!({"type": "string"})), "rows": {"type": "array"}})),
        ),
    ]
}

pub fn query(method: &str, path: &str) -> Vec<Value> {
    match (method, path) {
        ("get", "/api/v1/eval/runs") => vec![json!({"name": "limit", "in": "query", "required": false,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST}, "description": "Most runs, newest first (default 100)."})],
        _ => vec![],
    }
}
