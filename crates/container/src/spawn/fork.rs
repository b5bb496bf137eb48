//! Step 2: `clone3()`, and the guard that makes sure the child never outlives an error.
//!
//! clone3 without a new stack has fork semantics: the child continues on a copy of the
//! parent's address space and file table, right after the call. The flags make the kernel
//! create the new namespaces and put the child in them in the same step; `CLONE_PIDFD` hands
//! the parent a file descriptor for the child, which it polls, signals and waits on without the
//! races of a pid that may be reused; `CLONE_INTO_CGROUP` (cgroup v2) has the child born inside
//! its cgroup, so it never runs a cycle outside its limits.

use super::errors::SpawnError;
use super::ExitStatus;
use crate::namespaces::{Namespace, NamespaceSet};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Which side of the clone this is.
pub(super) enum Forked {
    Child,
    Parent(ChildGuard),
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

/// The `CLONE_NEW*` flags for `namespaces`. The cgroup namespace is left out: the child
/// unshares it *after* it is in its cgroup, so that cgroup becomes the namespace's root.
pub(super) fn namespace_flags(namespaces: NamespaceSet) -> u64 {
    namespaces
        .iter()
        .filter(|ns| *ns != Namespace::Cgroup)
        .fold(0, |flags, ns| flags | ns.clone_flag())
}

/// clone3 without a new stack: fork semantics, plus namespaces, a pidfd, and optionally birth
/// inside a cgroup v2 directory (`CLONE_INTO_CGROUP`, given as an open fd).
pub(super) fn clone3(ns_flags: u64, cgroup_fd: Option<RawFd>) -> Result<Forked, Errno> {
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
    // `child::main`, which makes raw syscalls on pre-built data and ends in execve or _exit.
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
        pid => Ok(Forked::Parent(ChildGuard {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: the kernel just returned this pidfd to us; we are its only owner.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
            reaped: false,
        })),
    }
}

/// The parent's handle on the child. Kills and reaps the child if we leave early (error or
/// panic), so no process leaks.
pub(super) struct ChildGuard {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    reaped: bool,
}

impl ChildGuard {
    pub fn signal(&self, sig: Signal) {
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
    pub fn wait(&mut self) -> Result<ExitStatus, SpawnError> {
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

    /// Lets the child live on past this guard (a created container): returns its pid; it is
    /// neither killed nor waited for here.
    pub fn detach(mut self) -> Pid {
        self.reaped = true;
        self.pid
    }

    /// Kills the child, unless it was already reaped, and waits for it.
    pub fn reap(&mut self) {
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

/// While alive, children of this thread are born in a joined pid namespace.
///
/// `setns` into a pid namespace does not move the caller (its pid cannot change); it sets
/// where the caller's *next children* are born. So joining one is the parent's job, on this
/// thread, right before the clone; dropping this value points the thread back at its own pid
/// namespace.
pub(super) struct JoinedPidNs {
    own: Option<OwnedFd>,
}

impl JoinedPidNs {
    pub fn enter(joined: &[(libc::c_int, OwnedFd)]) -> Result<JoinedPidNs, SpawnError> {
        let Some((_, target)) = joined.iter().find(|(f, _)| *f == libc::CLONE_NEWPID) else {
            return Ok(JoinedPidNs { own: None });
        };
        let own = nix::fcntl::open(
            "/proc/thread-self/ns/pid",
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| SpawnError::io("opening our own pid namespace", e))?;
        nix::sched::setns(target, nix::sched::CloneFlags::CLONE_NEWPID).map_err(|e| {
            SpawnError::io("joining the pid namespace (linux.namespaces[].path)", e)
        })?;
        Ok(JoinedPidNs { own: Some(own) })
    }
}

impl Drop for JoinedPidNs {
    fn drop(&mut self) {
        if let Some(own) = &self.own {
            let _ = nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWPID);
        }
    }
}
