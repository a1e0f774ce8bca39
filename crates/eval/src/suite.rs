//! A suite is a directory: `suite.toml` says what the data is and how to ask it, and the data
//! files sit beside it (or where `data` points). Operators add their own banks this way; the
//! binary never needs a suite built in.
//!
//! ```toml
//! name = "cmmlu"
//! format = "cmmlu"                 # cmmlu | safetybench | bbq | questions | open
//! data = "data"                    # relative to the suite directory, or absolute
//! licence = "CC BY-NC-SA 4.0"
//! shots = 5
//! [prompt]
//! description = "以下是关于{group}的单项选择题，请直接给出正确答案的选项。\n\n"
//! answer = "答案："
//! [groups]                         # a group's name in prompts and reports
//! agronomy = "农学"
//! ```
//!
//! A `questions` suite lists its banks: `[[bank]] file, prompt (column), class (column),
//! question (column, for translations of one question), must_refuse`, and `[classes]` maps a
//! bank's labels to the risk classes it is reported by.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{EvalError, Item, formats};

/// Largest data file a suite may have.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Most items a suite may hold.
pub const MAX_ITEMS: usize = 200_000;
/// Longest prompt (question and options) one item may have.
pub const MAX_PROMPT_BYTES: usize = 32 << 10;
/// Most shots a run may ask for.
pub const MAX_SHOTS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// CMMLU's CSVs: `test/<subject>.csv` and `dev/<subject>.csv`, `,Question,A,B,C,D,Answer`.
    Cmmlu,
    /// SafetyBench's questions JSON and its answers JSON.
    Safetybench,
    /// BBQ's JSONL files, one per category.
    Bbq,
    /// Banks of prompts to refuse or to answer, as CSV with named columns.
    Questions,
    /// Open-ended prompts (JSONL with `prompt`), scored only by a judge.
    Open,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptConfig {
    /// Text before the shots; `{group}` becomes the group's name.
    #[serde(default)]
    pub description: String,
    /// What ends a question, before the answer letter.
    #[serde(default = "answer_cue")]
    pub answer: String,
}

fn answer_cue() -> String {
    "答案：".into()
}

/// One bank of a `questions` suite.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bank {
    pub file: String,
    /// The column holding the prompt.
    pub prompt: String,
    /// The column holding the risk label (labels joined by `|` count under the first).
    #[serde(default)]
    pub class: Option<String>,
    /// A label for every row, when the file has no class column.
    #[serde(default)]
    pub label: Option<String>,
    /// The column naming the question a row asks, when rows of several banks ask the same one
    /// (a translation): a bank's size counts questions, not rows.
    #[serde(default)]
    pub question: Option<String>,
    pub must_refuse: bool,
    /// Keep only rows whose `column` equals `equals` (XSTest's `label = safe`).
    #[serde(default)]
    pub only: Option<Only>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Only {
    pub column: String,
    pub equals: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    pub format: Format,
    #[serde(default = "here")]
    pub data: String,
    #[serde(default)]
    pub licence: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    /// Shots a run uses unless told otherwise.
    #[serde(default)]
    pub shots: usize,
    #[serde(default)]
    pub prompt: PromptConfig,
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    /// The data files, for formats with named files: SafetyBench's questions and answers,
    /// BBQ's categories, the open prompts.
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default, rename = "bank")]
    pub banks: Vec<Bank>,
    #[serde(default)]
    pub classes: BTreeMap<String, String>,
}

fn here() -> String {
    ".".into()
}

/// What part of a suite a run asks.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only these groups (subjects, categories); empty: all.
    pub groups: Vec<String>,
    /// At most this many items per group, the first ones.
    pub limit: Option<usize>,
}

/// A suite's items, and the examples its shots are drawn from, by group.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub items: Vec<Item>,
    pub examples: BTreeMap<String, Vec<Item>>,
}

#[derive(Clone, Debug)]
pub struct Suite {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

impl Suite {
    /// Reads `dir/suite.toml`.
    pub fn open(dir: &Path) -> Result<Suite, EvalError> {
        let file = dir.join("suite.toml");
        let text = std::fs::read_to_string(&file).map_err(|e| EvalError::suite(file.display(), e.to_string()))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| EvalError::suite(file.display(), e.to_string()))?;
        if manifest.shots > MAX_SHOTS {
            return Err(EvalError::suite(file.display(), format!("shots: at most {MAX_SHOTS}")));
        }
        if manifest.format == Format::Questions && manifest.banks.is_empty() {
            return Err(EvalError::suite(file.display(), "a questions suite needs at least one [[bank]]"));
        }
        Ok(Suite { manifest, dir: dir.to_path_buf() })
    }

    /// Where the data is.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join(&self.manifest.data)
    }

    /// The display name of a group in prompts and reports.
    pub fn group_name<'a>(&'a self, group: &'a str) -> &'a str {
        self.manifest.groups.get(group).map_or(group, String::as_str)
    }

    /// Reads the items the selection asks for, in the data's order.
    pub fn load(&self, selection: &Selection) -> Result<Loaded, EvalError> {
        let mut loaded = formats::read(self, selection)?;
        if !selection.groups.is_empty() {
            let known: std::collections::BTreeSet<&str> = loaded.items.iter().map(|i| i.group.as_str()).collect();
            if let Some(g) = selection.groups.iter().find(|g| !known.contains(g.as_str())) {
                return Err(EvalError::invalid("subjects", format!("{g:?} is not a group of suite {}", self.manifest.name)));
            }
        }
        if let Some(limit) = selection.limit {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            loaded.items.retain(|i| {
                let n = seen.entry(i.group.clone()).or_insert(0);
                *n += 1;
                *n <= limit
            });
        }
        if loaded.items.is_empty() {
            return Err(EvalError::suite(self.data_dir().display(), "no items"));
        }
        Ok(loaded)
    }
}

/// Reads a data file, refusing one over [`MAX_FILE_BYTES`].
pub(crate) fn read_capped(path: &Path) -> Result<Vec<u8>, EvalError> {
    let meta = std::fs::metadata(path).map_err(|e| EvalError::suite(path.display(), e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(EvalError::suite(path.display(), format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    std::fs::read(path).map_err(|e| EvalError::suite(path.display(), e.to_string()))
}

/// Whether a selection keeps a group.
pub(crate) fn wanted(selection: &Selection, group: &str) -> bool {
    selection.groups.is_empty() || selection.groups.iter().any(|g| g == group)
}
