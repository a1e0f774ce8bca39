//! The OpenAPI operations, parameters and answers of open-source contribution evaluation.

use serde_json::{Value, json};

use super::Op;

pub const OPERATIONS: &[Op] = &[
    (
        "get",
        "/api/v1/oss/rankings",
        "oss",
        "Projects or developers by OpenRank in a month (OpenDigger's method), with the iteration count, tolerance and cap. Projects are ranked by global OpenRank, filtered to an organisation or a list of repos; developers by global OpenRank, or, given an organisation or repos, by community OpenRank inside them (`method`).",
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
    (
        "post",
        "/api/v1/oss/reports",
        "oss",
        "Issue a developer's signed credit report over a period: built from the stored months, recorded as a transparency-log leaf, signed with its index by the log's key, and kept under its content hash (`id`). The same contents issued again answer 200 with the report already issued, and no second leaf. A period whose FROM is after its TO, or longer than 36 months, answers 422 (a rule across the two months).",
        Some("OssReportRequest"),
        201,
    ),
    (
        "get",
        "/api/v1/oss/reports",
        "oss",
        "The issued credit reports (id, developer, period, log leaf), in id order, with their total.",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/oss/reports/{id}",
        "oss",
        "An issued credit report by its id (its content hash): the signed JSON that `aiplus oss verify` checks offline, or with `format=html` its printable page.",
        None,
        200,
    ),
];

/// The period of a report: FROM..TO months, or one month.
const PERIOD_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])(\\.\\.[0-9]{4}-(0[1-9]|1[0-2]))?$";
/// A GitHub login (bots' with `[bot]`).
const LOGIN_PATTERN: &str = "^[A-Za-z0-9_.\\[\\]-]{1,64}$";

/// Request bodies.
pub fn requests() -> Vec<(&'static str, Value)> {
    vec![(
        "OssReportRequest",
        super::schemas::object(
            &["developer", "period"],
            json!({"developer": {"type": "string", "pattern": LOGIN_PATTERN}, "period": {"type": "string", "pattern": PERIOD_PATTERN}}),
        ),
    )]
}

/// Answers that are not JSON alone.
pub fn success_content(path: &str) -> Option<Value> {
    (path == "/api/v1/oss/reports/{id}")
        .then(|| json!({"application/json": {"schema": {"type": "object"}}, "text/html": {"schema": {"type": "string"}}}))
}

/// Path parameters: GitHub's logins (bots' with `[bot]`) and repo names.
pub fn path_param(path: &str, name: &str) -> Option<Value> {
    match (path.starts_with("/api/v1/oss/"), name) {
        (true, "login") => Some(json!({"type": "string", "pattern": LOGIN_PATTERN})),
        (true, "id") => Some(json!({"type": "string", "pattern": "^[0-9a-f]{64}$"})),
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
            json!({"type": "string", "pattern": PERIOD_PATTERN}),
            "FROM..TO months (or one month), at most 36, FROM not after TO.",
        )],
        "/api/v1/oss/reports" => {
            vec![p("limit", json!({"type": "integer", "minimum": 1, "maximum": api::oss_routes::MAX_LIMIT}), "Most reports (default 100).")]
        }
        "/api/v1/oss/reports/{id}" => {
            vec![p("format", json!({"enum": ["json", "html"]}), "The signed JSON (default) or the printable page.")]
        }
        _ => vec![required("period", month, "The month (YYYY-MM).")],
    }
}
