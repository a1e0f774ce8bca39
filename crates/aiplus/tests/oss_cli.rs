//! `aiplus oss` as a user runs it: the real binary on a data dir, with the real GH Archive
//! samples of `../shared/oss/`, and the server's `/api/v1/oss` routes over the same data dir.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;

fn aiplus(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aiplus")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok_json(args: &[&str]) -> Value {
    let (ok, out, err) = aiplus(args);
    assert!(ok, "aiplus {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn ingest_rank_report_and_verify_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/oss/gharchive");
    std::fs::copy(shared.join("pinot/2021-07-21-few-hours.json"), src.join("2021-07-21-6.json")).unwrap();
    std::fs::copy(shared.join("quickwit/gharchive-bulk.json.gz"), src.join("2015-02-01-0.json.gz")).unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();

    let sum = ok_json(&["oss", "ingest", src.to_str().unwrap(), "--data-dir", d, "--json"]);
    assert_eq!((sum["events"].as_u64(), sum["bad_lines"].as_u64()), (Some(900), Some(100)));
    assert_eq!(sum["bad"][0]["file"], "2015-02-01-0.json.gz");
    let again = ok_json(&["oss", "ingest", src.to_str().unwrap(), "--data-dir", d, "--json"]);
    assert_eq!(again["unchanged"], 2);
    // A cluster no engine runs is named, before anything is read or submitted.
    let (ok, _, err) = aiplus(&["oss", "ingest", src.to_str().unwrap(), "--on-cluster", "tianfu", "--data-dir", d]);
    assert!(!ok && err.contains("no [[executor.engine]]") && err.contains("tianfu"), "{err}");
    let (ok, _, err) = aiplus(&["oss", "ingest", src.to_str().unwrap(), "--shared-dir", "/tmp", "--data-dir", d]);
    assert!(!ok && err.contains("--on-cluster"), "--shared-dir needs --on-cluster: {err}");

    let act = ok_json(&["oss", "activity", "--repos", "--period", "2021-07", "--data-dir", d, "--json", "--limit", "3"]);
    let top = &act["data"][0];
    // gabrieldonadel opened 4 pull requests in their repo: sqrt(4 × 4.0679).
    assert_eq!(top["name"], "gabrieldonadel/pull-requests-limits");
    assert!((top["activity"].as_f64().unwrap() - (4.0f64 * 4.0679).sqrt()).abs() < 1e-12);

    let or = ok_json(&["oss", "openrank", "--developers", "--period", "2021-07", "--data-dir", d, "--json", "--limit", "5"]);
    assert_eq!((or["converged"].as_bool(), or["tolerance"].as_f64(), or["max_iterations"].as_u64()), (Some(true), Some(0.01), Some(100)));
    assert!(or["iterations"].as_u64().unwrap() >= 1);
    assert_eq!(or["data"][0]["name"], "gabrieldonadel");

    let (bad_ok, _, err) = aiplus(&["oss", "activity", "--period", "2021-7", "--data-dir", d]);
    assert!(!bad_ok && err.contains("period"), "{err}");

    let report = tmp.path().join("r.json");
    let (ok, out, err) = aiplus(&[
        "oss",
        "report",
        "--developer",
        "gabrieldonadel",
        "--period",
        "2021-07..2021-07",
        "--data-dir",
        d,
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("transparency-log leaf 0"), "{out}");
    let html = std::fs::read_to_string(tmp.path().join("r.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("gabrieldonadel"), "a printable page with charts");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["report"]["months"][0]["events"]["PullRequestEvent"], 4);
    assert!(
        r["report"]["months"][0]["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("https://github.com/gabrieldonadel/pull-requests-limits/pull/"))
    );

    let key = data.join("log-key.pub");
    let (ok, out, err) = aiplus(&["oss", "verify", report.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.starts_with("verified"), "{out}");

    // One edited number, and the report no longer verifies.
    let mut edited = r.clone();
    edited["report"]["months"][0]["activity"] = serde_json::json!(99.0);
    let bad = tmp.path().join("edited.json");
    std::fs::write(&bad, serde_json::to_vec(&edited).unwrap()).unwrap();
    let (ok, _, err) = aiplus(&["oss", "verify", bad.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(!ok && err.contains("edited"), "{err}");

    // The log leaf it names is signed too: another leaf number does not verify.
    let mut moved = r.clone();
    moved["log_index"] = serde_json::json!(999_999);
    let bad = tmp.path().join("moved.json");
    std::fs::write(&bad, serde_json::to_vec(&moved).unwrap()).unwrap();
    let (ok, _, err) = aiplus(&["oss", "verify", bad.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(!ok && err.contains("signature"), "{err}");

    // Signed by another key, it does not verify either.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (ok, _, err) = aiplus(&[
        "oss",
        "report",
        "--developer",
        "gabrieldonadel",
        "--period",
        "2021-07",
        "--data-dir",
        d,
        "--out",
        other.join("x.json").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let stranger = tmp.path().join("stranger");
    let (ok, _, _) = aiplus(&["oss", "ingest", src.to_str().unwrap(), "--data-dir", stranger.to_str().unwrap()]);
    assert!(ok);
    let (ok, _, err) = aiplus(&[
        "oss",
        "report",
        "--developer",
        "gabrieldonadel",
        "--period",
        "2021-07",
        "--data-dir",
        stranger.to_str().unwrap(),
        "--out",
        other.join("y.json").to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = aiplus(&["oss", "verify", other.join("y.json").to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(!ok && err.contains("signature"), "{err}");
}

/// A minimal static file server on loopback (GH Archive's mirror stand-in): answers each GET with
/// the named file of `dir`, or 404, counting requests.
fn serve(dir: std::path::PathBuf) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            match std::fs::read(dir.join(&path)) {
                Ok(body) => {
                    write!(conn, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).unwrap();
                    conn.write_all(&body).unwrap();
                }
                Err(_) => write!(conn, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap(),
            }
        }
    });
    (base, hits)
}

#[test]
fn ingest_from_a_url_list_fetches_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/oss/gharchive");
    std::fs::copy(shared.join("pinot/2021-07-21-few-hours.json"), mirror.join("2021-07-21-6.json")).unwrap();
    let (base, hits) = serve(mirror);
    let list = tmp.path().join("urls.txt");
    std::fs::write(&list, format!("# one hour\n{base}/2021-07-21-6.json\n")).unwrap();
    let d = tmp.path().join("data");
    let args = |extra: &[&'static str]| {
        let mut a = vec!["oss", "ingest", "--urls", list.to_str().unwrap(), "--data-dir", d.to_str().unwrap(), "--json"];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| aiplus(&a.iter().map(String::as_str).collect::<Vec<_>>());

    // This machine is not an outside host: refused unless asked for.
    let (ok, _, err) = run(args(&[]));
    assert!(!ok && err.contains("line 2") && err.contains("this host"), "{err}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let (ok, out, err) = run(args(&["--allow-private-hosts"]));
    assert!(ok, "{err}");
    let sum: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((sum["events"].as_u64(), sum["unchanged"].as_u64()), (Some(800), Some(0)));
    let (ok, out, _) = run(args(&["--allow-private-hosts"]));
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["unchanged"], 1);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "a file fetched whole is not fetched again");
}

#[test]
fn the_api_serves_rankings_a_developer_and_a_repo_as_the_cli_computes_them() {
    let data = common::temp_dir("oss-api");
    let src = data.with_extension("src");
    std::fs::create_dir_all(&src).unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/oss/gharchive");
    std::fs::copy(shared.join("pinot/2021-07-21-few-hours.json"), src.join("2021-07-21-6.json")).unwrap();
    let d = data.to_str().unwrap();
    ok_json(&["oss", "ingest", src.to_str().unwrap(), "--data-dir", d, "--json"]);
    let cli = ok_json(&["oss", "openrank", "--developers", "--period", "2021-07", "--data-dir", d, "--json", "--limit", "10"]);

    let s = common::Server::start(&data);
    let (status, api) = s.get("/api/v1/oss/rankings?period=2021-07&kind=developers&limit=10");
    assert_eq!(status, 200, "{api}");
    let names = |v: &Value| v["data"].as_array().unwrap().iter().map(|r| (r["name"].clone(), r["openrank"].clone())).collect::<Vec<_>>();
    assert_eq!(names(&api), names(&cli), "the API and the CLI read the same month");
    assert_eq!((api["converged"].as_bool(), api["max_iterations"].as_u64()), (Some(true), Some(100)));

    let (status, dev) = s.get("/api/v1/oss/developers/gabrieldonadel?period=2021-07");
    assert_eq!(status, 200, "{dev}");
    assert_eq!(dev["months"][0]["events"]["PullRequestEvent"], 4);
    let (status, missing) = s.get("/api/v1/oss/developers/nobody-at-all?period=2021-07");
    assert_eq!((status, missing["status"].as_u64()), (404, Some(404)), "{missing}");
    let (status, bad) = s.get("/api/v1/oss/developers/gabrieldonadel?period=2021-09..2021-07");
    assert_eq!(status, 422, "{bad}");
    assert!(bad.to_string().contains("period"), "{bad}");

    let (status, repo) = s.get("/api/v1/oss/repos/gabrieldonadel/pull-requests-limits?period=2021-07");
    assert_eq!(status, 200, "{repo}");
    assert_eq!(repo["activity"][0]["month"], "2021-07");
    assert_eq!(repo["community_openrank"]["data"][0]["developer"], "gabrieldonadel");
    let (status, _) = s.get("/api/v1/oss/rankings?period=2021-07&limit=0");
    assert_eq!(status, 422);
    // A university's developers: ranked by community OpenRank inside its repos, as the CLI's
    // --community ranks them, by a list of repos or by organisation.
    let cli = ok_json(&[
        "oss",
        "openrank",
        "--community",
        "gabrieldonadel/pull-requests-limits",
        "--period",
        "2021-07",
        "--data-dir",
        d,
        "--json",
    ]);
    let (status, by_repos) = s.get("/api/v1/oss/rankings?period=2021-07&kind=developers&repos=gabrieldonadel/pull-requests-limits");
    assert_eq!((status, by_repos["method"].as_str()), (200, Some("community")), "{by_repos}");
    let pairs =
        |v: &Value, name: &str| v["data"].as_array().unwrap().iter().map(|r| (r[name].clone(), r["openrank"].clone())).collect::<Vec<_>>();
    assert_eq!(pairs(&by_repos, "name"), pairs(&cli, "developer"));
    assert_eq!(by_repos["data"][0]["name"], "gabrieldonadel");
    let (_, by_org) = s.get("/api/v1/oss/rankings?period=2021-07&kind=developers&org=gabrieldonadel");
    let org_cli =
        ok_json(&["oss", "openrank", "--developers", "--org", "gabrieldonadel", "--period", "2021-07", "--data-dir", d, "--json"]);
    assert_eq!(pairs(&by_org, "name"), pairs(&org_cli, "developer"));
    assert!(!pairs(&by_org, "name").is_empty());
    let anonymous = reqwest::blocking::get(format!("{}/api/v1/oss/rankings?period=2021-07", s.url)).unwrap();
    assert_eq!(anonymous.status(), 401, "deny by default: a credential is needed");

    // The console's pages, signed in, in both languages.
    let browser = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let anonymous = browser.get(format!("{}/oss", s.url)).send().unwrap();
    assert_eq!(anonymous.status(), 303, "the console sends strangers to the login page");
    let password = std::fs::read_to_string(data.join("console-admin-password")).unwrap();
    let r = browser.post(format!("{}/login", s.url)).form(&[("username", "admin"), ("password", password.trim())]).send().unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let get = |path: &str| {
        let r = browser.get(format!("{}{path}", s.url)).header("cookie", &cookie).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, page) = get("/oss");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("2021-07") && page.contains("/oss/developers/gabrieldonadel?period=2021-07"), "rankings link to developers");
    assert!(page.contains("/oss/repos/gabrieldonadel/pull-requests-limits?period=2021-07"), "and to repos");
    let (status, page) = get("/oss/developers/gabrieldonadel?period=2021-07");
    assert_eq!(status, 200);
    assert!(page.contains("<svg") && page.contains("PullRequestEvent"), "a chart and the events");
    let (status, page) = get("/oss/repos/gabrieldonadel/pull-requests-limits?period=2021-07");
    assert_eq!(status, 200);
    assert!(page.contains("<svg") && page.contains("/oss/developers/gabrieldonadel"), "activity over time and top contributors");
    assert_eq!(get("/oss/developers/nobody-at-all?period=2021-07").0, 404);
    let r = browser.get(format!("{}/lang/zh", s.url)).header("cookie", &cookie).send().unwrap();
    let lang =
        r.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string()).collect::<Vec<_>>();
    let zh = browser
        .get(format!("{}/oss", s.url))
        .header("cookie", [cookie.clone()].into_iter().chain(lang).collect::<Vec<_>>().join("; "))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(zh.contains("开发者排名"), "Chinese too");
}

/// A credit report issued through the API by an operator: recorded as a log leaf, kept under its
/// content hash, readable by any signed-in caller as JSON or a printable page, and verified
/// offline by `aiplus oss verify`. The same contents issued again (by the API or the CLI) are the
/// same report, with no second leaf.
#[test]
fn a_report_issued_over_the_api_is_recorded_kept_and_verifies_offline() {
    let data = common::temp_dir("oss-reports");
    let src = data.with_extension("src");
    std::fs::create_dir_all(&src).unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/oss/gharchive");
    std::fs::copy(shared.join("pinot/2021-07-21-few-hours.json"), src.join("2021-07-21-6.json")).unwrap();
    let d = data.to_str().unwrap();
    ok_json(&["oss", "ingest", src.to_str().unwrap(), "--data-dir", d, "--json"]);
    let s = common::Server::start(&data);
    let body = serde_json::json!({"developer": "gabrieldonadel", "period": "2021-07"});
    let (status, issued) = s.post("/api/v1/oss/reports", &body);
    assert_eq!(status, 201, "{issued}");
    let id = issued["id"].as_str().unwrap().to_string();
    assert_eq!(issued["content_sha256"], id.as_str());
    let leaf = issued["log_index"].as_u64().unwrap();
    let (_, entry) = s.get(&format!("/api/v1/log/entries/{leaf}"));
    assert_eq!(entry["leaf"]["kind"], "oss.credit_report", "{entry}");
    assert!(entry.to_string().contains(&id), "the leaf records the content hash: {entry}");
    let (status, again) = s.post("/api/v1/oss/reports", &body);
    assert_eq!((status, again["log_index"].as_u64()), (200, Some(leaf)), "the same report again, no second leaf: {again}");

    // Any signed-in caller reads it; a stranger does not; an unknown id is 404.
    let tenant = s.key("acme", &serde_json::json!({}))["secret"].as_str().unwrap().to_string();
    let http = reqwest::blocking::Client::new();
    let read = |path: &str, key: Option<&str>| {
        let mut r = http.get(format!("{}{path}", s.url));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        let r = r.send().unwrap();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (r.status().as_u16(), ct, r.text().unwrap())
    };
    let (status, _, text) = read(&format!("/api/v1/oss/reports/{id}"), Some(&tenant));
    assert_eq!(status, 200, "{text}");
    let fetched: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(fetched, issued);
    assert_eq!(read(&format!("/api/v1/oss/reports/{id}"), None).0, 401);
    assert_eq!(read(&format!("/api/v1/oss/reports/{}", "0".repeat(64)), Some(&tenant)).0, 404);
    assert_eq!(read("/api/v1/oss/reports", Some(&tenant)).0, 403, "the list is the operators'");
    let (status, ct, page) = read(&format!("/api/v1/oss/reports/{id}?format=html"), Some(&tenant));
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(page.contains("<svg") && page.contains("gabrieldonadel") && page.contains(&id), "the printable page");
    let (status, list) = s.get("/api/v1/oss/reports");
    assert_eq!((status, list["total"].as_u64()), (200, Some(1)), "{list}");
    assert_eq!(list["data"][0]["developer"], "gabrieldonadel");

    // Offline, with the public key a registrar holds.
    let file = data.with_extension("report.json");
    std::fs::write(&file, text).unwrap();
    let key = data.join("log-key.pub");
    let (ok, out, err) = aiplus(&["oss", "verify", file.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(ok && out.starts_with("verified"), "{out}{err}");
    let (status, bad) = s.post("/api/v1/oss/reports", &serde_json::json!({"developer": "gabrieldonadel", "period": "2021-08..2021-07"}));
    assert_eq!(status, 422, "{bad}");
    assert!(bad["detail"].as_str().unwrap_or_default().contains("period") || bad.to_string().contains("period"), "{bad}");
    let (status, _) = s.post("/api/v1/oss/reports", &serde_json::json!({"developer": "nobody-at-all", "period": "2021-07"}));
    assert_eq!(status, 404);

    // The console: an operator issues the same report from the developer's page and is shown
    // its printable page; same contents, same report, no new leaf.
    let browser = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let password = std::fs::read_to_string(data.join("console-admin-password")).unwrap();
    let r = browser.post(format!("{}/login", s.url)).form(&[("username", "admin"), ("password", password.trim())]).send().unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = browser.get(format!("{}/oss/developers/gabrieldonadel?period=2021-07", s.url)).header("cookie", &cookie).send().unwrap();
    let page = page.text().unwrap();
    assert!(page.contains(r#"action="/oss/developers/gabrieldonadel/report""#), "operators see the form");
    let csrf = page.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let form = [("csrf", csrf.as_str()), ("period", "2021-07..2021-07")];
    let post = |form: &[(&str, &str)]| {
        browser.post(format!("{}/oss/developers/gabrieldonadel/report", s.url)).header("cookie", &cookie).form(form).send().unwrap()
    };
    let r = post(&form);
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"].to_str().unwrap(), format!("/oss/reports/{id}"));
    assert_eq!(post(&[("csrf", "forged"), ("period", "2021-07")]).status(), 403, "a form without the session's CSRF token");
    let anonymous = browser.post(format!("{}/oss/developers/gabrieldonadel/report", s.url)).form(&form).send().unwrap();
    assert_eq!(anonymous.status(), 303, "strangers are sent to the login page");
    assert!(anonymous.headers()["location"].to_str().unwrap().starts_with("/login"));
    let by_key = browser.post(format!("{}/oss/developers/gabrieldonadel/report", s.url)).bearer_auth(&tenant).form(&form).send().unwrap();
    assert!(matches!(by_key.status().as_u16(), 303 | 401 | 403), "a tenant's key issues nothing: {}", by_key.status());
    assert_eq!(s.get("/api/v1/oss/reports").1["total"], 1, "nothing was issued by them");
    let shown = browser.get(format!("{}/oss/reports/{id}", s.url)).header("cookie", &cookie).send().unwrap();
    assert_eq!(shown.status(), 200);
    assert!(shown.text().unwrap().contains(&id));
    assert_eq!(s.get("/api/v1/oss/reports").1["total"], 1);
    let _ = std::fs::remove_dir_all(&data);
}
