//! What the child tells the parent over the status pipe.
//!
//! The pipe is `O_CLOEXEC`: when `execve` succeeds it closes, and the parent's read returns
//! end-of-file. Before that the child writes fixed-size messages into it: how long its setup
//! took, or which stage failed with which errno. A message is encoded into a stack array and
//! decoded from one: the child is a clone of a possibly multi-threaded parent and must not
//! allocate, and a write of [`MESSAGE_LEN`] bytes (less than `PIPE_BUF`) reaches the reader in
//! one piece.

use std::fmt;

/// Bytes in one encoded message.
pub const MESSAGE_LEN: usize = 40;

/// The first word of each message, telling which kind it is.
const TAG_EXEC: u32 = u32::from_be_bytes(*b"\0\0ok");
const TAG_CREATED: u32 = u32::from_be_bytes(*b"\0\0cr");
const TAG_FAILED: u32 = u32::from_be_bytes(*b"\0\0er");

/// Where in the child's setup something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    Sync = 1,
    Cgroup,
    JoinNamespace,
    CgroupNs,
    Ids,
    Rootfs,
    Hostname,
    Network,
    Capabilities,
    Rlimits,
    User,
    Workdir,
    Stdio,
    Seccomp,
    /// `create`: waiting for `start` on the exec FIFO.
    Start,
    Exec,
}

impl Stage {
    /// Every stage, so a number read back from the status pipe maps to one.
    const ALL: [Stage; 16] = [
        Stage::Sync,
        Stage::Cgroup,
        Stage::JoinNamespace,
        Stage::CgroupNs,
        Stage::Ids,
        Stage::Rootfs,
        Stage::Hostname,
        Stage::Network,
        Stage::Capabilities,
        Stage::Rlimits,
        Stage::User,
        Stage::Workdir,
        Stage::Stdio,
        Stage::Seccomp,
        Stage::Start,
        Stage::Exec,
    ];

    fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as u32 == v)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Sync => "waiting for the parent",
            Stage::Cgroup => "joining its cgroup",
            Stage::JoinNamespace => "joining an existing namespace (linux.namespaces[].path)",
            Stage::CgroupNs => "creating the cgroup namespace",
            Stage::Ids => "becoming root in the user namespace",
            Stage::Rootfs => "building the root filesystem",
            Stage::Hostname => "setting the hostname",
            Stage::Network => "configuring the network interfaces",
            Stage::Capabilities => "setting the capability sets",
            Stage::Rlimits => "setting the resource limits (rlimits)",
            Stage::User => "switching to the requested user",
            Stage::Workdir => "entering the working directory",
            Stage::Stdio => "connecting stdin/stdout/stderr",
            Stage::Seccomp => "installing the seccomp filter",
            Stage::Start => "waiting to be started (the exec FIFO)",
            Stage::Exec => "executing the command",
        })
    }
}

/// A failed step of the child's setup. `Copy`, so the child builds it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildFailure {
    pub stage: Stage,
    /// Which item of the stage failed (a mount step, a cgroup file, a network step); 0 when
    /// the stage has one item.
    pub index: u32,
    pub errno: i32,
}

impl ChildFailure {
    /// A failure of a single-item stage, as a `map_err` argument.
    pub fn at(stage: Stage) -> impl Fn(nix::errno::Errno) -> ChildFailure {
        move |e| ChildFailure {
            stage,
            index: 0,
            errno: e as i32,
        }
    }
}

/// Monotonic instants (ns) of the child's setup: when the parent let it go, and when its root
/// filesystem was ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetupTimes {
    pub go_ns: u64,
    pub rootfs_ns: u64,
}

/// One message from the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildMessage {
    /// Setup is done and `execve` is the next call (sent at `exec_ns`).
    Exec { times: SetupTimes, exec_ns: u64 },
    /// Setup is done and the child waits to be started before it calls `execve` (a container
    /// that is created now and started later).
    Created { times: SetupTimes },
    /// Setup (or `execve`) failed; the child exits after sending this.
    Failed {
        times: SetupTimes,
        failure: ChildFailure,
    },
}

/// Why bytes read from the status pipe are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes, not {MESSAGE_LEN}")]
    Truncated(usize),
    #[error("unknown message kind {0:#x}")]
    UnknownKind(u32),
    #[error("unknown setup stage {0}")]
    UnknownStage(u32),
}

impl ChildMessage {
    /// The fixed layout: kind, stage, index, errno (4 bytes each), then go, rootfs and exec
    /// instants (8 bytes each), in native byte order (both ends run on one machine).
    pub fn encode(&self) -> [u8; MESSAGE_LEN] {
        let (kind, failure, times, exec_ns) = match *self {
            ChildMessage::Exec { times, exec_ns } => (TAG_EXEC, None, times, exec_ns),
            ChildMessage::Created { times } => (TAG_CREATED, None, times, 0),
            ChildMessage::Failed { times, failure } => (TAG_FAILED, Some(failure), times, 0),
        };
        let (stage, index, errno) =
            failure.map_or((0, 0, 0), |f| (f.stage as u32, f.index, f.errno));
        let mut b = [0u8; MESSAGE_LEN];
        b[0..4].copy_from_slice(&kind.to_ne_bytes());
        b[4..8].copy_from_slice(&stage.to_ne_bytes());
        b[8..12].copy_from_slice(&index.to_ne_bytes());
        b[12..16].copy_from_slice(&errno.to_ne_bytes());
        b[16..24].copy_from_slice(&times.go_ns.to_ne_bytes());
        b[24..32].copy_from_slice(&times.rootfs_ns.to_ne_bytes());
        b[32..40].copy_from_slice(&exec_ns.to_ne_bytes());
        b
    }

    /// Reads one message; `bytes` must be exactly [`MESSAGE_LEN`] long.
    pub fn decode(bytes: &[u8]) -> Result<ChildMessage, DecodeError> {
        let b: &[u8; MESSAGE_LEN] = bytes
            .try_into()
            .map_err(|_| DecodeError::Truncated(bytes.len()))?;
        let word = |o: usize| [b[o], b[o + 1], b[o + 2], b[o + 3]];
        let quad = |o: usize| u64::from_ne_bytes(std::array::from_fn(|i| b[o + i]));
        let times = SetupTimes {
            go_ns: quad(16),
            rootfs_ns: quad(24),
        };
        match u32::from_ne_bytes(word(0)) {
            TAG_EXEC => Ok(ChildMessage::Exec {
                times,
                exec_ns: quad(32),
            }),
            TAG_CREATED => Ok(ChildMessage::Created { times }),
            TAG_FAILED => {
                let stage = u32::from_ne_bytes(word(4));
                let failure = ChildFailure {
                    stage: Stage::from_u32(stage).ok_or(DecodeError::UnknownStage(stage))?,
                    index: u32::from_ne_bytes(word(8)),
                    errno: i32::from_ne_bytes(word(12)),
                };
                Ok(ChildMessage::Failed { times, failure })
            }
            other => Err(DecodeError::UnknownKind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: SetupTimes = SetupTimes {
        go_ns: 1_000_000_007,
        rootfs_ns: u64::MAX - 3,
    };

    #[test]
    fn every_kind_of_message_survives_the_round_trip() {
        let messages = [
            ChildMessage::Exec {
                times: TIMES,
                exec_ns: 42,
            },
            ChildMessage::Created { times: TIMES },
            ChildMessage::Failed {
                times: TIMES,
                failure: ChildFailure {
                    stage: Stage::Rootfs,
                    index: 17,
                    errno: libc::EPERM,
                },
            },
        ];
        for message in messages {
            assert_eq!(ChildMessage::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn every_stage_survives_the_round_trip() {
        for stage in Stage::ALL {
            let message = ChildMessage::Failed {
                times: SetupTimes::default(),
                failure: ChildFailure {
                    stage,
                    index: 0,
                    errno: libc::ENOENT,
                },
            };
            assert_eq!(ChildMessage::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn a_truncated_message_is_rejected() {
        let bytes = ChildMessage::Created { times: TIMES }.encode();
        for len in [0, 1, MESSAGE_LEN - 1] {
            assert_eq!(
                ChildMessage::decode(&bytes[..len]),
                Err(DecodeError::Truncated(len))
            );
        }
        let long = [0u8; MESSAGE_LEN + 1];
        assert_eq!(
            ChildMessage::decode(&long),
            Err(DecodeError::Truncated(MESSAGE_LEN + 1))
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let mut bytes = [0xa5u8; MESSAGE_LEN];
        assert_eq!(
            ChildMessage::decode(&bytes),
            Err(DecodeError::UnknownKind(0xa5a5_a5a5))
        );
        bytes[0..4].copy_from_slice(&TAG_FAILED.to_ne_bytes());
        bytes[4..8].copy_from_slice(&99u32.to_ne_bytes());
        assert_eq!(
            ChildMessage::decode(&bytes),
            Err(DecodeError::UnknownStage(99))
        );
    }
}
