//! Ctrl-C during a lab: note it, let the running step's own cleanup happen, then undo
//! everything the lab made and stop.
//!
//! The terminal sends SIGINT to the whole foreground process group, so a running `isolab
//! container run` step receives it too and tears its container down itself. The lab process
//! only records the signal in a flag; the [`crate::Session`] checks the flag after each step and
//! while it waits, returns [`crate::LabError::Interrupted`], and its `Drop` removes the rest.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT and SIGTERM handlers (idempotent).
pub fn install() {
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_signal),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [nix::sys::signal::SIGINT, nix::sys::signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &action) };
    }
}

/// Whether SIGINT or SIGTERM arrived since [`install`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
