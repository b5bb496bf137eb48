//! `exec`: another process inside a running container (`podman exec` ends here).
//!
//! What to run comes either from `--process FILE` (a runtime-spec `process` object, which is
//! what conmon writes) or from the arguments after the id plus `--env`, `--cwd`, `--user`. The
//! joining itself — cgroup, namespaces, credentials, seccomp — is
//! [`isolab_container::join`]. With `--detach` the command returns once the process has
//! exec'ed (the caller, a child subreaper, reaps it); otherwise it waits and exits with the
//! process's exit code.

use crate::cli::ExecArgs;
use crate::error::RuntimeError;
use crate::state::{Root, Status};
use isolab_container::credentials::ProcessCaps;
use isolab_container::join::{self, JoinProcess, JoinStdio};
use isolab_container::CapSet;
use std::os::unix::net::UnixStream;
use std::path::Path;

pub fn exec(root: &Root, args: &ExecArgs) -> Result<u8, RuntimeError> {
    let st = root.load(&args.id)?;
    let status = st.status(root);
    if status != Status::Running {
        return Err(RuntimeError::WrongState {
            id: args.id.clone(),
            action: "exec in",
            status,
            needed: "running",
        });
    }
    let (process, tty) = match &args.process {
        Some(path) => from_file(path, st.isolab.capabilities, st.isolab.seccomp)?,
        None => (from_args(args, &st)?, args.tty),
    };
    let process = JoinProcess {
        preserve_fds: args.preserve_fds,
        ..process
    };
    let stdio = match (&args.console_socket, tty) {
        (Some(path), true) => JoinStdio::Console(
            UnixStream::connect(path)
                .map_err(|e| RuntimeError::io("connecting to the console socket", path, e))?
                .into(),
        ),
        (None, true) => {
            return Err(RuntimeError::Usage(
                "a terminal (-t or process.terminal) needs --console-socket to send it to".into(),
            ))
        }
        _ => JoinStdio::Inherit,
    };
    if !args.detach {
        // The process is our grandchild; as subreaper we inherit it when its parent exits.
        // SAFETY: prctl with integer arguments; it sets a flag of this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let cgroup_procs: Vec<_> = crate::manage::open_cgroup(&st)
        .map(|cg| cg.self_attach_files())
        .unwrap_or_default();
    let joined = join::exec_in(st.pid, &process, &cgroup_procs, stdio)?;
    if let Some(path) = &args.pid_file {
        write_pid_file(path, joined.pid)?;
    }
    if args.detach {
        return Ok(0);
    }
    Ok(wait_for(joined.pid))
}

/// Waits for `pid` (our child, or inherited as subreaper) and returns the shell's exit code
/// for it.
pub(crate) fn wait_for(pid: i32) -> u8 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code as u8,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as u8,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}

/// Writes `pid` the way conmon and runc expect: the number, no newline, atomically.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("isolab-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| RuntimeError::io("writing the pid file", path, e))
}

fn seccomp_for(
    bounding: CapSet,
    enabled: bool,
) -> Result<Option<&'static isolab_container::seccomp::SeccompProgram>, RuntimeError> {
    if !enabled {
        return Ok(None);
    }
    isolab_container::seccomp::SeccompProgram::for_caps(bounding)
        .map(Some)
        .map_err(|e| RuntimeError::Usage(format!("compiling the seccomp filter: {e}")))
}

/// From `exec ID CMD...` and its flags: the container's environment and credentials.
fn from_args(args: &ExecArgs, st: &crate::state::State) -> Result<JoinProcess, RuntimeError> {
    if args.command.is_empty() {
        return Err(RuntimeError::Usage(
            "exec needs a command after the container id, or --process FILE".into(),
        ));
    }
    let (uid, gid) = match &args.user {
        None => (0, 0),
        Some(u) => parse_user(u)?,
    };
    let bounding = CapSet(st.isolab.capabilities);
    let extra = CapSet::empty()
        .adjust(&args.cap, &[])
        .map_err(|e| RuntimeError::Usage(format!("--cap {}: unknown capability", e.0)))?;
    let caps = CapSet(bounding.0 | extra.0);
    let mut env = vec![format!(
        "PATH={}",
        isolab_container::exec_path::DEFAULT_PATH
    )];
    env.extend(args.env.iter().cloned());
    Ok(JoinProcess {
        args: args.command.clone(),
        env,
        cwd: args.cwd.clone().unwrap_or_else(|| "/".into()),
        user: (uid, gid),
        additional_gids: vec![],
        bounding: caps,
        // As the container's own first process: root gets the bounding set at exec; explicit
        // sets only for `--cap`, which raises the capability for a non-root user too.
        caps: (uid != 0 && !args.cap.is_empty()).then_some(ProcessCaps {
            effective: extra,
            permitted: extra,
            inheritable: extra,
            ambient: extra,
        }),
        rlimits: vec![],
        no_new_privileges: args.no_new_privs,
        seccomp: seccomp_for(caps, st.isolab.seccomp)?,
        preserve_fds: 0,
    })
}

fn parse_user(u: &str) -> Result<(u32, u32), RuntimeError> {
    let bad = || RuntimeError::Usage(format!("--user {u:?}: give uid or uid:gid (numbers)"));
    let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
    Ok((
        uid.parse().map_err(|_| bad())?,
        gid.parse().map_err(|_| bad())?,
    ))
}

/// From a `--process` file (a runtime-spec `process` object, checked as a bundle's is);
/// returns it and whether it asks for a terminal. Without a bounding set it keeps the
/// container's.
fn from_file(
    path: &Path,
    container_caps: u64,
    seccomp: bool,
) -> Result<(JoinProcess, bool), RuntimeError> {
    let p = isolab_container::oci::load_process(path)?;
    let bounding = p.bounding.unwrap_or(CapSet(container_caps));
    let process = JoinProcess {
        args: p.args,
        env: p.env,
        cwd: p.cwd,
        user: p.user,
        additional_gids: p.additional_gids,
        bounding,
        caps: p.caps,
        rlimits: p.rlimits,
        no_new_privileges: p.no_new_privileges,
        seccomp: seccomp_for(bounding, seccomp)?,
        preserve_fds: 0,
    };
    Ok((process, p.terminal))
}
