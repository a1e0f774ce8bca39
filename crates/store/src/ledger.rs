//! The usage ledger's reads (its batched writes go through [`Store::record`]).

use serde::de::DeserializeOwned;

use crate::{Db, Store, StoreError, UsageRow};

impl Store {
    /// Usage events, oldest first, optionally for one tenant and pillar, within [from, to).
    pub async fn usage<U: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
        pillar: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<UsageRow<U>>, StoreError> {
        let rows: Vec<(String, i64, String, String, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, at_ms, tenant, pillar, doc FROM usage_events
             WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR pillar = $2) AND at_ms >= $3 AND at_ms < $4
             ORDER BY at_ms, id LIMIT $5",
        )
        .bind(tenant)
        .bind(pillar)
        .bind(from_ms)
        .bind(to_ms)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        usage_rows(rows)
    }
}

/// Ledger rows as read (id, time, tenant, pillar, document text), with their documents parsed.
pub(crate) fn usage_rows<U: DeserializeOwned>(rows: Vec<(String, i64, String, String, String)>) -> Result<Vec<UsageRow<U>>, StoreError> {
    rows.into_iter()
        .map(|(id, at_ms, tenant, pillar, doc)| Ok(UsageRow { id, at_ms, tenant, pillar, doc: serde_json::from_str(&doc)? }))
        .collect()
}
