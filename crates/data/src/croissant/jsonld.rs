//! The part of JSON-LD 1.1 expansion that Croissant records use, written for this validator.
//!
//! A Croissant record is JSON-LD with an inline `@context`. The reference validator
//! (mlcroissant) expands it with rdflib and then walks the resulting graph, so a key the
//! context does not define is silently dropped, and `"dataType": "sc:Text"` means the IRI
//! `https://schema.org/Text`. To refuse the same records for the same reasons, we expand the
//! same way: term definitions (`@id`, `@type` of `@id`, `@vocab` or `@json`, `@container` of
//! `@language`, `@list` or `@set`), `@vocab`, `@language`, compact IRIs and nested contexts.
//! Remote contexts are refused rather than fetched: validation never touches the network.
//!
//! The result is a flat graph of nodes keyed by `@id`, with blank nodes named `_:bN`, and
//! statements about one `@id` made in several places merged, as an RDF graph would.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

/// What a property points at after expansion.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    /// A node of the graph, or any IRI (a `@vocab` value such as a data type).
    Ref(String),
    /// A literal, with its language when it has one.
    Lit { value: Value, language: Option<String> },
    /// A `@json` literal, kept as it was written.
    Json(Value),
}

/// One node: its types and its properties, by expanded IRI, in the order first seen.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub types: Vec<String>,
    pub props: BTreeMap<String, Vec<Obj>>,
}

impl Node {
    /// All values of a property.
    pub fn all(&self, iri: &str) -> &[Obj] {
        self.props.get(iri).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The first value of a property that is a plain string.
    pub fn text(&self, iri: &str) -> Option<&str> {
        self.all(iri).iter().find_map(|o| match o {
            Obj::Lit { value: Value::String(s), .. } => Some(s.as_str()),
            _ => None,
        })
    }

    /// The first type, as mlcroissant reports it.
    pub fn first_type(&self) -> Option<&str> {
        self.types.first().map(String::as_str)
    }
}

/// The expanded graph plus what expansion itself found wrong.
#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: BTreeMap<String, Node>,
    /// Top-level nodes in document order.
    pub roots: Vec<String>,
    /// `@id`s that cannot be IRIs (they contain whitespace), in document order.
    pub bad_ids: Vec<String>,
    blank_count: usize,
}

/// Why a document could not be expanded at all.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExpandError {
    #[error("@context {0} is a remote context; only inline contexts are accepted")]
    RemoteContext(String),
    #[error("@context must be an object or a list of objects")]
    BadContext,
    #[error("the document nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("the document has more than {0} nodes")]
    TooManyNodes(usize),
    #[error("the top level of a JSON-LD document must be an object or a list")]
    NotAnObject,
}

/// Deeper nesting than any real record; it bounds the recursion.
pub const MAX_DEPTH: usize = 64;
/// More nodes than any real record (the largest example has a few hundred).
pub const MAX_NODES: usize = 50_000;

#[derive(Debug, Clone, Default)]
struct TermDef {
    iri: Option<String>,
    type_: Option<String>,
    container: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Ctx {
    vocab: Option<String>,
    language: Option<String>,
    terms: HashMap<String, TermDef>,
}

/// Expands a JSON-LD document into a graph.
pub fn expand(doc: &Value) -> Result<Graph, ExpandError> {
    let mut g = Graph::default();
    let ctx = Ctx::default();
    match doc {
        Value::Object(obj) => {
            let id = node(&mut g, &ctx, obj, 0)?;
            g.roots.push(id);
        }
        Value::Array(items) => {
            for item in items {
                let Value::Object(obj) = item else { return Err(ExpandError::NotAnObject) };
                let id = node(&mut g, &ctx, obj, 0)?;
                g.roots.push(id);
            }
        }
        _ => return Err(ExpandError::NotAnObject),
    }
    Ok(g)
}

fn with_context(outer: &Ctx, local: &Value) -> Result<Ctx, ExpandError> {
    let mut ctx = outer.clone();
    let list = match local {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    for item in &list {
        match item {
            Value::Null => ctx = Ctx::default(),
            Value::String(s) => return Err(ExpandError::RemoteContext(s.clone())),
            Value::Object(defs) => define(&mut ctx, defs),
            _ => return Err(ExpandError::BadContext),
        }
    }
    Ok(ctx)
}

fn define(ctx: &mut Ctx, defs: &Map<String, Value>) {
    if let Some(v) = defs.get("@vocab") {
        ctx.vocab = v.as_str().map(str::to_owned);
    }
    if let Some(v) = defs.get("@language") {
        ctx.language = v.as_str().map(str::to_owned);
    }
    for (term, def) in defs {
        if term.starts_with('@') {
            continue;
        }
        let d = match def {
            Value::String(iri) => TermDef { iri: Some(iri.clone()), ..TermDef::default() },
            Value::Object(o) => TermDef {
                iri: o.get("@id").and_then(Value::as_str).map(str::to_owned),
                type_: o.get("@type").and_then(Value::as_str).map(str::to_owned),
                container: o.get("@container").and_then(Value::as_str).map(str::to_owned),
            },
            // A null definition removes the term, so its key is dropped.
            _ => TermDef::default(),
        };
        ctx.terms.insert(term.clone(), d);
    }
    // Terms are expanded only now, once every prefix they may use is known.
    let snapshot = ctx.clone();
    for (term, d) in ctx.terms.iter_mut() {
        d.iri = match d.iri.take() {
            Some(iri) => expand_iri(&snapshot, &iri, true, 0),
            // A term defined without `@id` (say `{"@container": "@language"}`) keeps the
            // IRI `@vocab` would give it.
            None if defs.get(term.as_str()).is_some_and(Value::is_object) => snapshot.vocab.as_ref().map(|v| format!("{v}{term}")),
            None => None,
        };
        if let Some(t) = d.type_.take() {
            d.type_ = if t.starts_with('@') { Some(t) } else { expand_iri(&snapshot, &t, true, 0) };
        }
    }
}

/// Expands a term, compact IRI or IRI. `vocab` says whether `@vocab` applies (keys, types,
/// `@vocab`-typed values) or the string is a document-relative `@id`, which is kept as
/// written: mlcroissant strips its base again, so ids compare as the author wrote them.
fn expand_iri(ctx: &Ctx, s: &str, vocab: bool, depth: usize) -> Option<String> {
    if s.starts_with('@') {
        return Some(s.to_owned());
    }
    if depth > 8 {
        return None;
    }
    if vocab && let Some(def) = ctx.terms.get(s) {
        return def.iri.clone();
    }
    if let Some((prefix, suffix)) = s.split_once(':') {
        if prefix == "_" || suffix.starts_with("//") {
            return Some(s.to_owned());
        }
        if let Some(def) = ctx.terms.get(prefix) {
            let base = def.iri.as_deref().and_then(|i| expand_iri(ctx, i, true, depth + 1))?;
            return Some(format!("{base}{suffix}"));
        }
        return Some(s.to_owned());
    }
    if vocab {
        return ctx.vocab.as_ref().map(|v| format!("{v}{s}"));
    }
    Some(s.to_owned())
}

fn is_iri(s: &str) -> bool {
    s.contains(':')
}

fn node(g: &mut Graph, outer: &Ctx, obj: &Map<String, Value>, depth: usize) -> Result<String, ExpandError> {
    if depth > MAX_DEPTH {
        return Err(ExpandError::TooDeep(MAX_DEPTH));
    }
    if g.nodes.len() >= MAX_NODES {
        return Err(ExpandError::TooManyNodes(MAX_NODES));
    }
    let ctx = match obj.get("@context") {
        Some(local) => with_context(outer, local)?,
        None => outer.clone(),
    };
    let id = node_id(g, &ctx, obj.get("@id"));
    let mut types = Vec::new();
    for t in as_list(obj.get("@type")) {
        if let Some(iri) = t.as_str().and_then(|t| expand_iri(&ctx, t, true, 0)) {
            types.push(iri);
        }
    }
    let mut props: Vec<(String, Vec<Obj>)> = Vec::new();
    for (key, value) in obj {
        if key.starts_with('@') {
            continue;
        }
        let Some(iri) = expand_iri(&ctx, key, true, 0).filter(|i| is_iri(i)) else { continue };
        let def = ctx.terms.get(key).cloned().unwrap_or_default();
        let mut out = Vec::new();
        values(g, &ctx, &def, value, depth + 1, &mut out)?;
        if !out.is_empty() {
            props.push((iri, out));
        }
    }
    let entry = g.nodes.entry(id.clone()).or_default();
    for t in types {
        if !entry.types.contains(&t) {
            entry.types.push(t);
        }
    }
    for (iri, out) in props {
        entry.props.entry(iri).or_default().extend(out);
    }
    Ok(id)
}

fn node_id(g: &mut Graph, ctx: &Ctx, id: Option<&Value>) -> String {
    if let Some(s) = id.and_then(Value::as_str) {
        if s.chars().any(char::is_whitespace) {
            g.bad_ids.push(s.to_owned());
        } else if let Some(iri) = expand_iri(ctx, s, false, 0) {
            return iri;
        }
    }
    g.blank_count += 1;
    format!("_:b{}", g.blank_count)
}

fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    }
}

fn values(g: &mut Graph, ctx: &Ctx, def: &TermDef, value: &Value, depth: usize, out: &mut Vec<Obj>) -> Result<(), ExpandError> {
    if depth > MAX_DEPTH {
        return Err(ExpandError::TooDeep(MAX_DEPTH));
    }
    if def.type_.as_deref() == Some("@json") {
        out.push(Obj::Json(value.clone()));
        return Ok(());
    }
    match value {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                values(g, ctx, def, item, depth + 1, out)?;
            }
        }
        Value::Object(o) if def.container.as_deref() == Some("@language") && !is_value_object(o) => {
            for (language, v) in o {
                for item in as_list(Some(v)) {
                    out.push(Obj::Lit { value: item.clone(), language: Some(language.clone()) });
                }
            }
        }
        Value::Object(o) => object_value(g, ctx, def, o, depth, out)?,
        Value::String(s) => out.push(string_value(g, ctx, def, s)),
        scalar => out.push(Obj::Lit { value: scalar.clone(), language: None }),
    }
    Ok(())
}

fn is_value_object(o: &Map<String, Value>) -> bool {
    o.contains_key("@value") || o.contains_key("@list") || o.contains_key("@set") || o.contains_key("@id")
}

fn object_value(
    g: &mut Graph,
    ctx: &Ctx,
    def: &TermDef,
    o: &Map<String, Value>,
    depth: usize,
    out: &mut Vec<Obj>,
) -> Result<(), ExpandError> {
    if let Some(v) = o.get("@value") {
        if o.get("@type").and_then(Value::as_str) == Some("@json") {
            out.push(Obj::Json(v.clone()));
        } else if !v.is_null() {
            let language = o.get("@language").and_then(Value::as_str).map(str::to_owned);
            out.push(Obj::Lit { value: v.clone(), language });
        }
        return Ok(());
    }
    if let Some(items) = o.get("@list").or_else(|| o.get("@set")) {
        return values(g, ctx, def, items, depth + 1, out);
    }
    // A bare `{"@id": …}` is a reference. Its node may be described elsewhere, or nowhere.
    if o.len() == 1
        && let Some(id) = o.get("@id").and_then(Value::as_str)
    {
        if id.chars().any(char::is_whitespace) {
            g.bad_ids.push(id.to_owned());
        } else if let Some(iri) = expand_iri(ctx, id, false, 0) {
            out.push(Obj::Ref(iri));
        }
        return Ok(());
    }
    let id = node(g, ctx, o, depth + 1)?;
    out.push(Obj::Ref(id));
    Ok(())
}

fn string_value(g: &mut Graph, ctx: &Ctx, def: &TermDef, s: &str) -> Obj {
    match def.type_.as_deref() {
        Some("@id") if !s.chars().any(char::is_whitespace) => Obj::Ref(expand_iri(ctx, s, false, 0).unwrap_or_else(|| s.to_owned())),
        Some("@vocab") => Obj::Ref(expand_iri(ctx, s, true, 0).unwrap_or_else(|| s.to_owned())),
        Some("@id") => {
            g.bad_ids.push(s.to_owned());
            Obj::Lit { value: Value::String(s.to_owned()), language: None }
        }
        Some(_) => Obj::Lit { value: Value::String(s.to_owned()), language: None },
        None => Obj::Lit { value: Value::String(s.to_owned()), language: ctx.language.clone() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terms_compact_iris_and_vocab_expand_and_unknown_keys_drop() {
        let doc = json!({
            "@context": {"@vocab": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
                         "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "sc": "https://schema.org/",
                         "data": {"@id": "cr:data", "@type": "@json"}, "dropped": null},
            "@type": "sc:Dataset", "name": "x", "dataType": "sc:Text", "data": [{"a": 1}], "dropped": 1
        });
        let g = expand(&doc).unwrap();
        let root = &g.nodes[&g.roots[0]];
        assert_eq!(root.types, vec!["https://schema.org/Dataset"]);
        assert_eq!(root.text("https://schema.org/name"), Some("x"));
        assert_eq!(root.all("http://mlcommons.org/croissant/dataType"), [Obj::Ref("https://schema.org/Text".into())]);
        assert_eq!(root.all("http://mlcommons.org/croissant/data"), [Obj::Json(json!([{"a": 1}]))]);
        assert_eq!(root.props.len(), 3, "{:?}", root.props.keys());
    }

    #[test]
    fn references_and_descriptions_of_one_id_merge_and_bad_ids_are_reported() {
        let doc = json!({
            "@context": {"@vocab": "https://schema.org/"},
            "hasPart": [{"@id": "a", "name": "A"}, {"@id": "a", "url": "u"}, {"@id": "has space"}]
        });
        let g = expand(&doc).unwrap();
        assert_eq!(g.nodes["a"].text("https://schema.org/name"), Some("A"));
        assert_eq!(g.nodes["a"].text("https://schema.org/url"), Some("u"));
        assert_eq!(g.bad_ids, vec!["has space"]);
        assert_eq!(g.nodes[&g.roots[0]].all("https://schema.org/hasPart").len(), 2);
    }

    #[test]
    fn remote_contexts_and_runaway_nesting_are_refused() {
        assert!(matches!(expand(&json!({"@context": "https://x/ctx.json"})), Err(ExpandError::RemoteContext(_))));
        let mut deep = json!({"@context": {"@vocab": "https://schema.org/"}});
        for _ in 0..200 {
            deep = json!({"@context": {"@vocab": "https://schema.org/"}, "hasPart": deep});
        }
        assert_eq!(expand(&deep).unwrap_err(), ExpandError::TooDeep(MAX_DEPTH));
    }
}
