//! The one admission pipeline every model request runs through, whatever its endpoint (chat,
//! completions, Responses, embeddings) and whoever calls it (the `/v1` handlers; agents and
//! evaluation, in-process, next):
//!
//! 1. the caller is authenticated (by the gate in front of the router, or by the in-process
//!    caller, which hands over its principal);
//! 2. [`Metered::new`] takes the request's place in the usage ledger (none free: refused);
//! 3. [`admit`] finds the model, runs the input guardrail, plans the deployments the tenant's
//!    regions allow and reserves the request against the key's and the tenant's limits;
//! 4. [`Fallback`] tries the plan's deployments in order, with backoff;
//! 5. every request ends in exactly one ledger event, answered or refused.
//!
//! Refusals are one type, [`RequestError`], with one mapping to OpenAI's error shape.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::DeploymentConfig;
use crate::embeddings::Embedded;
use crate::limits::{Refusal, Reservation};
use crate::meter::RequestDetail;
use crate::proxy::{backoff, estimate_tokens, now_ms, openai_error};
use crate::router::{Candidate, ModelRoute};
use crate::{Caller, Gateway};

/// Longest model name a request may name.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// Why a model request was refused, or failed before any answer.
#[derive(Debug)]
pub enum RequestError {
    /// The usage ledger's queue is full: nothing was done; retry shortly (503).
    LedgerBehind,
    /// The request itself is wrong (400): OpenAI's code, the message, the parameter.
    Invalid { code: &'static str, message: String, param: Option<String> },
    /// No model of that name (404).
    ModelNotFound(String),
    /// The guardrail stopped the request or the answer (400), naming which.
    Blocked(&'static str),
    /// No deployment of the model is in the regions the tenant allows (403).
    RegionNotAllowed(String),
    /// Governance withholds the model from this tenant now: suspended or restricted (403).
    Governed { code: &'static str, message: String },
    /// A key's or the tenant's limit is reached (429), or the limit store is down (503).
    Limit(Refusal),
    /// Every deployment tried failed (502): the model and each one's reason.
    Upstream { model: String, reasons: Vec<String> },
    /// The model cannot answer now (503), e.g. the embedded model is still loading.
    Unavailable { code: &'static str, message: String },
    /// Something failed inside aiplus (500).
    Internal { code: &'static str, message: String },
}

impl RequestError {
    /// A 400 for a bad field.
    pub fn invalid(code: &'static str, message: impl Into<String>, param: Option<&str>) -> Self {
        RequestError::Invalid { code, message: message.into(), param: param.map(String::from) }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::Invalid { .. } | RequestError::Blocked(_) => StatusCode::BAD_REQUEST,
            RequestError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            RequestError::RegionNotAllowed(_) | RequestError::Governed { .. } => StatusCode::FORBIDDEN,
            RequestError::Limit(Refusal::Exceeded { .. }) => StatusCode::TOO_MANY_REQUESTS,
            RequestError::LedgerBehind | RequestError::Limit(Refusal::Store(_)) | RequestError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RequestError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            RequestError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The one mapping from a refusal to OpenAI's error shape (with `Retry-After` where a retry
/// can succeed).
impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (kind, code, message, param, retry_after_s) = match self {
            RequestError::LedgerBehind => {
                ("api_error", "ledger_unavailable", "the usage ledger is behind; nothing was done, retry shortly".into(), None, Some(1))
            }
            RequestError::Invalid { code, message, param } => ("invalid_request_error", code, message, param, None),
            RequestError::ModelNotFound(m) => {
                ("invalid_request_error", "model_not_found", format!("The model `{m}` does not exist"), Some("model".into()), None)
            }
            RequestError::Blocked(what) => (
                "invalid_request_error",
                "content_blocked",
                format!("{what} was blocked by the guardrail: it contains an entry of the keyword list"),
                None,
                None,
            ),
            RequestError::RegionNotAllowed(m) => (
                "permission_error",
                "region_not_allowed",
                format!("no deployment of `{m}` is in the regions your tenant allows"),
                Some("model".into()),
                None,
            ),
            RequestError::Governed { code, message } => ("permission_error", code, message, Some("model".into()), None),
            RequestError::Limit(r @ Refusal::Exceeded { retry_after_s, .. }) => {
                ("rate_limit_error", "rate_limit_exceeded", r.to_string(), None, Some(retry_after_s))
            }
            RequestError::Limit(r @ Refusal::Store(_)) => ("rate_limit_error", "limits_unavailable", r.to_string(), None, None),
            RequestError::Upstream { model, reasons } => (
                "upstream_error",
                "upstream_unavailable",
                format!("every deployment of `{model}` failed: {}", reasons.join("; ")),
                None,
                None,
            ),
            RequestError::Unavailable { code, message } => ("server_error", code, message, None, None),
            RequestError::Internal { code, message } => ("server_error", code, message, None, None),
        };
        let mut r = openai_error(status, kind, code, message, param.as_deref());
        if let Some(s) = retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

/// Where an admitted request goes.
pub enum Target {
    /// An upstream model: its route and the deployments to try, best first (indices).
    Upstream { route: Arc<ModelRoute>, plan: Vec<usize> },
    /// The embedded embeddings model, loaded.
    Embedded(Arc<Embedded>, Arc<embed::Embedder>),
}

impl Target {
    /// The deployments to try, best first (none for the embedded model).
    pub fn deployments(&self) -> Vec<&DeploymentConfig> {
        match self {
            Target::Upstream { route, plan } => plan.iter().map(|&i| &route.model.deployments[i]).collect(),
            Target::Embedded(..) => Vec::new(),
        }
    }
}

/// Step 3 of the pipeline: the model, the input guardrail, the region plan and the limits.
/// `input` is everything the client wrote (for the guardrail); `embedded_ok` says whether the
/// embedded model serves this endpoint; `tokens` prices the request for the limits once its
/// target is known (an answer's allowance included).
pub async fn admit(
    gw: &Gateway,
    metered: &mut Metered,
    input: &[&str],
    embedded_ok: bool,
    tokens: impl FnOnce(&Target) -> u64,
) -> Result<Target, RequestError> {
    if let (Some(policy), Some(user)) = (gw.policy.as_ref(), metered.end_user.as_deref())
        && let vocab::ModelDecision::Refuse { code, message } = policy.end_user(metered.caller.tenant_id(), user)
    {
        return Err(RequestError::Governed { code, message });
    }
    let catalog = gw.catalog();
    resolve_version(gw, &catalog, metered)?;
    metered.bounds = gw.policy.as_ref().and_then(|p| p.bounds(&metered.model));
    let model = metered.model.clone();
    let target = match catalog.routes.get(&model) {
        Some(route) => Target::Upstream { route: route.clone(), plan: Vec::new() },
        None => match gw.embedded.as_ref().filter(|e| embedded_ok && e.name == model) {
            Some(e) => match e.loaded() {
                Ok(m) => Target::Embedded(e.clone(), m),
                Err(message) => return Err(RequestError::Unavailable { code: "model_loading", message }),
            },
            None => return Err(RequestError::ModelNotFound(model)),
        },
    };
    metered.resolved = true;
    if let Some(g) = &gw.guard
        && input.iter().any(|t| g.find(t).is_some())
    {
        return Err(RequestError::Blocked("the request"));
    }
    let target = match target {
        Target::Upstream { route, .. } => {
            // A model deployed on the compute network whose replicas are not ready (starting,
            // or being replaced) is unavailable for now, not missing and not forbidden.
            if route.model.deployments.is_empty() {
                let message = format!("no replica of {model} is ready yet; try again shortly");
                return Err(RequestError::Unavailable { code: "model_loading", message });
            }
            let plan = metered.plan(gw, &route);
            if let (true, Some(pin)) = (plan.is_empty(), &metered.pin) {
                let message = format!("no deployment {pin:?} of `{model}` may serve you");
                return Err(RequestError::invalid("deployment_not_found", message, Some("x-aiplus-deployment")));
            }
            if plan.is_empty() {
                if let Some(b) = metered.bounds.as_ref().filter(|b| !b.regions.is_empty()) {
                    let regions: Vec<String> = b.regions.iter().map(ToString::to_string).collect();
                    let message = format!(
                        "The model `{model}` is restricted by the operator to deployments in {}, and none of those may serve you",
                        regions.join(", ")
                    );
                    return Err(RequestError::Governed { code: "model_restricted", message });
                }
                return Err(RequestError::RegionNotAllowed(model));
            }
            Target::Upstream { route, plan }
        }
        t => t,
    };
    let tokens = tokens(&target);
    metered.reserve(gw, tokens).await?;
    Ok(target)
}

/// The model version that serves this request, set in `metered.model`. A name with versions
/// (`chat`, for models `chat@1` and `chat@2`) is served by its newest version that governance
/// allows; when the newest is withheld (suspended, restricted, not filed), by the newest older
/// version that is both allowed and filed, which is the fall-back the filing rules accept. A
/// pinned version (`chat@2`) or an unversioned name is served as named or refused.
fn resolve_version(gw: &Gateway, catalog: &crate::models::Catalog, metered: &mut Metered) -> Result<(), RequestError> {
    let versions = catalog.versions.get(&metered.model).filter(|_| !catalog.routes.contains_key(&metered.model));
    let (Some(versions), Some(policy)) = (versions, gw.policy.as_ref()) else {
        if let Some(newest) = versions.and_then(|v| v.first()) {
            metered.model = newest.clone();
        }
        return match withheld(gw, metered) {
            Some((code, message)) => Err(RequestError::Governed { code, message }),
            None => Ok(()),
        };
    };
    let tenant = metered.caller.tenant.as_deref().unwrap_or_default();
    let Some((newest, older)) = versions.split_first() else { return Err(RequestError::ModelNotFound(metered.model.clone())) };
    let vocab::ModelDecision::Refuse { code, message } = policy.decide(newest, tenant) else {
        metered.model = newest.clone();
        return Ok(());
    };
    match older.iter().find(|v| policy.filed(v, tenant) && policy.decide(v, tenant) == vocab::ModelDecision::Allow) {
        Some(v) => {
            tracing::debug!(requested = %metered.model, withheld = %newest, served = %v, "falling back to an older filed version");
            metered.model = v.clone();
            Ok(())
        }
        None => Err(RequestError::Governed { code, message }),
    }
}

/// Governance's refusal of this request's model to its tenant, now; `None` when it may be
/// served. Asked at admission and again for every chunk of a stream, so a model suspended
/// mid-stream stops its streams at their next chunk.
pub(crate) fn withheld(gw: &Gateway, metered: &Metered) -> Option<(&'static str, String)> {
    match gw.policy.as_ref()?.decide(&metered.model, metered.caller.tenant.as_deref().unwrap_or_default()) {
        vocab::ModelDecision::Allow => None,
        vocab::ModelDecision::Refuse { code, message } => Some((code, message)),
    }
}

/// What one try of one deployment came to.
pub enum Attempt {
    /// A final answer for the client (its event already metered).
    Done(Response),
    /// Try the next deployment; the reason is kept for the final error.
    Retry(String),
}

/// Step 4 of the pipeline: the deployments to try, in order, with backoff between tries and
/// at most the gateway's `max_attempts`, keeping each failure's reason for the final error.
///
/// ```text
/// let mut tries = Fallback::new(gw, target.deployments());
/// while let Some(d) = tries.next().await {
///     match try_one(d).await {
///         Attempt::Done(answer) => return Ok(answer),
///         Attempt::Retry(why) => tries.failed(d, why),
///     }
/// }
/// Err(tries.exhausted(model))
/// ```
pub struct Fallback<'a> {
    deployments: std::vec::IntoIter<&'a DeploymentConfig>,
    tried: usize,
    reasons: Vec<String>,
    /// Every deployment is a replica placed on the compute network: when none answers, the
    /// model is being replaced (503), not broken upstream (502).
    placed_only: bool,
}

impl<'a> Fallback<'a> {
    pub fn new(gw: &Gateway, deployments: Vec<&'a DeploymentConfig>) -> Self {
        let mut deployments = deployments;
        deployments.truncate(gw.max_attempts.max(1) as usize);
        let placed_only = !deployments.is_empty() && deployments.iter().all(|d| gw.is_placed(&d.id));
        Self { deployments: deployments.into_iter(), tried: 0, reasons: Vec::new(), placed_only }
    }

    /// The next deployment to try, after the backoff its turn calls for; `None` when every
    /// one was tried.
    pub async fn next(&mut self) -> Option<&'a DeploymentConfig> {
        let d = self.deployments.next()?;
        if self.tried > 0 {
            tokio::time::sleep(backoff(self.tried)).await;
        }
        self.tried += 1;
        Some(d)
    }

    /// Keeps why a deployment failed.
    pub fn failed(&mut self, d: &DeploymentConfig, why: String) {
        self.reasons.push(format!("{}: {why}", d.id));
    }

    /// The error when every deployment tried failed.
    pub fn exhausted(self, model: &str) -> RequestError {
        if self.placed_only {
            let message = format!("no replica of {model} answered ({}); a new one is being started", self.reasons.join("; "));
            return RequestError::Unavailable { code: "model_loading", message };
        }
        RequestError::Upstream { model: model.to_string(), reasons: self.reasons }
    }
}

/// One request's metering: who, what, since when, and what it reserved against the limits.
/// Every request ends in exactly one `send`, which writes its usage event, settles its
/// reservation and updates the metrics.
#[derive(Clone)]
pub struct Metered {
    pub caller: Caller,
    pub endpoint: &'static str,
    pub model: String,
    pub stream: bool,
    pub started: Instant,
    pub input_estimate: u64,
    pub reservation: Option<Reservation>,
    /// Governance's bounds on the model version that serves (regions, lower limits), if any.
    pub bounds: Option<std::sync::Arc<vocab::ModelBounds>>,
    /// Whether the request's model resolved to one the gateway serves: monitoring counts only
    /// those, not the names clients make up.
    pub resolved: bool,
    /// The tenant's end user, from the request's `user` (or `safety_identifier`) or the
    /// `X-Aiplus-End-User` header.
    pub end_user: Option<String>,
    /// The client's `X-Request-Id`, kept in the ledger so a client can find its requests.
    pub request_id: Option<String>,
    /// The agent run this request is a model step of ([`crate::AGENT_RUN_HEADER`], in process only).
    pub agent_run: Option<String>,
    /// `X-Aiplus-Deployment`: only this deployment of the model may serve (to compare two
    /// deployments of one model); still only if the tenant's regions and governance allow it.
    pub pin: Option<String>,
    /// `X-Aiplus-Regions`, once or more: each list narrows the tenant's regions further (an
    /// agent's own, and its client's); none can widen them.
    pub regions: Vec<Vec<vocab::Region>>,
    /// The place this request's usage event holds in the ledger's queue.
    pub ticket: ledger::Ticket<RequestDetail>,
}

/// The regions a request narrows itself to: `X-Aiplus-Regions`, comma-separated
/// `province:<Name>` or `hub:<id>`.
fn narrowed(headers: &HeaderMap) -> Result<Vec<Vec<vocab::Region>>, RequestError> {
    let bad = |why: String| RequestError::invalid("invalid_value", format!("X-Aiplus-Regions: {why}"), None);
    let mut lists = Vec::new();
    for v in headers.get_all("x-aiplus-regions").iter().take(4) {
        let text = v.to_str().map_err(|_| bad("must be ASCII".into()))?;
        let regions: Vec<vocab::Region> = text
            .split(',')
            .filter(|r| !r.trim().is_empty())
            .map(|r| vocab::Region::parse(r.trim()))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        if regions.len() > 64 {
            return Err(bad("at most 64 regions".into()));
        }
        lists.push(regions);
    }
    Ok(lists)
}

/// What a metered answer was, besides its status.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flag {
    None,
    /// The answer was blocked.
    Blocked,
    /// The request was blocked, for what the client sent.
    BlockedInput,
    Refused,
}

/// Longest end-user id kept: longer ones are cut to this many bytes (at a character boundary).
pub const MAX_END_USER_BYTES: usize = 128;

/// The end user a header names, if any.
fn end_user(headers: &HeaderMap) -> Option<String> {
    headers.get("x-aiplus-end-user").and_then(|v| v.to_str().ok()).and_then(end_user_id)
}

/// The end user a request body names: OpenAI's `user`, or its successor `safety_identifier`.
pub fn end_user_of(req: &serde_json::Value) -> Option<String> {
    req["user"].as_str().or(req["safety_identifier"].as_str()).and_then(end_user_id)
}

/// An end-user id as kept: trimmed, without control characters, at most [`MAX_END_USER_BYTES`].
pub fn end_user_id(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().any(char::is_control) {
        return None;
    }
    let mut end = s.len().min(MAX_END_USER_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(s[..end].to_string())
}

/// A client's `X-Request-Id` header, if it is printable ASCII of at most 128 bytes.
fn request_id(headers: &HeaderMap) -> Option<String> {
    printable(headers, "x-request-id")
}

/// A header's value, if it is printable ASCII of at most 128 bytes.
fn printable(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())).then(|| v.to_string())
}

impl Metered {
    /// Admits a request to metering: it takes a place in the ledger's queue for its event, or,
    /// when the ledger is behind and none is free, the request is refused with 503 before
    /// anything is done for it, so no answered request goes unrecorded.
    pub fn new(
        gw: &Gateway,
        caller: Caller,
        headers: &HeaderMap,
        endpoint: &'static str,
        model: String,
        stream: bool,
        input_estimate: u64,
    ) -> Result<Self, RequestError> {
        // A model name goes into metric labels and the ledger: a longer one is refused here,
        // before it reaches either.
        if model.len() > MAX_MODEL_NAME_BYTES {
            return Err(RequestError::invalid("invalid_value", format!("model: at most {MAX_MODEL_NAME_BYTES} bytes"), Some("model")));
        }
        let regions = narrowed(headers)?;
        let Ok(ticket) = gw.meter.reserve() else {
            gw.metrics.add("aiplus_gateway_ledger_refusals_total", &[("endpoint", endpoint)], 1);
            return Err(RequestError::LedgerBehind);
        };
        Ok(Self {
            caller,
            endpoint,
            model,
            stream,
            started: Instant::now(),
            input_estimate,
            reservation: None,
            bounds: None,
            resolved: false,
            end_user: end_user(headers),
            request_id: request_id(headers),
            agent_run: printable(headers, crate::AGENT_RUN_HEADER),
            pin: printable(headers, "x-aiplus-deployment"),
            regions,
            ticket,
        })
    }

    /// Reserves a request and `tokens` against the key's and the tenant's limits, and the
    /// tenant's limits on this model when governance bounds it.
    async fn reserve(&mut self, gw: &Gateway, tokens: u64) -> Result<(), RequestError> {
        let tenant = gw.tenant(self.caller.tenant_id());
        let c = &self.caller;
        let bounded = self.bounds.as_ref().map(|b| {
            let limits = identity::limits::Limits {
                requests_per_min: b.requests_per_min,
                tokens_per_min: b.tokens_per_min,
                tokens_per_day: b.tokens_per_day,
            };
            (std::sync::Arc::<str>::from(format!("model:{}:{}", self.model, c.tenant_id())), limits)
        });
        let mut scopes = vec![(&c.key_scope, &c.limits), (&c.tenant_scope, &tenant.limits)];
        if let Some((scope, limits)) = &bounded {
            scopes.push((scope, limits));
        }
        let r = gw.limiter.reserve(&scopes, tokens, now_ms()).await;
        self.reservation = Some(r.map_err(RequestError::Limit)?);
        Ok(())
    }

    /// Answers a refused request: meters it with the refusal's status (no tokens), counts it,
    /// and gives the client the refusal in OpenAI's shape.
    pub fn refuse(&self, gw: &Gateway, e: RequestError) -> Response {
        match &e {
            RequestError::Blocked(_) => self.send_full(gw, None, Some((0, 0)), 0, 400, Flag::BlockedInput),
            RequestError::Upstream { .. } => self.send(gw, None, None, 0, e.status().as_u16()),
            RequestError::LedgerBehind => {}
            _ => self.send(gw, None, Some((0, 0)), 0, e.status().as_u16()),
        }
        if let RequestError::Limit(Refusal::Exceeded { who, what, .. }) = &e {
            let scope = who.split(' ').next().unwrap_or("key");
            gw.metrics.add("aiplus_gateway_limit_rejections_total", &[("scope", scope), ("limit", what)], 1);
        }
        e.into_response()
    }

    /// The deployments of `route` this caller may use, best first, as indices.
    fn plan(&self, gw: &Gateway, route: &ModelRoute) -> Vec<usize> {
        let tenant = gw.tenant(self.caller.tenant_id());
        let now = now_ms();
        let governed = |site: Option<&crate::Site>| match self.bounds.as_ref().filter(|b| !b.regions.is_empty()) {
            Some(b) => vocab::allows(&b.regions, site.map(|s| vocab::Place { hub: &s.hub, province: &s.province })),
            None => true,
        };
        let plan = route.plan(Instant::now(), |d| {
            let site = d.cluster.as_deref().and_then(|c| gw.sites.as_ref().and_then(|s| s.site(c, now)));
            let place = site.as_ref().map(|s| vocab::Place { hub: &s.hub, province: &s.province });
            let allowed = tenant.allows(site.as_ref()) && governed(site.as_ref()) && self.regions.iter().all(|r| vocab::allows(r, place));
            Candidate { allowed, site_cost: site.map_or(f64::MAX, |s| s.cost_cny_per_kwh) }
        });
        plan.iter()
            .filter(|d| self.pin.as_ref().is_none_or(|p| *p == d.id))
            .filter_map(|d| route.model.deployments.iter().position(|x| std::ptr::eq(x, *d)))
            .collect()
    }

    pub fn send(&self, gw: &Gateway, d: Option<&DeploymentConfig>, usage: Option<(u64, u64)>, output_chars: usize, status: u16) {
        self.send_full(gw, d, usage, output_chars, status, Flag::None);
    }

    /// A request or answer stopped by the guardrail: status 400, `blocked: true`.
    pub fn send_blocked(&self, gw: &Gateway, d: Option<&DeploymentConfig>, usage: Option<(u64, u64)>, output_chars: usize) {
        self.send_full(gw, d, usage, output_chars, 400, Flag::Blocked);
    }

    /// An answer in which the model declined (`refusal`, or `finish_reason: content_filter`).
    pub fn send_answer(
        &self,
        gw: &Gateway,
        d: Option<&DeploymentConfig>,
        usage: Option<(u64, u64)>,
        output_chars: usize,
        status: u16,
        refused: bool,
    ) {
        self.send_full(gw, d, usage, output_chars, status, if refused { Flag::Refused } else { Flag::None });
    }

    fn send_full(
        &self,
        gw: &Gateway,
        d: Option<&DeploymentConfig>,
        usage: Option<(u64, u64)>,
        output_chars: usize,
        status: u16,
        flag: Flag,
    ) {
        let blocked = matches!(flag, Flag::Blocked | Flag::BlockedInput);
        let (input_tokens, output_tokens, tokens_reported) = match usage {
            Some((i, o)) => (i, o, true),
            None => (self.input_estimate, estimate_tokens(output_chars), false),
        };
        let cost_cny = d.map_or(0.0, |d| (input_tokens as f64 * d.input_cny_per_1k + output_tokens as f64 * d.output_cny_per_1k) / 1000.0);
        let at_ms = now_ms();
        let quantity = input_tokens.saturating_add(output_tokens);
        if let Some(r) = &self.reservation {
            gw.limiter.settle(r, quantity);
        }
        let m = &gw.metrics;
        let status_text = itoa_u16(status);
        m.add("aiplus_gateway_requests_total", &[("endpoint", self.endpoint), ("model", &self.model), ("status", status_text.as_str())], 1);
        if quantity > 0 {
            m.add("aiplus_gateway_tokens_total", &[("model", &self.model), ("direction", "input")], input_tokens);
            m.add("aiplus_gateway_tokens_total", &[("model", &self.model), ("direction", "output")], output_tokens);
        }
        m.observe("aiplus_gateway_request_duration_seconds", &[("endpoint", self.endpoint)], self.started.elapsed().as_secs_f64());
        if blocked {
            m.add("aiplus_gateway_guardrail_blocks_total", &[("endpoint", self.endpoint)], 1);
        }
        let latency_ms = self.started.elapsed().as_millis() as u64;
        if !gw.observers.is_empty() {
            let o = vocab::Observation {
                model: if self.resolved { &self.model } else { "" },
                tenant: self.caller.tenant_id(),
                end_user: self.end_user.as_deref(),
                status,
                blocked,
                blocked_input: flag == Flag::BlockedInput,
                refused: flag == Flag::Refused,
                latency_ms,
                tokens: quantity,
                at_ms,
            };
            for observer in &gw.observers {
                observer.observe(&o);
            }
        }
        let mut refs = std::collections::BTreeMap::new();
        refs.insert("model".into(), self.model.clone());
        if let Some(d) = d {
            refs.insert("deployment".into(), d.id.clone());
            if let Some(c) = &d.cluster {
                refs.insert("cluster".into(), c.clone());
            }
        }
        if let Some(id) = &self.request_id {
            refs.insert("request_id".into(), id.clone());
        }
        if let Some(id) = &self.agent_run {
            refs.insert("agent_run".into(), id.clone());
        }
        self.ticket.send(ledger::Entry {
            at_ms,
            tenant: self.caller.tenant_id().to_string(),
            pillar: "gateway".into(),
            doc: ledger::UsageEvent {
                principal: Some(self.caller.id.clone()),
                subject: ledger::Subject { kind: "request".into(), id: self.request_id.clone().unwrap_or_default() },
                quantity: quantity as f64,
                unit: ledger::Unit::Tokens,
                price_cny_per_unit: if quantity > 0 { cost_cny / quantity as f64 } else { 0.0 },
                energy_kwh: 0.0,
                carbon_kg: 0.0,
                money_cny: cost_cny,
                refs,
                detail: RequestDetail {
                    endpoint: self.endpoint.into(),
                    input_tokens,
                    output_tokens,
                    tokens_reported,
                    latency_ms,
                    status,
                    stream: self.stream,
                    blocked,
                    refused: flag == Flag::Refused,
                },
            },
            id: event_id(),
        });
    }
}

/// A status code as text without allocating (a tiny stack string).
struct Status3([u8; 3]);

impl Status3 {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}

fn itoa_u16(status: u16) -> Status3 {
    let s = status.min(999);
    Status3([b'0' + (s / 100) as u8, b'0' + (s / 10 % 10) as u8, b'0' + (s % 10) as u8])
}

/// A usage event id, unique without a system call per request: this process's random prefix
/// (drawn once) and a counter.
fn event_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::now_v7().simple().to_string());
    format!("gateway:{prefix}:{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
