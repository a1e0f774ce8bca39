//! The network overview at `/`: hubs and clusters on a map of China, with capacity, GPUs busy
//! and free, the tariff period now, carbon intensity and health; and the links between hubs.

use std::collections::BTreeMap;

use axum::response::Response;
use jobs::compute_service::{ClusterStatus, JobState};
use maud::html;

use crate::error::ConsoleError;
use crate::i18n::Lang;
use crate::layout::{Nav, num, page, pct, svg};
use crate::map::{MapCluster, MapHub, MapLink, render_svg};
use crate::{C, Viewer};

pub fn period_label(lang: Lang, period: &str) -> &'static str {
    match (lang, period) {
        (Lang::Zh, "deep_valley") => "深谷",
        (Lang::Zh, "valley") => "谷",
        (Lang::Zh, "flat") => "平",
        (Lang::Zh, "peak") => "峰",
        (Lang::Zh, "sharp") => "尖峰",
        (_, "deep_valley") => "deep valley",
        (_, "valley") => "valley",
        (_, "flat") => "flat",
        (_, "peak") => "peak",
        (_, "sharp") => "sharp",
        _ => "?",
    }
}

pub fn health_badge(lang: Lang, healthy: bool) -> maud::Markup {
    html! {
        @if healthy { span class="badge ok" { (lang.t("healthy")) } } @else { span class="badge hot" { (lang.t("unhealthy")) } }
    }
}

/// The cells of a cluster's row that change while the page is open, formatted once for the
/// rendered table and for its live stream alike: GPUs busy, GPUs free, the tariff now, and
/// whether its engine answers.
pub struct LiveCells {
    pub busy: String,
    pub free: String,
    pub tariff: String,
    pub healthy: bool,
}

pub fn live_cells(lang: Lang, s: &ClusterStatus) -> LiveCells {
    let share = if s.gpus_total > 0.0 { s.gpus_used / s.gpus_total } else { 0.0 };
    LiveCells {
        busy: format!("{} / {} ({})", num(s.gpus_used, 1), num(s.gpus_total, 0), pct(share)),
        free: num(s.gpus_total - s.gpus_used, 1),
        tariff: format!("{} · {} 元/kWh", period_label(lang, s.tariff_period_now), num(s.tariff_now_cny_per_kwh, 3)),
        healthy: s.engine_healthy,
    }
}

/// Jobs queued, and jobs placed, submitted or running, as the overview's cards count them.
pub fn job_counts(counts: &BTreeMap<JobState, usize>) -> (usize, usize) {
    let queued = counts.get(&JobState::Queued).copied().unwrap_or(0);
    let running = [JobState::Placed, JobState::Submitted, JobState::Running].iter().filter_map(|s| counts.get(s)).sum();
    (queued, running)
}

pub async fn overview(axum::extract::State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    let Some(svc) = &c.compute else {
        return Ok(page(&v, Nav::Network, "/", lang.t("network"), html! { p class="notice" { (lang.t("compute_elsewhere")) } }));
    };
    let net = svc.network().await;
    let clusters: Vec<ClusterStatus> = svc.clusters().await;
    let (queued, running) = job_counts(&svc.active_counts().await);
    let name = |zh: &str, en: &str| if lang == Lang::Zh { zh.to_string() } else { en.to_string() };
    let hub_name: BTreeMap<&str, String> = net.spec.hubs.iter().map(|h| (h.id.as_str(), name(&h.name_zh, &h.name_en))).collect();
    let hub_hrefs: Vec<String> = net.spec.hubs.iter().map(|h| format!("#hub-{}", h.id)).collect();
    let cluster_hrefs: Vec<String> = clusters.iter().map(|c| format!("/clusters/{}", c.spec.id)).collect();
    let cluster_labels: Vec<String> = clusters.iter().map(|c| name(&c.spec.name_zh, &c.spec.name_en)).collect();
    // The model replicas the gateway routes to, by cluster, as the map's badges say them.
    let by_cluster = c.gateway.placed_by_cluster();
    let serving: Vec<String> = clusters
        .iter()
        .map(|c| {
            by_cluster
                .get(&c.spec.id)
                .map(|m| m.iter().map(|(model, n)| format!("{model} ×{n}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        })
        .collect();
    let map_hubs: Vec<MapHub> = net
        .spec
        .hubs
        .iter()
        .zip(&hub_hrefs)
        .map(|(h, href)| MapHub { id: &h.id, label: hub_name.get(h.id.as_str()).map_or("", String::as_str), lon: h.lon, lat: h.lat, href })
        .collect();
    let map_clusters: Vec<MapCluster> = clusters
        .iter()
        .zip(cluster_hrefs.iter().zip(&cluster_labels))
        .zip(&serving)
        .map(|((s, (href, label)), serving)| MapCluster {
            id: &s.spec.id,
            label,
            lon: s.spec.lon,
            lat: s.spec.lat,
            href,
            busy: if s.gpus_total > 0.0 { s.gpus_used / s.gpus_total } else { 0.0 },
            healthy: s.engine_healthy,
            gpus_total: s.gpus_total,
            serving,
        })
        .collect();
    let links: Vec<MapLink> = net.spec.links.iter().map(|l| MapLink { a: &l.a, b: &l.b, latency_ms: l.latency_ms }).collect();
    let title = lang.t("map_title");
    let map = render_svg(lang, title, lang.t("map_caption"), &map_hubs, &map_clusters, &links);
    let gpus_total: f64 = clusters.iter().map(|c| c.gpus_total).sum();
    let gpus_used: f64 = clusters.iter().map(|c| c.gpus_used).sum();
    let body = html! {
        ul class="cards" aria-label=(lang.t("capacity")) data-live-network="/network/live" {
            li { span class="v" { (net.spec.hubs.len()) } span class="k" { (lang.t("hubs")) } }
            li { span class="v" { (clusters.len()) } span class="k" { (lang.t("clusters")) } }
            li { span class="v" { (num(gpus_total, 0)) } span class="k" { (lang.t("gpus_total")) } }
            li { span class="v" id="gpus-busy" { (num(gpus_used, 1)) } span class="k" { (lang.t("gpus_busy")) } }
            li { span class="v" id="jobs-queued" { (queued) } span class="k" { (lang.t("jobs_queued")) } }
            li { span class="v" id="jobs-running" { (running) } span class="k" { (lang.t("jobs_running")) } }
        }
        figure {
            (svg(map))
            figcaption { (lang.t("map_note")) }
        }
        h2 id="hubs-heading" { (lang.t("hubs")) " · " (lang.t("clusters")) }
        table aria-labelledby="hubs-heading" {
            thead { tr {
                th scope="col" { (lang.t("hub")) } th scope="col" { (lang.t("cluster")) }
                th scope="col" class="num" { (lang.t("gpus_busy")) } th scope="col" class="num" { (lang.t("gpus_free")) }
                th scope="col" { (lang.t("tariff_now")) } th scope="col" class="num" { (lang.t("carbon")) " (kg/kWh)" }
                th scope="col" { (lang.t("health")) }
            } }
            tbody {
                @for h in &net.spec.hubs {
                    @for (i, s) in clusters.iter().filter(|s| s.spec.hub == h.id).enumerate() {
                        @let cells = live_cells(lang, s);
                        tr data-cluster=(s.spec.id) {
                            @if i == 0 { th scope="row" id={"hub-" (h.id)} { (hub_name.get(h.id.as_str()).map_or("", String::as_str)) } } @else { td {} }
                            td { a href={"/clusters/" (s.spec.id)} { (name(&s.spec.name_zh, &s.spec.name_en)) } }
                            td class="num" data-cell="busy" { (cells.busy) }
                            td class="num" data-cell="free" { (cells.free) }
                            td data-cell="tariff" { (cells.tariff) }
                            td class="num" { (num(s.effective_carbon_kg_per_kwh, 3)) }
                            td data-cell="health" { (health_badge(lang, cells.healthy)) " " span class="muted" { (s.engine) } }
                        }
                    }
                }
            }
        }
        details {
            summary { h2 class="inline" style="display:inline" { (lang.t("links")) " (" (net.spec.links.len()) ")" } }
            table {
                thead { tr { th scope="col" { (lang.t("hub")) " A" } th scope="col" { (lang.t("hub")) " B" }
                    th scope="col" class="num" { (lang.t("latency")) " (ms)" } th scope="col" class="num" { (lang.t("bandwidth")) " (Gbps)" } } }
                tbody {
                    @for l in &net.spec.links {
                        tr {
                            td { (hub_name.get(l.a.as_str()).map_or(l.a.as_str(), String::as_str)) }
                            td { (hub_name.get(l.b.as_str()).map_or(l.b.as_str(), String::as_str)) }
                            td class="num" { (num(l.latency_ms, 1)) }
                            td class="num" { (num(l.bandwidth_gbps, 0)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&v, Nav::Network, "/", lang.t("network"), body))
}
