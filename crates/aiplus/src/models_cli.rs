//! `aiplus models fetch`: installs llama.cpp's server and built-in chat models from their pinned
//! PyPI wheels into `<data dir>/models/`, on this machine, with a progress bar. `aiplus serve`
//! fetches what it deploys by itself; this is for preparing a machine ahead of time, or for
//! another data directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

/// What `fetch` installed, by name and directory.
pub struct Installed {
    pub engine_dir: PathBuf,
    pub models: Vec<(String, PathBuf)>,
}

/// Installs the engine and each named built-in model under `dir` (a server's `models.dir`).
pub fn fetch(dir: &Path, names: &[String], quiet: bool) -> anyhow::Result<Installed> {
    for n in names {
        if models::catalog::builtin(n).is_none() {
            let known: Vec<&str> = models::catalog::BUILTIN.iter().map(|m| m.name).collect();
            anyhow::bail!("no built-in model {n:?}; the built-in models are {}", known.join(", "));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = outbound::client(false, std::time::Duration::from_secs(10)).build()?;
    let engine_dir = dir.join(models::catalog::LLAMA_ENGINE_DIR);
    let mut steps = vec![("llama.cpp (xllamacpp)".to_string(), engine_dir.clone(), models::catalog::llama_engine())];
    for n in names {
        if let Some(m) = models::catalog::builtin(n) {
            steps.push((m.name.to_string(), dir.join(m.name), (m.artifact)()));
        }
    }
    let mut installed = Vec::new();
    for (label, target, artifact) in &steps {
        let bar = ProgressBar::new(artifact.size_bytes());
        if quiet || artifact.is_installed(target) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(ProgressStyle::with_template("{msg:28} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")?);
        bar.set_message(label.clone());
        rt.block_on(fetch::ensure(target, artifact, &client, &|n, _| bar.set_position(n)))
            .with_context(|| format!("installing {label} into {}", target.display()))?;
        bar.finish_and_clear();
        installed.push((label.clone(), target.clone()));
    }
    models::install_launcher(&engine_dir)?;
    Ok(Installed { engine_dir, models: installed.into_iter().skip(1).collect() })
}
