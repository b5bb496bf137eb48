//! CPUID: what the guest is told about "its" processor.
//!
//! The CPUID instruction exits to KVM (never to us): KVM answers from a table the VMM installs
//! per vCPU with KVM_SET_CPUID2. The VMM starts from KVM_GET_SUPPORTED_CPUID (what this host's
//! KVM can virtualize) and patches the per-vCPU facts: the APIC ID (so each vCPU knows who it
//! is), the logical-processor count, and the "running under a hypervisor" bit.
//!
//! One host-specific change: on kvm_pvm, guest kernel code is run by KVM's instruction
//! emulator, which cannot emulate `cmpxchg16b`; Linux uses it when CPUID advertises CX16, so
//! there we hide CX16 (KVM honours that bit) and Linux falls back to a lock.
//!
//! KVM_GET_SUPPORTED_CPUID is slow (~0.26 ms on the PVM host), and the answer cannot change
//! while the process lives, so it is fetched once and cached.

use crate::error::{Result, VmError};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;
use std::sync::OnceLock;

static SUPPORTED: OnceLock<CpuId> = OnceLock::new();

/// KVM_GET_SUPPORTED_CPUID, once per process.
pub fn supported(kvm: &Kvm) -> Result<&'static CpuId> {
    if let Some(cpuid) = SUPPORTED.get() {
        return Ok(cpuid);
    }
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(VmError::kvm("KVM_GET_SUPPORTED_CPUID"))?;
    Ok(SUPPORTED.get_or_init(|| cpuid))
}

const LEAF_FEATURES: u32 = 1;
const LEAF_EXTENDED_TOPOLOGY: u32 = 0xb;
const LEAF_V2_EXTENDED_TOPOLOGY: u32 = 0x1f;
const ECX_HYPERVISOR: u32 = 1 << 31;
const ECX_CX16: u32 = 1 << 13;

/// The table for vCPU `index` of `count`; `emulated_cpl0` hides what KVM's emulator lacks.
pub fn for_vcpu(base: &CpuId, index: u8, count: u8, emulated_cpl0: bool) -> CpuId {
    let mut cpuid = base.clone();
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            LEAF_FEATURES => {
                // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package.
                entry.ebx =
                    (entry.ebx & 0xffff) | (u32::from(count) << 16) | (u32::from(index) << 24);
                entry.ecx |= ECX_HYPERVISOR;
                if emulated_cpl0 {
                    entry.ecx &= !ECX_CX16;
                }
            }
            LEAF_EXTENDED_TOPOLOGY | LEAF_V2_EXTENDED_TOPOLOGY => {
                // EDX: this vCPU's x2APIC ID.
                entry.edx = u32::from(index);
            }
            _ => {}
        }
    }
    cpuid
}
