//! The BERT encoder: weights from `model.safetensors` and the forward pass.
//!
//! Sequences of one batch are packed row after row with no padding: the linear layers see all
//! tokens of the batch as one matrix, and attention runs per sequence over its own rows only.
//! That is exactly what a padded batch with an attention mask computes for the real tokens
//! (masked keys get zero weight), without spending work on padding.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::EmbedError;
use crate::config::{BertConfig, Pooling};
use crate::erf::erf;
use crate::gemm::PackedLinear;

/// The nonlinearity between the two feed-forward layers (`hidden_act`).
#[derive(Debug, Clone, Copy)]
enum Activation {
    /// `x·Φ(x)` with the exact normal CDF, Hugging Face's `"gelu"`.
    Gelu,
    /// The tanh approximation, Hugging Face's `"gelu_new"` and `"gelu_pytorch_tanh"`.
    GeluTanh,
    Relu,
}

/// Scale and shift of one layer normalisation.
struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// One transformer block.
struct Layer {
    /// Query, key and value projections stacked into one `[3H, H]` weight, so one product
    /// computes all three.
    qkv: PackedLinear,
    attention_out: PackedLinear,
    attention_norm: LayerNorm,
    intermediate: PackedLinear,
    output: PackedLinear,
    output_norm: LayerNorm,
}

/// A loaded BERT encoder.
pub(crate) struct Bert {
    hidden: usize,
    heads: usize,
    eps: f64,
    activation: Activation,
    vocab_rows: usize,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    /// Row 0 of the token-type table: every token of a single sentence is of type 0.
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Reads the weights `config` describes from `path`, checking every tensor's shape.
    pub(crate) fn load(path: &Path, config: &BertConfig) -> Result<Self, EmbedError> {
        let activation = match config.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => {
                return Err(EmbedError::Invalid {
                    path: path.with_file_name("config.json"),
                    field: "hidden_act".into(),
                    reason: format!("{other:?} is not supported"),
                });
            }
        };
        let bytes = std::fs::read(path).map_err(|source| EmbedError::Read { path: path.to_path_buf(), source })?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| EmbedError::Invalid {
            path: path.to_path_buf(),
            field: "header".into(),
            reason: e.to_string(),
        })?;
        let weights = Weights::new(path, &tensors);
        let h = config.hidden_size;
        let i = config.intermediate_size;
        let norm = |name: &str| -> Result<LayerNorm, EmbedError> {
            Ok(LayerNorm { weight: weights.get(&format!("{name}.weight"), &[h])?, bias: weights.get(&format!("{name}.bias"), &[h])? })
        };
        let linear = |name: &str, outputs: usize, inputs: usize| {
            let w = weights.get(&format!("{name}.weight"), &[outputs, inputs])?;
            let b = weights.get(&format!("{name}.bias"), &[outputs])?;
            Ok::<_, EmbedError>(PackedLinear::new(&w, &b, outputs, inputs))
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for n in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{n}");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                let name = format!("{p}.attention.self.{part}");
                qkv_w.extend(weights.get(&format!("{name}.weight"), &[h, h])?);
                qkv_b.extend(weights.get(&format!("{name}.bias"), &[h])?);
            }
            layers.push(Layer {
                qkv: PackedLinear::new(&qkv_w, &qkv_b, 3 * h, h),
                attention_out: linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: linear(&format!("{p}.intermediate.dense"), i, h)?,
                output: linear(&format!("{p}.output.dense"), h, i)?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let token_types = weights.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?;
        Ok(Self {
            hidden: h,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps,
            activation,
            vocab_rows: config.vocab_size,
            max_positions: config.max_position_embeddings,
            word: weights.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: weights.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?,
            token_type: token_types[..h].to_vec(),
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// Width of the token vectors.
    pub(crate) fn hidden(&self) -> usize {
        self.hidden
    }

    /// Rows of the word-embedding table; every token id must be below it.
    pub(crate) fn vocab_rows(&self) -> usize {
        self.vocab_rows
    }

    /// Longest sequence the position table covers.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Encodes each sequence and pools it to one vector (not normalised). Every id must be below
    /// `vocab_rows` and every sequence non-empty and at most `max_positions` long; the tokenizer
    /// guarantees both, as checked at load.
    pub(crate) fn embed(&self, sequences: &[Vec<u32>], pooling: Pooling) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let tokens: usize = sequences.iter().map(Vec::len).sum();
        let mut x = vec![0.0f32; tokens * h];
        for (row, (position, &id)) in x.chunks_exact_mut(h).zip(sequences.iter().flat_map(|s| s.iter().enumerate())) {
            let word = &self.word[id as usize * h..(id as usize + 1) * h];
            let pos = &self.position[position * h..(position + 1) * h];
            for (((v, &w), &p), &t) in row.iter_mut().zip(word).zip(pos).zip(&self.token_type) {
                *v = w + p + t;
            }
            layer_norm(row, &self.embedding_norm, self.eps);
        }
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let mut buffers = Buffers::new(tokens, h, self.layers.first().map_or(0, |l| l.intermediate.outputs()));
        for layer in &self.layers {
            self.layer_forward(layer, &mut x, &lengths, &mut buffers);
        }
        let mut pooled = Vec::with_capacity(sequences.len());
        let mut offset = 0;
        for &len in &lengths {
            let rows = &x[offset * h..(offset + len) * h];
            pooled.push(match pooling {
                Pooling::Cls => rows[..h].to_vec(),
                Pooling::Mean => mean_rows(rows, h),
            });
            offset += len;
        }
        pooled
    }

    /// One transformer block, updating `x` in place.
    fn layer_forward(&self, layer: &Layer, x: &mut [f32], lengths: &[usize], b: &mut Buffers) {
        layer.qkv.forward(x, &mut b.qkv);
        self.attention(&b.qkv, lengths, &mut b.context, &mut b.scores);
        layer.attention_out.forward(&b.context, &mut b.projected);
        add_and_norm(x, &b.projected, &layer.attention_norm, self.eps);
        layer.intermediate.forward(x, &mut b.intermediate);
        for v in &mut b.intermediate {
            *v = activate(self.activation, *v);
        }
        layer.output.forward(&b.intermediate, &mut b.projected);
        add_and_norm(x, &b.projected, &layer.output_norm, self.eps);
    }

    /// Scaled dot-product attention of every head, each sequence attending only to itself.
    /// `qkv` holds per token the query, key and value vectors side by side.
    fn attention(&self, qkv: &[f32], lengths: &[usize], context: &mut [f32], scores: &mut Vec<f32>) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let mut offset = 0;
        for &len in lengths {
            scores.resize(len, 0.0);
            let rows = &qkv[offset * 3 * h..(offset + len) * 3 * h];
            let out_rows = &mut context[offset * h..(offset + len) * h];
            for head in 0..self.heads {
                let q0 = head * d;
                let k0 = h + head * d;
                let v0 = 2 * h + head * d;
                for (i, out_row) in out_rows.chunks_exact_mut(h).enumerate() {
                    let q = &rows[i * 3 * h + q0..i * 3 * h + q0 + d];
                    for (s, key_row) in scores.iter_mut().zip(rows.chunks_exact(3 * h)) {
                        *s = dot(q, &key_row[k0..k0 + d]) * scale;
                    }
                    softmax(scores);
                    let out = &mut out_row[q0..q0 + d];
                    out.fill(0.0);
                    for (&p, value_row) in scores.iter().zip(rows.chunks_exact(3 * h)) {
                        for (o, &v) in out.iter_mut().zip(&value_row[v0..v0 + d]) {
                            *o += p * v;
                        }
                    }
                }
            }
            offset += len;
        }
    }
}

/// Scratch matrices for one batch, reused by every layer.
struct Buffers {
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    intermediate: Vec<f32>,
    scores: Vec<f32>,
}

impl Buffers {
    fn new(tokens: usize, hidden: usize, intermediate: usize) -> Self {
        Self {
            qkv: vec![0.0; tokens * 3 * hidden],
            context: vec![0.0; tokens * hidden],
            projected: vec![0.0; tokens * hidden],
            intermediate: vec![0.0; tokens * intermediate],
            scores: Vec::new(),
        }
    }
}

/// `x = LayerNorm(x + y)` row by row.
fn add_and_norm(x: &mut [f32], y: &[f32], norm: &LayerNorm, eps: f64) {
    let h = norm.weight.len();
    for (xr, yr) in x.chunks_exact_mut(h).zip(y.chunks_exact(h)) {
        for (a, &b) in xr.iter_mut().zip(yr) {
            *a += b;
        }
        layer_norm(xr, norm, eps);
    }
}

/// Normalises one row to zero mean and unit variance (biased, as PyTorch), then scales and
/// shifts it. The sums run in `f64` so long rows lose nothing to cancellation.
fn layer_norm(row: &mut [f32], norm: &LayerNorm, eps: f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, &w), &b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
        *v = ((f64::from(*v) - mean) * inv) as f32 * w + b;
    }
}

/// The activation of one value.
fn activate(activation: Activation, x: f32) -> f32 {
    let xd = f64::from(x);
    match activation {
        Activation::Gelu => (0.5 * xd * (1.0 + erf(xd * std::f64::consts::FRAC_1_SQRT_2))) as f32,
        Activation::GeluTanh => {
            let inner = (2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044_715 * xd * xd * xd);
            (0.5 * xd * (1.0 + inner.tanh())) as f32
        }
        Activation::Relu => x.max(0.0),
    }
}

/// Dot product with eight independent partial sums, which the compiler keeps in vector lanes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for (x, y) in a8.iter().zip(b8) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// In-place softmax, shifted by the maximum so `exp` cannot overflow.
fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in v.iter_mut() {
        *x *= inv;
    }
}

/// The average of the `h`-wide rows of `rows`.
fn mean_rows(rows: &[f32], h: usize) -> Vec<f32> {
    let mut sum = vec![0.0f64; h];
    let mut n = 0usize;
    for row in rows.chunks_exact(h) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += f64::from(v);
        }
        n += 1;
    }
    let n = n.max(1) as f64;
    sum.into_iter().map(|s| (s / n) as f32).collect()
}

/// Named tensors of one safetensors file, found with or without a `bert.` prefix (checkpoints
/// saved from `BertModel` have none, those saved from a task head such as `BertForMaskedLM`
/// have it).
struct Weights<'a> {
    path: &'a Path,
    tensors: &'a SafeTensors<'a>,
    prefix: &'static str,
}

impl<'a> Weights<'a> {
    fn new(path: &'a Path, tensors: &'a SafeTensors<'a>) -> Self {
        let prefix = if tensors.tensor("embeddings.word_embeddings.weight").is_err()
            && tensors.tensor("bert.embeddings.word_embeddings.weight").is_ok()
        {
            "bert."
        } else {
            ""
        };
        Self { path, tensors, prefix }
    }

    /// The tensor `name` as `f32`, which must have exactly `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        let full = format!("{}{name}", self.prefix);
        let invalid = |reason: String| EmbedError::Invalid { path: self.path.to_path_buf(), field: full.clone(), reason };
        let view = self.tensors.tensor(&full).map_err(|_| invalid("tensor is missing".into()))?;
        if view.shape() != shape {
            return Err(invalid(format!("shape is {:?}, the config needs {shape:?}", view.shape())));
        }
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => data.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)).collect(),
            other => return Err(invalid(format!("dtype {other:?} is not supported"))),
        };
        if values.len() != shape.iter().product::<usize>() {
            return Err(invalid("data length does not match its shape".into()));
        }
        Ok(values)
    }
}

/// Widens an IEEE half-precision value.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 == 0 { 1.0f32 } else { -1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let mantissa = f32::from(h & 0x3ff);
    match exponent {
        0 => sign * mantissa * 2f32.powi(-24),
        0x1f if mantissa == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        e => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::{dot, f16_to_f32, softmax};

    #[test]
    fn half_precision_widens_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn softmax_sums_to_one_and_dot_handles_tails() {
        let mut v = vec![1000.0, 1000.0, 0.0];
        softmax(&mut v);
        assert!((v[0] - 0.5).abs() < 1e-6 && v[2] == 0.0);
        let a: Vec<f32> = (0..11).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..11).map(|i| (i * i) as f32).sum::<f32>());
    }
}
