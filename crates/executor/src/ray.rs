//! A Ray cluster, through the Ray Jobs REST API of its dashboard (default port 8265).
//!
//! - submit: `POST /api/jobs/` with `submission_id` = the attempt's engine name, so a repeated
//!   submit of the same attempt is refused by Ray itself rather than run twice;
//! - find / status: `GET /api/jobs/{submission_id}` (404: Ray does not know it);
//! - cancel: `POST /api/jobs/{submission_id}/stop`;
//! - logs: `GET /api/jobs/{submission_id}/logs` (the whole text; sliced here by offset);
//! - health: `GET /api/version`.
//!
//! The entrypoint is a shell line, so the argv is quoted here, one argument at a time. The job's
//! `runtime_env` carries its own variables and `AIPLUS_JOB_ID` / `AIPLUS_ATTEMPT`, nothing of
//! aiplus's. Ray itself does not sandbox: a job can reach the dashboard's Jobs API (and so submit
//! or stop other jobs) at the head node's address. Close it as the README's "Running jobs safely"
//! says: bind the dashboard to an address jobs cannot reach, or put it behind an authenticating
//! proxy that only aiplus holds a credential for.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::{BoxFut, EngineState, ExecError, ExecSpec, Executor, Handle, LogChunk, MAX_LOG_CHUNK};

/// Most bytes of a job's log (as Ray's JSON) read in one download.
pub const MAX_RAY_LOG_BYTES: usize = 64 << 20;

pub struct RayExecutor {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct JobInfo {
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    driver_exit_code: Option<i32>,
    #[serde(default)]
    error_type: Option<String>,
}

/// Quotes one argument for `sh`: inside single quotes everything is literal but `'` itself.
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

impl RayExecutor {
    /// `url`: the dashboard address, e.g. `http://127.0.0.1:8265`.
    pub fn new(url: &str) -> Result<Self, ExecError> {
        // The dashboard is the operator's own, usually on this host: local addresses are allowed.
        let http = outbound::client(true, Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ExecError::Rejected(format!("http client: {e}")))?;
        Ok(Self { base: url.trim_end_matches('/').to_string(), http })
    }

    fn unreachable(e: reqwest::Error) -> ExecError {
        ExecError::Unreachable(format!("ray at the dashboard: {e}"))
    }

    fn check_id(handle: &Handle) -> Result<&str, ExecError> {
        let ok = !handle.0.is_empty() && handle.0.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(&handle.0) } else { Err(ExecError::Rejected(format!("not a Ray submission id: {:?}", handle.0))) }
    }

    async fn info(&self, id: &str) -> Result<Option<JobInfo>, ExecError> {
        let resp = self.http.get(format!("{}/api/jobs/{id}", self.base)).send().await.map_err(Self::unreachable)?;
        match resp.status().as_u16() {
            404 => Ok(None),
            s if (200..300).contains(&s) => Ok(Some(resp.json().await.map_err(Self::unreachable)?)),
            s if s >= 500 => Err(ExecError::Unreachable(format!("ray answered {s}"))),
            s => Err(ExecError::Rejected(format!("ray answered {s}: {}", resp.text().await.unwrap_or_default()))),
        }
    }

    fn map(info: JobInfo) -> EngineState {
        match info.status.as_str() {
            "PENDING" => EngineState::Pending,
            "RUNNING" => EngineState::Running,
            "SUCCEEDED" => EngineState::Succeeded,
            "STOPPED" => EngineState::Cancelled,
            "FAILED" => {
                let message = info.message.unwrap_or_default();
                // A job whose command ran and exited non-zero failed; one whose supervisor or
                // node died was lost, and its policy decides whether it runs again.
                let entrypoint_failed =
                    info.driver_exit_code.is_some() || info.error_type.as_deref() == Some("JOB_ENTRYPOINT_COMMAND_ERROR");
                if entrypoint_failed {
                    EngineState::Failed { exit_code: info.driver_exit_code, message }
                } else {
                    EngineState::Lost { reason: format!("ray: {} {message}", info.error_type.unwrap_or_default()).trim().to_string() }
                }
            }
            other => EngineState::Lost { reason: format!("ray reports an unknown status {other:?}") },
        }
    }
}

impl Executor for RayExecutor {
    fn kind(&self) -> &'static str {
        "ray"
    }

    fn submit<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Handle, ExecError>> {
        Box::pin(async move {
            if spec.command.is_empty() {
                return Err(ExecError::Rejected("empty command".into()));
            }
            crate::refuse_sealed(spec, "Ray")?;
            let id = spec.engine_name();
            let entrypoint = spec.command.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
            let mut env = spec.env.clone();
            env.insert("AIPLUS_JOB_ID".into(), spec.job_id.clone());
            env.insert("AIPLUS_ATTEMPT".into(), spec.attempt.to_string());
            let body = json!({
                "entrypoint": entrypoint,
                "submission_id": id,
                "runtime_env": {"env_vars": env},
                "metadata": {"aiplus_job": spec.job_id, "aiplus_tenant": spec.tenant, "attempt": spec.attempt.to_string()},
                "entrypoint_num_cpus": f64::from(spec.cpu_milli) / 1000.0,
                "entrypoint_num_gpus": f64::from(spec.gpus) * f64::from(spec.gpu_milli) / 1000.0,
                "entrypoint_memory": u64::from(spec.memory_mib) * 1024 * 1024,
            });
            let resp = self.http.post(format!("{}/api/jobs/", self.base)).json(&body).send().await.map_err(Self::unreachable)?;
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(Handle(id));
            }
            let text = resp.text().await.unwrap_or_default();
            // Already submitted (an earlier try whose answer was lost): that submission stands.
            if self.info(&id).await?.is_some() {
                return Ok(Handle(id));
            }
            if status >= 500 {
                return Err(ExecError::Unreachable(format!("ray answered {status}: {text}")));
            }
            Err(ExecError::Rejected(format!("ray answered {status}: {text}")))
        })
    }

    fn find<'a>(&'a self, spec: &'a ExecSpec) -> BoxFut<'a, Result<Option<Handle>, ExecError>> {
        Box::pin(async move {
            let id = spec.engine_name();
            Ok(self.info(&id).await?.map(|_| Handle(id)))
        })
    }

    fn status<'a>(&'a self, handle: &'a Handle) -> BoxFut<'a, Result<EngineState, ExecError>> {
        Box::pin(async move {
            let id = Self::check_id(handle)?;
            Ok(match self.info(id).await? {
                Some(info) => Self::map(info),
                None => EngineState::Lost { reason: "ray does not know this job (the head restarted?)".into() },
            })
        })
    }

    fn cancel<'a>(&'a self, handle: &'a Handle) -> BoxFut<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let id = Self::check_id(handle)?;
            let resp = self.http.post(format!("{}/api/jobs/{id}/stop", self.base)).send().await.map_err(Self::unreachable)?;
            match resp.status().as_u16() {
                s if (200..300).contains(&s) => Ok(()),
                // Unknown to Ray: nothing left to stop.
                404 => Ok(()),
                s if s >= 500 => Err(ExecError::Unreachable(format!("ray answered {s}"))),
                s => Err(ExecError::Rejected(format!("ray answered {s}: {}", resp.text().await.unwrap_or_default()))),
            }
        })
    }

    fn logs<'a>(&'a self, handle: &'a Handle, offset: u64) -> BoxFut<'a, Result<LogChunk, ExecError>> {
        Box::pin(async move {
            let id = Self::check_id(handle)?;
            let resp = self.http.get(format!("{}/api/jobs/{id}/logs", self.base)).send().await.map_err(Self::unreachable)?;
            if resp.status().as_u16() == 404 {
                return Ok(LogChunk { data: Vec::new(), next_offset: offset });
            }
            #[derive(Deserialize)]
            struct Logs {
                logs: String,
            }
            // Ray answers with the whole log at once: read at most MAX_RAY_LOG_BYTES of it, so a
            // job that prints without end cannot make aiplus hold its output in memory.
            let body = outbound::read_capped(resp, MAX_RAY_LOG_BYTES).await.map_err(Self::unreachable)?.ok_or_else(|| {
                ExecError::Rejected(format!("the job's log is over {} MiB; read it on the Ray dashboard", MAX_RAY_LOG_BYTES >> 20))
            })?;
            let logs: Logs =
                serde_json::from_slice(&body).map_err(|e| ExecError::Unreachable(format!("ray sent a log that is not JSON: {e}")))?;
            let bytes = logs.logs.into_bytes();
            let start = (offset as usize).min(bytes.len());
            let end = (start + MAX_LOG_CHUNK as usize).min(bytes.len());
            Ok(LogChunk { data: bytes[start..end].to_vec(), next_offset: end as u64 })
        })
    }

    fn health(&self) -> BoxFut<'_, Result<(), ExecError>> {
        Box::pin(async move {
            let resp = self.http.get(format!("{}/api/version", self.base)).send().await.map_err(Self::unreachable)?;
            if resp.status().is_success() { Ok(()) } else { Err(ExecError::Unreachable(format!("ray answered {}", resp.status()))) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        let args = ["it's", "$HOME", "a b", ""];
        let line = args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
        let out = std::process::Command::new("sh").args(["-c", &format!("printf '%s|' {line}")]).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "it's|$HOME|a b||");
    }

    #[test]
    fn states_map_to_ours() {
        let info = |status: &str, code: Option<i32>, error_type: Option<&str>| JobInfo {
            status: status.into(),
            message: Some("m".into()),
            driver_exit_code: code,
            error_type: error_type.map(Into::into),
        };
        assert_eq!(RayExecutor::map(info("RUNNING", None, None)), EngineState::Running);
        assert_eq!(RayExecutor::map(info("STOPPED", None, None)), EngineState::Cancelled);
        assert!(matches!(RayExecutor::map(info("FAILED", Some(3), None)), EngineState::Failed { exit_code: Some(3), .. }));
        assert!(matches!(RayExecutor::map(info("FAILED", None, Some("JOB_SUPERVISOR_ACTOR_DIED"))), EngineState::Lost { .. }));
    }
}
