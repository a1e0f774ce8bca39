//! A tenant's document collections, searched by the built-in `file_search` tool: a document is
//! cut into overlapping chunks, each chunk embedded once (as the tenant, through the gateway's
//! embeddings endpoint, so it is metered like any request) and kept with its vector; a search
//! embeds the queries and ranks every chunk of the named collections by cosine similarity.
//!
//! Collections are small by design (a few thousand chunks each), so an exact scan is both the
//! simplest and the most accurate index; the limits below keep one search's scan bounded.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};

mod service;

pub use service::{CollectionView, Collections, Scoped};

use crate::AgentError;
use crate::run::BoxFuture;
use crate::spec::check_name;

/// Bytes of one document's text.
pub const MAX_DOCUMENT_BYTES: usize = 256 << 10;
pub const MAX_FILENAME_CHARS: usize = 256;
/// Attributes of one document (shown with its results), and the longest value.
pub const MAX_ATTRIBUTES: usize = 16;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 512;
/// What one tenant may hold: collections, documents in one, chunks in one.
pub const MAX_COLLECTIONS: usize = 100;
pub const MAX_DOCUMENTS: usize = 1000;
pub const MAX_CHUNKS: usize = 4000;
/// A search: queries, characters of one, collections, and results.
pub const MAX_QUERIES: usize = 4;
pub const MAX_QUERY_CHARS: usize = 2000;
pub const MAX_SEARCH_COLLECTIONS: usize = 8;
pub const MAX_RESULTS: u32 = 50;
pub const DEFAULT_RESULTS: u32 = 10;
/// Chunk size in units (a word, or one CJK character): all-MiniLM-L6-v2 reads 256 word pieces,
/// and 160 units stays under that for ordinary English and Chinese text.
pub const CHUNK_UNITS: usize = 160;
/// Units each chunk repeats from the one before, so a sentence cut at a boundary is whole in
/// one of them.
pub const OVERLAP_UNITS: usize = 32;
/// The longest unit: a run of characters without spaces (base64, a URL) is cut here.
pub const MAX_UNIT_BYTES: usize = 24;
/// The most bytes a chunk can have: its units, and one separator between each two.
pub const MAX_CHUNK_BYTES: usize = CHUNK_UNITS * (MAX_UNIT_BYTES + 1);
/// Bytes of documents one tenant may hold, over all its collections.
pub const MAX_TENANT_BYTES: i64 = 64 << 20;
/// Searches running at once on this instance: each holds its collections' vectors in memory.
pub const MAX_CONCURRENT_SEARCHES: usize = 4;
/// Texts sent to the embedder at once.
pub const EMBED_BATCH: usize = 64;

/// Vectors for texts, as the tenant (through the gateway, metered), in order.
pub trait Embed: Send + Sync {
    fn embed(&self, caller: Arc<identity::Principal>, tenant: String, texts: Vec<String>)
    -> BoxFuture<Result<Vec<Vec<f32>>, EmbedFailure>>;
}

/// The gateway refused or failed an embeddings request: its status and message.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbedFailure {
    pub status: u16,
    pub message: String,
}

/// A document as a tenant sends it (`PUT /api/v1/collections/{id}/documents/{doc}`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    pub text: String,
    /// What results call it; the document id when absent.
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A stored document, without its text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocumentView {
    pub object: &'static str,
    pub id: String,
    pub collection: String,
    pub filename: String,
    pub bytes: i64,
    pub chunks: i64,
    pub created_ms: i64,
    pub attributes: BTreeMap<String, String>,
}

/// One result of a search, in OpenAI's `file_search_call` result shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub file_id: String,
    pub filename: String,
    pub score: f32,
    pub text: String,
    pub attributes: BTreeMap<String, String>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> AgentError {
    AgentError::Invalid { field: field.into(), reason: reason.into() }
}

impl DocumentIn {
    /// Every rule a document keeps; each refusal names its field.
    pub fn check(&self) -> Result<(), AgentError> {
        if self.text.trim().is_empty() || self.text.len() > MAX_DOCUMENT_BYTES {
            return Err(invalid("text", format!("1 to {MAX_DOCUMENT_BYTES} bytes of text, not only spaces")));
        }
        if let Some(f) = &self.filename
            && (f.is_empty() || f.chars().count() > MAX_FILENAME_CHARS || f.chars().any(char::is_control))
        {
            return Err(invalid("filename", format!("1 to {MAX_FILENAME_CHARS} characters, no control characters")));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(invalid("attributes", format!("at most {MAX_ATTRIBUTES} pairs")));
        }
        for (k, v) in &self.attributes {
            check_name(&format!("attributes.{k}"), k)?;
            if v.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS {
                return Err(invalid(format!("attributes.{k}"), format!("at most {MAX_ATTRIBUTE_VALUE_CHARS} characters")));
            }
        }
        Ok(())
    }
}

/// Whether a character is a unit on its own: CJK ideographs, kana and hangul, which the
/// embedder's tokenizer splits one by one.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff | 0x20000..=0x2fa1f)
}

/// The byte ranges of a text's units: runs of other non-space characters, or one CJK character.
fn units(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || is_cjk(c) {
            if let Some(s) = start.take() {
                out.push((s, i));
            }
            if is_cjk(c) {
                out.push((i, i + c.len_utf8()));
            }
        } else {
            match start {
                None => start = Some(i),
                Some(s) if i - s >= MAX_UNIT_BYTES => {
                    out.push((s, i));
                    start = Some(i);
                }
                Some(_) => {}
            }
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Cuts a text into chunks of at most [`CHUNK_UNITS`] units, each sharing [`OVERLAP_UNITS`]
/// with the one before; every unit is in some chunk. A chunk is its units as the text has
/// them, with each run of spaces between two of them made one space (one newline if it held
/// one): so a chunk is at most [`MAX_CHUNK_BYTES`], however much space the text had.
pub fn chunk(text: &str) -> Vec<String> {
    let u = units(text);
    let mut out = Vec::new();
    let mut first = 0;
    while first < u.len() {
        let last = (first + CHUNK_UNITS).min(u.len());
        let mut c = String::new();
        for (i, &(start, end)) in u[first..last].iter().enumerate() {
            if i > 0 {
                let gap = &text[u[first + i - 1].1..start];
                c.push_str(if gap.contains('\n') {
                    "\n"
                } else if gap.is_empty() {
                    ""
                } else {
                    " "
                });
            }
            c.push_str(&text[start..end]);
        }
        out.push(c);
        if last == u.len() {
            break;
        }
        first = last - OVERLAP_UNITS;
    }
    out
}

/// A vector as stored: OpenAI's base64 encoding (little-endian `f32` bytes).
pub fn encode_vector(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_vector(s: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Cosine similarity; 0 for vectors of different lengths or of zero length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

/// The best `k` of the candidates for the queries, best first, with their scores: each scores
/// its best cosine over the queries; ties keep the candidates' order (a stable sort, so a search
/// answers the same every time).
pub fn rank<K>(queries: &[Vec<f32>], candidates: Vec<(K, Vec<f32>)>, k: usize) -> Vec<(K, f32)> {
    let mut scored: Vec<(K, f32)> = candidates
        .into_iter()
        .map(|(key, v)| {
            let score = queries.iter().map(|q| cosine(q, &v)).fold(f32::MIN, f32::max);
            (key, score)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_unit_within_the_size() {
        let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        let text = words.join(" ");
        let chunks = chunk(&text);
        assert!(chunks.iter().all(|c| units(c).len() <= CHUNK_UNITS));
        for w in &words {
            assert!(chunks.iter().any(|c| c.split(' ').any(|x| x == w)), "{w} lost");
        }
        // Consecutive chunks share the overlap.
        let second_first = chunks[1].split(' ').next().unwrap();
        assert_eq!(second_first, format!("w{}", CHUNK_UNITS - OVERLAP_UNITS));
        assert_eq!(chunk("  \n "), Vec::<String>::new());
        assert_eq!(chunk("one"), ["one"]);
    }

    #[test]
    fn space_cannot_make_a_chunk_large() {
        let text = format!("a{}b\n\n  c{}", " ".repeat(200_000), "x".repeat(10_000));
        let chunks = chunk(&text);
        assert!(chunks.iter().all(|c| c.len() <= MAX_CHUNK_BYTES), "{:?}", chunks.iter().map(String::len).collect::<Vec<_>>());
        assert!(chunks[0].starts_with("a b\nc"), "{:?}", &chunks[0][..8]);
        // Chinese keeps no spaces between its characters.
        assert_eq!(chunk("算力 网络"), ["算力 网络"]);
        assert_eq!(chunk("算力网络"), ["算力网络"]);
    }

    #[test]
    fn chinese_characters_are_units() {
        let text = "人工智能".repeat(100);
        let chunks = chunk(&text);
        assert_eq!(chunks[0].chars().count(), CHUNK_UNITS);
        assert_eq!(units("AI+行动 plan").len(), 4);
        // A run with no spaces (base64, a URL) is cut into units too.
        assert_eq!(units(&"x".repeat(100)).len(), 100usize.div_ceil(MAX_UNIT_BYTES));
    }

    #[test]
    fn vectors_round_trip_and_rank_by_best_query() {
        let v = vec![1.0f32, -0.5, 0.25];
        assert_eq!(encode_vector(&[1.0]), "AACAPw==");
        assert_eq!(decode_vector(&encode_vector(&v)).unwrap(), v);
        assert!(decode_vector("AACA").is_none());
        let c = vec![("x", vec![1.0, 0.0]), ("y", vec![0.0, 1.0]), ("z", vec![1.0, 1.0])];
        let top = rank(&[vec![0.0, 2.0]], c.clone(), 2);
        assert_eq!(top.iter().map(|h| h.0).collect::<Vec<_>>(), ["y", "z"]);
        assert!((top[0].1 - 1.0).abs() < 1e-6);
        // Two queries: each candidate keeps its best score.
        let top = rank(&[vec![1.0, 0.0], vec![0.0, 1.0]], c, 3);
        assert_eq!(top[0].0, "x");
        assert_eq!(top[2].0, "z");
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn documents_are_checked_by_field() {
        let doc = |text: &str| DocumentIn { text: text.into(), filename: None, attributes: BTreeMap::new() };
        assert!(doc("hello").check().is_ok());
        assert!(matches!(doc(" ").check(), Err(AgentError::Invalid { field, .. }) if field == "text"));
        let mut d = doc("x");
        d.filename = Some("a\nb".into());
        assert!(matches!(d.check(), Err(AgentError::Invalid { field, .. }) if field == "filename"));
        let mut d = doc("x");
        d.attributes.insert("bad key".into(), "v".into());
        assert!(matches!(d.check(), Err(AgentError::Invalid { field, .. }) if field == "attributes.bad key"));
    }
}
