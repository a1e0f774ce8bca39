//! Small server-drawn SVG charts: time series as lines or bars over labelled buckets. Drawn
//! here rather than by a JavaScript library so pages work offline and render without scripts.

use std::fmt::Write;

pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Line,
    /// Bars side by side per bucket, one per series.
    Bars,
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 46.0;
const COLOURS: [&str; 8] = ["#0b57d0", "#b3261e", "#1e7b34", "#9a5b00", "#6a3fb5", "#00796b", "#5f6368", "#c2185b"];

/// Height of each legend row after the first.
const LEGEND_ROW: f64 = 16.0;

/// About how wide `text` is at the legend's 12 px: a wide (CJK) character takes a full em, others
/// a little over half. An estimate is enough: rows are broken with room to spare.
fn text_width(text: &str) -> f64 {
    text.chars().map(|c| if c.is_ascii() { 7.0 } else { 12.0 }).sum()
}

/// Where each series' legend entry goes: its x and its row, entries flowing left to right and
/// onto a new row when the next would pass the chart's right edge.
fn legend_layout(series: &[Series]) -> Vec<(f64, usize)> {
    let (mut x, mut row) = (LEFT, 0);
    let mut out = Vec::with_capacity(series.len());
    for se in series {
        let width = 14.0 + text_width(se.name);
        if x > LEFT && x + width > W - RIGHT {
            (x, row) = (LEFT, row + 1);
        }
        out.push((x, row));
        x += width + 18.0;
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`.
pub fn nice_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|v| *v >= max).unwrap_or(10.0 * p)
}

fn tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.2}")
    }
}

/// A horizontal line across the chart at `value`, labelled at its right end (a target, say).
pub struct Line<'a> {
    pub value: f64,
    pub label: &'a str,
}

/// Renders the chart; `labels` name the buckets (every few are drawn), `id` must be unique
/// on the page (it ties the title to the chart for screen readers).
pub fn render(id: &str, title: &str, labels: &[String], series: &[Series], kind: Kind) -> String {
    render_with_lines(id, title, labels, series, kind, &[])
}

/// [`render`] with horizontal reference lines, which the axis always reaches.
pub fn render_with_lines(id: &str, title: &str, labels: &[String], series: &[Series], kind: Kind, lines: &[Line]) -> String {
    let n = labels.len().max(1);
    let highest = series.iter().flat_map(|s| s.values.iter().copied()).chain(lines.iter().map(|l| l.value));
    let max = nice_max(highest.filter(|v| v.is_finite()).fold(0.0, f64::max));
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let step = pw / n as f64;
    let y = |v: f64| TOP + ph - (v / max).clamp(0.0, 1.0) * ph;
    let legend = legend_layout(series);
    let height = H + legend.last().map_or(0.0, |(_, row)| *row as f64 * LEGEND_ROW);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {height}" role="img" aria-labelledby="{id}-t"><title id="{id}-t">{}</title>"#,
        esc(title)
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e0e3e7"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#55585e">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            tick(v)
        );
    }
    let every = n.div_ceil(8).max(1);
    for (i, l) in labels.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let x = LEFT + step * (i as f64 + 0.5);
        let _ = write!(
            s,
            r##"<text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#55585e">{}</text>"##,
            TOP + ph + 16.0,
            esc(l)
        );
    }
    for l in lines.iter().filter(|l| l.value.is_finite()) {
        let yy = y(l.value);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#9a5b00" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#6b3f00">{}</text>"##,
            W - RIGHT,
            W - RIGHT - 2.0,
            yy - 4.0,
            esc(l.label)
        );
    }
    let k = series.len().max(1) as f64;
    for (si, se) in series.iter().enumerate() {
        let colour = COLOURS[si % COLOURS.len()];
        match kind {
            Kind::Line => {
                let pts: Vec<String> = se
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("{:.1},{:.1}", LEFT + step * (i as f64 + 0.5), y(if v.is_finite() { *v } else { 0.0 })))
                    .collect();
                let _ = write!(s, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, pts.join(" "));
            }
            Kind::Bars => {
                let bw = (step * 0.8) / k;
                for (i, v) in se.values.iter().enumerate() {
                    let v = if v.is_finite() { *v } else { 0.0 };
                    let x = LEFT + step * i as f64 + step * 0.1 + bw * si as f64;
                    let _ = write!(
                        s,
                        r#"<rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{colour}"><title>{}: {}</title></rect>"#,
                        y(v),
                        TOP + ph - y(v),
                        esc(labels.get(i).map_or("", String::as_str)),
                        tick((v * 100.0).round() / 100.0)
                    );
                }
            }
        }
        let (lx, row) = legend[si];
        let dy = row as f64 * LEGEND_ROW;
        let _ = write!(
            s,
            r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#1d1d1f">{}</text>"##,
            H - 16.0 + dy,
            lx + 14.0,
            H - 7.0 + dy,
            esc(se.name)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn a_long_legend_flows_onto_rows_inside_the_chart() {
        let names = [
            "GPU-hours · science and technology",
            "GPU-hours · industry",
            "GPU-hours · consumption",
            "GPU-hours · livelihood",
            "GPU-hours · governance",
            "GPU-hours · global cooperation",
        ];
        let series: Vec<Series> = names.iter().map(|n| Series { name: n, values: vec![0.0] }).collect();
        let layout = legend_layout(&series);
        let rows = layout.iter().map(|(_, r)| *r).max().unwrap() + 1;
        assert!(rows >= 2, "six long names do not fit on one row: {layout:?}");
        for (i, ((x, row), se)) in layout.iter().zip(&series).enumerate() {
            assert!(x + 14.0 + text_width(se.name) <= W - RIGHT, "{} passes the right edge", se.name);
            if let Some((nx, nrow)) = layout.get(i + 1).filter(|(_, r)| r == row) {
                assert!(x + 14.0 + text_width(se.name) < *nx, "{} runs into the next entry", se.name);
                assert_eq!(nrow, row);
            }
        }
        // The chart grows by the rows it adds, so the last row is not cut off.
        let svg = render("c", "t", &["a".into()], &series, Kind::Line);
        assert!(svg.contains(&format!("viewBox=\"0 0 {W} {}\"", H + (rows - 1) as f64 * LEGEND_ROW)), "{svg}");
        // A short legend keeps one row and the chart its height.
        let two: Vec<Series> = ["a", "b"].iter().map(|n| Series { name: n, values: vec![0.0] }).collect();
        assert!(render("c", "t", &["a".into()], &two, Kind::Line).contains(&format!("viewBox=\"0 0 {W} {H}\"")));
    }

    #[test]
    fn axes_round_up_to_nice_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(1.5), 2.0);
        assert_eq!(nice_max(4321.0), 5000.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
    }

    #[test]
    fn a_chart_draws_each_series_and_escapes_text() {
        let labels: Vec<String> = (0..24).map(|h| format!("{h:02}:00")).collect();
        let svg = render(
            "c1",
            "GPUs <in use>",
            &labels,
            &[Series { name: "a&b", values: vec![1.0; 24] }, Series { name: "c", values: vec![2.0; 24] }],
            Kind::Line,
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("GPUs &lt;in use&gt;") && svg.contains("a&amp;b"));
        assert!(svg.contains(r#"aria-labelledby="c1-t""#));
        let bars = render("c2", "t", &labels[..3], &[Series { name: "x", values: vec![1.0, 0.0, 2.0] }], Kind::Bars);
        assert_eq!(bars.matches("<rect x=").count(), 3 + 1, "three bars and one legend swatch");
        let lined = render_with_lines(
            "c3",
            "t",
            &labels[..2],
            &[Series { name: "x", values: vec![10.0, 20.0] }],
            Kind::Line,
            &[Line { value: 70.0, label: "2027 ≥70%" }, Line { value: 90.0, label: "2030 ≥90%" }],
        );
        assert!(lined.contains("2027 ≥70%") && lined.contains("2030 ≥90%") && lined.matches("stroke-dasharray").count() == 2);
        assert!(lined.contains(">100<"), "the axis reaches the highest line: {lined}");
    }
}
