//! Capabilities: what "root" may do, split into ~40 separate privileges.
//!
//! Since Linux 2.2, uid 0 is not one all-powerful identity but a bundle of *capabilities*:
//! `CAP_SYS_ADMIN` (mount, sethostname, …), `CAP_NET_ADMIN` (configure interfaces),
//! `CAP_SYS_MODULE` (load kernel modules — into the one kernel every container shares),
//! `CAP_DAC_OVERRIDE` (ignore file permissions), and so on. Each process carries several sets;
//! the **bounding set** is the ceiling: a capability dropped from it can never be regained, not
//! even by executing a setuid-root program. When root executes a program, its permitted and
//! effective sets become exactly its bounding set.
//!
//! Namespaces hide things; capabilities decide what root may still do to the shared kernel.
//! That is why docker starts containers with only 14 of them (no `CAP_SYS_ADMIN`, no
//! `CAP_SYS_MODULE`, no `CAP_NET_ADMIN`), and why "root in a container" without a user
//! namespace is still dangerous: whatever is left in the bounding set is the host's root power
//! (claim C6). isolab does the same by default; `--privileged` keeps everything, for the labs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Capability names in kernel order (`CAP_CHOWN` is 0); the index is the capability number.
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Capability numbers the seccomp policy refers to (linux/capability.h).
pub mod cap {
    pub const DAC_READ_SEARCH: usize = 2;
    pub const MKNOD: usize = 27;
    pub const SYS_MODULE: usize = 16;
    pub const SYS_RAWIO: usize = 17;
    pub const SYS_PTRACE: usize = 19;
    pub const SYS_PACCT: usize = 20;
    pub const SYS_ADMIN: usize = 21;
    pub const SYS_BOOT: usize = 22;
    pub const SYS_NICE: usize = 23;
    pub const SYS_TIME: usize = 25;
    pub const SYS_TTY_CONFIG: usize = 26;
    pub const SYSLOG: usize = 34;
    pub const PERFMON: usize = 38;
    pub const BPF: usize = 39;
}

/// Docker's default set (moby's `oci/caps/defaults.go`): what a process needs to behave like
/// root inside its own files, without power over the host.
const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A set of capabilities, one bit per capability number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSet(pub u64);

/// An unknown capability name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability {0:?}: use a name like NET_ADMIN or CAP_SYS_ADMIN (see capabilities(7)), or ALL")]
pub struct UnknownCapability(pub String);

impl CapSet {
    /// Every capability this list knows (what `--privileged` keeps).
    pub fn all() -> CapSet {
        CapSet((1u64 << NAMES.len()) - 1)
    }

    pub fn empty() -> CapSet {
        CapSet(0)
    }

    /// docker's default 14.
    pub fn docker_default() -> CapSet {
        DOCKER_DEFAULT.iter().fold(CapSet::empty(), |set, name| {
            set.with(index(name).unwrap_or(0))
        })
    }

    pub fn with(self, cap: usize) -> CapSet {
        CapSet(self.0 | (1 << cap))
    }

    pub fn without(self, cap: usize) -> CapSet {
        CapSet(self.0 & !(1 << cap))
    }

    pub fn contains(self, cap: usize) -> bool {
        self.0 & (1 << cap) != 0
    }

    /// Applies docker-style `--cap-add` / `--cap-drop` lists (`ALL` allowed in either).
    pub fn adjust(mut self, add: &[String], drop: &[String]) -> Result<CapSet, UnknownCapability> {
        for name in drop {
            self = match parse_one(name)? {
                None => CapSet::empty(),
                Some(cap) => self.without(cap),
            };
        }
        for name in add {
            self = match parse_one(name)? {
                None => CapSet::all(),
                Some(cap) => self.with(cap),
            };
        }
        Ok(self)
    }

    /// Drops everything outside this set from the calling thread's bounding set. Runs in the
    /// cloned child before exec: no allocation, one `prctl` per capability. Capabilities the
    /// running kernel does not have yet (EINVAL) are skipped.
    pub fn restrict_bounding_set(self) -> Result<(), nix::errno::Errno> {
        for cap in 0..64usize {
            if self.contains(cap) {
                continue;
            }
            // SAFETY: prctl with integer arguments only; it changes this thread's bounding set.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                let errno = nix::errno::Errno::last();
                if errno == nix::errno::Errno::EINVAL {
                    // Past the last capability this kernel knows.
                    break;
                }
                return Err(errno);
            }
        }
        Ok(())
    }
}

fn index(name: &str) -> Option<usize> {
    NAMES.iter().position(|n| *n == name)
}

/// `None` for ALL.
fn parse_one(name: &str) -> Result<Option<usize>, UnknownCapability> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare == "ALL" {
        return Ok(None);
    }
    index(bare)
        .map(Some)
        .ok_or_else(|| UnknownCapability(name.to_string()))
}

impl FromStr for CapSet {
    type Err = UnknownCapability;
    /// A comma-separated list of names (`CAP_` optional), or `ALL`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = CapSet::empty();
        for name in s.split(',').filter(|n| !n.trim().is_empty()) {
            set = match parse_one(name)? {
                None => CapSet::all(),
                Some(cap) => set.with(cap),
            };
        }
        Ok(set)
    }
}

impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = (0..NAMES.len())
            .filter(|c| self.contains(*c))
            .map(|c| format!("CAP_{}", NAMES[c]))
            .collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_kernel_numbers() {
        assert_eq!(index("SYS_ADMIN"), Some(21));
        assert_eq!(index("NET_ADMIN"), Some(12));
        assert_eq!(index("CHECKPOINT_RESTORE"), Some(40));
    }

    #[test]
    fn docker_default_has_fourteen_and_no_sys_admin() {
        let d = CapSet::docker_default();
        assert_eq!(d.0.count_ones(), 14);
        assert!(!d.contains(index("SYS_ADMIN").unwrap()));
        assert!(d.contains(index("CHOWN").unwrap()));
    }

    #[test]
    fn add_drop_and_parse() {
        let d = CapSet::docker_default();
        let s = d
            .adjust(&["cap_sys_admin".into()], &["NET_RAW".into()])
            .unwrap();
        assert!(s.contains(index("SYS_ADMIN").unwrap()));
        assert!(!s.contains(index("NET_RAW").unwrap()));
        assert_eq!(d.adjust(&[], &["ALL".into()]).unwrap(), CapSet::empty());
        assert_eq!("ALL".parse::<CapSet>().unwrap(), CapSet::all());
        assert!("CAP_BOGUS".parse::<CapSet>().is_err());
        assert_eq!(
            "CAP_KILL,CAP_CHOWN".parse::<CapSet>().unwrap().to_string(),
            "CAP_CHOWN,CAP_KILL"
        );
    }
}
