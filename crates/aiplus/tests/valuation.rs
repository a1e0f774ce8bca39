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

/// A clean contributor's rows and a noisy one's (the same kind of sentences, labels swapped).
const CLEAN: [(&str, &str); 6] = [
    ("The striker scored twice in the second half of the match", "sport"),
    ("The goalkeeper saved a penalty in the final minute", "sport"),
    ("The marathon runner set a new course record", "sport"),
    ("The central bank raised interest rates by a quarter point", "finance"),
    ("Shares fell after the company reported lower quarterly earnings", "finance"),
    ("Bond yields climbed as investors priced in inflation", "finance"),
];
const NOISY: [(&str, &str); 6] = [
    ("The tennis champion won the match in straight sets", "finance"),
    ("The basketball team won the championship on the last shot", "finance"),
    ("The cyclist attacked on the final climb of the race", "finance"),
    ("The stock market rallied on strong bank earnings", "sport"),
    ("The currency weakened after the trade deficit widened", "sport"),
    ("Investors bought gold as the dollar slipped", "sport"),
];
const TEST: [(&str, &str); 6] = [
    ("The midfielder scored a late goal to win the game", "sport"),
    ("The swimmer won gold in the relay race", "sport"),
    ("The football club signed a new defender", "sport"),
    ("The bank cut its lending rate to support growth", "finance"),
    ("Quarterly profits beat analysts' expectations", "finance"),
    ("The stock index closed at a record high", "finance"),
];

fn csv_of(rows: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("text,contributor,label\n");
    for (text, who, label) in rows {
        s.push_str(&format!("\"{text}\",{who},{label}\n"));
    }
    s
}

/// The embedded model's vectors for `texts`, exactly (base64: little-endian f32).
fn vectors(s: &common::Server, key: &str, texts: &[&str]) -> Vec<Vec<f32>> {
    use base64::Engine as _;
    let body = serde_json::json!({"model": "all-MiniLM-L6-v2", "input": texts, "encoding_format": "base64"});
    let r: Value = s.client().post(format!("{}/v1/embeddings", s.url)).bearer_auth(key).json(&body).send().unwrap().json().unwrap();
    r["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|d| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(d["embedding"].as_str().unwrap()).unwrap();
            bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        })
        .collect()
}

/// A numeric CSV of vectors and labels, for `aiplus data value`; f32 → f64 is exact and Rust
/// prints an f64 so that it reads back the same.
fn numeric_csv(vs: &[Vec<f32>], labels: &[&str]) -> String {
    vs.iter().zip(labels).map(|(v, l)| v.iter().map(|x| format!("{},", f64::from(*x))).collect::<String>() + l + "\n").collect()
}

#[test]
fn text_rows_are_valued_on_the_embedded_models_vectors_and_a_noisy_contributor_is_worth_less() {
    let data = common::temp_dir("valuation-text");
    let s = common::Server::start(&data);
    let key = s.key(common::TENANT, &serde_json::json!({"role": "tenant-admin", "scopes": ["data", "inference"]}))["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let train: Vec<(&str, &str, &str)> =
        CLEAN.iter().map(|(t, l)| (*t, "clean", *l)).chain(NOISY.iter().map(|(t, l)| (*t, "noisy", *l))).collect();
    let test: Vec<(&str, &str, &str)> = TEST.iter().map(|(t, l)| (*t, "-", *l)).collect();
    let (train_csv, test_csv) = (csv_of(&train), csv_of(&test));
    let shas = [common::host_file(&s, &key, train_csv.as_bytes()), common::host_file(&s, &key, test_csv.as_bytes())];
    let record = serde_json::json!({
        "@context": {"@vocab": "https://schema.org/", "sc": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
                     "dct": "http://purl.org/dc/terms/", "conformsTo": "dct:conformsTo"},
        "@type": "sc:Dataset", "name": "news", "conformsTo": "http://mlcommons.org/croissant/1.1", "version": "1.0.0",
        "distribution": [
            {"@type": "cr:FileObject", "@id": "train.csv", "name": "train.csv", "contentUrl": "train.csv", "encodingFormat": "text/csv", "sha256": shas[0]},
            {"@type": "cr:FileObject", "@id": "test.csv", "name": "test.csv", "contentUrl": "test.csv", "encodingFormat": "text/csv", "sha256": shas[1]}
        ]
    });
    let post = |path: &str, body: &Value| -> (u16, Value) {
        let r = s.client().post(format!("{}{path}", s.url)).bearer_auth(&key).json(body).send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    assert_eq!(post("/api/v1/datasets", &serde_json::json!({"id": "news"})).0, 201);
    assert_eq!(post("/api/v1/datasets/news/versions", &record).0, 201);
    let ask = serde_json::json!({"train_file": "train.csv", "test_file": "test.csv", "k": 3, "text_column": "text"});
    // The model loads in the background; until it is ready the valuation says so (409).
    let v = common::poll(std::time::Duration::from_secs(120), || {
        let (status, v) = post("/api/v1/datasets/news/versions/1.0.0/valuations", &ask);
        assert!(status == 201 || status == 409, "{status} {v}");
        (status == 201).then_some(v)
    });
    assert_eq!((v["text_column"].as_str(), v["embedding_model"].as_str()), (Some("text"), Some("all-MiniLM-L6-v2")), "{v}");
    let who = |id: &str| v["contributors"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()["value"].as_f64().unwrap();
    assert!(who("clean") > who("noisy"), "clean {} vs noisy {}", who("clean"), who("noisy"));
    assert!((who("clean") + who("noisy") - v["utility"].as_f64().unwrap()).abs() < 1e-9, "{v}");

    // Side by side: the same vectors, fetched from /v1/embeddings, valued by `aiplus data value`.
    fn texts<'a>(rows: &[(&'a str, &'a str, &'a str)]) -> Vec<&'a str> {
        rows.iter().map(|r| r.0).collect()
    }
    fn labels<'a>(rows: &[(&'a str, &'a str, &'a str)]) -> Vec<&'a str> {
        rows.iter().map(|r| r.2).collect()
    }
    std::fs::write(data.with_extension("train.csv"), numeric_csv(&vectors(&s, &key, &texts(&train)), &labels(&train))).unwrap();
    std::fs::write(data.with_extension("test.csv"), numeric_csv(&vectors(&s, &key, &texts(&test)), &labels(&test))).unwrap();
    let out = Command::new(common::BIN)
        .args(["data", "value", "--k", "3", "--json", "--train"])
        .arg(data.with_extension("train.csv"))
        .arg("--test")
        .arg(data.with_extension("test.csv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (a, b) = (v["values"].as_array().unwrap(), cli["values"].as_array().unwrap());
    assert_eq!(a.len(), 12);
    let worst = a.iter().zip(b).map(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-12, "the server's values differ from the CLI's on the same vectors by {worst:e}");
}
