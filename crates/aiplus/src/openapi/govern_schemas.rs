//! The governance part of the document: filings, their actions and attachments, and alerts.
//! The limits are `govern`'s own constants.

use govern::filings::{MAX_ATTACHMENTS, MAX_ITEMS, MAX_TEXT_CHARS};
use serde_json::{Value, json};

use super::schemas::{NO_CONTROLS, id_pattern, list, nullable, object, record, region, text, uint};

/// A form field: up to the filings' text limit, may be blank in a draft.
fn short() -> Value {
    json!({"type": "string", "maxLength": MAX_TEXT_CHARS, "pattern": format!("^[^{NO_CONTROLS}]*$")})
}

/// Text of several lines that must say something (a report, a description).
fn lines(max: usize) -> Value {
    let c = "\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f";
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": format!("^[^{c}]*\\S[^{c}]*$")})
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

fn grade() -> Value {
    json!({"enum": ["general", "major", "serious", "especially_serious"], "description": "一般, 较大, 重大, 特别重大"})
}

fn operator_class() -> Value {
    json!({"enum": ["critical_infrastructure", "central_state_organ", "other"],
           "description": "Sets the reporting deadline of a major or graver incident: 1, 2 or 4 hours."})
}

fn limits_or_null() -> Value {
    nullable(json!({"$ref": "#/components/schemas/Limits"}))
}

/// An alert rule; `name` comes from the path.
pub fn alert_rule() -> Value {
    let number = json!({"type": "number", "minimum": 0, "maximum": govern::rules::MAX_LINE});
    object(
        &["metric", "window_s", "fire_above", "clear_below"],
        json!({
            "name": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$", "description": "If given, the path's name."},
            "model": nullable(text(govern::states::MAX_NAME_BYTES)),
            "metric": {"enum": ["block_rate", "refusal_rate", "error_rate", "latency_ms_p99", "tokens_per_min", "flags"]},
            "window_s": {"type": "integer", "minimum": 30, "maximum": govern::counters::MAX_WINDOW_MS / 1000},
            "fire_above": number.clone(),
            "clear_below": number,
            "min_requests": uint(govern::rules::MAX_MIN_REQUESTS),
            "cooldown_s": uint(u64::from(govern::rules::MAX_COOLDOWN_S)),
            "actions": {"type": "array", "maxItems": 3, "uniqueItems": true, "items": {"enum": ["notify", "restrict", "suspend"]}},
            "webhook_url": nullable(json!({"type": "string", "maxLength": govern::rules::MAX_URL_BYTES})),
            "restrict": nullable(object(&[], json!({
                "tenants": {"type": "array", "maxItems": govern::states::MAX_TENANTS, "items": id_pattern()},
                "regions": {"type": "array", "maxItems": govern::states::MAX_REGIONS, "items": region()},
                "limits": limits_or_null()}))),
            "incident": nullable(object(&["grade"], json!({"grade": grade(), "operator_class": operator_class()}))),
            "enabled": {"type": "boolean"},
        }),
    )
}

pub fn model_flag() -> Value {
    object(&["model"], json!({"model": text(govern::states::MAX_NAME_BYTES), "count": {"type": "integer", "minimum": 1, "maximum": 10000}}))
}

pub fn incident_create() -> Value {
    let long = govern::incidents::MAX_TEXT_CHARS;
    object(
        &["title", "grade"],
        json!({"title": said(MAX_TEXT_CHARS), "grade": grade(), "operator_class": operator_class(),
               "model": nullable(short()), "tenant": nullable(id_pattern()),
               "discovered_ms": nullable(json!({"type": "integer", "minimum": 0, "maximum": i64::MAX})),
               "description": {"type": "string", "maxLength": long, "pattern": "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"}}),
    )
}

pub fn incident_step() -> Value {
    let text = lines(govern::incidents::MAX_TEXT_CHARS);
    let one = |action: &str, mut props: Value, required: &[&str]| {
        props["action"] = json!({"const": action});
        let mut req = vec!["action"];
        req.extend_from_slice(required);
        object(&req, props)
    };
    json!({"oneOf": [
        one("report", json!({"to": said(MAX_TEXT_CHARS), "text": text.clone()}), &["to", "text"]),
        one("measure", json!({"text": text.clone()}), &["text"]),
        one("note", json!({"text": text.clone()}), &["text"]),
        one("regrade", json!({"grade": grade(), "text": text.clone()}), &["grade", "text"]),
        one("close", json!({"text": text}), &["text"]),
    ]})
}

pub fn end_user_lift() -> Value {
    object(&["reason"], json!({"reason": said(MAX_TEXT_CHARS)}))
}

fn incident_view() -> Value {
    record(
        &["id", "title", "grade", "operator_class", "state", "discovered_ms", "timeline", "rev"],
        json!({"id": {"type": "string"}, "title": {"type": "string"}, "grade": grade(), "operator_class": operator_class(),
               "state": {"enum": ["open", "reported", "closed"]}, "discovered_ms": {"type": "integer"}, "report_due_ms": {"type": "integer"},
               "reported_ms": {"type": "integer"}, "closed_ms": {"type": "integer"}, "rev": {"type": "integer"},
               "timeline": list(record(&["kind", "text", "at_ms", "log_index"], json!({"kind": {"type": "string"}, "text": {"type": "string"},
                   "at_ms": {"type": "integer"}, "actor": {"type": "string"}, "log_index": {"type": "integer"}})))}),
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
        ("get", "/api/v1/alert-rules", list(alert_rule())),
        ("get", "/api/v1/alert-rules/{name}", alert_rule()),
        ("put", "/api/v1/alert-rules/{name}", alert_rule()),
        ("post", "/api/v1/model-flags", record(&["model", "count"], json!({"model": {"type": "string"}, "count": {"type": "integer"}}))),
        ("get", "/api/v1/webhook-deliveries", list(delivery())),
        ("post", "/api/v1/webhook-deliveries/{id}/retry", delivery()),
        ("get", "/api/v1/incidents", list(incident_view())),
        ("post", "/api/v1/incidents", incident_view()),
        ("get", "/api/v1/incidents/{id}", incident_view()),
        ("post", "/api/v1/incidents/{id}/steps", incident_view()),
        ("get", "/api/v1/end-users", list(end_user())),
        ("post", "/api/v1/end-users/{tenant}/{user}/lift", end_user()),
    ]
}

fn delivery() -> Value {
    record(
        &["id", "url", "state", "attempts", "next_ms"],
        json!({"id": {"type": "string"}, "url": {"type": "string"}, "body": {}, "state": {"enum": ["pending", "delivered", "dead"]},
               "attempts": {"type": "integer"}, "created_ms": {"type": "integer"}, "last_error": {"type": "string"},
               "delivered_ms": {"type": "integer"}, "next_ms": {"type": "integer"}}),
    )
}

fn end_user() -> Value {
    record(
        &["tenant", "user", "in_a_row", "on_day", "day"],
        json!({"tenant": {"type": "string"}, "user": {"type": "string"}, "in_a_row": {"type": "integer"}, "on_day": {"type": "integer"},
               "day": {"type": "string"}, "suspended_until_ms": {"type": "integer"}, "suspended_ms": {"type": "integer"}, "log_index": {"type": "integer"}}),
    )
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
        ("get", "/api/v1/webhook-deliveries") => vec![
            p(
                "state",
                false,
                json!({"enum": ["pending", "delivered", "dead"]}),
                "Deliveries in this state (default: dead, the dead letters).",
            ),
            p("limit", false, json!({"type": "integer", "minimum": 1, "maximum": 1000}), "Most deliveries (default 100)."),
        ],
        ("get", "/api/v1/incidents") => vec![
            p("tenant", false, id_pattern(), "Operators: only this tenant's incidents."),
            p("state", false, json!({"enum": ["open", "reported", "closed"]}), "Only incidents in this state."),
        ],
        ("get", "/api/v1/end-users") => vec![p("tenant", false, id_pattern(), "Operators: only this tenant's end users.")],
        _ => vec![],
    }
}
