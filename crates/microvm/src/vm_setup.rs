//! The first boot steps: /dev/kvm, the VM, its memory, its vCPUs.
//!
//! Each step is one or two KVM ioctls; `vmm.rs` calls them in order. What they cost on this
//! kind of host is in the phase timings ([`crate::PhaseTimings`]): creating the VM and a vCPU
//! are the expensive ones (the kernel allocates the MMU, debugfs entries, the vCPU's kvm_run
//! page), registering memory is cheap because guest RAM is only reserved, not touched.

use crate::config::Machine;
use crate::cpuid;
use crate::error::{Result, VmError};
use crate::guest::Guest;
use crate::kernel;
use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use std::sync::Arc;
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Opens /dev/kvm and checks the API version, the capabilities this VMM relies on, and that
/// the machine fits this host (vCPU count, RAM + swap).
pub(crate) fn open_kvm(machine: &Machine) -> Result<Kvm> {
    let kvm = Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => VmError::NoKvm,
        libc::EACCES | libc::EPERM => VmError::KvmPermission,
        _ => VmError::Kvm {
            op: "open /dev/kvm",
            source: e,
        },
    })?;
    if kvm.get_api_version() != 12 {
        return Err(VmError::ApiVersion(kvm.get_api_version()));
    }
    for (cap, name) in [
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(VmError::MissingCap(name));
        }
    }
    let max_vcpus = kvm.get_max_vcpus();
    if usize::from(machine.vcpus) > max_vcpus {
        return Err(VmError::Config(format!(
            "{} vCPUs requested; this KVM allows at most {max_vcpus}",
            machine.vcpus
        )));
    }
    check_host_memory(machine.memory_bytes)?;
    Ok(kvm)
}

/// Guest RAM is reserved lazily (MAP_NORESERVE), so an impossible size would only fail when
/// the guest touches it; refuse sizes beyond the host's RAM + swap up front.
fn check_host_memory(requested_bytes: u64) -> Result<()> {
    // SAFETY: sysinfo fills the struct we pass; a zeroed struct is a valid initial value.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable sysinfo.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return Ok(());
    }
    let unit = u64::from(info.mem_unit.max(1));
    let host = (info.totalram as u64 + info.totalswap as u64).saturating_mul(unit);
    if requested_bytes > host {
        return Err(VmError::Memory {
            requested_bytes,
            reason: format!(
                "the host has only {} of RAM + swap; ask for less (e.g. --memory 256M)",
                crate::config::format_bytes(host)
            ),
        });
    }
    Ok(())
}

/// A VM fd and whether it has the in-kernel interrupt controllers.
#[derive(Debug)]
pub(crate) struct Vm {
    pub(crate) fd: Arc<VmFd>,
    pub(crate) irqchip: bool,
}

/// KVM_CREATE_VM: an empty VM, no memory, no devices.
pub(crate) fn create_vm(kvm: &Kvm) -> Result<Vm> {
    let fd = kvm.create_vm().map_err(VmError::kvm("KVM_CREATE_VM"))?;
    Ok(Vm {
        fd: Arc::new(fd),
        irqchip: false,
    })
}

/// The in-kernel PIC/IOAPIC and PIT, when the guest wants them (they cost time to create and
/// to tear down, so a guest that uses none gets none). Created after guest memory: with an
/// irqchip in place, every memory-slot change waits for the irqchip's readers (measured here:
/// milliseconds instead of ~0.2 ms for KVM_SET_USER_MEMORY_REGION).
pub(crate) fn create_interrupt_controllers(kvm: &Kvm, vm: &mut Vm, wanted: bool) -> Result<()> {
    if !wanted || !kvm.check_extension(Cap::Irqchip) {
        return Ok(());
    }
    // Three pages just below 4 GiB that Intel's VMX needs for real-mode emulation.
    vm.fd
        .set_tss_address(0xfffb_d000)
        .map_err(VmError::kvm("KVM_SET_TSS_ADDR"))?;
    vm.fd
        .create_irq_chip()
        .map_err(VmError::kvm("KVM_CREATE_IRQCHIP"))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.fd
        .create_pit2(pit)
        .map_err(VmError::kvm("KVM_CREATE_PIT2"))?;
    vm.irqchip = true;
    Ok(())
}

/// Guest RAM: anonymous mmaps (MAP_NORESERVE: a page is allocated when first touched), one
/// memory slot per range (below the 32-bit MMIO gap, and above 4 GiB for big guests).
pub(crate) fn create_guest_memory(vm: &VmFd, memory_bytes: u64) -> Result<GuestMemoryMmap> {
    let memory =
        GuestMemoryMmap::from_ranges(&kernel::ram_ranges(memory_bytes)).map_err(|source| {
            VmError::MemoryMap {
                requested_bytes: memory_bytes,
                source,
            }
        })?;
    for (slot, region) in memory.iter().enumerate() {
        // A region of a GuestMemoryMmap always has a host address.
        let host = region.as_ptr();
        let slot_region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mapping of `memory_size` bytes that outlives the VM fd:
        // the boot path drops `memory` only after the vCPUs and the VM (see `vmm::tear_down`).
        unsafe { vm.set_user_memory_region(slot_region) }.map_err(|source| {
            match source.errno() {
                libc::ENOMEM | libc::EINVAL => VmError::MemorySlot {
                    requested_bytes: memory_bytes,
                    source,
                },
                _ => VmError::Kvm {
                    op: "KVM_SET_USER_MEMORY_REGION",
                    source,
                },
            }
        })?;
    }
    Ok(memory)
}

/// One vCPU fd each, with the CPUID table (if the guest wants one) and the guest's own
/// per-vCPU state.
pub(crate) fn create_vcpus(
    kvm: &Kvm,
    vm: &Vm,
    count: u8,
    guest: &dyn Guest,
) -> Result<Vec<VcpuFd>> {
    let cpuid = if guest.wants_cpuid() {
        // Where guest kernel mode is emulated, hide CPU features the emulator cannot run.
        let emulated_cpl0 =
            crate::platform::KvmModule::detect() == crate::platform::KvmModule::KvmPvm;
        Some((cpuid::supported(kvm)?, emulated_cpl0))
    } else {
        None
    };
    let mut vcpus = Vec::with_capacity(usize::from(count));
    for index in 0..count {
        let vcpu = vm
            .fd
            .create_vcpu(u64::from(index))
            .map_err(VmError::kvm("KVM_CREATE_VCPU"))?;
        if let Some((base, emulated_cpl0)) = cpuid {
            vcpu.set_cpuid2(&cpuid::for_vcpu(base, index, count, emulated_cpl0))
                .map_err(VmError::kvm("KVM_SET_CPUID2"))?;
        }
        guest.configure_vcpu(&vcpu, vm.irqchip)?;
        vcpus.push(vcpu);
    }
    Ok(vcpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_beyond_ram_and_swap_is_refused_up_front() {
        let err = check_host_memory(u64::MAX).unwrap_err();
        assert!(err.to_string().contains("--memory"), "{err}");
        assert!(check_host_memory(16 << 20).is_ok());
    }
}
