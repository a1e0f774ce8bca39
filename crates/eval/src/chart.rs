//! A report as an SVG chart: one bar per group (accuracy, or the refusal rate of a refusal
//! suite) with its standard error as a whisker, so people can look instead of read.

use crate::report::{Group, Report};

const ROW_PX: usize = 18;
const LABEL_PX: usize = 220;
const BAR_PX: usize = 420;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The figure a group's bar shows, with its standard error.
fn figure(g: &Group) -> Option<(f64, f64)> {
    if let (Some(a), Some(e)) = (g.accuracy, g.stderr) {
        return Some((a, e));
    }
    g.refused.or(g.over_refused).map(|r| (r.value, r.stderr))
}

/// The chart of a report, as a standalone SVG document.
pub fn svg(report: &Report) -> String {
    let rows: Vec<(&Group, f64, f64)> = report.groups.iter().filter_map(|g| figure(g).map(|(v, e)| (g, v, e))).collect();
    let height = 40 + rows.len() * ROW_PX + 24;
    let width = LABEL_PX + BAR_PX + 80;
    let what = if report.accuracy.is_some() { "accuracy" } else { "refusal rate" };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n<title>{}</title>\n<text x=\"8\" y=\"18\" font-size=\"14\">{} — {} ({what}, ±1 s.e.)</text>\n",
        escape(&format!("{} on {}", report.model, report.suite)),
        escape(&report.suite),
        escape(&report.model),
    );
    for tick in 0..=4 {
        let x = LABEL_PX + BAR_PX * tick / 4;
        out.push_str(&format!(
            "<line x1=\"{x}\" y1=\"30\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}%</text>\n",
            height - 20,
            height - 8,
            tick * 25
        ));
    }
    for (k, (g, v, e)) in rows.iter().enumerate() {
        let y = 34 + k * ROW_PX;
        let w = (v.clamp(0.0, 1.0) * BAR_PX as f64).round();
        let (lo, hi) = (((v - e).max(0.0) * BAR_PX as f64) as usize + LABEL_PX, ((v + e).min(1.0) * BAR_PX as f64) as usize + LABEL_PX);
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{LABEL_PX}\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"#3b82f6\"><title>{}: {:.1}% ± {:.1}% (n = {})</title></rect><line x1=\"{lo}\" y1=\"{}\" x2=\"{hi}\" y2=\"{}\" stroke=\"#111\"/>\n",
            LABEL_PX - 6,
            y + 12,
            escape(&g.title),
            ROW_PX - 4,
            escape(&g.name),
            v * 100.0,
            e * 100.0,
            g.n,
            y + 7,
            y + 7
        ));
    }
    out.push_str("</svg>\n");
    out
}
