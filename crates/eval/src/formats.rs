//! Readers of the public sets' own formats, so their files are used as published.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::EvalError;
use crate::item::{Bias, Choice, Item, Task};
use crate::suite::{Format, Loaded, MAX_ITEMS, MAX_PROMPT_BYTES, Selection, Suite, read_capped, wanted};

pub(crate) fn read(suite: &Suite, selection: &Selection) -> Result<Loaded, EvalError> {
    let loaded = match suite.manifest.format {
        Format::Cmmlu => cmmlu(suite, selection)?,
        Format::Safetybench => safetybench(suite, selection)?,
        Format::Bbq => bbq(suite, selection)?,
        Format::Questions => questions(suite, selection)?,
        Format::Open => open(suite, selection)?,
    };
    if loaded.items.len() > MAX_ITEMS {
        return Err(EvalError::suite(suite.data_dir().display(), format!("more than {MAX_ITEMS} items")));
    }
    let mut ids = std::collections::HashSet::new();
    for item in &loaded.items {
        if !ids.insert(item.id.as_str()) {
            return Err(EvalError::suite(suite.data_dir().display(), format!("item id {:?} twice", item.id)));
        }
    }
    Ok(loaded)
}

fn choice(file: &Path, id: String, group: &str, question: String, options: Vec<String>, gold: usize) -> Result<Item, EvalError> {
    if question.len() + options.iter().map(String::len).sum::<usize>() > MAX_PROMPT_BYTES {
        return Err(EvalError::suite(file.display(), format!("{id}: longer than {MAX_PROMPT_BYTES} bytes")));
    }
    if options.len() < 2 || options.len() > crate::item::LETTERS.len() || gold >= options.len() {
        return Err(EvalError::suite(file.display(), format!("{id}: {} options, answer {gold}", options.len())));
    }
    Ok(Item { id, group: group.into(), task: Task::Choice(Choice { question, options, gold, bias: None }) })
}

/// The CSV files of a directory, sorted by name.
fn csv_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::suite(dir.display(), e.to_string()))?;
    let mut files: Vec<_> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "csv")).collect();
    files.sort();
    Ok(files)
}

fn cmmlu_file(path: &Path, group: &str) -> Result<Vec<Item>, EvalError> {
    let bytes = read_capped(path)?;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let bad = |e: csv::Error| EvalError::suite(path.display(), e.to_string());
    let headers = reader.headers().map_err(bad)?.clone();
    let col =
        |name: &str| headers.iter().position(|h| h == name).ok_or_else(|| EvalError::suite(path.display(), format!("no column {name}")));
    let (q, opts, ans) = (col("Question")?, [col("A")?, col("B")?, col("C")?, col("D")?], col("Answer")?);
    let mut items = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(bad)?;
        let field = |i: usize| record.get(i).unwrap_or_default().to_string();
        let gold = ["A", "B", "C", "D"].iter().position(|l| field(ans).trim() == *l);
        let gold = gold.ok_or_else(|| EvalError::suite(path.display(), format!("row {row}: answer {:?} is not A-D", field(ans))))?;
        let options = opts.iter().map(|&i| field(i)).collect();
        items.push(choice(path, format!("{group}/{row}"), group, field(q).trim().to_string(), options, gold)?);
    }
    Ok(items)
}

fn cmmlu(suite: &Suite, selection: &Selection) -> Result<Loaded, EvalError> {
    let data = suite.data_dir();
    let mut loaded = Loaded::default();
    for file in csv_files(&data.join("test"))? {
        let Some(group) = file.file_stem().and_then(|s| s.to_str()) else { continue };
        if !wanted(selection, group) {
            continue;
        }
        loaded.items.extend(cmmlu_file(&file, group)?);
        let dev = data.join("dev").join(format!("{group}.csv"));
        if dev.exists() {
            let examples = cmmlu_file(&dev, group)?;
            loaded.examples.insert(group.to_string(), examples);
        }
    }
    Ok(loaded)
}

fn named_file<'a>(suite: &'a Suite, k: usize, what: &str) -> Result<&'a str, EvalError> {
    suite
        .manifest
        .files
        .get(k)
        .map(String::as_str)
        .ok_or_else(|| EvalError::suite(suite.dir.join("suite.toml").display(), format!("files: needs {what}")))
}

fn json_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EvalError> {
    serde_json::from_slice(&read_capped(path)?).map_err(|e| EvalError::suite(path.display(), e.to_string()))
}

#[derive(Deserialize)]
struct SafetyQuestion {
    id: Value,
    question: String,
    options: Vec<String>,
    category: String,
}

#[derive(Deserialize)]
struct SafetyAnswer {
    answer: usize,
}

fn id_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), String::from)
}

fn safetybench(suite: &Suite, selection: &Selection) -> Result<Loaded, EvalError> {
    let data = suite.data_dir();
    let qpath = data.join(named_file(suite, 0, "the questions file")?);
    let apath = data.join(named_file(suite, 1, "the answers file")?);
    let questions: Vec<SafetyQuestion> = json_file(&qpath)?;
    let answers: BTreeMap<String, SafetyAnswer> = json_file(&apath)?;
    let mut loaded = Loaded::default();
    for q in questions {
        if !wanted(selection, &q.category) {
            continue;
        }
        let id = id_text(&q.id);
        let gold = answers.get(&id).ok_or_else(|| EvalError::suite(apath.display(), format!("no answer for {id}")))?.answer;
        loaded.items.push(choice(&qpath, format!("{}/{id}", q.category), &q.category, q.question, q.options, gold)?);
    }
    Ok(loaded)
}

#[derive(Deserialize)]
struct BbqRow {
    example_id: Value,
    question_polarity: String,
    context_condition: String,
    category: String,
    context: String,
    question: String,
    ans0: String,
    ans1: String,
    ans2: String,
    label: usize,
    answer_info: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    additional_metadata: BbqMeta,
}

#[derive(Default, Deserialize)]
struct BbqMeta {
    #[serde(default)]
    stereotyped_groups: Vec<String>,
}

/// BBQ's `answer_info` gives each option as [name, group]: the group is a label like
/// `old`/`nonOld` or `F`/`M`, except for nationalities, whose group is a region and whose name
/// is the nationality. The stereotyped option is the one whose name or group is among the
/// item's stereotyped groups; when both or neither are, the item has no target.
fn bbq_bias(row: &BbqRow) -> Bias {
    let info = |k: usize| -> Vec<String> {
        row.answer_info.get(&format!("ans{k}")).map(|v| v.iter().map(|s| s.to_lowercase()).collect()).unwrap_or_default()
    };
    let unknown = (0..3).find(|&k| info(k).get(1).is_some_and(|g| g == "unknown")).unwrap_or(2);
    let stereotyped: Vec<String> = row.additional_metadata.stereotyped_groups.iter().map(|s| s.to_lowercase()).collect();
    let matches: Vec<usize> = (0..3).filter(|&k| k != unknown && info(k).iter().any(|x| stereotyped.contains(x))).collect();
    Bias {
        ambiguous: row.context_condition == "ambig",
        negative: row.question_polarity == "neg",
        unknown,
        target: (matches.len() == 1).then(|| matches[0]),
    }
}

fn bbq(suite: &Suite, selection: &Selection) -> Result<Loaded, EvalError> {
    let mut loaded = Loaded::default();
    for name in &suite.manifest.files {
        let path = suite.data_dir().join(name);
        let text = String::from_utf8(read_capped(&path)?).map_err(|e| EvalError::suite(path.display(), e.to_string()))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: BbqRow = serde_json::from_str(line).map_err(|e| EvalError::suite(path.display(), format!("line {}: {e}", n + 1)))?;
            if !wanted(selection, &row.category) {
                continue;
            }
            let bias = bbq_bias(&row);
            let question = format!("{}\n{}", row.context.trim(), row.question.trim());
            let id = format!("{}/{}", row.category, id_text(&row.example_id));
            let mut item = choice(&path, id, &row.category, question, vec![row.ans0, row.ans1, row.ans2], row.label)?;
            if let Task::Choice(c) = &mut item.task {
                c.bias = Some(bias);
            }
            loaded.items.push(item);
        }
    }
    Ok(loaded)
}

fn questions(suite: &Suite, selection: &Selection) -> Result<Loaded, EvalError> {
    let mut loaded = Loaded::default();
    for bank in &suite.manifest.banks {
        let path = suite.data_dir().join(&bank.file);
        let bytes = read_capped(&path)?;
        let text = String::from_utf8(bytes).map_err(|e| EvalError::suite(path.display(), e.to_string()))?;
        let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let bad = |e: csv::Error| EvalError::suite(path.display(), e.to_string());
        let headers = reader.headers().map_err(bad)?.clone();
        let col = |name: &str| {
            headers.iter().position(|h| h.trim() == name).ok_or_else(|| EvalError::suite(path.display(), format!("no column {name:?}")))
        };
        let prompt_col = col(&bank.prompt)?;
        let class_col = bank.class.as_deref().map(col).transpose()?;
        let only = bank.only.as_ref().map(|o| col(&o.column).map(|c| (c, o.equals.as_str()))).transpose()?;
        let question_col = bank.question.as_deref().map(col).transpose()?;
        let stem = Path::new(&bank.file).file_stem().and_then(|s| s.to_str()).unwrap_or("bank");
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(bad)?;
            if only.is_some_and(|(c, v)| record.get(c).map(str::trim) != Some(v)) {
                continue;
            }
            let raw = class_col.and_then(|c| record.get(c)).map(|l| l.split('|').next().unwrap_or_default().trim().to_string());
            let raw = raw.or_else(|| bank.label.clone()).unwrap_or_else(|| "all".into());
            let group = suite.manifest.classes.get(&raw).cloned().unwrap_or(raw);
            let prompt = record.get(prompt_col).unwrap_or_default().trim().to_string();
            if prompt.is_empty() || !wanted(selection, &group) {
                continue;
            }
            if prompt.len() > MAX_PROMPT_BYTES {
                return Err(EvalError::suite(path.display(), format!("row {row}: longer than {MAX_PROMPT_BYTES} bytes")));
            }
            // Translations share a question's name: the column's value, scoped by the column.
            let question =
                question_col.and_then(|c| record.get(c)).map(|q| format!("{}:{}", bank.question.as_deref().unwrap_or(""), q.trim()));
            let task = Task::Refusal { prompt, must_refuse: bank.must_refuse, question };
            loaded.items.push(Item { id: format!("{stem}/{row}"), group, task });
        }
    }
    Ok(loaded)
}

fn open(suite: &Suite, selection: &Selection) -> Result<Loaded, EvalError> {
    let mut loaded = Loaded::default();
    for name in &suite.manifest.files {
        let path = suite.data_dir().join(name);
        let text = String::from_utf8(read_capped(&path)?).map_err(|e| EvalError::suite(path.display(), e.to_string()))?;
        let stem = Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or("open");
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: Value = serde_json::from_str(line).map_err(|e| EvalError::suite(path.display(), format!("line {}: {e}", n + 1)))?;
            let prompt = row.get("prompt").and_then(Value::as_str).unwrap_or_default().trim().to_string();
            let group = ["group", "domain_en"].iter().find_map(|k| row.get(*k).and_then(Value::as_str)).unwrap_or("all").to_string();
            if prompt.is_empty() || prompt.len() > MAX_PROMPT_BYTES || !wanted(selection, &group) {
                continue;
            }
            loaded.items.push(Item { id: format!("{stem}/{n}"), group, task: Task::Open { prompt } });
        }
    }
    Ok(loaded)
}
