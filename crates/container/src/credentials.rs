//! What the workload runs *as*: its capability sets, resource limits and groups.
//!
//! A process carries five capability sets (see `capabilities(7)`):
//!
//! * **bounding**: the ceiling; see [`crate::capabilities`];
//! * **permitted**: what it may switch on; **effective**: what is switched on now (what the
//!   kernel checks);
//! * **inheritable**: what may pass through `execve` to a program whose file carries the same
//!   inheritable bits;
//! * **ambient** (Linux 4.3): what passes through `execve` to *any* program that is not setuid
//!   and has no file capabilities. It is the only way for a non-root user to run an ordinary
//!   binary with, say, `CAP_NET_BIND_SERVICE`, and must be a subset of permitted and inheritable.
//!
//! When root executes a program, its permitted and effective sets become the bounding set; a
//! non-root process keeps only its ambient set. Switching from uid 0 to another uid also clears
//! permitted and effective, unless `PR_SET_KEEPCAPS` was set first. So to run an OCI bundle's
//! non-root `process.user` with the capabilities its `config.json` lists, the child sets
//! keep-caps, switches uid, sets the three classic sets with `capset(2)`, then raises each
//! ambient capability with `prctl(PR_CAP_AMBIENT_RAISE)` — the order crun and runc use.
//!
//! **rlimits** (`setrlimit(2)`) are per-process ceilings (open files, processes per user, core
//! size, ...) inherited across `fork` and `execve`. Only a privileged process may raise a hard
//! limit, so they are set while the child is still root. A soft limit above its hard limit is
//! refused when the bundle is read, as crun does.
//!
//! Everything here that runs in the child makes raw system calls on data prepared before the
//! clone: no allocation (see `spawn::child`).

use crate::capabilities::CapSet;
use crate::seccomp::SeccompProgram;
use nix::errno::Errno;
use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};

/// The four capability sets besides bounding (an OCI bundle's `process.capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessCaps {
    pub effective: CapSet,
    pub permitted: CapSet,
    pub inheritable: CapSet,
    pub ambient: CapSet,
}

/// One resource limit: `RLIMIT_*` number, soft and hard value (`u64::MAX`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// The `RLIMIT_*` names of setrlimit(2) and their numbers on Linux.
const RLIMIT_NAMES: [(&str, u32); 16] = [
    ("RLIMIT_CPU", 0),
    ("RLIMIT_FSIZE", 1),
    ("RLIMIT_DATA", 2),
    ("RLIMIT_STACK", 3),
    ("RLIMIT_CORE", 4),
    ("RLIMIT_RSS", 5),
    ("RLIMIT_NPROC", 6),
    ("RLIMIT_NOFILE", 7),
    ("RLIMIT_MEMLOCK", 8),
    ("RLIMIT_AS", 9),
    ("RLIMIT_LOCKS", 10),
    ("RLIMIT_SIGPENDING", 11),
    ("RLIMIT_MSGQUEUE", 12),
    ("RLIMIT_NICE", 13),
    ("RLIMIT_RTPRIO", 14),
    ("RLIMIT_RTTIME", 15),
];

/// The number of an `RLIMIT_*` name (as an OCI bundle spells it), if Linux has it.
pub fn rlimit_number(name: &str) -> Option<u32> {
    RLIMIT_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

/// Sets every limit on the calling process. Child side: one `prlimit64` per entry.
pub fn apply_rlimits(limits: &[Rlimit]) -> Result<(), Errno> {
    for l in limits {
        let new = libc::rlimit64 {
            rlim_cur: l.soft,
            rlim_max: l.hard,
        };
        // SAFETY: prlimit64 on ourselves (pid 0) reads the valid local `new` and writes nothing.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                0,
                l.resource,
                &new as *const libc::rlimit64,
                std::ptr::null_mut::<libc::rlimit64>(),
            )
        };
        if rc != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Keeps permitted capabilities across the coming uid switch away from 0.
pub fn keep_caps_across_setuid() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only; it sets a flag of the calling thread.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets as two 32-bit halves.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Sets effective, permitted and inheritable with `capset(2)`, then raises the ambient set.
pub fn apply_process_caps(caps: &ProcessCaps) -> Result<(), Errno> {
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let half = |set: CapSet, hi: bool| (if hi { set.0 >> 32 } else { set.0 }) as u32;
    let data = [false, true].map(|hi| CapData {
        effective: half(caps.effective, hi),
        permitted: half(caps.permitted, hi),
        inheritable: half(caps.inheritable, hi),
    });
    // SAFETY: capset reads the valid header and the two-element data array (version 3).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(Errno::last());
    }
    // The kernel only raises an ambient capability that is both permitted and inheritable;
    // like crun, the others are left out (`crun spec` lists ambient caps with an empty
    // inheritable set).
    let raisable = CapSet(caps.ambient.0 & caps.permitted.0 & caps.inheritable.0);
    for cap in 0..64usize {
        if !raisable.contains(cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only; it changes this thread's ambient set.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Who a container process becomes, borrowed from data prepared before the fork. A
/// container's first process and a process `exec`'d into it take the same steps, in the same
/// order, through [`Workload::assume`] and [`Workload::seal`].
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    pub rlimits: &'a [Rlimit],
    pub seccomp: Option<&'a SeccompProgram>,
    pub no_new_privileges: bool,
    /// (uid, gid).
    pub user: (u32, u32),
    /// Supplementary groups.
    pub groups: &'a [Gid],
    pub caps: Option<&'a ProcessCaps>,
}

/// Which step of becoming the workload failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStep {
    Rlimits,
    Seccomp,
    User,
    Capabilities,
}

impl Workload<'_> {
    /// rlimits (while still root), the seccomp filter (while still privileged enough to install
    /// it without no-new-privileges), then groups, uid/gid and the capability sets. Raw system
    /// calls only: it runs between fork and exec.
    pub fn assume(&self) -> Result<(), (CredentialStep, Errno)> {
        apply_rlimits(self.rlimits).map_err(|e| (CredentialStep::Rlimits, e))?;
        if !self.no_new_privileges {
            // Everything after this only uses calls the policy allows.
            if let Some(filter) = self.seccomp {
                crate::seccomp::install(filter).map_err(|e| (CredentialStep::Seccomp, e))?;
            }
        }
        let user = |e| (CredentialStep::User, e);
        let (uid, gid) = self.user;
        if (uid, gid) != (0, 0) || !self.groups.is_empty() {
            nix::unistd::setgroups(self.groups).map_err(user)?;
        }
        if uid != 0 && self.caps.is_some() {
            keep_caps_across_setuid().map_err(user)?;
        }
        if (uid, gid) != (0, 0) {
            let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
            nix::unistd::setresgid(gid, gid, gid).map_err(user)?;
            nix::unistd::setresuid(uid, uid, uid).map_err(user)?;
        }
        if let Some(caps) = self.caps {
            apply_process_caps(caps).map_err(|e| (CredentialStep::Capabilities, e))?;
        }
        Ok(())
    }

    /// The last step before exec, with no-new-privileges: make the promise, then install the
    /// filter last, after the uid switch.
    pub fn seal(&self) -> Result<(), (CredentialStep, Errno)> {
        if self.no_new_privileges {
            set_no_new_privs().map_err(|e| (CredentialStep::Seccomp, e))?;
            if let Some(filter) = self.seccomp {
                crate::seccomp::install(filter).map_err(|e| (CredentialStep::Seccomp, e))?;
            }
        }
        Ok(())
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS)`: no later `execve` may gain privileges (setuid bits and file
/// capabilities are ignored). Only when asked for: docker and the OCI runtimes leave it off by
/// default, so `su`/`ping` with file capabilities keep working.
pub fn set_no_new_privs() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only; it sets a flag of the calling task.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names() {
        assert_eq!(rlimit_number("RLIMIT_NOFILE"), Some(libc::RLIMIT_NOFILE));
        assert_eq!(rlimit_number("RLIMIT_NPROC"), Some(libc::RLIMIT_NPROC));
        assert_eq!(rlimit_number("RLIMIT_RTTIME"), Some(libc::RLIMIT_RTTIME));
        assert_eq!(rlimit_number("NOFILE"), None);
    }
}
