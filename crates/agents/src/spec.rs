//! What a tenant declares: an agent's instructions, model, tools, limits, regions and metadata,
//! and the checks that make a declaration safe to store and run. Every check names the field it
//! refuses, so the API's problem+json can point at it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AgentError;

/// Longest agent id, tool name, server label or metadata key.
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_INSTRUCTIONS_BYTES: usize = 64 << 10;
pub const MAX_TOOLS: usize = 32;
/// Headers one MCP server may carry, and the longest value of one.
pub const MAX_HEADERS: usize = 16;
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// The Responses API's own limits on metadata: 16 pairs, values of at most 512 characters.
pub const MAX_METADATA_PAIRS: usize = 16;
pub const MAX_METADATA_VALUE_CHARS: usize = 512;
/// A function tool's description.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// A function tool's parameter schema, as JSON.
pub const MAX_SCHEMA_BYTES: usize = 32 << 10;
/// A stdio server's command line: arguments, and bytes of one.
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 4096;
/// Ceilings of the limits a declaration may set.
pub const MAX_STEPS: u32 = 64;
pub const MAX_OUTPUT_TOKENS: u64 = 131_072;
pub const MAX_TIMEOUT_S: u64 = 3600;
pub const MAX_REGIONS: usize = 34;

/// The MCP protocol versions the client speaks: the handshake version and the stateless one.
pub const MCP_VERSIONS: [&str; 2] = ["2025-11-25", "2026-07-28"];

/// An agent as declared (the body of `PUT /api/v1/agents/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    #[serde(default)]
    pub instructions: String,
    /// The model it calls: any name the gateway serves the tenant (`chat`, `chat@2`).
    pub model: String,
    #[serde(default)]
    pub tools: Vec<Tool>,
    #[serde(default)]
    pub limits: Limits,
    /// Where the agent's model steps may be served (`province:<Name>`, `hub:<id>`), within the
    /// tenant's own regions; empty: wherever the tenant's may.
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// When a run stops: steps are model calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_steps: u32,
    /// Output tokens over all of a run's model steps.
    pub max_output_tokens: u64,
    /// Wall-clock time of a run, tool calls included.
    pub timeout_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_steps: 8, max_output_tokens: 4096, timeout_s: 120 }
    }
}

/// A tool the agent may use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Tool {
    /// Run by the client: the run stops with a `function_call` item, as OpenAI's API does.
    Function {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default = "empty_object")]
        parameters: Value,
    },
    /// A remote MCP server over streamable HTTP.
    Mcp(McpServer),
    /// The built-in vector search over the tenant's document collections (OpenAI's
    /// `file_search`, whose `vector_store_ids` is accepted for `collection_ids`).
    FileSearch {
        #[serde(alias = "vector_store_ids")]
        collection_ids: Vec<String>,
        #[serde(default = "default_results")]
        max_num_results: u32,
    },
}

fn default_results() -> u32 {
    crate::collections::DEFAULT_RESULTS
}

/// The function name the model calls `file_search` by.
pub const FILE_SEARCH: &str = "file_search";

fn empty_object() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// An MCP server: remote (`server_url`, as OpenAI's `mcp` tool declares one) or a program the
/// server runs inside the job sandbox and speaks to over stdio (`command`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    pub server_label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// The program and its arguments (argv, not a shell string), run in the job sandbox: no
    /// network, the system read-only, the tenant's own working directory at `/work`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The program's environment (beside the sandbox's own); sealed at rest like headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Sent with every request (an `Authorization` header, say). Sealed at rest; never shown
    /// back, only their names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Only these of the server's tools are offered to the model; none: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(default)]
    pub require_approval: Approval,
    /// The protocol version to speak; none: the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

/// Which of a server's tools wait for the client's approval. As in OpenAI's API the default is
/// `always`: a tool runs unasked only where the declaration says so.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Approval {
    Named(ApprovalWord),
    Filter(ApprovalFilter),
}

impl Default for Approval {
    fn default() -> Self {
        Approval::Named(ApprovalWord::Always)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalWord {
    Always,
    Never,
}

/// `{"never": {"tool_names": [...]}}`: these run unasked, the others wait (and the converse).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always: Option<ToolNames>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never: Option<ToolNames>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolNames {
    pub tool_names: Vec<String>,
}

impl Approval {
    /// Whether a call of `tool` waits for the client's approval.
    pub fn required(&self, tool: &str) -> bool {
        match self {
            Approval::Named(ApprovalWord::Always) => true,
            Approval::Named(ApprovalWord::Never) => false,
            Approval::Filter(f) => {
                let named = |n: &Option<ToolNames>| n.as_ref().is_some_and(|n| n.tool_names.iter().any(|t| t == tool));
                if named(&f.always) {
                    true
                } else if named(&f.never) {
                    false
                } else {
                    // A filter that names only the tools that never wait leaves the rest waiting,
                    // and one that names only those that always wait lets the rest run.
                    f.never.is_some() || f.always.is_none()
                }
            }
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> AgentError {
    AgentError::Invalid { field: field.into(), reason: reason.into() }
}

/// An id, label or tool name: ASCII letters, digits, `_` and `-`, 1 to 64 bytes.
pub fn check_name(field: &str, s: &str) -> Result<(), AgentError> {
    if s.is_empty() || s.len() > MAX_NAME_BYTES || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(invalid(field, format!("{s:?} must be 1 to {MAX_NAME_BYTES} ASCII letters, digits, '_' or '-'")));
    }
    Ok(())
}

impl AgentSpec {
    /// Every rule a declaration must keep. `allowed_hosts` is the operator's list of hosts MCP
    /// servers may be on (`*` for any); `allow_local` lets them be on this host.
    pub fn check(&self, allowed_hosts: &[String], allow_local: bool) -> Result<(), AgentError> {
        if self.instructions.len() > MAX_INSTRUCTIONS_BYTES {
            return Err(invalid("instructions", format!("at most {MAX_INSTRUCTIONS_BYTES} bytes")));
        }
        if self.model.is_empty() || self.model.len() > 256 || self.model.starts_with("agent:") || self.model.chars().any(char::is_control) {
            return Err(invalid(
                "model",
                "must name a model the gateway serves (not another agent): 1 to 256 bytes, no control characters",
            ));
        }
        self.check_limits()?;
        if self.regions.len() > MAX_REGIONS {
            return Err(invalid("regions", format!("at most {MAX_REGIONS}")));
        }
        for (i, r) in self.regions.iter().enumerate() {
            // As the network spells them (hub ids, provinces' English names): ASCII, no commas.
            let ascii = r.is_ascii() && !r.contains(',');
            if !ascii || vocab::Region::parse(r).is_err() {
                return Err(invalid(format!("regions[{i}]"), format!("{r:?} is not province:<Name> or hub:<id> as the network spells it")));
            }
        }
        if self.metadata.len() > MAX_METADATA_PAIRS {
            return Err(invalid("metadata", format!("at most {MAX_METADATA_PAIRS} pairs")));
        }
        for (k, v) in &self.metadata {
            if k.is_empty() || k.len() > MAX_NAME_BYTES || v.chars().count() > MAX_METADATA_VALUE_CHARS {
                return Err(invalid(
                    format!("metadata.{k}"),
                    format!("keys of 1 to 64 bytes, values of at most {MAX_METADATA_VALUE_CHARS} characters"),
                ));
            }
        }
        if self.tools.len() > MAX_TOOLS {
            return Err(invalid("tools", format!("at most {MAX_TOOLS}")));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in self.tools.iter().enumerate() {
            let name = match t {
                Tool::Function { name, parameters, description } => {
                    check_name(&format!("tools[{i}].name"), name)?;
                    if description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
                        return Err(invalid(format!("tools[{i}].description"), format!("at most {MAX_DESCRIPTION_CHARS} characters")));
                    }
                    if !parameters.is_object() || parameters.to_string().len() > MAX_SCHEMA_BYTES {
                        return Err(invalid(
                            format!("tools[{i}].parameters"),
                            format!("a JSON Schema object of at most {MAX_SCHEMA_BYTES} bytes"),
                        ));
                    }
                    name.as_str()
                }
                Tool::Mcp(s) => {
                    s.check(&format!("tools[{i}]"), allowed_hosts, allow_local)?;
                    s.server_label.as_str()
                }
                Tool::FileSearch { collection_ids, max_num_results } => {
                    check_file_search(i, collection_ids, *max_num_results)?;
                    FILE_SEARCH
                }
            };
            if !names.insert(name.to_string()) {
                return Err(invalid(
                    format!("tools[{i}]"),
                    format!("{name:?} is declared twice (function names and server labels share one namespace)"),
                ));
            }
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), AgentError> {
        let l = &self.limits;
        if !(1..=MAX_STEPS).contains(&l.max_steps) {
            return Err(invalid("limits.max_steps", format!("1 to {MAX_STEPS}")));
        }
        if !(1..=MAX_OUTPUT_TOKENS).contains(&l.max_output_tokens) {
            return Err(invalid("limits.max_output_tokens", format!("1 to {MAX_OUTPUT_TOKENS}")));
        }
        if !(1..=MAX_TIMEOUT_S).contains(&l.timeout_s) {
            return Err(invalid("limits.timeout_s", format!("1 to {MAX_TIMEOUT_S}")));
        }
        Ok(())
    }

    /// The MCP servers, by label.
    pub fn mcp_servers(&self) -> impl Iterator<Item = &McpServer> {
        self.tools.iter().filter_map(|t| match t {
            Tool::Mcp(s) => Some(s),
            Tool::Function { .. } | Tool::FileSearch { .. } => None,
        })
    }

    /// The `file_search` tool, if declared: its collections and how many results it returns.
    pub fn file_search(&self) -> Option<(&[String], u32)> {
        self.tools.iter().find_map(|t| match t {
            Tool::FileSearch { collection_ids, max_num_results } => Some((collection_ids.as_slice(), *max_num_results)),
            _ => None,
        })
    }
}

fn check_file_search(i: usize, collection_ids: &[String], max_num_results: u32) -> Result<(), AgentError> {
    use crate::collections::{MAX_RESULTS, MAX_SEARCH_COLLECTIONS};
    if collection_ids.is_empty() || collection_ids.len() > MAX_SEARCH_COLLECTIONS {
        return Err(invalid(format!("tools[{i}].collection_ids"), format!("1 to {MAX_SEARCH_COLLECTIONS} collections")));
    }
    for (j, c) in collection_ids.iter().enumerate() {
        check_name(&format!("tools[{i}].collection_ids[{j}]"), c)?;
        if collection_ids[..j].contains(c) {
            return Err(invalid(format!("tools[{i}].collection_ids[{j}]"), format!("{c:?} is named twice")));
        }
    }
    if !(1..=MAX_RESULTS).contains(&max_num_results) {
        return Err(invalid(format!("tools[{i}].max_num_results"), format!("1 to {MAX_RESULTS}")));
    }
    Ok(())
}

impl McpServer {
    fn check(&self, at: &str, allowed_hosts: &[String], allow_local: bool) -> Result<(), AgentError> {
        check_name(&format!("{at}.server_label"), &self.server_label)?;
        match (&self.server_url, &self.command) {
            (Some(url), None) => {
                let field = format!("{at}.server_url");
                outbound::check_url(url, allow_local).map_err(|why| invalid(&field, why))?;
                host_allowed(url, allowed_hosts).map_err(|why| invalid(&field, why))?;
            }
            (None, Some(command)) => self.check_command(at, command)?,
            _ => return Err(invalid(at, "an MCP server has either a server_url or a command")),
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(invalid(format!("{at}.headers"), format!("at most {MAX_HEADERS}")));
        }
        for (k, v) in &self.headers {
            let ok_name = !k.is_empty() && k.len() <= MAX_NAME_BYTES && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok_name || v.len() > MAX_HEADER_VALUE_BYTES || v.bytes().any(|b| !(0x20..=0x7e).contains(&b)) {
                return Err(invalid(
                    format!("{at}.headers.{k}"),
                    format!(
                        "a header name of letters, digits and '-', and a value of at most {MAX_HEADER_VALUE_BYTES} printable ASCII characters"
                    ),
                ));
            }
        }
        for (j, t) in self.allowed_tools.iter().flatten().enumerate() {
            check_name(&format!("{at}.allowed_tools[{j}]"), t)?;
        }
        if let Some(v) = &self.protocol_version
            && !MCP_VERSIONS.contains(&v.as_str())
        {
            return Err(invalid(format!("{at}.protocol_version"), format!("{v:?} is not one of {MCP_VERSIONS:?}")));
        }
        Ok(())
    }

    fn check_command(&self, at: &str, command: &[String]) -> Result<(), AgentError> {
        if command.is_empty()
            || command.len() > MAX_ARGS
            || command.iter().any(|a| a.is_empty() || a.len() > MAX_ARG_BYTES || a.contains('\0'))
        {
            return Err(invalid(format!("{at}.command"), format!("1 to {MAX_ARGS} arguments of 1 to {MAX_ARG_BYTES} bytes")));
        }
        if self.env.len() > MAX_HEADERS {
            return Err(invalid(format!("{at}.env"), format!("at most {MAX_HEADERS} variables")));
        }
        for (k, v) in &self.env {
            let ok = !k.is_empty()
                && k.len() <= MAX_NAME_BYTES
                && k.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && !k.starts_with("AIPLUS_")
                && v.len() <= MAX_HEADER_VALUE_BYTES
                && !v.contains('\0');
            if !ok {
                return Err(invalid(format!("{at}.env.{k}"), "names of A-Z, 0-9 and _ (not AIPLUS_…), values of at most 4096 bytes"));
            }
        }
        Ok(())
    }

    /// Whether the server is a program run over stdio.
    pub fn is_stdio(&self) -> bool {
        self.command.is_some()
    }

    /// Whether the server offers `tool` to the model.
    pub fn offers(&self, tool: &str) -> bool {
        self.allowed_tools.as_ref().is_none_or(|a| a.iter().any(|t| t == tool))
    }
}

/// Whether the URL's host is on the operator's allowlist: `*` allows any; `example.com` allows
/// that host and its subdomains.
pub fn host_allowed(url: &str, allowed_hosts: &[String]) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let ok = allowed_hosts.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a == "*" || host == a || host.ends_with(&format!(".{a}"))
    });
    if ok { Ok(()) } else { Err(format!("host {host:?} is not on the operator's allowlist of tool hosts (agents.allowed_hosts)")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> AgentSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn approval_follows_openai_rules() {
        let a: Approval = serde_json::from_value(json!("never")).unwrap();
        assert!(!a.required("x"));
        assert!(Approval::default().required("x"));
        let a: Approval = serde_json::from_value(json!({"never": {"tool_names": ["add"]}})).unwrap();
        assert!(!a.required("add"));
        assert!(a.required("rm"));
        let a: Approval = serde_json::from_value(json!({"always": {"tool_names": ["rm"]}})).unwrap();
        assert!(a.required("rm"));
        assert!(!a.required("add"));
        assert!(serde_json::from_value::<Approval>(json!("sometimes")).is_err());
    }

    #[test]
    fn checks_name_the_field() {
        let hosts = vec!["tools.example.com".to_string()];
        let ok = spec(json!({"model": "chat", "tools": [
            {"type": "function", "name": "lookup"},
            {"type": "mcp", "server_label": "calc", "server_url": "https://mcp.tools.example.com/mcp", "headers": {"Authorization": "Bearer x"}}]}));
        ok.check(&hosts, false).unwrap();
        let field = |v: Value| match spec(v).check(&hosts, false) {
            Err(AgentError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(json!({"model": "agent:x"})), "model");
        assert_eq!(field(json!({"model": "chat", "limits": {"max_steps": 0}})), "limits.max_steps");
        assert_eq!(
            field(json!({"model": "chat", "tools": [{"type": "mcp", "server_label": "c", "server_url": "https://evil.com/mcp"}]})),
            "tools[0].server_url"
        );
        assert_eq!(
            field(json!({"model": "chat", "tools": [{"type": "mcp", "server_label": "c", "server_url": "http://127.0.0.1:9/mcp"}]})),
            "tools[0].server_url"
        );
        assert_eq!(field(json!({"model": "chat", "tools": [{"type": "function", "name": "a b"}]})), "tools[0].name");
        assert_eq!(
            field(json!({"model": "chat", "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "a"}]})),
            "tools[1]"
        );
        let both = json!({"model": "chat", "tools": [{"type": "mcp", "server_label": "c", "server_url": "https://tools.example.com/m", "command": ["x"]}]});
        assert_eq!(field(both), "tools[0]");
        assert_eq!(field(json!({"model": "chat", "tools": [{"type": "mcp", "server_label": "c"}]})), "tools[0]");
        let env =
            json!({"model": "chat", "tools": [{"type": "mcp", "server_label": "c", "command": ["x"], "env": {"AIPLUS_SECRET_KEY": "k"}}]});
        assert_eq!(field(env), "tools[0].env.AIPLUS_SECRET_KEY");
        spec(json!({"model": "chat", "tools": [{"type": "mcp", "server_label": "c", "command": ["python3", "server.py"]}]}))
            .check(&[], false)
            .unwrap();
        assert!(serde_json::from_value::<AgentSpec>(json!({"model": "m", "tools": [{"type": "web_search"}]})).is_err());
        assert!(serde_json::from_value::<AgentSpec>(json!({"model": "m", "colour": 1})).is_err());
    }

    #[test]
    fn allowlist_matches_hosts_and_subdomains() {
        let a = vec!["example.com".to_string()];
        assert!(host_allowed("https://example.com/x", &a).is_ok());
        assert!(host_allowed("https://a.example.com/x", &a).is_ok());
        assert!(host_allowed("https://badexample.com/x", &a).is_err());
        assert!(host_allowed("https://anything.org", &["*".into()]).is_ok());
        assert!(host_allowed("http://127.0.0.1:8000/mcp", &["127.0.0.1".into()]).is_ok());
    }
}
