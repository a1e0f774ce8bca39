//! Tenant settings (operator API): a tenant's limits, shared by all its keys, and its
//! residency: the regions (`hub:<id>` or `province:<name>`) its model traffic may be served
//! from. A tenant with no regions may use any deployment.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::limits::Limits;
use crate::proxy::problem;
use crate::{Gateway, Site};

/// Most regions one tenant may name.
pub const MAX_REGIONS: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub regions: Vec<String>,
}

impl TenantSettings {
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.limits.validate("limits.").map_err(|e| split(&e))?;
        if self.regions.len() > MAX_REGIONS {
            return Err(("regions".into(), format!("at most {MAX_REGIONS} regions")));
        }
        for (i, r) in self.regions.iter().enumerate() {
            let ok = matches!(r.split_once(':'), Some(("hub" | "province", v)) if !v.trim().is_empty() && v.len() <= 100);
            if !ok {
                return Err((format!("regions[{i}]"), format!("{r:?} is not `hub:<id>` or `province:<name>`")));
            }
        }
        Ok(())
    }

    /// Whether a deployment at `site` (None: not in the compute network) may serve this tenant.
    pub fn allows(&self, site: Option<&Site>) -> bool {
        if self.regions.is_empty() {
            return true;
        }
        let Some(site) = site else { return false };
        self.regions.iter().any(|r| match r.split_once(':') {
            Some(("hub", h)) => h == site.hub,
            Some(("province", p)) => p.eq_ignore_ascii_case(&site.province),
            _ => false,
        })
    }
}

fn split(e: &str) -> (String, String) {
    match e.split_once(": ") {
        Some((f, r)) => (f.to_string(), r.to_string()),
        None => ("body".into(), e.to_string()),
    }
}

/// A tenant id: 1-64 of a-z, 0-9, '-', '_' (the same rule for keys, settings, jobs and logins).
pub fn tenant_id_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    match gw.list_tenants().await {
        Ok(t) => {
            axum::Json(t.into_iter().map(|(id, s)| serde_json::json!({"tenant": id, "settings": s})).collect::<Vec<_>>()).into_response()
        }
        Err(e) => crate::proxy::admin_problem(&e),
    }
}

pub async fn get(State(gw): State<Arc<Gateway>>, Path(tenant): Path<String>) -> Response {
    axum::Json(serde_json::json!({"tenant": tenant, "settings": gw.tenant(&tenant)})).into_response()
}

pub async fn put(State(gw): State<Arc<Gateway>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let settings: TenantSettings = match serde_path_to_error::deserialize(de) {
        Ok(s) => s,
        Err(e) => {
            let path = e.path().to_string();
            return problem(StatusCode::UNPROCESSABLE_ENTITY, if path == "." { "body" } else { &path }, &e.inner().to_string());
        }
    };
    match gw.set_tenant_settings(&tenant, &settings).await {
        Ok(()) => axum::Json(serde_json::json!({"tenant": tenant, "settings": settings})).into_response(),
        Err(e) => crate::proxy::admin_problem(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_restrict_deployments_and_bad_ones_are_named() {
        let s = TenantSettings { regions: vec!["hub:ningxia".into(), "province:Guizhou".into()], ..Default::default() };
        let site = |hub: &str, province: &str| Site { hub: hub.into(), province: province.into(), cost_cny_per_kwh: 0.5 };
        assert!(s.allows(Some(&site("ningxia", "Ningxia"))));
        assert!(s.allows(Some(&site("guizhou", "guizhou"))));
        assert!(!s.allows(Some(&site("jingjinji", "Hebei"))));
        assert!(!s.allows(None), "a deployment outside the network has no known region");
        assert!(TenantSettings::default().allows(None));
        let bad = TenantSettings { regions: vec!["hub:x".into(), "moon".into()], ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().0, "regions[1]");
        let bad = TenantSettings { limits: Limits { tokens_per_day: Some(0), ..Default::default() }, ..Default::default() };
        assert_eq!(bad.validate().unwrap_err().0, "limits.tokens_per_day");
    }
}
