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

/// Rows a text table may have: each is embedded by the model, a few milliseconds a row.
pub const MAX_TEXT_ROWS: usize = 50_000;
/// Most bytes of one text cell (the model reads its first few hundred tokens anyway).
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Text rows for valuation on embeddings: each row's text, label and contributor.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTable {
    pub texts: Vec<String>,
    pub labels: Vec<String>,
    pub contributors: Vec<String>,
}

/// Reads a CSV with a header: `text` names the column embedded, the label is the last column,
/// and `contributor` (when asked for) names each row's contributor. Other columns are ignored.
pub fn read_text_csv(bytes: &[u8], text: &str, contributor: Option<&str>, field: &'static str) -> Result<TextTable, ValuationError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let header = reader.headers().map_err(|e| invalid(field, format!("line 1: {e}")))?.clone();
    let column = |name: &str| {
        let at = header.iter().position(|h| h.trim() == name).ok_or_else(|| invalid(field, format!("no column named {name:?}")))?;
        match at + 1 == header.len() {
            true => Err(invalid(field, format!("{name:?} is the last column, which holds the label"))),
            false => Ok(at),
        }
    };
    let t = column(text)?;
    let who = contributor.map(column).transpose()?;
    let mut table = TextTable { texts: Vec::new(), labels: Vec::new(), contributors: Vec::new() };
    for (line, record) in reader.records().enumerate() {
        let at = |reason: String| invalid(field, format!("line {}: {reason}", line + 2));
        let record = record.map_err(|e| at(e.to_string()))?;
        if table.texts.len() >= MAX_TEXT_ROWS {
            return Err(invalid(field, format!("more than {MAX_TEXT_ROWS} rows to embed")));
        }
        let cell = record.get(t).unwrap_or("").trim();
        if cell.is_empty() || cell.len() > MAX_TEXT_BYTES {
            return Err(at(format!("the text must have 1 to {MAX_TEXT_BYTES} bytes")));
        }
        let label = record.get(record.len() - 1).unwrap_or("").trim();
        table.texts.push(cell.to_string());
        table.labels.push(label.parse::<f64>().map_or_else(|_| label.to_string(), |x| x.to_string()));
        if let Some(w) = who {
            let c = record.get(w).unwrap_or("").trim();
            if c.is_empty() {
                return Err(at("no contributor".into()));
            }
            table.contributors.push(c.to_string());
        }
    }
    if table.texts.is_empty() {
        return Err(invalid(field, "no rows"));
    }
    Ok(table)
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

    #[test]
    fn text_tables_name_their_columns_and_keep_the_label_last() {
        let t = read_text_csv(b"id,text,who,label\n1,\"hello, world\",ann,1.0\n2,bye,bo,cat\n", "text", Some("who"), "train").unwrap();
        assert_eq!(t.texts, ["hello, world", "bye"]);
        assert_eq!((t.labels, t.contributors), (vec!["1".to_string(), "cat".to_string()], vec!["ann".to_string(), "bo".to_string()]));
        assert!(read_text_csv(b"text,label\n,1\n", "text", None, "test").unwrap_err().to_string().contains("line 2"));
        assert!(read_text_csv(b"label,text\n1,a\n", "text", None, "test").unwrap_err().to_string().contains("last column"));
        assert!(read_text_csv(b"body,label\na,1\n", "text", None, "test").unwrap_err().to_string().contains("no column named"));
    }
}
