//! The one usage event type. It is stored as the document of a `usage_events` row, whose columns
//! (id, time, tenant, pillar) are what the store queries by.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One ledger entry as stored: the store's row with a [`UsageEvent`] document. `id` is unique,
/// so writing an event twice is refused and a retried write never counts twice.
pub type Entry<D> = store::UsageRow<UsageEvent<D>>;

/// What a quantity counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Model tokens, input and output together.
    Tokens,
    /// GPU-seconds of a job's run (a fraction of a GPU counts by its share).
    GpuSeconds,
    /// Calls that carry no other measure (a model list, a refused request).
    Requests,
    /// Bytes of a dataset read.
    Bytes,
}

/// What was used: a request, a job's run, a dataset read ...
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// `request`, `job_run`, ...
    pub kind: String,
    /// Empty when the subject is known only by the event itself (a request without an
    /// `X-Request-Id`): the event's id names it, and is not stored twice.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

/// One use of the platform. `D` is the pillar's own detail, stored beside the common fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent<D> {
    /// Who used it: the API key, operator token or console user; `None` for the platform.
    /// (The gateway's events before the ledger had one type named it `key_id`.)
    #[serde(default, alias = "key_id", skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Events written before the ledger had one type carry no subject, quantity or unit; of
    /// those, only job runs had a quantity (`gpu_seconds`), so that is what they read back as.
    #[serde(default)]
    pub subject: Subject,
    #[serde(default, alias = "gpu_seconds")]
    pub quantity: f64,
    #[serde(default = "legacy_unit")]
    pub unit: Unit,
    /// Yuan per unit, where one price applies (else the money over the quantity).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub price_cny_per_unit: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub energy_kwh: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub carbon_kg: f64,
    /// What this use costs the tenant, in yuan: the ledger's one money field. (Events written
    /// before the ledger had one type named it `cost_cny` or `energy_cost_cny`.)
    #[serde(default, alias = "cost_cny", alias = "energy_cost_cny")]
    pub money_cny: f64,
    /// Other objects this use concerns, by role: `model`, `deployment`, `cluster`, `job`,
    /// `request_id` ...
    /// (The roles are mostly constants, so they are borrowed rather than allocated per event.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refs: BTreeMap<Cow<'static, str>, String>,
    #[serde(flatten)]
    pub detail: D,
}

fn legacy_unit() -> Unit {
    Unit::GpuSeconds
}

/// Zeros are left out of the stored document (they read back as zero): most gateway events
/// carry no energy or carbon, and the ledger is the platform's largest table.
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl<D> UsageEvent<D> {
    /// A reference by role, or "".
    pub fn reference(&self, role: &str) -> &str {
        self.refs.get(role).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn an_event_keeps_its_detail_beside_the_common_fields_and_reads_old_money_names() {
        let e = UsageEvent {
            principal: Some("key_1".into()),
            subject: Subject { kind: "request".into(), id: "r1".into() },
            quantity: 14.0,
            unit: Unit::Tokens,
            price_cny_per_unit: 0.001,
            energy_kwh: 0.0,
            carbon_kg: 0.0,
            money_cny: 0.014,
            refs: BTreeMap::from([("model".into(), "qwen".to_string())]),
            detail: serde_json::json!({"status": 200}),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["status"], 200, "the detail is flattened: {v}");
        assert_eq!(v["refs"]["model"], "qwen");
        let back: UsageEvent<serde_json::Value> = serde_json::from_value(v).unwrap();
        assert_eq!(back.detail["status"], 200);
        assert_eq!(back.reference("model"), "qwen");
        let old: UsageEvent<serde_json::Value> = serde_json::from_str(
            r#"{"subject": {"kind": "job_run", "id": "j#1"}, "quantity": 1, "unit": "gpu_seconds", "energy_cost_cny": 2.5}"#,
        )
        .unwrap();
        assert_eq!(old.money_cny, 2.5);
        let old: UsageEvent<serde_json::Value> = serde_json::from_str(
            r#"{"key_id": "key_1", "subject": {"kind": "request"}, "quantity": 3, "unit": "tokens", "cost_cny": 0.5}"#,
        )
        .unwrap();
        assert_eq!((old.principal.as_deref(), old.money_cny), (Some("key_1"), 0.5));
        // Whole documents as the gateway and the job lifecycle wrote them before: they still read.
        let gateway: UsageEvent<serde_json::Value> = serde_json::from_str(
            r#"{"key_id":"key_1","endpoint":"chat.completions","model":"qwen","input_tokens":11,"output_tokens":3,
                "tokens_reported":true,"latency_ms":4,"status":200,"cost_cny":0.04,"stream":false,"blocked":false}"#,
        )
        .unwrap();
        assert_eq!((gateway.principal.as_deref(), gateway.quantity, gateway.money_cny), (Some("key_1"), 0.0, 0.04));
        assert_eq!(gateway.detail["input_tokens"], 11);
        let compute: UsageEvent<serde_json::Value> =
            serde_json::from_str(r#"{"gpu_seconds":7200.0,"energy_kwh":1.5,"energy_cost_cny":2.0,"carbon_kg":0.9}"#).unwrap();
        assert_eq!((compute.unit, compute.quantity, compute.money_cny, compute.carbon_kg), (Unit::GpuSeconds, 7200.0, 2.0, 0.9));
    }
}
