//! Step 4, in the child: from the parent's "go" to `execve`.
//!
//! The child is a copy of a possibly multi-threaded parent (the test harness, the benches).
//! Another thread may have held malloc's lock (or any other) at the instant of the clone, and
//! that thread does not exist in the child, so the lock would never be released. Between clone
//! and exec the child therefore allocates nothing and takes no locks: it only makes raw system
//! calls on the [`ChildPlan`] the parent prepared, and reports back with fixed-size
//! [`ChildMessage`]s built on the stack — the same rule `posix_spawn` and Rust's `Command`
//! follow.

use super::message::{ChildFailure, ChildMessage, SetupTimes, Stage};
use super::mono_ns;
use super::prepare::ExecPlan;
use crate::credentials::{CredentialStep, Workload};
use crate::rootfs::MountPlan;
use crate::stdio::{self, ChildStdio};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{read, write, Gid, Uid};
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Everything the child reads, borrowed from the parent's stack before the clone.
pub(super) struct ChildPlan<'a> {
    /// Open cgroup `tasks`/`cgroup.procs` files the child writes `0` to, first of all.
    pub cgroup_attach: &'a [OwnedFd],
    pub mounts: Option<&'a MountPlan>,
    pub exec: &'a ExecPlan,
    pub hostname: Option<&'a OsStr>,
    pub new_cgroupns: bool,
    pub userns: bool,
    pub new_netns: bool,
    pub child_net: Option<&'a crate::network::ChildNet>,
    pub user: (u32, u32),
    pub init: bool,
    pub capabilities: crate::CapSet,
    pub process_caps: Option<&'a crate::credentials::ProcessCaps>,
    pub rlimits: &'a [crate::credentials::Rlimit],
    pub no_new_privileges: bool,
    pub additional_gids: &'a [Gid],
    pub seccomp: Option<&'a crate::seccomp::SeccompProgram>,
    pub stdio: &'a ChildStdio,
    pub old_sigmask: Option<&'a SigSet>,
    pub sync_r: RawFd,
    pub sync_w: RawFd,
    pub status_w: RawFd,
    /// `create`: an `O_PATH` descriptor of the FIFO to block on before `execve`.
    pub exec_fifo: Option<(RawFd, &'a std::ffi::CStr)>,
    /// Existing namespaces to join (`CLONE_NEW*` flag, fd), the pid namespace aside.
    pub joined: &'a [(libc::c_int, OwnedFd)],
    /// The workload's umask, when the spec sets one.
    pub umask: Option<u32>,
    /// How many descriptors from 3 up the workload inherits (`--preserve-fds`).
    pub preserve_fds: u32,
}

type Step = Result<(), ChildFailure>;

/// Runs in the cloned child. Never returns: it becomes the workload or exits.
pub(super) fn main(plan: &ChildPlan<'_>) -> ! {
    let go_ns = mono_ns();
    let mut times = SetupTimes {
        go_ns,
        rootfs_ns: go_ns,
    };
    // Only returns when something failed: tell the parent, then exit like a shell would.
    let failure = match setup_and_exec(plan, &mut times) {
        Err(failure) => failure,
        Ok(never) => match never {},
    };
    send(plan, ChildMessage::Failed { times, failure });
    if plan.exec_fifo.is_some() && failure.stage == Stage::Exec {
        // Created and started: the parent is gone, so say it where the user will look.
        let msg: &[u8] = b"isolab: the container's command could not be executed\n";
        // SAFETY: fd 2 is this process's stderr (possibly closed: then write just fails).
        let _ = write(unsafe { BorrowedFd::borrow_raw(2) }, msg);
    }
    let code = match (failure.stage, Errno::from_raw(failure.errno)) {
        (Stage::Exec, Errno::ENOENT) => 127,
        (Stage::Exec, _) => 126,
        _ => 125,
    };
    // SAFETY: _exit ends the process without running the parent's atexit handlers or
    // destructors, which belong to the parent's copy of the state.
    unsafe { libc::_exit(code) }
}

/// The child's setup as named steps, in the order the kernel requires, ending in execve.
fn setup_and_exec(
    plan: &ChildPlan<'_>,
    times: &mut SetupTimes,
) -> Result<std::convert::Infallible, ChildFailure> {
    join_cgroup(plan)?;
    wait_for_go(plan)?;
    join_namespaces(plan)?;
    enter_namespaces(plan)?;
    if let Some(mounts) = plan.mounts {
        mounts.apply().map_err(|f| ChildFailure {
            stage: Stage::Rootfs,
            index: f.index,
            errno: f.errno,
        })?;
    }
    times.rootfs_ns = mono_ns();
    set_identity(plan)?;
    connect_stdio(plan.stdio)?;
    become_workload_user(plan)?;
    nix::unistd::chdir(plan.exec.workdir.as_c_str()).map_err(ChildFailure::at(Stage::Workdir))?;
    ready_for_exec(plan)?;
    if let Some(fifo) = plan.exec_fifo {
        wait_for_start(plan, *times, fifo)?;
    }
    if plan.init {
        become_init(plan.status_w);
    }
    // Tell the parent the exec instant, then exec. If exec fails we send a failure too.
    send(
        plan,
        ChildMessage::Exec {
            times: *times,
            exec_ns: mono_ns(),
        },
    );
    exec_candidates(plan.exec)
}

/// Writes one message into the status pipe. Encoded on the stack: nothing is allocated.
fn send(plan: &ChildPlan<'_>, message: ChildMessage) {
    // SAFETY: `status_w` is the open write end of the status pipe, owned by this process.
    let status = unsafe { BorrowedFd::borrow_raw(plan.status_w) };
    let _ = write(status, &message.encode());
}

/// Dies with the parent, and moves into the cgroup before anything else runs or allocates (so
/// it is all charged there).
fn join_cgroup(plan: &ChildPlan<'_>) -> Step {
    // A container must not outlive the isolab that manages it. (If the parent died before
    // this line, the sync read in `wait_for_go` sees EOF instead.) A created one must: its
    // creator exits right after `create`.
    if plan.exec_fifo.is_none() {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(ChildFailure::at(Stage::Sync))?;
    }
    // SAFETY: closing our copy of the parent's end of the sync pipe; nothing else uses it here.
    unsafe { libc::close(plan.sync_w) };
    for (i, file) in plan.cgroup_attach.iter().enumerate() {
        write(file, b"0").map_err(|e| ChildFailure {
            stage: Stage::Cgroup,
            index: i as u32,
            errno: e as i32,
        })?;
    }
    Ok(())
}

/// Waits for the parent to write our maps and plug in our network.
fn wait_for_go(plan: &ChildPlan<'_>) -> Step {
    let mut byte = [0u8; 1];
    // SAFETY: `sync_r` is the open read end of the sync pipe, owned by this process.
    let sync = unsafe { BorrowedFd::borrow_raw(plan.sync_r) };
    loop {
        match read(sync, &mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(ChildFailure::at(Stage::Sync)(Errno::EPIPE)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(ChildFailure::at(Stage::Sync)(e)),
        }
    }
}

/// Joins the existing namespaces the spec names (`setns`), mount last: joining it also moves
/// this process's root and working directory to that namespace's.
fn join_namespaces(plan: &ChildPlan<'_>) -> Step {
    let mount = libc::CLONE_NEWNS;
    // The pid namespace was joined by the parent before the clone: we were born in it.
    let joinable = plan.joined.iter().filter(|(f, _)| *f != libc::CLONE_NEWPID);
    let others = joinable.clone().filter(|(flag, _)| *flag != mount);
    let mounts = joinable.filter(|(flag, _)| *flag == mount);
    for (flag, fd) in others.chain(mounts) {
        // SAFETY: setns with a descriptor the parent opened and keeps open, and a type flag.
        if unsafe { libc::setns(fd.as_raw_fd(), *flag) } != 0 {
            return Err(ChildFailure::at(Stage::JoinNamespace)(Errno::last()));
        }
    }
    Ok(())
}

/// Becomes root of the user namespace and unshares the cgroup namespace.
fn enter_namespaces(plan: &ChildPlan<'_>) -> Step {
    if plan.userns {
        // Our credentials still hold the host's uid 0, which the new namespace does not map;
        // become the namespace's root (host uid = the mapping base) before touching files.
        let root_gid = Gid::from_raw(0);
        let root_uid = Uid::from_raw(0);
        nix::unistd::setresgid(root_gid, root_gid, root_gid)
            .map_err(ChildFailure::at(Stage::Ids))?;
        nix::unistd::setresuid(root_uid, root_uid, root_uid)
            .map_err(ChildFailure::at(Stage::Ids))?;
    }
    if plan.new_cgroupns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(ChildFailure::at(Stage::CgroupNs))?;
    }
    Ok(())
}

/// Hostname, network interfaces, and the capability bounding set: root inside keeps only the
/// allowed capabilities (the ceiling for everything it execs).
fn set_identity(plan: &ChildPlan<'_>) -> Step {
    if let Some(name) = plan.hostname {
        nix::unistd::sethostname(name).map_err(ChildFailure::at(Stage::Hostname))?;
    }
    if plan.new_netns {
        match plan.child_net {
            Some(net) => crate::network::configure_child(net),
            None => crate::network::loopback_up(),
        }
        .map_err(|e| ChildFailure {
            stage: Stage::Network,
            index: e.step as u32,
            errno: e.errno,
        })?;
    }
    plan.capabilities
        .restrict_bounding_set()
        .map_err(ChildFailure::at(Stage::Capabilities))
}

/// stdio: a pty from the container's own devpts, or the prepared fds onto 0/1/2.
fn connect_stdio(stdio: &ChildStdio) -> Step {
    if let Some((socket, winsize)) = &stdio.console {
        stdio::open_console(socket, winsize.as_ref()).map_err(ChildFailure::at(Stage::Stdio))?;
    }
    for (target, fd) in stdio.fds.iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2 onto 0/1/2 replaces our stdio with a valid fd the parent prepared.
            if unsafe { libc::dup2(fd.as_raw_fd(), target as i32) } < 0 {
                return Err(ChildFailure::at(Stage::Stdio)(Errno::last()));
            }
        }
    }
    Ok(())
}

/// Who the workload runs as: see [`crate::credentials::Workload::assume`].
fn become_workload_user(plan: &ChildPlan<'_>) -> Step {
    plan.workload().assume().map_err(credential_failure)
}

/// A failed credential step as the stage the parent reports.
fn credential_failure((step, errno): (CredentialStep, Errno)) -> ChildFailure {
    let stage = match step {
        CredentialStep::Rlimits => Stage::Rlimits,
        CredentialStep::Seccomp => Stage::Seccomp,
        CredentialStep::User => Stage::User,
        CredentialStep::Capabilities => Stage::Capabilities,
    };
    ChildFailure::at(stage)(errno)
}

impl ChildPlan<'_> {
    fn workload(&self) -> Workload<'_> {
        Workload {
            rlimits: self.rlimits,
            seccomp: self.seccomp,
            no_new_privileges: self.no_new_privileges,
            user: self.user,
            groups: self.additional_gids,
            caps: self.process_caps,
        }
    }
}

/// The last steps before exec: a normal signal state for the workload, every fd from 3 up
/// closed at exec, and with no-new-privileges the seccomp filter.
fn ready_for_exec(plan: &ChildPlan<'_>) -> Step {
    if let Some(mask) = plan.umask {
        // SAFETY: umask takes a mode and cannot fail.
        unsafe { libc::umask(mask as libc::mode_t) };
    }
    // Rust ignores SIGPIPE and we may have blocked the forwarded signals.
    // SAFETY: restoring the default disposition of SIGPIPE installs no handler code.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) }
        .map_err(ChildFailure::at(Stage::Exec))?;
    if let Some(mask) = plan.old_sigmask {
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None)
            .map_err(ChildFailure::at(Stage::Exec))?;
    }
    // Everything from fd 3 up (past the ones the caller preserves) closes at exec, our status
    // pipe included: that is the signal.
    crate::exec_path::close_from_at_exec(3 + plan.preserve_fds);
    plan.workload().seal().map_err(credential_failure)
}

/// `create`: checks the command exists (a missing one fails `create`, as with runc), tells the
/// parent the container is created, and blocks until `start` opens the FIFO's read end.
///
/// The FIFO is opened relative to a descriptor of its directory, opened before the clone: its
/// path is outside the new root, and there may be no /proc to reopen it through (a container
/// without a mount namespace of its own mounts nothing). An open for writing of a FIFO waits
/// for a reader: that wait *is* the created state. After the message the status pipe is closed
/// (the parent is about to exit), so a later exec failure can only be told on stderr.
fn wait_for_start(
    plan: &ChildPlan<'_>,
    times: SetupTimes,
    (dir, name): (RawFd, &std::ffi::CStr),
) -> Step {
    command_exists(plan.exec)?;
    send(plan, ChildMessage::Created { times });
    // SAFETY: closing our status pipe end; nothing writes to it after this.
    unsafe { libc::close(plan.status_w) };
    let writer = loop {
        // SAFETY: openat with a directory descriptor the parent opened (it stays valid after
        // pivot_root or chroot: it names the host's directory) and a NUL-terminated name.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor; we are its only owner.
            break unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(ChildFailure::at(Stage::Start)(e)),
        }
    };
    write(&writer, b"0").map_err(ChildFailure::at(Stage::Start))?;
    // Closed now, not at exec: it may hold the status pipe's old descriptor number, which a
    // failed exec would otherwise report into.
    drop(writer);
    Ok(())
}

/// Whether one of the command's candidate paths is executable (what `execve` will need).
fn command_exists(exec: &ExecPlan) -> Step {
    let mut worst = Errno::ENOENT;
    for path in &exec.candidates {
        // SAFETY: faccessat reads the NUL-terminated path; no memory is written.
        let rc =
            unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::X_OK, libc::AT_EACCESS) };
        match Errno::last() {
            _ if rc == 0 => return Ok(()),
            Errno::ENOENT | Errno::ENOTDIR => {}
            errno => worst = errno,
        }
    }
    Err(ChildFailure::at(Stage::Exec)(worst))
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
    reap_until_exit(child)
}

/// PID 1's loop: reap every child (orphans included) until the workload exits, then exit with
/// its status.
fn reap_until_exit(workload: libc::pid_t) -> ! {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes the status into the valid local.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == workload {
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

/// Tries each PATH candidate like execvp; returns only if none could be executed.
fn exec_candidates(exec: &ExecPlan) -> Result<std::convert::Infallible, ChildFailure> {
    // Built on the stack: a null-terminated array of pointers into the prepared C strings.
    const MAX_ARGS: usize = 256;
    let mut argv = [std::ptr::null::<libc::c_char>(); MAX_ARGS + 1];
    let mut envp = [std::ptr::null::<libc::c_char>(); MAX_ARGS + 1];
    let exec_failed = ChildFailure::at(Stage::Exec);
    if exec.argv.len() > MAX_ARGS || exec.envp.len() > MAX_ARGS {
        return Err(exec_failed(Errno::E2BIG));
    }
    for (slot, a) in argv.iter_mut().zip(&exec.argv) {
        *slot = a.as_ptr();
    }
    for (slot, e) in envp.iter_mut().zip(&exec.envp) {
        *slot = e.as_ptr();
    }
    // SAFETY: argv and envp are null-terminated arrays (the slots past the last string stay
    // null) of pointers into the prepared C strings, alive until execve replaces the image.
    let errno =
        unsafe { crate::exec_path::execve_each(&exec.candidates, argv.as_ptr(), envp.as_ptr()) };
    Err(exec_failed(errno))
}
