//! What the VMM needs from a guest, whatever the guest is.
//!
//! The boot path in `vmm.rs` is the same for every guest; what differs is written here as a
//! trait. A guest says which in-kernel devices and CPU tables it needs (each costs time to
//! create and tear down, so a guest that does not use them does not get them), puts its image
//! and boot information into guest memory, and says in which CPU state its first instruction
//! runs. A guest may also bring a device of its own: ports that only it uses (the stub guest's
//! reporting ports, for example), so the VMM core never needs to know what they mean.
//!
//! Implementations: [`crate::linux::LinuxGuest`] (a kernel through PVH or the 64-bit boot
//! protocol) and [`crate::stub::StubGuest`] (isolab's measuring guest).

use crate::devices::PortDevice;
use crate::error::{Result, VmError};
use crate::kernel::ImageFormat;
use crate::long_mode::{self, StartMode};
use crate::msrs;
use kvm_bindings::{kvm_msr_entry, kvm_regs};
use kvm_ioctls::VcpuFd;
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;

/// The boot vCPU's state at the guest's first instruction.
#[derive(Debug, Clone)]
pub(crate) struct BootState {
    /// CPU mode (long mode kernel/user, or PVH's 32-bit protected mode).
    pub(crate) mode: StartMode,
    /// General-purpose registers (RIP, RSP, arguments).
    pub(crate) regs: kvm_regs,
    /// MSRs the guest relies on before it could set them itself.
    pub(crate) msrs: Vec<kvm_msr_entry>,
    /// The image format, for the report (kernels only).
    pub(crate) kernel_format: Option<ImageFormat>,
}

impl BootState {
    /// Writes the mode's descriptor and page tables into memory and loads the boot vCPU.
    pub(crate) fn apply(&self, memory: &GuestMemoryMmap, vcpu: &VcpuFd) -> Result<()> {
        long_mode::write_tables(memory, self.mode)?;
        if !self.msrs.is_empty() {
            msrs::set(vcpu, &self.msrs)?;
        }
        let mut sregs = vcpu.get_sregs().map_err(VmError::kvm("KVM_GET_SREGS"))?;
        long_mode::configure_sregs(&mut sregs, self.mode);
        vcpu.set_sregs(&sregs)
            .map_err(VmError::kvm("KVM_SET_SREGS"))?;
        vcpu.set_regs(&self.regs)
            .map_err(VmError::kvm("KVM_SET_REGS"))
    }

    /// Whether the guest is entered through PVH.
    pub(crate) fn pvh_entry(&self) -> bool {
        self.mode == StartMode::Pvh32
    }
}

/// A guest the VMM can boot.
pub(crate) trait Guest {
    /// Rejects what this guest cannot run with, before any KVM work.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Whether it needs the in-kernel interrupt controllers and timer.
    fn wants_irqchip(&self) -> bool;

    /// Whether each vCPU needs a CPUID table (KVM_GET_SUPPORTED_CPUID costs ~0.26 ms, once).
    fn wants_cpuid(&self) -> bool;

    /// Per-vCPU state beyond the boot registers (FPU, MSRs, LAPIC wiring), on every vCPU.
    fn configure_vcpu(&self, _vcpu: &VcpuFd, _irqchip: bool) -> Result<()> {
        Ok(())
    }

    /// Writes the image and what it reads at boot into `memory`; returns the boot vCPU state.
    fn load(&self, memory: &GuestMemoryMmap, memory_bytes: u64) -> Result<BootState>;

    /// A device only this guest uses, attached beside the standard ones.
    fn device(&self) -> Option<Arc<dyn PortDevice>> {
        None
    }
}
