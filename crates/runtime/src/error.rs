//! Why a runtime command failed: one line each, saying what is wrong and what to do, as runc's
//! messages do (podman shows them to its user verbatim).

use crate::state::Status;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "container {0:?} does not exist (`isolab-runtime list` shows the ones under this --root)"
    )]
    NotFound(String),
    #[error("container with id {0:?} already exists: pick another id or `isolab-runtime delete --force {0}` first")]
    AlreadyExists(String),
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("cannot {action} container {id}: it is {status}, and {action} needs it {needed}")]
    WrongState {
        id: String,
        action: &'static str,
        status: Status,
        needed: &'static str,
    },
    #[error("the state of container {id} in {path} is corrupt ({source}): remove it with `isolab-runtime delete --force {id}`")]
    CorruptState {
        id: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bundle(#[from] isolab_container::oci::OciError),
    #[error("config.json declares ociVersion {0:?}: isolab-runtime runs runtime-spec 1.0.0 to {max}", max = crate::OCI_VERSION)]
    UnsupportedVersion(String),
    #[error(transparent)]
    Spawn(#[from] isolab_container::spawn::SpawnError),
    #[error(transparent)]
    Join(#[from] isolab_container::join::JoinError),
    #[error(transparent)]
    Cgroup(#[from] isolab_cgroups::CgroupError),
    #[error(
        "unknown signal {0:?}: give a name (TERM, SIGKILL, HUP, ...) or a number from 1 to 64"
    )]
    UnknownSignal(String),
    #[error("sending {signal} to container {id}: {source}")]
    Signal {
        id: String,
        signal: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("--systemd-cgroup is not supported: isolab-runtime writes the cgroup filesystem itself; run podman with --cgroup-manager cgroupfs")]
    SystemdCgroup,
    #[error("the {kind} hook {path} {failure}")]
    Hook {
        kind: &'static str,
        path: PathBuf,
        failure: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("container {id} exited before it was started (it was killed, or its setup failed after create)")]
    DiedBeforeStart { id: String },
}

impl RuntimeError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> RuntimeError {
        RuntimeError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// runc's convention: 1 for its own errors; a command that could not even be executed
    /// inside the container keeps the shell's 126/127, which podman passes on to its user.
    pub fn exit_code(&self) -> u8 {
        match self {
            RuntimeError::Spawn(e) => match e.exit_code() {
                125 => 1,
                code => code,
            },
            RuntimeError::Join(e) => e.exit_code(),
            _ => 1,
        }
    }
}
