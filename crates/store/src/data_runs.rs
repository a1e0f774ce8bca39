//! Compute-to-data runs: a buyer's job over a dataset it may use but not see. A run moves
//! staging → running → succeeded | refused | failed; each move is a compare-and-set on the
//! state, so a restarted server never moves it twice, and the move to its end writes the run's
//! ledger entry in the same transaction, once.

use crate::{BeginWrite, Db, Store, StoreError, UsageRow};

/// A run as stored: its keys, state and document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub id: String,
    pub buyer: String,
    pub contract: String,
    pub idempotency_key: Option<String>,
    pub state: String,
    pub created_ms: i64,
    pub doc: String,
}

type RunTuple = (String, String, String, Option<String>, String, i64, String);

fn run_row((id, buyer, contract, idempotency_key, state, created_ms, doc): RunTuple) -> RunRow {
    RunRow { id, buyer, contract, idempotency_key, state, created_ms, doc }
}

/// Whether a new run was stored.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertRun {
    Inserted,
    /// The buyer already has a run under this idempotency key: this one.
    Existing(Box<RunRow>),
    /// The buyer has this many unfinished runs, its limit.
    TooMany(i64),
}

impl Store {
    /// Stores a new run unless the buyer already has one under its key, or `max_open`
    /// unfinished ones.
    pub async fn insert_run(&self, r: &RunRow, open_states: &[&str], max_open: i64) -> Result<InsertRun, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(key) = &r.idempotency_key {
                let q = sqlx::query_as::<_, RunTuple>(
                    "SELECT id, buyer, contract, idempotency_key, state, created_ms, doc FROM data_runs
                     WHERE buyer = $1 AND idempotency_key = $2",
                );
                if let Some(t) = q.bind(&r.buyer).bind(key).fetch_optional(&mut *tx).await? {
                    return Ok(InsertRun::Existing(Box::new(run_row(t))));
                }
            }
            let mut open = 0i64;
            for s in open_states {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_runs WHERE buyer = $1 AND state = $2")
                    .bind(&r.buyer)
                    .bind(*s)
                    .fetch_one(&mut *tx)
                    .await?;
                open += n;
            }
            if open >= max_open {
                return Ok(InsertRun::TooMany(open));
            }
            sqlx::query(
                "INSERT INTO data_runs (id, buyer, contract, idempotency_key, state, created_ms, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&r.id)
            .bind(&r.buyer)
            .bind(&r.contract)
            .bind(&r.idempotency_key)
            .bind(&r.state)
            .bind(r.created_ms)
            .bind(&r.doc)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(InsertRun::Inserted)
        })
    }

    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = "SELECT id, buyer, contract, idempotency_key, state, created_ms, doc FROM data_runs WHERE id = $1";
        let row: Option<RunTuple> = on_pool!(self, |pool| sqlx::query_as(sql).bind(id).fetch_optional(pool).await?);
        Ok(row.map(run_row))
    }

    /// A contract's runs, newest first, at most `limit`.
    pub async fn runs_of_contract(&self, contract: &str, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let sql = "SELECT id, buyer, contract, idempotency_key, state, created_ms, doc FROM data_runs
                   WHERE contract = $1 ORDER BY created_ms DESC, id LIMIT $2";
        let rows: Vec<RunTuple> = on_pool!(self, |pool| sqlx::query_as(sql).bind(contract).bind(limit).fetch_all(pool).await?);
        Ok(rows.into_iter().map(run_row).collect())
    }

    /// Runs in `state`, oldest first, at most `limit`: the work of the loop that drives them.
    pub async fn runs_in_state(&self, state: &str, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let sql = "SELECT id, buyer, contract, idempotency_key, state, created_ms, doc FROM data_runs WHERE state = $1 ORDER BY created_ms, id LIMIT $2";
        let rows: Vec<RunTuple> = on_pool!(self, |pool| sqlx::query_as(sql).bind(state).bind(limit).fetch_all(pool).await?);
        Ok(rows.into_iter().map(run_row).collect())
    }

    /// Moves a run from state `from` to `to` with its new document, and writes `entries` to the
    /// ledger in the same transaction. False, with nothing written, when the run is no longer
    /// in `from` (another instance moved it).
    pub async fn move_run<D: serde::Serialize + Sync>(
        &self,
        id: &str,
        from: &str,
        to: &str,
        doc: &str,
        entries: &[UsageRow<D>],
    ) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let moved = sqlx::query("UPDATE data_runs SET state = $1, doc = $2 WHERE id = $3 AND state = $4")
                .bind(to)
                .bind(doc)
                .bind(id)
                .bind(from)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved == 0 {
                return Ok(false);
            }
            insert_usage!(tx, entries);
            tx.commit().await?;
            Ok(true)
        })
    }
}
