//! `aiplus oss ingest --urls FILE`: GH Archive hours fetched from a list of URLs (one a line,
//! `#` comments) into `<data_dir>/oss/downloads/`, then ingested like a directory. A file is
//! written to a temporary name and renamed when whole, so a fetch that is cut off is done again
//! and one that finished is not. Hosts on this machine (loopback, link-local) are refused unless
//! `--allow-private-hosts` names a mirror there as intended; redirects are not followed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// Longest URL list read.
const MAX_URLS: usize = 100_000;

/// The URLs of a list file, with their line numbers.
pub fn read_list(path: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let urls: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i, l.to_string()))
        .collect();
    anyhow::ensure!(urls.len() <= MAX_URLS, "{}: at most {MAX_URLS} URLs", path.display());
    Ok(urls)
}

/// Fetches every URL not fetched before into `dir`; returns the files, in the list's order.
pub fn fetch_all(urls: &[(usize, String)], dir: &Path, allow_private: bool, progress: &dyn Fn(u64)) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = outbound::client(allow_private, Duration::from_secs(10)).timeout(Duration::from_secs(600)).build()?;
    let mut files = Vec::with_capacity(urls.len());
    for (i, (line, url)) in urls.iter().enumerate() {
        outbound::check_url(url, allow_private).map_err(|e| anyhow::anyhow!("line {line}: {e}"))?;
        let name = url.rsplit('/').next().unwrap_or("");
        let file = dir.join(name);
        oss::ingest::unit_name(&file).with_context(|| format!("line {line}: {url}"))?;
        if !file.exists() {
            rt.block_on(fetch_one(&client, url, &file)).with_context(|| format!("fetching {url}"))?;
        }
        files.push(file);
        progress(i as u64 + 1);
    }
    Ok(files)
}

async fn fetch_one(client: &reqwest::Client, url: &str, file: &Path) -> anyhow::Result<()> {
    let mut resp = client.get(url).send().await?;
    anyhow::ensure!(resp.status().is_success(), "HTTP {}", resp.status());
    let tmp = file.with_extension("part");
    let mut out = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    let mut total = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        total += chunk.len() as u64;
        anyhow::ensure!(total <= oss::ingest::MAX_FILE_BYTES, "larger than {} bytes", oss::ingest::MAX_FILE_BYTES);
        out.write_all(&chunk)?;
    }
    out.sync_all()?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}
