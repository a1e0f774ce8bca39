//! Governance rows (`govern`): each model's state, one document per model with a sequence
//! number that orders changes across instances, so an instance reads only what changed since it
//! last looked.

use crate::{BeginWrite, Db, Store, StoreError};

/// Guards the sequence on a shared PostgreSQL database.
const PG_GOVERN_LOCK: i64 = 0x0061_6970_6c75_7304;

impl Store {
    /// Stores a model's state document; its sequence number, above every earlier one.
    pub async fn put_model_state(&self, name: &str, doc: &str) -> Result<i64, StoreError> {
        let seq = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_GOVERN_LOCK).execute(&mut *tx).await?;
            }
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM model_states").fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO model_states (name, seq, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, doc = excluded.doc",
            )
            .bind(name)
            .bind(seq)
            .bind(doc)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            seq
        });
        Ok(seq)
    }

    /// Model states changed after `seq`, oldest first: (name, seq, document).
    pub async fn model_states_since(&self, seq: i64) -> Result<Vec<(String, i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT name, seq, doc FROM model_states WHERE seq > $1 ORDER BY seq")
            .bind(seq)
            .fetch_all(pool)
            .await?))
    }
}
