//! Settlement: each contract's revenue over a calendar month, split among the contributors of
//! its dataset version in proportion to their Shapley shares, after the platform's fee.
//!
//! Everything is integer fen. The fee is `revenue × fee_bps / 10 000`, rounded down. The rest
//! is split by the largest-remainder rule: each contributor first gets the whole fen of its
//! exact share, then the fen left over go one each to the largest remainders, ties to the
//! contributor whose id sorts first. So the entries add up to the revenue exactly.
//!
//! Shares are the latest KNN-Shapley valuation of the version; a contributor whose value is
//! not positive gets nothing. Without a valuation, or with no positive value, the seller is
//! the one contributor. A contract and month are settled once: the settlement and its ledger
//! entries are written in one transaction, and settling again changes nothing.

use std::collections::BTreeMap;

use ledger::{Subject, UsageEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::contracts::{Contract, entry};
use super::valuations::Method;
use super::{DataError, Exchange, invalid};

/// Most ledger events of the exchange one month's settlement reads.
const MAX_EVENTS: u32 = 5_000_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SettlementLine {
    /// A contributor's id, or `platform` for the fee.
    pub party: String,
    /// `payout` or `fee`.
    pub role: String,
    pub fen: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settlement {
    pub object: String,
    pub contract: String,
    pub seller: String,
    pub period: String,
    pub revenue_fen: i64,
    pub fee_fen: i64,
    /// The valuation whose shares split the revenue, if there was one.
    pub valuation: Option<String>,
    pub lines: Vec<SettlementLine>,
    /// False when the contract was already settled for the period (this is that settlement).
    #[serde(skip_deserializing)]
    pub created: bool,
}

/// The first and last instant (exclusive) of a `YYYY-MM` month, in ms since the epoch (UTC).
pub fn month_ms(period: &str) -> Result<(i64, i64), DataError> {
    let bad = || invalid("period", format!("{period:?}: a month, YYYY-MM"));
    let (y, m) = period.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let (y, m): (i32, u8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let start = |y: i32, m: u8| -> Result<i64, DataError> {
        let month = time::Month::try_from(m).map_err(|_| bad())?;
        let d = time::Date::from_calendar_date(y, month, 1).map_err(|_| bad())?;
        Ok(d.midnight().assume_utc().unix_timestamp() * 1000)
    };
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    Ok((start(y, m)?, start(ny, nm)?))
}

/// Splits `amount` fen by `weights` (non-negative), by the largest-remainder rule.
pub fn split_fen(amount: i64, weights: &[(String, u128)]) -> Vec<(String, i64)> {
    let total: u128 = weights.iter().map(|(_, w)| w).sum();
    if total == 0 || amount <= 0 {
        return weights.iter().map(|(p, _)| (p.clone(), 0)).collect();
    }
    let amount_u = amount as u128;
    let mut out: Vec<(String, i64, u128)> =
        weights.iter().map(|(p, w)| (p.clone(), (amount_u * w / total) as i64, amount_u * w % total)).collect();
    let given: i64 = out.iter().map(|(_, f, _)| f).sum();
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| out[b].2.cmp(&out[a].2).then_with(|| out[a].0.cmp(&out[b].0)));
    for &i in order.iter().take((amount - given) as usize) {
        out[i].1 += 1;
    }
    out.into_iter().map(|(p, f, _)| (p, f)).collect()
}

impl Exchange {
    /// Settles every contract with revenue in `period` (`YYYY-MM`).
    pub async fn settle(&self, period: &str) -> Result<Vec<Settlement>, DataError> {
        let (from, to) = month_ms(period)?;
        let events = self.store.usage::<UsageEvent<Value>>(None, Some("data"), from, to, MAX_EVENTS).await?;
        if events.len() as u64 >= u64::from(MAX_EVENTS) {
            return Err(DataError::Limit(format!("more than {MAX_EVENTS} exchange events in {period}; settle from a summary")));
        }
        let mut revenue: BTreeMap<String, i64> = BTreeMap::new();
        for e in &events {
            if !["dataset_read", "dataset_compute", "contract_fee"].contains(&e.doc.subject.kind.as_str()) {
                continue;
            }
            let fen = e.doc.detail.get("amount_fen").and_then(Value::as_i64).unwrap_or(0);
            *revenue.entry(e.doc.subject.id.clone()).or_default() += fen;
        }
        let mut out = Vec::new();
        for (contract, fen) in revenue {
            let Some(row) = self.store.contract(&contract).await? else { continue };
            let c: Contract = serde_json::from_str(&row.doc).map_err(store::StoreError::from)?;
            out.push(self.settle_contract(&c, period, fen).await?);
        }
        Ok(out)
    }

    /// Settlements, newest first: a seller's own (`Some`), or all for an operator.
    pub async fn settlements(&self, seller: Option<&str>) -> Result<Vec<Settlement>, DataError> {
        let docs = self.store.settlements(self.limits.max_list.saturating_mul(10)).await?;
        let all: Vec<Settlement> = docs
            .iter()
            .map(|d| serde_json::from_str(d).map_err(|e| DataError::Store(store::StoreError::from(e))))
            .collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|s| seller.is_none_or(|t| s.seller == t)).take(self.limits.max_list as usize).collect())
    }

    async fn settle_contract(&self, c: &Contract, period: &str, revenue: i64) -> Result<Settlement, DataError> {
        if let Some(doc) = self.store.settlement(&c.id, period).await? {
            return Ok(serde_json::from_str(&doc).map_err(store::StoreError::from)?);
        }
        let fee = i64::try_from(i128::from(revenue) * i128::from(self.limits.fee_bps) / 10_000).unwrap_or(0);
        let valuations = self.store.valuations(&c.seller, &c.dataset, &c.version, self.limits.max_list).await?;
        let shapley = valuations
            .iter()
            .filter_map(|d| serde_json::from_str::<super::valuations::ValuationRecord>(d).ok())
            .find(|v| v.method == Method::KnnShapley);
        // Shares as integers: values in units of 10⁻¹², so the split is exact arithmetic.
        let mut weights: Vec<(String, u128)> = shapley
            .iter()
            .flat_map(|v| &v.contributors)
            .filter(|cv| cv.value > 0.0)
            .map(|cv| (cv.id.clone(), (cv.value * 1e12).round() as u128))
            .filter(|(_, w)| *w > 0)
            .collect();
        weights.sort();
        if weights.is_empty() {
            weights.push((c.seller.clone(), 1));
        }
        let mut lines: Vec<SettlementLine> = split_fen(revenue - fee, &weights)
            .into_iter()
            .map(|(party, fen)| SettlementLine { party, role: "payout".into(), fen })
            .collect();
        lines.push(SettlementLine { party: "platform".into(), role: "fee".into(), fen: fee });
        let s = Settlement {
            object: "data.settlement".into(),
            contract: c.id.clone(),
            seller: c.seller.clone(),
            period: period.to_string(),
            revenue_fen: revenue,
            fee_fen: fee,
            valuation: shapley.map(|v| v.id),
            lines,
            created: true,
        };
        let now = self.clock.now_ms();
        let entries: Vec<_> = s
            .lines
            .iter()
            .map(|l| {
                let subject = Subject { kind: "settlement".into(), id: format!("{}/{period}", c.id) };
                let detail = json!({"amount_fen": l.fen, "party": l.party, "role": l.role, "contract": c.id, "period": period});
                let mut e = entry(
                    format!("settle:{}:{period}:{}:{}", c.id, l.role, l.party),
                    now,
                    &c.seller,
                    subject,
                    0,
                    &[("contract", &c.id)],
                    detail,
                );
                // A settlement moves money the buyers paid; it is no cost of the seller's.
                e.doc.money_cny = 0.0;
                serde_json::to_value(&e.doc).map(|doc| store::UsageRow {
                    id: e.id,
                    at_ms: e.at_ms,
                    tenant: e.tenant,
                    pillar: e.pillar,
                    doc,
                })
            })
            .collect::<Result<_, _>>()
            .map_err(store::StoreError::from)?;
        let doc = serde_json::to_string(&s).map_err(store::StoreError::from)?;
        if !self.store.put_settlement(&c.id, period, now, &doc, &entries).await? {
            // Another run settled it meanwhile: that one stands.
            let doc = self.store.settlement(&c.id, period).await?.unwrap_or(doc);
            return Ok(serde_json::from_str(&doc).map_err(store::StoreError::from)?);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn months_run_from_their_first_midnight_to_the_next_months() {
        assert_eq!(month_ms("2026-11").unwrap(), (1_793_491_200_000, 1_796_083_200_000));
        assert_eq!(month_ms("2026-12").unwrap().1, month_ms("2027-01").unwrap().0);
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", ""] {
            assert!(month_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_fen_left_over_go_to_the_largest_remainders() {
        let w = |v: &[(&str, u128)]| v.iter().map(|(p, w)| (p.to_string(), *w)).collect::<Vec<_>>();
        // 100 fen by thirds: 33 each, and the one left over to the first id.
        assert_eq!(split_fen(100, &w(&[("a", 1), ("b", 1), ("c", 1)])), vec![("a".into(), 34), ("b".into(), 33), ("c".into(), 33)]);
        // 10 fen as 0.55 / 0.45: 5.5 and 4.5, remainders tie, so the first id gets it.
        assert_eq!(split_fen(10, &w(&[("a", 55), ("b", 45)])), vec![("a".into(), 6), ("b".into(), 4)]);
        assert_eq!(split_fen(7, &w(&[("a", 1), ("b", 6)])), vec![("a".into(), 1), ("b".into(), 6)]);
    }

    proptest! {
        #[test]
        fn a_split_adds_up_to_the_amount_and_each_share_is_within_a_fen_of_exact(
            amount in 0i64..10_000_000_000,
            weights in proptest::collection::vec(1u128..1_000_000_000_000, 1..12),
        ) {
            let named: Vec<(String, u128)> = weights.iter().enumerate().map(|(i, w)| (format!("c{i:02}"), *w)).collect();
            let split = split_fen(amount, &named);
            prop_assert_eq!(split.iter().map(|(_, f)| f).sum::<i64>(), amount);
            let total: u128 = weights.iter().sum();
            for ((_, fen), w) in split.iter().zip(&weights) {
                let exact = amount as f64 * *w as f64 / total as f64;
                prop_assert!((*fen as f64 - exact).abs() < 1.0 + 1e-6);
            }
        }
    }
}
