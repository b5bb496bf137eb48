//! The commands that act on an existing container: `state`, `kill`, `delete`, `list`, `ps`,
//! `pause` and `resume`. Each reads the state file, asks the kernel for the real status (see
//! [`crate::state`]) and acts on the container's init process or its cgroup.

use crate::cli::Format;
use crate::error::RuntimeError;
use crate::log::Log;
use crate::state::CgroupPlace;
use crate::state::{Root, State, Status};
use isolab_cgroups::Cgroup;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// How long `delete --force` waits for a killed container's processes to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// `state ID`: the runtime-spec state document on stdout.
pub fn state(root: &Root, id: &str) -> Result<(), RuntimeError> {
    let st = root.load(id)?;
    let status = st.status(root);
    let doc = serde_json::to_string_pretty(&st.spec_state(status)).expect("state serializes");
    println!("{doc}");
    Ok(())
}

/// The container's cgroup, if it has one and it still exists.
pub(crate) fn open_cgroup(st: &State) -> Option<Cgroup> {
    st.isolab.cgroup.as_ref()?.open()
}

/// `kill [--all] ID SIGNAL`.
pub fn kill(root: &Root, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError> {
    let sig = crate::signal::parse(signal)?;
    let st = root.load(id)?;
    let status = st.status(root);
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(RuntimeError::WrongState {
            id: id.to_owned(),
            action: "kill",
            status,
            needed: "created or running",
        });
    }
    let send = |pid: i32| -> Result<(), RuntimeError> {
        // SAFETY: kill(2) with integer arguments; `sig` was validated as a signal number.
        let rc = unsafe { libc::kill(pid, sig) };
        match rc {
            0 => Ok(()),
            _ if nix::errno::Errno::last() == nix::errno::Errno::ESRCH => Ok(()),
            _ => Err(RuntimeError::Signal {
                id: id.to_owned(),
                signal: signal.to_owned(),
                source: nix::errno::Errno::last(),
            }),
        }
    };
    match (all, open_cgroup(&st)) {
        (true, Some(cg)) => {
            for pid in cg.pids()? {
                send(pid)?;
            }
            Ok(())
        }
        _ => send(st.pid),
    }
}

/// `delete [--force] ID`: kill what is left (with --force), run the poststop hooks, remove the
/// cgroup and the state. An unknown id with --force is success, as with runc (podman calls it
/// to clean up after a failed create).
pub fn delete(root: &Root, id: &str, force: bool, log: &Log) -> Result<(), RuntimeError> {
    let st = match root.load(id) {
        Ok(st) => st,
        Err(RuntimeError::NotFound(_)) if force => return Ok(()),
        // A half-written state (create killed at the wrong moment): with --force, remove it.
        Err(RuntimeError::CorruptState { .. }) if force => {
            return remove_leftovers(root, id);
        }
        Err(e) => return Err(e),
    };
    let status = st.status(root);
    match status {
        Status::Stopped | Status::Created => {}
        Status::Creating | Status::Running | Status::Paused if !force => {
            return Err(RuntimeError::WrongState {
                id: id.to_owned(),
                action: "delete",
                status,
                needed: "stopped (or use --force)",
            })
        }
        _ => {}
    }
    stop_everything(&st, status);
    if let Some(cg) = open_cgroup(&st) {
        cg.destroy()?;
    }
    if let Some(hooks) = st.isolab.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
        // Poststop hooks see the container as stopped; their failures are warnings.
        let doc = serde_json::to_vec(&st.spec_state(Status::Stopped)).expect("state serializes");
        for hook in hooks {
            if let Err(e) = crate::hooks::run("poststop", hook, &doc, None) {
                log.warn(&e.to_string());
            }
        }
    }
    root.remove(id)
}

/// Kills the container's processes (init, then whatever its cgroup still holds) and waits
/// for the init to be gone.
fn stop_everything(st: &State, status: Status) {
    let cgroup = open_cgroup(st);
    if let Some(cg) = &cgroup {
        if status == Status::Paused {
            // A frozen process cannot die: SIGKILL waits for the thaw.
            let _ = cg.thaw();
        }
        let _ = cg.kill_all();
    }
    if st.pid > 0 && crate::state::process_alive(st.pid, st.isolab.start_ticks) {
        let _ = nix::sys::signal::kill(Pid::from_raw(st.pid), Signal::SIGKILL);
        let deadline = Instant::now() + KILL_WAIT;
        while crate::state::process_alive(st.pid, st.isolab.start_ticks)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Removes a container directory whose state file cannot be read, and the cgroup a state
/// without `cgroupsPath` would have named (`isolab/<id>`) if one exists.
fn remove_leftovers(root: &Root, id: &str) -> Result<(), RuntimeError> {
    if let Some(cg) = CgroupPlace::from_cgroups_path(id, None).open() {
        cg.destroy()?;
    }
    root.remove(id)
}

/// `list [-q] [--format json]`.
pub fn list(root: &Root, format: Format, quiet: bool) -> Result<(), RuntimeError> {
    let states: Vec<(State, Status)> = root
        .ids()
        .into_iter()
        .filter_map(|id| root.load(&id).ok())
        .map(|st| {
            let status = st.status(root);
            (st, status)
        })
        .collect();
    if quiet {
        for (st, _) in &states {
            println!("{}", st.id);
        }
        return Ok(());
    }
    match format {
        Format::Json => {
            let docs: Vec<_> = states.iter().map(|(st, s)| st.spec_state(*s)).collect();
            println!(
                "{}",
                serde_json::to_string(&docs).expect("state serializes")
            );
        }
        Format::Table => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<31} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for (st, status) in &states {
                let doc = st.spec_state(*status);
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<31} {}",
                    st.id,
                    doc.pid.unwrap_or(0),
                    status,
                    st.bundle.display(),
                    st.isolab.created,
                    doc.owner
                );
            }
        }
    }
    Ok(())
}

/// `ps [--format json] ID [ps args]`: the container's pids as JSON, or `ps` output filtered to
/// the container's processes (runc's behaviour).
pub fn ps(root: &Root, id: &str, format: Format, ps_args: &[String]) -> Result<(), RuntimeError> {
    let st = root.load(id)?;
    let pids = match open_cgroup(&st) {
        Some(cg) => cg.pids()?,
        None if st.status(root) != Status::Stopped => vec![st.pid],
        None => vec![],
    };
    if format == Format::Json {
        println!("{}", serde_json::to_string(&pids).expect("pids serialize"));
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| RuntimeError::io("running", "ps", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Ok(());
    };
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| {
            RuntimeError::Usage(
                "ps output has no PID column: pass -ef or another format with PID".into(),
            )
        })?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

/// `pause ID` / `resume ID` through the cgroup freezer.
pub fn pause(root: &Root, id: &str, freeze: bool) -> Result<(), RuntimeError> {
    let st = root.load(id)?;
    let status = st.status(root);
    let (action, needed, ok) = if freeze {
        ("pause", "running", status == Status::Running)
    } else {
        ("resume", "paused", status == Status::Paused)
    };
    if !ok {
        return Err(RuntimeError::WrongState {
            id: id.to_owned(),
            action,
            status,
            needed,
        });
    }
    let cg = open_cgroup(&st).ok_or_else(|| {
        RuntimeError::Usage(format!(
            "container {id} has no cgroup, so it cannot be frozen"
        ))
    })?;
    if freeze {
        cg.freeze()?;
    } else {
        cg.thaw()?;
    }
    Ok(())
}
