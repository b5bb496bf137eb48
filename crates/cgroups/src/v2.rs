//! cgroup v2: one tree, controllers handed down explicitly.
//!
//! In v2 a cgroup is a single directory. A controller is usable in a cgroup only if its parent
//! lists it in `cgroup.subtree_control`, and a parent can only enable what its own
//! `cgroup.controllers` offers. So creating `<parent>/isolab/<name>` with memory and pids limits
//! means writing `+memory +pids` to `<parent>/cgroup.subtree_control` and then to
//! `<parent>/isolab/cgroup.subtree_control`.
//!
//! The **no-internal-processes rule**: a non-root cgroup that has processes cannot enable
//! controllers for children (the write fails with EBUSY) — resources would otherwise be split
//! between the processes and the child cgroups with no clear policy. A shell sitting in
//! `/user.slice/…/session.scope` hits this, so we then fall back to the root cgroup as the
//! parent (the root is exempt), and remember that choice.
//!
//! Files used: `memory.max`, `memory.swap.max` (swap alone, not memory+swap), `cpu.max`
//! (`"<quota> <period>"` or `"max <period>"`), `cpu.weight` (1..10000), `cpuset.cpus`/`.mems`,
//! `pids.max`, `io.weight` (`default N`) or `io.bfq.weight`; `cgroup.freeze` + the `frozen`
//! key of `cgroup.events` to pause; `cgroup.kill` (5.14+) to SIGKILL everything atomically.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::cgroup::{mkdir_ignore_exists, Backoff};
use crate::detect::{Controller, ControllerSet, V2Hierarchy};
use crate::error::CgroupError;
use crate::fsio::{self, put, NumBuf};
use crate::limits::{cpu_shares_to_weight, io_weight_to_v2, Resources};
use crate::stats::{keyed, CgroupStats};

/// Writes `+a +b ...` for `set` into `dir/cgroup.subtree_control` in one write.
fn enable(dir: &Path, set: ControllerSet) -> Result<(), CgroupError> {
    let mut line = String::with_capacity(48);
    for c in set.iter().filter_map(Controller::v2_name) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push('+');
        line.push_str(c);
    }
    put(dir, "cgroup.subtree_control", line.as_bytes())
}

/// Makes sure `<parent>/isolab` exists and hands `wanted` down to its children; returns it.
/// Fast path: one read of `isolab/cgroup.subtree_control` when an earlier create set it up.
pub(crate) fn ensure_isolab(
    v2: &V2Hierarchy,
    wanted: ControllerSet,
) -> Result<PathBuf, CgroupError> {
    loop {
        let (parent, _) = v2.parent();
        let isolab = parent.join(&v2.group);
        let mut buf = [0u8; 128];
        if let Ok(s) = fsio::read_file(&isolab, "cgroup.subtree_control", &mut buf) {
            if ControllerSet::from_v2_list(s).contains_all(wanted) {
                return Ok(isolab);
            }
        }
        if !wanted.is_empty() {
            match enable(parent, wanted) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && parent != v2.mount_point => {
                    // The caller's cgroup holds processes: nest under the root instead.
                    v2.parent_is_root.store(true, Ordering::Relaxed);
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        // One level (`isolab`) or several (an OCI `cgroupsPath` like `/a/b/c`): each level
        // must hand the controllers down to the next.
        let mut dir = parent.to_path_buf();
        for level in v2.group.components() {
            dir.push(level);
            mkdir_ignore_exists(&dir)?;
            if !wanted.is_empty() {
                enable(&dir, wanted)?;
            }
        }
        return Ok(isolab);
    }
}

/// Writes the limits of `res` that belong to the controllers `ctl` into the new directory
/// `dir` (on a hybrid host, v1 hierarchies serve the others).
pub(crate) fn apply_limits(
    dir: &Path,
    ctl: ControllerSet,
    res: &Resources,
) -> Result<(), CgroupError> {
    if ctl.contains(Controller::Memory) {
        apply_memory(dir, res)?;
    }
    if ctl.contains(Controller::Cpu) {
        apply_cpu(dir, res)?;
    }
    if ctl.contains(Controller::Cpuset) {
        if let Some(c) = &res.cpuset_cpus {
            put(dir, "cpuset.cpus", c.as_bytes())?;
        }
        if let Some(m) = &res.cpuset_mems {
            put(dir, "cpuset.mems", m.as_bytes())?;
        }
    }
    if ctl.contains(Controller::Pids) {
        if let Some(p) = res.pids_limit {
            put(dir, "pids.max", NumBuf::u64(p).as_bytes())?;
        }
    }
    if ctl.contains(Controller::Io) {
        apply_io(dir, res)?;
    }
    Ok(())
}

fn apply_memory(dir: &Path, res: &Resources) -> Result<(), CgroupError> {
    if let Some(m) = res.memory_limit_bytes {
        put(dir, "memory.max", NumBuf::u64(m).as_bytes())?;
    }
    if let Some(total) = res.memory_swap_limit_bytes {
        if !fsio::exists(dir, "memory.swap.max") {
            if total != -1 {
                return Err(CgroupError::FileMissing {
                    needed_for: "--memory-swap",
                    path: dir.join("memory.swap.max"),
                    hint: "the kernel was built without swap accounting; drop --memory-swap",
                });
            }
        } else if total == -1 {
            put(dir, "memory.swap.max", b"max")?;
        } else {
            // validate() guarantees total >= memory and that memory is set.
            let swap = (total as u64).saturating_sub(res.memory_limit_bytes.unwrap_or(0));
            put(dir, "memory.swap.max", NumBuf::u64(swap).as_bytes())?;
        }
    }
    Ok(())
}

fn apply_cpu(dir: &Path, res: &Resources) -> Result<(), CgroupError> {
    if let Some(q) = res.cpu_quota {
        let mut line = [0u8; 48];
        let a = NumBuf::u64(q.quota_us);
        let b = NumBuf::u64(q.period_us);
        let (qa, pb) = (a.as_bytes(), b.as_bytes());
        line[..qa.len()].copy_from_slice(qa);
        line[qa.len()] = b' ';
        line[qa.len() + 1..qa.len() + 1 + pb.len()].copy_from_slice(pb);
        put(dir, "cpu.max", &line[..qa.len() + 1 + pb.len()])?;
    }
    if let Some(sh) = res.cpu_shares {
        put(
            dir,
            "cpu.weight",
            NumBuf::u64(cpu_shares_to_weight(sh)).as_bytes(),
        )?;
    }
    Ok(())
}

fn apply_io(dir: &Path, res: &Resources) -> Result<(), CgroupError> {
    if let Some(w) = res.io_weight {
        if fsio::exists(dir, "io.weight") {
            let n = NumBuf::u64(io_weight_to_v2(w));
            let mut line = [0u8; 40];
            line[..8].copy_from_slice(b"default ");
            line[8..8 + n.as_bytes().len()].copy_from_slice(n.as_bytes());
            put(dir, "io.weight", &line[..8 + n.as_bytes().len()])?;
        } else if fsio::exists(dir, "io.bfq.weight") {
            // BFQ takes the docker scale (1..1000) directly.
            put(dir, "io.bfq.weight", NumBuf::u64(u64::from(w)).as_bytes())?;
        } else {
            return Err(CgroupError::FileMissing {
                needed_for: "--blkio-weight",
                path: dir.join("io.weight"),
                hint: "no io.weight (iocost) or io.bfq.weight (bfq scheduler); drop the option",
            });
        }
    }
    Ok(())
}

/// Reads every statistic v2 keeps for `dir` into `stats`.
pub(crate) fn read_stats(dir: &Path, stats: &mut CgroupStats) -> Result<(), CgroupError> {
    stats.memory_current_bytes = fsio::get_u64(dir, "memory.current")?;
    stats.memory_peak_bytes = fsio::get_u64(dir, "memory.peak")?;
    fsio::with_text(dir, "memory.events", |t| {
        stats.oom_kills = keyed(t, "oom_kill");
    })?;
    fsio::with_text(dir, "cpu.stat", |t| {
        stats.cpu_usage_us = keyed(t, "usage_usec");
        stats.cpu_user_us = keyed(t, "user_usec");
        stats.cpu_system_us = keyed(t, "system_usec");
        stats.cpu_periods = keyed(t, "nr_periods");
        stats.cpu_throttled_periods = keyed(t, "nr_throttled");
        stats.cpu_throttled_us = keyed(t, "throttled_usec");
    })?;
    stats.pids_current = fsio::get_u64(dir, "pids.current")?;
    stats.pids_peak = fsio::get_u64(dir, "pids.peak")?;
    Ok(())
}

const FREEZE_WAIT_MS: u64 = 2_000;

fn require_freeze(dir: &Path) -> Result<(), CgroupError> {
    if fsio::exists(dir, "cgroup.freeze") {
        Ok(())
    } else {
        Err(CgroupError::FileMissing {
            needed_for: "freeze",
            path: dir.join("cgroup.freeze"),
            hint: "the cgroup v2 freezer needs Linux 5.2 or later",
        })
    }
}

/// Whether `cgroup.events` says `frozen 1`.
pub(crate) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let mut frozen = false;
    fsio::with_text(dir, "cgroup.events", |t| {
        frozen = keyed(t, "frozen") == Some(1)
    })?;
    Ok(frozen)
}

/// Freezes `dir` and waits until `cgroup.events` reports `frozen 1`.
pub(crate) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    require_freeze(dir)?;
    put(dir, "cgroup.freeze", b"1")?;
    let mut backoff = Backoff::new(FREEZE_WAIT_MS);
    while !is_frozen(dir)? {
        if !backoff.wait() {
            return Err(CgroupError::FreezeTimeout {
                path: dir.join("cgroup.events"),
                waited_ms: FREEZE_WAIT_MS,
            });
        }
    }
    Ok(())
}

/// Thaws `dir`.
pub(crate) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    require_freeze(dir)?;
    put(dir, "cgroup.freeze", b"0")
}
