//! The log explorer: the latest signed checkpoint, the newest entries, and a check that runs in
//! the browser, in the page's own script (`static/app.js`): it fetches an entry's inclusion proof
//! and the log's public key from the public routes, recomputes the tree's root from the leaf
//! (RFC 9162, SHA-256) and verifies the checkpoint's Ed25519 signature with the browser's Web
//! Crypto, so the operator trusts the arithmetic, not the server's word.

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use crate::error::ConsoleError;
use crate::layout::{Nav, empty_row, fmt_ms, page};
use crate::{C, Viewer};

/// Entries listed, newest first.
const SHOWN: u64 = 25;

#[derive(Deserialize)]
pub struct ExplorerQuery {
    /// Show entries up to this index (paging back).
    before: Option<u64>,
}

pub async fn explorer(State(c): C, v: Viewer, Query(q): Query<ExplorerQuery>) -> Result<Response, ConsoleError> {
    let (_, log) = c.governance()?;
    let lang = v.lang;
    let note = log.checkpoint().await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let size = note.lines().nth(1).and_then(|l| l.parse::<u64>().ok()).unwrap_or(0);
    let end = q.before.unwrap_or(size).min(size);
    let mut entries = Vec::new();
    for i in (end.saturating_sub(SHOWN)..end).rev() {
        let row = log.entry(i).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
        let leaf: tlog::Leaf = serde_json::from_str(&row.leaf).map_err(|e| ConsoleError::Internal(e.to_string()))?;
        entries.push((i, leaf));
    }
    let body = html! {
        p { (lang.t("log_intro")) }
        h2 id="key-heading" { (lang.t("log_key")) }
        p { code id="log-key" { (log.verifier().encode()) } }
        p class="muted" { (lang.t("log_key_compare")) }
        h2 id="checkpoint-heading" { (lang.t("checkpoint")) }
        pre class="note" aria-labelledby="checkpoint-heading" { (note) }
        h2 id="verify-heading" { (lang.t("verify_entry")) }
        div id="log-verify" data-log-verify data-ok=(lang.t("verify_ok")) data-bad=(lang.t("verify_bad"))
            data-nocrypto=(lang.t("verify_nocrypto")) data-working=(lang.t("verify_working")) {
            label for="verify-index" { (lang.t("entry_index")) }
            " "
            input id="verify-index" type="number" min="0" max=(size.saturating_sub(1)) value=(size.saturating_sub(1));
            " "
            button type="button" id="verify-button" { (lang.t("verify_in_browser")) }
            p id="verify-result" role="status" aria-live="polite" {}
        }
        h2 id="entries-heading" { (lang.t("entries")) }
        table aria-labelledby="entries-heading" {
            thead { tr {
                th scope="col" class="num" { "#" } th scope="col" { (lang.t("time")) } th scope="col" { (lang.t("kind")) }
                th scope="col" { (lang.t("subject")) } th scope="col" { (lang.t("role")) } th scope="col" { (lang.t("action")) }
            } }
            tbody {
                @if entries.is_empty() { (empty_row(lang, 6)) }
                @for (i, leaf) in &entries {
                    tr {
                        td class="num" { (i) } td { (fmt_ms(leaf.at_ms)) } td { code { (leaf.kind) } } td { (leaf.subject) } td { (leaf.actor_role) }
                        td { button type="button" data-verify-index=(i) aria-label={(lang.t("verify_in_browser")) " " (i)} { (lang.t("verify")) } }
                    }
                }
            }
        }
        @if end > SHOWN { p { a href={"/governance/log?before=" (end - SHOWN)} { (lang.t("older")) } } }
    };
    Ok(page(&v, Nav::Govern, "/governance/log", lang.t("log_explorer"), body))
}
