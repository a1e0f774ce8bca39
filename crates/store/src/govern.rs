//! Governance rows (`govern`): each model's state, one document per model with a sequence
//! number that orders changes across instances, so an instance reads only what changed since it
//! last looked.

use crate::{BeginWrite, Db, Store, StoreError};

/// Guards the sequence on a shared PostgreSQL database.
const PG_GOVERN_LOCK: i64 = 0x0061_6970_6c75_7304;

impl Store {
    /// Stores a model's state document, recorded at transparency-log entry `log_index`, with a
    /// sequence number above every earlier one. A state recorded at a later entry is never
    /// replaced by an earlier one (two changes racing on two instances): then nothing is stored
    /// and the answer is `None`.
    pub async fn put_model_state(&self, name: &str, log_index: i64, doc: &str) -> Result<Option<i64>, StoreError> {
        let seq = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_GOVERN_LOCK).execute(&mut *tx).await?;
            }
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM model_states").fetch_one(&mut *tx).await?;
            let n = sqlx::query(
                "INSERT INTO model_states (name, seq, doc, log_index) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, doc = excluded.doc, log_index = excluded.log_index
                 WHERE model_states.log_index < excluded.log_index",
            )
            .bind(name)
            .bind(seq)
            .bind(doc)
            .bind(log_index)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            (n == 1).then_some(seq)
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
