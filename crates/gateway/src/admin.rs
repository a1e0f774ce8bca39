//! The gateway's management operations (tenants' settings, deployment health) as domain
//! logic, shared by the HTTP API in `tenants.rs` and the operator console. Keys and the tenant
//! registry are identity's (`identity::Identity`).

use std::time::Instant;

use crate::Gateway;
use crate::tenants::TenantSettings;

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
    /// Every registered tenant with its settings (the defaults when none are stored), by id.
    pub fn list_tenants(&self) -> Vec<(identity::Tenant, TenantSettings)> {
        self.identity
            .tenants()
            .into_iter()
            .map(|t| {
                let s = self.tenant(&t.id);
                (t, s)
            })
            .collect()
    }

    /// A tenant's settings (the defaults when none are stored).
    pub fn tenant_settings(&self, tenant: &str) -> TenantSettings {
        self.tenant(tenant)
    }

    /// Replaces a registered tenant's settings.
    pub async fn set_tenant_settings(&self, tenant: &str, settings: &TenantSettings) -> Result<(), AdminError> {
        if self.identity.tenant(tenant).is_none() {
            return Err(AdminError::NotFound { what: "tenant", id: tenant.into() });
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
