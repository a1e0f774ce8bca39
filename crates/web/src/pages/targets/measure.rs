//! What the platform can measure of the "AI+" Action's targets, month by month: each indicator
//! is one entry of a list, built from one bounded read of the store or a service, so adding one
//! is a few lines here (and its three strings).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;

use crate::SharedConsole;
use crate::error::ConsoleError;

/// Months in a trend, the current one last.
pub const MONTHS: usize = 12;
/// Most agent-step ledger rows read for the trend (a year of them on a busy platform is more;
/// the page then says the figures were cut).
const MAX_STEP_ROWS: u32 = 500_000;
/// Most tagged job-run ledger rows read for GPU-hours by action area.
const MAX_RUN_ROWS: u32 = 500_000;
/// Most jobs read for the placement figures.
const MAX_JOBS: u32 = 200_000;
/// Most settlements, and evaluation runs, read.
const MAX_SETTLEMENTS: i64 = 100_000;
const MAX_EVAL_RUNS: i64 = 10_000;
/// China Standard Time, in which months are counted (as the console shows times).
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// How a value reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A fraction from 0 to 1, shown as a percentage.
    Share,
    Count,
    KgPerGpuHour,
    Yuan,
    GpuHours,
}

impl Unit {
    pub fn code(self) -> &'static str {
        match self {
            Unit::Share => "%",
            Unit::Count => "count",
            Unit::KgPerGpuHour => "kgCO2/GPU-h",
            Unit::Yuan => "CNY",
            Unit::GpuHours => "GPU-h",
        }
    }
}

/// What the store answered for an indicator.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// One value per month of [`Months`], the current month last.
    Monthly(Vec<f64>),
    /// Only the value now (what is stored has no history to count by month).
    Now(f64),
    /// The store cannot answer it yet; the key of the sentence that says why.
    NotYet(&'static str),
}

/// One indicator; `name`, `definition` and `source` are i18n keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Indicator {
    /// A stable id, for the CSV and the page's anchors.
    pub id: &'static str,
    pub name: &'static str,
    pub definition: &'static str,
    pub source: &'static str,
    pub unit: Unit,
    /// Drawn against the Action's adoption targets (2027 ≥70%, 2030 ≥90%).
    pub adoption: bool,
    pub measure: Measure,
    /// The name key of the group the indicator is one part of (the six areas' GPU-hours): the
    /// group shares its definition, source and chart.
    pub group: Option<&'static str>,
}

/// The months of a trend: `starts_ms[i]..starts_ms[i + 1]` is month `labels[i]`.
pub struct Months {
    pub labels: Vec<String>,
    pub starts_ms: Vec<i64>,
}

impl Months {
    /// The [`MONTHS`] months up to the one holding `now_ms`, in China Standard Time.
    pub fn ending_at(now_ms: i64) -> Self {
        let here = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms + CST_OFFSET_MS) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let (mut y, mut m) = (here.year(), u8::from(here.month()));
        let mut firsts = vec![(y, m)];
        for _ in 0..MONTHS {
            (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
            firsts.push((y, m));
        }
        firsts.reverse();
        // The first entry is one month before the trend; drop it and add the month after.
        firsts.remove(0);
        let (ly, lm) = firsts[firsts.len() - 1];
        let next = if lm == 12 { (ly + 1, 1) } else { (ly, lm + 1) };
        let start = |(y, m): (i32, u8)| -> i64 {
            let month = time::Month::try_from(m).unwrap_or(time::Month::January);
            time::Date::from_calendar_date(y, month, 1).map_or(0, |d| d.midnight().assume_utc().unix_timestamp() * 1000 - CST_OFFSET_MS)
        };
        let labels = firsts.iter().map(|(y, m)| format!("{y:04}-{m:02}")).collect();
        let mut starts_ms: Vec<i64> = firsts.iter().map(|p| start(*p)).collect();
        starts_ms.push(start(next));
        Months { labels, starts_ms }
    }

    pub fn start_ms(&self) -> i64 {
        self.starts_ms[0]
    }

    pub fn end_ms(&self) -> i64 {
        self.starts_ms[self.starts_ms.len() - 1]
    }

    /// The month `at_ms` falls in, if it is one of these.
    pub fn index(&self, at_ms: i64) -> Option<usize> {
        if at_ms < self.start_ms() || at_ms >= self.end_ms() {
            return None;
        }
        Some(self.starts_ms.partition_point(|s| *s <= at_ms) - 1)
    }
}

/// The parts of a stored job the placement figures need (unknown fields are ignored, so the
/// job document may grow).
#[derive(Deserialize)]
struct PlacedJob {
    spec: PlacedSpec,
    placement: Option<PlacedAt>,
}

#[derive(Deserialize)]
struct PlacedSpec {
    gpus: u32,
    gpu_milli: u32,
    duration_s: u64,
}

#[derive(Deserialize)]
struct PlacedAt {
    cluster: String,
    explanation: PlacedWhy,
}

#[derive(Deserialize)]
struct PlacedWhy {
    chosen: compute::scheduler::ScoreTerms,
    /// What nearest-hub placement would have cost (absent without an origin hub, and on jobs
    /// placed before explanations recorded it).
    #[serde(default)]
    nearest: Option<compute::scheduler::ScoreTerms>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Every indicator, measured now, in the page's order.
pub async fn indicators(c: &SharedConsole, months: &Months) -> Result<(Vec<Indicator>, bool), ConsoleError> {
    let (from, to) = (months.start_ms(), months.end_ms());
    let mut cut = false;

    // Agents: a model step of an agent run is a gateway request the gateway marked with its run
    // (`refs.agent_run`, set in process only, so no client can claim it).
    let steps: Vec<store::UsageRow<ledger::UsageEvent<serde_json::Value>>> =
        c.store.usage_like("gateway", "%\"agent_run\"%", from, to, MAX_STEP_ROWS).await?;
    cut |= steps.len() >= MAX_STEP_ROWS as usize;
    let mut agent_requests = [0.0; MONTHS];
    let mut agent_tenants: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); MONTHS];
    for e in &steps {
        if e.doc.reference("agent_run").is_empty() {
            continue;
        }
        if let Some(i) = months.index(e.at_ms) {
            agent_requests[i] += 1.0;
            agent_tenants[i].insert(&e.tenant);
        }
    }
    let mut requests = Vec::with_capacity(MONTHS);
    for w in months.starts_ms.windows(2) {
        requests.push(c.store.usage_count("gateway", w[0], w[1]).await? as f64);
    }
    let tenants: Vec<(String, i64, serde_json::Value)> = c.store.tenants().await?;
    let tenant_share: Vec<f64> = (0..MONTHS)
        .map(|i| {
            let registered = tenants.iter().filter(|t| t.1 < months.starts_ms[i + 1]).count();
            ratio(agent_tenants[i].len() as f64, registered as f64)
        })
        .collect();
    let traffic_share: Vec<f64> = (0..MONTHS).map(|i| ratio(agent_requests[i], requests[i])).collect();

    // GPU-hours by action area: a tagged job's run writes its area into its ledger row's refs
    // (`refs.action_area`), so the ledger alone answers. A run counts in the month it ended.
    let runs: Vec<store::UsageRow<ledger::UsageEvent<serde_json::Value>>> =
        c.store.usage_like("compute", "%\"action_area\"%", from, to, MAX_RUN_ROWS).await?;
    cut |= runs.len() >= MAX_RUN_ROWS as usize;
    let mut by_area: BTreeMap<vocab::ActionArea, Vec<f64>> = vocab::ActionArea::ALL.iter().map(|a| (*a, vec![0.0; MONTHS])).collect();
    for r in &runs {
        let (Some(area), Some(i)) = (vocab::ActionArea::parse(r.doc.reference("action_area")), months.index(r.at_ms)) else { continue };
        if let Some(series) = by_area.get_mut(&area) {
            series[i] += r.doc.quantity / 3600.0;
        }
    }

    // Placed work: each placed job's chosen cluster, energy and carbon as its placement
    // explained them, and its GPU-hours as asked (GPUs × share × estimated duration).
    let network = match &c.compute {
        Some(svc) => svc.network().await,
        None => c.seed_network.clone(),
    };
    let green: HashMap<&str, f64> = network.spec.clusters.iter().map(|k| (k.id.as_str(), k.green_share)).collect();
    let jobs: Vec<store::JobRow<PlacedJob>> = c.store.jobs_submitted(from, to, MAX_JOBS).await?;
    cut |= jobs.len() >= MAX_JOBS as usize;
    let (mut energy, mut green_energy, mut carbon, mut gpu_h, mut saved) =
        (vec![0.0; MONTHS], vec![0.0; MONTHS], vec![0.0; MONTHS], vec![0.0; MONTHS], vec![0.0; MONTHS]);
    for j in &jobs {
        let (Some(p), Some(i)) = (&j.doc.placement, months.index(j.submitted_ms)) else { continue };
        let t = &p.explanation.chosen;
        energy[i] += t.energy_kwh;
        green_energy[i] += t.energy_kwh * green.get(p.cluster.as_str()).copied().unwrap_or(0.0);
        carbon[i] += t.carbon_kg;
        gpu_h[i] += f64::from(j.doc.spec.gpus) * f64::from(j.doc.spec.gpu_milli) / 1000.0 * j.doc.spec.duration_s as f64 / 3600.0;
        // Energy cost and priced carbon: what placement changes. Delay is left out, since a job
        // that has room now waits nowhere.
        if let Some(n) = &p.explanation.nearest {
            saved[i] += (n.energy_cost_cny + n.carbon_cost_cny) - (t.energy_cost_cny + t.carbon_cost_cny);
        }
    }
    let green_share: Vec<f64> = (0..MONTHS).map(|i| ratio(green_energy[i], energy[i])).collect();
    let carbon_per_gpu_h: Vec<f64> = (0..MONTHS).map(|i| ratio(carbon[i], gpu_h[i])).collect();

    // Governance: the model versions of the filings that stand, and models with a finished
    // evaluation (counted up to each month's end).
    let models_filed = match &c.governance {
        Some((g, _)) => {
            let now = c.now_ms();
            let standing = g
                .filings
                .list(None, None, now)
                .into_iter()
                .filter(|v| matches!(v.filing.state, govern::lifecycle::State::Filed | govern::lifecycle::State::Changed));
            let models: BTreeSet<String> = standing.flat_map(|v| v.filing.filed_models).collect();
            Measure::Now(models.len() as f64)
        }
        None => Measure::NotYet("targets_no_governance"),
    };
    let models_evaluated = match &c.eval {
        Some(svc) => {
            let runs = svc.list(MAX_EVAL_RUNS).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
            let done: Vec<(i64, &str)> = runs
                .iter()
                .filter(|r| r.state == eval::service::RunState::Succeeded)
                .map(|r| (r.finished_ms.unwrap_or(r.created_ms), r.request.model.as_str()))
                .collect();
            Measure::Monthly(
                (0..MONTHS)
                    .map(|i| {
                        done.iter().filter(|(at, _)| *at < months.starts_ms[i + 1]).map(|(_, m)| *m).collect::<BTreeSet<_>>().len() as f64
                    })
                    .collect(),
            )
        }
        None => Measure::NotYet("targets_no_eval"),
    };

    // The data exchange: registrations that stand, and what settlements paid contributors.
    let registered = c.store.registrations_count("registered").await? as f64;
    let settlements = c.store.settlements_between(from, to, MAX_SETTLEMENTS).await?;
    cut |= settlements.len() >= MAX_SETTLEMENTS as usize;
    let mut shared_yuan = vec![0.0; MONTHS];
    for doc in &settlements {
        let s: data::exchange::Settlement = serde_json::from_str(doc).map_err(|e| ConsoleError::Internal(format!("settlement: {e}")))?;
        if let Some(i) = months.labels.iter().position(|l| *l == s.period) {
            shared_yuan[i] += (s.revenue_fen - s.fee_fen) as f64 / 100.0;
        }
    }

    // Open source: the credit reports issued, kept under their content hash in the data dir.
    let oss_reports = match &c.oss {
        Some(oss) => {
            let oss = oss.clone();
            let ids =
                tokio::task::spawn_blocking(move || oss::report::ids(&oss)).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
            Measure::Now(ids.map_err(|e| ConsoleError::Internal(e.to_string()))?.len() as f64)
        }
        None => Measure::NotYet("targets_no_oss"),
    };

    let ind = |id, unit, adoption, measure| Indicator {
        id,
        name: key(id, 0),
        definition: key(id, 1),
        source: key(id, 2),
        unit,
        adoption,
        measure,
        group: None,
    };
    let mut list = vec![
        ind("tenants_with_agents", Unit::Share, true, Measure::Monthly(tenant_share)),
        ind("agent_traffic", Unit::Share, true, Measure::Monthly(traffic_share)),
    ];
    // One row per area, sharing the definition and source of GPU-hours by area.
    for (area, series) in by_area {
        let id = area_id(area);
        list.push(Indicator {
            id,
            name: key(id, 0),
            definition: key("gpu_hours_by_area", 1),
            source: key("gpu_hours_by_area", 2),
            unit: Unit::GpuHours,
            adoption: false,
            measure: Measure::Monthly(series),
            group: Some(key("gpu_hours_by_area", 0)),
        });
    }
    list.extend([
        ind("green_share", Unit::Share, false, Measure::Monthly(green_share)),
        ind("carbon_per_gpu_hour", Unit::KgPerGpuHour, false, Measure::Monthly(carbon_per_gpu_h)),
        ind("placement_savings", Unit::Yuan, false, Measure::Monthly(saved)),
        ind("models_filed", Unit::Count, false, models_filed),
        ind("models_evaluated", Unit::Count, false, models_evaluated),
        ind("datasets_registered", Unit::Count, false, Measure::Now(registered)),
        ind("revenue_shared", Unit::Yuan, false, Measure::Monthly(shared_yuan)),
        ind("oss_reports", Unit::Count, false, oss_reports),
    ]);
    Ok((list, cut))
}

/// The indicator id of an area's GPU-hours (its name key is `targets_ind_<id>_name`).
fn area_id(a: vocab::ActionArea) -> &'static str {
    match a {
        vocab::ActionArea::Science => "gpu_hours_science",
        vocab::ActionArea::Industry => "gpu_hours_industry",
        vocab::ActionArea::Consumption => "gpu_hours_consumption",
        vocab::ActionArea::Livelihood => "gpu_hours_livelihood",
        vocab::ActionArea::Governance => "gpu_hours_governance",
        vocab::ActionArea::GlobalCooperation => "gpu_hours_global_cooperation",
    }
}

/// The i18n keys of an indicator: its name, definition and source, by a fixed naming rule, so
/// an indicator's three strings sit together in the table.
fn key(id: &str, which: usize) -> &'static str {
    let found = super::strings::STRINGS
        .iter()
        .map(|s| s.0)
        .find(|k| k.strip_prefix("targets_ind_").and_then(|r| r.strip_suffix(["_name", "_def", "_src"][which])) == Some(id));
    found.unwrap_or("targets_unknown")
}

/// Entered values grouped by indicator name, for their trends: (date, value) oldest first.
pub fn entered_trends(entries: &[super::Entry]) -> BTreeMap<(String, String), Vec<(String, f64)>> {
    let mut out: BTreeMap<(String, String), Vec<(String, f64)>> = BTreeMap::new();
    for e in entries {
        out.entry((e.name.clone(), e.unit.clone())).or_default().push((e.date.clone(), e.value));
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.0.cmp(&b.0));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn months_are_calendar_months_in_china_standard_time() {
        // 2025-01-01 10:00 CST.
        let m = Months::ending_at(1_735_696_800_000);
        assert_eq!(m.labels.len(), MONTHS);
        assert_eq!((m.labels[0].as_str(), m.labels[MONTHS - 1].as_str()), ("2024-02", "2025-01"));
        // 2025-01-01 00:00 CST is 2024-12-31 16:00 UTC.
        assert_eq!(m.starts_ms[MONTHS - 1], 1_735_660_800_000);
        assert_eq!(m.index(1_735_660_800_000), Some(MONTHS - 1));
        assert_eq!(m.index(1_735_660_799_999), Some(MONTHS - 2));
        assert_eq!(m.index(0), None);
        assert_eq!(m.index(m.end_ms()), None);
    }

    #[test]
    fn every_indicator_has_its_three_strings() {
        for id in [
            "tenants_with_agents",
            "agent_traffic",
            "gpu_hours_by_area",
            "green_share",
            "carbon_per_gpu_hour",
            "placement_savings",
            "models_filed",
            "models_evaluated",
            "datasets_registered",
            "revenue_shared",
            "oss_reports",
        ] {
            for w in 0..3 {
                assert_ne!(key(id, w), "targets_unknown", "{id} {w}");
            }
        }
        // The areas' rows have names of their own and share the definition and source above.
        for a in vocab::ActionArea::ALL {
            assert_ne!(key(area_id(a), 0), "targets_unknown", "{a:?}");
        }
    }
}
