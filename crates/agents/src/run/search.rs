//! The built-in `file_search` in the loop: the model sees a `file_search` function taking its
//! queries; a call becomes a `file_search_call` item with the typed stream events OpenAI sends
//! (`in_progress`, `searching`, `completed`), a ledger event, and results the guardrail has
//! read. A search changes nothing, so a resumed run may search again; it is never in flight.

use std::time::Instant;

use serde_json::{Value, json};

use super::{BUSY, Run, WITHHELD};
use crate::spec::FILE_SEARCH;

/// The function the model is offered for `file_search`.
pub(super) fn function() -> Value {
    json!({"type": "function", "name": FILE_SEARCH,
        "description": "Search the documents this agent was given. Returns the passages most similar to the queries, with their file names and scores.",
        "parameters": {"type": "object", "properties": {
            "queries": {"type": "array", "items": {"type": "string"}, "description": "One or more search queries."}},
            "required": ["queries"]}})
}

/// The queries of a model's call: `queries` (an array), or a lone `query`, as models write it.
fn queries_of(arguments: &str) -> Vec<String> {
    let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
    match (&args["queries"], &args["query"]) {
        (Value::Array(q), _) => q.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        (_, Value::String(q)) => vec![q.clone()],
        _ => Vec::new(),
    }
}

impl Run<'_> {
    /// Runs one `file_search` call the model asked for.
    pub(super) async fn file_search(&mut self, arguments: &str) {
        let Some((collections, k)) = self.agent.spec.file_search() else { return };
        let collections = collections.to_vec();
        let queries = queries_of(arguments);
        let id = (self.deps.ids)("fs");
        let ix = self.s.output.len();
        let mut item = json!({"type": "file_search_call", "id": id, "status": "in_progress", "queries": queries, "results": null});
        self.send(json!({"type": "response.output_item.added", "output_index": ix, "item": item})).await;
        self.send(json!({"type": "response.file_search_call.in_progress", "item_id": id, "output_index": ix})).await;
        self.send(json!({"type": "response.file_search_call.searching", "item_id": id, "output_index": ix})).await;
        let started = Instant::now();
        let record = self.deps.recorder.begin();
        let found = match (&record, &self.deps.search) {
            (None, _) => Err(BUSY.to_string()),
            (Some(_), None) => Err("file_search needs the embedded embedder, which this server does not run".to_string()),
            (Some(_), Some(s)) => match self.left() {
                Some(left) => {
                    let limit = left.min(std::time::Duration::from_secs(super::MAX_TOOL_CALL_S));
                    tokio::time::timeout(limit, s.search(collections, queries, k)).await.unwrap_or_else(|_| Err("timed out".into()))
                }
                None => Err("timed out".into()),
            },
        };
        match found {
            Ok(hits) => {
                let results: Vec<Value> = hits
                    .into_iter()
                    .map(|mut h| {
                        if self.deps.guard.as_ref().is_some_and(|g| g(&h.text)) {
                            h.text = WITHHELD.to_string();
                        }
                        json!(h)
                    })
                    .collect();
                item["results"] = json!(results);
                item["status"] = json!("completed");
            }
            Err(e) => {
                item["status"] = json!("failed");
                item["error"] = json!(e);
            }
        }
        if let Some(record) = record {
            record(self.response_id, &item, started.elapsed().as_millis() as u64);
        }
        // OpenAI's stream has no failure event for a search: a failed one is only its item.
        if item["status"] == "completed" {
            self.send(json!({"type": "response.file_search_call.completed", "item_id": id, "output_index": ix})).await;
        }
        self.done_item(item).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_as_models_write_them() {
        assert_eq!(queries_of(r#"{"queries": ["a", "b"]}"#), ["a", "b"]);
        assert_eq!(queries_of(r#"{"query": "a"}"#), ["a"]);
        assert!(queries_of("not json").is_empty());
    }
}
