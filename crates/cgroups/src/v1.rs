//! cgroup v1: one directory tree per controller group, one file per knob.
//!
//! In v1 every hierarchy is a separate mount with its own tree, so "a cgroup" for a container
//! is really a *set* of directories, one per hierarchy used, with the same relative name:
//! `/sys/fs/cgroup/memory/…/isolab/c1`, `/sys/fs/cgroup/pids/…/isolab/c1`, … A process must be
//! written into `cgroup.procs` of each of them. The knobs used here:
//!
//! * `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` (memory+swap; only with swap
//!   accounting), and for stats `memory.usage_in_bytes`, `memory.max_usage_in_bytes`,
//!   `memory.oom_control` (`oom_kill N`).
//! * `cpu.cfs_period_us` / `cpu.cfs_quota_us` (bandwidth), `cpu.shares`, `cpu.stat`.
//! * `cpuacct.usage` (ns) and friends.
//! * `cpuset.cpus` / `cpuset.mems`: **empty in a new v1 cpuset cgroup**, and a task cannot join
//!   a cpuset with no CPUs (ENOSPC). The values are copied from the parent first (v2 has
//!   "effective" masks and needs no copying).
//! * `pids.max`, `pids.current`, `pids.peak`.
//! * `blkio.weight` (CFQ, gone since 5.0) or `blkio.bfq.weight` (BFQ scheduler).
//! * `freezer.state`: write `FROZEN`, and the state reads `FREEZING` until every task has
//!   stopped; `THAWED` resumes. Frozen tasks do not act on SIGKILL until thawed.

use std::path::Path;

use crate::cgroup::Backoff;
use crate::detect::{Controller, ControllerSet, V1Hierarchy};
use crate::error::CgroupError;
use crate::fsio::{self, put, NumBuf};
use crate::limits::{CpuQuota, Resources};
use crate::stats::{keyed, CgroupStats};

/// Writes the limits of `res` that belong to `h`'s controllers into the new directory `dir`.
/// Cpuset masks are always filled in when the hierarchy has cpuset (else no task could join).
pub(crate) fn apply_limits(
    dir: &Path,
    h: &V1Hierarchy,
    res: &Resources,
) -> Result<(), CgroupError> {
    let ctl = h.controllers;
    if ctl.contains(Controller::Cpuset) {
        prepare_cpuset(dir, h, res)?;
    }
    if ctl.contains(Controller::Memory) {
        if let Some(m) = res.memory_limit_bytes {
            put(dir, "memory.limit_in_bytes", NumBuf::u64(m).as_bytes())?;
        }
        if let Some(total) = res.memory_swap_limit_bytes {
            // Must follow the memory limit: the kernel keeps memsw >= limit at all times.
            if fsio::exists(dir, "memory.memsw.limit_in_bytes") {
                put(
                    dir,
                    "memory.memsw.limit_in_bytes",
                    NumBuf::i64(total).as_bytes(),
                )?;
            } else if total != -1 {
                return Err(CgroupError::FileMissing {
                    needed_for: "--memory-swap",
                    path: dir.join("memory.memsw.limit_in_bytes"),
                    hint: "swap accounting is off: boot with swapaccount=1, or drop --memory-swap",
                });
            }
        }
    }
    if ctl.contains(Controller::Cpu) {
        if let Some(sh) = res.cpu_shares {
            put(dir, "cpu.shares", NumBuf::u64(sh).as_bytes())?;
        }
        if let Some(q) = res.cpu_quota {
            // A new cgroup already has the default period; skip the write then.
            if q.period_us != CpuQuota::DEFAULT_PERIOD_US {
                put(
                    dir,
                    "cpu.cfs_period_us",
                    NumBuf::u64(q.period_us).as_bytes(),
                )?;
            }
            put(dir, "cpu.cfs_quota_us", NumBuf::u64(q.quota_us).as_bytes())?;
        }
    }
    if ctl.contains(Controller::Pids) {
        if let Some(p) = res.pids_limit {
            put(dir, "pids.max", NumBuf::u64(p).as_bytes())?;
        }
    }
    if ctl.contains(Controller::Devices) {
        if let Some(rules) = &res.devices {
            apply_devices(dir, rules)?;
        }
    }
    if ctl.contains(Controller::Io) {
        if let Some(w) = res.io_weight {
            let file = ["blkio.weight", "blkio.bfq.weight"]
                .into_iter()
                .find(|f| fsio::exists(dir, f))
                .ok_or_else(|| CgroupError::FileMissing {
                    needed_for: "--blkio-weight",
                    path: dir.join("blkio.weight"),
                    hint: "no proportional I/O policy: select the bfq I/O scheduler, or drop the option",
                })?;
            put(dir, file, NumBuf::u64(u64::from(w)).as_bytes())?;
        }
    }
    Ok(())
}

/// Replays `rules` into `devices.allow` / `devices.deny`, one line per write(2) (the kernel
/// parses one rule per write) on the two files opened once. A leading deny-all (`a`) resets the
/// list to "nothing allowed".
fn apply_devices(dir: &Path, rules: &[crate::devices::DeviceRule]) -> Result<(), CgroupError> {
    use std::io::Write;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join(name))
            .map_err(|e| CgroupError::io("open", dir.join(name), e))
    };
    let mut allow = open("devices.allow")?;
    let mut deny = open("devices.deny")?;
    for rule in rules {
        let (file, name) = if rule.allow {
            (&mut allow, "devices.allow")
        } else {
            (&mut deny, "devices.deny")
        };
        let line = rule.v1_line();
        file.write_all(line.as_bytes())
            .map_err(|source| CgroupError::Write {
                path: dir.join(name),
                value: line,
                source,
            })?;
    }
    Ok(())
}

/// Fills `cpuset.cpus`/`cpuset.mems` of the new `dir`: the requested values, or the parent's.
/// A v1 cpuset child starts empty, and so does every level between the caller's own cgroup
/// and the parent (`isolab`, or an OCI `cgroupsPath` like `a/b`): each empty level is filled
/// from the one above it the first time it is found so.
fn prepare_cpuset(dir: &Path, h: &V1Hierarchy, res: &Resources) -> Result<(), CgroupError> {
    for (file, wanted) in [
        ("cpuset.cpus", res.cpuset_cpus.as_deref()),
        ("cpuset.mems", res.cpuset_mems.as_deref()),
    ] {
        // The parent must allow at least what the child asks for, so fill it in any case.
        let inherited = fill_levels(h, file)?;
        put(dir, file, wanted.unwrap_or(&inherited).as_bytes())?;
    }
    Ok(())
}

/// Walks from the caller's cgroup down to the parent, filling empty `file`s from above;
/// returns the parent's value.
fn fill_levels(h: &V1Hierarchy, file: &str) -> Result<String, CgroupError> {
    let mut buf = [0u8; 256];
    let mut value = read_trimmed(&h.own_dir, file, &mut buf)?.to_owned();
    let below = h
        .isolab_dir
        .strip_prefix(&h.own_dir)
        .unwrap_or(Path::new(""));
    let mut level = h.own_dir.clone();
    for part in below.components() {
        level.push(part);
        let mut buf = [0u8; 256];
        let current = read_trimmed(&level, file, &mut buf)?;
        if current.is_empty() {
            put(&level, file, value.as_bytes())?;
        } else {
            value = current.to_owned();
        }
    }
    Ok(value)
}

fn read_trimmed<'a>(dir: &Path, file: &str, buf: &'a mut [u8]) -> Result<&'a str, CgroupError> {
    fsio::read_file(dir, file, buf)
        .map(str::trim)
        .map_err(|e| CgroupError::io("read", dir.join(file), e))
}

/// Adds what the hierarchy of `dir` knows to `stats`.
pub(crate) fn read_stats(
    dir: &Path,
    ctl: ControllerSet,
    stats: &mut CgroupStats,
) -> Result<(), CgroupError> {
    if ctl.contains(Controller::Memory) {
        stats.memory_current_bytes = fsio::get_u64(dir, "memory.usage_in_bytes")?;
        stats.memory_peak_bytes = fsio::get_u64(dir, "memory.max_usage_in_bytes")?;
        fsio::with_text(dir, "memory.oom_control", |t| {
            stats.oom_kills = keyed(t, "oom_kill");
        })?;
    }
    if ctl.contains(Controller::Cpuacct) {
        let us = |ns: Option<u64>| ns.map(|n| n / 1000);
        stats.cpu_usage_us = us(fsio::get_u64(dir, "cpuacct.usage")?);
        stats.cpu_user_us = us(fsio::get_u64(dir, "cpuacct.usage_user")?);
        stats.cpu_system_us = us(fsio::get_u64(dir, "cpuacct.usage_sys")?);
        if stats.cpu_user_us.is_none() {
            // Older kernels only have the tick-granular split, in USER_HZ units.
            let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()
                .filter(|&h| h > 0)
                .unwrap_or(100) as u64;
            fsio::with_text(dir, "cpuacct.stat", |t| {
                let to_us = |ticks: u64| ticks.saturating_mul(1_000_000) / hz;
                stats.cpu_user_us = keyed(t, "user").map(to_us);
                stats.cpu_system_us = keyed(t, "system").map(to_us);
            })?;
        }
    }
    if ctl.contains(Controller::Cpu) {
        fsio::with_text(dir, "cpu.stat", |t| {
            stats.cpu_periods = keyed(t, "nr_periods");
            stats.cpu_throttled_periods = keyed(t, "nr_throttled");
            stats.cpu_throttled_us = keyed(t, "throttled_time").map(|ns| ns / 1000);
        })?;
    }
    if ctl.contains(Controller::Pids) {
        stats.pids_current = fsio::get_u64(dir, "pids.current")?;
        stats.pids_peak = fsio::get_u64(dir, "pids.peak")?;
    }
    Ok(())
}

/// How long freezing may take before we give up (tasks in uninterruptible sleep delay it).
const FREEZE_WAIT_MS: u64 = 2_000;

/// Freezes the hierarchy of `dir` and waits until the kernel reports `FROZEN`.
pub(crate) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    put(dir, "freezer.state", b"FROZEN")?;
    let mut backoff = Backoff::new(FREEZE_WAIT_MS);
    loop {
        let mut buf = [0u8; 32];
        if read_trimmed(dir, "freezer.state", &mut buf)? == "FROZEN" {
            return Ok(());
        }
        if !backoff.wait() {
            return Err(CgroupError::FreezeTimeout {
                path: dir.join("freezer.state"),
                waited_ms: FREEZE_WAIT_MS,
            });
        }
        // Re-asserting FROZEN is harmless and nudges tasks that raced with the first write.
        put(dir, "freezer.state", b"FROZEN")?;
    }
}

/// Thaws the hierarchy of `dir`.
pub(crate) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    put(dir, "freezer.state", b"THAWED")
}

/// Reads `freezer.state` (`THAWED`, `FREEZING`, `FROZEN`) — for tests and `isolab ps`.
pub(crate) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let mut buf = [0u8; 32];
    Ok(read_trimmed(dir, "freezer.state", &mut buf)? == "FROZEN")
}
