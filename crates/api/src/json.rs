//! A JSON body extractor whose errors name the field (`dataset.size_gb`), unlike axum's own.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// Largest request body accepted anywhere in the API.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::Malformed { field: "content-type".into(), reason: "must be application/json".into() });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| ApiError::TooLarge { limit_bytes: MAX_BODY_BYTES })?;
        parse(&bytes).map(Json)
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    Ok(problem::parse_json(bytes)?)
}
