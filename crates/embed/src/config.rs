//! The JSON files of a sentence-transformers model directory, read into typed settings.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::EmbedError;

/// `config.json`: the transformer's shape, as written by Hugging Face for a `BertModel`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub(crate) hidden_size: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) intermediate_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub(crate) layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub(crate) hidden_act: String,
    pub(crate) max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub(crate) type_vocab_size: usize,
    pub(crate) vocab_size: usize,
    /// Only absolute position embeddings are implemented; others are refused by name.
    #[serde(default = "default_position_embedding_type")]
    pub(crate) position_embedding_type: String,
}

// The defaults are those of `transformers.BertConfig`, for configs that omit a field.
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Checks what the forward pass relies on, naming the field that breaks it.
    pub(crate) fn validate(&self, path: &Path) -> Result<(), EmbedError> {
        let invalid = |field: &str, reason: String| EmbedError::Invalid { path: path.to_path_buf(), field: field.into(), reason };
        for (field, value) in [
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_hidden_layers", self.num_hidden_layers),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
            ("vocab_size", self.vocab_size),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be positive".into()));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(invalid(
                "num_attention_heads",
                format!("{} does not divide hidden_size {}", self.num_attention_heads, self.hidden_size),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(invalid("layer_norm_eps", format!("{} is not a positive number", self.layer_norm_eps)));
        }
        if self.position_embedding_type != "absolute" {
            return Err(invalid(
                "position_embedding_type",
                format!("{:?} is not supported, only \"absolute\"", self.position_embedding_type),
            ));
        }
        Ok(())
    }
}

/// `tokenizer_config.json`, the fields of Hugging Face's `BertTokenizer` that change its output.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenizerConfig {
    #[serde(default = "yes")]
    pub(crate) do_lower_case: bool,
    #[serde(default = "yes")]
    pub(crate) tokenize_chinese_chars: bool,
    #[serde(default)]
    pub(crate) strip_accents: Option<bool>,
    #[serde(default)]
    pub(crate) model_max_length: Option<f64>,
    #[serde(default)]
    pub(crate) unk_token: Option<TokenName>,
    #[serde(default)]
    pub(crate) cls_token: Option<TokenName>,
    #[serde(default)]
    pub(crate) sep_token: Option<TokenName>,
    #[serde(default)]
    pub(crate) pad_token: Option<TokenName>,
    #[serde(default)]
    pub(crate) mask_token: Option<TokenName>,
}

fn yes() -> bool {
    true
}

/// A special token as Hugging Face writes it: a bare string or an `AddedToken` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum TokenName {
    Plain(String),
    Added { content: String },
}

impl TokenName {
    /// The token's text, or `default` when the field is absent.
    pub(crate) fn text_or(token: Option<&Self>, default: &str) -> String {
        match token {
            Some(Self::Plain(s) | Self::Added { content: s }) => s.clone(),
            None => default.to_owned(),
        }
    }
}

/// `sentence_bert_config.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SentenceBertConfig {
    #[serde(default)]
    pub(crate) max_seq_length: Option<usize>,
    #[serde(default)]
    pub(crate) do_lower_case: bool,
}

/// One entry of `modules.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ModuleEntry {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) path: String,
}

/// `<pooling dir>/config.json`, both the flag style of sentence-transformers 2–5 and the
/// `pooling_mode` string of later versions.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PoolingConfig {
    #[serde(default)]
    pub(crate) pooling_mode: Option<String>,
    #[serde(default)]
    pub(crate) pooling_mode_cls_token: bool,
    #[serde(default)]
    pub(crate) pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pub(crate) pooling_mode_max_tokens: bool,
    #[serde(default)]
    pub(crate) pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pub(crate) pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pub(crate) pooling_mode_lasttoken: bool,
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    /// The average over the sequence's tokens, `[CLS]` and `[SEP]` included.
    Mean,
    /// The vector of the first token, `[CLS]`.
    Cls,
}

impl PoolingConfig {
    /// The one supported pooling this file asks for.
    pub(crate) fn pooling(&self, path: &Path) -> Result<Pooling, EmbedError> {
        let invalid = |field: &str, reason: String| EmbedError::Invalid { path: path.to_path_buf(), field: field.into(), reason };
        if let Some(mode) = &self.pooling_mode {
            return match mode.as_str() {
                "mean" => Ok(Pooling::Mean),
                "cls" => Ok(Pooling::Cls),
                other => Err(invalid("pooling_mode", format!("{other:?} is not supported, only \"mean\" or \"cls\""))),
            };
        }
        for (field, on) in [
            ("pooling_mode_max_tokens", self.pooling_mode_max_tokens),
            ("pooling_mode_mean_sqrt_len_tokens", self.pooling_mode_mean_sqrt_len_tokens),
            ("pooling_mode_weightedmean_tokens", self.pooling_mode_weightedmean_tokens),
            ("pooling_mode_lasttoken", self.pooling_mode_lasttoken),
        ] {
            if on {
                return Err(invalid(field, "this pooling is not supported".into()));
            }
        }
        match (self.pooling_mode_cls_token, self.pooling_mode_mean_tokens) {
            (true, true) => Err(invalid("pooling_mode_cls_token", "combined with mean pooling (a concatenation) is not supported".into())),
            (true, false) => Ok(Pooling::Cls),
            // A file that turns every mode off is read as sentence-transformers' default, mean.
            (false, _) => Ok(Pooling::Mean),
        }
    }
}

/// Reads and parses a required JSON file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, EmbedError> {
    let bytes = std::fs::read(path).map_err(|source| EmbedError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| EmbedError::Json { path: path.to_path_buf(), source })
}

/// Reads and parses an optional JSON file: `None` when it does not exist.
pub(crate) fn read_optional_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, EmbedError> {
    match std::fs::metadata(path) {
        Ok(_) => read_json(path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EmbedError::Read { path: path.to_path_buf(), source }),
    }
}

/// The pooling module's directory, from `modules.json` when it names one.
pub(crate) fn pooling_dir(dir: &Path, modules: Option<&[ModuleEntry]>) -> PathBuf {
    modules.and_then(|m| m.iter().find(|e| e.kind.ends_with(".Pooling"))).map_or_else(|| dir.join("1_Pooling"), |e| dir.join(&e.path))
}
