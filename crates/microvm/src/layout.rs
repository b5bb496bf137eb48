//! The guest-physical address map: every address the VMM writes to or traps on, in one place.
//!
//! A guest sees "physical" memory that is really an mmap in this process, registered with KVM
//! as a memory slot. Anything the VMM places there (page tables, the boot parameters, the
//! command line, the kernel) needs an address the guest agrees on, and addresses the guest may
//! touch that are NOT backed by a slot become MMIO exits (that is how devices are emulated).
//!
//! ```text
//! 0x0000_0500  GDT (the segment descriptors of long mode / PVH 32-bit entry)
//! 0x0000_0520  IDT (empty: an exception in the stub becomes a triple fault, on purpose)
//! 0x0000_6000  PVH hvm_start_info, then its memory map and module list
//! 0x0000_7000  Linux zero page (struct boot_params)
//! 0x0000_9000  PML4, 0xa000 PDPT, 0xb000..0xf000 four page directories (4 GiB identity map)
//! 0x0002_0000  kernel command line
//! 0x0008_0000  top of the stub stack (grows down)
//! 0x0009_fc00  EBDA start: reserved for firmware tables, low RAM ends here
//! 0x0010_0000  1 MiB: kernels and the stub guest load here ("high memory")
//! ...          RAM up to min(size, 3 GiB); then the MMIO gap; RAM above 4 GiB if larger
//! 0xd000_0000  boot timer (MMIO): a guest write of BOOT_TIMER_MAGIC marks "init reached"
//! 0xd000_1000  stub MMIO exit target (no slot backs it)
//! ```

/// Global descriptor table.
pub const GDT_START: u64 = 0x500;
/// Interrupt descriptor table (left empty).
pub const IDT_START: u64 = 0x520;
/// PVH `hvm_start_info` structure.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH memory map, right after the start info.
pub const PVH_MEMMAP_START: u64 = 0x6040;
/// PVH module list (one entry: the initramfs).
pub const PVH_MODLIST_START: u64 = 0x6800;
/// Linux "zero page" (`struct boot_params`) for the 64-bit boot protocol.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Level-4 page table.
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPTE_START: u64 = 0xa000;
/// First of four page directories (2 MiB pages) covering 4 GiB.
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Largest command line we pass (Linux's x86 COMMAND_LINE_SIZE).
pub const CMDLINE_MAX_BYTES: usize = 2048;
/// Initial stack pointer for the stub guest.
pub const STUB_STACK_TOP: u64 = 0x8_0000;
/// Extended BIOS data area: low usable RAM ends here.
pub const EBDA_START: u64 = 0x9_fc00;
/// Start of "high memory", where kernels are loaded.
pub const HIMEM_START: u64 = 0x10_0000;
/// The stub's memory-bandwidth buffer starts here (above its code).
pub const STUB_BUFFER_START: u64 = 0x20_0000;
/// The 32-bit MMIO gap: RAM below 4 GiB stops here.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO gap; RAM beyond 3 GiB continues here.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Boot timer device (MMIO), compatible with Firecracker's: write [`BOOT_TIMER_MAGIC`] once
/// init is reached.
pub const BOOT_TIMER_MMIO: u64 = 0xd000_0000;
/// The value a guest writes (one byte) to the boot timer.
pub const BOOT_TIMER_MAGIC: u8 = 123;
/// The stub's MMIO exit loop target.
pub const STUB_MMIO_NOP: u64 = 0xd000_1000;
/// Size of guest RAM the identity map covers (the stub and the early kernel only need 1 MiB..).
pub const IDENTITY_MAP_BYTES: u64 = 4 << 30;

/// Legacy I/O ports the VMM emulates.
pub mod ports {
    /// 8250 UART (COM1): 8 registers.
    pub const COM1: u16 = 0x3f8;
    /// IRQ line of COM1 on the legacy PIC.
    pub const COM1_IRQ: u32 = 4;
    /// i8042 keyboard controller data port.
    pub const I8042_DATA: u16 = 0x60;
    /// i8042 command/status port; writing 0xfe resets the machine (how Linux reboots).
    pub const I8042_COMMAND: u16 = 0x64;
    /// Boot timer as a port (the contract in guests/README.md: `/init` writes 123 here).
    pub const BOOT_TIMER: u16 = 0x440;
    /// QEMU's `isa-debug-exit` (`-device isa-debug-exit,iobase=0xf4,iosize=4`), 4 ports.
    pub const DEBUG_EXIT: u16 = 0xf4;
    /// Stub guest: exit with status in AL.
    pub const STUB_EXIT: u16 = 0x600;
    /// Stub guest: timestamp a phase boundary.
    pub const STUB_MARK: u16 = 0x601;
    /// Stub guest: an exit that does nothing (the port-I/O loop's target).
    pub const STUB_NOP: u16 = 0x602;
    /// Stub guest: "this host cannot run that" code in AL.
    pub const STUB_OUTCOME: u16 = 0x603;
    /// Stub guest: a figure it measured itself, as 32-bit halves (low first) in EAX.
    pub const STUB_RESULT: u16 = 0x604;
}

/// GDT selectors (index * 8, RPL in the low two bits for user segments).
pub mod selectors {
    /// 64-bit kernel code (32-bit flat code for the PVH entry).
    pub const KERNEL_CODE: u16 = 0x08;
    /// Kernel data.
    pub const KERNEL_DATA: u16 = 0x10;
    /// STAR's user base: sysret derives user SS (+8) and CS (+16) from it.
    pub const USER_BASE: u16 = 0x18;
    /// User data, RPL 3.
    pub const USER_DATA: u16 = 0x20 | 3;
    /// 64-bit user code, RPL 3.
    pub const USER_CODE: u16 = 0x28 | 3;
}
