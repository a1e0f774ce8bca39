//! Exact KNN-Shapley (Jia et al., "Efficient Task-Specific Data Valuation for Nearest Neighbor
//! Algorithms", VLDB 2019, Theorem 1): the Shapley value of every training point for the
//! utility of an unweighted K-nearest-neighbour classifier, in O(N log N) per test point.
//!
//! For one test point, with the training points sorted from nearest to farthest
//! (α_1 … α_N) and `m_i = 1[label of α_i = test label]`:
//!
//! - s(α_N) = m_N / max(N, K) (the paper's m_N / N, which assumes N ≥ K)
//! - s(α_i) = s(α_{i+1}) + (m_i − m_{i+1}) / max(K, i)
//!
//! (1/max(K, i) is the paper's min(K, i) / (K·i).) A point's value is its mean over the test
//! points. The values add up to the utility of the whole training set (efficiency): the mean
//! over test points of the share of its K nearest neighbours that carry its label.
//!
//! Distances are Euclidean, computed exactly in `f64`; ties go to the lower training index, so
//! a valuation is the same on every machine. The work is split into fixed blocks of test
//! points, summed in block order, so the result does not depend on the number of threads.

/// Test points per block of work (and per partial sum).
const BLOCK: usize = 64;

/// Why a valuation cannot be computed.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ValuationError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ValuationError {
    ValuationError::Invalid { field, reason: reason.into() }
}

/// Points with labels: `features` row by row, `dim` numbers each.
#[derive(Clone, Debug, PartialEq)]
pub struct Points<L> {
    pub features: Vec<f64>,
    pub dim: usize,
    pub labels: Vec<L>,
}

impl<L> Points<L> {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    pub(crate) fn check(&self, field: &'static str) -> Result<(), ValuationError> {
        if self.features.len() != self.labels.len() * self.dim {
            return Err(invalid(
                field,
                format!("{} numbers for {} points of {} features", self.features.len(), self.labels.len(), self.dim),
            ));
        }
        if let Some(i) = self.features.iter().position(|x| !x.is_finite()) {
            return Err(invalid(field, format!("point {}: a feature is not a finite number", i / self.dim.max(1))));
        }
        Ok(())
    }
}

/// A valuation: each training point's value, in order, and the utility they add up to.
#[derive(Clone, Debug, PartialEq)]
pub struct Values {
    pub values: Vec<f64>,
    /// The utility of the whole training set (the mean KNN accuracy share over the test points).
    pub utility: f64,
}

/// Exact KNN-Shapley values of `train` for classifying `test` with `k` neighbours, on up to
/// `threads` threads (the result does not depend on how many).
pub fn knn_shapley<L: PartialEq + Sync>(train: &Points<L>, test: &Points<L>, k: usize, threads: usize) -> Result<Values, ValuationError> {
    train.check("train")?;
    test.check("test")?;
    if train.is_empty() {
        return Err(invalid("train", "no training points"));
    }
    if test.is_empty() {
        return Err(invalid("test", "no test points"));
    }
    if train.dim != test.dim {
        return Err(invalid("test", format!("{} features, the training points have {}", test.dim, train.dim)));
    }
    if k == 0 {
        return Err(invalid("k", "at least 1"));
    }
    let blocks: Vec<std::ops::Range<usize>> = (0..test.len()).step_by(BLOCK).map(|s| s..(s + BLOCK).min(test.len())).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut sums: Vec<Option<Vec<f64>>> = vec![None; blocks.len()];
    let done = std::sync::Mutex::new(&mut sums);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, blocks.len()) {
            scope.spawn(|| {
                loop {
                    let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(range) = blocks.get(b) else { break };
                    let sum = block_values(train, test, range.clone(), k);
                    if let Ok(mut d) = done.lock() {
                        d[b] = Some(sum);
                    }
                }
            });
        }
    });
    let mut values = vec![0.0; train.len()];
    for sum in sums.into_iter().flatten() {
        for (v, s) in values.iter_mut().zip(sum) {
            *v += s;
        }
    }
    let n_test = test.len() as f64;
    for v in &mut values {
        *v /= n_test;
    }
    let utility = values.iter().sum();
    Ok(Values { values, utility })
}

/// The sum over a block of test points of each training point's value for that point.
fn block_values<L: PartialEq>(train: &Points<L>, test: &Points<L>, range: std::ops::Range<usize>, k: usize) -> Vec<f64> {
    let n = train.len();
    let mut sum = vec![0.0; n];
    // Sorted as one integer each: a distance's bits (order-preserving for non-negative
    // floats) above the point's index, which breaks ties by index.
    let mut orders: Vec<Vec<u128>> = (0..TILE).map(|_| Vec::with_capacity(n)).collect();
    let tiles: Vec<usize> = range.step_by(TILE).collect();
    for start in tiles {
        let tile: Vec<usize> = (start..(start + TILE).min(test.len())).collect();
        distances(train, test, &tile, &mut orders);
        for (j, &t) in tile.iter().enumerate() {
            let order = &mut orders[j];
            order.sort_unstable();
            accumulate(&mut sum, order, &train.labels, &test.labels[t], k);
        }
    }
    sum
}

/// Test points whose distances are computed in one pass over the training points: each
/// training row is read from memory once per tile instead of once per test point, which is
/// what bounds this loop (100,000 rows of 384 numbers are 300 MB).
const TILE: usize = 8;

/// Fills `orders[j]` with the sort keys of every training point for test point `tile[j]`.
fn distances<L>(train: &Points<L>, test: &Points<L>, tile: &[usize], orders: &mut [Vec<u128>]) {
    for order in orders.iter_mut() {
        order.clear();
    }
    for i in 0..train.len() {
        let row = train.row(i);
        for (j, &t) in tile.iter().enumerate() {
            orders[j].push((u128::from(squared_distance(row, test.row(t)).to_bits()) << 64) | i as u128);
        }
    }
}

/// Adds one test point's KNN-Shapley values (its training points sorted by distance in
/// `order`) to `sum`, by the paper's recursion from the farthest point to the nearest.
fn accumulate<L: PartialEq>(sum: &mut [f64], order: &[u128], labels: &[L], label: &L, k: usize) {
    let n = order.len();
    let at = |i: usize| order[i] as u64 as usize;
    let hit = |i: usize| f64::from(u8::from(labels[at(i)] == *label));
    // The paper's m_N / N assumes N ≥ K; with fewer points than K every point is always
    // among the K nearest and is worth m_i / K, which max(N, K) gives in both cases.
    let mut s = hit(n - 1) / n.max(k) as f64;
    sum[at(n - 1)] += s;
    // From the second farthest to the nearest; `rank` is the 1-based rank of position i.
    for i in (0..n - 1).rev() {
        let rank = i + 1;
        s += (hit(i) - hit(i + 1)) / k.max(rank) as f64;
        sum[at(i)] += s;
    }
}

/// Squared Euclidean distance, summed in eight lanes (then the lanes, then the tail) so the
/// compiler can use SIMD; the order is fixed, so the result is the same on every run.
pub(crate) fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = x[l] - y[l];
            lanes[l] += d * d;
        }
    }
    let mut sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (x, y) in ra.iter().zip(rb) {
        sum += (x - y) * (x - y);
    }
    sum
}

/// Values per contributor: the sum of each contributor's points' values (`owners[i]` is
/// point i's), in the order contributors first appear. By efficiency they add up to the
/// utility.
pub fn per_contributor<'a>(values: &[f64], owners: &'a [String]) -> Vec<(&'a str, f64)> {
    let mut out: Vec<(&str, f64)> = Vec::new();
    for (v, o) in values.iter().zip(owners) {
        match out.iter_mut().find(|(name, _)| *name == o.as_str()) {
            Some((_, total)) => *total += v,
            None => out.push((o.as_str(), *v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use proptest::prelude::*;

    use super::*;

    fn points(rows: &[(&[f64], u32)]) -> Points<u32> {
        Points {
            dim: rows[0].0.len(),
            features: rows.iter().flat_map(|r| r.0.to_vec()).collect(),
            labels: rows.iter().map(|r| r.1).collect(),
        }
    }

    /// Shapley values by definition: every ordering of the training points, each point's
    /// marginal gain in the KNN utility (the share of the K nearest of a set that match).
    fn brute_force(train: &Points<u32>, test: &Points<u32>, k: usize) -> Vec<f64> {
        let n = train.len();
        let utility = |set: &[usize]| -> f64 {
            let mut u = 0.0;
            for t in 0..test.len() {
                let mut near: Vec<(f64, usize)> = set.iter().map(|&i| (squared_distance(train.row(i), test.row(t)), i)).collect();
                near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                u += near.iter().take(k).filter(|(_, i)| train.labels[*i] == test.labels[t]).count() as f64 / k as f64;
            }
            u / test.len() as f64
        };
        let mut perms: Vec<Vec<usize>> = vec![vec![]];
        for _ in 0..n {
            let mut longer = Vec::new();
            for p in &perms {
                for i in (0..n).filter(|i| !p.contains(i)) {
                    longer.push([p.clone(), vec![i]].concat());
                }
            }
            perms = longer;
        }
        let mut values = vec![0.0; n];
        for p in &perms {
            for (j, &i) in p.iter().enumerate() {
                values[i] += utility(&p[..=j]) - utility(&p[..j]);
            }
        }
        values.iter().map(|v| v / perms.len() as f64).collect()
    }

    #[test]
    fn matches_the_definition_on_small_sets() {
        let train = points(&[(&[0.0, 0.0], 1), (&[1.0, 0.0], 0), (&[0.0, 2.0], 1), (&[3.0, 1.0], 0), (&[-1.0, -1.0], 1)]);
        let test = points(&[(&[0.1, 0.1], 1), (&[2.5, 0.5], 0), (&[0.0, 1.5], 0)]);
        for k in 1..=7 {
            let got = knn_shapley(&train, &test, k, 2).unwrap();
            let want = brute_force(&train, &test, k);
            for (g, w) in got.values.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "k={k}: {:?} vs {want:?}", got.values);
            }
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let train = points(&[(&[0.0], 1)]);
        let test = points(&[(&[0.0, 1.0], 1)]);
        assert!(matches!(knn_shapley(&train, &test, 1, 1), Err(ValuationError::Invalid { field: "test", .. })));
        assert!(matches!(knn_shapley(&train, &train, 0, 1), Err(ValuationError::Invalid { field: "k", .. })));
        let bad = Points { features: vec![f64::NAN], dim: 1, labels: vec![1u32] };
        assert!(matches!(knn_shapley(&bad, &train, 1, 1), Err(ValuationError::Invalid { field: "train", .. })));
    }

    #[test]
    fn contributors_sum_their_points() {
        let owners = ["a", "b", "a"].map(String::from);
        assert_eq!(per_contributor(&[0.1, 0.2, 0.3], &owners), [("a", 0.4), ("b", 0.2)]);
    }

    proptest! {
        /// Efficiency: the values add up to the whole set's utility, whatever the threads.
        #[test]
        fn values_add_up_to_the_utility_and_ignore_threads(
            rows in proptest::collection::vec((-5.0f64..5.0, -5.0f64..5.0, 0u32..3), 2..40),
            tests in proptest::collection::vec((-5.0f64..5.0, -5.0f64..5.0, 0u32..3), 1..130),
            k in 1usize..6,
        ) {
            let train = Points { dim: 2, features: rows.iter().flat_map(|r| [r.0, r.1]).collect(), labels: rows.iter().map(|r| r.2).collect() };
            let test = Points { dim: 2, features: tests.iter().flat_map(|r| [r.0, r.1]).collect(), labels: tests.iter().map(|r| r.2).collect() };
            let one = knn_shapley(&train, &test, k, 1).unwrap();
            let two = knn_shapley(&train, &test, k, 3).unwrap();
            prop_assert_eq!(&one, &two);
            let mut accuracy = 0.0;
            for t in 0..test.len() {
                let mut near: Vec<(f64, usize)> = (0..train.len()).map(|i| (squared_distance(train.row(i), test.row(t)), i)).collect();
                near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                accuracy += near.iter().take(k).filter(|(_, i)| train.labels[*i] == test.labels[t]).count() as f64 / k as f64;
            }
            accuracy /= test.len() as f64;
            prop_assert!((one.utility - accuracy).abs() < 1e-9, "{} vs {}", one.utility, accuracy);
        }
    }
}
