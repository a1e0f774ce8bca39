//! Comparing two runs on the same items: two versions of a model, or one model before and after
//! a change. Items are paired by id; McNemar's exact test on the pairs where exactly one run is
//! right says whether the difference is more than chance, and a significant drop is flagged.

use std::collections::HashMap;

use serde::Serialize;

use crate::report::Sample;
use crate::stats::mcnemar_exact;

/// The p-value under which a drop is significant, unless told otherwise.
pub const DEFAULT_ALPHA: f64 = 0.05;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Items both runs scored.
    pub paired: u64,
    pub accuracy_a: f64,
    pub accuracy_b: f64,
    /// `accuracy_b − accuracy_a`.
    pub delta: f64,
    /// Items only A got right, and only B.
    pub a_only: u64,
    pub b_only: u64,
    pub p_value: f64,
    pub alpha: f64,
    /// B is worse than A, and significantly so.
    pub significant_drop: bool,
}

/// What a sample says for the comparison: right or wrong (multiple choice), or did what it
/// should (refused a must-refuse prompt, answered a should-answer one).
fn score(s: &Sample) -> Option<bool> {
    if s.error.is_some() {
        return None;
    }
    s.correct.or_else(|| Some(s.refused? == s.must_refuse?))
}

pub fn compare(a: &[Sample], b: &[Sample], alpha: f64) -> Comparison {
    let b_by_id: HashMap<&str, &Sample> = b.iter().map(|s| (s.id.as_str(), s)).collect();
    let (mut n, mut right_a, mut right_b, mut a_only, mut b_only) = (0u64, 0u64, 0u64, 0u64, 0u64);
    for sa in a {
        let Some((x, y)) = b_by_id.get(sa.id.as_str()).and_then(|sb| Some((score(sa)?, score(sb)?))) else { continue };
        n += 1;
        right_a += u64::from(x);
        right_b += u64::from(y);
        a_only += u64::from(x && !y);
        b_only += u64::from(y && !x);
    }
    let share = |k: u64| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    let p_value = mcnemar_exact(a_only, b_only);
    Comparison {
        paired: n,
        accuracy_a: share(right_a),
        accuracy_b: share(right_b),
        delta: share(right_b) - share(right_a),
        a_only,
        b_only,
        p_value,
        alpha,
        significant_drop: a_only > b_only && p_value < alpha,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: usize, correct: bool) -> Sample {
        Sample {
            id: format!("q{id}"),
            group: "g".into(),
            gold: Some('A'),
            answer: None,
            logprob: None,
            correct: Some(correct),
            must_refuse: None,
            refused: None,
            safe: None,
            blocked: false,
            error: None,
            text: String::new(),
            cached: false,
        }
    }

    #[test]
    fn a_drop_on_the_same_items_is_flagged_only_when_significant() {
        let a: Vec<Sample> = (0..200).map(|i| sample(i, i % 10 < 7)).collect();
        // B loses 21 of A's right answers and gains 5: a significant drop.
        let b: Vec<Sample> = (0..200).map(|i| sample(i, (i % 10 < 7 && i >= 30) || (i % 10 >= 7 && i < 50 && i % 10 == 9))).collect();
        let c = compare(&a, &b, DEFAULT_ALPHA);
        assert_eq!(c.paired, 200);
        assert!(c.significant_drop && c.delta < 0.0, "{c:?}");
        // The same runs the other way round are a rise, not a drop.
        assert!(!compare(&b, &a, DEFAULT_ALPHA).significant_drop);
        // Identical runs differ in nothing.
        let same = compare(&a, &a, DEFAULT_ALPHA);
        assert_eq!((same.a_only, same.b_only, same.p_value, same.significant_drop), (0, 0, 1.0, false));
        // Items only one run has are left out.
        assert_eq!(compare(&a[..50], &b, DEFAULT_ALPHA).paired, 50);
    }
}
