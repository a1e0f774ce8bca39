//! Open-source contribution evaluation around the pure core (`oss-core`): GH Archive files in,
//! monthly columnar segments on disk, the measures over them, and credit reports out.
//!
//! - [`segment`] is the on-disk form of a month's rows.
//! - [`ingest`] streams GH Archive files into segments, resumably and idempotently per file.
//! - [`generate`] writes GH-like hourly files from a seed, for scale tests and benchmarks.
//! - [`measure`] loads months and runs the core's measures over them; [`community`] keeps the
//!   chain of a community's OpenRank month by month.
//! - [`report`] builds, signs and verifies credit reports.
//! - [`stage`] groups files into per-day jobs for a cluster and merges what the jobs staged.

pub mod community;
pub mod generate;
pub mod ingest;
pub mod measure;
pub mod report;
pub mod segment;
pub mod stage;

/// What can go wrong around the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("corrupt: {0}")]
    Corrupt(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A limit on what is kept was reached (no fault of the request).
    #[error("{0}")]
    Full(String),
}

impl Error {
    /// Wraps an I/O error with what was being read or written.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid { field: field.into(), reason: reason.into() }
    }
}

/// A month as `YYYY-MM`, from seconds since the epoch (UTC).
pub fn month_of(at_s: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(at_s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

/// The pattern a month matches (`YYYY-MM`), as the API documents it.
pub const MONTH_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";

/// Months counted as `year × 12 + month − 1`, from `YYYY-MM`.
pub fn month_index(month: &str) -> Result<i32, Error> {
    let bad = || Error::invalid("period", format!("`{month}` is not a month (YYYY-MM)"));
    let b = month.as_bytes();
    if b.len() != 7 || b[4] != b'-' || !b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let (y, m): (i32, i32) = (month[..4].parse().map_err(|_| bad())?, month[5..].parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) {
        return Err(bad());
    }
    Ok(y * 12 + m - 1)
}

/// `YYYY-MM` from a month index.
pub fn month_name(index: i32) -> String {
    format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
}
