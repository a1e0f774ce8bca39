//! An agent's model step through the gateway, in-process, as the run's caller: a Responses
//! request through the same admission pipeline as `/v1/responses` (regions, limits, filings,
//! guardrail, metering), whole or streamed, so a client following the run reads the model's
//! text as it is written.

use std::sync::Weak;

use agents::run::{BoxFuture, Model, StepError};
use axum::body::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

/// One model step through the gateway, as the run's caller.
pub(crate) struct GatewayModel {
    pub gw: Weak<gateway::Gateway>,
    pub caller: gateway::Caller,
    /// Headers each step carries: the agent's regions, and its client's own regions and end user.
    pub forward: Vec<(&'static str, String)>,
}

/// The headers a step carries: the run's own, and the run it belongs to, which the ledger keeps
/// (the loop names a step `<response id>/step/<n>`).
fn step_headers(forward: &[(&'static str, String)], step_id: &str) -> Vec<(&'static str, String)> {
    let mut out = forward.to_vec();
    if let Some((run, _)) = step_id.rsplit_once("/step/") {
        out.push((gateway::AGENT_RUN_HEADER, run.to_string()));
    }
    out
}

fn gone() -> StepError {
    StepError { status: 503, code: "shutting_down".into(), message: "the server is stopping".into() }
}

/// The gateway's refusal of a step, from its OpenAI-style error body.
fn refusal(status: u16, body: &[u8]) -> StepError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    StepError {
        status,
        code: v["error"]["code"].as_str().unwrap_or("model_step_failed").into(),
        message: v["error"]["message"].as_str().unwrap_or("the model step failed").into(),
    }
}

impl Model for GatewayModel {
    fn respond(&self, step_id: String, body: Value) -> BoxFuture<Result<Value, StepError>> {
        let (gw, caller, forward) = (self.gw.clone(), self.caller.clone(), step_headers(&self.forward, &step_id));
        Box::pin(async move {
            let gw = gw.upgrade().ok_or_else(gone)?;
            let bytes = Bytes::from(body.to_string());
            let (status, _, answer) = gw.call_as(caller, gateway::InProcess::Responses, None, Some(&step_id), &forward, bytes).await;
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            if status.is_success() && v.is_object() {
                return Ok(v);
            }
            Err(refusal(status.as_u16(), &answer))
        })
    }

    fn respond_streaming(&self, step_id: String, mut body: Value, deltas: mpsc::Sender<String>) -> BoxFuture<Result<Value, StepError>> {
        let (gw, caller, forward) = (self.gw.clone(), self.caller.clone(), step_headers(&self.forward, &step_id));
        Box::pin(async move {
            let gw = gw.upgrade().ok_or_else(gone)?;
            body["stream"] = Value::Bool(true);
            let bytes = Bytes::from(body.to_string());
            let r = gw.respond_as(caller, gateway::InProcess::Responses, None, Some(&step_id), &forward, bytes).await;
            let status = r.status().as_u16();
            if !r.status().is_success() {
                let body = axum::body::to_bytes(r.into_body(), gateway::MAX_IN_PROCESS_ANSWER_BYTES).await.unwrap_or_default();
                return Err(refusal(status, &body));
            }
            read_stream(r.into_body(), &deltas).await
        })
    }
}

/// Reads a streamed step: text deltas go on as they come; the answer is the final event's
/// response. The stream is read up to the same cap as a whole answer.
async fn read_stream(body: axum::body::Body, deltas: &mpsc::Sender<String>) -> Result<Value, StepError> {
    let broke = |message: String| StepError { status: 502, code: "stream_interrupted".into(), message };
    let mut stream = body.into_data_stream();
    let mut lines = gateway::sse::DataLines::default();
    let mut read_bytes = 0usize;
    let mut error: Option<StepError> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| broke(format!("the step's stream broke: {e}")))?;
        read_bytes += chunk.len();
        if read_bytes > gateway::MAX_IN_PROCESS_ANSWER_BYTES {
            return Err(broke(format!("the step's stream passed {} MiB", gateway::MAX_IN_PROCESS_ANSWER_BYTES >> 20)));
        }
        for v in lines.feed(&chunk) {
            match v["type"].as_str() {
                Some("response.output_text.delta") => {
                    // A run whose client left still runs; its text just has no reader.
                    let _ = deltas.send(v["delta"].as_str().unwrap_or("").to_string()).await;
                }
                Some("response.completed" | "response.incomplete") => return Ok(v["response"].clone()),
                Some("error") => {
                    let code = v["code"].as_str().unwrap_or("model_step_failed").to_string();
                    let status = if code == "content_blocked" { 400 } else { 502 };
                    error = Some(StepError { status, code, message: v["message"].as_str().unwrap_or("the model step failed").into() });
                }
                Some("response.failed") => {
                    return Err(error.unwrap_or_else(|| broke("the model step failed".into())));
                }
                _ => {}
            }
        }
    }
    Err(error.unwrap_or_else(|| broke("the step's stream ended before its answer".into())))
}
