//! RFC 9457 `application/problem+json`, once for every HTTP edge of aiplus's own API (`api`,
//! and the gateway's management routes). Each edge keeps its own error type and maps it,
//! exhaustively, to a [`Kind`]; the kind alone decides the status, the `type` and the `title`,
//! so that a client sees one vocabulary whichever crate answered.
//!
//! The OpenAI-compatible `/v1` routes answer in OpenAI's error shape instead, and do not use
//! this crate.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What went wrong, as a client can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The body or a parameter is well-formed but breaks a rule.
    Invalid,
    /// The body is not JSON, or not the right shape.
    Malformed,
    NotFound,
    /// The path exists, with other methods (the response lists them in `Allow`).
    MethodNotAllowed,
    Unauthenticated,
    Forbidden,
    /// The `Host` header is not a name this server answers to.
    UnknownHost,
    Conflict,
    /// A job that no cluster of the network could ever run.
    Unplaceable,
    TooLarge,
    /// Temporarily unable to take the work; retry later.
    Busy,
    /// A limit on what one caller may hold, open or send.
    Limit,
    /// A failure inside aiplus; details are in the server's log only.
    Internal,
}

impl Kind {
    pub fn status(self) -> StatusCode {
        match self {
            Kind::Invalid | Kind::Unplaceable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Malformed => StatusCode::BAD_REQUEST,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Limit => StatusCode::TOO_MANY_REQUESTS,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's `type` and `title`.
    pub fn type_and_title(self) -> (&'static str, &'static str) {
        match self {
            Kind::Invalid => ("/problems/invalid-field", "A field is invalid"),
            Kind::Malformed => ("/problems/malformed-request", "The request could not be read"),
            Kind::NotFound => ("/problems/not-found", "Not found"),
            Kind::MethodNotAllowed => ("/problems/method-not-allowed", "Method not allowed"),
            Kind::Unauthenticated => ("/problems/unauthenticated", "Authentication required"),
            Kind::Forbidden => ("/problems/forbidden", "Not allowed"),
            Kind::UnknownHost => ("/problems/unknown-host", "Unknown host"),
            Kind::Conflict => ("/problems/conflict", "Conflict with the current state"),
            Kind::Unplaceable => ("/problems/unplaceable-job", "No cluster can run this job"),
            Kind::TooLarge => ("/problems/body-too-large", "Request body too large"),
            Kind::Busy => ("/problems/busy", "Temporarily unable to accept work"),
            Kind::Limit => ("/problems/limit-reached", "A limit was reached"),
            Kind::Internal => ("/problems/internal", "Internal error"),
        }
    }
}

/// One problem, ready to send.
#[derive(Debug)]
pub struct Problem {
    pub kind: Kind,
    pub detail: String,
    /// The input at fault (`dataset.size_gb`, `x-aiplus-tenant`), for 4xx answers about input.
    pub field: Option<String>,
    pub reason: Option<String>,
    /// More members, merged into the body (an unplaceable job's exclusions).
    pub extra: Option<(&'static str, serde_json::Value)>,
    /// The methods the path has, for [`Kind::MethodNotAllowed`].
    pub allow: Option<String>,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Problem { kind, detail: detail.into(), field: None, reason: None, extra: None, allow: None }
    }

    /// A problem with one named input: the detail reads `field: reason`.
    pub fn field(kind: Kind, field: impl Into<String>, reason: impl Into<String>) -> Self {
        let (field, reason) = (field.into(), reason.into());
        Problem { kind, detail: format!("{field}: {reason}"), field: Some(field), reason: Some(reason), extra: None, allow: None }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let (kind, title) = self.kind.type_and_title();
        let body = Body {
            kind,
            title,
            status: status.as_u16(),
            detail: &self.detail,
            field: self.field.as_deref(),
            reason: self.reason.as_deref(),
        };
        let mut value = serde_json::to_value(body).unwrap_or_default();
        if let (Some((name, extra)), Some(map)) = (self.extra, value.as_object_mut()) {
            map.insert(name.to_string(), extra);
        }
        let mut resp = (status, axum::Json(value)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        resp
    }
}

/// A JSON body that could not be read: the field at fault (`body` for the whole) and why.
#[derive(Debug, PartialEq, Eq)]
pub struct BadJson {
    pub field: String,
    pub reason: String,
}

/// Reads a JSON request body into `T`. Every body of aiplus's API is an object: anything else
/// is refused here, because serde would otherwise read a struct from an array of its fields
/// (`[]` for a struct whose fields all have defaults). A number with a zero fraction (`768.0`)
/// reads as the integer it is, as JSON Schema says and as some clients write integers.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BadJson> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(BadJson { field: "body".into(), reason: "must be a JSON object".into() });
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| BadJson { field: "body".into(), reason: without_position(&e) })?;
    integral_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        BadJson { field, reason: without_position(e.inner()) }
    })
}

/// serde_json appends "at line L column C"; the field path says more, and for bodies the API
/// re-reads (job submissions) the position would point into the re-read copy.
fn without_position(e: &serde_json::Error) -> String {
    let reason = e.to_string();
    reason.split(" at line ").next().unwrap_or(&reason).to_string()
}

/// Turns every number with a zero fraction that fits a 64-bit integer into that integer. The
/// depth is bounded by serde_json's own recursion limit (128) on the way in.
fn integral_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    *v = Value::from(f as u64);
                } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Optional {
        #[serde(default)]
        a: Option<u32>,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default)]
        b: Option<u32>,
    }

    #[test]
    fn a_body_must_be_an_object_and_errors_name_the_field() {
        assert_eq!(parse_json::<Optional>(b" []").unwrap_err(), BadJson { field: "body".into(), reason: "must be a JSON object".into() });
        let e = parse_json::<Optional>(br#"{"a": "x"}"#).unwrap_err();
        assert_eq!(e.field, "a");
        assert!(!e.reason.contains("line"), "{}", e.reason);
        assert!(parse_json::<Optional>(br#"{"a": 1}"#).is_ok());
        let nested = parse_json::<Optional>(br#"{"inner": {"b": "x"}}"#).unwrap_err();
        assert_eq!(nested.field, "inner.b");
        assert_eq!(parse_json::<Optional>(b"{").unwrap_err().field, "body");
    }

    #[test]
    fn integral_numbers_read_as_integers_and_fractions_do_not() {
        let o: Optional = parse_json(br#"{"a": 768.0, "inner": {"b": 1e3}}"#).unwrap();
        assert_eq!((o.a, o.inner.and_then(|i| i.b)), (Some(768), Some(1000)));
        assert_eq!(parse_json::<Optional>(br#"{"a": 768.5}"#).unwrap_err().field, "a");
        assert_eq!(parse_json::<Optional>(br#"{"a": -1.0}"#).unwrap_err().field, "a");
        assert_eq!(parse_json::<Optional>(br#"{"a": 1e300}"#).unwrap_err().field, "a");
        let f: serde_json::Value = parse_json(br#"{"x": 0.5, "y": 2.0, "z": -3.0}"#).unwrap();
        assert_eq!(f, serde_json::json!({"x": 0.5, "y": 2, "z": -3}));
    }

    #[test]
    fn every_kind_has_its_own_type() {
        use Kind::*;
        let all = [
            Invalid,
            Malformed,
            NotFound,
            MethodNotAllowed,
            Unauthenticated,
            Forbidden,
            UnknownHost,
            Conflict,
            Unplaceable,
            TooLarge,
            Busy,
            Limit,
            Internal,
        ];
        let types: std::collections::BTreeSet<_> = all.iter().map(|k| k.type_and_title().0).collect();
        assert_eq!(types.len(), all.len());
    }
}
