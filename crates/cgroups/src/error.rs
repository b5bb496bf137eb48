//! Typed errors for cgroup management and for limit parsing.
//!
//! Two families, because they fail at different times: a [`LimitError`] is a user typo caught
//! before anything touches the kernel (`--memory 64X`), a [`CgroupError`] is what the kernel or
//! the host said when we tried to apply a valid request (no `memory` hierarchy, EBUSY, ...).
//! Every message is one line that names the offending value and says how to fix it.

use std::io;
use std::path::PathBuf;

/// A resource limit the user wrote (or put in a [`crate::Resources`]) is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    /// Nothing was given where a value was expected.
    #[error("{what}: empty value; expected e.g. {example}")]
    Empty {
        /// The option being parsed, e.g. `--memory`.
        what: &'static str,
        /// A valid example for the option.
        example: &'static str,
    },
    /// A negative number where only positive ones make sense.
    #[error("{what} {input:?}: negative values are not allowed; expected e.g. {example}")]
    Negative {
        /// The option being parsed.
        what: &'static str,
        /// The rejected input.
        input: String,
        /// A valid example for the option.
        example: &'static str,
    },
    /// Zero would forbid everything (a 0-byte memory limit, 0 CPUs); docker rejects it too.
    #[error("{what} {input:?}: must be greater than zero")]
    Zero {
        /// The option being parsed.
        what: &'static str,
        /// The rejected input.
        input: String,
    },
    /// The text is not in the expected syntax.
    #[error("{what} {input:?}: {reason}; expected e.g. {example}")]
    Syntax {
        /// The option being parsed.
        what: &'static str,
        /// The rejected input.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
        /// A valid example for the option.
        example: &'static str,
    },
    /// The value does not fit the kernel's interface (e.g. above `i64::MAX` bytes).
    #[error("{what} {input:?}: value is too large")]
    Overflow {
        /// The option being parsed.
        what: &'static str,
        /// The rejected input.
        input: String,
    },
    /// The value is syntactically fine but outside what the kernel accepts.
    #[error("{what} {value}: out of range, must be between {min} and {max}")]
    OutOfRange {
        /// The option being checked.
        what: &'static str,
        /// The rejected value, as written to the kernel's unit.
        value: String,
        /// Smallest accepted value.
        min: String,
        /// Largest accepted value.
        max: String,
    },
    /// More CPUs than the host has (docker refuses these too; the quota could never be used).
    #[error("--cpus {input:?}: range of CPUs is from 0.01 to {available}.00, as there are only {available} CPUs available")]
    CpusAboveHost {
        /// The rejected input.
        input: String,
        /// CPUs this process may run on.
        available: usize,
    },
    /// `--memory-swap` is the *total* of memory and swap, so it cannot be below `--memory`.
    #[error(
        "--memory-swap {swap_bytes} bytes is below --memory {memory_bytes} bytes; \
         --memory-swap is memory+swap combined, so set it >= --memory (or -1 for unlimited swap)"
    )]
    SwapBelowMemory {
        /// The memory limit.
        memory_bytes: u64,
        /// The memory+swap limit.
        swap_bytes: i64,
    },
    /// A swap limit without a memory limit has no meaning (docker refuses it too).
    #[error("--memory-swap needs --memory: the swap limit is memory+swap combined")]
    SwapWithoutMemory,
}

/// Applying, reading or tearing down a cgroup failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup layout of this host could not be understood.
    #[error("cannot detect the cgroup layout: {0}")]
    Detect(String),
    /// A limit (or operation) needs a controller this host does not offer to us.
    #[error(
        "{needed_for} needs the cgroup `{controller}` controller, which this host does not \
         provide (not mounted as a v1 hierarchy and not enabled in cgroup v2); drop the option \
         or enable the controller"
    )]
    ControllerMissing {
        /// Kernel name of the controller (`memory`, `cpu`, `io`, ...).
        controller: &'static str,
        /// The limit or operation that needed it (`--memory`, `freeze`, ...).
        needed_for: &'static str,
    },
    /// The controller exists but the interface file the request needs does not.
    #[error("{needed_for}: {path} does not exist on this host ({hint})")]
    FileMissing {
        /// The option that needed the file.
        needed_for: &'static str,
        /// The missing interface file.
        path: PathBuf,
        /// Why it might be missing and what to do.
        hint: &'static str,
    },
    /// A cgroup name that would escape the isolab directory or is not a single path component.
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `create` found a cgroup of that name already: another container uses it, or a crashed run
    /// left it behind.
    #[error("cgroup {path} already exists; pick another name or remove the stale cgroup")]
    AlreadyExists {
        /// The existing directory.
        path: PathBuf,
    },
    /// `open` found no cgroup of that name in any hierarchy.
    #[error("no isolab cgroup named {name:?} exists (is the container running?)")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// The freezer did not reach FROZEN in time (a task stuck in uninterruptible sleep?).
    #[error("{path} did not report frozen within {waited_ms} ms")]
    FreezeTimeout {
        /// The freezer state file that was polled.
        path: PathBuf,
        /// How long we waited.
        waited_ms: u64,
    },
    /// Processes survived SIGKILL for longer than the bounded wait.
    #[error("{remaining} process(es) still in {path} {waited_ms} ms after SIGKILL")]
    KillTimeout {
        /// A directory that still lists processes.
        path: PathBuf,
        /// How many pids remained.
        remaining: usize,
        /// How long we waited.
        waited_ms: u64,
    },
    /// The requested limits are inconsistent.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The kernel refused a value written to a cgroup interface file.
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        /// The interface file.
        path: PathBuf,
        /// What we wrote.
        value: String,
        /// The kernel's answer (EINVAL: out of range; ENOSPC: empty cpuset; ...).
        #[source]
        source: io::Error,
    },
    /// The kernel refused the cgroup v2 device program (needs root or CAP_BPF + CAP_SYS_ADMIN,
    /// and a kernel built with CONFIG_CGROUP_BPF).
    #[error("device rules: {op} for {path}: {source}{verifier} (cgroup v2 enforces device rules with an eBPF program: run as root on a kernel with CONFIG_CGROUP_BPF)")]
    DeviceProgram {
        /// The bpf(2) command that failed.
        op: &'static str,
        /// The cgroup directory (or the program) involved.
        path: PathBuf,
        /// The verifier's last message, `; verifier: ...`, or empty.
        verifier: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// A system call on a cgroup file or directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we tried (`mkdir`, `write`, `read`, `rmdir`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    /// Wraps an I/O error with the operation and the path it happened on.
    pub(crate) fn io(op: &'static str, path: PathBuf, source: io::Error) -> Self {
        CgroupError::Io { op, path, source }
    }

    /// The underlying errno, if this is an I/O error (tests and callers branch on it).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            CgroupError::Io { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::DeviceProgram { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
