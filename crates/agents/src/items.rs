//! How a run's conversation, kept as Responses items as the client sees them, reads to a
//! model: an `mcp_call` or a `file_search_call` becomes a function call and its output.

use serde_json::{Value, json};

use crate::run::{DENIED, SEPARATOR};

/// The conversation as a model sees it: messages, function calls and their outputs. An MCP
/// call is a function call (`label__tool`) with its output or error; an approval request is a
/// call whose output comes with the answer (or says it was denied, or is still pending).
pub fn model_input(items: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        match it["type"].as_str().unwrap_or("message") {
            "mcp_list_tools" | "mcp_approval_response" => {}
            "mcp_call" => {
                let call_id = it["id"].as_str().unwrap_or("");
                let name = format!("{}{SEPARATOR}{}", it["server_label"].as_str().unwrap_or(""), it["name"].as_str().unwrap_or(""));
                out.push(json!({"type": "function_call", "call_id": call_id, "name": name, "arguments": it["arguments"]}));
                let output = match it["output"].as_str() {
                    Some(o) => o.to_string(),
                    None => format!("error: {}", it["error"].as_str().unwrap_or("the call failed")),
                };
                out.push(json!({"type": "function_call_output", "call_id": call_id, "output": output}));
            }
            "file_search_call" => {
                let call_id = it["id"].as_str().unwrap_or("");
                let arguments = json!({"queries": it["queries"]}).to_string();
                out.push(json!({"type": "function_call", "call_id": call_id, "name": crate::spec::FILE_SEARCH, "arguments": arguments}));
                let output = match it["results"].as_array() {
                    Some(r) => {
                        Value::Array(r.iter().map(|h| json!({"filename": h["filename"], "score": h["score"], "text": h["text"]})).collect())
                            .to_string()
                    }
                    None => format!("error: {}", it["error"].as_str().unwrap_or("the search failed")),
                };
                out.push(json!({"type": "function_call_output", "call_id": call_id, "output": output}));
            }
            "mcp_approval_request" => {
                // An approved call is followed by its `mcp_call`, which speaks for it; a denied
                // one tells the model so; an unanswered one is left out.
                let id = &it["id"];
                let answer = items[i..].iter().find(|a| a["type"] == "mcp_approval_response" && a["approval_request_id"] == *id);
                if answer.is_some_and(|a| a["approve"].as_bool() != Some(true)) {
                    let name = format!("{}{SEPARATOR}{}", it["server_label"].as_str().unwrap_or(""), it["name"].as_str().unwrap_or(""));
                    let call_id = id.as_str().unwrap_or("");
                    out.push(json!({"type": "function_call", "call_id": call_id, "name": name, "arguments": it["arguments"]}));
                    out.push(json!({"type": "function_call_output", "call_id": call_id, "output": DENIED}));
                }
            }
            "message" => {
                // Output messages carry ids and statuses the model does not need.
                out.push(json!({"type": "message", "role": it["role"], "content": it["content"]}));
            }
            _ => out.push(it.clone()),
        }
    }
    out
}
