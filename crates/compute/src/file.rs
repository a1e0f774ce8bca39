//! Loading a network data file (TOML), with errors that name the file, the line and the field.
//!
//! Parsing happens twice on failure only: once into the typed spec, and, when validation
//! rejects a field, once more into toml's spanned document to find the line of that field.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::network::{Invalid, Network, NetworkSpec};

/// The 8 national hubs and 10 clusters, built into the binary so that aiplus needs no outside
/// file at run time. Every figure carries its source inside the file.
pub const CHINA_HUBS_TOML: &str = include_str!("../data/china-hubs.toml");
pub const CHINA_HUBS_NAME: &str = "china-hubs.toml (built in)";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}:{line}: {field}: {reason}")]
    Invalid { file: String, line: usize, field: String, reason: String },
}

/// Reads and validates a network file from disk.
pub fn load_network_file(path: &Path) -> Result<Network, FileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Io { file: file.clone(), source })?;
    parse_network(&file, &text)
}

/// The built-in network.
pub fn builtin_network() -> Result<Network, FileError> {
    parse_network(CHINA_HUBS_NAME, CHINA_HUBS_TOML)
}

pub fn parse_network(file: &str, text: &str) -> Result<Network, FileError> {
    let spec: NetworkSpec = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        FileError::Invalid { file: file.to_string(), line, field: "toml".into(), reason: e.message().trim().to_string() }
    })?;
    Network::build(spec).map_err(|Invalid { field, reason }| FileError::Invalid {
        file: file.to_string(),
        line: line_of_field(text, &field),
        field,
        reason,
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The line of a field path such as `cluster[2].tariff.hours`; the nearest enclosing element
/// that exists when the field itself is missing; 0 when nothing matches.
pub fn line_of_field(text: &str, path: &str) -> usize {
    let Ok(root) = DeTable::parse(text) else { return 0 };
    let mut table: &DeTable = root.get_ref();
    let mut best = 0;
    for segment in path.split('.') {
        let (key, index) = match segment.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key) else { return best };
        best = line_of(text, k.span().start);
        let mut value = v;
        if let (Some(i), DeValue::Array(items)) = (index, value.get_ref()) {
            let Some(item) = items.get(i) else { return best };
            best = line_of(text, item.span().start);
            value = item;
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return best,
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_network_loads() {
        let net = builtin_network().unwrap();
        assert_eq!(net.spec.hubs.len(), 8);
        assert_eq!(net.clusters.len(), 10);
        assert_eq!(net.spec.links.len(), 28);
    }

    #[test]
    fn every_assumption_is_marked_and_every_figure_has_a_source() {
        let net = builtin_network().unwrap();
        for c in &net.spec.clusters {
            for (what, s) in [
                ("pue", &c.pue_source),
                ("carbon", &c.carbon_source),
                ("green", &c.green_source),
                ("flat", &c.tariff.flat_source),
                ("hours", &c.tariff.hours_source),
            ] {
                assert!(s.len() > 10, "{} {what} source too short: {s:?}", c.id);
            }
            for p in &c.node_pools {
                assert!(p.source.starts_with("ASSUMPTION"), "{} pool {} is not marked as an assumption", c.id, p.name);
            }
        }
    }

    #[test]
    fn bad_value_names_file_line_and_field() {
        let text = CHINA_HUBS_TOML.replacen("pue = 1.2", "pue = 0.7", 1);
        assert_ne!(text, CHINA_HUBS_TOML, "fixture: the built-in file has a pue = 1.2 line");
        let err = parse_network("net.toml", &text).unwrap_err();
        let FileError::Invalid { file, line, field, reason } = &err else { panic!("{err}") };
        assert_eq!(file, "net.toml");
        assert!(field.ends_with(".pue"), "{field}");
        assert!(reason.contains("between 1 and 3"), "{reason}");
        let expected = text.lines().position(|l| l.trim_start().starts_with("pue = 0.7")).unwrap() + 1;
        assert_eq!(*line, expected, "{err}");
    }

    #[test]
    fn syntax_and_type_errors_have_a_line() {
        let err = parse_network("x.toml", "schema = 1\n[[hub]]\nid = 3\n").unwrap_err();
        let FileError::Invalid { line, .. } = &err else { panic!("{err}") };
        assert_eq!(*line, 3, "{err}");
        let err = parse_network("x.toml", "schema = 1\nhub = [\n").unwrap_err();
        assert!(matches!(err, FileError::Invalid { line: 2.., .. }), "{err}");
    }

    #[test]
    fn unknown_hub_reference_points_at_the_cluster_field() {
        let text = CHINA_HUBS_TOML.replacen("hub = \"gansu\"", "hub = \"atlantis\"", 1);
        assert_ne!(text, CHINA_HUBS_TOML);
        let err = parse_network("net.toml", &text).unwrap_err();
        let FileError::Invalid { line, field, reason, .. } = &err else { panic!("{err}") };
        assert!(field.ends_with(".hub"), "{field}");
        assert!(reason.contains("atlantis"));
        assert!(text.lines().nth(line - 1).unwrap().contains("atlantis"), "{err}");
    }
}
