//! Credit reports: what a developer did in a period, for a university or an employer, signed so
//! a registrar can check offline that nothing in it was edited.
//!
//! A report holds, per month, the developer's activity and global OpenRank, their activity per
//! repo, their events by type with links, the method's version and parameters, and the
//! fingerprints of the inputs. Its content hash is the SHA-256 of its canonical JSON (keys
//! sorted, no spaces); the hash is signed as a signed note by the platform's log key, and the
//! binary records it as a transparency-log leaf.

use std::collections::BTreeMap;

use oss_core::event::Kind;
use oss_core::global::GlobalParams;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::ingest::{Store, hex};
use crate::measure::{self, People};
use crate::{Error, month_index, month_name};

/// The method's version: bump it when a measure changes.
pub const METHOD_VERSION: &str = "aiplus-oss-1 (OpenDigger 9dbe621: indices.ts activity, globalOpenrank.ts)";
/// Links listed per month.
pub const MAX_LINKS: usize = 100;
/// Longest period a report covers, in months.
pub const MAX_MONTHS: i32 = 36;

/// A signed report as written to a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signed {
    pub report: Value,
    pub content_sha256: String,
    /// The signed note: `aiplus oss credit report`, the developer, the period and the hash.
    pub signature: String,
    /// The transparency-log leaf that records the report, when it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// `FROM..TO` (months, inclusive) into month indices.
pub fn period(p: &str) -> Result<(i32, i32), Error> {
    let (a, b) = p.split_once("..").unwrap_or((p, p));
    let (a, b) = (month_index(a)?, month_index(b)?);
    if b < a || b - a >= MAX_MONTHS {
        return Err(Error::invalid("period", format!("FROM..TO with FROM not after TO and at most {MAX_MONTHS} months")));
    }
    Ok((a, b))
}

/// Builds the report of `login` over `period`.
pub fn build(store: &Store, login: &str, period_text: &str, people: &People) -> Result<Value, Error> {
    let (from, to) = period(period_text)?;
    let p = GlobalParams::OPENDIGGER;
    let global = measure::global_openrank(store, &month_name(to), &p, people, &|_| {})?;
    // One account: the one the login names most recently in the period. A login another account
    // held earlier in the period is not theirs, and a renamed account is still found by its id.
    let mut dev_id = None;
    for idx in (from..=to).rev() {
        let (_, names, _) = measure::load_month_where(store, &month_name(idx), people, &|_, _| false)?;
        if let Some(id) = names.actors.iter().find(|(_, (_, l))| l.eq_ignore_ascii_case(login)).map(|(id, _)| *id) {
            dev_id = Some(id);
            break;
        }
    }
    let dev_id = dev_id.ok_or_else(|| Error::invalid("developer", format!("`{login}` has no events in {period_text}")))?;
    let mut months = Vec::new();
    let mut accounts = Vec::new();
    for idx in from..=to {
        let month = month_name(idx);
        // Only the rows this developer acted in or authored (a merged pull request counts for
        // its author): every count of theirs comes from them.
        let (rows, names, merges) = measure::load_month_where(store, &month, people, &|r, _| r.actor == dev_id || r.author == dev_id)?;
        let id = names.actors.contains_key(&dev_id).then_some(dev_id);
        for m in merges.iter().filter(|m| m.into_login.eq_ignore_ascii_case(login)) {
            if !accounts.contains(&m.login) {
                accounts.push(m.login.clone());
            }
        }
        let g = global.iter().find(|g| g.month == month);
        let Some(id) = id else {
            months.push(json!({"month": month, "activity": 0.0, "openrank": null, "repos": [], "events": {}, "links": []}));
            continue;
        };
        let skip = people.bots.clone().unwrap_or_default().ids(&names);
        let counts = oss_core::activity::counts(&rows, &skip);
        // A developer's activity is the sum of theirs per repo, in repo order, as
        // `measure::activity` sums it.
        let activity = counts.iter().filter(|((_, who), _)| *who == id).fold(0.0, |a, (_, c)| a + c.activity());
        let repos: Vec<Value> = counts
            .iter()
            .filter(|((_, who), _)| *who == id)
            .map(|((repo, _), c)| {
                json!({"repo": names.repo_name(*repo).unwrap_or(""), "activity": c.activity(),
                    "counts": {"issue_comment": c.issue_comment, "open_issue": c.open_issue, "open_pull": c.open_pull, "review_comment": c.review_comment, "merged_pull": c.merged_pull}})
            })
            .collect();
        let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
        let mut links: Vec<String> = Vec::new();
        let mut mine: Vec<_> = rows.iter().filter(|r| r.actor == id).collect();
        mine.sort_by_key(|r| (r.at_s, r.event_id));
        for r in &mine {
            *by_type.entry(names.type_name(r).to_string()).or_default() += 1;
            let repo = names.repo_name(r.repo).unwrap_or("");
            let link = match r.kind {
                Kind::Issues | Kind::IssueComment if r.number > 0 => Some(format!("https://github.com/{repo}/issues/{}", r.number)),
                Kind::PullRequest | Kind::PullRequestReview | Kind::PullRequestReviewComment if r.number > 0 => {
                    Some(format!("https://github.com/{repo}/pull/{}", r.number))
                }
                Kind::Push => Some(format!("https://github.com/{repo}")),
                _ => None,
            };
            if let Some(l) = link
                && links.len() < MAX_LINKS
                && !links.contains(&l)
            {
                links.push(l);
            }
        }
        let openrank = g.and_then(|g| g.values.iter().find(|v| v.kind == "user" && v.id == id)).map(|v| v.openrank);
        months.push(json!({
            "month": month, "activity": activity, "openrank": openrank,
            "openrank_iterations": g.map(|g| g.iterations), "openrank_converged": g.map(|g| g.converged),
            "repos": repos, "events": by_type, "links": links,
        }));
    }
    let inputs: BTreeMap<&str, &str> = global
        .iter()
        .filter(|g| month_index(&g.month).is_ok_and(|i| i >= from))
        .map(|g| (g.month.as_str(), g.fingerprint.as_str()))
        .collect();
    let w = p.weights;
    Ok(json!({
        "schema": "aiplus.oss.credit-report.v1",
        "developer": {"login": login, "id": dev_id, "merged_accounts": accounts},
        "period": {"from": month_name(from), "to": month_name(to)},
        "method": {
            "version": METHOD_VERSION,
            "activity": {"issue_comment": oss_core::activity::ISSUE_COMMENT_WEIGHT, "open_issue": oss_core::activity::OPEN_ISSUE_WEIGHT,
                "open_pull": oss_core::activity::OPEN_PULL_WEIGHT, "review_comment": oss_core::activity::REVIEW_COMMENT_WEIGHT,
                "merged_pull": oss_core::activity::PULL_MERGED_WEIGHT, "then": "square root of the weighted sum"},
            "global_openrank": {"weights": {"open_issue": w.open_issue, "issue_comment": w.issue_comment, "close_issue": w.close_issue,
                "review_comment": w.review_comment, "open_pull": w.open_pull, "push": w.push},
                "user_retention": p.user_retention, "repo_retention": p.repo_retention, "background_retention": p.background_retention,
                "attenuation": p.attenuation, "min_value": p.min_value, "max_repos_per_user": p.max_repos_per_user,
                "tolerance": p.settings.tolerance, "max_iterations": p.settings.max_iterations},
            "people": people.describe(),
        },
        "months": months,
        "inputs": inputs,
    }))
}

/// The content hash: SHA-256 of the canonical JSON (sorted keys, no spaces).
pub fn content_sha256(report: &Value) -> Result<String, Error> {
    // serde_json's maps are sorted, so a parsed report serialises back to the same text.
    let canonical = serde_json::to_vec(report).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(hex(&Sha256::digest(canonical)))
}

/// The signed text: what the report is, whose, when, its hash, and the log leaf recording it, so
/// none of them can be changed or moved to another report.
fn note_text(report: &Value, hash: &str, log_index: Option<u64>) -> String {
    let login = report["developer"]["login"].as_str().unwrap_or("");
    let (from, to) = (report["period"]["from"].as_str().unwrap_or(""), report["period"]["to"].as_str().unwrap_or(""));
    let leaf = log_index.map(|i| format!("log leaf {i}\n")).unwrap_or_default();
    format!("aiplus oss credit report\n{login}\n{from}..{to}\nsha256 {hash}\n{leaf}")
}

/// Signs a report with the platform's key, naming the log leaf that records it (if any).
pub fn sign(report: Value, key: &tlog::SignerKey, log_index: Option<u64>) -> Result<Signed, Error> {
    let hash = content_sha256(&report)?;
    let signature = key.sign(&note_text(&report, &hash, log_index)).map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(Signed { report, content_sha256: hash, signature, log_index })
}

/// Checks a signed report: its contents hash to the stated hash, and the note that states it is
/// signed by `key` and names this developer, period and hash.
pub fn verify(s: &Signed, key: &tlog::VerifierKey) -> Result<(), Error> {
    let hash = content_sha256(&s.report)?;
    if hash != s.content_sha256 {
        return Err(Error::invalid(
            "report",
            format!("the contents hash to {hash}, not the stated {}: they were edited", s.content_sha256),
        ));
    }
    let note = tlog::note::open(&s.signature, std::slice::from_ref(key)).map_err(|e| Error::invalid("signature", e.to_string()))?;
    if note.text != note_text(&s.report, &hash, s.log_index) {
        return Err(Error::invalid("signature", "the signed note is of another report"));
    }
    Ok(())
}

/// The transparency-log leaf kind that records an issued report.
pub const LEAF_KIND: &str = "oss.credit_report";

/// A report about to be issued: its contents and hash, or the report already issued with them.
pub enum Prepared {
    New { body: Value, content_sha256: String },
    Issued(Signed),
}

/// Builds `login`'s report over `period` and looks for one already issued with the same
/// contents: issuing it again gives that one, with no second log leaf.
pub fn prepare(store: &Store, login: &str, period_text: &str, people: &People) -> Result<Prepared, Error> {
    let body = build(store, login, period_text, people)?;
    let content_sha256 = content_sha256(&body)?;
    Ok(match saved(store, &content_sha256)? {
        Some(s) => Prepared::Issued(s),
        // Checked before the leaf is written, so that a full store leaves no leaf behind.
        None if ids(store)?.len() >= MAX_STORED => return Err(full(store)),
        None => Prepared::New { body, content_sha256 },
    })
}

/// What the log leaf of an issued report records.
pub fn leaf_record(content_sha256: &str, login: &str, period_text: &str, actor: &str) -> Value {
    json!({"content_sha256": content_sha256, "developer": login, "period": period_text, "actor": actor})
}

/// Most reports kept in the data dir.
pub const MAX_STORED: usize = 100_000;

fn reports_dir(store: &Store) -> std::path::PathBuf {
    store.root.join("reports")
}

/// Whether `id` is a report's id: its content hash, 64 lowercase hex digits.
pub fn is_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The issued report whose content hash is `id`, if there is one.
pub fn saved(store: &Store, id: &str) -> Result<Option<Signed>, Error> {
    if !is_id(id) {
        return Ok(None);
    }
    let path = reports_dir(store).join(format!("{id}.json"));
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path.display().to_string())(e)),
    }
}

/// The ids of the issued reports, in order.
pub fn ids(store: &Store) -> Result<Vec<String>, Error> {
    let dir = reports_dir(store);
    let mut out: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
            .filter(|id| is_id(id))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(Error::io(dir.display().to_string())(e)),
    };
    out.sort();
    Ok(out)
}

fn full(store: &Store) -> Error {
    Error::Full(format!("reports: {MAX_STORED} are kept already; remove old ones from {}", reports_dir(store).display()))
}

/// Keeps an issued report under its content hash, so it can be fetched again and counted.
pub fn save(store: &Store, s: &Signed) -> Result<(), Error> {
    if !is_id(&s.content_sha256) {
        return Err(Error::invalid("content_sha256", "64 lowercase hex digits"));
    }
    if ids(store)?.len() >= MAX_STORED {
        return Err(full(store));
    }
    let json = serde_json::to_vec_pretty(s).map_err(|e| Error::Corrupt(e.to_string()))?;
    crate::segment::write_atomic(&reports_dir(store).join(format!("{}.json", s.content_sha256)), &json)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A printable page of a signed report, with bar charts of activity and OpenRank per month.
pub fn html(s: &Signed) -> String {
    let r = &s.report;
    let months = r["months"].as_array().cloned().unwrap_or_default();
    let chart = |field: &str, colour: &str| {
        let vals: Vec<f64> = months.iter().map(|m| m[field].as_f64().unwrap_or(0.0)).collect();
        let max = vals.iter().copied().fold(0.0, f64::max).max(1e-9);
        let mut svg = format!(r#"<svg width="{}" height="140" role="img" aria-label="{field} per month">"#, 60 * vals.len() + 20);
        for (i, (v, m)) in vals.iter().zip(&months).enumerate() {
            let h = 100.0 * v / max;
            let x = 10 + 60 * i;
            svg.push_str(&format!(
                r#"<rect x="{x}" y="{:.1}" width="40" height="{h:.1}" fill="{colour}"/><text x="{}" y="{:.1}" font-size="10" text-anchor="middle">{v:.2}</text><text x="{}" y="135" font-size="10" text-anchor="middle">{}</text>"#,
                110.0 - h, x + 20, 106.0 - h, x + 20, esc(m["month"].as_str().unwrap_or(""))
            ));
        }
        svg + "</svg>"
    };
    let mut rows = String::new();
    for m in &months {
        for repo in m["repos"].as_array().into_iter().flatten() {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td></tr>",
                esc(m["month"].as_str().unwrap_or("")),
                esc(repo["repo"].as_str().unwrap_or("")),
                repo["activity"].as_f64().unwrap_or(0.0),
                esc(&repo["counts"].to_string())
            ));
        }
    }
    let mut events = String::new();
    for m in &months {
        let by: Vec<String> = m["events"].as_object().into_iter().flatten().map(|(k, v)| format!("{} {}", esc(k), v)).collect();
        events.push_str(&format!("<li>{}: {}</li>", esc(m["month"].as_str().unwrap_or("")), by.join(", ")));
    }
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Open-source credit report / 开源贡献证明: {login}</title>
<style>body{{font-family:sans-serif;max-width:56em;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:2px 6px}}code{{word-break:break-all}}</style></head><body>
<h1>Open-source credit report · 开源贡献证明</h1>
<p><b>{login}</b> · {from} – {to}</p>
<h2>Activity per month · 月度活跃度</h2>{a}
<h2>Global OpenRank per month · 全域 OpenRank</h2>{o}
<h2>Per repo · 按仓库</h2><table><tr><th>Month</th><th>Repo</th><th>Activity</th><th>Counts</th></tr>{rows}</table>
<h2>Events · 事件</h2><ul>{events}</ul>
<h2>Method · 方法</h2><p>{method}</p>
<h2>Verification · 验证</h2><p>Content SHA-256: <code>{hash}</code>{log}</p><pre>{sig}</pre>
<p>Check offline: <code>aiplus oss verify REPORT.json --key log-key.pub</code></p></body></html>"#,
        login = esc(r["developer"]["login"].as_str().unwrap_or("")),
        from = esc(r["period"]["from"].as_str().unwrap_or("")),
        to = esc(r["period"]["to"].as_str().unwrap_or("")),
        a = chart("activity", "#2b6cb0"),
        o = chart("openrank", "#c05621"),
        method = esc(r["method"]["version"].as_str().unwrap_or("")),
        hash = s.content_sha256,
        log = s.log_index.map(|i| format!(" · transparency-log leaf {i}")).unwrap_or_default(),
        sig = esc(&s.signature),
    )
}
