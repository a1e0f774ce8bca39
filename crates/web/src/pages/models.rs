//! Models: each model and its deployments with health, and from the usage ledger of the last
//! 24 hours its requests, error rate, latency percentiles and tokens per hour. A tenant sees
//! the same page computed over its own requests only, without upstream addresses.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use gateway::meter::RequestDetail;
use maud::html;

use crate::charts::{Kind, Series, render};
use crate::error::ConsoleError;
use crate::layout::{Nav, empty_row, num, page, pct, svg};
use crate::pages::network::health_badge;
use crate::{C, Viewer};

/// Most ledger rows the page reads; past it the figures cover the newest rows it got.
pub const MAX_ROWS: u32 = 200_000;
const HOUR_MS: i64 = 3_600_000;

/// One model's figures over a window.
#[derive(Debug, Default, PartialEq)]
pub struct ModelStats {
    pub requests: u64,
    pub errors: u64,
    pub latency_ms: Vec<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Tokens (in + out) per hour bucket.
    pub tokens_by_hour: Vec<f64>,
}

impl ModelStats {
    /// The `q`-quantile of latency by the nearest-rank method; `None` without requests.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.latency_ms.is_empty() {
            return None;
        }
        let mut v = self.latency_ms.clone();
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }
}

/// Groups ledger rows by model; errors are answers of 500 and above (the upstream's or
/// ours), not a client's own mistakes.
pub fn stats(rows: &[ledger::Entry<RequestDetail>], from_ms: i64, hours: usize) -> BTreeMap<String, ModelStats> {
    let mut out: BTreeMap<String, ModelStats> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.doc.reference("model").is_empty()) {
        let s = out
            .entry(r.doc.reference("model").to_string())
            .or_insert_with(|| ModelStats { tokens_by_hour: vec![0.0; hours], ..Default::default() });
        s.requests += 1;
        s.errors += u64::from(r.doc.detail.status >= 500);
        s.latency_ms.push(r.doc.detail.latency_ms);
        s.input_tokens += r.doc.detail.input_tokens;
        s.output_tokens += r.doc.detail.output_tokens;
        let h = (r.at_ms - from_ms).div_euclid(HOUR_MS);
        if let Some(b) = usize::try_from(h).ok().and_then(|h| s.tokens_by_hour.get_mut(h)) {
            *b += (r.doc.detail.input_tokens + r.doc.detail.output_tokens) as f64;
        }
    }
    out
}

pub async fn index(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    let now = c.now_ms();
    let from = (now / HOUR_MS - 23) * HOUR_MS;
    let rows: Vec<ledger::Entry<RequestDetail>> = c.store.usage(v.scope(), Some("gateway"), from, i64::MAX, MAX_ROWS).await?;
    let by_model = stats(&rows, from, 24);
    let health = c.gateway.health();
    let labels: Vec<String> = (0..24).map(|i| crate::layout::fmt_ms(from + i * HOUR_MS)[11..16].to_string()).collect();
    let series: Vec<Series> = by_model.iter().map(|(m, s)| Series { name: m, values: s.tokens_by_hour.clone() }).collect();
    let chart = render("tokens", lang.t("tokens_chart"), &labels, &series, Kind::Line);
    let body = html! {
        @if health.is_empty() { p class="notice" { (lang.t("no_models")) } }
        @if let Some((name, state)) = c.gateway.embedded_state() {
            p { (lang.t("embedded")) ": " strong { (name) } " · " (health_badge(lang, state == "ready")) " " span class="muted" { (state) } }
        }
        h2 id="models-heading" { (lang.t("models")) }
        table aria-labelledby="models-heading" {
            thead { tr {
                th scope="col" { (lang.t("name")) } th scope="col" { (lang.t("routing")) }
                th scope="col" class="num" { (lang.t("requests_24h")) } th scope="col" class="num" { (lang.t("error_rate")) }
                th scope="col" class="num" { (lang.t("p50")) } th scope="col" class="num" { (lang.t("p95")) } th scope="col" class="num" { (lang.t("p99")) }
                th scope="col" class="num" { (lang.t("tokens_in")) } th scope="col" class="num" { (lang.t("tokens_out")) }
            } }
            tbody {
                @if health.is_empty() { (empty_row(lang, 9)) }
                @for m in &health {
                    @let s = by_model.get(&m.name);
                    tr {
                        th scope="row" { (m.name) }
                        td { (serde_json::to_value(m.routing).ok().and_then(|r| r.as_str().map(String::from)).unwrap_or_default()) }
                        td class="num" { (s.map_or(0, |s| s.requests)) }
                        td class="num" { (s.filter(|s| s.requests > 0).map_or("—".into(), |s| pct(s.errors as f64 / s.requests as f64))) }
                        @for q in [0.5, 0.95, 0.99] { td class="num" { (s.and_then(|s| s.quantile(q)).map_or("—".into(), |v| v.to_string())) } }
                        td class="num" { (num(s.map_or(0, |s| s.input_tokens) as f64, 0)) }
                        td class="num" { (num(s.map_or(0, |s| s.output_tokens) as f64, 0)) }
                    }
                }
            }
        }
        figure { (svg(chart)) }
        h2 id="deployments-heading" { (lang.t("deployments")) }
        table aria-labelledby="deployments-heading" {
            thead { tr {
                th scope="col" { (lang.t("models")) } th scope="col" { (lang.t("deployment")) } th scope="col" { (lang.t("cluster")) }
                @if v.is_operator() { th scope="col" { "URL" } }
                th scope="col" { (lang.t("health")) } th scope="col" class="num" { (lang.t("latency_ewma")) }
            } }
            tbody {
                @for m in &health {
                    @for d in &m.deployments {
                        tr {
                            td { (m.name) } td { (d.id) }
                            td { @if let Some(cl) = &d.cluster { a href={"/clusters/" (cl)} { (cl) } } @else { "—" } }
                            @if v.is_operator() { td { code { (d.base_url) } } }
                            td { @if d.breaker_open { span class="badge hot" { (lang.t("breaker_open")) } } @else { (health_badge(lang, true)) } }
                            td class="num" { (d.latency_ms_ewma.map_or("—".into(), |l| num(l, 1))) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&v, Nav::Models, "/models", lang.t("models"), body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn row(at_ms: i64, model: &str, status: u16, latency_ms: u64) -> ledger::Entry<RequestDetail> {
        store::UsageRow {
            id: format!("{at_ms}"),
            at_ms,
            tenant: "t".into(),
            pillar: "gateway".into(),
            doc: ledger::UsageEvent {
                principal: Some("k".into()),
                subject: ledger::Subject { kind: "request".into(), id: format!("{at_ms}") },
                quantity: 15.0,
                unit: ledger::Unit::Tokens,
                price_cny_per_unit: 0.0,
                energy_kwh: 0.0,
                carbon_kg: 0.0,
                money_cny: 0.0,
                refs: std::collections::BTreeMap::from([("model".into(), model.to_string())]),
                detail: RequestDetail {
                    endpoint: "chat.completions".into(),
                    input_tokens: 10,
                    output_tokens: 5,
                    tokens_reported: true,
                    latency_ms,
                    status,
                    stream: false,
                    blocked: false,
                    refused: false,
                },
            },
        }
    }

    #[test]
    fn stats_count_server_errors_and_take_nearest_rank_percentiles() {
        let rows: Vec<_> = (1..=100)
            .map(|i| {
                row(
                    i * 1000,
                    "m",
                    if i % 10 == 0 {
                        502
                    } else if i % 10 == 1 {
                        404
                    } else {
                        200
                    },
                    i as u64,
                )
            })
            .collect();
        let s = &stats(&rows, 0, 2)["m"];
        assert_eq!((s.requests, s.errors), (100, 10), "404s are the client's, not errors");
        assert_eq!((s.quantile(0.5), s.quantile(0.95), s.quantile(0.99)), (Some(50), Some(95), Some(99)));
        assert_eq!(s.tokens_by_hour, vec![1500.0, 0.0]);
        assert_eq!(ModelStats::default().quantile(0.5), None);
        assert!(stats(&[row(0, "", 200, 1)], 0, 1).is_empty(), "requests without a model (listing models) are not a model's");
    }
}
