//! The one set of usage summaries: events grouped by day, tenant, pillar, principal and model,
//! with their counts, quantities, energy, carbon and money. The usage API, the CLI and the
//! console all read these, so a figure is computed one way wherever it is shown.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{Entry, Unit};

const DAY_MS: i64 = 86_400_000;

/// What splits the rows; fields left `false` are summed over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupBy {
    /// UTC days.
    pub day: bool,
    pub tenant: bool,
    pub pillar: bool,
    pub principal: bool,
    /// The `model` reference (gateway requests).
    pub model: bool,
}

impl GroupBy {
    pub const ALL: GroupBy = GroupBy { day: true, tenant: true, pillar: true, principal: true, model: true };

    /// Parses a comma-separated list of `day`, `tenant`, `pillar`, `principal`, `model`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut g = GroupBy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "day" => g.day = true,
                "tenant" => g.tenant = true,
                "pillar" => g.pillar = true,
                "principal" => g.principal = true,
                "model" => g.model = true,
                other => return Err(format!("{other:?} is not one of day, tenant, pillar, principal, model")),
            }
        }
        Ok(g)
    }
}

/// One group's totals. The grouping fields are `None` when not grouped by.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SummaryRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day_start_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pillar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub events: u64,
    /// Events whose `status` is 400 or more.
    pub errors: u64,
    /// Events a guardrail stopped.
    pub blocked: u64,
    pub tokens: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub gpu_seconds: f64,
    pub energy_kwh: f64,
    pub carbon_kg: f64,
    pub money_cny: f64,
}

type Key = (Option<i64>, Option<String>, Option<String>, Option<String>, Option<String>);

/// Sums `rows` by `by`, in key order.
pub fn summarize(rows: &[Entry<serde_json::Value>], by: GroupBy) -> Vec<SummaryRow> {
    let mut groups: BTreeMap<Key, SummaryRow> = BTreeMap::new();
    for r in rows {
        let e = &r.doc;
        let key: Key = (
            by.day.then(|| r.at_ms.div_euclid(DAY_MS) * DAY_MS),
            by.tenant.then(|| r.tenant.clone()),
            by.pillar.then(|| r.pillar.clone()),
            by.principal.then(|| e.principal.clone().unwrap_or_default()),
            by.model.then(|| e.reference("model").to_string()),
        );
        let g = groups.entry(key).or_default();
        let u = |k: &str| e.detail.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        g.events += 1;
        g.errors += u64::from(u("status") >= 400);
        g.blocked += u64::from(e.detail.get("blocked").and_then(serde_json::Value::as_bool).unwrap_or(false));
        g.input_tokens = g.input_tokens.saturating_add(u("input_tokens"));
        g.output_tokens = g.output_tokens.saturating_add(u("output_tokens"));
        match e.unit {
            Unit::Tokens => g.tokens = g.tokens.saturating_add(e.quantity as u64),
            Unit::GpuSeconds => g.gpu_seconds += e.quantity,
            Unit::Requests | Unit::Bytes => {}
        }
        g.energy_kwh += e.energy_kwh;
        g.carbon_kg += e.carbon_kg;
        g.money_cny += e.money_cny;
    }
    groups
        .into_iter()
        .map(|((day, tenant, pillar, principal, model), row)| SummaryRow { day_start_ms: day, tenant, pillar, principal, model, ..row })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::event::{Subject, UsageEvent};

    fn row(
        at_ms: i64,
        tenant: &str,
        pillar: &str,
        unit: Unit,
        quantity: f64,
        money: f64,
        detail: serde_json::Value,
    ) -> Entry<serde_json::Value> {
        store::UsageRow {
            id: format!("{at_ms}{tenant}{pillar}"),
            at_ms,
            tenant: tenant.into(),
            pillar: pillar.into(),
            doc: UsageEvent {
                principal: Some("k".into()),
                subject: Subject { kind: "x".into(), id: "y".into() },
                quantity,
                unit,
                price_cny_per_unit: 0.0,
                energy_kwh: 0.5,
                carbon_kg: 0.25,
                money_cny: money,
                refs: BTreeMap::from([("model".into(), "qwen".to_string())]),
                detail,
            },
        }
    }

    #[test]
    fn rows_sum_by_the_chosen_keys() {
        let rows = vec![
            row(1_000, "a", "gateway", Unit::Tokens, 15.0, 0.5, serde_json::json!({"status": 200, "input_tokens": 10, "output_tokens": 5})),
            row(2_000, "a", "gateway", Unit::Tokens, 2.0, 0.25, serde_json::json!({"status": 502, "input_tokens": 2, "output_tokens": 0})),
            row(3_000, "a", "compute", Unit::GpuSeconds, 7200.0, 2.0, serde_json::json!({})),
            row(DAY_MS + 1, "b", "gateway", Unit::Tokens, 3.0, 0.0, serde_json::json!({"status": 400, "blocked": true})),
        ];
        let by_day_pillar = summarize(&rows, GroupBy { day: true, pillar: true, ..Default::default() });
        assert_eq!(by_day_pillar.len(), 3);
        let gw = &by_day_pillar[1];
        assert_eq!((gw.day_start_ms, gw.pillar.as_deref(), gw.tenant.as_deref()), (Some(0), Some("gateway"), None));
        assert_eq!((gw.events, gw.errors, gw.tokens, gw.input_tokens, gw.output_tokens, gw.money_cny), (2, 1, 17, 12, 5, 0.75));
        assert_eq!(by_day_pillar[0].gpu_seconds, 7200.0);
        let all = summarize(&rows, GroupBy::default());
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].events, all[0].errors, all[0].blocked, all[0].energy_kwh, all[0].carbon_kg), (4, 2, 1, 2.0, 1.0));
        assert_eq!(GroupBy::parse("day, tenant").unwrap(), GroupBy { day: true, tenant: true, ..Default::default() });
        assert!(GroupBy::parse("week").is_err());
    }
}
