//! Builds the data exchange from `[data]`: its object store (the data dir, or S3) and limits.

use std::sync::Arc;

use anyhow::Context as _;
use data::exchange::{Exchange, Limits, StorePlace};
use object_store::ObjectStore;

use crate::config::DataConfig;

/// The exchange's object store: `<data_dir>/objects`, or the bucket and prefix of an
/// `s3://bucket/prefix` URL with the `AWS_*` settings from the environment.
pub fn object_store(cfg: &DataConfig, data_dir: &std::path::Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    if cfg.objects.is_empty() {
        let dir = data_dir.join("objects");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
        return Ok(Arc::new(local));
    }
    let rest = cfg.objects.strip_prefix("s3://").context("data.objects: write s3://bucket[/prefix], or leave it empty for the data dir")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        anyhow::bail!("data.objects: {:?} names no bucket", cfg.objects);
    }
    let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).build().context("data.objects: S3")?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() { Arc::new(s3) } else { Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)) })
}

pub fn open(
    cfg: &DataConfig,
    data_dir: &std::path::Path,
    store: store::Store,
    log: Arc<tlog::Log>,
    clock: Arc<dyn vocab::Clock>,
) -> anyhow::Result<Arc<Exchange>> {
    let objects = object_store(cfg, data_dir)?;
    let limits =
        Limits { chunk_bytes: cfg.chunk_mib << 20, max_tenant_bytes: cfg.max_tenant_gib << 30, fee_bps: cfg.fee_bps, ..Limits::default() };
    let place = (!cfg.hub.is_empty()).then(|| StorePlace { hub: cfg.hub.clone(), province: cfg.province.clone() });
    let ids = Arc::new(|p: &str| format!("{p}_{}", uuid::Uuid::now_v7().simple()));
    let exchange = Exchange::new(store, objects, clock, ids, limits, place).with_registry(log, cfg.notice_s * 1000);
    Ok(Arc::new(exchange))
}
