//! seccomp-bpf: the "what may this process ask the kernel" half of a container's confinement.
//!
//! A container shares the host kernel, so every system call it makes reaches the same code the
//! host runs. Namespaces change what a call *sees*, cgroups what it may *use*; seccomp decides
//! whether the call runs at all.
//!
//! # How it works
//!
//! A seccomp filter is a **classic BPF** program (the 1992 packet-filter bytecode, not eBPF): an
//! array of 8-byte `sock_filter` instructions (`code: u16, jt: u8, jf: u8, k: u32`) with one
//! accumulator register, forward-only jumps and no loops, so the kernel can prove it terminates.
//! Once installed, the kernel runs it on **every system call** of the process, before the call
//! itself, over a read-only `struct seccomp_data`:
//!
//! ```text
//! offset 0   u32 nr                   system call number
//! offset 4   u32 arch                 AUDIT_ARCH_* of the calling convention used
//! offset 8   u64 instruction_pointer
//! offset 16  u64 args[6]              raw register arguments (pointers are NOT followed)
//! ```
//!
//! The program returns a 32-bit verdict: `SECCOMP_RET_ALLOW` runs the call,
//! `SECCOMP_RET_ERRNO | e` skips it and makes it return `-e`, `SECCOMP_RET_KILL_PROCESS` kills the
//! whole process with SIGSYS (there are also TRAP, TRACE, LOG and USER_NOTIF). Filters are
//! inherited by children and kept across `execve`, and can only be added, never removed: that is
//! what makes them a safe last step before handing control to untrusted code.
//!
//! **Who may install one.** A filter can make a call fail in ways a setuid-root binary never
//! expected (say, `setuid()` returning EPERM and the program carrying on as root). So the kernel
//! only lets a process install a filter if it has `CAP_SYS_ADMIN` in its user namespace, or once
//! it has promised, with `prctl(PR_SET_NO_NEW_PRIVS, 1)`, that no later `execve` can gain
//! privileges (setuid bits and file capabilities are then ignored). isolab installs the filter
//! while the child is still root in its namespaces (also in a user namespace, where that root has
//! `CAP_SYS_ADMIN` over the namespace), so no-new-privileges stays off unless asked for, as in
//! docker; [`install`] sets it only if the kernel refuses the filter otherwise.
//!
//! **Why the architecture check.** On x86-64 the same process can enter the kernel three ways,
//! with three different syscall tables: 64-bit `syscall` (AUDIT_ARCH_X86_64), `int 0x80` (i386,
//! AUDIT_ARCH_I386) and x32 (AUDIT_ARCH_X86_64 with bit 30, `__X32_SYSCALL_BIT`, set in `nr`).
//! A denylist written for one table says nothing about the others (number 88 is `symlink` in the x86_64 table and `reboot`
//! in the i386 one), so the program first kills any process that uses a
//! non-x86_64 convention (seccompiler's prologue) and then answers every x32 number with ENOSYS
//! (our own prologue, see [`X32_SYSCALL_BIT`]), as if the kernel had no x32 support.
//!
//! # Why compile once
//!
//! crun and runc read a JSON profile (Docker's allows several hundred syscalls, some with
//! argument rules), resolve names with libseccomp and generate BPF on **every** container start:
//! 10-20 ms per start on this machine, more than everything else crun does. The program only
//! depends on the policy and on which capabilities the container keeps, so isolab builds it
//! with the `seccompiler` crate (rust-vmm, the one Firecracker uses) from a table compiled into
//! the binary, once per process and capability set ([`SeccompProgram::for_caps`]). Installing
//! it in the child is then one system call ([`install`]). Measured here (release build, first
//! call in a fresh process, 60 interleaved runs each): compiling ~47 µs median, reading the same
//! program from a cache file ~42 µs, a difference inside the spread, so isolab keeps no cache
//! file.
//!
//! # The default policy: docker's semantics
//!
//! A **denylist** returning EPERM (what Docker's profile returns for refused calls) for calls a
//! container's workload has no business making, because they act on the one shared kernel rather
//! than on namespaced state. Like in docker's profile, most entries are tied to the capability
//! that makes the call legitimate: with `--cap-add SYS_ADMIN` the mount family, `setns`,
//! `unshare`, `bpf`, ... run again, with `--cap-add SYS_TIME` the clock calls, and so on (the
//! kernel then still checks the capability itself). isolab installs the filter *after* its own
//! setup (mounts, `pivot_root`, hostname), right before switching to the workload's user and
//! `execve`, so blocking mount-related calls does not get in the runtime's way. Every entry, its
//! capability and its reason is in [`DEFAULT_DENYLIST`]; in short:
//!
//! - replace or change the kernel: `kexec_load`, `kexec_file_load`, `reboot` (CAP_SYS_BOOT),
//!   `init_module`, `finit_module`, `delete_module` (CAP_SYS_MODULE);
//! - host-wide resources with no namespace: `swapon`, `swapoff`, `quotactl`, `lookup_dcookie`,
//!   `fanotify_init` (CAP_SYS_ADMIN), `acct` (CAP_SYS_PACCT), `settimeofday`, `clock_settime`,
//!   `clock_adjtime` (CAP_SYS_TIME), `syslog` (CAP_SYSLOG, the kernel log), `vhangup`
//!   (CAP_SYS_TTY_CONFIG), `iopl` and `ioperm` (CAP_SYS_RAWIO, raw x86 I/O ports), `_sysctl`
//!   and `uselib` (always);
//! - the kernel keyring, which is not namespaced: `keyctl`, `add_key`, `request_key` (always);
//! - rearranging the mount table the runtime prepared: `mount`, `umount2`, `pivot_root`, and the
//!   new mount API (`fsopen`, `fsconfig`, `fsmount`, `fspick`, `move_mount`, `open_tree`,
//!   `mount_setattr`), else blocking `mount` alone would be pointless (CAP_SYS_ADMIN);
//! - leaving or nesting namespaces (CAP_SYS_ADMIN): `setns`, and `unshare`/`clone` **with any
//!   `CLONE_NEW*` flag** (argument rules: ordinary `fork`/thread `clone`s pass). A new user
//!   namespace in particular hands the process a full capability set over fresh namespaces, the
//!   starting point of many kernel exploits. `clone3` passes its flags in memory a filter cannot
//!   read, so it gets ENOSYS and glibc falls back to `clone` (Docker does the same);
//! - the kernel's own instruments: `bpf` (CAP_SYS_ADMIN or CAP_BPF), `perf_event_open`
//!   (CAP_SYS_ADMIN or CAP_PERFMON), `userfaultfd` (always: it stalls the kernel mid-copy to win
//!   races);
//! - `open_by_handle_at` (CAP_DAC_READ_SEARCH): opens any inode of a filesystem by handle,
//!   bypassing the mount namespace; the 2014 "shocker" escape from Docker used exactly this.
//!
//! `ptrace`, `process_vm_readv` and `process_vm_writev` run, as in docker's profile on kernels
//! since 4.8 (which closed the ptrace-based seccomp bypass): the PID namespace and the usual
//! same-uid rules already limit them to the container's own processes.
//!
//! Everything else is allowed. Docker's profile is an allowlist; a denylist is smaller (about 40
//! entries instead of several hundred), easier to read, and still catches the calls that matter
//! for an unprivileged workload, at the price of allowing system calls added to future kernels.
//!
//! Cost: the program is a linear chain of comparisons, but since Linux 5.11 the kernel runs it
//! far less often than that suggests. At install time it *emulates* the filter once per syscall
//! number with the arguments unknown; every number whose path reaches `RET ALLOW` without reading
//! an argument goes into a per-filter bitmap, and those calls skip the BPF program entirely. So
//! an allowed call like getpid pays only the fixed seccomp entry cost, however long the list
//! (measured here: 142 ns native, ~180 ns under this 308-instruction filter, the same as under an
//! 8-instruction one); only `clone` and `unshare`, whose argument rules read `args[0]`, run the
//! program on every call. Installing a filter used to also force the speculative-store-bypass
//! mitigation on the task; since Linux 5.16 that is opt-in (`prctl`).

use crate::capabilities::{cap, CapSet};
use nix::errno::Errno;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// Largest program the kernel accepts (`BPF_MAXINSNS` in linux/bpf_common.h).
pub const BPF_MAXINSNS: usize = 4096;

/// Bit 30 of the syscall number marks the x32 ABI on x86-64 (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_X86_64` = EM_X86_64 (62) | 64-bit | little-endian.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

// Classic BPF opcodes (linux/bpf_common.h) used by the programs we build and accept.
/// `BPF_LD | BPF_W | BPF_ABS` (all three class/size bits are 0 except `BPF_ABS` = 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

const SECCOMP_DATA_NR_OFFSET: u32 = 0;
const SECCOMP_DATA_ARCH_OFFSET: u32 = 4;

/// Verdict for refused calls: what a process without the needed capability would get anyway.
const DENY_ERRNO: u32 = libc::EPERM as u32;

/// The namespace-creating clone/unshare flags; any one of them makes the call refused.
const CLONE_NEW_FLAGS: [libc::c_int; 8] = [
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

/// A compiled classic-BPF seccomp program, ready to install.
///
/// The instructions live on the heap of the process that loaded them; a child created with
/// `clone`/`fork` sees them at the same address, which is what lets [`install`] run there without
/// allocating.
pub struct SeccompProgram {
    insns: Box<[sock_filter]>,
}

impl std::fmt::Debug for SeccompProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompProgram")
            .field("instructions", &self.insns.len())
            .finish()
    }
}

/// Why the default program could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building the seccomp filter failed: {0}")]
    Compile(#[from] seccompiler::BackendError),
    #[error("the seccomp program has {0} instructions; the kernel accepts at most {BPF_MAXINSNS}")]
    TooLarge(usize),
}

impl SeccompProgram {
    /// The program as the kernel will run it.
    pub fn instructions(&self) -> &[sock_filter] {
        &self.insns
    }

    /// Compiles the default policy for a container that keeps `caps` (its bounding set): the
    /// entries one of those capabilities lifts are left out. Tens of microseconds.
    pub fn compile(caps: CapSet) -> Result<SeccompProgram, SeccompError> {
        let insns = compile_insns(caps)?;
        Ok(SeccompProgram {
            insns: insns.into_boxed_slice(),
        })
    }

    /// The policy for docker's default capabilities.
    pub fn compile_default() -> Result<SeccompProgram, SeccompError> {
        Self::compile(CapSet::docker_default())
    }

    /// The program for `caps`, compiled at most once per process for each distinct set of the
    /// capabilities the policy looks at. Benches that start hundreds of containers compile once.
    pub fn for_caps(caps: CapSet) -> Result<&'static SeccompProgram, SeccompError> {
        static CACHE: OnceLock<Mutex<Vec<(u64, &'static SeccompProgram)>>> = OnceLock::new();
        let key = caps.0 & gating_caps().0;
        let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
        let mut entries = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, prog)) = entries.iter().find(|(k, _)| *k == key) {
            return Ok(*prog);
        }
        // Leaked on purpose: one small program per distinct key, alive for the whole process,
        // so a cloned child reads it at the same address.
        let prog: &'static SeccompProgram = Box::leak(Box::new(Self::compile(caps)?));
        entries.push((key, prog));
        Ok(prog)
    }

    /// The program for docker's default capabilities, compiled once per process.
    /// `_cache_dir` is no longer used (see the module header: a cache file did not pay off).
    pub fn shared_default(_cache_dir: &Path) -> Result<&'static SeccompProgram, SeccompError> {
        Self::for_caps(CapSet::docker_default())
    }
}

/// Every capability that lifts some entry of the policy (CAP_SYS_ADMIN also lifts `clone3`).
fn gating_caps() -> CapSet {
    DEFAULT_DENYLIST
        .iter()
        .flat_map(|e| e.lifted_by.iter())
        .fold(CapSet::empty().with(cap::SYS_ADMIN), |set, c| set.with(*c))
}

/// Installs `prog` on the calling thread with `SECCOMP_SET_MODE_FILTER`.
///
/// Meant for the container's init right before `execve`, in a child cloned from a possibly
/// multi-threaded parent: it allocates nothing, takes no lock and makes one system call (three
/// when the kernel wants `PR_SET_NO_NEW_PRIVS` first because the caller lacks CAP_SYS_ADMIN),
/// so it is async-signal-safe. `prog` must have been loaded before the clone.
pub fn install(prog: &SeccompProgram) -> Result<(), Errno> {
    // seccompiler's sock_filter is #[repr(C)] with the same fields as the kernel's, so the slice
    // is already the array the kernel expects. The length fits: decode/compile cap it at 4096.
    let fprog = libc::sock_fprog {
        len: prog.insns.len() as libc::c_ushort,
        filter: prog.insns.as_ptr() as *mut libc::sock_filter,
    };
    match set_filter(&fprog) {
        Err(Errno::EACCES) => {
            // Not privileged enough to install it without the promise: make it.
            crate::credentials::set_no_new_privs()?;
            set_filter(&fprog)
        }
        other => other,
    }
}

fn set_filter(fprog: &libc::sock_fprog) -> Result<(), Errno> {
    // SAFETY: `fprog` points to `len` valid instructions borrowed for the call; the kernel
    // copies them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn compile_insns(caps: CapSet) -> Result<Vec<sock_filter>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let lifted = |e: &DeniedSyscall| e.lifted_by.iter().any(|c| caps.contains(*c));
    for entry in DEFAULT_DENYLIST.iter().filter(|e| !lifted(e)) {
        let chain = match entry.rule {
            // An empty chain means "match on the number alone".
            DenyRule::Always => Vec::new(),
            // One rule per flag: rules of a chain are OR-ed, conditions inside a rule AND-ed.
            // The flags are an int, so comparing the low 32 bits is exact.
            DenyRule::NamespaceFlagsInArg0 => CLONE_NEW_FLAGS
                .iter()
                .map(|&flag| {
                    let flag = u64::from(flag as u32);
                    let cond = SeccompCondition::new(
                        0,
                        SeccompCmpArgLen::Dword,
                        SeccompCmpOp::MaskedEq(flag),
                        flag,
                    )?;
                    SeccompRule::new(vec![cond])
                })
                .collect::<Result<_, _>>()?,
        };
        rules.insert(entry.nr, chain);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(DENY_ERRNO),
        TargetArch::x86_64,
    )?;
    let mut insns: BpfProgram = filter.try_into()?;

    // seccompiler emits: [0] load arch, [1] jeq x86_64 +1, [2] kill, [3] load nr, [4..] chains.
    // All its jumps are relative and forward and none crosses index 4, so inserting our own
    // checks right after the nr load keeps every offset valid.
    let expected_head = arch_check_prologue();
    if insns.len() < 4 || insns[..3] != expected_head || insns[3] != load(SECCOMP_DATA_NR_OFFSET) {
        // Would only happen with a different seccompiler layout; refuse rather than guess.
        return Err(SeccompError::Compile(
            seccompiler::BackendError::InvalidArgumentNumber,
        ));
    }
    let enosys = u32::from(SeccompAction::Errno(libc::ENOSYS as u32));
    // clone3 → ENOSYS (its flags are behind a pointer) unless namespaces are allowed anyway.
    let clone3 = if caps.contains(cap::SYS_ADMIN) {
        u32::MAX
    } else {
        libc::SYS_clone3 as u32
    };
    let prologue = [
        // nr >= X32 bit → the ENOSYS return two instructions down.
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 1, 0),
        // clone3 → ENOSYS; anything else skips the return.
        jump(BPF_JMP_JEQ_K, clone3, 0, 1),
        stmt(BPF_RET_K, enosys),
    ];
    insns.splice(4..4, prologue);
    if insns.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLarge(insns.len()));
    }
    Ok(insns)
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn load(offset: u32) -> sock_filter {
    stmt(BPF_LD_W_ABS, offset)
}

fn arch_check_prologue() -> [sock_filter; 3] {
    [
        load(SECCOMP_DATA_ARCH_OFFSET),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::Command;
    use std::time::Instant;

    const PROBE_ENV: &str = "ISOLAB_SECCOMP_PROBE";
    const PROBE_TEST: &str = "seccomp::tests::probe_child_entry_point";

    #[test]
    fn program_shape() {
        let prog = SeccompProgram::compile_default().unwrap();
        let insns = prog.instructions();
        assert!(insns.len() <= BPF_MAXINSNS);
        // Every denylisted number appears as a comparison in the program.
        for entry in DEFAULT_DENYLIST {
            assert!(
                insns
                    .iter()
                    .any(|i| i.code == BPF_JMP_JEQ_K && i.k == entry.nr as u32),
                "{} missing",
                entry.name
            );
        }
        let names: std::collections::HashSet<_> = DEFAULT_DENYLIST.iter().map(|e| e.nr).collect();
        assert_eq!(names.len(), DEFAULT_DENYLIST.len(), "duplicate entries");
    }

    #[test]
    fn added_capabilities_lift_their_entries_like_docker() {
        let compares = |prog: &SeccompProgram, nr: i64| {
            prog.instructions()
                .iter()
                .any(|i| i.code == BPF_JMP_JEQ_K && i.k == nr as u32)
        };
        let default = SeccompProgram::compile_default().unwrap();
        let admin = SeccompProgram::compile(CapSet::docker_default().with(cap::SYS_ADMIN)).unwrap();
        for nr in [
            libc::SYS_mount,
            libc::SYS_setns,
            libc::SYS_unshare,
            libc::SYS_bpf,
        ] {
            assert!(compares(&default, nr), "{nr} refused by default");
            assert!(!compares(&admin, nr), "{nr} allowed with CAP_SYS_ADMIN");
        }
        // Never lifted, whatever the capabilities.
        let all = SeccompProgram::compile(CapSet::all()).unwrap();
        assert!(compares(&all, libc::SYS_keyctl));
        assert!(!compares(&all, libc::SYS_kexec_load));
        // ptrace runs, as in docker's profile on kernels since 4.8.
        assert!(!compares(&default, libc::SYS_ptrace));
        // One program per distinct gating key: NET_ADMIN changes nothing in the policy.
        let a = SeccompProgram::for_caps(CapSet::docker_default()).unwrap();
        let b = SeccompProgram::for_caps(CapSet::docker_default().with(12)).unwrap();
        assert!(std::ptr::eq(a, b));
    }

    /// Runs this test binary again as `probe_child_entry_point`, optionally under the filter.
    fn run_probe(
        mode: &str,
        filtered: bool,
    ) -> (std::process::ExitStatus, BTreeMap<String, String>) {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", PROBE_TEST, "--nocapture", "--test-threads=1"])
            .env(PROBE_ENV, mode);
        if filtered {
            let prog: &'static SeccompProgram =
                SeccompProgram::for_caps(CapSet::docker_default()).unwrap();
            // SAFETY: `install` only makes two system calls on memory loaded before the fork
            // (a 'static program); it neither allocates nor locks, so it is safe between fork
            // and exec.
            unsafe {
                cmd.pre_exec(move || {
                    install(prog).map_err(|e| std::io::Error::from_raw_os_error(e as i32))
                });
            }
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let results = stdout
            .lines()
            // libtest prints "test NAME ... " without a newline before the test's own output.
            .filter_map(|l| l.find("PROBE ").map(|i| &l[i + "PROBE ".len()..]))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (out.status, results)
    }

    fn outcome(rc: libc::c_long) -> String {
        if rc < 0 {
            format!("{:?}", Errno::last())
        } else {
            "OK".to_string()
        }
    }

    /// Not a test on its own: the body of the child processes started by `run_probe`.
    #[test]
    fn probe_child_entry_point() {
        let Ok(mode) = std::env::var(PROBE_ENV) else {
            return;
        };
        match mode.as_str() {
            "syscalls" => probe_syscalls(),
            "getpid" => println!("PROBE getpid_ns={:.1}", getpid_ns_per_call()),
            "int80" => {
                let pid: u32;
                // SAFETY: `int 0x80` with eax=20 is the i386 getpid: no arguments, no memory
                // access; it clobbers only eax.
                unsafe {
                    std::arch::asm!("int 0x80", inlateout("eax") 20u32 => pid, options(nostack));
                }
                println!("PROBE int80_getpid={}", pid == std::process::id());
            }
            other => panic!("unknown probe mode {other}"),
        }
    }

    fn probe_syscalls() {
        let missing = c"/nonexistent-isolab-probe";
        // The calls below use invalid or harmless arguments: a bad reboot magic (EINVAL without
        // the filter), paths that do not exist, a UTS namespace for this short-lived probe only,
        // and a NULL clone3 struct with size 0 (EINVAL). Each outcome is decoded right after its
        // call, before errno is overwritten.
        let mut lines = Vec::new();
        macro_rules! probe {
            ($name:expr, $call:expr) => {{
                // SAFETY: see the comment above: invalid or harmless arguments only.
                let rc = unsafe { $call };
                lines.push(format!("{}={}", $name, outcome(rc)));
            }};
        }
        probe!("reboot", libc::syscall(libc::SYS_reboot, 0, 0, 0, 0));
        probe!(
            "swapoff",
            libc::syscall(libc::SYS_swapoff, missing.as_ptr())
        );
        probe!(
            "mount",
            libc::syscall(
                libc::SYS_mount,
                c"none".as_ptr(),
                missing.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                0
            )
        );
        probe!(
            "unshare_uts",
            libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS)
        );
        probe!(
            "unshare_files",
            libc::syscall(libc::SYS_unshare, libc::CLONE_FILES)
        );
        probe!("clone3", libc::syscall(libc::SYS_clone3, 0, 0));
        probe!(
            "x32_getpid",
            libc::syscall(libc::c_long::from(X32_SYSCALL_BIT) | libc::SYS_getpid)
        );
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) };
        lines.push(format!("getpid={}", pid as u32 == std::process::id()));
        // fork+exec (glibc's posix_spawn tries clone3 first) and a thread (pthread_create too).
        let spawned = Command::new("/bin/true")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        lines.push(format!("spawn={spawned}"));
        let threaded = std::thread::spawn(|| 7)
            .join()
            .map(|v| v == 7)
            .unwrap_or(false);
        lines.push(format!("thread={threaded}"));
        for l in lines {
            println!("PROBE {l}");
        }
    }

    /// Best of 5 rounds of 100k raw getpid calls.
    fn getpid_ns_per_call() -> f64 {
        const N: u32 = 100_000;
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..N {
                    // SAFETY: getpid has no arguments and no side effects.
                    std::hint::black_box(unsafe { libc::syscall(libc::SYS_getpid) });
                }
                t.elapsed().as_nanos() as f64 / f64::from(N)
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn filter_refuses_denylisted_calls_and_allows_the_rest() {
        let (status, plain) = run_probe("syscalls", false);
        assert!(status.success(), "unfiltered probe failed: {status:?}");
        let (status, filtered) = run_probe("syscalls", true);
        assert!(status.success(), "filtered probe failed: {status:?}");
        eprintln!("without filter: {plain:?}\nwith filter:    {filtered:?}");

        // Without the filter the kernel itself answers (bad magic, missing paths).
        assert_eq!(plain["reboot"], "EINVAL");
        assert_eq!(plain["swapoff"], "ENOENT");
        assert_eq!(plain["mount"], "ENOENT");
        assert_eq!(plain["unshare_uts"], "OK");
        assert_ne!(plain["clone3"], "ENOSYS");
        // With it, the filter answers before the kernel looks at the arguments.
        for call in ["reboot", "swapoff", "mount", "unshare_uts"] {
            assert_eq!(filtered[call], "EPERM", "{call}");
        }
        assert_eq!(
            filtered["unshare_files"], "OK",
            "unshare without CLONE_NEW* must pass"
        );
        assert_eq!(filtered["clone3"], "ENOSYS");
        assert_eq!(filtered["x32_getpid"], "ENOSYS");
        for ok in ["getpid", "spawn", "thread"] {
            assert_eq!(plain[ok], "true", "{ok}");
            assert_eq!(filtered[ok], "true", "{ok} under the filter");
        }
    }

    /// getpid cost with and without the filter, in fresh child processes. Printed, not asserted:
    /// on a shared 2-CPU machine the numbers move with the load, so pairs are interleaved and
    /// the best of each side is kept.
    #[test]
    fn getpid_cost_with_and_without_filter() {
        let mut best = [f64::INFINITY; 2];
        for _ in 0..10 {
            for (slot, filtered) in [(0, false), (1, true)] {
                let (status, out) = run_probe("getpid", filtered);
                assert!(status.success(), "{status:?}");
                let ns: f64 = out["getpid_ns"].parse().unwrap();
                best[slot] = best[slot].min(ns);
            }
        }
        eprintln!(
            "getpid (raw syscall, best of 10 interleaved runs x 5 rounds x 100k calls): {:.1} ns/call \
             without filter, {:.1} ns/call with the default filter ({:+.1} ns)",
            best[0],
            best[1],
            best[1] - best[0]
        );
    }

    #[test]
    fn foreign_architecture_calls_kill_the_process() {
        let (status, plain) = run_probe("int80", false);
        if !status.success() || plain.get("int80_getpid").map(String::as_str) != Some("true") {
            eprintln!(
                "skipping: this kernel has no i386 syscall emulation (int 0x80 failed: {status:?})"
            );
            return;
        }
        let (status, filtered) = run_probe("int80", true);
        assert_eq!(
            status.signal(),
            Some(libc::SIGSYS),
            "{status:?} {filtered:?}"
        );
        assert!(filtered.is_empty());
    }
}
