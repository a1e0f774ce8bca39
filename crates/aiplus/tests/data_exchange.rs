//! The data exchange against the real binary: a chunked upload survives a kill -9 in the middle
//! of a chunk (resuming completes with the same hash, and no half-written file is ever visible),
//! and the files live in an S3-compatible store when one is configured. No registry ships a
//! real S3 server that installs here, so the S3 test runs against moto's server mode, a test
//! double of S3 (PyPI `moto[server]`, installed by `scripts/test`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Server, TENANT};
use serde_json::{Value, json};
use sha2::Digest as _;

const MIB: usize = 1 << 20;

fn sha_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// 5.5 MiB that are not all alike, so a misplaced chunk changes the hash.
fn content() -> Vec<u8> {
    (0..(5 * MIB + MIB / 2)).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1]).collect()
}

fn record(sha256: &str, size: usize) -> Value {
    json!({
        "@context": {"@vocab": "https://schema.org/", "sc": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
                     "dct": "http://purl.org/dc/terms/", "conformsTo": "dct:conformsTo"},
        "@type": "sc:Dataset", "name": "blobs", "conformsTo": "http://mlcommons.org/croissant/1.1", "version": "1.0.0",
        "distribution": [{"@type": "cr:FileObject", "@id": "blob.bin", "name": "blob.bin", "contentUrl": "blob.bin",
                          "encodingFormat": "application/octet-stream", "contentSize": format!("{size} B"), "sha256": sha256}]
    })
}

struct Api<'a> {
    s: &'a Server,
    key: String,
}

impl Api<'_> {
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>, json_body: Option<&Value>) -> (u16, Value) {
        let mut r = self.s.client().request(method, format!("{}{path}", self.s.url)).bearer_auth(&self.key);
        if let Some(b) = body {
            r = r.body(b);
        }
        if let Some(j) = json_body {
            r = r.json(j);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, None, Some(body))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, None)
    }

    fn chunk(&self, upload: &str, ix: usize, bytes: &[u8]) -> (u16, Value) {
        self.send(reqwest::Method::PUT, &format!("/api/v1/uploads/{upload}/chunks/{ix}"), Some(bytes.to_vec()), None)
    }

    fn bytes(&self, path: &str) -> Vec<u8> {
        let r = self.s.client().get(format!("{}{path}", self.s.url)).bearer_auth(&self.key).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.bytes().unwrap().to_vec()
    }
}

fn data_key(s: &Server) -> String {
    s.key(TENANT, &json!({"role": "tenant-admin", "scopes": ["data"]}))["secret"].as_str().unwrap().to_string()
}

fn start(data: &Path, env: &[(&str, &str)]) -> Server {
    let cfg = data.with_extension("toml");
    std::fs::write(&cfg, "[data]\nchunk_mib = 1\n").unwrap();
    Server::start_with_env(data, &["--config", cfg.to_str().unwrap()], env)
}

/// Uploads, publishes and reads back one file, checking it by its hash.
fn publish_and_read(api: &Api, upload: &str, file: &[u8]) {
    let (status, done) = api.post(&format!("/api/v1/uploads/{upload}/complete"), &Value::Null);
    assert_eq!((status, done["state"].as_str()), (200, Some("complete")), "{done}");
    let (status, _) = api.post("/api/v1/datasets", &json!({"id": "blobs"}));
    assert_eq!(status, 201);
    let (status, v) = api.post("/api/v1/datasets/blobs/versions", &record(&sha_hex(file), file.len()));
    assert_eq!((status, v["missing_files"].clone()), (201, json!([])), "{v}");
    let (status, v) = api.post("/api/v1/datasets/blobs/versions/1.0.0/publish", &Value::Null);
    assert_eq!((status, v["state"].as_str()), (200, Some("published")), "{v}");
    let read = api.bytes("/api/v1/datasets/blobs/versions/1.0.0/files/blob.bin");
    assert_eq!(sha_hex(&read), sha_hex(file));
}

#[test]
fn kill_9_in_the_middle_of_a_chunk_loses_no_acknowledged_chunk_and_shows_no_half_written_file() {
    let data = common::temp_dir("data-kill9");
    let file = content();
    let sha = sha_hex(&file);
    let s = start(&data, &[]);
    let key = data_key(&s);
    let api = Api { s: &s, key: key.clone() };
    let (status, up) = api.post("/api/v1/uploads", &json!({"sha256": sha, "size_bytes": file.len(), "name": "blob.bin"}));
    assert_eq!((status, up["chunks"].as_u64()), (201, Some(6)), "{up}");
    let id = up["id"].as_str().unwrap().to_string();
    for ix in 0..3 {
        assert_eq!(api.chunk(&id, ix, &file[ix * MIB..(ix + 1) * MIB]).0, 200);
    }
    // Chunk 3 is half sent when the server dies.
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    let head = format!(
        "PUT /api/v1/uploads/{id}/chunks/3 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Length: {MIB}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(&file[3 * MIB..3 * MIB + MIB / 2]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(api);
    s.kill9();
    drop(tcp);

    let final_object = data.join("objects").join("objects").join(TENANT).join(&sha);
    let s = start(&data, &[]);
    let api = Api { s: &s, key };
    let (status, up) = api.get(&format!("/api/v1/uploads/{id}"));
    assert_eq!((status, up["missing"].clone()), (200, json!([3, 4, 5])), "the three acknowledged chunks survive: {up}");
    assert!(!final_object.exists(), "no file before the upload completes");
    // Completing with chunks missing says so, and still shows nothing.
    let (status, e) = api.post(&format!("/api/v1/uploads/{id}/complete"), &Value::Null);
    assert_eq!(status, 409, "{e}");
    assert!(!final_object.exists());
    for ix in 3..6 {
        let end = ((ix + 1) * MIB).min(file.len());
        assert_eq!(api.chunk(&id, ix, &file[ix * MIB..end]).0, 200);
    }
    publish_and_read(&api, &id, &file);
    assert_eq!(sha_hex(&std::fs::read(&final_object).unwrap()), sha);
    // Nothing is left half-written beside the object, and the staged chunks are gone.
    let beside: Vec<_> = std::fs::read_dir(final_object.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(beside, vec![std::ffi::OsString::from(&sha)]);
    assert!(!data.join("objects").join("staging").join(&id).join("00000000").exists());
}

/// moto's S3 server on a free port, killed when dropped.
struct Moto(Child, String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m moto.server (scripts/test installs moto[server])");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    common::poll(std::time::Duration::from_secs(30), || http.get(&url).send().ok().map(drop));
    Moto(child, url)
}

#[test]
fn files_live_in_an_s3_compatible_store_when_one_is_configured() {
    let s3 = moto();
    let http = reqwest::blocking::Client::new();
    assert!(http.put(format!("{}/aiplus-data", s3.1)).send().unwrap().status().is_success());
    let data = common::temp_dir("data-s3");
    let env = [
        ("AIPLUS_DATA_OBJECTS", "s3://aiplus-data/exchange"),
        ("AWS_ENDPOINT", s3.1.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let s = start(&data, &env);
    let api = Api { s: &s, key: data_key(&s) };
    let file = &content()[..2 * MIB + 1000];
    let (status, up) = api.post("/api/v1/uploads", &json!({"sha256": sha_hex(file), "size_bytes": file.len()}));
    assert_eq!(status, 201, "{up}");
    let id = up["id"].as_str().unwrap().to_string();
    for (ix, c) in file.chunks(MIB).enumerate().rev() {
        assert_eq!(api.chunk(&id, ix, c).0, 200);
    }
    publish_and_read(&api, &id, file);
    // The object is in the bucket under its address; the staged chunks are gone; nothing is on disk.
    let listing = http.get(format!("{}/aiplus-data?list-type=2", s3.1)).send().unwrap().text().unwrap();
    let keys: Vec<&str> = listing.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).collect();
    assert_eq!(keys, vec![format!("exchange/objects/{TENANT}/{}", sha_hex(file))], "{listing}");
    assert!(!data.join("objects").join("objects").exists());
}
