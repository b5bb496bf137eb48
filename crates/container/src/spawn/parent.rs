//! Steps 3, 5 and 6, in the parent: wire the child up from outside, learn that it exec'ed,
//! wait for it while forwarding signals and relaying stdio, and tear down what it used.

use super::errors::SpawnError;
use super::fork::ChildGuard;
use super::message::{ChildFailure, ChildMessage, SetupTimes, MESSAGE_LEN};
use super::prepare::Prepared;
use super::{mono_ns, ExitStatus, STOP_GRACE};
use crate::network::BridgePlan;
use crate::spec::ContainerSpec;
use crate::stdio::{ParentStdio, Source};
use isolab_cgroups::{Cgroup, CgroupStats};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{read, Gid, Pid, Uid};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Step 3: what only the parent can do, *to* the child from outside, while the child waits:
/// its uid/gid maps, its OOM score, its network. Returns how long the network took (ns).
pub(super) fn wire_up(
    spec: &ContainerSpec,
    pid: Pid,
    rootless: bool,
    network: Option<&BridgePlan>,
) -> Result<u64, SpawnError> {
    if spec.namespaces.contains(crate::Namespace::User) {
        let map = spec.id_mapping.unwrap_or_default();
        write_id_maps(pid, map, rootless)
            .map_err(|e| SpawnError::io("writing the uid/gid maps", e))?;
    }
    if let Some(adj) = spec.oom_score_adj {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
            .map_err(|e| SpawnError::io("setting oom_score_adj", e))?;
    }
    let Some(net) = network else {
        return Ok(0);
    };
    let t_net = mono_ns();
    net.attach(pid.as_raw()).map_err(SpawnError::Network)?;
    Ok(mono_ns() - t_net)
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

/// Step 4: lets the child go. With -t the child opens the pty inside the container and sends
/// us the master.
pub(super) fn release(sync_w: OwnedFd, stdio: &mut ParentStdio) -> Result<(), SpawnError> {
    nix::unistd::write(&sync_w, b"g").map_err(|e| SpawnError::io("releasing the child", e))?;
    drop(sync_w);
    stdio
        .receive_console()
        .map_err(|e| SpawnError::io("receiving the container's terminal", e))?;
    Ok(())
}

/// Step 5: waits until the child has exec'ed and returns its setup times and the exec instant.
/// A child that failed is reaped, and its failure becomes the error the user reads.
pub(super) fn await_exec(
    status_r: &OwnedFd,
    child: &mut ChildGuard,
    prepared: &Prepared<'_>,
    spec: &ContainerSpec,
) -> Result<(SetupTimes, u64), SpawnError> {
    let report = settle(status_r, child, prepared, spec)?;
    let seen_ns = mono_ns();
    Ok((report.times, report.exec_ns.unwrap_or(seen_ns)))
}

/// `create`'s step 5: waits until the child reports itself set up and waiting to be started.
pub(super) fn await_created(
    status_r: &OwnedFd,
    child: &mut ChildGuard,
    prepared: &Prepared<'_>,
    spec: &ContainerSpec,
) -> Result<(), SpawnError> {
    settle(status_r, child, prepared, spec).map(|_| ())
}

/// Reads the child's report; a child that failed is reaped and its failure becomes the error.
fn settle(
    status_r: &OwnedFd,
    child: &mut ChildGuard,
    prepared: &Prepared<'_>,
    spec: &ContainerSpec,
) -> Result<Report, SpawnError> {
    let report = read_report(status_r)?;
    if let Some(failure) = report.failure {
        child.reap();
        let mounts = prepared.mounts.as_ref();
        return Err(SpawnError::from_child(
            failure,
            mounts,
            &prepared.exec,
            spec,
        ));
    }
    Ok(report)
}

/// What the child reported before its status pipe closed.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub times: SetupTimes,
    /// When the child called execve (None if it never got there).
    pub exec_ns: Option<u64>,
    /// Why the child gave up, if it did (an exec that failed after the exec message included).
    pub failure: Option<ChildFailure>,
    /// The child is set up and waits to be started (`create`).
    pub created: bool,
}

/// Reads the child's messages until the pipe closes (exec succeeded, or the child died).
pub(super) fn read_report(status_r: &OwnedFd) -> Result<Report, SpawnError> {
    let mut report = Report::default();
    while let Some(message) = read_message(status_r)? {
        match message {
            ChildMessage::Exec { times, exec_ns } => {
                report.times = times;
                report.exec_ns = Some(exec_ns);
            }
            // Only a child told to wait before exec sends this (`create`).
            ChildMessage::Created { times } => {
                report.times = times;
                report.created = true;
            }
            ChildMessage::Failed { times, failure } => {
                report.times = times;
                report.failure = Some(failure);
            }
        }
    }
    if report.exec_ns.is_none() && report.failure.is_none() && !report.created {
        return Err(SpawnError::ChildVanished);
    }
    Ok(report)
}

/// Reads one message from the status pipe; None at end-of-file (the child has exec'ed or
/// died). The child writes each message in one piece, but a read may still return it short.
fn read_message(status_r: &OwnedFd) -> Result<Option<ChildMessage>, SpawnError> {
    let mut buf = [0u8; MESSAGE_LEN];
    let mut len = 0;
    while len < MESSAGE_LEN {
        match read(status_r, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(SpawnError::io("reading the child's status", e)),
        }
    }
    if len == 0 {
        return Ok(None);
    }
    ChildMessage::decode(&buf[..len])
        .map(Some)
        .map_err(SpawnError::ChildMessage)
}

/// Blocks the signals isolab forwards and reads them from a signalfd instead of a handler.
pub(super) struct SignalForwarding {
    fd: SignalFd,
    pub old_mask: SigSet,
}

impl SignalForwarding {
    pub fn block() -> Result<SignalForwarding, SpawnError> {
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

    /// Forwards the pending signals to the child; resizes the terminal on SIGWINCH. The first
    /// SIGINT/SIGTERM starts the grace period; a second one, or its end, kills the child.
    fn forward(&self, child: &ChildGuard, stdio: &mut ParentStdio, kill_at: &mut Option<Instant>) {
        while let Ok(Some(info)) = self.fd.read_signal() {
            let sig = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM);
            if sig == Signal::SIGWINCH {
                stdio.resize();
            } else if kill_at.is_some() {
                // Asked twice: stop now.
                child.signal(Signal::SIGKILL);
            } else {
                child.signal(sig);
                *kill_at = Some(Instant::now() + STOP_GRACE);
            }
        }
    }
}

impl Drop for SignalForwarding {
    fn drop(&mut self) {
        let _ =
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
    }
}

/// What one poll found ready.
struct Ready {
    child_done: bool,
    signals: bool,
    stdio: Vec<Source>,
}

/// Step 6: polls the child's pidfd, the signalfd and the stdio relays until the child exits.
pub(super) fn wait_loop(
    child: &mut ChildGuard,
    signals: Option<&SignalForwarding>,
    stdio: &mut ParentStdio,
) -> Result<ExitStatus, SpawnError> {
    let mut kill_at: Option<Instant> = None;
    let mut sources = stdio.poll_fds();
    loop {
        let Some(ready) = poll_once(child, signals, &sources, kill_at)? else {
            continue;
        };
        if ready.child_done {
            return child.wait();
        }
        if let Some(s) = signals.filter(|_| ready.signals) {
            s.forward(child, stdio, &mut kill_at);
        }
        for source in ready.stdio {
            if !stdio.pump(source) {
                sources.retain(|(_, s)| *s != source);
            }
        }
        if kill_at.is_some_and(|d| Instant::now() >= d) {
            child.signal(Signal::SIGKILL);
            kill_at = Some(Instant::now() + Duration::from_secs(3600));
        }
    }
}

/// One poll of the pidfd, the signalfd and `sources`, waiting until `kill_at` at most. None
/// when interrupted.
fn poll_once(
    child: &ChildGuard,
    signals: Option<&SignalForwarding>,
    sources: &[(std::os::fd::RawFd, Source)],
    kill_at: Option<Instant>,
) -> Result<Option<Ready>, SpawnError> {
    let mut fds = vec![PollFd::new(child.pidfd.as_fd(), PollFlags::POLLIN)];
    if let Some(s) = signals {
        fds.push(PollFd::new(s.fd.as_fd(), PollFlags::POLLIN));
    }
    let base = fds.len();
    // SAFETY: every fd in `sources` is owned by the caller's stdio (or is fd 0) and stays open
    // while this borrow lives.
    let borrowed: Vec<_> = sources
        .iter()
        .map(|(fd, _)| unsafe { BorrowedFd::borrow_raw(*fd) })
        .collect();
    fds.extend(
        borrowed
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN)),
    );
    let timeout = match kill_at {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO)
        }
        None => PollTimeout::NONE,
    };
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok(None),
        Err(e) => return Err(SpawnError::io("polling the container", e)),
    }
    let ready = |i: usize| {
        fds[i].revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
        })
    };
    Ok(Some(Ready {
        child_done: ready(0),
        signals: signals.is_some() && ready(1),
        stdio: (0..sources.len())
            .filter(|i| ready(base + i))
            .map(|i| sources[i].1)
            .collect(),
    }))
}

/// What tearing down found: the cgroup's usage, and whether its OOM killer ended the workload.
pub(super) struct Teardown {
    pub cgroup_stats: Option<CgroupStats>,
    pub oom_killed: bool,
}

/// Reads the cgroup's stats and removes it, then releases the network lease.
pub(super) fn tear_down(
    cgroup: Option<Cgroup>,
    network: Option<BridgePlan>,
    status: ExitStatus,
) -> Result<Teardown, SpawnError> {
    let mut out = Teardown {
        cgroup_stats: None,
        oom_killed: false,
    };
    if let Some(cg) = cgroup {
        let stats = cg.stats().ok();
        let ooms = stats.as_ref().and_then(|s| s.oom_kills).unwrap_or(0);
        cg.destroy()?;
        // With --init the workload's SIGKILL reaches us as PID 1's exit code 137.
        let killed = matches!(
            status,
            ExitStatus::Signaled(libc::SIGKILL) | ExitStatus::Exited(137)
        );
        out.oom_killed = ooms > 0 && killed;
        out.cgroup_stats = stats;
    }
    drop(network);
    Ok(out)
}
