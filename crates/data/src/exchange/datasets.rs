//! Datasets and their versions. A version is a Croissant record, validated as mlcroissant
//! validates it, and immutable once added: the same version number with other content is a
//! conflict. Its files whose `contentUrl` is a relative path are hosted here, addressed by
//! their `sha256`; a version is published once the tenant holds every one of them. A listing
//! points at one published version. `prov:wasDerivedFrom` links a version to the versions it
//! was derived from (lineage), which may be on this exchange (`urn:aiplus:dataset:…`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DataError, Exchange, check_id, hex, invalid, is_sha256};
use crate::croissant;

/// The IRI of a dataset version on this exchange, as lineage names it.
pub fn version_iri(tenant: &str, dataset: &str, version: &str) -> String {
    format!("urn:aiplus:dataset:{tenant}/{dataset}@{version}")
}

const IRI_PREFIX: &str = "urn:aiplus:dataset:";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetIn {
    pub id: String,
    /// A region (`province:<Name>` or `hub:<id>`) the dataset's bytes must stay in.
    #[serde(default)]
    pub residency: Option<String>,
}

/// A file of a version: hosted here (a relative `contentUrl`, with its `sha256`) or only
/// referenced (an absolute URL elsewhere).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileSpec {
    pub id: String,
    pub name: String,
    pub content_url: Option<String>,
    pub sha256: Option<String>,
    pub encoding_format: Vec<String>,
    pub hosted: bool,
}

/// What the exchange read from a version's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionSummary {
    pub name: String,
    pub description: Option<String>,
    pub conforms_to: String,
    pub license: Vec<String>,
    pub url: Option<String>,
    pub derived_from: Vec<String>,
    pub files: Vec<FileSpec>,
    pub record_sets: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionView {
    pub object: &'static str,
    pub dataset: String,
    pub version: String,
    pub iri: String,
    /// `draft` or `published`.
    pub state: String,
    pub croissant_sha256: String,
    pub created_ms: i64,
    pub published_ms: Option<i64>,
    /// Hosted files not yet uploaded, by file id.
    pub missing_files: Vec<String>,
    pub summary: VersionSummary,
}

/// A listing: the published version it points at and the terms it is offered on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListingIn {
    pub version: String,
    pub offer: super::Offer,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DatasetView {
    pub object: &'static str,
    pub tenant: String,
    pub id: String,
    pub residency: Option<String>,
    pub listed_version: Option<String>,
    pub offer: Option<super::Offer>,
    pub created_ms: i64,
    pub versions: Vec<VersionView>,
}

fn summary_of(ds: &croissant::Dataset) -> VersionSummary {
    let files = ds
        .files
        .iter()
        .map(|f| {
            let hosted = f.contained_in.is_empty() && f.content_url.as_deref().is_some_and(|u| !u.contains(':'));
            FileSpec {
                id: f.id.clone(),
                name: f.name.clone(),
                content_url: f.content_url.clone(),
                sha256: f.sha256.as_deref().map(str::to_ascii_lowercase),
                encoding_format: f.encoding_format.clone(),
                hosted,
            }
        })
        .collect();
    VersionSummary {
        name: ds.name.clone(),
        description: ds.description.clone(),
        conforms_to: ds.conforms_to.iri().to_string(),
        license: ds.license.clone(),
        url: ds.url.clone(),
        derived_from: ds.derived_from.clone(),
        files,
        record_sets: ds.record_sets.iter().map(|r| r.name.clone()).collect(),
        warnings: ds.warnings.clone(),
    }
}

/// Semantic Versioning `MAJOR.MINOR.PATCH`, with an optional pre-release and build.
fn is_full_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0')))
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-+.".contains(&b))
}

impl Exchange {
    pub async fn create_dataset(&self, tenant: &str, d: DatasetIn) -> Result<DatasetView, DataError> {
        check_id("id", &d.id)?;
        let residency = match d.residency.as_deref() {
            None => None,
            Some(r) => {
                let region = vocab::Region::parse(r).map_err(|e| invalid("residency", e))?;
                let inside = self.place.as_ref().is_some_and(|p| region.contains(vocab::Place { hub: &p.hub, province: &p.province }));
                if !inside {
                    let at = self.place.as_ref().map_or("an undeclared place".to_string(), |p| format!("hub {} in {}", p.hub, p.province));
                    return Err(invalid("residency", format!("this exchange stores files at {at}, outside {region}")));
                }
                Some(region.to_string())
            }
        };
        let row = store::DatasetRow {
            tenant: tenant.to_string(),
            id: d.id.clone(),
            residency,
            listed_version: None,
            offer: None,
            created_ms: self.clock.now_ms(),
        };
        match self.store.create_dataset(&row, self.limits.max_datasets).await? {
            Some(true) => self.dataset(tenant, &d.id).await,
            Some(false) => Err(DataError::Conflict(format!("dataset {:?} exists", d.id))),
            None => Err(DataError::Limit(format!("a tenant has at most {} datasets", self.limits.max_datasets))),
        }
    }

    async fn dataset_row(&self, tenant: &str, id: &str) -> Result<store::DatasetRow, DataError> {
        self.store.dataset(tenant, id).await?.ok_or_else(|| DataError::NotFound { what: "dataset", id: id.to_string() })
    }

    pub async fn dataset(&self, tenant: &str, id: &str) -> Result<DatasetView, DataError> {
        let row = self.dataset_row(tenant, id).await?;
        let mut versions = Vec::new();
        for v in self.store.dataset_versions(tenant, id).await? {
            versions.push(self.version_view(v).await?);
        }
        Ok(DatasetView {
            object: "dataset",
            tenant: row.tenant,
            id: row.id,
            residency: row.residency,
            listed_version: row.listed_version,
            offer: row.offer.as_deref().and_then(|o| serde_json::from_str(o).ok()),
            created_ms: row.created_ms,
            versions,
        })
    }

    pub async fn datasets(&self, tenant: &str) -> Result<Vec<DatasetView>, DataError> {
        let mut out = Vec::new();
        for row in self.store.datasets(tenant, self.limits.max_list).await? {
            out.push(self.dataset(tenant, &row.id).await?);
        }
        Ok(out)
    }

    async fn version_view(&self, v: store::VersionRow) -> Result<VersionView, DataError> {
        let summary: VersionSummary = serde_json::from_str(&v.summary).map_err(store::StoreError::from)?;
        let mut missing_files = Vec::new();
        for f in summary.files.iter().filter(|f| f.hosted) {
            let held = match &f.sha256 {
                Some(sha) => self.store.data_object(&v.tenant, sha).await?.is_some(),
                None => false,
            };
            if !held {
                missing_files.push(f.id.clone());
            }
        }
        Ok(VersionView {
            object: "dataset.version",
            iri: version_iri(&v.tenant, &v.dataset, &v.version),
            dataset: v.dataset,
            version: v.version,
            state: v.state,
            croissant_sha256: v.croissant_sha256,
            created_ms: v.created_ms,
            published_ms: v.published_ms,
            missing_files,
            summary,
        })
    }

    /// Adds a version from its Croissant record; `true` when it is new, `false` when the same
    /// record was added before.
    pub async fn add_version(&self, tenant: &str, dataset: &str, record: &str) -> Result<(VersionView, bool), DataError> {
        self.dataset_row(tenant, dataset).await?;
        let ds = croissant::validate_text(record).map_err(DataError::Croissant)?;
        let version = ds.version.clone().unwrap_or_default();
        if !is_full_semver(&version) {
            return Err(invalid(
                "version",
                format!("{version:?}: a version is MAJOR.MINOR.PATCH (Semantic Versioning), as Croissant asks"),
            ));
        }
        let summary = summary_of(&ds);
        for (i, f) in summary.files.iter().enumerate() {
            if f.hosted && !f.sha256.as_deref().is_some_and(is_sha256) {
                return Err(invalid(format!("distribution[{i}].sha256"), "a hosted file (a relative contentUrl) needs its SHA-256"));
            }
        }
        for (i, parent) in summary.derived_from.iter().enumerate() {
            self.check_parent(tenant, parent).await.map_err(|reason| invalid(format!("prov:wasDerivedFrom[{i}]"), reason))?;
        }
        let row = store::VersionRow {
            tenant: tenant.to_string(),
            dataset: dataset.to_string(),
            version: version.clone(),
            state: "draft".into(),
            croissant: record.to_string(),
            croissant_sha256: hex(&Sha256::digest(record.as_bytes())),
            summary: serde_json::to_string(&summary).map_err(store::StoreError::from)?,
            created_ms: self.clock.now_ms(),
            published_ms: None,
        };
        let created = match self.store.put_version(&row, &summary.derived_from, self.limits.max_versions).await? {
            store::PutVersion::Created => true,
            store::PutVersion::Unchanged => false,
            store::PutVersion::Conflict => {
                return Err(DataError::Conflict(format!(
                    "version {version} of {dataset} exists with other content; versions are immutable, so give the record a new version"
                )));
            }
            store::PutVersion::TooMany => {
                return Err(DataError::Limit(format!("a dataset has at most {} versions", self.limits.max_versions)));
            }
        };
        Ok((self.version(tenant, dataset, &version).await?, created))
    }

    /// A lineage link to this exchange must name a version that exists and that the tenant may
    /// see: its own, or one listed in the catalogue. Links elsewhere are kept as written.
    async fn check_parent(&self, tenant: &str, parent: &str) -> Result<(), String> {
        let Some(rest) = parent.strip_prefix(IRI_PREFIX) else { return Ok(()) };
        let bad = || format!("{parent:?} names no dataset version on this exchange");
        let (owner, rest) = rest.split_once('/').ok_or_else(bad)?;
        let (id, version) = rest.split_once('@').ok_or_else(bad)?;
        let Ok(Some(d)) = self.store.dataset(owner, id).await else { return Err(bad()) };
        if owner != tenant && d.listed_version.is_none() {
            return Err(bad());
        }
        match self.store.dataset_version(owner, id, version).await {
            Ok(Some(_)) => Ok(()),
            _ => Err(bad()),
        }
    }

    pub async fn version(&self, tenant: &str, dataset: &str, version: &str) -> Result<VersionView, DataError> {
        let row = self.version_row(tenant, dataset, version).await?;
        self.version_view(row).await
    }

    async fn version_row(&self, tenant: &str, dataset: &str, version: &str) -> Result<store::VersionRow, DataError> {
        self.store
            .dataset_version(tenant, dataset, version)
            .await?
            .ok_or_else(|| DataError::NotFound { what: "dataset version", id: format!("{dataset}@{version}") })
    }

    /// The Croissant record of a version, as it was added.
    pub async fn croissant(&self, tenant: &str, dataset: &str, version: &str) -> Result<String, DataError> {
        Ok(self.version_row(tenant, dataset, version).await?.croissant)
    }

    /// Publishes a draft once the tenant holds every hosted file. Publishing a published version
    /// changes nothing.
    pub async fn publish(&self, tenant: &str, dataset: &str, version: &str) -> Result<VersionView, DataError> {
        let view = self.version(tenant, dataset, version).await?;
        if view.state == "published" {
            return Ok(view);
        }
        if !view.missing_files.is_empty() {
            return Err(invalid("files", format!("not uploaded yet: {}", view.missing_files.join(", "))));
        }
        self.store.publish_version(tenant, dataset, version, self.clock.now_ms()).await?;
        self.version(tenant, dataset, version).await
    }

    /// Points the dataset's listing at a published version on an offer, or withdraws it (`None`).
    pub async fn set_listing(&self, tenant: &str, dataset: &str, listing: Option<ListingIn>) -> Result<DatasetView, DataError> {
        let d = self.dataset_row(tenant, dataset).await?;
        let Some(l) = listing else {
            self.store.set_listing(tenant, dataset, None, None).await?;
            return self.dataset(tenant, dataset).await;
        };
        let view = self.version(tenant, dataset, &l.version).await?;
        if view.state != "published" {
            return Err(invalid("version", format!("{} is a draft; publish it first", l.version)));
        }
        l.offer.check(d.residency.as_deref())?;
        let offer = serde_json::to_string(&l.offer).map_err(store::StoreError::from)?;
        self.store.set_listing(tenant, dataset, Some(&l.version), Some(&offer)).await?;
        self.dataset(tenant, dataset).await
    }

    /// Every tenant's listed datasets, each with the version its listing points at.
    pub async fn catalogue(&self) -> Result<Vec<(store::DatasetRow, VersionView)>, DataError> {
        let mut out = Vec::new();
        for d in self.store.listed_datasets(self.limits.max_list).await? {
            let Some(v) = d.listed_version.clone() else { continue };
            let view = self.version(&d.tenant, &d.id, &v).await?;
            out.push((d, view));
        }
        Ok(out)
    }

    /// A hosted file of a version, for its owner.
    pub async fn file(&self, tenant: &str, dataset: &str, version: &str, file_id: &str) -> Result<(FileSpec, bytes::Bytes), DataError> {
        let view = self.version(tenant, dataset, version).await?;
        let not_found = || DataError::NotFound { what: "file", id: file_id.to_string() };
        let spec = view.summary.files.iter().find(|f| f.id == file_id && f.hosted).cloned().ok_or_else(not_found)?;
        let sha = spec.sha256.clone().ok_or_else(not_found)?;
        let bytes = self.object(tenant, &sha).await?;
        Ok((spec, bytes))
    }
}
