//! Tests of the map as a whole: what the SVG contains, in both languages, and where its labels go.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use super::layout::{CLUSTER_MERGE_PX, CLUSTER_R_MAX, CLUSTER_R_MIN, Rect, layout_clusters};
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

/// The same hubs with their English names, as the English page shows them.
fn hubs_en() -> Vec<MapHub<'static>> {
    let names = [
        "Beijing-Tianjin-Hebei",
        "Yangtze River Delta",
        "Guangdong-Hong Kong-Macao Greater Bay Area",
        "Chengdu-Chongqing",
        "Inner Mongolia",
        "Guizhou",
        "Gansu",
        "Ningxia",
    ];
    HUBS.iter().zip(names).map(|(h, label)| MapHub { label, ..*h }).collect()
}

fn cluster<'a>(id: &'a str, lon: f64, lat: f64, busy: f64, healthy: bool, gpus_total: f64) -> MapCluster<'a> {
    MapCluster { id, label: id, lon, lat, href: id, busy, healthy, gpus_total, serving: "" }
}

/// The 12 clusters of `china-hubs.toml` at their coordinates, with the GPU counts of the default network.
fn clusters() -> Vec<MapCluster<'static>> {
    [
        ("zhangjiakou", 114.88, 40.77),
        ("yrd-demo", 121.12, 31.15),
        ("wuhu", 118.43, 31.33),
        ("shaoguan", 113.60, 24.81),
        ("tianfu", 104.07, 30.40),
        ("chongqing", 106.55, 29.80),
        ("horinger", 111.82, 40.38),
        ("guian", 106.40, 26.40),
        ("qingyang", 107.64, 35.73),
        ("zhongwei", 105.19, 37.51),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (id, lon, lat))| cluster(id, lon, lat, 0.1 * i as f64, true, 1000.0 + 100.0 * i as f64))
    .collect()
}

/// The texts of one class of label, with the `<tspan>` of each further line joined back on.
fn text_of(svg: &str, class: &str) -> Vec<String> {
    let open = format!("<text class=\"{class}\"");
    svg.split(&open)
        .skip(1)
        .map(|rest| {
            let inner = rest.split_once('>').unwrap().1.split_once("</text>").unwrap().0;
            let mut parts = inner.split("<tspan");
            let first = parts.next().unwrap().to_string();
            parts.fold(first, |text, part| text + part.split_once('>').unwrap().1.trim_end_matches("</tspan>"))
        })
        .collect()
}

#[test]
fn every_hub_and_cluster_is_a_link() {
    let clusters = [
        cluster("/clusters/zhangjiakou", 114.88, 40.77, 0.2, true, 1152.0),
        cluster("/clusters/horinger", 111.82, 40.38, 0.7, true, 1280.0),
        cluster("/clusters/guian?tab=jobs&x=1", 106.40, 26.40, 0.95, false, 1408.0),
    ];
    let links = [MapLink { a: "jingjinji", b: "ningxia", latency_ms: 9.44 }, MapLink { a: "jingjinji", b: "nowhere", latency_ms: 1.0 }];
    let svg = render_svg(Lang::Zh, "算力网络 Compute network", "示意图，不含国界线", &HUBS, &clusters, &links);
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
    assert_eq!(text_of(&svg, "hub-label"), HUBS.iter().map(|h| h.label).collect::<Vec<_>>());
    assert!(svg.contains(r#"<text class="caption" x="12" y="668">示意图，不含国界线</text>"#));
    assert!(!svg.contains("<script") && !svg.contains("javascript:") && !svg.contains("style=\""));
}

#[test]
fn no_boundary_or_outline_is_drawn() {
    let mut clusters = clusters();
    clusters[0].serving = "qwen ×1";
    for lang in [Lang::Zh, Lang::En] {
        let svg = render_svg(lang, "t", "c", &HUBS, &clusters, &[]);
        // The only paths are the serving badges; the graticule is straight polylines and nothing has a fill.
        assert_eq!(svg.matches("<path").count(), 1, "{svg}");
        assert_eq!(svg.matches("<path class=\"serving\"").count(), 1);
        assert!(!svg.contains("class=\"land\"") && !svg.contains("<polygon"));
        assert_eq!(svg.matches("<polyline").count(), BASE.grid_svg.matches("<polyline").count());
    }
}

#[test]
fn the_caption_says_schematic_without_boundaries_in_both_languages() {
    for (lang, want) in [(Lang::Zh, "示意图，不含国界线"), (Lang::En, "Schematic, no boundaries drawn")] {
        let caption = lang.t("map_caption");
        assert_eq!(caption, want);
        let svg = render_svg(lang, lang.t("map_title"), caption, &HUBS, &clusters(), &[]);
        assert_eq!(text_of(&svg, "caption"), [want]);
    }
}

#[test]
fn every_province_point_is_labelled() {
    let base = &*BASE;
    for lang in [Lang::Zh, Lang::En] {
        // Alone, each of the 34 divisions is a point with its own label and a tooltip naming its capital.
        let svg = render_svg(lang, "t", "c", &[], &[], &[]);
        assert_eq!(svg.matches("<circle class=\"prov\"").count(), 34);
        let names: Vec<&str> = province_names(&base.provinces, lang).iter().map(|(_, n)| *n).collect();
        assert_eq!(text_of(&svg, "prov-label"), names);
        let want = if lang == Lang::Zh { "<title>河北 · 石家庄</title>" } else { "<title>Hebei · Shijiazhuang</title>" };
        assert!(svg.contains(want), "{lang:?}");

        // With the hubs, a province whose name a hub label already shows right beside its point is named by
        // that label; every other province keeps its own.
        let hubs = if lang == Lang::Zh { HUBS.to_vec() } else { hubs_en() };
        let svg = render_svg(lang, "t", "c", &hubs, &clusters(), &[]);
        assert_eq!(svg.matches("<circle class=\"prov\"").count(), 34);
        let labels = text_of(&svg, "prov-label");
        let hub_labels = text_of(&svg, "hub-label");
        let missing: Vec<&str> = names.iter().copied().filter(|n| !labels.iter().any(|l| l == n)).collect();
        assert!(missing.len() <= 3, "{missing:?}");
        for name in &missing {
            assert!(hub_labels.iter().any(|l| l == name), "{name} is neither a province label nor a hub label");
        }
        let expected = if lang == Lang::Zh { "贵州" } else { "Guizhou" };
        assert!(missing.contains(&expected), "the Guizhou hub sits on Guiyang: {missing:?}");
        assert!(labels.iter().any(|l| l == if lang == Lang::Zh { "甘肃" } else { "Gansu" }), "Lanzhou is far from the Gansu hub");
    }
}

#[test]
fn labels_do_not_overlap_and_stay_in_view() {
    let base = &*BASE;
    for lang in [Lang::Zh, Lang::En] {
        let hubs = if lang == Lang::Zh { HUBS.to_vec() } else { hubs_en() };
        let provinces = province_names(&base.provinces, lang);
        let layout = layout(&base.fit, &hubs, &clusters(), &provinces, &base.grid_labels);
        let rects: Vec<(&str, Rect)> = hubs
            .iter()
            .zip(&layout.hubs)
            .map(|(h, m)| (h.label, m.label.rect))
            .chain(provinces.iter().zip(&layout.provinces).filter_map(|((_, n), m)| m.label.as_ref().map(|l| (*n, l.rect))))
            .collect();
        let mut overlaps = Vec::new();
        for (i, (a, ra)) in rects.iter().enumerate() {
            assert!(ra.inside_view(), "{a}");
            for (b, rb) in &rects[i + 1..] {
                if ra.intersects(rb) {
                    overlaps.push(format!("{a}/{b}"));
                }
            }
        }
        assert!(overlaps.is_empty(), "{lang:?}: {overlaps:?}");
    }
}

#[test]
fn output_is_deterministic() {
    let clusters = clusters();
    let links = [MapLink { a: "jingjinji", b: "changsanjiao", latency_ms: 10.1 }];
    let a = render_svg(Lang::En, "t", "c", &HUBS, &clusters, &links);
    let b = render_svg(Lang::En, "t", "c", &HUBS, &clusters, &links);
    assert_eq!(a, b);
    assert_ne!(a, render_svg(Lang::Zh, "t", "c", &HUBS, &clusters, &links), "the province names follow the language");
}

#[test]
fn text_and_attributes_are_escaped() {
    let hubs = [MapHub { id: "x", label: "a<&>\"b", lon: 110.0, lat: 30.0, href: "/h?a=1&b=\"2\"" }];
    let clusters = [cluster("<c&>", 110.0, 30.0, 0.1, true, 8.0)];
    let svg = render_svg(Lang::En, "t<&>", "c<&>", &hubs, &clusters, &[]);
    assert!(svg.contains("<title id=\"map-title\">t&lt;&amp;&gt;</title>"));
    assert!(svg.contains(">a&lt;&amp;&gt;&quot;b</text>"));
    assert!(svg.contains("<a href=\"/h?a=1&amp;b=&quot;2&quot;\">"));
    assert!(svg.contains("<title>&lt;c&amp;&gt;: 10% GPUs busy</title>"));
    assert!(svg.contains(">c&lt;&amp;&gt;</text>"));
    assert!(svg.contains("<title>Xi&#39;an</title>") || svg.contains("Shaanxi · Xi&#39;an"), "the apostrophe of Xi'an");
    assert!(!svg.contains("<&>") && !svg.contains("a<&") && !svg.contains("t<&"));
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
    let base = &*BASE;
    let provinces = province_names(&base.provinces, Lang::Zh);
    // Both hub orders must give a clean result, since the layout handles hubs in input order.
    for hubs in [HUBS.to_vec(), HUBS.iter().rev().copied().collect()] {
        let clusters: Vec<MapCluster> = hubs.iter().map(|h| cluster(h.id, h.lon, h.lat, 0.5, true, 1000.0)).collect();
        let layout = layout(&base.fit, &hubs, &clusters, &provinces, &base.grid_labels);
        let find = |id: &str| &layout.hubs[hubs.iter().position(|h| h.id == id).unwrap()];
        let (zjk, hrg) = (find("jingjinji"), find("neimenggu"));
        let ring = |m: &layout::HubMark| layout::Circle { x: m.x, y: m.y, r: m.r };
        let distance = (zjk.x - hrg.x).hypot(zjk.y - hrg.y);
        assert!(distance < 60.0, "the test only means something when the hubs are close: {distance}");
        assert!(zjk.x > hrg.x);
        if (zjk.x - hrg.x).abs() <= 40.0 + zjk.r + hrg.r {
            assert_ne!(zjk.label.side, hrg.label.side);
        }
        assert!(!zjk.label.rect.intersects(&hrg.label.rect));
        assert!(!zjk.label.rect.hits_circle(&ring(hrg)));
        assert!(!hrg.label.rect.hits_circle(&ring(zjk)));
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
    let fit = BASE.fit;
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
fn empty_inputs_still_render_the_grid_and_the_provinces() {
    let svg = render_svg(Lang::Zh, "", "", &[], &[], &[]);
    assert!(svg.contains("<g class=\"grid\" aria-hidden=\"true\"><polyline "));
    assert_eq!(svg.matches("<circle class=\"prov\"").count(), 34);
    assert!(!svg.contains("<path"));
    assert!(svg.len() < 12_000, "{}", svg.len());
}

#[test]
fn a_cluster_that_serves_models_gets_a_badge_and_says_which() {
    let clusters = [
        MapCluster { serving: "qwen ×2", ..cluster("qingyang", 107.64, 35.73, 0.1, true, 64.0) },
        cluster("tianfu", 104.07, 30.40, 0.1, true, 64.0),
    ];
    let svg = render_svg(Lang::Zh, "t", "c", &HUBS, &clusters, &[]);
    assert_eq!(svg.matches("class=\"serving\"").count(), 1);
    assert!(svg.contains("<title>qingyang: 10% GPUs busy; serving qwen ×2</title>"), "{svg}");
    // The badge is inside the cluster's link, so it opens the same page.
    let at = svg.find("class=\"serving\"").unwrap();
    assert!(svg[..at].rfind("<a href=\"qingyang\">") > svg[..at].rfind("</a>"));
}

/// Writes the two default maps to the directory named by `MAP_PREVIEW_DIR`, for a person to look at; it does
/// nothing when the variable is unset, as in CI.
#[test]
fn preview() {
    let Ok(dir) = std::env::var("MAP_PREVIEW_DIR") else { return };
    let hubs_en = hubs_en();
    let mut clusters = clusters();
    clusters[3].serving = "qwen ×2";
    for (lang, hubs) in [(Lang::Zh, HUBS.to_vec()), (Lang::En, hubs_en)] {
        let links =
            [MapLink { a: "jingjinji", b: "changsanjiao", latency_ms: 10.1 }, MapLink { a: "gansu", b: "yuegangao", latency_ms: 12.0 }];
        let svg = render_svg(lang, lang.t("map_title"), lang.t("map_caption"), &hubs, &clusters, &links);
        std::fs::write(format!("{dir}/map-{lang:?}.svg"), svg).unwrap();
    }
}
