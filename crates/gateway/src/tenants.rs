//! Tenant settings (operator API): a tenant's limits, shared by all its keys, and its
//! residency: the regions (`hub:<id>` or `province:<name>`) its model traffic may be served
//! from. A tenant with no regions may use any deployment.

pub use identity::tenant_id_ok;

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::limits::Limits;
use crate::proxy::bad_json;
use crate::{Gateway, Site};

/// Most regions one tenant may name.
pub const MAX_REGIONS: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub regions: Vec<vocab::Region>,
}

impl TenantSettings {
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.limits.validate("limits.").map_err(|e| split(&e))?;
        if self.regions.len() > MAX_REGIONS {
            return Err(("regions".into(), format!("at most {MAX_REGIONS} regions")));
        }
        Ok(())
    }

    /// Whether a deployment at `site` (None: not in the compute network) may serve this tenant:
    /// the platform's one residency rule.
    pub fn allows(&self, site: Option<&Site>) -> bool {
        vocab::allows(&self.regions, site.map(|s| vocab::Place { hub: &s.hub, province: &s.province }))
    }
}

fn split(e: &str) -> (String, String) {
    match e.split_once(": ") {
        Some((f, r)) => (f.to_string(), r.to_string()),
        None => ("body".into(), e.to_string()),
    }
}

fn view(t: &identity::Tenant, s: &TenantSettings) -> serde_json::Value {
    serde_json::json!({"tenant": t.id, "name": t.name, "created_ms": t.created_ms, "settings": s})
}

/// `GET /api/v1/tenants` (operators): the registry with each tenant's settings.
pub async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    axum::Json(gw.list_tenants().iter().map(|(t, s)| view(t, s)).collect::<Vec<_>>()).into_response()
}

/// `POST /api/v1/tenants` (operator-admin): registers a tenant, `{"id", "name"}`.
pub async fn create(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewTenant {
        id: String,
        #[serde(default)]
        name: Option<String>,
    }
    let nt: NewTenant = match problem::parse_json(&body) {
        Ok(t) => t,
        Err(e) => return bad_json(e),
    };
    match gw.identity.create_tenant(&nt.id, nt.name.as_deref(), crate::proxy::now_ms()).await {
        Ok(t) => (StatusCode::CREATED, axum::Json(view(&t, &gw.tenant(&t.id)))).into_response(),
        Err(e) => crate::proxy::identity_problem(&e),
    }
}

/// `GET /api/v1/tenants/{tenant}`: an operator sees any, a tenant's admin its own; any other
/// tenant answers like a missing one.
pub async fn get(State(gw): State<Arc<Gateway>>, Extension(who): Extension<crate::Caller>, Path(tenant): Path<String>) -> Response {
    match gw.identity.tenant(&tenant).filter(|t| who.may_see(&t.id)) {
        Some(t) => axum::Json(view(&t, &gw.tenant(&t.id))).into_response(),
        None => crate::proxy::identity_problem(&identity::IdentityError::NotFound { what: "tenant", id: tenant }),
    }
}

pub async fn put(State(gw): State<Arc<Gateway>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let settings: TenantSettings = match problem::parse_json(&body) {
        Ok(s) => s,
        Err(e) => return bad_json(e),
    };
    match gw.set_tenant_settings(&tenant, &settings).await {
        Ok(()) => match gw.identity.tenant(&tenant) {
            Some(t) => axum::Json(view(&t, &settings)).into_response(),
            None => crate::proxy::identity_problem(&identity::IdentityError::NotFound { what: "tenant", id: tenant }),
        },
        Err(e) => crate::proxy::admin_problem(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_restrict_deployments_and_bad_ones_are_named() {
        let s: TenantSettings = serde_json::from_str(r#"{"regions": ["hub:ningxia", "province:Guizhou"]}"#).unwrap();
        let site = |hub: &str, province: &str| Site { hub: hub.into(), province: province.into(), cost_cny_per_kwh: 0.5 };
        assert!(s.allows(Some(&site("ningxia", "Ningxia"))));
        assert!(s.allows(Some(&site("guizhou", "guizhou"))));
        assert!(!s.allows(Some(&site("jingjinji", "Hebei"))));
        assert!(!s.allows(None), "a deployment outside the network has no known region");
        assert!(TenantSettings::default().allows(None));
        let de = &mut serde_json::Deserializer::from_str(r#"{"regions": ["hub:x", "moon"]}"#);
        let bad = serde_path_to_error::deserialize::<_, TenantSettings>(de).unwrap_err();
        assert_eq!(bad.path().to_string(), "regions[1]");
        let bad = TenantSettings { limits: Limits { tokens_per_day: Some(0), ..Default::default() }, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().0, "limits.tokens_per_day");
    }
}
