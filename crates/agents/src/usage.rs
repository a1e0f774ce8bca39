//! Tool calls in the usage ledger: one event per MCP call or search, keyed by its `mcp_…` or
//! `fs_…` item id, so a call is never counted twice. (Model steps are the gateway's own events,
//! one per step.)

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::run::{Record, Recorder};

/// The agents pillar's ledger writer.
pub type Meter = ledger::Ledger<ToolDetail>;
pub const PILLAR: &str = "agents";

/// What a tool call's event says beside the ledger's common fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDetail {
    pub server_label: String,
    pub tool: String,
    /// `completed` or `failed`.
    pub status: String,
    pub latency_ms: u64,
}

/// Records one run's tool calls, as its caller.
pub struct LedgerRecorder {
    pub meter: Meter,
    pub clock: Arc<dyn vocab::Clock>,
    pub tenant: String,
    pub principal: String,
    /// `agent:<id>@<version>`.
    pub agent: String,
}

impl Recorder for LedgerRecorder {
    fn begin(&self) -> Option<Record> {
        let ticket = self.meter.reserve().ok()?;
        let clock = self.clock.clone();
        let (tenant, principal, agent) = (self.tenant.clone(), self.principal.clone(), self.agent.clone());
        Some(Box::new(move |response_id: &str, item: &Value, latency_ms: u64| {
            let id = item["id"].as_str().unwrap_or("").to_string();
            let mut refs = BTreeMap::new();
            refs.insert(Cow::Borrowed("response_id"), response_id.to_string());
            refs.insert(Cow::Borrowed("agent"), agent);
            let detail = ToolDetail {
                server_label: item["server_label"].as_str().unwrap_or("").into(),
                tool: match item["type"].as_str() {
                    Some("file_search_call") => crate::spec::FILE_SEARCH.into(),
                    _ => item["name"].as_str().unwrap_or("").into(),
                },
                status: item["status"].as_str().unwrap_or("").into(),
                latency_ms,
            };
            let doc = ledger::UsageEvent {
                principal: Some(principal),
                subject: ledger::Subject { kind: "tool_call".into(), id: id.clone() },
                quantity: 1.0,
                unit: ledger::Unit::Requests,
                price_cny_per_unit: 0.0,
                energy_kwh: 0.0,
                carbon_kg: 0.0,
                money_cny: 0.0,
                refs,
                detail,
            };
            ticket.send(store::UsageRow { id, at_ms: clock.now_ms(), tenant, pillar: PILLAR.into(), doc });
        }))
    }
}
