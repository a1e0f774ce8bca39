//! Collections over the store: documents in (checked, chunked, embedded as the tenant), listings,
//! deletes, and the search `file_search` and `POST …/search` share. Everything is per tenant:
//! another tenant's collection answers exactly like one that does not exist.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    Candidate, DocumentIn, DocumentView, EMBED_BATCH, Embed, Hit, MAX_CHUNKS, MAX_COLLECTIONS, MAX_DOCUMENTS, MAX_QUERIES, MAX_QUERY_CHARS,
    MAX_RESULTS, MAX_SEARCH_COLLECTIONS, chunk, decode_vector, encode_vector, rank,
};
use crate::AgentError;
use crate::spec::check_name;

type Caller = Arc<identity::Principal>;

/// A collection as listed.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CollectionView {
    pub object: &'static str,
    pub id: String,
    pub documents: i64,
    pub chunks: i64,
    pub bytes: i64,
    pub updated_ms: i64,
}

pub struct Collections {
    store: store::Store,
    embed: Arc<dyn Embed>,
    clock: Arc<dyn vocab::Clock>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> AgentError {
    AgentError::Invalid { field: field.into(), reason: reason.into() }
}

fn view(d: store::DocumentRow) -> DocumentView {
    DocumentView {
        object: "collection.document",
        attributes: serde_json::from_str(&d.attributes).unwrap_or_default(),
        id: d.id,
        collection: d.collection,
        filename: d.filename,
        bytes: d.bytes,
        chunks: d.chunks,
        created_ms: d.created_ms,
    }
}

impl Collections {
    pub fn new(store: store::Store, embed: Arc<dyn Embed>, clock: Arc<dyn vocab::Clock>) -> Self {
        Collections { store, embed, clock }
    }

    /// Embeds texts in batches, as the caller.
    async fn embed_all(&self, caller: &Caller, tenant: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, AgentError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            let v = self.embed.embed(caller.clone(), tenant.to_string(), batch.to_vec()).await;
            let v = v.map_err(|e| AgentError::Embedding { status: e.status, message: e.message })?;
            if v.len() != batch.len() {
                return Err(AgentError::Embedding { status: 502, message: format!("{} vectors for {} texts", v.len(), batch.len()) });
            }
            out.extend(v);
        }
        Ok(out)
    }

    /// Adds or replaces a document (`PUT` may be retried: the same document again changes
    /// nothing a search sees). Returns the document, and whether it is new.
    pub async fn put(
        &self,
        caller: &Caller,
        tenant: &str,
        collection: &str,
        id: &str,
        doc: DocumentIn,
    ) -> Result<(DocumentView, bool), AgentError> {
        check_name("collection", collection)?;
        check_name("document", id)?;
        doc.check()?;
        let chunks = chunk(&doc.text);
        let existing = self.store.collection_documents(tenant, collection, MAX_DOCUMENTS as i64 + 1).await?;
        let old = existing.iter().find(|d| d.id == id);
        let held: i64 = existing.iter().filter(|d| d.id != id).map(|d| d.chunks).sum();
        if old.is_none() && existing.len() >= MAX_DOCUMENTS {
            return Err(invalid("document", format!("a collection holds at most {MAX_DOCUMENTS} documents")));
        }
        if held + chunks.len() as i64 > MAX_CHUNKS as i64 {
            return Err(invalid(
                "text",
                format!("a collection holds at most {MAX_CHUNKS} chunks; it has {held}, this document is {}", chunks.len()),
            ));
        }
        if existing.is_empty() && self.store.collections(tenant, MAX_COLLECTIONS as i64 + 1).await?.len() >= MAX_COLLECTIONS {
            return Err(invalid("collection", format!("a tenant holds at most {MAX_COLLECTIONS} collections")));
        }
        let vectors = self.embed_all(caller, tenant, &chunks).await?;
        let row = store::DocumentRow {
            id: id.to_string(),
            collection: collection.to_string(),
            filename: doc.filename.clone().unwrap_or_else(|| id.to_string()),
            bytes: doc.text.len() as i64,
            chunks: chunks.len() as i64,
            created_ms: self.clock.now_ms(),
            attributes: serde_json::to_string(&doc.attributes).unwrap_or_else(|_| "{}".into()),
        };
        let stored: Vec<(String, String)> = chunks.into_iter().zip(vectors.iter().map(|v| encode_vector(v))).collect();
        let replaced = self.store.put_collection_document(tenant, &row, &stored).await?;
        Ok((view(row), !replaced))
    }

    pub async fn list(&self, tenant: &str) -> Result<Vec<CollectionView>, AgentError> {
        let rows = self.store.collections(tenant, MAX_COLLECTIONS as i64).await?;
        Ok(rows
            .into_iter()
            .map(|c| CollectionView {
                object: "collection",
                id: c.id,
                documents: c.documents,
                chunks: c.chunks,
                bytes: c.bytes,
                updated_ms: c.updated_ms,
            })
            .collect())
    }

    /// A collection's documents; not found when it holds none.
    pub async fn documents(&self, tenant: &str, collection: &str) -> Result<Vec<DocumentView>, AgentError> {
        let docs = self.store.collection_documents(tenant, collection, MAX_DOCUMENTS as i64).await?;
        if docs.is_empty() {
            return Err(AgentError::NotFound { what: "collection", id: collection.to_string() });
        }
        Ok(docs.into_iter().map(view).collect())
    }

    /// Deletes a collection, or one document of it.
    pub async fn delete(&self, tenant: &str, collection: &str, document: Option<&str>) -> Result<(), AgentError> {
        if self.store.delete_collection_documents(tenant, collection, document).await? == 0 {
            return Err(match document {
                Some(d) => AgentError::NotFound { what: "document", id: d.to_string() },
                None => AgentError::NotFound { what: "collection", id: collection.to_string() },
            });
        }
        Ok(())
    }

    /// The best `k` chunks of the tenant's named collections for the queries. A collection the
    /// tenant does not have adds nothing (as for `file_search`, whose declaration may name one
    /// not filled yet).
    pub async fn search(
        &self,
        caller: &Caller,
        tenant: &str,
        collections: &[String],
        queries: &[String],
        k: u32,
    ) -> Result<Vec<Hit>, AgentError> {
        if collections.is_empty() || collections.len() > MAX_SEARCH_COLLECTIONS {
            return Err(invalid("collection_ids", format!("1 to {MAX_SEARCH_COLLECTIONS} collections")));
        }
        if queries.is_empty() || queries.len() > MAX_QUERIES {
            return Err(invalid("query", format!("1 to {MAX_QUERIES} queries")));
        }
        if let Some(i) = queries.iter().position(|q| q.trim().is_empty() || q.chars().count() > MAX_QUERY_CHARS) {
            return Err(invalid(format!("query[{i}]"), format!("1 to {MAX_QUERY_CHARS} characters, not only spaces")));
        }
        if !(1..=MAX_RESULTS).contains(&k) {
            return Err(invalid("max_num_results", format!("1 to {MAX_RESULTS}")));
        }
        let mut candidates = Vec::new();
        for c in collections {
            for row in self.store.collection_chunks(tenant, c, MAX_CHUNKS as i64).await? {
                let Some(vector) = decode_vector(&row.vector) else {
                    return Err(AgentError::Corrupt {
                        id: format!("{c}/{}", row.document),
                        reason: "a chunk's vector does not decode".into(),
                    });
                };
                let attributes: BTreeMap<String, String> = serde_json::from_str(&row.attributes).unwrap_or_default();
                let hit = Hit { file_id: row.document, filename: row.filename, score: 0.0, text: row.text, attributes };
                candidates.push(Candidate { hit, vector });
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self.embed_all(caller, tenant, queries).await?;
        Ok(rank(&vectors, candidates, k as usize))
    }
}

/// One run's view of the collections: its tenant's, searched as its caller.
pub struct Scoped {
    pub collections: Arc<Collections>,
    pub caller: Caller,
    pub tenant: String,
}

impl crate::run::Search for Scoped {
    fn search(&self, collections: Vec<String>, queries: Vec<String>, k: u32) -> crate::run::BoxFuture<Result<Vec<Hit>, String>> {
        let (c, caller, tenant) = (self.collections.clone(), self.caller.clone(), self.tenant.clone());
        Box::pin(async move { c.search(&caller, &tenant, &collections, &queries, k).await.map_err(|e| e.to_string()) })
    }
}
