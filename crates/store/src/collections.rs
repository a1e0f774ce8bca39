//! Document collections for the agents' `file_search`: documents and their embedded chunks,
//! per tenant. A collection exists while it holds a document.

use crate::{BeginWrite, Db, Store, StoreError};

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
    /// Stores a document with its chunks (text, vector), replacing one of the same id in one
    /// transaction. Returns whether it replaced one.
    pub async fn put_collection_document(&self, tenant: &str, d: &DocumentRow, chunks: &[(String, String)]) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let replaced = sqlx::query("DELETE FROM collection_documents WHERE tenant = $1 AND collection = $2 AND id = $3")
                .bind(tenant)
                .bind(&d.collection)
                .bind(&d.id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            sqlx::query("DELETE FROM collection_chunks WHERE tenant = $1 AND collection = $2 AND document = $3")
                .bind(tenant)
                .bind(&d.collection)
                .bind(&d.id)
                .execute(&mut *tx)
                .await?;
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
            Ok(replaced)
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

    /// Every chunk of a tenant's collection, in document and chunk order, up to `limit`.
    pub async fn collection_chunks(&self, tenant: &str, collection: &str, limit: i64) -> Result<Vec<ChunkRow>, StoreError> {
        let rows: Vec<(String, String, String, String, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT c.document, d.filename, d.attributes, c.text, c.vector
             FROM collection_chunks c JOIN collection_documents d
               ON d.tenant = c.tenant AND d.collection = c.collection AND d.id = c.document
             WHERE c.tenant = $1 AND c.collection = $2 ORDER BY c.document, c.ix LIMIT $3"
        )
        .bind(tenant)
        .bind(collection)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(document, filename, attributes, text, vector)| ChunkRow { document, filename, attributes, text, vector })
            .collect())
    }
}
