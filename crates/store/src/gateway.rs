//! What the gateway keeps: models made through the API (their upstream keys apart), tenants'
//! settings, the limit counters every instance shares, and stored Responses.

use serde::{Serialize, de::DeserializeOwned};

use crate::{BeginWrite, Db, Store, StoreError};

impl Store {
    /// Stores a model (replacing one of the same name): its document and its secrets document.
    pub async fn put_model<M: Serialize, S: Serialize>(&self, name: &str, doc: &M, secrets: &S) -> Result<(), StoreError> {
        let (doc, secrets) = (serde_json::to_string(doc)?, serde_json::to_string(secrets)?);
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO gateway_models (name, doc, secrets) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, secrets = excluded.secrets"
        )
        .bind(name)
        .bind(&doc)
        .bind(&secrets)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Deletes a model; false when there was none.
    pub async fn delete_model(&self, name: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query("DELETE FROM gateway_models WHERE name = $1")
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Every stored model as (name, document, secrets), by name.
    pub async fn models<M: DeserializeOwned, S: DeserializeOwned>(&self) -> Result<Vec<(String, M, S)>, StoreError> {
        let rows: Vec<(String, String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT name, doc, secrets FROM gateway_models ORDER BY name").fetch_all(pool).await?);
        rows.into_iter().map(|(n, d, s)| Ok((n, serde_json::from_str(&d)?, serde_json::from_str(&s)?))).collect()
    }

    /// Stores a tenant's settings document (limits, regions), replacing the previous one.
    pub async fn set_tenant_settings<L: Serialize>(&self, tenant: &str, doc: &L) -> Result<(), StoreError> {
        let doc = serde_json::to_string(doc)?;
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO tenant_settings (tenant, doc) VALUES ($1, $2) ON CONFLICT (tenant) DO UPDATE SET doc = excluded.doc"
        )
        .bind(tenant)
        .bind(&doc)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn tenant_settings<L: DeserializeOwned>(&self) -> Result<Vec<(String, L)>, StoreError> {
        let rows: Vec<(String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT tenant, doc FROM tenant_settings ORDER BY tenant").fetch_all(pool).await?);
        rows.into_iter().map(|(t, doc)| Ok((t, serde_json::from_str(&doc)?))).collect()
    }

    /// Takes up to `want` units of the shared counter `scope` in window `window_id` without
    /// letting it pass `limit`, and returns how many were granted (0: the window is used up).
    /// Several instances may call this at once; the grants never sum past the limit.
    pub async fn lease(&self, scope: &str, window_id: i64, want: i64, limit: i64) -> Result<i64, StoreError> {
        // One atomic UPDATE takes min(want, what is left) and records the grant next to the
        // count; both databases compute SET from the row as it was, and PostgreSQL re-evaluates
        // the statement on the newest row when two instances race, so grants never overlap.
        let granted: Option<i64> = on_pool!(self, |pool| {
            sqlx::query("INSERT INTO limit_windows (scope, window_id, used) VALUES ($1, $2, 0) ON CONFLICT (scope, window_id) DO NOTHING")
                .bind(scope)
                .bind(window_id)
                .execute(pool)
                .await?;
            sqlx::query_scalar(
                "UPDATE limit_windows
                 SET used = used + (CASE WHEN $3 < $4 - used THEN $3 ELSE $4 - used END),
                     last_grant = (CASE WHEN $3 < $4 - used THEN $3 ELSE $4 - used END)
                 WHERE scope = $1 AND window_id = $2 AND used < $4
                 RETURNING last_grant",
            )
            .bind(scope)
            .bind(window_id)
            .bind(want.max(0))
            .bind(limit)
            .fetch_optional(pool)
            .await?
        });
        Ok(granted.unwrap_or(0).max(0))
    }

    /// Adds `n` to a counter unconditionally: usage beyond what was leased (an answer longer
    /// than its reservation) still counts.
    pub async fn charge(&self, scope: &str, window_id: i64, n: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO limit_windows (scope, window_id, used) VALUES ($1, $2, $3)
             ON CONFLICT (scope, window_id) DO UPDATE SET used = limit_windows.used + excluded.used"
        )
        .bind(scope)
        .bind(window_id)
        .bind(n)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// How much of a counter is taken (leased or charged).
    pub async fn counter(&self, scope: &str, window_id: i64) -> Result<i64, StoreError> {
        let v: Option<i64> =
            on_pool!(self, |pool| sqlx::query_scalar("SELECT used FROM limit_windows WHERE scope = $1 AND window_id = $2")
                .bind(scope)
                .bind(window_id)
                .fetch_optional(pool)
                .await?);
        Ok(v.unwrap_or(0))
    }
}

impl Store {
    /// Stores a Response document for `tenant`, then forgets the tenant's oldest ones until
    /// what it keeps is at most `quota_bytes`; all in one transaction. Returns how many were
    /// forgotten.
    pub async fn put_response(&self, id: &str, tenant: &str, at_ms: i64, doc: &str, quota_bytes: i64) -> Result<usize, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO stored_responses (id, tenant, at_ms, bytes, doc) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(tenant)
                .bind(at_ms)
                .bind(doc.len() as i64)
                .bind(doc)
                .execute(&mut *tx)
                .await?;
            let kept: Vec<(String, i64)> =
                sqlx::query_as("SELECT id, bytes FROM stored_responses WHERE tenant = $1 ORDER BY at_ms DESC, id DESC")
                    .bind(tenant)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut total = 0i64;
            let mut dropped = 0;
            for (old, bytes) in kept {
                total = total.saturating_add(bytes);
                if total > quota_bytes {
                    sqlx::query("DELETE FROM stored_responses WHERE id = $1").bind(&old).execute(&mut *tx).await?;
                    dropped += 1;
                }
            }
            tx.commit().await?;
            Ok(dropped)
        })
    }

    /// Replaces a stored Response document of `tenant` (a background run's progress); whether
    /// it was there.
    pub async fn update_response(&self, id: &str, tenant: &str, doc: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE stored_responses SET doc = $1, bytes = $2 WHERE id = $3 AND tenant = $4")
            .bind(doc)
            .bind(doc.len() as i64)
            .bind(id)
            .bind(tenant)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// A stored Response document of `tenant` (another tenant's answers like a missing one).
    pub async fn response(&self, id: &str, tenant: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT doc FROM stored_responses WHERE id = $1 AND tenant = $2")
            .bind(id)
            .bind(tenant)
            .fetch_optional(pool)
            .await?))
    }

    /// Bytes of Responses `tenant` keeps.
    pub async fn response_bytes(&self, tenant: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM stored_responses WHERE tenant = $1"
        )
        .bind(tenant)
        .fetch_one(pool)
        .await?))
    }
}
