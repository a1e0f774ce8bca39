//! OpenRank against the 6-node graph of openrank-neo4j-gds's tests
//! (`../shared/oss/openrank/pregel-test-vector.json`), and its properties.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use oss_core::openrank::{Graph, Settings, openrank};
use proptest::prelude::*;

fn vector() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/oss/openrank/pregel-test-vector.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_six_node_graph_gives_the_reference_values() {
    let v = vector();
    let names: Vec<String> = v["nodes"].as_object().unwrap().keys().cloned().collect();
    let ix = |n: &str| names.iter().position(|x| x == n).unwrap() as u32;
    let node = |n: &String, f: &str| v["nodes"][n][f].as_f64().unwrap();
    let g = Graph {
        init: names.iter().map(|n| node(n, "init")).collect(),
        retention: names.iter().map(|n| node(n, "retention")).collect(),
        edges: v["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (ix(e[0].as_str().unwrap()), ix(e[1].as_str().unwrap()), e[2].as_f64().unwrap()))
            .collect(),
    };
    let r = openrank(&g, Settings { tolerance: 1e-9, max_iterations: 1000 }).unwrap();
    assert!(r.converged, "{r:?}");
    let tolerance = v["tolerance"].as_f64().unwrap();
    for (i, n) in names.iter().enumerate() {
        let want = v["expected"][n].as_f64().unwrap();
        assert!((r.values[i] - want).abs() <= tolerance, "{n}: {} vs the reference {want}", r.values[i]);
    }
}

fn graphs() -> impl Strategy<Value = Graph> {
    (2usize..12).prop_flat_map(|n| {
        let nodes = proptest::collection::vec((0.0f64..5.0, 0.05f64..1.0), n);
        let edges = proptest::collection::vec((0..n as u32, 0..n as u32, 0.0f64..1.0), 0..40);
        (nodes, edges).prop_map(|(nodes, mut edges)| {
            // Each node gives out at most all it has: its outgoing weights sum to 1 or less.
            let mut out = vec![0.0; nodes.len()];
            for e in &edges {
                out[e.0 as usize] += e.2;
            }
            for e in &mut edges {
                if out[e.0 as usize] > 1.0 {
                    e.2 /= out[e.0 as usize];
                }
            }
            Graph { init: nodes.iter().map(|x| x.0).collect(), retention: nodes.iter().map(|x| x.1).collect(), edges }
        })
    })
}

const TIGHT: Settings = Settings { tolerance: 1e-10, max_iterations: 10_000 };

proptest! {
    #[test]
    fn values_are_never_negative(g in graphs()) {
        let r = openrank(&g, TIGHT).unwrap();
        prop_assert!(r.values.iter().all(|v| *v >= 0.0), "{:?}", r.values);
    }

    #[test]
    fn the_order_of_the_edges_changes_nothing(g in graphs(), seed in any::<u64>()) {
        let mut shuffled = g.clone();
        // A deterministic shuffle from the seed (a Fisher–Yates over a simple LCG).
        let mut x = seed | 1;
        for i in (1..shuffled.edges.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.edges.swap(i, (x >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(openrank(&g, TIGHT).unwrap(), openrank(&shuffled, TIGHT).unwrap());
    }

    #[test]
    fn a_node_with_no_incoming_edges_keeps_only_its_retained_share(g in graphs()) {
        let r = openrank(&g, TIGHT).unwrap();
        for t in 0..g.init.len() {
            if !g.edges.iter().any(|e| e.1 as usize == t && e.2 > 0.0) {
                prop_assert!((r.values[t] - g.retention[t] * g.init[t]).abs() < 1e-9);
            }
        }
    }
}
