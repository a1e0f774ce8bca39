//! What the compute pillar keeps: the network (hubs, clusters and the rest, saved whole with the
//! job changes a new network forces) and the jobs with their lifecycle events.

use serde::{Serialize, de::DeserializeOwned};
use sqlx::Row;

use crate::{BeginWrite, Db, JobFilter, JobRow, Store, StoreError};

impl Store {
    /// Whether the network tables were ever written (a fresh data directory is seeded once).
    pub async fn network_seeded(&self) -> Result<bool, StoreError> {
        let n: i64 =
            on_pool!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM network_meta WHERE key = 'seeded'").fetch_one(pool).await?);
        Ok(n > 0)
    }

    /// Replaces the whole network in one transaction: hubs, clusters and the rest (links, GPU
    /// models) as one document, with the job changes the new network forces (`jobs`: id, state,
    /// document). Either all of it is stored or none.
    pub async fn save_network<H: Serialize, C: Serialize, M: Serialize, J: Serialize>(
        &self,
        hubs: &[(String, H)],
        clusters: &[(String, C)],
        meta: &M,
        jobs: &[(&str, &str, &J)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            write_jobs!(tx, jobs);
            sqlx::query("DELETE FROM hubs").execute(&mut *tx).await?;
            sqlx::query("DELETE FROM clusters").execute(&mut *tx).await?;
            for (i, (id, h)) in hubs.iter().enumerate() {
                sqlx::query("INSERT INTO hubs (id, doc, updated_ms) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(serde_json::to_string(&(i, h))?)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            for (i, (id, c)) in clusters.iter().enumerate() {
                sqlx::query("INSERT INTO clusters (id, doc, updated_ms) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(serde_json::to_string(&(i, c))?)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO network_meta (key, doc) VALUES ('rest', $1) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc")
                .bind(serde_json::to_string(meta)?)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO network_meta (key, doc) VALUES ('seeded', 'true') ON CONFLICT (key) DO NOTHING")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The stored network, in the order it was saved: (hubs, clusters, the rest).
    pub async fn load_network<H: DeserializeOwned, C: DeserializeOwned, M: DeserializeOwned>(
        &self,
    ) -> Result<Option<(Vec<H>, Vec<C>, M)>, StoreError> {
        let (meta, hub_docs, cluster_docs) = on_pool!(self, |pool| {
            let meta = sqlx::query_scalar::<_, String>("SELECT doc FROM network_meta WHERE key = 'rest'").fetch_optional(pool).await?;
            let hubs = sqlx::query_scalar::<_, String>("SELECT doc FROM hubs").fetch_all(pool).await?;
            let clusters = sqlx::query_scalar::<_, String>("SELECT doc FROM clusters").fetch_all(pool).await?;
            (meta, hubs, clusters)
        });
        let Some(meta) = meta else { return Ok(None) };
        let mut hubs: Vec<(usize, H)> = hub_docs.iter().map(|d| serde_json::from_str(d)).collect::<Result<_, _>>()?;
        let mut clusters: Vec<(usize, C)> = cluster_docs.iter().map(|d| serde_json::from_str(d)).collect::<Result<_, _>>()?;
        hubs.sort_by_key(|(i, _)| *i);
        clusters.sort_by_key(|(i, _)| *i);
        Ok(Some((hubs.into_iter().map(|(_, h)| h).collect(), clusters.into_iter().map(|(_, c)| c).collect(), serde_json::from_str(&meta)?)))
    }

    /// Inserts a job. If the tenant already submitted one with the same idempotency key, nothing
    /// is written and the earlier job is returned instead (`Err` of the existing row).
    pub async fn insert_job<T: Serialize + DeserializeOwned, E: Serialize>(
        &self,
        row: &JobRow<T>,
        events: &[E],
    ) -> Result<Result<(), JobRow<T>>, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(key) = &row.idempotency_key {
                let existing = sqlx::query(JOB_BY_KEY).bind(&row.tenant).bind(key).fetch_optional(&mut *tx).await?;
                if let Some(r) = existing {
                    return Ok(Err(job_from_row(&r)?));
                }
            }
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO jobs (id, tenant, idempotency_key, state, submitted_ms, seq, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&row.id)
            .bind(&row.tenant)
            .bind(&row.idempotency_key)
            .bind(&row.state)
            .bind(row.submitted_ms)
            .bind(seq)
            .bind(serde_json::to_string(&row.doc)?)
            .execute(&mut *tx)
            .await?;
            for (i, e) in events.iter().enumerate() {
                sqlx::query("INSERT INTO job_events (job_id, seq, at_ms, doc) VALUES ($1, $2, $3, $4)")
                    .bind(&row.id)
                    .bind(i as i64 + 1)
                    .bind(row.submitted_ms)
                    .bind(serde_json::to_string(e)?)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(Ok(()))
    }

    /// Writes several jobs' new state and document in one transaction.
    pub async fn update_jobs<T: Serialize>(&self, updates: &[(&str, &str, &T)]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            write_jobs!(tx, updates);
            tx.commit().await?;
        });
        Ok(())
    }

    /// A job's lifecycle events, oldest first: (sequence, time, document).
    pub async fn job_events<E: DeserializeOwned>(&self, job_id: &str) -> Result<Vec<(i64, i64, E)>, StoreError> {
        let rows: Vec<(i64, i64, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT seq, at_ms, doc FROM job_events WHERE job_id = $1 ORDER BY seq")
                .bind(job_id)
                .fetch_all(pool)
                .await?);
        rows.into_iter().map(|(seq, at, doc)| Ok((seq, at, serde_json::from_str(&doc)?))).collect()
    }

    /// The job a tenant submitted with this idempotency key, if any.
    pub async fn job_by_key<T: DeserializeOwned>(&self, tenant: &str, key: &str) -> Result<Option<JobRow<T>>, StoreError> {
        on_pool!(self, |pool| {
            let r = sqlx::query(JOB_BY_KEY).bind(tenant).bind(key).fetch_optional(pool).await?;
            r.as_ref().map(job_from_row).transpose()
        })
    }

    pub async fn get_job<T: DeserializeOwned>(&self, id: &str) -> Result<Option<JobRow<T>>, StoreError> {
        on_pool!(self, |pool| {
            let r = sqlx::query("SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            r.as_ref().map(job_from_row).transpose()
        })
    }

    pub async fn list_jobs<T: DeserializeOwned>(&self, f: &JobFilter) -> Result<Vec<JobRow<T>>, StoreError> {
        // Optional filters as `$n IS NULL OR column = $n`, so one constant statement serves all.
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs
                 WHERE ($1 IS NULL OR tenant = $1)
                   AND ($2 IS NULL OR state = $2)
                   AND ($3 IS NULL OR seq > (SELECT seq FROM jobs WHERE id = $3))
                 ORDER BY seq LIMIT $4",
            )
            .bind(&f.tenant)
            .bind(&f.state)
            .bind(&f.after)
            .bind(i64::from(f.limit))
            .fetch_all(pool)
            .await?;
            rows.iter().map(job_from_row).collect()
        })
    }

    /// The newest jobs first, optionally of one tenant and state: what the console lists.
    pub async fn recent_jobs<T: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRow<T>>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs
                 WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR state = $2)
                 ORDER BY seq DESC LIMIT $3",
            )
            .bind(tenant)
            .bind(state)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter().map(job_from_row).collect()
        })
    }

    /// Jobs in any of `states`, oldest first: what the scheduler must hold on start-up.
    pub async fn jobs_in_states<T: DeserializeOwned>(&self, states: &[&str]) -> Result<Vec<JobRow<T>>, StoreError> {
        // One query per state keeps the statement constant and portable; the states are few.
        let mut out: Vec<(i64, JobRow<T>)> = Vec::new();
        for state in states {
            on_pool!(self, |pool| {
                let rows = sqlx::query("SELECT seq, id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs WHERE state = $1")
                    .bind(*state)
                    .fetch_all(pool)
                    .await?;
                for r in &rows {
                    out.push((r.try_get("seq")?, job_from_row(r)?));
                }
            });
        }
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out.into_iter().map(|(_, j)| j).collect())
    }
}

const JOB_BY_KEY: &str =
    "SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs WHERE tenant = $1 AND idempotency_key = $2";

pub(crate) fn job_from_row<'r, R, T>(r: &'r R) -> Result<JobRow<T>, StoreError>
where
    R: Row,
    T: DeserializeOwned,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let doc: String = r.try_get("doc")?;
    Ok(JobRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        idempotency_key: r.try_get("idempotency_key")?,
        state: r.try_get("state")?,
        submitted_ms: r.try_get("submitted_ms")?,
        doc: serde_json::from_str(&doc)?,
    })
}
