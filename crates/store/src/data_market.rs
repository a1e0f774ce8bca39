//! The exchange's market rows: registrations (each change names the revision it follows),
//! access contracts, valuation records, and settlements, each settlement written with its
//! ledger entries in one transaction, once per contract and period.

use crate::{BeginWrite, Db, Store, StoreError, UsageRow};

/// Serialises registrations' sequence numbers on a shared PostgreSQL database.
const PG_REGISTRATIONS_LOCK: i64 = 0x0061_6970_6c75_730d;

/// A registration as stored: its keys and its document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationRow {
    pub id: String,
    pub tenant: String,
    pub dataset: String,
    pub seq: i64,
    pub rev: i64,
    pub state: String,
    pub code: Option<String>,
    pub doc: String,
}

type RegistrationTuple = (String, String, String, i64, i64, String, Option<String>, String);

fn registration_row((id, tenant, dataset, seq, rev, state, code, doc): RegistrationTuple) -> RegistrationRow {
    RegistrationRow { id, tenant, dataset, seq, rev, state, code, doc }
}

/// A contract as stored: its parties and its document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractRow {
    pub id: String,
    pub buyer: String,
    pub seller: String,
    pub dataset: String,
    pub created_ms: i64,
    pub doc: String,
}

/// A valuation record as stored: its keys and its document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValuationRow {
    pub id: String,
    pub tenant: String,
    pub dataset: String,
    pub version: String,
    pub method: String,
    pub created_ms: i64,
    pub doc: String,
}

type ContractTuple = (String, String, String, String, i64, String);

fn contract_row((id, buyer, seller, dataset, created_ms, doc): ContractTuple) -> ContractRow {
    ContractRow { id, buyer, seller, dataset, created_ms, doc }
}

impl Store {
    /// Stores a new registration with the next sequence number, which it returns.
    pub async fn insert_registration(&self, r: &RegistrationRow) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_REGISTRATIONS_LOCK).execute(&mut *tx).await?;
            }
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM data_registrations").fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO data_registrations (id, tenant, dataset, seq, rev, state, code, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&r.id)
            .bind(&r.tenant)
            .bind(&r.dataset)
            .bind(seq)
            .bind(r.rev)
            .bind(&r.state)
            .bind(&r.code)
            .bind(&r.doc)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(seq)
        })
    }

    /// Writes revision `r.rev` of a registration if the stored one is `r.rev - 1`; false, and
    /// nothing written, when another writer changed it meanwhile.
    pub async fn update_registration(&self, r: &RegistrationRow) -> Result<bool, StoreError> {
        let n = on_pool!(self, |pool| sqlx::query(
            "UPDATE data_registrations SET rev = $2, state = $3, code = $4, doc = $5 WHERE id = $1 AND rev = $2 - 1"
        )
        .bind(&r.id)
        .bind(r.rev)
        .bind(&r.state)
        .bind(&r.code)
        .bind(&r.doc)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    pub async fn registration(&self, id: &str) -> Result<Option<RegistrationRow>, StoreError> {
        let row: Option<RegistrationTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, tenant, dataset, seq, rev, state, code, doc FROM data_registrations WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(registration_row))
    }

    pub async fn registration_by_code(&self, code: &str) -> Result<Option<RegistrationRow>, StoreError> {
        let row: Option<RegistrationTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, tenant, dataset, seq, rev, state, code, doc FROM data_registrations WHERE code = $1"
        )
        .bind(code)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(registration_row))
    }

    /// A tenant's registrations, newest first, at most `limit`.
    pub async fn registrations_of(&self, tenant: &str, limit: i64) -> Result<Vec<RegistrationRow>, StoreError> {
        let rows: Vec<RegistrationTuple> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, tenant, dataset, seq, rev, state, code, doc FROM data_registrations WHERE tenant = $1 ORDER BY seq DESC LIMIT $2"
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await?
        });
        Ok(rows.into_iter().map(registration_row).collect())
    }

    /// Registrations in a state, oldest first, at most `limit`.
    pub async fn registrations_in(&self, state: &str, limit: i64) -> Result<Vec<RegistrationRow>, StoreError> {
        let rows: Vec<RegistrationTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, tenant, dataset, seq, rev, state, code, doc FROM data_registrations WHERE state = $1 ORDER BY seq LIMIT $2"
        )
        .bind(state)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(registration_row).collect())
    }

    pub async fn put_contract(&self, c: &ContractRow) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO data_contracts (id, buyer, seller, dataset, created_ms, doc) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&c.id)
        .bind(&c.buyer)
        .bind(&c.seller)
        .bind(&c.dataset)
        .bind(c.created_ms)
        .bind(&c.doc)
        .execute(pool)
        .await
        .map(drop)?);
        Ok(())
    }

    pub async fn contract(&self, id: &str) -> Result<Option<ContractRow>, StoreError> {
        let row: Option<ContractTuple> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, buyer, seller, dataset, created_ms, doc FROM data_contracts WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?);
        Ok(row.map(contract_row))
    }

    /// The contracts a tenant is a party to (buyer or seller), newest first, at most `limit`.
    pub async fn contracts_of(&self, tenant: &str, limit: i64) -> Result<Vec<ContractRow>, StoreError> {
        let rows: Vec<ContractTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, buyer, seller, dataset, created_ms, doc FROM data_contracts
             WHERE buyer = $1 OR seller = $1 ORDER BY created_ms DESC, id LIMIT $2"
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(contract_row).collect())
    }

    pub async fn put_valuation(&self, v: &ValuationRow) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO data_valuations (id, tenant, dataset, version, method, created_ms, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(&v.id)
        .bind(&v.tenant)
        .bind(&v.dataset)
        .bind(&v.version)
        .bind(&v.method)
        .bind(v.created_ms)
        .bind(&v.doc)
        .execute(pool)
        .await
        .map(drop)?);
        Ok(())
    }

    /// A version's valuation documents, newest first, at most `limit`.
    pub async fn valuations(&self, tenant: &str, dataset: &str, version: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT doc FROM data_valuations WHERE tenant = $1 AND dataset = $2 AND version = $3
             ORDER BY created_ms DESC, id DESC LIMIT $4"
        )
        .bind(tenant)
        .bind(dataset)
        .bind(version)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// Settlement documents, newest first, at most `limit`.
    pub async fn settlements(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT doc FROM data_settlements ORDER BY created_ms DESC, contract, period LIMIT $1"
        )
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    /// The settlement of a contract for a period, if there is one.
    pub async fn settlement(&self, contract: &str, period: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT doc FROM data_settlements WHERE contract = $1 AND period = $2")
            .bind(contract)
            .bind(period)
            .fetch_optional(pool)
            .await?))
    }

    /// Writes a settlement and its ledger entries in one transaction, unless the contract is
    /// already settled for the period (false, and nothing written): settling is idempotent.
    pub async fn put_settlement(
        &self,
        contract: &str,
        period: &str,
        created_ms: i64,
        doc: &str,
        entries: &[UsageRow<serde_json::Value>],
    ) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "INSERT INTO data_settlements (contract, period, created_ms, doc) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (contract, period) DO NOTHING",
            )
            .bind(contract)
            .bind(period)
            .bind(created_ms)
            .bind(doc)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 0 {
                return Ok(false);
            }
            insert_usage!(tx, entries);
            tx.commit().await?;
            Ok(true)
        })
    }
}
