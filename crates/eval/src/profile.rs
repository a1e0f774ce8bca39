//! Assessment profiles: the thresholds a standard sets, as data (`profiles/*.toml`), and the
//! self-assessment they give a model. A requirement names a suite, what is measured on it, the
//! threshold, the least bank the suite must hold and the sample the figure must rest on; the
//! outcome says, per requirement, the threshold, the measured value, pass or fail, and the
//! samples it rests on.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::report::Report;
use crate::{EvalError, Item};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Of must-refuse prompts, the share refused.
    Refused,
    /// Of should-answer prompts, the share refused.
    OverRefused,
    /// Of the answers, the share a judge found safe.
    Safe,
    /// Of multiple-choice questions, the share answered right.
    Accuracy,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub id: String,
    pub title: String,
    /// Where the standard says it.
    pub clause: String,
    pub suite: String,
    pub measure: Measure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
    /// Questions the suite's bank must hold.
    pub min_bank: usize,
    /// Questions drawn at random from the bank; the figure must rest on at least this many.
    pub sample: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub title: String,
    pub source: String,
    #[serde(rename = "requirement")]
    pub requirements: Vec<Requirement>,
}

/// Most requirements a profile may have, and the largest sample one may ask.
pub const MAX_REQUIREMENTS: usize = 64;
pub const MAX_SAMPLE: usize = 100_000;

impl Profile {
    pub fn open(path: &Path) -> Result<Profile, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::suite(path.display(), e.to_string()))?;
        let p: Profile = toml::from_str(&text).map_err(|e| EvalError::suite(path.display(), e.to_string()))?;
        if p.requirements.is_empty() || p.requirements.len() > MAX_REQUIREMENTS {
            return Err(EvalError::suite(path.display(), format!("1 to {MAX_REQUIREMENTS} requirements")));
        }
        for r in &p.requirements {
            let bad = |reason: &str| EvalError::suite(path.display(), format!("requirement {}: {reason}", r.id));
            if r.at_least.is_some() == r.at_most.is_some() {
                return Err(bad("needs exactly one of at_least and at_most"));
            }
            if r.at_least.or(r.at_most).is_some_and(|t| !(0.0..=1.0).contains(&t)) {
                return Err(bad("a threshold is a share, 0 to 1"));
            }
            if r.sample == 0 || r.sample > MAX_SAMPLE {
                return Err(bad(&format!("sample must be 1..={MAX_SAMPLE}")));
            }
        }
        Ok(p)
    }
}

/// The items a requirement asks: `n` drawn from the bank by the seed (each item ranked by the
/// SHA-256 of the seed and its id), in the bank's order. The same seed draws the same sample.
pub fn sample(items: &[Item], n: usize, seed: u64) -> Vec<usize> {
    let mut ranked: Vec<([u8; 32], usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut h = Sha256::new();
            h.update(seed.to_be_bytes());
            h.update(item.id.as_bytes());
            (h.finalize().into(), i)
        })
        .collect();
    ranked.sort_unstable();
    let mut picked: Vec<usize> = ranked.into_iter().take(n).map(|(_, i)| i).collect();
    picked.sort_unstable();
    picked
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// Could not be measured here (a judge was needed and none was named).
    NotAssessed,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassFigure {
    pub class: String,
    pub n: u64,
    pub value: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub requirement: Requirement,
    /// Distinct questions the bank holds (translations of one, and repeats, count once).
    pub bank: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<f64>,
    /// Answers the figure rests on.
    pub n: u64,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub per_class: Vec<ClassFigure>,
}

fn figure(report: &Report, m: Measure) -> Option<(f64, f64, u64)> {
    match m {
        Measure::Refused => report.refused.map(|r| (r.value, r.stderr, r.n)),
        Measure::OverRefused => report.over_refused.map(|r| (r.value, r.stderr, r.n)),
        Measure::Safe => report.safe.map(|r| (r.value, r.stderr, r.n)),
        Measure::Accuracy => report.accuracy.zip(report.stderr).map(|(a, e)| (a, e, report.items - report.errors)),
    }
}

fn class_figure(g: &crate::report::Group, m: Measure) -> Option<(u64, f64)> {
    match m {
        Measure::Refused => g.refused.map(|r| (r.n, r.value)),
        Measure::OverRefused => g.over_refused.map(|r| (r.n, r.value)),
        Measure::Safe => g.safe.map(|r| (r.n, r.value)),
        Measure::Accuracy => g.accuracy.map(|a| (g.n, a)),
    }
}

/// Judges one requirement from its bank's size and the report of its sample (none: it could
/// not be run, for `why`).
pub fn outcome(r: &Requirement, bank: usize, report: Result<&Report, &str>) -> Outcome {
    let mut o =
        Outcome { requirement: r.clone(), bank, measured: None, stderr: None, n: 0, status: Status::Fail, reason: None, per_class: vec![] };
    let report = match report {
        Ok(rep) => rep,
        Err(why) => {
            o.status = Status::NotAssessed;
            o.reason = Some(why.to_string());
            return o;
        }
    };
    o.per_class = report
        .groups
        .iter()
        .filter_map(|g| class_figure(g, r.measure).map(|(n, value)| ClassFigure { class: g.name.clone(), n, value }))
        .collect();
    let Some((value, stderr, n)) = figure(report, r.measure) else {
        o.status = Status::NotAssessed;
        o.reason = Some(format!("the suite gave no {:?} figure", r.measure));
        return o;
    };
    (o.measured, o.stderr, o.n) = (Some(value), Some(stderr), n);
    let meets = r.at_least.is_none_or(|t| value >= t) && r.at_most.is_none_or(|t| value <= t);
    o.reason = if bank < r.min_bank {
        Some(format!("the bank holds {bank} questions; the standard asks for at least {}", r.min_bank))
    } else if (n as usize) < r.sample {
        Some(format!("the figure rests on {n} answers; the standard asks for at least {}", r.sample))
    } else if !meets {
        Some(format!(
            "measured {value:.4}, threshold {}",
            r.at_least.map_or_else(|| format!("≤ {}", r.at_most.unwrap_or(0.0)), |t| format!("≥ {t}"))
        ))
    } else {
        None
    };
    o.status = if o.reason.is_none() { Status::Pass } else { Status::Fail };
    o
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Nothing failed, but something could not be assessed.
    Incomplete,
}

/// A self-assessment: the profile's outcomes for one model.
#[derive(Clone, Debug, Serialize)]
pub struct Assessment {
    pub profile: String,
    pub title: String,
    pub source: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    pub seed: u64,
    /// When it was made (Unix ms), given by the caller.
    pub at_ms: i64,
    pub verdict: Verdict,
    pub requirements: Vec<Outcome>,
}

pub fn verdict(outcomes: &[Outcome]) -> Verdict {
    if outcomes.iter().any(|o| o.status == Status::Fail) {
        Verdict::Fail
    } else if outcomes.iter().any(|o| o.status == Status::NotAssessed) {
        Verdict::Incomplete
    } else {
        Verdict::Pass
    }
}

/// The SHA-256 of a document, in hex: how a report is named when attached to a filing.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Task;
    use crate::report::Rate;

    fn req(at_least: Option<f64>, at_most: Option<f64>) -> Requirement {
        Requirement {
            id: "r".into(),
            title: "t".into(),
            clause: "§9.4".into(),
            suite: "s".into(),
            measure: Measure::Refused,
            at_least,
            at_most,
            min_bank: 500,
            sample: 300,
        }
    }

    fn report(value: f64, n: u64) -> Report {
        Report { refused: Some(Rate { n, value, stderr: 0.01 }), ..Report::default() }
    }

    #[test]
    fn a_requirement_passes_only_on_its_threshold_bank_and_sample() {
        assert_eq!(outcome(&req(Some(0.95), None), 600, Ok(&report(0.95, 300))).status, Status::Pass);
        assert_eq!(outcome(&req(Some(0.95), None), 600, Ok(&report(0.949, 300))).status, Status::Fail);
        let small = outcome(&req(Some(0.95), None), 499, Ok(&report(1.0, 300)));
        assert!(small.status == Status::Fail && small.reason.as_deref().is_some_and(|r| r.contains("499")));
        assert_eq!(outcome(&req(Some(0.95), None), 600, Ok(&report(1.0, 299))).status, Status::Fail);
        assert_eq!(outcome(&req(None, Some(0.05)), 600, Ok(&report(0.05, 300))).status, Status::Pass);
        assert_eq!(outcome(&req(None, Some(0.05)), 600, Ok(&report(0.06, 300))).status, Status::Fail);
        let na = outcome(&req(Some(0.9), None), 600, Err("needs a judge"));
        assert_eq!(na.status, Status::NotAssessed);
        assert_eq!(verdict(std::slice::from_ref(&na)), Verdict::Incomplete);
    }

    #[test]
    fn a_sample_is_drawn_by_the_seed_and_kept_in_bank_order() {
        let items: Vec<Item> =
            (0..1000).map(|i| Item { id: format!("q{i}"), group: "g".into(), task: Task::Open { prompt: String::new() } }).collect();
        let a = sample(&items, 300, 7);
        assert_eq!(a.len(), 300);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, sample(&items, 300, 7));
        assert_ne!(a, sample(&items, 300, 8));
        assert_eq!(sample(&items, 5000, 7).len(), 1000);
    }
}
