//! A model step's text as the stream carries it. With a client listening (and
//! `Deps::stream_steps`), a step is asked streamed: each piece of text becomes a
//! `response.output_text.delta` as the model writes it, inside a message item opened at the
//! first piece, and the step's answer (or its failure, or the timeout) closes it. Otherwise (a
//! background run, whose events are stored; a run with no stream) the step is asked whole and
//! its message is sent as one delta, with the same events around it.

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Run, StepError};

/// Pieces of text a streamed step may have in flight to the loop.
const DELTAS_IN_FLIGHT: usize = 256;

/// The message a streamed step is writing.
pub(super) struct Open {
    id: Value,
    ix: usize,
    text: String,
}

impl Run<'_> {
    /// Asks the model for a step streamed, passing its text on as it comes.
    pub(super) async fn streamed(&mut self, step_id: String, body: Value) -> Result<Value, StepError> {
        let (tx, mut rx) = mpsc::channel::<String>(DELTAS_IN_FLIGHT);
        let mut answer = self.deps.model.respond_streaming(step_id, body, tx);
        loop {
            tokio::select! {
                Some(delta) = rx.recv() => self.delta(delta).await,
                a = &mut answer => {
                    while let Ok(delta) = rx.try_recv() {
                        self.delta(delta).await;
                    }
                    return a;
                }
            }
        }
    }

    /// One piece of a step's text: the message opens at the first.
    async fn delta(&mut self, delta: String) {
        if delta.is_empty() {
            return;
        }
        if self.open.is_none() {
            let id = json!((self.deps.ids)("msg"));
            let ix = self.s.output.len();
            // Open before the events go: a step cut short between them still closes it.
            self.open = Some(Open { id: id.clone(), ix, text: String::new() });
            let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
            self.send(json!({"type": "response.output_item.added", "output_index": ix, "item": item})).await;
            self.send(json!({"type": "response.content_part.added", "item_id": id, "output_index": ix, "content_index": 0,
                             "part": {"type": "output_text", "text": "", "annotations": []}}))
                .await;
        }
        let Some(open) = self.open.as_mut() else { return };
        open.text.push_str(&delta);
        let (id, ix) = (open.id.clone(), open.ix);
        self.send(json!({"type": "response.output_text.delta", "item_id": id, "output_index": ix, "content_index": 0,
                         "delta": delta, "logprobs": []}))
            .await;
    }

    /// Closes a message the step opened but its answer did not carry (the step was cut short,
    /// or what looked like text became a tool call): it ends with the text streamed so far.
    pub(super) async fn close_open(&mut self, status: &str) {
        let Some(open) = &self.open else { return };
        let item = json!({"type": "message", "id": open.id, "status": status, "role": "assistant",
                          "content": [{"type": "output_text", "text": open.text, "annotations": []}]});
        self.emit_message(item).await;
    }

    /// A message from the model, with the text events a streaming client expects: the rest of
    /// them when the step streamed its text, all of them (the text as one delta) when it did not.
    pub(super) async fn emit_message(&mut self, mut item: Value) {
        let text: String = item["content"].as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()).collect();
        let open = self.open.take();
        let ix = self.s.output.len();
        let (id, sent) = match &open {
            Some(o) => (o.id.clone(), o.text.as_str()),
            None => (item["id"].clone(), ""),
        };
        item["id"] = id.clone();
        let at = |mut v: Value| {
            v["item_id"] = id.clone();
            v["output_index"] = json!(ix);
            v["content_index"] = json!(0);
            v
        };
        if open.is_none() {
            let mut added = item.clone();
            added["status"] = json!("in_progress");
            added["content"] = json!([]);
            self.send(json!({"type": "response.output_item.added", "output_index": ix, "item": added})).await;
            self.send(at(json!({"type": "response.content_part.added", "part": {"type": "output_text", "text": "", "annotations": []}})))
                .await;
        }
        // What the stream has not carried yet: all of it, or what the answer adds to the pieces.
        let rest = text.strip_prefix(sent).unwrap_or("");
        if !rest.is_empty() || open.is_none() {
            self.send(at(json!({"type": "response.output_text.delta", "delta": rest, "logprobs": []}))).await;
        }
        self.send(at(json!({"type": "response.output_text.done", "text": text, "logprobs": []}))).await;
        self.send(at(json!({"type": "response.content_part.done", "part": {"type": "output_text", "text": text, "annotations": []}})))
            .await;
        self.done_item(item).await;
    }
}
