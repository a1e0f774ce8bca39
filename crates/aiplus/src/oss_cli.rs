//! `aiplus oss`: open-source contribution evaluation on a data dir, offline like `serve`:
//! ingest GH Archive files, generate GH-like ones, and read activity and OpenRank.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use oss::ingest::{Store, files_in, ingest_files};
use oss::measure::{self, People};
use oss_core::global::GlobalParams;
use oss_core::people::Alias;
use serde_json::json;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct OssArgs {
    #[command(subcommand)]
    command: OssCommand,
}

/// Where the data lives, shared by every subcommand.
#[derive(clap::Args, Debug, Clone)]
struct Place {
    /// The data dir (default: the config's `server.data_dir`); oss keeps its files under `oss/`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Config file (TOML; AIPLUS_* environment variables override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// An alias file (TOML): `[[alias]] developer = "alice"  logins = ["alice-work"]`, merging a
    /// developer's accounts. Every merge made is listed in the results.
    #[arg(long)]
    aliases: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum OssCommand {
    /// Ingest GH Archive files (`YYYY-MM-DD-H.json.gz`, or any ndjson, gzipped or not), given
    /// as files, directories or a URL list, into monthly segments: on this machine's cores, or
    /// with --on-cluster as one job per day on a cluster's Slurm or Ray engine, merged here.
    /// Resumable and idempotent per file: a file already ingested with the same contents is
    /// skipped. Bad lines are counted and listed with their file and line; they never stop the
    /// ingest.
    Ingest {
        /// Files, or directories whose files are taken (or give --urls instead).
        #[arg(required_unless_present = "urls")]
        paths: Vec<PathBuf>,
        /// A file of URLs, one a line (`https://data.gharchive.org/2026-09-01-0.json.gz`), fetched
        /// into the data dir's oss/downloads/ first; a file fetched whole is not fetched again.
        #[arg(long, conflicts_with = "paths")]
        urls: Option<PathBuf>,
        /// Allow URLs on this machine or its link-local network (a mirror there).
        #[arg(long)]
        allow_private_hosts: bool,
        #[command(flatten)]
        place: Place,
        /// Threads (default: every core; with --on-cluster, threads per job, default 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
        threads: Option<u32>,
        #[command(flatten)]
        cluster: crate::oss_cluster::ClusterArgs,
        #[arg(long)]
        json: bool,
    },
    /// Write GH-like hourly files from a seed (heavy-tailed activity, bots, the real sample's
    /// event-type mix), for scale tests and benchmarks.
    Generate {
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 20_000)]
        developers: u32,
        #[arg(long, default_value_t = 10_000)]
        repos: u32,
        /// First hour (RFC 3339).
        #[arg(long, default_value = "2026-09-01T00:00:00Z")]
        start: String,
        #[arg(long, default_value_t = 24)]
        hours: u32,
        #[arg(long, default_value_t = 200)]
        pad_bytes: u32,
    },
    /// OpenDigger's activity for a month: repos or developers, most active first.
    Activity {
        #[command(flatten)]
        place: Place,
        /// YYYY-MM.
        #[arg(long)]
        period: String,
        #[arg(long, conflicts_with = "developers")]
        repos: bool,
        #[arg(long)]
        developers: bool,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Global OpenRank (every stored month up to --period, each inheriting from the last), or
    /// community OpenRank inside --community repos (`owner/name`, or `owner/*` for an
    /// organisation).
    Openrank {
        #[command(flatten)]
        place: Place,
        #[arg(long)]
        period: String,
        #[arg(long, conflicts_with = "developers")]
        repos: bool,
        #[arg(long)]
        developers: bool,
        /// An organisation: its repos by global OpenRank, or with --developers its developers by
        /// community OpenRank inside its repos.
        #[arg(long)]
        org: Option<String>,
        #[arg(long, value_delimiter = ',')]
        community: Vec<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// A credit report of a developer over a period (`YYYY-MM..YYYY-MM`): activity and global
    /// OpenRank per month and per repo, events by type with links, the method and its
    /// parameters, and a content hash signed by the platform's log key and recorded as a
    /// transparency-log leaf. Writes the signed JSON and a printable HTML page.
    Report {
        #[command(flatten)]
        place: Place,
        #[arg(long)]
        developer: String,
        #[arg(long)]
        period: String,
        /// The signed JSON (default: report-LOGIN-PERIOD.json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The printable page (default: the JSON's name with .html).
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Check a credit report offline: its contents hash to the signed hash, and the signature
    /// is the platform's (its public key, `log-key.pub`, as published to registrars).
    Verify {
        report: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Measure ingest (events per second on one core, from gz files) and global OpenRank for one
    /// month (time and peak memory), on generated events.
    Bench {
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1_000_000)]
        developers: u32,
        #[arg(long, default_value_t = 500_000)]
        repos: u32,
        #[arg(long, default_value_t = 200)]
        pad_bytes: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

fn store(place: &Place) -> anyhow::Result<(Store, People)> {
    let dir = match &place.data_dir {
        Some(d) => d.clone(),
        None => Config::load(place.config.as_deref())?.server.data_dir,
    };
    let aliases = match &place.aliases {
        Some(p) => read_aliases(p)?,
        None => vec![],
    };
    Ok((Store::new(&dir), People { bots: None, aliases }))
}

fn read_aliases(path: &Path) -> anyhow::Result<Vec<Alias>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        alias: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        developer: String,
        logins: Vec<String>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: File = toml::from_str(&text).with_context(|| format!("{}: an alias file", path.display()))?;
    Ok(f.alias.into_iter().map(|e| Alias { developer: e.developer, logins: e.logins }).collect())
}

pub fn oss(args: OssArgs) -> anyhow::Result<()> {
    match args.command {
        OssCommand::Ingest { paths, urls, allow_private_hosts, place, threads, cluster, json } => {
            let files = match urls {
                None => {
                    let mut files = Vec::new();
                    for p in &paths {
                        if p.is_dir() { files.extend(files_in(p)?) } else { files.push(p.clone()) }
                    }
                    files
                }
                Some(list) => {
                    let (store, _) = store(&place)?;
                    let urls = crate::oss_fetch::read_list(&list)?;
                    let bar = indicatif::ProgressBar::new(urls.len() as u64);
                    let files =
                        crate::oss_fetch::fetch_all(&urls, &store.root.join("downloads"), allow_private_hosts, &|n| bar.set_position(n))?;
                    bar.finish_and_clear();
                    files
                }
            };
            match &cluster.on_cluster {
                Some(c) => ingest_on_cluster(&files, &place, &cluster, c, threads.unwrap_or(1), json),
                None => ingest(&files, &place, threads, json),
            }
        }
        OssCommand::Generate { dir, events, seed, developers, repos, start, hours, pad_bytes } => {
            let start_s = time::OffsetDateTime::parse(&start, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--start: `{start}` is not an RFC 3339 time"))?
                .unix_timestamp();
            let s = oss::generate::Settings { seed, events, developers, repos, start_s, hours, pad_bytes, ..Default::default() };
            std::fs::create_dir_all(&dir)?;
            let bar = indicatif::ProgressBar::new(events);
            let files = oss::generate::generate(&s, &dir, &|n| bar.set_position(n))?;
            bar.finish_and_clear();
            println!("wrote {} files, {events} events, into {}", files.len(), dir.display());
            Ok(())
        }
        OssCommand::Activity { place, period, repos: _, developers, limit, json } => {
            let (store, people) = store(&place)?;
            oss::month_index(&period)?;
            let (repos, devs) = measure::activity(&store, &period, &people)?;
            let rows = if developers { devs } else { repos };
            let rows: Vec<_> = rows.into_iter().take(limit).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({"period": period, "data": rows}))?);
            } else {
                println!(
                    "{:<4} {:<40} {:>10} {:>6} {:>6} {:>6} {:>6} {:>6}",
                    "#",
                    if developers { "developer" } else { "repo" },
                    "activity",
                    "cmt",
                    "issue",
                    "pr",
                    "review",
                    "merged"
                );
                for (i, r) in rows.iter().enumerate() {
                    let c = r.counts;
                    println!(
                        "{:<4} {:<40} {:>10.3} {:>6} {:>6} {:>6} {:>6} {:>6}",
                        i + 1,
                        r.name,
                        r.activity,
                        c.issue_comment,
                        c.open_issue,
                        c.open_pull,
                        c.review_comment,
                        c.merged_pull
                    );
                }
            }
            Ok(())
        }
        OssCommand::Openrank { place, period, repos: _, developers, org, community, limit, json } => {
            let (store, people) = store(&place)?;
            oss::month_index(&period)?;
            if !community.is_empty() {
                return show_community(&store, &period, &community, &people, limit, json);
            }
            if let Some(o) = org.as_ref().filter(|_| developers) {
                // Developers have no organisation: they are ranked inside its repos.
                return show_community(&store, &period, &[format!("{o}/*")], &people, limit, json);
            }
            let months =
                measure::global_openrank(&store, &period, &GlobalParams::OPENDIGGER, &people, &|m| eprintln!("global OpenRank: {m}"))?;
            let m = months.into_iter().find(|m| m.month == period).with_context(|| format!("--period: no events stored for {period}"))?;
            let kind = if developers { "user" } else { "repo" };
            let rows: Vec<_> = m
                .values
                .iter()
                .filter(|r| r.kind == kind && org.as_ref().is_none_or(|o| r.org.as_deref() == Some(o.as_str())))
                .take(limit)
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "period": period, "iterations": m.iterations, "tolerance": m.tolerance, "max_iterations": m.max_iterations,
                        "delta": m.delta, "converged": m.converged, "events": m.events, "merges": m.merges, "data": rows,
                    }))?
                );
            } else {
                println!(
                    "{period}: {} events, {} iterations (tolerance {}, cap {}), last change {:.4}{}",
                    m.events,
                    m.iterations,
                    m.tolerance,
                    m.max_iterations,
                    m.delta,
                    if m.converged { "" } else { " — did not converge" }
                );
                for (i, r) in rows.iter().enumerate() {
                    println!("{:<4} {:<40} {:>10.3} {:>10.3}", i + 1, r.name, r.openrank, r.activity);
                }
            }
            Ok(())
        }
        OssCommand::Report { place, developer, period, out, html } => report(&place, &developer, &period, out, html),
        OssCommand::Verify { report, key } => {
            let text = std::fs::read_to_string(&report).with_context(|| format!("reading {}", report.display()))?;
            let signed: oss::report::Signed =
                serde_json::from_str(&text).with_context(|| format!("{}: not a credit report", report.display()))?;
            let key = tlog::VerifierKey::parse(&std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?)?;
            oss::report::verify(&signed, &key)?;
            println!(
                "verified: {} {}..{}, content sha256 {}",
                signed.report["developer"]["login"], signed.report["period"]["from"], signed.report["period"]["to"], signed.content_sha256
            );
            Ok(())
        }
        OssCommand::Bench { events, developers, repos, pad_bytes, seed, json } => bench(events, developers, repos, pad_bytes, seed, json),
    }
}

fn report(place: &Place, developer: &str, period: &str, out: Option<PathBuf>, html: Option<PathBuf>) -> anyhow::Result<()> {
    let mut cfg = Config::load(place.config.as_deref())?;
    if let Some(d) = &place.data_dir {
        cfg.server.data_dir = d.clone();
    }
    let (store, people) = store(place)?;
    let key = crate::log_files::key(&cfg, &crate::log_files::key_path(&cfg))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (signed, fresh) = rt.block_on(async {
        let st = store::Store::open(&cfg.server.data_dir).await.context("opening the store")?;
        let log = crate::log_files::open(&cfg, st).await?;
        let now = jobs::Clock::now_ms(&jobs::SystemClock);
        let issued = api::oss_routes::issue(Arc::new(store), people, (&log, &key), developer, period, ("cli", "operator"), now).await;
        anyhow::Ok(issued?)
    })?;
    let index = signed.log_index.unwrap_or(0);
    let out = out.unwrap_or_else(|| PathBuf::from(format!("report-{developer}-{}.json", period.replace("..", "_"))));
    let html_path = html.unwrap_or_else(|| out.with_extension("html"));
    std::fs::write(&out, serde_json::to_vec_pretty(&signed)?).with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&html_path, oss::report::html(&signed)).with_context(|| format!("writing {}", html_path.display()))?;
    let again = if fresh { "" } else { " (issued before with the same contents)" };
    println!(
        "{} and {}: content sha256 {}, transparency-log leaf {index}{again}",
        out.display(),
        html_path.display(),
        signed.content_sha256
    );
    Ok(())
}

fn show_community(store: &Store, period: &str, repos: &[String], people: &People, limit: usize, json: bool) -> anyhow::Result<()> {
    let set: BTreeSet<String> = repos.iter().cloned().collect();
    let m = oss::community::community_openrank(store, period, &set, people)?;
    let rows: Vec<_> = m.members.iter().filter(|x| x.0 == "user").take(limit).collect();
    if json {
        let data: Vec<_> = rows.iter().map(|(_, n, v)| json!({"developer": n, "openrank": v})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"period": period, "community": repos, "iterations": m.iterations, "tolerance": m.tolerance, "max_iterations": m.max_iterations, "converged": m.converged, "data": data})
            )?
        );
    } else {
        println!(
            "{period} community {}: {} iterations (tolerance {}, cap {})",
            repos.join(","),
            m.iterations,
            m.tolerance,
            m.max_iterations
        );
        for (i, (_, n, v)) in rows.iter().enumerate() {
            println!("{:<4} {:<40} {:>10.3}", i + 1, n, v);
        }
    }
    Ok(())
}

fn ingest_on_cluster(
    files: &[PathBuf],
    place: &Place,
    args: &crate::oss_cluster::ClusterArgs,
    cluster: &str,
    threads: u32,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut cfg = Config::load(place.config.as_deref())?;
    if let Some(d) = &place.data_dir {
        cfg.server.data_dir = d.clone();
    }
    let (store, _) = store(place)?;
    let t = Instant::now();
    let sum = crate::oss_cluster::ingest(files, &store, &cfg, args, cluster, threads)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&sum)?);
    } else {
        println!(
            "{} days on {cluster} ({}): {} jobs submitted, {} picked up, {} staged and {} merged before, {} lost and run again",
            sum.days, sum.engine, sum.submitted, sum.reattached, sum.staged_before, sum.merged_before, sum.lost
        );
        print_summary(&sum.merged, t);
    }
    Ok(())
}

fn print_summary(sum: &oss::ingest::Summary, t: Instant) {
    println!(
        "{} files ({} unchanged), {} events, {} bad lines, in {:.1} s",
        sum.files,
        sum.unchanged,
        sum.events,
        sum.bad_lines,
        t.elapsed().as_secs_f64()
    );
    for b in &sum.bad {
        println!("  {}:{}: {}", b.file, b.line, b.reason);
    }
}

fn ingest(files: &[PathBuf], place: &Place, threads: Option<u32>, as_json: bool) -> anyhow::Result<()> {
    let (store, _) = store(place)?;
    let threads = threads.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |t| t as usize);
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    let t = Instant::now();
    let sum = ingest_files(&store, files, threads, &|n, _| bar.set_position(n))?;
    bar.finish_and_clear();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&sum)?);
    } else {
        print_summary(&sum, t);
    }
    Ok(())
}

fn bench(events: u64, developers: u32, repos: u32, pad_bytes: u32, seed: u64, as_json: bool) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir().join(format!("aiplus-oss-bench-{}", std::process::id()));
    let (src, data) = (tmp.join("gharchive"), tmp.join("data"));
    std::fs::create_dir_all(&src)?;
    let s = oss::generate::Settings { seed, events, developers, repos, pad_bytes, hours: 24, ..Default::default() };
    eprintln!("generating {events} events over 24 hours ({developers} developers, {repos} repos, seed {seed})");
    let bar = indicatif::ProgressBar::new(events);
    let files = oss::generate::generate(&s, &src, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    let gz_bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let store = Store::new(&data);
    let t = Instant::now();
    let sum = ingest_files(&store, &files, 1, &|_, _| {})?;
    let ingest_s = t.elapsed().as_secs_f64();
    let raw_bytes = measure_raw_bytes(&files)?;
    let t = Instant::now();
    let month = oss::month_of(s.start_s);
    let months = measure::global_openrank(&store, &month, &GlobalParams::OPENDIGGER, &People::default(), &|_| {})?;
    let openrank_s = t.elapsed().as_secs_f64();
    let m = months.last().context("no month computed")?;
    let peak = crate::bench::peak_rss_mib();
    std::fs::remove_dir_all(&tmp).ok();
    let report = json!({
        "events": sum.events, "bad_lines": sum.bad_lines, "gz_bytes": gz_bytes, "mean_event_bytes": raw_bytes as f64 / events as f64,
        "ingest_s": ingest_s, "ingest_events_per_s_one_core": sum.events as f64 / ingest_s,
        "openrank_month_s": openrank_s, "openrank_nodes": m.values.len(), "openrank_iterations": m.iterations, "openrank_converged": m.converged,
        "peak_rss_mib": peak,
        "generator": {"seed": seed, "events": events, "developers": developers, "repos": repos, "hours": 24, "skew": s.skew, "bot_share": s.bot_share, "pad_bytes": pad_bytes},
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "ingest: {} events from {:.0} MB of gz ({:.0} bytes per event unpacked) on one core in {ingest_s:.1} s: {:.0} events/s",
            sum.events,
            gz_bytes as f64 / 1e6,
            raw_bytes as f64 / events as f64,
            sum.events as f64 / ingest_s
        );
        println!(
            "global OpenRank for {month}: {} nodes, {} iterations, {openrank_s:.1} s; peak memory of this process {:.0} MiB",
            m.values.len(),
            m.iterations,
            peak.unwrap_or(0.0)
        );
    }
    Ok(())
}

/// The unpacked size of the generated files, for the bytes-per-event figure.
fn measure_raw_bytes(files: &[PathBuf]) -> anyhow::Result<u64> {
    let mut total = 0;
    for f in files {
        let mut z = flate2::read::MultiGzDecoder::new(std::fs::File::open(f)?);
        total += std::io::copy(&mut z, &mut std::io::sink())?;
    }
    Ok(total)
}
