//! Which device nodes a container may open: the device access rules of a cgroup.
//!
//! A device node (`/dev/null`, `/dev/sda`, `/dev/kvm`) is just a name for a (type, major, minor)
//! triple; *anyone* with `CAP_MKNOD` can create a node for any triple anywhere they can write,
//! and file permissions are then whatever the creator chose. Namespaces do not help: there is no
//! "device namespace". So a container whose root keeps `CAP_MKNOD` (docker's default set does)
//! could `mknod /tmp/disk b 8 0` and read the host's disk, or `mknod /tmp/kvm c 10 232` and drive
//! the host's hypervisor — unless the kernel checks every `open` (and `mknod`) of a device node
//! against a per-cgroup list. That check is what this module configures:
//!
//! * **cgroup v1 `devices` controller**: two write-only files. Writing `a` to `devices.deny`
//!   denies everything and empties the allow list; each line written to `devices.allow`
//!   (`c 1:3 rwm`: char device 1:3, read/write/mknod) then adds an exception. A child cgroup can
//!   never allow more than its parent.
//! * **cgroup v2** has no devices controller: instead an **eBPF program** of type
//!   `BPF_PROG_TYPE_CGROUP_DEVICE` is attached to the cgroup, and the kernel runs it on each
//!   device access of any task in it, with (type, access, major, minor) as input; it returns 1
//!   to allow, 0 to deny. See [`crate::device_bpf`] for how that program is generated and loaded.
//!
//! Both are driven by the same ordered list of [`DeviceRule`]s with the OCI runtime
//! specification's meaning: rules are applied in order, the last matching rule wins, and a
//! device no rule matches is denied. [`DeviceRule::standard_set`] is docker's default: deny all,
//! allow `mknod` of anything (harmless once opening is refused) and only the nodes every program
//! expects (null, zero, full, random, urandom, tty, console, ptmx and the pty slaves).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which kind of device node a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// Every device, character and block (`a`).
    All,
    /// Character devices (`c`): terminals, /dev/null, /dev/kvm, ...
    Char,
    /// Block devices (`b`): disks and partitions.
    Block,
}

/// Access bits: read, write, mknod (`rwm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAccess {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl DeviceAccess {
    /// `rwm`.
    pub const ALL: DeviceAccess = DeviceAccess {
        read: true,
        write: true,
        mknod: true,
    };
    /// `m` alone: creating the node, not opening it.
    pub const MKNOD: DeviceAccess = DeviceAccess {
        read: false,
        write: false,
        mknod: true,
    };

    /// Parses the OCI / v1 syntax: any combination of `r`, `w`, `m`.
    pub fn parse(s: &str) -> Option<DeviceAccess> {
        let mut a = DeviceAccess {
            read: false,
            write: false,
            mknod: false,
        };
        for c in s.chars() {
            match c {
                'r' => a.read = true,
                'w' => a.write = true,
                'm' => a.mknod = true,
                _ => return None,
            }
        }
        Some(a)
    }
}

impl fmt::Display for DeviceAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [(self.read, "r"), (self.write, "w"), (self.mknod, "m")] {
            if on {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

/// One allow or deny rule; `None` for major or minor means "any" (`*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: DeviceAccess,
}

impl DeviceRule {
    /// Allows `access` to the char device `major:minor` (`None`: every minor).
    pub const fn allow_char(major: u32, minor: Option<u32>) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            access: DeviceAccess::ALL,
        }
    }

    /// Denies (`allow == false`) or allows everything.
    pub const fn everything(allow: bool) -> DeviceRule {
        DeviceRule {
            allow,
            kind: DeviceKind::All,
            major: None,
            minor: None,
            access: DeviceAccess::ALL,
        }
    }

    /// docker's default device rules (see the module header).
    pub fn standard_set() -> Vec<DeviceRule> {
        let mknod_any = |kind| DeviceRule {
            allow: true,
            kind,
            major: None,
            minor: None,
            access: DeviceAccess::MKNOD,
        };
        vec![
            DeviceRule::everything(false),
            mknod_any(DeviceKind::Char),
            mknod_any(DeviceKind::Block),
            DeviceRule::allow_char(1, Some(3)), // null
            DeviceRule::allow_char(1, Some(5)), // zero
            DeviceRule::allow_char(1, Some(7)), // full
            DeviceRule::allow_char(1, Some(8)), // random
            DeviceRule::allow_char(1, Some(9)), // urandom
            DeviceRule::allow_char(5, Some(0)), // tty
            DeviceRule::allow_char(5, Some(1)), // console
            DeviceRule::allow_char(5, Some(2)), // ptmx
            DeviceRule::allow_char(136, None),  // pts/*
        ]
    }

    /// The line v1's `devices.allow` / `devices.deny` expects, e.g. `c 1:3 rwm` or `a *:* rwm`.
    pub fn v1_line(&self) -> String {
        let kind = match self.kind {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        format!(
            "{kind} {}:{} {}",
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines() {
        assert_eq!(DeviceRule::everything(false).v1_line(), "a *:* rwm");
        assert_eq!(DeviceRule::allow_char(1, Some(3)).v1_line(), "c 1:3 rwm");
        assert_eq!(DeviceRule::allow_char(136, None).v1_line(), "c 136:* rwm");
        assert_eq!(DeviceAccess::parse("rw").unwrap().to_string(), "rw");
        assert!(DeviceAccess::parse("rx").is_none());
    }

    #[test]
    fn standard_set_starts_with_deny_all_and_has_no_kvm() {
        let set = DeviceRule::standard_set();
        assert_eq!(set[0], DeviceRule::everything(false));
        assert!(!set
            .iter()
            .any(|r| r.allow && r.major == Some(10) && r.access.read));
    }
}
