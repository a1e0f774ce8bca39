//! Conversations (the Responses API's Conversations): a row per conversation with its item
//! count and bytes, and its items in order. Limits are checked in the same transaction that adds.

use crate::{BeginWrite, Db, Store, StoreError};

/// A conversation of a tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationRow {
    pub id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub items: i64,
    pub bytes: i64,
    pub metadata: String,
}

/// What one conversation, and one tenant's conversations together, may hold.
#[derive(Clone, Copy, Debug)]
pub struct ItemLimits {
    pub max_items: i64,
    pub max_bytes: i64,
    pub max_tenant_bytes: i64,
}

type Row = (String, i64, i64, i64, i64, String);

/// Serialises conversation writes on a shared PostgreSQL database.
const PG_CONVERSATIONS_LOCK: i64 = 0x0061_6970_6c75_730a;

impl Store {
    /// Starts a conversation (its items are added with [`Store::add_conversation_items`]).
    pub async fn create_conversation(&self, id: &str, tenant: &str, now_ms: i64, metadata: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO conversations (id, tenant, created_ms, updated_ms, metadata) VALUES ($1, $2, $3, $3, $4)"
        )
        .bind(id)
        .bind(tenant)
        .bind(now_ms)
        .bind(metadata)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn conversation(&self, id: &str, tenant: &str) -> Result<Option<ConversationRow>, StoreError> {
        let r: Option<Row> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, created_ms, updated_ms, items, bytes, metadata FROM conversations WHERE id = $1 AND tenant = $2"
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(pool)
        .await?);
        Ok(r.map(|(id, created_ms, updated_ms, items, bytes, metadata)| ConversationRow {
            id,
            created_ms,
            updated_ms,
            items,
            bytes,
            metadata,
        }))
    }

    pub async fn set_conversation_metadata(&self, id: &str, tenant: &str, metadata: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE conversations SET metadata = $1, updated_ms = $2 WHERE id = $3 AND tenant = $4")
            .bind(metadata)
            .bind(now_ms)
            .bind(id)
            .bind(tenant)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Appends items (id, document) to a tenant's conversation, if they fit its limits:
    /// `Ok(None)` when there is no such conversation, `Ok(Some(false))` when they do not fit.
    pub async fn add_conversation_items(
        &self,
        id: &str,
        tenant: &str,
        now_ms: i64,
        items: &[(String, String)],
        limits: ItemLimits,
    ) -> Result<Option<bool>, StoreError> {
        let added_bytes: i64 = items.iter().map(|(_, d)| d.len() as i64).sum();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // On PostgreSQL, adds wait for each other, so that two never take the same place in
            // a conversation or both pass the tenant's limit (SQLite's write lock does this).
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_CONVERSATIONS_LOCK).execute(&mut *tx).await?;
            }
            let conv: Option<(i64, i64, i64)> =
                sqlx::query_as("SELECT items, bytes, next_seq FROM conversations WHERE id = $1 AND tenant = $2")
                    .bind(id)
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((count, bytes, next_seq)) = conv else { return Ok(None) };
            let tenant_bytes: i64 =
                sqlx::query_scalar("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM conversations WHERE tenant = $1")
                    .bind(tenant)
                    .fetch_one(&mut *tx)
                    .await?;
            let fits = count + items.len() as i64 <= limits.max_items
                && bytes + added_bytes <= limits.max_bytes
                && tenant_bytes + added_bytes <= limits.max_tenant_bytes;
            if !fits {
                return Ok(Some(false));
            }
            for (i, (item_id, doc)) in items.iter().enumerate() {
                sqlx::query("INSERT INTO conversation_items (conversation, seq, id, bytes, doc) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id)
                    .bind(next_seq + i as i64)
                    .bind(item_id)
                    .bind(doc.len() as i64)
                    .bind(doc)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "UPDATE conversations SET items = items + $1, bytes = bytes + $2, next_seq = next_seq + $1, updated_ms = $3 WHERE id = $4",
            )
            .bind(items.len() as i64)
            .bind(added_bytes)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(true))
        })
    }

    /// A conversation's items after (or, descending, before) the item `after`, at most `limit`:
    /// (item id, document). `None` when the conversation, or the `after` item, is not there.
    pub async fn conversation_items(
        &self,
        id: &str,
        tenant: &str,
        after: Option<&str>,
        descending: bool,
        limit: i64,
    ) -> Result<Option<Vec<(String, String)>>, StoreError> {
        if self.conversation(id, tenant).await?.is_none() {
            return Ok(None);
        }
        let from: i64 = match after {
            None if descending => i64::MAX,
            None => -1,
            Some(item) => {
                let seq: Option<i64> =
                    on_pool!(self, |pool| sqlx::query_scalar("SELECT seq FROM conversation_items WHERE conversation = $1 AND id = $2")
                        .bind(id)
                        .bind(item)
                        .fetch_optional(pool)
                        .await?);
                match seq {
                    Some(s) => s,
                    None => return Ok(None),
                }
            }
        };
        let rows: Vec<(String, String)> = if descending {
            on_pool!(self, |pool| sqlx::query_as(
                "SELECT id, doc FROM conversation_items WHERE conversation = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            )
            .bind(id)
            .bind(from)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        } else {
            on_pool!(self, |pool| sqlx::query_as(
                "SELECT id, doc FROM conversation_items WHERE conversation = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            )
            .bind(id)
            .bind(from)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        };
        Ok(Some(rows))
    }

    /// One item of a tenant's conversation.
    pub async fn conversation_item(&self, id: &str, tenant: &str, item: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT i.doc FROM conversation_items i JOIN conversations c ON c.id = i.conversation
             WHERE i.conversation = $1 AND c.tenant = $2 AND i.id = $3"
        )
        .bind(id)
        .bind(tenant)
        .bind(item)
        .fetch_optional(pool)
        .await?))
    }

    /// Deletes an item of a tenant's conversation; whether it was there.
    pub async fn delete_conversation_item(&self, id: &str, tenant: &str, item: &str, now_ms: i64) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let bytes: Option<i64> = sqlx::query_scalar(
                "SELECT i.bytes FROM conversation_items i JOIN conversations c ON c.id = i.conversation
                 WHERE i.conversation = $1 AND c.tenant = $2 AND i.id = $3",
            )
            .bind(id)
            .bind(tenant)
            .bind(item)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(bytes) = bytes else { return Ok(false) };
            sqlx::query("DELETE FROM conversation_items WHERE conversation = $1 AND id = $2").bind(id).bind(item).execute(&mut *tx).await?;
            sqlx::query("UPDATE conversations SET items = items - 1, bytes = bytes - $1, updated_ms = $2 WHERE id = $3")
                .bind(bytes)
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Deletes a tenant's conversation and its items; whether it was there.
    pub async fn delete_conversation(&self, id: &str, tenant: &str) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("DELETE FROM conversations WHERE id = $1 AND tenant = $2").bind(id).bind(tenant).execute(&mut *tx).await?;
            if n.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM conversation_items WHERE conversation = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// How many conversations a tenant has.
    pub async fn conversation_count(&self, tenant: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM conversations WHERE tenant = $1")
            .bind(tenant)
            .fetch_one(pool)
            .await?))
    }

    /// Forgets conversations last used before `before_ms` (retention); how many.
    pub async fn forget_conversations(&self, before_ms: i64) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM conversation_items WHERE conversation IN (SELECT id FROM conversations WHERE updated_ms < $1)")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query("DELETE FROM conversations WHERE updated_ms < $1").bind(before_ms).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }
}
