//! Evaluation runs: one row per run, its record as JSON, ordered by when it was asked.

use crate::{BeginWrite, Db, Store, StoreError};

/// Guards the runs' sequence on a shared PostgreSQL database.
const PG_EVAL_RUNS_LOCK: i64 = 0x0061_6970_6c75_7308;

impl Store {
    /// Writes a run's record: a new run takes the next place in the order, a known one keeps
    /// its place.
    pub async fn put_eval_run(&self, id: &str, state: &str, doc: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_EVAL_RUNS_LOCK).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO eval_runs (id, seq, state, doc) VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM eval_runs), $2, $3)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, doc = excluded.doc",
            )
            .bind(id)
            .bind(state)
            .bind(doc)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn eval_run(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT doc FROM eval_runs WHERE id = $1").bind(id).fetch_optional(pool).await?))
    }

    /// The newest `limit` runs, newest first.
    pub async fn eval_runs(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT doc FROM eval_runs ORDER BY seq DESC LIMIT $1")
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// The runs in `state`, oldest first: (id, record).
    pub async fn eval_runs_in(&self, state: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT id, doc FROM eval_runs WHERE state = $1 ORDER BY seq")
            .bind(state)
            .fetch_all(pool)
            .await?))
    }
}
