//! `aiplus data`: the data exchange's tools. `value`: the values of the rows of a training CSV
//! for classifying a test CSV (exact KNN-Shapley by default, or leave-one-out, or Data Banzhaf),
//! standalone, for auditors who want to check a valuation on their own machine; and `bench`,
//! KNN-Shapley's speed on embedding-sized vectors.

use std::path::{Path, PathBuf};

use anyhow::Context;
use data::valuation::{Points, knn_shapley};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(clap::Subcommand, Debug)]
enum DataCommand {
    /// Each training row's value for a K-nearest-neighbour classifier of the test rows: exact
    /// KNN-Shapley (Jia et al., VLDB 2019) by default. Both CSVs hold numeric features with the
    /// label in the last column (a header row is skipped). Prints one value per training row,
    /// in row order; Shapley values add up to the whole training set's utility.
    Value {
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        test: PathBuf,
        /// Neighbours of the classifier.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Threads to use (the values do not depend on it); default: every core.
        #[arg(long)]
        threads: Option<usize>,
        /// `knn-shapley` (exact; the values add up to the utility), `loo` (leave-one-out, exact)
        /// or `banzhaf` (Data Banzhaf estimated from --samples random subsets drawn from --seed).
        #[arg(long, value_enum, default_value_t = Method::KnnShapley)]
        method: Method,
        #[arg(long, default_value_t = 10_000)]
        samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print {"values": [...], "utility", "k", "method", "train", "test"} instead of one
        /// value a line.
        #[arg(long)]
        json: bool,
    },
    /// Measure exact KNN-Shapley on random unit vectors (384 numbers, as the embedded model's
    /// embeddings) with 10 labels: the time at 10%, 30% and all of --train, for the scaling.
    Bench {
        #[arg(long, default_value_t = 100_000)]
        train: usize,
        #[arg(long, default_value_t = 1000)]
        test: usize,
        #[arg(long, default_value_t = 384)]
        dim: usize,
        #[arg(long, default_value_t = 5)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Remote(crate::data_remote_cli::RemoteCommand),
}

/// How `aiplus data value` values the rows.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    KnnShapley,
    Loo,
    Banzhaf,
}

pub fn data(args: DataArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Value { train, test, k, threads, method, samples, seed, json } => {
            value(&train, &test, k, threads, (method, samples, seed), json)
        }
        DataCommand::Bench { train, test, dim, k, json } => bench(train, test, dim, k, json),
        DataCommand::Remote(cmd) => crate::data_remote_cli::run(cmd),
    }
}

/// `n` random unit vectors of `dim` numbers with labels 0..10, from a fixed seed.
fn random_points(n: usize, dim: usize, seed: u64) -> Points<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let v: Vec<f64> = (0..dim).map(|_| rng.random::<f64>() - 0.5).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        features.extend(v.iter().map(|x| x / norm));
        labels.push(rng.random_range(0..10u8));
    }
    Points { features, dim, labels }
}

fn bench(train: usize, test: usize, dim: usize, k: usize, as_json: bool) -> anyhow::Result<()> {
    anyhow::ensure!((10..=1_000_000).contains(&train), "--train: 10 to 1000000");
    anyhow::ensure!((1..=100_000).contains(&test) && (1..=4096).contains(&dim), "--test: 1 to 100000; --dim: 1 to 4096");
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let queries = random_points(test, dim, 2);
    let all = random_points(train, dim, 1);
    let mut rows = Vec::new();
    for n in [train / 10, train * 3 / 10, train] {
        let part = Points { features: all.features[..n * dim].to_vec(), dim, labels: all.labels[..n].to_vec() };
        let started = std::time::Instant::now();
        let v = knn_shapley(&part, &queries, k, threads).map_err(|e| anyhow::anyhow!("{e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        if !as_json {
            println!(
                "{n:>9} training × {test} test points × {dim} features, K = {k}, {threads} threads: {seconds:.2} s (utility {:.4})",
                v.utility
            );
        }
        rows.push(json!({"train": n, "test": test, "dim": dim, "k": k, "threads": threads, "seconds": seconds}));
    }
    if as_json {
        println!("{}", serde_json::Value::Array(rows));
    }
    Ok(())
}

fn value(train: &Path, test: &Path, k: usize, threads: Option<usize>, how: (Method, usize, u64), as_json: bool) -> anyhow::Result<()> {
    let (train_points, test_points) = (read_points(train)?, read_points(test)?);
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let (method, samples, seed) = how;
    let v = match method {
        Method::KnnShapley => knn_shapley(&train_points, &test_points, k, threads),
        Method::Loo => data::semivalues::leave_one_out(&train_points, &test_points, k),
        Method::Banzhaf => data::semivalues::banzhaf_msr(&train_points, &test_points, k, samples, seed),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if as_json {
        let name = match method {
            Method::KnnShapley => "knn-shapley",
            Method::Loo => "loo",
            Method::Banzhaf => "banzhaf",
        };
        let out = json!({"k": k, "method": name, "train": train_points.len(), "test": test_points.len(), "utility": v.utility, "values": v.values});
        println!("{out}");
    } else {
        for x in &v.values {
            println!("{x}");
        }
    }
    Ok(())
}

/// A numeric CSV with the label last, as `data::table` reads it.
fn read_points(path: &Path) -> anyhow::Result<Points<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let table = data::table::read_csv(&bytes, None, "csv").map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(table.points)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn csvs_read_with_or_without_a_header() {
        let dir = std::env::temp_dir().join(format!("aiplus-data-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.csv");
        std::fs::write(&p, "a,b,label\n1,2,1.0\n3,4,cat\n").unwrap();
        let pts = read_points(&p).unwrap();
        assert_eq!((pts.dim, pts.features, pts.labels), (2, vec![1.0, 2.0, 3.0, 4.0], vec!["1".to_string(), "cat".to_string()]));
        std::fs::write(&p, "1,2,0\nx,4,1\n").unwrap();
        assert!(read_points(&p).unwrap_err().to_string().contains("line 2"));
        std::fs::write(&p, "1,2,0\n1,1\n").unwrap();
        assert!(read_points(&p).is_err(), "rows of different lengths");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
