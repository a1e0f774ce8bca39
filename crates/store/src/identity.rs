//! What identity keeps: the tenant registry, API keys and operator tokens. Only the SHA-256 of a
//! key's or token's secret is stored.

use serde::{Serialize, de::DeserializeOwned};

use crate::{Db, Store, StoreError};

impl Store {
    /// How many keys `tenant` has ever made (revoked ones included).
    pub async fn key_count(&self, tenant: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE tenant = $1")
            .bind(tenant)
            .fetch_one(pool)
            .await?))
    }

    pub async fn insert_key<K: Serialize>(&self, id: &str, hash: &str, tenant: &str, doc: &K) -> Result<(), StoreError> {
        let doc = serde_json::to_string(doc)?;
        on_pool!(self, |pool| sqlx::query("INSERT INTO api_keys (id, hash, tenant, doc) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(hash)
            .bind(tenant)
            .bind(&doc)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn update_key<K: Serialize>(&self, id: &str, doc: &K) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(doc)?;
        let n = on_pool!(self, |pool| sqlx::query("UPDATE api_keys SET doc = $1 WHERE id = $2")
            .bind(&doc)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Every key as (hash, document), optionally for one tenant.
    pub async fn keys<K: DeserializeOwned>(&self, tenant: Option<&str>) -> Result<Vec<(String, K)>, StoreError> {
        let rows: Vec<(String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT hash, doc FROM api_keys WHERE ($1 IS NULL OR tenant = $1) ORDER BY id")
                .bind(tenant)
                .fetch_all(pool)
                .await?);
        rows.into_iter().map(|(h, doc)| Ok((h, serde_json::from_str(&doc)?))).collect()
    }

    /// Registers a tenant; false when one of that id exists.
    pub async fn insert_tenant<T: Serialize>(&self, id: &str, created_ms: i64, doc: &T) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(doc)?;
        let n =
            on_pool!(self, |pool| sqlx::query("INSERT INTO tenants (id, created_ms, doc) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                .bind(id)
                .bind(created_ms)
                .bind(&doc)
                .execute(pool)
                .await?
                .rows_affected());
        Ok(n == 1)
    }

    /// Every tenant as (id, created_ms, document), by id.
    pub async fn tenants<T: DeserializeOwned>(&self) -> Result<Vec<(String, i64, T)>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, created_ms, doc FROM tenants ORDER BY id").fetch_all(pool).await?);
        rows.into_iter().map(|(id, at, doc)| Ok((id, at, serde_json::from_str(&doc)?))).collect()
    }

    pub async fn insert_operator_token<T: Serialize>(&self, id: &str, hash: &str, doc: &T) -> Result<(), StoreError> {
        let doc = serde_json::to_string(doc)?;
        on_pool!(self, |pool| sqlx::query("INSERT INTO operator_tokens (id, hash, doc) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(hash)
            .bind(&doc)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn update_operator_token<T: Serialize>(&self, id: &str, doc: &T) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(doc)?;
        let n = on_pool!(self, |pool| sqlx::query("UPDATE operator_tokens SET doc = $1 WHERE id = $2")
            .bind(&doc)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Every operator token as (hash, document), oldest first.
    pub async fn operator_tokens<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, StoreError> {
        let rows: Vec<(String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT hash, doc FROM operator_tokens ORDER BY id").fetch_all(pool).await?);
        rows.into_iter().map(|(h, doc)| Ok((h, serde_json::from_str(&doc)?))).collect()
    }
}
