//! Agents per tenant, versioned: a declaration that differs from the newest version adds the
//! next one, an identical one changes nothing (a `PUT` may be retried), and a request may pin a
//! version (`agent:<id>@<version>`). MCP servers' header values (their credentials) are sealed
//! at rest with the platform's key and never shown back: a view shows `***`, and a declaration
//! that sends `***` back keeps the value it had.

use std::sync::Arc;

use serde::Serialize;

use crate::AgentError;
use crate::spec::{AgentSpec, Tool, check_name};

/// What a header value reads as in a view, and means "keep it" in a declaration.
pub const HIDDEN: &str = "***";
/// Most agents a listing returns.
pub const MAX_LIST: i64 = 1000;

/// One version of an agent, with its header values open (for the loop; never serialised).
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    pub tenant: String,
    pub id: String,
    pub version: i64,
    pub created_ms: i64,
    pub spec: AgentSpec,
}

/// An agent as the API shows it: header values hidden.
#[derive(Clone, Debug, Serialize)]
pub struct AgentView {
    pub object: &'static str,
    pub id: String,
    pub tenant: String,
    pub version: i64,
    pub created_ms: i64,
    /// The name clients use: `agent:<id>`.
    pub model_name: String,
    #[serde(flatten)]
    pub spec: AgentSpec,
}

impl Agent {
    pub fn view(&self) -> AgentView {
        let mut spec = self.spec.clone();
        for_each_header(&mut spec, |_, _, v| *v = HIDDEN.to_string());
        AgentView {
            object: "agent",
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            version: self.version,
            created_ms: self.created_ms,
            model_name: format!("agent:{}", self.id),
            spec,
        }
    }
}

/// Each secret of a declaration: MCP headers (by name) and stdio servers' environment (by
/// `env:` and name), with its server's label.
fn for_each_header(spec: &mut AgentSpec, mut f: impl FnMut(&str, &str, &mut String)) {
    for t in &mut spec.tools {
        if let Tool::Mcp(s) = t {
            for (k, v) in &mut s.headers {
                f(&s.server_label, k, v);
            }
            for (k, v) in &mut s.env {
                f(&s.server_label, &format!("env:{k}"), v);
            }
        }
    }
}

/// Which hosts agents' MCP servers may be on.
#[derive(Clone, Debug, Default)]
pub struct HostRule {
    /// Host names (and their subdomains), or `*` for any.
    pub allowed_hosts: Vec<String>,
    /// Whether this host's own addresses may be reached (tests, a sidecar).
    pub allow_local: bool,
    /// Whether agents may run stdio MCP servers (programs, in the job sandbox).
    pub allow_stdio: bool,
}

pub struct Agents {
    store: store::Store,
    sealer: Arc<identity::Sealer>,
    clock: Arc<dyn vocab::Clock>,
    pub hosts: HostRule,
}

/// What `agent:<id>[@<version>]` names, if the model is an agent at all.
pub fn parse_model(model: &str) -> Option<Result<(String, Option<i64>), AgentError>> {
    let rest = model.strip_prefix("agent:")?;
    let (id, version) = match rest.split_once('@') {
        Some((id, v)) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => (id, Some(n)),
            _ => return Some(Err(AgentError::Invalid { field: "model".into(), reason: format!("{v:?} is not a version number") })),
        },
        None => (rest, None),
    };
    Some(check_name("model", id).map(|()| (id.to_string(), version)))
}

fn spec_server<'a>(servers: &'a [crate::spec::McpServer], label: &str) -> Option<&'a crate::spec::McpServer> {
    servers.iter().find(|s| s.server_label == label)
}

fn seal_context(tenant: &str, id: &str, label: &str, header: &str) -> String {
    format!("agent-header:{tenant}/{id}/{label}/{header}")
}

impl Agents {
    pub fn new(store: store::Store, sealer: Arc<identity::Sealer>, clock: Arc<dyn vocab::Clock>, hosts: HostRule) -> Self {
        Agents { store, sealer, clock, hosts }
    }

    /// Declares (or changes) a tenant's agent. Returns the agent and whether a version was
    /// added.
    pub async fn put(&self, tenant: &str, id: &str, mut spec: AgentSpec) -> Result<(Agent, bool), AgentError> {
        check_name("id", id)?;
        let current = self.find(tenant, id, None).await?;
        // `***` keeps the value the header had; a header that had none cannot be kept.
        let new_servers: Vec<crate::spec::McpServer> = spec.mcp_servers().cloned().collect();
        let mut missing = None;
        for_each_header(&mut spec, |label, name, v| {
            if v == HIDDEN {
                // Only for a server that still points where it did: a `***` sent with a new URL
                // or program would hand the stored secret to it.
                let same = |s: &&crate::spec::McpServer| {
                    s.server_label == label
                        && spec_server(&new_servers, label).is_some_and(|n| n.server_url == s.server_url && n.command == s.command)
                };
                let old = current.as_ref().and_then(|a| {
                    let server = a.spec.mcp_servers().find(same)?;
                    match name.strip_prefix("env:") {
                        Some(var) => server.env.get(var).cloned(),
                        None => server.headers.get(name).cloned(),
                    }
                });
                match old {
                    Some(old) => *v = old,
                    None => missing = Some(format!("{label}.headers.{name}")),
                }
            }
        });
        if let Some(field) = missing {
            return Err(AgentError::Invalid { field, reason: format!("{HIDDEN:?} keeps a stored value, and there is none") });
        }
        spec.check(&self.hosts.allowed_hosts, self.hosts.allow_local)?;
        if !self.hosts.allow_stdio
            && let Some(i) = spec.tools.iter().position(|t| matches!(t, Tool::Mcp(s) if s.is_stdio()))
        {
            return Err(AgentError::Invalid {
                field: format!("tools[{i}].command"),
                reason: "the operator has not allowed stdio MCP servers (agents.allow_stdio)".into(),
            });
        }
        if let Some(a) = current
            && a.spec == spec
        {
            return Ok((a, false));
        }
        let mut sealed = spec.clone();
        let mut failed = None;
        for_each_header(&mut sealed, |label, name, v| match self.sealer.seal(&seal_context(tenant, id, label, name), v) {
            Ok(s) => *v = s,
            Err(e) => failed = Some(e.to_string()),
        });
        if let Some(reason) = failed {
            return Err(AgentError::Corrupt { id: id.into(), reason });
        }
        let doc = serde_json::to_string(&sealed).map_err(|e| AgentError::Corrupt { id: id.into(), reason: e.to_string() })?;
        let created_ms = self.clock.now_ms();
        let version = self.store.add_agent_version(tenant, id, created_ms, &doc).await?;
        Ok((Agent { tenant: tenant.into(), id: id.into(), version, created_ms, spec }, true))
    }

    /// A version of a tenant's agent (the newest by default); another tenant's is not found.
    pub async fn get(&self, tenant: &str, id: &str, version: Option<i64>) -> Result<Agent, AgentError> {
        let what = match version {
            Some(v) => format!("{id}@{v}"),
            None => id.to_string(),
        };
        self.find(tenant, id, version).await?.ok_or(AgentError::NotFound { what: "agent", id: what })
    }

    async fn find(&self, tenant: &str, id: &str, version: Option<i64>) -> Result<Option<Agent>, AgentError> {
        self.store.agent(tenant, id, version).await?.map(|r| self.open(r)).transpose()
    }

    fn open(&self, r: store::AgentRow) -> Result<Agent, AgentError> {
        let corrupt = |reason: String| AgentError::Corrupt { id: format!("{}/{}@{}", r.tenant, r.id, r.version), reason };
        let mut spec: AgentSpec = serde_json::from_str(&r.doc).map_err(|e| corrupt(e.to_string()))?;
        let mut failed = None;
        for_each_header(&mut spec, |label, name, v| match self.sealer.open(&seal_context(&r.tenant, &r.id, label, name), v) {
            Ok(s) => *v = s,
            Err(e) => failed = Some(e.to_string()),
        });
        if let Some(reason) = failed {
            return Err(corrupt(reason));
        }
        Ok(Agent { tenant: r.tenant, id: r.id, version: r.version, created_ms: r.created_ms, spec })
    }

    /// The newest version of each agent, of one tenant or (for operators) all.
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<Agent>, AgentError> {
        self.store.agents(tenant, MAX_LIST).await?.into_iter().map(|r| self.open(r)).collect()
    }

    /// An agent's versions, newest first: (version, created_ms).
    pub async fn versions(&self, tenant: &str, id: &str) -> Result<Vec<(i64, i64)>, AgentError> {
        let v = self.store.agent_versions(tenant, id).await?;
        if v.is_empty() {
            return Err(AgentError::NotFound { what: "agent", id: id.into() });
        }
        Ok(v)
    }

    pub async fn delete(&self, tenant: &str, id: &str) -> Result<(), AgentError> {
        match self.store.delete_agent(tenant, id).await? {
            true => Ok(()),
            false => Err(AgentError::NotFound { what: "agent", id: id.into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_model_names_parse() {
        assert_eq!(parse_model("chat").map(|r| r.ok()), None);
        assert_eq!(parse_model("agent:helper").unwrap().unwrap(), ("helper".to_string(), None));
        assert_eq!(parse_model("agent:helper@3").unwrap().unwrap(), ("helper".to_string(), Some(3)));
        assert!(parse_model("agent:helper@0").unwrap().is_err());
        assert!(parse_model("agent:helper@x").unwrap().is_err());
        assert!(parse_model("agent:a/b").unwrap().is_err());
    }
}
