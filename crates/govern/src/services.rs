//! Every governance service of one server, opened together over one store and one log, so the
//! binary, its routes and its in-process tests build them the same way.

use std::sync::Arc;

use store::Store;
use tlog::Log;

use crate::alerts::Alerts;
use crate::calendar::Calendar;
use crate::counters::Recorder;
use crate::end_users::EndUsers;
use crate::incidents::Incidents;
use crate::monitor::{Monitor, UrlCheck};
use crate::webhooks::Webhooks;
use crate::{Filings, GovernError, ModelStates, Policy};

pub struct Options {
    pub calendar: Calendar,
    pub require_filing: bool,
    /// Which webhook URLs a rule may post to.
    pub url_ok: UrlCheck,
    pub end_user_suspension_ms: i64,
    pub clock: Arc<dyn vocab::Clock>,
}

pub struct Services {
    pub states: Arc<ModelStates>,
    pub filings: Arc<Filings>,
    pub alerts: Arc<Alerts>,
    pub incidents: Arc<Incidents>,
    pub webhooks: Arc<Webhooks>,
    pub monitor: Arc<Monitor>,
    /// This instance's traffic counters (a `vocab::Observer` for the gateway).
    pub recorder: Arc<Recorder>,
    /// End users' strikes and suspensions (a `vocab::Observer` for the gateway).
    pub end_users: Arc<EndUsers>,
    /// What the gateway asks on every request.
    pub policy: Arc<Policy>,
}

impl Services {
    pub async fn open(store: &Store, log: &Arc<Log>, o: Options) -> Result<Self, GovernError> {
        let states = Arc::new(ModelStates::open(store.clone(), log.clone()).await?);
        let filings = Arc::new(Filings::open(store.clone(), log.clone(), o.calendar).await?);
        let alerts = Arc::new(Alerts::new(store.clone()));
        let incidents = Arc::new(Incidents::open_service(store.clone(), log.clone()).await?);
        let webhooks = Arc::new(Webhooks::new(store.clone()));
        let monitor = Arc::new(Monitor::new(crate::monitor::Parts {
            store: store.clone(),
            log: log.clone(),
            states: states.clone(),
            incidents: incidents.clone(),
            alerts: alerts.clone(),
            webhooks: webhooks.clone(),
            url_ok: o.url_ok,
        }));
        let recorder = Arc::new(Recorder::for_this_process());
        let end_users = EndUsers::start(store.clone(), log.clone(), o.end_user_suspension_ms).await?;
        let policy = Arc::new(Policy {
            states: states.clone(),
            filings: filings.clone(),
            end_users: end_users.clone(),
            clock: o.clock,
            require_filing: o.require_filing,
        });
        Ok(Self { states, filings, alerts, incidents, webhooks, monitor, recorder, end_users, policy })
    }
}
