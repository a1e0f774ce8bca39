//! A model server is an online-inference job like any other: llama.cpp's server (the pinned
//! `xllamacpp` wheel) with a built-in GGUF, installed by `aiplus models fetch`, placed by the
//! scheduler and run by the local executor in its sandbox, answers OpenAI's chat API on its
//! port; cancelling the job stops it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    SMALL_MODEL as MODEL, Server, chat_models_dir, chat_until_served, fetch_small_model, register_cpu_cluster_beside, signals, temp_dir,
    wait_cancelled,
};
use serde_json::{Value, json};
/// The SHA-256 of the small model's GGUF file (pinned in `models::catalog`).
const SMOL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_model_server_runs_as_a_sandboxed_online_inference_job_and_answers_chat() {
    let data = temp_dir("model-server");
    let installed = fetch_small_model();
    let models_dir = chat_models_dir();
    // This tenant's jobs see the installed artifacts (public, pinned weights) read-only
    // because the operator shows them; the platform's own replicas see them without asking.
    let cfg = data.with_extension("toml");
    let shown = [signals(&data), models_dir.clone()].map(|p| format!("{:?}", p.display().to_string())).join(", ");
    std::fs::write(&cfg, format!("[gateway]\nallow_local_upstreams = true\n[executor.local]\nread_only = [{shown}]\n")).unwrap();
    let s = Server::start_with(&data, &["--config", cfg.to_str().unwrap()]);

    let port = free_port();
    let server = models::ModelServer {
        name: MODEL.into(),
        engine: models::Engine::LlamaCpp,
        gguf: models_dir.join(MODEL).join(models::catalog::GGUF_FILE),
        engine_dir: installed["engine"].as_str().unwrap().into(),
        python: "python3".into(),
        port,
        threads: 1,
        ctx_tokens: 2048,
        memory_mib: 512,
        gpus: 0,
        regions: vec![],
        action_area: None,
    };
    let (status, job) = s.submit(&serde_json::to_value(server.job_spec().unwrap()).unwrap());
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["spec"]["kind"], "online_inference");
    let id = job["id"].as_str().unwrap().to_string();

    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !http.get(server.health_url()).send().is_ok_and(|r| r.status().is_success()) {
        let (_, j) = s.get(&format!("/api/v1/jobs/{id}"));
        assert!(
            Instant::now() < deadline && !["failed", "lost", "cancelled"].contains(&j["state"].as_str().unwrap_or("")),
            "not healthy: {j}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(s.get(&format!("/api/v1/jobs/{id}")).1["state"], "running");

    let r = http
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let answer: Value = r.json().unwrap();
    assert_eq!(answer["model"], MODEL);
    assert!(!answer["choices"][0]["message"]["content"].as_str().unwrap_or("").is_empty(), "{answer}");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() >= 1);

    // Through the gateway, log-probabilities pass both ways, on chat and on completions.
    let (status, body) =
        s.put(&format!("/api/v1/models/{MODEL}"), &json!({"deployment": [{"id": "replica-1", "base_url": server.base_url()}]}));
    assert_eq!(status, 201, "{body}");
    let key = s.key("acme", &json!({}));
    let gw = |path: &str, body: Value| -> Value {
        let r = http.post(format!("{}/v1/{path}", s.url)).bearer_auth(key["secret"].as_str().unwrap()).json(&body).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().unwrap()
    };
    let chat = gw(
        "chat/completions",
        json!({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4,
                                             "logprobs": true, "top_logprobs": 2}),
    );
    let content = chat["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert!(!content.is_empty() && content.len() <= 4, "{chat}");
    assert!(content.iter().all(|t| t["logprob"].as_f64().unwrap() <= 0.0 && t["top_logprobs"].as_array().unwrap().len() == 2), "{chat}");
    let done = gw("completions", json!({"model": MODEL, "prompt": "The capital of France is", "max_tokens": 3, "logprobs": 2}));
    assert!(!done["choices"][0]["logprobs"].is_null(), "{done}");

    // Cancelling the job stops the server.
    let (status, _) = s.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}));
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(server.health_url()).timeout(Duration::from_secs(1)).send().is_ok() {
        assert!(Instant::now() < deadline, "the server still answers after its job was cancelled");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = s.client().get(format!("{}/api/v1/jobs/{id}/logs", s.url)).send().unwrap().text().unwrap();
    assert!(log.contains(&format!("aiplus-llama: listening http://127.0.0.1:{port} model {MODEL}")), "{log}");
}

/// Fetches the small model and starts a server on a fresh data directory that uses it, on the
/// built-in network or on `network`.
fn server_with_models(tag: &str, network: Option<&std::path::Path>) -> (Server, std::path::PathBuf) {
    let data = temp_dir(tag);
    fetch_small_model();
    let dir = chat_models_dir();
    let mut env = vec![("AIPLUS_MODELS_DIR", dir.to_str().unwrap())];
    if let Some(n) = network {
        env.push(("AIPLUS_NETWORK", n.to_str().unwrap()));
    }
    let s = Server::start_with_env(&data, &[], &env);
    (s, data)
}

/// The built-in network without its CPU pools, written beside `data`: CPU work then runs only
/// on the clusters a test registers.
fn gpu_only_network(data: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../compute/data/china-hubs.toml")).unwrap();
    let kept: Vec<&str> = text.split("\n[[").filter(|chunk| !chunk.starts_with("cluster.node_pool]]\nname = \"cpu-32c\"")).collect();
    assert!(kept.len() < text.split("\n[[").count(), "the built-in network has CPU pools to remove");
    // CPU-only jobs may use a GPU node's spare cores (half of an idle node's), so the GPU
    // nodes here get one core each: none to spare for a replica.
    let kept = kept.join("\n[[");
    let no_spare: Vec<String> =
        kept.lines().map(|l| if l.starts_with("cpu_milli = ") { "cpu_milli = 1000".to_string() } else { l.to_string() }).collect();
    let path = data.with_extension("network.toml");
    std::fs::write(&path, no_spare.join("\n")).unwrap();
    path
}

#[test]
fn a_deployed_model_is_served_from_its_replica_and_comes_back_when_its_process_dies() {
    let (s, data) = server_with_models("model-deploy", None);
    let body = json!({"model": MODEL, "replicas": 1, "ctx_tokens": 2048, "memory_mib": 512});
    let (status, view) = s.put("/api/v1/model-deployments/smol", &body);
    assert_eq!(status, 201, "{view}");
    let key = s.key("acme", &json!({}));
    let secret = key["secret"].as_str().unwrap().to_string();
    // Until its replica runs and answers health: 503 model_loading, at once.
    let answer = chat_until_served(&s, &secret, "smol", &[503]);
    assert_eq!(answer["model"], "smol");

    // The replica is an online-inference job of the platform, in a CPU pool of the built-in
    // network, on the cluster the scheduler chose.
    let (_, d) = s.get("/api/v1/model-deployments/smol");
    let replica = d["replicas"][0].clone();
    assert_eq!((replica["state"].as_str(), replica["healthy"].as_bool()), (Some("running"), Some(true)), "{d}");
    let (_, job) = s.get(&format!("/api/v1/jobs/{}", replica["job_id"].as_str().unwrap()));
    assert_eq!(
        (job["spec"]["kind"].as_str(), job["tenant"].as_str(), job["state"].as_str()),
        (Some("online_inference"), Some("aiplus"), Some("running"))
    );
    assert_eq!(job["placement"]["pool"], "cpu-32c", "{job}");
    assert_eq!(job["placement"]["cluster"], replica["cluster"], "{job}");

    // Its process dies: the gateway answers 503 at once meanwhile (the dead replica may still
    // be routed to until the next health check: then too), and a new replica serves.
    let port = replica["port"].as_u64().unwrap();
    let killed =
        Command::new("pkill").args(["-KILL", "-f", &format!("^python3 .*aiplus_llama_server.py .*--port {port} ")]).status().unwrap();
    assert!(killed.success(), "the replica's process was found");
    let answer = chat_until_served(&s, &secret, "smol", &[503]);
    assert_eq!(answer["model"], "smol");
    let (_, d) = s.get("/api/v1/model-deployments/smol");
    assert_ne!(d["replicas"][0]["job_id"], replica["job_id"], "a new replica: {d}");
    let (_, old) = s.get(&format!("/api/v1/jobs/{}", replica["job_id"].as_str().unwrap()));
    assert_eq!(old["state"], "failed", "{old}");

    // Undeployed: its job is cancelled and the model is gone.
    let r = s.client().delete(format!("{}/api/v1/model-deployments/smol", s.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&secret)
        .json(&json!({"model": "smol", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let id = d["replicas"][0]["job_id"].as_str().unwrap().to_string();
    wait_cancelled(&s, &id);
    let _ = std::fs::remove_dir_all(&data);
}

/// Two replicas on two clusters in two hubs (each cluster has room for one): a tenant whose
/// regions name one hub is only ever served by the replica there; a tenant without regions is
/// served by both.
#[test]
fn a_tenant_restricted_to_one_region_only_reaches_the_replica_there() {
    let data = temp_dir("model-regions-net");
    let (s, data2) = server_with_models("model-regions", Some(&gpu_only_network(&data)));
    let hub_a = register_cpu_cluster_beside(&s, "zhangjiakou", "cpu-a", 1, 1000);
    let hub_b = register_cpu_cluster_beside(&s, "tianfu", "cpu-b", 1, 1000);
    assert_ne!(hub_a, hub_b);
    let body = json!({"model": MODEL, "replicas": 2, "threads": 1, "ctx_tokens": 2048, "memory_mib": 512});
    assert_eq!(s.put("/api/v1/model-deployments/smol", &body).0, 201);
    let deadline = Instant::now() + Duration::from_secs(120);
    let by_cluster = loop {
        let (_, d) = s.get("/api/v1/model-deployments/smol");
        let ready: Vec<(String, String)> = d["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["healthy"] == true)
            .map(|r| (r["cluster"].as_str().unwrap().to_string(), r["job_id"].as_str().unwrap().to_string()))
            .collect();
        if ready.len() == 2 {
            break ready.into_iter().collect::<std::collections::BTreeMap<_, _>>();
        }
        assert!(Instant::now() < deadline, "two replicas never became healthy: {d}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(by_cluster.keys().collect::<Vec<_>>(), ["cpu-a", "cpu-b"], "one replica per cluster");

    let gov = s.key("gov", &json!({}));
    let (status, body) = s.put("/api/v1/tenants/gov", &json!({"regions": [format!("hub:{hub_a}")]}));
    assert_eq!(status, 200, "{body}");
    let acme = s.key("acme", &json!({}));
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    for key in [&gov, &acme] {
        for _ in 0..6 {
            let r = http
                .post(format!("{}/v1/chat/completions", s.url))
                .bearer_auth(key["secret"].as_str().unwrap())
                .json(&json!({"model": "smol", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
    }
    let served = |tenant: &str| -> std::collections::BTreeSet<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, usage) = s.get(&format!("/api/v1/usage?tenant={tenant}&pillar=gateway"));
            let events: Vec<&Value> = usage.as_array().unwrap().iter().filter(|u| u["usage"]["endpoint"] == "chat.completions").collect();
            if events.len() >= 6 || Instant::now() > deadline {
                assert_eq!(events.len(), 6, "{usage}");
                return events.iter().map(|u| u["usage"]["refs"]["deployment"].as_str().unwrap().to_string()).collect();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(served("gov"), [by_cluster["cpu-a"].clone()].into(), "gov is served in its region only");
    assert_eq!(served("acme"), by_cluster.values().cloned().collect(), "an unrestricted tenant is served by both");
    // Jobs outlive their server by design (a restart re-attaches them): stop the replicas.
    let r = s.client().delete(format!("{}/api/v1/model-deployments/smol", s.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);
    for id in by_cluster.values() {
        wait_cancelled(&s, id);
    }
    for d in [data, data2] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Any GGUF file by path, pinned by its SHA-256: the server checks and installs it, then serves
/// it like a built-in model; a file whose digest differs is refused and the deployment says why;
/// a path that is not a file is refused at once, naming the field.
#[test]
fn a_gguf_file_given_by_path_and_digest_is_installed_and_served() {
    fetch_small_model();
    let shared = chat_models_dir();
    let installed = shared.join(format!("gguf-{SMOL_SHA256}"));
    let _ = std::fs::remove_dir_all(&installed);
    let data = temp_dir("model-gguf");
    let dir = shared.to_str().unwrap();
    let s = Server::start_with_env(&data, &[], &[("AIPLUS_MODELS_DIR", dir), ("AIPLUS_MODELS_FETCH", "true")]);
    let file = shared.join(MODEL).join(models::catalog::GGUF_FILE);
    let body = |sha: &str| json!({"model": "smol-local", "gguf": {"path": file, "sha256": sha}, "ctx_tokens": 2048, "memory_mib": 512});

    let (status, problem) =
        s.put("/api/v1/model-deployments/nowhere", &json!({"model": "x", "gguf": {"path": "/nonexistent/m.gguf", "sha256": SMOL_SHA256}}));
    assert_eq!((status, problem["field"].as_str()), (422, Some("gguf.path")), "{problem}");

    assert_eq!(s.put("/api/v1/model-deployments/custom", &body(SMOL_SHA256)).0, 201);
    assert_eq!(s.put("/api/v1/model-deployments/tampered", &body(&"0".repeat(64))).0, 201);
    let secret = s.key("acme", &json!({}))["secret"].as_str().unwrap().to_string();
    let answer = chat_until_served(&s, &secret, "custom", &[503]);
    assert_eq!(answer["model"], "custom");
    assert!(installed.join(models::catalog::GGUF_FILE).is_file(), "installed under its digest");

    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let (_, v) = s.get("/api/v1/model-deployments/tampered");
        if v["install_error"].is_string() {
            break v;
        }
        assert!(Instant::now() < deadline, "no install error shown: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(view["install_error"].as_str().unwrap().contains("SHA-256 is b179c952"), "{view}");
    assert_eq!(view["replicas"], json!([]), "nothing runs on a file that failed its check");

    let (_, d) = s.get("/api/v1/model-deployments/custom");
    let id = d["replicas"][0]["job_id"].as_str().unwrap().to_string();
    for name in ["custom", "tampered"] {
        assert_eq!(s.client().delete(format!("{}/api/v1/model-deployments/{name}", s.url)).send().unwrap().status().as_u16(), 204);
    }
    wait_cancelled(&s, &id);
    let _ = std::fs::remove_dir_all(&data);
}

/// vLLM on GPUs: the replica is a GPU job, placed in a GPU pool and run by the executor. This
/// machine has no GPU and no vLLM, so its process fails at once (no module `vllm`); the
/// deployment backs off and the gateway answers 503 `model_loading` meanwhile, never hanging.
#[test]
fn a_vllm_replica_is_placed_on_gpus_and_fails_cleanly_where_vllm_is_missing() {
    let (s, data) = server_with_models("model-vllm", None);
    let body = json!({"model": MODEL, "engine": "vllm", "gpus": 1, "ctx_tokens": 2048, "memory_mib": 512});
    let (status, problem) = s.put("/api/v1/model-deployments/smolv", &json!({"model": MODEL, "engine": "vllm"}));
    assert_eq!((status, problem["field"].as_str()), (422, Some("gpus")), "{problem}");
    assert_eq!(s.put("/api/v1/model-deployments/smolv", &body).0, 201);
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let (_, jobs) = s.get("/api/v1/jobs?tenant=aiplus");
        let failed = jobs.as_array().unwrap().iter().find(|j| j["name"] == "model smolv" && j["state"] == "failed").cloned();
        if let Some(j) = failed {
            break j;
        }
        assert!(Instant::now() < deadline, "no failed replica: {jobs}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(job["spec"]["gpus"], 1, "{job}");
    assert_eq!(job["placement"]["gpus"].as_array().map(Vec::len), Some(1), "placed on a GPU: {job}");
    let id = job["id"].as_str().unwrap();
    let log = s.client().get(format!("{}/api/v1/jobs/{id}/logs", s.url)).send().unwrap().text().unwrap();
    assert!(log.contains("No module named 'vllm'"), "{log}");

    let secret = s.key("acme", &json!({}))["secret"].as_str().unwrap().to_string();
    let asked = Instant::now();
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(&secret)
        .json(&json!({"model": "smolv", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().unwrap().contains("model_loading"));
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert_eq!(s.client().delete(format!("{}/api/v1/model-deployments/smolv", s.url)).send().unwrap().status().as_u16(), 204);
    let _ = std::fs::remove_dir_all(&data);
}

/// Any GGUF file by URL with its SHA-256 and size: the server downloads it (here from a mirror
/// on this machine, which `gateway.allow_local_upstreams` lets it reach), checks it and serves it.
#[test]
fn a_gguf_file_given_by_url_and_digest_is_downloaded_and_served() {
    fetch_small_model();
    let shared = chat_models_dir();
    let data = temp_dir("model-gguf-url");
    // A models directory of its own, with the engine but without the file, so it is downloaded.
    let models = data.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let engine = shared.join(models::catalog::LLAMA_ENGINE_DIR);
    assert!(Command::new("cp").arg("-r").arg(&engine).arg(&models).status().unwrap().success());
    let mirror = data.join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let file = shared.join(MODEL).join(models::catalog::GGUF_FILE);
    std::os::unix::fs::symlink(&file, mirror.join("smol.gguf")).unwrap();
    let port = free_port();
    let mut http = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(&mirror)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, "[gateway]\nallow_local_upstreams = true\n").unwrap();
    let dir = models.to_str().unwrap();
    let s =
        Server::start_with_env(&data, &["--config", cfg.to_str().unwrap()], &[("AIPLUS_MODELS_DIR", dir), ("AIPLUS_MODELS_FETCH", "true")]);
    let size = std::fs::metadata(&file).unwrap().len();
    let gguf = json!({"url": format!("http://127.0.0.1:{port}/smol.gguf"), "sha256": SMOL_SHA256, "size_bytes": size});
    let (status, v) =
        s.put("/api/v1/model-deployments/mirrored", &json!({"model": "smol-mirror", "gguf": gguf, "ctx_tokens": 2048, "memory_mib": 512}));
    assert_eq!(status, 201, "{v}");
    let secret = s.key("acme", &json!({}))["secret"].as_str().unwrap().to_string();
    assert_eq!(chat_until_served(&s, &secret, "mirrored", &[503])["model"], "mirrored");
    let installed = models.join(format!("gguf-{SMOL_SHA256}")).join(models::catalog::GGUF_FILE);
    assert_eq!(std::fs::metadata(&installed).unwrap().len(), size, "downloaded whole");

    let (_, d) = s.get("/api/v1/model-deployments/mirrored");
    let id = d["replicas"][0]["job_id"].as_str().unwrap().to_string();
    assert_eq!(s.client().delete(format!("{}/api/v1/model-deployments/mirrored", s.url)).send().unwrap().status().as_u16(), 204);
    wait_cancelled(&s, &id);
    let _ = http.kill();
    let _ = http.wait();
    let _ = std::fs::remove_dir_all(&data);
}
