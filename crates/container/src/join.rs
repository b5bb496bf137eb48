//! Entering a running container: what `docker exec`, `podman exec` and `runc exec` do.
//!
//! A container is a set of namespaces plus a cgroup, kept alive by its processes. Another
//! process joins it with **`setns(2)`**, one namespace at a time, through the files in
//! `/proc/<init pid>/ns/`. Three rules shape the code:
//!
//! * `setns` into a **user** namespace needs a single-threaded caller, and the other
//!   namespaces belong to it, so it comes first;
//! * `setns` into a **pid** namespace changes only where the caller's *children* are born, so
//!   after joining, the process forks once more: the grandchild is the one inside (and the
//!   intermediate reports the grandchild's host pid, then exits — the grandchild is re-parented
//!   to the caller's child subreaper, podman's conmon);
//! * `setns` into a **mount** namespace also moves the caller's root and working directory to
//!   that namespace's root — the container's filesystem, since it pivoted into it — so it comes
//!   last, after every `/proc` path of the host has been opened.
//!
//! The joined process then takes the same credentials a container's first process takes (the
//! container's bounding set, the requested capability sets, uid/gid, rlimits, the seccomp
//! filter) and calls `execve`. Like the spawn path, the forked side only makes system calls on
//! data prepared before the fork; success is seen as a `CLOEXEC` pipe closing.

use crate::credentials::{CredentialStep, ProcessCaps, Rlimit, Workload};
use crate::namespaces::Namespace;
use crate::seccomp::SeccompProgram;
use crate::CapSet;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Why a process could not be started inside a container.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the container's process {pid} is gone: the container has stopped")]
    ProcessGone { pid: i32 },
    #[error("opening namespace {ns} of process {pid}: {source}")]
    OpenNamespace {
        ns: &'static str,
        pid: i32,
        #[source]
        source: Errno,
    },
    #[error("{what} contains a NUL byte: {value:?}")]
    Nul { what: &'static str, value: String },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("joining the container failed while {stage}: {errno}")]
    Stage { stage: JoinStage, errno: Errno },
    #[error("{command:?} was not found in the container (searched {path})")]
    CommandNotFound { command: String, path: String },
    #[error("{command:?} could not be executed in the container: {errno}")]
    CannotExecute { command: String, errno: Errno },
}

impl JoinError {
    /// The shell's convention, which `docker exec` keeps: 127 not found, 126 not runnable.
    pub fn exit_code(&self) -> u8 {
        match self {
            JoinError::CommandNotFound { .. } => 127,
            JoinError::CannotExecute { .. } => 126,
            _ => 1,
        }
    }
}

/// The step of joining that failed, as the forked side reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JoinStage {
    Cgroup = 1,
    Namespaces,
    Fork,
    Workdir,
    Console,
    Credentials,
    Seccomp,
    Exec,
}

impl std::fmt::Display for JoinStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JoinStage::Cgroup => "joining the container's cgroup",
            JoinStage::Namespaces => "entering the container's namespaces",
            JoinStage::Fork => "forking inside the pid namespace",
            JoinStage::Workdir => "changing to the working directory",
            JoinStage::Console => "setting up the terminal",
            JoinStage::Credentials => "switching user, groups, capabilities and rlimits",
            JoinStage::Seccomp => "installing the seccomp filter",
            JoinStage::Exec => "executing the command",
        })
    }
}

impl JoinStage {
    fn from_u8(v: u8) -> JoinStage {
        [
            JoinStage::Cgroup,
            JoinStage::Namespaces,
            JoinStage::Fork,
            JoinStage::Workdir,
            JoinStage::Console,
            JoinStage::Credentials,
            JoinStage::Seccomp,
        ]
        .into_iter()
        .find(|s| *s as u8 == v)
        .unwrap_or(JoinStage::Exec)
    }
}

/// The namespaces of a process that differ from the caller's, opened, in joining order.
#[derive(Debug)]
pub struct Namespaces {
    fds: Vec<(Namespace, OwnedFd)>,
}

/// Joining order: user first (it owns the others), mount last (it moves the root).
const JOIN_ORDER: [Namespace; 8] = [
    Namespace::User,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Net,
    Namespace::Pid,
    Namespace::Cgroup,
    Namespace::Time,
    Namespace::Mount,
];

impl Namespaces {
    /// Opens `/proc/<pid>/ns/*` for each namespace `pid` does not share with the caller.
    pub fn of_process(pid: i32) -> Result<Namespaces, JoinError> {
        let mut fds = Vec::new();
        for ns in JOIN_ORDER {
            let theirs = format!("/proc/{pid}/ns/{}", ns.proc_name());
            let ours = format!("/proc/self/ns/{}", ns.proc_name());
            let same = match (nix::sys::stat::stat(&*theirs), nix::sys::stat::stat(&*ours)) {
                (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
                (Err(Errno::ENOENT), _)
                    if !std::path::Path::new(&format!("/proc/{pid}")).exists() =>
                {
                    return Err(JoinError::ProcessGone { pid })
                }
                // A kernel without this namespace type: nothing to join.
                (Err(Errno::ENOENT), _) | (_, Err(Errno::ENOENT)) => true,
                (Err(source), _) | (_, Err(source)) => {
                    return Err(JoinError::OpenNamespace {
                        ns: ns.name(),
                        pid,
                        source,
                    })
                }
            };
            if same {
                continue;
            }
            let fd = nix::fcntl::open(
                &*theirs,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|source| JoinError::OpenNamespace {
                ns: ns.name(),
                pid,
                source,
            })?;
            fds.push((ns, fd));
        }
        Ok(Namespaces { fds })
    }

    /// Whether joining includes a new pid namespace (then a second fork is needed).
    pub fn has(&self, ns: Namespace) -> bool {
        self.fds.iter().any(|(n, _)| *n == ns)
    }

    /// A closure that joins these namespaces, for `Command::pre_exec` (which wants `'static`):
    /// it holds the raw descriptors, so it must only run while `self` is alive.
    pub fn enter_fn(&self) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
        let raw: Vec<(RawFd, libc::c_int)> = self
            .fds
            .iter()
            .map(|(ns, fd)| (fd.as_raw_fd(), ns.clone_flag() as libc::c_int))
            .collect();
        move || {
            for (fd, flag) in &raw {
                // SAFETY: setns with a descriptor the caller keeps open (see above) and a
                // namespace type flag; no memory is passed.
                if unsafe { libc::setns(*fd, *flag) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        }
    }

    /// `setns` into each, in order. Only system calls: safe between fork and exec.
    pub fn enter(&self) -> Result<(), Errno> {
        for (ns, fd) in &self.fds {
            let flag = nix::sched::CloneFlags::from_bits_truncate(ns.clone_flag() as libc::c_int);
            nix::sched::setns(fd, flag)?;
        }
        Ok(())
    }
}

/// What to run inside, and as whom.
#[derive(Debug, Clone)]
pub struct JoinProcess {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: (u32, u32),
    pub additional_gids: Vec<u32>,
    /// The ceiling: the container's bounding set.
    pub bounding: CapSet,
    pub caps: Option<ProcessCaps>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    /// The container's filter (None: it runs unconfined).
    pub seccomp: Option<&'static SeccompProgram>,
    /// Descriptors 3 .. 3+N it inherits open; every other one above 2 closes at exec.
    pub preserve_fds: u32,
}

/// Where the joined process's streams go.
#[derive(Debug)]
pub enum JoinStdio {
    /// The caller's own fds 0/1/2.
    Inherit,
    /// A new pty inside the container; its master is sent over this connected unix socket.
    Console(OwnedFd),
}

/// A process started inside a container.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    /// Its pid in the caller's pid namespace.
    pub pid: i32,
}

/// Everything the forked side reads, prepared before the fork.
struct Prepared {
    /// Owners of the strings the pointer arrays below point into.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    /// Null-terminated pointer arrays into `argv` and `envp` (a CString's bytes stay put when
    /// the CString moves), built here so the forked side allocates nothing.
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    candidates: Vec<CString>,
    cwd: CString,
    gids: Vec<nix::unistd::Gid>,
}

fn cstring(what: &'static str, value: &str) -> Result<CString, JoinError> {
    CString::new(value).map_err(|_| JoinError::Nul {
        what,
        value: value.to_owned(),
    })
}

impl Prepared {
    fn new(p: &JoinProcess) -> Result<Prepared, JoinError> {
        let argv = p
            .args
            .iter()
            .map(|a| cstring("an argument", a))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = p
            .env
            .iter()
            .map(|e| cstring("an environment entry", e))
            .collect::<Result<Vec<_>, _>>()?;
        let candidates = crate::exec_path::candidates(&p.args[0], &p.env)
            .iter()
            .map(|c| cstring("the command", c))
            .collect::<Result<Vec<_>, _>>()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Ok(Prepared {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            _argv: argv,
            _envp: envp,
            candidates,
            cwd: cstring("the working directory", &p.cwd)?,
            gids: p
                .additional_gids
                .iter()
                .map(|g| nix::unistd::Gid::from_raw(*g))
                .collect(),
        })
    }
}

/// Starts `process` inside the container whose init is `pid`, joining its namespaces and the
/// cgroup behind `cgroup_procs` (one `cgroup.procs`/`tasks` file per hierarchy).
///
/// The caller must be single-threaded (the forked side joins a user namespace and allocates
/// nothing, but a multi-threaded caller's locks would still be copied). Returns once the
/// process has called `execve`; it is *not* the caller's child (see the module docs): the
/// caller reaps it only as a child subreaper.
pub fn exec_in(
    pid: i32,
    process: &JoinProcess,
    cgroup_procs: &[std::path::PathBuf],
    stdio: JoinStdio,
) -> Result<Joined, JoinError> {
    if process.args.is_empty() {
        return Err(JoinError::Nul {
            what: "the command (none given)",
            value: String::new(),
        });
    }
    let namespaces = Namespaces::of_process(pid)?;
    let prepared = Prepared::new(process)?;
    let cgroup_fds = cgroup_procs
        .iter()
        .map(|path| {
            nix::fcntl::open(
                path,
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|source| JoinError::Sys {
                what: "opening the container's cgroup",
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| JoinError::Sys {
            what: "pipe",
            source,
        })?;
    // SAFETY: the caller is single-threaded (documented above); the child only makes system
    // calls on `prepared`, `namespaces` and the fds opened above, then execs or _exits.
    match unsafe { nix::unistd::fork() }.map_err(|source| JoinError::Sys {
        what: "fork",
        source,
    })? {
        nix::unistd::ForkResult::Child => {
            drop(report_r);
            let w = report_w.as_raw_fd();
            intermediate(&namespaces, &cgroup_fds, &prepared, process, &stdio, w)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(report_w);
            drop(stdio);
            let (pid, outcome) = read_report(&report_r, process);
            // The intermediate exits right after forking; reap it so it leaves no zombie.
            let _ = nix::sys::wait::waitpid(child, None);
            if let (Some(pid), Err(_)) = (pid, &outcome) {
                // The final process failed and exited. If we are its reaper (a subreaper
                // caller), reap it: an unreaped zombie in the container's pid namespace would
                // keep that namespace's init from ever finishing its exit. Otherwise this is
                // ECHILD at once, and its reaper collects it.
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            }
            outcome
        }
    }
}

/// Report layout: `[b'P', pid (4 bytes)]` once the final process exists, then on failure
/// `[b'E', stage, errno (4 bytes)]`; nothing more on success (the exec closes the pipe).
fn read_report(r: &OwnedFd, process: &JoinProcess) -> (Option<i32>, Result<Joined, JoinError>) {
    let mut buf = [0u8; 11];
    let mut len = 0;
    loop {
        match nix::unistd::read(r, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::EINTR) => continue,
            Err(source) => {
                return (
                    None,
                    Err(JoinError::Sys {
                        what: "read",
                        source,
                    }),
                )
            }
        }
        if len == buf.len() {
            break;
        }
    }
    let word = |at: usize| i32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let (pid, rest) = match buf[..len] {
        [b'P', ..] if len >= 5 => (Some(word(1)), &buf[5..len]),
        _ => (None, &buf[..len]),
    };
    let outcome = match (pid, rest) {
        (Some(pid), []) => Ok(Joined { pid }),
        (_, [b'E', stage, ..]) if rest.len() >= 6 => {
            let errno = Errno::from_raw(word(len - 4));
            Err(describe(JoinStage::from_u8(*stage), errno, process))
        }
        _ => Err(JoinError::Stage {
            stage: JoinStage::Fork,
            errno: Errno::EPIPE,
        }),
    };
    (pid, outcome)
}

fn describe(stage: JoinStage, errno: Errno, process: &JoinProcess) -> JoinError {
    let command = process.args[0].clone();
    match (stage, errno) {
        (JoinStage::Exec, Errno::ENOENT | Errno::ENOTDIR) => JoinError::CommandNotFound {
            path: if command.contains('/') {
                command.clone()
            } else {
                crate::exec_path::search_path(&process.env).to_owned()
            },
            command,
        },
        (JoinStage::Exec, errno) => JoinError::CannotExecute { command, errno },
        (stage, errno) => JoinError::Stage { stage, errno },
    }
}

/// The forked side: cgroup, namespaces, then (inside the pid namespace) the final process.
fn intermediate(
    namespaces: &Namespaces,
    cgroup_fds: &[OwnedFd],
    prepared: &Prepared,
    process: &JoinProcess,
    stdio: &JoinStdio,
    report: RawFd,
) -> ! {
    let fail = |stage: JoinStage, errno: Errno| -> ! {
        report_error(report, stage, errno);
        // SAFETY: ending the forked process without running the parent's destructors.
        unsafe { libc::_exit(1) }
    };
    for fd in cgroup_fds {
        if let Err(e) = nix::unistd::write(fd, b"0") {
            fail(JoinStage::Cgroup, e);
        }
    }
    if let Err(e) = namespaces.enter() {
        fail(JoinStage::Namespaces, e);
    }
    // SAFETY: this forked process is single-threaded; the child only makes system calls.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(JoinStage::Fork, Errno::last());
    }
    if pid > 0 {
        let mut msg = [0u8; 5];
        msg[0] = b'P';
        msg[1..].copy_from_slice(&pid.to_ne_bytes());
        let _ = nix::unistd::write(
            // SAFETY: `report` is the pipe's write end, open until this process exits.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(report) },
            &msg,
        );
        // SAFETY: as above; the final process carries on alone.
        unsafe { libc::_exit(0) }
    }
    let (stage, errno) = become_process(prepared, process, stdio);
    fail(stage, errno)
}

fn report_error(report: RawFd, stage: JoinStage, errno: Errno) {
    let mut msg = [0u8; 6];
    msg[0] = b'E';
    msg[1] = stage as u8;
    msg[2..].copy_from_slice(&(errno as i32).to_ne_bytes());
    // SAFETY: `report` is the pipe's write end, open until this process exits.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(report) };
    let _ = nix::unistd::write(fd, &msg);
}

/// Inside every namespace: directory, terminal, credentials, filter, exec. Returns only on
/// failure, with the stage and errno.
fn become_process(p: &Prepared, process: &JoinProcess, stdio: &JoinStdio) -> (JoinStage, Errno) {
    if let Err(e) = nix::unistd::chdir(p.cwd.as_c_str()) {
        return (JoinStage::Workdir, e);
    }
    if let JoinStdio::Console(socket) = stdio {
        if let Err(e) = crate::stdio::open_console(socket, None) {
            return (JoinStage::Console, e);
        }
    }
    let workload = Workload {
        rlimits: &process.rlimits,
        seccomp: process.seccomp,
        no_new_privileges: process.no_new_privileges,
        user: process.user,
        groups: &p.gids,
        caps: process.caps.as_ref(),
    };
    let step = |(step, errno)| match step {
        CredentialStep::Seccomp => (JoinStage::Seccomp, errno),
        _ => (JoinStage::Credentials, errno),
    };
    if let Err(e) = process.bounding.restrict_bounding_set() {
        return (JoinStage::Credentials, e);
    }
    if let Err(e) = workload.assume() {
        return step(e);
    }
    crate::exec_path::close_from_at_exec(3 + process.preserve_fds);
    if let Err(e) = workload.seal() {
        return step(e);
    }
    // SAFETY: the pointer arrays in `p` are null-terminated and point into its C strings,
    // alive until execve replaces the process image.
    let errno = unsafe {
        crate::exec_path::execve_each(&p.candidates, p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr())
    };
    (JoinStage::Exec, errno)
}

#[cfg(test)]
fn roundtrip(msgs: &[&[u8]]) -> Result<Joined, JoinError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    for m in msgs {
        nix::unistd::write(&w, m).unwrap();
    }
    drop(w);
    let process = JoinProcess {
        args: vec!["nope".into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        user: (0, 0),
        additional_gids: vec![],
        bounding: CapSet::empty(),
        caps: None,
        rlimits: vec![],
        no_new_privileges: false,
        seccomp: None,
        preserve_fds: 0,
    };
    read_report(&r, &process).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_decode_into_the_right_error() {
        let pid = 4242i32.to_ne_bytes();
        let ok = roundtrip(&[&[b'P', pid[0], pid[1], pid[2], pid[3]]]).unwrap();
        assert_eq!(ok.pid, 4242);
        let enoent = (libc::ENOENT).to_ne_bytes();
        let err = roundtrip(&[
            &[b'P', pid[0], pid[1], pid[2], pid[3]],
            &[
                b'E',
                JoinStage::Exec as u8,
                enoent[0],
                enoent[1],
                enoent[2],
                enoent[3],
            ],
        ])
        .unwrap_err();
        assert!(matches!(err, JoinError::CommandNotFound { .. }), "{err}");
        assert_eq!(err.exit_code(), 127);
        let eperm = (libc::EPERM).to_ne_bytes();
        let err = roundtrip(&[&[
            b'E',
            JoinStage::Namespaces as u8,
            eperm[0],
            eperm[1],
            eperm[2],
            eperm[3],
        ]])
        .unwrap_err();
        assert!(
            matches!(
                err,
                JoinError::Stage {
                    stage: JoinStage::Namespaces,
                    ..
                }
            ),
            "{err}"
        );
        assert!(roundtrip(&[]).is_err(), "an empty report is a failure");
    }
}
