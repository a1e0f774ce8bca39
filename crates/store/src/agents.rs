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

/// A background run as stored: its record, and who runs it until when.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRunRow {
    pub id: String,
    pub tenant: String,
    pub state: String,
    pub doc: String,
}

/// The states of a run that is not over.
const LIVE: [&str; 2] = ["queued", "in_progress"];

impl Store {
    /// Records a new background run, leased to `owner` until `lease_until_ms`.
    pub async fn insert_agent_run(&self, r: &AgentRunRow, owner: &str, now_ms: i64, lease_until_ms: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO agent_runs (id, tenant, state, lease_owner, lease_until_ms, created_ms, updated_ms, doc)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)"
        )
        .bind(&r.id)
        .bind(&r.tenant)
        .bind(&r.state)
        .bind(owner)
        .bind(lease_until_ms)
        .bind(now_ms)
        .bind(&r.doc)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Takes up to `limit` live runs whose lease ran out (their instance stopped): they are
    /// leased to `owner` now, and returned.
    pub async fn claim_agent_runs(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<AgentRunRow>, StoreError> {
        let ids: Vec<String> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT id FROM agent_runs WHERE state IN ($1, $2) AND lease_until_ms < $3 ORDER BY created_ms LIMIT $4"
        )
        .bind(LIVE[0])
        .bind(LIVE[1])
        .bind(now_ms)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        let mut claimed = Vec::new();
        for id in ids {
            // Another instance may take it first: only a lease that is still out is taken.
            let taken: Option<(String, String, String, String)> = on_pool!(self, |pool| sqlx::query_as(
                "UPDATE agent_runs SET lease_owner = $1, lease_until_ms = $2
                 WHERE id = $3 AND state IN ($4, $5) AND lease_until_ms < $6
                 RETURNING id, tenant, state, doc"
            )
            .bind(owner)
            .bind(lease_until_ms)
            .bind(&id)
            .bind(LIVE[0])
            .bind(LIVE[1])
            .bind(now_ms)
            .fetch_optional(pool)
            .await?);
            claimed.extend(taken.map(|(id, tenant, state, doc)| AgentRunRow { id, tenant, state, doc }));
        }
        Ok(claimed)
    }

    /// Saves a run's state and renews its lease, if `owner` still holds it and it was not
    /// cancelled; false otherwise (the run must stop).
    pub async fn save_agent_run(
        &self,
        id: &str,
        owner: &str,
        state: &str,
        doc: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE agent_runs SET state = $1, doc = $2, updated_ms = $3, lease_until_ms = $4
             WHERE id = $5 AND lease_owner = $6 AND state IN ($7, $8)"
        )
        .bind(state)
        .bind(doc)
        .bind(now_ms)
        .bind(lease_until_ms)
        .bind(id)
        .bind(owner)
        .bind(LIVE[0])
        .bind(LIVE[1])
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// A tenant's run (another tenant's answers like none).
    pub async fn agent_run(&self, id: &str, tenant: &str) -> Result<Option<AgentRunRow>, StoreError> {
        let r: Option<(String, String, String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, tenant, state, doc FROM agent_runs WHERE id = $1 AND tenant = $2")
                .bind(id)
                .bind(tenant)
                .fetch_optional(pool)
                .await?);
        Ok(r.map(|(id, tenant, state, doc)| AgentRunRow { id, tenant, state, doc }))
    }

    /// Cancels a tenant's live run; whether it was live.
    pub async fn cancel_agent_run(&self, id: &str, tenant: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE agent_runs SET state = 'cancelled', updated_ms = $1 WHERE id = $2 AND tenant = $3 AND state IN ($4, $5)"
        )
        .bind(now_ms)
        .bind(id)
        .bind(tenant)
        .bind(LIVE[0])
        .bind(LIVE[1])
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// Appends a run's events (their sequence numbers are the stream's); one already stored is
    /// kept as it was.
    pub async fn add_agent_run_events(&self, run_id: &str, events: &[(i64, String)]) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for (seq, doc) in events {
                sqlx::query("INSERT INTO agent_run_events (run_id, seq, doc) VALUES ($1, $2, $3) ON CONFLICT (run_id, seq) DO NOTHING")
                    .bind(run_id)
                    .bind(seq)
                    .bind(doc)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A run's events after `after_seq`, in order, at most `limit`.
    pub async fn agent_run_events(&self, run_id: &str, after_seq: i64, limit: i64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT seq, doc FROM agent_run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        )
        .bind(run_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// Renews the lease of a run `owner` holds (while a long step or call goes on); false when
    /// it holds it no more.
    pub async fn renew_agent_run(&self, id: &str, owner: &str, lease_until_ms: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE agent_runs SET lease_until_ms = $1 WHERE id = $2 AND lease_owner = $3 AND state IN ($4, $5)"
        )
        .bind(lease_until_ms)
        .bind(id)
        .bind(owner)
        .bind(LIVE[0])
        .bind(LIVE[1])
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// The sequence number of a run's last stored event, -1 when it has none.
    pub async fn agent_run_last_seq(&self, run_id: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(seq), -1) AS BIGINT) FROM agent_run_events WHERE run_id = $1"
        )
        .bind(run_id)
        .fetch_one(pool)
        .await?))
    }

    /// Claims an approval for its one call: true the first time, false ever after.
    pub async fn claim_agent_approval(&self, tenant: &str, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query(
            "INSERT INTO agent_approvals (tenant, id, at_ms) VALUES ($1, $2, $3) ON CONFLICT (tenant, id) DO NOTHING"
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n > 0)
    }

    /// A tenant's background runs that are not over.
    pub async fn live_agent_runs(&self, tenant: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM agent_runs WHERE tenant = $1 AND state IN ($2, $3)"
        )
        .bind(tenant)
        .bind(LIVE[0])
        .bind(LIVE[1])
        .fetch_one(pool)
        .await?))
    }

    /// Forgets background runs that ended before `before_ms` (their records and events; their
    /// responses stay, within the stored responses' quota), and approvals claimed before it.
    pub async fn forget_agent_runs(&self, before_ms: i64) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "DELETE FROM agent_run_events WHERE run_id IN
                 (SELECT id FROM agent_runs WHERE state NOT IN ($1, $2) AND updated_ms < $3)",
            )
            .bind(LIVE[0])
            .bind(LIVE[1])
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
            let n = sqlx::query("DELETE FROM agent_runs WHERE state NOT IN ($1, $2) AND updated_ms < $3")
                .bind(LIVE[0])
                .bind(LIVE[1])
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM agent_approvals WHERE at_ms < $1").bind(before_ms).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(n)
        })
    }
}
