//! Agents: each version of a tenant's agent is a row; the newest undeleted one is the agent.

use crate::{BeginWrite, Db, Store, StoreError};

/// Guards the version numbers of agents on a shared PostgreSQL database.
const PG_AGENTS_LOCK: i64 = 0x0061_6970_6c75_7309;

/// One version of an agent.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRow {
    pub tenant: String,
    pub id: String,
    pub version: i64,
    pub created_ms: i64,
    pub doc: String,
}

type Row = (String, String, i64, i64, String);

fn row((tenant, id, version, created_ms, doc): Row) -> AgentRow {
    AgentRow { tenant, id, version, created_ms, doc }
}

impl Store {
    /// Adds the next version of an agent (1 for a new one, and after a delete the number goes
    /// on, so an old pin never names the new agent). Returns the version.
    pub async fn add_agent_version(&self, tenant: &str, id: &str, created_ms: i64, doc: &str) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_AGENTS_LOCK).execute(&mut *tx).await?;
            }
            let version: i64 =
                sqlx::query_scalar("SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM agents WHERE tenant = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            sqlx::query("INSERT INTO agents (tenant, id, version, created_ms, doc) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant)
                .bind(id)
                .bind(version)
                .bind(created_ms)
                .bind(doc)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(version)
        })
    }

    /// A version of a tenant's agent (the newest when `version` is none), unless deleted.
    pub async fn agent(&self, tenant: &str, id: &str, version: Option<i64>) -> Result<Option<AgentRow>, StoreError> {
        let r: Option<Row> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT tenant, id, version, created_ms, doc FROM agents
             WHERE tenant = $1 AND id = $2 AND deleted = 0 AND ($3 IS NULL OR version = $3)
             ORDER BY version DESC LIMIT 1"
        )
        .bind(tenant)
        .bind(id)
        .bind(version)
        .fetch_optional(pool)
        .await?);
        Ok(r.map(row))
    }

    /// The newest version of each undeleted agent, of one tenant or all, by tenant and id.
    pub async fn agents(&self, tenant: Option<&str>, limit: i64) -> Result<Vec<AgentRow>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT a.tenant, a.id, a.version, a.created_ms, a.doc FROM agents a
             WHERE a.deleted = 0 AND ($1 IS NULL OR a.tenant = $1)
               AND a.version = (SELECT MAX(b.version) FROM agents b WHERE b.tenant = a.tenant AND b.id = a.id)
             ORDER BY a.tenant, a.id LIMIT $2"
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(row).collect())
    }

    /// Every undeleted version of an agent, newest first: (version, created_ms).
    pub async fn agent_versions(&self, tenant: &str, id: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT version, created_ms FROM agents WHERE tenant = $1 AND id = $2 AND deleted = 0 ORDER BY version DESC"
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(pool)
        .await?))
    }

    /// Deletes every version of an agent; whether there was one.
    pub async fn delete_agent(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query("UPDATE agents SET deleted = 1 WHERE tenant = $1 AND id = $2 AND deleted = 0")
            .bind(tenant)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }
}
