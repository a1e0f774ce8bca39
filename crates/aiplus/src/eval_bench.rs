//! `aiplus eval bench`: how many items a second the evaluation harness itself sustains, asking a
//! zero-delay test double of a model (`eval::double::Constant`): planning every request,
//! asking it at bounded concurrency, caching each answer in the run's JSONL file, scoring and
//! reporting. A second pass answers everything from the cache, as a resumed run does.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use eval::prompt::{Asking, Endpoint, Method};
use eval::run::{Counts, Options, Spec};
use eval::suite::{Selection, Suite};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A suite's name in the suites directory, or the path of a suite directory.
    #[arg(long, default_value = "safetybench-zh")]
    suite: String,
    #[arg(long, env = "AIPLUS_EVAL_SUITES", default_value = "suites")]
    suites_dir: PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Examples before each question (default: the suite's).
    #[arg(long)]
    shots: Option<usize>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let suite = Suite::open(&crate::eval_cli::suite_dir(&a.suites_dir, &a.suite))?;
    let loaded = suite.load(&Selection::default())?;
    let shots = a.shots.unwrap_or(suite.manifest.shots);
    let dir = std::env::temp_dir().join(format!("aiplus-eval-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cache_file = dir.join("cache.jsonl");
    let _ = std::fs::remove_file(&cache_file);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let model = eval::double::Constant::new('B');
    let opts = Options { concurrency: a.concurrency, ..Options::default() };
    opts.validate()?;
    let asking = Asking { endpoint: Endpoint::Chat, method: Method::Logprobs, shots, answer_tokens: eval::prompt::ANSWER_TOKENS };
    let mut passes = Vec::new();
    for pass in ["fresh", "from_cache"] {
        let cache = eval::cache::FileCache::open(&cache_file)?;
        let started = Instant::now();
        let spec = Spec { suite: &suite, loaded: &loaded, model: "constant-b", cache_model: "constant-b", asking };
        let plan = eval::run::plan(&spec);
        let counts = Counts::default();
        let outcomes = rt.block_on(eval::run::run(&model, &cache, asking.endpoint, &plan, &opts, &counts, &|_| {}));
        cache.sync()?;
        let samples: Vec<_> = outcomes.iter().filter_map(|o| eval::report::sample(&loaded, asking, o)).collect();
        let report = eval::report::report(&suite, &loaded, "constant-b", Some(asking.method), shots, &samples);
        let secs = started.elapsed().as_secs_f64();
        let items = report.items as f64;
        passes.push(json!({"pass": pass, "items": report.items, "seconds": secs, "items_per_s": items / secs,
                           "accuracy": report.accuracy, "calls": counts.calls.load(std::sync::atomic::Ordering::Relaxed)}));
    }
    std::fs::remove_dir_all(&dir).context("removing the bench's cache")?;
    let out = json!({"suite": suite.manifest.name, "concurrency": a.concurrency, "shots": shots, "passes": passes});
    if a.json {
        return crate::client::print_json(&out);
    }
    for p in out["passes"].as_array().into_iter().flatten() {
        println!(
            "{:<11} {} items in {:.2} s: {:.0} items/s ({} calls)",
            p["pass"].as_str().unwrap_or("?"),
            p["items"],
            p["seconds"].as_f64().unwrap_or(0.0),
            p["items_per_s"].as_f64().unwrap_or(0.0),
            p["calls"]
        );
    }
    Ok(())
}
