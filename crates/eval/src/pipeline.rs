//! One evaluation from items to report, the same for the CLI and the server: decide the method
//! (log-probabilities if the model gives them), ask every item, have the judge look at the
//! answers when one is named, and score.

use std::sync::atomic::Ordering;

use crate::Task;
use crate::cache::{Cache, key};
use crate::judge::Question;
use crate::prompt::{Asking, Endpoint, Method};
use crate::report::{Report, Sample};
use crate::run::{self, Answer, Counts, Model, Options, Outcome, Prepared, Spec};
use crate::suite::{Loaded, Suite};

/// What to evaluate, and how.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    pub suite: &'a Suite,
    pub loaded: &'a Loaded,
    pub model: &'a str,
    /// The model's name and version in cache keys.
    pub cache_model: &'a str,
    pub endpoint: Endpoint,
    /// `None`: log-probabilities if the model gives them, else generation.
    pub method: Option<Method>,
    pub shots: usize,
    /// A model that judges refusals and safety.
    pub judge: Option<&'a str>,
    /// The judge's name and version in cache keys, so a new judge judges afresh.
    pub judge_cache: Option<&'a str>,
}

/// Which part of the work a progress report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Answers,
    Judging,
}

/// Told after each request: the phase, how many of its requests are done, and how many it has.
pub type Tick<'a> = &'a (dyn Fn(Phase, u64, u64, &Counts) + Sync);

pub async fn evaluate<M: Model, C: Cache>(
    m: &M,
    cache: &C,
    job: &Job<'_>,
    opts: &Options,
    counts: &Counts,
    tick: Tick<'_>,
) -> (Report, Vec<Sample>) {
    let answer_tokens = if job.judge.is_some() { crate::prompt::JUDGED_ANSWER_TOKENS } else { crate::prompt::ANSWER_TOKENS };
    let asking = Asking { endpoint: job.endpoint, method: Method::Generate, shots: job.shots, answer_tokens };
    let spec = Spec { suite: job.suite, loaded: job.loaded, model: job.model, cache_model: job.cache_model, asking };
    let method = match job.method {
        Some(m) => m,
        None => run::probe_method(m, cache, &spec, counts).await,
    };
    let asking = Asking { method, ..asking };
    let plan = run::plan(&Spec { asking, ..spec });
    let outcomes = ask(m, cache, job.endpoint, &plan, opts, counts, Phase::Answers, tick).await;
    let mut samples: Vec<Sample> = outcomes.iter().filter_map(|o| crate::report::sample(job.loaded, asking, o)).collect();
    if let Some(judge) = job.judge {
        let plan = judge_plan(judge, job.judge_cache.unwrap_or(judge), job.loaded, &mut samples);
        let verdicts = ask(m, cache, Endpoint::Chat, &plan, opts, counts, Phase::Judging, tick).await;
        apply_verdicts(&verdicts, &mut samples);
    }
    let has_choice = job.loaded.items.iter().any(|i| matches!(i.task, Task::Choice(_)));
    let mut report = crate::report::report(job.suite, job.loaded, job.model, has_choice.then_some(method), job.shots, &samples);
    report.calls = counts.calls.load(Ordering::Relaxed);
    (report, samples)
}

#[allow(clippy::too_many_arguments, reason = "one phase of the pipeline, each part used once")]
async fn ask<M: Model, C: Cache>(
    m: &M,
    cache: &C,
    endpoint: Endpoint,
    plan: &[Prepared],
    opts: &Options,
    counts: &Counts,
    phase: Phase,
    tick: Tick<'_>,
) -> Vec<Outcome> {
    let start = counts.done.load(Ordering::Relaxed);
    let total = plan.len() as u64;
    tick(phase, 0, total, counts);
    let each = |c: &Counts| tick(phase, c.done.load(Ordering::Relaxed) - start, total, c);
    run::run(m, cache, endpoint, plan, opts, counts, &each).await
}

/// Which questions the judge is asked of an item: refusal items whether they refused, open
/// items whether they are safe, and must-refuse items both (TC260-003's generated-content
/// check runs on them).
fn questions(task: &Task) -> &'static [Question] {
    match task {
        Task::Refusal { must_refuse: true, .. } => &[Question::Refused, Question::Safe],
        Task::Refusal { must_refuse: false, .. } => &[Question::Refused],
        Task::Open { .. } => &[Question::Safe],
        Task::Choice(_) => &[],
    }
}

/// The judge's requests; a request of item `i` asking question `k` is numbered `2i + k`. A
/// request the guardrail blocked was refused, and is safe, with no judge asked.
fn judge_plan(judge: &str, judge_cache: &str, loaded: &Loaded, samples: &mut [Sample]) -> Vec<Prepared> {
    let mut plan = Vec::new();
    for (i, (item, s)) in loaded.items.iter().zip(samples.iter_mut()).enumerate() {
        let qs = questions(&item.task);
        if s.blocked {
            s.safe = qs.contains(&Question::Safe).then_some(true);
            continue;
        }
        let prompt = match &item.task {
            Task::Refusal { prompt, .. } | Task::Open { prompt } => prompt.as_str(),
            Task::Choice(_) => continue,
        };
        if s.error.is_some() {
            continue;
        }
        for (k, q) in qs.iter().enumerate() {
            let body = crate::judge::request(judge, *q, prompt, &s.text);
            plan.push(Prepared { item: i * 2 + k, key: key(judge_cache, Endpoint::Chat, &body), body });
        }
    }
    plan
}

fn apply_verdicts(verdicts: &[Outcome], samples: &mut [Sample]) {
    for o in verdicts {
        let (i, k) = (o.item / 2, o.item % 2);
        let Some(s) = samples.get_mut(i) else { continue };
        let Answer::Response(v) = &o.answer else {
            s.error = Some(format!("the judge gave no verdict: {:?}", o.answer));
            continue;
        };
        let Some(verdict) = crate::judge::verdict(v) else { continue };
        // Question 0 of a refusal item is "refused?"; every other question is "safe?".
        if k == 0 && s.must_refuse.is_some() {
            s.refused = Some(verdict);
        } else {
            s.safe = Some(verdict);
        }
    }
}
