//! The devices a microVM needs, and how a VM exit reaches them.
//!
//! A guest "talks to hardware" with port I/O (`in`/`out`) or memory-mapped I/O (loads and stores
//! to addresses no memory slot backs). Either one makes KVM_RUN return to us with the port or
//! address and the data: emulating a device is just answering those exits. Interrupt
//! controllers and the timer (PIC, IOAPIC, LAPIC, PIT) live inside KVM (KVM_CREATE_IRQCHIP /
//! KVM_CREATE_PIT2) because they are on the hot path; what remains here is slow and simple:
//!
//! * **8250 UART** at 0x3f8 (vm-superio): the serial console. Each byte the guest writes to the
//!   transmit register is one exit; when the UART wants attention it raises IRQ 4 on the
//!   in-kernel PIC/IOAPIC (KVM_IRQ_LINE).
//! * **i8042** at 0x60/0x64: Linux reboots by writing 0xfe to port 0x64; we stop the VM.
//! * **boot timer**: a guest write of the magic byte 123 to MMIO 0xd000_0000 (Firecracker's
//!   convention) or port 0x440 (guests/README.md) timestamps "init reached".
//! * **debug exit** at 0xf4 (when the configuration asks for it): QEMU's `isa-debug-exit`; a
//!   guest write of V stops the VM with status V, so one guest image can end itself under
//!   either VMM.
//! * a guest's **own device**, if it brings one ([`PortDevice`]): the stub guest's reporting
//!   ports live in `stub/ports.rs`, not here.
//!
//! Unknown ports read as 0xff (no device) and writes to them are ignored, as on real hardware
//! with nothing plugged in; Linux probes many such ports while booting.

use crate::config::ConsoleSpec;
use crate::error::{Result, VmError};
use crate::layout::{self, ports};
use kvm_ioctls::VmFd;
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use vm_superio::{I8042Device, Serial, Trigger};

/// What a handled exit means for the vCPU loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Re-enter the guest.
    Resume,
    /// The guest asked for a reset (i8042) — Linux's `reboot`.
    Reset,
    /// A device's exit port: the guest is done, with this status.
    Exit(u8),
    /// The console showed what the caller was waiting for.
    ConsoleMatched,
}

/// A device on a range of I/O ports, handled on the vCPU thread that made the exit.
pub(crate) trait PortDevice: Send + Sync + std::fmt::Debug {
    /// Whether `port` belongs to this device.
    fn owns(&self, port: u16) -> bool;
    /// A guest `out` to one of its ports.
    fn write(&self, port: u16, data: &[u8]) -> Action;
    /// A guest `in` from one of its ports (default: no device answers, all ones).
    fn read(&self, _port: u16, data: &mut [u8]) {
        data.fill(0xff);
    }
}

/// QEMU's `isa-debug-exit`: a write of V stops the VM with status V.
#[derive(Debug)]
pub(crate) struct DebugExit;

impl PortDevice for DebugExit {
    fn owns(&self, port: u16) -> bool {
        (ports::DEBUG_EXIT..ports::DEBUG_EXIT + 4).contains(&port)
    }

    fn write(&self, _port: u16, data: &[u8]) -> Action {
        Action::Exit(data.first().copied().unwrap_or(0))
    }
}

/// Raises the UART's interrupt line on the in-kernel interrupt controller (an edge: up, down).
#[derive(Debug)]
pub(crate) struct IrqLine {
    vm: Option<Arc<VmFd>>,
    irq: u32,
}

impl Trigger for IrqLine {
    type E = kvm_ioctls::Error;
    fn trigger(&self) -> std::result::Result<(), Self::E> {
        if let Some(vm) = &self.vm {
            vm.set_irq_line(self.irq, true)?;
            vm.set_irq_line(self.irq, false)?;
        }
        Ok(())
    }
}

/// Sets a flag the vCPU loop checks after every i8042 write.
#[derive(Debug)]
pub(crate) struct ResetFlag(Arc<AtomicBool>);

impl Trigger for ResetFlag {
    type E = std::convert::Infallible;
    fn trigger(&self) -> std::result::Result<(), Self::E> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

const BANNER: &[u8] = b"Linux version";
/// Captured consoles stop growing here so a chatty guest cannot exhaust the VMM's memory.
const CAPTURE_LIMIT_BYTES: usize = 4 << 20;

enum Sink {
    Stdout,
    File(File),
    Capture(Vec<u8>),
    Discard,
}

/// Decides, from the captured console so far, that the VM can stop.
pub(crate) type ConsoleWatch = Box<dyn FnMut(&str) -> bool + Send>;

/// The UART's output: line-buffered to its destination, scanned for the kernel banner.
pub(crate) struct ConsoleOut {
    sink: Sink,
    line: Vec<u8>,
    banner_matched: usize,
    banner_at: Option<Instant>,
    watch: Option<ConsoleWatch>,
    matched: bool,
}

impl std::fmt::Debug for ConsoleOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleOut")
            .field("banner_at", &self.banner_at)
            .finish_non_exhaustive()
    }
}

impl ConsoleOut {
    pub(crate) fn open(spec: &ConsoleSpec) -> Result<Self> {
        let sink = match spec {
            ConsoleSpec::Stdout => Sink::Stdout,
            ConsoleSpec::File(path) => {
                Sink::File(File::create(path).map_err(|source| VmError::Console {
                    path: path.clone(),
                    source,
                })?)
            }
            ConsoleSpec::Capture => Sink::Capture(Vec::new()),
            ConsoleSpec::Discard => Sink::Discard,
        };
        Ok(ConsoleOut {
            sink,
            line: Vec::with_capacity(256),
            banner_matched: 0,
            banner_at: None,
            watch: None,
            matched: false,
        })
    }

    /// Stops the VM once `watch` returns true for the captured text (checked per line).
    pub(crate) fn with_watch(mut self, watch: Option<ConsoleWatch>) -> Self {
        self.watch = watch;
        self
    }

    fn scan(&mut self, byte: u8) {
        if self.banner_at.is_some() {
            return;
        }
        // "Linux version" has no repeated prefix, so a one-counter matcher is exact.
        if byte == BANNER[self.banner_matched] {
            self.banner_matched += 1;
            if self.banner_matched == BANNER.len() {
                self.banner_at = Some(Instant::now());
            }
        } else {
            self.banner_matched = usize::from(byte == BANNER[0]);
        }
    }

    /// Writes out the pending partial line.
    pub(crate) fn drain(&mut self) {
        let line = std::mem::take(&mut self.line);
        match &mut self.sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&line);
                let _ = out.flush();
            }
            Sink::File(file) => {
                let _ = file.write_all(&line);
            }
            Sink::Capture(buf) => {
                let room = CAPTURE_LIMIT_BYTES.saturating_sub(buf.len());
                buf.extend_from_slice(&line[..line.len().min(room)]);
                if let Some(watch) = self.watch.as_mut() {
                    if !self.matched && watch(&String::from_utf8_lossy(buf)) {
                        self.matched = true;
                    }
                }
            }
            Sink::Discard => {}
        }
        self.line = line;
        self.line.clear();
    }

    pub(crate) fn banner_at(&self) -> Option<Instant> {
        self.banner_at
    }

    pub(crate) fn into_captured(mut self) -> Option<Vec<u8>> {
        self.drain();
        match self.sink {
            Sink::Capture(buf) => Some(buf),
            _ => None,
        }
    }
}

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &byte in buf {
            self.scan(byte);
            self.line.push(byte);
            if byte == b'\n' || self.line.len() >= 4096 {
                self.drain();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // The UART flushes after every byte; we flush whole lines instead (see `write`).
        Ok(())
    }
}

/// All emulated devices of one VM, shared by its vCPU threads.
#[derive(Debug)]
pub(crate) struct Devices {
    serial: Mutex<Serial<IrqLine, vm_superio::serial::NoEvents, ConsoleOut>>,
    i8042: Mutex<I8042Device<ResetFlag>>,
    reset: Arc<AtomicBool>,
    boot_timer: OnceLock<Instant>,
    extra: Vec<Arc<dyn PortDevice>>,
}

impl Devices {
    /// `vm` is `Some` when an in-kernel irqchip exists to deliver the UART's interrupt;
    /// `extra` devices are asked first, in order.
    pub(crate) fn new(
        vm: Option<Arc<VmFd>>,
        console: ConsoleOut,
        extra: Vec<Arc<dyn PortDevice>>,
    ) -> Self {
        let reset = Arc::new(AtomicBool::new(false));
        Devices {
            serial: Mutex::new(Serial::new(
                IrqLine {
                    vm,
                    irq: ports::COM1_IRQ,
                },
                console,
            )),
            i8042: Mutex::new(I8042Device::new(ResetFlag(reset.clone()))),
            reset,
            boot_timer: OnceLock::new(),
            extra,
        }
    }

    pub(crate) fn io_out(&self, port: u16, data: &[u8]) -> Action {
        if let Some(device) = self.extra.iter().find(|d| d.owns(port)) {
            return device.write(port, data);
        }
        let value = data.first().copied().unwrap_or(0);
        match port {
            p if (ports::COM1..ports::COM1 + 8).contains(&p) => {
                // A failed interrupt injection only delays console output; it is not fatal.
                let mut serial = lock(&self.serial);
                let _ = serial.write((p - ports::COM1) as u8, value);
                if serial.writer().matched {
                    Action::ConsoleMatched
                } else {
                    Action::Resume
                }
            }
            ports::I8042_DATA | ports::I8042_COMMAND => {
                let _ = lock(&self.i8042).write((port - ports::I8042_DATA) as u8, value);
                if self.reset.load(Ordering::SeqCst) {
                    Action::Reset
                } else {
                    Action::Resume
                }
            }
            ports::BOOT_TIMER => {
                self.boot_timer_write(value);
                Action::Resume
            }
            _ => Action::Resume,
        }
    }

    pub(crate) fn io_in(&self, port: u16, data: &mut [u8]) {
        if let Some(device) = self.extra.iter().find(|d| d.owns(port)) {
            return device.read(port, data);
        }
        let value = match port {
            p if (ports::COM1..ports::COM1 + 8).contains(&p) => {
                lock(&self.serial).read((p - ports::COM1) as u8)
            }
            ports::I8042_DATA | ports::I8042_COMMAND => {
                lock(&self.i8042).read((port - ports::I8042_DATA) as u8)
            }
            _ => 0xff,
        };
        data.fill(value);
    }

    pub(crate) fn mmio_write(&self, addr: u64, data: &[u8]) -> Action {
        if addr == layout::BOOT_TIMER_MMIO {
            self.boot_timer_write(data.first().copied().unwrap_or(0));
        }
        Action::Resume
    }

    pub(crate) fn mmio_read(&self, _addr: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn boot_timer_write(&self, value: u8) {
        if value == layout::BOOT_TIMER_MAGIC {
            let _ = self.boot_timer.set(Instant::now());
        }
    }

    pub(crate) fn boot_timer(&self) -> Option<Instant> {
        self.boot_timer.get().copied()
    }

    /// Flushes the console and hands back what it captured, with the banner time.
    pub(crate) fn finish_console(self) -> (Option<Vec<u8>>, Option<Instant>) {
        let serial = self
            .serial
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = serial.into_writer();
        let banner = out.banner_at();
        (out.into_captured(), banner)
    }
}

/// Locks a device (or the stub's record); a panic on another vCPU thread does not make it
/// unusable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_is_found_across_writes() {
        let mut out = ConsoleOut::open(&ConsoleSpec::Capture).unwrap();
        out.write_all(b"[0.0] LinLinux ver").unwrap();
        assert!(out.banner_at().is_none());
        out.write_all(b"sion 6.1.0\n").unwrap();
        assert!(out.banner_at().is_some());
        assert_eq!(
            out.into_captured().unwrap(),
            b"[0.0] LinLinux version 6.1.0\n"
        );
    }

    #[test]
    fn i8042_reset_debug_exit_and_unknown_ports() {
        let console = ConsoleOut::open(&ConsoleSpec::Discard).unwrap();
        let devices = Devices::new(None, console, vec![Arc::new(DebugExit)]);
        assert_eq!(
            devices.io_out(ports::I8042_COMMAND, &[0x00]),
            Action::Resume
        );
        assert_eq!(devices.io_out(ports::I8042_COMMAND, &[0xfe]), Action::Reset);
        assert_eq!(devices.io_out(ports::DEBUG_EXIT, &[3]), Action::Exit(3));
        assert_eq!(devices.io_out(ports::DEBUG_EXIT + 4, &[3]), Action::Resume);
        let mut byte = [0u8];
        devices.io_in(0x1234, &mut byte);
        assert_eq!(byte, [0xff]);
        devices.mmio_write(layout::BOOT_TIMER_MMIO, &[1]);
        assert!(devices.boot_timer().is_none());
        devices.mmio_write(layout::BOOT_TIMER_MMIO, &[layout::BOOT_TIMER_MAGIC]);
        assert!(devices.boot_timer().is_some());
    }
}
