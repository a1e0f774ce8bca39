//! The other valuations the exchange offers beside KNN-Shapley, on the same utility (the
//! unweighted K-nearest-neighbour utility of Jia et al. 2019: for one test point, the share of
//! the K nearest training points of a subset that carry its label, averaged over test points):
//!
//! - **Leave-one-out**: U(N) − U(N∖{i}). On this utility it has a closed form: removing a
//!   point changes only the test points it is among the K nearest of, where the (K+1)-th nearest
//!   moves in: (m_i − m_{α_{K+1}}) / K (with m = 0 beyond the last point).
//! - **Data Banzhaf by maximum sample reuse** (Wang & Jia, "Data Banzhaf", AISTATS 2023): draw
//!   subsets with each point in with probability ½, and value each point by the mean utility of
//!   the samples that hold it minus the mean of those that do not. Every sample serves every
//!   point, so m samples estimate all N values at once. The seed is an input: the same seed
//!   gives the same values.
//!
//! Neither adds up to the utility (only Shapley values do); settlement splits by Shapley
//! shares, and these are offered for comparison and audit.

use rand::{Rng as _, SeedableRng as _};

use crate::valuation::{Points, ValuationError, Values, invalid, squared_distance};

/// Most (training × test) pairs a Banzhaf estimate keeps sorted orders for (4 bytes each).
pub const MAX_BANZHAF_PAIRS: usize = 50_000_000;
/// Most samples one Banzhaf estimate draws.
pub const MAX_SAMPLES: usize = 1_000_000;

fn check<L>(train: &Points<L>, test: &Points<L>, k: usize) -> Result<(), ValuationError> {
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
    Ok(())
}

/// The training points from nearest to farthest from test point `t` (ties to the lower index).
fn sorted<L>(train: &Points<L>, test: &Points<L>, t: usize, order: &mut Vec<u128>) {
    let x = test.row(t);
    order.clear();
    order.extend((0..train.len()).map(|i| (u128::from(squared_distance(train.row(i), x).to_bits()) << 64) | i as u128));
    order.sort_unstable();
}

/// Leave-one-out values on the KNN utility, exactly.
pub fn leave_one_out<L: PartialEq>(train: &Points<L>, test: &Points<L>, k: usize) -> Result<Values, ValuationError> {
    check(train, test, k)?;
    let n = train.len();
    let mut values = vec![0.0; n];
    let mut utility = 0.0;
    let mut order = Vec::with_capacity(n);
    for t in 0..test.len() {
        sorted(train, test, t, &mut order);
        let hit = |r: usize| order.get(r).map_or(0.0, |&o| f64::from(u8::from(train.labels[o as u64 as usize] == test.labels[t])));
        let next = hit(k);
        for r in 0..k.min(n) {
            let h = hit(r);
            utility += h / k as f64;
            values[order[r] as u64 as usize] += (h - next) / k as f64;
        }
    }
    let n_test = test.len() as f64;
    values.iter_mut().for_each(|v| *v /= n_test);
    Ok(Values { values, utility: utility / n_test })
}

/// Data Banzhaf values estimated from `samples` random subsets drawn from `seed`.
pub fn banzhaf_msr<L: PartialEq>(
    train: &Points<L>,
    test: &Points<L>,
    k: usize,
    samples: usize,
    seed: u64,
) -> Result<Values, ValuationError> {
    check(train, test, k)?;
    if !(2..=MAX_SAMPLES).contains(&samples) {
        return Err(invalid("samples", format!("from 2 to {MAX_SAMPLES}")));
    }
    let (n, t_count) = (train.len(), test.len());
    if n.saturating_mul(t_count) > MAX_BANZHAF_PAIRS {
        return Err(invalid(
            "train",
            format!("{n} training × {t_count} test points; a Banzhaf estimate takes at most {MAX_BANZHAF_PAIRS}"),
        ));
    }
    // Each test point's order and hits, kept for every sample.
    let mut orders: Vec<u32> = Vec::with_capacity(n * t_count);
    let mut hits: Vec<bool> = Vec::with_capacity(n * t_count);
    let mut order = Vec::with_capacity(n);
    for t in 0..t_count {
        sorted(train, test, t, &mut order);
        for &o in &order {
            let i = o as u64 as usize;
            orders.push(i as u32);
            hits.push(train.labels[i] == test.labels[t]);
        }
    }
    let full = utility_of(&orders, &hits, n, k, &vec![true; n]);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut sum_in, mut n_in) = (vec![0.0; n], vec![0u64; n]);
    let (mut sum_all, mut count_all) = (0.0, 0u64);
    let mut member = vec![false; n];
    for _ in 0..samples {
        member.iter_mut().for_each(|m| *m = rng.random_bool(0.5));
        let u = utility_of(&orders, &hits, n, k, &member);
        sum_all += u;
        count_all += 1;
        for i in 0..n {
            if member[i] {
                sum_in[i] += u;
                n_in[i] += 1;
            }
        }
    }
    let values = (0..n)
        .map(|i| {
            let n_out = count_all - n_in[i];
            if n_in[i] == 0 || n_out == 0 {
                return 0.0;
            }
            sum_in[i] / n_in[i] as f64 - (sum_all - sum_in[i]) / n_out as f64
        })
        .collect();
    Ok(Values { values, utility: full })
}

/// The KNN utility of the subset `member`, from each test point's sorted order.
fn utility_of(orders: &[u32], hits: &[bool], n: usize, k: usize, member: &[bool]) -> f64 {
    let t_count = orders.len() / n;
    let mut total = 0.0;
    for t in 0..t_count {
        let (o, h) = (&orders[t * n..(t + 1) * n], &hits[t * n..(t + 1) * n]);
        let (mut taken, mut matched) = (0usize, 0usize);
        for (i, hit) in o.iter().zip(h) {
            if member[*i as usize] {
                taken += 1;
                matched += usize::from(*hit);
                if taken == k {
                    break;
                }
            }
        }
        total += matched as f64 / k as f64;
    }
    total / t_count as f64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn pts(n: usize, seed: u64) -> Points<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let features: Vec<f64> = (0..n * 2).map(|_| rng.random_range(-1.0..1.0)).collect();
        let labels =
            (0..n).map(|i| u8::from(features[2 * i] + 0.3 * features[2 * i + 1] > 0.0) ^ u8::from(rng.random_bool(0.15))).collect();
        Points { features, dim: 2, labels }
    }

    fn subset<L: Clone>(p: &Points<L>, mask: u32) -> Points<L> {
        let keep: Vec<usize> = (0..p.len()).filter(|i| mask >> i & 1 == 1).collect();
        Points {
            features: keep.iter().flat_map(|&i| p.row(i).to_vec()).collect(),
            dim: p.dim,
            labels: keep.iter().map(|&i| p.labels[i].clone()).collect(),
        }
    }

    /// The utility by its definition, for the brute-force checks.
    fn utility(train: &Points<u8>, test: &Points<u8>, k: usize) -> f64 {
        if train.is_empty() {
            return 0.0;
        }
        let mut order = Vec::new();
        let mut total = 0.0;
        for t in 0..test.len() {
            sorted(train, test, t, &mut order);
            let m = order.iter().take(k).filter(|&&o| train.labels[o as u64 as usize] == test.labels[t]).count();
            total += m as f64 / k as f64;
        }
        total / test.len() as f64
    }

    #[test]
    fn leave_one_out_is_the_utility_lost_by_removing_each_point() {
        let (train, test) = (pts(12, 1), pts(9, 2));
        for k in [1, 3, 5, 12, 20] {
            let v = leave_one_out(&train, &test, k).unwrap();
            let all = (1u32 << train.len()) - 1;
            assert!((v.utility - utility(&train, &test, k)).abs() < 1e-12);
            for i in 0..train.len() {
                let without = utility(&subset(&train, all & !(1 << i)), &test, k);
                assert!((v.values[i] - (v.utility - without)).abs() < 1e-12, "k={k} point {i}");
            }
        }
    }

    #[test]
    fn banzhaf_by_sampling_approaches_the_exact_banzhaf_values_and_repeats_with_its_seed() {
        let (train, test, k) = (pts(10, 3), pts(15, 4), 3);
        let n = train.len();
        let mut exact = vec![0.0; n];
        for mask in 0u32..(1 << n) {
            let u = utility(&subset(&train, mask), &test, k);
            for (i, e) in exact.iter_mut().enumerate() {
                *e += if mask >> i & 1 == 1 { u } else { -u };
            }
        }
        exact.iter_mut().for_each(|e| *e /= f64::from(1u32 << (n - 1)));
        let est = banzhaf_msr(&train, &test, k, 200_000, 7).unwrap();
        for (i, (e, x)) in exact.iter().zip(&est.values).enumerate() {
            assert!((e - x).abs() < 0.01, "point {i}: exact {e}, estimated {x}");
        }
        assert_eq!(est, banzhaf_msr(&train, &test, k, 200_000, 7).unwrap());
        assert_ne!(est.values, banzhaf_msr(&train, &test, k, 200_000, 8).unwrap().values);
    }

    #[test]
    fn inputs_are_checked_naming_the_field() {
        let (train, test) = (pts(4, 5), pts(3, 6));
        assert!(matches!(banzhaf_msr(&train, &test, 2, 1, 0), Err(ValuationError::Invalid { field: "samples", .. })));
        assert!(matches!(leave_one_out(&train, &test, 0), Err(ValuationError::Invalid { field: "k", .. })));
    }
}
