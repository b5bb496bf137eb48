//! The policy assembled into classic BPF: seccompiler builds the comparison chains, and isolab
//! adds its own prologue (x32 and `clone3` → ENOSYS) right after the architecture check.

use super::policy::{DeniedSyscall, DenyRule, CLONE_NEW_FLAGS, DEFAULT_DENYLIST};
use super::SeccompError;
use crate::capabilities::{cap, CapSet};
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Largest program the kernel accepts (`BPF_MAXINSNS` in linux/bpf_common.h).
pub const BPF_MAXINSNS: usize = 4096;

/// Bit 30 of the syscall number marks the x32 ABI on x86-64 (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_X86_64` = EM_X86_64 (62) | 64-bit | little-endian.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

// Classic BPF opcodes (linux/bpf_common.h) used by the programs we build and accept.
/// `BPF_LD | BPF_W | BPF_ABS` (all three class/size bits are 0 except `BPF_ABS` = 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
pub(super) const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

const SECCOMP_DATA_NR_OFFSET: u32 = 0;
const SECCOMP_DATA_ARCH_OFFSET: u32 = 4;

/// Verdict for refused calls: what a process without the needed capability would get anyway.
const DENY_ERRNO: u32 = libc::EPERM as u32;

pub(super) fn compile_insns(caps: CapSet) -> Result<Vec<sock_filter>, SeccompError> {
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
