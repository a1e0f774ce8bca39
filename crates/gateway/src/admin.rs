//! The gateway's management operations (keys, tenants, deployment health) as domain logic,
//! shared by the HTTP API in `proxy.rs`/`tenants.rs` and the operator console. This is where
//! key ids, secrets and timestamps are made; the handlers only translate.

use std::time::Instant;

use crate::Gateway;
use crate::keys::{KeyRecord, hash, new_secret};
use crate::limits::Limits;
use crate::proxy::now_ms;
use crate::tenants::{TenantSettings, tenant_id_ok};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A field of the input is wrong; `field` names it.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("no {what} {id:?}")]
    NotFound { what: &'static str, id: String },
    /// The store failed; nothing was changed (or the change is not yet visible).
    #[error("{0}")]
    Store(&'static str),
}

/// One deployment's health as the router sees it now.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeploymentHealth {
    pub id: String,
    pub base_url: String,
    pub cluster: Option<String>,
    pub weight: u32,
    pub latency_ms_ewma: Option<f64>,
    pub breaker_open: bool,
    pub input_cny_per_1k: f64,
    pub output_cny_per_1k: f64,
    pub context_length: Option<u32>,
    pub timeout_s: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelHealth {
    pub name: String,
    pub routing: crate::config::Routing,
    pub deployments: Vec<DeploymentHealth>,
}

impl Gateway {
    /// Makes a key for `tenant`. The secret is returned here and never again.
    pub async fn create_key(&self, tenant: &str, limits: Limits) -> Result<(KeyRecord, String), AdminError> {
        if !tenant_id_ok(tenant) {
            return Err(AdminError::Invalid { field: "tenant".into(), reason: "use 1-64 of a-z, 0-9, '-', '_'".into() });
        }
        if let Err(e) = limits.validate("limits.") {
            let (field, reason) = e.split_once(": ").unwrap_or(("limits", &e));
            return Err(AdminError::Invalid { field: field.into(), reason: reason.into() });
        }
        let secret = new_secret();
        let rec = KeyRecord {
            id: format!("key_{}", uuid::Uuid::now_v7().simple()),
            tenant: tenant.into(),
            prefix: secret[..10].to_string(),
            created_ms: now_ms(),
            revoked_ms: None,
            limits,
        };
        if let Err(e) = self.store.insert_key(&rec.id, &hash(&secret), &rec.tenant, &rec).await {
            tracing::error!(error = %e, "storing a key");
            return Err(AdminError::Store("the key could not be stored; nothing was changed"));
        }
        if self.reload_keys().await.is_err() {
            return Err(AdminError::Store("the key was stored but could not be loaded; retry"));
        }
        Ok((rec, secret))
    }

    /// Every key (never a secret), optionally of one tenant, oldest first.
    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, AdminError> {
        let keys: Vec<(String, KeyRecord)> = self.store.keys(tenant).await.map_err(|_| AdminError::Store("could not read keys"))?;
        Ok(keys.into_iter().map(|(_, k)| k).collect())
    }

    /// Revokes a key; revoking a revoked key changes nothing. With `tenant`, only that tenant's
    /// key is found, so one tenant cannot revoke another's.
    pub async fn revoke_key(&self, id: &str, tenant: Option<&str>) -> Result<KeyRecord, AdminError> {
        let keys = self.list_keys(tenant).await?;
        let Some(mut rec) = keys.into_iter().find(|k| k.id == id) else {
            return Err(AdminError::NotFound { what: "key", id: id.into() });
        };
        if rec.revoked_ms.is_none() {
            rec.revoked_ms = Some(now_ms());
            if self.store.update_key(&rec.id, &rec).await.is_err() || self.reload_keys().await.is_err() {
                return Err(AdminError::Store("could not revoke; retry"));
            }
        }
        Ok(rec)
    }

    /// Every tenant with stored settings, by name.
    pub async fn list_tenants(&self) -> Result<Vec<(String, TenantSettings)>, AdminError> {
        self.store.tenant_settings().await.map_err(|_| AdminError::Store("could not read tenants"))
    }

    /// A tenant's settings (the defaults when none are stored).
    pub fn tenant_settings(&self, tenant: &str) -> TenantSettings {
        self.tenant(tenant)
    }

    pub async fn set_tenant_settings(&self, tenant: &str, settings: &TenantSettings) -> Result<(), AdminError> {
        if !tenant_id_ok(tenant) {
            return Err(AdminError::Invalid { field: "tenant".into(), reason: "use 1-64 of a-z, 0-9, '-', '_'".into() });
        }
        settings.validate().map_err(|(field, reason)| AdminError::Invalid { field, reason })?;
        if self.store.set_tenant_settings(tenant, settings).await.is_err() || self.reload_keys().await.is_err() {
            return Err(AdminError::Store("the settings could not be stored; retry"));
        }
        Ok(())
    }

    /// Each model's deployments with their smoothed latency and breaker, in catalog order.
    pub fn health(&self) -> Vec<ModelHealth> {
        let now = Instant::now();
        let catalog = self.catalog();
        catalog
            .order
            .iter()
            .filter_map(|name| catalog.routes.get(name).map(|r| (name, r)))
            .map(|(name, route)| ModelHealth {
                name: name.clone(),
                routing: route.model.routing,
                deployments: route
                    .model
                    .deployments
                    .iter()
                    .zip(route.health(now))
                    .map(|(d, (_, latency_ms_ewma, breaker_open))| DeploymentHealth {
                        id: d.id.clone(),
                        base_url: d.base_url.clone(),
                        cluster: d.cluster.clone(),
                        weight: d.weight,
                        latency_ms_ewma,
                        breaker_open,
                        input_cny_per_1k: d.input_cny_per_1k,
                        output_cny_per_1k: d.output_cny_per_1k,
                        context_length: d.context_length,
                        timeout_s: d.timeout_s,
                    })
                    .collect(),
            })
            .collect()
    }

    /// The embedded model's name and state (`ready`, `loading`, `failed: …`), if one is served.
    pub fn embedded_state(&self) -> Option<(String, String)> {
        self.embedded.as_ref().map(|e| (e.name.clone(), e.state()))
    }

    /// The store this gateway meters into, for read-only queries of the ledger.
    pub fn store(&self) -> &store::Store {
        &self.store
    }
}
