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
//! **Why `PR_SET_NO_NEW_PRIVS` first.** A filter can make a call fail in ways a setuid-root binary
//! never expected (say, `setuid()` returning EPERM and the program carrying on as root). So the
//! kernel only lets a process without `CAP_SYS_ADMIN` install a filter once it has promised, with
//! `prctl(PR_SET_NO_NEW_PRIVS, 1)`, that no later `execve` can gain privileges (setuid bits and file
//! capabilities are then ignored). isolab always sets it, like Docker and the OCI runtimes do, so
//! the same code works in a user namespace, where the container's "root" has no host
//! `CAP_SYS_ADMIN`.
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
//! 10-20 ms per start on this machine (see shared/PLATFORM.md), more than everything else crun
//! does. The program only depends on the policy, so isolab builds it with the `seccompiler` crate
//! (rust-vmm, the one Firecracker uses) from a table compiled into the binary, writes the raw
//! instruction array (~2.4 KiB) to a cache file named after a hash of the policy, and afterwards
//! only reads that file ([`SeccompProgram::load_or_compile_default`]); within one process it is
//! read once ([`SeccompProgram::shared_default`]). Installing it in the child is then two system
//! calls ([`install`]). Measured here (release build): building this policy takes ~9 µs and a
//! cached load ~7 µs, so most of the saving over crun comes from not parsing a JSON profile and
//! not going through libseccomp per start; the cache file additionally lets other tools
//! (`bpf_dbg`, `seccomp-tools`) disassemble exactly what isolab installs.
//!
//! # The default policy
//!
//! A **denylist** returning EPERM (what Docker's profile returns for refused calls) for calls a
//! container's workload has no business making, because they act on the one shared kernel rather
//! than on namespaced state. isolab installs the filter *after* its own setup (mounts,
//! `pivot_root`, hostname), right before `execve`, so blocking mount-related calls does not get in
//! the runtime's way. Every entry and its reason is in [`DEFAULT_DENYLIST`]; in short:
//!
//! - replace or change the kernel: `kexec_load`, `kexec_file_load`, `init_module`,
//!   `finit_module`, `delete_module`, `reboot`;
//! - host-wide resources with no namespace: `swapon`, `swapoff`, `acct`, `settimeofday`,
//!   `clock_settime`, `clock_adjtime`, `syslog` (the kernel log), `quotactl`, `_sysctl`,
//!   `vhangup`, `iopl` and `ioperm` (raw x86 I/O ports), `lookup_dcookie`;
//! - the kernel keyring (not namespaced): `keyctl`, `add_key`, `request_key`;
//! - rearranging the mount table the runtime prepared: `mount`, `umount2`, `pivot_root`, and the
//!   new mount API (`fsopen`, `fsconfig`, `fsmount`, `fspick`, `move_mount`, `open_tree`,
//!   `mount_setattr`), else blocking `mount` alone would be pointless;
//! - leaving or nesting namespaces: `setns`, and `unshare`/`clone` **with any `CLONE_NEW*` flag**
//!   (argument rules: ordinary `fork`/thread `clone`s pass). A new user namespace in particular
//!   hands the process a full capability set over fresh namespaces, the starting point of many
//!   kernel exploits. `clone3` passes its flags in memory a filter cannot read, so it gets ENOSYS
//!   and glibc falls back to `clone` (Docker does the same);
//! - observing or injecting into other processes and the kernel: `ptrace`, `process_vm_readv`,
//!   `process_vm_writev`, `bpf`, `perf_event_open`, `userfaultfd` (used to win kernel races);
//! - `open_by_handle_at`: opens any inode of a filesystem by handle, bypassing the mount
//!   namespace; the 2014 "shocker" escape from Docker used exactly this.
//!
//! Everything else is allowed. Docker's profile is an allowlist; a denylist is smaller (43
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

use nix::errno::Errno;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Bumped whenever the meaning of the policy or the program layout changes, so old cache files
/// are simply not found again (the file name carries the hash of everything that shapes it).
const POLICY_VERSION: u32 = 1;

/// Largest program the kernel accepts (`BPF_MAXINSNS` in linux/bpf_common.h).
pub const BPF_MAXINSNS: usize = 4096;

/// Size of one serialized `sock_filter`.
const INSN_BYTES: usize = 8;

/// Bit 30 of the syscall number marks the x32 ABI on x86-64 (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_X86_64` = EM_X86_64 (62) | 64-bit | little-endian.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

// Classic BPF opcodes (linux/bpf_common.h) used by the programs we build and accept.
/// `BPF_LD | BPF_W | BPF_ABS` (all three class/size bits are 0 except `BPF_ABS` = 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
const BPF_RET_K: u16 = 0x06;

/// `sizeof(struct seccomp_data)`: loads beyond it are rejected.
const SECCOMP_DATA_BYTES: u32 = 64;
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
    /// Why a container should not make it.
    pub why: &'static str,
}

const fn deny(name: &'static str, nr: i64, why: &'static str) -> DeniedSyscall {
    DeniedSyscall {
        name,
        nr,
        rule: DenyRule::Always,
        why,
    }
}

/// isolab's default policy: these calls get EPERM, everything else runs (plus the x86_64
/// architecture check, x32 → ENOSYS and `clone3` → ENOSYS, see the module header).
pub const DEFAULT_DENYLIST: &[DeniedSyscall] = &[
    deny("kexec_load", libc::SYS_kexec_load, "boots another kernel"),
    deny(
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        "boots another kernel",
    ),
    deny(
        "init_module",
        libc::SYS_init_module,
        "loads code into the shared kernel",
    ),
    deny(
        "finit_module",
        libc::SYS_finit_module,
        "loads code into the shared kernel",
    ),
    deny(
        "delete_module",
        libc::SYS_delete_module,
        "unloads host kernel modules",
    ),
    deny("reboot", libc::SYS_reboot, "reboots or halts the host"),
    deny("swapon", libc::SYS_swapon, "host-wide swap configuration"),
    deny("swapoff", libc::SYS_swapoff, "host-wide swap configuration"),
    deny("acct", libc::SYS_acct, "host-wide process accounting"),
    deny(
        "settimeofday",
        libc::SYS_settimeofday,
        "sets the host clock (not namespaced)",
    ),
    deny(
        "clock_settime",
        libc::SYS_clock_settime,
        "sets the host clock (not namespaced)",
    ),
    deny(
        "clock_adjtime",
        libc::SYS_clock_adjtime,
        "steers the host clock",
    ),
    deny(
        "syslog",
        libc::SYS_syslog,
        "reads/clears the host kernel log (kernel addresses)",
    ),
    deny("quotactl", libc::SYS_quotactl, "host filesystem quotas"),
    deny(
        "_sysctl",
        libc::SYS__sysctl,
        "obsolete host kernel tunables interface",
    ),
    deny(
        "vhangup",
        libc::SYS_vhangup,
        "hangs up the controlling terminal",
    ),
    deny("iopl", libc::SYS_iopl, "raw x86 I/O port access"),
    deny("ioperm", libc::SYS_ioperm, "raw x86 I/O port access"),
    deny(
        "lookup_dcookie",
        libc::SYS_lookup_dcookie,
        "kernel profiling internals",
    ),
    deny(
        "keyctl",
        libc::SYS_keyctl,
        "the kernel keyring is not namespaced",
    ),
    deny(
        "add_key",
        libc::SYS_add_key,
        "the kernel keyring is not namespaced",
    ),
    deny(
        "request_key",
        libc::SYS_request_key,
        "the kernel keyring is not namespaced",
    ),
    deny(
        "mount",
        libc::SYS_mount,
        "rearranges the mount table the runtime prepared",
    ),
    deny(
        "umount2",
        libc::SYS_umount2,
        "uncovers what the runtime mounted over",
    ),
    deny(
        "pivot_root",
        libc::SYS_pivot_root,
        "changes the root the runtime set",
    ),
    deny(
        "fsopen",
        libc::SYS_fsopen,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "fsconfig",
        libc::SYS_fsconfig,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "fsmount",
        libc::SYS_fsmount,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "fspick",
        libc::SYS_fspick,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "move_mount",
        libc::SYS_move_mount,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "open_tree",
        libc::SYS_open_tree,
        "new mount API (would bypass the mount rule)",
    ),
    deny(
        "mount_setattr",
        libc::SYS_mount_setattr,
        "e.g. turns a read-only mount writable",
    ),
    deny(
        "setns",
        libc::SYS_setns,
        "joins another (e.g. the host's) namespace",
    ),
    DeniedSyscall {
        name: "unshare",
        nr: libc::SYS_unshare,
        rule: DenyRule::NamespaceFlagsInArg0,
        why: "new namespaces (a user namespace grants a full capability set)",
    },
    DeniedSyscall {
        name: "clone",
        nr: libc::SYS_clone,
        rule: DenyRule::NamespaceFlagsInArg0,
        why: "new namespaces (fork and threads still work)",
    },
    deny(
        "ptrace",
        libc::SYS_ptrace,
        "reads and rewrites other processes",
    ),
    deny(
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        "reads other processes' memory",
    ),
    deny(
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        "writes other processes' memory",
    ),
    deny(
        "bpf",
        libc::SYS_bpf,
        "loads eBPF programs into the shared kernel",
    ),
    deny(
        "perf_event_open",
        libc::SYS_perf_event_open,
        "observes the host; frequent CVE source",
    ),
    deny(
        "userfaultfd",
        libc::SYS_userfaultfd,
        "stalls the kernel mid-copy to win races",
    ),
    deny(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        "opens host inodes past the mount namespace (the 'shocker' escape)",
    ),
];

/// Where a [`SeccompProgram`] came from; lets callers and benches report cache hits honestly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramOrigin {
    /// Read from this cache file.
    CacheFile(PathBuf),
    /// Compiled now and written to this cache file.
    CompiledAndCached(PathBuf),
    /// Compiled now; the cache file could not be used (the reason). Still fully usable.
    CompiledUncached(String),
}

/// A compiled classic-BPF seccomp program, ready to install.
///
/// The instructions live on the heap of the process that loaded them; a child created with
/// `clone`/`fork` sees them at the same address, which is what lets [`install`] run there without
/// allocating.
pub struct SeccompProgram {
    insns: Box<[sock_filter]>,
    origin: ProgramOrigin,
}

impl std::fmt::Debug for SeccompProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompProgram")
            .field("instructions", &self.insns.len())
            .field("origin", &self.origin)
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

/// Why a cache file was rejected (then the program is recompiled).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CorruptProgram {
    #[error("{0} bytes is not a whole number of 8-byte instructions")]
    PartialInstruction(usize),
    #[error("{0} instructions is outside 1..={BPF_MAXINSNS}")]
    BadLength(usize),
    #[error("it does not start with the x86_64 architecture check")]
    MissingArchCheck,
    #[error("instruction {0} has an opcode the seccomp policy never uses")]
    BadOpcode(usize),
    #[error("instruction {0} reads outside struct seccomp_data")]
    BadLoad(usize),
    #[error("instruction {0} jumps past the end of the program")]
    BadJump(usize),
    #[error("the last instruction is not a return")]
    NoFinalReturn,
}

impl SeccompProgram {
    /// The program as the kernel will run it.
    pub fn instructions(&self) -> &[sock_filter] {
        &self.insns
    }

    /// Where it came from (cache hit or fresh compile).
    pub fn origin(&self) -> &ProgramOrigin {
        &self.origin
    }

    /// Compiles isolab's default policy ([`DEFAULT_DENYLIST`] plus the prologues). Tens of
    /// microseconds; [`Self::load_or_compile_default`] avoids even that.
    pub fn compile_default() -> Result<SeccompProgram, SeccompError> {
        let insns = compile_default_insns()?;
        Ok(SeccompProgram {
            insns: insns.into_boxed_slice(),
            origin: ProgramOrigin::CompiledUncached("not asked to cache".to_string()),
        })
    }

    /// The cache file for the current policy inside `cache_dir`.
    pub fn default_cache_path(cache_dir: &Path) -> PathBuf {
        cache_dir.join(format!("seccomp-default-{:016x}.bpf", policy_hash()))
    }

    /// Reads the default program from `cache_dir`, or compiles it and writes the cache file.
    ///
    /// A cache file that is not a valid program of ours (truncated, tampered with, or owned by
    /// another user / writable by others, which would let them weaken the filter of every later
    /// container) is ignored and replaced. Failing to write the cache is not an error: the program
    /// is still returned, with [`ProgramOrigin::CompiledUncached`] saying why.
    pub fn load_or_compile_default(cache_dir: &Path) -> Result<SeccompProgram, SeccompError> {
        let path = Self::default_cache_path(cache_dir);
        if let Ok(bytes) = read_trusted(&path) {
            if let Ok(insns) = decode_program(&bytes) {
                return Ok(SeccompProgram {
                    insns: insns.into_boxed_slice(),
                    origin: ProgramOrigin::CacheFile(path),
                });
            }
        }
        let insns = compile_default_insns()?;
        let origin = match write_atomically(cache_dir, &path, &encode_program(&insns)) {
            Ok(()) => ProgramOrigin::CompiledAndCached(path),
            Err(e) => {
                ProgramOrigin::CompiledUncached(format!("cannot write {}: {e}", path.display()))
            }
        };
        Ok(SeccompProgram {
            insns: insns.into_boxed_slice(),
            origin,
        })
    }

    /// The default program, loaded at most once per process (the first caller's `cache_dir` is
    /// used; the program does not depend on it). Benches that start hundreds of containers pay
    /// for one file read in total.
    pub fn shared_default(cache_dir: &Path) -> Result<&'static SeccompProgram, SeccompError> {
        static SHARED: OnceLock<SeccompProgram> = OnceLock::new();
        if let Some(prog) = SHARED.get() {
            return Ok(prog);
        }
        let prog = Self::load_or_compile_default(cache_dir)?;
        // Two racing first callers both load; the first to store wins, both get that one.
        Ok(SHARED.get_or_init(|| prog))
    }
}

/// Installs `prog` on the calling thread: `PR_SET_NO_NEW_PRIVS`, then `SECCOMP_SET_MODE_FILTER`.
///
/// Meant for the container's init right before `execve`, in a child cloned from a possibly
/// multi-threaded parent: it allocates nothing, takes no lock and only makes two system calls,
/// so it is async-signal-safe. `prog` must have been loaded before the clone.
pub fn install(prog: &SeccompProgram) -> Result<(), Errno> {
    // seccompiler's sock_filter is #[repr(C)] with the same fields as the kernel's, so the slice
    // is already the array the kernel expects. The length fits: decode/compile cap it at 4096.
    let fprog = libc::sock_fprog {
        len: prog.insns.len() as libc::c_ushort,
        filter: prog.insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments only; it changes a flag of the calling task.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fprog` lives on this stack frame for the duration of the call and points to
    // `prog.insns`, `len` valid instructions borrowed for the call; the kernel copies them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// FNV-1a over everything that shapes the program: a changed policy gets a new cache file name.
fn policy_hash() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(&POLICY_VERSION.to_le_bytes());
    feed(b"seccompiler-0.5;x32-enosys;clone3-enosys");
    feed(&DENY_ERRNO.to_le_bytes());
    for entry in DEFAULT_DENYLIST {
        feed(&entry.nr.to_le_bytes());
        feed(&[entry.rule as u8]);
    }
    for flag in CLONE_NEW_FLAGS {
        feed(&flag.to_le_bytes());
    }
    h
}

fn compile_default_insns() -> Result<Vec<sock_filter>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for entry in DEFAULT_DENYLIST {
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
    let prologue = [
        // nr >= X32 bit → the ENOSYS return two instructions down.
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 1, 0),
        // clone3 → ENOSYS (its flags are behind a pointer); anything else skips the return.
        jump(BPF_JMP_JEQ_K, libc::SYS_clone3 as u32, 0, 1),
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

/// The cache format is the raw kernel array in native byte order (a cache never leaves the
/// machine), so `bpf_dbg`/`seccomp-tools` can disassemble it as is.
fn encode_program(insns: &[sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * INSN_BYTES);
    for i in insns {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

/// Parses and checks a cached program the way the kernel's classic-BPF checker would, plus our
/// own prologue: a damaged file must never become a filter that silently allows more.
fn decode_program(bytes: &[u8]) -> Result<Vec<sock_filter>, CorruptProgram> {
    let chunks = bytes.chunks_exact(INSN_BYTES);
    if !chunks.remainder().is_empty() {
        return Err(CorruptProgram::PartialInstruction(bytes.len()));
    }
    let n = bytes.len() / INSN_BYTES;
    if n == 0 || n > BPF_MAXINSNS {
        return Err(CorruptProgram::BadLength(n));
    }
    let insns: Vec<sock_filter> = chunks
        .map(|c| sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if insns.len() < 3 || insns[..3] != arch_check_prologue() {
        return Err(CorruptProgram::MissingArchCheck);
    }
    for (idx, insn) in insns.iter().enumerate() {
        let remaining = n - idx - 1;
        match insn.code {
            BPF_LD_W_ABS => {
                if insn.k % 4 != 0 || insn.k + 4 > SECCOMP_DATA_BYTES {
                    return Err(CorruptProgram::BadLoad(idx));
                }
            }
            BPF_JMP_JA => {
                if insn.k as usize >= remaining {
                    return Err(CorruptProgram::BadJump(idx));
                }
            }
            BPF_JMP_JEQ_K | BPF_JMP_JGT_K | BPF_JMP_JGE_K | BPF_JMP_JSET_K => {
                if usize::from(insn.jt) >= remaining || usize::from(insn.jf) >= remaining {
                    return Err(CorruptProgram::BadJump(idx));
                }
            }
            BPF_ALU_AND_K | BPF_RET_K => {}
            _ => return Err(CorruptProgram::BadOpcode(idx)),
        }
    }
    if insns[n - 1].code != BPF_RET_K {
        return Err(CorruptProgram::NoFinalReturn);
    }
    Ok(insns)
}

/// Reads the cache file only if nobody but us could have written it.
fn read_trusted(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = fs::symlink_metadata(path)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "cache file not owned by us or writable by others",
        ));
    }
    fs::read(path)
}

/// temp file + fsync + rename: a reader sees either no file or a complete one, never a half.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("seccomp"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
    fn compile_then_load_from_cache() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let first = SeccompProgram::load_or_compile_default(dir.path()).unwrap();
        let compile_ns = t0.elapsed().as_nanos();
        let path = SeccompProgram::default_cache_path(dir.path());
        assert_eq!(
            first.origin(),
            &ProgramOrigin::CompiledAndCached(path.clone())
        );
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len() as usize, first.instructions().len() * INSN_BYTES);
        assert_eq!(meta.mode() & 0o777, 0o600);

        let t1 = Instant::now();
        let second = SeccompProgram::load_or_compile_default(dir.path()).unwrap();
        let load_ns = t1.elapsed().as_nanos();
        assert_eq!(second.origin(), &ProgramOrigin::CacheFile(path));
        assert_eq!(first.instructions(), second.instructions());

        // Separate the costs: median of repeated pure compiles and cached loads.
        let median_us = |f: &dyn Fn()| {
            let mut v: Vec<u128> = (0..51)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_nanos()
                })
                .collect();
            v.sort_unstable();
            v[v.len() / 2] as f64 / 1000.0
        };
        let compile_us = median_us(&|| {
            let p = SeccompProgram::compile_default().unwrap();
            assert_eq!(p.instructions(), first.instructions());
        });
        let cached_us = median_us(&|| {
            let p = SeccompProgram::load_or_compile_default(dir.path()).unwrap();
            assert!(matches!(p.origin(), ProgramOrigin::CacheFile(_)));
        });
        eprintln!(
            "seccomp default program: {} instructions; first call (compile + fsync'd cache write) {} us, \
             second call (cache read) {} us; median of 51: compile {compile_us:.1} us, cached load {cached_us:.1} us",
            first.instructions().len(),
            compile_ns / 1000,
            load_ns / 1000,
        );
        // For inspection with bpf_dbg / seccomp-tools: ISOLAB_SECCOMP_DUMP=/some/file.bpf.
        if let Some(dump) = std::env::var_os("ISOLAB_SECCOMP_DUMP") {
            fs::copy(SeccompProgram::default_cache_path(dir.path()), dump).unwrap();
        }
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn corrupted_cache_files_are_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let good = SeccompProgram::load_or_compile_default(dir.path()).unwrap();
        let path = SeccompProgram::default_cache_path(dir.path());
        let good_bytes = fs::read(&path).unwrap();

        let mut out_of_range_jump = good_bytes.clone();
        let last_jump = good
            .instructions()
            .iter()
            .rposition(|i| i.code == BPF_JMP_JEQ_K)
            .unwrap();
        out_of_range_jump[last_jump * INSN_BYTES + 2] = 200;
        let mut no_arch_check = good_bytes.clone();
        no_arch_check[4..8].copy_from_slice(&0u32.to_ne_bytes());
        let mut no_final_return = good_bytes.clone();
        let last = no_final_return.len() - INSN_BYTES;
        no_final_return[last..last + 2].copy_from_slice(&BPF_ALU_AND_K.to_ne_bytes());
        let cases: Vec<(&str, Vec<u8>, CorruptProgram)> = vec![
            (
                "truncated mid-instruction",
                good_bytes[..good_bytes.len() - 3].to_vec(),
                CorruptProgram::PartialInstruction(good_bytes.len() - 3),
            ),
            ("empty", Vec::new(), CorruptProgram::BadLength(0)),
            (
                "too long",
                vec![0u8; (BPF_MAXINSNS + 1) * INSN_BYTES],
                CorruptProgram::BadLength(BPF_MAXINSNS + 1),
            ),
            (
                "arch check removed",
                no_arch_check,
                CorruptProgram::MissingArchCheck,
            ),
            (
                "jump out of range",
                out_of_range_jump,
                CorruptProgram::BadJump(last_jump),
            ),
            (
                "cut after a whole instruction",
                good_bytes[..good_bytes.len() - INSN_BYTES].to_vec(),
                CorruptProgram::BadJump(insns_before_last_ret(&good)),
            ),
            (
                "last return replaced",
                no_final_return,
                CorruptProgram::NoFinalReturn,
            ),
        ];
        for (what, bytes, expected) in cases {
            assert_eq!(decode_program(&bytes).unwrap_err(), expected, "{what}");
            fs::write(&path, &bytes).unwrap();
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            let prog = SeccompProgram::load_or_compile_default(dir.path()).unwrap();
            assert_eq!(
                prog.origin(),
                &ProgramOrigin::CompiledAndCached(path.clone()),
                "{what}"
            );
            assert_eq!(prog.instructions(), good.instructions(), "{what}");
            assert_eq!(
                fs::read(&path).unwrap(),
                good_bytes,
                "{what}: cache repaired"
            );
        }

        // A valid file that others could have written is not trusted either.
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
        let prog = SeccompProgram::load_or_compile_default(dir.path()).unwrap();
        assert_eq!(
            prog.origin(),
            &ProgramOrigin::CompiledAndCached(path.clone())
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }

    /// The first jump that can reach the program's last instruction (cutting that one off makes
    /// this jump point past the end).
    fn insns_before_last_ret(prog: &SeccompProgram) -> usize {
        let insns = prog.instructions();
        let last = insns.len() - 1;
        insns
            .iter()
            .enumerate()
            .position(|(i, insn)| match insn.code {
                BPF_JMP_JA => i + 1 + insn.k as usize >= last,
                BPF_JMP_JEQ_K | BPF_JMP_JGT_K | BPF_JMP_JGE_K | BPF_JMP_JSET_K => {
                    i + 1 + usize::from(insn.jt.max(insn.jf)) >= last
                }
                _ => false,
            })
            .unwrap()
    }

    #[test]
    fn unwritable_cache_dir_still_yields_a_program() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, b"x").unwrap();
        let prog = SeccompProgram::load_or_compile_default(&blocker.join("cache")).unwrap();
        assert!(
            matches!(prog.origin(), ProgramOrigin::CompiledUncached(why) if why.contains("cannot write")),
            "{:?}",
            prog.origin()
        );
    }

    #[test]
    fn program_shape() {
        let prog = SeccompProgram::compile_default().unwrap();
        let insns = prog.instructions();
        assert!(insns.len() <= BPF_MAXINSNS);
        assert_eq!(decode_program(&encode_program(insns)).unwrap(), insns);
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

    /// Runs this test binary again as `probe_child_entry_point`, optionally under the filter.
    fn run_probe(
        mode: &str,
        filtered: bool,
    ) -> (std::process::ExitStatus, BTreeMap<String, String>) {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", PROBE_TEST, "--nocapture", "--test-threads=1"])
            .env(PROBE_ENV, mode);
        if filtered {
            let dir = tempfile::tempdir().unwrap();
            let prog: &'static SeccompProgram = SeccompProgram::shared_default(dir.path()).unwrap();
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
