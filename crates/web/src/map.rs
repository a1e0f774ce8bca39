//! Server-side SVG map of China for the operator console.
//!
//! [`render_svg`] draws a schematic map of China with the compute hubs, their data-centre clusters and the
//! network links between hubs, and returns it as one inline `<svg>` element. The page needs no script to show it:
//! every hub and cluster is an SVG `<a href>` with a `<title>` tooltip, and all colours come from CSS classes.
//!
//! Projection: Albers equal-area conic on a sphere with standard parallels 25°N and 47°N, central meridian 105°E
//! and origin latitude 0°, the usual setting for maps of China. The projected bounding box of the outline is fitted
//! into the `0 0 800 680` viewBox with about 20 px of padding, and hubs and clusters use the same transform.
//!
//! Data: `data/china-outline.json` holds 4 closed rings of `[lon, lat]` (mainland with Hong Kong and Macao
//! dissolved in, Hainan, Chongming and Taiwan, 592 points). It was taken from Natural Earth 4.1.0 Admin 0 1:50m
//! (public domain) through npm `world-atlas@2.0.2` (ISC, © Michael Bostock) and simplified with Douglas-Peucker;
//! `data/LICENSE-world-atlas.txt` carries the notice. Taiwan is a separate Natural Earth feature (ISO 158) and is
//! drawn with the same fill as the rest.
//!
//! Boundary caveat: the outline follows Natural Earth's default de facto lines, not the official PRC (GS)
//! boundary. It has no South China Sea islands, leaves Arunachal Pradesh (藏南) out and includes Aksai Chin. The
//! map is therefore only a schematic and must be captioned as such (for example "示意图 / schematic"); the real
//! information should also be given as text, such as a table of hubs.

use std::fmt::{self, Display, Write as _};
use std::sync::LazyLock;

use serde::Deserialize;

/// A national compute hub, drawn as a labelled ring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapHub<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub lon: f64,
    pub lat: f64,
    pub href: &'a str,
}

/// A data-centre cluster, drawn as a circle whose area grows with its GPU count and whose colour shows how busy it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapCluster<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub lon: f64,
    pub lat: f64,
    pub href: &'a str,
    /// 0..=1 share of GPUs busy
    pub busy: f64,
    pub healthy: bool,
    pub gpus_total: f64,
    /// The models whose replicas serve from here, as shown ("qwen ×2, smol ×1"); empty for none.
    /// A cluster that serves one gets a badge beside its circle.
    pub serving: &'a str,
}

/// A network link between two hubs, given by their ids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapLink<'a> {
    pub a: &'a str,
    pub b: &'a str,
    pub latency_ms: f64,
}

/// The outline, embedded so that the binary needs no data files at run time.
const OUTLINE_JSON: &str = include_str!("../data/china-outline.json");

const VIEW_W: f64 = 800.0;
const VIEW_H: f64 = 680.0;
const PAD: f64 = 20.0;

/// Projected bounding box of the outline (x_min, x_max, y_min, y_max), from the research notes. It is only used
/// when the embedded outline cannot be read, so that markers still land where they would on the full map.
const FALLBACK_BBOX: (f64, f64, f64, f64) = (-0.4117, 0.3452, 0.2970, 0.9317);

/// Clusters closer than this (in viewBox pixels) are treated as one spot and spread apart.
const CLUSTER_MERGE_PX: f64 = 6.0;
const CLUSTER_R_MIN: f64 = 5.0;
const CLUSTER_R_MAX: f64 = 16.0;
/// A hub ring with no cluster at its centre gets this radius.
const HUB_R_MIN: f64 = 7.0;
/// The gap between a hub ring and the clusters it encloses.
const HUB_RING_GAP: f64 = 3.0;
/// The hub label font size in viewBox pixels; the label layout estimates text widths from it.
const LABEL_FONT: f64 = 13.0;
/// The gap between a hub ring and its label.
const LABEL_GAP: f64 = 4.0;

const CAPTION_X: f64 = 12.0;
const CAPTION_Y: f64 = 668.0;

/// Default look for the map's classes. Each selector sits inside `:where()` so it has zero specificity: an inline
/// `<style>` in an HTML page applies to the whole document and would otherwise beat the console stylesheet, which
/// comes earlier. With zero specificity any rule of the console stylesheet wins, and the map still renders alone.
const STYLE: &str = concat!(
    ":where(.china-map){font-family:system-ui,\"Noto Sans CJK SC\",\"WenQuanYi Zen Hei\",\"Microsoft YaHei\",\"PingFang SC\",sans-serif}",
    ":where(.china-map .land){fill:#e6edf4;stroke:#8397ad;stroke-width:1;stroke-linejoin:round}",
    ":where(.china-map .link){stroke:#8a949e;stroke-width:1;stroke-opacity:.6}",
    ":where(.china-map .hub){fill:none;stroke:#1f3a5f;stroke-width:2}",
    ":where(.china-map .hub-label){font-size:13px;font-weight:600;fill:#1b2733;",
    "paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}",
    ":where(.china-map .cluster){stroke:#fff;stroke-width:1.5}",
    ":where(.china-map .c-ok){fill:#2e9e5b}",
    ":where(.china-map .c-warm){fill:#e0a000}",
    ":where(.china-map .c-hot){fill:#d64535}",
    ":where(.china-map .c-down){stroke:#222;stroke-width:2;stroke-dasharray:3 2;fill-opacity:.5}",
    ":where(.china-map .serving){fill:#6d28d9;stroke:#fff;stroke-width:1}",
    ":where(.china-map .caption){font-size:12px;fill:#5b6775}",
    ":where(.china-map a:hover .cluster,.china-map a:focus .cluster){stroke:#000}",
    ":where(.china-map a:hover .hub,.china-map a:focus .hub){stroke:#000;stroke-width:3}",
);

/// The outline file; fields other than the rings (source, meta, bbox) are documentation and are not needed here.
#[derive(Deserialize)]
struct OutlineFile {
    rings: Vec<Vec<[f64; 2]>>,
}

/// The projected outline and the transform that fits it into the viewBox, built once per process.
struct Geometry {
    /// The SVG path data of all rings, or empty when the outline could not be read.
    outline_d: String,
    fit: Fit,
}

static GEOMETRY: LazyLock<Geometry> = LazyLock::new(build_geometry);

/// Renders the map as an inline <svg> element (no XML prolog), width 100% via viewBox="0 0 800 680".
///
/// `title` becomes the accessible name (`<svg aria-labelledby="map-title">` with
/// `<title id="map-title">`), so the element id `map-title` must be unique on the page. `caption` is written as
/// small text in the bottom-left corner, for example "示意图 / schematic". Each hub and cluster is wrapped in an
/// `<a href>` (SVG 2 `href`, not `xlink:href`) with a `<title>` tooltip; links whose hub ids are unknown are skipped.
/// An href with a scheme other than http, https or mailto is replaced by `#`.
#[must_use]
pub fn render_svg(title: &str, caption: &str, hubs: &[MapHub], clusters: &[MapCluster], links: &[MapLink]) -> String {
    let geometry = &*GEOMETRY;
    let layout = layout(&geometry.fit, hubs, clusters);
    let mut out = String::with_capacity(geometry.outline_d.len() + 4096);

    push(
        &mut out,
        format_args!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"china-map\" viewBox=\"0 0 {} {}\" \
             aria-labelledby=\"map-title\"><title id=\"map-title\">{}</title><style>{STYLE}</style>",
            N(VIEW_W),
            N(VIEW_H),
            Esc(title),
        ),
    );
    if !geometry.outline_d.is_empty() {
        push(&mut out, format_args!("<path class=\"land\" d=\"{}\"/>", geometry.outline_d));
    }

    out.push_str("<g class=\"links\">");
    for link in links {
        let ends = (layout.hub_index(hubs, link.a), layout.hub_index(hubs, link.b));
        let (Some(ia), Some(ib)) = ends else { continue };
        if ia == ib {
            continue;
        }
        let (a, b) = (&layout.hubs[ia], &layout.hubs[ib]);
        push(
            &mut out,
            format_args!(
                "<line class=\"link\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"><title>{} — {}: {:.1} ms</title></line>",
                N(a.x),
                N(a.y),
                N(b.x),
                N(b.y),
                Esc(hubs[ia].label),
                Esc(hubs[ib].label),
                link.latency_ms,
            ),
        );
    }
    out.push_str("</g>");

    // Clusters come before hubs so that the hub rings and labels stay on top; a ring has no fill, so the
    // clusters inside it can still be hovered and clicked.
    out.push_str("<g class=\"clusters\">");
    for (cluster, mark) in clusters.iter().zip(&layout.clusters) {
        let busy = if cluster.busy.is_finite() { cluster.busy.clamp(0.0, 1.0) } else { 0.0 };
        let heat = if busy < 0.5 {
            "c-ok"
        } else if busy < 0.85 {
            "c-warm"
        } else {
            "c-hot"
        };
        let (down_class, down_note) = if cluster.healthy { ("", "") } else { (" c-down", " — unhealthy") };
        let serving = if cluster.serving.is_empty() { String::new() } else { format!("; serving {}", cluster.serving) };
        push(
            &mut out,
            format_args!(
                "<a href=\"{}\"><title>{}: {:.0}% GPUs busy{down_note}{}</title>\
                 <circle class=\"cluster {heat}{down_class}\" cx=\"{}\" cy=\"{}\" r=\"{}\"/>",
                Esc(safe_href(cluster.href)),
                Esc(cluster.label),
                busy * 100.0,
                Esc(&serving),
                N(mark.x),
                N(mark.y),
                N(mark.r),
            ),
        );
        if !cluster.serving.is_empty() {
            // A small diamond on the circle's upper right: models are served from here.
            let (x, y) = (mark.x + mark.r * 0.7, mark.y - mark.r * 0.7);
            push(&mut out, format_args!("<path class=\"serving\" d=\"M{} {}l4 4l-4 4l-4 -4z\"/>", N(x), N(y - 4.0)));
        }
        out.push_str("</a>");
    }
    out.push_str("</g>");

    out.push_str("<g class=\"hubs\">");
    for (hub, mark) in hubs.iter().zip(&layout.hubs) {
        let anchor = match mark.label.side {
            Side::Right => "start",
            Side::Left => "end",
            Side::Above | Side::Below => "middle",
        };
        push(
            &mut out,
            format_args!(
                "<a href=\"{}\"><title>{}</title><circle class=\"hub\" cx=\"{}\" cy=\"{}\" r=\"{}\"/>\
                 <text class=\"hub-label\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text></a>",
                Esc(safe_href(hub.href)),
                Esc(hub.label),
                N(mark.x),
                N(mark.y),
                N(mark.r),
                N(mark.label.x),
                N(mark.label.y),
                Esc(hub.label),
            ),
        );
    }
    out.push_str("</g>");

    push(&mut out, format_args!("<text class=\"caption\" x=\"{}\" y=\"{}\">{}</text></svg>", N(CAPTION_X), N(CAPTION_Y), Esc(caption)));
    out
}

/// Appends formatted text. Writing into a `String` cannot fail, so the `fmt::Result` carries no information.
fn push(out: &mut String, args: fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
}

/// Projects a point with the Albers equal-area conic (sphere, φ1 = 25°, φ2 = 47°, λ0 = 105°E, φ0 = 0) and returns
/// (x, y) in radians of the unit sphere with y growing to the north.
fn albers(lon: f64, lat: f64) -> (f64, f64) {
    const PHI1: f64 = 25.0;
    const PHI2: f64 = 47.0;
    const LON0: f64 = 105.0;
    const LAT0: f64 = 0.0;
    let (s1, s2) = (PHI1.to_radians().sin(), PHI2.to_radians().sin());
    let n = (s1 + s2) / 2.0;
    let c = PHI1.to_radians().cos().powi(2) + 2.0 * n * s1;
    let rho0 = (c - 2.0 * n * LAT0.to_radians().sin()).sqrt() / n;
    // The radicand is positive for every latitude with these parallels; the clamp only guards against rounding.
    let rho = (c - 2.0 * n * lat.to_radians().sin()).max(0.0).sqrt() / n;
    let theta = n * (lon - LON0).to_radians();
    (rho * theta.sin(), rho0 - rho * theta.cos())
}

/// The affine map from projected coordinates to viewBox pixels: uniform scale, y flipped, content centred.
#[derive(Debug, Clone, Copy)]
struct Fit {
    x_min: f64,
    y_max: f64,
    scale: f64,
    off_x: f64,
    off_y: f64,
}

impl Fit {
    fn from_bbox((x_min, x_max, y_min, y_max): (f64, f64, f64, f64)) -> Fit {
        let (w, h) = (x_max - x_min, y_max - y_min);
        let scale = ((VIEW_W - 2.0 * PAD) / w).min((VIEW_H - 2.0 * PAD) / h);
        Fit { x_min, y_max, scale, off_x: (VIEW_W - w * scale) / 2.0, off_y: (VIEW_H - h * scale) / 2.0 }
    }

    fn project(&self, lon: f64, lat: f64) -> (f64, f64) {
        let (x, y) = albers(lon, lat);
        (self.off_x + (x - self.x_min) * self.scale, self.off_y + (self.y_max - y) * self.scale)
    }

    /// Projects a marker position and keeps it inside the viewBox. A hub or cluster outside China (or with
    /// non-finite coordinates) then still shows up at the edge instead of vanishing or breaking the SVG.
    fn place(&self, lon: f64, lat: f64) -> (f64, f64) {
        let (x, y) = self.project(lon, lat);
        let x = if x.is_finite() { x.clamp(0.0, VIEW_W) } else { VIEW_W / 2.0 };
        let y = if y.is_finite() { y.clamp(0.0, VIEW_H) } else { VIEW_H / 2.0 };
        (x, y)
    }
}

fn parse_outline() -> Option<Vec<Vec<[f64; 2]>>> {
    let file: OutlineFile = serde_json::from_str(OUTLINE_JSON).ok()?;
    let rings: Vec<Vec<[f64; 2]>> =
        file.rings.into_iter().filter(|ring| ring.len() >= 4 && ring.iter().flatten().all(|v| v.is_finite())).collect();
    if rings.is_empty() { None } else { Some(rings) }
}

fn build_geometry() -> Geometry {
    let fallback = || Geometry { outline_d: String::new(), fit: Fit::from_bbox(FALLBACK_BBOX) };
    let Some(rings) = parse_outline() else { return fallback() };
    let projected: Vec<Vec<(f64, f64)>> = rings.iter().map(|ring| ring.iter().map(|&[lon, lat]| albers(lon, lat)).collect()).collect();
    let mut bbox = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in projected.iter().flatten() {
        bbox = (bbox.0.min(x), bbox.1.max(x), bbox.2.min(y), bbox.3.max(y));
    }
    if !(bbox.1 - bbox.0 > 0.0 && bbox.3 - bbox.2 > 0.0) {
        return fallback();
    }
    let fit = Fit::from_bbox(bbox);
    let mut d = String::with_capacity(8192);
    for ring in &projected {
        // The rings are closed (first point == last point); `Z` closes the path, so the last point is dropped.
        let open = ring.split_last().map_or(&ring[..], |(_, rest)| rest);
        let mut last: Option<(String, String)> = None;
        for (i, &(x, y)) in open.iter().enumerate() {
            let px = (N(fit.off_x + (x - fit.x_min) * fit.scale).to_string(), N(fit.off_y + (fit.y_max - y) * fit.scale).to_string());
            // Neighbouring points can round to the same pixel; repeating them would only make the path longer.
            if last.as_ref() == Some(&px) {
                continue;
            }
            d.push_str(if i == 0 { "M" } else { " " });
            push(&mut d, format_args!("{},{}", px.0, px.1));
            last = Some(px);
        }
        d.push('Z');
    }
    Geometry { outline_d: d, fit }
}

/// Where every marker and label goes, in viewBox pixels. The vectors are parallel to the input slices.
struct Layout {
    hubs: Vec<HubMark>,
    clusters: Vec<ClusterMark>,
}

impl Layout {
    fn hub_index(&self, hubs: &[MapHub], id: &str) -> Option<usize> {
        hubs.iter().position(|h| h.id == id).filter(|&i| i < self.hubs.len())
    }
}

struct HubMark {
    x: f64,
    y: f64,
    r: f64,
    label: LabelMark,
}

struct ClusterMark {
    x: f64,
    y: f64,
    r: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Right,
    Left,
    Above,
    Below,
}

/// A placed label: its anchor point (the text baseline) and the box it is estimated to cover.
struct LabelMark {
    x: f64,
    y: f64,
    side: Side,
    rect: Rect,
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    fn intersects(&self, other: &Rect) -> bool {
        self.x0 < other.x1 && other.x0 < self.x1 && self.y0 < other.y1 && other.y0 < self.y1
    }

    fn hits_circle(&self, cx: f64, cy: f64, r: f64) -> bool {
        let dx = cx - cx.clamp(self.x0, self.x1);
        let dy = cy - cy.clamp(self.y0, self.y1);
        dx * dx + dy * dy < r * r
    }

    fn inside_view(&self) -> bool {
        self.x0 >= 2.0 && self.y0 >= 2.0 && self.x1 <= VIEW_W - 2.0 && self.y1 <= VIEW_H - 2.0
    }
}

fn layout(fit: &Fit, hubs: &[MapHub], clusters: &[MapCluster]) -> Layout {
    let cluster_marks = layout_clusters(fit, clusters);

    // A hub ring encloses the clusters that sit at the hub's own position (the usual case: a hub is placed at its
    // first cluster), so the ring reads as "this hub contains these clusters" and never cuts through a circle.
    let rings: Vec<(f64, f64, f64)> = hubs
        .iter()
        .map(|hub| {
            let (x, y) = fit.place(hub.lon, hub.lat);
            let r = clusters
                .iter()
                .zip(&cluster_marks)
                .filter(|(c, _)| {
                    let (cx, cy) = fit.place(c.lon, c.lat);
                    (cx - x).hypot(cy - y) <= CLUSTER_MERGE_PX
                })
                .map(|(_, m)| (m.x - x).hypot(m.y - y) + m.r + HUB_RING_GAP)
                .fold(HUB_R_MIN, f64::max);
            (x, y, r)
        })
        .collect();

    let caption_box = Rect { x0: 0.0, y0: CAPTION_Y - 14.0, x1: VIEW_W / 2.0, y1: VIEW_H };
    let mut placed: Vec<Rect> = vec![caption_box];
    let mut hub_marks = Vec::with_capacity(hubs.len());
    for (i, (hub, &(x, y, r))) in hubs.iter().zip(&rings).enumerate() {
        let label = place_label(hub.label, i, x, y, r, &rings, &cluster_marks, &placed);
        placed.push(label.rect);
        hub_marks.push(HubMark { x, y, r, label });
    }
    Layout { hubs: hub_marks, clusters: cluster_marks }
}

/// Picks the label side for one hub. The label goes to the right unless that box would cover another hub's ring,
/// a cluster, an earlier label or the caption, or leave the viewBox; then left, above and below are tried in that
/// order, and if every side collides the one with the fewest collisions wins. Hubs are handled in input order, so
/// the result is deterministic; for Zhangjiakou and Horinger this puts the western hub's label on its left.
#[allow(clippy::too_many_arguments, reason = "a private helper; grouping the arguments into a struct would add nothing")]
fn place_label(
    text: &str,
    own: usize,
    x: f64,
    y: f64,
    r: f64,
    rings: &[(f64, f64, f64)],
    clusters: &[ClusterMark],
    placed: &[Rect],
) -> LabelMark {
    let width = label_width(text);
    // The box spans from the cap height above the baseline to the descender below it.
    let (ascent, descent) = (0.8 * LABEL_FONT, 0.25 * LABEL_FONT);
    let candidate = |side: Side| {
        let (lx, ly, x0) = match side {
            Side::Right => (x + r + LABEL_GAP, y + 0.35 * LABEL_FONT, x + r + LABEL_GAP),
            Side::Left => (x - r - LABEL_GAP, y + 0.35 * LABEL_FONT, x - r - LABEL_GAP - width),
            Side::Above => (x, y - r - LABEL_GAP - descent, x - width / 2.0),
            Side::Below => (x, y + r + LABEL_GAP + ascent, x - width / 2.0),
        };
        LabelMark { x: lx, y: ly, side, rect: Rect { x0, y0: ly - ascent, x1: x0 + width, y1: ly + descent } }
    };
    let collisions = |rect: &Rect| {
        let rings_hit = rings.iter().enumerate().filter(|&(j, &(cx, cy, cr))| j != own && rect.hits_circle(cx, cy, cr)).count();
        let clusters_hit = clusters.iter().filter(|c| rect.hits_circle(c.x, c.y, c.r)).count();
        let labels_hit = placed.iter().filter(|p| p.intersects(rect)).count();
        // Leaving the viewBox clips the text, which is worse than overlapping a marker.
        rings_hit + clusters_hit + labels_hit + if rect.inside_view() { 0 } else { 10 }
    };
    let mut best: Option<(usize, LabelMark)> = None;
    for side in [Side::Right, Side::Left, Side::Above, Side::Below] {
        let mark = candidate(side);
        let cost = collisions(&mark.rect);
        if cost == 0 {
            return mark;
        }
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, mark));
        }
    }
    best.map_or_else(|| candidate(Side::Right), |(_, mark)| mark)
}

/// Estimates the rendered width of a label: CJK and other wide characters take a full em, Latin text about 0.6 em.
fn label_width(text: &str) -> f64 {
    text.chars().map(|c| if u32::from(c) >= 0x2E80 { 1.0 } else { 0.6 }).sum::<f64>() * LABEL_FONT
}

/// Places the cluster circles. The radius grows with the square root of the GPU count, so the area is proportional
/// to it, relative to the largest cluster on the map and clamped to 5..=16 px. Clusters within 6 px of each other
/// would hide one another, so each such group is spread evenly on a small circle around its centre, ordered by id.
fn layout_clusters(fit: &Fit, clusters: &[MapCluster]) -> Vec<ClusterMark> {
    let gpus = |c: &MapCluster| if c.gpus_total.is_finite() { c.gpus_total.max(0.0) } else { 0.0 };
    let max_gpus = clusters.iter().map(gpus).fold(0.0, f64::max);
    let mut marks: Vec<ClusterMark> = clusters
        .iter()
        .map(|c| {
            let (x, y) = fit.place(c.lon, c.lat);
            let r = if max_gpus > 0.0 { CLUSTER_R_MAX * (gpus(c) / max_gpus).sqrt() } else { CLUSTER_R_MIN };
            ClusterMark { x, y, r: r.clamp(CLUSTER_R_MIN, CLUSTER_R_MAX) }
        })
        .collect();

    // Union-find over the "closer than 6 px" relation, so that chains of near neighbours form one group.
    let mut parent: Vec<usize> = (0..marks.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..marks.len() {
        for j in i + 1..marks.len() {
            if (marks[i].x - marks[j].x).hypot(marks[i].y - marks[j].y) <= CLUSTER_MERGE_PX {
                let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                parent[ri.max(rj)] = ri.min(rj);
            }
        }
    }
    for group_root in 0..marks.len() {
        let mut members: Vec<usize> = (0..marks.len()).filter(|&i| root(&mut parent, i) == group_root).collect();
        if members.len() < 2 {
            continue;
        }
        members.sort_by(|&a, &b| clusters[a].id.cmp(clusters[b].id).then(a.cmp(&b)));
        let k = members.len() as f64;
        let cx = members.iter().map(|&i| marks[i].x).sum::<f64>() / k;
        let cy = members.iter().map(|&i| marks[i].y).sum::<f64>() / k;
        let r_max = members.iter().map(|&i| marks[i].r).fold(0.0, f64::max);
        // Neighbours on the circle are 2·R·sin(π/k) apart; this R lets the largest circles overlap by about a tenth.
        let spread = 0.9 * r_max / (std::f64::consts::PI / k).sin();
        for (n, &i) in members.iter().enumerate() {
            // The first member goes to the left and the rest follow clockwise (SVG y grows downwards).
            let angle = std::f64::consts::PI + std::f64::consts::TAU * n as f64 / k;
            marks[i].x = (cx + spread * angle.cos()).clamp(0.0, VIEW_W);
            marks[i].y = (cy + spread * angle.sin()).clamp(0.0, VIEW_H);
        }
    }
    marks
}

/// Returns the href unchanged unless it names a scheme other than http, https or mailto. The map never runs
/// scripts, so a `javascript:` or `data:` link could only come from a bug upstream; it is neutralised to `#`.
fn safe_href(href: &str) -> &str {
    let trimmed = href.trim_start();
    let scheme_end = trimmed.find([':', '/', '?', '#']);
    match scheme_end {
        Some(end) if trimmed[end..].starts_with(':') => {
            let scheme = trimmed[..end].to_ascii_lowercase();
            if matches!(scheme.as_str(), "http" | "https" | "mailto") { href } else { "#" }
        }
        _ => href,
    }
}

/// Formats a coordinate rounded to one decimal, without a trailing ".0" and without "-0", to keep the SVG small.
struct N(f64);

impl Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = (self.0 * 10.0).round() / 10.0;
        let v = if v == 0.0 { 0.0 } else { v };
        if v.fract() == 0.0 { write!(f, "{v:.0}") } else { write!(f, "{v:.1}") }
    }
}

/// Escapes text for SVG element content and double-quoted attributes. Control characters that XML 1.0 forbids are
/// dropped, so that the output also stays a well-formed standalone SVG file.
struct Esc<'a>(&'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                '\t' | '\n' | '\r' => f.write_char(c)?,
                c if c.is_control() => {}
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    /// The 8 national hubs, at the coordinates of `crates/compute/data/china-hubs.toml`.
    const HUBS: [MapHub<'static>; 8] = [
        MapHub { id: "jingjinji", label: "京津冀", lon: 114.88, lat: 40.77, href: "/hubs/jingjinji" },
        MapHub { id: "changsanjiao", label: "长三角", lon: 121.12, lat: 31.15, href: "/hubs/changsanjiao" },
        MapHub { id: "yuegangao", label: "粤港澳大湾区", lon: 113.60, lat: 24.81, href: "/hubs/yuegangao" },
        MapHub { id: "chengyu", label: "成渝", lon: 104.07, lat: 30.40, href: "/hubs/chengyu" },
        MapHub { id: "neimenggu", label: "内蒙古", lon: 111.82, lat: 40.38, href: "/hubs/neimenggu" },
        MapHub { id: "guizhou", label: "贵州", lon: 106.40, lat: 26.40, href: "/hubs/guizhou" },
        MapHub { id: "gansu", label: "甘肃", lon: 107.64, lat: 35.73, href: "/hubs/gansu" },
        MapHub { id: "ningxia", label: "宁夏", lon: 105.19, lat: 37.51, href: "/hubs/ningxia" },
    ];

    fn cluster<'a>(id: &'a str, lon: f64, lat: f64, busy: f64, healthy: bool, gpus_total: f64) -> MapCluster<'a> {
        MapCluster { id, label: id, lon, lat, href: id, busy, healthy, gpus_total, serving: "" }
    }

    #[test]
    fn outline_has_four_rings_and_592_points() {
        let rings = parse_outline().unwrap();
        assert_eq!(rings.len(), 4);
        assert_eq!(rings.iter().map(Vec::len).sum::<usize>(), 592);
        assert!(rings.iter().all(|r| r.first() == r.last()), "rings are closed");
        let meta: serde_json::Value = serde_json::from_str(OUTLINE_JSON).unwrap();
        assert_eq!(meta["meta"][3]["iso"], "158", "the fourth ring is Taiwan");
        let d = &GEOMETRY.outline_d;
        assert_eq!(d.matches('M').count(), 4);
        assert_eq!(d.matches('Z').count(), 4);
    }

    #[test]
    fn outline_bbox_matches_the_notes_and_fills_the_view() {
        let fit = GEOMETRY.fit;
        let computed = Fit::from_bbox(FALLBACK_BBOX);
        assert!((fit.scale - computed.scale).abs() / fit.scale < 1e-3, "{fit:?} vs {computed:?}");
        // Every outline point lands inside the viewBox, and the outline touches the padding on at least one axis.
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &[lon, lat] in parse_outline().unwrap().iter().flatten() {
            let (x, y) = fit.project(lon, lat);
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        assert!(x0 >= PAD - 0.01 && y0 >= PAD - 0.01 && x1 <= VIEW_W - PAD + 0.01 && y1 <= VIEW_H - PAD + 0.01);
        assert!((x0 - PAD).abs() < 0.01 || (y0 - PAD).abs() < 0.01);
    }

    #[test]
    fn beijing_is_north_east_of_chengdu_and_inside_the_view() {
        let fit = GEOMETRY.fit;
        let (bx, by) = fit.project(116.4, 39.9);
        let (cx, cy) = fit.project(104.07, 30.57);
        assert!(bx > cx && by < cy, "Beijing ({bx}, {by}) vs Chengdu ({cx}, {cy})");
        for (x, y) in [(bx, by), (cx, cy)] {
            assert!((0.0..=VIEW_W).contains(&x) && (0.0..=VIEW_H).contains(&y));
        }
    }

    #[test]
    fn every_hub_and_cluster_is_a_link() {
        let clusters = [
            cluster("/clusters/zhangjiakou", 114.88, 40.77, 0.2, true, 1152.0),
            cluster("/clusters/horinger", 111.82, 40.38, 0.7, true, 1280.0),
            cluster("/clusters/guian?tab=jobs&x=1", 106.40, 26.40, 0.95, false, 1408.0),
        ];
        let links = [MapLink { a: "jingjinji", b: "ningxia", latency_ms: 9.44 }, MapLink { a: "jingjinji", b: "nowhere", latency_ms: 1.0 }];
        let svg = render_svg("算力网络 Compute network", "示意图 / schematic", &HUBS, &clusters, &links);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"aria-labelledby="map-title"><title id="map-title">算力网络 Compute network</title>"#));
        for hub in &HUBS {
            assert!(svg.contains(&format!("<a href=\"{}\">", hub.href)), "{}", hub.href);
        }
        assert!(svg.contains(r#"<a href="/clusters/zhangjiakou">"#));
        assert!(svg.contains(r#"<a href="/clusters/horinger">"#));
        assert!(svg.contains(r#"<a href="/clusters/guian?tab=jobs&amp;x=1">"#));
        assert_eq!(svg.matches("<a href=").count(), HUBS.len() + clusters.len());
        assert!(!svg.contains("xlink"));
        // The link to an unknown hub is skipped; the known one is titled with both hub labels.
        assert_eq!(svg.matches("<line ").count(), 1);
        assert!(svg.contains("<title>京津冀 — 宁夏: 9.4 ms</title>"));
        assert!(svg.contains("<title>/clusters/zhangjiakou: 20% GPUs busy</title>"));
        assert!(svg.contains("<title>/clusters/guian?tab=jobs&amp;x=1: 95% GPUs busy — unhealthy</title>"));
        assert!(svg.contains(r#"class="cluster c-ok""#));
        assert!(svg.contains(r#"class="cluster c-warm""#));
        assert!(svg.contains(r#"class="cluster c-hot c-down""#));
        assert!(!svg.contains("class=\"serving\""), "no cluster serves a model");
        assert!(svg.contains(r#"<text class="caption" x="12" y="668">示意图 / schematic</text>"#));
        assert!(!svg.contains("<script") && !svg.contains("javascript:") && !svg.contains("style=\""));
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        let hubs = [MapHub { id: "x", label: "a<&>\"b", lon: 110.0, lat: 30.0, href: "/h?a=1&b=\"2\"" }];
        let clusters = [cluster("<c&>", 110.0, 30.0, 0.1, true, 8.0)];
        let svg = render_svg("t<&>", "c<&>", &hubs, &clusters, &[]);
        assert!(svg.contains("<title id=\"map-title\">t&lt;&amp;&gt;</title>"));
        assert!(svg.contains(">a&lt;&amp;&gt;&quot;b</text>"));
        assert!(svg.contains("<a href=\"/h?a=1&amp;b=&quot;2&quot;\">"));
        assert!(svg.contains("<title>&lt;c&amp;&gt;: 10% GPUs busy</title>"));
        assert!(svg.contains(">c&lt;&amp;&gt;</text>"));
        assert!(!svg.contains("<&>") && !svg.contains("a<") && !svg.contains("t<"));
    }

    #[test]
    fn unsafe_hrefs_are_neutralised() {
        assert_eq!(safe_href("/hubs/x"), "/hubs/x");
        assert_eq!(safe_href("https://example.org/a:b"), "https://example.org/a:b");
        assert_eq!(safe_href("/a:b"), "/a:b");
        assert_eq!(safe_href("?q=a:b"), "?q=a:b");
        assert_eq!(safe_href(" JavaScript:alert(1)"), "#");
        assert_eq!(safe_href("data:text/html,x"), "#");
    }

    #[test]
    fn zhangjiakou_and_horinger_labels_take_different_sides() {
        let fit = GEOMETRY.fit;
        // Both hub orders must give a clean result, since the layout handles hubs in input order.
        for hubs in [HUBS.to_vec(), HUBS.iter().rev().copied().collect()] {
            let clusters: Vec<MapCluster> = hubs.iter().map(|h| cluster(h.id, h.lon, h.lat, 0.5, true, 1000.0)).collect();
            let layout = layout(&fit, &hubs, &clusters);
            let find = |id: &str| &layout.hubs[hubs.iter().position(|h| h.id == id).unwrap()];
            let (zjk, hrg) = (find("jingjinji"), find("neimenggu"));
            let distance = (zjk.x - hrg.x).hypot(zjk.y - hrg.y);
            assert!(distance < 60.0, "the test only means something when the hubs are close: {distance}");
            assert!(zjk.x > hrg.x);
            if (zjk.x - hrg.x).abs() <= 40.0 + zjk.r + hrg.r {
                assert_ne!(zjk.label.side, hrg.label.side);
            }
            assert!(!zjk.label.rect.intersects(&hrg.label.rect));
            assert!(!zjk.label.rect.hits_circle(hrg.x, hrg.y, hrg.r));
            assert!(!hrg.label.rect.hits_circle(zjk.x, zjk.y, zjk.r));
            // No label of the 8 hubs overlaps another label or leaves the viewBox.
            for (i, a) in layout.hubs.iter().enumerate() {
                assert!(a.label.rect.inside_view(), "{}", hubs[i].id);
                for b in &layout.hubs[i + 1..] {
                    assert!(!a.label.rect.intersects(&b.label.rect));
                }
            }
        }
    }

    #[test]
    fn close_clusters_are_spread_and_sized() {
        let fit = GEOMETRY.fit;
        let clusters = [
            cluster("b", 110.0, 30.0, 0.1, true, 100.0),
            cluster("a", 110.0, 30.0, 0.1, true, 400.0),
            cluster("c", 110.01, 30.0, 0.1, true, 1.0),
            cluster("far", 120.0, 40.0, 0.1, true, f64::NAN),
        ];
        let marks = layout_clusters(&fit, &clusters);
        assert!((marks[1].r - CLUSTER_R_MAX).abs() < 1e-9);
        assert!((marks[0].r - CLUSTER_R_MAX / 2.0).abs() < 1e-9);
        assert!((marks[2].r - CLUSTER_R_MIN).abs() < 1e-9);
        assert!((marks[3].r - CLUSTER_R_MIN).abs() < 1e-9);
        for i in 0..3 {
            for j in i + 1..3 {
                let d = (marks[i].x - marks[j].x).hypot(marks[i].y - marks[j].y);
                assert!(d > CLUSTER_MERGE_PX * 2.0, "{i} {j} {d}");
            }
        }
        let (fx, fy) = fit.place(120.0, 40.0);
        assert!((marks[3].x - fx).abs() < 1e-9 && (marks[3].y - fy).abs() < 1e-9, "a lone cluster stays put");
        // The spread is ordered by id, so the caller's order does not move the circles.
        let again = layout_clusters(&fit, &[clusters[2], clusters[0], clusters[1]]);
        assert!((again[2].x - marks[1].x).abs() < 1e-9 && (again[0].y - marks[2].y).abs() < 1e-9);
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(N(12.0).to_string(), "12");
        assert_eq!(N(12.04).to_string(), "12");
        assert_eq!(N(12.06).to_string(), "12.1");
        assert_eq!(N(-0.01).to_string(), "0");
        assert_eq!(N(-3.24).to_string(), "-3.2");
    }

    #[test]
    fn empty_inputs_still_render_the_outline() {
        let svg = render_svg("", "", &[], &[], &[]);
        assert!(svg.contains("<path class=\"land\" d=\"M"));
        assert!(svg.len() < 12_000, "{}", svg.len());
    }

    #[test]
    fn a_cluster_that_serves_models_gets_a_badge_and_says_which() {
        let clusters = [
            MapCluster { serving: "qwen ×2", ..cluster("qingyang", 107.64, 35.73, 0.1, true, 64.0) },
            cluster("tianfu", 104.07, 30.40, 0.1, true, 64.0),
        ];
        let svg = render_svg("t", "c", &HUBS, &clusters, &[]);
        assert_eq!(svg.matches("class=\"serving\"").count(), 1);
        assert!(svg.contains("<title>qingyang: 10% GPUs busy; serving qwen ×2</title>"), "{svg}");
        // The badge is inside the cluster's link, so it opens the same page.
        let at = svg.find("class=\"serving\"").unwrap();
        assert!(svg[..at].rfind("<a href=\"qingyang\">") > svg[..at].rfind("</a>"));
    }
}
