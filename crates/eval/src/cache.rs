//! The request cache: every answer a run got, keyed by the SHA-256 of (model, endpoint,
//! request). A run asks the cache first, so a run that was killed resumes where it stopped and
//! a finished run costs nothing to repeat.
//!
//! [`FileCache`] is a JSONL file, one `{"key", "response"}` line per answer, appended with
//! one `write` as each answer arrives: a killed process loses at most the answers still in
//! flight, and a torn last line (a crash mid-write) is skipped when the file is read again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::EvalError;
use crate::prompt::Endpoint;

/// The cache key of one request to one model.
pub fn key(model: &str, endpoint: Endpoint, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update(b"\n");
    h.update(endpoint.path().as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A model's identity in cache keys when one deployment of it is pinned: its answers are that
/// deployment's, not the model's.
pub fn pinned(model: &str, deployment: Option<&str>) -> String {
    match deployment {
        Some(d) => format!("{model}#{d}"),
        None => model.to_string(),
    }
}

pub trait Cache: Sync {
    fn get(&self, key: &str) -> Option<Value>;
    fn put(&self, key: &str, response: &Value) -> Result<(), EvalError>;
}

/// A cache in memory only (benchmarks, and runs that keep nothing).
#[derive(Default)]
pub struct MemoryCache(Mutex<HashMap<String, Value>>);

impl Cache for MemoryCache {
    fn get(&self, key: &str) -> Option<Value> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: &str, response: &Value) -> Result<(), EvalError> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_string(), response.clone());
        }
        Ok(())
    }
}

pub struct FileCache {
    path: PathBuf,
    entries: Mutex<(HashMap<String, Value>, std::fs::File)>,
}

impl FileCache {
    /// Opens (or creates) the cache file and reads every whole line of it.
    pub fn open(path: &Path) -> Result<FileCache, EvalError> {
        let err = |e: std::io::Error| EvalError::Cache { path: path.display().to_string(), reason: e.to_string() };
        let mut map = HashMap::new();
        let bytes = if path.exists() { std::fs::read(path).map_err(err)? } else { Vec::new() };
        // Lines are parsed as bytes: a line torn by a crash mid-write may end inside a
        // character, which must not make the whole file unreadable. A line that does not parse
        // is such a line: its answer is lost and will be asked again.
        for line in bytes.split(|b| *b == b'\n') {
            let Ok(v) = serde_json::from_slice::<Value>(line) else { continue };
            if let (Some(k), Some(r)) = (v.get("key").and_then(Value::as_str), v.get("response")) {
                map.insert(k.to_string(), r.clone());
            }
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(err)?;
        // A torn last line must not swallow the next answer's line.
        if bytes.last().is_some_and(|b| *b != b'\n') {
            file.write_all(b"\n").map_err(err)?;
        }
        Ok(FileCache { path: path.to_path_buf(), entries: Mutex::new((map, file)) })
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |g| g.0.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Syncs the file to disk.
    pub fn sync(&self) -> Result<(), EvalError> {
        let g = self.entries.lock().map_err(|_| self.error("poisoned"))?;
        g.1.sync_data().map_err(|e| self.error(&e.to_string()))
    }

    fn error(&self, reason: &str) -> EvalError {
        EvalError::Cache { path: self.path.display().to_string(), reason: reason.into() }
    }
}

impl Cache for FileCache {
    fn get(&self, key: &str) -> Option<Value> {
        self.entries.lock().ok()?.0.get(key).cloned()
    }

    fn put(&self, key: &str, response: &Value) -> Result<(), EvalError> {
        let mut line = json!({"key": key, "response": response}).to_string();
        line.push('\n');
        let mut g = self.entries.lock().map_err(|_| self.error("poisoned"))?;
        g.1.write_all(line.as_bytes()).map_err(|e| self.error(&e.to_string()))?;
        g.0.insert(key.to_string(), response.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_survive_reopening_and_a_torn_line_is_skipped() {
        let dir = std::env::temp_dir().join(format!("eval-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.jsonl");
        let _ = std::fs::remove_file(&path);
        let c = FileCache::open(&path).unwrap();
        c.put("k1", &json!({"a": 1})).unwrap();
        c.put("k2", &json!({"a": 2})).unwrap();
        drop(c);
        // A crash mid-write leaves half a line, here cut inside a Chinese character.
        let torn = "{\"key\":\"k3\",\"response\":\"北京".as_bytes();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&torn[..torn.len() - 1]).unwrap();
        let c = FileCache::open(&path).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("k2"), Some(json!({"a": 2})));
        c.put("k3", &json!({"a": 3})).unwrap();
        drop(c);
        let c = FileCache::open(&path).unwrap();
        assert_eq!(c.get("k3"), Some(json!({"a": 3})));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn the_key_depends_on_model_endpoint_and_request() {
        let body = json!({"model": "m", "max_tokens": 1});
        let k = key("m@1", Endpoint::Chat, &body);
        assert_eq!(k.len(), 64);
        assert_ne!(k, key("m@2", Endpoint::Chat, &body));
        assert_ne!(k, key("m@1", Endpoint::Completions, &body));
        assert_ne!(k, key("m@1", Endpoint::Chat, &json!({"model": "m", "max_tokens": 2})));
    }
}
