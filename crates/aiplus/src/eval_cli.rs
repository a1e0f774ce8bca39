//! `aiplus eval`: runs a suite against a model a running server serves, through its gateway,
//! so every request is admitted, metered, limited and routed like any other, under an
//! evaluation tenant (`eval` unless told otherwise). The run's directory keeps the request
//! cache (a killed run started again resumes where it stopped), the per-sample log, the report
//! and its chart.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use eval::suite::{Selection, Suite};
use serde_json::{Value, json};

use crate::client;
use crate::eval_session::{Conn, Session, What};

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(clap::Subcommand, Debug)]
enum EvalCommand {
    /// Run a suite against a model: accuracy (or refusal rates, or bias scores) with standard
    /// errors overall and per subject, written to the run's directory as report.json,
    /// report.svg and samples.jsonl. Running it again resumes from the request cache.
    Run(Box<RunArgs>),
    /// List the suites of the suites directory.
    Suites(SuitesArgs),
    /// Run what an assessment profile asks (TC260-003's refusal and generated-content checks
    /// by default) and write a self-assessment report: per requirement the threshold, the
    /// measured value, pass or fail, and the samples it rests on. --attach-to puts the report
    /// on a filing, named by its SHA-256.
    Assess(Box<crate::eval_assess::AssessArgs>),
    /// Submit a run as a batch job on the compute network, placed and billed like any job of
    /// the evaluation tenant; the job's output is the run's report.
    Submit(Box<crate::eval_job::SubmitArgs>),
    /// Compare two runs on the same items (two versions of a model, or before and after a
    /// change) with McNemar's exact test; exits with an error when B dropped significantly.
    Compare(CompareArgs),
    /// Measure the harness itself: items per second against a zero-delay test double of a
    /// model, fresh and from the cache.
    Bench(crate::eval_bench::BenchArgs),
}

#[derive(clap::Args, Debug)]
struct SuitesArgs {
    /// Where suites are: one directory per suite, each with a suite.toml.
    #[arg(long, env = "AIPLUS_EVAL_SUITES", default_value = "suites")]
    suites_dir: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(flatten)]
    what: What,
    /// The run's directory (default: aiplus-eval/<suite>/<model>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct CompareArgs {
    /// The first run's directory (the baseline).
    a: PathBuf,
    /// The second run's directory.
    b: PathBuf,
    /// The p-value under which a drop is significant.
    #[arg(long, default_value_t = eval::compare::DEFAULT_ALPHA)]
    alpha: f64,
    #[arg(long)]
    json: bool,
}

/// Most samples a run's log may hold for a comparison.
const MAX_SAMPLES: usize = eval::suite::MAX_ITEMS;

fn read_samples(dir: &Path) -> anyhow::Result<Vec<eval::report::Sample>> {
    let path = dir.join("samples.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        if out.len() == MAX_SAMPLES {
            bail!("{}: more than {MAX_SAMPLES} samples", path.display());
        }
        out.push(serde_json::from_str(line).with_context(|| format!("{}: line {}", path.display(), n + 1))?);
    }
    Ok(out)
}

fn compare(a: CompareArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&a.alpha) || a.alpha == 0.0 {
        bail!("--alpha: a p-value threshold between 0 and 1");
    }
    let c = eval::compare::compare(&read_samples(&a.a)?, &read_samples(&a.b)?, a.alpha);
    if c.paired == 0 {
        bail!("the two runs share no scored item");
    }
    if a.json {
        client::print_json(&serde_json::to_value(&c)?)?;
    } else {
        println!("{} paired items: A {} → B {} ({:+.1} points)", c.paired, pct(c.accuracy_a), pct(c.accuracy_b), c.delta * 100.0);
        println!("only A right: {}, only B right: {}, McNemar exact p = {:.4}", c.a_only, c.b_only, c.p_value);
    }
    if c.significant_drop {
        bail!("B is significantly worse than A (p = {:.4} < {})", c.p_value, c.alpha);
    }
    Ok(())
}

pub(crate) fn suite_dir(suites_dir: &Path, suite: &str) -> PathBuf {
    let direct = PathBuf::from(suite);
    if direct.join("suite.toml").exists() { direct } else { suites_dir.join(suite) }
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    match args.command {
        EvalCommand::Run(a) => run(*a),
        EvalCommand::Suites(a) => suites(a),
        EvalCommand::Bench(a) => crate::eval_bench::run(a),
        EvalCommand::Compare(a) => compare(a),
        EvalCommand::Submit(a) => crate::eval_job::submit(*a),
        EvalCommand::Assess(a) => crate::eval_assess::run(*a),
    }
}

fn suites(a: SuitesArgs) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(&a.suites_dir).with_context(|| format!("reading {}", a.suites_dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("suite.toml").exists()).collect();
    dirs.sort();
    let mut rows = Vec::new();
    for d in dirs {
        let s = Suite::open(&d)?;
        let data = s.data_dir().exists();
        rows.push(json!({"name": s.manifest.name, "title": s.manifest.title, "format": format!("{:?}", s.manifest.format).to_lowercase(),
                         "licence": s.manifest.licence, "data_present": data, "dir": d.display().to_string()}));
    }
    if a.json {
        return client::print_json(&Value::Array(rows));
    }
    for r in rows {
        println!(
            "{:<24} {:<12} {:<20} {}",
            client::s(&r["name"]),
            client::s(&r["format"]),
            client::s(&r["licence"]),
            if r["data_present"] == json!(true) { "" } else { "(no data)" }
        );
    }
    Ok(())
}

/// The run directory's default: aiplus-eval/<what>/<model>.
pub(crate) fn default_out(what: &str, model: &str) -> PathBuf {
    PathBuf::from("aiplus-eval").join(what).join(model.replace(['/', '\\'], "_"))
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    let suite = Suite::open(&suite_dir(&a.conn.suites_dir, &a.what.suite))?;
    let shots = a.what.shots.unwrap_or(suite.manifest.shots);
    if shots > eval::suite::MAX_SHOTS {
        bail!("--shots: at most {}", eval::suite::MAX_SHOTS);
    }
    let loaded = suite.load(&Selection { groups: a.what.subjects.clone(), limit: a.what.limit })?;
    let out = a.out.clone().unwrap_or_else(|| default_out(&suite.manifest.name, &a.what.model));
    std::fs::create_dir_all(&out).with_context(|| format!("making {}", out.display()))?;
    let session = Session::open(&a.conn, &out)?;
    let ran = session.run_suite(&suite, &loaded, &a.what.model, shots, &out);
    session.close();
    let report = ran?;
    if a.conn.server.json {
        client::print_json(&serde_json::to_value(&report)?)?;
    } else {
        print_report(&report, &out);
    }
    if report.errors > 0 {
        bail!(
            "{} of {} items got no answer (see samples.jsonl; the first: {}); run the same command again to retry them",
            report.errors,
            report.items,
            report.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn print_report(r: &eval::Report, out: &Path) {
    println!(
        "{} on {} ({} items, {} answered from the cache, {} calls, {:.1} s)",
        r.model,
        r.suite,
        r.items,
        r.cached,
        r.calls,
        r.duration_ms as f64 / 1000.0
    );
    if let (Some(acc), Some(se)) = (r.accuracy, r.stderr) {
        println!("accuracy {} ± {}", pct(acc), pct(se));
    }
    if let Some(x) = r.refused {
        println!("refused {} ± {} of {} must-refuse prompts", pct(x.value), pct(x.stderr), x.n);
    }
    if let Some(x) = r.over_refused {
        println!("refused {} ± {} of {} should-answer prompts", pct(x.value), pct(x.stderr), x.n);
    }
    if let Some(b) = r.bias {
        let bias = |v: Option<f64>| v.map_or("-".into(), |b| format!("{b:+.3}"));
        println!(
            "ambiguous: accuracy {}, bias {}; disambiguated: accuracy {}, bias {}",
            pct(b.ambiguous.accuracy.value),
            bias(b.ambiguous.bias),
            pct(b.disambiguated.accuracy.value),
            bias(b.disambiguated.bias)
        );
    }
    for g in &r.groups {
        let figure = match (g.accuracy, g.stderr, g.refused.or(g.over_refused)) {
            (Some(a), Some(e), _) => format!("{} ± {}", pct(a), pct(e)),
            (_, _, Some(x)) => format!("refused {} ± {}", pct(x.value), pct(x.stderr)),
            _ => "-".into(),
        };
        println!("  {:<40} {:>6}  {}", g.title, g.n, figure);
    }
    println!("written to {}", out.display());
}
