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
//! 8-instruction one; `cargo bench --bench syscall` compares the `isolab-engine-container-cgroups`
//! and `-seccomp` rows, the same container with and without the filter); only `clone` and `unshare`, whose argument rules read `args[0]`, run the
//! program on every call. Installing a filter used to also force the speculative-store-bypass
//! mitigation on the task; since Linux 5.16 that is opt-in (`prctl`).
//!
//! # Where each part lives
//!
//! `policy` holds the table of refused calls, `bpf` assembles it into a program, `install`
//! hands the program to the kernel in the child; this file keeps the compiled program and its
//! per-process cache.

mod bpf;
mod install;
mod policy;

pub use bpf::{BPF_MAXINSNS, X32_SYSCALL_BIT};
pub use install::install;
pub use policy::{DeniedSyscall, DenyRule, DEFAULT_DENYLIST};

use crate::capabilities::CapSet;
use seccompiler::sock_filter;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

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
        let insns = bpf::compile_insns(caps)?;
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
        let key = caps.0 & policy::gating_caps().0;
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

#[cfg(test)]
mod tests;
