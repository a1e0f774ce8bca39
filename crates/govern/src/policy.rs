//! The one answer the gateway asks for on every request: what the model's state allows, and,
//! with `govern.require_filing`, whether a filing that stands covers the model version.

use std::sync::Arc;

use vocab::{ModelDecision, ModelPolicy};

use crate::{Filings, ModelStates};

pub struct Policy {
    pub states: Arc<ModelStates>,
    pub filings: Arc<Filings>,
    pub end_users: Arc<crate::end_users::EndUsers>,
    pub clock: Arc<dyn vocab::Clock>,
    /// Serve only model versions that a filing in force covers.
    pub require_filing: bool,
}

impl ModelPolicy for Policy {
    fn decide(&self, model: &str, tenant: &str) -> ModelDecision {
        match self.states.decide(model, tenant) {
            ModelDecision::Allow if self.require_filing && !self.filings.is_filed(model, tenant) => ModelDecision::Refuse {
                code: "model_not_filed",
                message: format!(
                    "The model `{model}` has no filing in force, and this server serves only filed models (govern.require_filing)"
                ),
            },
            d => d,
        }
    }

    fn filed(&self, model: &str, tenant: &str) -> bool {
        self.filings.is_filed(model, tenant)
    }

    fn bounds(&self, model: &str) -> Option<Arc<vocab::ModelBounds>> {
        self.states.bounds(model)
    }

    fn end_user(&self, tenant: &str, user: &str) -> ModelDecision {
        match self.end_users.suspended_until(tenant, user, self.clock.now_ms()) {
            None => ModelDecision::Allow,
            Some(until_ms) => ModelDecision::Refuse {
                code: "end_user_suspended",
                message: format!(
                    "The end user `{user}` is suspended until {until_ms} (Unix ms) after repeated input the content rules block (TC260-003); the tenant's operator can lift it"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::calendar::Calendar;
    use crate::filing_service::Upload;
    use crate::filings::AttachmentKind;
    use crate::lifecycle::Action;
    use crate::states::{Actor, Change, Status};

    const OP: Actor<'static> = Actor { id: "tok_1", role: "operator-admin" };

    struct Fixed;
    impl vocab::Clock for Fixed {
        fn now_ms(&self) -> i64 {
            0
        }
    }

    #[tokio::test]
    async fn with_require_filing_only_filed_versions_serve_and_states_still_bind() {
        let store = store::Store::memory().await.unwrap();
        let key = tlog::SignerKey::from_seed("aiplus.test/log", [5; 32]).unwrap();
        let log = Arc::new(tlog::Log::open(store.clone(), key, 0, None, None).await.unwrap());
        let states = Arc::new(ModelStates::open(store.clone(), log.clone()).await.unwrap());
        let filings = Arc::new(Filings::open(store.clone(), log.clone(), Calendar::builtin().unwrap()).await.unwrap());
        let end_users = crate::end_users::EndUsers::start(store, log, 86_400_000).await.unwrap();
        let clock: Arc<dyn vocab::Clock> = Arc::new(Fixed);
        let policy = |require_filing| Policy {
            states: states.clone(),
            filings: filings.clone(),
            end_users: end_users.clone(),
            clock: clock.clone(),
            require_filing,
        };
        let (lenient, strict) = (policy(false), policy(true));
        assert_eq!(lenient.decide("chat@1", "t"), ModelDecision::Allow);
        assert!(matches!(strict.decide("chat@1", "t"), ModelDecision::Refuse { code: "model_not_filed", .. }));
        let id = filings.create(None, crate::filings::tests::complete_service(), OP, 1).await.unwrap().filing.id;
        for kind in AttachmentKind::ALL {
            filings.attach(&id, Upload { kind, name: "a", data: b"a", sha256: None }, OP, 1).await.unwrap();
        }
        filings.act(&id, None, Action::Submit, OP, 2).await.unwrap();
        assert!(!strict.filed("chat@1", "t"), "submitted is not filed");
        filings.act(&id, None, Action::File { filing_number: "n-1".into() }, OP, 3).await.unwrap();
        assert!(strict.filed("chat@1", "t"), "the operator's own filing covers every tenant");
        assert_eq!(strict.decide("chat@1", "t"), ModelDecision::Allow);
        let suspend = Change { status: Status::Suspended, reason: "a finding".into(), tenants: vec![], regions: vec![], limits: None };
        states.set("chat@1", suspend, OP, 4).await.unwrap();
        assert!(matches!(strict.decide("chat@1", "t"), ModelDecision::Refuse { code: "model_suspended", .. }));
    }
}
