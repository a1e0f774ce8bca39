//! Compute-to-data (可用不可见) against the real binary and its real sandbox (bubblewrap): a
//! buyer's job computes a statistic over a dataset it cannot download and gets the right
//! answer; a job that copies the rows out is stopped by the output check; the job has no
//! network, cannot write the data, and sees none of the server's files; the dataset's residency
//! decides the cluster; and a kill -9 in the middle of a run neither loses it nor runs it twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, TENANT};
use serde_json::{Value, json};
use sha2::Digest as _;

const BUYER: &str = "beta";
/// The dataset: loan amounts by borrower (the buyer may use it, never see it).
const LOANS: &str = "name,age,amount\nalice-zhang,34,5200\nbob-wang,51,880\ncarol-li,29,1234\ndavid-chen,45,9000\n";

fn sha_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

struct Api<'a> {
    s: &'a Server,
    key: String,
}

impl Api<'_> {
    fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>, key: Option<&str>) -> (u16, Value) {
        let mut r = self.s.client().request(method, format!("{}{path}", self.s.url)).bearer_auth(&self.key);
        if let Some(b) = body {
            r = r.json(b);
        }
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), None)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, None)
    }

    fn raw(&self, path: &str) -> (u16, String) {
        let r = self.s.client().get(format!("{}{path}", self.s.url)).bearer_auth(&self.key).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }
}

fn key(s: &Server, tenant: &str) -> String {
    s.key(tenant, &json!({"role": "tenant-admin", "scopes": ["data", "jobs"]}))["secret"].as_str().unwrap().to_string()
}

/// The exchange's files are next to Tianfu (Sichuan); jobs may wait on files in the signals
/// directory, which the sandbox shows them read-only.
fn start(data: &Path) -> Server {
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, format!("{}\n[data]\ncluster = \"tianfu\"\n", common::sandbox_config(data))).unwrap();
    Server::start_with(data, &["--config", cfg.to_str().unwrap()])
}

/// The seller's dataset, kept in Sichuan, listed for compute-to-data only at 5 yuan a run.
fn list_loans(seller: &Api) {
    let file = LOANS.as_bytes();
    common::host_file(seller.s, &seller.key, file);
    let (status, d) = seller.post("/api/v1/datasets", &json!({"id": "loans", "residency": "province:Sichuan"}));
    assert_eq!(status, 201, "{d}");
    let record = json!({
        "@context": {"@vocab": "https://schema.org/", "sc": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
                     "dct": "http://purl.org/dc/terms/", "conformsTo": "dct:conformsTo"},
        "@type": "sc:Dataset", "name": "loans", "conformsTo": "http://mlcommons.org/croissant/1.1", "version": "1.0.0",
        "distribution": [{"@type": "cr:FileObject", "@id": "loans.csv", "name": "loans.csv", "contentUrl": "loans.csv",
                          "encodingFormat": "text/csv", "sha256": sha_hex(file)}]
    });
    let (status, v) = seller.post("/api/v1/datasets/loans/versions", &record);
    assert_eq!(status, 201, "{v}");
    assert_eq!(seller.post("/api/v1/datasets/loans/versions/1.0.0/publish", &Value::Null).0, 200);
    let offer =
        |modes: Value| json!({"version": "1.0.0", "offer": {"price": {"unit": "per_call", "fen": 500}, "modes": modes, "max_days": 30}});
    let (status, e) = seller.call(reqwest::Method::PUT, "/api/v1/datasets/loans/listing", Some(&offer(json!(["download"]))), None);
    assert_eq!(status, 422, "a dataset kept in Sichuan is never offered for download: {e}");
    let (status, l) = seller.call(reqwest::Method::PUT, "/api/v1/datasets/loans/listing", Some(&offer(json!(["compute"]))), None);
    assert_eq!(status, 200, "{l}");
}

fn sign(buyer: &Api) -> String {
    let body = json!({"seller": TENANT, "dataset": "loans", "purpose": "风险模型的汇总统计", "days": 30, "mode": "compute"});
    let (status, c) = buyer.post("/api/v1/contracts", &body);
    assert_eq!(status, 201, "{c}");
    c["id"].as_str().unwrap().to_string()
}

fn sh(script: &str, outputs: &[&str]) -> Value {
    json!({"command": ["bash", "-c", script], "outputs": outputs, "cpu_milli": 500, "memory_mib": 256, "duration_s": 60})
}

/// Waits for a run to end; returns it.
fn ended(buyer: &Api, contract: &str, run: &str) -> Value {
    common::poll(Duration::from_secs(60), || {
        let (_, r) = buyer.get(&format!("/api/v1/contracts/{contract}/runs/{run}"));
        (!["staging", "running"].contains(&r["state"].as_str().unwrap_or("staging"))).then_some(r)
    })
}

fn start_run(buyer: &Api, contract: &str, body: &Value) -> String {
    let (status, r) = buyer.post(&format!("/api/v1/contracts/{contract}/runs"), body);
    assert_eq!(status, 201, "{r}");
    r["id"].as_str().unwrap().to_string()
}

#[test]
fn a_buyer_computes_over_data_it_cannot_read_and_only_checked_outputs_leave() {
    let data = common::temp_dir("c2d");
    let s = start(&data);
    let seller = Api { s: &s, key: key(&s, TENANT) };
    let buyer = Api { s: &s, key: key(&s, BUYER) };
    list_loans(&seller);
    let contract = sign(&buyer);
    let (status, e) = buyer.get(&format!("/api/v1/contracts/{contract}/files/loans.csv"));
    assert_eq!(status, 409, "the raw file is never readable under a compute contract: {e}");

    // The statistic: the sum of the amounts, computed where the data is.
    let sum = sh("awk -F, 'NR > 1 { s += $3 } END { print s }' /data/loans.csv > /out/sum.txt", &["sum.txt"]);
    let run = start_run(&buyer, &contract, &sum);
    let r = ended(&buyer, &contract, &run);
    assert_eq!(r["state"], "succeeded", "{r}");
    let want: u64 = LOANS.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(buyer.raw(&format!("/api/v1/contracts/{contract}/runs/{run}/outputs/sum.txt")), (200, format!("{want}\n")));
    assert_eq!((r["amount_fen"].as_i64(), r["records"].as_u64()), (Some(500), Some(4)), "priced per run by the contract: {r}");

    // The residency decides the cluster: Sichuan's only cluster, Tianfu, next to the files.
    let job = r["job"].as_str().unwrap();
    let (_, j) = buyer.get(&format!("/api/v1/jobs/{job}"));
    assert_eq!((j["placement"]["cluster"].as_str(), j["tenant"].as_str()), (Some("tianfu"), Some(BUYER)), "{j}");
    assert_eq!(j["spec"]["allowed_regions"], json!(["province:Sichuan"]), "{j}");
    assert!(j["exit_code"].is_null() && j["state_reason"].as_str().unwrap().contains("not shown"), "no exit status: {j}");
    let (_, events) = buyer.get(&format!("/api/v1/jobs/{job}/events"));
    assert!(!events.to_string().contains("exited with status"), "{events}");
    let (status, e) = buyer.get(&format!("/api/v1/jobs/{job}/logs"));
    assert_eq!(status, 409, "the job's own output is never shown: {e}");
    let (_, plain) = buyer.post(
        "/api/v1/jobs",
        &json!({"kind": "batch_inference", "cpu_milli": 100, "memory_mib": 64,
                                                         "duration_s": 60, "command": ["true"], "sealed": run}),
    );
    assert_eq!(plain["errors"][0]["field"].as_str().or(plain["field"].as_str()), Some("sealed"), "{plain}");

    // Copying the rows out is cut by the output check: nothing of it leaves.
    // (A CSV's header is not a record: a table of results may share its column names.)
    let copy = start_run(&buyer, &contract, &sh("cp /data/loans.csv /out/rows.txt; echo done >> /out/rows.txt", &["rows.txt"]));
    let r = ended(&buyer, &contract, &copy);
    assert_eq!(r["state"], "refused", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("repeat a record of the dataset;"), "{r}");
    assert!(!r["reason"].as_str().unwrap().contains("loans.csv"), "which record matched is not said: {r}");
    assert_eq!(buyer.raw(&format!("/api/v1/contracts/{contract}/runs/{copy}/outputs/rows.txt")).0, 404);

    // Nor can the job send the rows anywhere, change them, or reach the server's secrets.
    let port = s.url.rsplit(':').next().unwrap().to_string();
    let token = data.join("operator-token").display().to_string();
    let escape = format!(
        "{{ echo x > /data/loans.csv && echo writable || echo read-only; \
           (exec 3<>/dev/tcp/127.0.0.1/{port}) && echo network || echo no-network; \
           cat {token} && echo secrets || echo no-secrets; }} > /out/probe.txt 2>/dev/null"
    );
    let probe = start_run(&buyer, &contract, &sh(&escape, &["probe.txt"]));
    let r = ended(&buyer, &contract, &probe);
    assert_eq!(r["state"], "succeeded", "{r}");
    let (_, text) = buyer.raw(&format!("/api/v1/contracts/{contract}/runs/{probe}/outputs/probe.txt"));
    assert_eq!(text, "read-only\nno-network\nno-secrets\n");

    // A retry with the same key is the same run; the seller sees the runs, never their outputs.
    let (s1, a) = buyer.call(reqwest::Method::POST, &format!("/api/v1/contracts/{contract}/runs"), Some(&sum), Some("k-1"));
    let (s2, b) = buyer.call(reqwest::Method::POST, &format!("/api/v1/contracts/{contract}/runs"), Some(&sum), Some("k-1"));
    assert_eq!((s1, s2, a["id"].clone()), (201, 200, b["id"].clone()), "{a} {b}");

    // The CLI runs a job, waits, and brings the outputs home; a refused run fails, saying why.
    let home = data.with_extension("outputs");
    let cli = |script: &str, output: &str| {
        std::process::Command::new(common::BIN)
            .args(["data", "run", &contract, "--output", output, "--out-dir"])
            .arg(&home)
            .args(["--", "sh", "-c", script])
            .env("AIPLUS_SERVER", &s.url)
            .env("AIPLUS_TOKEN", &buyer.key)
            .output()
            .unwrap()
    };
    let out = cli("wc -l < /data/loans.csv > /out/n.txt", "n.txt");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(home.join("n.txt")).unwrap(), "5\n");
    let out = cli("tail -n 2 /data/loans.csv > /out/tail.txt", "tail.txt");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("refused"), "{out:?}");
    assert!(!home.join("tail.txt").exists());

    let (_, runs) = seller.get(&format!("/api/v1/contracts/{contract}/runs"));
    assert_eq!(runs["data"].as_array().unwrap().len(), 6, "{runs}");
    assert_eq!(seller.raw(&format!("/api/v1/contracts/{contract}/runs/{run}/outputs/sum.txt")).0, 404);
    let (status, _) = Api { s: &s, key: key(&s, "gamma") }.get(&format!("/api/v1/contracts/{contract}/runs/{run}"));
    assert_eq!(status, 404, "another tenant finds no such run");
}

#[test]
fn a_kill_9_in_the_middle_of_a_run_neither_loses_it_nor_runs_it_twice() {
    let data = common::temp_dir("c2d-kill9");
    let s = start(&data);
    let seller = Api { s: &s, key: key(&s, TENANT) };
    let (seller_key, buyer_key) = (seller.key.clone(), key(&s, BUYER));
    list_loans(&seller);
    let buyer = Api { s: &s, key: buyer_key.clone() };
    let contract = sign(&buyer);
    let stop = common::signals(&data).join("stop");
    let wait = format!("while [ ! -e {} ]; do sleep 0.05; done; wc -l < /data/loans.csv > /out/n.txt", stop.display());
    let run = start_run(&buyer, &contract, &sh(&wait, &["n.txt"]));
    let job = common::poll(Duration::from_secs(30), || {
        let (_, r) = buyer.get(&format!("/api/v1/contracts/{contract}/runs/{run}"));
        let (_, j) = buyer.get(&format!("/api/v1/jobs/{}", r["job"].as_str()?));
        (j["state"] == "running").then(|| r["job"].as_str().unwrap().to_string())
    });
    drop((buyer, seller));
    s.kill9();

    let s = start(&data);
    common::stop_jobs(&data);
    let buyer = Api { s: &s, key: buyer_key };
    let r = ended(&buyer, &contract, &run);
    assert_eq!((r["state"].as_str(), r["job"].as_str()), (Some("succeeded"), Some(job.as_str())), "{r}");
    assert_eq!(buyer.raw(&format!("/api/v1/contracts/{contract}/runs/{run}/outputs/n.txt")), (200, "5\n".to_string()));
    let attempts = std::fs::read_dir(data.join("jobs").join(&job)).unwrap().count();
    assert_eq!(attempts, 1, "the job ran once");
    // One ledger entry for the run, however the server stopped.
    let seller = Api { s: &s, key: seller_key };
    let (status, usage) = s.get(&format!("/api/v1/usage?tenant={BUYER}&pillar=data&limit=100"));
    assert_eq!(status, 200, "{usage}");
    let charges = usage.as_array().unwrap().iter().filter(|e| e["usage"]["subject"]["kind"] == "dataset_compute").count();
    assert_eq!(charges, 1, "{usage}");
    // The run is the contract's revenue for the month, and settles to the fen.
    let at = time::OffsetDateTime::from_unix_timestamp(r["created_ms"].as_i64().unwrap() / 1000).unwrap();
    let period = format!("{}-{:02}", at.year(), u8::from(at.month()));
    let (status, settled) = s.post("/api/v1/settlements", &json!({"period": period}));
    assert_eq!(status, 200, "{settled}");
    let mine = settled["data"].as_array().unwrap().iter().find(|x| x["contract"] == contract.as_str()).cloned().unwrap();
    let paid: i64 = mine["lines"].as_array().unwrap().iter().map(|l| l["fen"].as_i64().unwrap()).sum();
    assert_eq!((mine["revenue_fen"].as_i64(), paid), (Some(500), 500), "{mine}");
    assert!(!data.join("c2d").join(&run).exists(), "the staged copy is gone once the run ended");
    assert!(!data.join("jobs").join(&job).join("1").join("work").exists(), "and so is the job's work directory");
    drop(seller);
}
