//! Alert rows: at most one open alert per key, so an alert raised by several instances at once
//! is stored once, and a closed alert stays as history.

use crate::{Db, Store, StoreError};

/// An alert as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRow {
    pub id: String,
    pub key: String,
    pub tenant: Option<String>,
    pub opened_ms: i64,
    pub closed_ms: Option<i64>,
    pub doc: String,
}

type Row = (String, String, Option<String>, i64, Option<i64>, String);

fn row((id, key, tenant, opened_ms, closed_ms, doc): Row) -> AlertRow {
    AlertRow { id, key, tenant, opened_ms, closed_ms, doc }
}

impl Store {
    /// Opens an alert unless one with its key is open: true when this call opened it.
    pub async fn raise_alert(&self, a: &AlertRow) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query(
            "INSERT INTO alerts (id, key, tenant, opened_ms, closed_ms, doc) VALUES ($1, $2, $3, $4, NULL, $5)
             ON CONFLICT (key) WHERE closed_ms IS NULL DO NOTHING"
        )
        .bind(&a.id)
        .bind(&a.key)
        .bind(&a.tenant)
        .bind(a.opened_ms)
        .bind(&a.doc)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Closes the open alert with `key`: true when one was open.
    pub async fn close_alert(&self, key: &str, closed_ms: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE alerts SET closed_ms = $1 WHERE key = $2 AND closed_ms IS NULL")
            .bind(closed_ms)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Replaces an alert's document (an acknowledgement), open or closed.
    pub async fn update_alert(&self, id: &str, doc: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE alerts SET doc = $1 WHERE id = $2")
            .bind(doc)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    pub async fn alert(&self, id: &str) -> Result<Option<AlertRow>, StoreError> {
        let r: Option<Row> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, key, tenant, opened_ms, closed_ms, doc FROM alerts WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?);
        Ok(r.map(row))
    }

    /// The open alerts, and the closed ones opened at or after `since_ms`, newest first, at
    /// most `limit`; only `tenant`'s when one is named.
    pub async fn alerts(&self, tenant: Option<&str>, since_ms: i64, limit: i64) -> Result<Vec<AlertRow>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, key, tenant, opened_ms, closed_ms, doc FROM alerts
             WHERE (closed_ms IS NULL OR opened_ms >= $1) AND ($3 IS NULL OR tenant = $3)
             ORDER BY opened_ms DESC, id DESC LIMIT $2"
        )
        .bind(since_ms)
        .bind(limit)
        .bind(tenant)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(row).collect())
    }

    /// The keys of the open alerts whose key starts with `prefix`.
    pub async fn open_alert_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let all: Vec<String> =
            on_pool!(self, |pool| sqlx::query_scalar("SELECT key FROM alerts WHERE closed_ms IS NULL").fetch_all(pool).await?);
        Ok(all.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    /// When the last alert with `key` was closed, if one was.
    pub async fn last_closed_alert_ms(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let ms: Option<Option<i64>> = on_pool!(self, |pool| sqlx::query_scalar("SELECT MAX(closed_ms) FROM alerts WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?);
        Ok(ms.flatten())
    }

    /// The open alert with `key`, if one is open.
    pub async fn open_alert(&self, key: &str) -> Result<Option<AlertRow>, StoreError> {
        let r: Option<Row> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, key, tenant, opened_ms, closed_ms, doc FROM alerts WHERE key = $1 AND closed_ms IS NULL"
        )
        .bind(key)
        .fetch_optional(pool)
        .await?);
        Ok(r.map(row))
    }
}
