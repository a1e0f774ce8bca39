//! A cluster's page: its facts, node pools, GPUs in use over the last day, the tariff over the
//! day, the jobs on it now, and the network's queue.

use axum::extract::Path;
use axum::response::Response;
use jobs::compute_service::{Job, JobState};
use maud::html;

use crate::charts::{Kind, Series, render};
use crate::error::ConsoleError;
use crate::i18n::Lang;
use crate::layout::{Nav, empty_row, fmt_rfc3339, num, page, pct, state_badge, state_label, svg};
use crate::pages::network::{health_badge, period_label};
use crate::{C, Viewer};

/// Most recent jobs read to draw a cluster's utilisation.
pub const UTIL_JOBS: u32 = 2_000;
const HOUR_MS: i64 = 3_600_000;

/// Average GPUs in use in each of `n` buckets of `bucket_ms` from `from_ms`, given runs as
/// (start, end, GPUs); a run still going has `end = None` and counts until `now_ms`.
pub fn gpu_series(runs: &[(i64, Option<i64>, f64)], from_ms: i64, bucket_ms: i64, n: usize, now_ms: i64) -> Vec<f64> {
    let mut out = vec![0.0; n];
    for &(start, end, gpus) in runs {
        let end = end.unwrap_or(now_ms);
        for (i, o) in out.iter_mut().enumerate() {
            let (b0, b1) = (from_ms + i as i64 * bucket_ms, from_ms + (i as i64 + 1) * bucket_ms);
            let overlap = end.min(b1) - start.max(b0);
            if overlap > 0 {
                *o += gpus * overlap as f64 / bucket_ms as f64;
            }
        }
    }
    out
}

/// What a job holds: whole GPUs times the share of each.
pub fn job_gpus(j: &Job) -> f64 {
    j.placement.as_ref().map_or(0.0, |p| p.gpus.len() as f64 * f64::from(p.gpu_milli) / 1000.0)
}

pub async fn show(axum::extract::State(c): C, v: Viewer, Path(id): Path<String>) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    let svc = c.compute()?;
    let s = svc.cluster(&id).await?;
    let now = c.now_ms();
    let active = svc.active_jobs(v.scope(), 10_000).await;
    let here: Vec<&Job> = active.iter().filter(|j| j.placement.as_ref().is_some_and(|p| p.cluster == id)).collect();
    let waiting: Vec<&Job> = active.iter().filter(|j| j.state == JobState::Queued).collect();
    // Utilisation of the whole cluster is not tenant data, so it counts every tenant's runs.
    let recent: Vec<store::JobRow<Job>> = c.store.recent_jobs(None, None, UTIL_JOBS).await?;
    let runs: Vec<(i64, Option<i64>, f64)> = recent
        .iter()
        .filter(|r| r.doc.placement.as_ref().is_some_and(|p| p.cluster == id))
        .filter_map(|r| r.doc.run.as_ref().and_then(|run| run.started_ms.map(|st| (st, run.finished_ms, job_gpus(&r.doc)))))
        .collect();
    let from = (now / HOUR_MS - 23) * HOUR_MS;
    let series = gpu_series(&runs, from, HOUR_MS, 24, now);
    let labels: Vec<String> = (0..24).map(|i| crate::layout::fmt_ms(from + i * HOUR_MS)[11..16].to_string()).collect();
    let chart = render("util", lang.t("util_chart"), &labels, &[Series { name: lang.t("gpus_busy"), values: series }], Kind::Bars);
    let title = if lang == Lang::Zh { s.spec.name_zh.clone() } else { s.spec.name_en.clone() };
    let hours: Vec<char> = s.spec.tariff.hours.chars().collect();
    let body = html! {
        dl class="facts" {
            dt { (lang.t("hub")) } dd { a href={"/#hub-" (s.spec.hub)} { (s.spec.hub) } }
            dt { (lang.t("province")) } dd { (s.spec.province) }
            dt { (lang.t("engine")) } dd { (s.engine) " " (health_badge(lang, s.engine_healthy)) }
            dt { (lang.t("gpus_busy")) } dd { (num(s.gpus_used, 1)) " / " (num(s.gpus_total, 0)) " (" (pct(if s.gpus_total > 0.0 { s.gpus_used / s.gpus_total } else { 0.0 })) ")" }
            dt { (lang.t("cpu_cores")) } dd { (num(s.cpu_cores_used, 1)) " / " (num(s.cpu_cores_total, 0)) }
            dt { (lang.t("tariff_now")) } dd { (period_label(lang, s.tariff_period_now)) " · " (num(s.tariff_now_cny_per_kwh, 3)) " 元/kWh" }
            dt { (lang.t("pue")) } dd { (num(s.spec.pue, 2)) }
            dt { (lang.t("carbon")) } dd { (num(s.effective_carbon_kg_per_kwh, 3)) " kg/kWh" }
            dt { (lang.t("green_share")) } dd { (pct(s.spec.green_share)) }
        }
        h2 { (lang.t("utilisation")) }
        figure { (svg(chart)) }
        h2 id="tariff-heading" { (lang.t("tariff_day")) }
        div class="tariff" role="list" aria-labelledby="tariff-heading" {
            @for (h, p) in hours.iter().enumerate() {
                span role="listitem" class=(p.to_string()) title={(h) ":00 " (p)} { (h) }
            }
        }
        p class="muted" { "V = " (period_label(lang, "valley")) ", F = " (period_label(lang, "flat")) ", P = " (period_label(lang, "peak")) }
        h2 id="pools-heading" { (lang.t("node_pools")) }
        table aria-labelledby="pools-heading" {
            thead { tr { th scope="col" { (lang.t("pool")) } th scope="col" { (lang.t("gpu_model")) } th scope="col" class="num" { (lang.t("nodes")) }
                th scope="col" class="num" { (lang.t("gpus_per_node")) } th scope="col" class="num" { (lang.t("cpu_cores")) } th scope="col" class="num" { (lang.t("memory_gib")) } } }
            tbody {
                @for p in &s.spec.node_pools {
                    tr { td { (p.name) } td { (p.gpu_model.as_deref().unwrap_or("—")) } td class="num" { (p.nodes) } td class="num" { (p.gpus_per_node) }
                        td class="num" { (num(f64::from(p.cpu_milli) / 1000.0, 0)) } td class="num" { (num(f64::from(p.memory_mib) / 1024.0, 0)) } }
                }
            }
        }
        h2 id="here-heading" { (lang.t("jobs_running")) " (" (here.len()) ")" }
        (job_table(lang, "here-heading", &here))
        h2 id="waiting-heading" { (lang.t("queue_waiting")) " (" (waiting.len()) ")" }
        (job_table(lang, "waiting-heading", &waiting[..waiting.len().min(50)]))
    };
    Ok(page(&v, Nav::Network, &format!("/clusters/{id}"), &format!("{} · {title}", lang.t("cluster")), body))
}

/// One row of [`job_table`] as the live jobs list sends it: the same cells, already formatted,
/// for the page's script to put in as text.
pub fn job_row_json(lang: Lang, j: &Job) -> serde_json::Value {
    serde_json::json!({
        "id": j.id,
        "name": j.name.as_deref().unwrap_or(""),
        "tenant": j.tenant,
        "state": j.state.as_str(),
        "state_label": state_label(lang, j.state.as_str()),
        "cluster": j.placement.as_ref().map(|p| p.cluster.as_str()),
        "gpus": num(f64::from(j.spec.gpus) * f64::from(j.spec.gpu_milli) / 1000.0, 2),
        "submitted": fmt_rfc3339(&j.submitted_at),
    })
}

pub fn job_table(lang: Lang, labelled_by: &str, jobs: &[&Job]) -> maud::Markup {
    html! {
        table aria-labelledby=(labelled_by) {
            thead { tr { th scope="col" { (lang.t("id")) } th scope="col" { (lang.t("name")) } th scope="col" { (lang.t("tenant")) }
                th scope="col" { (lang.t("state")) } th scope="col" { (lang.t("cluster")) } th scope="col" class="num" { (lang.t("gpus")) } th scope="col" { (lang.t("submitted")) } } }
            tbody {
                @if jobs.is_empty() { (empty_row(lang, 7)) }
                @for j in jobs {
                    tr {
                        td { a href={"/jobs/" (j.id)} { code { (j.id) } } }
                        td { (j.name.as_deref().unwrap_or("")) }
                        td { (j.tenant) }
                        td { (state_badge(lang, j.state.as_str())) }
                        td { @if let Some(p) = &j.placement { a href={"/clusters/" (p.cluster)} { (p.cluster) } } @else { "—" } }
                        td class="num" { (num(f64::from(j.spec.gpus) * f64::from(j.spec.gpu_milli) / 1000.0, 2)) }
                        td { (fmt_rfc3339(&j.submitted_at)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn gpu_series_averages_each_bucket_and_counts_open_runs_until_now() {
        // Two GPUs for the whole first bucket and half the second; one GPU from the middle of
        // the second bucket, still running at the end of the third.
        let runs = [(0, Some(150), 2.0), (150, None, 1.0)];
        let s = gpu_series(&runs, 0, 100, 4, 300);
        assert_eq!(s, vec![2.0, 1.5, 1.0, 0.0]);
        assert_eq!(gpu_series(&[], 0, 100, 3, 300), vec![0.0; 3]);
    }
}
