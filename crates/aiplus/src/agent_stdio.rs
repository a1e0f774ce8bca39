//! Agents' stdio MCP servers run in the job sandbox (`executor::local::sandbox`), built exactly
//! as a job's: their own namespaces with no network, the system read-only, a fresh environment
//! (the declared variables and the sandbox's own, nothing of the server's), and the tenant's own
//! working directory at `/work` (`<data dir>/agents/stdio/<tenant>`, kept between runs, like a
//! home). They never see the data directory, the platform's secrets or another tenant's files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use executor::local::sandbox::Sandbox;

pub struct SandboxSpawner {
    sandbox: Sandbox,
    root: PathBuf,
}

/// Memory, CPU and time a stdio server is described with (the sandbox's namespaces are what
/// confine it; no cgroup limits are set for it).
const MEMORY_MIB: u32 = 1024;
const CPU_MILLI: u32 = 1000;

impl agents::mcp::Spawn for SandboxSpawner {
    fn spawn(&self, tenant: &str, command: &[String], env: &BTreeMap<String, String>) -> std::io::Result<tokio::process::Child> {
        // Tenant ids are 1-64 of a-z, 0-9, '-', '_' (identity checks them): a safe path segment.
        let work = self.root.join(tenant);
        std::fs::create_dir_all(&work)?;
        let spec = executor::ExecSpec {
            job_id: format!("mcp-{}", uuid::Uuid::now_v7().simple()),
            tenant: tenant.to_string(),
            attempt: 1,
            command: command.to_vec(),
            env: env.clone(),
            gpus: 0,
            gpu_milli: 0,
            cpu_milli: CPU_MILLI,
            memory_mib: MEMORY_MIB,
            time_limit_s: agents::spec::MAX_TIMEOUT_S,
            network: false,
            sealed: None,
        };
        let argv = self.sandbox.argv(&spec, &work);
        tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
    }
}

/// The spawner of a server whose jobs run sandboxed; none when the sandbox is off (stdio
/// servers would then run unconfined, so they are refused) or cannot be made here.
pub fn spawner(local: &executor::local::LocalConfig, data_dir: &std::path::Path) -> Option<Arc<dyn agents::mcp::Spawn>> {
    let root = data_dir.join("agents").join("stdio");
    let sandbox = Sandbox::probe(local.clone(), &data_dir.join("agents"));
    match sandbox.state() {
        Ok(true) => Some(Arc::new(SandboxSpawner { sandbox, root })),
        Ok(false) => {
            tracing::warn!("executor.local.sandbox is off: agents' stdio MCP servers are refused");
            None
        }
        Err(why) => {
            tracing::warn!(why, "agents' stdio MCP servers are refused: the job sandbox cannot be made here");
            None
        }
    }
}
