//! Document collections for the agents' `file_search`: documents and their embedded chunks,
//! per tenant. A collection exists while it holds a document.

use crate::{BeginWrite, Db, Store, StoreError};

/// Serialises document writes on a shared PostgreSQL database, so that limits are checked and
/// a document replaced as one step (SQLite's write lock does this).
const PG_COLLECTIONS_LOCK: i64 = 0x0061_6970_6c75_730b;

/// What one tenant's collections may hold, checked in the write's transaction.
#[derive(Clone, Copy, Debug)]
pub struct CollectionLimits {
    pub max_collections: i64,
    pub max_documents: i64,
    pub max_chunks: i64,
    pub max_tenant_bytes: i64,
}

/// How a document write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutDocument {
    Added,
    Replaced,
    /// Nothing was written: the tenant already has as many collections as it may.
    TooManyCollections,
    /// Nothing was written: the collection already holds as many documents as it may.
    TooManyDocuments,
    /// Nothing was written: the collection would pass its chunks (it holds `held` besides this
    /// document).
    TooManyChunks {
        held: i64,
    },
    /// Nothing was written: the tenant's documents would pass its bytes (`held` besides this one).
    TooManyBytes {
        held: i64,
    },
}

/// A collection and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionRow {
    pub id: String,
    pub documents: i64,
    pub chunks: i64,
    pub bytes: i64,
    pub updated_ms: i64,
}

/// A document, without its text.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentRow {
    pub id: String,
    pub collection: String,
    pub filename: String,
    pub bytes: i64,
    pub chunks: i64,
    pub created_ms: i64,
    /// A JSON object.
    pub attributes: String,
}

/// A chunk as a search reads it, with its document's name and attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkRow {
    pub document: String,
    pub filename: String,
    pub attributes: String,
    pub text: String,
    /// Base64 of little-endian `f32`s.
    pub vector: String,
}

type DocTuple = (String, String, String, i64, i64, i64, String);

fn doc_row((id, collection, filename, bytes, chunks, created_ms, attributes): DocTuple) -> DocumentRow {
    DocumentRow { id, collection, filename, bytes, chunks, created_ms, attributes }
}

impl Store {
    /// Stores a document with its chunks (text, vector), replacing one of the same id, in one
    /// transaction that first checks the tenant's limits (so racing writes cannot pass them).
    /// Without chunks it only says how the write would end, and writes nothing.
    pub async fn put_collection_document(
        &self,
        tenant: &str,
        d: &DocumentRow,
        chunks: Option<&[(String, String)]>,
        limits: CollectionLimits,
    ) -> Result<PutDocument, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_COLLECTIONS_LOCK).execute(&mut *tx).await?;
            }
            let old: Option<i64> =
                sqlx::query_scalar("SELECT bytes FROM collection_documents WHERE tenant = $1 AND collection = $2 AND id = $3")
                    .bind(tenant)
                    .bind(&d.collection)
                    .bind(&d.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let (others, held_chunks): (i64, i64) = sqlx::query_as(
                "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(chunks), 0) AS BIGINT) FROM collection_documents
                 WHERE tenant = $1 AND collection = $2 AND id <> $3",
            )
            .bind(tenant)
            .bind(&d.collection)
            .bind(&d.id)
            .fetch_one(&mut *tx)
            .await?;
            let (collections, tenant_bytes): (i64, i64) = sqlx::query_as(
                "SELECT CAST(COUNT(DISTINCT collection) AS BIGINT), CAST(COALESCE(SUM(bytes), 0) AS BIGINT)
                 FROM collection_documents WHERE tenant = $1",
            )
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
            let held_bytes = tenant_bytes - old.unwrap_or(0);
            let over = if others == 0 && old.is_none() && collections >= limits.max_collections {
                Some(PutDocument::TooManyCollections)
            } else if old.is_none() && others >= limits.max_documents {
                Some(PutDocument::TooManyDocuments)
            } else if held_chunks + d.chunks > limits.max_chunks {
                Some(PutDocument::TooManyChunks { held: held_chunks })
            } else if held_bytes + d.bytes > limits.max_tenant_bytes {
                Some(PutDocument::TooManyBytes { held: held_bytes })
            } else {
                None
            };
            if let Some(over) = over {
                return Ok(over);
            }
            let done = if old.is_some() { PutDocument::Replaced } else { PutDocument::Added };
            let Some(chunks) = chunks else { return Ok(done) };
            for sql in [
                "DELETE FROM collection_documents WHERE tenant = $1 AND collection = $2 AND id = $3",
                "DELETE FROM collection_chunks WHERE tenant = $1 AND collection = $2 AND document = $3",
            ] {
                sqlx::query(sql).bind(tenant).bind(&d.collection).bind(&d.id).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO collection_documents (tenant, collection, id, filename, bytes, chunks, created_ms, attributes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tenant)
            .bind(&d.collection)
            .bind(&d.id)
            .bind(&d.filename)
            .bind(d.bytes)
            .bind(d.chunks)
            .bind(d.created_ms)
            .bind(&d.attributes)
            .execute(&mut *tx)
            .await?;
            for (ix, (text, vector)) in chunks.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO collection_chunks (tenant, collection, document, ix, text, vector) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant)
                .bind(&d.collection)
                .bind(&d.id)
                .bind(ix as i64)
                .bind(text)
                .bind(vector)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    /// A tenant's collections, by id.
    pub async fn collections(&self, tenant: &str, limit: i64) -> Result<Vec<CollectionRow>, StoreError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT collection, CAST(COUNT(*) AS BIGINT), CAST(SUM(chunks) AS BIGINT), CAST(SUM(bytes) AS BIGINT),
                    CAST(MAX(created_ms) AS BIGINT)
             FROM collection_documents WHERE tenant = $1 GROUP BY collection ORDER BY collection LIMIT $2"
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(id, documents, chunks, bytes, updated_ms)| CollectionRow { id, documents, chunks, bytes, updated_ms })
            .collect())
    }

    /// The documents of a tenant's collection, by id.
    pub async fn collection_documents(&self, tenant: &str, collection: &str, limit: i64) -> Result<Vec<DocumentRow>, StoreError> {
        let rows: Vec<DocTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, collection, filename, bytes, chunks, created_ms, attributes FROM collection_documents
             WHERE tenant = $1 AND collection = $2 ORDER BY id LIMIT $3"
        )
        .bind(tenant)
        .bind(collection)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(doc_row).collect())
    }

    /// Deletes a document and its chunks, or a whole collection (`document` none). Returns the
    /// documents deleted.
    pub async fn delete_collection_documents(&self, tenant: &str, collection: &str, document: Option<&str>) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("DELETE FROM collection_documents WHERE tenant = $1 AND collection = $2 AND ($3 IS NULL OR id = $3)")
                .bind(tenant)
                .bind(collection)
                .bind(document)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM collection_chunks WHERE tenant = $1 AND collection = $2 AND ($3 IS NULL OR document = $3)")
                .bind(tenant)
                .bind(collection)
                .bind(document)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    /// The vectors of a tenant's collection, in document and chunk order, up to `limit`:
    /// (document, chunk index, vector). A search ranks these and reads only its results' text.
    pub async fn collection_vectors(&self, tenant: &str, collection: &str, limit: i64) -> Result<Vec<(String, i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT document, ix, vector FROM collection_chunks WHERE tenant = $1 AND collection = $2 ORDER BY document, ix LIMIT $3"
        )
        .bind(tenant)
        .bind(collection)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// One chunk, with its document's name and attributes.
    pub async fn collection_chunk(&self, tenant: &str, collection: &str, document: &str, ix: i64) -> Result<Option<ChunkRow>, StoreError> {
        let row: Option<(String, String, String, String, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT c.document, d.filename, d.attributes, c.text, c.vector
             FROM collection_chunks c JOIN collection_documents d
               ON d.tenant = c.tenant AND d.collection = c.collection AND d.id = c.document
             WHERE c.tenant = $1 AND c.collection = $2 AND c.document = $3 AND c.ix = $4"
        )
        .bind(tenant)
        .bind(collection)
        .bind(document)
        .bind(ix)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(document, filename, attributes, text, vector)| ChunkRow { document, filename, attributes, text, vector }))
    }
}
