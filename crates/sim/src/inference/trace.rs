//! Reading the Azure LLM inference trace 2023 (Azure/AzurePublicDataset, `data/`, CC BY 4.0).
//!
//! Each file is one service: `AzureLLMInferenceTrace_code.csv` and `..._conv.csv`, with the
//! columns `TIMESTAMP,ContextTokens,GeneratedTokens`, for example
//! `2023-11-16 18:17:03.9799600,4808,10`. The reader is strict: the header must hold exactly
//! these three columns, every timestamp must parse and be no earlier than the row before, and
//! token counts must be whole numbers within limits. An error names the file, the line and the
//! column, so a bad row in a million can be found.

use std::io::Read;

/// Most requests read from one file: the published files have 8,819 and 19,366, so this leaves
/// room for traces a hundred times longer and still bounds memory (about 24 bytes a request).
pub const MAX_REQUESTS: usize = 2_000_000;
/// Longest prompt a request may carry: 128 Ki tokens, the longest context of common open models
/// (the published files peak at 14,050).
pub const MAX_CONTEXT_TOKENS: u32 = 131_072;
/// Most tokens a request may generate (the published files peak at 1,899).
pub const MAX_GENERATED_TOKENS: u32 = 32_768;
/// Earliest and latest years a timestamp may name, so a typo cannot put a request centuries away.
const YEARS: std::ops::RangeInclusive<i64> = 2000..=2100;

const COLUMNS: [&str; 3] = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"];

/// One request of a service, as the trace recorded it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceRequest {
    /// When the request arrived, in Unix seconds. The dataset does not name a time zone;
    /// ASSUMPTION: UTC, the convention of Azure's logs (see the module docs of
    /// [`crate::inference`] for how this maps to the tariffs' China Standard Time).
    pub at_unix_s: f64,
    pub context_tokens: u32,
    pub generated_tokens: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}:{line}: {column}: {reason}")]
    Invalid { file: String, line: u64, column: String, reason: String },
}

/// Reads a trace file from disk.
pub fn read_file(path: &std::path::Path) -> Result<Vec<TraceRequest>, TraceError> {
    let file = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| TraceError::Io { file: file.clone(), source })?;
    read(&file, Box::new(std::io::BufReader::new(f)))
}

/// Reads a trace from any reader; `file` names it in errors.
pub fn read(file: &str, input: Box<dyn Read>) -> Result<Vec<TraceRequest>, TraceError> {
    let invalid = |line: u64, column: &str, reason: String| TraceError::Invalid { file: file.into(), line, column: column.into(), reason };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
    let headers = reader.headers().map_err(|e| invalid(e.position().map_or(1, |p| p.line()), "csv", e.to_string()))?.clone();
    let mut index = [0usize; 3];
    for (slot, want) in index.iter_mut().zip(COLUMNS) {
        *slot = headers.iter().position(|h| h.trim() == want).ok_or_else(|| invalid(1, want, "missing column in the header".into()))?;
    }
    if let Some(extra) = headers.iter().find(|h| !COLUMNS.contains(&h.trim())) {
        return Err(invalid(1, extra, format!("unknown column; the header must be {}", COLUMNS.join(","))));
    }
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(out),
            Ok(true) => {}
            Err(e) => return Err(invalid(e.position().map_or(0, |p| p.line()), "csv", e.to_string())),
        }
        let line = record.position().map_or(0, |p| p.line());
        if out.len() >= MAX_REQUESTS {
            return Err(invalid(line, "rows", format!("more than {MAX_REQUESTS} requests")));
        }
        let field = |i: usize| record.get(index[i]).unwrap_or("").trim();
        let at_unix_s = parse_timestamp(field(0)).map_err(|reason| invalid(line, COLUMNS[0], reason))?;
        if let Some(prev) = out.last().map(|r: &TraceRequest| r.at_unix_s)
            && at_unix_s < prev
        {
            return Err(invalid(line, COLUMNS[0], format!("{:?} is earlier than the row before; rows must be in time order", field(0))));
        }
        let tokens = |i: usize, max: u32| -> Result<u32, TraceError> {
            let raw = field(i);
            let n: u32 = raw.parse().map_err(|_| invalid(line, COLUMNS[i], format!("{raw:?} is not a whole number")))?;
            if n == 0 || n > max {
                return Err(invalid(line, COLUMNS[i], format!("must be 1..={max}, got {n}")));
            }
            Ok(n)
        };
        let context_tokens = tokens(1, MAX_CONTEXT_TOKENS)?;
        let generated_tokens = tokens(2, MAX_GENERATED_TOKENS)?;
        out.push(TraceRequest { at_unix_s, context_tokens, generated_tokens });
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fraction]` (at most 9 fraction digits) as UTC Unix seconds.
pub fn parse_timestamp(s: &str) -> Result<f64, String> {
    let bad = || format!("{s:?} is not a time like 2023-11-16 18:17:03.9799600");
    let (date, time) = s.split_once(' ').ok_or_else(bad)?;
    let mut d = date.split('-');
    let (Some(y), Some(mo), Some(day), None) = (d.next(), d.next(), d.next(), d.next()) else { return Err(bad()) };
    let (clock, fraction) = match time.split_once('.') {
        Some((c, f)) => (c, f),
        None => (time, ""),
    };
    let mut t = clock.split(':');
    let (Some(h), Some(mi), Some(sec), None) = (t.next(), t.next(), t.next(), t.next()) else { return Err(bad()) };
    let num = |v: &str, digits: usize| -> Result<i64, String> {
        if v.len() != digits || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        v.parse().map_err(|_| bad())
    };
    let (y, mo, day, h, mi, sec) = (num(y, 4)?, num(mo, 2)?, num(day, 2)?, num(h, 2)?, num(mi, 2)?, num(sec, 2)?);
    if !YEARS.contains(&y) {
        return Err(format!("{s:?}: the year must be {}..={}", YEARS.start(), YEARS.end()));
    }
    if !(1..=12).contains(&mo) || day < 1 || day > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59 {
        return Err(format!("{s:?} is not a valid date and time"));
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let frac = if fraction.is_empty() { 0.0 } else { fraction.parse::<f64>().map_err(|_| bad())? / 10f64.powi(fraction.len() as i32) };
    let days = days_from_civil(y, mo, day);
    Ok((days * 86_400 + h * 3600 + mi * 60 + sec) as f64 + frac)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// A Unix time as China Standard Time (UTC+8, the tariffs' clock), `YYYY-MM-DD HH:MM:SS CST`.
pub fn format_cst(unix_s: f64) -> String {
    let local = unix_s.floor() as i64 + compute::tariff::CST_OFFSET_S;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} CST", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The inverse of [`days_from_civil`] (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date: Howard Hinnant's `days_from_civil`,
/// which the C++20 `<chrono>` calendar uses; the sim crate has no date library.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_unix_seconds() {
        // 2023-11-16 18:15:46.68059 UTC, checked with `date -u -d '2023-11-16 18:15:46' +%s`.
        let t = parse_timestamp("2023-11-16 18:15:46.6805900").unwrap();
        assert!((t - 1_700_158_546.680_59).abs() < 1e-6, "{t}");
        assert_eq!(parse_timestamp("2024-02-29 00:00:00"), Ok(1_709_164_800.0));
        assert!(parse_timestamp("2023-02-29 00:00:00").is_err());
        assert!(parse_timestamp("2023-11-16T18:15:46").is_err());
        assert!(parse_timestamp("1999-11-16 18:15:46").is_err());
        assert_eq!(format_cst(1_700_158_546.680_59), "2023-11-17 02:15:46 CST");
        assert_eq!(format_cst(1_709_164_800.0), "2024-02-29 08:00:00 CST");
    }
}
