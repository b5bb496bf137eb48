//! What a default container may not touch, beyond its namespaces: docker's default hardening.
//!
//! Namespaces give a container its own view of processes, mounts and network, but several
//! files under `/proc` and `/sys` are windows onto the **one shared kernel** that no namespace
//! covers, and root inside the container passes their permission checks:
//!
//! * **`/proc/sys`** holds the kernel's tunables (sysctls). Most of them are global:
//!   `kernel.core_pattern` names the program the kernel runs *as host root* whenever any process
//!   on the machine crashes, so `echo '|/evil' > /proc/sys/kernel/core_pattern` followed by a
//!   crash is the classic container-to-host escape. `/proc/sysrq-trigger` reboots or crashes
//!   the host with one byte; `/proc/irq`, `/proc/bus` and `/proc/fs` reconfigure hardware and
//!   filesystems. These are made **read-only**: a bind mount of the path onto itself, remounted
//!   `MS_RDONLY`, so writes fail with EROFS whatever the capabilities.
//! * Other files leak host information or kernel addresses that make exploits easier:
//!   `/proc/kcore` (the host's memory as an ELF core), `/proc/keys`, `/proc/timer_list`,
//!   `/proc/sched_debug`, `/sys/firmware` (ACPI tables, EFI variables), ... These are
//!   **masked**: `/dev/null` is bind-mounted over a file and an empty read-only tmpfs over a
//!   directory, so they read as empty.
//! * **Device nodes** are checked by the device cgroup, not by namespaces: see
//!   `isolab_cgroups::devices`. A container gets docker's standard nodes only.
//!
//! The lists are docker's (moby's `oci/defaults.go`), which podman, crun and runc users get too.
//! `--privileged` lifts all of this, as in docker: nothing masked or read-only, every device.
//! The mounts are steps of the container's [`crate::rootfs::MountPlan`], applied by the child
//! before `pivot_root`; a path the kernel does not have is skipped, like runc does.

use isolab_cgroups::DeviceRule;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use serde::{Deserialize, Serialize};
use std::ffi::CStr;

/// Paths that read as empty inside a default container.
pub const DEFAULT_MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths that are read-only inside a default container.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Which device nodes the container's processes may open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DevicePolicy {
    /// docker's default: null, zero, full, random, urandom, tty, console, ptmx, pts/*.
    #[default]
    Standard,
    /// Every device (`--privileged`): no device rules are written.
    All,
    /// An explicit ordered list (an OCI bundle's `linux.resources.devices`).
    Rules(Vec<DeviceRule>),
}

impl DevicePolicy {
    /// The rules to write into the cgroup, or `None` to leave the inherited ones.
    pub fn cgroup_rules(&self) -> Option<Vec<DeviceRule>> {
        match self {
            DevicePolicy::Standard => Some(DeviceRule::standard_set()),
            DevicePolicy::All => None,
            DevicePolicy::Rules(r) => Some(r.clone()),
        }
    }
}

/// The masked and read-only paths and the device policy of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardening {
    /// Absolute paths inside the container that read as empty.
    pub masked_paths: Vec<String>,
    /// Absolute paths inside the container that are read-only.
    pub readonly_paths: Vec<String>,
    /// Which devices may be opened.
    pub devices: DevicePolicy,
    /// Extra device nodes to create under /dev (an OCI bundle's `linux.devices`).
    #[serde(default)]
    pub nodes: Vec<DeviceNode>,
}

/// A device node to create in the container (an OCI bundle's `linux.devices` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceNode {
    /// Absolute path inside the container, e.g. `/dev/fuse`.
    pub path: String,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: u32,
    pub major: u32,
    pub minor: u32,
    /// Permission bits of the node.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl DeviceNode {
    /// The device-cgroup rule that lets the container open this node (none for a FIFO).
    pub fn allow_rule(&self) -> Option<DeviceRule> {
        let kind = match self.kind {
            libc::S_IFCHR => isolab_cgroups::DeviceKind::Char,
            libc::S_IFBLK => isolab_cgroups::DeviceKind::Block,
            _ => return None,
        };
        Some(DeviceRule {
            allow: true,
            kind,
            major: Some(self.major),
            minor: Some(self.minor),
            access: isolab_cgroups::DeviceAccess::ALL,
        })
    }
}

impl Default for Hardening {
    /// docker's defaults.
    fn default() -> Self {
        Hardening {
            masked_paths: DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            readonly_paths: DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            devices: DevicePolicy::Standard,
            nodes: Vec::new(),
        }
    }
}

impl Hardening {
    /// What `--privileged` leaves: nothing masked, nothing read-only, every device.
    pub fn privileged() -> Self {
        Hardening {
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            devices: DevicePolicy::All,
            nodes: Vec::new(),
        }
    }
}

/// Flags every hardening mount carries (child side, like the two steps below). In a user namespace the kernel refuses a remount that
/// would drop a flag the underlying mount has (procfs is nosuid,nodev,noexec), so keep them all.
fn locked_flags() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

/// Hides `path`: `/dev/null` over a file, an empty read-only tmpfs over a directory; a path
/// this kernel does not have is skipped. Runs in the cloned child: raw syscalls only.
pub(crate) fn mask(path: &CStr) -> nix::Result<()> {
    let st = match nix::sys::stat::stat(path) {
        Err(Errno::ENOENT) => return Ok(()),
        other => other?,
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            Some(c"tmpfs"),
            path,
            Some(c"tmpfs"),
            MsFlags::MS_RDONLY | locked_flags(),
            Some(c"mode=0555"),
        )
    } else {
        // Still the host's root: /dev/null is the host's node, readable as empty.
        mount(
            Some(c"/dev/null"),
            path,
            None::<&CStr>,
            MsFlags::MS_BIND,
            None::<&CStr>,
        )
    }
}

/// Binds `path` onto itself and remounts it read-only; skipped when missing. Child side.
pub(crate) fn make_readonly(path: &CStr) -> nix::Result<()> {
    match mount(
        Some(path),
        path,
        None::<&CStr>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&CStr>,
    ) {
        Err(Errno::ENOENT) => return Ok(()),
        other => other?,
    }
    mount(
        None::<&CStr>,
        path,
        None::<&CStr>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(),
        None::<&CStr>,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_the_classic_escape_and_privileged_lifts_everything() {
        let d = Hardening::default();
        assert!(d.readonly_paths.iter().any(|p| p == "/proc/sys"));
        assert!(d.masked_paths.iter().any(|p| p == "/proc/kcore"));
        assert!(d.devices.cgroup_rules().is_some());
        let p = Hardening::privileged();
        assert!(p.masked_paths.is_empty() && p.readonly_paths.is_empty());
        assert_eq!(p.devices.cgroup_rules(), None);
    }
}
