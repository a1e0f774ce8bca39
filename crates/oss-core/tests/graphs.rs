//! OpenDigger's two OpenRank graphs for a month: global (developers and repos) and community
//! (developers and issues inside a repo). Checked against the rules written out again here and
//! solved exactly, and for the properties the issue names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_range_loop,
    reason = "tests; Gaussian elimination reads best by index"
)]

use std::collections::{BTreeMap, BTreeSet};

use oss_core::community::{self, CommunityParams};
use oss_core::global::{self, GlobalParams, History, Node, Pair};
use oss_core::openrank::Settings;
use proptest::prelude::*;

/// Solves `v = r·init + (1 − r)·Wᵀv` exactly by Gaussian elimination: the fixed point the
/// iteration approaches.
fn solve(init: &[f64], retention: &[f64], edges: &[(usize, usize, f64)]) -> Vec<f64> {
    let n = init.len();
    let mut a = vec![vec![0.0; n + 1]; n];
    for t in 0..n {
        a[t][t] = 1.0;
        a[t][n] = retention[t] * init[t];
    }
    for &(s, t, w) in edges {
        a[t][s] -= (1.0 - retention[t]) * w;
    }
    for c in 0..n {
        let p = (c..n).max_by(|x, y| a[*x][c].abs().total_cmp(&a[*y][c].abs())).unwrap();
        a.swap(c, p);
        for r in 0..n {
            if r != c {
                let f = a[r][c] / a[c][c];
                for k in c..=n {
                    a[r][k] -= f * a[c][k];
                }
            }
        }
    }
    (0..n).map(|i| a[i][n] / a[i][i]).collect()
}

fn tight() -> GlobalParams {
    GlobalParams { settings: Settings { tolerance: 1e-12, max_iterations: 10_000 }, ..GlobalParams::OPENDIGGER }
}

#[test]
fn the_global_graph_follows_opendiggers_rules() {
    // Two repos, three developers; developer 12 has history from two months ago.
    let pairs = [
        Pair { repo: 1, user: 10, activity: 62.914 },
        Pair { repo: 1, user: 11, activity: 5.252 },
        Pair { repo: 2, user: 11, activity: 40.679 },
        Pair { repo: 2, user: 12, activity: 14.695 },
    ];
    let history: History = BTreeMap::from([(Node::User(12), (98, 3.0)), (Node::Repo(9), (99, 7.0))]);
    let m = global::month(&pairs, &history, 100, &tight()).unwrap();

    // The rules again: nodes u10 u11 u12 r1 r2 bg.
    let act_u = [62.914, 5.252 + 40.679, 14.695];
    let act_r = [62.914 + 5.252, 40.679 + 14.695];
    let sig = |a: f64| 1.0 / (1.0 + (0.10425 * (44.08 - a)).exp());
    let init = [sig(act_u[0]), sig(act_u[1]), sig(act_u[2]) + 3.0 * 0.85 * 0.85, 0.0, 0.0, 0.0];
    let retention = [0.5, 0.5, 0.5, 0.3, 0.3, 0.15];
    let mut edges = vec![];
    for (r, u, a) in [(3, 0, 62.914), (3, 1, 5.252), (4, 1, 40.679), (4, 2, 14.695)] {
        edges.push((r, u, 0.95 * a / act_r[r - 3]));
        edges.push((u, r, 0.95 * a / act_u[u]));
    }
    for i in 0..5 {
        edges.push((i, 5, 0.05));
        edges.push((5, i, 1.0 / 5.0));
    }
    let exact = solve(&init, &retention, &edges);
    let want: Vec<(Node, f64)> = [Node::User(10), Node::User(11), Node::User(12), Node::Repo(1), Node::Repo(2)]
        .into_iter()
        .zip(exact.iter().map(|v| v + exact[5] / 5.0))
        .collect();
    assert_eq!(m.values.len(), want.len());
    for ((n, v), (wn, w)) in m.values.iter().zip(&want) {
        assert_eq!(n, wn);
        assert!((v - w).abs() < 1e-9, "{n:?}: {v} vs {w}");
    }
    assert!(m.converged);
    // Repo 9 had no activity this month: it is not ranked, and its value stays where it was.
    assert!(!m.values.iter().any(|(n, _)| *n == Node::Repo(9)));
}

#[test]
fn automated_accounts_are_dropped_with_their_share_of_repos() {
    let p = GlobalParams { max_repos_per_user: 2, ..tight() };
    let pairs = [
        Pair { repo: 1, user: 7, activity: 5.252 },
        Pair { repo: 2, user: 7, activity: 5.252 },
        Pair { repo: 3, user: 7, activity: 5.252 },
        Pair { repo: 3, user: 8, activity: 22.235 },
    ];
    let m = global::month(&pairs, &History::new(), 1, &p).unwrap();
    assert_eq!(m.dropped_users, [7]);
    // Repos 1 and 2 had only the bot: left with 0, they are dropped; repo 3 keeps developer 8's part.
    let nodes: Vec<Node> = m.values.iter().map(|x| x.0).collect();
    assert_eq!(nodes, [Node::User(8), Node::Repo(3)]);
    assert_eq!(m.activity[&Node::Repo(3)], 22.235 + 5.252 - 5.252);
}

fn pair_sets() -> impl Strategy<Value = Vec<Pair>> {
    prop::collection::vec((1u64..6, 10u64..18, 1u32..50_000), 1..40).prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|(r, u, _)| seen.insert((*r, *u)))
            .map(|(repo, user, a)| Pair { repo, user, activity: f64::from(a) / 1000.0 + 5.0 })
            .collect()
    })
}

fn histories() -> impl Strategy<Value = History> {
    prop::collection::btree_map(
        prop_oneof![(10u64..20).prop_map(Node::User), (1u64..8).prop_map(Node::Repo)],
        (90i32..100, 0.0f64..50.0),
        0..10,
    )
}

proptest! {
    #[test]
    fn global_values_are_non_negative_and_do_not_depend_on_order(pairs in pair_sets(), history in histories(), seed in any::<u64>()) {
        let p = GlobalParams::OPENDIGGER;
        let m = global::month(&pairs, &history, 100, &p).unwrap();
        prop_assert!(m.values.iter().all(|(_, v)| *v >= 0.0 && v.is_finite()));
        let mut shuffled = pairs.clone();
        let k = shuffled.len();
        shuffled.rotate_left((seed as usize) % k);
        if seed % 2 == 0 { shuffled.reverse(); }
        prop_assert_eq!(global::month(&shuffled, &history, 100, &p).unwrap(), m);
    }

    #[test]
    fn a_developer_without_events_keeps_only_the_attenuated_part_of_their_history(pairs in pair_sets(), value in 0.5f64..100.0, gap in 1i32..6) {
        let p = GlobalParams::OPENDIGGER;
        let idle = Node::User(99);
        let mut history = History::new();
        history.insert(idle, (100 - gap, value));
        let m = global::month(&pairs, &history, 100, &p).unwrap();
        prop_assert!(!m.values.iter().any(|(n, _)| *n == idle), "no events, no node");
        let mut after = history.clone();
        global::remember(&mut after, &m, 100);
        prop_assert_eq!(after[&idle], (100 - gap, value));
        // What they carry into the month is their value × 0.85 per month, nothing more.
        let want = value * 0.85f64.powi(gap);
        prop_assert_eq!(global::carried(&after, idle, 100, &p), if want > 0.01 { want } else { 0.0 });
    }

    #[test]
    fn doubling_every_weight_leaves_global_ranks_unchanged(pairs in pair_sets()) {
        let p = GlobalParams::OPENDIGGER;
        let rank = |pairs: &[Pair]| {
            let mut activity: BTreeMap<Node, f64> = BTreeMap::new();
            for x in pairs {
                *activity.entry(Node::User(x.user)).or_default() += x.activity;
                *activity.entry(Node::Repo(x.repo)).or_default() += x.activity;
            }
            let nodes: Vec<Node> = activity.keys().copied().collect();
            let init = nodes.iter().enumerate().map(|(i, _)| 1.0 + i as f64).collect();
            global::rank(pairs, &nodes, &activity, init, &p).unwrap()
        };
        let doubled: Vec<Pair> = pairs.iter().map(|x| Pair { activity: 2.0 * x.activity, ..*x }).collect();
        prop_assert_eq!(rank(&doubled), rank(&pairs));
    }

    #[test]
    fn community_values_are_non_negative_order_free_and_scale_free(
        raw in prop::collection::vec((10u64..16, 1u32..12, any::<bool>(), 1u32..50_000, any::<bool>()), 1..40),
    ) {
        let p = CommunityParams::OPENDIGGER;
        let mut seen = BTreeSet::new();
        let links: Vec<community::Link> = raw.into_iter()
            .filter(|(u, n, pull, _, _)| seen.insert((*u, *n, *pull)))
            .map(|(user, n, pull, a, merged)| community::Link { user, issue: community::Node::Issue(1, n, pull), activity: f64::from(a) / 1000.0 + 5.0, merged: merged && pull })
            .collect();
        let m = community::month(&links, &community::History::new(), 5, &p).unwrap();
        prop_assert!(m.values.iter().all(|(_, v)| *v >= 0.0 && v.is_finite()));
        let mut rev = links.clone();
        rev.reverse();
        prop_assert_eq!(community::month(&rev, &community::History::new(), 5, &p).unwrap(), m.clone());
        let doubled: Vec<community::Link> = links.iter().map(|l| community::Link { activity: 2.0 * l.activity, ..*l }).collect();
        prop_assert_eq!(community::month(&doubled, &community::History::new(), 5, &p).unwrap(), m);
    }
}

#[test]
fn community_follows_opendiggers_rules() {
    use community::{Link, Node as C};
    // Developer 1 opened PR #3 (merged) and developer 2 commented on issue #4, which 1 opened.
    let links = [
        Link { user: 1, issue: C::Issue(7, 3, true), activity: 40.679, merged: true },
        Link { user: 1, issue: C::Issue(7, 4, false), activity: 22.235, merged: false },
        Link { user: 2, issue: C::Issue(7, 4, false), activity: 5.252, merged: false },
    ];
    // Developer 2 had 4.0 two months ago: inherited × 0.85 (one month beyond the last).
    let history = BTreeMap::from([(8, BTreeMap::from([(C::User(2), 4.0)]))]);
    let m = community::month(&links, &history, 10, &CommunityParams::OPENDIGGER).unwrap();
    // Nodes u1 u2 i4 p3 root, as ordered by the node type.
    let order: Vec<C> = m.values.iter().map(|x| x.0).collect();
    assert_eq!(order, [C::User(1), C::User(2), C::Issue(7, 3, true), C::Issue(7, 4, false), C::Root]);
    let (u1, u2, p3, i4) = (40.679 + 22.235, 5.252, 40.679, 22.235 + 5.252);
    let init = [1.0, 4.0 * 0.85, 1.5, 1.0, 1.0];
    let mut edges = vec![];
    for (i, u, a, ia, ua) in [(2, 0, 40.679, p3, u1), (3, 0, 22.235, i4, u1), (3, 1, 5.252, i4, u2)] {
        edges.push((i, u, 0.95 * a / ia));
        edges.push((u, i, 0.95 * a / ua));
    }
    for i in 0..4 {
        edges.push((i, 4, 0.05));
        edges.push((4, i, 0.25));
    }
    let exact = solve(&init, &[0.15; 5], &edges);
    for ((n, v), w) in m.values.iter().zip(&exact) {
        assert!((v - w).abs() < 1e-6, "{n:?}: {v} vs {w}");
    }
}
