//! `aiplus eval assess`: the safety self-assessment an assessment profile describes, run
//! against a model through the gateway like any evaluation, written as assessment.json (and
//! attached to a filing with --attach-to, named by its SHA-256).

use std::path::PathBuf;

use anyhow::{Context, bail};
use eval::profile::{self, Assessment, Profile, Status};
use eval::suite::{Loaded, Selection, Suite};
use serde_json::json;

use crate::client;
use crate::eval_cli::{default_out, suite_dir};
use crate::eval_session::{Conn, Session};

#[derive(clap::Args, Debug)]
pub struct AssessArgs {
    #[command(flatten)]
    conn: Conn,
    /// The model, as the gateway names it.
    #[arg(long)]
    model: String,
    /// A profile's name in the profiles directory, or the path of a profile file.
    #[arg(long, default_value = "tc260-2024")]
    profile: String,
    #[arg(long, env = "AIPLUS_EVAL_PROFILES", default_value = "profiles")]
    profiles_dir: PathBuf,
    /// Draws each requirement's sample from its bank; the same seed draws the same sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The assessment's directory (default: aiplus-eval/assess-<profile>/<model>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A filing to attach the report to, as a self_assessment attachment.
    #[arg(long)]
    attach_to: Option<String>,
}

fn profile_path(a: &AssessArgs) -> PathBuf {
    let direct = PathBuf::from(&a.profile);
    if direct.is_file() { direct } else { a.profiles_dir.join(format!("{}.toml", a.profile)) }
}

pub fn run(a: AssessArgs) -> anyhow::Result<()> {
    let profile = Profile::open(&profile_path(&a))?;
    let out = a.out.clone().unwrap_or_else(|| default_out(&format!("assess-{}", profile.name), &a.model));
    std::fs::create_dir_all(&out).with_context(|| format!("making {}", out.display()))?;
    let session = Session::open(&a.conn, &out)?;
    let outcomes = assess(&a, &profile, &session, &out);
    session.close();
    let outcomes = outcomes?;
    let at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let assessment = Assessment {
        profile: profile.name.clone(),
        title: profile.title.clone(),
        source: profile.source.clone(),
        model: a.model.clone(),
        judge: a.conn.judge.clone(),
        seed: a.seed,
        at_ms,
        verdict: profile::verdict(&outcomes),
        requirements: outcomes,
    };
    let bytes = serde_json::to_vec_pretty(&assessment)?;
    let sha256 = profile::digest(&bytes);
    std::fs::write(out.join("assessment.json"), &bytes)?;
    if let Some(filing) = &a.attach_to {
        let base = a.conn.server.server.trim_end_matches('/');
        let url = format!("{base}/api/v1/filings/{filing}/attachments");
        // One attachment per report: the filing keeps every assessment made for it.
        let model: String = a.model.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
        let name = format!("self-assessment-{}-{model}-{}.json", profile.name, &sha256[..12]);
        let query = [("kind", "self_assessment"), ("name", name.as_str()), ("sha256", sha256.as_str())];
        client::call(client::client()?.post(url).query(&query).body(bytes.clone()))?;
    }
    if a.conn.server.json {
        return client::print_json(&json!({"sha256": sha256, "assessment": assessment}));
    }
    print(&assessment, &sha256, &out);
    Ok(())
}

fn assess(a: &AssessArgs, profile: &Profile, session: &Session, out: &std::path::Path) -> anyhow::Result<Vec<profile::Outcome>> {
    let mut outcomes = Vec::new();
    for r in &profile.requirements {
        let suite = Suite::open(&suite_dir(&a.conn.suites_dir, &r.suite)).with_context(|| format!("requirement {}", r.id))?;
        let all = suite.load(&Selection::default())?;
        // A bank's size is its distinct questions: translations of one and repeated prompts
        // count once.
        let bank = all.items.iter().map(eval::Item::question).collect::<std::collections::HashSet<_>>().len();
        if r.measure == profile::Measure::Safe && session.judge.is_none() {
            outcomes.push(profile::outcome(r, bank, Err("needs a judge model (--judge) to tell safe answers from unsafe ones")));
            continue;
        }
        let picked = profile::sample(&all.items, r.sample, a.seed);
        let loaded = Loaded { items: picked.iter().filter_map(|&i| all.items.get(i).cloned()).collect(), examples: all.examples.clone() };
        let report = session.run_suite(&suite, &loaded, &a.model, suite.manifest.shots, &out.join(&r.id))?;
        if report.errors > 0 {
            bail!("requirement {}: {} items got no answer; run the same command again to retry them", r.id, report.errors);
        }
        outcomes.push(profile::outcome(r, bank, Ok(&report)));
    }
    Ok(outcomes)
}

fn print(a: &Assessment, sha256: &str, out: &std::path::Path) {
    println!("{} — {} ({})", a.model, a.title, a.profile);
    for o in &a.requirements {
        let threshold = o
            .requirement
            .at_least
            .map_or_else(|| format!("≤ {:.0}%", o.requirement.at_most.unwrap_or(0.0) * 100.0), |t| format!("≥ {:.0}%", t * 100.0));
        let measured = o.measured.map_or("-".into(), |m| format!("{:.1}%", m * 100.0));
        let status = match o.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::NotAssessed => "not assessed",
        };
        println!(
            "  {:<18} {:<12} {:>7} on {:>5} of a bank of {:>5}  {threshold:<6}  {}",
            o.requirement.id,
            status,
            measured,
            o.n,
            o.bank,
            o.reason.as_deref().unwrap_or("")
        );
    }
    println!("verdict: {:?}\nreport: {} (sha256 {sha256})", a.verdict, out.join("assessment.json").display());
}
