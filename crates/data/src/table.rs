//! Numeric feature tables for valuation: CSV with the label in the last column, optionally with
//! a column naming each row's contributor (who is paid for it in settlement).

use crate::valuation::{Points, ValuationError, invalid};

/// Rows one table may have, and features one row.
pub const MAX_ROWS: usize = 10_000_000;
pub const MAX_FEATURES: usize = 100_000;

/// A table's points and, when asked for, each row's contributor.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub points: Points<String>,
    pub contributors: Vec<String>,
}

/// Reads a CSV. Labels are compared as written (trimmed), except that numbers compare as
/// numbers ("1" and "1.0" are one class). A first line that is not numbers names the columns;
/// `contributor` names the column (in that header) that holds each row's contributor, which is
/// then not a feature. `field` names the input in errors.
pub fn read_csv(bytes: &[u8], contributor: Option<&str>, field: &'static str) -> Result<Table, ValuationError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(false).from_reader(bytes);
    let mut points = Points { features: Vec::new(), dim: 0, labels: Vec::new() };
    let mut contributors = Vec::new();
    let mut who: Option<usize> = None;
    for (line, record) in reader.records().enumerate() {
        let at = |reason: String| invalid(field, format!("line {}: {reason}", line + 1));
        let record = record.map_err(|e| at(e.to_string()))?;
        if line == 0
            && let Some(name) = contributor
        {
            who = Some(record.iter().position(|h| h.trim() == name).ok_or_else(|| at(format!("no column named {name:?}")))?);
            continue;
        }
        let n = record.len() - usize::from(who.is_some());
        if !(2..=MAX_FEATURES + 1).contains(&n) {
            return Err(at(format!("features and a label, at most {MAX_FEATURES} features")));
        }
        let cells: Vec<&str> = record.iter().enumerate().filter(|(i, _)| Some(*i) != who).map(|(_, c)| c.trim()).collect();
        let features: Result<Vec<f64>, _> = cells[..n - 1].iter().map(|f| f.parse::<f64>()).collect();
        let features = match features {
            Ok(f) => f,
            Err(_) if line == 0 => continue,
            Err(e) => return Err(at(format!("a feature is not a number ({e})"))),
        };
        if points.labels.len() >= MAX_ROWS {
            return Err(invalid(field, format!("more than {MAX_ROWS} rows")));
        }
        points.dim = n - 1;
        points.features.extend(features);
        let label = cells[n - 1];
        points.labels.push(label.parse::<f64>().map_or_else(|_| label.to_string(), |x| x.to_string()));
        if let Some(w) = who {
            let c = record.get(w).unwrap_or("").trim();
            if c.is_empty() {
                return Err(at("no contributor".into()));
            }
            contributors.push(c.to_string());
        }
    }
    if points.labels.is_empty() {
        return Err(invalid(field, "no rows"));
    }
    Ok(Table { points, contributors })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn tables_read_with_or_without_a_header_and_a_contributor_column() {
        let t = read_csv(b"a,b,label\n1,2,1.0\n3,4,cat\n", None, "train").unwrap();
        assert_eq!(
            (t.points.dim, t.points.features, t.points.labels),
            (2, vec![1.0, 2.0, 3.0, 4.0], vec!["1".to_string(), "cat".to_string()])
        );
        let t = read_csv(b"who,a,label\nann,1,0\nbo,2,1\n", Some("who"), "train").unwrap();
        assert_eq!((t.points.dim, t.contributors), (1, vec!["ann".to_string(), "bo".to_string()]));
        assert!(read_csv(b"1,2,0\nx,4,1\n", None, "train").unwrap_err().to_string().contains("line 2"));
        assert!(read_csv(b"1,2,0\n1,1\n", None, "train").is_err(), "rows of different lengths");
        assert!(read_csv(b"a,label\n1,0\n", Some("who"), "train").unwrap_err().to_string().contains("no column named"));
    }
}
