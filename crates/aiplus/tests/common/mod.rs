//! What the black-box tests share: the real binary on port 0, and jobs that wait for a signal.

#![allow(dead_code, reason = "each test binary uses part of this module")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_aiplus");

/// The tenant every test server registers on start, and its jobs are submitted for.
pub const TENANT: &str = "acme";

pub struct Server {
    pub child: Child,
    pub url: String,
    /// The operator token the server wrote to `<data>/operator-token` on its first start
    /// (instances that share a database share the first one's).
    pub token: String,
}

impl Server {
    /// Starts the binary with a config that shows the jobs' [`signals`] directory to the
    /// local sandbox.
    pub fn start(data: &Path) -> Self {
        let cfg = data.with_extension("toml");
        std::fs::write(&cfg, sandbox_config(data)).unwrap();
        Self::start_with(data, &["--config", cfg.to_str().unwrap()])
    }

    /// Starts the binary with extra `serve` arguments (e.g. `--config`). Its default chat model
    /// is off and it downloads no model (a test that wants either turns it on in `env`).
    pub fn start_with(data: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(data, extra, &[])
    }

    /// [`Server::start_with`], with environment variables set after the tests' own defaults.
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .env("AIPLUS_LOG", "warn")
            .env("AIPLUS_EMBED_DIR", model_dir())
            .env("AIPLUS_MODELS_CHAT", "")
            .env("AIPLUS_MODELS_FETCH", "false")
            .env("AIPLUS_EVAL_SUITES", Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites"))
            .env_remove("AIPLUS_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url =
            line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
        let token = std::fs::read_to_string(data.join("operator-token")).map(|t| t.trim().to_string()).unwrap_or_default();
        let s = Server { child, url, token };
        if !s.token.is_empty() {
            s.register_tenant(TENANT);
        }
        s
    }

    /// Registers a tenant (an existing one is fine).
    pub fn register_tenant(&self, id: &str) {
        let (status, body) = self.post("/api/v1/tenants", &json!({"id": id}));
        assert!(status == 201 || status == 409, "registering {id}: {status} {body}");
    }

    /// A client that sends the operator token with every request.
    pub fn client(&self) -> reqwest::blocking::Client {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", self.token).parse().unwrap());
        reqwest::blocking::Client::builder().default_headers(h).timeout(std::time::Duration::from_secs(60)).build().unwrap()
    }

    /// Makes an API key for `tenant` (registered first) with the given body (role, scopes,
    /// limits) and returns the answer, which carries the secret.
    pub fn key(&self, tenant: &str, body: &Value) -> Value {
        self.register_tenant(tenant);
        let r = self.client().post(format!("{}/api/v1/keys", self.url)).header("x-aiplus-tenant", tenant).json(body).send().unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap_or(Value::Null);
        assert_eq!(status, 201, "{v}");
        v
    }

    /// Submits a job for [`TENANT`], as an operator naming the tenant.
    pub fn submit(&self, body: &Value) -> (u16, Value) {
        let r = self.client().post(format!("{}/api/v1/jobs", self.url)).header("x-aiplus-tenant", TENANT).json(body).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// A GET as the operator.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client().get(format!("{}{path}", self.url)).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// A POST as the operator.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.client().post(format!("{}{path}", self.url)).json(body).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    /// A PUT as the operator.
    pub fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.client().put(format!("{}{path}", self.url)).json(body).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One directory of llama.cpp's server and the built-in chat models for every test that runs
/// them, fetched by the first that needs it and kept for later runs.
pub fn chat_models_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aiplus-models/chat");
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// A fresh, empty directory for one test.
/// One copy of the embedded model for every test server (fetched by the first that needs it),
/// instead of one download per data directory. The embed crate's tests use the same place.
pub fn model_dir() -> PathBuf {
    match std::env::var_os("AIPLUS_MODEL_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aiplus-models/all-MiniLM-L6-v2"),
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aiplus-bb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The directory of files that jobs wait for, beside the data directory (which jobs must not
/// see); the local sandbox shows it to them read-only through [`sandbox_config`].
pub fn signals(data: &Path) -> PathBuf {
    let d = data.with_extension("signals");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `[executor.local]` section that shows [`signals`] to sandboxed jobs.
pub fn sandbox_config(data: &Path) -> String {
    format!("[executor.local]\nread_only = [{:?}]\n", signals(data).display().to_string())
}

/// Lets every [`job`] of this data directory finish.
pub fn stop_jobs(data: &Path) {
    std::fs::write(signals(data).join("stop"), b"").unwrap();
}

/// A job that runs until [`stop_jobs`], then records that it ran (once per run): as a line
/// `ran <job id>` in its output and, where the engine lets it write outside its sandbox (Slurm,
/// Ray), as a line in `<data>/ran.txt`.
pub fn job(i: usize, data: &Path) -> Value {
    let script = "while [ ! -e \"$STOP\" ]; do sleep 0.05; done; echo \"ran $AIPLUS_JOB_ID\"; \
                  echo \"$AIPLUS_JOB_ID\" 2>/dev/null >> \"$RAN\" || :";
    json!({"name": format!("job-{i}"), "kind": "batch_inference", "gpus": 1, "gpu_milli": 100,
           "cpu_milli": 100, "memory_mib": 64, "duration_s": 3600, "origin_hub": "changsanjiao",
           "command": ["sh", "-c", script],
           "env": {"STOP": signals(data).join("stop").display().to_string(), "RAN": data.join("ran.txt").display().to_string()}})
}

/// How often job `id` ran on the local executor: its `ran` lines over all its attempts' logs.
pub fn local_runs(data: &Path, id: &str) -> usize {
    let Ok(attempts) = std::fs::read_dir(data.join("jobs").join(id)) else { return 0 };
    let want = format!("ran {id}");
    attempts
        .flatten()
        .filter_map(|a| std::fs::read_to_string(a.path().join("output.log")).ok())
        .map(|log| log.lines().filter(|l| *l == want).count())
        .sum()
}

/// Waits until every job in `ids` is in a final state; returns their states.
pub fn wait_all_final(s: &Server, ids: &[String]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let states: Vec<String> =
            ids.iter().map(|id| s.get(&format!("/api/v1/jobs/{id}")).1["state"].as_str().unwrap_or("?").to_string()).collect();
        if states.iter().all(|st| ["succeeded", "failed", "cancelled", "lost"].contains(&st.as_str())) {
            return states;
        }
        assert!(std::time::Instant::now() < deadline, "jobs did not finish: {states:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The spec fields of a cluster as the API returns it (it adds live-use fields).
pub fn cluster_spec(status: &Value) -> Value {
    let keys = [
        "id",
        "hub",
        "name_zh",
        "name_en",
        "province",
        "lat",
        "lon",
        "pue",
        "pue_source",
        "carbon_kg_per_kwh",
        "carbon_source",
        "green_share",
        "green_source",
        "tariff",
        "node_pool",
    ];
    Value::Object(keys.iter().filter(|k| !status[**k].is_null()).map(|k| (k.to_string(), status[*k].clone())).collect())
}

/// Registers cluster `id` where cluster `beside` is (its hub, province and facts), with
/// `nodes` CPU-only nodes of `cpu_milli` each; returns its hub.
pub fn register_cpu_cluster_beside(s: &Server, beside: &str, id: &str, nodes: u32, cpu_milli: u32) -> String {
    let mut c = cluster_spec(&s.get(&format!("/api/v1/clusters/{beside}")).1);
    c["id"] = json!(id);
    c["node_pool"] = json!([{"name": "cpu", "gpus_per_node": 0, "cpu_milli": cpu_milli, "memory_mib": 262144, "nodes": nodes,
        "source": "shaped like the most common CPU-only node of the openb trace (256 GiB)"}]);
    let (status, body) = s.post("/api/v1/clusters", &c);
    assert_eq!(status, 201, "{body}");
    c["hub"].as_str().unwrap().to_string()
}

/// The small built-in chat model the model-server tests run (98 MB, English).
pub const SMALL_MODEL: &str = "smollm2-135m-instruct";

/// `aiplus models fetch` of the small model into the tests' shared directory; what it printed.
pub fn fetch_small_model() -> Value {
    let out = Command::new(BIN).args(["models", "fetch", SMALL_MODEL, "--json", "--models-dir"]).arg(chat_models_dir()).output().unwrap();
    assert!(out.status.success(), "fetch: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Chats with `model` through the gateway until an answer comes, checking that every answer
/// meanwhile is a quick refusal (the model not ready, or its replica gone), never a hang.
pub fn chat_until_served(s: &Server, secret: &str, model: &str, allowed: &[u16]) -> Value {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let asked = Instant::now();
        let r = http
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(secret)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4}))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap_or(Value::Null);
        if status == 200 {
            return body;
        }
        assert!(allowed.contains(&status), "{status}: {body}");
        assert!(asked.elapsed() < Duration::from_secs(10), "a refusal took {:?}", asked.elapsed());
        assert!(Instant::now() < deadline, "never served: {status} {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits (up to 30 s) until job `id` is cancelled. A replica's job outlives its server by design
/// (a restart re-attaches it), so a test stops its replicas before the server goes.
pub fn wait_cancelled(s: &Server, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get(&format!("/api/v1/jobs/{id}")).1["state"] != "cancelled" {
        assert!(Instant::now() < deadline, "job {id} was not cancelled");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asks `f` every 50 ms until it answers, for at most `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "nothing came within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Hosts `bytes` as a file of the tenant whose data key is `key` (one chunk); returns its SHA-256.
pub fn host_file(s: &Server, key: &str, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(bytes).iter().map(|x| format!("{x:02x}")).collect();
    let c = s.client();
    let r = c.post(format!("{}/api/v1/uploads", s.url)).bearer_auth(key).json(&json!({"sha256": sha, "size_bytes": bytes.len()}));
    let up: Value = r.send().unwrap().json().unwrap();
    let id = up["id"].as_str().unwrap_or_else(|| panic!("no upload: {up}"));
    let r = c.put(format!("{}/api/v1/uploads/{id}/chunks/0", s.url)).bearer_auth(key).body(bytes.to_vec()).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c.post(format!("{}/api/v1/uploads/{id}/complete", s.url)).bearer_auth(key).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    sha
}
