//! The registration service: applications, objections during the public notice, and the
//! operator's review and decisions, each step a leaf of the transparency log before it is
//! stored, so the history of every registration can be checked by anyone who holds the log.

use serde_json::json;

use super::{DataError, Exchange, invalid};
use crate::registry::{Action, Kind, Registration, RegistrationIn, Right, State, Step};

fn state_name(s: State) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn parse(row: &store::RegistrationRow) -> Result<Registration, DataError> {
    Ok(serde_json::from_str(&row.doc).map_err(store::StoreError::from)?)
}

impl Exchange {
    fn log(&self) -> Result<&tlog::Log, DataError> {
        self.log.as_deref().ok_or_else(|| DataError::Conflict("registration needs the transparency log, which is not open".into()))
    }

    /// Logs a step of `r` and adds it to its history.
    async fn log_step(
        &self,
        r: &mut Registration,
        action: &str,
        actor_role: &str,
        reason: Option<String>,
        now: i64,
    ) -> Result<(), DataError> {
        let record = json!({"action": action, "reason": reason, "registration": r});
        let fact = tlog::Fact { kind: action, subject: &format!("registration/{}", r.id), actor_role, record: &record };
        let logged = self.log()?.append(&fact, now).await.map_err(|e| DataError::Objects(format!("the transparency log: {e}")))?;
        r.steps.push(Step { action: action.to_string(), actor_role: actor_role.to_string(), reason, at_ms: now, log_index: logged.index });
        Ok(())
    }

    async fn save(&self, r: &mut Registration) -> Result<(), DataError> {
        r.rev += 1;
        let row = store::RegistrationRow {
            id: r.id.clone(),
            tenant: r.tenant.clone(),
            dataset: r.application.dataset.clone(),
            seq: 0,
            rev: r.rev,
            state: state_name(r.state),
            code: r.code.clone(),
            doc: serde_json::to_string(&r).map_err(store::StoreError::from)?,
        };
        if !self.store.update_registration(&row).await? {
            return Err(DataError::Conflict(format!("registration {} was changed meanwhile; read it and try again", r.id)));
        }
        Ok(())
    }

    /// Applies for a registration of one of the tenant's published versions.
    pub async fn apply(&self, tenant: &str, actor_role: &str, a: RegistrationIn) -> Result<Registration, DataError> {
        a.check()?;
        let v = self
            .version(tenant, &a.dataset, &a.version)
            .await
            .map_err(|_| invalid("version", format!("{}@{} is no version of the tenant's", a.dataset, a.version)))?;
        if v.state != "published" {
            return Err(invalid("version", "only a published (immutable) version is registered"));
        }
        if let Some(sha) = &a.authorization.evidence_sha256
            && self.store.data_object(tenant, sha).await?.is_none()
        {
            return Err(invalid("authorization.evidence_sha256", "upload the evidence first; the tenant holds no file with this hash"));
        }
        self.check_follows(tenant, &a).await?;
        let now = self.clock.now_ms();
        let mut r = Registration {
            object: "data.registration".into(),
            id: (self.ids)("reg"),
            tenant: tenant.to_string(),
            rev: 1,
            application: a,
            state: State::Applied,
            code: None,
            notice_until_ms: None,
            objections: Vec::new(),
            steps: Vec::new(),
            created_ms: now,
        };
        self.log_step(&mut r, "registration.applied", actor_role, None, now).await?;
        let row = store::RegistrationRow {
            id: r.id.clone(),
            tenant: tenant.to_string(),
            dataset: r.application.dataset.clone(),
            seq: 0,
            rev: 1,
            state: state_name(r.state),
            code: None,
            doc: serde_json::to_string(&r).map_err(store::StoreError::from)?,
        };
        self.store.insert_registration(&row).await?;
        Ok(r)
    }

    /// A first registration is the only live one of its version; every other kind follows a
    /// registration of the tenant's for the same dataset, and a transfer changes a holder.
    async fn check_follows(&self, tenant: &str, a: &RegistrationIn) -> Result<(), DataError> {
        let live = [State::Applied, State::Notice, State::Registered];
        if a.kind == Kind::First {
            for row in self.store.registrations_of(tenant, self.limits.max_list).await? {
                let other = parse(&row)?;
                if other.application.dataset == a.dataset && other.application.version == a.version && live.contains(&other.state) {
                    return Err(DataError::Conflict(format!(
                        "{}@{} already has registration {}; apply for a change",
                        a.dataset, a.version, other.id
                    )));
                }
            }
            return Ok(());
        }
        let code = a.previous.as_deref().unwrap_or_default();
        let prev = self.store.registration_by_code(code).await?.filter(|r| r.tenant == tenant);
        let prev = prev
            .map(|r| parse(&r))
            .transpose()?
            .ok_or_else(|| invalid("previous", format!("{code:?} is no registration of the tenant's")))?;
        if prev.state != State::Registered || prev.application.dataset != a.dataset {
            return Err(invalid("previous", format!("{code} is not a registration in force of {}", a.dataset)));
        }
        if a.kind == Kind::Transfer {
            let holder = |x: &RegistrationIn| x.rights.iter().find(|g| g.right == Right::Holding).map(|g| g.holder.clone());
            if holder(a) == holder(&prev.application) {
                return Err(invalid("rights", "a transfer names the holding right's new holder"));
            }
        }
        Ok(())
    }

    /// A registration: the tenant's own, or any for an operator (`None`).
    pub async fn registration(&self, tenant: Option<&str>, id: &str) -> Result<Registration, DataError> {
        let row = self.store.registration(id).await?.filter(|r| tenant.is_none_or(|t| r.tenant == t));
        let row = row.ok_or_else(|| DataError::NotFound { what: "registration", id: id.to_string() })?;
        parse(&row)
    }

    pub async fn registrations(&self, tenant: &str) -> Result<Vec<Registration>, DataError> {
        self.store.registrations_of(tenant, self.limits.max_list).await?.iter().map(parse).collect()
    }

    /// The registrations on public notice, which anyone may read and object to.
    pub async fn notices(&self) -> Result<Vec<Registration>, DataError> {
        self.store.registrations_in("notice", self.limits.max_list).await?.iter().map(parse).collect()
    }

    /// Another tenant objects to a registration on notice.
    pub async fn object_to(&self, by: &str, actor_role: &str, id: &str, reason: &str) -> Result<Registration, DataError> {
        let mut r = self.registration(None, id).await?;
        if r.state != State::Notice {
            // Only a notice is public: anything else answers as missing to others.
            if r.tenant != by {
                return Err(DataError::NotFound { what: "registration", id: id.to_string() });
            }
            return Err(DataError::Conflict(format!("registration {id} is not on public notice")));
        }
        if r.tenant == by {
            return Err(invalid("registration", "the applicant does not object to its own registration"));
        }
        let now = self.clock.now_ms();
        r.object((self.ids)("obj"), by, reason, now)?;
        self.log_step(&mut r, "registration.objected", actor_role, Some(reason.to_string()), now).await?;
        self.save(&mut r).await?;
        Ok(r)
    }

    /// An operator's review or decision.
    pub async fn act_on_registration(&self, actor_role: &str, id: &str, action: Action) -> Result<Registration, DataError> {
        let mut r = self.registration(None, id).await?;
        let now = self.clock.now_ms();
        let (step, reason) = r.act(&action, now, self.notice_ms)?;
        if action == Action::Finalize {
            let row = self.store.registration(id).await?.ok_or_else(|| DataError::NotFound { what: "registration", id: id.to_string() })?;
            let year = time::OffsetDateTime::from_unix_timestamp(now.div_euclid(1000)).map_or(1970, |t| t.year());
            r.code = Some(format!("DR-{year}-{:06}", row.seq));
            self.close_previous(&r, actor_role, now).await?;
        }
        self.log_step(&mut r, step, actor_role, reason, now).await?;
        self.save(&mut r).await?;
        Ok(r)
    }

    /// A registration made supersedes (or, by a cancellation, cancels) the one it follows.
    async fn close_previous(&self, r: &Registration, actor_role: &str, now: i64) -> Result<(), DataError> {
        let Some(code) = &r.application.previous else { return Ok(()) };
        let Some(row) = self.store.registration_by_code(code).await? else { return Ok(()) };
        let mut prev = parse(&row)?;
        let (state, step) = match r.application.kind {
            Kind::Cancellation => (State::Cancelled, "registration.cancelled"),
            _ => (State::Superseded, "registration.superseded"),
        };
        prev.state = state;
        self.log_step(&mut prev, step, actor_role, Some(format!("by registration {}", r.id)), now).await?;
        self.save(&mut prev).await
    }
}
