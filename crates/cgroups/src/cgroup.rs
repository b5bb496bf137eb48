//! The lifecycle of one container's cgroup: create, attach, freeze, measure, kill, remove.
//!
//! A [`Cgroup`] owns one directory per hierarchy it uses (several on v1/hybrid, one on v2),
//! all named `<caller's cgroup>/isolab/<name>`. Creating it is `mkdir` + one write per limit;
//! attaching a process is writing its pid to `cgroup.procs` in each directory; removing it is
//! `rmdir` — which the kernel refuses (EBUSY) while any task is inside, and on v1 the memory
//! controller can keep refusing for a moment after the last task exited while it uncharges
//! pages, so removal retries briefly with exponential backoff.
//!
//! Only the directories this value created are removed, and `Drop` removes them (killing any
//! process still inside) unless the value came from [`CgroupRoot::open`] or the caller asked to
//! keep it — so an error or a panic between create and destroy leaks nothing.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::detect::{Backend, CgroupRoot, Controller, ControllerSet, V2Hierarchy};
use crate::error::CgroupError;
use crate::fsio::{self, put, NumBuf};
use crate::limits::Resources;
use crate::stats::CgroupStats;
use crate::{v1, v2};

/// Exponential backoff with a deadline: 50 µs, 100 µs, … capped at 10 ms per sleep.
#[derive(Debug)]
pub(crate) struct Backoff {
    deadline: Instant,
    delay: Duration,
}

impl Backoff {
    pub(crate) fn new(max_ms: u64) -> Self {
        Backoff {
            deadline: Instant::now() + Duration::from_millis(max_ms),
            delay: Duration::from_micros(50),
        }
    }

    /// Sleeps for the next step; `false` (without sleeping) once the deadline has passed.
    pub(crate) fn wait(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        std::thread::sleep(self.delay.min(self.deadline - now));
        self.delay = (self.delay * 2).min(Duration::from_millis(10));
        true
    }
}

/// `mkdir`, treating "already exists" as success.
pub(crate) fn mkdir_ignore_exists(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CgroupError::io("mkdir", path.to_path_buf(), e)),
    }
}

/// How long `kill_all` waits for SIGKILLed processes to leave.
const KILL_WAIT_MS: u64 = 2_000;
/// How long `rmdir` retries EBUSY (v1 memory cgroups uncharging after the last exit).
const RMDIR_WAIT_MS: u64 = 1_000;
/// `mkdir` of the child races with another container's `rmdir` of the shared `isolab` dir.
const MKDIR_ATTEMPTS: usize = 8;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A v1 hierarchy directory and the controllers of that hierarchy.
    V1(ControllerSet),
    /// The v2 directory.
    V2,
}

#[derive(Debug)]
struct Dir {
    path: PathBuf,
    kind: Kind,
}

/// One container's cgroup across every hierarchy it uses.
#[derive(Debug)]
pub struct Cgroup {
    name: String,
    dirs: Vec<Dir>,
    destroy_on_drop: bool,
}

/// A name is one path component we are willing to `rmdir` later.
fn validate_name(name: &str) -> Result<(), CgroupError> {
    let bad = |reason| CgroupError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    // A directory name (podman's `libpod-<64 hex digits>` is 71 characters).
    if name.is_empty() || name.len() > 255 {
        return Err(bad("must be 1 to 255 characters"));
    }
    if name.starts_with('.') {
        return Err(bad("must not start with '.'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(bad("use only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// `mkdir dir`, creating the shared `isolab` parent with `make_parent` if it is missing.
fn mkdir_child(
    dir: &Path,
    mut make_parent: impl FnMut() -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    for _ in 0..MKDIR_ATTEMPTS {
        match std::fs::create_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(CgroupError::AlreadyExists {
                    path: dir.to_path_buf(),
                })
            }
            // The parent is missing: first use, or another container just removed it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => make_parent()?,
            Err(e) => return Err(CgroupError::io("mkdir", dir.to_path_buf(), e)),
        }
    }
    Err(CgroupError::io(
        "mkdir",
        dir.to_path_buf(),
        io::Error::other("parent directory kept disappearing (concurrent removal)"),
    ))
}

/// `rmdir`, retrying EBUSY with backoff for up to `wait_ms`; a missing directory is success.
fn rmdir_retry(dir: &Path, wait_ms: u64) -> Result<(), CgroupError> {
    let mut backoff: Option<Backoff> = None;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if !backoff.get_or_insert_with(|| Backoff::new(wait_ms)).wait() {
                    return Err(CgroupError::io("rmdir", dir.to_path_buf(), e));
                }
            }
            Err(e) => return Err(CgroupError::io("rmdir", dir.to_path_buf(), e)),
        }
    }
}

/// Records the controllers `res` needs, with the option that needs each (for error messages).
fn required(res: &Resources) -> [(Controller, Option<&'static str>); 6] {
    let mem = if res.memory_limit_bytes.is_some() {
        Some("--memory")
    } else if res.memory_swap_limit_bytes.is_some() {
        Some("--memory-swap")
    } else {
        None
    };
    let cpu = if res.cpu_quota.is_some() {
        Some("--cpus")
    } else if res.cpu_shares.is_some() {
        Some("--cpu-shares")
    } else {
        None
    };
    let cpuset = if res.cpuset_cpus.is_some() {
        Some("--cpuset-cpus")
    } else if res.cpuset_mems.is_some() {
        Some("--cpuset-mems")
    } else {
        None
    };
    [
        (Controller::Memory, mem),
        (Controller::Cpu, cpu),
        (Controller::Cpuset, cpuset),
        (Controller::Pids, res.pids_limit.map(|_| "--pids-limit")),
        (Controller::Io, res.io_weight.map(|_| "--blkio-weight")),
        (
            Controller::Devices,
            res.devices.as_ref().map(|_| "device rules"),
        ),
    ]
}

/// Controllers used for statistics and pause/resume whenever the host has them. `cpu` is not
/// among them: its only statistic is throttling, which stays zero without a quota, and on v1 it
/// would cost a separate hierarchy (mkdir, attach, rmdir: ~100 µs here) on every start.
const OPTIONAL: [Controller; 4] = [
    Controller::Memory,
    Controller::Pids,
    Controller::Cpuacct,
    Controller::Freezer,
];

fn controller_name(c: Controller, backend: Option<Backend>) -> &'static str {
    match backend {
        Some(Backend::V2) => c.v2_name().unwrap_or(c.v1_name()),
        _ => c.v1_name(),
    }
}

/// The real v2 controllers of `on_v2` to enable in `subtree_control` (not the core
/// `cpu.stat`/freeze files); one a limit needs but the parent does not offer is an error.
fn v2_controllers_to_enable(
    v2h: &V2Hierarchy,
    on_v2: ControllerSet,
    res: &Resources,
) -> Result<ControllerSet, CgroupError> {
    let (_, available) = v2h.parent();
    let mut wanted = ControllerSet::EMPTY;
    for c in on_v2.iter().filter(|c| c.v2_name().is_some()) {
        if available.contains(c) {
            wanted.insert(c);
        } else if let Some((_, Some(why))) = required(res).into_iter().find(|(rc, _)| *rc == c) {
            return Err(CgroupError::ControllerMissing {
                controller: controller_name(c, Some(Backend::V2)),
                needed_for: why,
            });
        }
    }
    Ok(wanted)
}

/// `mkdir <isolab>/<name>` on v2, re-run on ENOENT: another container may have removed the
/// shared parent between `ensure_isolab` and the `mkdir`.
fn mkdir_v2(v2h: &V2Hierarchy, wanted: ControllerSet, name: &str) -> Result<PathBuf, CgroupError> {
    let mut attempts = 0;
    loop {
        let dir = v2::ensure_isolab(v2h, wanted)?.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(CgroupError::AlreadyExists { path: dir })
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && attempts < MKDIR_ATTEMPTS => {
                attempts += 1;
            }
            Err(e) => return Err(CgroupError::io("mkdir", dir, e)),
        }
    }
}

impl CgroupRoot {
    /// Creates `<caller's cgroup>/isolab/<name>` in every hierarchy needed by `res` or used
    /// for statistics and freezing, and writes the limits. Nothing is attached yet.
    ///
    /// Errors before any `mkdir` for bad names, inconsistent limits and controllers the host
    /// lacks; on a later error the directories already made are removed again.
    pub fn create(&self, name: &str, res: &Resources) -> Result<Cgroup, CgroupError> {
        validate_name(name)?;
        res.validate()?;
        let used = self.controllers_for(res)?;
        // Dropped on any error below, which removes the directories already made.
        let mut cg = Cgroup {
            name: name.to_owned(),
            dirs: Vec::with_capacity(self.v1.len() + 1),
            destroy_on_drop: true,
        };
        self.create_v1(&mut cg, used, res)?;
        if let Some(v2h) = &self.v2 {
            self.create_v2(&mut cg, v2h, used, res)?;
        }
        Ok(cg)
    }

    /// The controllers the cgroup will use: every one a limit in `res` needs (an error naming
    /// the limit if the host lacks it) and the optional ones kept for statistics and freezing.
    fn controllers_for(&self, res: &Resources) -> Result<ControllerSet, CgroupError> {
        let mut used = ControllerSet::EMPTY;
        for (c, why) in required(res) {
            if let Some(why) = why {
                if self.backend(c).is_none() {
                    return Err(CgroupError::ControllerMissing {
                        controller: controller_name(c, None),
                        needed_for: why,
                    });
                }
                used.insert(c);
            }
        }
        for c in OPTIONAL {
            if self.backend(c).is_some() {
                used.insert(c);
            }
        }
        Ok(used)
    }

    /// One directory in each v1 hierarchy that holds a used controller, with its limits.
    fn create_v1(
        &self,
        cg: &mut Cgroup,
        used: ControllerSet,
        res: &Resources,
    ) -> Result<(), CgroupError> {
        for h in &self.v1 {
            if h.controllers.intersect(used).is_empty() {
                continue;
            }
            let dir = h.isolab_dir.join(&cg.name);
            mkdir_child(&dir, || {
                std::fs::create_dir_all(&h.isolab_dir)
                    .map_err(|e| CgroupError::io("mkdir", h.isolab_dir.clone(), e))
            })?;
            cg.dirs.push(Dir {
                path: dir,
                kind: Kind::V1(h.controllers),
            });
            let dir = &cg.dirs[cg.dirs.len() - 1].path;
            v1::apply_limits(dir, h, res)?;
        }
        Ok(())
    }

    /// The v2 directory, if any used controller lives on v2: its controllers enabled in the
    /// parent's `subtree_control`, its limits written and its device program attached.
    fn create_v2(
        &self,
        cg: &mut Cgroup,
        v2h: &V2Hierarchy,
        used: ControllerSet,
        res: &Resources,
    ) -> Result<(), CgroupError> {
        let mut on_v2 = ControllerSet::EMPTY;
        for c in used.iter() {
            if self.backend(c) == Some(Backend::V2) {
                on_v2.insert(c);
            }
        }
        if on_v2.is_empty() {
            return Ok(());
        }
        let wanted = v2_controllers_to_enable(v2h, on_v2, res)?;
        let path = mkdir_v2(v2h, wanted, &cg.name)?;
        cg.dirs.push(Dir {
            path,
            kind: Kind::V2,
        });
        let dir = &cg.dirs[cg.dirs.len() - 1].path;
        v2::apply_limits(dir, wanted, res)?;
        if let (true, Some(rules)) = (on_v2.contains(Controller::Devices), &res.devices) {
            crate::device_bpf::DeviceProgram::compile(rules).attach(dir)?;
        }
        Ok(())
    }

    /// Finds the existing cgroup `name` (made by another process, e.g. for `isolab pause`).
    /// The returned value does not remove anything when dropped.
    pub fn open(&self, name: &str) -> Result<Cgroup, CgroupError> {
        validate_name(name)?;
        let mut dirs = Vec::new();
        for h in &self.v1 {
            let path = h.isolab_dir.join(name);
            if path.is_dir() {
                dirs.push(Dir {
                    path,
                    kind: Kind::V1(h.controllers),
                });
            }
        }
        if let Some(v2h) = &self.v2 {
            for parent in [&v2h.own_dir, &v2h.mount_point] {
                let path = parent.join(&v2h.group).join(name);
                if path.is_dir() {
                    dirs.push(Dir {
                        path,
                        kind: Kind::V2,
                    });
                    break;
                }
            }
        }
        if dirs.is_empty() {
            return Err(CgroupError::NotFound {
                name: name.to_owned(),
            });
        }
        Ok(Cgroup {
            name: name.to_owned(),
            dirs,
            destroy_on_drop: false,
        })
    }

    /// Names of every cgroup under the shared `isolab` parents, in any hierarchy, sorted.
    /// Lets a cleanup find cgroups whose launcher was killed before it could remove them.
    pub fn names(&self) -> Vec<String> {
        let mut parents: Vec<PathBuf> = self.v1.iter().map(|h| h.isolab_dir.clone()).collect();
        if let Some(v2h) = &self.v2 {
            parents.push(v2h.own_dir.join(&v2h.group));
            parents.push(v2h.mount_point.join(&v2h.group));
        }
        let mut names: Vec<String> = parents
            .iter()
            .filter_map(|p| std::fs::read_dir(p).ok())
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl Cgroup {
    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every directory of this cgroup, one per hierarchy (for diagnostics and leak checks).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// The directory, when this cgroup lives in the unified (v2) hierarchy alone.
    ///
    /// A launcher can then start its child directly inside it with
    /// `clone3(CLONE_INTO_CGROUP)` instead of moving it with [`Cgroup::add_pid`]: a move into a
    /// cgroup takes the kernel's `cgroup_threadgroup_rwsem` for writing, which waits for an RCU
    /// grace period (milliseconds on a busy host), once per hierarchy on v1.
    pub fn unified_dir(&self) -> Option<&Path> {
        match self.dirs.as_slice() {
            [only] if matches!(only.kind, Kind::V2) => Some(&only.path),
            _ => None,
        }
    }

    /// The files through which a freshly cloned child moves *itself* into this cgroup, one per
    /// hierarchy: `tasks` on v1, `cgroup.procs` on v2.
    ///
    /// Why the child and not the launcher: writing another process's pid takes the kernel's
    /// global `cgroup_threadgroup_rwsem` for writing, and that waits for an RCU grace period —
    /// 5 to 13 ms per write on a quiet v1 host, the whole cold-start tail. A single-threaded
    /// process writing `0` (itself) to a v1 `tasks` file moves only its own thread, which
    /// cannot exit or exec under the kernel's hands, so the kernel skips that lock (see
    /// `cgroup_procs_write_start` in kernel/cgroup/cgroup.c): about 0.25 ms. The launcher opens
    /// these files before the clone (permission is checked against the opener) and the child
    /// only writes `0` to the inherited descriptors, so it allocates nothing.
    pub fn self_attach_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|d| match d.kind {
                Kind::V1(_) => d.path.join("tasks"),
                Kind::V2 => d.path.join("cgroup.procs"),
            })
            .collect()
    }

    /// Whether dropping this value removes the cgroup (true for `create`, false for `open`).
    pub fn destroy_on_drop(&self) -> bool {
        self.destroy_on_drop
    }

    /// Keep the cgroup after this value is dropped (a detached container), or take ownership
    /// of an opened one (`isolab rm`).
    pub fn set_destroy_on_drop(&mut self, destroy: bool) {
        self.destroy_on_drop = destroy;
    }

    /// Moves process `pid` (all its threads) into this cgroup in every hierarchy.
    ///
    /// Its children inherit the membership, so a launcher attaches the container's init
    /// before it execs anything.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let n = NumBuf::i64(i64::from(pid));
        for d in &self.dirs {
            put(&d.path, "cgroup.procs", n.as_bytes())?;
        }
        Ok(())
    }

    /// Pids in the cgroup (union over hierarchies, sorted).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for d in &self.dirs {
            match std::fs::read_to_string(d.path.join("cgroup.procs")) {
                Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(CgroupError::io("read", d.path.join("cgroup.procs"), e)),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn freezer(&self) -> Result<(&Path, bool), CgroupError> {
        if let Some(d) = self
            .dirs
            .iter()
            .find(|d| matches!(d.kind, Kind::V1(c) if c.contains(Controller::Freezer)))
        {
            return Ok((&d.path, true));
        }
        if let Some(d) = self.dirs.iter().find(|d| matches!(d.kind, Kind::V2)) {
            return Ok((&d.path, false));
        }
        Err(CgroupError::ControllerMissing {
            controller: "freezer",
            needed_for: "pause/resume",
        })
    }

    /// Stops every task in the cgroup and returns once the kernel reports them frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            (dir, true) => v1::freeze(dir),
            (dir, false) => v2::freeze(dir),
        }
    }

    /// Lets frozen tasks run again.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            (dir, true) => v1::thaw(dir),
            (dir, false) => v2::thaw(dir),
        }
    }

    /// Whether the freezer reports the cgroup frozen.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.freezer()? {
            (dir, true) => v1::is_frozen(dir),
            (dir, false) => v2::is_frozen(dir),
        }
    }

    /// Reads memory, OOM, CPU, pids and throttling counters. Valid after the tasks exited, as
    /// long as the cgroup has not been destroyed.
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        let mut total = CgroupStats::default();
        for d in &self.dirs {
            let mut s = CgroupStats::default();
            match d.kind {
                Kind::V1(ctl) => v1::read_stats(&d.path, ctl, &mut s)?,
                Kind::V2 => v2::read_stats(&d.path, &mut s)?,
            }
            total.fill_missing(s);
        }
        Ok(total)
    }

    /// SIGKILLs every task and waits (bounded) until none is left.
    ///
    /// v2's `cgroup.kill` kills atomically, including tasks forked meanwhile; otherwise each pid
    /// in `cgroup.procs` gets SIGKILL, repeatedly, since a task may fork between our read and
    /// our kill. A v1-frozen task only dies once thawed, so the freezer is thawed too.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let mut atomic_kill = false;
        if let Some(d) = self.dirs.iter().find(|d| matches!(d.kind, Kind::V2)) {
            match fsio::write_existing(&d.path, "cgroup.kill", b"1") {
                Ok(()) => atomic_kill = true,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(CgroupError::io("write", d.path.join("cgroup.kill"), e)),
            }
        }
        let mut backoff = Backoff::new(KILL_WAIT_MS);
        let mut thawed = false;
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if !atomic_kill {
                for &p in &pids {
                    // ESRCH: it exited meanwhile, which is what we want.
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
            if !thawed {
                thawed = true;
                if let Ok((dir, true)) = self.freezer() {
                    let _ = v1::thaw(dir);
                }
            }
            if !backoff.wait() {
                return Err(CgroupError::KillTimeout {
                    path: self.dirs[0].path.clone(),
                    remaining: pids.len(),
                    waited_ms: KILL_WAIT_MS,
                });
            }
        }
    }

    /// Kills what is left and removes every directory of this cgroup (the shared `isolab`
    /// parents stay). Returns the first error, after trying everything.
    pub fn destroy(mut self) -> Result<(), CgroupError> {
        self.destroy_on_drop = false;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), CgroupError> {
        let mut first = self.kill_all().err();
        // If tasks survived, rmdir would only spin on EBUSY: try once each instead.
        let wait_ms = if first.is_some() { 0 } else { RMDIR_WAIT_MS };
        for d in self.dirs.iter().rev() {
            if let Err(e) = rmdir_retry(&d.path, wait_ms) {
                first.get_or_insert(e);
            }
        }
        // The shared `isolab` parents stay, as docker's `docker` cgroup does: they hold no
        // process and no limit, and removing and re-creating them around every container cost
        // ~170 µs per start (four v1 hierarchies here) for nothing.
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.destroy_on_drop {
            let _ = self.teardown();
        }
    }
}

impl CgroupStats {
    /// Takes `other`'s values for the fields still unknown (v1 directories come first, so a
    /// hybrid host's v1 numbers win over v2's).
    fn fill_missing(&mut self, other: CgroupStats) {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f; } )* };
        }
        fill!(
            memory_current_bytes,
            memory_peak_bytes,
            oom_kills,
            cpu_usage_us,
            cpu_user_us,
            cpu_system_us,
            cpu_periods,
            cpu_throttled_periods,
            cpu_throttled_us,
            pids_current,
            pids_peak
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_safe_components() {
        for bad in ["", "..", ".hidden", "a/b", "a b", "x\0y", &"n".repeat(256)] {
            assert!(
                matches!(validate_name(bad), Err(CgroupError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        validate_name("c1-abc_0.9").unwrap();
        // podman's cgroupsPath leaf: `libpod-` and a 64-digit id.
        validate_name(&format!("libpod-{}", "f".repeat(64))).unwrap();
    }

    #[test]
    fn backoff_is_bounded() {
        let start = Instant::now();
        let mut b = Backoff::new(5);
        let mut steps = 0;
        while b.wait() {
            steps += 1;
        }
        assert!(steps >= 2);
        assert!(start.elapsed() < Duration::from_millis(100));
    }
}
