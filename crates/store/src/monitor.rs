//! Monitoring rows: traffic counters per instance, model and bucket; alert rules; webhook
//! deliveries (pending, delivered or dead); incidents; end users' strikes.

use crate::{BeginWrite, Db, Store, StoreError};

/// Guards the incidents' and end users' sequences on a shared PostgreSQL database.
const PG_INCIDENTS_LOCK: i64 = 0x0061_6970_6c75_7306;
const PG_END_USERS_LOCK: i64 = 0x0061_6970_6c75_7307;

/// A webhook delivery as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub next_ms: i64,
    pub doc: String,
}

impl Store {
    /// Replaces this instance's counters of `model` in the bucket starting at `bucket_ms`.
    pub async fn put_monitor_bucket(&self, instance: &str, model: &str, bucket_ms: i64, doc: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO monitor_buckets (instance, model, bucket_ms, doc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (instance, model, bucket_ms) DO UPDATE SET doc = excluded.doc"
        )
        .bind(instance)
        .bind(model)
        .bind(bucket_ms)
        .bind(doc)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Every instance's counters in buckets starting at or after `from_ms`: (model, bucket, doc).
    pub async fn monitor_buckets(&self, from_ms: i64) -> Result<Vec<(String, i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT model, bucket_ms, doc FROM monitor_buckets WHERE bucket_ms >= $1")
            .bind(from_ms)
            .fetch_all(pool)
            .await?))
    }

    /// Forgets buckets that started before `before_ms`.
    pub async fn prune_monitor_buckets(&self, before_ms: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query("DELETE FROM monitor_buckets WHERE bucket_ms < $1")
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    pub async fn put_monitor_rule(&self, name: &str, doc: &str) -> Result<bool, StoreError> {
        let existed = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let existed: Option<String> =
                sqlx::query_scalar("SELECT name FROM monitor_rules WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
            sqlx::query("INSERT INTO monitor_rules (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc")
                .bind(name)
                .bind(doc)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            existed.is_some()
        });
        Ok(existed)
    }

    pub async fn delete_monitor_rule(&self, name: &str) -> Result<bool, StoreError> {
        let n =
            on_pool!(self, |pool| sqlx::query("DELETE FROM monitor_rules WHERE name = $1").bind(name).execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn monitor_rules(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT doc FROM monitor_rules ORDER BY name").fetch_all(pool).await?))
    }

    pub async fn put_delivery(&self, d: &DeliveryRow) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO webhook_deliveries (id, state, next_ms, doc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, next_ms = excluded.next_ms, doc = excluded.doc"
        )
        .bind(&d.id)
        .bind(&d.state)
        .bind(d.next_ms)
        .bind(&d.doc)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// Pending deliveries due at `now_ms`, earliest first, at most `limit`.
    pub async fn due_deliveries(&self, now_ms: i64, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, state, next_ms, doc FROM webhook_deliveries WHERE state = 'pending' AND next_ms <= $1 ORDER BY next_ms LIMIT $2"
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(id, state, next_ms, doc)| DeliveryRow { id, state, next_ms, doc }).collect())
    }

    /// Deliveries in `state`, newest first, at most `limit`.
    pub async fn deliveries(&self, state: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, state, next_ms, doc FROM webhook_deliveries WHERE state = $1 ORDER BY next_ms DESC LIMIT $2"
        )
        .bind(state)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(id, state, next_ms, doc)| DeliveryRow { id, state, next_ms, doc }).collect())
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let row: Option<(String, String, i64, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, state, next_ms, doc FROM webhook_deliveries WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?);
        Ok(row.map(|(id, state, next_ms, doc)| DeliveryRow { id, state, next_ms, doc }))
    }

    /// Writes revision `rev` of an incident if the stored one is `rev - 1` (none for the first).
    pub async fn put_incident(&self, id: &str, rev: i64, doc: &str) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_INCIDENTS_LOCK).execute(&mut *tx).await?;
            }
            let stored: Option<i64> =
                sqlx::query_scalar("SELECT rev FROM incidents WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
            if stored.unwrap_or(0) != rev - 1 {
                return Ok(false);
            }
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM incidents").fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO incidents (id, seq, rev, doc) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, rev = excluded.rev, doc = excluded.doc",
            )
            .bind(id)
            .bind(seq)
            .bind(rev)
            .bind(doc)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    pub async fn incident(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT doc FROM incidents WHERE id = $1").bind(id).fetch_optional(pool).await?))
    }

    /// Incidents changed after `seq`, oldest change first: (seq, doc).
    pub async fn incidents_since(&self, seq: i64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT seq, doc FROM incidents WHERE seq > $1 ORDER BY seq")
            .bind(seq)
            .fetch_all(pool)
            .await?))
    }

    /// Writes an end user's record (strikes, suspension) if it is still the one read, at
    /// `expected` (its sequence number; none: there was none), with a new sequence number every
    /// instance follows. False, and nothing written, when another instance wrote it meanwhile.
    pub async fn put_end_user(&self, tenant: &str, user: &str, expected: Option<i64>, doc: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_END_USERS_LOCK).execute(&mut *tx).await?;
            }
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM end_users").fetch_one(&mut *tx).await?;
            let n = match expected {
                None => sqlx::query(
                    "INSERT INTO end_users (tenant, user_id, seq, doc) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant, user_id) DO NOTHING",
                )
                .bind(tenant)
                .bind(user)
                .bind(seq)
                .bind(doc)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                Some(old) => sqlx::query("UPDATE end_users SET seq = $1, doc = $2 WHERE tenant = $3 AND user_id = $4 AND seq = $5")
                    .bind(seq)
                    .bind(doc)
                    .bind(tenant)
                    .bind(user)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
            };
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// An end user's record and its sequence number.
    pub async fn end_user(&self, tenant: &str, user: &str) -> Result<Option<(i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT seq, doc FROM end_users WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .fetch_optional(pool)
            .await?))
    }

    /// End users changed after `seq`: (seq, doc).
    pub async fn end_users_since(&self, seq: i64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT seq, doc FROM end_users WHERE seq > $1 ORDER BY seq")
            .bind(seq)
            .fetch_all(pool)
            .await?))
    }
}
