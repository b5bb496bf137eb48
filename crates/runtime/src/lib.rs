//! `isolab-runtime`: isolab's container engine behind the OCI runtime command line.
//!
//! Podman, docker (through containerd) and CRI-O never create namespaces themselves. They
//! unpack an image into a *bundle* (a `config.json` beside a root filesystem) and drive a
//! low-level runtime — runc, crun, youki — through a small command line that the OCI runtime
//! specification describes and runc's flags made the de-facto standard. This crate is that
//! command line, so `podman --runtime /path/to/isolab-runtime run ...` runs on isolab.
//!
//! The specification's lifecycle has two steps where `isolab container run` has one:
//!
//! ```text
//!  create ──▶ created ──start──▶ running ──(process exits)──▶ stopped ──delete──▶ (gone)
//!    │          │                   │  ▲
//!    │          │                   pause/resume (cgroup freezer)
//!    │          └── kill, delete    └── kill, exec, ps
//!    └── prestart/createRuntime/createContainer hooks; startContainer and poststart around
//!        `start`; poststop after `delete`
//! ```
//!
//! * **create** builds everything: the cgroup, the namespaces, the root filesystem, the
//!   credentials and the seccomp filter. The container's first process then stops one step
//!   before `execve`, blocked opening a FIFO (`exec.fifo` in the container's state directory),
//!   and `create` *exits*. That process is re-parented to the caller (podman's `conmon` makes
//!   itself a child subreaper for exactly this), which later reaps it and collects its exit code.
//! * **start** opens the other end of the FIFO: the blocked process returns from its `open`,
//!   and its next step is `execve` of the user's program.
//! * Every command is a fresh process: what one leaves for the next lives in
//!   `--root/<id>/state.json` ([`state`]).
//!
//! The modules follow the commands: [`create`] and [`start`] (and `run`, both at once),
//! [`manage`] (state, kill, delete, list, ps, pause, resume), [`exec`], [`hooks`],
//! [`features`]; [`cli`] parses runc's flags and [`error`] holds the one-line errors.

pub mod cli;
pub mod create;
pub mod error;
pub mod exec;
pub mod features;
pub mod hooks;
pub mod log;
pub mod manage;
pub mod signal;
pub mod start;
pub mod state;

pub use error::RuntimeError;

/// The runtime-spec version this runtime implements (`state` and `features` report it).
pub const OCI_VERSION: &str = "1.2.1";
/// The oldest `ociVersion` a `config.json` may declare.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// Runs one command line (`argv` without the program name's own handling) and returns the
/// process exit code. Errors are printed as one line on stderr and, with `--log`, appended to
/// the log in the requested format.
pub fn main_with_args(argv: Vec<std::ffi::OsString>) -> u8 {
    cli::run(argv)
}
