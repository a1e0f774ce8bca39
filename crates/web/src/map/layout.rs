//! Where the markers and labels of the map go: cluster circles spread apart, hub rings around their clusters, and
//! labels for hubs and provinces placed so that they do not cover each other or the markers.

use super::geo::{Fit, Province, text_width};
use super::{MapCluster, MapHub, VIEW_H, VIEW_W};

/// Clusters closer than this (in viewBox pixels) are treated as one spot and spread apart.
pub(super) const CLUSTER_MERGE_PX: f64 = 6.0;
pub(super) const CLUSTER_R_MIN: f64 = 5.0;
pub(super) const CLUSTER_R_MAX: f64 = 16.0;
/// A hub ring with no cluster at its centre gets this radius.
const HUB_R_MIN: f64 = 7.0;
/// The gap between a hub ring and the clusters it encloses.
const HUB_RING_GAP: f64 = 3.0;
/// The hub label font size in viewBox pixels; the label layout estimates text widths from it.
pub(super) const LABEL_FONT: f64 = 13.0;
/// Hub labels are bold, and bold Latin letters are about a tenth wider than regular ones.
const BOLD_WIDTH: f64 = 1.1;
/// The gap between a hub ring and its label.
const LABEL_GAP: f64 = 4.0;
/// The radius of a province point and the font size and gap of its label.
pub(super) const PROVINCE_R: f64 = 2.5;
pub(super) const PROVINCE_FONT: f64 = 11.0;
const PROVINCE_GAP: f64 = 2.0;
/// A province whose name is already shown by a hub label this close to its point (beyond the hub's ring) is not
/// labelled a second time; the hub label names the place, and two equal words side by side would read as a glitch.
const SAME_NAME_PX: f64 = 30.0;

pub(super) const CAPTION_X: f64 = 12.0;
pub(super) const CAPTION_Y: f64 = 668.0;

/// Where every marker and label goes, in viewBox pixels. The vectors are parallel to the input slices.
pub(super) struct Layout {
    pub(super) hubs: Vec<HubMark>,
    pub(super) clusters: Vec<ClusterMark>,
    pub(super) provinces: Vec<ProvinceMark>,
}

impl Layout {
    pub(super) fn hub_index(&self, hubs: &[MapHub], id: &str) -> Option<usize> {
        hubs.iter().position(|h| h.id == id).filter(|&i| i < self.hubs.len())
    }
}

pub(super) struct HubMark {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) r: f64,
    pub(super) label: LabelMark,
}

pub(super) struct ClusterMark {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) r: f64,
}

pub(super) struct ProvinceMark {
    pub(super) x: f64,
    pub(super) y: f64,
    /// The label, or `None` where a nearby hub label already shows the same name.
    pub(super) label: Option<LabelMark>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Right,
    Left,
    Above,
    Below,
    AboveRight,
    AboveLeft,
    BelowRight,
    BelowLeft,
}

impl Side {
    /// The SVG `text-anchor` that puts the text on this side of its anchor point.
    pub(super) fn anchor(self) -> &'static str {
        match self {
            Side::Right | Side::AboveRight | Side::BelowRight => "start",
            Side::Left | Side::AboveLeft | Side::BelowLeft => "end",
            Side::Above | Side::Below => "middle",
        }
    }
}

/// A hub label tries the four sides; a province label also tries the diagonals, since the east is crowded.
const HUB_SIDES: [Side; 4] = [Side::Right, Side::Left, Side::Above, Side::Below];
const PROVINCE_SIDES: [Side; 8] =
    [Side::Right, Side::Left, Side::Above, Side::Below, Side::AboveRight, Side::BelowRight, Side::AboveLeft, Side::BelowLeft];

/// A placed label: its anchor point (the first line's baseline), the box it is estimated to cover, and where it
/// breaks onto further lines, if it does.
pub(super) struct LabelMark {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) side: Side,
    pub(super) rect: Rect,
    /// The byte indices of the spaces at which the text continues on a new line, each `line_height` lower.
    pub(super) breaks: Vec<usize>,
    pub(super) line_height: f64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Rect {
    pub(super) x0: f64,
    pub(super) y0: f64,
    pub(super) x1: f64,
    pub(super) y1: f64,
}

impl Rect {
    pub(super) fn intersects(&self, other: &Rect) -> bool {
        self.x0 < other.x1 && other.x0 < self.x1 && self.y0 < other.y1 && other.y0 < self.y1
    }

    pub(super) fn hits_circle(&self, c: &Circle) -> bool {
        let dx = c.x - c.x.clamp(self.x0, self.x1);
        let dy = c.y - c.y.clamp(self.y0, self.y1);
        dx * dx + dy * dy < c.r * c.r
    }

    pub(super) fn inside_view(&self) -> bool {
        self.x0 >= 2.0 && self.y0 >= 2.0 && self.x1 <= VIEW_W - 2.0 && self.y1 <= VIEW_H - 2.0
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Circle {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) r: f64,
}

/// What a label must keep clear of: every marker (hub rings, clusters, province points) and the labels placed so
/// far (the caption and the degree labels first).
struct Obstacles {
    circles: Vec<Circle>,
    placed: Vec<Rect>,
}

/// Text over text is unreadable, text over a marker mostly is not, and text cut off at the edge is lost: the costs
/// of a label's collisions are weighted so.
const COVERS_MARKER: usize = 1;
const COVERS_LABEL: usize = 3;
const LEAVES_VIEW: usize = 10;

impl Obstacles {
    /// The cost of what a label box would cover, leaving out the marker it belongs to.
    fn collisions(&self, rect: &Rect, own: usize) -> usize {
        let circles_hit = self.circles.iter().enumerate().filter(|&(j, c)| j != own && rect.hits_circle(c)).count();
        let labels_hit = self.placed.iter().filter(|p| p.intersects(rect)).count();
        circles_hit * COVERS_MARKER + labels_hit * COVERS_LABEL + if rect.inside_view() { 0 } else { LEAVES_VIEW }
    }

    /// Picks the first candidate that covers nothing, else the one that costs least (the earlier one on a tie).
    fn choose(&self, candidates: &[LabelMark], own: usize) -> usize {
        let mut best = (usize::MAX, 0);
        for (n, mark) in candidates.iter().enumerate() {
            let cost = self.collisions(&mark.rect, own);
            if cost == 0 {
                return n;
            }
            if cost < best.0 {
                best = (cost, n);
            }
        }
        best.1
    }
}

/// Lays out the map. Hub labels are placed first, in input order, then the province labels in the table's order
/// (by code); each label takes its first candidate place that covers nothing, else the one that costs least. Where
/// collisions remain, the hub labels are then moved one at a time if that lowers the total cost. Nothing depends
/// on anything but the inputs, so the same inputs always give the same layout.
pub(super) fn layout(
    fit: &Fit,
    hubs: &[MapHub],
    clusters: &[MapCluster],
    provinces: &[(&Province, &str)],
    fixed_labels: &[Rect],
) -> Layout {
    let cluster_marks = layout_clusters(fit, clusters);

    // A hub ring encloses the clusters that sit at the hub's own position (the usual case: a hub is placed at its
    // first cluster), so the ring reads as "this hub contains these clusters" and never cuts through a circle.
    let rings: Vec<Circle> = hubs
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
            Circle { x, y, r }
        })
        .collect();
    let points: Vec<Circle> = provinces
        .iter()
        .map(|(p, _)| {
            let (x, y) = fit.place(p.lon, p.lat);
            Circle { x, y, r: PROVINCE_R }
        })
        .collect();

    let caption_box = Rect { x0: 0.0, y0: CAPTION_Y - 14.0, x1: VIEW_W / 2.0, y1: VIEW_H };
    let mut obstacles = Obstacles {
        circles: rings
            .iter()
            .copied()
            .chain(cluster_marks.iter().map(|m| Circle { x: m.x, y: m.y, r: m.r }))
            .chain(points.iter().copied())
            .collect(),
        placed: std::iter::once(caption_box).chain(fixed_labels.iter().copied()).collect(),
    };

    let hub_options: Vec<Vec<LabelMark>> = hubs
        .iter()
        .zip(&rings)
        .map(|(hub, ring)| label_candidates(hub.label, LABEL_FONT, BOLD_WIDTH, LABEL_GAP, ring, &HUB_SIDES))
        .collect();
    let first_point = rings.len() + cluster_marks.len();
    let province_options: Vec<Option<Vec<LabelMark>>> = provinces
        .iter()
        .zip(&points)
        .map(|((_, name), point)| {
            let named_by_hub = hubs
                .iter()
                .zip(&rings)
                .any(|(hub, ring)| hub.label == *name && (ring.x - point.x).hypot(ring.y - point.y) <= ring.r + SAME_NAME_PX);
            if named_by_hub {
                return None;
            }
            // A point under a hub ring or a cluster circle is labelled outside them: the label's base circle, centred
            // on the point, grows to take in every marker that covers the point.
            let r = obstacles.circles[..first_point]
                .iter()
                .filter(|c| (c.x - point.x).hypot(c.y - point.y) < c.r)
                .map(|c| (c.x - point.x).hypot(c.y - point.y) + c.r)
                .fold(point.r, f64::max);
            let base = Circle { r, ..*point };
            Some(label_candidates(name, PROVINCE_FONT, 1.0, PROVINCE_GAP, &base, &PROVINCE_SIDES))
        })
        .collect();

    // First pass: each hub label in input order, then each province label in the table's order.
    let fixed = obstacles.placed.len();
    let mut hub_choice = Vec::with_capacity(hubs.len());
    for (i, options) in hub_options.iter().enumerate() {
        let n = obstacles.choose(options, i);
        obstacles.placed.push(options[n].rect);
        hub_choice.push(n);
    }
    let place_provinces = |obstacles: &mut Obstacles| -> Vec<Option<usize>> {
        province_options
            .iter()
            .enumerate()
            .map(|(j, options)| {
                let options = options.as_ref()?;
                let n = obstacles.choose(options, first_point + j);
                obstacles.placed.push(options[n].rect);
                Some(n)
            })
            .collect()
    };
    let mut province_choice = place_provinces(&mut obstacles);
    let mut cost = total_cost(&obstacles, fixed, hubs.len());

    // The hub labels were placed without knowing where the province labels would have to go. Where the result still
    // has collisions, each hub label in turn is tried on its other candidates, with the province labels placed anew
    // each time, and a change is kept when it lowers the total cost. Hub labels are few, so this stays cheap.
    for _round in 0..2 {
        if cost == 0 {
            break;
        }
        let mut improved = false;
        for i in 0..hubs.len() {
            for n in 0..hub_options[i].len() {
                if n == hub_choice[i] {
                    continue;
                }
                obstacles.placed.truncate(fixed);
                obstacles.placed.extend(hub_choice.iter().enumerate().map(|(h, &c)| hub_options[h][if h == i { n } else { c }].rect));
                let choice = place_provinces(&mut obstacles);
                let trial = total_cost(&obstacles, fixed, hubs.len());
                if trial < cost {
                    (cost, hub_choice[i], province_choice, improved) = (trial, n, choice, true);
                }
            }
        }
        if !improved {
            break;
        }
    }

    let hub_marks = hub_options
        .into_iter()
        .zip(&hub_choice)
        .zip(&rings)
        .map(|((mut options, &n), ring)| HubMark { x: ring.x, y: ring.y, r: ring.r, label: options.swap_remove(n) })
        .collect();
    let province_marks = province_options
        .into_iter()
        .zip(&province_choice)
        .zip(&points)
        .map(|((options, choice), point)| ProvinceMark {
            x: point.x,
            y: point.y,
            label: options.zip(*choice).map(|(mut options, n)| options.swap_remove(n)),
        })
        .collect();
    Layout { hubs: hub_marks, clusters: cluster_marks, provinces: province_marks }
}

/// The cost of a finished layout: every label's collisions with the markers, the fixed labels and the other labels.
/// `obstacles.placed` holds the fixed labels, then the hub labels in hub order, then the placed province labels;
/// the markers are the hub rings, then the clusters, then the province points.
fn total_cost(obstacles: &Obstacles, fixed: usize, hubs: usize) -> usize {
    let labels = &obstacles.placed[fixed..];
    labels
        .iter()
        .enumerate()
        .map(|(n, rect)| {
            // A hub label belongs to its ring; a province label's own point is inside its base circle, so it
            // never counts, whatever index is given here.
            let own = if n < hubs { n } else { usize::MAX };
            let markers = obstacles.circles.iter().enumerate().filter(|&(j, c)| j != own && rect.hits_circle(c)).count();
            let others = obstacles.placed.iter().enumerate().filter(|&(m, p)| m != fixed + n && p.intersects(rect)).count();
            markers * COVERS_MARKER + others * COVERS_LABEL + if rect.inside_view() { 0 } else { LEAVES_VIEW }
        })
        .sum()
}

/// Every place for one label around its base circle, in the order they are tried: each of `sides` on one line, then
/// (for a label with spaces) on two and on three lines, broken at the spaces that make it narrowest. Long English
/// names such as "Guangdong-Hong Kong-Macao Greater Bay Area" otherwise run out of the view or over the crowded
/// east; fewer lines come first, so labels only wrap when that helps. With the hubs' sides tried right, left, above
/// and below, Zhangjiakou and Horinger get their labels on the outer sides.
fn label_candidates(text: &str, font: f64, widen: f64, gap: f64, base: &Circle, sides: &[Side]) -> Vec<LabelMark> {
    let width_of = |t: &str| text_width(t, font) * widen;
    // The box spans from the cap height above the first baseline to the descender below the last.
    let (ascent, descent, line_height) = (0.8 * font, 0.25 * font, 1.2 * font);
    let Circle { x, y, r } = *base;
    let k = (r + gap) * std::f64::consts::FRAC_1_SQRT_2;
    let candidate = |side: Side, breaks: &[usize]| {
        let width = split_lines(text, breaks).map(&width_of).fold(0.0, f64::max);
        let extra = line_height * breaks.len() as f64;
        let (lx, ly) = match side {
            Side::Right => (x + r + gap, y + 0.35 * font - extra / 2.0),
            Side::Left => (x - r - gap, y + 0.35 * font - extra / 2.0),
            Side::Above => (x, y - r - gap - descent - extra),
            Side::Below => (x, y + r + gap + ascent),
            Side::AboveRight => (x + k, y - k - descent - extra),
            Side::AboveLeft => (x - k, y - k - descent - extra),
            Side::BelowRight => (x + k, y + k + ascent),
            Side::BelowLeft => (x - k, y + k + ascent),
        };
        let x0 = match side {
            Side::Right | Side::AboveRight | Side::BelowRight => lx,
            Side::Left | Side::AboveLeft | Side::BelowLeft => lx - width,
            Side::Above | Side::Below => lx - width / 2.0,
        };
        let rect = Rect { x0, y0: ly - ascent, x1: x0 + width, y1: ly + extra + descent };
        LabelMark { x: lx, y: ly, side, rect, breaks: breaks.to_vec(), line_height }
    };
    line_breaks(text, &width_of).iter().flat_map(|breaks| sides.iter().map(move |&side| candidate(side, breaks))).collect()
}

/// The ways to set a label that are tried, in order: on one line, then broken at the one space and at the two
/// spaces that make its widest line narrowest (where it has that many spaces). Each way is the byte indices of the
/// spaces it breaks at.
fn line_breaks(text: &str, width_of: &dyn Fn(&str) -> f64) -> Vec<Vec<usize>> {
    let spaces: Vec<usize> = text.match_indices(' ').map(|(i, _)| i).collect();
    let widest = |breaks: &[usize]| split_lines(text, breaks).map(width_of).fold(0.0, f64::max);
    let narrowest = |options: Vec<Vec<usize>>| options.into_iter().min_by(|a, b| widest(a).total_cmp(&widest(b)));
    let two = narrowest(spaces.iter().map(|&i| vec![i]).collect());
    let three = narrowest(spaces.iter().enumerate().flat_map(|(n, &i)| spaces[n + 1..].iter().map(move |&j| vec![i, j])).collect());
    std::iter::once(Vec::new()).chain(two).chain(three).collect()
}

/// The lines of a label broken at the given spaces, without the spaces.
pub(super) fn split_lines<'t>(text: &'t str, breaks: &'t [usize]) -> impl Iterator<Item = &'t str> + 't {
    let starts = std::iter::once(0).chain(breaks.iter().map(|&i| i + 1));
    let ends = breaks.iter().copied().chain(std::iter::once(text.len()));
    starts.zip(ends).map(|(a, b)| text.get(a..b).unwrap_or(""))
}

/// Places the cluster circles. The radius grows with the square root of the GPU count, so the area is proportional
/// to it, relative to the largest cluster on the map and clamped to 5..=16 px. Clusters within 6 px of each other
/// would hide one another, so each such group is spread evenly on a small circle around its centre, ordered by id.
pub(super) fn layout_clusters(fit: &Fit, clusters: &[MapCluster]) -> Vec<ClusterMark> {
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
