//! Tidy: the Architecture Invariants of ARCHITECTURE.md that a machine can check, by reading the
//! workspace's manifests and sources.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests: helpers fail loudly")]

use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every crate: (name, manifest text).
fn manifests() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(crates_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read_to_string(p.join("Cargo.toml")).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 12, "found {} crates", out.len());
    out
}

/// The dependencies a manifest's `[dependencies]` table names (not dev-dependencies).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once(['=', '.']) {
            out.push(name.trim().to_string());
        }
    }
    out
}

/// Every `.rs` file under `crates/<krate>/src`.
fn sources(krate: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![crates_dir().join(krate).join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    out.sort();
    out
}

/// The source without its `#[cfg(test)]` modules (tests may read clocks and draw numbers).
fn product_code(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

#[test]
fn sqlx_is_only_in_the_store_and_anyhow_only_in_the_binary() {
    for (name, manifest) in manifests() {
        let deps = dependencies(&manifest);
        assert!(name == "store" || !deps.contains(&"sqlx".to_string()), "{name} depends on sqlx: only the store knows SQL");
        assert!(name == "aiplus" || !deps.contains(&"anyhow".to_string()), "{name} depends on anyhow: one error type per boundary");
    }
}

#[test]
fn http_is_only_at_the_edges() {
    // The gateway still holds its `/v1` handlers beside its pipeline, so it is an edge too;
    // `problem` is the edges' one problem+json vocabulary.
    let edges = ["api", "gateway", "web", "aiplus", "problem"];
    for (name, manifest) in manifests() {
        if dependencies(&manifest).contains(&"axum".to_string()) {
            assert!(edges.contains(&name.as_str()), "{name} depends on axum, but only {edges:?} speak HTTP");
        }
    }
}

/// Governance, the transparency log and evaluation speak no HTTP at all, not even as clients:
/// governance's webhooks are posted by a function the binary hands in, and evaluation asks its
/// models through the `eval::run::Model` the binary implements (ARCHITECTURE.md).
#[test]
fn governance_and_evaluation_speak_no_http() {
    for (name, manifest) in manifests().into_iter().filter(|(n, _)| ["govern", "tlog", "eval"].contains(&n.as_str())) {
        let deps = dependencies(&manifest);
        for http in ["axum", "reqwest", "hyper", "outbound"] {
            assert!(!deps.contains(&http.to_string()), "{name} depends on {http}");
        }
    }
}

/// Agents reach models only through `agents::run::Model` (the binary's in-process caller of the
/// gateway) and serve nothing themselves: no server types, no gateway. Their one HTTP is the MCP
/// client, and its client is built by `outbound` (checked above).
#[test]
fn agents_serve_no_http_and_call_models_through_the_trait() {
    let (_, manifest) = manifests().into_iter().find(|(n, _)| n == "agents").unwrap();
    let deps = dependencies(&manifest);
    for dep in ["axum", "hyper", "gateway", "api", "web"] {
        assert!(!deps.contains(&dep.to_string()), "agents depends on {dep}");
    }
}

/// One problem+json renderer: no other crate's product code sets the media type itself.
#[test]
fn only_the_problem_crate_renders_problem_json() {
    for (name, _) in manifests() {
        if name == "problem" {
            continue;
        }
        for (file, text) in sources(&name) {
            let renders = product_code(&text).contains("HeaderValue::from_static(\"application/problem+json\")");
            assert!(!renders, "{} renders problem+json itself: use the problem crate", file.display());
        }
    }
}

#[test]
fn the_deterministic_cores_read_no_clock_and_draw_no_random_numbers() {
    let forbidden = [
        "SystemTime::now",
        "Instant::now",
        "OffsetDateTime::now",
        "thread_rng",
        "rand::rng()",
        "OsRng",
        "from_entropy",
        "from_os_rng",
        "Uuid::new_v4",
        "Uuid::now_v7",
    ];
    for krate in ["vocab", "compute", "sim", "tlog", "eval", "data", "oss-core"] {
        for (path, text) in sources(krate) {
            for f in forbidden.iter().chain(&["getrandom"]) {
                assert!(!product_code(&text).contains(f), "{}: `{f}`: time and randomness come in as arguments", path.display());
            }
        }
    }
}

#[test]
fn the_oss_core_does_no_io() {
    // Measures over GH Archive are pure functions of the events, like the simulator's replay:
    // reading files, the network and the store belong to the ingest around them.
    for (path, text) in sources("oss-core") {
        let code = product_code(&text);
        for f in ["std::fs", "tokio", "reqwest", "std::net", "store::", "File::open"] {
            assert!(!code.contains(f), "{}: `{f}`: the oss core does no I/O", path.display());
        }
    }
}

#[test]
fn servers_and_engines_reach_outside_peers_only_through_outbound() {
    // The library crates' HTTP clients talk to peers aiplus does not control (model upstreams,
    // engines): they are built by `outbound::client`, which follows no redirect and refuses this
    // host unless allowed. The binary's own clients talk to aiplus itself.
    for (name, _) in manifests() {
        if ["outbound", "aiplus"].contains(&name.as_str()) {
            continue;
        }
        for (path, text) in sources(&name) {
            let code = product_code(&text);
            for f in ["Client::builder", "Client::new()", "reqwest::get("] {
                assert!(!code.contains(f), "{}: `{f}`: build clients with outbound::client", path.display());
            }
        }
    }
}

#[test]
fn every_source_file_says_what_it_is_for() {
    for (name, _) in manifests() {
        for (path, text) in sources(&name) {
            assert!(text.trim_start().starts_with("//!"), "{} does not start with a `//!` paragraph", path.display());
        }
    }
}

#[test]
fn sql_is_never_built_with_format_outside_the_test_helpers() {
    for (path, text) in sources("store") {
        let product = text.find("pub mod testing").map_or(text.as_str(), |i| &text[..i]);
        assert!(!product.contains("AssertSqlSafe"), "{}: SQL is a constant string with bound parameters", path.display());
        for line in product.lines().filter(|l| l.contains("format!")) {
            assert!(!line.contains("query") && !line.contains("raw_sql"), "{}: {line}", path.display());
        }
    }
}

/// Every `.route(path, get(..).post(..))` in the product's sources, as (METHOD, path).
fn routes_in_sources() -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    for (name, _) in manifests() {
        for (path, text) in sources(&name) {
            // The upstream test double is a model server of its own, and the agents bench's
            // zero-delay MCP server a tool server: neither is a route of aiplus.
            if path.ends_with("test_double.rs") || path.ends_with("agents_bench.rs") {
                continue;
            }
            let text = product_code(&text);
            let mut rest = text;
            while let Some(i) = rest.find(".route(\"") {
                rest = &rest[i + ".route(\"".len()..];
                let Some(end) = rest.find('"') else { break };
                let route = rest[..end].to_string();
                // The call's arguments, up to its closing parenthesis.
                let mut depth = 1;
                let mut call_end = rest.len();
                for (j, c) in rest.char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                call_end = j;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let call = &rest[end..call_end];
                for method in ["get", "post", "put", "delete", "patch"] {
                    let needle = format!("{method}(");
                    let mut from = 0;
                    while let Some(k) = call[from..].find(&needle) {
                        let at = from + k;
                        let before = call[..at].chars().last().unwrap_or(' ');
                        if !(before.is_alphanumeric() || before == '_') {
                            out.push((method.to_uppercase(), route.clone(), path.clone()));
                        }
                        from = at + needle.len();
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_route_in_the_sources_is_in_the_permission_table() {
    let routes = routes_in_sources();
    assert!(routes.len() >= 60, "found only {} routes: is the scan broken?", routes.len());
    for (method, route, file) in &routes {
        assert!(
            api::permissions::TABLE.iter().any(|r| r.method == method && r.path == route),
            "{method} {route} ({}) is not in the permission table (crates/api/src/permissions.rs)",
            file.display()
        );
    }
    for rule in api::permissions::TABLE {
        assert!(
            routes.iter().any(|(m, p, _)| m == rule.method && p == rule.path),
            "{} {} is in the permission table but no router registers it",
            rule.method,
            rule.path
        );
    }
}

#[test]
fn the_oss_crate_reaches_no_network_or_store() {
    // The CLI works on a data dir alone, like `serve`: GH Archive comes in as files, and the
    // only store write (a report's log leaf) is the binary's.
    let (_, manifest) = manifests().into_iter().find(|(n, _)| n == "oss").unwrap();
    for dep in dependencies(&manifest) {
        assert!(!["store", "reqwest", "tokio", "outbound", "sqlx"].contains(&dep.as_str()), "oss depends on {dep}");
    }
}
