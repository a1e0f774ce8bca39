//! The inference report's chart, as a self-contained SVG in the style of [`crate::chart`] (and
//! with its colours and helpers).
//!
//! Top: one group of bars per headline figure (SLO attainment, carbon, energy and energy cost
//! per 1,000 tokens), one bar per policy. Below: one panel per policy with its replicas and the
//! arrival rate over time, each on its own scale (left: replicas, right: arrivals per second).

use std::fmt::Write;

use crate::chart::{COLOURS, esc, fmt_num};

use super::{InferenceReport, PolicyInference};

const PANEL_W: f64 = 260.0;
const PANEL_H: f64 = 140.0;
const GAP: f64 = 50.0;
const BAR_W: f64 = 44.0;
const BARS_H: f64 = 110.0;
/// A headline figure: its label and how to read it.
type Headline = (&'static str, fn(&PolicyInference) -> f64);

pub fn render_svg(report: &InferenceReport) -> String {
    let cols = report.policies.len().max(1);
    let groups: [Headline; 4] = [
        ("SLO attainment (TTFT and TBT)", |p| p.slo_attainment),
        ("carbon, g per 1k tokens", |p| p.carbon_g_per_1k_tokens),
        ("energy, Wh per 1k tokens", |p| p.energy_wh_per_1k_tokens),
        ("energy cost, yuan per 1M tokens", |p| p.energy_cost_cny_per_1k_tokens * 1000.0),
    ];
    let group_w = cols as f64 * BAR_W + 90.0;
    let width = (GAP + cols as f64 * (PANEL_W + GAP)).max(GAP + groups.len() as f64 * group_w + 140.0);
    let top_h = 230.0;
    let height = top_h + PANEL_H + GAP + 50.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>"#
    );
    let names: Vec<&str> = report.services.iter().map(|s| s.name.as_str()).collect();
    let _ = write!(
        s,
        r#"<text x="{GAP}" y="24" font-size="15" font-weight="bold">aiplus compute inference-sim: {} requests ({}), seed {}, from {}</text>"#,
        report.requests,
        esc(&names.join(", ")),
        report.seed,
        esc(&report.trace_start_cst)
    );
    for (g, (label, get)) in groups.iter().enumerate() {
        bars(&mut s, report, GAP + g as f64 * group_w, 62.0, label, *get);
    }
    let lx = GAP + groups.len() as f64 * group_w;
    for (i, p) in report.policies.iter().enumerate() {
        let ly = 74.0 + i as f64 * 16.0;
        let _ = write!(s, r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/>"#, ly - 10.0, COLOURS[i % COLOURS.len()]);
        let _ = write!(s, r#"<text x="{}" y="{ly}">{}</text>"#, lx + 16.0, esc(&p.name));
    }
    // One scale for replicas across panels, so policies compare by eye.
    let max_replicas = report.policies.iter().flat_map(|p| p.series.replicas.iter().copied()).max().unwrap_or(0).max(1);
    for (col, p) in report.policies.iter().enumerate() {
        timeline(&mut s, p, GAP + col as f64 * (PANEL_W + GAP), top_h, f64::from(max_replicas));
    }
    let ly = height - 20.0;
    let _ = write!(s, r##"<line x1="{GAP}" x2="{}" y1="{}" y2="{}" stroke="#1f77b4" stroke-width="2"/>"##, GAP + 20.0, ly - 4.0, ly - 4.0);
    let _ = write!(s, r#"<text x="{}" y="{ly}">replicas holding a GPU (left scale)</text>"#, GAP + 26.0);
    let x2 = GAP + 260.0;
    let _ = write!(s, r##"<line x1="{x2}" x2="{}" y1="{}" y2="{}" stroke="#999" stroke-dasharray="3 2"/>"##, x2 + 20.0, ly - 4.0, ly - 4.0);
    let _ = write!(s, r#"<text x="{}" y="{ly}">arrivals per second (right scale)</text>"#, x2 + 26.0);
    s.push_str("</svg>\n");
    s
}

fn bars(s: &mut String, report: &InferenceReport, gx: f64, y0: f64, label: &str, get: fn(&PolicyInference) -> f64) {
    let max = report.policies.iter().map(get).fold(0.0f64, f64::max).max(1e-12);
    for (i, p) in report.policies.iter().enumerate() {
        let v = get(p);
        let bh = BARS_H * (v / max).clamp(0.0, 1.0);
        let bx = gx + i as f64 * BAR_W;
        let _ = write!(
            s,
            r#"<rect x="{bx}" y="{}" width="{}" height="{bh}" fill="{}"><title>{}: {v:.6}</title></rect>"#,
            y0 + BARS_H - bh,
            BAR_W - 4.0,
            COLOURS[i % COLOURS.len()],
            esc(&p.name)
        );
        let _ = write!(s, r#"<text x="{bx}" y="{}" font-size="9">{}</text>"#, y0 + BARS_H - bh - 2.0, short(v));
    }
    let _ = write!(s, r#"<text x="{gx}" y="{}">{}</text>"#, y0 + BARS_H + 14.0, esc(label));
}

fn timeline(s: &mut String, p: &PolicyInference, x0: f64, y0: f64, max_replicas: f64) {
    let _ = write!(s, r##"<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>"##);
    let _ = write!(s, r#"<text x="{x0}" y="{}">{} — replicas and arrivals over time</text>"#, y0 - 6.0, esc(&p.name));
    let _ = write!(s, r##"<text x="{}" y="{}" text-anchor="end" fill="#1f77b4">{max_replicas:.0}</text>"##, x0 - 3.0, y0 + 10.0);
    let max_rate = p.series.arrivals_per_s.iter().copied().fold(0.0f64, f64::max).max(1e-9);
    let _ =
        write!(s, r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{}/s</text>"##, x0 + PANEL_W - 3.0, y0 + 12.0, fmt_num(max_rate));
    let minutes = p.series.arrivals_per_s.len() as f64 * p.series.sample_interval_s / 60.0;
    let _ = write!(s, r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{minutes:.0} min</text>"##, x0 + PANEL_W, y0 + PANEL_H + 12.0);
    let replicas: Vec<f64> = p.series.replicas.iter().map(|&r| f64::from(r)).collect();
    path(s, &replicas, max_replicas, x0, y0, r##"stroke="#1f77b4" stroke-width="2""##);
    path(s, &p.series.arrivals_per_s, max_rate, x0, y0, r##"stroke="#999" stroke-dasharray="3 2""##);
}

fn path(s: &mut String, v: &[f64], max: f64, x0: f64, y0: f64, style: &str) {
    if v.is_empty() {
        return;
    }
    let steps = (v.len().max(2) - 1) as f64;
    let mut d = String::new();
    for (i, y) in v.iter().enumerate() {
        let px = x0 + PANEL_W * i as f64 / steps;
        let py = y0 + PANEL_H - PANEL_H * (y / max).clamp(0.0, 1.0);
        let _ = write!(d, "{}{px:.1},{py:.1}", if i == 0 { "M" } else { " L" });
    }
    let _ = write!(s, r#"<path d="{d}" fill="none" {style}/>"#);
}

/// A bar's label: three significant digits, whatever the magnitude.
fn short(v: f64) -> String {
    if v == 0.0 || v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{:.*}", (2 - v.abs().log10().floor() as i32).max(0) as usize, v) }
}
