//! Listing offers and access contracts. A seller lists a published version with an offer (a
//! price and the modes it may be used in); a buyer signs a contract for it, which fixes the
//! version, purpose, term and price. Every read under a contract is a ledger event priced by
//! the contract, written before the bytes are served, so no read goes unrecorded.
//!
//! Residency is the one region rule: a dataset kept in a region is never copied out of it, so
//! it is offered for compute-to-data only, never for download.

use std::collections::BTreeMap;

use ledger::{Subject, Unit, UsageEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{DataError, Exchange, FileSpec, invalid};

/// Longest purpose a contract states, in characters.
const MAX_PURPOSE_CHARS: usize = 500;
/// Longest term a contract or an offer may have, in days.
pub const MAX_TERM_DAYS: u32 = 3660;
/// Most fen one price may name (a hundred million yuan).
const MAX_PRICE_FEN: i64 = 10_000_000_000;
const DAY_MS: i64 = 86_400_000;

/// What a buyer pays, in integer fen.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "unit", rename_all = "snake_case", deny_unknown_fields)]
pub enum Price {
    /// Per 10⁹ bytes read, rounded up to the fen for each read.
    PerGb { fen: i64 },
    /// Per record read (a line; a CSV's header is not a record).
    PerRecord { fen: i64 },
    /// Per read.
    PerCall { fen: i64 },
    /// Once, when the contract is signed.
    Flat { fen: i64 },
}

impl Price {
    fn fen(&self) -> i64 {
        match *self {
            Price::PerGb { fen } | Price::PerRecord { fen } | Price::PerCall { fen } | Price::Flat { fen } => fen,
        }
    }

    /// The price of one read of `bytes` holding `records` (a compute-to-data job reads its
    /// whole dataset version).
    pub(crate) fn of_read(&self, bytes: u64, records: u64) -> i64 {
        let units = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        match *self {
            Price::PerGb { fen } => i64::try_from((i128::from(fen) * i128::from(bytes) + 999_999_999) / 1_000_000_000).unwrap_or(i64::MAX),
            Price::PerRecord { fen } => fen.saturating_mul(units(records)),
            Price::PerCall { fen } => fen,
            Price::Flat { .. } => 0,
        }
    }
}

/// How a contract lets the buyer use the data.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Metered reads of the files.
    Download,
    /// Jobs on the compute network over files the buyer never reads (可用不可见).
    Compute,
}

/// What a compute-to-data job's outputs must pass before they leave.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputRules {
    /// Most bytes all of a run's outputs may hold together.
    pub max_bytes: u64,
    /// Refuse outputs with a line equal to a record of the dataset.
    pub forbid_records: bool,
}

/// The most an offer may let a run's outputs hold.
pub const MAX_OUTPUT_BYTES: u64 = 64 << 20;

impl Default for OutputRules {
    fn default() -> Self {
        OutputRules { max_bytes: 1 << 20, forbid_records: true }
    }
}

/// A listing's terms.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub price: Price,
    pub modes: Vec<Mode>,
    /// The longest term a contract may ask for, in days.
    pub max_days: u32,
    /// The output check of compute-to-data runs.
    #[serde(default)]
    pub output: OutputRules,
}

impl Offer {
    pub(crate) fn check(&self, residency: Option<&str>) -> Result<(), DataError> {
        if !(0..=MAX_PRICE_FEN).contains(&self.price.fen()) {
            return Err(invalid("offer.price.fen", format!("from 0 to {MAX_PRICE_FEN} fen")));
        }
        if self.modes.is_empty() {
            return Err(invalid("offer.modes", "at least one mode"));
        }
        if !(1..=MAX_TERM_DAYS).contains(&self.max_days) {
            return Err(invalid("offer.max_days", format!("from 1 to {MAX_TERM_DAYS}")));
        }
        if !(1..=MAX_OUTPUT_BYTES).contains(&self.output.max_bytes) {
            return Err(invalid("offer.output.max_bytes", format!("from 1 to {MAX_OUTPUT_BYTES}")));
        }
        if let Some(region) = residency
            && self.modes.contains(&Mode::Download)
        {
            return Err(invalid("offer.modes", format!("the dataset is kept in {region}; it cannot be offered for download")));
        }
        Ok(())
    }
}

/// What a buyer asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractIn {
    pub seller: String,
    pub dataset: String,
    pub purpose: String,
    pub days: u32,
    pub mode: Mode,
}

/// A signed contract.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Contract {
    pub object: String,
    pub id: String,
    pub buyer: String,
    pub seller: String,
    pub dataset: String,
    pub version: String,
    pub purpose: String,
    pub mode: Mode,
    pub price: Price,
    pub from_ms: i64,
    pub to_ms: i64,
    pub created_ms: i64,
    /// The output check of its compute-to-data runs, fixed when it was signed.
    #[serde(default)]
    pub output: OutputRules,
}

/// A ledger entry of the exchange: `amount_fen` is the money, exact.
pub(crate) fn entry(
    id: String,
    at_ms: i64,
    tenant: &str,
    subject: Subject,
    fen: i64,
    refs: &[(&'static str, &str)],
    detail: Value,
) -> store::UsageRow<UsageEvent<Value>> {
    let refs: BTreeMap<_, _> = refs.iter().map(|(k, v)| (std::borrow::Cow::Borrowed(*k), v.to_string())).collect();
    let doc = UsageEvent {
        principal: None,
        subject,
        quantity: 0.0,
        unit: Unit::Requests,
        price_cny_per_unit: 0.0,
        energy_kwh: 0.0,
        carbon_kg: 0.0,
        money_cny: fen as f64 / 100.0,
        refs,
        detail,
    };
    store::UsageRow { id, at_ms, tenant: tenant.to_string(), pillar: "data".into(), doc }
}

impl Exchange {
    /// Signs a contract for the version a listing points at, on the listing's terms.
    pub async fn sign_contract(&self, buyer: &str, c: ContractIn) -> Result<Contract, DataError> {
        let purpose = c.purpose.trim();
        if purpose.is_empty() || purpose.chars().count() > MAX_PURPOSE_CHARS || purpose.chars().any(char::is_control) {
            return Err(invalid("purpose", format!("1 to {MAX_PURPOSE_CHARS} characters without control characters")));
        }
        let missing = || DataError::NotFound { what: "listing", id: format!("{}/{}", c.seller, c.dataset) };
        let d = self.store.dataset(&c.seller, &c.dataset).await?.ok_or_else(missing)?;
        let (Some(version), Some(offer)) = (d.listed_version.clone(), d.offer.as_deref()) else { return Err(missing()) };
        let offer: Offer = serde_json::from_str(offer).map_err(store::StoreError::from)?;
        if !offer.modes.contains(&c.mode) {
            return Err(invalid("mode", format!("the listing offers {:?}", offer.modes)));
        }
        if !(1..=offer.max_days).contains(&c.days) {
            return Err(invalid("days", format!("from 1 to the listing's {} days", offer.max_days)));
        }
        if buyer == c.seller {
            return Err(invalid("seller", "a tenant reads its own datasets without a contract"));
        }
        let now = self.clock.now_ms();
        let contract = Contract {
            object: "data.contract".into(),
            id: (self.ids)("dct"),
            buyer: buyer.to_string(),
            seller: c.seller.clone(),
            dataset: c.dataset.clone(),
            version,
            purpose: purpose.to_string(),
            mode: c.mode,
            price: offer.price,
            from_ms: now,
            to_ms: now.saturating_add(i64::from(c.days) * DAY_MS),
            created_ms: now,
            output: offer.output,
        };
        let doc = serde_json::to_string(&contract).map_err(store::StoreError::from)?;
        let row = store::ContractRow {
            id: contract.id.clone(),
            buyer: buyer.to_string(),
            seller: c.seller.clone(),
            dataset: c.dataset.clone(),
            created_ms: now,
            doc,
        };
        self.store.put_contract(&row).await?;
        if let Price::Flat { fen } = contract.price {
            let subject = Subject { kind: "contract_fee".into(), id: contract.id.clone() };
            let detail = json!({"amount_fen": fen, "contract": contract.id, "seller": contract.seller});
            let e = entry(format!("dfee_{}", contract.id), now, buyer, subject, fen, &[("contract", &contract.id)], detail);
            self.store.record(&store::Record::<(), (), UsageEvent<Value>> { jobs: vec![], events: vec![], usage: vec![&e] }).await?;
        }
        Ok(contract)
    }

    /// A contract, for either party; anyone else finds none.
    pub async fn contract(&self, tenant: &str, id: &str) -> Result<Contract, DataError> {
        let row = self.store.contract(id).await?.filter(|r| r.buyer == tenant || r.seller == tenant);
        let row = row.ok_or_else(|| DataError::NotFound { what: "contract", id: id.to_string() })?;
        Ok(serde_json::from_str(&row.doc).map_err(store::StoreError::from)?)
    }

    pub async fn contracts(&self, tenant: &str) -> Result<Vec<Contract>, DataError> {
        let rows = self.store.contracts_of(tenant, self.limits.max_list).await?;
        rows.iter().map(|r| serde_json::from_str(&r.doc).map_err(|e| DataError::Store(store::StoreError::from(e)))).collect()
    }

    /// A contract the tenant bought, if it is in force now.
    pub(crate) async fn contract_in_force(&self, buyer: &str, id: &str) -> Result<Contract, DataError> {
        let c = self.contract(buyer, id).await?;
        if c.buyer != buyer {
            return Err(DataError::NotFound { what: "contract", id: id.to_string() });
        }
        let now = self.clock.now_ms();
        if !(c.from_ms..c.to_ms).contains(&now) {
            return Err(DataError::Conflict(format!("contract {id} runs from {} to {} (ms); it is not in force", c.from_ms, c.to_ms)));
        }
        Ok(c)
    }

    /// Reads a file under a download contract, recording the read (and its price) first. A
    /// compute-to-data contract never reads its files.
    pub async fn read_under_contract(&self, buyer: &str, id: &str, file_id: &str) -> Result<(FileSpec, bytes::Bytes), DataError> {
        let c = self.contract_in_force(buyer, id).await?;
        if c.mode != Mode::Download {
            return Err(DataError::Conflict(format!(
                "contract {id} is for compute-to-data: its files are used by jobs (POST /api/v1/contracts/{id}/runs), never read"
            )));
        }
        let now = self.clock.now_ms();
        let (spec, bytes) = self.file(&c.seller, &c.dataset, &c.version, file_id).await?;
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + u64::from(!bytes.is_empty() && !bytes.ends_with(b"\n"));
        let csv = spec.encoding_format.iter().any(|f| f == "text/csv");
        let records = lines.saturating_sub(u64::from(csv));
        let fen = c.price.of_read(bytes.len() as u64, records);
        let subject = Subject { kind: "dataset_read".into(), id: c.id.clone() };
        let detail =
            json!({"amount_fen": fen, "contract": c.id, "seller": c.seller, "file": file_id, "bytes": bytes.len(), "records": records});
        let mut e = entry((self.ids)("dread"), now, buyer, subject, fen, &[("contract", &c.id), ("file", file_id)], detail);
        e.doc.quantity = bytes.len() as f64;
        e.doc.unit = Unit::Bytes;
        self.store.record(&store::Record::<(), (), UsageEvent<Value>> { jobs: vec![], events: vec![], usage: vec![&e] }).await?;
        Ok((spec, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_priced_by_the_contract_in_whole_fen() {
        assert_eq!(Price::PerGb { fen: 100 }.of_read(1, 0), 1, "a part of a fen is a fen");
        assert_eq!(Price::PerGb { fen: 100 }.of_read(2_000_000_000, 0), 200);
        assert_eq!(Price::PerRecord { fen: 3 }.of_read(10, 7), 21);
        assert_eq!(Price::PerCall { fen: 50 }.of_read(10, 7), 50);
        assert_eq!(Price::Flat { fen: 50 }.of_read(10, 7), 0);
    }
}
