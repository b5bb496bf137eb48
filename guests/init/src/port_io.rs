//! Talking to the VMM through x86 I/O ports: the boot timer and the i8042 reset.
//!
//! x86 has a second address space besides memory: 65,536 I/O ports, reached only with the
//! `in`/`out` instructions. A hypervisor configures the CPU to trap every port access, so an
//! `out` from the guest is a *VM exit* the VMM sees with port, size and data (`KVM_EXIT_IO`):
//! the cheapest way for a guest to say "now!" to the host. Firecracker uses this for its boot
//! timer; isolab uses port 0x440 and the byte 123 (guests/README.md).
//!
//! User space may only execute `out` if the kernel lets it: `ioperm(port, n, 1)` sets bits in the
//! task's I/O permission bitmap (in the TSS), `iopl(3)` raises the I/O privilege level for all
//! ports. Both need CAP_SYS_RAWIO (PID 1 has it) and a kernel built with `X86_IOPL_IOPERM`.
//! Without them, the fallback is an MMIO write through `/dev/mem` (a `KVM_EXIT_MMIO` instead).
//!
//! Nothing here may run on the host: an `out` to a real machine's port 0x64 resets it.
//! The callers ([`crate::guest`]) only use this module when running as PID 1 in the guest.

use std::io;

/// The boot-timer port (guests/README.md, "Boot timer").
pub const BOOT_TIMER_PORT: u16 = 0x0440;
/// The byte written to it.
pub const BOOT_TIMER_VALUE: u8 = 123;
/// Guest-physical address of the MMIO fallback.
pub const BOOT_TIMER_MMIO_ADDR: u64 = 0xD000_0000;
/// The i8042 keyboard controller's command port.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// i8042 command "pulse the CPU reset line": what `reboot=k` makes the kernel write.
pub const I8042_RESET_CPU: u8 = 0xFE;

/// How the boot-timer write went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootTimerPath {
    Ioperm,
    Iopl,
    Mmio,
}

impl BootTimerPath {
    pub fn name(self) -> &'static str {
        match self {
            BootTimerPath::Ioperm => "ioperm",
            BootTimerPath::Iopl => "iopl",
            BootTimerPath::Mmio => "mmio",
        }
    }
}

/// Asks the kernel for access to `port`: first `ioperm` for just that port, then `iopl(3)`.
fn allow_port(port: u16) -> io::Result<BootTimerPath> {
    // SAFETY: ioperm only changes this task's I/O permission bitmap; no memory is involved.
    if unsafe { libc::ioperm(libc::c_ulong::from(port), 1, 1) } == 0 {
        return Ok(BootTimerPath::Ioperm);
    }
    // SAFETY: iopl only changes this task's I/O privilege level; no memory is involved.
    if unsafe { libc::iopl(3) } == 0 {
        return Ok(BootTimerPath::Iopl);
    }
    Err(io::Error::last_os_error())
}

/// Writes `value` to `port`.
///
/// # Safety
/// The caller must have port access ([`allow_port`]) and must be inside the guest: the write
/// goes to whatever device answers `port`, which on bare metal may be real hardware.
unsafe fn outb(port: u16, value: u8) {
    // SAFETY: per this function's contract, the port is ours to write; `out` touches no memory.
    unsafe {
        std::arch::asm!("out dx, al", in("dx") port, in("al") value,
            options(nomem, nostack, preserves_flags));
    }
}

/// Signals "userspace init is running" to the VMM. Must only be called in the guest.
pub fn signal_boot_timer() -> io::Result<BootTimerPath> {
    match allow_port(BOOT_TIMER_PORT) {
        Ok(path) => {
            // SAFETY: access granted just above; we are PID 1 in the guest (module contract).
            unsafe { outb(BOOT_TIMER_PORT, BOOT_TIMER_VALUE) };
            Ok(path)
        }
        Err(port_err) => mmio_write(BOOT_TIMER_MMIO_ADDR, BOOT_TIMER_VALUE)
            .map(|()| BootTimerPath::Mmio)
            .map_err(|mmio_err| {
                io::Error::new(
                    mmio_err.kind(),
                    format!(
                        "ioperm/iopl failed ({port_err}) and /dev/mem fallback failed ({mmio_err})"
                    ),
                )
            }),
    }
}

/// One byte written to a guest-physical address through `/dev/mem`.
fn mmio_write(phys_addr: u64, value: u8) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let page = 4096u64;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/mem")?;
    let offset = libc::off_t::try_from(phys_addr & !(page - 1))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a new shared mapping of one page of /dev/mem; checked for failure below and
    // unmapped before returning.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page as usize,
            libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            offset,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let byte = (phys_addr & (page - 1)) as usize;
    // SAFETY: `byte` < page, so the pointer lies within the page mapped above.
    unsafe { std::ptr::write_volatile(base.cast::<u8>().wrapping_add(byte), value) };
    // SAFETY: unmaps exactly the page mapped above, no longer used.
    unsafe { libc::munmap(base, page as usize) };
    Ok(())
}

/// Last-resort reset through the i8042, for when `reboot()` returned. Guest only.
pub fn i8042_reset() -> io::Result<()> {
    allow_port(I8042_COMMAND_PORT)?;
    // SAFETY: access granted just above; we are PID 1 in the guest (module contract).
    unsafe { outb(I8042_COMMAND_PORT, I8042_RESET_CPU) };
    Ok(())
}
