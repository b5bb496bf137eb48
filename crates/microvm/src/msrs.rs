//! Model-specific registers a vCPU needs before its first instruction.
//!
//! MSRs hold CPU state that has no instruction of its own. Two groups matter here:
//! * the **SYSCALL MSRs**: STAR (kernel and user selector bases), LSTAR (the 64-bit entry
//!   point `syscall` jumps to) and SFMASK (RFLAGS bits cleared on entry). The stub guest's
//!   syscall workload needs them; Linux programs its own.
//! * boot-time defaults Linux expects from firmware: fast-string operations enabled in
//!   IA32_MISC_ENABLE, and MTRRs on with write-back as the default memory type (otherwise a
//!   guest may run with caching disabled, which is very slow).

use crate::error::{Result, VmError};
use crate::layout::selectors;
use kvm_bindings::{kvm_msr_entry, Msrs};
use kvm_ioctls::VcpuFd;

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

const MISC_ENABLE_FAST_STRING: u64 = 1;
const MTRR_ENABLE_WRITEBACK: u64 = (1 << 11) | 6;
/// RFLAGS bits cleared on `syscall`: TF, IF, DF, AC (as Linux does).
const SYSCALL_MASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 18);

fn entry(index: u32, data: u64) -> kvm_msr_entry {
    kvm_msr_entry {
        index,
        data,
        ..Default::default()
    }
}

/// Linux boot defaults (its own kernel reprograms the SYSCALL MSRs).
pub fn linux_boot() -> Vec<kvm_msr_entry> {
    vec![
        entry(MSR_IA32_SYSENTER_CS, 0),
        entry(MSR_IA32_SYSENTER_ESP, 0),
        entry(MSR_IA32_SYSENTER_EIP, 0),
        entry(MSR_STAR, 0),
        entry(MSR_CSTAR, 0),
        entry(MSR_KERNEL_GS_BASE, 0),
        entry(MSR_SYSCALL_MASK, 0),
        entry(MSR_LSTAR, 0),
        entry(MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        entry(MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITEBACK),
    ]
}

/// The stub guest: `syscall` enters `syscall_entry` in CPL0, `sysretq` returns to CPL3.
pub fn stub(syscall_entry: u64) -> Vec<kvm_msr_entry> {
    let star = (u64::from(selectors::USER_BASE) << 48) | (u64::from(selectors::KERNEL_CODE) << 32);
    vec![
        entry(MSR_STAR, star),
        entry(MSR_LSTAR, syscall_entry),
        entry(MSR_SYSCALL_MASK, SYSCALL_MASK),
    ]
}

/// KVM_SET_MSRS; KVM returns how many it accepted, so a refusal names the first one refused.
pub fn set(vcpu: &VcpuFd, entries: &[kvm_msr_entry]) -> Result<()> {
    // The lists here are a dozen entries, far below the FAM limit, so this cannot fail.
    let msrs = Msrs::from_entries(entries).map_err(|_| VmError::MsrRefused {
        index: entries.first().map_or(0, |e| e.index),
        accepted: 0,
        total: entries.len(),
    })?;
    let written = vcpu.set_msrs(&msrs).map_err(VmError::kvm("KVM_SET_MSRS"))?;
    if written != entries.len() {
        return Err(VmError::MsrRefused {
            index: entries[written].index,
            accepted: written,
            total: entries.len(),
        });
    }
    Ok(())
}
