//! `aiplus data value` against the reference implementation, side by side: pydvl's
//! `KNNShapleyValuation` (PyPI `pydvl`, which `scripts/test` installs) on scikit-learn's
//! bundled breast-cancer dataset. Every training row's value agrees to 1e-9.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn knn_shapley_matches_pydvl_on_breast_cancer() {
    let dir = common::temp_dir("valuation");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pydvl_knn.py");
    for k in [1, 5, 10] {
        let out = Command::new("python3").arg(&script).arg(&dir).arg(k.to_string()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pydvl failed (is pydvl installed? scripts/test installs it):\n{stderr}");
        let reference: Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').rfind(|l| !l.is_empty()).unwrap()).unwrap();
        let out = Command::new(common::BIN)
            .args(["data", "value", "--k", &k.to_string(), "--json", "--train"])
            .arg(dir.join("train.csv"))
            .arg("--test")
            .arg(dir.join("test.csv"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ours: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (want, got) = (reference["values"].as_array().unwrap(), ours["values"].as_array().unwrap());
        assert_eq!((want.len(), got.len()), (400, 400));
        let worst = want.iter().zip(got).map(|(w, g)| (w.as_f64().unwrap() - g.as_f64().unwrap()).abs()).fold(0.0, f64::max);
        assert!(worst <= 1e-9, "k={k}: the largest difference from pydvl is {worst:e}");
        // Efficiency: the values add up to the utility the CLI reports.
        let sum: f64 = got.iter().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - ours["utility"].as_f64().unwrap()).abs() < 1e-9);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
