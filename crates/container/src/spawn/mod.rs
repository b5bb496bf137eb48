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
//!    maps, plug its network namespace into the bridge. Only the parent can do these: they are
//!    done *to* the child from outside. The cgroup is the exception: on v2 the child is born in
//!    it (`CLONE_INTO_CGROUP`); on v1 its first act is to write `0` to the cgroup's `tasks`
//!    files, which the parent opened for it — a self-move skips the kernel's global lock and the
//!    RCU grace period a move by another process waits for ([`isolab_cgroups::Cgroup::self_attach_files`]).
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
//!
//! The modules follow the steps: `prepare` builds everything before the clone (step 1), `fork`
//! holds clone3 and the guard that kills the child on any early return (2), `parent` the
//! wire-up, the wait and the teardown (3, 5, 6), `child` the child's path from "go" to execve
//! (4), and `message` what the child tells the parent over the status pipe (5).

mod child;
mod errors;
mod fork;
mod message;
mod parent;
mod prepare;

pub use errors::{SpawnError, SpecError};
pub use message::{DecodeError, Stage};

use crate::rootfs::OverlayDirs;
use crate::stdio::{self, StdioMode};
use fork::{ChildGuard, Forked};
use isolab_cgroups::{CgroupRoot, CgroupStats};
use parent::SignalForwarding;
use prepare::{CgroupEntry, Pipes};
use serde::{Deserialize, Serialize};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How long a container gets to exit after isolab forwards SIGINT/SIGTERM before it is killed.
/// A PID 1 without a handler ignores those signals (the kernel protects namespace inits), so
/// without this a Ctrl-C could never stop `sleep` running as PID 1.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

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
    /// Prepared network attachment for [`crate::NetworkMode::Bridge`].
    pub network: Option<crate::network::BridgePlan>,
    /// A compiled seccomp filter for [`crate::SeccompMode::Default`].
    pub seccomp: Option<&'a crate::seccomp::SeccompProgram>,
    /// Called with the workload's host PID once it has exec'ed (e.g. to record it in the
    /// container's state so `pause` and `ls` can find it).
    pub on_start: Option<Box<dyn FnOnce(i32) + 'a>>,
    /// Called with the child's host PID after it is wired up and before it builds its root
    /// filesystem, while it waits in its new namespaces: where an OCI runtime runs its
    /// prestart, createRuntime and createContainer hooks. An error aborts the start.
    pub before_start: Option<BeforeStart<'a>>,
    /// Descriptors 3 .. 3+N the workload inherits open (an OCI runtime's `--preserve-fds`,
    /// for socket activation); every other one above 2 is closed at exec.
    pub preserve_fds: u32,
}

/// A caller's hook failure, passed through [`SpawnError::Hook`] unchanged.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// [`RunContext::before_start`]: called with the child's host PID.
pub type BeforeStart<'a> = Box<dyn FnOnce(i32) -> Result<(), HookError> + 'a>;

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
            .field("before_start", &self.before_start.is_some())
            .field("preserve_fds", &self.preserve_fds)
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
            before_start: None,
            preserve_fds: 0,
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
    /// Creating the cgroup and writing its limits. Joining it is not here: on v2 the child is
    /// born inside it (`CLONE_INTO_CGROUP`), on v1 joining it is the child's own first step.
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

/// Monotonic clock in nanoseconds; the child reads it too (a vDSO call, no allocation).
fn mono_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

fn us_between(from_ns: u64, to_ns: u64) -> u64 {
    to_ns.saturating_sub(from_ns) / 1000
}

/// Runs `spec` to completion. The heart of isolab's container engine.
pub fn run(spec: &crate::ContainerSpec, mut ctx: RunContext<'_>) -> Result<RunOutcome, SpawnError> {
    let mut clock = Clock::started();
    let on_start = ctx.on_start.take();
    // 1. to 4.: prepare, clone, wire up, let the child go.
    let Launched {
        prepared,
        mut child,
        mut parent_stdio,
        signals,
        network,
        status_r,
    } = launch(spec, &mut ctx, None, &mut clock)?;

    // 5. Exec is the start event.
    let (setup, exec_ns) = parent::await_exec(&status_r, &mut child, &prepared, spec)?;
    if let Some(hook) = on_start {
        hook(child.pid.as_raw());
    }

    // 6. Wait, then tear down.
    let status = parent::wait_loop(&mut child, signals.as_ref(), &mut parent_stdio)?;
    clock.exit_ns = mono_ns();
    parent_stdio.drain();
    drop((parent_stdio, signals));
    clock.cleanup_ns = mono_ns();
    let teardown = parent::tear_down(prepared.cgroup, network, status)?;
    clock.end_ns = mono_ns();
    Ok(RunOutcome {
        pid: child.pid.as_raw(),
        status,
        oom_killed: teardown.oom_killed,
        cgroup_stats: teardown.cgroup_stats,
        phases: clock.phases(setup, exec_ns),
    })
}

/// The FIFO a created container waits on: a descriptor of its directory (`O_PATH`) and its
/// name there.
#[derive(Debug)]
pub struct ExecFifo {
    pub dir: std::os::fd::OwnedFd,
    pub name: std::ffi::CString,
}

/// A container built and left one step before `execve`: the OCI runtime's *created* state.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    /// Its first process, in the caller's pid namespace. Still the caller's child; once the
    /// caller exits it is re-parented to the nearest child subreaper (podman's conmon).
    pub pid: i32,
}

/// Builds `spec` like [`run`] does — cgroup, namespaces, root filesystem, credentials,
/// seccomp — but the child stops before `execve`, blocked opening `exec_fifo` for writing,
/// and this returns. Whoever opens the
/// FIFO for reading later (`isolab-runtime start`) lets it exec.
///
/// Nothing is torn down here: the cgroup stays, the child is not killed when the caller exits
/// (no parent-death signal), and its exit is for the caller's subreaper to collect. The command
/// is looked up before the child reports, so a missing one still fails here, as with runc.
pub fn create(
    spec: &crate::ContainerSpec,
    mut ctx: RunContext<'_>,
    exec_fifo: &ExecFifo,
) -> Result<Created, SpawnError> {
    if ctx.network.is_some() {
        return Err(SpawnError::CreatedWithBridge);
    }
    let mut clock = Clock::started();
    let fifo = (exec_fifo.dir.as_raw_fd(), exec_fifo.name.as_c_str());
    let Launched {
        mut prepared,
        mut child,
        status_r,
        ..
    } = launch(spec, &mut ctx, Some(fifo), &mut clock)?;
    parent::await_created(&status_r, &mut child, &prepared, spec)?;
    if let Some(cg) = prepared.cgroup.as_mut() {
        cg.set_destroy_on_drop(false);
    }
    Ok(Created {
        pid: child.detach().as_raw(),
    })
}

/// What steps 1 to 4 leave for [`run`] and [`create`].
struct Launched<'a> {
    prepared: prepare::Prepared<'a>,
    child: ChildGuard,
    parent_stdio: stdio::ParentStdio,
    signals: Option<SignalForwarding>,
    network: Option<crate::network::BridgePlan>,
    /// Where the child's messages arrive (step 5).
    status_r: std::os::fd::OwnedFd,
}

/// Steps 1 to 4: prepare, clone, wire up (running the caller's `before_start` hook while the
/// child waits), let the child go. With `exec_fifo` the child stops before `execve`.
fn launch<'a>(
    spec: &crate::ContainerSpec,
    ctx: &mut RunContext<'a>,
    exec_fifo: Option<(std::os::fd::RawFd, &std::ffi::CStr)>,
    clock: &mut Clock,
) -> Result<Launched<'a>, SpawnError> {
    let rootless = prepare::check_privileges(spec, ctx)?;
    prepare::validate(spec)?;

    // 1. Prepare.
    let prepared = prepare::prepare(spec, ctx, rootless)?;
    clock.cgroup_ns = prepared.cgroup_ns;
    let (mut parent_stdio, child_stdio) =
        stdio::prepare(&ctx.stdio).map_err(|e| SpawnError::io("setting up stdio", e))?;
    let pipes = Pipes::new()?;
    let network = ctx.network.take();
    let signals = if ctx.forward_signals {
        Some(SignalForwarding::block()?)
    } else {
        None
    };
    let entry = CgroupEntry::open(prepared.cgroup.as_ref())?;
    let mut plan = prepared.child_plan(
        spec,
        &entry,
        &child_stdio,
        &pipes,
        signals.as_ref().map(|s| &s.old_mask),
        network.as_ref().map(|n| n.child()),
    );
    plan.exec_fifo = exec_fifo;
    plan.preserve_fds = ctx.preserve_fds;

    // 2. clone3: in the child, `child::main` runs and never returns.
    let t_clone = mono_ns();
    let child = {
        let _born_in = fork::JoinedPidNs::enter(&prepared.joined)?;
        clone_child(spec, &entry, &plan)?
    };
    clock.clone_ns = mono_ns() - t_clone;
    drop((child_stdio, entry));
    let (sync_w, status_r) = pipes.into_parent_ends();

    // 3. Wire up from outside, then 4. let the child go.
    clock.network_ns = parent::wire_up(spec, child.pid, rootless, network.as_ref())?;
    if let Some(hook) = ctx.before_start.take() {
        hook(child.pid.as_raw()).map_err(SpawnError::Hook)?;
    }
    parent::release(sync_w, &mut parent_stdio)?;
    Ok(Launched {
        prepared,
        child,
        parent_stdio,
        signals,
        network,
        status_r,
    })
}

/// What the parent measures during [`run`]: durations of its own steps, and the instants
/// (monotonic ns) between them.
#[derive(Debug, Default)]
struct Clock {
    start_ns: u64,
    cgroup_ns: u64,
    clone_ns: u64,
    network_ns: u64,
    exit_ns: u64,
    cleanup_ns: u64,
    end_ns: u64,
}

impl Clock {
    fn started() -> Clock {
        Clock {
            start_ns: mono_ns(),
            ..Clock::default()
        }
    }

    /// Combines the parent's measurements with the child's (`setup`, and when it exec'ed).
    fn phases(&self, setup: message::SetupTimes, exec_ns: u64) -> Phases {
        Phases {
            cgroup_us: self.cgroup_ns / 1000,
            clone_us: self.clone_ns / 1000,
            network_us: self.network_ns / 1000,
            rootfs_us: us_between(setup.go_ns, setup.rootfs_ns),
            exec_setup_us: us_between(setup.rootfs_ns, exec_ns),
            start_to_exec_us: us_between(self.start_ns, exec_ns),
            run_us: us_between(exec_ns, self.exit_ns),
            cleanup_us: us_between(self.cleanup_ns, self.end_ns),
            total_us: us_between(self.start_ns, self.end_ns),
        }
    }
}

/// Step 2: clones the child into its new namespaces (and, on cgroup v2, its cgroup). In the
/// child this never returns: it runs [`child::main`] to execve or exit.
fn clone_child(
    spec: &crate::ContainerSpec,
    entry: &CgroupEntry,
    plan: &child::ChildPlan<'_>,
) -> Result<ChildGuard, SpawnError> {
    let flags = fork::namespace_flags(spec.namespaces);
    let cgroup_fd = entry.into_cgroup.as_ref().map(|fd| fd.as_raw_fd());
    match fork::clone3(flags, cgroup_fd) {
        Ok(Forked::Child) => child::main(plan),
        Ok(Forked::Parent(guard)) => Ok(guard),
        Err(errno) => Err(SpawnError::Clone {
            errno,
            namespaces: spec.namespaces.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
