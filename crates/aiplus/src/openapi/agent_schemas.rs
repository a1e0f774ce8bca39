//! The agents part of the document: an agent's declaration and how it reads back, and the
//! collections `file_search` searches. The limits
//! are `agents`'s own constants.

use agents::collections::{
    DEFAULT_RESULTS, MAX_ATTRIBUTE_VALUE_CHARS, MAX_ATTRIBUTES, MAX_DOCUMENT_BYTES, MAX_FILENAME_CHARS, MAX_QUERIES, MAX_QUERY_CHARS,
    MAX_RESULTS, MAX_SEARCH_COLLECTIONS,
};
use agents::spec::{
    MAX_ARG_BYTES, MAX_ARGS, MAX_DESCRIPTION_CHARS, MAX_HEADER_VALUE_BYTES, MAX_HEADERS, MAX_INSTRUCTIONS_BYTES, MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE_CHARS, MAX_NAME_BYTES, MAX_OUTPUT_TOKENS, MAX_REGIONS, MAX_STEPS, MAX_TIMEOUT_S, MAX_TOOLS, MCP_VERSIONS,
};
use serde_json::{Value, json};

use super::schemas::{NO_CONTROLS, list, object, record};

/// An agent id, tool name or server label.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

fn name() -> Value {
    json!({"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_BYTES})
}

fn tool_names() -> Value {
    object(&["tool_names"], json!({"tool_names": {"type": "array", "maxItems": 128, "items": name()}}))
}

fn tool() -> Value {
    let function = object(
        &["type", "name"],
        json!({"type": {"const": "function"}, "name": name(),
               "description": {"type": ["string", "null"], "maxLength": MAX_DESCRIPTION_CHARS},
               "parameters": {"type": "object", "description": "A JSON Schema, at most 32 KiB."}}),
    );
    let mcp = object(
        &["type", "server_label"],
        json!({"type": {"const": "mcp"}, "server_label": name(),
               "server_url": {"type": "string", "format": "uri", "maxLength": 2048,
                              "description": "A remote server: http(s), on a host of the operator's allowlist (agents.allowed_hosts); otherwise 422. Either this or command."},
               "command": {"type": "array", "minItems": 1, "maxItems": MAX_ARGS, "items": {"type": "string", "minLength": 1, "maxLength": MAX_ARG_BYTES},
                           "description": "A stdio server: the program and its arguments, run in the job sandbox (no network; the tenant's own /work). Either this or server_url."},
               "env": {"type": "object", "maxProperties": MAX_HEADERS, "propertyNames": {"pattern": "^[A-Z0-9_]{1,64}$"},
                       "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE_BYTES},
                       "description": "A stdio server's environment (not AIPLUS_…); sealed at rest, shown back as \"***\"."},
               "headers": {"type": "object", "maxProperties": MAX_HEADERS,
                           "propertyNames": {"pattern": "^[A-Za-z0-9-]{1,64}$"},
                           "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE_BYTES, "pattern": "^[ -~]*$"},
                           "description": "Sent to the server with every request; sealed at rest and shown back as \"***\", which, sent again, keeps the stored value."},
               "allowed_tools": {"type": ["array", "null"], "maxItems": 128, "items": name(), "description": "Only these of the server's tools; absent or null: all."},
               "require_approval": {"oneOf": [{"enum": ["always", "never"]},
                   object(&[], json!({"always": tool_names(), "never": tool_names()}))],
                   "default": "always", "description": "Which calls wait for the client's mcp_approval_response, as in OpenAI's API."},
               "protocol_version": {"enum": [MCP_VERSIONS[0], MCP_VERSIONS[1], null], "description": "Default (absent or null): the newest."}}),
    );
    let file_search = object(
        &["type", "collection_ids"],
        json!({"type": {"const": "file_search"},
               "collection_ids": {"type": "array", "minItems": 1, "maxItems": MAX_SEARCH_COLLECTIONS, "items": name(),
                                  "description": "The tenant's collections it searches (OpenAI's vector_store_ids is accepted too)."},
               "max_num_results": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "default": DEFAULT_RESULTS}}),
    );
    json!({"oneOf": [function, mcp, file_search]})
}

/// `PUT /api/v1/collections/{id}/documents/{doc}`.
pub fn collection_document() -> Value {
    object(
        &["text"],
        json!({"text": {"type": "string", "minLength": 1, "maxLength": MAX_DOCUMENT_BYTES, "pattern": "\\S", "description": "At most 256 KiB of UTF-8; cut into chunks and embedded as the caller."},
               "filename": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_FILENAME_CHARS, "pattern": format!("^[^{NO_CONTROLS}]+$")},
               "attributes": {"type": "object", "maxProperties": MAX_ATTRIBUTES, "propertyNames": {"pattern": NAME_PATTERN},
                              "additionalProperties": {"type": "string", "maxLength": MAX_ATTRIBUTE_VALUE_CHARS}}}),
    )
}

/// `POST /api/v1/collections/{id}/search`.
pub fn collection_search() -> Value {
    let query = json!({"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": "\\S"});
    object(
        &["query"],
        json!({"query": {"oneOf": [query, {"type": "array", "minItems": 1, "maxItems": MAX_QUERIES, "items": query}]},
               "max_num_results": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "default": DEFAULT_RESULTS}}),
    )
}

fn document_view() -> Value {
    record(
        &["object", "id", "collection", "filename", "bytes", "chunks", "created_ms", "attributes"],
        json!({"object": {"const": "collection.document"}, "id": {"type": "string"}, "collection": {"type": "string"}, "filename": {"type": "string"},
               "bytes": {"type": "integer"}, "chunks": {"type": "integer"}, "created_ms": {"type": "integer"}, "attributes": {"type": "object"}}),
    )
}

fn collection_responses() -> Vec<(&'static str, &'static str, Value)> {
    let collection = record(
        &["object", "id", "documents", "chunks", "bytes", "updated_ms"],
        json!({"object": {"const": "collection"}, "id": {"type": "string"}, "documents": {"type": "integer"}, "chunks": {"type": "integer"},
               "bytes": {"type": "integer"}, "updated_ms": {"type": "integer"}}),
    );
    let hit = record(
        &["file_id", "filename", "score", "text", "attributes"],
        json!({"file_id": {"type": "string"}, "filename": {"type": "string"}, "score": {"type": "number"}, "text": {"type": "string"}, "attributes": {"type": "object"}}),
    );
    vec![
        ("get", "/api/v1/collections", listed(collection)),
        (
            "get",
            "/api/v1/collections/{id}",
            record(
                &["object", "id", "documents"],
                json!({"object": {"const": "collection"}, "id": {"type": "string"}, "documents": list(document_view())}),
            ),
        ),
        ("put", "/api/v1/collections/{id}/documents/{doc}", document_view()),
        (
            "post",
            "/api/v1/collections/{id}/search",
            record(
                &["object", "search_query", "data"],
                json!({"object": {"const": "list"}, "search_query": {"type": "array"}, "data": list(hit)}),
            ),
        ),
    ]
}

/// `PUT /api/v1/agents/{id}`.
pub fn agent_spec() -> Value {
    let mut spec = object(
        &["model"],
        json!({
            "instructions": {"type": "string", "maxLength": MAX_INSTRUCTIONS_BYTES, "description": "At most 64 KiB of UTF-8."},
            "model": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": format!("^(?!agent:)[^{NO_CONTROLS}]+$"),
                      "description": "A model the gateway serves the tenant (not another agent)."},
            "tools": {"type": "array", "maxItems": MAX_TOOLS, "items": tool(),
                      "description": "Function names and server labels share one namespace: each at most once."},
            "limits": object(&[], json!({
                "max_steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS, "default": 8},
                "max_output_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_OUTPUT_TOKENS, "default": 4096},
                "timeout_s": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_S, "default": 120}})),
            "regions": {"type": "array", "maxItems": MAX_REGIONS, "items": {"type": "string", "pattern": "^(province|hub):[ -+\\--~]{1,100}$"},
                        "description": "Where the agent's model steps may be served, within the tenant's regions: province:<Name> or hub:<id>."},
            "metadata": {"type": "object", "maxProperties": MAX_METADATA_PAIRS, "propertyNames": {"minLength": 1, "maxLength": MAX_NAME_BYTES},
                         "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS}},
        }),
    );
    spec["description"] = json!("An agent: served on the Responses API as the model `agent:<id>` (or `agent:<id>@<version>`).");
    spec
}

fn agent_view() -> Value {
    record(
        &["object", "id", "tenant", "version", "created_ms", "model_name", "model", "tools", "limits"],
        json!({"object": {"const": "agent"}, "id": {"type": "string"}, "tenant": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
               "created_ms": {"type": "integer"}, "model_name": {"type": "string"}, "instructions": {"type": "string"}, "model": {"type": "string"},
               "tools": {"type": "array"}, "limits": {"type": "object"}, "regions": {"type": "array"}, "metadata": {"type": "object"}}),
    )
}

pub(super) fn listed(items: Value) -> Value {
    record(&["object", "data"], json!({"object": {"const": "list"}, "data": list(items)}))
}

pub fn responses() -> Vec<(&'static str, &'static str, Value)> {
    let version = record(&["version", "created_ms"], json!({"version": {"type": "integer"}, "created_ms": {"type": "integer"}}));
    vec![
        ("get", "/api/v1/agents", listed(agent_view())),
        ("get", "/api/v1/agents/{id}", agent_view()),
        ("put", "/api/v1/agents/{id}", agent_view()),
        ("get", "/api/v1/agents/{id}/versions", listed(version)),
    ]
    .into_iter()
    .chain(collection_responses())
    .collect()
}

/// `GET /api/v1/agents/{id}?version=`.
pub fn query(method: &str, path: &str) -> Vec<Value> {
    match (method, path) {
        ("get", "/api/v1/agents/{id}") => {
            vec![
                json!({"name": "version", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}}),
            ]
        }
        _ => Vec::new(),
    }
}
