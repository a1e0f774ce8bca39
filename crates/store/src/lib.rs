//! The store: the only crate that knows SQL. Embedded SQLite in a data directory by default;
//! PostgreSQL behind the same functions when several aiplus instances share one database.
//! Statements use `$n` parameters, which both databases understand, so each is written once.
//!
//! Architecture invariant: every statement is a constant string with bound parameters; nothing
//! here builds SQL with `format!`. Records are stored as JSON documents next to the columns that
//! are queried, so the domain types stay in the domain crates and this crate stays small.
//!
//! Durability: SQLite runs in WAL mode with `synchronous = FULL`, so a write that returned is on
//! disk and survives a kill -9 or a power cut.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored record is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
}

/// Schema steps, applied in order once each; `PRAGMA user_version` (SQLite) or the
/// `aiplus_schema` table (PostgreSQL) records how many ran. One text serves both databases:
/// `BIGINT` is PostgreSQL's 64-bit integer and has integer affinity in SQLite, and no table
/// uses SQLite's rowid alias (`INTEGER PRIMARY KEY`), so the meaning is the same.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE hubs (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_ms BIGINT NOT NULL);
     CREATE TABLE clusters (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_ms BIGINT NOT NULL);
     CREATE TABLE network_meta (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        idempotency_key TEXT,
        state TEXT NOT NULL,
        submitted_ms BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
     CREATE INDEX jobs_tenant_seq ON jobs (tenant, seq);
     CREATE INDEX jobs_state_seq ON jobs (state, seq);",
    // The job lifecycle's history and the platform's usage ledger (append-only).
    "CREATE TABLE job_events (
        job_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
     );
     CREATE TABLE usage_events (
        id TEXT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        tenant TEXT NOT NULL,
        pillar TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX usage_tenant_at ON usage_events (tenant, at_ms);",
    // API keys: only the SHA-256 of each secret is kept.
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX api_keys_tenant ON api_keys (tenant);",
    LIMITS_MIGRATION,
    MODELS_MIGRATION,
    CONSOLE_MIGRATION,
    IDENTITY_MIGRATION,
];

/// `PRAGMA user_version = n` after step n; one entry per migration.
const USER_VERSION: [&str; 7] = [
    "PRAGMA user_version = 1",
    "PRAGMA user_version = 2",
    "PRAGMA user_version = 3",
    "PRAGMA user_version = 4",
    "PRAGMA user_version = 5",
    "PRAGMA user_version = 6",
    "PRAGMA user_version = 7",
];
const _: () = assert!(MIGRATIONS.len() == USER_VERSION.len(), "one user_version per migration");

/// Rate-limit counters shared by every gateway instance (one row per scope and window), and
/// tenants' settings (limits and regions).
const LIMITS_MIGRATION: &str = "CREATE TABLE limit_windows (
        scope TEXT NOT NULL,
        window_id BIGINT NOT NULL,
        used BIGINT NOT NULL,
        last_grant BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, window_id)
     );
     CREATE TABLE tenant_settings (tenant TEXT PRIMARY KEY, doc TEXT NOT NULL);";

/// Gateway models managed through the API: the model document, and its deployments' upstream
/// keys apart from it (they are never returned by the API).
const MODELS_MIGRATION: &str = "CREATE TABLE gateway_models (name TEXT PRIMARY KEY, doc TEXT NOT NULL, secrets TEXT NOT NULL);";

/// The console's accounts and sessions (a session is found by the SHA-256 of its id), and saved
/// simulation reports (a small summary for lists next to the whole report).
const CONSOLE_MIGRATION: &str = "CREATE TABLE console_users (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX console_sessions_user ON console_sessions (user_name);
     CREATE TABLE sim_reports (id TEXT PRIMARY KEY, created_ms BIGINT NOT NULL, summary TEXT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX sim_reports_created ON sim_reports (created_ms);";

/// The tenant registry and operator tokens. Every tenant named before the registry existed
/// (by a key, a setting, a job or a usage event) is registered, so upgrading loses no tenant.
const IDENTITY_MIGRATION: &str = "CREATE TABLE tenants (id TEXT PRIMARY KEY, created_ms BIGINT NOT NULL, doc TEXT NOT NULL);
     CREATE TABLE operator_tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
     INSERT INTO tenants (id, created_ms, doc)
        SELECT known.t, 0, '{}' FROM (SELECT tenant AS t FROM api_keys UNION SELECT tenant FROM tenant_settings
                                      UNION SELECT tenant FROM jobs UNION SELECT tenant FROM usage_events) AS known
        WHERE known.t <> '';";

/// Guards PostgreSQL migrations against two instances starting at once.
const PG_MIGRATION_LOCK: i64 = 0x0061_6970_6c75_7301;
/// Held by the one instance that runs the compute lifecycle on a shared database.
const PG_COMPUTE_LOCK: i64 = 0x0061_6970_6c75_7302;

/// Where the data lives. Every public function works on both.
#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has. The body is compiled once
/// per database, so each statement is checked against both drivers' types.
macro_rules! on_pool {
    ($self:expr, |$pool:ident| $body:expr) => {
        match &$self.db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

mod console;
mod identity;
pub use console::ReportRow;

/// `UPDATE jobs` for each (id, state, document) inside an open transaction.
macro_rules! write_jobs {
    ($tx:expr, $updates:expr) => {
        for (id, state, doc) in $updates {
            sqlx::query("UPDATE jobs SET state = $1, doc = $2 WHERE id = $3")
                .bind(*state)
                .bind(serde_json::to_string(doc)?)
                .bind(*id)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

#[derive(Clone)]
pub struct Store {
    db: Db,
}

/// Holds the compute lock on a shared database for as long as it lives.
pub struct ComputeLock {
    _conn: Option<sqlx::PgConnection>,
}

/// A job row: the columns the store queries by, and the document the domain owns.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow<T> {
    pub id: String,
    pub tenant: String,
    pub idempotency_key: Option<String>,
    pub state: String,
    pub submitted_ms: i64,
    pub doc: T,
}

/// One entry of the usage ledger. `id` is unique: writing the same event twice is refused, so
/// a retried write can never count twice.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRow<T> {
    pub id: String,
    pub at_ms: i64,
    pub tenant: String,
    pub pillar: String,
    pub doc: T,
}

/// Everything one step of the job lifecycle writes, stored in one transaction.
pub struct Record<'a, J, E, U> {
    /// (job id, new state, new document)
    pub jobs: Vec<(&'a str, &'a str, &'a J)>,
    /// (job id, event document); sequence numbers are assigned here.
    pub events: Vec<(&'a str, i64, &'a E)>,
    pub usage: Vec<&'a UsageRow<U>>,
}

/// Filters for listing jobs; every field optional. `limit` is capped by the caller.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub tenant: Option<String>,
    pub state: Option<String>,
    /// Only jobs submitted after this job id (keyset pagination).
    pub after: Option<String>,
    pub limit: u32,
}

/// Most connections one process opens to PostgreSQL.
pub const PG_MAX_CONNECTIONS: u32 = 16;

impl Store {
    /// Opens (creating if needed) the SQLite database `aiplus.db` in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir { path: data_dir.display().to_string(), source })?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(data_dir.join("aiplus.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        let store = Self { db: Db::Sqlite(pool) };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to a PostgreSQL database shared by several aiplus instances
    /// (`postgres://user:password@host:port/db`) and brings its schema up to date.
    pub async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool =
            PgPoolOptions::new().max_connections(PG_MAX_CONNECTIONS).acquire_timeout(Duration::from_secs(5)).connect_with(opts).await?;
        let store = Self { db: Db::Postgres(pool) };
        store.migrate().await?;
        Ok(store)
    }

    /// An in-memory database, for tests.
    pub async fn memory() -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // One connection: every connection to :memory: is its own database.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
        let store = Self { db: Db::Sqlite(pool) };
        store.migrate().await?;
        Ok(store)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await?;
                for (i, step) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
                    sqlx::raw_sql(*step).execute(&mut *tx).await?;
                    // PRAGMA takes no bound parameters, so each step's version is a constant here.
                    sqlx::raw_sql(USER_VERSION[i]).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // Two instances starting together: the second waits here, then finds the work done.
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *tx).await?;
                sqlx::raw_sql("CREATE TABLE IF NOT EXISTS aiplus_schema (version BIGINT NOT NULL)").execute(&mut *tx).await?;
                let version: Option<i64> = sqlx::query_scalar("SELECT version FROM aiplus_schema").fetch_optional(&mut *tx).await?;
                if version.is_none() {
                    sqlx::query("INSERT INTO aiplus_schema (version) VALUES (0)").execute(&mut *tx).await?;
                }
                for (i, step) in MIGRATIONS.iter().enumerate().skip(version.unwrap_or(0).max(0) as usize) {
                    sqlx::raw_sql(*step).execute(&mut *tx).await?;
                    sqlx::query("UPDATE aiplus_schema SET version = $1").bind(i as i64 + 1).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// On a shared database only one instance may run the compute lifecycle (it holds the
    /// queue in memory and talks to the engines). `None`: another instance holds it.
    pub async fn try_compute_lock(&self) -> Result<Option<ComputeLock>, StoreError> {
        match &self.db {
            Db::Sqlite(_) => Ok(Some(ComputeLock { _conn: None })),
            Db::Postgres(pool) => {
                // A session lock lives as long as its connection, so the guard takes the
                // connection out of the pool; dropping the guard closes it and frees the lock.
                let mut conn = pool.acquire().await?.detach();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(PG_COMPUTE_LOCK).fetch_one(&mut conn).await?;
                Ok(got.then_some(ComputeLock { _conn: Some(conn) }))
            }
        }
    }

    // ---- network ----

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
            let mut tx = pool.begin().await?;
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

    // ---- jobs ----

    /// Inserts a job. If the tenant already submitted one with the same idempotency key, nothing
    /// is written and the earlier job is returned instead (`Err` of the existing row).
    pub async fn insert_job<T: Serialize + DeserializeOwned, E: Serialize>(
        &self,
        row: &JobRow<T>,
        events: &[E],
    ) -> Result<Result<(), JobRow<T>>, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
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
            let mut tx = pool.begin().await?;
            write_jobs!(tx, updates);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Writes job changes, their lifecycle events and usage events, all or nothing.
    pub async fn record<J: Serialize, E: Serialize, U: Serialize>(&self, r: &Record<'_, J, E, U>) -> Result<(), StoreError> {
        if r.jobs.is_empty() && r.events.is_empty() && r.usage.is_empty() {
            return Ok(());
        }
        // One flat JSON array, five values an event: [id, at_ms, tenant, pillar, doc, id, ...].
        let mut rows = Vec::with_capacity(r.usage.len() * 5);
        for u in &r.usage {
            rows.extend([
                serde_json::Value::from(u.id.as_str()),
                u.at_ms.into(),
                u.tenant.as_str().into(),
                u.pillar.as_str().into(),
                serde_json::to_string(&u.doc)?.into(),
            ]);
        }
        let usage_rows = serde_json::Value::Array(rows).to_string();
        let usage_sql = match self.db {
            Db::Sqlite(_) => USAGE_BATCH_SQLITE,
            Db::Postgres(_) => USAGE_BATCH_POSTGRES,
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            write_jobs!(tx, &r.jobs);
            for (job_id, at_ms, doc) in &r.events {
                sqlx::query(
                    "INSERT INTO job_events (job_id, seq, at_ms, doc)
                     VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = $1), $2, $3)",
                )
                .bind(*job_id)
                .bind(*at_ms)
                .bind(serde_json::to_string(doc)?)
                .execute(&mut *tx)
                .await?;
            }
            if !r.usage.is_empty() {
                // The whole batch in one statement: one round trip to the database, however
                // many events a flush carries.
                sqlx::query(usage_sql).bind(&usage_rows).execute(&mut *tx).await?;
            }
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
        rows.into_iter()
            .map(|(id, at_ms, tenant, pillar, doc)| Ok(UsageRow { id, at_ms, tenant, pillar, doc: serde_json::from_str(&doc)? }))
            .collect()
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

    // ---- API keys ----

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

    // ---- gateway models ----

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

    // ---- limits ----

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

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }
}

/// Usage events from a flat JSON array, five values an event (id, at_ms, tenant, pillar, doc):
/// the one statement whose text differs between the databases (their JSON table functions
/// differ). SQLite's reads the array once and regroups the values by position, instead of
/// parsing each event again for each field.
const USAGE_BATCH_SQLITE: &str = "INSERT INTO usage_events (id, at_ms, tenant, pillar, doc)
     SELECT max(CASE WHEN key % 5 = 0 THEN value END), max(CASE WHEN key % 5 = 1 THEN value END),
            max(CASE WHEN key % 5 = 2 THEN value END), max(CASE WHEN key % 5 = 3 THEN value END),
            max(CASE WHEN key % 5 = 4 THEN value END)
     FROM json_each($1) GROUP BY key / 5";
const USAGE_BATCH_POSTGRES: &str = "INSERT INTO usage_events (id, at_ms, tenant, pillar, doc)
     SELECT e.value ->> 0, (e.value ->> 1)::bigint, e.value ->> 2, e.value ->> 3, e.value ->> 4
     FROM (SELECT jsonb_agg(v ORDER BY n) AS value FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS t(v, n)
           GROUP BY (n - 1) / 5) AS e";

const JOB_BY_KEY: &str =
    "SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs WHERE tenant = $1 AND idempotency_key = $2";

fn job_from_row<'r, R, T>(r: &'r R) -> Result<JobRow<T>, StoreError>
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

/// Helpers for tests in this and other crates: not used by the product.
#[expect(clippy::panic, reason = "test helpers: a missing or broken test server must fail the test, not skip it")]
pub mod testing {
    fn fail(what: &str, e: impl std::fmt::Display) -> ! {
        panic!("test PostgreSQL: {what}: {e}")
    }

    /// A fresh PostgreSQL database on the test server (`AIPLUS_TEST_POSTGRES_URL`, started by
    /// `scripts/test`), as a URL. Without the server this fails, unless `AIPLUS_SKIP_POSTGRES=1`
    /// says to skip PostgreSQL on purpose (then `None`).
    pub async fn fresh_postgres() -> Option<String> {
        let Ok(url) = std::env::var("AIPLUS_TEST_POSTGRES_URL") else {
            if std::env::var("AIPLUS_SKIP_POSTGRES").as_deref() == Ok("1") {
                return None;
            }
            fail("AIPLUS_TEST_POSTGRES_URL is not set", "run scripts/test (it starts PostgreSQL) or set AIPLUS_SKIP_POSTGRES=1");
        };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let admin = sqlx::PgPool::connect(&url).await.unwrap_or_else(|e| fail("connecting", e));
        // Test set-up only: CREATE DATABASE takes no bound parameters; the name is digits we made.
        for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&admin).await.unwrap_or_else(|e| fail("creating a database", e));
        }
        admin.close().await;
        let Some((base, _)) = url.rsplit_once('/') else { fail("AIPLUS_TEST_POSTGRES_URL", "has no database part") };
        Some(format!("{base}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-memory SQLite store and, when the test server is there, a fresh PostgreSQL one.
    async fn both() -> Vec<Store> {
        let mut v = vec![Store::memory().await.unwrap()];
        if let Some(url) = testing::fresh_postgres().await {
            v.push(Store::connect_postgres(&url).await.unwrap());
        }
        v
    }

    fn row(id: &str, key: Option<&str>) -> JobRow<serde_json::Value> {
        JobRow {
            id: id.into(),
            tenant: "t".into(),
            idempotency_key: key.map(Into::into),
            state: "queued".into(),
            submitted_ms: 1,
            doc: serde_json::json!({"id": id}),
        }
    }

    #[tokio::test]
    async fn idempotent_insert_returns_the_first_job() {
        for s in both().await {
            eprintln!("{}", s.kind());
            assert!(s.insert_job(&row("a", Some("k")), &[] as &[i32]).await.unwrap().is_ok());
            let again = s.insert_job(&row("b", Some("k")), &[] as &[i32]).await.unwrap();
            assert_eq!(again.unwrap_err().id, "a");
            assert!(s.get_job::<serde_json::Value>("b").await.unwrap().is_none());
            // No key: no deduplication.
            assert!(s.insert_job(&row("c", None), &[] as &[i32]).await.unwrap().is_ok());
            assert!(s.insert_job(&row("d", None), &[] as &[i32]).await.unwrap().is_ok());
        }
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        for s in both().await {
            eprintln!("{}", s.kind());
            for id in ["a", "b", "c", "d"] {
                s.insert_job(&row(id, None), &[] as &[i32]).await.unwrap().unwrap();
            }
            s.update_jobs(&[("b", "cancelled", &serde_json::json!({"id": "b"}))]).await.unwrap();
            let page: Vec<JobRow<serde_json::Value>> =
                s.list_jobs(&JobFilter { after: Some("a".into()), limit: 2, ..Default::default() }).await.unwrap();
            assert_eq!(page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
            let queued: Vec<JobRow<serde_json::Value>> = s.jobs_in_states(&["queued"]).await.unwrap();
            assert_eq!(queued.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "c", "d"]);
            let cancelled: Vec<JobRow<serde_json::Value>> =
                s.list_jobs(&JobFilter { state: Some("cancelled".into()), limit: 10, ..Default::default() }).await.unwrap();
            assert_eq!(cancelled.len(), 1);
        }
    }

    #[tokio::test]
    async fn record_is_all_or_nothing_and_usage_ids_are_unique() {
        for s in both().await {
            eprintln!("{}", s.kind());
            s.insert_job(&row("a", None), &[] as &[i32]).await.unwrap().unwrap();
            let doc = serde_json::json!({"id": "a", "v": 2});
            let ev = serde_json::json!({"to": "succeeded"});
            let usage = UsageRow {
                id: "job:a:1".into(),
                at_ms: 5,
                tenant: "t".into(),
                pillar: "compute".into(),
                doc: serde_json::json!({"gpu_seconds": 1.0}),
            };
            s.record(&Record { jobs: vec![("a", "succeeded", &doc)], events: vec![("a", 5, &ev), ("a", 6, &ev)], usage: vec![&usage] })
                .await
                .unwrap();
            // The same usage id again: the whole record is refused, the job is not changed.
            let doc3 = serde_json::json!({"id": "a", "v": 3});
            let again = s.record(&Record { jobs: vec![("a", "failed", &doc3)], events: vec![("a", 7, &ev)], usage: vec![&usage] }).await;
            assert!(again.is_err());
            let job: JobRow<serde_json::Value> = s.get_job("a").await.unwrap().unwrap();
            assert_eq!((job.state.as_str(), &job.doc), ("succeeded", &doc));
            let events: Vec<(i64, i64, serde_json::Value)> = s.job_events("a").await.unwrap();
            assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
            let u: Vec<UsageRow<serde_json::Value>> = s.usage(Some("t"), None, 0, i64::MAX, 10).await.unwrap();
            assert_eq!(u.len(), 1);
        }
    }

    #[tokio::test]
    async fn reopening_keeps_what_was_written() {
        let dir = std::env::temp_dir().join(format!("aiplus-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&dir).await.unwrap();
            s.insert_job(&row("a", Some("k")), &[] as &[i32]).await.unwrap().unwrap();
            s.save_network(&[("h".to_string(), 1)], &[("c".to_string(), 2)], &3, &[] as &[(&str, &str, &i32)], 0).await.unwrap();
            s.close().await;
        }
        let s = Store::open(&dir).await.unwrap();
        assert!(s.network_seeded().await.unwrap());
        let (h, c, m): (Vec<i32>, Vec<i32>, i32) = s.load_network().await.unwrap().unwrap();
        assert_eq!((h, c, m), (vec![1], vec![2], 3));
        assert_eq!(s.get_job::<serde_json::Value>("a").await.unwrap().unwrap().idempotency_key.as_deref(), Some("k"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn leases_never_pass_the_limit_even_when_raced() {
        for s in both().await {
            // Concurrent leases on separate connections race for one window, like instances do.
            let mut tasks = Vec::new();
            for _ in 0..40 {
                let st = s.clone();
                tasks.push(tokio::spawn(async move { st.lease("key:k:rpm", 7, 3, 100).await.unwrap() }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            assert_eq!(total, 100, "{}: 40 × 3 wanted, the limit is 100", s.kind());
            assert_eq!(s.lease("key:k:rpm", 7, 3, 100).await.unwrap(), 0);
            assert_eq!(s.lease("key:k:rpm", 8, 3, 100).await.unwrap(), 3, "a new window starts empty");
            s.charge("key:k:rpm", 7, 5).await.unwrap();
            assert_eq!(s.counter("key:k:rpm", 7).await.unwrap(), 105, "a charge counts even past the limit");
        }
    }

    #[tokio::test]
    async fn postgres_instances_share_keys_limits_and_the_compute_lock() {
        let Some(url) = testing::fresh_postgres().await else { return };
        let (a, b) = tokio::join!(Store::connect_postgres(&url), Store::connect_postgres(&url));
        let (a, b) = (a.unwrap(), b.unwrap());
        a.insert_key("k1", "h1", "t", &serde_json::json!({"id": "k1"})).await.unwrap();
        let seen: Vec<(String, serde_json::Value)> = b.keys(Some("t")).await.unwrap();
        assert_eq!(seen.len(), 1);
        b.set_tenant_settings("t", &serde_json::json!({"requests_per_min": 5})).await.unwrap();
        let limits: Vec<(String, serde_json::Value)> = a.tenant_settings().await.unwrap();
        assert_eq!(limits[0].1["requests_per_min"], 5);
        let first = a.try_compute_lock().await.unwrap();
        assert!(first.is_some());
        assert!(b.try_compute_lock().await.unwrap().is_none(), "only one instance runs compute");
        drop(first);
        // The server frees the lock when it sees the connection close, which takes a moment.
        let mut freed = false;
        for _ in 0..50 {
            if b.try_compute_lock().await.unwrap().is_some() {
                freed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(freed, "dropping the guard frees the lock");
    }
}
