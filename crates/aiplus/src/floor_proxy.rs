//! The floor of what any proxy adds: a bare forwarder with no auth, no parsing and no metering,
//! on the same HTTP stack as aiplus (axum in front, reqwest behind, tokio's multi-thread
//! runtime). `aiplus gateway bench` measures it beside aiplus, so that the time aiplus adds can
//! be read against what one more loopback hop costs on the machine at all.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// Largest request body it forwards (the bench sends a few hundred bytes).
const MAX_BODY_BYTES: usize = 1 << 20;

/// Serves the forwarder on `listen`, sending every request to the same path under `upstream`;
/// its URL.
pub async fn serve(listen: &str, upstream: String) -> anyhow::Result<String> {
    let http = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(256).build()?;
    let app = axum::Router::new().fallback(move |req: Request| forward(http.clone(), upstream.clone(), req));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// One request, forwarded; the answer streams back chunk by chunk as it comes.
async fn forward(http: reqwest::Client, upstream: String, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut out = http.request(parts.method, format!("{upstream}{}", parts.uri.path())).body(bytes);
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        out = out.header(CONTENT_TYPE, ct);
    }
    let Ok(resp) = out.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let ct = resp.headers().get(CONTENT_TYPE).cloned();
    let chunks = futures_util::stream::unfold(resp, |mut resp| async move {
        match resp.chunk().await {
            Ok(Some(c)) => Some((Ok::<_, reqwest::Error>(c), resp)),
            _ => None,
        }
    });
    let mut answer = Response::new(Body::from_stream(chunks));
    *answer.status_mut() = status;
    if let Some(ct) = ct {
        answer.headers_mut().insert(CONTENT_TYPE, ct);
    }
    answer
}
