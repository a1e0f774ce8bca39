//! The local executor's sandbox: every attempt runs under bubblewrap (`bwrap`), in its own user,
//! mount, PID, IPC, UTS, cgroup and (unless the job asks for the network) network namespaces,
//! as uid and gid 65534 (`nobody`) with no capabilities.
//!
//! What the job sees:
//! - the system (`/usr`, `/bin`, `/lib*`, `/etc`, `/opt`, `/sys`) read-only, plus the directories
//!   the operator lists in `executor.local.read_only`;
//! - its own work directory at `/work`, the only place it can write besides a private `/tmp`;
//! - a fresh environment: `PATH`, `HOME=/work`, `TMPDIR=/tmp`, `AIPLUS_JOB_ID`, `AIPLUS_ATTEMPT`
//!   and the job's own variables. Nothing of the server's environment reaches it.
//!
//! It never sees the data directory, the attempt's control files (`pid`, `exit_code`, `lock`,
//! `output.log`: its output reaches the log through a pipe) or other jobs. `/sys` is read-only,
//! which makes the cgroup files that hold its limits read-only to it: it cannot move itself out.
//!
//! Outside its user namespace the job has the server's uid (no capabilities): the user namespace
//! maps its one uid to the server's. Dropping to a second host uid first would need every
//! directory above the work directory, the data directory included, to be open to that uid;
//! the mount namespace is what keeps the job out, so run the server as its own user, not root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;

use crate::ExecSpec;

/// The `[executor.local]` settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Run every attempt under bubblewrap. `false` runs jobs as the server's own user with its
    /// whole view of the machine, data directory included: for a machine with one trusted user.
    pub sandbox: bool,
    /// Most bytes of output kept per attempt; the rest is counted and discarded.
    pub output_limit_mib: u64,
    /// Extra directories shown read-only inside the sandbox (a Python environment, a model cache).
    pub read_only: Vec<PathBuf>,
    /// Directories shown read-only to one tenant's jobs only: the server shows its installed
    /// engines and weights to the platform's own model servers this way, and to no tenant.
    #[serde(skip)]
    pub tenant_read_only: BTreeMap<String, Vec<PathBuf>>,
    /// Where the data exchange stages compute-to-data runs: `<root>/<run>/data` is shown to the
    /// run's job read-only at `/data`, and `<root>/<run>/out` writable at `/out`. Unset: such
    /// jobs are refused.
    #[serde(skip)]
    pub sealed_root: Option<PathBuf>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self { sandbox: true, output_limit_mib: 64, read_only: Vec::new(), tenant_read_only: BTreeMap::new(), sealed_root: None }
    }
}

/// Most the output limit may be set to, in MiB (a job's log is read back through the API).
pub const MAX_OUTPUT_LIMIT_MIB: u64 = 64 * 1024;

impl LocalConfig {
    /// Checks the settings, naming the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_OUTPUT_LIMIT_MIB).contains(&self.output_limit_mib) {
            return Err(format!("executor.local.output_limit_mib: must be 1..={MAX_OUTPUT_LIMIT_MIB}, got {}", self.output_limit_mib));
        }
        for (i, p) in self.read_only.iter().enumerate() {
            if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(format!("executor.local.read_only[{i}]: {} is not an absolute path without ..", p.display()));
            }
            if Path::new(WORK).starts_with(p) {
                return Err(format!("executor.local.read_only[{i}]: {} would hide the job's own {WORK}", p.display()));
            }
        }
        Ok(())
    }

    pub fn output_limit_bytes(&self) -> u64 {
        self.output_limit_mib.saturating_mul(1024 * 1024)
    }
}

/// The system directories every sandbox shows read-only, where they exist.
const SYSTEM_DIRS: [&str; 9] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/opt", "/sys"];

/// `PATH` inside the sandbox.
/// Where a sandboxed job finds its own work directory.
const WORK: &str = "/work";

/// The `PATH` a sandboxed job starts with (the platform looks up the Python its model servers
/// run with on it).
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a compute-to-data job finds its dataset (read-only) and writes its declared outputs.
pub const SEALED_DATA: &str = "/data";
pub const SEALED_OUT: &str = "/out";

/// A compute-to-data run's two directories on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedDirs {
    pub data: PathBuf,
    pub out: PathBuf,
}

/// The uid and gid a job has inside its sandbox.
const JOB_UID: &str = "65534";

/// How attempts are wrapped, decided once when the executor starts.
#[derive(Clone, Debug)]
pub struct Sandbox {
    config: LocalConfig,
    /// Why jobs cannot be sandboxed on this machine, when they cannot.
    unavailable: Option<String>,
}

impl Sandbox {
    /// Probes the machine: runs `true` in a sandbox built exactly as a job's would be.
    pub fn probe(config: LocalConfig, scratch: &Path) -> Self {
        let mut sandbox = Self { config, unavailable: None };
        if sandbox.config.sandbox {
            sandbox.unavailable = sandbox.try_run(scratch).err();
        }
        sandbox
    }

    fn try_run(&self, scratch: &Path) -> Result<(), String> {
        let work = scratch.join("sandbox-probe");
        std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let probe = ExecSpec::probe();
        let argv = self.argv(&probe, &work);
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        let _ = std::fs::remove_dir_all(&work);
        match out {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("{} is not installed (Debian: apt-get install bubblewrap)", argv[0]))
            }
            Err(e) => Err(format!("cannot run {}: {e}", argv[0])),
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!("bubblewrap cannot make a sandbox here: {}", String::from_utf8_lossy(&o.stderr).trim())),
        }
    }

    /// Whether jobs run sandboxed (`Ok(true)`), unsandboxed by the operator's choice
    /// (`Ok(false)`), or cannot run at all (`Err`, saying why).
    pub fn state(&self) -> Result<bool, &str> {
        match (&self.config.sandbox, &self.unavailable) {
            (false, _) => Ok(false),
            (true, None) => Ok(true),
            (true, Some(why)) => Err(why),
        }
    }

    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    /// The command line that runs `spec` in `work`: bwrap's, or the job's own command through
    /// `env -i` when the operator turned the sandbox off.
    pub fn argv(&self, spec: &ExecSpec, work: &Path) -> Vec<String> {
        if !self.config.sandbox {
            return Self::unsandboxed(spec, work);
        }
        let mut a: Vec<String> = Vec::with_capacity(64 + 3 * spec.env.len() + spec.command.len());
        a.extend(["bwrap", "--unshare-all"].map(String::from));
        if spec.network && spec.sealed.is_none() {
            a.push("--share-net".into());
        }
        a.extend(["--die-with-parent", "--new-session", "--uid", JOB_UID, "--gid", JOB_UID].map(String::from));
        for d in SYSTEM_DIRS {
            a.extend(["--ro-bind-try".into(), d.into(), d.into()]);
        }
        a.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"].map(String::from));
        a.extend(["--bind".into(), work.display().to_string(), WORK.into(), "--chdir".into(), WORK.into()]);
        // After the private /tmp and the work directory, so that a directory under either (a
        // checkout in /work/…, say) is not hidden by them.
        let own = self.config.tenant_read_only.get(&spec.tenant).into_iter().flatten();
        for p in self.config.read_only.iter().chain(own) {
            let p = p.display().to_string();
            a.extend(["--ro-bind-try".into(), p.clone(), p]);
        }
        if let Some(dirs) = self.sealed_dirs(spec) {
            a.extend(["--ro-bind".into(), dirs.data.display().to_string(), SEALED_DATA.into()]);
            a.extend(["--bind".into(), dirs.out.display().to_string(), SEALED_OUT.into()]);
        }
        // bwrap builds the root on a tmpfs the job could otherwise write to.
        a.extend(["--remount-ro", "/"].map(String::from));
        a.push("--clearenv".into());
        for (k, v) in Self::environment(spec, WORK) {
            a.extend(["--setenv".into(), k, v]);
        }
        a.push("--".into());
        a.extend(spec.command.iter().cloned());
        a
    }

    /// A compute-to-data run's directories on this machine, when the spec names a run.
    pub fn sealed_dirs(&self, spec: &ExecSpec) -> Option<SealedDirs> {
        let (root, run) = (self.config.sealed_root.as_ref()?, spec.sealed.as_deref()?);
        Some(SealedDirs { data: root.join(run).join("data"), out: root.join(run).join("out") })
    }

    /// Why this sandbox cannot run `spec`, if it cannot: a compute-to-data job needs the sandbox
    /// (unsandboxed, it would see the whole machine), a staging root, and a plain run id.
    pub fn refuses(&self, spec: &ExecSpec) -> Option<String> {
        let run = spec.sealed.as_deref()?;
        if !self.config.sandbox {
            return Some("compute-to-data jobs run only sandboxed, and executor.local.sandbox is false".into());
        }
        if self.config.sealed_root.is_none() {
            return Some("this executor has no compute-to-data staging directory".into());
        }
        let plain = (1..=100).contains(&run.len()) && run.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let staged = self.sealed_dirs(spec).is_some_and(|d| d.data.is_dir() && d.out.is_dir());
        match (plain, staged) {
            (false, _) => Some(format!("not a compute-to-data run id: {run:?}")),
            (true, false) => Some(format!("compute-to-data run {run} is not staged on this machine")),
            (true, true) => None,
        }
    }

    fn unsandboxed(spec: &ExecSpec, work: &Path) -> Vec<String> {
        let mut a = vec!["env".to_string(), "-i".to_string()];
        for (k, v) in Self::environment(spec, &work.display().to_string()) {
            a.push(format!("{k}={v}"));
        }
        a.extend(spec.command.iter().cloned());
        a
    }

    /// The whole environment a job starts with: the documented variables, then its own (whose
    /// names may not start with `AIPLUS_`, so they cannot shadow ours).
    fn environment(spec: &ExecSpec, home: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_string(), SANDBOX_PATH.to_string()),
            ("HOME".to_string(), home.to_string()),
            ("TMPDIR".to_string(), "/tmp".to_string()),
            ("AIPLUS_JOB_ID".to_string(), spec.job_id.clone()),
            ("AIPLUS_ATTEMPT".to_string(), spec.attempt.to_string()),
        ];
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ExecSpec {
        let mut s = ExecSpec::probe();
        s.env.insert("GREETING".into(), "ni hao".into());
        s.command = vec!["sh".into(), "-c".into(), "echo $GREETING".into()];
        s
    }

    fn sandbox(config: LocalConfig) -> Sandbox {
        Sandbox { config, unavailable: None }
    }

    #[test]
    fn the_job_gets_no_network_unless_it_asks_and_never_the_data_dir() {
        let sb = sandbox(LocalConfig::default());
        let a = sb.argv(&spec(), Path::new("/data/jobs/j/1/work"));
        assert_eq!(a[0], "bwrap");
        assert!(a.contains(&"--unshare-all".to_string()) && !a.contains(&"--share-net".to_string()));
        let binds: Vec<&String> = a.windows(2).filter(|w| w[0] == "--bind").map(|w| &w[1]).collect();
        assert_eq!(binds, [&"/data/jobs/j/1/work".to_string()], "the work directory is the only writable bind");
        let mut net = spec();
        net.network = true;
        assert!(sb.argv(&net, Path::new("/w")).contains(&"--share-net".to_string()));
    }

    #[test]
    fn the_environment_is_fresh_and_the_command_comes_last() {
        let sb = sandbox(LocalConfig::default());
        let a = sb.argv(&spec(), Path::new("/w"));
        let clear = a.iter().position(|x| x == "--clearenv").unwrap();
        let set: Vec<&str> = a[clear..].windows(3).filter(|w| w[0] == "--setenv").map(|w| w[1].as_str()).collect();
        assert_eq!(set, ["PATH", "HOME", "TMPDIR", "AIPLUS_JOB_ID", "AIPLUS_ATTEMPT", "GREETING"]);
        assert_eq!(&a[a.len() - 4..], ["--", "sh", "-c", "echo $GREETING"]);
        let off = sandbox(LocalConfig { sandbox: false, ..LocalConfig::default() });
        let a = off.argv(&spec(), Path::new("/w"));
        assert_eq!(&a[..2], ["env", "-i"]);
        assert!(a.contains(&"GREETING=ni hao".to_string()));
    }

    #[test]
    fn read_only_directories_are_bound_after_the_private_tmp() {
        let sb = sandbox(LocalConfig { read_only: vec!["/tmp/shared".into()], ..LocalConfig::default() });
        let a = sb.argv(&spec(), Path::new("/w"));
        let tmpfs = a.iter().position(|x| x == "--tmpfs").unwrap();
        let shared = a.iter().position(|x| x == "/tmp/shared").unwrap();
        assert!(shared > tmpfs, "{a:?}");
        // A directory under /work (a checkout there, say) is not hidden by the job's own /work.
        let sb = sandbox(LocalConfig { read_only: vec!["/work/main/aiplus-data/models".into()], ..LocalConfig::default() });
        let a = sb.argv(&spec(), Path::new("/w"));
        let work = a.iter().position(|x| x == "/w").unwrap();
        let models = a.iter().position(|x| x == "/work/main/aiplus-data/models").unwrap();
        assert!(models > work, "{a:?}");
    }

    #[test]
    fn a_tenants_own_directories_are_shown_to_its_jobs_only() {
        let own = BTreeMap::from([("aiplus".to_string(), vec![PathBuf::from("/data/models")])]);
        let sb = sandbox(LocalConfig { tenant_read_only: own, ..LocalConfig::default() });
        let tenant = ExecSpec { tenant: "acme".into(), ..spec() };
        let theirs = sb.argv(&tenant, Path::new("/w"));
        assert!(!theirs.contains(&"/data/models".to_string()), "{theirs:?}");
        let platform = ExecSpec { tenant: "aiplus".into(), ..spec() };
        let ours = sb.argv(&platform, Path::new("/w"));
        let at = ours.iter().position(|x| x == "/data/models").unwrap();
        assert_eq!((ours[at - 1].as_str(), ours[at + 1].as_str()), ("--ro-bind-try", "/data/models"));
    }

    #[test]
    fn a_compute_to_data_job_sees_its_dataset_read_only_and_never_the_network() {
        let root = std::env::temp_dir().join(format!("aiplus-sealed-{}", std::process::id()));
        let config = LocalConfig { sealed_root: Some(root.clone()), ..LocalConfig::default() };
        let sb = sandbox(config.clone());
        let sealed = ExecSpec { sealed: Some("drun_1".into()), network: true, ..spec() };
        let a = sb.argv(&sealed, Path::new("/w"));
        assert!(!a.contains(&"--share-net".to_string()), "the network stays off even when the spec asks: {a:?}");
        let data = root.join("drun_1/data").display().to_string();
        let at = a.iter().position(|x| *x == data).unwrap();
        assert_eq!((a[at - 1].as_str(), a[at + 1].as_str()), ("--ro-bind", SEALED_DATA));
        let out = root.join("drun_1/out").display().to_string();
        let at = a.iter().position(|x| *x == out).unwrap();
        assert_eq!((a[at - 1].as_str(), a[at + 1].as_str()), ("--bind", SEALED_OUT));
        // Refused until staged, with a run id that cannot climb out of the root, and never unsandboxed.
        assert!(sb.refuses(&sealed).unwrap().contains("not staged"));
        std::fs::create_dir_all(root.join("drun_1/data")).unwrap();
        std::fs::create_dir_all(root.join("drun_1/out")).unwrap();
        assert_eq!(sb.refuses(&sealed), None);
        assert!(sb.refuses(&ExecSpec { sealed: Some("../x".into()), ..spec() }).unwrap().contains("not a compute-to-data run id"));
        let off = sandbox(LocalConfig { sandbox: false, ..config });
        assert!(off.refuses(&sealed).unwrap().contains("only sandboxed"));
        assert!(sandbox(LocalConfig::default()).refuses(&sealed).unwrap().contains("no compute-to-data staging"));
        assert_eq!(sb.refuses(&spec()), None, "an ordinary job is not concerned");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bad_settings_name_their_field() {
        let bad = LocalConfig { output_limit_mib: 0, ..LocalConfig::default() };
        assert!(bad.validate().unwrap_err().starts_with("executor.local.output_limit_mib"));
        let hides = LocalConfig { read_only: vec!["/".into()], ..LocalConfig::default() };
        assert!(hides.validate().unwrap_err().contains("would hide"));
        let bad = LocalConfig { read_only: vec!["/opt/../data".into()], ..LocalConfig::default() };
        assert!(bad.validate().unwrap_err().starts_with("executor.local.read_only[0]"));
    }
}
