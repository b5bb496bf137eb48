//! Putting a vCPU straight into 64-bit long mode (or the 32-bit PVH entry state).
//!
//! A real x86 CPU starts in 16-bit real mode and firmware walks it up to 64-bit mode. A VMM can
//! skip all that: it writes the few structures long mode needs into guest memory and loads the
//! vCPU's special registers (KVM_SET_SREGS) as if the walk had already happened:
//!
//! * a **GDT** whose code segment has the L (long) bit: segments hardly matter in 64-bit mode,
//!   but CS's DPL is the privilege level (CPL0 kernel, CPL3 user) and SYSCALL/SYSRET need a
//!   fixed layout of kernel and user selectors (see `layout::selectors`);
//! * **page tables**: long mode cannot run without paging, so we identity-map guest RAM below
//!   4 GiB and the GiB of device addresses with 2 MiB pages (PML4 → PDPT → one page directory
//!   per GiB), user-accessible so the stub can run its workloads in CPL3;
//! * **control registers**: CR0.PE (protected mode) + CR0.PG (paging), CR4.PAE (64-bit page table
//!   entries), EFER.LME/LMA (long mode enable/active) and EFER.SCE (the SYSCALL instruction).
//!
//! Linux's PVH entry point is different: it wants 32-bit protected mode with paging *off*, and
//! builds its own page tables.

use crate::error::{Result, VmError};
use crate::layout::{self, selectors};
use kvm_bindings::{kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Page-table entry bits: present, writable, user-accessible, and (in a PD) a 2 MiB page.
const PTE_PRESENT_RW_USER: u64 = 0b111;
const PDE_HUGE: u64 = 1 << 7;

/// Which privilege level the vCPU starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// 64-bit, kernel mode (CPL0): Linux's 64-bit boot protocol, the stub's CPL0 probe.
    Long64Kernel,
    /// 64-bit, user mode (CPL3) with IOPL 3 so port I/O works: the stub's workloads.
    Long64User,
    /// 32-bit protected mode, paging off: Linux's PVH entry.
    Pvh32,
}

/// Encodes one segment descriptor: `access` is the P/DPL/S/type byte, `flags` the G/DB/L nibble.
const fn descriptor(access: u8, flags: u8) -> u64 {
    // Base 0, limit 0xfffff (with G set: 4 GiB). Layout: limit[15:0], base[23:0], access,
    // limit[19:16] | flags << 4, base[31:24].
    0xffff | ((access as u64) << 40) | (0xf << 48) | ((flags as u64) << 52)
}

const CODE64_KERNEL: u64 = descriptor(0x9b, 0xa);
const CODE32_KERNEL: u64 = descriptor(0x9b, 0xc);
const DATA_KERNEL: u64 = descriptor(0x93, 0xc);
const CODE32_USER: u64 = descriptor(0xfb, 0xc);
const DATA_USER: u64 = descriptor(0xf3, 0xc);
const CODE64_USER: u64 = descriptor(0xfb, 0xa);

/// The GDT in selector order (index = selector / 8).
fn gdt(mode: StartMode) -> [u64; 6] {
    let kernel_code = if mode == StartMode::Pvh32 {
        CODE32_KERNEL
    } else {
        CODE64_KERNEL
    };
    [
        0,
        kernel_code,
        DATA_KERNEL,
        CODE32_USER,
        DATA_USER,
        CODE64_USER,
    ]
}

/// The `kvm_segment` KVM wants for a descriptor (the hidden part of a segment register).
fn segment(descriptor: u64, selector: u16) -> kvm_segment {
    let access = (descriptor >> 40) as u8;
    let flags = (descriptor >> 52) as u8 & 0xf;
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: access & 0xf,
        present: access >> 7,
        dpl: (access >> 5) & 3,
        db: (flags >> 2) & 1,
        s: (access >> 4) & 1,
        l: (flags >> 1) & 1,
        g: (flags >> 3) & 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Writes the GDT, an empty IDT and (for 64-bit modes) the identity-map page tables.
pub fn write_tables(mem: &GuestMemoryMmap, mode: StartMode) -> Result<()> {
    let table = gdt(mode);
    let mut bytes = [0u8; 48];
    for (chunk, entry) in bytes.chunks_exact_mut(8).zip(table) {
        chunk.copy_from_slice(&entry.to_le_bytes());
    }
    mem.write_slice(&bytes, GuestAddress(layout::GDT_START))
        .map_err(|_| VmError::GuestWrite { what: "GDT" })?;
    mem.write_obj(0u64, GuestAddress(layout::IDT_START))
        .map_err(|_| VmError::GuestWrite { what: "IDT" })?;
    if mode != StartMode::Pvh32 {
        write_identity_map(mem)?;
    }
    Ok(())
}

/// The GiBs of address space the identity map covers: those holding RAM below the MMIO gap,
/// and the GiB of the gap where the devices are (boot timer, the stub's MMIO target). The rest
/// stays unmapped, so building the map touches only the guest pages it needs (2 page
/// directories for a small guest instead of 4).
fn mapped_gibs(mem: &GuestMemoryMmap) -> impl Iterator<Item = u64> {
    let low_ram_end = mem
        .iter()
        .map(|r| r.start_addr().0 + r.len())
        .filter(|&end| end <= layout::MMIO_GAP_START)
        .max()
        .unwrap_or(0);
    let ram_gibs = low_ram_end.div_ceil(1 << 30);
    let device_gib = layout::BOOT_TIMER_MMIO >> 30;
    (0..layout::IDENTITY_MAP_BYTES >> 30).filter(move |&gib| gib < ram_gibs || gib == device_gib)
}

fn write_identity_map(mem: &GuestMemoryMmap) -> Result<()> {
    let err = |_| VmError::GuestWrite {
        what: "page tables",
    };
    mem.write_obj(
        layout::PDPTE_START | PTE_PRESENT_RW_USER,
        GuestAddress(layout::PML4_START),
    )
    .map_err(err)?;
    // One page directory per mapped GiB: 512 entries of 2 MiB each, one 4 KiB write.
    let mut pd = [0u8; 4096];
    for gib in mapped_gibs(mem) {
        let directory = layout::PDE_START + gib * 0x1000;
        mem.write_obj(
            directory | PTE_PRESENT_RW_USER,
            GuestAddress(layout::PDPTE_START + 8 * gib),
        )
        .map_err(err)?;
        for (i, entry) in pd.chunks_exact_mut(8).enumerate() {
            let page = (gib << 30) | ((i as u64) << 21);
            entry.copy_from_slice(&(page | PTE_PRESENT_RW_USER | PDE_HUGE).to_le_bytes());
        }
        mem.write_slice(&pd, GuestAddress(directory)).map_err(err)?;
    }
    Ok(())
}

/// Fills the special registers (segments, descriptor tables, control registers, EFER) for
/// `mode`, starting from the vCPU's reset state so fields we do not own (TR, LDT) stay valid.
pub fn configure_sregs(sregs: &mut kvm_sregs, mode: StartMode) {
    let table = gdt(mode);
    sregs.gdt.base = layout::GDT_START;
    sregs.gdt.limit = (table.len() * 8 - 1) as u16;
    sregs.idt.base = layout::IDT_START;
    sregs.idt.limit = 0;

    let (code, data) = match mode {
        StartMode::Long64Kernel | StartMode::Pvh32 => (
            segment(table[1], selectors::KERNEL_CODE),
            segment(table[2], selectors::KERNEL_DATA),
        ),
        StartMode::Long64User => (
            segment(table[5], selectors::USER_CODE),
            segment(table[4], selectors::USER_DATA),
        ),
    };
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;

    match mode {
        StartMode::Pvh32 => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        StartMode::Long64Kernel | StartMode::Long64User => {
            sregs.cr3 = layout::PML4_START;
            sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
            sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG;
            sregs.efer = EFER_LME | EFER_LMA | EFER_SCE;
        }
    }
}

/// RFLAGS to start with: bit 1 is always set; user mode also gets IOPL 3 so `in`/`out` work.
pub fn initial_rflags(mode: StartMode) -> u64 {
    match mode {
        StartMode::Long64User => 0x3002,
        _ => 0x2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_encode_like_the_manual() {
        // Well-known values: flat 64-bit kernel code and flat data.
        assert_eq!(CODE64_KERNEL, 0x00af_9b00_0000_ffff);
        assert_eq!(DATA_KERNEL, 0x00cf_9300_0000_ffff);
        let cs = segment(CODE64_USER, selectors::USER_CODE);
        assert_eq!((cs.dpl, cs.l, cs.db, cs.type_), (3, 1, 0, 0xb));
    }

    #[test]
    fn identity_map_translates_low_memory_and_the_mmio_gap() {
        use vm_memory::GuestAddress;
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        write_tables(&mem, StartMode::Long64User).unwrap();
        let read = |addr: u64| -> u64 { mem.read_obj(GuestAddress(addr)).unwrap() };
        // Walk the tables the way the MMU does for a guest-physical = guest-virtual address.
        let translate = |va: u64| -> u64 {
            let pdpt = read(layout::PML4_START + 8 * ((va >> 39) & 511)) & !0xfff;
            let pd = read(pdpt + 8 * ((va >> 30) & 511)) & !0xfff;
            let pde = read(pd + 8 * ((va >> 21) & 511));
            assert_eq!(pde & (PDE_HUGE | PTE_PRESENT_RW_USER), PDE_HUGE | 0b111);
            (pde & !0x1f_ffff & !(1 << 63)) | (va & 0x1f_ffff)
        };
        for va in [
            0x10_0000,
            layout::STUB_BUFFER_START + 123,
            layout::STUB_MMIO_NOP,
        ] {
            assert_eq!(translate(va), va);
        }
        // A 16 MiB guest needs GiB 0 (its RAM) and GiB 3 (the devices), not GiBs 1 and 2.
        let pdpt = |gib: u64| -> u64 { read(layout::PDPTE_START + 8 * gib) };
        assert_ne!(pdpt(0), 0);
        assert_eq!((pdpt(1), pdpt(2)), (0, 0));
        assert_ne!(pdpt(3), 0);
        // PVH starts with paging off: no tables are written for it.
        let fresh = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        write_tables(&fresh, StartMode::Pvh32).unwrap();
        let pml4: u64 = fresh.read_obj(GuestAddress(layout::PML4_START)).unwrap();
        assert_eq!(pml4, 0);
    }

    #[test]
    fn sysret_selectors_line_up() {
        // SYSRET loads CS = STAR[63:48] + 16 and SS = STAR[63:48] + 8, with RPL 3.
        assert_eq!(selectors::USER_BASE + 16, selectors::USER_CODE & !3);
        assert_eq!(selectors::USER_BASE + 8, selectors::USER_DATA & !3);
    }
}
