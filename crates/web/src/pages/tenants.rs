//! Tenants and usage: the tenants (operators see all; a tenant only itself), each tenant's API
//! keys (create with the secret shown once, revoke), limits and regions, console logins, and
//! usage and cost per day.

use std::collections::{BTreeMap, BTreeSet};

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use gateway::{KeyRecord, TenantSettings};
use identity::Limits;
use maud::html;
use serde::Deserialize;

use crate::auth::CsrfForm;
use crate::auth::{Account, Role};
use crate::charts::{Kind, Series, render};
use crate::error::ConsoleError;
use crate::layout::{Nav, csrf_field, empty_row, fmt_ms, num, page, svg};
use crate::{C, SharedConsole, Viewer};

const DAY_MS: i64 = 86_400_000;
/// Days of usage a tenant's page shows.
pub const USAGE_DAYS: i64 = 30;
/// Most ledger rows one page reads.
pub const MAX_ROWS: u32 = 500_000;

/// The ledger's summary by (day start, pillar): the one way usage is summed, here as in the
/// usage API and the CLI.
pub fn by_day(rows: &[ledger::Entry<serde_json::Value>]) -> BTreeMap<(i64, String), ledger::SummaryRow> {
    ledger::summarize(rows, ledger::GroupBy { day: true, pillar: true, ..Default::default() })
        .into_iter()
        .map(|r| ((r.day_start_ms.unwrap_or(0), r.pillar.clone().unwrap_or_default()), r))
        .collect()
}

fn regions_text(r: &[vocab::Region]) -> String {
    r.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn limits_text(l: &Limits) -> String {
    let parts: Vec<String> = [("rpm", l.requests_per_min), ("tpm", l.tokens_per_min), ("tpd", l.tokens_per_day)]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
        .collect();
    if parts.is_empty() { "—".into() } else { parts.join(", ") }
}

pub async fn index(State(c): C, v: Viewer) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    if let Some(t) = v.scope() {
        return Ok(Redirect::to(&format!("/tenants/{t}")).into_response());
    }
    let keys = c.identity().keys(None).await?;
    let accounts: Vec<(String, Account)> = c.store.console_users().await?;
    // The registry is the list of tenants; usage of a tenant no longer registered still shows.
    let mut names: BTreeSet<String> = c.identity().tenants().into_iter().map(|t| t.id).collect();
    let from = (c.now_ms() / DAY_MS - USAGE_DAYS + 1) * DAY_MS;
    let rows: Vec<ledger::Entry<serde_json::Value>> = c.store.usage(None, None, from, i64::MAX, MAX_ROWS).await?;
    let per_tenant: BTreeMap<String, (u64, f64)> = ledger::summarize(&rows, ledger::GroupBy { tenant: true, ..Default::default() })
        .into_iter()
        .map(|r| (r.tenant.unwrap_or_default(), (r.events, r.money_cny)))
        .collect();
    names.extend(per_tenant.keys().cloned());
    let body = html! {
        h2 id="tenants-heading" { (lang.t("tenants")) }
        table aria-labelledby="tenants-heading" {
            thead { tr { th scope="col" { (lang.t("tenant")) } th scope="col" class="num" { (lang.t("keys")) }
                th scope="col" class="num" { (lang.t("requests")) " (30d)" } th scope="col" class="num" { (lang.t("cost_cny")) " (30d)" } } }
            tbody {
                @if names.is_empty() { (empty_row(lang, 4)) }
                @for t in &names {
                    @let u = per_tenant.get(t.as_str()).copied().unwrap_or_default();
                    tr {
                        th scope="row" { a href={"/tenants/" (t)} { (t) } }
                        td class="num" { (keys.iter().filter(|k| &k.tenant == t && k.revoked_ms.is_none()).count()) }
                        td class="num" { (u.0) }
                        td class="num" { (num(u.1, 4)) }
                    }
                }
            }
        }
        h2 id="new-tenant-heading" { (lang.t("register_tenant")) }
        form class="grid" method="post" action="/tenants" aria-labelledby="new-tenant-heading" {
            (csrf_field(&v))
            div { label for="tenant-id" { (lang.t("tenant_id")) } input id="tenant-id" name="id" required maxlength="64" pattern="[a-z0-9_\\-]{1,64}" autocomplete="off"; }
            div { label for="tenant-name" { (lang.t("tenant_name")) } input id="tenant-name" name="name" maxlength="200" autocomplete="off"; }
            div { button type="submit" { (lang.t("register_tenant")) } }
        }
        h2 id="accounts-heading" { (lang.t("accounts")) }
        table aria-labelledby="accounts-heading" {
            thead { tr { th scope="col" { (lang.t("username")) } th scope="col" { (lang.t("role")) } th scope="col" { (lang.t("tenant")) } th scope="col" { (lang.t("created")) } } }
            tbody {
                @for (name, a) in &accounts {
                    tr { td { (name) } td { (if a.role == Role::Operator { lang.t("operator") } else { lang.t("tenant") }) }
                        td { (a.tenant.as_deref().unwrap_or("—")) } td { (fmt_ms(a.created_ms)) } }
                }
            }
        }
        h2 id="new-account-heading" { (lang.t("create_account")) }
        form class="grid" method="post" action="/accounts" aria-labelledby="new-account-heading" {
            (csrf_field(&v))
            div { label for="acct-name" { (lang.t("username")) } input id="acct-name" name="username" required maxlength="64" autocomplete="off"; }
            div { label for="acct-password" { (lang.t("password")) } input id="acct-password" name="password" type="password" required minlength="10" maxlength="256" autocomplete="new-password"; }
            div { label for="acct-tenant" { (lang.t("tenant")) } input id="acct-tenant" name="tenant" required maxlength="64"; }
            div { button type="submit" { (lang.t("create_account")) } }
        }
    };
    Ok(page(&v, Nav::Tenants, "/tenants", lang.t("tenants"), body))
}

/// A registered tenant this viewer may see; any other answers like a missing one.
fn visible_tenant(c: &SharedConsole, v: &Viewer, tenant: &str) -> Result<(), ConsoleError> {
    if !v.may_see(tenant) || c.identity().tenant(tenant).is_none() {
        return Err(ConsoleError::NotFound);
    }
    Ok(())
}

pub async fn show(State(c): C, v: Viewer, Path(tenant): Path<String>) -> Result<Response, ConsoleError> {
    visible_tenant(&c, &v, &tenant)?;
    render_tenant(&c, &v, &tenant, None).await
}

async fn render_tenant(
    c: &SharedConsole,
    v: &Viewer,
    tenant: &str,
    new_secret: Option<(&KeyRecord, &str)>,
) -> Result<Response, ConsoleError> {
    let lang = v.lang;
    let keys = c.identity().keys(Some(tenant)).await?;
    let settings: TenantSettings = c.gateway.tenant_settings(tenant);
    let today = c.now_ms() / DAY_MS;
    let from = (today - USAGE_DAYS + 1) * DAY_MS;
    let rows: Vec<ledger::Entry<serde_json::Value>> = c.store.usage(Some(tenant), None, from, i64::MAX, MAX_ROWS).await?;
    let days = by_day(&rows);
    let labels: Vec<String> = (0..USAGE_DAYS).map(|i| fmt_ms(from + i * DAY_MS)[5..10].to_string()).collect();
    let series: Vec<Series> = ["gateway", "compute"]
        .iter()
        .map(|p| Series {
            name: p,
            values: (0..USAGE_DAYS).map(|i| days.get(&(from + i * DAY_MS, p.to_string())).map_or(0.0, |d| d.money_cny)).collect(),
        })
        .collect();
    let chart = render("usage", lang.t("usage_chart"), &labels, &series, Kind::Bars);
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let body = html! {
        @if let Some((rec, secret)) = new_secret {
            div class="secret" role="status" id="new-secret" {
                p { strong { (lang.t("secret_once")) } }
                p { code id="new-secret-value" { (secret) } }
                p class="muted" { (rec.id) }
            }
        }
        h2 id="keys-heading" { (lang.t("keys")) }
        table aria-labelledby="keys-heading" id="keys" {
            thead { tr { th scope="col" { (lang.t("id")) } th scope="col" { (lang.t("prefix")) } th scope="col" { (lang.t("created")) }
                th scope="col" { (lang.t("limits")) } th scope="col" { (lang.t("state")) } th scope="col" { span class="skip" { (lang.t("revoke")) } } } }
            tbody {
                @if keys.is_empty() { (empty_row(lang, 6)) }
                @for k in &keys {
                    tr data-key=(k.id) {
                        td { code { (k.id) } } td { code { (k.prefix) "…" } } td { (fmt_ms(k.created_ms)) } td { (limits_text(&k.limits)) }
                        td { @if k.revoked_ms.is_some() { span class="badge hot" { (lang.t("revoked")) } } @else { span class="badge ok" { (lang.t("active")) } } }
                        td { @if k.revoked_ms.is_none() {
                            form class="inline" method="post" action={"/tenants/" (tenant) "/keys/" (k.id) "/revoke"} {
                                (csrf_field(v))
                                button type="submit" class="danger" aria-label={(lang.t("revoke")) " " (k.id)} { (lang.t("revoke")) }
                            }
                        } }
                    }
                }
            }
        }
        h2 id="new-key-heading" { (lang.t("create_key")) }
        form class="grid" method="post" action={"/tenants/" (tenant) "/keys"} aria-labelledby="new-key-heading" {
            (csrf_field(v))
            div { label for="key-rpm" { (lang.t("requests_per_min")) } input id="key-rpm" name="requests_per_min" type="number" min="1"; }
            div { label for="key-tpm" { (lang.t("tokens_per_min")) } input id="key-tpm" name="tokens_per_min" type="number" min="1"; }
            div { label for="key-tpd" { (lang.t("tokens_per_day")) } input id="key-tpd" name="tokens_per_day" type="number" min="1"; }
            div { button type="submit" { (lang.t("create_key")) } }
        }
        h2 id="settings-heading" { (lang.t("tenant_settings")) }
        @if v.is_operator() {
            form class="grid" method="post" action={"/tenants/" (tenant) "/settings"} aria-labelledby="settings-heading" {
                (csrf_field(v))
                div { label for="t-rpm" { (lang.t("requests_per_min")) } input id="t-rpm" name="requests_per_min" type="number" min="1" value=(opt(settings.limits.requests_per_min)); }
                div { label for="t-tpm" { (lang.t("tokens_per_min")) } input id="t-tpm" name="tokens_per_min" type="number" min="1" value=(opt(settings.limits.tokens_per_min)); }
                div { label for="t-tpd" { (lang.t("tokens_per_day")) } input id="t-tpd" name="tokens_per_day" type="number" min="1" value=(opt(settings.limits.tokens_per_day)); }
                div class="wide" { label for="t-regions" { (lang.t("regions")) } input id="t-regions" name="regions" value=(regions_text(&settings.regions)); }
                div { button type="submit" { (lang.t("save")) } }
            }
        } @else {
            dl class="facts" {
                dt { (lang.t("limits")) } dd { (limits_text(&settings.limits)) }
                dt { (lang.t("regions")) } dd { @if settings.regions.is_empty() { "—" } @else { (regions_text(&settings.regions)) } }
            }
        }
        h2 id="usage-heading" { (lang.t("usage")) }
        figure { (svg(chart)) }
        table aria-labelledby="usage-heading" {
            thead { tr { th scope="col" { (lang.t("day")) } th scope="col" { (lang.t("pillar")) } th scope="col" class="num" { (lang.t("requests")) }
                th scope="col" class="num" { "tokens" } th scope="col" class="num" { (lang.t("gpu_hours")) } th scope="col" class="num" { (lang.t("cost_cny")) } } }
            tbody {
                @if days.is_empty() { (empty_row(lang, 6)) }
                @for ((day, pillar), d) in days.iter().rev() {
                    tr { td { (fmt_ms(*day)[..10]) } td { (pillar) } td class="num" { (d.events) } td class="num" { (num(d.tokens as f64, 0)) }
                        td class="num" { (num(d.gpu_seconds / 3600.0, 3)) } td class="num" { (num(d.money_cny, 4)) } }
                }
            }
        }
    };
    Ok(page(v, Nav::Tenants, &format!("/tenants/{tenant}"), &format!("{} · {tenant}", lang.t("tenant")), body))
}

#[derive(Deserialize)]
pub struct LimitsForm {
    csrf: String,
    #[serde(default)]
    requests_per_min: String,
    #[serde(default)]
    tokens_per_min: String,
    #[serde(default)]
    tokens_per_day: String,
    #[serde(default)]
    regions: String,
}

impl LimitsForm {
    fn limits(&self) -> Result<Limits, ConsoleError> {
        let p = |field: &str, s: &str| -> Result<Option<u64>, ConsoleError> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse().map(Some).map_err(|_| ConsoleError::Invalid { field: field.into(), reason: format!("{s:?} is not a whole number") })
        };
        Ok(Limits {
            requests_per_min: p("requests_per_min", &self.requests_per_min)?,
            tokens_per_min: p("tokens_per_min", &self.tokens_per_min)?,
            tokens_per_day: p("tokens_per_day", &self.tokens_per_day)?,
        })
    }
}

pub async fn create_key(State(c): C, v: Viewer, Path(tenant): Path<String>, Form(f): Form<LimitsForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    visible_tenant(&c, &v, &tenant)?;
    let new = identity::NewKey { limits: f.limits()?, ..Default::default() };
    let (rec, secret) = c.identity().create_key(&v.principal, &tenant, new, c.now_ms()).await?;
    // The page answers the POST directly (no redirect), so the secret is never in a URL or
    // the history, and reloading it does not show it again.
    let mut r = render_tenant(&c, &v, &tenant, Some((&rec, &secret))).await?;
    *r.status_mut() = axum::http::StatusCode::CREATED;
    Ok(r)
}

pub async fn revoke_key(
    State(c): C,
    v: Viewer,
    Path((tenant, id)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    visible_tenant(&c, &v, &tenant)?;
    c.identity().revoke_key(&id, Some(&tenant), c.now_ms()).await?;
    Ok(Redirect::to(&format!("/tenants/{tenant}")).into_response())
}

pub async fn save_settings(
    State(c): C,
    v: Viewer,
    Path(tenant): Path<String>,
    Form(f): Form<LimitsForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    if !v.is_operator() {
        return Err(ConsoleError::OperatorsOnly);
    }
    visible_tenant(&c, &v, &tenant)?;
    let regions = f
        .regions
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .enumerate()
        .map(|(i, r)| vocab::Region::parse(r).map_err(|reason| ConsoleError::Invalid { field: format!("regions[{i}]"), reason }))
        .collect::<Result<Vec<_>, _>>()?;
    c.gateway.set_tenant_settings(&tenant, &TenantSettings { limits: f.limits()?, regions }).await?;
    Ok(Redirect::to(&format!("/tenants/{tenant}")).into_response())
}

#[derive(Deserialize)]
pub struct AccountForm {
    csrf: String,
    username: String,
    password: String,
    tenant: String,
}

pub async fn create_account(State(c): C, v: Viewer, Form(f): Form<AccountForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    if !v.is_operator() {
        return Err(ConsoleError::OperatorsOnly);
    }
    let tenant = f.tenant.trim();
    if c.identity().tenant(tenant).is_none() {
        return Err(ConsoleError::Invalid { field: "tenant".into(), reason: format!("no tenant {tenant:?}; register it first") });
    }
    c.create_account(f.username.trim(), &f.password, Role::Tenant, Some(tenant.to_string())).await?;
    Ok(Redirect::to("/tenants").into_response())
}

#[derive(Deserialize)]
pub struct TenantForm {
    csrf: String,
    id: String,
    #[serde(default)]
    name: String,
}

/// Registers a tenant (operators).
pub async fn create_tenant(State(c): C, v: Viewer, Form(f): Form<TenantForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    if !v.is_operator() {
        return Err(ConsoleError::OperatorsOnly);
    }
    let t = c.identity().create_tenant(f.id.trim(), Some(f.name.as_str()), c.now_ms()).await?;
    Ok(Redirect::to(&format!("/tenants/{}", t.id)).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn usage_is_the_ledgers_summary_by_day_and_pillar() {
        let row = |at_ms: i64, pillar: &str, unit: ledger::Unit, quantity: f64, money_cny: f64| store::UsageRow {
            id: at_ms.to_string(),
            at_ms,
            tenant: "t".into(),
            pillar: pillar.into(),
            doc: ledger::UsageEvent {
                principal: None,
                subject: ledger::Subject { kind: "x".into(), id: at_ms.to_string() },
                quantity,
                unit,
                price_cny_per_unit: 0.0,
                energy_kwh: 0.0,
                carbon_kg: 0.0,
                money_cny,
                refs: Default::default(),
                detail: serde_json::json!({}),
            },
        };
        let rows = vec![
            row(1_000, "gateway", ledger::Unit::Tokens, 15.0, 0.5),
            row(2_000, "gateway", ledger::Unit::Tokens, 2.0, 0.25),
            row(3_000, "compute", ledger::Unit::GpuSeconds, 7200.0, 2.0),
            row(DAY_MS + 1, "gateway", ledger::Unit::Tokens, 3.0, 0.0),
        ];
        let d = by_day(&rows);
        assert_eq!(
            (d[&(0, "gateway".into())].events, d[&(0, "gateway".into())].tokens, d[&(0, "gateway".into())].money_cny),
            (2, 17, 0.75)
        );
        assert_eq!((d[&(0, "compute".into())].gpu_seconds, d[&(0, "compute".into())].money_cny), (7200.0, 2.0));
        assert_eq!(d[&(DAY_MS, "gateway".into())].tokens, 3);
    }
}
