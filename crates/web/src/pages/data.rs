//! The data exchange: the catalogue of every tenant's listed datasets, the viewer's own
//! datasets, the registrations on public notice, and an upload form whose file goes up in
//! resumable chunks with a progress bar (`app.js`). A dataset's page shows its versions with
//! what their Croissant records say, its registrations, and its latest valuation as charts:
//! value per contributor and the distribution of the rows' values.

use axum::extract::{Path, State};
use axum::response::Response;
use data::exchange::{DatasetView, Mode, Price, ValuationRecord};
use maud::{Markup, PreEscaped, html};

use crate::charts::{Kind, Series, render};
use crate::error::ConsoleError;
use crate::layout::{Nav, empty_row, fmt_ms, num, page, url_encode};
use crate::{C, Viewer};

/// Buckets of the value distribution chart.
const BINS: usize = 12;

fn price(p: &Price) -> String {
    match p {
        Price::PerGb { fen } => format!("{fen} 分/GB"),
        Price::PerRecord { fen } => format!("{fen} 分/record"),
        Price::PerCall { fen } => format!("{fen} 分/call"),
        Price::Flat { fen } => format!("{fen} 分"),
    }
}

pub async fn index(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    let x = c.data()?;
    let lang = v.lang;
    let internal = |e: data::exchange::DataError| ConsoleError::Internal(e.to_string());
    let catalogue = x.catalogue().await.map_err(internal)?;
    let own = match v.scope() {
        Some(t) => x.datasets(t).await.map_err(internal)?,
        None => Vec::new(),
    };
    let notices = x.notices().await.map_err(internal)?;
    let settlements = x.settlements(v.scope()).await.map_err(internal)?;
    let body = html! {
        p class="muted" { (lang.t("data_note")) }
        h2 id="catalogue-heading" { (lang.t("catalogue")) }
        table aria-labelledby="catalogue-heading" {
            thead { tr {
                th scope="col" { (lang.t("dataset")) } th scope="col" { (lang.t("tenant")) } th scope="col" { (lang.t("version")) }
                th scope="col" { (lang.t("licence")) } th scope="col" { (lang.t("price")) } th scope="col" class="num" { (lang.t("data_files")) }
            } }
            tbody {
                @if catalogue.is_empty() { (empty_row(lang, 6)) }
                @for (d, ver) in &catalogue {
                    tr {
                        th scope="row" { a href={ "/data/" (url_encode(&d.tenant)) "/" (url_encode(&d.id)) } { (d.id) } " " span class="muted" { (ver.summary.name) } }
                        td { (d.tenant) }
                        td { (ver.version) }
                        td { (ver.summary.license.join(", ")) }
                        td { @if let Some(o) = d.offer.as_deref().and_then(|o| serde_json::from_str::<data::exchange::Offer>(o).ok()) { (price(&o.price)) } }
                        td class="num" { (ver.summary.files.len()) }
                    }
                }
            }
        }
        @if v.scope().is_some() {
            h2 id="own-heading" { (lang.t("own_datasets")) }
            (own_table(&v, &own))
            (upload_form(&v))
        }
        h2 id="notices-heading" { (lang.t("registration_notices")) }
        table aria-labelledby="notices-heading" {
            thead { tr {
                th scope="col" { (lang.t("dataset")) } th scope="col" { (lang.t("tenant")) } th scope="col" { (lang.t("rights")) }
                th scope="col" { (lang.t("grade")) } th scope="col" { (lang.t("notice_until")) } th scope="col" class="num" { (lang.t("objections")) }
            } }
            tbody {
                @if notices.is_empty() { (empty_row(lang, 6)) }
                @for r in &notices {
                    tr {
                        th scope="row" { (r.application.dataset) "@" (r.application.version) }
                        td { (r.tenant) }
                        td { @for g in &r.application.rights { span class="badge" { (format!("{:?}", g.right).to_lowercase()) ": " (g.holder) } " " } }
                        td { (format!("{:?}", r.application.classification.grade).to_lowercase()) }
                        td { (r.notice_until_ms.map(fmt_ms).unwrap_or_default()) }
                        td class="num" { (r.objections.len()) }
                    }
                }
            }
        }
        h2 id="settlements-heading" { (lang.t("settlements")) }
        table aria-labelledby="settlements-heading" {
            thead { tr {
                th scope="col" { (lang.t("contract")) } th scope="col" { (lang.t("period")) } th scope="col" class="num" { (lang.t("revenue_fen")) }
                th scope="col" class="num" { (lang.t("fee_fen")) } th scope="col" { (lang.t("payouts_fen")) }
            } }
            tbody {
                @if settlements.is_empty() { (empty_row(lang, 5)) }
                @for st in &settlements {
                    tr {
                        th scope="row" { (st.contract) }
                        td { (st.period) }
                        td class="num" { (st.revenue_fen) }
                        td class="num" { (st.fee_fen) }
                        td { @for l in st.lines.iter().filter(|l| l.role == "payout") { span class="badge" { (l.party) " " (l.fen) } " " } }
                    }
                }
            }
        }
    };
    Ok(page(&v, Nav::Data, "/data", lang.t("data"), body))
}

fn own_table(v: &Viewer, own: &[DatasetView]) -> Markup {
    let lang = v.lang;
    html! {
        table aria-labelledby="own-heading" {
            thead { tr {
                th scope="col" { (lang.t("dataset")) } th scope="col" { (lang.t("residency")) }
                th scope="col" { (lang.t("versions")) } th scope="col" { (lang.t("listed")) }
            } }
            tbody {
                @if own.is_empty() { (empty_row(lang, 4)) }
                @for d in own {
                    tr {
                        th scope="row" { a href={ "/data/" (url_encode(&d.tenant)) "/" (url_encode(&d.id)) } { (d.id) } }
                        td { (d.residency.as_deref().unwrap_or("—")) }
                        td { @for ver in &d.versions { span class="badge" { (ver.version) " · " (ver.state) } " " } }
                        td { (d.listed_version.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
    }
}

/// The upload form: `app.js` hashes the file, sends it in the server's chunk size with a
/// progress bar, resumes what is missing, and completes it.
fn upload_form(v: &Viewer) -> Markup {
    let lang = v.lang;
    html! {
        h2 id="upload-heading" { (lang.t("upload_file")) }
        form id="data-upload" class="stack" aria-labelledby="upload-heading" data-csrf=(v.csrf)
            data-done=(lang.t("uploaded")) data-needs-https=(lang.t("upload_needs_https")) {
            label for="upload-file" { (lang.t("file")) }
            input type="file" id="upload-file" name="file" required;
            button type="submit" { (lang.t("upload")) }
            progress id="upload-progress" max="100" value="0" aria-label=(lang.t("upload_progress")) {}
            p id="upload-status" role="status" aria-live="polite" {}
        }
    }
}

pub async fn show(State(c): C, v: Viewer, Path((tenant, id)): Path<(String, String)>) -> Result<Response, ConsoleError> {
    let x = c.data()?;
    let lang = v.lang;
    let mine = v.scope().is_none_or(|t| t == tenant);
    let internal = |e: data::exchange::DataError| ConsoleError::Internal(e.to_string());
    // Another tenant sees a dataset only as the catalogue lists it; an unlisted one is missing.
    let d = match x.dataset(&tenant, &id).await {
        Ok(d) if mine || d.listed_version.is_some() => d,
        _ => return Err(ConsoleError::NotFound),
    };
    let versions: Vec<_> = d.versions.iter().filter(|ver| mine || d.listed_version.as_deref() == Some(ver.version.as_str())).collect();
    let mut valuation = None;
    if mine && let Some(latest) = versions.last() {
        valuation = x.valuations(&tenant, &id, &latest.version).await.map_err(internal)?.into_iter().next();
    }
    let registrations = if mine { x.registrations(&tenant).await.map_err(internal)? } else { Vec::new() };
    let contracts = if mine { x.contracts(&tenant).await.map_err(internal)? } else { Vec::new() };
    let contracts: Vec<_> = contracts.into_iter().filter(|k| k.seller == tenant && k.dataset == id).collect();
    let body = html! {
        p { (lang.t("residency")) ": " (d.residency.as_deref().unwrap_or("—")) " · " (lang.t("listed")) ": " (d.listed_version.as_deref().unwrap_or("—"))
            @if let Some(o) = &d.offer { " · " (price(&o.price)) } }
        @for ver in &versions {
            h2 { (lang.t("version")) " " (ver.version) " · " (ver.state) }
            dl {
                dt { (lang.t("name")) } dd { (ver.summary.name) }
                @if let Some(desc) = &ver.summary.description { dt { (lang.t("description")) } dd { (desc) } }
                dt { "Croissant" } dd { (ver.summary.conforms_to) }
                dt { (lang.t("licence")) } dd { (ver.summary.license.join(", ")) }
                dt { (lang.t("lineage")) } dd { @if ver.summary.derived_from.is_empty() { "—" } @else { (ver.summary.derived_from.join(", ")) } }
                dt { (lang.t("record_sets")) } dd { (ver.summary.record_sets.join(", ")) }
            }
            table {
                caption { (lang.t("data_files")) }
                thead { tr { th scope="col" { (lang.t("name")) } th scope="col" { "SHA-256" } th scope="col" { (lang.t("hosted")) } } }
                tbody {
                    @for f in &ver.summary.files {
                        tr {
                            th scope="row" { (f.name) }
                            td { code { (f.sha256.as_deref().unwrap_or("—")) } }
                            td { @if f.hosted { @if ver.missing_files.contains(&f.id) { (lang.t("not_uploaded")) } @else { "✓" } } @else { (f.content_url.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
        }
        @if let Some(val) = &valuation { (valuation_charts(&v, val)) }
        @if mine {
            h2 id="registrations-heading" { (lang.t("registrations")) }
            table aria-labelledby="registrations-heading" {
                thead { tr { th scope="col" { "ID" } th scope="col" { (lang.t("version")) } th scope="col" { (lang.t("state")) } th scope="col" { (lang.t("code")) } } }
                tbody {
                    @let of_this: Vec<_> = registrations.iter().filter(|r| r.application.dataset == id).collect();
                    @if of_this.is_empty() { (empty_row(lang, 4)) }
                    @for r in of_this {
                        tr { th scope="row" { (r.id) } td { (r.application.version) } td { (format!("{:?}", r.state).to_lowercase()) } td { (r.code.as_deref().unwrap_or("—")) } }
                    }
                }
            }
            h2 id="contracts-heading" { (lang.t("contracts")) }
            table aria-labelledby="contracts-heading" {
                thead { tr { th scope="col" { "ID" } th scope="col" { (lang.t("buyer")) } th scope="col" { (lang.t("version")) }
                             th scope="col" { (lang.t("mode")) } th scope="col" { (lang.t("price")) } th scope="col" { (lang.t("in_force_until")) } } }
                tbody {
                    @if contracts.is_empty() { (empty_row(lang, 6)) }
                    @for k in &contracts {
                        tr {
                            th scope="row" { (k.id) } td { (k.buyer) } td { (k.version) }
                            td { (lang.t(match k.mode { Mode::Download => "mode_download", Mode::Compute => "mode_compute" })) }
                            td { (price(&k.price)) } td { (fmt_ms(k.to_ms)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&v, Nav::Data, &format!("/data/{}/{}", url_encode(&tenant), url_encode(&id)), &d.id, body))
}

/// Value per contributor, and how the rows' values are spread.
fn valuation_charts(v: &Viewer, val: &ValuationRecord) -> Markup {
    let lang = v.lang;
    let names: Vec<String> = val.contributors.iter().map(|c| c.id.clone()).collect();
    let per = [Series { name: lang.t("value"), values: val.contributors.iter().map(|c| c.value).collect() }];
    let (lo, hi) = val.values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
    let width = if hi > lo { (hi - lo) / BINS as f64 } else { 1.0 };
    let mut counts = vec![0.0; BINS];
    for x in &val.values {
        let i = (((x - lo) / width) as usize).min(BINS - 1);
        counts[i] += 1.0;
    }
    let bins: Vec<String> = (0..BINS).map(|i| num(lo + width * i as f64, 4)).collect();
    let dist = [Series { name: lang.t("rows"), values: counts }];
    html! {
        h2 { (lang.t("valuation")) }
        p class="muted" { (serde_json::to_value(val.method).ok().and_then(|m| m.as_str().map(str::to_owned)).unwrap_or_default()) " · K = " (val.k) " · " (lang.t("utility")) " " (num(val.utility, 4))
            @if let Some(m) = &val.embedding_model { " · " (m) } " · " (fmt_ms(val.created_ms)) }
        h3 { (lang.t("value_per_contributor")) }
        (PreEscaped(render("value-per-contributor", lang.t("value_per_contributor"), &names, &per, Kind::Bars)))
        h3 { (lang.t("value_distribution")) }
        (PreEscaped(render("value-distribution", lang.t("value_distribution"), &bins, &dist, Kind::Bars)))
    }
}
