//! `/v1/conversations`: OpenAI's Conversations API (create, retrieve, update, delete; list, add,
//! retrieve and delete items), per tenant in the store, and `conversation` on a Responses
//! request: the conversation's items are the history, and the request's input and the
//! response's output are appended to it when the response is done.
//!
//! Limits: at most [`MAX_ITEMS_PER_CALL`] items a call, [`MAX_ITEM_BYTES`] an item,
//! [`LIMITS`] per conversation and per tenant; conversations unused for
//! [`RETENTION_DAYS`] are forgotten. Another tenant's conversation answers like a missing one.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Gateway;
use crate::proxy::{Who, openai_error, unauthorized};

/// Items one create or add call may carry (OpenAI's limit).
pub const MAX_ITEMS_PER_CALL: usize = 20;
/// One item, as JSON.
pub const MAX_ITEM_BYTES: usize = 1 << 20;
/// What one conversation, and one tenant's conversations together, may hold.
pub const LIMITS: store::ItemLimits = store::ItemLimits { max_items: 10_000, max_bytes: 16 << 20, max_tenant_bytes: 256 << 20 };
/// Conversations one tenant may keep.
pub const MAX_CONVERSATIONS_PER_TENANT: i64 = 10_000;
/// Conversations not used for this long are forgotten.
pub const RETENTION_DAYS: i64 = 30;
/// Metadata pairs and value length, as OpenAI's.
const MAX_METADATA_PAIRS: usize = 16;
const MAX_METADATA_CHARS: usize = 512;
/// Item types a conversation keeps.
const ITEM_TYPES: [&str; 8] = [
    "message",
    "function_call",
    "function_call_output",
    "mcp_list_tools",
    "mcp_call",
    "mcp_approval_request",
    "mcp_approval_response",
    "file_search_call",
];

type Bad = (String, String);

fn bad(param: impl Into<String>, why: impl Into<String>) -> Bad {
    (param.into(), why.into())
}

fn invalid((param, why): Bad) -> Response {
    openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_value", format!("{param}: {why}"), Some(&param))
}

fn not_found(what: &str, id: &str) -> Response {
    openai_error(StatusCode::NOT_FOUND, "invalid_request_error", "not_found", format!("No {what} with id '{id}' found."), None)
}

fn store_failed(e: &store::StoreError) -> Response {
    tracing::error!(error = %e, "conversations");
    openai_error(StatusCode::SERVICE_UNAVAILABLE, "server_error", "store_unavailable", "conversations cannot be reached now; retry", None)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// An item as a conversation keeps it: with an id, a message's text as content parts.
pub fn normalize(item: &Value, at: &str) -> Result<Value, Bad> {
    let Some(obj) = item.as_object() else { return Err(bad(at, "must be an object")) };
    let mut item = Value::Object(obj.clone());
    let ty = item["type"].as_str().unwrap_or("message").to_string();
    if !ITEM_TYPES.contains(&ty.as_str()) {
        return Err(bad(format!("{at}.type"), format!("{ty:?} is not one of {ITEM_TYPES:?}")));
    }
    item["type"] = json!(ty);
    if ty == "message" {
        let role = item["role"].as_str().unwrap_or("");
        if !["user", "assistant", "system", "developer"].contains(&role) {
            return Err(bad(format!("{at}.role"), "must be user, assistant, system or developer"));
        }
        if let Some(text) = item["content"].as_str() {
            let part = if role == "assistant" { "output_text" } else { "input_text" };
            item["content"] = json!([{"type": part, "text": text}]);
        } else if !item["content"].is_array() {
            return Err(bad(format!("{at}.content"), "must be a string or an array of parts"));
        }
        if item["status"].is_null() {
            item["status"] = json!("completed");
        }
    }
    if !item["id"].is_string() {
        item["id"] = json!(new_id(if ty == "message" { "msg" } else { "item" }));
    }
    if item.to_string().len() > MAX_ITEM_BYTES {
        return Err(bad(at, format!("an item is at most {MAX_ITEM_BYTES} bytes")));
    }
    Ok(item)
}

fn metadata_of(v: &Value) -> Result<Value, Bad> {
    match v {
        Value::Null => Ok(json!({})),
        Value::Object(m) if m.len() <= MAX_METADATA_PAIRS => {
            for (k, val) in m {
                let ok = val.as_str().is_some_and(|s| s.chars().count() <= MAX_METADATA_CHARS) && !k.is_empty() && k.chars().count() <= 64;
                if !ok {
                    return Err(bad(
                        format!("metadata.{k}"),
                        format!("keys of 1 to 64 characters, string values of at most {MAX_METADATA_CHARS}"),
                    ));
                }
            }
            Ok(v.clone())
        }
        _ => Err(bad("metadata", format!("an object of at most {MAX_METADATA_PAIRS} string pairs"))),
    }
}

fn conversation_object(c: &store::ConversationRow) -> Value {
    let metadata: Value = serde_json::from_str(&c.metadata).unwrap_or_else(|_| json!({}));
    json!({"id": c.id, "object": "conversation", "created_at": c.created_ms / 1000, "metadata": metadata})
}

/// Why items could not be added.
pub enum AddError {
    NotFound,
    Full,
    Store(store::StoreError),
}

/// Appends items (already normalized) to a tenant's conversation, within its limits.
pub async fn append(store: &store::Store, tenant: &str, id: &str, now_ms: i64, items: &[Value]) -> Result<(), AddError> {
    let rows: Vec<(String, String)> = items.iter().map(|i| (i["id"].as_str().unwrap_or("").to_string(), i.to_string())).collect();
    match store.add_conversation_items(id, tenant, now_ms, &rows, LIMITS).await {
        Ok(Some(true)) => Ok(()),
        Ok(Some(false)) => Err(AddError::Full),
        Ok(None) => Err(AddError::NotFound),
        Err(e) => Err(AddError::Store(e)),
    }
}

/// Appends a finished turn (the request's input, the response's output) to a conversation; a
/// failure is logged, since the response has been made by then.
pub async fn append_turn(store: &store::Store, tenant: &str, id: &str, now_ms: i64, input: &[Value], output: &[Value]) {
    let mut items = Vec::new();
    for (i, it) in input.iter().chain(output).enumerate() {
        match normalize(it, &format!("item {i}")) {
            Ok(n) => items.push(n),
            Err((p, why)) => tracing::warn!(conversation = id, "an item left out of the conversation: {p}: {why}"),
        }
    }
    match append(store, tenant, id, now_ms, &items).await {
        Ok(()) => {}
        Err(AddError::Full) => tracing::warn!(conversation = id, "the conversation is full; this turn is not added"),
        Err(AddError::NotFound) => tracing::warn!(conversation = id, "the conversation was deleted during the response"),
        Err(AddError::Store(e)) => tracing::error!(conversation = id, error = %e, "adding a turn to a conversation"),
    }
}

/// The conversation a Responses request names (`"conv_…"` or `{"id": "conv_…"}`), if any.
pub fn named(req: &Value) -> Option<Result<String, Bad>> {
    let v = &req["conversation"];
    let id = match v {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("id").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => return Some(Err(bad("conversation.id", "must be a conversation id"))),
        },
        _ => return Some(Err(bad("conversation", "must be a conversation id or {\"id\": …}"))),
    };
    if !req["previous_response_id"].is_null() {
        return Some(Err(bad("conversation", "a request names either a conversation or a previous_response_id, not both")));
    }
    Some(Ok(id))
}

/// A tenant's conversation's items, oldest first (all of them: at most [`LIMITS`]).
pub async fn history(store: &store::Store, tenant: &str, id: &str) -> Result<Option<Vec<Value>>, store::StoreError> {
    let rows = store.conversation_items(id, tenant, None, false, LIMITS.max_items).await?;
    Ok(rows.map(|r| r.iter().filter_map(|(_, d)| serde_json::from_str(d).ok()).collect()))
}

fn items_of(body: &Value) -> Result<Vec<Value>, Bad> {
    let items = match &body["items"] {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => return Err(bad("items", "must be an array of items")),
    };
    if items.len() > MAX_ITEMS_PER_CALL {
        return Err(bad("items", format!("at most {MAX_ITEMS_PER_CALL} items a call")));
    }
    items.iter().enumerate().map(|(i, it)| normalize(it, &format!("items[{i}]"))).collect()
}

fn body_of(bytes: &Bytes) -> Result<Value, Bad> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice::<Value>(bytes).ok().filter(Value::is_object).ok_or_else(|| bad("body", "must be a JSON object"))
}

fn full() -> Response {
    let why = format!(
        "the conversation is full: at most {} items and {} bytes each, {} bytes for a tenant's conversations",
        LIMITS.max_items, LIMITS.max_bytes, LIMITS.max_tenant_bytes
    );
    openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", "conversation_full", why, None)
}

fn now_ms() -> i64 {
    crate::proxy::now_ms()
}

/// `POST /v1/conversations`.
pub async fn create(State(gw): State<Arc<Gateway>>, who: Who, body: Bytes) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let parsed = body_of(&body).and_then(|b| Ok((items_of(&b)?, metadata_of(&b["metadata"])?)));
    let (items, metadata) = match parsed {
        Ok(v) => v,
        Err(b) => return invalid(b),
    };
    let id = new_id("conv");
    let tenant = caller.tenant_id();
    let now = now_ms();
    match gw.store.conversation_count(tenant).await {
        Ok(n) if n >= MAX_CONVERSATIONS_PER_TENANT => {
            let why = format!("a tenant keeps at most {MAX_CONVERSATIONS_PER_TENANT} conversations; delete some first");
            return openai_error(StatusCode::BAD_REQUEST, "invalid_request_error", "too_many_conversations", why, None);
        }
        Ok(_) => {}
        Err(e) => return store_failed(&e),
    }
    if let Err(e) = gw.store.create_conversation(&id, tenant, now, &metadata.to_string()).await {
        return store_failed(&e);
    }
    let added = append(&gw.store, tenant, &id, now, &items).await;
    if added.is_err() {
        // A conversation whose first items could not be added is not left behind.
        let _ = gw.store.delete_conversation(&id, tenant).await;
    }
    match added {
        Ok(()) => {}
        Err(AddError::Full) => return full(),
        Err(AddError::NotFound) => return not_found("conversation", &id),
        Err(AddError::Store(e)) => return store_failed(&e),
    }
    let row = store::ConversationRow { id, created_ms: now, updated_ms: now, items: 0, bytes: 0, metadata: metadata.to_string() };
    axum::Json(conversation_object(&row)).into_response()
}

async fn found(gw: &Gateway, tenant: &str, id: &str) -> Result<store::ConversationRow, Response> {
    match gw.store.conversation(id, tenant).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(not_found("conversation", id)),
        Err(e) => Err(store_failed(&e)),
    }
}

/// `GET /v1/conversations/{id}`.
pub async fn retrieve(State(gw): State<Arc<Gateway>>, who: Who, Path(id): Path<String>) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    match found(&gw, caller.tenant_id(), &id).await {
        Ok(c) => axum::Json(conversation_object(&c)).into_response(),
        Err(r) => r,
    }
}

/// `POST /v1/conversations/{id}`: replaces the metadata.
pub async fn update(State(gw): State<Arc<Gateway>>, who: Who, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let metadata = match body_of(&body).and_then(|b| {
        if b["metadata"].is_null() {
            return Err(bad("metadata", "you must provide the metadata"));
        }
        metadata_of(&b["metadata"])
    }) {
        Ok(m) => m,
        Err(b) => return invalid(b),
    };
    let tenant = caller.tenant_id();
    match gw.store.set_conversation_metadata(&id, tenant, &metadata.to_string(), now_ms()).await {
        Ok(true) => {}
        Ok(false) => return not_found("conversation", &id),
        Err(e) => return store_failed(&e),
    }
    match found(&gw, tenant, &id).await {
        Ok(c) => axum::Json(conversation_object(&c)).into_response(),
        Err(r) => r,
    }
}

/// `DELETE /v1/conversations/{id}`.
pub async fn delete(State(gw): State<Arc<Gateway>>, who: Who, Path(id): Path<String>) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    match gw.store.delete_conversation(&id, caller.tenant_id()).await {
        Ok(true) => axum::Json(json!({"id": id, "object": "conversation.deleted", "deleted": true})).into_response(),
        Ok(false) => not_found("conversation", &id),
        Err(e) => store_failed(&e),
    }
}

/// `GET /v1/conversations/{id}/items`'s query.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    order: Option<String>,
    after: Option<String>,
}

fn list(data: Vec<Value>, has_more: bool) -> Value {
    let first = data.first().map(|i| i["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|i| i["id"].clone()).unwrap_or(Value::Null);
    json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})
}

/// `GET /v1/conversations/{id}/items`: `limit` 1 to 100 (20), `order` desc (default) or asc,
/// `after` an item id.
pub async fn items(
    State(gw): State<Arc<Gateway>>,
    who: Who,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let q = match q {
        Ok(q) => q.0,
        Err(e) => return invalid(bad("query", e.body_text())),
    };
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return invalid(bad("limit", "1 to 100"));
    }
    let descending = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return invalid(bad("order", "asc or desc")),
    };
    let tenant = caller.tenant_id();
    match gw.store.conversation_items(&id, tenant, q.after.as_deref(), descending, limit + 1).await {
        Ok(Some(rows)) => {
            let mut data: Vec<Value> = rows.iter().filter_map(|(_, d)| serde_json::from_str(d).ok()).collect();
            let has_more = data.len() as i64 > limit;
            data.truncate(limit as usize);
            axum::Json(list(data, has_more)).into_response()
        }
        Ok(None) => match q.after {
            Some(after) if matches!(gw.store.conversation(&id, tenant).await, Ok(Some(_))) => not_found("item", &after),
            _ => not_found("conversation", &id),
        },
        Err(e) => store_failed(&e),
    }
}

/// `POST /v1/conversations/{id}/items`.
pub async fn add(State(gw): State<Arc<Gateway>>, who: Who, Path(id): Path<String>, body: Bytes) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let items = match body_of(&body).and_then(|b| {
        if !b["items"].is_array() {
            return Err(bad("items", "you must provide the items to add"));
        }
        items_of(&b)
    }) {
        Ok(i) => i,
        Err(b) => return invalid(b),
    };
    match append(&gw.store, caller.tenant_id(), &id, now_ms(), &items).await {
        Ok(()) => axum::Json(list(items, false)).into_response(),
        Err(AddError::Full) => full(),
        Err(AddError::NotFound) => not_found("conversation", &id),
        Err(AddError::Store(e)) => store_failed(&e),
    }
}

/// `GET /v1/conversations/{id}/items/{item_id}`.
pub async fn item(State(gw): State<Arc<Gateway>>, who: Who, Path((id, item)): Path<(String, String)>) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    match gw.store.conversation_item(&id, caller.tenant_id(), &item).await {
        Ok(Some(doc)) => axum::Json(serde_json::from_str::<Value>(&doc).unwrap_or(Value::Null)).into_response(),
        Ok(None) => not_found("item", &item),
        Err(e) => store_failed(&e),
    }
}

/// `DELETE /v1/conversations/{id}/items/{item_id}`: answers with the conversation.
pub async fn delete_item(State(gw): State<Arc<Gateway>>, who: Who, Path((id, item)): Path<(String, String)>) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let tenant = caller.tenant_id();
    match gw.store.delete_conversation_item(&id, tenant, &item, now_ms()).await {
        Ok(true) => match found(&gw, tenant, &id).await {
            Ok(c) => axum::Json(conversation_object(&c)).into_response(),
            Err(r) => r,
        },
        Ok(false) => not_found("item", &item),
        Err(e) => store_failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_kept_with_ids_and_parts() {
        let m = normalize(&json!({"role": "user", "content": "你好"}), "items[0]").unwrap();
        assert_eq!(m["type"], "message");
        assert_eq!(m["content"], json!([{"type": "input_text", "text": "你好"}]));
        assert!(m["id"].as_str().unwrap().starts_with("msg_"));
        let a = normalize(&json!({"type": "message", "role": "assistant", "content": "hi", "id": "msg_1"}), "x").unwrap();
        assert_eq!((a["id"].as_str(), a["content"][0]["type"].as_str()), (Some("msg_1"), Some("output_text")));
        assert_eq!(normalize(&json!({"role": "robot", "content": "x"}), "items[2]").unwrap_err().0, "items[2].role");
        assert_eq!(normalize(&json!({"type": "web_search_call"}), "items[3]").unwrap_err().0, "items[3].type");
        assert_eq!(normalize(&json!("x"), "items[4]").unwrap_err().0, "items[4]");
    }

    #[test]
    fn a_request_names_a_conversation_or_a_previous_response() {
        assert!(named(&json!({"input": "x"})).is_none());
        assert_eq!(named(&json!({"conversation": "conv_1"})).unwrap().unwrap(), "conv_1");
        assert_eq!(named(&json!({"conversation": {"id": "conv_2"}})).unwrap().unwrap(), "conv_2");
        assert_eq!(named(&json!({"conversation": "conv_1", "previous_response_id": "resp_1"})).unwrap().unwrap_err().0, "conversation");
        assert_eq!(named(&json!({"conversation": 5})).unwrap().unwrap_err().0, "conversation");
    }
}
