//! Record sets and fields, and the checks over the whole structure graph: references that
//! must resolve, fields that need a source or a value, data types, and declared joins
//! (mlcroissant's `record_set.py`, `field.py`, `source.py` and `graph.py`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{CROISSANT_TYPES, Checker, FieldIn, Kind, MAX_FIELD_DEPTH, RecordSetIn, SC, SCHEMA_TYPES, Src, lit_str, name_of, obj_text};
use crate::croissant::jsonld::{Node, Obj};
use crate::croissant::{Field, FileObject, FileSet, RecordSet, Version};

impl RecordSetIn {
    pub(super) fn output(&self) -> RecordSet {
        fn out(f: &FieldIn) -> Field {
            let mut field = f.out.clone();
            field.sub_fields = f.subs.iter().map(out).collect();
            field
        }
        RecordSet { id: self.uuid.clone(), name: self.name.clone(), fields: self.fields.iter().map(out).collect() }
    }
}

impl Checker<'_> {
    pub(super) fn record_sets(&mut self, ds: &Node, parent: &str) -> Vec<RecordSetIn> {
        let rs_type = format!("{}RecordSet", self.cr);
        let mut out = Vec::new();
        for o in ds.all(&format!("{}recordSet", self.cr)) {
            let Some((id, node)) = self.node(o) else {
                self.error(None, format!("`record_sets` should have type {rs_type}, but got str"));
                continue;
            };
            let ty = node.first_type().unwrap_or("None").to_owned();
            if ty != rs_type {
                let uuid = self.uuid(id, node.text(&format!("{SC}name")).unwrap_or("None"));
                self.error(None, format!("\"{uuid}\" should have an attribute \"@type\": \"{rs_type}\". Got {ty} instead."));
                continue;
            }
            out.push(self.record_set(id, node, parent));
        }
        out
    }

    fn record_set(&mut self, id: &str, node: &Node, parent: &str) -> RecordSetIn {
        let name = name_of(node);
        let path = format!("{parent} > RecordSet({name})");
        let uuid = self.uuid(id, &name);
        self.text_typed(node);
        if self.v == Version::V0_8 {
            self.mandatory(&path, node, &format!("{SC}name"));
        }
        let field_type = format!("{}Field", self.cr);
        let mut fields = Vec::new();
        for o in node.all(&format!("{}field", self.cr)) {
            let Some((fid, fnode)) = self.node(o) else { continue };
            let ty = fnode.first_type().unwrap_or("None").to_owned();
            if ty != field_type {
                let label = self.uuid(fid, fnode.text(&format!("{SC}name")).unwrap_or("None"));
                self.error(None, format!("\"{label}\" should have an attribute \"@type\": \"{field_type}\". Got {ty} instead."));
            }
            fields.push(self.field(fid, fnode, &path, &uuid, 0));
        }
        let data = node.all(&format!("{}data", self.cr));
        let rs = RecordSetIn { uuid, path, name, has_data: !data.is_empty(), fields };
        if let Some(Obj::Json(value)) = data.first() {
            self.inline_data(&rs, value);
        }
        rs
    }

    /// `RecordSet.__post_init__`: inline `data` is a non-empty list of records whose keys are
    /// the record set's fields.
    fn inline_data(&mut self, rs: &RecordSetIn, value: &Value) {
        let data_iri = format!("{}data", self.cr);
        // One record may be written without its list, as Hugging Face's exports do;
        // mlcroissant reads it as a list of one.
        let lines = match value {
            Value::Array(lines) => lines.as_slice(),
            Value::Object(_) => std::slice::from_ref(value),
            other => {
                self.error(Some(&rs.path), format!("{data_iri} should declare a list. Got: <class '{}'>.", super::py_type(other)));
                return;
            }
        };
        if lines.is_empty() {
            self.error(Some(&rs.path), format!("{data_iri} should declare a non empty list."));
        }
        let expected: BTreeSet<&str> = rs.fields.iter().map(|f| f.uuid.as_str()).collect();
        for (i, line) in lines.iter().enumerate() {
            let Value::Object(o) = line else {
                let got = super::py_type(line);
                self.error(Some(&rs.path), format!("{data_iri} should declare a list of dict. Got: a list of <class '{got}'>."));
                return;
            };
            let keys: BTreeSet<&str> = o.keys().map(String::as_str).collect();
            if keys != expected {
                let fmt = |s: &BTreeSet<&str>| format!("{{{}}}", s.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "));
                self.error(
                    Some(&rs.path),
                    format!("Line #{i} doesn't have the expected columns. Expected: {}. Got: {}.", fmt(&expected), fmt(&keys)),
                );
            }
        }
    }

    fn field(&mut self, id: &str, node: &Node, parent: &str, parent_uuid: &str, depth: usize) -> FieldIn {
        let name = name_of(node);
        let path = format!("{parent} > Field({name})");
        let uuid = if self.v == Version::V0_8 { format!("{parent_uuid}/{name}") } else { id.to_owned() };
        self.text_typed(node);
        if self.v == Version::V0_8 {
            self.mandatory(&path, node, &format!("{SC}name"));
        }
        let cr = self.cr;
        let source = self.source(node.all(&format!("{cr}source")), true);
        let references = self.source(node.all(&format!("{cr}references")), false);
        let has_value = !node.all(&format!("{SC}value")).is_empty();
        let has_source = source.as_ref().is_some_and(|s| s.uuid.is_some());
        if has_value && has_source {
            self.error(Some(&path), format!("Field {uuid} defines both `source` and `value`. Please specify exactly one of them."));
        }
        let is_array = node.all(&format!("{cr}isArray")).iter().any(|o| matches!(o, Obj::Lit { value: Value::Bool(true), .. }));
        let array_shape = node.all(&format!("{cr}arrayShape")).first().map(lit_str);
        let mut subs = Vec::new();
        if depth < MAX_FIELD_DEPTH {
            for o in node.all(&format!("{cr}subField")) {
                if let Some((sid, snode)) = self.node(o) {
                    subs.push(self.field(sid, snode, &path, &uuid, depth + 1));
                }
            }
        }
        let out = Field {
            id: uuid.clone(),
            name,
            data_types: node.all(&format!("{cr}dataType")).iter().filter_map(obj_text).collect(),
            source: source.as_ref().and_then(|s| s.uuid.clone()),
            sub_fields: Vec::new(),
        };
        let field = FieldIn { out, uuid, path, has_value, source, references, subs, array_shape, is_array };
        self.array_checks(&field);
        field
    }

    /// `Field.__post_init__` and `array_shape_tuple`.
    fn array_checks(&mut self, f: &FieldIn) {
        let Some(shape) = &f.array_shape else { return };
        if !f.is_array {
            self.error(Some(&f.path), format!("Field {} defines `array_shape`, but `is_array` is False.", f.uuid));
        }
        if shape.split(',').any(|d| d.trim().parse::<i64>().is_err()) {
            self.error(
                Some(&f.path),
                format!("Field {}'s attribute array_shape `{shape}` cannot be parsed as a tuple of comma-separated values.", f.uuid),
            );
        }
    }

    /// A `source` or `references`: the node it names. A source must name exactly one of a
    /// field, a file object or a file set (mlcroissant's `exclusive_with`).
    fn source(&mut self, objs: &[Obj], exclusive: bool) -> Option<Src> {
        let o = objs.first()?;
        let Some((_, node)) = self.node(o) else {
            return Some(Src { uuid: obj_text(o) });
        };
        let cr = self.cr;
        let keys: Vec<String> = if self.v == Version::V0_8 {
            vec![format!("{cr}field"), format!("{SC}distribution")]
        } else {
            vec![format!("{cr}field"), format!("{cr}fileObject"), format!("{cr}fileSet")]
        };
        let named: Vec<String> = keys.iter().filter_map(|k| node.all(k).first().and_then(obj_text)).collect();
        if exclusive && named.len() != 1 {
            self.error(None, format!("Source should have one of the following properties {}.", keys.join(" or ")));
        }
        Some(Src { uuid: named.into_iter().next() })
    }

    pub(super) fn graph_checks(&mut self, files: &[(FileObject, String)], sets: &[(FileSet, String)], rss: &[RecordSetIn]) {
        let uuids = self.uuids(files, sets, rss);
        for (uuid, contained_in, path) in
            files.iter().map(|(f, p)| (&f.id, &f.contained_in, p)).chain(sets.iter().map(|(s, p)| (&s.id, &s.contained_in, p)))
        {
            for target in contained_in {
                if !uuids.contains_key(target) {
                    self.error(Some(path), dangling(target, uuid));
                }
            }
        }
        for (ri, rs) in rss.iter().enumerate() {
            let mut fed = false;
            for f in rs.fields.iter().flat_map(|f| std::iter::once(f).chain(f.subs.iter())) {
                for (src, is_ref) in [(&f.source, false), (&f.references, true)] {
                    let Some(target) = src.as_ref().and_then(|s| s.uuid.as_ref()) else { continue };
                    match uuids.get(target) {
                        // A join on another field feeds the field, not the record set.
                        Some(Kind::Field(..)) if is_ref => {}
                        Some(_) => fed = true,
                        None => self.error(Some(&rs.path), dangling(target, &rs.uuid)),
                    }
                }
            }
            if !fed && !rs.has_data {
                self.entry_record_set(ri, rss);
            }
        }
        for rs in rss {
            for f in &rs.fields {
                self.data_type_check(f, rss, &uuids);
            }
        }
        if self.report.errors.is_empty() {
            for rs in rss {
                self.joins(rs, &uuids);
            }
        }
    }

    fn uuids(&mut self, files: &[(FileObject, String)], sets: &[(FileSet, String)], rss: &[RecordSetIn]) -> BTreeMap<String, Kind> {
        let mut uuids = BTreeMap::new();
        let mut add = |c: &mut Self, uuid: &str, path: &str, kind: Kind| {
            if uuids.insert(uuid.to_owned(), kind).is_some() {
                c.error(Some(path), format!("Duplicate nodes with the same identifier: {uuid}"));
            }
        };
        for (f, p) in files {
            add(self, &f.id, p, Kind::Distribution);
        }
        for (s, p) in sets {
            add(self, &s.id, p, Kind::Distribution);
        }
        for (ri, rs) in rss.iter().enumerate() {
            add(self, &rs.uuid, &rs.path, Kind::RecordSet);
            for (fi, f) in rs.fields.iter().enumerate() {
                add(self, &f.uuid, &f.path, Kind::Field(rs.uuid.clone(), Some((ri, fi))));
                for s in &f.subs {
                    add(self, &s.uuid, &s.path, Kind::Field(rs.uuid.clone(), None));
                }
            }
        }
        uuids
    }

    /// `_get_entry_nodes`: a record set that nothing feeds must get its values somewhere.
    fn entry_record_set(&mut self, ri: usize, rss: &[RecordSetIn]) {
        let cr = self.cr;
        for f in &rss[ri].fields {
            let source = f.source.as_ref().and_then(|s| s.uuid.as_ref());
            if source.is_none() && !f.has_value && f.subs.is_empty() {
                self.error(
                    Some(&f.path),
                    format!("Field {} does not define `source` or `value`. Please specify exactly one of them.", f.uuid),
                );
            } else if f.has_value && f.out.data_types.is_empty() {
                self.error(
                    Some(&f.path),
                    format!("Field \"{}\" defines a constant value but omits {cr}dataType. Please declare the data type.", f.uuid),
                );
            } else if let Some(source) = source {
                self.error(
                    Some(&f.path),
                    format!(
                        "Malformed source data: {source}. It does not refer to any existing node. Have you used {cr}field or \
                         {SC}distribution to indicate the source field or the source distribution? If you specified a field, it \
                         should contain all the names from the RecordSet separated by `/`, e.g.: \"record_set_name/field_name\""
                    ),
                );
            }
        }
    }

    /// `Field.data_type`: a field without sub-fields has a known data type, or takes it
    /// from the field it is sourced from.
    fn data_type_check(&mut self, f: &FieldIn, rss: &[RecordSetIn], uuids: &BTreeMap<String, Kind>) {
        for s in &f.subs {
            self.data_type_check(s, rss, uuids);
        }
        if !f.subs.is_empty() {
            return;
        }
        let mut current = f;
        for _ in 0..MAX_FIELD_DEPTH {
            if current.out.data_types.iter().any(|t| self.known_type(t)) {
                return;
            }
            let next = current.source.as_ref().and_then(|s| s.uuid.as_ref()).and_then(|u| match uuids.get(u) {
                Some(Kind::Field(_, Some((ri, fi)))) => rss.get(*ri).and_then(|rs| rs.fields.get(*fi)),
                _ => None,
            });
            let Some(next) = next else {
                let got: Vec<String> = current.out.data_types.iter().map(|t| format!("rdflib.term.URIRef('{t}')")).collect();
                let msg = format!(
                    "The field does not specify a valid {}dataType, neither does any of its predecessor. Got: [{}]",
                    self.cr,
                    got.join(", ")
                );
                let path = current.path.clone();
                self.error(Some(&path), msg);
                return;
            };
            current = next;
        }
    }

    fn known_type(&self, t: &str) -> bool {
        let schema = t.strip_prefix(SC).or_else(|| t.strip_prefix("http://schema.org/"));
        schema.is_some_and(|s| SCHEMA_TYPES.contains(&s))
            || t.strip_prefix("http://mlcommons.org/croissant/").is_some_and(|s| CROISSANT_TYPES.contains(&s))
    }

    /// `RecordSet.check_joins_in_fields`: two sources feeding one record set need a join.
    fn joins(&mut self, rs: &RecordSetIn, uuids: &BTreeMap<String, Kind>) {
        let parent = |u: &String| match uuids.get(u) {
            Some(Kind::Field(rs_uuid, _)) => rs_uuid.clone(),
            _ => u.clone(),
        };
        let mut sources = BTreeSet::new();
        let mut joins = BTreeSet::new();
        for f in &rs.fields {
            let source = f.source.as_ref().and_then(|s| s.uuid.as_ref());
            let references = f.references.as_ref().and_then(|s| s.uuid.as_ref());
            if let Some(s) = source {
                sources.insert(parent(s));
            }
            if let (Some(s), Some(r)) = (source, references) {
                joins.insert((parent(s), parent(r)));
                joins.insert((parent(r), parent(s)));
            }
        }
        let sources: Vec<String> = sources.into_iter().collect();
        for (i, a) in sources.iter().enumerate() {
            for b in &sources[i + 1..] {
                if !joins.contains(&(a.clone(), b.clone())) {
                    self.error(
                        Some(&rs.path),
                        format!(
                            "You try to use the sources with names ('{a}', '{b}') as sources, but you didn't declare a join \
                             between them. Use `ml:references` to declare a join. Please, refer to the documentation for more \
                             information."
                        ),
                    );
                }
            }
        }
    }
}

fn dangling(target: &str, from: &str) -> String {
    format!("There is a reference to node with UUID \"{target}\" in node \"{from}\", but this node doesn't exist.")
}
