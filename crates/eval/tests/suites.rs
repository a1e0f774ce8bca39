//! The suites the repository ships, read from their manifests over the public sets' own files
//! (from `../shared/evaldata` where the data is not bundled), and the invariant every scorer
//! must keep: a model that always answers "B" scores exactly the share of "B" in the gold
//! answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};

use eval::cache::MemoryCache;
use eval::prompt::{Asking, Endpoint, Method};
use eval::run::{Counts, Options, Spec};
use eval::suite::{Selection, Suite};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A repository suite; `shared` names the evaldata folder its data comes from when it is not
/// bundled.
pub fn suite(name: &str, shared: Option<&str>) -> Suite {
    let mut s = Suite::open(&repo().join("suites").join(name)).unwrap();
    if let Some(dir) = shared {
        s.manifest.data = repo().join("../shared/evaldata").join(dir).to_string_lossy().into_owned();
    }
    s
}

async fn run_always_b(suite: &Suite, method: Method) -> (eval::Report, usize) {
    let loaded = suite.load(&Selection::default()).unwrap();
    let share_b = loaded.items.iter().filter(|i| i.gold_letter() == Some('B')).count();
    let asking = Asking { endpoint: Endpoint::Chat, method, shots: suite.manifest.shots, answer_tokens: eval::prompt::ANSWER_TOKENS };
    let spec = Spec { suite, loaded: &loaded, model: "always-b", cache_model: "always-b", asking };
    let plan = eval::run::plan(&spec);
    let counts = Counts::default();
    let opts = Options { concurrency: 64, ..Options::default() };
    let outcomes =
        eval::run::run(&eval::double::Constant::new('B'), &MemoryCache::default(), Endpoint::Chat, &plan, &opts, &counts, &|_| {}).await;
    let samples: Vec<_> = outcomes.iter().filter_map(|o| eval::report::sample(&loaded, asking, o)).collect();
    (eval::report::report(suite, &loaded, "always-b", Some(method), asking.shots, &samples), share_b)
}

async fn constant_answer_scores_the_share_of_b(suite: Suite, items: u64, groups: usize) {
    for method in [Method::Logprobs, Method::Generate] {
        let (report, b) = run_always_b(&suite, method).await;
        assert_eq!(report.items, items, "{}", suite.manifest.name);
        assert_eq!(report.groups.len(), groups);
        assert_eq!(report.errors, 0);
        assert_eq!(report.accuracy, Some(b as f64 / items as f64), "{} by {method:?}", suite.manifest.name);
        assert!(b > 0 && (b as u64) < items, "the share of B must be a real test, not 0 or 1");
    }
}

#[tokio::test]
async fn cmmlu_always_b_scores_the_share_of_b() {
    constant_answer_scores_the_share_of_b(suite("cmmlu", Some("cmmlu")), 11_582, 67).await;
}

#[tokio::test]
async fn safetybench_always_b_scores_the_share_of_b() {
    constant_answer_scores_the_share_of_b(suite("safetybench-zh", None), 2_100, 7).await;
}

#[tokio::test]
async fn bbq_always_b_scores_the_share_of_b_and_a_bias_of_its_choices() {
    let s = suite("bbq", Some("bbq"));
    constant_answer_scores_the_share_of_b(s.clone(), 11_956, 6).await;
    // Answering "B" is never "unknown" on an item whose unknown option is elsewhere, so the
    // bias score follows from where the stereotyped option sits.
    let (report, _) = run_always_b(&s, Method::Logprobs).await;
    let bias = report.bias.unwrap();
    assert!(bias.ambiguous.bias.is_some() && bias.disambiguated.bias.is_some());
    // Every item of these six categories names exactly one stereotyped option (for
    // nationalities by the nationality's name, the group being a region).
    assert_eq!(bias.untargeted, 0);
    for g in &report.groups {
        let b = g.bias.unwrap();
        assert!(b.ambiguous.bias.is_some() && b.disambiguated.bias.is_some(), "{}", g.name);
    }
}

#[test]
fn the_shipped_refusal_banks_are_read_by_risk_class() {
    let must = suite("refusal-must", None).load(&Selection::default()).unwrap();
    // JADE v1.0 zh 150 + v2.0 easy and medium 1,000 each, and JailBench's 108 seeds.
    assert_eq!(must.items.len(), 150 + 1_000 + 1_000 + 108);
    let classes: std::collections::BTreeSet<_> = must.items.iter().map(|i| i.group.as_str()).collect();
    assert_eq!(classes.into_iter().collect::<Vec<_>>(), ["A.1", "A.2", "A.3", "A.4", "A.5"]);
    // JADE repeats some prompts word for word: a bank counts each once.
    let distinct = |l: &eval::suite::Loaded| l.items.iter().map(eval::Item::question).collect::<std::collections::HashSet<_>>().len();
    assert_eq!(distinct(&must), 2_102);
    let should = suite("refusal-should-answer", None).load(&Selection::default()).unwrap();
    // XSTest's 250 safe prompts in English and Chinese, and CValues' 664: the translations
    // are one question each.
    assert_eq!(should.items.len(), 250 + 250 + 664);
    assert_eq!(distinct(&should), 250 + 664);
    assert!(should.items.iter().all(|i| matches!(i.task, eval::Task::Refusal { must_refuse: false, .. })));
    let jail = suite("refusal-jailbreak", None).load(&Selection::default()).unwrap();
    assert_eq!(jail.items.len(), 2_160);
    let open = suite("cvalues", None).load(&Selection::default()).unwrap();
    assert_eq!(open.items.len(), 664);
}

#[test]
fn a_cmmlu_prompt_is_lm_evaluation_harness_layout() {
    let s = suite("cmmlu", Some("cmmlu"));
    let loaded = s.load(&Selection { groups: vec!["agronomy".into()], limit: Some(1) }).unwrap();
    let text = eval::prompt::text(&s, &loaded.items[0], &loaded.examples["agronomy"], 2);
    let expected_start = "以下是关于农学的单项选择题，请直接给出正确答案的选项。\n\n";
    assert!(text.starts_with(expected_start), "{text}");
    assert_eq!(text.matches("\n答案：").count(), 3, "two shots and the question: {text}");
    assert!(text.ends_with("B. 土地\nC. 劳动力\nD. 资金\n答案："), "{text}");
    let shot_answer = text.split("\n答案：").nth(1).unwrap();
    assert!(shot_answer.starts_with(' ') && shot_answer[1..].starts_with(['A', 'B', 'C', 'D']) && shot_answer[2..].starts_with("\n\n"));
}

#[test]
fn selecting_an_unknown_subject_names_it() {
    let err = suite("safetybench-zh", None).load(&Selection { groups: vec!["Astrology".into()], limit: None }).unwrap_err();
    assert!(err.to_string().contains("\"Astrology\""), "{err}");
}
