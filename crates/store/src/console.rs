//! What the operator console keeps: its login accounts, their sessions, and saved simulation
//! reports. Accounts and sessions live in the store (not in memory) so that a restart logs
//! nobody out and several instances behind one load balancer share them.

use serde::{Serialize, de::DeserializeOwned};

use crate::{BeginWrite, Db, Store, StoreError};

/// A saved simulation report: its summary (small, for lists) and the whole report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportRow<S, D> {
    pub id: String,
    pub created_ms: i64,
    pub summary: S,
    pub doc: D,
}

impl Store {
    // ---- console accounts ----

    /// Stores an account, replacing one of the same name.
    pub async fn put_console_user<U: Serialize>(&self, name: &str, doc: &U) -> Result<(), StoreError> {
        let doc = serde_json::to_string(doc)?;
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO console_users (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc"
        )
        .bind(name)
        .bind(&doc)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Stores an account only if no account of that name exists; false when one did.
    pub async fn insert_console_user<U: Serialize>(&self, name: &str, doc: &U) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(doc)?;
        let n = on_pool!(self, |pool| sqlx::query("INSERT INTO console_users (name, doc) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(&doc)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    pub async fn console_user<U: DeserializeOwned>(&self, name: &str) -> Result<Option<U>, StoreError> {
        let doc: Option<String> = on_pool!(self, |pool| sqlx::query_scalar("SELECT doc FROM console_users WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?);
        Ok(doc.map(|d| serde_json::from_str(&d)).transpose()?)
    }

    /// Every account as (name, document), by name.
    pub async fn console_users<U: DeserializeOwned>(&self) -> Result<Vec<(String, U)>, StoreError> {
        let rows: Vec<(String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT name, doc FROM console_users ORDER BY name").fetch_all(pool).await?);
        rows.into_iter().map(|(n, d)| Ok((n, serde_json::from_str(&d)?))).collect()
    }

    pub async fn delete_console_user(&self, name: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM console_sessions WHERE user_name = $1").bind(name).execute(pool).await?;
            sqlx::query("DELETE FROM console_users WHERE name = $1").bind(name).execute(pool).await?.rows_affected()
        });
        Ok(n == 1)
    }

    // ---- console sessions ----

    /// Stores a session under the hash of its id (the id itself lives only in the cookie).
    pub async fn insert_session<S: Serialize>(&self, id_hash: &str, user: &str, expires_ms: i64, doc: &S) -> Result<(), StoreError> {
        let doc = serde_json::to_string(doc)?;
        on_pool!(self, |pool| sqlx::query("INSERT INTO console_sessions (id_hash, user_name, expires_ms, doc) VALUES ($1, $2, $3, $4)")
            .bind(id_hash)
            .bind(user)
            .bind(expires_ms)
            .bind(&doc)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The session's user and document, if it exists and has not expired at `now_ms`.
    pub async fn session<S: DeserializeOwned>(&self, id_hash: &str, now_ms: i64) -> Result<Option<(String, S)>, StoreError> {
        let row: Option<(String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT user_name, doc FROM console_sessions WHERE id_hash = $1 AND expires_ms > $2")
                .bind(id_hash)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?);
        row.map(|(u, d)| Ok((u, serde_json::from_str(&d)?))).transpose()
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Deletes sessions that expired before `now_ms`; returns how many.
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query("DELETE FROM console_sessions WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()))
    }

    // ---- simulation reports ----

    /// Stores a report and, in the same transaction, deletes old ones so that `keep` remain (at
    /// least 1): the new report and the newest others by creation time, then id. Saved reports
    /// thus cannot grow without limit, and the report an operator was just sent to is there
    /// even if a clock went back. Returns how many old reports were deleted.
    pub async fn insert_report<S: Serialize, D: Serialize>(
        &self,
        id: &str,
        created_ms: i64,
        summary: &S,
        doc: &D,
        keep: u32,
    ) -> Result<u64, StoreError> {
        let (summary, doc) = (serde_json::to_string(summary)?, serde_json::to_string(doc)?);
        let others = i64::from(keep.max(1)) - 1;
        let deleted = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO sim_reports (id, created_ms, summary, doc) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(created_ms)
                .bind(&summary)
                .bind(&doc)
                .execute(&mut *tx)
                .await?;
            // NOT IN over a LIMIT subquery is understood by both SQLite and PostgreSQL (SQLite
            // has no LIMIT ALL for an OFFSET-only form, PostgreSQL no LIMIT -1).
            let n = sqlx::query(
                "DELETE FROM sim_reports WHERE id <> $1 AND id NOT IN \
                 (SELECT id FROM sim_reports WHERE id <> $1 ORDER BY created_ms DESC, id DESC LIMIT $2)",
            )
            .bind(id)
            .bind(others)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(deleted)
    }

    pub async fn report<S: DeserializeOwned, D: DeserializeOwned>(&self, id: &str) -> Result<Option<ReportRow<S, D>>, StoreError> {
        let row: Option<(String, i64, String, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, created_ms, summary, doc FROM sim_reports WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?);
        row.map(|(id, created_ms, s, d)| {
            Ok(ReportRow { id, created_ms, summary: serde_json::from_str(&s)?, doc: serde_json::from_str(&d)? })
        })
        .transpose()
    }

    /// The newest reports' summaries, newest first: (id, created, summary).
    pub async fn report_summaries<S: DeserializeOwned>(&self, limit: u32) -> Result<Vec<(String, i64, S)>, StoreError> {
        let rows: Vec<(String, i64, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, created_ms, summary FROM sim_reports ORDER BY created_ms DESC, id DESC LIMIT $1"
        )
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(|(id, at, s)| Ok((id, at, serde_json::from_str(&s)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[tokio::test]
    async fn accounts_sessions_and_reports_round_trip_and_sessions_expire() {
        let s = Store::memory().await.unwrap();
        assert!(s.insert_console_user("admin", &serde_json::json!({"role": "operator"})).await.unwrap());
        assert!(!s.insert_console_user("admin", &serde_json::json!({"role": "tenant"})).await.unwrap(), "an account is never overwritten");
        let u: serde_json::Value = s.console_user("admin").await.unwrap().unwrap();
        assert_eq!(u["role"], "operator");
        s.insert_session("h1", "admin", 1_000, &serde_json::json!({"csrf": "x"})).await.unwrap();
        let (user, doc): (String, serde_json::Value) = s.session("h1", 999).await.unwrap().unwrap();
        assert_eq!((user.as_str(), doc["csrf"].as_str()), ("admin", Some("x")));
        assert!(s.session::<serde_json::Value>("h1", 1_000).await.unwrap().is_none(), "expired at its deadline");
        assert_eq!(s.delete_expired_sessions(1_000).await.unwrap(), 1);
        s.insert_session("h2", "admin", 5_000, &serde_json::json!({})).await.unwrap();
        assert!(s.delete_console_user("admin").await.unwrap());
        assert!(s.session::<serde_json::Value>("h2", 0).await.unwrap().is_none(), "deleting an account ends its sessions");

        s.insert_report("r1", 10, &serde_json::json!({"jobs": 5}), &serde_json::json!({"big": true}), 10).await.unwrap();
        s.insert_report("r2", 20, &serde_json::json!({"jobs": 6}), &serde_json::json!({}), 10).await.unwrap();
        let list: Vec<(String, i64, serde_json::Value)> = s.report_summaries(10).await.unwrap();
        assert_eq!(list.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["r2", "r1"]);
        let r: ReportRow<serde_json::Value, serde_json::Value> = s.report("r1").await.unwrap().unwrap();
        assert_eq!(r.doc["big"], true);
    }

    /// Saved reports are kept to the newest `keep`, on SQLite and on PostgreSQL (when the test
    /// server is there): the oldest go first, whatever order they were inserted in.
    #[tokio::test]
    async fn only_the_newest_reports_are_kept() {
        let mut stores = vec![Store::memory().await.unwrap()];
        if let Some(url) = crate::testing::fresh_postgres().await {
            stores.push(Store::connect_postgres(&url).await.unwrap());
        }
        for s in stores {
            let db = s.kind();
            let j = serde_json::json!({});
            for (id, at) in [("r3", 30), ("r1", 10), ("r2", 20)] {
                assert_eq!(s.insert_report(id, at, &j, &j, 3).await.unwrap(), 0, "{db}: nothing beyond the limit yet");
            }
            // An older report inserted late is itself the oldest, and the only one beyond the limit.
            assert_eq!(s.insert_report("r4", 40, &j, &j, 3).await.unwrap(), 1, "{db}");
            let ids = |list: Vec<(String, i64, serde_json::Value)>| list.into_iter().map(|r| r.0).collect::<Vec<_>>();
            assert_eq!(ids(s.report_summaries(10).await.unwrap()), ["r4", "r3", "r2"], "{db}");
            assert!(s.report::<serde_json::Value, serde_json::Value>("r1").await.unwrap().is_none(), "{db}: the oldest is gone");
            // Lowering the limit deletes down to it at the next insert; the new report stays even
            // when its clock says it is the oldest.
            assert_eq!(s.insert_report("r5", 5, &j, &j, 2).await.unwrap(), 2, "{db}");
            assert_eq!(ids(s.report_summaries(10).await.unwrap()), ["r4", "r5"], "{db}");
            assert_eq!(s.insert_report("r6", 60, &j, &j, 0).await.unwrap(), 2, "{db}: a limit of 0 still keeps the new one");
            assert_eq!(ids(s.report_summaries(10).await.unwrap()), ["r6"], "{db}");
        }
    }
}
