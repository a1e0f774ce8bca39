//! mlcroissant's structural checks over an expanded record, with its messages.
//!
//! Each check cites the mlcroissant behaviour it reproduces (version 1.1.1,
//! `mlcroissant/_src/structure_graph`), because the point of this module is that a record
//! is refused here exactly when, and as, the reference validator refuses it.

use serde_json::Value;

use super::jsonld::{Graph, Node, Obj};
use super::{Dataset, Field, FileObject, FileSet, Report, Version};

const SC: &str = "https://schema.org/";
const DATASET: &str = "https://schema.org/Dataset";
const CONFORMS_TO: &str = "http://purl.org/dc/terms/conformsTo";
const DERIVED_FROM: &str = "http://www.w3.org/ns/prov#wasDerivedFrom";
const AT_LOCATION: &str = "http://www.w3.org/ns/prov#atLocation";
/// Deeper than any real nesting of sub-fields or chains of field sources.
const MAX_FIELD_DEPTH: usize = 32;

/// The data types mlcroissant maps to a value type, or knows as semantic types
/// (`core/constants.py`, `DataType`).
const SCHEMA_TYPES: [&str; 12] =
    ["Boolean", "Date", "DateTime", "Float", "Integer", "Text", "Time", "URL", "AudioObject", "ImageObject", "VideoObject", "Number"];
const CROISSANT_TYPES: [&str; 12] =
    ["BoundingBox", "Float16", "Float32", "Float64", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"];

/// A source or a join target: which node it names.
#[derive(Debug, Default)]
struct Src {
    uuid: Option<String>,
}

#[derive(Debug)]
struct FieldIn {
    out: Field,
    uuid: String,
    path: String,
    has_value: bool,
    source: Option<Src>,
    references: Option<Src>,
    subs: Vec<FieldIn>,
    array_shape: Option<String>,
    is_array: bool,
}

#[derive(Debug)]
struct RecordSetIn {
    uuid: String,
    path: String,
    name: String,
    has_data: bool,
    fields: Vec<FieldIn>,
}

/// What the uuid of a node names, for references.
#[derive(Debug, Clone)]
enum Kind {
    Distribution,
    RecordSet,
    /// A field, with the uuid of its record set (for joins) and, for a top-level field, where
    /// it is: its record set's index and its own.
    Field(String, Option<(usize, usize)>),
}

/// A node read from the record, with its path for messages (`Metadata(x) > FileObject(y)`).
type Placed<T> = (T, String);

struct Checker<'g> {
    g: &'g Graph,
    v: Version,
    cr: &'static str,
    report: Report,
}

pub(super) fn check(g: &Graph) -> Result<Dataset, Report> {
    let mut report = Report::default();
    for id in &g.bad_ids {
        report.errors.insert(format!(
            "The dataset contains a wrong `@id`: '{id}'. Note that currently we do not support \
             `@id`s containing whitespaces (not even if URL-escaped)."
        ));
    }
    let Some(ds) = g.nodes.values().find(|n| n.types.iter().any(|t| t == DATASET)) else {
        report.errors.insert("The current JSON-LD doesn't extend https://schema.org/Dataset.".into());
        return Err(report);
    };
    let v = version(ds, &mut report);
    let mut c = Checker { g, v, cr: v.cr(), report };
    let dataset = c.dataset(ds);
    if c.report.errors.is_empty() { Ok(dataset) } else { Err(c.report) }
}

/// `CroissantVersion.from_jsonld`: the first valid `conformsTo`, 0.8 when there is none.
fn version(ds: &Node, report: &mut Report) -> Version {
    let claimed: Vec<String> = ds.all(CONFORMS_TO).iter().filter_map(obj_text).collect();
    if claimed.is_empty() {
        return Version::V0_8;
    }
    if let Some(v) = claimed.iter().find_map(|c| Version::from_iri(c)) {
        return v;
    }
    report
        .errors
        .insert(format!("At least one of the provided conformsTo should be a valid CroissantVersion. Got: {}", claimed.join(", ")));
    Version::V0_8
}

/// A value as text: a string literal, or the IRI of a reference.
fn obj_text(o: &Obj) -> Option<String> {
    match o {
        Obj::Lit { value: Value::String(s), .. } => Some(s.clone()),
        Obj::Ref(id) => Some(id.clone()),
        _ => None,
    }
}

/// How mlcroissant prints a node's name: one value as itself, several languages as a dict.
fn name_of(node: &Node) -> String {
    let names = node.all(&format!("{SC}name"));
    match names {
        [] => String::new(),
        [one] => lit_str(one),
        many => {
            let pairs: Vec<String> = many
                .iter()
                .map(|o| match o {
                    Obj::Lit { language, .. } => {
                        format!("'{}': '{}'", language.as_deref().unwrap_or(""), lit_str(o))
                    }
                    _ => format!("'': '{}'", lit_str(o)),
                })
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
    }
}

fn lit_str(o: &Obj) -> String {
    match o {
        Obj::Lit { value: Value::String(s), .. } => s.clone(),
        Obj::Lit { value, .. } | Obj::Json(value) => value.to_string(),
        Obj::Ref(id) => id.clone(),
    }
}

/// Python's name for the type of a JSON scalar, as mlcroissant's messages print it.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Null => "NoneType",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

impl<'g> Checker<'g> {
    fn error(&mut self, path: Option<&str>, msg: String) {
        let msg = match path {
            Some(p) => format!("[{p}] {msg}"),
            None => msg,
        };
        self.report.errors.insert(msg);
    }

    fn mandatory(&mut self, path: &str, node: &Node, iri: &str) {
        if node.all(iri).is_empty() {
            self.error(Some(path), format!("Property \"{iri}\" is mandatory, but does not exist."));
        }
    }

    /// `_value_from_input_types` for `name` and `description`, which must be text.
    fn text_typed(&mut self, node: &Node) {
        for key in ["name", "description"] {
            for o in node.all(&format!("{SC}{key}")) {
                if let Obj::Lit { value, .. } = o
                    && !value.is_string()
                {
                    let got = py_type(value);
                    self.error(None, format!("`{key}` should have type {SC}Text, but got {got}"));
                }
            }
        }
    }

    /// The uuid mlcroissant gives a node: its name before 1.0, its `@id` since.
    fn uuid(&self, id: &str, name: &str) -> String {
        if self.v == Version::V0_8 { name.to_owned() } else { id.to_owned() }
    }

    fn node<'a>(&self, o: &'a Obj) -> Option<(&'a str, &'g Node)> {
        let g: &'g Graph = self.g;
        match o {
            Obj::Ref(id) => g.nodes.get(id).map(|n| (id.as_str(), n)),
            _ => None,
        }
    }

    fn texts(&self, node: &Node, iri: &str) -> Vec<String> {
        node.all(iri).iter().filter_map(obj_text).collect()
    }

    fn dataset(&mut self, ds: &Node) -> Dataset {
        let name = name_of(ds);
        let path = format!("Metadata({name})");
        self.text_typed(ds);
        if self.v == Version::V0_8 {
            self.mandatory(&path, ds, &format!("{SC}name"));
        }
        let cite_as = if self.v == Version::V0_8 { format!("{SC}citation") } else { format!("{}citeAs", self.cr) };
        for iri in [cite_as, format!("{SC}datePublished"), format!("{SC}license"), format!("{SC}version")] {
            if ds.all(&iri).is_empty() {
                self.report.warnings.insert(format!("[{path}] Property \"{iri}\" is recommended, but does not exist."));
            }
        }
        let version = self.dataset_version(ds, &path);
        let live = ds.all(&format!("{}isLiveDataset", self.cr)).iter().any(|o| matches!(o, Obj::Lit { value: Value::Bool(true), .. }));
        let (files, file_sets) = self.distribution(ds, &path, live);
        let record_sets = self.record_sets(ds, &path);
        self.graph_checks(&files, &file_sets, &record_sets);
        Dataset {
            conforms_to: self.v,
            name,
            description: ds.text(&format!("{SC}description")).map(str::to_owned),
            version,
            license: self.linked_texts(ds, &format!("{SC}license"), &format!("{SC}url")),
            url: ds.text(&format!("{SC}url")).map(str::to_owned),
            derived_from: self.linked_texts(ds, DERIVED_FROM, AT_LOCATION),
            files: files.into_iter().map(|(f, _)| f).collect(),
            file_sets: file_sets.into_iter().map(|(f, _)| f).collect(),
            record_sets: record_sets.iter().map(RecordSetIn::output).collect(),
            warnings: self.report.warnings.iter().cloned().collect(),
        }
    }

    /// Values that may be text or a node; a node is named by `via` (a URL), else its id.
    fn linked_texts(&self, node: &Node, iri: &str, via: &str) -> Vec<String> {
        node.all(iri)
            .iter()
            .filter_map(|o| match self.node(o) {
                Some((id, n)) => Some(n.text(via).unwrap_or(id).to_owned()),
                None => obj_text(o),
            })
            .collect()
    }

    /// `cast_version`: SemVer strings as they are, integers and floats padded.
    fn dataset_version(&mut self, ds: &Node, path: &str) -> Option<String> {
        let o = ds.all(&format!("{SC}version")).first()?;
        match o {
            Obj::Lit { value: Value::String(s), .. } => {
                if !is_semver(s) {
                    self.report.warnings.insert(format!(
                        "[{path}] Version doesn't follow MAJOR.MINOR.PATCH: {s}. For more information refer to: \
                         https://semver.org/spec/v2.0.0.html"
                    ));
                }
                Some(s.clone())
            }
            Obj::Lit { value: Value::Number(n), .. } if n.is_f64() => Some(format!("{n}.0")),
            Obj::Lit { value: Value::Number(n), .. } => Some(format!("{n}.0.0")),
            other => {
                let got = match other {
                    Obj::Lit { value, .. } => py_type(value),
                    _ => "dict",
                };
                self.error(Some(path), format!("The version should be a string or a number. Got: <class '{got}'>."));
                None
            }
        }
    }

    fn distribution(&mut self, ds: &Node, path: &str, live: bool) -> (Vec<Placed<FileObject>>, Vec<Placed<FileSet>>) {
        let (fo_type, fs_type) = if self.v == Version::V0_8 {
            (format!("{SC}FileObject"), format!("{SC}FileSet"))
        } else {
            (format!("{}FileObject", self.cr), format!("{}FileSet", self.cr))
        };
        let mut files = Vec::new();
        let mut sets = Vec::new();
        for o in ds.all(&format!("{SC}distribution")) {
            let Some((id, node)) = self.node(o) else {
                let got = if let Obj::Lit { value, .. } = o { py_type(value) } else { "str" };
                self.error(None, format!("`distribution` should have type {fo_type} or {fs_type}, but got {got}"));
                continue;
            };
            let name = name_of(node);
            let ty = node.first_type().unwrap_or("None").to_owned();
            if ty == fo_type {
                files.push(self.file_object(id, node, &name, path, live));
            } else if ty == fs_type {
                sets.push(self.file_set(id, node, &name, path));
            } else {
                let uuid = self.uuid(id, node.text(&format!("{SC}name")).unwrap_or("None"));
                self.error(
                    None,
                    format!("\"{uuid}\" should have an attribute \"@type\": \"{fo_type}\" or \"@type\": \"{fs_type}\". Got {ty} instead."),
                );
            }
        }
        (files, sets)
    }

    /// `containedIn` names a file object or set, directly or (since 1.1) as a source with
    /// transforms, such as a list of paths inside an archive.
    fn contained_in(&self, node: &Node) -> Vec<String> {
        let iri = if self.v == Version::V1_1 { format!("{}containedIn", self.cr) } else { format!("{SC}containedIn") };
        let keys = [format!("{}fileObject", self.cr), format!("{}fileSet", self.cr), format!("{}field", self.cr)];
        node.all(&iri)
            .iter()
            .filter_map(|o| match self.node(o) {
                Some((id, n)) => Some(keys.iter().find_map(|k| n.all(k).first().and_then(obj_text)).unwrap_or_else(|| id.to_owned())),
                None => obj_text(o),
            })
            .collect()
    }

    fn file_object(&mut self, id: &str, node: &Node, name: &str, parent: &str, live: bool) -> (FileObject, String) {
        let path = format!("{parent} > FileObject({name})");
        self.text_typed(node);
        self.mandatory(&path, node, &format!("{SC}encodingFormat"));
        if self.v == Version::V0_8 {
            self.mandatory(&path, node, &format!("{SC}name"));
        }
        let contained_in = self.contained_in(node);
        let md5_iri = if self.v == Version::V0_8 { format!("{SC}md5") } else { format!("{}md5", self.cr) };
        let md5 = node.text(&md5_iri).map(str::to_owned);
        let sha256 = node.text(&format!("{SC}sha256")).map(str::to_owned);
        if contained_in.is_empty() {
            self.mandatory(&path, node, &format!("{SC}contentUrl"));
            if !live && md5.is_none() && sha256.is_none() {
                self.error(Some(&path), "At least one of these properties should be defined: ['md5', 'sha256'].".into());
            }
        }
        let file = FileObject {
            id: self.uuid(id, name),
            name: name.to_owned(),
            content_url: node.text(&format!("{SC}contentUrl")).map(str::to_owned),
            encoding_format: self.texts(node, &format!("{SC}encodingFormat")),
            sha256,
            md5,
            content_size: node.all(&format!("{SC}contentSize")).first().map(lit_str),
            contained_in,
        };
        (file, path)
    }

    fn file_set(&mut self, id: &str, node: &Node, name: &str, parent: &str) -> (FileSet, String) {
        let path = format!("{parent} > FileSet({name})");
        self.text_typed(node);
        self.mandatory(&path, node, &format!("{}includes", self.cr));
        self.mandatory(&path, node, &format!("{SC}encodingFormat"));
        if self.v == Version::V0_8 {
            self.mandatory(&path, node, &format!("{SC}name"));
        }
        let set = FileSet {
            id: self.uuid(id, name),
            name: name.to_owned(),
            includes: self.texts(node, &format!("{}includes", self.cr)),
            encoding_format: self.texts(node, &format!("{SC}encodingFormat")),
            contained_in: self.contained_in(node),
        };
        (set, path)
    }
}

fn is_semver(s: &str) -> bool {
    let (core, _) = s.split_once('+').unwrap_or((s, ""));
    let (core, _) = core.split_once('-').unwrap_or((core, ""));
    let parts: Vec<&str> = core.split('.').collect();
    (1..=3).contains(&parts.len())
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0')))
}

mod records;
