//! `aiplus compute inference-sim`, run as a user runs it: the real binary on the real Azure LLM
//! inference traces (read from ../shared, as tests may).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_aiplus");

fn traces() -> [PathBuf; 2] {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/azure-llm-2023");
    [dir.join("AzureLLMInferenceTrace_code.csv"), dir.join("AzureLLMInferenceTrace_conv.csv")]
}

#[test]
fn inference_sim_prints_a_json_report_and_refuses_bad_flags_by_name() {
    let chart = std::env::temp_dir().join(format!("aiplus-inference-{}.svg", std::process::id()));
    let out = Command::new(BIN)
        .args(["compute", "inference-sim", "--json", "--seed", "3", "--trace"])
        .args(traces())
        .arg("--chart")
        .arg(&chart)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["requests"], 8819 + 19_366);
    assert_eq!(report["seed"], 3);
    assert_eq!(report["trace_start_cst"], "2023-11-17 02:15:46 CST");
    let services: Vec<&str> = report["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(services, ["code", "conv"]);
    let policies = report["policies"].as_array().unwrap();
    let names: Vec<&str> = policies.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["nearest", "round-robin", "cheapest", "aiplus"]);
    for p in policies {
        for k in [
            "slo_attainment",
            "ttft_slo_attainment",
            "tbt_slo_attainment",
            "ttft_ms_p50",
            "ttft_ms_p95",
            "ttft_ms_p99",
            "replicas_peak",
            "replica_hours",
            "energy_kwh",
            "energy_cost_cny_per_1k_tokens",
            "carbon_g_per_1k_tokens",
            "tokens_in",
            "tokens_out",
        ] {
            assert!(p[k].is_number(), "{} is missing {k}", p["name"]);
        }
        assert_eq!(p["served"], report["requests"]);
        assert_eq!(p["residency_violations"], 0);
        let series = &p["series"];
        assert_eq!(series["arrivals_per_s"].as_array().unwrap().len(), series["replicas"].as_array().unwrap().len());
    }
    assert!(report["comparison"]["aiplus_carbon_per_1k_tokens_vs_nearest"].is_number());
    assert!(std::fs::read_to_string(&chart).unwrap().starts_with("<svg"));
    let _ = std::fs::remove_file(&chart);

    // A value out of range is refused naming its flag, and so is a flag that does not exist.
    let out = Command::new(BIN).args(["compute", "inference-sim", "--copies", "0", "--trace"]).args(traces()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--copies: must be 1..=100, got 0"), "{err}");
    let out = Command::new(BIN).args(["compute", "inference-sim", "--replicas", "3", "--trace"]).args(traces()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--replicas"), "{err}");
    let out =
        Command::new(BIN).args(["compute", "inference-sim", "--time-compression", "fast", "--trace"]).args(traces()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--time-compression"), "{err}");
}
