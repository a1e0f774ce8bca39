//! Croissant (MLCommons' metadata format for ML datasets) records: reading and validating
//! them as the reference validator, mlcroissant, does.
//!
//! A dataset on the exchange is a Croissant JSON-LD record plus its files. We accept the
//! versions mlcroissant accepts (0.8, 1.0 and 1.1) and refuse a record for the reasons it
//! refuses it, with the same messages, so that a publisher who ran `mlcroissant validate`
//! is never surprised. The refusals are mlcroissant's structural checks: the types of the
//! dataset, its distribution and record sets; mandatory properties; references that must
//! resolve; fields that need a source or a value and a data type; joins that must be
//! declared; array shapes; text-typed names and descriptions; `@id`s without spaces.
//! Checks that need the data itself (reading files, running the record pipeline) are not
//! part of validation: the exchange checks files by their SHA-256 when they are uploaded.
//!
//! The format: <https://docs.mlcommons.org/croissant/docs/croissant-spec-1.1.html>.

mod check;
pub mod jsonld;

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// The largest record we read. The largest of the 58 published examples is 60 KB.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// The Croissant versions mlcroissant knows, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V0_8,
    V1_0,
    V1_1,
}

impl Version {
    /// The `dct:conformsTo` IRI of a version.
    pub fn iri(self) -> &'static str {
        match self {
            Version::V0_8 => "http://mlcommons.org/croissant/0.8",
            Version::V1_0 => "http://mlcommons.org/croissant/1.0",
            Version::V1_1 => "http://mlcommons.org/croissant/1.1",
        }
    }

    fn from_iri(iri: &str) -> Option<Version> {
        [Version::V0_8, Version::V1_0, Version::V1_1].into_iter().find(|v| v.iri() == iri)
    }

    /// The namespace of Croissant's own terms, which moved at 1.0.
    fn cr(self) -> &'static str {
        match self {
            Version::V0_8 => "http://mlcommons.org/schema/",
            _ => "http://mlcommons.org/croissant/",
        }
    }
}

/// Errors and warnings, as sets of messages (mlcroissant's `Issues`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub errors: BTreeSet<String>,
    pub warnings: BTreeSet<String>,
}

impl fmt::Display for Report {
    /// The layout of mlcroissant's report, so the two can be compared line by line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (issues, kind) in [(&self.errors, "error(s)"), (&self.warnings, "warning(s)")] {
            if issues.is_empty() {
                continue;
            }
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "Found the following {} {kind} during the validation:", issues.len())?;
            for issue in issues {
                write!(f, "\n  -  {issue}")?;
            }
        }
        Ok(())
    }
}

/// A file of the distribution (`cr:FileObject`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileObject {
    pub id: String,
    pub name: String,
    pub content_url: Option<String>,
    pub encoding_format: Vec<String>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub content_size: Option<String>,
    pub contained_in: Vec<String>,
}

/// A set of files of the distribution (`cr:FileSet`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileSet {
    pub id: String,
    pub name: String,
    pub includes: Vec<String>,
    pub encoding_format: Vec<String>,
    pub contained_in: Vec<String>,
}

/// A field of a record set, with its declared data types (IRIs).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Field {
    pub id: String,
    pub name: String,
    pub data_types: Vec<String>,
    pub source: Option<String>,
    pub sub_fields: Vec<Field>,
}

/// A record set: how records are built from the files.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordSet {
    pub id: String,
    pub name: String,
    pub fields: Vec<Field>,
}

/// A record that passed validation, with what the exchange reads from it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dataset {
    #[serde(serialize_with = "version_iri")]
    pub conforms_to: Version,
    pub name: String,
    pub description: Option<String>,
    /// The dataset's own version (`schema:version`), normalised as mlcroissant does.
    pub version: Option<String>,
    pub license: Vec<String>,
    pub url: Option<String>,
    /// `prov:wasDerivedFrom`: the datasets this one was derived from (IRIs or locations).
    pub derived_from: Vec<String>,
    pub files: Vec<FileObject>,
    pub file_sets: Vec<FileSet>,
    pub record_sets: Vec<RecordSet>,
    /// What mlcroissant would warn about (say a missing licence); never a refusal.
    pub warnings: Vec<String>,
}

fn version_iri<S: serde::Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.iri())
}

/// Validates a Croissant record given as JSON text.
pub fn validate_text(text: &str) -> Result<Dataset, Report> {
    let refuse = |msg: String| Report { errors: BTreeSet::from([msg]), warnings: BTreeSet::new() };
    if text.len() > MAX_RECORD_BYTES {
        return Err(refuse(format!("The record is {} bytes; the limit is {MAX_RECORD_BYTES} bytes.", text.len())));
    }
    let doc: Value = serde_json::from_str(text).map_err(|e| refuse(format!("The record is not JSON: {e}.")))?;
    validate(&doc)
}

/// Validates a Croissant record. `Ok` carries the warnings; `Err` has at least one error.
pub fn validate(doc: &Value) -> Result<Dataset, Report> {
    let graph = jsonld::expand(doc).map_err(|e| Report {
        errors: BTreeSet::from([format!("The record cannot be read as JSON-LD: {e}.")]),
        warnings: BTreeSet::new(),
    })?;
    check::check(&graph)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_prints_as_mlcroissant_prints_it() {
        let report = Report { errors: BTreeSet::from(["b".to_owned(), "a".to_owned()]), warnings: BTreeSet::from(["w".to_owned()]) };
        assert_eq!(
            report.to_string(),
            "Found the following 2 error(s) during the validation:\n  -  a\n  -  b\n\
             Found the following 1 warning(s) during the validation:\n  -  w"
        );
    }

    #[test]
    fn oversized_and_non_json_records_are_refused_with_the_reason() {
        let big = " ".repeat(MAX_RECORD_BYTES + 1);
        assert!(validate_text(&big).unwrap_err().to_string().contains("the limit is"));
        assert!(validate_text("{").unwrap_err().to_string().contains("not JSON"));
    }
}
