//! The `aiplus` binary: one command for the server, the operator CLI, the simulator and the
//! benchmarks. `anyhow` lives here and nowhere else.

/// mimalloc instead of glibc's allocator: under the gateway's load, glibc's malloc and free
/// (and their arena locks) took about 12% of the server's CPU; see ARCHITECTURE.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agents_bench;
mod agents_cli;
mod bench;
mod client;
mod collections_cli;
mod config;
mod data_cli;
mod data_remote_cli;
mod data_service;
mod eval_assess;
mod eval_bench;
mod eval_cli;
mod eval_job;
mod eval_session;
mod floor_proxy;
mod gateway_bench;
mod gateway_cli;
mod govern_cli;
mod governance;
mod identity_cli;
mod inference_cli;
mod jobs_bench;
mod log_cli;
mod log_files;
mod models_cli;
mod oss_cli;
mod oss_cluster;
mod oss_fetch;
mod serve;
mod simulate;
mod sites;

use clap::{Parser, Subcommand};

/// aiplus — open infrastructure for the "AI+" Action: one national compute network that places
/// AI work where data, compute, power and network fit best.
///
/// Start the server on its embedded defaults (SQLite in ./aiplus-data, the built-in network of
/// the 8 national hubs and 10 clusters) with `aiplus serve`; the other commands talk to it over
/// HTTP (`--server`, or AIPLUS_SERVER) or run locally (`compute simulate`, `compute bench`).
///
/// The CLI sends a credential with every request: AIPLUS_TOKEN, else the token `aiplus login`
/// stored, else the operator token a local `aiplus serve` wrote to ./aiplus-data/operator-token.
#[derive(Parser, Debug)]
#[command(name = "aiplus", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the HTTP API on the embedded store; stops gracefully on Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// The compute network: simulate placement policies on real traces, benchmark the scheduler.
    Compute {
        #[command(subcommand)]
        command: ComputeCommand,
    },
    /// Hubs of the compute network (from a running server).
    Hubs(client::HubsArgs),
    /// Clusters of the compute network (from a running server).
    Clusters(client::ClustersArgs),
    /// Jobs: submit, list, get, cancel, and see where and why a job was placed.
    Jobs(client::JobsArgs),
    /// Store the CLI's credential (an operator token or an API key) after checking it.
    Login(identity_cli::LoginArgs),
    /// API keys of tenants: create with a role and scopes (the secret is shown once), list, revoke.
    Keys(gateway_cli::KeysArgs),
    /// Operator tokens for automation: create (operator-viewer or operator-admin), list, revoke.
    OperatorTokens(identity_cli::TokensArgs),
    /// Tenants: limits shared by all their keys, and the regions their model traffic may use.
    Tenants(gateway_cli::TenantsArgs),
    /// Models of the gateway and their deployments: list, create or replace, delete, health;
    /// install llama.cpp and the built-in chat models on this machine (fetch).
    Models(gateway_cli::ModelsArgs),
    /// The usage ledger by day, tenant, pillar, principal and model: events, errors, tokens,
    /// GPU-hours, energy, carbon and cost.
    Usage(gateway_cli::UsageArgs),
    /// The governance transparency log: checkpoints, inclusion and consistency proofs, entries,
    /// and `verify`, an offline check of a proof against a signed checkpoint.
    Log(log_cli::LogArgs),
    /// Filings (备案) with the CAC: drafts, attachments, submission, filing numbers, changes and
    /// cancellation, each deadline counted in China's working days.
    Filings(govern_cli::FilingsArgs),
    /// Alerts that need an operator (overdue filings and incidents, alert rules that fired),
    /// the alert rules, webhook deliveries and their dead letters, and suspended end users.
    Alerts(govern_cli::AlertsArgs),
    /// Incidents: graded, with the reporting deadline the operator's class sets, and a timeline
    /// of reports, measures and notes, each a transparency-log entry.
    Incidents(govern_cli::IncidentsArgs),
    /// Agents a tenant declares (instructions, model, tools, limits) and any OpenAI-compatible
    /// client uses as the model `agent:<id>`: declare, list, show, version, delete, and run one
    /// with its steps streamed.
    Agents(agents_cli::AgentsArgs),
    /// Document collections an agent's `file_search` searches: add text files (embedded by the
    /// server as the tenant), list, show, search and delete.
    Collections(collections_cli::CollectionsArgs),
    /// Evaluate a model the server serves: capability (CMMLU), safety knowledge (SafetyBench),
    /// bias (BBQ) and refusal suites, through the gateway under an evaluation tenant.
    Eval(eval_cli::EvalArgs),
    /// The data exchange: value a training CSV's rows for a test CSV, standalone (`value`,
    /// `bench`), or, on a server, upload files, add and publish dataset versions, and settle.
    Data(data_cli::DataArgs),
    /// Open-source contribution evaluation on a data dir, offline: ingest GH Archive files,
    /// generate GH-like ones, OpenDigger's activity, global and community OpenRank.
    Oss(oss_cli::OssArgs),
    /// The model gateway: benchmark it (against LiteLLM too), or run the mock upstream.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
}

#[derive(Subcommand, Debug)]
enum GatewayCommand {
    /// Measure the latency the gateway adds, its throughput and memory, against a zero-delay
    /// mock upstream with auth, limits and metering on (and LiteLLM's proxy with --litellm).
    Bench(gateway_bench::BenchArgs),
    /// Run the zero-delay mock upstream (a test double of an OpenAI-compatible server).
    Mock(gateway_bench::MockArgs),
}

#[derive(Subcommand, Debug)]
enum ComputeCommand {
    /// Replay a real trace under each policy and write report.json and report.svg.
    Simulate(simulate::SimulateArgs),
    /// Replay LLM inference traces (Azure 2023) as autoscaled online-inference services placed
    /// by each policy: SLO attainment, TTFT, replicas, energy, cost and carbon per 1k tokens.
    InferenceSim(inference_cli::InferenceSimArgs),
    /// Measure placement decisions per second and the time and memory of a large replay.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Compute { command: ComputeCommand::Simulate(args) } => simulate::run(args),
        Command::Compute { command: ComputeCommand::InferenceSim(args) } => inference_cli::run(args),
        Command::Compute { command: ComputeCommand::Bench(args) } => bench::run(args),
        Command::Hubs(args) => client::hubs(args),
        Command::Clusters(args) => client::clusters(args),
        Command::Jobs(args) => client::jobs(args),
        Command::Login(args) => identity_cli::login(args),
        Command::Keys(args) => gateway_cli::keys(args),
        Command::OperatorTokens(args) => identity_cli::tokens(args),
        Command::Tenants(args) => gateway_cli::tenants(args),
        Command::Models(args) => gateway_cli::models(args),
        Command::Usage(args) => gateway_cli::usage(args),
        Command::Log(args) => log_cli::run(args),
        Command::Filings(args) => govern_cli::filings(args),
        Command::Alerts(args) => govern_cli::alerts(args),
        Command::Incidents(args) => govern_cli::incidents(args),
        Command::Eval(args) => eval_cli::eval(args),
        Command::Agents(args) => agents_cli::agents(args),
        Command::Collections(args) => collections_cli::collections(args),
        Command::Data(args) => data_cli::data(args),
        Command::Oss(args) => oss_cli::oss(args),
        Command::Gateway { command: GatewayCommand::Bench(args) } => gateway_bench::run(args),
        Command::Gateway { command: GatewayCommand::Mock(args) } => gateway_bench::mock(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
