//! `start` (release a created container) and `run` (create + start, and without `--detach`
//! wait + delete).
//!
//! The created container's process is blocked in `open(exec.fifo, O_WRONLY)`: a FIFO's open
//! for writing waits for a reader. `start` becomes that reader, reads the one byte the process
//! writes once it is unblocked, and removes the FIFO — which is also how later commands know
//! the container is no longer `created`. The process's next step is `execve`.

use crate::cli::RunArgs;
use crate::error::RuntimeError;
use crate::log::Log;
use crate::state::{Root, State, Status};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicI32, Ordering};

pub fn start(root: &Root, id: &str, log: &Log) -> Result<(), RuntimeError> {
    let mut st = root.load(id)?;
    let status = st.status(root);
    if status != Status::Created {
        return Err(RuntimeError::WrongState {
            id: id.to_owned(),
            action: "start",
            status,
            needed: "created",
        });
    }
    let hooks = st.isolab.hooks.clone();
    if let Some(h) = hooks.as_ref().and_then(|h| h.start_container().as_ref()) {
        let doc = serde_json::to_vec(&st.spec_state(Status::Created)).expect("state serializes");
        let ns = isolab_container::join::Namespaces::of_process(st.pid)?;
        crate::hooks::run_all("startContainer", Some(h), &doc, Some(&ns))?;
    }
    release(root, &st)?;
    st.status = Status::Running;
    root.save(&st)?;
    if let Some(h) = hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        let doc = serde_json::to_vec(&st.spec_state(Status::Running)).expect("state serializes");
        for hook in h {
            if let Err(e) = crate::hooks::run("poststart", hook, &doc, None) {
                log.warn(&e.to_string());
            }
        }
    }
    Ok(())
}

/// Opens the FIFO's read end and waits for the process's byte, watching that it is alive
/// (a process killed while created would otherwise leave us waiting forever).
fn release(root: &Root, st: &State) -> Result<(), RuntimeError> {
    let path = root.fifo_path(&st.id);
    let fifo = nix::fcntl::open(
        &path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RuntimeError::io("opening", &path, e.into()))?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) if n > 0 => {
                let mut byte = [0u8; 1];
                match nix::unistd::read(&fifo, &mut byte) {
                    Ok(1) => break,
                    // The writer came and went without a byte: it died on the way.
                    Ok(_) => return Err(RuntimeError::DiedBeforeStart { id: st.id.clone() }),
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(RuntimeError::io("reading", &path, e.into())),
                }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(RuntimeError::io("polling", &path, e.into())),
        }
        if !crate::state::process_alive(st.pid, st.isolab.start_ticks) {
            return Err(RuntimeError::DiedBeforeStart { id: st.id.clone() });
        }
    }
    std::fs::remove_file(&path).map_err(|e| RuntimeError::io("removing", &path, e))
}

/// The container's pid for the signal handler to forward to (0: none yet).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes integers only.
        unsafe { libc::kill(pid, sig) };
    }
}

/// `run`: create, start, and unless `--detach`, forward signals, wait, delete, and exit with
/// the container's exit code.
pub fn run(root: &Root, args: &RunArgs, log: &Log) -> Result<u8, RuntimeError> {
    let created = crate::create::create(root, &args.create, log)?;
    if let Err(e) = start(root, &created.id, log) {
        let _ = crate::manage::delete(root, &created.id, true, log);
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    FORWARD_TO.store(created.pid, Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installs an async-signal-safe handler that only calls kill.
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    let code = crate::exec::wait_for(created.pid);
    if !args.keep {
        crate::manage::delete(root, &created.id, true, log)?;
    }
    Ok(code)
}
