//! The management API fuzzed from its own OpenAPI document by schemathesis (PyPI, installed by
//! scripts/test), against the real binary: every check schemathesis has (no 5xx, responses and
//! content types as documented, schema-violating requests refused, schema-valid ones accepted,
//! auth not ignored, 405 for undeclared methods), once as an operator acting for a tenant and
//! once as that tenant's admin key. `/v1` and the revocations are left out (see below). The settings, and the few operations that may answer 422
//! to a schema-valid request, are in tests/schemathesis.toml.
//!
//! `AIPLUS_SCHEMATHESIS_EXAMPLES` sets the examples per operation (default 30; the closing
//! figures of issue 10 used 200).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, TENANT, temp_dir};
use serde_json::json;

fn schemathesis(s: &Server, bearer: &str, extra_header: Option<&str>, reports: &Path) -> (bool, String) {
    let examples = std::env::var("AIPLUS_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "30".into());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let mut cmd = Command::new("schemathesis");
    // Its cache directory goes where the reports go, not into the source tree.
    cmd.current_dir(reports.parent().unwrap());
    cmd.arg("--config-file").arg(&config).arg("run").arg(format!("{}/api/v1/openapi.json", s.url));
    cmd.args(["-H", &format!("Authorization: Bearer {bearer}")]);
    if let Some(h) = extra_header {
        cmd.args(["-H", h]);
    }
    // The OpenAI-compatible routes follow OpenAI's own spec and are tested with the official SDK.
    // Revocation is left out: the stateful phase would revoke the very credential it runs with
    // (it finds the ids in the lists), and every later answer would be a 401 (revocation is
    // tested by tests/authz.rs and the identity crate).
    cmd.args(["--exclude-path-regex", "^/v1/|/revoke$", "-n", &examples, "--seed", "20261201", "--workers", "2", "--no-color"]);
    cmd.args(["--report", "junit", "--report-dir"]).arg(reports);
    let out = cmd.output().expect("schemathesis is installed (scripts/test installs it from PyPI)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The lines of schemathesis's summary worth keeping in the test's output.
fn summary(text: &str) -> String {
    text.lines()
        .filter(|l| l.contains("generated") || l.contains("failures") || l.contains("Selected") || l.contains("Tested") || l.contains("❌"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_management_api_meets_its_openapi_document_under_schemathesis() {
    let data = temp_dir("schemathesis");
    let s = Server::start(&data);
    let tenant_header = format!("X-Aiplus-Tenant: {TENANT}");
    let (ok, text) = schemathesis(&s, &s.token, Some(&tenant_header), &data.join("reports-operator"));
    println!("== schemathesis as operator\n{}", summary(&text));
    assert!(ok, "schemathesis as operator found failures:\n{text}");
    let key = s.key(TENANT, &json!({"role": "tenant-admin", "scopes": ["inference", "jobs", "usage", "admin", "data"]}));
    let (ok, text) = schemathesis(&s, key["secret"].as_str().unwrap(), None, &data.join("reports-tenant-admin"));
    println!("== schemathesis as tenant admin\n{}", summary(&text));
    assert!(ok, "schemathesis as tenant admin found failures:\n{text}");
    // The server took all of it and still answers.
    assert_eq!(s.get("/api/v1/whoami").0, 200);
}
