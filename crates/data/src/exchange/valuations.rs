//! Valuation records: a version's training file valued for a test file, per row and per
//! contributor. A record keeps everything needed to replay it: the method and its settings,
//! K, the utility, and the SHA-256 of both files (which the exchange holds by that hash).

use serde::{Deserialize, Serialize};

use super::{DataError, Exchange, invalid};
use crate::valuation::{Points, Values, per_contributor};

/// Largest file a valuation reads.
pub const MAX_VALUATION_FILE_BYTES: usize = 256 << 20;
/// Most rows a stored valuation keeps the per-row values of.
pub const MAX_STORED_VALUES: usize = 200_000;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    #[default]
    KnnShapley,
    Loo,
    Banzhaf,
}

fn default_k() -> usize {
    5
}

fn default_column() -> String {
    "contributor".into()
}

fn default_samples() -> usize {
    2000
}

/// What to value: two hosted files of the version (by file id).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValuationIn {
    pub train_file: String,
    pub test_file: String,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default)]
    pub method: Method,
    /// The training file's column naming each row's contributor.
    #[serde(default = "default_column")]
    pub contributor_column: String,
    /// Banzhaf only: subsets drawn, and the seed they are drawn from.
    #[serde(default = "default_samples")]
    pub samples: usize,
    #[serde(default)]
    pub seed: u64,
    /// Value text rows on their embeddings by the embedded model: the column holding each row's
    /// text (the label is still the last column). Unset: the features are the numeric columns.
    #[serde(default)]
    pub text_column: Option<String>,
}

/// Text embedding, as valuations of text rows need it; the binary gives the embedded model.
pub trait Embed: Send + Sync {
    /// The model's name, kept in the record so the valuation can be replayed.
    fn model(&self) -> String;
    /// One vector per text, or why the model cannot answer now. Blocking: called off the
    /// async workers.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

/// Texts embedded per call.
const EMBED_BATCH: usize = 64;

/// A text table's rows as points: their embeddings and labels.
pub fn embed_points(texts: &[String], labels: Vec<String>, model: &dyn Embed, field: &str) -> Result<Points<String>, DataError> {
    let mut features = Vec::new();
    let mut dim = 0;
    for batch in texts.chunks(EMBED_BATCH) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let vectors = model.embed(&refs).map_err(|why| DataError::Conflict(format!("{field}: cannot embed the texts: {why}")))?;
        for v in vectors {
            if dim == 0 {
                dim = v.len();
            }
            if v.len() != dim || dim == 0 {
                return Err(DataError::Conflict(format!("{field}: the model gave vectors of {} and {dim} dimensions", v.len())));
            }
            features.extend(v.into_iter().map(f64::from));
        }
    }
    if features.len() != texts.len() * dim {
        return Err(DataError::Conflict(format!("{field}: the model did not embed every text")));
    }
    Ok(Points { features, dim, labels })
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContributorValue {
    pub id: String,
    pub value: f64,
    pub points: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValuationRecord {
    pub object: String,
    pub id: String,
    pub dataset: String,
    pub version: String,
    pub method: Method,
    pub k: usize,
    pub utility: f64,
    pub train_sha256: String,
    pub test_sha256: String,
    pub contributor_column: String,
    pub samples: Option<usize>,
    pub seed: Option<u64>,
    /// Text rows valued on their embeddings: the text column and the model that embedded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_model: Option<String>,
    pub contributors: Vec<ContributorValue>,
    /// Each training row's value, in row order.
    pub values: Vec<f64>,
    pub created_ms: i64,
}

impl Exchange {
    /// Values a version's training file for its test file and records the result.
    pub async fn value_version(&self, tenant: &str, dataset: &str, version: &str, v: ValuationIn) -> Result<ValuationRecord, DataError> {
        let (train_spec, train) = self.file(tenant, dataset, version, &v.train_file).await.map_err(|e| rename(e, "train_file"))?;
        let (test_spec, test) = self.file(tenant, dataset, version, &v.test_file).await.map_err(|e| rename(e, "test_file"))?;
        for (field, bytes) in [("train_file", &train), ("test_file", &test)] {
            if bytes.len() > MAX_VALUATION_FILE_BYTES {
                return Err(invalid(field, format!("a valuation reads files of at most {MAX_VALUATION_FILE_BYTES} bytes")));
            }
        }
        let column = v.contributor_column.clone();
        let (method, k, samples, seed) = (v.method, v.k, v.samples, v.seed);
        let text = match &v.text_column {
            None => None,
            Some(c) => match &self.embedder {
                Some(e) => Some((c.clone(), e.clone())),
                None => return Err(invalid("text_column", "this server has no embedded model to embed texts with")),
            },
        };
        let embedding_model = text.as_ref().map(|(_, e)| e.model());
        let computed = tokio::task::spawn_blocking(move || -> Result<(Values, Vec<String>), DataError> {
            let (train, test) = match text {
                None => (
                    crate::table::read_csv(&train, Some(&column), "train_file").map_err(from_valuation)?,
                    crate::table::read_csv(&test, None, "test_file").map_err(from_valuation)?,
                ),
                Some((text, model)) => {
                    let tr = crate::table::read_text_csv(&train, &text, Some(&column), "train_file").map_err(from_valuation)?;
                    let te = crate::table::read_text_csv(&test, &text, None, "test_file").map_err(from_valuation)?;
                    let points = embed_points(&tr.texts, tr.labels, model.as_ref(), "train_file")?;
                    let test = embed_points(&te.texts, te.labels, model.as_ref(), "test_file")?;
                    (
                        crate::table::Table { points, contributors: tr.contributors },
                        crate::table::Table { points: test, contributors: Vec::new() },
                    )
                }
            };
            if train.points.len() > MAX_STORED_VALUES {
                return Err(invalid("train_file", format!("a stored valuation holds at most {MAX_STORED_VALUES} rows")));
            }
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            let values = match method {
                Method::KnnShapley => crate::valuation::knn_shapley(&train.points, &test.points, k, threads),
                Method::Loo => crate::semivalues::leave_one_out(&train.points, &test.points, k),
                Method::Banzhaf => crate::semivalues::banzhaf_msr(&train.points, &test.points, k, samples, seed),
            }
            .map_err(from_valuation)?;
            Ok((values, train.contributors))
        })
        .await
        .map_err(|e| DataError::Objects(format!("the valuation stopped: {e}")))??;
        let (values, owners) = computed;
        let contributors = per_contributor(&values.values, &owners)
            .into_iter()
            .map(|(id, value)| ContributorValue { id: id.to_string(), value, points: owners.iter().filter(|o| *o == id).count() })
            .collect();
        let banzhaf = method == Method::Banzhaf;
        let record = ValuationRecord {
            object: "data.valuation".into(),
            id: (self.ids)("val"),
            dataset: dataset.to_string(),
            version: version.to_string(),
            method,
            k,
            utility: values.utility,
            train_sha256: train_spec.sha256.unwrap_or_default(),
            test_sha256: test_spec.sha256.unwrap_or_default(),
            contributor_column: v.contributor_column,
            samples: banzhaf.then_some(samples),
            seed: banzhaf.then_some(seed),
            text_column: v.text_column,
            embedding_model,
            contributors,
            values: values.values,
            created_ms: self.clock.now_ms(),
        };
        let doc = serde_json::to_string(&record).map_err(store::StoreError::from)?;
        let method_name = serde_json::to_value(method).ok().and_then(|m| m.as_str().map(str::to_owned)).unwrap_or_default();
        let row = store::ValuationRow {
            id: record.id.clone(),
            tenant: tenant.to_string(),
            dataset: dataset.to_string(),
            version: version.to_string(),
            method: method_name,
            created_ms: record.created_ms,
            doc,
        };
        self.store.put_valuation(&row).await?;
        Ok(record)
    }

    /// A version's valuations, newest first.
    pub async fn valuations(&self, tenant: &str, dataset: &str, version: &str) -> Result<Vec<ValuationRecord>, DataError> {
        self.version(tenant, dataset, version).await?;
        let docs = self.store.valuations(tenant, dataset, version, self.limits.max_list).await?;
        docs.iter().map(|d| serde_json::from_str(d).map_err(|e| DataError::Store(store::StoreError::from(e)))).collect()
    }
}

fn from_valuation(e: crate::valuation::ValuationError) -> DataError {
    let crate::valuation::ValuationError::Invalid { field, reason } = e;
    invalid(field, reason)
}

/// A missing file is named by the field that asked for it.
fn rename(e: DataError, field: &str) -> DataError {
    match e {
        DataError::NotFound { what: "file", id } => invalid(field, format!("{id:?} is not a hosted file of this version")),
        other => other,
    }
}
