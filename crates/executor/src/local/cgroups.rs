//! Per-job cgroups, where the OS lets aiplus create them (v1 `memory` and `cpu` controllers, or
//! v2): the job gets a memory limit of its memory and a CFS quota of its CPU. The wrapper joins
//! the group before it starts the sandbox, and the sandbox shows `/sys` read-only, so the job
//! cannot leave it.

use std::path::{Path, PathBuf};

use crate::ExecSpec;

/// Where this machine lets us put per-job cgroups.
#[derive(Clone, Debug)]
pub(super) enum Cgroups {
    V1 { memory: PathBuf, cpu: PathBuf },
    V2 { base: PathBuf },
}

impl Cgroups {
    pub(super) fn detect() -> Option<Self> {
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
        if v2.exists() {
            let base = PathBuf::from("/sys/fs/cgroup/aiplus");
            return std::fs::create_dir_all(&base).ok().map(|_| Cgroups::V2 { base });
        }
        let memory = PathBuf::from("/sys/fs/cgroup/memory/aiplus");
        let cpu = PathBuf::from("/sys/fs/cgroup/cpu/aiplus");
        (std::fs::create_dir_all(&memory).is_ok() && std::fs::create_dir_all(&cpu).is_ok()).then_some(Cgroups::V1 { memory, cpu })
    }

    /// Creates the job's groups with its limits; returns the `cgroup.procs` files to join.
    pub(super) fn create(&self, name: &str, spec: &ExecSpec) -> std::io::Result<Vec<PathBuf>> {
        let bytes = u64::from(spec.memory_mib.max(16)) * 1024 * 1024;
        // CFS: quota per 100 ms period; a CPU in thousandths maps to quota = milli × 100 µs.
        let quota_us = u64::from(spec.cpu_milli.max(10)) * 100;
        match self {
            Cgroups::V1 { memory, cpu } => {
                let m = memory.join(name);
                let c = cpu.join(name);
                std::fs::create_dir_all(&m)?;
                std::fs::create_dir_all(&c)?;
                std::fs::write(m.join("memory.limit_in_bytes"), bytes.to_string())?;
                std::fs::write(c.join("cpu.cfs_period_us"), "100000")?;
                std::fs::write(c.join("cpu.cfs_quota_us"), quota_us.to_string())?;
                Ok(vec![m.join("cgroup.procs"), c.join("cgroup.procs")])
            }
            Cgroups::V2 { base } => {
                let g = base.join(name);
                std::fs::create_dir_all(&g)?;
                std::fs::write(g.join("memory.max"), bytes.to_string())?;
                std::fs::write(g.join("cpu.max"), format!("{quota_us} 100000"))?;
                Ok(vec![g.join("cgroup.procs")])
            }
        }
    }

    /// Removes the job's groups once they are empty (best effort: a busy group stays).
    pub(super) fn remove(&self, name: &str) {
        let dirs = match self {
            Cgroups::V1 { memory, cpu } => vec![memory.join(name), cpu.join(name)],
            Cgroups::V2 { base } => vec![base.join(name)],
        };
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}
