//! The agents part of the document: an agent's declaration and how it reads back. The limits
//! are `agents`'s own constants.

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
    json!({"oneOf": [function, mcp]})
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

fn listed(items: Value) -> Value {
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
