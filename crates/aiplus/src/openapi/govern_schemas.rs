//! The governance part of the document: filings, their actions and attachments, and alerts.
//! The limits are `govern`'s own constants.

use govern::filings::{MAX_ATTACHMENTS, MAX_ITEMS, MAX_TEXT_CHARS};
use serde_json::{Value, json};

use super::schemas::{NO_CONTROLS, id_pattern, list, nullable, object, record, text, uint};

/// A form field: up to the filings' text limit, may be blank in a draft.
fn short() -> Value {
    json!({"type": "string", "maxLength": MAX_TEXT_CHARS, "pattern": format!("^[^{NO_CONTROLS}]*$")})
}

/// A field that must say something (a reason, a number).
fn said(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": format!("^[^{NO_CONTROLS}]*\\S[^{NO_CONTROLS}]*$")})
}

fn items(schema: Value) -> Value {
    json!({"type": "array", "maxItems": MAX_ITEMS, "items": schema})
}

fn date() -> Value {
    json!({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"})
}

fn content() -> Value {
    object(
        &[],
        json!({
            "kind": {"enum": ["algorithm", "generative_service"], "default": "algorithm"},
            "entity": object(&[], json!({"name": short(), "address": short(),
                "credit_code": {"type": "string", "pattern": "^([0-9A-Z]{18})?$", "description": "统一社会信用代码: 18 digits and capital letters."}})),
            "responsible": object(&[], json!({"name": short(), "title": short(), "phone": short(), "email": short()})),
            "algorithm": object(&[], json!({"name": short(),
                "type": nullable(json!({"enum": ["generative_synthesis", "personalised_push", "ranking_selection", "retrieval_filtering", "dispatch_decision"]})),
                "role": nullable(json!({"enum": ["service_provider", "technical_supporter"]}))})),
            "domains": items(short()),
            "products": items(object(&["name", "form"], json!({"name": short(), "form": short(), "url": short()}))),
            "base_model": nullable(object(&["name"], json!({"name": short(), "filing_number": short()}))),
            "corpus": object(&[], json!({
                "sources": items(object(&["name", "kind"], json!({"name": short(), "licence": short(),
                    "kind": {"enum": ["open", "self_collected", "commercial", "user"]}}))),
                "scale_tokens": uint(govern::filings::MAX_SCALE_TOKENS)})),
            "models": items(text(govern::states::MAX_NAME_BYTES)),
            "service_started_on": nullable(date()),
        }),
    )
}

pub fn filing_create() -> Value {
    object(&[], json!({"tenant": nullable(id_pattern()), "content": content()}))
}

/// One object per action, told apart by `action`.
pub fn filing_action() -> Value {
    let reason = said(govern::states::MAX_REASON_CHARS);
    let one = |action: &str, required: &[&str], mut props: Value| {
        props["action"] = json!({"const": action});
        let mut req = vec!["action"];
        req.extend_from_slice(required);
        object(&req, props)
    };
    json!({"oneOf": [
        one("update", &["content"], json!({"content": content()})),
        one("detach", &["sha256"], json!({"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}})),
        one("submit", &[], json!({})),
        one("return", &["reason"], json!({"reason": reason})),
        one("file", &["filing_number"], json!({"filing_number": said(MAX_TEXT_CHARS)})),
        one("change", &["changed_on"], json!({"changed_on": date(), "content": nullable(content())})),
        one("end_service", &["ended_on"], json!({"ended_on": date()})),
        one("cancel", &["reason"], json!({"reason": reason})),
    ]})
}

fn filing_view() -> Value {
    record(
        &["id", "state", "content", "attachments", "rev", "log_index", "created_ms", "updated_ms"],
        json!({"id": {"type": "string"}, "tenant": {"type": "string"},
               "state": {"enum": ["draft", "submitted", "filed", "changed", "cancelled"]},
               "content": {"type": "object"}, "filing_number": {"type": "string"},
               "attachments": {"type": "array", "maxItems": MAX_ATTACHMENTS, "items": record(&["kind", "name", "sha256", "size_bytes"], json!({
                   "kind": {"enum": ["self_assessment", "keyword_list", "test_set", "service_agreement"]}, "name": {"type": "string"},
                   "sha256": {"type": "string"}, "size_bytes": {"type": "integer"}}))},
               "rev": {"type": "integer"}, "log_index": {"type": "integer"}, "created_ms": {"type": "integer"}, "updated_ms": {"type": "integer"},
               "due": record(&["what", "on", "overdue"], json!({"what": {"enum": ["file", "file_change", "cancel"]}, "on": {"type": "string"},
                   "overdue": {"type": "boolean"}, "calendar_known": {"type": "boolean"}}))}),
    )
}

fn alert() -> Value {
    record(
        &["id", "key", "kind", "subject", "message", "opened_ms"],
        json!({"id": {"type": "string"}, "key": {"type": "string"}, "kind": {"type": "string"}, "subject": {"type": "string"},
               "tenant": {"type": "string"}, "message": {"type": "string"}, "opened_ms": {"type": "integer"}, "closed_ms": {"type": "integer"},
               "acked_by": {"type": "string"}, "acked_ms": {"type": "integer"}}),
    )
}

pub fn responses() -> Vec<(&'static str, &'static str, Value)> {
    let event = record(
        &["rev", "action", "state", "actor", "at_ms", "log_index"],
        json!({"rev": {"type": "integer"}, "action": {"type": "string"}, "state": {"type": "string"}, "actor": {"type": "string"},
               "actor_role": {"type": "string"}, "at_ms": {"type": "integer"}, "log_index": {"type": "integer"}, "detail": {}}),
    );
    vec![
        ("get", "/api/v1/filings", list(filing_view())),
        ("post", "/api/v1/filings", filing_view()),
        ("get", "/api/v1/filings/{id}", filing_view()),
        ("post", "/api/v1/filings/{id}/actions", filing_view()),
        ("post", "/api/v1/filings/{id}/attachments", filing_view()),
        ("get", "/api/v1/filings/{id}/history", list(event)),
        ("get", "/api/v1/alerts", list(alert())),
        ("post", "/api/v1/alerts/{id}/ack", alert()),
    ]
}

pub fn query(method: &str, path: &str) -> Vec<Value> {
    let p = |name: &str, required: bool, schema: Value, description: &str| json!({"name": name, "in": "query", "required": required, "schema": schema, "description": description});
    match (method, path) {
        ("get", "/api/v1/filings") => vec![
            p("tenant", false, id_pattern(), "Operators: only this tenant's filings."),
            p("state", false, json!({"enum": ["draft", "submitted", "filed", "changed", "cancelled"]}), "Only filings in this state."),
        ],
        ("post", "/api/v1/filings/{id}/attachments") => vec![
            p("kind", true, json!({"enum": ["self_assessment", "keyword_list", "test_set", "service_agreement"]}), "What the file is."),
            p("name", true, said(MAX_TEXT_CHARS), "The file's name."),
            p("sha256", false, json!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}), "The bytes' SHA-256, checked on receipt."),
        ],
        ("get", "/api/v1/alerts") => vec![
            p("tenant", false, id_pattern(), "Operators: only this tenant's alerts."),
            p(
                "since_ms",
                false,
                json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}),
                "Closed alerts opened since (default: a week ago).",
            ),
            p("limit", false, json!({"type": "integer", "minimum": 1, "maximum": govern::alerts::MAX_LIST}), "Most alerts (default 100)."),
        ],
        _ => vec![],
    }
}
