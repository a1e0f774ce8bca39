//! Models deployed on the compute network (the `models` pillar): one document per model.

use serde::{Serialize, de::DeserializeOwned};

use crate::{Db, Store, StoreError};

impl Store {
    /// Stores a model deployment's document, replacing the previous one.
    pub async fn put_model_deployment<D: Serialize>(&self, name: &str, doc: &D) -> Result<(), StoreError> {
        let doc = serde_json::to_string(doc)?;
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO model_deployments (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc"
        )
        .bind(name)
        .bind(&doc)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Forgets a model deployment; whether there was one.
    pub async fn delete_model_deployment(&self, name: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query("DELETE FROM model_deployments WHERE name = $1")
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }

    /// Every model deployment, by name.
    pub async fn model_deployments<D: DeserializeOwned>(&self) -> Result<Vec<(String, D)>, StoreError> {
        let rows: Vec<(String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT name, doc FROM model_deployments ORDER BY name").fetch_all(pool).await?);
        rows.into_iter().map(|(n, d)| Ok((n, serde_json::from_str(&d)?))).collect()
    }
}
