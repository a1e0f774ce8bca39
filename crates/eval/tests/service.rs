//! The server's evaluation service over an in-memory store, asking the test double through an
//! `Asker`: runs go through the queue in order, a stored record that no longer reads does not
//! stop the queue, and a suite is named by its directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use eval::prompt::Endpoint;
use eval::run::CallError;
use eval::service::{Asker, NewRun, RunState, Service};
use serde_json::Value;

struct Ticking(AtomicI64);

impl vocab::Clock for Ticking {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Asks the constant test double, counting the calls.
struct Double(eval::double::Constant, AtomicU64);

impl Asker for Double {
    fn resolve(&self, model: &str) -> String {
        format!("{model}@1")
    }

    fn ask(
        &self,
        _run: &str,
        _deployment: Option<&str>,
        endpoint: Endpoint,
        body: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, CallError>> + Send + 'static>> {
        self.1.fetch_add(1, Ordering::Relaxed);
        let answer = self.0.answer(eval::double::prompt_of(&body), endpoint);
        Box::pin(async move { Ok(answer) })
    }
}

async fn service() -> (Arc<Service>, store::Store, Arc<Double>, std::path::PathBuf) {
    let store = store::Store::memory().await.unwrap();
    let double = Arc::new(Double(eval::double::Constant::new('B'), AtomicU64::new(0)));
    let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
    let work = std::env::temp_dir().join(format!("eval-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let n = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(move || format!("evr_{}", n.fetch_add(1, Ordering::Relaxed)));
    let svc = Service::new(store.clone(), double.clone(), suites, work.clone(), "eval".into(), Arc::new(Ticking(AtomicI64::new(1))), ids);
    (Arc::new(svc), store, double, work)
}

async fn finished(svc: &Service, id: &str) -> eval::service::RunRecord {
    for _ in 0..400 {
        let r = svc.get(id).await.unwrap().unwrap();
        if matches!(r.state, RunState::Succeeded | RunState::Failed) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {id} did not finish");
}

#[tokio::test]
async fn runs_are_taken_in_order_past_a_record_that_no_longer_reads() {
    let (svc, store, double, _) = service().await;
    // A record written by something else, broken: it must not stop the queue.
    store.put_eval_run("broken", "queued", "{not json").await.unwrap();
    let req = |limit| NewRun {
        model: "m".into(),
        suite: "safetybench-zh".into(),
        subjects: vec!["Offensiveness".into()],
        limit: Some(limit),
        ..NewRun::default()
    };
    let first = svc.submit(req(3), "op").await.unwrap();
    let second = svc.submit(req(5), "op").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(svc.clone().work(stop_rx));
    let a = finished(&svc, &first.id).await;
    let b = finished(&svc, &second.id).await;
    assert_eq!((a.state, b.state), (RunState::Succeeded, RunState::Succeeded), "{:?} {:?}", a.error, b.error);
    assert!(a.finished_ms <= b.started_ms, "one run after the other");
    // The second run's first three questions are the first run's, answered from the shared
    // (model version, suite) cache.
    assert_eq!(b.report.as_ref().unwrap().cached, 3);
    assert_eq!(double.1.load(Ordering::Relaxed), 5);
    assert_eq!(store.eval_runs_in("failed").await.unwrap()[0].0, "broken");
    assert_eq!(svc.list(10).await.unwrap().len(), 2, "the broken record is left out of listings");
    let samples = svc.samples(&second.id).await.unwrap().unwrap();
    assert_eq!(String::from_utf8(samples).unwrap().lines().count(), 5);
    stop_tx.send(true).unwrap();
    worker.await.unwrap();
}

#[tokio::test]
async fn a_run_names_a_suite_by_its_directory_and_within_the_limits() {
    let (svc, ..) = service().await;
    let base = NewRun { model: "m".into(), suite: "safetybench-zh".into(), ..NewRun::default() };
    for (req, field) in [
        (NewRun { suite: "../suites".into(), ..base.clone() }, "suite"),
        (NewRun { suite: "nope".into(), ..base.clone() }, "suite"),
        (NewRun { subjects: vec!["Astrology".into()], ..base.clone() }, "subjects"),
        (NewRun { limit: Some(0), ..base.clone() }, "limit"),
        (NewRun { shots: Some(99), ..base.clone() }, "shots"),
        (NewRun { model: String::new(), ..base.clone() }, "model"),
        (NewRun { deployment: Some("a b".into()), ..base.clone() }, "deployment"),
        (NewRun { concurrency: Some(0), ..base.clone() }, "concurrency"),
    ] {
        match svc.submit(req, "op").await {
            Err(eval::EvalError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}
