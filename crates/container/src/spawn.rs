//! The container spawn path, top to bottom.
//!
//! How a process becomes a container, in the order the kernel requires:
//!
//! 1. **Prepare** (parent): create the cgroup (limits exist *before* the workload runs, so it
//!    can never escape them), the mount plan, the network lease, the argv/env as C strings.
//! 2. **clone3()** with `CLONE_NEW*` flags: the kernel creates the new namespaces and a child
//!    inside them in one step. With a new PID namespace the child is PID 1 there. `CLONE_PIDFD`
//!    hands us a file descriptor for the child, which we poll and signal without pid-reuse races.
//! 3. **Wire up** (parent, while the child waits on a pipe): write the user namespace's uid/gid
//!    maps, move the child into its cgroup, plug its network namespace into the bridge. Only the
//!    parent can do these: they are done *to* the child from outside.
//! 4. **Go**: the child unshares its cgroup namespace (so /proc/self/cgroup shows `/`), builds its
//!    root filesystem and pivots into it ([`crate::rootfs`]), sets its hostname, brings up its
//!    network, drops to the requested user, installs the seccomp filter, and calls `execve`.
//! 5. **Exec is the start event**: a `CLOEXEC` pipe from child to parent closes exactly when
//!    `execve` succeeds, so the parent learns "the workload's first instruction is next" without
//!    polling. If exec fails the child writes why into that pipe instead.
//! 6. **Wait** (parent): forward signals, relay stdio, reap the child; then read the cgroup's
//!    stats (peak memory, OOM kills, CPU time) and tear everything down.
//!
//! The child is a copy of a possibly multi-threaded parent (the test harness, the benches), so
//! between clone and exec it only makes raw system calls on data prepared in step 1 — no
//! allocation, no locks — the same rule `posix_spawn` and Rust's `Command` follow.

use crate::namespaces::Namespace;
use crate::rootfs::{MountPlan, OverlayDirs, StepFailure};
use crate::spec::{ContainerSpec, NetworkMode, RootfsSource};
use crate::stdio::{self, ChildStdio, ParentStdio, Source, StdioMode};
use isolab_cgroups::{Cgroup, CgroupRoot, CgroupStats};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{pipe2, read, write, Gid, Pid, Uid};
use serde::{Deserialize, Serialize};
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// How long a container gets to exit after isolab forwards SIGINT/SIGTERM before it is killed.
/// A PID 1 without a handler ignores those signals (the kernel protects namespace inits), so
/// without this a Ctrl-C could never stop `sleep` running as PID 1.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why a container could not be started or waited for.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("isolab needs root to create namespaces, cgroups and mounts: run it with sudo, or rootless with a user namespace (--userns)")]
    NotRoot,
    #[error(
        "a rootless container (not root, in a user namespace) cannot {0}: run as root for that"
    )]
    Rootless(&'static str),
    #[error("invalid container spec: {0}")]
    Spec(String),
    #[error(transparent)]
    Cgroup(#[from] isolab_cgroups::CgroupError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("clone3 failed: {0} (the kernel refused to create the namespaces {1})")]
    Clone(Errno, String),
    #[error("setting up the container failed while {0}")]
    Setup(String),
    #[error("{command:?} was not found in the container (searched {path})")]
    CommandNotFound { command: String, path: String },
    #[error("{command:?} could not be executed in the container: {reason}")]
    CannotExecute { command: String, reason: String },
    #[error("{0}")]
    Network(String),
}

impl SpawnError {
    fn io(what: &'static str, source: impl Into<std::io::Error>) -> Self {
        SpawnError::Io {
            what,
            source: source.into(),
        }
    }

    /// The exit code a shell (and docker) would use for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            SpawnError::CommandNotFound { .. } => 127,
            SpawnError::CannotExecute { .. } => 126,
            _ => 125,
        }
    }
}

/// What the caller provides besides the spec: where things live and how to connect stdio.
pub struct RunContext<'a> {
    /// Container id; names the cgroup and the network lease.
    pub id: String,
    /// The cgroup hierarchy to create the container's cgroup in (`None`: no cgroup).
    pub cgroups: Option<&'a CgroupRoot>,
    /// Overlay dirs, required when the spec's rootfs is a list of layers.
    pub overlay: Option<OverlayDirs>,
    /// Where stdout/stderr go.
    pub stdio: StdioMode,
    /// Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT to the container (the CLI does; tests do not,
    /// since blocking signals in a multi-threaded test harness would affect other tests).
    pub forward_signals: bool,
    /// Prepared network attachment for [`NetworkMode::Bridge`].
    pub network: Option<crate::network::BridgePlan>,
    /// A compiled seccomp filter for [`crate::SeccompMode::Default`].
    pub seccomp: Option<&'a crate::seccomp::SeccompProgram>,
    /// Called with the workload's host PID once it has exec'ed (e.g. to record it in the
    /// container's state so `pause` and `ls` can find it).
    pub on_start: Option<Box<dyn FnOnce(i32) + 'a>>,
}

impl std::fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("id", &self.id)
            .field("overlay", &self.overlay)
            .field("stdio", &self.stdio)
            .field("forward_signals", &self.forward_signals)
            .field("network", &self.network)
            .field("seccomp", &self.seccomp.is_some())
            .field("on_start", &self.on_start.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> RunContext<'a> {
    /// A context with no cgroup, inherited stdio and no signal forwarding.
    pub fn new(id: impl Into<String>) -> Self {
        RunContext {
            id: id.into(),
            cgroups: None,
            overlay: None,
            stdio: StdioMode::Inherit,
            forward_signals: false,
            network: None,
            seccomp: None,
            on_start: None,
        }
    }
}

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Where the time of one start went, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// Creating the cgroup and writing its limits, plus attaching the child.
    pub cgroup_us: u64,
    /// The clone3 call that creates the namespaces and the child.
    pub clone_us: u64,
    /// Parent-side network wiring (veth + bridge), 0 without a bridge.
    pub network_us: u64,
    /// Child: mounts and pivot_root, from its "go" to a ready root filesystem.
    pub rootfs_us: u64,
    /// Child: hostname, network, user, seccomp, up to calling execve.
    pub exec_setup_us: u64,
    /// From the start of [`run`] to execve: the start latency a user feels.
    pub start_to_exec_us: u64,
    /// From execve to the exit being observed.
    pub run_us: u64,
    /// Reading stats and removing the cgroup, lease and stdio.
    pub cleanup_us: u64,
    /// Everything, from the start of [`run`] to its return.
    pub total_us: u64,
}

/// The result of one container run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The workload's host PID (already reaped).
    pub pid: i32,
    pub status: ExitStatus,
    /// True when the kernel's OOM killer ended the workload at its memory limit.
    pub oom_killed: bool,
    /// cgroup usage read after exit (None without a cgroup).
    pub cgroup_stats: Option<CgroupStats>,
    pub phases: Phases,
}

fn mono_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

fn us_between(from_ns: u64, to_ns: u64) -> u64 {
    to_ns.saturating_sub(from_ns) / 1000
}

/// Runs `spec` to completion. The heart of isolab's container engine.
pub fn run(spec: &ContainerSpec, ctx: RunContext<'_>) -> Result<RunOutcome, SpawnError> {
    let t_start = mono_ns();
    let userns = spec.namespaces.contains(Namespace::User);
    // Without root, a user namespace is what grants the privileges the setup needs inside it
    // ("rootless"); what lives outside it (cgroups, the bridge) stays out of reach.
    let rootless = !Uid::effective().is_root();
    if rootless {
        if !userns {
            return Err(SpawnError::NotRoot);
        }
        if ctx.cgroups.is_some() && spec.use_cgroup {
            return Err(SpawnError::Rootless(
                "create cgroups (limits and usage statistics need root, or a delegated cgroup)",
            ));
        }
        if spec.network == NetworkMode::Bridge {
            return Err(SpawnError::Rootless(
                "join the bridge (use --net none or host)",
            ));
        }
    }
    validate(spec)?;
    let new_mntns = spec.namespaces.contains(Namespace::Mount);
    let new_netns = spec.namespaces.contains(Namespace::Net);

    // ---- 1. Prepare -----------------------------------------------------------------------
    let t0 = mono_ns();
    let cgroup: Option<Cgroup> = match ctx.cgroups {
        Some(root) if spec.use_cgroup => {
            let mut resources = spec.resources.clone();
            resources.devices = spec.hardening.devices.cgroup_rules();
            Some(root.create(&ctx.id, &resources)?)
        }
        _ => None,
    };
    let capabilities = bounding_set(spec, cgroup.is_some());
    let mut cgroup_ns = mono_ns() - t0;

    let disk_overlay = ctx.overlay.as_ref().filter(|d| d.in_memory.is_none());
    if let (true, false, Some(dirs), Some(map)) = (userns, rootless, disk_overlay, spec.id_mapping)
    {
        // The mapped root must own its writable layer to write into it.
        for dir in [&dirs.upper, &dirs.work] {
            std::os::unix::fs::chown(dir, Some(map.host_base), Some(map.host_base))
                .map_err(|e| SpawnError::io("giving the upper dir to the mapped root", e))?;
        }
    }
    if let Some(dirs) = disk_overlay {
        // A volatile overlay leaves this marker behind and refuses to mount over it again.
        let marker = dirs.work.join("work/incompat/volatile");
        if marker.exists() {
            std::fs::remove_dir_all(&dirs.work)
                .and_then(|()| std::fs::create_dir(&dirs.work))
                .map_err(|e| SpawnError::io("resetting the overlay work dir", e))?;
        }
    }
    let mounts = if new_mntns {
        Some(
            MountPlan::build(spec, ctx.overlay.as_ref(), userns, new_netns)
                .map_err(SpawnError::Spec)?,
        )
    } else {
        None
    };
    let exec = ExecPlan::build(spec)?;
    let seccomp = match (spec.seccomp, ctx.seccomp) {
        (crate::SeccompMode::Unconfined, _) => None,
        (crate::SeccompMode::Default, Some(prog)) => Some(prog),
        (crate::SeccompMode::Default, None) => Some(
            crate::seccomp::SeccompProgram::for_caps(capabilities)
                .map_err(|e| SpawnError::Spec(e.to_string()))?,
        ),
    };
    let hostname = spec.hostname.as_deref().map(OsStr::new);
    let gids: Vec<Gid> = spec
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    let (mut parent_stdio, child_stdio) =
        stdio::prepare(&ctx.stdio).map_err(|e| SpawnError::io("setting up stdio", e))?;
    let (sync_r, sync_w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError::io("pipe", e))?;
    let (status_r, status_w) =
        pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError::io("pipe", e))?;
    let network = ctx.network;
    let child_net = network.as_ref().map(|n| n.child());

    let signals = if ctx.forward_signals {
        Some(SignalForwarding::block()?)
    } else {
        None
    };

    let plan = ChildPlan {
        mounts: mounts.as_ref(),
        exec: &exec,
        hostname,
        new_cgroupns: spec.namespaces.contains(Namespace::Cgroup),
        userns,
        new_netns,
        child_net,
        user: spec.user,
        init: spec.init,
        capabilities,
        process_caps: spec.process_caps.as_ref(),
        rlimits: &spec.rlimits,
        no_new_privileges: spec.no_new_privileges,
        additional_gids: &gids,
        seccomp,
        stdio: &child_stdio,
        old_sigmask: signals.as_ref().map(|s| &s.old_mask),
        sync_r: sync_r.as_raw_fd(),
        sync_w: sync_w.as_raw_fd(),
        status_w: status_w.as_raw_fd(),
    };

    // ---- 2. clone3 ------------------------------------------------------------------------
    let mut flags: u64 = 0;
    for ns in spec.namespaces.iter() {
        // The cgroup namespace is unshared by the child *after* it was moved into its cgroup,
        // so that cgroup becomes its root.
        if ns != Namespace::Cgroup {
            flags |= ns.clone_flag();
        }
    }
    // On cgroup v2 the child is born inside its cgroup (no migration afterwards).
    let into_cgroup: Option<OwnedFd> = match cgroup.as_ref().and_then(|c| c.unified_dir()) {
        Some(dir) => Some(
            nix::fcntl::open(
                dir,
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| SpawnError::io("opening the cgroup directory", e))?,
        ),
        None => None,
    };
    let t_clone = mono_ns();
    let child = clone3(flags, into_cgroup.as_ref().map(|fd| fd.as_raw_fd()))
        .map_err(|e| SpawnError::Clone(e, spec.namespaces.to_string()))?;
    let (pid, pidfd) = match child {
        Forked::Child => child_main(&plan),
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let clone_ns = mono_ns() - t_clone;
    drop(child_stdio);
    drop(sync_r);
    drop(status_w);
    let mut guard = ChildGuard {
        pidfd,
        reaped: false,
    };

    // ---- 3. Wire up from outside ----------------------------------------------------------
    if userns {
        let map = spec.id_mapping.unwrap_or_default();
        write_id_maps(pid, map, rootless)
            .map_err(|e| SpawnError::io("writing the uid/gid maps", e))?;
    }
    if let (Some(cg), None) = (&cgroup, &into_cgroup) {
        let t = mono_ns();
        cg.add_pid(pid.as_raw())?;
        cgroup_ns += mono_ns() - t;
    }
    drop(into_cgroup);
    if let Some(adj) = spec.oom_score_adj {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .map_err(|e| SpawnError::io("setting oom_score_adj", e))?;
    }
    let t_net = mono_ns();
    if let Some(net) = &network {
        net.attach(pid.as_raw())
            .map_err(|e| SpawnError::Network(e.to_string()))?;
    }
    let network_ns = if network.is_some() {
        mono_ns() - t_net
    } else {
        0
    };

    // ---- 4. Go ----------------------------------------------------------------------------
    write(&sync_w, b"g").map_err(|e| SpawnError::io("releasing the child", e))?;
    drop(sync_w);
    // With -t the child opens the pty inside the container and sends us the master.
    parent_stdio
        .receive_console()
        .map_err(|e| SpawnError::io("receiving the container's terminal", e))?;

    // ---- 5. Exec is the start event -------------------------------------------------------
    let report = read_reports(&status_r)?;
    let t_exec_seen = mono_ns();
    if let Some(err) = report.error {
        guard.reap();
        return Err(describe_child_error(err, mounts.as_ref(), &exec, spec));
    }
    let exec_ns = report.exec_ns.unwrap_or(t_exec_seen);
    if let Some(hook) = ctx.on_start {
        hook(pid.as_raw());
    }

    // ---- 6. Wait --------------------------------------------------------------------------
    let status = wait_loop(&mut guard, signals.as_ref(), &mut parent_stdio)?;
    let t_exit = mono_ns();
    parent_stdio.drain();
    drop(parent_stdio);
    drop(signals);

    let t_cleanup = mono_ns();
    let (cgroup_stats, oom_killed) = match cgroup {
        Some(cg) => {
            let stats = cg.stats().ok();
            let ooms = stats.as_ref().and_then(|s| s.oom_kills).unwrap_or(0);
            cg.destroy()?;
            // With --init the workload's SIGKILL reaches us as PID 1's exit code 137.
            let killed = matches!(
                status,
                ExitStatus::Signaled(libc::SIGKILL) | ExitStatus::Exited(137)
            );
            let oom = ooms > 0 && killed;
            (stats, oom)
        }
        None => (None, false),
    };
    drop(network);
    let t_end = mono_ns();

    Ok(RunOutcome {
        pid: pid.as_raw(),
        status,
        oom_killed,
        cgroup_stats,
        phases: Phases {
            cgroup_us: cgroup_ns / 1000,
            clone_us: clone_ns / 1000,
            network_us: network_ns / 1000,
            rootfs_us: us_between(report.go_ns, report.rootfs_ns),
            exec_setup_us: us_between(report.rootfs_ns, exec_ns),
            start_to_exec_us: us_between(t_start, exec_ns),
            run_us: us_between(exec_ns, t_exit),
            cleanup_us: us_between(t_cleanup, t_end),
            total_us: us_between(t_start, t_end),
        },
    })
}

/// Checks the spec for combinations the kernel would reject with a cryptic errno.
fn validate(spec: &ContainerSpec) -> Result<(), SpawnError> {
    let ns = spec.namespaces;
    if spec.args.is_empty() {
        return Err(SpawnError::Spec("no command given".into()));
    }
    if !ns.contains(Namespace::Mount) {
        if matches!(spec.rootfs, RootfsSource::Layers(_)) {
            return Err(SpawnError::Spec(
                "an image rootfs is an overlay mount and needs a mount namespace: add 'mnt' to --namespaces".into(),
            ));
        }
        if spec.root_mode == crate::RootMode::PivotRoot {
            return Err(SpawnError::Spec(
                "pivot_root needs a mount namespace: add 'mnt' to --namespaces or use --chroot"
                    .into(),
            ));
        }
    }
    if spec.network == NetworkMode::Host && ns.contains(Namespace::Net) {
        return Err(SpawnError::Spec(
            "--net host shares the host's network namespace: remove 'net' from --namespaces".into(),
        ));
    }
    if spec.network != NetworkMode::Host && !ns.contains(Namespace::Net) {
        return Err(SpawnError::Spec(
            format!(
                "--net {:?} needs a network namespace: add 'net' to --namespaces or use --net host",
                spec.network
            )
            .to_lowercase(),
        ));
    }
    if ns.contains(Namespace::User) && spec.id_mapping.is_none() {
        return Err(SpawnError::Spec(
            "a user namespace needs an id mapping".into(),
        ));
    }
    if !spec.workdir.starts_with('/') {
        return Err(SpawnError::Spec(format!(
            "the working directory {:?} must be an absolute path",
            spec.workdir
        )));
    }
    if let Some(h) = &spec.hostname {
        if h.is_empty() || h.len() > 64 {
            return Err(SpawnError::Spec(format!(
                "hostname {h:?} must be 1 to 64 characters"
            )));
        }
    }
    if !spec.sysctl.is_empty() && !ns.contains(Namespace::Mount) {
        return Err(SpawnError::Spec(
            "sysctls are written into the container's own /proc and need a mount namespace: add 'mnt' to --namespaces".into(),
        ));
    }
    for (key, _) in &spec.sysctl {
        if key.is_empty() || key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..")
        {
            return Err(SpawnError::Spec(format!(
                "sysctl {key:?} is not a dotted name like net.ipv4.ip_forward"
            )));
        }
    }
    if let RootfsSource::Dir(dir) = &spec.rootfs {
        if !dir.is_dir() {
            return Err(SpawnError::Spec(format!(
                "rootfs {} is not a directory",
                dir.display()
            )));
        }
    }
    for m in &spec.mounts {
        if !m.source.exists() {
            return Err(SpawnError::Spec(format!(
                "bind mount source {} does not exist",
                m.source.display()
            )));
        }
    }
    Ok(())
}

/// argv, envp, the PATH candidates and the working directory, as C strings.
#[derive(Debug)]
struct ExecPlan {
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// Full paths to try in order: `args[0]` if it has a slash, else each `$PATH` dir + `args[0]`.
    /// glibc's execvpe would search the *parent's* PATH, not the container's.
    candidates: Vec<CString>,
    workdir: CString,
    search_path: String,
}

impl ExecPlan {
    fn build(spec: &ContainerSpec) -> Result<ExecPlan, SpawnError> {
        let c = |s: &str, what: &str| {
            CString::new(s)
                .map_err(|_| SpawnError::Spec(format!("{what} {s:?} contains a NUL byte")))
        };
        let argv = spec
            .args
            .iter()
            .map(|a| c(a, "argument"))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = spec
            .env
            .iter()
            .map(|e| c(e, "environment entry"))
            .collect::<Result<Vec<_>, _>>()?;
        let cmd = &spec.args[0];
        let search_path = spec
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .to_string();
        let candidates = if cmd.contains('/') {
            vec![c(cmd, "command")?]
        } else {
            search_path
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| c(&format!("{}/{cmd}", d.trim_end_matches('/')), "command"))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(ExecPlan {
            argv,
            envp,
            candidates,
            workdir: c(&spec.workdir, "working directory")?,
            search_path,
        })
    }
}

/// Everything the child reads, borrowed from the parent's stack before the clone.
struct ChildPlan<'a> {
    mounts: Option<&'a MountPlan>,
    exec: &'a ExecPlan,
    hostname: Option<&'a OsStr>,
    new_cgroupns: bool,
    userns: bool,
    new_netns: bool,
    child_net: Option<&'a crate::network::ChildNet>,
    user: (u32, u32),
    init: bool,
    capabilities: crate::CapSet,
    process_caps: Option<&'a crate::credentials::ProcessCaps>,
    rlimits: &'a [crate::credentials::Rlimit],
    no_new_privileges: bool,
    additional_gids: &'a [Gid],
    seccomp: Option<&'a crate::seccomp::SeccompProgram>,
    stdio: &'a ChildStdio,
    old_sigmask: Option<&'a SigSet>,
    sync_r: RawFd,
    sync_w: RawFd,
    status_w: RawFd,
}

/// Where in the child's setup something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Stage {
    Sync = 1,
    CgroupNs,
    Ids,
    Rootfs,
    Hostname,
    Network,
    Capabilities,
    Rlimits,
    User,
    Workdir,
    Stdio,
    Seccomp,
    Exec,
}

impl Stage {
    /// Every stage, so a number read back from the status pipe maps to one.
    const ALL: [Stage; 13] = [
        Stage::Sync,
        Stage::CgroupNs,
        Stage::Ids,
        Stage::Rootfs,
        Stage::Hostname,
        Stage::Network,
        Stage::Capabilities,
        Stage::Rlimits,
        Stage::User,
        Stage::Workdir,
        Stage::Stdio,
        Stage::Seccomp,
        Stage::Exec,
    ];

    fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u32 == v)
    }
}

/// A fixed-size record the child writes into the status pipe (no allocation needed).
const REPORT_LEN: usize = 40;
const REPORT_OK: u32 = 0x6f6b;
const REPORT_ERR: u32 = 0x6572;

fn encode_report(
    kind: u32,
    stage: u32,
    index: u32,
    errno: i32,
    times: [u64; 3],
) -> [u8; REPORT_LEN] {
    let mut b = [0u8; REPORT_LEN];
    b[0..4].copy_from_slice(&kind.to_ne_bytes());
    b[4..8].copy_from_slice(&stage.to_ne_bytes());
    b[8..12].copy_from_slice(&index.to_ne_bytes());
    b[12..16].copy_from_slice(&errno.to_ne_bytes());
    for (i, t) in times.iter().enumerate() {
        b[16 + i * 8..24 + i * 8].copy_from_slice(&t.to_ne_bytes());
    }
    b
}

#[derive(Debug, Clone, Copy)]
struct ChildError {
    stage: Stage,
    index: u32,
    errno: i32,
}

#[derive(Debug, Default)]
struct Reports {
    go_ns: u64,
    rootfs_ns: u64,
    exec_ns: Option<u64>,
    error: Option<ChildError>,
}

/// Reads the child's records until the pipe closes (exec succeeded, or the child died).
fn read_reports(status_r: &OwnedFd) -> Result<Reports, SpawnError> {
    let mut buf = [0u8; REPORT_LEN * 4];
    let mut len = 0;
    loop {
        match read(status_r, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == buf.len() {
                    break;
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SpawnError::io("reading the child's status", e)),
        }
    }
    let mut out = Reports::default();
    for rec in buf[..len].chunks_exact(REPORT_LEN) {
        let u32_at = |o: usize| u32::from_ne_bytes(rec[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_ne_bytes(rec[o..o + 8].try_into().unwrap_or_default());
        out.go_ns = u64_at(16);
        out.rootfs_ns = u64_at(24);
        match u32_at(0) {
            REPORT_OK => out.exec_ns = Some(u64_at(32)),
            REPORT_ERR => {
                out.error = Some(ChildError {
                    stage: Stage::from_u32(u32_at(4)).unwrap_or(Stage::Exec),
                    index: u32_at(8),
                    errno: i32::from_ne_bytes(rec[12..16].try_into().unwrap_or_default()),
                })
            }
            _ => {}
        }
    }
    if out.exec_ns.is_none() && out.error.is_none() {
        return Err(SpawnError::Setup(
            "starting: the child exited before reporting (killed?)".into(),
        ));
    }
    Ok(out)
}

fn describe_child_error(
    err: ChildError,
    mounts: Option<&MountPlan>,
    exec: &ExecPlan,
    spec: &ContainerSpec,
) -> SpawnError {
    let errno = Errno::from_raw(err.errno);
    let command = spec.args[0].clone();
    match err.stage {
        Stage::Exec if matches!(errno, Errno::ENOENT | Errno::ENOTDIR) => {
            SpawnError::CommandNotFound {
                command,
                path: if spec.args[0].contains('/') {
                    "as given".into()
                } else {
                    format!("PATH={}", exec.search_path)
                },
            }
        }
        Stage::Exec => SpawnError::CannotExecute {
            command,
            reason: errno.desc().to_string(),
        },
        Stage::Rootfs => SpawnError::Setup(match mounts {
            Some(m) => m.describe(StepFailure {
                index: err.index,
                errno: err.errno,
            }),
            None => format!("building the root filesystem: {}", errno.desc()),
        }),
        Stage::Workdir => SpawnError::Setup(format!(
            "entering the working directory {:?}: {}",
            spec.workdir,
            errno.desc()
        )),
        other => SpawnError::Setup(format!("{}: {}", stage_text(other), errno.desc())),
    }
}

fn stage_text(stage: Stage) -> &'static str {
    match stage {
        Stage::Sync => "waiting for the parent",
        Stage::CgroupNs => "creating the cgroup namespace",
        Stage::Ids => "becoming root in the user namespace",
        Stage::Rootfs => "building the root filesystem",
        Stage::Hostname => "setting the hostname",
        Stage::Network => "configuring the network interfaces",
        Stage::Capabilities => "setting the capability sets",
        Stage::Rlimits => "setting the resource limits (rlimits)",
        Stage::User => "switching to the requested user",
        Stage::Workdir => "entering the working directory",
        Stage::Stdio => "connecting stdin/stdout/stderr",
        Stage::Seccomp => "installing the seccomp filter",
        Stage::Exec => "executing the command",
    }
}

// ---- The child side ------------------------------------------------------------------------

/// Runs in the cloned child. Never returns: it becomes the workload or exits.
fn child_main(plan: &ChildPlan<'_>) -> ! {
    let go_ns = mono_ns();
    let mut rootfs_ns = go_ns;
    let result = child_setup(plan, go_ns, &mut rootfs_ns);
    // Only reached when something failed: tell the parent, then exit like a shell would.
    let (stage, index, errno) = result.err().unwrap_or((Stage::Exec, 0, libc::ENOEXEC));
    let rec = encode_report(
        REPORT_ERR,
        stage as u32,
        index,
        errno,
        [go_ns, rootfs_ns, 0],
    );
    // SAFETY: `status_w` is the open write end of the status pipe, owned by this process.
    let _ = write(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(plan.status_w) },
        &rec,
    );
    let code = match (stage, Errno::from_raw(errno)) {
        (Stage::Exec, Errno::ENOENT) => 127,
        (Stage::Exec, _) => 126,
        _ => 125,
    };
    // SAFETY: _exit ends the process without running the parent's atexit handlers or
    // destructors, which belong to the parent's copy of the state.
    unsafe { libc::_exit(code) }
}

type ChildResult = Result<std::convert::Infallible, (Stage, u32, i32)>;

fn fail(stage: Stage) -> impl Fn(Errno) -> (Stage, u32, i32) {
    move |e| (stage, 0, e as i32)
}

fn child_setup(plan: &ChildPlan<'_>, go_ns: u64, rootfs_ns: &mut u64) -> ChildResult {
    // Die with the parent: a container must not outlive the isolab that manages it.
    // (If the parent died before this line, the sync read below sees EOF instead.)
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(fail(Stage::Sync))?;
    // SAFETY: closing our copy of the parent's end of the sync pipe; nothing else uses it here.
    unsafe { libc::close(plan.sync_w) };

    // Wait for the parent to write our maps, cgroup and network.
    let mut byte = [0u8; 1];
    // SAFETY: `sync_r` is the open read end of the sync pipe, owned by this process.
    let sync = unsafe { std::os::fd::BorrowedFd::borrow_raw(plan.sync_r) };
    loop {
        match read(sync, &mut byte) {
            Ok(1) => break,
            Ok(_) => return Err((Stage::Sync, 0, libc::EPIPE)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err((Stage::Sync, 0, e as i32)),
        }
    }

    if plan.userns {
        // Our credentials still hold the host's uid 0, which the new namespace does not map;
        // become the namespace's root (host uid = the mapping base) before touching files.
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(fail(Stage::Ids))?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(fail(Stage::Ids))?;
    }
    if plan.new_cgroupns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(fail(Stage::CgroupNs))?;
    }

    if let Some(mounts) = plan.mounts {
        mounts
            .apply()
            .map_err(|f| (Stage::Rootfs, f.index, f.errno))?;
    }
    *rootfs_ns = mono_ns();

    if let Some(name) = plan.hostname {
        nix::unistd::sethostname(name).map_err(fail(Stage::Hostname))?;
    }
    if plan.new_netns {
        match plan.child_net {
            Some(net) => crate::network::configure_child(net),
            None => crate::network::loopback_up(),
        }
        .map_err(|e| (Stage::Network, e.step as u32, e.errno))?;
    }

    // Root inside keeps only the allowed capabilities (the ceiling for everything it execs).
    plan.capabilities
        .restrict_bounding_set()
        .map_err(fail(Stage::Capabilities))?;

    // stdio: a pty from the container's own devpts, or the prepared fds onto 0/1/2.
    if let Some((socket, winsize)) = &plan.stdio.console {
        stdio::open_console(socket, winsize.as_ref()).map_err(fail(Stage::Stdio))?;
    }
    for (target, fd) in plan.stdio.fds.iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2 onto 0/1/2 replaces our stdio with a valid fd the parent prepared.
            if unsafe { libc::dup2(fd.as_raw_fd(), target as i32) } < 0 {
                return Err((Stage::Stdio, 0, Errno::last() as i32));
            }
        }
    }

    become_workload_user(plan)?;
    nix::unistd::chdir(plan.exec.workdir.as_c_str()).map_err(fail(Stage::Workdir))?;

    // Give the workload a normal signal state: Rust ignores SIGPIPE and we may have blocked
    // the forwarded signals.
    // SAFETY: restoring the default disposition of SIGPIPE installs no handler code.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) }
        .map_err(fail(Stage::Exec))?;
    if let Some(mask) = plan.old_sigmask {
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None)
            .map_err(fail(Stage::Exec))?;
    }
    // Everything from fd 3 up closes at exec (our status pipe included: that is the signal).
    // SAFETY: close_range only changes fd flags; the range is valid.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };

    if plan.no_new_privileges {
        crate::credentials::set_no_new_privs().map_err(fail(Stage::Seccomp))?;
        // With the promise made, the filter can go last, after the uid switch.
        if let Some(filter) = plan.seccomp {
            crate::seccomp::install(filter).map_err(fail(Stage::Seccomp))?;
        }
    }

    if plan.init {
        become_init(plan.status_w);
    }

    // Tell the parent the exec instant, then exec. If exec fails we send an error record too.
    let rec = encode_report(REPORT_OK, 0, 0, 0, [go_ns, *rootfs_ns, mono_ns()]);
    // SAFETY: `status_w` is the open write end of the status pipe, owned by this process.
    let status = unsafe { std::os::fd::BorrowedFd::borrow_raw(plan.status_w) };
    let _ = write(status, &rec);
    exec_candidates(plan.exec)
}

/// The workload PID 1 forwards signals to (set once, before any handler can run).
static INIT_CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let child = INIT_CHILD.load(std::sync::atomic::Ordering::Relaxed);
    if child > 0 {
        // SAFETY: kill is async-signal-safe; forwarding to our own child.
        unsafe { libc::kill(child, sig) };
    }
}

/// `--init`: this process stays PID 1 and the workload becomes PID 2. The kernel delivers to
/// a namespace's PID 1 only the signals it has handlers for, so a workload that is PID 1 and
/// never installed one (`sleep`, most programs) ignores SIGTERM and SIGINT; as PID 2 it gets
/// them through the handlers installed here. PID 1 also reaps orphaned zombies, and exits with
/// the workload's status. Returns only in PID 2, which goes on to exec the workload.
fn become_init(status_w: RawFd) {
    // A raw clone (fork semantics): glibc's fork would run atfork handlers on locks copied
    // from a possibly multi-threaded parent.
    // SAFETY: clone with only SIGCHLD and no stack behaves like fork; both sides continue on
    // copies of this stack and make raw syscalls only.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) };
    if pid == 0 {
        return;
    }
    if pid < 0 {
        // SAFETY: ending this process; the parent reads the exit status.
        unsafe { libc::_exit(125) };
    }
    let child = pid as libc::pid_t;
    INIT_CHILD.store(child, std::sync::atomic::Ordering::Relaxed);
    // The workload reports its exec through this pipe; ours must not hold it open.
    // SAFETY: closing our copy of the status pipe's write end.
    unsafe { libc::close(status_w) };
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        // SAFETY: installing an async-signal-safe handler that only calls kill.
        unsafe { libc::signal(sig, forward_signal as *const () as libc::sighandler_t) };
    }
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes the status into the valid local.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == child {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            // SAFETY: ending PID 1 ends the namespace; the kernel kills what is left.
            unsafe { libc::_exit(code) };
        }
        if reaped < 0 && Errno::last() != Errno::EINTR {
            // SAFETY: as above; no child is left to wait for.
            unsafe { libc::_exit(125) };
        }
    }
}

/// rlimits (while still root), the seccomp filter (while still privileged enough to install
/// it without no-new-privileges), then groups, uid/gid and the capability sets of the workload.
fn become_workload_user(plan: &ChildPlan<'_>) -> Result<(), (Stage, u32, i32)> {
    crate::credentials::apply_rlimits(plan.rlimits).map_err(fail(Stage::Rlimits))?;
    if !plan.no_new_privileges {
        // Everything after this line only uses calls the policy allows.
        if let Some(filter) = plan.seccomp {
            crate::seccomp::install(filter).map_err(fail(Stage::Seccomp))?;
        }
    }
    let (uid, gid) = plan.user;
    if (uid, gid) != (0, 0) || !plan.additional_gids.is_empty() {
        nix::unistd::setgroups(plan.additional_gids).map_err(fail(Stage::User))?;
    }
    if uid != 0 && plan.process_caps.is_some() {
        crate::credentials::keep_caps_across_setuid().map_err(fail(Stage::User))?;
    }
    if (uid, gid) != (0, 0) {
        nix::unistd::setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid))
            .map_err(fail(Stage::User))?;
        nix::unistd::setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))
            .map_err(fail(Stage::User))?;
    }
    if let Some(caps) = plan.process_caps {
        crate::credentials::apply_process_caps(caps).map_err(fail(Stage::Capabilities))?;
    }
    Ok(())
}

/// The bounding set the workload gets. Without a cgroup to enforce the device rules, a
/// container that should only reach the standard devices also loses CAP_MKNOD, so it cannot
/// create a node for a host device in the first place.
fn bounding_set(spec: &ContainerSpec, device_cgroup: bool) -> crate::CapSet {
    let wants_rules = spec.hardening.devices.cgroup_rules().is_some();
    if wants_rules && !device_cgroup {
        spec.capabilities.without(crate::capabilities::cap::MKNOD)
    } else {
        spec.capabilities
    }
}

fn exec_candidates(exec: &ExecPlan) -> ChildResult {
    // Built on the stack: a null-terminated array of pointers into the prepared C strings.
    const MAX_ARGS: usize = 256;
    let mut argv = [std::ptr::null::<libc::c_char>(); MAX_ARGS + 1];
    let mut envp = [std::ptr::null::<libc::c_char>(); MAX_ARGS + 1];
    if exec.argv.len() > MAX_ARGS || exec.envp.len() > MAX_ARGS {
        return Err((Stage::Exec, 0, libc::E2BIG));
    }
    for (slot, a) in argv.iter_mut().zip(&exec.argv) {
        *slot = a.as_ptr();
    }
    for (slot, e) in envp.iter_mut().zip(&exec.envp) {
        *slot = e.as_ptr();
    }
    let mut worst = libc::ENOENT;
    for path in &exec.candidates {
        // SAFETY: path, argv and envp point to NUL-terminated strings and null-terminated
        // arrays that live until execve replaces the process image.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let errno = Errno::last() as i32;
        // Like execvp: keep searching past "not here", remember "found but not runnable".
        if errno != libc::ENOENT && errno != libc::ENOTDIR {
            worst = errno;
        }
    }
    Err((Stage::Exec, 0, worst))
}

// ---- Parent-side helpers -----------------------------------------------------------------

enum Forked {
    Child,
    Parent { pid: Pid, pidfd: OwnedFd },
}

/// From <linux/sched.h> (Linux 5.7); not every libc crate version exports it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from <linux/sched.h>.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 without a new stack: fork semantics, plus namespaces, a pidfd, and optionally birth
/// inside a cgroup v2 directory (`CLONE_INTO_CGROUP`, given as an open fd).
fn clone3(ns_flags: u64, cgroup_fd: Option<RawFd>) -> Result<Forked, Errno> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: ns_flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: clone3 with no stack behaves like fork: the child continues on a copy of our
    // address space. `args` and `pidfd` are valid for the call. The child only runs
    // `child_main`, which makes raw syscalls on pre-built data and ends in execve or _exit.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: the kernel just returned this pidfd to us; we are its only owner.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Writes the child's uid/gid maps. Root may map any range. An unprivileged caller may only
/// map its own uid and gid, and must first give up `setgroups` in the namespace (otherwise the
/// container could drop a supplementary group the host uses to deny it access).
fn write_id_maps(pid: Pid, map: crate::IdMapping, rootless: bool) -> std::io::Result<()> {
    if rootless {
        std::fs::write(
            format!("/proc/{pid}/uid_map"),
            format!("0 {} 1\n", Uid::effective()),
        )?;
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")?;
        return std::fs::write(
            format!("/proc/{pid}/gid_map"),
            format!("0 {} 1\n", Gid::effective()),
        );
    }
    let line = format!("0 {} {}\n", map.host_base, map.count);
    std::fs::write(format!("/proc/{pid}/uid_map"), &line)?;
    std::fs::write(format!("/proc/{pid}/gid_map"), &line)
}

/// Kills and reaps the child if we leave early (error or panic), so no process leaks.
struct ChildGuard {
    pidfd: OwnedFd,
    reaped: bool,
}

impl ChildGuard {
    fn signal(&self, sig: Signal) {
        // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig as i32,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Blocks until the child exits and returns how.
    fn wait(&mut self) -> Result<ExitStatus, SpawnError> {
        loop {
            // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill in.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waitid on a pidfd we own, writing into the valid `info`.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED,
                )
            };
            if rc < 0 {
                if Errno::last() == Errno::EINTR {
                    continue;
                }
                return Err(SpawnError::io("waiting for the container", Errno::last()));
            }
            self.reaped = true;
            // SAFETY: waitid succeeded for a child exit, so si_status is the valid union member.
            let value = unsafe { info.si_status() };
            return Ok(if info.si_code == libc::CLD_EXITED {
                ExitStatus::Exited(value)
            } else {
                ExitStatus::Signaled(value)
            });
        }
    }

    fn reap(&mut self) {
        if !self.reaped {
            self.signal(Signal::SIGKILL);
            let _ = self.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.reap();
    }
}

/// Blocks the signals isolab forwards and reads them from a signalfd instead of a handler.
struct SignalForwarding {
    fd: SignalFd,
    old_mask: SigSet,
}

impl SignalForwarding {
    fn block() -> Result<SignalForwarding, SpawnError> {
        let mut set = SigSet::empty();
        for sig in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGWINCH,
        ] {
            set.add(sig);
        }
        let mut old_mask = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old_mask))
            .map_err(|e| SpawnError::io("blocking signals", e))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| SpawnError::io("creating a signalfd", e))?;
        Ok(SignalForwarding { fd, old_mask })
    }
}

impl Drop for SignalForwarding {
    fn drop(&mut self) {
        let _ =
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
    }
}

/// Polls the child's pidfd, the signalfd and the stdio relays until the child exits.
fn wait_loop(
    child: &mut ChildGuard,
    signals: Option<&SignalForwarding>,
    stdio: &mut ParentStdio,
) -> Result<ExitStatus, SpawnError> {
    let mut kill_deadline: Option<std::time::Instant> = None;
    let mut sources = stdio.poll_fds();
    loop {
        let mut fds = vec![PollFd::new(child.pidfd.as_fd(), PollFlags::POLLIN)];
        if let Some(s) = signals {
            fds.push(PollFd::new(s.fd.as_fd(), PollFlags::POLLIN));
        }
        let base = fds.len();
        // SAFETY: every fd in `sources` is owned by `stdio` (or is fd 0) and stays open while
        // this borrow lives.
        let borrowed: Vec<_> = sources
            .iter()
            .map(|(fd, _)| unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) })
            .collect();
        fds.extend(
            borrowed
                .iter()
                .map(|fd| PollFd::new(*fd, PollFlags::POLLIN)),
        );
        let timeout = match kill_deadline {
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                    .unwrap_or(PollTimeout::ZERO)
            }
            None => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SpawnError::io("polling the container", e)),
        }
        let ready = |i: usize| {
            fds[i].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let child_done = ready(0);
        let signal_ready = signals.is_some() && ready(1);
        let stdio_ready: Vec<Source> = (0..sources.len())
            .filter(|i| ready(base + i))
            .map(|i| sources[i].1)
            .collect();
        drop(fds);
        drop(borrowed);

        if child_done {
            return child.wait();
        }
        if signal_ready {
            if let Some(s) = signals {
                while let Ok(Some(info)) = s.fd.read_signal() {
                    let sig = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM);
                    if sig == Signal::SIGWINCH {
                        stdio.resize();
                        continue;
                    }
                    if kill_deadline.is_some() {
                        // Asked twice: stop now.
                        child.signal(Signal::SIGKILL);
                    } else {
                        child.signal(sig);
                        kill_deadline = Some(std::time::Instant::now() + STOP_GRACE);
                    }
                }
            }
        }
        for source in stdio_ready {
            if !stdio.pump(source) {
                sources.retain(|(_, s)| *s != source);
            }
        }
        if kill_deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            child.signal(Signal::SIGKILL);
            kill_deadline = Some(std::time::Instant::now() + Duration::from_secs(3600));
        }
    }
}
