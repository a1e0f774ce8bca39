//! A seeded generator of GH-like events, for scale tests and benchmarks: GH Archive's hourly
//! files (`YYYY-MM-DD-H.json.gz`, one JSON event per line, in the post-2025 form whose PushEvents
//! carry no commits).
//!
//! Realistic where the measures care:
//! - activity per developer and per repo is heavy-tailed (Zipf ranks, exponent `skew`), and
//!   developers mostly work in a few repos of their own;
//! - a share of accounts are bots (`*[bot]` and `*-bot` logins), among the most active;
//! - the event-type mix is the real sample's (`../shared/oss/gharchive/pinot`: 425 pushes, 103
//!   creates, 64 pull requests, 58 watches, 36 issue comments, … of 800);
//! - ids are consistent: a comment's issue exists, a merged pull request names its author.
//!
//! The same settings and seed give the same bytes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use flate2::Compression;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::Error;
use crate::segment::write_atomic;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    pub seed: u64,
    pub events: u64,
    pub developers: u32,
    pub repos: u32,
    /// The first hour, in seconds since the epoch (rounded down to the hour).
    pub start_s: i64,
    pub hours: u32,
    /// Zipf exponent of activity per developer and per repo.
    pub skew: f64,
    /// Share of accounts that are bots.
    pub bot_share: f64,
    /// Filler text per event, in bytes, as titles and bodies make real events larger.
    pub pad_bytes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seed: 1,
            events: 100_000,
            developers: 20_000,
            repos: 10_000,
            // 2026-09-01T00:00:00Z.
            start_s: 1_788_220_800,
            hours: 24,
            skew: 1.1,
            bot_share: 0.01,
            pad_bytes: 200,
        }
    }
}

/// Most events one run writes.
pub const MAX_EVENTS: u64 = 2_000_000_000;

/// The real sample's event-type mix, per 800.
const MIX: [(&str, u32); 15] = [
    ("PushEvent", 425),
    ("CreateEvent", 103),
    ("PullRequestEvent", 64),
    ("WatchEvent", 58),
    ("IssueCommentEvent", 36),
    ("PullRequestReviewEvent", 28),
    ("DeleteEvent", 23),
    ("IssuesEvent", 21),
    ("ForkEvent", 19),
    ("PullRequestReviewCommentEvent", 10),
    ("MemberEvent", 4),
    ("ReleaseEvent", 3),
    ("PublicEvent", 2),
    ("CommitCommentEvent", 2),
    ("GollumEvent", 2),
];

/// Zipf ranks by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut acc = 0.0;
        for k in 1..=n {
            acc += 1.0 / f64::from(k).powf(s);
            cdf.push(acc);
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let x = rng.random::<f64>() * total;
        self.cdf.partition_point(|c| *c < x) as u32
    }
}

impl Settings {
    fn check(&self) -> Result<(), Error> {
        if self.events == 0 || self.events > MAX_EVENTS {
            return Err(Error::invalid("events", format!("from 1 to {MAX_EVENTS}")));
        }
        if !(1..=50_000_000).contains(&self.developers) || !(1..=50_000_000).contains(&self.repos) {
            return Err(Error::invalid("developers", "developers and repos from 1 to 50,000,000"));
        }
        if !(1..=24 * 366).contains(&self.hours) {
            return Err(Error::invalid("hours", "from 1 to 8784"));
        }
        if !(0.0..=3.0).contains(&self.skew) || !(0.0..=1.0).contains(&self.bot_share) || self.pad_bytes > 1 << 20 {
            return Err(Error::invalid("skew", "skew from 0 to 3, bot share from 0 to 1, pad up to 1 MiB"));
        }
        Ok(())
    }
}

struct World {
    s: Settings,
    devs: Zipf,
    repos: Zipf,
    mix: Vec<(&'static str, u32)>,
    pad: String,
}

impl World {
    fn login(&self, dev: u32) -> String {
        // The most active ranks hold the bots, as in the real data.
        let bots = (f64::from(self.s.developers) * self.s.bot_share) as u32;
        if dev < bots {
            if dev.is_multiple_of(2) { format!("automation{dev}[bot]") } else { format!("ci{dev}-bot") }
        } else {
            format!("dev{dev}")
        }
    }

    /// A developer's repo: mostly one of three of their own, sometimes any.
    fn repo_of(&self, dev: u32, rng: &mut ChaCha8Rng) -> u32 {
        if rng.random::<f64>() < 0.7 {
            let k = u64::from(dev) * 3 + rng.random_range(0..3u64);
            (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as u32 % self.s.repos
        } else {
            self.repos.sample(rng)
        }
    }

    fn event(&self, out: &mut Vec<u8>, id: u64, at_s: i64, rng: &mut ChaCha8Rng) -> Result<(), Error> {
        let roll = rng.random_range(0..800u32);
        let mut acc = 0;
        let ty = self.mix.iter().find(|(_, n)| {
            acc += n;
            roll < acc
        });
        let ty = ty.map_or("PushEvent", |x| x.0);
        let dev = self.devs.sample(rng);
        let repo = self.repo_of(dev, rng);
        let (actor_id, repo_id) = (u64::from(dev) + 1_000, u64::from(repo) + 5_000_000);
        let login = self.login(dev);
        let org = repo.is_multiple_of(5);
        let number = 1 + rng.random_range(0..(1 + repo % 400));
        let issue_id = (repo_id << 20) | u64::from(number);
        let author = self.devs.sample(rng);
        let author_obj = format!(r#"{{"id":{},"login":"{}"}}"#, u64::from(author) + 1_000, self.login(author));
        let payload = match ty {
            "PushEvent" => format!(
                r#"{{"repository_id":{repo_id},"push_id":{id},"ref":"refs/heads/main","head":"{:040x}","before":"{:040x}"}}"#,
                id * 7,
                id * 5
            ),
            "IssuesEvent" => {
                let action = ["opened", "closed", "reopened"][rng.random_range(0..3)];
                format!(
                    r#"{{"action":"{action}","issue":{{"id":{issue_id},"number":{number},"title":"Issue {number}: {pad}","user":{author_obj}}}}}"#,
                    pad = self.pad
                )
            }
            "IssueCommentEvent" => format!(
                r#"{{"action":"created","issue":{{"id":{issue_id},"number":{number},"title":"Issue {number}","user":{author_obj}}},"comment":{{"id":{id},"body":"{pad}"}}}}"#,
                pad = self.pad
            ),
            "PullRequestEvent" => {
                let (action, merged) = match rng.random_range(0..10) {
                    0..=4 => ("opened", false),
                    5..=7 => ("closed", true),
                    8 => ("closed", false),
                    _ => ("synchronize", false),
                };
                let author_obj = if action == "opened" { format!(r#"{{"id":{actor_id},"login":"{login}"}}"#) } else { author_obj };
                format!(
                    r#"{{"action":"{action}","number":{number},"pull_request":{{"id":{issue_id},"number":{number},"title":"PR {number}: {pad}","merged":{merged},"user":{author_obj}}}}}"#,
                    pad = self.pad
                )
            }
            "PullRequestReviewCommentEvent" => format!(
                r#"{{"action":"created","comment":{{"id":{id},"body":"{pad}"}},"pull_request":{{"id":{issue_id},"number":{number},"user":{author_obj}}}}}"#,
                pad = self.pad
            ),
            "PullRequestReviewEvent" => {
                format!(r#"{{"action":"created","review":{{"id":{id}}},"pull_request":{{"id":{issue_id},"number":{number}}}}}"#)
            }
            _ => r#"{"action":"started"}"#.to_string(),
        };
        let org_field = if org { format!(r#","org":{{"id":{},"login":"org{}"}}"#, 9_000_000 + repo / 5, repo / 5) } else { String::new() };
        let at = time::OffsetDateTime::from_unix_timestamp(at_s).map_err(|e| Error::invalid("start_s", e.to_string()))?;
        let at = at.format(&time::format_description::well_known::Rfc3339).map_err(|e| Error::invalid("start_s", e.to_string()))?;
        writeln!(
            out,
            r#"{{"id":"{id}","type":"{ty}","actor":{{"id":{actor_id},"login":"{login}","display_login":"{login}","gravatar_id":"","url":"https://api.github.com/users/{login}","avatar_url":"https://avatars.githubusercontent.com/u/{actor_id}?"}},"repo":{{"id":{repo_id},"name":"owner{}/repo{repo}","url":"https://api.github.com/repos/owner{}/repo{repo}"}},"payload":{payload},"public":true,"created_at":"{at}"{org_field}}}"#,
            repo / 5,
            repo / 5
        )
        .map_err(Error::io("generator"))
    }
}

/// The name GH Archive gives an hour's file.
pub fn hour_file(at_s: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(at_s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}-{}.json.gz", d.year(), u8::from(d.month()), d.day(), d.hour())
}

/// Writes the hourly files into `dir`, calling `progress` after each with the events written so far.
pub fn generate(s: &Settings, dir: &Path, progress: &dyn Fn(u64)) -> Result<Vec<PathBuf>, Error> {
    s.check()?;
    let w = World {
        s: s.clone(),
        devs: Zipf::new(s.developers, s.skew),
        repos: Zipf::new(s.repos, s.skew),
        mix: MIX.to_vec(),
        pad: "x".repeat(s.pad_bytes as usize),
    };
    let start = s.start_s - s.start_s.rem_euclid(3600);
    let mut files = Vec::new();
    let mut done = 0u64;
    for h in 0..u64::from(s.hours) {
        // Each hour has its own stream, so hours could be written in any order or in parallel.
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ (h.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let n = s.events * (h + 1) / u64::from(s.hours) - s.events * h / u64::from(s.hours);
        let hour_s = start + 3600 * h as i64;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        let mut line = Vec::with_capacity(4096);
        for i in 0..n {
            line.clear();
            let at = hour_s + (3600 * i / n.max(1)) as i64;
            w.event(&mut line, 40_000_000_000 + done + i, at, &mut rng)?;
            z.write_all(&line).map_err(Error::io("generator"))?;
        }
        done += n;
        let path = dir.join(hour_file(hour_s));
        write_atomic(&path, &z.finish().map_err(Error::io("generator"))?)?;
        files.push(path);
        progress(done);
    }
    Ok(files)
}
