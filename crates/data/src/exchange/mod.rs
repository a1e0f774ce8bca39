//! The exchange service: datasets with immutable versions described by Croissant records, and
//! their files, uploaded in resumable chunks and kept content-addressed (by SHA-256, the hash
//! Croissant's `sha256` carries) in an object store: the data dir by default, any
//! S3-compatible store at scale.
//!
//! No HTTP here: the API's handlers call these methods with the tenant they act for. Time and
//! ids come in through a `Clock` and an id function, so the service's own code reads no clock.

mod contracts;
mod datasets;
mod registrations;
mod runs;
mod settle;
mod uploads;
mod valuations;

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

pub use contracts::{Contract, ContractIn, MAX_OUTPUT_BYTES, MAX_TERM_DAYS, Mode, Offer, OutputRules, Price};
pub use datasets::{DatasetIn, DatasetView, FileSpec, ListingIn, VersionSummary, VersionView};
pub use runs::{
    BoxFut, JobEnd, MIN_RECORD_BYTES, Run, RunIn, RunOutput, RunState, SealedJob, SealedJobs, Staging, SubmitError, check_outputs,
};
pub use settle::{Settlement, SettlementLine, month_ms, split_fen};
pub use uploads::{UploadIn, UploadView};
pub use valuations::{ContributorValue, Embed, Method, ValuationIn, ValuationRecord, embed_points};

/// What one tenant may hold and open; the defaults suit one machine.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Every chunk but the last is this size; the API's body limit must admit it.
    pub chunk_bytes: i64,
    pub max_file_bytes: i64,
    pub max_tenant_bytes: i64,
    pub max_open_uploads: i64,
    pub max_datasets: i64,
    pub max_versions: i64,
    /// Most rows one listing returns.
    pub max_list: i64,
    /// The platform's fee on a contract's revenue, in basis points (1000: 10%).
    pub fee_bps: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            chunk_bytes: 8 << 20,
            max_file_bytes: 64 << 30,
            max_tenant_bytes: 256 << 30,
            max_open_uploads: 100,
            max_datasets: 1000,
            max_versions: 1000,
            max_list: 1000,
            fee_bps: 1000,
        }
    }
}

/// Where the object store keeps its bytes: the hub and province a residency rule is checked
/// against. `None` when the operator has not said, and then no dataset may require residency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePlace {
    pub hub: String,
    pub province: String,
    /// The cluster of the network next to the store, where compute-to-data jobs are placed.
    pub cluster: Option<String>,
}

/// Why an exchange call failed. The API maps each to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Input that breaks a rule, naming the field.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A Croissant record that the reference validator would refuse; the report lists why.
    #[error("croissant: the record is not valid Croissant:\n{0}")]
    Croissant(crate::croissant::Report),
    /// Not found, or another tenant's (which answers the same).
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    /// A limit on what a tenant may hold or open.
    #[error("{0}")]
    Limit(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The object store failed; the request may be retried.
    #[error("object store: {0}")]
    Objects(String),
}

impl From<object_store::Error> for DataError {
    fn from(e: object_store::Error) -> Self {
        DataError::Objects(e.to_string())
    }
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DataError {
    DataError::Invalid { field: field.into(), reason: reason.into() }
}

/// Makes ids such as `upl_…`; the binary gives it a time-ordered UUID.
pub type Ids = Arc<dyn Fn(&str) -> String + Send + Sync>;

pub struct Exchange {
    store: store::Store,
    objects: Arc<dyn ObjectStore>,
    clock: Arc<dyn vocab::Clock>,
    ids: Ids,
    limits: Limits,
    place: Option<StorePlace>,
    /// The transparency log every registration step is written to.
    log: Option<Arc<tlog::Log>>,
    /// How long a registration's public notice runs.
    notice_ms: i64,
    /// The compute network compute-to-data jobs run on, and where their runs are staged.
    compute: Option<(Arc<dyn runs::SealedJobs>, std::path::PathBuf)>,
    /// The model that embeds text rows for valuation.
    embedder: Option<Arc<dyn valuations::Embed>>,
    /// Runs being advanced in this process right now.
    advancing: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Exchange {
    pub fn new(
        store: store::Store,
        objects: Arc<dyn ObjectStore>,
        clock: Arc<dyn vocab::Clock>,
        ids: Ids,
        limits: Limits,
        place: Option<StorePlace>,
    ) -> Self {
        Exchange {
            store,
            objects,
            clock,
            ids,
            limits,
            place,
            log: None,
            notice_ms: crate::registry::DEFAULT_NOTICE_MS,
            compute: None,
            embedder: None,
            advancing: Default::default(),
        }
    }

    /// Registrations write their steps to `log`, and their public notice runs `notice_ms`.
    pub fn with_registry(mut self, log: Arc<tlog::Log>, notice_ms: i64) -> Self {
        self.log = Some(log);
        self.notice_ms = notice_ms;
        self
    }

    /// Valuations of text rows embed them with `model`.
    pub fn with_embedder(mut self, model: Arc<dyn valuations::Embed>) -> Self {
        self.embedder = Some(model);
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Reads a whole object a tenant holds (a dataset file), by its hash.
    pub async fn object(&self, tenant: &str, sha256: &str) -> Result<bytes::Bytes, DataError> {
        if self.store.data_object(tenant, sha256).await?.is_none() {
            return Err(DataError::NotFound { what: "object", id: sha256.to_string() });
        }
        Ok(self.objects.get(&object_path(tenant, sha256)).await?.bytes().await?)
    }
}

/// Where a tenant's object lives: one namespace per tenant, so that whether another tenant
/// holds some content can never be learnt from an upload.
pub(crate) fn object_path(tenant: &str, sha256: &str) -> ObjectPath {
    ObjectPath::from_iter(["objects", tenant, sha256])
}

/// Where an upload's chunk waits until the upload completes.
pub(crate) fn chunk_path(upload: &str, ix: i64) -> ObjectPath {
    ObjectPath::from_iter(["staging".to_string(), upload.to_string(), format!("{ix:08}")])
}

/// Lower-case hex of a SHA-256 digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

pub(crate) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Ids of datasets: 1 to 64 of `a-z 0-9 - _ .`, starting with a letter or digit.
pub(crate) fn check_id(field: &str, id: &str) -> Result<(), DataError> {
    let ok = (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(field, format!("{id:?}: use 1 to 64 of a-z, 0-9, '-', '_' and '.', starting with a letter or digit")))
    }
}
