//! `aiplus serve`: the HTTP API on the embedded store, with graceful shutdown.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Config file; ./aiplus.toml is read when present.
    #[arg(long, env = "AIPLUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long)]
    pub listen: Option<String>,
    /// Directory for the embedded SQLite database.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(d) = args.data_dir {
        cfg.server.data_dir = d;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIPLUS_LOG").unwrap_or_else(|_| "info".into());
    if args.log_json {
        tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("AIPLUS_WORKERS").ok().and_then(|v| v.parse().ok()) {
        b.worker_threads(n);
    }
    let rt = b.enable_all().build()?;
    rt.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let seed = match &cfg.server.network {
        Some(p) => compute::file::load_network_file(p)?,
        None => compute::file::builtin_network()?,
    };
    let store = match &cfg.store.url {
        Some(url) => store::Store::connect_postgres(url).await.context("store.url: connecting to PostgreSQL")?,
        None => store::Store::open(&cfg.server.data_dir).await.context("opening the store")?,
    };
    let identity = Arc::new(identity::Identity::open(store.clone()).await.context("loading tenants and credentials")?);

    if let Some(path) = identity.ensure_operator_token(&cfg.server.data_dir, jobs::Clock::now_ms(&jobs::SystemClock)).await? {
        // Said on stderr whatever the log level: this is how a fresh install is first reached.
        eprintln!(
            "aiplus: the first operator token is in {} (mode 0600); use it with `aiplus login --token-file {}`",
            path.display(),
            path.display()
        );
        tracing::warn!(path = %path.display(), "operator token written");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The compute lifecycle holds the queue in memory and talks to the engines, so on a shared
    // database exactly one instance runs it; the others serve the gateway only.
    let lock = match cfg.server.compute {
        true => Some(store.try_compute_lock().await.context("taking the compute lock")?.with_context(|| {
            "another aiplus instance runs compute on this database; set `server.compute = false` \
             (or AIPLUS_COMPUTE=false) on gateway-only instances"
        })?),
        false => None,
    };
    // The governance log is checked against its last signed checkpoint before anything is
    // served: a store whose history was rewritten does not start.
    let log = Arc::new(crate::log_files::open(&cfg, store.clone()).await?);
    // The log's key also signs open-source credit reports (the API's and the console's).
    let log_key = Arc::new(crate::log_files::key(&cfg, &crate::log_files::key_path(&cfg))?);
    // Each model's governance state, which the gateway asks on every request; changes made on
    // other instances are followed within a fraction of a second.
    let clock: Arc<dyn vocab::Clock> = Arc::new(jobs::SystemClock);
    let governance = Arc::new(crate::governance::open(&cfg, &store, &log, clock.clone()).await?);
    let mut compute = None;
    if let Some(lock) = lock {
        let engines = engines(&cfg, &seed)?;
        let svc = jobs::ComputeService::open(
            store.clone(),
            &seed,
            cfg.scheduler.policy,
            cfg.scheduler.weights,
            Arc::new(jobs::SystemClock),
            engines,
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting the compute service: {e}"))?;
        svc.set_max_queued_per_tenant(cfg.scheduler.max_queued_per_tenant);
        let svc = Arc::new(svc);
        let dispatcher = tokio::spawn(svc.clone().run_dispatcher(std::time::Duration::from_millis(cfg.executor.tick_ms), stop_rx.clone()));
        compute = Some((svc, dispatcher, lock));
    }
    let seed = Arc::new(seed);
    let sites = Arc::new(crate::sites::NetworkSites::new(seed.clone(), cfg.scheduler.weights.carbon_cny_per_kg));
    if let Some((svc, _, _)) = &compute {
        sites.follow(svc.clone(), stop_rx.clone());
    }
    let flush = match cfg.gateway.meter_flush_ms {
        0 => gateway::meter::FLUSH_EVERY,
        ms => std::time::Duration::from_millis(ms),
    };
    let (meter, meter_writer) = gateway::Meter::start(store.clone(), flush);
    let key_env = std::env::var(identity::seal::SECRET_KEY_ENV).ok();
    let sealer = Arc::new(
        identity::Sealer::load(&cfg.server.data_dir, key_env.as_deref()).context("loading the secret key that seals stored secrets")?,
    );
    let sites = Some(sites as Arc<dyn gateway::Sites>);
    let gw = gateway::Gateway::new(cfg.gateway.clone(), store.clone(), identity.clone(), sealer.clone(), meter, sites)
        .await
        .map_err(|e| anyhow::anyhow!("starting the gateway: {e}"))?;
    let mut embedded = None;
    let gw = if cfg.gateway.embedded.enabled {
        let e = &cfg.gateway.embedded;
        let dir = e.dir.clone().unwrap_or_else(|| cfg.server.data_dir.join("models").join(&e.name));
        let model = gateway::embeddings::Embedded::new(e.name.clone());
        // Loading (and on a fresh machine, fetching) takes a while; the server answers meanwhile.
        tokio::spawn(model.clone().load(dir, e.fetch));
        embedded = Some(model.clone());
        gw.with_embedded(model).map_err(|e| anyhow::anyhow!("starting the gateway: {e}"))?
    } else {
        gw
    };
    let gw = Arc::new(
        gw.with_policy(governance.policy.clone()).with_observer(governance.recorder.clone()).with_observer(governance.end_users.clone()),
    );
    let refresher = gw.spawn_refresh(stop_rx.clone());
    let governing = crate::governance::spawn(&governance, &cfg, store.clone(), clock.clone(), compute.is_some(), stop_rx.clone())?;
    let models = match &compute {
        Some((svc, _, _)) => {
            let paths = models::service::Paths {
                models_dir: models_dir(&cfg)?,
                python: cfg.models.python.clone(),
                vllm_python: cfg.models.vllm_python.clone(),
                allow_local: cfg.gateway.allow_local_upstreams,
            };
            let chat = (!cfg.models.chat.is_empty()).then(|| aiplus::model_service::ChatModel {
                name: cfg.models.chat.clone(),
                gguf: cfg.models.chat_gguf.clone(),
                threads: cfg.models.threads,
            });
            let opts = aiplus::model_service::Options { paths, chat, fetch: cfg.models.fetch };
            Some(aiplus::model_service::start(store.clone(), svc.clone(), gw.clone(), opts, stop_rx.clone()).await?)
        }
        None => None,
    };
    let evaluation = aiplus::evaluation::open(
        store.clone(),
        &identity,
        gw.clone(),
        &cfg.eval.suites_dir,
        &cfg.server.data_dir,
        &cfg.eval.tenant,
        clock.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("starting evaluation: {e}"))?;
    // Runs are taken from the queue where compute runs: one worker for the whole deployment.
    let evaluating = compute.is_some().then(|| tokio::spawn(evaluation.clone().work(stop_rx.clone())));
    let canary =
        aiplus::evaluation::Canary { suite: cfg.eval.canary_suite.clone(), limit: cfg.eval.canary_limit, every_s: cfg.eval.canary_every_s };
    let canary = match compute.is_some() {
        true => {
            aiplus::evaluation::spawn_canary(evaluation.clone(), gw.clone(), governance.clone(), canary, clock.clone(), stop_rx.clone())?
        }
        false => None,
    };
    let Agents { agents, collections, writer: agent_meter_writer, resumer } =
        start_agents(&cfg, &store, &gw, sealer.clone(), clock.clone(), stop_rx.clone())?;
    let data = crate::data_service::open(
        &cfg.data,
        crate::data_service::Parts {
            data_dir: &cfg.server.data_dir,
            store: store.clone(),
            log: log.clone(),
            clock: clock.clone(),
            network: &seed,
            compute: compute.as_ref().map(|(svc, _, _)| svc.clone()),
            embedded,
        },
    )?;
    let data_driver = compute.is_some().then(|| crate::data_service::spawn_driver(data.clone(), stop_rx.clone()));
    let console = if cfg.console.enabled {
        let console = web::Console::new(
            store.clone(),
            compute.as_ref().map(|(svc, _, _)| svc.clone()),
            gw.clone(),
            seed.clone(),
            cfg.console.clone(),
            cfg.server.data_dir.clone(),
        );
        let console = console.with_governance(governance.clone(), log.clone()).with_eval(evaluation.clone()).with_agents(agents.clone());
        let console = console.with_data(data.clone()).with_oss(Arc::new(oss::ingest::Store::new(&cfg.server.data_dir)), log_key.clone());
        console.ensure_admin().await.map_err(|e| anyhow::anyhow!("starting the console: {e}"))?;
        Some(Arc::new(console))
    } else {
        None
    };
    let app = aiplus::app(aiplus::Parts {
        store: store.clone(),
        identity,
        compute: compute.as_ref().map(|(svc, _, _)| svc.clone()),
        gateway: gw,
        console,
        models: models.as_ref().map(|(m, _)| m.clone()),
        log,
        governance,
        eval: evaluation,
        agents,
        collections,
        data,
        oss: Arc::new(oss::ingest::Store::new(&cfg.server.data_dir)),
        log_key,
        hosts: cfg.server.hosts.clone(),
        clock,
    });
    // Bound and announced only when everything above is ready, so the "listening" line means
    // requests are served at once (the black-box tests and scripts rely on it).
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen).await.with_context(|| format!("binding {}", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    let where_ = match &cfg.store.url {
        Some(_) => "PostgreSQL".to_string(),
        None => cfg.server.data_dir.display().to_string(),
    };
    // The black-box tests and scripts read this line to find a port chosen by the OS.
    println!("aiplus listening on http://{addr} (data in {where_})");
    tracing::info!(%addr, data = %where_, compute = compute.is_some(), "listening");
    let timeout = std::time::Duration::from_secs(cfg.server.shutdown_timeout_s);
    // Small writes (SSE frames, short answers) go out at once instead of waiting on Nagle's
    // algorithm and the peer's delayed ACK (up to 40 ms each).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY");
        }
    });
    // The peer's address reaches handlers (the console's login throttle counts failures by it).
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down; finishing requests in flight");
            // Requests still running after the timeout are cut off by exiting.
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                tracing::warn!("shutdown timeout reached");
                std::process::exit(1);
            });
        })
        .await?;
    let _ = stop_tx.send(true);
    let _ = refresher.await;
    for task in governing {
        let _ = task.await;
    }
    let _ = resumer.await;
    if let Some(task) = data_driver {
        let _ = task.await;
    }
    for task in evaluating.into_iter().chain(canary) {
        let _ = task.await;
    }
    if let Some((svc, task)) = models {
        let _ = task.await;
        // The service holds the gateway (and its meter): it must go before the meter's
        // writer is awaited below, which ends only when every meter is gone.
        drop(svc);
    }
    if let Some((_, dispatcher, lock)) = compute {
        let _ = dispatcher.await;
        drop(lock);
    }
    // The router (and with it the gateway's meter) is gone: the writer stores what is left.
    let _ = meter_writer.await;
    let _ = agent_meter_writer.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The agents pillar as started: its services, its ledger writer and its background resumer.
struct Agents {
    agents: Arc<agents::Agents>,
    collections: Arc<agents::collections::Collections>,
    writer: tokio::task::JoinHandle<()>,
    resumer: tokio::task::JoinHandle<()>,
}

/// The agents pillar: declarations in the store, and `agent:` models served on the gateway's
/// Responses API, with their tool calls in the ledger.
fn start_agents(
    cfg: &Config,
    store: &store::Store,
    gw: &Arc<gateway::Gateway>,
    sealer: Arc<identity::Sealer>,
    clock: Arc<dyn vocab::Clock>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Agents> {
    let hosts = agents::service::HostRule {
        allowed_hosts: cfg.agents.allowed_hosts.clone(),
        allow_local: cfg.agents.allow_local,
        allow_stdio: cfg.agents.allow_stdio,
    };
    let agents = Arc::new(agents::Agents::new(store.clone(), sealer, clock.clone(), hosts));
    let (meter, writer) = agents::usage::Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    let http = outbound::client(cfg.agents.allow_local, std::time::Duration::from_secs(10)).build().context("building the MCP client")?;
    let instance = format!("inst_{}", uuid::Uuid::now_v7().simple());
    let spawner = if cfg.agents.allow_stdio { aiplus::agent_stdio::spawner(&cfg.executor.local, &cfg.server.data_dir) } else { None };
    let embed = Arc::new(aiplus::agent_search::GatewayEmbed { gw: Arc::downgrade(gw), model: cfg.agents.embedding_model.clone() });
    let collections = Arc::new(agents::collections::Collections::new(store.clone(), embed, clock.clone()));
    let host = aiplus::agent_serving::Host {
        gw: Arc::downgrade(gw),
        agents: agents.clone(),
        store: store.clone(),
        meter,
        http,
        clock,
        instance,
        spawner,
        collections: collections.clone(),
    };
    let resumer = aiplus::agent_background::spawn_resumer(host.clone(), stop);
    gw.serve_agents(Arc::new(host));
    Ok(Agents { agents, collections, writer, resumer })
}

/// The engines named in the config, each checked against the network; every other cluster
/// runs on the local executor, which keeps its jobs under `<data_dir>/jobs`.
/// The models directory, created, as a canonical path: the sandbox binds it by that path, and
/// replicas' commands name files in it.
fn models_dir(cfg: &Config) -> anyhow::Result<std::path::PathBuf> {
    let dir = cfg.models.dir(&cfg.server.data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("models.dir: creating {}", dir.display()))?;
    dir.canonicalize().with_context(|| format!("models.dir: {}", dir.display()))
}

fn engines(cfg: &Config, net: &compute::Network) -> anyhow::Result<jobs::lifecycle::Engines> {
    // The platform's own model servers (and no tenant's job) see the installed engines and weights.
    let mut local_cfg = cfg.executor.local.clone();
    local_cfg.tenant_read_only.insert(aiplus::model_service::PLATFORM_TENANT.into(), vec![models_dir(cfg)?]);
    // The evaluation tenant's jobs run this binary's `eval run` on the server's suites.
    let exe = std::env::current_exe().context("finding this binary")?;
    // Bound by its canonical path, the one `aiplus eval submit` names.
    let suites = std::fs::canonicalize(&cfg.eval.suites_dir).or_else(|_| std::path::absolute(&cfg.eval.suites_dir))?;
    local_cfg.tenant_read_only.insert(cfg.eval.tenant.clone(), vec![exe, suites]);
    local_cfg.sealed_root = Some(crate::data_service::sealed_root(&cfg.server.data_dir)?);
    let local = executor::local::LocalExecutor::with_config(cfg.server.data_dir.join("jobs"), local_cfg)
        .context("creating the local executor's directory")?;
    match local.sandbox_state() {
        Ok(true) => tracing::info!("local jobs run in a bubblewrap sandbox"),
        Ok(false) => tracing::warn!(
            "executor.local.sandbox = false: local jobs run unsandboxed, as the server's user, and can read the data directory; \
             do this only on a machine where every tenant is trusted"
        ),
        Err(why) => tracing::error!(
            "the local executor will refuse every job: {why}. Install bubblewrap, or set executor.local.sandbox = false \
             to run jobs unsandboxed"
        ),
    }
    let local: Arc<dyn executor::Executor> = Arc::new(local);
    let mut engines = jobs::lifecycle::Engines::new(local.clone());
    for (i, e) in cfg.executor.engines.iter().enumerate() {
        for c in &e.clusters {
            if net.cluster_ix(c).is_none() {
                anyhow::bail!("executor.engine[{i}].clusters: no cluster {c:?} in the network");
            }
        }
        let engine = remote_engine(cfg, i, e)?.unwrap_or_else(|| local.clone());
        for c in &e.clusters {
            engines = engines.with_cluster(c, engine.clone());
        }
    }
    Ok(engines)
}

/// The Slurm or Ray executor that `executor.engine[i]` names; `None` for the local one.
pub(crate) fn remote_engine(
    cfg: &Config,
    i: usize,
    e: &crate::config::EngineConfig,
) -> anyhow::Result<Option<Arc<dyn executor::Executor>>> {
    use crate::config::EngineKind;
    Ok(match e.kind {
        EngineKind::Local => None,
        EngineKind::Slurm => {
            let dir = e.shared_dir.clone().unwrap_or_else(|| cfg.server.data_dir.join("slurm"));
            Some(Arc::new(
                executor::slurm::SlurmExecutor::new(e.partition.clone(), dir)
                    .with_context(|| format!("executor.engine[{i}].shared_dir: cannot create it"))?,
            ))
        }
        EngineKind::Ray => {
            let url = e.url.as_deref().with_context(|| format!("executor.engine[{i}].url: a Ray engine needs the dashboard address"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("executor.engine[{i}].url: {url:?} is not an http(s) address");
            }
            Some(Arc::new(executor::ray::RayExecutor::new(url).map_err(|err| anyhow::anyhow!("executor.engine[{i}].url: {err}"))?))
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
