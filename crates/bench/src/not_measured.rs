//! Why a row has no figure: one typed error for every environment, rendered into the results
//! file as the row's "not measured here" reason.
//!
//! A missing peer, a host without `/dev/kvm`, a run that is not root: on a teaching machine
//! these are findings, not crashes, so every environment answers with a [`NotMeasured`] and
//! the row keeps its place with the reason. The variants say *what* failed so a caller can
//! match on it (skip rows that need root, suggest an install for a missing tool); the
//! underlying error, where there is one, is the variant's `source`. The result schema keeps
//! the reason as text: it is this type's `Display`, specific enough to act on.
//!
//! Sources are held in an [`Arc`] so one failure can stand for several rows (the crun thread
//! that could not start, the rootfs that could not be built) without being rebuilt as a string.

use isolab_container::spawn::ExitStatus;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

/// Why an environment produced no figure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotMeasured {
    /// The bench runs unprivileged: namespaces, cgroups and mounts need root.
    #[error("not root: namespaces, cgroups and mounts need root")]
    NeedsRoot,
    /// A program the row runs is not installed.
    #[error("{tool} not installed{}", install_hint(.fix))]
    ToolMissing {
        /// The program, as a user knows it.
        tool: &'static str,
        /// How to install it (empty: no hint).
        fix: &'static str,
    },
    /// A row that launches the `isolab` binary, run from a front end that has none.
    #[error("needs the isolab binary (run it as `isolab bench`)")]
    NeedsIsolabBinary,
    /// No cgroup hierarchy this host lets the bench use.
    #[error("no usable cgroup hierarchy on this host")]
    NoCgroups,
    /// `/dev/kvm` cannot be opened read-write.
    #[error("/dev/kvm cannot be opened: {0}")]
    NoKvm(#[source] Arc<std::io::Error>),
    /// The guest kernel or initramfs has not been built.
    #[error(
        "{} missing: build the guest with scripts/build-guest.sh (or set ISOLAB_CACHE)",
        .0.display()
    )]
    GuestImageMissing(PathBuf),
    /// `--quick` leaves the row out.
    #[error("skipped by --quick: {0}")]
    SkippedByQuick(&'static str),
    /// A program could not be started.
    #[error("cannot start {program:?}: {source}")]
    Start {
        /// The program.
        program: OsString,
        /// Why `spawn` failed.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Waiting for a started program failed.
    #[error("waiting for {program:?}: {source}")]
    Wait {
        /// The program.
        program: OsString,
        /// Why the wait failed.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A program ran and failed.
    #[error("{program:?} failed (wait status {status:#x}): {stderr}")]
    CommandFailed {
        /// The program.
        program: OsString,
        /// Its wait status.
        status: i32,
        /// The last line it wrote on stderr.
        stderr: String,
    },
    /// A file or directory the row needs could not be read, written or created.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A JSON document the row reads or writes was not what it should be.
    #[error("{what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parse error.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The bench's rootfs and bundle could not be built.
    #[error("building the bench rootfs: {0}")]
    Fixture(#[source] Arc<std::io::Error>),
    /// The bench bundle's `config.json` could not be loaded as a container spec.
    #[error("loading the bench bundle: {0}")]
    Bundle(#[source] Arc<isolab_container::oci::OciError>),
    /// isolab's engine could not run the container.
    #[error("isolab container: {0}")]
    Container(#[source] Arc<isolab_container::spawn::SpawnError>),
    /// The workload ran but did not exit 0.
    #[error("the workload in {environment} ended with {status:?}")]
    WorkloadFailed {
        /// The row.
        environment: &'static str,
        /// How it ended.
        status: ExitStatus,
    },
    /// isolab's bridge network could not be prepared.
    #[error("bridge network: {0}")]
    Network(#[source] Arc<isolab_container::network::NetworkError>),
    /// isolab's default seccomp filter could not be built.
    #[error("seccomp filter: {0}")]
    Seccomp(#[source] Arc<isolab_container::seccomp::SeccompError>),
    /// isolab's VMM failed.
    #[error("microVM: {0}")]
    MicroVm(#[source] Arc<isolab_microvm::VmError>),
    /// The stub guest cannot measure this workload on this host (its own reason).
    #[error("{0}")]
    GuestUnsupported(String),
    /// Hiding the cgroup2 mount for crun failed at `step`.
    #[error("{step} for crun: {source}")]
    HideCgroup2 {
        /// The step (`unshare(CLONE_NEWNS)`, …).
        step: String,
        /// The system call's error.
        #[source]
        source: nix::errno::Errno,
    },
    /// The thread crun is launched from has gone.
    #[error("the crun launcher thread died")]
    LauncherGone,
    /// A row's environment was asked to launch before its `prepare`.
    #[error("{0} row used before prepare")]
    NotPrepared(&'static str),
    /// A probe's loop was too short to time as the difference of two runs.
    #[error(
        "the loop took no measurable time ({long_us:.0} µs vs {short_us:.0} µs without it): \
         raise the iteration count"
    )]
    LoopTooShort {
        /// The run with the loop, µs.
        long_us: f64,
        /// The run without it, µs.
        short_us: f64,
    },
    /// This row cannot answer the question by its nature (the text says where the answer is).
    #[error("{0}")]
    NotApplicable(&'static str),
    /// The tool ran, but what it reported holds no figure (the text says which).
    #[error("{0}")]
    NoReading(String),
    /// The workload, a tool or a helper thread did not behave as the row needs (the text
    /// says what happened).
    #[error("{0}")]
    Misbehaved(String),
    /// The machine's memory does not allow the measurement (the text says why).
    #[error("{0}")]
    Memory(String),
    /// Cleanup left something behind, so the figure cannot be trusted.
    #[error("{0}")]
    LeftBehind(String),
    /// A row that failed part-way: its figures so far are dropped, never shown as a result.
    #[error("failed at sample {sample} of {of}: {source}")]
    AtSample {
        /// The sample that failed (from 1).
        sample: usize,
        /// Samples the row was to take.
        of: usize,
        /// Why it failed.
        #[source]
        source: Box<NotMeasured>,
    },
    /// A step that failed for one of the reasons above.
    #[error("{step}: {source}")]
    During {
        /// The step.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: Box<NotMeasured>,
    },
}

fn install_hint(fix: &str) -> String {
    if fix.is_empty() {
        String::new()
    } else {
        format!(": {fix}")
    }
}

impl NotMeasured {
    /// [`NotMeasured::Io`] for `what` (a phrase with the path).
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NotMeasured {
        let what = what.into();
        move |source| NotMeasured::Io {
            what,
            source: Arc::new(source),
        }
    }

    /// [`NotMeasured::Json`] for `what`.
    pub fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> NotMeasured {
        let what = what.into();
        move |source| NotMeasured::Json {
            what,
            source: Arc::new(source),
        }
    }

    /// [`NotMeasured::Start`] of `program`.
    pub fn start(program: impl Into<OsString>) -> impl FnOnce(std::io::Error) -> NotMeasured {
        let program = program.into();
        move |source| NotMeasured::Start {
            program,
            source: Arc::new(source),
        }
    }

    /// [`NotMeasured::MicroVm`].
    pub fn microvm(e: isolab_microvm::VmError) -> NotMeasured {
        NotMeasured::MicroVm(Arc::new(e))
    }

    /// [`NotMeasured::Network`].
    pub fn network(e: isolab_container::network::NetworkError) -> NotMeasured {
        NotMeasured::Network(Arc::new(e))
    }

    /// The reason as the results file keeps it.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_before() {
        let missing = NotMeasured::ToolMissing {
            tool: "podman",
            fix: "apt-get install podman",
        };
        assert_eq!(
            missing.reason(),
            "podman not installed: apt-get install podman"
        );
        let bare = NotMeasured::ToolMissing {
            tool: "crun",
            fix: "",
        };
        assert_eq!(bare.reason(), "crun not installed");
        let io = NotMeasured::io("reading /x")(std::io::Error::from_raw_os_error(2));
        assert!(io.reason().starts_with("reading /x: "), "{io}");
        assert!(std::error::Error::source(&io).is_some());
        let during = NotMeasured::During {
            step: "docker import",
            source: Box::new(NotMeasured::LauncherGone),
        };
        assert_eq!(
            during.reason(),
            "docker import: the crun launcher thread died"
        );
    }
}
