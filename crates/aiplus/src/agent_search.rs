//! The embedder behind collections and `file_search`: the gateway's embedded model, called
//! in-process through the same admission pipeline as `/v1/embeddings`, so every document and
//! query is admitted, limited and metered as the tenant's embeddings usage.

use std::sync::{Arc, Weak};

use agents::collections::{Embed, EmbedFailure, decode_vector};
use agents::run::BoxFuture;
use axum::body::Bytes;
use identity::{Principal, Scope};
use serde_json::{Value, json};

pub struct GatewayEmbed {
    /// Weak: the gateway outlives no request, and holds the agents host that holds this.
    pub gw: Weak<gateway::Gateway>,
    /// The model asked; empty: the gateway's embedded one.
    pub model: String,
}

/// A vector as an answer carries it: base64 (as asked) or, from an upstream that ignores the
/// encoding, an array of numbers.
fn vector_of(v: &Value) -> Option<Vec<f32>> {
    match v {
        Value::String(s) => decode_vector(s),
        Value::Array(a) => a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect(),
        _ => None,
    }
}

/// Who an embedding is made as: the caller when it is the tenant's own credential; for an
/// operator acting for a tenant, an internal member of that tenant named after the operator,
/// so the usage is the tenant's and the ledger says who caused it.
fn principal_for(caller: Arc<Principal>, tenant: &str) -> Result<Arc<Principal>, EmbedFailure> {
    if !caller.is_operator() {
        // The routes never let a tenant name another; refused here too, whatever a caller does.
        return if caller.tenant_id() == tenant { Ok(caller) } else { Err(failure(403, "not this caller's tenant")) };
    }
    Ok(Arc::new(Principal::internal_tenant(format!("collections:{}", caller.id), tenant.to_string(), &[Scope::Inference])))
}

fn failure(status: u16, message: impl Into<String>) -> EmbedFailure {
    EmbedFailure { status, message: message.into() }
}

impl Embed for GatewayEmbed {
    fn embed(&self, caller: Arc<Principal>, tenant: String, texts: Vec<String>) -> BoxFuture<Result<Vec<Vec<f32>>, EmbedFailure>> {
        let (gw, model) = (self.gw.clone(), self.model.clone());
        Box::pin(async move {
            let gw = gw.upgrade().ok_or_else(|| failure(503, "the server is stopping"))?;
            let model = match (model.is_empty(), gw.embedded_state()) {
                (false, _) => model,
                (true, Some((embedded, _))) => embedded,
                (true, None) => {
                    return Err(failure(
                        503,
                        "this server runs no embedded embedder (gateway.embedded) and names no agents.embedding_model",
                    ));
                }
            };
            let body = json!({"model": model, "input": texts, "encoding_format": "base64"});
            let who = principal_for(caller, &tenant)?;
            let (status, _, answer) = gw.call(who, gateway::InProcess::Embeddings, None, Bytes::from(body.to_string())).await;
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(failure(status.as_u16(), v["error"]["message"].as_str().unwrap_or("the embeddings request failed")));
            }
            let data = v["data"].as_array().ok_or_else(|| failure(502, "the embeddings answer has no data"))?;
            data.iter().map(|d| vector_of(&d["embedding"]).ok_or_else(|| failure(502, "an embedding does not decode"))).collect()
        })
    }
}
