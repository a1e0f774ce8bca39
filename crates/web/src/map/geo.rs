//! The projection, the graticule and the province points of the schematic map.

use std::fmt::Write as _;
use std::sync::LazyLock;

use serde::Deserialize;

use super::layout::Rect;
use super::{N, VIEW_H, VIEW_W, push};

const PAD: f64 = 20.0;

/// The projected bounding box (x_min, x_max, y_min, y_max) that is fitted into the viewBox: that of mainland China
/// with Hainan and Taiwan, about 73.5–135°E and 18–53.5°N. It is the box the map used when it still drew an
/// outline, kept so that the projection, and with it the place of every hub and cluster, stays the same.
pub(super) const VIEW_BBOX: (f64, f64, f64, f64) = (-0.4117, 0.3452, 0.2970, 0.9317);

/// The graticule is drawn every this many degrees of longitude and latitude.
pub(super) const GRID_STEP: i32 = 10;
/// Font size of the graticule's degree labels, in viewBox pixels.
const GRID_FONT: f64 = 10.0;

/// The province table, embedded so that the binary needs no data files at run time.
pub(super) const PROVINCES_JSON: &str = include_str!("../../data/provinces.json");

/// Projects a point with the Albers equal-area conic (sphere, φ1 = 25°, φ2 = 47°, λ0 = 105°E, φ0 = 0) and returns
/// (x, y) in radians of the unit sphere with y growing to the north.
pub(super) fn albers(lon: f64, lat: f64) -> (f64, f64) {
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
pub(super) struct Fit {
    x_min: f64,
    y_max: f64,
    pub(super) scale: f64,
    off_x: f64,
    off_y: f64,
}

impl Fit {
    pub(super) fn from_bbox((x_min, x_max, y_min, y_max): (f64, f64, f64, f64)) -> Fit {
        let (w, h) = (x_max - x_min, y_max - y_min);
        let scale = ((VIEW_W - 2.0 * PAD) / w).min((VIEW_H - 2.0 * PAD) / h);
        Fit { x_min, y_max, scale, off_x: (VIEW_W - w * scale) / 2.0, off_y: (VIEW_H - h * scale) / 2.0 }
    }

    pub(super) fn project(&self, lon: f64, lat: f64) -> (f64, f64) {
        let (x, y) = albers(lon, lat);
        (self.off_x + (x - self.x_min) * self.scale, self.off_y + (self.y_max - y) * self.scale)
    }

    /// Projects a marker position and keeps it inside the viewBox. A hub or cluster outside China (or with
    /// non-finite coordinates) then still shows up at the edge instead of vanishing or breaking the SVG.
    pub(super) fn place(&self, lon: f64, lat: f64) -> (f64, f64) {
        let (x, y) = self.project(lon, lat);
        let x = if x.is_finite() { x.clamp(0.0, VIEW_W) } else { VIEW_W / 2.0 };
        let y = if y.is_finite() { y.clamp(0.0, VIEW_H) } else { VIEW_H / 2.0 };
        (x, y)
    }
}

/// One provincial-level division: its names and the approximate location of its capital or seat.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Province {
    pub(super) zh: String,
    pub(super) en: String,
    pub(super) seat_zh: String,
    pub(super) seat_en: String,
    pub(super) lon: f64,
    pub(super) lat: f64,
}

/// The province file; its other fields (about, codes, coordinates, terms) and each province's code are documentation.
#[derive(Deserialize)]
struct ProvinceFile {
    provinces: Vec<Province>,
}

/// Everything on the map that does not depend on the hubs and clusters, built once per process.
pub(super) struct Base {
    pub(super) fit: Fit,
    /// The graticule as SVG elements (lines and degree labels), ready to be written out.
    pub(super) grid_svg: String,
    /// The boxes of the degree labels, which the other labels keep clear of.
    pub(super) grid_labels: Vec<Rect>,
    /// The province points that parsed and have finite coordinates, in the file's order (by code).
    pub(super) provinces: Vec<Province>,
}

pub(super) static BASE: LazyLock<Base> = LazyLock::new(|| {
    let fit = Fit::from_bbox(VIEW_BBOX);
    let (grid_svg, grid_labels) = graticule(&fit);
    Base { fit, grid_svg, grid_labels, provinces: parse_provinces() }
});

/// Reads the embedded province table. A broken table would be a build mistake that the tests catch; at run time it
/// only costs the orientation points, so the map is still drawn without them rather than failing the page.
pub(super) fn parse_provinces() -> Vec<Province> {
    let Ok(file) = serde_json::from_str::<ProvinceFile>(PROVINCES_JSON) else { return Vec::new() };
    file.provinces.into_iter().filter(|p| p.lon.is_finite() && p.lat.is_finite()).collect()
}

/// Draws the lines of longitude and latitude every [`GRID_STEP`] degrees across the view, each labelled once at the
/// view's edge: meridians at the top, parallels on the left. In this conic projection meridians are straight and
/// parallels are arcs, which are drawn as polylines through every whole degree.
fn graticule(fit: &Fit) -> (String, Vec<Rect>) {
    let mut lines = String::with_capacity(4096);
    let mut labels = String::with_capacity(1024);
    let mut rects = Vec::new();
    let inside = |&(x, y): &(f64, f64)| (0.0..=VIEW_W).contains(&x) && (0.0..=VIEW_H).contains(&y);

    for lon in (60..=150).step_by(GRID_STEP as usize) {
        let lon = f64::from(lon);
        let points: Vec<(f64, f64)> = (0..=70).map(|lat| fit.project(lon, f64::from(lat))).collect();
        // A meridian is a straight line, so its two visible ends are enough.
        if let Some(run) = visible_run(&points, inside) {
            let (a, b) = (run[0], run[run.len() - 1]);
            push(&mut lines, format_args!("<polyline points=\"{},{} {},{}\"/>", N(a.0), N(a.1), N(b.0), N(b.1)));
        }
        // The label goes where the meridian crosses a line just below the top edge; y falls as latitude rises.
        let target = 13.0;
        let lat = bisect(0.0, 89.0, |lat| fit.project(lon, lat).1 > target);
        let (x, _) = fit.project(lon, lat);
        if (24.0..=VIEW_W - 24.0).contains(&x) {
            let text = format!("{lon:.0}°E");
            let w = text_width(&text, GRID_FONT);
            let baseline = target - 2.0;
            push(
                &mut labels,
                format_args!("<text class=\"grid-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{text}</text>", N(x), N(baseline)),
            );
            rects.push(Rect { x0: x - w / 2.0, y0: baseline - 0.8 * GRID_FONT, x1: x + w / 2.0, y1: baseline + 0.25 * GRID_FONT });
        }
    }
    for lat in (10..=60).step_by(GRID_STEP as usize) {
        let lat = f64::from(lat);
        let points: Vec<(f64, f64)> = (50..=160).map(|lon| fit.project(f64::from(lon), lat)).collect();
        if let Some(run) = visible_run(&points, inside) {
            lines.push_str("<polyline points=\"");
            for (i, &(x, y)) in run.iter().enumerate() {
                push(&mut lines, format_args!("{}{},{}", if i == 0 { "" } else { " " }, N(x), N(y)));
            }
            lines.push_str("\"/>");
        }
        // The label sits just above the parallel where it meets the left edge; x grows with longitude.
        let edge = 4.0;
        let lon = bisect(40.0, 105.0, |lon| fit.project(lon, lat).0 < edge);
        let (_, y) = fit.project(lon, lat);
        if (30.0..=VIEW_H - 40.0).contains(&y) {
            let text = format!("{lat:.0}°N");
            let w = text_width(&text, GRID_FONT);
            let baseline = y - 3.0;
            push(&mut labels, format_args!("<text class=\"grid-label\" x=\"{}\" y=\"{}\">{text}</text>", N(edge), N(baseline)));
            rects.push(Rect { x0: edge, y0: baseline - 0.8 * GRID_FONT, x1: edge + w, y1: baseline + 0.25 * GRID_FONT });
        }
    }
    let mut svg = String::with_capacity(lines.len() + labels.len() + 64);
    // The graticule only helps the eye; screen readers get the hubs, clusters and provinces instead.
    let _ = write!(svg, "<g class=\"grid\" aria-hidden=\"true\">{lines}{labels}</g>");
    (svg, rects)
}

/// The stretch of a sampled line that lies in the view, with one more point at each end so that the line runs on
/// to the view's edge (the SVG viewport clips the rest). The lines drawn here cross the view at most once.
fn visible_run(points: &[(f64, f64)], inside: impl Fn(&(f64, f64)) -> bool) -> Option<&[(f64, f64)]> {
    let first = points.iter().position(&inside)?;
    let last = points.iter().rposition(&inside)?;
    Some(&points[first.saturating_sub(1)..(last + 2).min(points.len())])
}

/// Finds where `below` turns from true to false on `[lo, hi]`, for a predicate that is true at `lo` and false at
/// `hi`, to well under a pixel.
fn bisect(mut lo: f64, mut hi: f64, below: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if below(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Estimates the rendered width of a label: CJK and other wide characters take a full em, Latin text about 0.62 em
/// (a little more than most sans-serif fonts need, so that the estimate errs on the wide side).
pub(super) fn text_width(text: &str, font: f64) -> f64 {
    text.chars().map(|c| if u32::from(c) >= 0x2E80 { 1.0 } else { 0.62 }).sum::<f64>() * font
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_province_table_has_all_34_divisions() {
        let provinces = parse_provinces();
        assert_eq!(provinces.len(), 34);
        let meta: serde_json::Value = serde_json::from_str(PROVINCES_JSON).unwrap();
        let codes: Vec<&str> = meta["provinces"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "codes are unique and sorted: {codes:?}");
        for p in &provinces {
            assert!(!p.zh.is_empty() && !p.en.is_empty() && !p.seat_zh.is_empty() && !p.seat_en.is_empty(), "{}", p.en);
            assert!((73.0..=136.0).contains(&p.lon) && (18.0..=54.0).contains(&p.lat), "{} {} {}", p.en, p.lon, p.lat);
            let (x, y) = BASE.fit.project(p.lon, p.lat);
            assert!((PAD..=VIEW_W - PAD).contains(&x) && (PAD..=VIEW_H - PAD).contains(&y), "{} at ({x}, {y})", p.zh);
        }
        assert!(meta["coordinates"].as_str().unwrap().contains("APPROXIMATE"), "the file says the points are approximate");
    }

    #[test]
    fn beijing_is_north_east_of_chengdu_and_inside_the_view() {
        let fit = BASE.fit;
        let (bx, by) = fit.project(116.4, 39.9);
        let (cx, cy) = fit.project(104.07, 30.57);
        assert!(bx > cx && by < cy, "Beijing ({bx}, {by}) vs Chengdu ({cx}, {cy})");
        for (x, y) in [(bx, by), (cx, cy)] {
            assert!((0.0..=VIEW_W).contains(&x) && (0.0..=VIEW_H).contains(&y));
        }
    }

    #[test]
    fn the_view_box_fills_the_view() {
        // The corners of the fitted box touch the padding on the wider axis, as they did with the outline.
        let fit = BASE.fit;
        let (x_min, x_max, y_min, y_max) = VIEW_BBOX;
        let width = (x_max - x_min) * fit.scale;
        let height = (y_max - y_min) * fit.scale;
        assert!((width - (VIEW_W - 2.0 * PAD)).abs() < 0.01 || (height - (VIEW_H - 2.0 * PAD)).abs() < 0.01);
        assert!(width <= VIEW_W - 2.0 * PAD + 0.01 && height <= VIEW_H - 2.0 * PAD + 0.01);
    }

    #[test]
    fn the_graticule_is_lines_and_degree_labels_only() {
        let grid = &BASE.grid_svg;
        assert!(grid.starts_with("<g class=\"grid\" aria-hidden=\"true\">") && grid.ends_with("</g>"));
        assert!(!grid.contains("<path"), "no outline of any kind");
        // Meridians 70–140°E and parallels 20–50°N cross the view.
        assert!(grid.matches("<polyline ").count() >= 10, "{grid}");
        for label in ["100°E", "120°E", "30°N", "40°N"] {
            assert!(grid.contains(&format!(">{label}</text>")), "{label}: {grid}");
        }
        assert_eq!(grid.matches("<text ").count(), BASE.grid_labels.len());
        assert!(BASE.grid_labels.iter().all(Rect::inside_view));
    }
}
