//! Collections over the store: documents in (checked, chunked, embedded as the tenant), listings,
//! deletes, and the search `file_search` and `POST …/search` share. Everything is per tenant:
//! another tenant's collection answers exactly like one that does not exist.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    DocumentIn, DocumentView, EMBED_BATCH, Embed, Hit, MAX_CHUNKS, MAX_COLLECTIONS, MAX_CONCURRENT_SEARCHES, MAX_DOCUMENTS, MAX_QUERIES,
    MAX_QUERY_CHARS, MAX_RESULTS, MAX_SEARCH_COLLECTIONS, MAX_TENANT_BYTES, chunk, decode_vector, encode_vector, rank,
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

/// The limits of [`super`], as the store checks them.
const LIMITS: store::CollectionLimits = store::CollectionLimits {
    max_collections: MAX_COLLECTIONS as i64,
    max_documents: MAX_DOCUMENTS as i64,
    max_chunks: MAX_CHUNKS as i64,
    max_tenant_bytes: MAX_TENANT_BYTES,
};

/// A write the limits refused, as the error that names what is full.
fn refused(outcome: store::PutDocument) -> Result<(), AgentError> {
    use store::PutDocument as P;
    match outcome {
        P::Added | P::Replaced => Ok(()),
        P::TooManyCollections => Err(invalid("collection", format!("a tenant holds at most {MAX_COLLECTIONS} collections"))),
        P::TooManyDocuments => Err(invalid("document", format!("a collection holds at most {MAX_DOCUMENTS} documents"))),
        P::TooManyChunks { held } => {
            Err(invalid("text", format!("a collection holds at most {MAX_CHUNKS} chunks; it has {held} besides this document")))
        }
        P::TooManyBytes { held } => Err(invalid(
            "text",
            format!("a tenant's documents hold at most {} MiB; it has {held} bytes besides this one", MAX_TENANT_BYTES >> 20),
        )),
    }
}

pub struct Collections {
    store: store::Store,
    embed: Arc<dyn Embed>,
    clock: Arc<dyn vocab::Clock>,
    searches: tokio::sync::Semaphore,
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
        Collections { store, embed, clock, searches: tokio::sync::Semaphore::new(MAX_CONCURRENT_SEARCHES) }
    }

    /// Embeds texts in batches, as the caller. A refusal of the texts themselves (too long, too
    /// many) names `field`; a refusal of the caller (a limit, a suspension) is passed on.
    async fn embed_all(&self, caller: &Caller, tenant: &str, texts: &[String], field: &str) -> Result<Vec<Vec<f32>>, AgentError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            let v = match self.embed.embed(caller.clone(), tenant.to_string(), batch.to_vec()).await {
                Ok(v) => v,
                Err(e) if e.status == 400 || e.status == 413 => return Err(invalid(field, e.message)),
                Err(e) => return Err(AgentError::Embedding { status: e.status, message: e.message }),
            };
            if v.len() != batch.len() {
                return Err(AgentError::Embedding { status: 502, message: format!("{} vectors for {} texts", v.len(), batch.len()) });
            }
            out.extend(v);
        }
        Ok(out)
    }

    /// Adds or replaces a document (`PUT` may be retried: the same document again changes
    /// nothing a search sees). Returns the document, and whether it is new. The limits are
    /// checked again when it is written, so racing writes cannot pass them.
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
        if chunks.len() > MAX_CHUNKS {
            return Err(invalid("text", format!("{} chunks; a collection holds at most {MAX_CHUNKS}", chunks.len())));
        }
        let row = store::DocumentRow {
            id: id.to_string(),
            collection: collection.to_string(),
            filename: doc.filename.clone().unwrap_or_else(|| id.to_string()),
            bytes: doc.text.len() as i64,
            chunks: chunks.len() as i64,
            created_ms: self.clock.now_ms(),
            attributes: serde_json::to_string(&doc.attributes).unwrap_or_else(|_| "{}".into()),
        };
        // Checked before the embedding is paid for, and again (in one transaction) when written.
        refused(self.store.put_collection_document(tenant, &row, None, LIMITS).await?)?;
        let vectors = self.embed_all(caller, tenant, &chunks, "text").await?;
        let stored: Vec<(String, String)> = chunks.into_iter().zip(vectors.iter().map(|v| encode_vector(v))).collect();
        let outcome = self.store.put_collection_document(tenant, &row, Some(&stored), LIMITS).await?;
        refused(outcome)?;
        Ok((view(row), outcome == store::PutDocument::Added))
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
        // Each search holds its collections' vectors in memory: a few at a time.
        let _turn =
            self.searches.acquire().await.map_err(|_| AgentError::Embedding { status: 503, message: "the server is stopping".into() })?;
        let mut names: Vec<&String> = Vec::new();
        for c in collections {
            if !names.contains(&c) {
                names.push(c);
            }
        }
        let mut candidates = Vec::new();
        for c in names {
            for (document, ix, v) in self.store.collection_vectors(tenant, c, MAX_CHUNKS as i64).await? {
                let Some(vector) = decode_vector(&v) else {
                    return Err(AgentError::Corrupt { id: format!("{c}/{document}"), reason: "a chunk's vector does not decode".into() });
                };
                candidates.push(((c, document, ix), vector));
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self.embed_all(caller, tenant, queries, "query").await?;
        // Vectors of another length were made by another embedding model: every score would
        // be 0, so the search says so instead of answering nonsense.
        let dim = vectors.first().map_or(0, Vec::len);
        if let Some(((c, ..), _)) = candidates.iter().find(|(_, v)| v.len() != dim) {
            return Err(invalid(
                "collection_ids",
                format!("collection {c:?} was embedded by another model than this server's; put its documents again"),
            ));
        }
        let mut hits = Vec::new();
        for ((c, document, ix), score) in rank(&vectors, candidates, k as usize) {
            // A chunk deleted since it was ranked is left out.
            let Some(row) = self.store.collection_chunk(tenant, c, &document, ix).await? else { continue };
            let attributes: BTreeMap<String, String> = serde_json::from_str(&row.attributes).unwrap_or_default();
            hits.push(Hit { file_id: row.document, filename: row.filename, score, text: row.text, attributes });
        }
        Ok(hits)
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
        Box::pin(async move {
            c.search(&caller, &tenant, &collections, &queries, k).await.map_err(|e| match e {
                // The store's and the records' troubles are the operator's, not the model's.
                AgentError::Store(_) | AgentError::Corrupt { .. } => {
                    tracing::error!(tenant, error = %e, "file_search failed");
                    "the search failed on the server; try again later".to_string()
                }
                other => other.to_string(),
            })
        })
    }
}
