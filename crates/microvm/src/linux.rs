//! A Linux kernel (or any kernel image with a PVH note) as a [`Guest`].
//!
//! Linux expects what firmware leaves behind on a PC: an interrupt controller and a timer
//! (created inside KVM), a CPUID table, MSRs with boot defaults, an FPU in its reset state, and
//! each LAPIC wired to the legacy PIC. The image is an ELF vmlinux (entered through PVH when it
//! carries the note, else in 64-bit mode) or a bzImage (64-bit boot protocol with a zero page);
//! see `kernel.rs` for the two protocols.

use crate::error::{Result, VmError};
use crate::guest::{BootState, Guest};
use crate::kernel;
use crate::layout;
use crate::long_mode::{self, StartMode};
use crate::msrs;
use kvm_ioctls::VcpuFd;
use std::path::Path;
use vm_memory::GuestMemoryMmap;

/// A kernel image, its optional initramfs and command line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinuxGuest<'a> {
    pub(crate) kernel: &'a Path,
    pub(crate) initrd: Option<&'a Path>,
    pub(crate) cmdline: &'a str,
}

impl Guest for LinuxGuest<'_> {
    fn validate(&self) -> Result<()> {
        if self.cmdline.len() >= layout::CMDLINE_MAX_BYTES {
            return Err(VmError::Config(format!(
                "kernel command line is {} bytes; the limit is {}",
                self.cmdline.len(),
                layout::CMDLINE_MAX_BYTES - 1
            )));
        }
        Ok(())
    }

    fn wants_irqchip(&self) -> bool {
        true
    }

    fn wants_cpuid(&self) -> bool {
        true
    }

    fn configure_vcpu(&self, vcpu: &VcpuFd, irqchip: bool) -> Result<()> {
        msrs::set(vcpu, &msrs::linux_boot())?;
        let fpu = kvm_bindings::kvm_fpu {
            fcw: 0x37f,
            mxcsr: 0x1f80,
            ..Default::default()
        };
        vcpu.set_fpu(&fpu).map_err(VmError::kvm("KVM_SET_FPU"))?;
        if irqchip {
            set_lapic_lint(vcpu)?;
        }
        Ok(())
    }

    fn load(&self, memory: &GuestMemoryMmap, memory_bytes: u64) -> Result<BootState> {
        let loaded = kernel::load_linux(memory, self.kernel)?;
        let initrd = match self.initrd {
            Some(path) => Some(kernel::load_initrd(memory, path, memory_bytes, &loaded)?),
            None => None,
        };
        kernel::write_cmdline(memory, self.cmdline)?;
        let mut regs = kvm_bindings::kvm_regs {
            rip: loaded.entry,
            rflags: long_mode::initial_rflags(loaded.mode),
            ..Default::default()
        };
        if loaded.mode == StartMode::Pvh32 {
            kernel::write_pvh_start_info(memory, initrd, memory_bytes)?;
            regs.rbx = layout::PVH_INFO_START;
        } else {
            let cmdline_bytes = self.cmdline.len() + 1;
            kernel::write_zero_page(memory, &loaded, cmdline_bytes, initrd, memory_bytes)?;
            regs.rsi = layout::ZERO_PAGE_START;
            regs.rsp = layout::ZERO_PAGE_START;
            regs.rbp = layout::ZERO_PAGE_START;
        }
        Ok(BootState {
            mode: loaded.mode,
            regs,
            msrs: Vec::new(),
            kernel_format: Some(loaded.format),
        })
    }
}

/// LAPIC LINT0 = ExtINT (the PIC's output), LINT1 = NMI, as a PC's firmware leaves them.
fn set_lapic_lint(vcpu: &VcpuFd) -> Result<()> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const DELIVERY_EXTINT: u32 = 0x7 << 8;
    const DELIVERY_NMI: u32 = 0x4 << 8;
    let mut lapic = vcpu.get_lapic().map_err(VmError::kvm("KVM_GET_LAPIC"))?;
    for (offset, mode) in [(APIC_LVT0, DELIVERY_EXTINT), (APIC_LVT1, DELIVERY_NMI)] {
        let reg = &mut lapic.regs[offset..offset + 4];
        let value = u32::from_le_bytes([reg[0] as u8, reg[1] as u8, reg[2] as u8, reg[3] as u8]);
        let value = (value & !0x700) | mode;
        for (dst, src) in reg.iter_mut().zip(value.to_le_bytes()) {
            *dst = src as _;
        }
    }
    vcpu.set_lapic(&lapic)
        .map_err(VmError::kvm("KVM_SET_LAPIC"))
}
