//! The OpenAPI operations, parameters and answers of open-source contribution evaluation.

use serde_json::{Value, json};

use super::Op;

pub const OPERATIONS: &[Op] = &[
    (
        "get",
        "/api/v1/oss/rankings",
        "oss",
        "Projects or developers by global OpenRank in a month (OpenDigger's method), filterable by organisation or a list of repos, with the iteration count, tolerance and cap.",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/oss/developers/{login}",
        "oss",
        "A developer's page: activity and global OpenRank per month and per repo, events by type with links, the method and its parameters (a credit report's contents, unsigned).",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/oss/repos/{owner}/{repo}",
        "oss",
        "A repo's page: its activity over the twelve months to `period`, and its top contributors by community OpenRank in `period`.",
        None,
        200,
    ),
];

/// Path parameters: GitHub's logins (bots' with `[bot]`) and repo names.
pub fn path_param(path: &str, name: &str) -> Option<Value> {
    match (path.starts_with("/api/v1/oss/"), name) {
        (true, "login") => Some(json!({"type": "string", "pattern": "^[A-Za-z0-9_.\\[\\]-]{1,64}$"})),
        (true, "owner" | "repo") => Some(json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$"})),
        _ => None,
    }
}

pub fn query(path: &str) -> Vec<Value> {
    let month = json!({"type": "string", "pattern": oss::MONTH_PATTERN});
    let required =
        |name: &str, schema: Value, d: &str| json!({"name": name, "in": "query", "required": true, "schema": schema, "description": d});
    let p =
        |name: &str, schema: Value, d: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": d});
    match path {
        "/api/v1/oss/rankings" => vec![
            required("period", month, "The month (YYYY-MM)."),
            p("kind", json!({"enum": ["repos", "developers"]}), "What to rank (default: repos)."),
            p("org", json!({"type": "string", "maxLength": 100}), "Only repos of this organisation."),
            p("repos", json!({"type": "string", "maxLength": 10_000}), "Only these repos, comma-separated `owner/name`."),
            p("limit", json!({"type": "integer", "minimum": 1, "maximum": api::oss_routes::MAX_LIMIT}), "Most rows (default 20)."),
        ],
        "/api/v1/oss/developers/{login}" => vec![required(
            "period",
            json!({"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])(\\.\\.[0-9]{4}-(0[1-9]|1[0-2]))?$"}),
            "FROM..TO months (or one month), at most 36, FROM not after TO.",
        )],
        _ => vec![required("period", month, "The month (YYYY-MM).")],
    }
}
