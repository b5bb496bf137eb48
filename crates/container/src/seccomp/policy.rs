//! The default policy as a table: which system calls a container is refused, which capability
//! lifts each refusal, and why the call is refused at all.

use crate::capabilities::{cap, CapSet};

/// The namespace-creating clone/unshare flags; any one of them makes the call refused.
pub(super) const CLONE_NEW_FLAGS: [libc::c_int; 8] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWTIME,
];

/// How a denylist entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyRule {
    /// Every invocation is refused.
    Always,
    /// Refused when the first argument (the flags) has any `CLONE_NEW*` bit set.
    NamespaceFlagsInArg0,
}

/// One entry of the default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeniedSyscall {
    /// Name as in `man 2`.
    pub name: &'static str,
    /// x86_64 system call number.
    pub nr: i64,
    /// When it is refused.
    pub rule: DenyRule,
    /// Capabilities any one of which lifts the rule (docker's `includes.caps`); empty: never.
    pub lifted_by: &'static [usize],
    /// Why a container should not make it.
    pub why: &'static str,
}

const fn deny(
    name: &'static str,
    nr: i64,
    lifted_by: &'static [usize],
    why: &'static str,
) -> DeniedSyscall {
    DeniedSyscall {
        name,
        nr,
        rule: DenyRule::Always,
        lifted_by,
        why,
    }
}

const NEVER: &[usize] = &[];
const SYS_ADMIN: &[usize] = &[cap::SYS_ADMIN];
const SYS_BOOT: &[usize] = &[cap::SYS_BOOT];
const SYS_MODULE: &[usize] = &[cap::SYS_MODULE];
const SYS_TIME: &[usize] = &[cap::SYS_TIME];
const SYS_RAWIO: &[usize] = &[cap::SYS_RAWIO];

/// isolab's default policy: these calls get EPERM, everything else runs (plus the x86_64
/// architecture check, x32 → ENOSYS and `clone3` → ENOSYS, see the module header).
pub const DEFAULT_DENYLIST: &[DeniedSyscall] = &[
    deny(
        "kexec_load",
        libc::SYS_kexec_load,
        SYS_BOOT,
        "boots another kernel",
    ),
    deny(
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        SYS_BOOT,
        "boots another kernel",
    ),
    deny(
        "init_module",
        libc::SYS_init_module,
        SYS_MODULE,
        "loads code into the shared kernel",
    ),
    deny(
        "finit_module",
        libc::SYS_finit_module,
        SYS_MODULE,
        "loads code into the shared kernel",
    ),
    deny(
        "delete_module",
        libc::SYS_delete_module,
        SYS_MODULE,
        "unloads host kernel modules",
    ),
    deny(
        "reboot",
        libc::SYS_reboot,
        SYS_BOOT,
        "reboots or halts the host",
    ),
    deny(
        "swapon",
        libc::SYS_swapon,
        SYS_ADMIN,
        "host-wide swap configuration",
    ),
    deny(
        "swapoff",
        libc::SYS_swapoff,
        SYS_ADMIN,
        "host-wide swap configuration",
    ),
    deny(
        "acct",
        libc::SYS_acct,
        &[cap::SYS_PACCT],
        "host-wide process accounting",
    ),
    deny(
        "settimeofday",
        libc::SYS_settimeofday,
        SYS_TIME,
        "sets the host clock (not namespaced)",
    ),
    deny(
        "clock_settime",
        libc::SYS_clock_settime,
        SYS_TIME,
        "sets the host clock (not namespaced)",
    ),
    deny(
        "clock_adjtime",
        libc::SYS_clock_adjtime,
        SYS_TIME,
        "steers the host clock",
    ),
    deny(
        "syslog",
        libc::SYS_syslog,
        &[cap::SYSLOG],
        "reads/clears the host kernel log (kernel addresses)",
    ),
    deny(
        "quotactl",
        libc::SYS_quotactl,
        SYS_ADMIN,
        "host filesystem quotas",
    ),
    deny(
        "_sysctl",
        libc::SYS__sysctl,
        NEVER,
        "obsolete host kernel tunables interface",
    ),
    deny(
        "vhangup",
        libc::SYS_vhangup,
        &[cap::SYS_TTY_CONFIG],
        "hangs up the controlling terminal",
    ),
    deny("iopl", libc::SYS_iopl, SYS_RAWIO, "raw x86 I/O port access"),
    deny(
        "ioperm",
        libc::SYS_ioperm,
        SYS_RAWIO,
        "raw x86 I/O port access",
    ),
    deny(
        "lookup_dcookie",
        libc::SYS_lookup_dcookie,
        SYS_ADMIN,
        "kernel profiling internals",
    ),
    deny(
        "keyctl",
        libc::SYS_keyctl,
        NEVER,
        "the kernel keyring is not namespaced",
    ),
    deny(
        "add_key",
        libc::SYS_add_key,
        NEVER,
        "the kernel keyring is not namespaced",
    ),
    deny(
        "request_key",
        libc::SYS_request_key,
        NEVER,
        "the kernel keyring is not namespaced",
    ),
    deny(
        "mount",
        libc::SYS_mount,
        SYS_ADMIN,
        "rearranges the mount table the runtime prepared",
    ),
    deny(
        "umount2",
        libc::SYS_umount2,
        SYS_ADMIN,
        "uncovers what the runtime mounted over",
    ),
    deny(
        "pivot_root",
        libc::SYS_pivot_root,
        SYS_ADMIN,
        "changes the root the runtime set",
    ),
    deny(
        "fsopen",
        libc::SYS_fsopen,
        SYS_ADMIN,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "fsconfig",
        libc::SYS_fsconfig,
        SYS_ADMIN,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "fsmount",
        libc::SYS_fsmount,
        SYS_ADMIN,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "fspick",
        libc::SYS_fspick,
        SYS_ADMIN,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "move_mount",
        libc::SYS_move_mount,
        SYS_ADMIN,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "open_tree",
        libc::SYS_open_tree,
        SYS_ADMIN,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "mount_setattr",
        libc::SYS_mount_setattr,
        SYS_ADMIN,
        "e.g. turns a read-only mount writable",
    ),
    deny(
        "setns",
        libc::SYS_setns,
        SYS_ADMIN,
        "joins another (e.g. the host's) namespace",
    ),
    DeniedSyscall {
        name: "unshare",
        nr: libc::SYS_unshare,
        rule: DenyRule::NamespaceFlagsInArg0,
        lifted_by: SYS_ADMIN,
        why: "new namespaces (a user namespace grants a full capability set)",
    },
    DeniedSyscall {
        name: "clone",
        nr: libc::SYS_clone,
        rule: DenyRule::NamespaceFlagsInArg0,
        lifted_by: SYS_ADMIN,
        why: "new namespaces (fork and threads still work)",
    },
    deny(
        "bpf",
        libc::SYS_bpf,
        &[cap::SYS_ADMIN, cap::BPF],
        "loads eBPF programs into the shared kernel",
    ),
    deny(
        "perf_event_open",
        libc::SYS_perf_event_open,
        &[cap::SYS_ADMIN, cap::PERFMON],
        "observes the host; frequent CVE source",
    ),
    deny(
        "userfaultfd",
        libc::SYS_userfaultfd,
        NEVER,
        "stalls the kernel mid-copy to win races",
    ),
    deny(
        "fanotify_init",
        libc::SYS_fanotify_init,
        SYS_ADMIN,
        "watches every file access on a whole host filesystem",
    ),
    deny(
        "uselib",
        libc::SYS_uselib,
        NEVER,
        "obsolete a.out loader, only a kernel attack surface",
    ),
    deny(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        &[cap::DAC_READ_SEARCH],
        "opens host inodes past the mount namespace (the 'shocker' escape)",
    ),
];

/// Every capability that lifts some entry of the policy (CAP_SYS_ADMIN also lifts `clone3`).
pub(super) fn gating_caps() -> CapSet {
    DEFAULT_DENYLIST
        .iter()
        .flat_map(|e| e.lifted_by.iter())
        .fold(CapSet::empty().with(cap::SYS_ADMIN), |set, c| set.with(*c))
}
