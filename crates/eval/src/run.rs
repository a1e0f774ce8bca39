//! The runner: asks every item of a plan of a [`Model`], at most `concurrency` at once, each
//! answer looked up in the [`Cache`] first and stored there as soon as it arrives. A call that
//! can succeed later (a timeout, 429, 5xx) is retried with exponential backoff; one that
//! cannot (400, 404) is recorded as the item's error and not retried.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::cache::{Cache, key};
use crate::prompt::{self, Asking, Endpoint, Method};
use crate::suite::{Loaded, Suite};
use crate::{EvalError, Item};

/// Most requests a run may have in flight.
pub const MAX_CONCURRENCY: usize = 256;
/// Most attempts at one item.
pub const MAX_ATTEMPTS: u32 = 10;
/// Longest wait between two attempts.
pub const MAX_BACKOFF_MS: u64 = 30_000;

/// Why a model call gave no answer.
#[derive(Clone, Debug, PartialEq)]
pub enum CallError {
    /// Worth trying again (a connection error, a timeout, 429, 5xx), after `after_ms` if the
    /// server said.
    Retry { reason: String, after_ms: Option<u64> },
    /// The platform's guardrail refused the prompt or the answer.
    Blocked(String),
    /// Not worth trying again (400, 401, 404 …).
    Fail(String),
}

/// What an answer of the gateway means for the runner: a 2xx body with a choice is the
/// response (one without is not an answer, and is asked again rather than cached); 429 and 5xx
/// can succeed later; the guardrail's `content_blocked` is a refusal by the platform; any other
/// status will not change on retry.
pub fn classify(status: u16, retry_after_ms: Option<u64>, body: &[u8]) -> Result<Value, CallError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        if v["choices"].get(0).is_none() {
            return Err(CallError::Retry { reason: format!("HTTP {status} without a choice"), after_ms: retry_after_ms });
        }
        return Ok(v);
    }
    let message = v["error"]["message"].as_str().map_or_else(|| format!("HTTP {status}"), |m| format!("HTTP {status}: {m}"));
    if status == 429 || status >= 500 {
        return Err(CallError::Retry { reason: message, after_ms: retry_after_ms });
    }
    if v["error"]["code"] == "content_blocked" {
        return Err(CallError::Blocked(message));
    }
    Err(CallError::Fail(message))
}

/// A model that answers OpenAI-shaped requests: the binary's client of the gateway, or a test
/// double.
pub trait Model: Sync {
    fn call(&self, endpoint: Endpoint, body: &Value) -> impl Future<Output = Result<Value, CallError>> + Send;
}

/// One item's request, ready to ask.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub item: usize,
    pub key: String,
    pub body: Value,
}

/// What asking one item came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Response(Value),
    Blocked(String),
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub item: usize,
    pub answer: Answer,
    /// The answer came from the cache: no call was made.
    pub cached: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub concurrency: usize,
    pub attempts: u32,
    pub backoff_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options { concurrency: 4, attempts: 4, backoff_ms: 500 }
    }
}

impl Options {
    pub fn validate(&self) -> Result<(), EvalError> {
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(EvalError::invalid("concurrency", format!("must be 1..={MAX_CONCURRENCY}")));
        }
        if self.attempts == 0 || self.attempts > MAX_ATTEMPTS {
            return Err(EvalError::invalid("attempts", format!("must be 1..={MAX_ATTEMPTS}")));
        }
        Ok(())
    }
}

/// Counts of a run, for its report and the progress bar.
#[derive(Debug, Default)]
pub struct Counts {
    pub done: AtomicU64,
    pub calls: AtomicU64,
    pub cached: AtomicU64,
    pub failed: AtomicU64,
}

/// What a run asks: which items, of which model, how.
#[derive(Clone, Copy, Debug)]
pub struct Spec<'a> {
    pub suite: &'a Suite,
    pub loaded: &'a Loaded,
    /// The model name sent in requests.
    pub model: &'a str,
    /// The model's identity in cache keys: its name and version, so a new version is asked
    /// afresh.
    pub cache_model: &'a str,
    pub asking: Asking,
}

/// The requests of every item, in the items' order.
pub fn plan(spec: &Spec<'_>) -> Vec<Prepared> {
    let none: Vec<Item> = Vec::new();
    spec.loaded
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let examples = spec.loaded.examples.get(&item.group).unwrap_or(&none);
            let text = prompt::text(spec.suite, item, examples, spec.asking.shots);
            let body = prompt::request(spec.model, item, &text, spec.asking);
            Prepared { item: i, key: key(spec.cache_model, spec.asking.endpoint, &body), body }
        })
        .collect()
}

/// Asks one request: the cache, else the model with retries; a response is cached at once.
pub async fn ask<M: Model, C: Cache>(m: &M, cache: &C, endpoint: Endpoint, p: &Prepared, opts: &Options, counts: &Counts) -> Outcome {
    if let Some(v) = cache.get(&p.key) {
        counts.cached.fetch_add(1, Ordering::Relaxed);
        return Outcome { item: p.item, answer: Answer::Response(v), cached: true };
    }
    let mut attempt = 0;
    let answer = loop {
        attempt += 1;
        counts.calls.fetch_add(1, Ordering::Relaxed);
        match m.call(endpoint, &p.body).await {
            Ok(v) => match cache.put(&p.key, &v) {
                Ok(()) => break Answer::Response(v),
                Err(e) => break Answer::Failed(e.to_string()),
            },
            Err(CallError::Blocked(why)) => break Answer::Blocked(why),
            Err(CallError::Fail(why)) => break Answer::Failed(why),
            Err(CallError::Retry { reason, after_ms }) => {
                if attempt >= opts.attempts {
                    break Answer::Failed(format!("{reason} (after {attempt} attempts)"));
                }
                let backoff = opts.backoff_ms.saturating_mul(1 << (attempt - 1).min(16));
                tokio::time::sleep(Duration::from_millis(after_ms.unwrap_or(backoff).min(MAX_BACKOFF_MS))).await;
            }
        }
    };
    if matches!(answer, Answer::Failed(_)) {
        counts.failed.fetch_add(1, Ordering::Relaxed);
    }
    Outcome { item: p.item, answer, cached: false }
}

/// Asks every request of the plan, at most `opts.concurrency` at once; `tick` is told after
/// each. Outcomes come back in the plan's order.
pub async fn run<M: Model, C: Cache>(
    m: &M,
    cache: &C,
    endpoint: Endpoint,
    plan: &[Prepared],
    opts: &Options,
    counts: &Counts,
    tick: &(dyn Fn(&Counts) + Sync),
) -> Vec<Outcome> {
    // A plain loop over FuturesUnordered rather than stream combinators: the combinators'
    // closures make the future's Send-ness unprovable to today's compiler (rust#102211), and a
    // server spawns this future.
    // A request the plan holds twice (a suite that repeats a question word for word) is asked
    // once; its later places take the answer, as from the cache.
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut unique: Vec<&Prepared> = Vec::with_capacity(plan.len());
    for p in plan {
        match first.get(p.key.as_str()) {
            Some(&f) => repeats.push((p.item, f)),
            None => {
                first.insert(&p.key, p.item);
                unique.push(p);
            }
        }
    }
    let mut pending = futures_util::stream::FuturesUnordered::new();
    let mut todo = unique.into_iter();
    let mut out: Vec<Outcome> = Vec::with_capacity(plan.len());
    loop {
        while pending.len() < opts.concurrency {
            let Some(p) = todo.next() else { break };
            pending.push(ask_and_tick(m, cache, endpoint, p, opts, counts, tick));
        }
        match pending.next().await {
            Some(o) => out.push(o),
            None => break,
        }
    }
    let by_item: std::collections::HashMap<usize, usize> = out.iter().enumerate().map(|(i, o)| (o.item, i)).collect();
    for (item, f) in repeats {
        if let Some(o) = by_item.get(&f).and_then(|&i| out.get(i)) {
            let answer = o.answer.clone();
            if matches!(answer, Answer::Response(_)) {
                counts.cached.fetch_add(1, Ordering::Relaxed);
            }
            out.push(Outcome { item, answer, cached: true });
            counts.done.fetch_add(1, Ordering::Relaxed);
        }
    }
    tick(counts);
    out.sort_by_key(|o| o.item);
    out
}

async fn ask_and_tick<M: Model, C: Cache>(
    m: &M,
    cache: &C,
    endpoint: Endpoint,
    p: &Prepared,
    opts: &Options,
    counts: &Counts,
    tick: &(dyn Fn(&Counts) + Sync),
) -> Outcome {
    let o = ask(m, cache, endpoint, p, opts, counts).await;
    counts.done.fetch_add(1, Ordering::Relaxed);
    tick(counts);
    o
}

/// The method a run uses when none is named: log-probabilities if the model returns them for
/// the first multiple-choice item, else generation. The probe is an ordinary cached request,
/// so a resumed run decides the same way without asking again.
pub async fn probe_method<M: Model, C: Cache>(m: &M, cache: &C, spec: &Spec<'_>, counts: &Counts) -> Method {
    let Some(first) = spec.loaded.items.iter().position(|i| matches!(i.task, crate::Task::Choice(_))) else { return Method::Generate };
    let one = Loaded { items: vec![spec.loaded.items[first].clone()], examples: spec.loaded.examples.clone() };
    let options = match &spec.loaded.items[first].task {
        crate::Task::Choice(c) => c.options.len(),
        _ => 0,
    };
    let asking = Asking { method: Method::Logprobs, ..spec.asking };
    let Some(p) = plan(&Spec { loaded: &one, asking, ..*spec }).into_iter().next() else { return Method::Generate };
    let opts = Options { concurrency: 1, attempts: 3, backoff_ms: 500 };
    match ask(m, cache, asking.endpoint, &p, &opts, counts).await.answer {
        // Log-probabilities are used only if an option letter is among the first token's
        // likeliest (a chat model whose answer starts "答案" would score nothing by them).
        Answer::Response(v) if crate::answer::logprob_letter(&v, asking.endpoint, options).is_some() => Method::Logprobs,
        _ => Method::Generate,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use serde_json::json;

    use super::*;

    struct Counting(AtomicU64);

    impl Model for Counting {
        async fn call(&self, _endpoint: Endpoint, body: &Value) -> Result<Value, CallError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            // Slow enough that the two askings of one request would overlap.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(json!({"choices": [{"message": {"content": body["n"].to_string()}}]}))
        }
    }

    #[tokio::test]
    async fn a_request_the_plan_holds_twice_is_asked_once() {
        let p = |item: usize, n: u64| Prepared { item, key: format!("k{n}"), body: json!({"n": n}) };
        let plan = [p(0, 1), p(1, 2), p(2, 1), p(3, 3), p(4, 2)];
        let m = Counting(AtomicU64::new(0));
        let counts = Counts::default();
        let opts = Options { concurrency: 8, ..Options::default() };
        let out = run(&m, &crate::cache::MemoryCache::default(), Endpoint::Chat, &plan, &opts, &counts, &|_| {}).await;
        assert_eq!(m.0.load(Ordering::Relaxed), 3);
        assert_eq!(out.iter().map(|o| o.item).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(out[2].answer, out[0].answer);
        assert!(out[2].cached && !out[0].cached);
        assert_eq!(counts.done.load(Ordering::Relaxed), 5);
    }
}
