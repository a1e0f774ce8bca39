//! The MCP client: lists a server's tools and calls them, over streamable HTTP, in either spec
//! version aiplus supports.
//!
//! - **2025-11-25** opens a session: `initialize` (the server answers with an
//!   `Mcp-Session-Id` header), `notifications/initialized`, then every request carries the
//!   session and `MCP-Protocol-Version`. A session the server forgot (404) is opened again once.
//! - **2026-07-28** is stateless: no handshake; every request carries `MCP-Protocol-Version`,
//!   `Mcp-Method` (and `Mcp-Name` for a tool call), and the version, client info and
//!   capabilities in `params._meta`.
//!
//! A server may answer a request with JSON or with an SSE stream of JSON-RPC messages; the
//! answer is the message with the request's id. Bodies are read up to [`MAX_ANSWER_BYTES`].
//!
//! Over stdio (a program the binary runs in the job sandbox, through [`Spawn`]) messages are
//! lines of JSON; the version is the same choice, and a 2025-11-25 server is initialized once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use serde_json::{Value, json};

use crate::spec::{MCP_VERSIONS, McpServer};

/// Largest answer read from a server.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Most tools one server may list (pages are followed up to this).
pub const MAX_TOOLS: usize = 128;
const MAX_PAGES: usize = 16;
/// The longest tool output passed on to the model, in bytes; more is cut with a note.
pub const MAX_OUTPUT_BYTES: usize = 64 << 10;
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Why a server could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Not reached, timed out, or answered with an HTTP error.
    #[error("MCP server {label}: {reason}")]
    Transport { label: String, reason: String },
    /// Answered, but not with what the protocol says.
    #[error("MCP server {label}: {reason}")]
    Protocol { label: String, reason: String },
    /// A JSON-RPC error object.
    #[error("MCP server {label}: error {code}: {message}")]
    Rpc { label: String, code: i64, message: String },
}

/// A tool a server lists.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "inputSchema", default)]
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
}

/// What a tool call gave back: its text content joined, and whether the tool reported an error.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub text: String,
    pub is_error: bool,
}

/// Starts a stdio server's program for a tenant: sandboxed, stdin and stdout piped, killed
/// when the child is dropped. The binary implements it over the job sandbox.
pub trait Spawn: Send + Sync {
    fn spawn(&self, tenant: &str, command: &[String], env: &BTreeMap<String, String>) -> std::io::Result<tokio::process::Child>;
}

/// A running stdio server.
struct Conn {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

enum Transport {
    Http(reqwest::Client),
    /// Started at the first request, and again after a failure.
    Stdio {
        spawner: Arc<dyn Spawn>,
        tenant: String,
        conn: Box<tokio::sync::Mutex<Option<Conn>>>,
    },
}

pub struct Client {
    transport: Transport,
    server: McpServer,
    version: &'static str,
    session: Mutex<Option<String>>,
    next_id: AtomicU64,
}

fn version_of(server: &McpServer) -> &'static str {
    match server.protocol_version.as_deref() {
        Some(v) if v == MCP_VERSIONS[0] => MCP_VERSIONS[0],
        _ => MCP_VERSIONS[1],
    }
}

impl Client {
    /// A client of one declared remote server. The HTTP client is the caller's (built with
    /// [`outbound::client`], so redirects are not followed and local addresses are refused).
    pub fn new(http: reqwest::Client, server: McpServer) -> Self {
        let version = version_of(&server);
        Client { transport: Transport::Http(http), server, version, session: Mutex::new(None), next_id: AtomicU64::new(1) }
    }

    /// A client of a declared stdio server, run by `spawner` for `tenant`.
    pub fn stdio(spawner: Arc<dyn Spawn>, tenant: &str, server: McpServer) -> Self {
        let version = version_of(&server);
        let transport = Transport::Stdio { spawner, tenant: tenant.to_string(), conn: Box::new(tokio::sync::Mutex::new(None)) };
        Client { transport, server, version, session: Mutex::new(None), next_id: AtomicU64::new(1) }
    }

    fn transport(&self, reason: impl Into<String>) -> McpError {
        McpError::Transport { label: self.server.server_label.clone(), reason: reason.into() }
    }

    fn protocol(&self, reason: impl Into<String>) -> McpError {
        McpError::Protocol { label: self.server.server_label.clone(), reason: reason.into() }
    }

    /// The server's tools (all pages, up to [`MAX_TOOLS`]), filtered by the declaration's
    /// `allowed_tools`.
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<ToolInfo>, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request("tools/list", None, params, timeout).await?;
            let page: Vec<ToolInfo> = serde_json::from_value(result["tools"].clone())
                .map_err(|e| self.protocol(format!("tools/list: the tools do not read: {e}")))?;
            tools.extend(page.into_iter().filter(|t| self.server.offers(&t.name)));
            if tools.len() > MAX_TOOLS {
                return Err(self.protocol(format!("lists more than {MAX_TOOLS} tools")));
            }
            match result["nextCursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                _ => return Ok(tools),
            }
        }
        Err(self.protocol(format!("tools/list ran past {MAX_PAGES} pages")))
    }

    /// Calls a tool. A tool's own failure is an [`Output`] with `is_error`, as the protocol
    /// says; only a failure to ask is an error.
    pub async fn call_tool(&self, name: &str, arguments: Value, timeout: Duration) -> Result<Output, McpError> {
        let result = self.request("tools/call", Some(name), json!({"name": name, "arguments": arguments}), timeout).await?;
        Ok(output_of(&result))
    }

    /// One JSON-RPC request, with the version's headers; opens a 2025-11-25 session first.
    async fn request(&self, method: &str, name: Option<&str>, mut params: Value, timeout: Duration) -> Result<Value, McpError> {
        if self.version == MCP_VERSIONS[1] {
            params["_meta"] = json!({
                META_VERSION: self.version,
                "io.modelcontextprotocol/clientInfo": {"name": "aiplus", "version": env!("CARGO_PKG_VERSION")},
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        if let Transport::Stdio { spawner, tenant, conn } = &self.transport {
            let mut conn = conn.lock().await;
            let answer = tokio::time::timeout(timeout, self.over_stdio(&mut conn, spawner.as_ref(), tenant, method, params)).await;
            let answer = answer.unwrap_or_else(|_| Err(self.transport(format!("{method}: no answer within {timeout:?}"))));
            if matches!(answer, Err(McpError::Transport { .. } | McpError::Protocol { .. })) {
                // A server that failed or fell silent is stopped; the next request starts it anew.
                *conn = None;
            }
            return answer;
        }
        if self.version == MCP_VERSIONS[1] {
            return self.post(method, name, params, timeout).await.map(|(v, _)| v);
        }
        for attempt in 0..2 {
            let session = self.session.lock().map(|s| s.clone()).unwrap_or_default();
            if session.is_none() {
                self.open_session(timeout).await?;
            }
            match self.post(method, name, params.clone(), timeout).await {
                // A server that forgot the session answers 404: open a new one, once.
                Err(McpError::Transport { reason, .. }) if attempt == 0 && reason.starts_with("HTTP 404") && session.is_some() => {
                    if let Ok(mut s) = self.session.lock() {
                        *s = None;
                    }
                }
                other => return other.map(|(v, _)| v),
            }
        }
        Err(self.transport("the session could not be opened again"))
    }

    async fn open_session(&self, timeout: Duration) -> Result<(), McpError> {
        let params = json!({"protocolVersion": self.version, "capabilities": {},
                            "clientInfo": {"name": "aiplus", "version": env!("CARGO_PKG_VERSION")}});
        let (result, session) = self.post("initialize", None, params, timeout).await?;
        let agreed = result["protocolVersion"].as_str().unwrap_or("");
        if agreed != self.version {
            return Err(self.protocol(format!("answered initialize with version {agreed:?}, not {:?}", self.version)));
        }
        if let Ok(mut s) = self.session.lock() {
            *s = Some(session.unwrap_or_default());
        }
        self.notify("notifications/initialized", timeout).await
    }

    async fn notify(&self, method: &str, timeout: Duration) -> Result<(), McpError> {
        let body = json!({"jsonrpc": "2.0", "method": method});
        let resp = self.send(method, None, &body, timeout).await?;
        if !resp.status().is_success() {
            return Err(self.transport(format!("HTTP {} to {method}", resp.status().as_u16())));
        }
        Ok(())
    }

    /// A request over a stdio server, started (and, in 2025-11-25, initialized) if it is not.
    async fn over_stdio(
        &self,
        conn: &mut Option<Conn>,
        spawner: &dyn Spawn,
        tenant: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, McpError> {
        if conn.is_none() {
            let command = self.server.command.as_deref().unwrap_or_default();
            let program = command.first().map(String::as_str).unwrap_or("");
            let mut child =
                spawner.spawn(tenant, command, &self.server.env).map_err(|e| self.transport(format!("starting {program:?}: {e}")))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(self.transport("the server's stdin and stdout are not piped"));
            };
            let mut c = Conn { _child: child, stdin, stdout: BufReader::new(stdout) };
            if self.version == MCP_VERSIONS[0] {
                let params = json!({"protocolVersion": self.version, "capabilities": {},
                                    "clientInfo": {"name": "aiplus", "version": env!("CARGO_PKG_VERSION")}});
                let result = self.line_request(&mut c, "initialize", params).await?;
                let agreed = result["protocolVersion"].as_str().unwrap_or("");
                if agreed != self.version {
                    return Err(self.protocol(format!("answered initialize with version {agreed:?}, not {:?}", self.version)));
                }
                self.write_line(&mut c, &json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
            }
            *conn = Some(c);
        }
        let Some(c) = conn.as_mut() else { return Err(self.transport("the server is not running")) };
        self.line_request(c, method, params).await
    }

    async fn write_line(&self, c: &mut Conn, message: &Value) -> Result<(), McpError> {
        let mut line = message.to_string();
        line.push('\n');
        c.stdin.write_all(line.as_bytes()).await.map_err(|e| self.transport(format!("writing to the server: {e}")))?;
        c.stdin.flush().await.map_err(|e| self.transport(format!("writing to the server: {e}")))
    }

    /// Writes a request as one line and reads lines until the answer with its id.
    async fn line_request(&self, c: &mut Conn, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.write_line(c, &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await?;
        loop {
            let line = read_line_capped(&mut c.stdout, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| self.transport(format!("{method}: reading the answer: {e}")))?
                .ok_or_else(|| self.transport(format!("{method}: the server exited")))?;
            let Ok(message) = serde_json::from_slice::<Value>(&line) else { continue };
            if message["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(err) = message.get("error").filter(|e| !e.is_null()) {
                let text = err["message"].as_str().unwrap_or("").chars().take(500).collect();
                return Err(McpError::Rpc {
                    label: self.server.server_label.clone(),
                    code: err["code"].as_i64().unwrap_or(0),
                    message: text,
                });
            }
            return Ok(message["result"].clone());
        }
    }

    fn builder(&self, method: &str, name: Option<&str>, body: &Value, timeout: Duration) -> reqwest::RequestBuilder {
        let http = match &self.transport {
            Transport::Http(h) => h.clone(),
            // Never reached: stdio requests do not build HTTP requests.
            Transport::Stdio { .. } => reqwest::Client::default(),
        };
        let mut b = http
            .post(self.server.server_url.as_deref().unwrap_or_default())
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        for (k, v) in &self.server.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if method != "initialize" {
            b = b.header("mcp-protocol-version", self.version);
        }
        if self.version == MCP_VERSIONS[1] {
            b = b.header("mcp-method", method);
            if let Some(n) = name {
                b = b.header("mcp-name", n);
            }
        } else if let Some(s) = self.session.lock().ok().and_then(|s| s.clone()).filter(|s| !s.is_empty()) {
            b = b.header("mcp-session-id", s);
        }
        b
    }

    async fn send(&self, method: &str, name: Option<&str>, body: &Value, timeout: Duration) -> Result<reqwest::Response, McpError> {
        self.builder(method, name, body, timeout).send().await.map_err(|e| self.transport(format!("{method}: {e}")))
    }

    /// Posts a request and reads its answer: (result, the session header if any).
    async fn post(&self, method: &str, name: Option<&str>, params: Value, timeout: Duration) -> Result<(Value, Option<String>), McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let resp = self.send(method, name, &body, timeout).await?;
        let status = resp.status();
        let session = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(String::from);
        let sse = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"));
        let bytes = outbound::read_capped(resp, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| self.transport(format!("{method}: reading the answer: {e}")))?
            .ok_or_else(|| self.protocol(format!("{method}: the answer is larger than {MAX_ANSWER_BYTES} bytes")))?;
        // A 2025-11-25 server that forgot the session says so with 404 (and a JSON-RPC error).
        if status == reqwest::StatusCode::NOT_FOUND && self.version == MCP_VERSIONS[0] && method != "initialize" {
            return Err(self.transport(format!("HTTP 404 to {method}: the session is not known")));
        }
        let message = if sse { answer_in_stream(&bytes, id) } else { serde_json::from_slice(&bytes).ok() };
        let Some(message) = message else {
            if !status.is_success() {
                return Err(self.transport(format!("HTTP {} to {method}", status.as_u16())));
            }
            return Err(self.protocol(format!("{method}: no JSON-RPC answer with id {id}")));
        };
        if let Some(err) = message.get("error").filter(|e| !e.is_null()) {
            let message = err["message"].as_str().unwrap_or("").chars().take(500).collect();
            return Err(McpError::Rpc { label: self.server.server_label.clone(), code: err["code"].as_i64().unwrap_or(0), message });
        }
        if !status.is_success() {
            return Err(self.transport(format!("HTTP {} to {method}", status.as_u16())));
        }
        Ok((message["result"].clone(), session))
    }
}

/// One line (without its newline) of at most `max` bytes; `None` at the end of the stream.
async fn read_line_capped<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() { None } else { Some(line) });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > max {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a line longer than {max} bytes")));
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            return Ok(Some(line));
        }
    }
}

/// The JSON-RPC message with `id` in an SSE body (other messages, notifications and progress,
/// are passed over).
fn answer_in_stream(body: &[u8], id: u64) -> Option<Value> {
    let text = String::from_utf8_lossy(body);
    let mut data = String::new();
    let mut found = None;
    let mut flush = |data: &mut String| {
        if let Ok(v) = serde_json::from_str::<Value>(data)
            && v["id"].as_u64() == Some(id)
            && (v.get("result").is_some() || v.get("error").is_some())
        {
            found = Some(v);
        }
        data.clear();
    };
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            flush(&mut data);
        } else if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    flush(&mut data);
    found
}

/// A `tools/call` result as text: its text parts joined (other parts described), or the
/// structured content when there is no text; cut at [`MAX_OUTPUT_BYTES`].
pub fn output_of(result: &Value) -> Output {
    let mut parts = Vec::new();
    for c in result["content"].as_array().into_iter().flatten() {
        match c["type"].as_str() {
            Some("text") => parts.push(c["text"].as_str().unwrap_or("").to_string()),
            Some(other) => parts.push(format!("[{other} content]")),
            None => {}
        }
    }
    let mut text = parts.join("\n");
    if text.is_empty() && !result["structuredContent"].is_null() {
        text = result["structuredContent"].to_string();
    }
    if text.len() > MAX_OUTPUT_BYTES {
        let mut cut = MAX_OUTPUT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[output cut at 64 KiB]");
    }
    Output { text, is_error: result["isError"].as_bool().unwrap_or(false) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_in_sse_bodies() {
        let body = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n\
                    event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"x\":1}}\r\n\r\n";
        assert_eq!(answer_in_stream(body.as_bytes(), 7).unwrap()["result"]["x"], 1);
        assert!(answer_in_stream(body.as_bytes(), 8).is_none());
        // A last event without its blank line still counts.
        assert!(answer_in_stream(b"data: {\"id\":1,\"result\":{}}", 1).is_some());
    }

    #[test]
    fn tool_results_read_as_text() {
        let r = json!({"content": [{"type": "text", "text": "5"}, {"type": "image", "data": "…"}], "isError": false});
        assert_eq!(output_of(&r), Output { text: "5\n[image content]".into(), is_error: false });
        let r = json!({"content": [], "structuredContent": {"result": 5}, "isError": true});
        assert_eq!(output_of(&r), Output { text: "{\"result\":5}".into(), is_error: true });
        let long = "é".repeat(MAX_OUTPUT_BYTES);
        let out = output_of(&json!({"content": [{"type": "text", "text": long}]}));
        assert!(out.text.len() <= MAX_OUTPUT_BYTES + 30 && out.text.ends_with("[output cut at 64 KiB]"));
    }
}
