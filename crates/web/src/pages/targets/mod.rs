//! The "AI+" Action's targets (国发〔2025〕11号): what the platform itself measures of them,
//! month by month, each indicator with its definition and the store query it comes from, and
//! apart from those the figures operators enter from elsewhere (a national survey's adoption
//! rate, say), with their source. Operators only: the figures span every tenant. `/targets.csv`
//! exports both, marked as measured or entered.

mod measure;
mod strings;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use crate::charts::{Kind, Line, Series, render_with_lines};
use crate::error::ConsoleError;
use crate::i18n::Lang;
use crate::layout::{Nav, csrf_field, empty_row, fmt_ms, num, page, svg};
use crate::{C, Viewer};
use measure::{Indicator, Measure, Months, Unit};
pub use strings::STRINGS;

/// Most entries operators may keep, and the longest of each field, in characters.
const MAX_ENTRIES: i64 = 500;
const MAX_NAME_CHARS: usize = 200;
const MAX_UNIT_CHARS: usize = 32;
const MAX_SOURCE_CHARS: usize = 1000;

/// An indicator an operator entered, as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// Text or a URL.
    pub source: String,
    /// The day the figure is for, `YYYY-MM-DD`.
    pub date: String,
    /// The operator who entered it.
    pub by: String,
}

fn operator(v: &Viewer) -> Result<(), ConsoleError> {
    if v.is_operator() { Ok(()) } else { Err(ConsoleError::OperatorsOnly) }
}

async fn entries(c: &crate::SharedConsole) -> Result<Vec<(i64, Entry)>, ConsoleError> {
    let rows = c.store.target_entries(MAX_ENTRIES).await?;
    rows.into_iter()
        .map(|r| {
            serde_json::from_str(&r.doc)
                .map(|e| (r.created_ms, e))
                .map_err(|e| ConsoleError::Internal(format!("target entry {}: {e}", r.id)))
        })
        .collect()
}

/// A value in its unit, for the page.
fn shown(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Share => format!("{}%", num(v * 100.0, 1)),
        Unit::Count => num(v, 0),
        Unit::KgPerGpuHour => format!("{} kgCO2/GPU-h", num(v, 3)),
        Unit::Yuan => format!("¥{}", num(v, 2)),
        Unit::GpuHours => format!("{} GPU-h", num(v, 1)),
    }
}

/// The trend of an indicator, as a chart; adoption figures are in percent against the targets.
fn chart(lang: Lang, id: &str, title: &str, labels: &[String], values: &[f64], adoption: bool) -> Markup {
    let (l27, l30) = (lang.t("targets_line_2027"), lang.t("targets_line_2030"));
    let lines = [Line { value: 70.0, label: l27 }, Line { value: 90.0, label: l30 }];
    let (values, lines): (Vec<f64>, &[Line]) =
        if adoption { (values.iter().map(|v| v * 100.0).collect(), &lines) } else { (values.to_vec(), &[]) };
    svg(render_with_lines(id, title, labels, &[Series { name: title, values }], Kind::Line, lines))
}

pub async fn index(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    operator(&v)?;
    render(&c, &v, None).await
}

/// The page, with the form's refused input and why, if it was refused.
async fn render(c: &crate::SharedConsole, v: &Viewer, refused: Option<(&EntryForm, &ConsoleError)>) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    let months = Months::ending_at(c.now_ms());
    let (list, cut) = measure::indicators(c, &months).await?;
    let entered = entries(c).await?;
    let plain: Vec<Entry> = entered.iter().map(|(_, e)| e.clone()).collect();
    let trends = measure::entered_trends(&plain);
    let blank = EntryForm::default();
    let form = refused.map_or(&blank, |(f, _)| f);
    let body = html! {
        p class="muted" { (lang.t("targets_intro")) }
        p { a href="/targets.csv" download="aiplus-targets.csv" { (lang.t("targets_csv")) } }
        h2 id="measured-heading" { (lang.t("targets_measured")) }
        @if cut { p class="muted" role="note" { (lang.t("targets_cut")) } }
        table aria-labelledby="measured-heading" id="measured" {
            thead { tr { th scope="col" { (lang.t("targets_indicator")) } th scope="col" { (lang.t("targets_definition")) }
                th scope="col" { (lang.t("targets_source")) } th scope="col" class="num" { (lang.t("targets_current")) } } }
            tbody {
                @for (n, i) in list.iter().enumerate() {
                    (row(lang, i, &months, n > 0 && i.group.is_some() && list[n - 1].group == i.group))
                }
            }
        }
        @for (n, i) in list.iter().enumerate().filter(|(_, i)| matches!(i.measure, Measure::Monthly(_))) {
            @if let (Measure::Monthly(values), None) = (&i.measure, i.group) {
                figure id={"trend-" (i.id)} {
                    (chart(lang, &format!("chart-{}", i.id), lang.t(i.name), &months.labels, values, i.adoption))
                    figcaption { (lang.t(i.name)) " — " (lang.t("targets_trend")) }
                }
            } @else if let Some(group) = i.group.filter(|_| n == 0 || list[n - 1].group != i.group) {
                // A group is one chart, a line per member.
                @let members: Vec<Series> = list.iter().filter(|m| m.group == Some(group)).filter_map(|m| match &m.measure {
                    Measure::Monthly(v) => Some(Series { name: lang.t(m.name), values: v.clone() }),
                    _ => None,
                }).collect();
                figure id={"trend-" (i.id)} {
                    (svg(crate::charts::render(&format!("chart-{}", i.id), lang.t(group), &months.labels, &members, Kind::Line)))
                    figcaption { (lang.t(group)) " — " (lang.t("targets_trend")) }
                }
            }
        }
        h2 id="entered-heading" { (lang.t("targets_entered")) }
        p class="muted" { (lang.t("targets_entered_note")) }
        table aria-labelledby="entered-heading" id="entered" {
            thead { tr { th scope="col" { (lang.t("targets_indicator")) } th scope="col" class="num" { (lang.t("targets_value")) }
                th scope="col" { (lang.t("targets_unit")) } th scope="col" { (lang.t("targets_date")) } th scope="col" { (lang.t("targets_source")) }
                th scope="col" { (lang.t("targets_entered_by")) } } }
            tbody {
                @if entered.is_empty() { (empty_row(lang, 6)) }
                @for (at, e) in &entered {
                    tr { th scope="row" { (e.name) } td class="num" { (num(e.value, 2)) } td { (e.unit) } td { (e.date) }
                        td { @if is_url(&e.source) { a href=(e.source) rel="noopener noreferrer" { (e.source) } } @else { (e.source) } }
                        td { (e.by) " · " (fmt_ms(*at)) } }
                }
            }
        }
        @for (n, ((name, _), points)) in trends.iter().filter(|((_, unit), p)| unit == "%" && p.len() > 1).enumerate() {
            figure {
                (chart(lang, &format!("entered-chart-{n}"), name, &points.iter().map(|p| p.0.clone()).collect::<Vec<_>>(),
                       &points.iter().map(|p| p.1 / 100.0).collect::<Vec<_>>(), true))
                figcaption { (name) " — " (lang.t("targets_entered_trend")) }
            }
        }
        h2 id="enter-heading" { (lang.t("targets_enter")) }
        @if let Some((_, e)) = refused { p class="error" role="alert" id="enter-error" { (e.to_string()) } }
        form class="grid" method="post" action="/targets" aria-labelledby="enter-heading" {
            (csrf_field(v))
            div class="wide" { label for="t-name" { (lang.t("targets_indicator")) } input id="t-name" name="name" required maxlength=(MAX_NAME_CHARS) value=(form.name); }
            div { label for="t-value" { (lang.t("targets_value")) } input id="t-value" name="value" required inputmode="decimal" value=(form.value); }
            div { label for="t-unit" { (lang.t("targets_unit")) } input id="t-unit" name="unit" required maxlength=(MAX_UNIT_CHARS) value=(form.unit) aria-describedby="t-unit-hint";
                small id="t-unit-hint" class="muted" { (lang.t("targets_unit_hint")) } }
            div { label for="t-date" { (lang.t("targets_date")) } input id="t-date" name="date" type="date" required value=(form.date); }
            div class="wide" { label for="t-source" { (lang.t("targets_source")) } input id="t-source" name="source" required maxlength=(MAX_SOURCE_CHARS) value=(form.source); }
            div { button type="submit" { (lang.t("targets_add")) } }
        }
    };
    let mut r = page(v, Nav::Targets, "/targets", lang.t("targets"), body);
    if let Some((_, e)) = refused {
        *r.status_mut() = e.status();
    }
    Ok(r)
}

/// One indicator's row; a group's later members leave the shared definition and source to the
/// first.
fn row(lang: Lang, i: &Indicator, months: &Months, as_above: bool) -> Markup {
    html! {
        tr id={"ind-" (i.id)} data-indicator=(i.id) {
            th scope="row" { (lang.t(i.name)) }
            @if as_above { td colspan="2" class="muted" { (lang.t("targets_as_above")) } }
            @else { td { (lang.t(i.definition)) } td { (lang.t(i.source)) } }
            td class="num" {
                @match &i.measure {
                    Measure::NotYet(why) => { span class="muted" { (lang.t("targets_not_yet")) ": " (lang.t(why)) } }
                    Measure::Now(v) => { (shown(i.unit, *v)) }
                    Measure::Monthly(v) => { (shown(i.unit, v.last().copied().unwrap_or(0.0))) " " span class="muted" { "(" (months.labels.last().map_or("", String::as_str)) ")" } }
                }
            }
        }
    }
}

/// Whether `s` is a calendar day written `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else { return false };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else { return false };
    time::Month::try_from(m).is_ok_and(|m| time::Date::from_calendar_date(y, m, d).is_ok())
}

fn is_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://")) && !s.chars().any(char::is_whitespace)
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EntryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    date: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> ConsoleError {
    ConsoleError::Invalid { field: field.into(), reason: reason.into() }
}

/// Checks a form into an entry; the error names the first bad field.
fn check(f: &EntryForm, by: &str) -> Result<Entry, ConsoleError> {
    let text = |field: &str, s: &str, max: usize| -> Result<String, ConsoleError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(invalid(field, "required"));
        }
        if s.chars().count() > max {
            return Err(invalid(field, format!("at most {max} characters")));
        }
        if s.chars().any(char::is_control) {
            return Err(invalid(field, "no control characters"));
        }
        Ok(s.to_string())
    };
    let name = text("name", &f.name, MAX_NAME_CHARS)?;
    let value: f64 = f.value.trim().parse().map_err(|_| invalid("value", format!("{:?} is not a number", f.value.trim())))?;
    if !value.is_finite() || value.abs() > 1e15 {
        return Err(invalid("value", "a finite number, at most 10^15 in size"));
    }
    let unit = text("unit", &f.unit, MAX_UNIT_CHARS)?;
    let date = f.date.trim();
    if !is_date(date) {
        return Err(invalid("date", format!("{date:?} is not a date, YYYY-MM-DD")));
    }
    let source = text("source", &f.source, MAX_SOURCE_CHARS)?;
    Ok(Entry { name, value, unit, source, date: date.to_string(), by: by.to_string() })
}

pub async fn add(State(c): C, v: Viewer, Form(f): Form<EntryForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    operator(&v)?;
    let e = match check(&f, &v.name) {
        Ok(e) => e,
        Err(e) => return render(&c, &v, Some((&f, &e))).await,
    };
    let now = c.now_ms();
    let doc = serde_json::to_string(&e).map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let row = store::TargetEntryRow { id: uuid::Uuid::now_v7().to_string(), created_ms: now, doc };
    if !c.store.add_target_entry(&row, MAX_ENTRIES).await? {
        let full = invalid("name", format!("{MAX_ENTRIES} entries are kept already"));
        return render(&c, &v, Some((&f, &full))).await;
    }
    Ok(Redirect::to("/targets#entered-heading").into_response())
}

/// One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub async fn csv(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    operator(&v)?;
    let lang = v.lang;
    let months = Months::ending_at(c.now_ms());
    let (list, _) = measure::indicators(&c, &months).await?;
    let mut out = String::from("kind,indicator,name,period,value,unit,definition,source\r\n");
    let mut line = |cells: [&str; 8]| {
        out.push_str(&cells.iter().map(|s| field(s)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    };
    for i in &list {
        let (name, def, src, unit) = (lang.t(i.name), lang.t(i.definition), lang.t(i.source), i.unit.code());
        let at = |v: f64| if i.unit == Unit::Share { format!("{:.6}", v * 100.0) } else { format!("{v}") };
        match &i.measure {
            Measure::Monthly(values) => {
                for (m, x) in months.labels.iter().zip(values) {
                    line(["measured", i.id, name, m, &at(*x), unit, def, src]);
                }
            }
            Measure::Now(x) => line(["measured", i.id, name, months.labels.last().map_or("", String::as_str), &at(*x), unit, def, src]),
            Measure::NotYet(_) => {}
        }
    }
    for (_, e) in entries(&c).await? {
        line(["entered", "", &e.name, &e.date, &format!("{}", e.value), &e.unit, lang.t("targets_entered_def"), &e.source]);
    }
    let mut r = out.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"aiplus-targets.csv\""));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a, b"), "\"a, b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn a_bad_entry_names_its_field() {
        let ok = EntryForm {
            name: "adoption".into(),
            value: "42.5".into(),
            unit: "%".into(),
            source: "https://x".into(),
            date: "2025-06-30".into(),
            ..Default::default()
        };
        assert_eq!(check(&ok, "admin").unwrap().value, 42.5);
        for (bad, field) in [
            (EntryForm { value: "lots".into(), ..ok.clone() }, "value"),
            (EntryForm { date: "2025-13-01".into(), ..ok.clone() }, "date"),
            (EntryForm { name: " ".into(), ..ok.clone() }, "name"),
            (EntryForm { unit: "x".repeat(33), ..ok.clone() }, "unit"),
            (EntryForm { source: String::new(), ..ok.clone() }, "source"),
            (EntryForm { value: "inf".into(), ..ok.clone() }, "value"),
        ] {
            match check(&bad, "admin") {
                Err(ConsoleError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
