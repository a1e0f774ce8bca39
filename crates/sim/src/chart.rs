//! The report's chart, as a self-contained SVG: no fonts, scripts or files from outside.
//!
//! Top: each policy's energy cost, carbon and p95 wait as bars, relative to `nearest`, with the
//! lower bound marked. Below: a grid with one row per metric (energy cost, carbon, waiting jobs,
//! GPU utilisation) and one column per policy; each panel draws one line per hub over time.

use std::fmt::Write;

use crate::Report;

const PANEL_W: f64 = 260.0;
const PANEL_H: f64 = 120.0;
const GAP: f64 = 50.0;
/// A metric drawn per hub over time: its label and how to read it from a hub's series.
type SeriesMetric = (&'static str, fn(&crate::engine::HubSeries) -> Vec<f64>);
/// A headline figure: its label, how to read it, and its lower bound if there is one.
type Headline = (&'static str, fn(&crate::PolicyResult) -> f64, Option<f64>);

pub(crate) const COLOURS: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn render_svg(report: &Report) -> String {
    let cols = report.policies.len().max(1);
    let width = GAP + cols as f64 * (PANEL_W + GAP);
    let top_h = 200.0;
    let height = top_h + 4.0 * (PANEL_H + GAP) + 60.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="{GAP}" y="24" font-size="15" font-weight="bold">aiplus compute simulate: {} jobs, {} GPUs, seed {}; panels span {:.1} days</text>"#,
        report.jobs,
        report.gpus,
        report.seed,
        span_days(report)
    );
    summary_bars(&mut s, report, GAP, 62.0);
    let metrics: [SeriesMetric; 4] = [
        ("energy cost (yuan per interval)", |h| h.energy_cost_cny.clone()),
        ("carbon (kg per interval)", |h| h.carbon_kg.clone()),
        ("waiting jobs", |h| h.waiting.iter().map(|&w| f64::from(w)).collect()),
        ("GPU utilisation", |h| h.utilisation.clone()),
    ];
    for (row, (label, get)) in metrics.iter().enumerate() {
        let y0 = top_h + row as f64 * (PANEL_H + GAP);
        // One scale per row, so policies can be compared by eye.
        let max = report.policies.iter().flat_map(|p| p.series.iter().flat_map(get)).fold(0.0f64, f64::max).max(1e-9);
        for (col, p) in report.policies.iter().enumerate() {
            let x0 = GAP + col as f64 * (PANEL_W + GAP);
            let _ = write!(s, r##"<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>"##);
            let _ = write!(s, r#"<text x="{x0}" y="{}">{} — {}</text>"#, y0 - 6.0, esc(&p.name), esc(label));
            let _ = write!(s, r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{}</text>"##, x0 - 3.0, y0 + 10.0, fmt_num(max));
            for (h, hub) in p.series.iter().enumerate() {
                let v = get(hub);
                if v.len() < 2 {
                    continue;
                }
                let mut d = String::new();
                for (i, y) in v.iter().enumerate() {
                    let px = x0 + PANEL_W * i as f64 / (v.len() - 1) as f64;
                    let py = y0 + PANEL_H - PANEL_H * (y / max).clamp(0.0, 1.0);
                    let _ = write!(d, "{}{px:.1},{py:.1}", if i == 0 { "M" } else { " L" });
                }
                let _ = write!(s, r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.2"/>"#, COLOURS[h % COLOURS.len()]);
            }
        }
    }
    // Legend: one colour per hub.
    let ly = height - 30.0;
    if let Some(p) = report.policies.first() {
        for (h, hub) in p.series.iter().enumerate() {
            let lx = GAP + h as f64 * 110.0;
            let _ = write!(s, r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/>"#, ly - 10.0, COLOURS[h % COLOURS.len()]);
            let _ = write!(s, r#"<text x="{}" y="{ly}">{}</text>"#, lx + 16.0, esc(&hub.hub));
        }
    }
    s.push_str("</svg>\n");
    s
}

fn summary_bars(s: &mut String, report: &Report, x0: f64, y0: f64) {
    let Some(base) = report.policies.iter().find(|p| p.name == "nearest").or(report.policies.first()) else { return };
    let groups: [Headline; 3] = [
        ("energy cost", |p| p.energy_cost_cny, Some(report.lower_bound.energy_cost_cny)),
        ("carbon", |p| p.carbon_kg, Some(report.lower_bound.carbon_kg)),
        ("wait p95", |p| p.wait_s_p95, None),
    ];
    let bar_w = 22.0;
    let h = 110.0;
    let _ = write!(s, r#"<text x="{x0}" y="{}">relative to {} (= 1.0); dashed: lower bound</text>"#, y0 - 20.0, esc(&base.name));
    for (g, (label, get, bound)) in groups.iter().enumerate() {
        let gx = x0 + g as f64 * (report.policies.len() as f64 * bar_w + 70.0);
        let denom = get(base).max(1e-9);
        let max = report.policies.iter().map(|p| get(p) / denom).fold(1.0f64, f64::max);
        for (i, p) in report.policies.iter().enumerate() {
            let r = get(p) / denom;
            let bh = h * r / max;
            let bx = gx + i as f64 * bar_w;
            let _ = write!(
                s,
                r#"<rect x="{bx}" y="{}" width="{}" height="{bh}" fill="{}"><title>{}: {:.3}</title></rect>"#,
                y0 + h - bh,
                bar_w - 4.0,
                COLOURS[i % COLOURS.len()],
                esc(&p.name),
                r
            );
            let _ = write!(s, r#"<text x="{bx}" y="{}" font-size="9">{r:.2}</text>"#, y0 + h - bh - 2.0);
        }
        if let Some(b) = bound {
            let by = y0 + h - h * (b / denom) / max;
            let _ = write!(
                s,
                r##"<line x1="{gx}" x2="{}" y1="{by}" y2="{by}" stroke="#000" stroke-dasharray="4 3"/>"##,
                gx + report.policies.len() as f64 * bar_w
            );
        }
        let _ = write!(s, r#"<text x="{gx}" y="{}">{label}</text>"#, y0 + h + 14.0);
    }
    let lx = x0 + 3.0 * (report.policies.len() as f64 * bar_w + 70.0);
    for (i, p) in report.policies.iter().enumerate() {
        let ly = y0 + 12.0 + i as f64 * 16.0;
        let _ = write!(s, r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/>"#, ly - 10.0, COLOURS[i % COLOURS.len()]);
        let _ = write!(s, r#"<text x="{}" y="{ly}">{}</text>"#, lx + 16.0, esc(&p.name));
    }
}

fn span_days(report: &Report) -> f64 {
    report.policies.iter().map(|p| p.series.first().map_or(0, |h| h.utilisation.len()) as f64 * p.sample_interval_s).fold(0.0, f64::max)
        / 86_400.0
}

pub(crate) fn fmt_num(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}", v)
    } else if v >= 1.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}
