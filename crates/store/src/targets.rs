//! The "AI+" Action's targets page: the aggregates it measures across pillars (each bounded by
//! a time window and a row limit) and the indicators operators enter by hand, which the
//! platform cannot measure (a national adoption rate from a survey, say).

use serde::de::DeserializeOwned;

use crate::compute::job_from_row;
use crate::{BeginWrite, Db, JobRow, Store, StoreError, UsageRow};

/// One indicator entered by an operator: the columns it is listed by and its document (name,
/// value, unit, source, date), which the console owns.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetEntryRow {
    pub id: String,
    pub created_ms: i64,
    pub doc: String,
}

impl Store {
    /// How many events `pillar` wrote in [from, to).
    pub async fn usage_count(&self, pillar: &str, from_ms: i64, to_ms: i64) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM usage_events WHERE pillar = $1 AND at_ms >= $2 AND at_ms < $3")
            .bind(pillar)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_one(pool)
            .await?))
    }

    /// Events of `pillar` in [from, to) whose document matches the `LIKE` pattern `like`, oldest
    /// first, at most `limit`. The pattern is a cheap filter on the stored text, the same on both
    /// databases (their JSON functions differ); callers check the parsed document again.
    pub async fn usage_like<U: DeserializeOwned>(
        &self,
        pillar: &str,
        like: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<UsageRow<U>>, StoreError> {
        let rows: Vec<(String, i64, String, String, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, at_ms, tenant, pillar, doc FROM usage_events
             WHERE pillar = $1 AND at_ms >= $2 AND at_ms < $3 AND doc LIKE $4
             ORDER BY at_ms, id LIMIT $5",
        )
        .bind(pillar)
        .bind(from_ms)
        .bind(to_ms)
        .bind(like)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        crate::ledger::usage_rows(rows)
    }

    /// Jobs submitted in [from, to), oldest first, at most `limit`.
    pub async fn jobs_submitted<T: DeserializeOwned>(&self, from_ms: i64, to_ms: i64, limit: u32) -> Result<Vec<JobRow<T>>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs
                 WHERE submitted_ms >= $1 AND submitted_ms < $2 ORDER BY submitted_ms, id LIMIT $3",
            )
            .bind(from_ms)
            .bind(to_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter().map(job_from_row).collect()
        })
    }

    /// How many data registrations are in `state`.
    pub async fn registrations_count(&self, state: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM data_registrations WHERE state = $1")
            .bind(state)
            .fetch_one(pool)
            .await?))
    }

    /// Settlement documents made in [from, to), oldest first, at most `limit`.
    pub async fn settlements_between(&self, from_ms: i64, to_ms: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT doc FROM data_settlements WHERE created_ms >= $1 AND created_ms < $2 ORDER BY created_ms, contract, period LIMIT $3"
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// Adds an operator's entry unless `max` are kept already (then false). The count and the
    /// insert are one write transaction, so two operators at once cannot pass the cap together.
    pub async fn add_target_entry(&self, e: &TargetEntryRow, max: i64) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("LOCK TABLE target_entries IN EXCLUSIVE MODE").execute(&mut *tx).await?;
            }
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM target_entries").fetch_one(&mut *tx).await?;
            if n >= max {
                return Ok(false);
            }
            sqlx::query("INSERT INTO target_entries (id, created_ms, doc) VALUES ($1, $2, $3)")
                .bind(&e.id)
                .bind(e.created_ms)
                .bind(&e.doc)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// The operators' entries, newest first, at most `limit`.
    pub async fn target_entries(&self, limit: i64) -> Result<Vec<TargetEntryRow>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, created_ms, doc FROM target_entries ORDER BY created_ms DESC, id LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await?);
        Ok(rows.into_iter().map(|(id, created_ms, doc)| TargetEntryRow { id, created_ms, doc }).collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::Record;

    async fn both() -> Vec<Store> {
        let mut v = vec![Store::memory().await.unwrap()];
        if let Some(url) = crate::testing::fresh_postgres().await {
            v.push(Store::connect_postgres(&url).await.unwrap());
        }
        v
    }

    fn usage(id: &str, at_ms: i64, pillar: &str, request_id: &str) -> UsageRow<serde_json::Value> {
        UsageRow {
            id: id.into(),
            at_ms,
            tenant: "t".into(),
            pillar: pillar.into(),
            doc: serde_json::json!({"refs": {"request_id": request_id}}),
        }
    }

    #[tokio::test]
    async fn ledger_aggregates_keep_to_their_window_pillar_and_pattern() {
        for s in both().await {
            let rows = [
                usage("a", 10, "gateway", "r/step/1"),
                usage("b", 20, "gateway", "plain"),
                usage("c", 30, "agents", "r/step/2"),
                usage("d", 99, "gateway", "x/step/1"),
            ];
            let refs: Vec<&UsageRow<serde_json::Value>> = rows.iter().collect();
            let none: Vec<(&str, &str, &serde_json::Value)> = vec![];
            let no_events: Vec<(&str, i64, &serde_json::Value)> = vec![];
            s.record(&Record { jobs: none, events: no_events, usage: refs }).await.unwrap();
            assert_eq!(s.usage_count("gateway", 0, 50).await.unwrap(), 2);
            assert_eq!(s.usage_count("gateway", 0, 100).await.unwrap(), 3);
            let steps: Vec<UsageRow<serde_json::Value>> = s.usage_like("gateway", "%/step/%", 0, 100, 10).await.unwrap();
            assert_eq!(steps.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "d"]);
            let one: Vec<UsageRow<serde_json::Value>> = s.usage_like("gateway", "%/step/%", 0, 100, 1).await.unwrap();
            assert_eq!(one.len(), 1, "the limit binds");
            assert_eq!(s.registrations_count("registered").await.unwrap(), 0);
            assert!(s.settlements_between(0, i64::MAX, 10).await.unwrap().is_empty());
            let jobs: Vec<JobRow<serde_json::Value>> = s.jobs_submitted(0, 100, 10).await.unwrap();
            assert!(jobs.is_empty());
        }
    }

    #[tokio::test]
    async fn operator_entries_are_capped_and_listed_newest_first() {
        for s in both().await {
            for (i, at) in [(1, 100), (2, 300)] {
                let e = TargetEntryRow { id: format!("e{i}"), created_ms: at, doc: format!("{{\"n\":{i}}}") };
                assert!(s.add_target_entry(&e, 2).await.unwrap());
            }
            let third = TargetEntryRow { id: "e3".into(), created_ms: 500, doc: "{}".into() };
            assert!(!s.add_target_entry(&third, 2).await.unwrap(), "the cap binds");
            let listed = s.target_entries(10).await.unwrap();
            assert_eq!(listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e2", "e1"]);
            assert_eq!(s.target_entries(1).await.unwrap().len(), 1);
        }
    }
}
