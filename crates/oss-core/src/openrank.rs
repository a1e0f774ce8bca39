//! OpenRank: every node keeps a share of its own initial value (its retention) and takes the
//! rest from its neighbours, in proportion to the weights of their edges to it:
//!
//! `v(n) = r(n)·init(n) + (1 − r(n)) · Σ_{a→n} w(a→n) · v(a)`
//!
//! iterated from `v = init` until no value moves by more than the tolerance in one iteration, or
//! the iteration cap is reached; both are reported. This is the fixed point of X-lab's OpenRank
//! (openrank-neo4j-gds, which OpenDigger's `globalOpenrank.ts` calls with tolerance 0.01 and 100
//! iterations). Its stopping rule differs: the Pregel version starts from `r·init`, and stops
//! once every node has, at some superstep, moved by less than the tolerance, so at a loose
//! tolerance its values can differ from these by about the tolerance. Sums run in a fixed
//! order, so the result is the same bit for bit however the edges were given.

/// Most nodes and edges one graph may have (a month of GitHub has a few million nodes).
pub const MAX_NODES: usize = 100_000_000;
pub const MAX_EDGES: usize = 1_000_000_000;

/// A graph: per node its initial value and retention, and weighted edges between nodes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub init: Vec<f64>,
    pub retention: Vec<f64>,
    /// (from, to, weight).
    pub edges: Vec<(u32, u32, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Stop when no value moves by more than this in one iteration.
    pub tolerance: f64,
    pub max_iterations: u32,
}

/// OpenDigger's global settings.
pub const OPENDIGGER: Settings = Settings { tolerance: 0.01, max_iterations: 100 };

#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    pub values: Vec<f64>,
    pub iterations: u32,
    /// The largest move in the last iteration.
    pub delta: f64,
    pub converged: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), reason: reason.into() }
}

impl Graph {
    fn check(&self) -> Result<(), Invalid> {
        let n = self.init.len();
        if n > MAX_NODES || self.edges.len() > MAX_EDGES {
            return Err(invalid("graph", format!("at most {MAX_NODES} nodes and {MAX_EDGES} edges")));
        }
        if self.retention.len() != n {
            return Err(invalid("retention", format!("one per node: {n} nodes, {} retentions", self.retention.len())));
        }
        if let Some(i) = self.init.iter().position(|x| !x.is_finite() || *x < 0.0) {
            return Err(invalid(format!("init[{i}]"), "a finite value of 0 or more"));
        }
        if let Some(i) = self.retention.iter().position(|x| !(0.0..=1.0).contains(x)) {
            return Err(invalid(format!("retention[{i}]"), "from 0 to 1"));
        }
        for (i, &(a, b, w)) in self.edges.iter().enumerate() {
            if a as usize >= n || b as usize >= n || !w.is_finite() || w < 0.0 {
                return Err(invalid(format!("edges[{i}]"), "two nodes of the graph and a finite weight of 0 or more"));
            }
        }
        Ok(())
    }
}

/// Ranks a graph.
pub fn openrank(g: &Graph, s: Settings) -> Result<Ranked, Invalid> {
    g.check()?;
    if s.tolerance.is_nan() || s.tolerance <= 0.0 || s.max_iterations == 0 {
        return Err(invalid("settings", "a tolerance above 0 and at least one iteration"));
    }
    // Incoming edges grouped by target and sorted, so each sum has one order whatever the input's.
    let mut incoming = g.edges.clone();
    incoming.sort_by(|x, y| (x.1, x.0).cmp(&(y.1, y.0)).then(x.2.total_cmp(&y.2)));
    let n = g.init.len();
    let mut start = vec![0usize; n + 1];
    for &(_, b, _) in &incoming {
        start[b as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut v = g.init.clone();
    let mut next = vec![0.0; n];
    let (mut iterations, mut delta) = (0, f64::INFINITY);
    while iterations < s.max_iterations && delta > s.tolerance {
        delta = 0.0;
        for t in 0..n {
            let flow: f64 = incoming[start[t]..start[t + 1]].iter().map(|&(a, _, w)| w * v[a as usize]).sum();
            next[t] = g.retention[t] * g.init[t] + (1.0 - g.retention[t]) * flow;
            delta = f64::max(delta, (next[t] - v[t]).abs());
        }
        std::mem::swap(&mut v, &mut next);
        iterations += 1;
    }
    Ok(Ranked { values: v, iterations, delta, converged: delta <= s.tolerance })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn bad_graphs_name_their_field() {
        let g = Graph { init: vec![1.0], retention: vec![1.5], edges: vec![] };
        assert_eq!(openrank(&g, OPENDIGGER).unwrap_err().field, "retention[0]");
        let g = Graph { init: vec![1.0], retention: vec![0.5], edges: vec![(0, 3, 1.0)] };
        assert_eq!(openrank(&g, OPENDIGGER).unwrap_err().field, "edges[0]");
    }

    #[test]
    fn a_node_without_neighbours_keeps_its_retained_share() {
        let g = Graph { init: vec![2.0], retention: vec![0.3], edges: vec![] };
        let r = openrank(&g, Settings { tolerance: 1e-12, max_iterations: 100 }).unwrap();
        assert!((r.values[0] - 0.6).abs() < 1e-12 && r.converged, "{r:?}");
    }
}
