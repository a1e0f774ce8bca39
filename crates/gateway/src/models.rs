//! The model catalog: the models of `aiplus.toml` plus those managed through the API
//! (`/api/v1/models`, stored in the store so every instance sees them). Requests read an
//! immutable snapshot; a change builds a new one, keeping the routing state (weights' turn,
//! latency averages, breakers) of models that did not change.
//!
//! Upstream keys come from environment variables (config models, `api_key_env`) or from the
//! API (`api_key`, stored apart from the model document, sealed with the server's secret key:
//! `identity::seal`). No answer of the API contains them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{DeploymentConfig, GatewayConfig, ModelConfig, Routing};
use crate::proxy::{bad_json, problem};
use crate::router::ModelRoute;
use crate::{Gateway, GatewayError};

/// Most models the API may hold.
pub const MAX_API_MODELS: usize = 1000;

/// Where a model is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Api,
    /// Only by its replicas placed on the compute network (`Gateway::set_placed`).
    Placed,
}

/// Replicas placed on the compute network, by model: deployments the models service keeps.
pub type Placed = BTreeMap<String, Vec<DeploymentConfig>>;

/// One immutable view of every model.
#[derive(Default)]
pub struct Catalog {
    /// Names in listing order: config models first, then API models by name.
    pub order: Vec<String>,
    pub routes: HashMap<String, Arc<ModelRoute>>,
    pub source: HashMap<String, Source>,
    /// Upstream key by deployment id.
    pub keys: HashMap<String, String>,
    /// The versions of each versioned name, newest first: `chat` → [`chat@10`, `chat@2`] when
    /// models `chat@2` and `chat@10` exist and no model is named `chat` itself.
    pub versions: HashMap<String, Vec<String>>,
}

/// The name and version of a versioned model name (`chat@2` → (`chat`, `2`)).
pub fn split_version(name: &str) -> Option<(&str, &str)> {
    name.rsplit_once('@').filter(|(family, v)| !family.is_empty() && !v.is_empty())
}

/// Orders versions as people read them: runs of digits by value (`2` before `10`, `1.9`
/// before `1.10`), everything else by character.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    fn key((digits, run): (bool, &str)) -> (usize, &str, &str) {
        let value = if digits { run.trim_start_matches('0') } else { run };
        (if digits { value.len() } else { 0 }, value, run)
    }
    runs(a).into_iter().map(key).cmp(runs(b).into_iter().map(key))
}

impl Catalog {
    /// Builds a catalog, reusing `prev`'s routes for models whose definition is unchanged. A
    /// model's placed replicas join its deployments; a model with only replicas is listed last.
    pub fn build(
        config: &[ModelConfig],
        api: Vec<(ModelConfig, BTreeMap<String, String>)>,
        placed: &Placed,
        env_keys: &HashMap<String, String>,
        prev: Option<&Catalog>,
    ) -> Self {
        let mut cat = Catalog { keys: env_keys.clone(), ..Catalog::default() };
        let api_models = api.into_iter().filter(|(m, _)| !config.iter().any(|c| c.name == m.name));
        let mut all: Vec<_> = config
            .iter()
            .cloned()
            .map(|m| (m, Source::Config, BTreeMap::new()))
            .chain(api_models.map(|(m, k)| (m, Source::Api, k)))
            .collect();
        for (name, replicas) in placed {
            match all.iter_mut().find(|(m, ..)| &m.name == name) {
                Some((m, ..)) => m.deployments.extend(replicas.iter().cloned()),
                None => all.push((
                    ModelConfig { name: name.clone(), routing: Routing::default(), deployments: replicas.clone() },
                    Source::Placed,
                    BTreeMap::new(),
                )),
            }
        }
        for (m, source, keys) in all {
            cat.keys.extend(keys);
            let route = match prev.and_then(|p| p.routes.get(&m.name)).filter(|r| r.model == m) {
                Some(r) => r.clone(),
                None => Arc::new(ModelRoute::new(m.clone())),
            };
            cat.order.push(m.name.clone());
            cat.source.insert(m.name.clone(), source);
            cat.routes.insert(m.name, route);
        }
        for name in &cat.order {
            if let Some((family, _)) = split_version(name)
                && !cat.routes.contains_key(family)
            {
                cat.versions.entry(family.to_string()).or_default().push(name.clone());
            }
        }
        let version = |n: &str| split_version(n).map_or("", |(_, v)| v).to_string();
        for v in cat.versions.values_mut() {
            v.sort_by(|a, b| version_cmp(&version(b), &version(a)));
        }
        cat
    }
}

/// A model as the API takes it: the config's fields, plus an optional write-only `api_key`
/// per deployment.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelBody {
    #[serde(default)]
    routing: Routing,
    #[serde(rename = "deployment")]
    deployments: Vec<DeploymentBody>,
}

#[derive(Deserialize)]
struct DeploymentBody {
    #[serde(flatten)]
    deployment: DeploymentConfig,
    #[serde(default)]
    api_key: Option<String>,
}

fn view(cat: &Catalog, name: &str) -> Option<serde_json::Value> {
    let r = cat.routes.get(name)?;
    // DeploymentConfig never serialises keys (`api_key_env` is skipped; API keys live apart).
    Some(json!({"name": name, "source": cat.source.get(name), "routing": r.model.routing, "deployment": r.model.deployments}))
}

pub async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    let cat = gw.catalog();
    axum::Json(cat.order.iter().filter_map(|n| view(&cat, n)).collect::<Vec<_>>()).into_response()
}

pub async fn get(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    match view(&gw.catalog(), &name) {
        Some(v) => axum::Json(v).into_response(),
        None => problem(problem::Kind::NotFound, "name", &format!("no model {name:?}")),
    }
}

pub async fn put(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, body: Bytes) -> Response {
    let cat = gw.catalog();
    if cat.source.get(&name) == Some(&Source::Config) {
        return problem(problem::Kind::Conflict, "name", "this model is defined in aiplus.toml; change it there");
    }
    if gw.embedded.as_ref().is_some_and(|e| e.name == name) {
        return problem(problem::Kind::Conflict, "name", "this is the embedded model's name");
    }
    if !cat.routes.contains_key(&name) && cat.source.values().filter(|s| **s == Source::Api).count() >= MAX_API_MODELS {
        return problem(problem::Kind::Invalid, "name", &format!("at most {MAX_API_MODELS} models through the API"));
    }
    let b: ModelBody = match problem::parse_json(&body) {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let mut secrets = BTreeMap::new();
    let mut deployments = Vec::new();
    for (i, d) in b.deployments.into_iter().enumerate() {
        if d.deployment.api_key_env.is_some() {
            return problem(
                problem::Kind::Invalid,
                &format!("deployment[{i}].api_key_env"),
                "only aiplus.toml reads keys from the environment; send api_key",
            );
        }
        if let Some(k) = d.api_key {
            let Ok(sealed) = gw.sealer.seal(&secret_context(&name, &d.deployment.id), &k) else {
                return problem(problem::Kind::Internal, "store", "the key could not be sealed; nothing was changed");
            };
            secrets.insert(d.deployment.id.clone(), sealed);
        }
        deployments.push(d.deployment);
    }
    let model = ModelConfig { name: name.clone(), routing: b.routing, deployments };
    // Check the model as the config would be checked, with every other model beside it.
    let mut all: Vec<ModelConfig> =
        cat.order.iter().filter(|n| **n != name).filter_map(|n| cat.routes.get(n).map(|r| r.model.clone())).collect();
    all.push(model.clone());
    let check = GatewayConfig { models: all, allow_local_upstreams: gw.allow_local_upstreams, ..GatewayConfig::default() };
    if let Err(e) = check.validate().and_then(|()| gw.check_clusters(&check.models)) {
        let (field, reason) = e.split_once(": ").unwrap_or(("body", e.as_str()));
        let field = field.split_once("].").map_or(field.to_string(), |(_, rest)| rest.to_string());
        return problem(problem::Kind::Invalid, &field, reason);
    }
    if gw.store.put_model(&name, &model, &secrets).await.is_err() {
        return problem(problem::Kind::Internal, "store", "the model could not be stored; nothing was changed");
    }
    if gw.reload_models().await.is_err() {
        return problem(problem::Kind::Internal, "store", "the model was stored but could not be loaded; retry");
    }
    let status = if cat.routes.contains_key(&name) { StatusCode::OK } else { StatusCode::CREATED };
    (status, axum::Json(view(&gw.catalog(), &name))).into_response()
}

pub async fn delete(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    if gw.catalog().source.get(&name) == Some(&Source::Config) {
        return problem(problem::Kind::Conflict, "name", "this model is defined in aiplus.toml; remove it there");
    }
    match gw.store.delete_model(&name).await {
        Ok(true) => match gw.reload_models().await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(_) => problem(problem::Kind::Internal, "store", "deleted, but the catalog could not be reloaded; retry"),
        },
        Ok(false) => problem(problem::Kind::NotFound, "name", &format!("no model {name:?} managed through the API")),
        Err(_) => problem(problem::Kind::Internal, "store", "could not delete; retry"),
    }
}

/// Where a deployment's upstream key is stored: the associated data it is sealed with.
fn secret_context(model: &str, deployment: &str) -> String {
    format!("gateway_models/{model}/{deployment}")
}

impl Gateway {
    /// Re-reads the API-managed models and rebuilds the catalog.
    pub async fn reload_models(&self) -> Result<(), GatewayError> {
        let api: Vec<(String, ModelConfig, BTreeMap<String, String>)> = self.store.models().await?;
        let api: Vec<_> = api.into_iter().map(|(name, m, keys)| (self.open_keys(&name, keys), m)).map(|(keys, m)| (m, keys)).collect();
        if let Ok(mut a) = self.api_models.write() {
            *a = api;
        }
        self.rebuild_catalog();
        Ok(())
    }

    /// Sets the replicas of `model` placed on the compute network that may take requests now
    /// (none: it is deployed, but no replica is ready, and requests get 503 `model_loading`).
    /// New requests go to the new set at once; requests already sent to a replica that left
    /// finish there. Replicas are the platform's own jobs, so their loopback addresses are
    /// not subject to `allow_local_upstreams`, which guards what operators type.
    pub fn set_placed(&self, model: &str, replicas: Vec<DeploymentConfig>) {
        if let Ok(mut p) = self.placed.write() {
            p.insert(model.to_string(), replicas);
        }
        self.rebuild_catalog();
    }

    /// Whether deployment `id` is a replica placed on the compute network.
    pub fn is_placed(&self, id: &str) -> bool {
        self.placed.read().is_ok_and(|p| p.values().flatten().any(|d| d.id == id))
    }

    /// The replicas the gateway routes to now, by cluster: each model with its count (for the
    /// console's map).
    pub fn placed_by_cluster(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        if let Ok(p) = self.placed.read() {
            for (model, replicas) in p.iter() {
                for r in replicas {
                    let cluster = r.cluster.clone().unwrap_or_default();
                    *out.entry(cluster).or_default().entry(model.clone()).or_default() += 1;
                }
            }
        }
        out
    }

    /// Forgets `model`'s placed replicas: it is no longer deployed on the compute network.
    pub fn remove_placed(&self, model: &str) {
        if let Ok(mut p) = self.placed.write() {
            p.remove(model);
        }
        self.rebuild_catalog();
    }

    /// A new catalog from the config's models, the API's and the placed replicas.
    fn rebuild_catalog(&self) {
        let api = self.api_models.read().map(|a| a.clone()).unwrap_or_default();
        let placed = self.placed.read().map(|p| p.clone()).unwrap_or_default();
        // The write lock is held across the build so two rebuilds cannot undo each other.
        if let Ok(mut c) = self.catalog.write() {
            let cat = Catalog::build(&self.config_models, api, &placed, &self.env_keys, Some(&c));
            *c = Arc::new(cat);
        }
    }

    /// A model's stored keys, opened. A key that does not open (another instance's secret key)
    /// is left out and logged: its deployment then answers as one without a key.
    fn open_keys(&self, model: &str, keys: BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut open = BTreeMap::new();
        for (deployment, stored) in keys {
            if !identity::Sealer::is_sealed(&stored) {
                // Stored before keys were sealed; `seal_stored_keys` seals it at the next start.
                open.insert(deployment, stored);
                continue;
            }
            match self.sealer.open(&secret_context(model, &deployment), &stored) {
                Ok(k) => {
                    open.insert(deployment, k);
                }
                Err(e) => tracing::error!(model, deployment, "upstream key not loaded: {e}"),
            }
        }
        open
    }

    /// Seals the upstream keys stored in the clear by versions before sealing. Run at start.
    pub(crate) async fn seal_stored_keys(&self) -> Result<usize, GatewayError> {
        let mut sealed = 0;
        for (name, model, keys) in self.store.models::<ModelConfig, BTreeMap<String, String>>().await? {
            if keys.values().all(|k| identity::Sealer::is_sealed(k)) {
                continue;
            }
            let mut out = BTreeMap::new();
            for (deployment, k) in keys {
                let v = if identity::Sealer::is_sealed(&k) {
                    k
                } else {
                    self.sealer
                        .seal(&secret_context(&name, &deployment), &k)
                        .map_err(|e| GatewayError::Config(format!("sealing the key of {name}/{deployment}: {e}")))?
                };
                out.insert(deployment, v);
            }
            self.store.put_model(&name, &model, &out).await?;
            sealed += 1;
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, url: &str) -> ModelConfig {
        let toml = format!("name = \"{name}\"\n[[deployment]]\nid = \"{name}-d\"\nbase_url = \"{url}\"\n");
        toml::from_str(&toml).unwrap()
    }

    #[test]
    fn config_models_win_and_unchanged_routes_keep_their_state() {
        let config = vec![model("a", "http://x/v1")];
        let api = vec![
            (model("a", "http://other/v1"), BTreeMap::new()),
            (model("b", "http://y/v1"), BTreeMap::from([("b-d".into(), "sk-b".into())])),
        ];
        let first = Catalog::build(&config, api.clone(), &Placed::new(), &HashMap::new(), None);
        assert_eq!(first.order, ["a", "b"]);
        assert_eq!(first.routes["a"].model.deployments[0].base_url, "http://x/v1", "the config's definition wins");
        assert_eq!(first.source["b"], Source::Api);
        assert_eq!(first.keys["b-d"], "sk-b");
        let second = Catalog::build(&config, api, &Placed::new(), &HashMap::new(), Some(&first));
        assert!(Arc::ptr_eq(&first.routes["b"], &second.routes["b"]), "unchanged: the same route, with its state");
        let changed =
            Catalog::build(&config, vec![(model("b", "http://z/v1"), BTreeMap::new())], &Placed::new(), &HashMap::new(), Some(&second));
        assert!(!Arc::ptr_eq(&second.routes["b"], &changed.routes["b"]));
        assert!(!changed.keys.contains_key("b-d"), "a removed key is gone");
    }

    #[test]
    fn placed_replicas_join_their_model_or_make_one() {
        let config = vec![model("a", "http://x/v1")];
        let replica = |id: &str| model(id, &format!("http://127.0.0.1:9/{id}/v1")).deployments.remove(0);
        let placed = Placed::from([("a".to_string(), vec![replica("r1")]), ("solo".to_string(), vec![replica("r2"), replica("r3")])]);
        let cat = Catalog::build(&config, Vec::new(), &placed, &HashMap::new(), None);
        assert_eq!(cat.order, ["a", "solo"]);
        assert_eq!(cat.routes["a"].model.deployments.len(), 2, "the config's deployment and the replica");
        assert_eq!((cat.source["a"], cat.source["solo"]), (Source::Config, Source::Placed));
        assert_eq!(cat.routes["solo"].model.deployments.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["r2-d", "r3-d"]);
        let waiting = Catalog::build(&config, Vec::new(), &Placed::from([("solo".to_string(), vec![])]), &HashMap::new(), Some(&cat));
        assert_eq!(waiting.order, ["a", "solo"], "a deployed model with no replica ready stays known");
        assert!(waiting.routes["solo"].model.deployments.is_empty());
        assert_eq!(waiting.routes["a"].model.deployments.len(), 1);
        let gone = Catalog::build(&config, Vec::new(), &Placed::new(), &HashMap::new(), Some(&waiting));
        assert_eq!(gone.order, ["a"]);
    }

    #[test]
    fn versioned_names_group_under_their_name_newest_first() {
        let config = vec![
            model("chat@2", "http://x/v1"),
            model("chat@10", "http://x/v1"),
            model("chat@1.9", "http://x/v1"),
            model("solo@1", "http://x/v1"),
        ];
        let api = vec![(model("solo", "http://y/v1"), BTreeMap::new())];
        let cat = Catalog::build(&config, api, &Placed::new(), &HashMap::new(), None);
        assert_eq!(cat.versions["chat"], ["chat@10", "chat@2", "chat@1.9"]);
        assert!(!cat.versions.contains_key("solo"), "a model named `solo` itself is served as named");
        assert_eq!(version_cmp("1.9", "1.10"), std::cmp::Ordering::Less);
        assert_eq!(version_cmp("2026-12-01", "2026-11-30"), std::cmp::Ordering::Greater);
        assert_eq!(version_cmp("007", "7"), std::cmp::Ordering::Less, "equal values fall back to their text");
        assert_eq!(split_version("@1"), None);
        assert_eq!(split_version("a@"), None);
    }
}
