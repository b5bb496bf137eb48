//! Why a container could not be started: one variant per thing that can fail, so a caller can
//! match on it, each with the underlying error as its `source`.

use super::message::{ChildFailure, DecodeError, Stage};
use super::prepare::ExecPlan;
use crate::network::NetworkError;
use crate::rootfs::{MountPlan, PlanError};
use crate::seccomp::SeccompError;
use crate::spec::{ContainerSpec, NetworkMode};
use nix::errno::Errno;
use std::path::PathBuf;

/// Why a container could not be started or waited for.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("isolab needs root to create namespaces, cgroups and mounts: run it with sudo, or rootless with a user namespace (--userns)")]
    NotRoot,
    #[error(
        "a rootless container (not root, in a user namespace) cannot {0}: run as root for that"
    )]
    Rootless(&'static str),
    #[error("invalid container spec: {0}")]
    InvalidSpec(#[from] SpecError),
    #[error(transparent)]
    Cgroup(#[from] isolab_cgroups::CgroupError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("clone3 failed: {errno} (the kernel refused to create the namespaces {namespaces})")]
    Clone {
        #[source]
        errno: Errno,
        namespaces: String,
    },
    #[error(transparent)]
    Network(NetworkError),
    /// A step of the child's setup failed.
    #[error("setting up the container failed while {stage}: {}", .errno.desc())]
    ChildStage {
        stage: Stage,
        #[source]
        errno: Errno,
    },
    /// A step of building the root filesystem failed (`step` says which, e.g. "mounting proc
    /// on /x/proc").
    #[error("setting up the container failed while {step}: {}", .errno.desc())]
    Rootfs {
        step: String,
        #[source]
        errno: Errno,
    },
    #[error("setting up the container failed while entering the working directory {workdir:?}: {}", .errno.desc())]
    Workdir {
        workdir: String,
        #[source]
        errno: Errno,
    },
    /// The child ended without telling the parent how its setup went.
    #[error("setting up the container failed while starting: the child exited before reporting (killed?)")]
    ChildVanished,
    #[error("setting up the container failed while starting: the child's status message is unreadable ({0})")]
    ChildMessage(#[source] DecodeError),
    /// The caller's `before_start` hook failed (its message is the caller's).
    #[error(transparent)]
    Hook(super::HookError),
    #[error("a created container (started later) cannot join isolab's bridge network: use a network namespace without a bridge")]
    CreatedWithBridge,
    #[error("{command:?} was not found in the container (searched {path})")]
    CommandNotFound { command: String, path: String },
    #[error("{command:?} could not be executed in the container: {}", .errno.desc())]
    CannotExecute {
        command: String,
        #[source]
        errno: Errno,
    },
}

/// What is wrong with a container spec, found before anything is created.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("no command given")]
    NoCommand,
    #[error("an image rootfs is an overlay mount and needs a mount namespace: add 'mnt' to --namespaces")]
    LayersNeedMountNs,
    #[error("pivot_root needs a mount namespace: add 'mnt' to --namespaces or use --chroot")]
    PivotRootNeedsMountNs,
    #[error("--net host shares the host's network namespace: remove 'net' from --namespaces")]
    HostNetWithNetNs,
    #[error("--net {} needs a network namespace: add 'net' to --namespaces or use --net host", format!("{:?}", .0).to_lowercase())]
    NetNeedsNetNs(NetworkMode),
    #[error("a user namespace needs an id mapping")]
    UserNsNeedsIdMapping,
    #[error("the working directory {0:?} must be an absolute path")]
    RelativeWorkdir(String),
    #[error("hostname {0:?} must be 1 to 64 characters")]
    BadHostname(String),
    #[error("sysctls are written into the container's own /proc and need a mount namespace: add 'mnt' to --namespaces")]
    SysctlNeedsMountNs,
    #[error("sysctl {0:?} is not a dotted name like net.ipv4.ip_forward")]
    BadSysctl(String),
    #[error("rootfs {} is not a directory", .0.display())]
    RootfsNotDir(PathBuf),
    #[error("bind mount source {} does not exist", .0.display())]
    MissingBindSource(PathBuf),
    #[error("{what} {value:?} contains a NUL byte")]
    NulByte { what: &'static str, value: String },
    #[error(transparent)]
    MountPlan(#[from] PlanError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
}

impl SpawnError {
    pub(super) fn io(what: &'static str, source: impl Into<std::io::Error>) -> Self {
        SpawnError::Io {
            what,
            source: source.into(),
        }
    }

    /// The exit code a shell (and docker) would use for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            SpawnError::CommandNotFound { .. } => 127,
            SpawnError::CannotExecute { .. } => 126,
            _ => 125,
        }
    }

    /// Turns the child's report of a failed stage into the error the user reads, naming the
    /// mount step, working directory or command involved.
    pub(super) fn from_child(
        failure: ChildFailure,
        mounts: Option<&MountPlan>,
        exec: &ExecPlan,
        spec: &ContainerSpec,
    ) -> SpawnError {
        let errno = Errno::from_raw(failure.errno);
        let command = spec.args[0].clone();
        match failure.stage {
            Stage::Exec if matches!(errno, Errno::ENOENT | Errno::ENOTDIR) => {
                SpawnError::CommandNotFound {
                    path: if command.contains('/') {
                        "as given".into()
                    } else {
                        format!("PATH={}", exec.search_path)
                    },
                    command,
                }
            }
            Stage::Exec => SpawnError::CannotExecute { command, errno },
            Stage::Rootfs => SpawnError::Rootfs {
                step: mounts.map_or(Stage::Rootfs.to_string(), |m| {
                    m.step_name(failure.index).to_string()
                }),
                errno,
            },
            Stage::Workdir => SpawnError::Workdir {
                workdir: spec.workdir.clone(),
                errno,
            },
            stage => SpawnError::ChildStage { stage, errno },
        }
    }
}
