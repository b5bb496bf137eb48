//! The VM boot path, top to bottom: from `/dev/kvm` to a guest running, and back.
//!
//! # What KVM is
//! KVM turns the Linux kernel into a hypervisor; a VMM (this file) is an ordinary process that
//! drives it through file descriptors and ioctls:
//!
//! * **`/dev/kvm`** (the system fd): ask about the host — API version (always 12), capabilities
//!   (`KVM_CHECK_EXTENSION`), the CPUID features KVM can offer a guest.
//! * **VM fd** (`KVM_CREATE_VM`): one virtual machine. Its "physical memory" is made of
//!   **memory slots** (`KVM_SET_USER_MEMORY_REGION`): each maps a range of guest-physical
//!   addresses onto memory of *this* process (an anonymous mmap). Guest RAM is just our memory,
//!   which is why the VMM can write a kernel or page tables into it with a memcpy. The VM fd also
//!   creates in-kernel device models: the interrupt controllers (`KVM_CREATE_IRQCHIP`) and the
//!   timer (`KVM_CREATE_PIT2`).
//! * **vCPU fd** (`KVM_CREATE_VCPU`): one virtual CPU, with its registers (`KVM_SET_REGS`,
//!   `KVM_SET_SREGS` for segments/control registers, `KVM_SET_MSRS`, `KVM_SET_CPUID2`) and a
//!   shared page, `kvm_run`, through which KVM reports why the guest stopped.
//! * **`KVM_RUN`** runs the guest on the calling thread until an **exit**: the guest touched an
//!   I/O port or an unbacked address (a device), halted, shut down, or KVM failed. The VMM
//!   handles the exit and calls `KVM_RUN` again — see `vcpu.rs` and `devices.rs`.
//!
//! # Booting without firmware
//! A PC starts in 16-bit real mode and firmware (BIOS/UEFI) and a bootloader bring it to 64-bit
//! mode and load the kernel. A microVM skips all of that: the boot path writes the kernel, its
//! boot information and (for 64-bit entry) page tables straight into guest memory, and sets the
//! vCPU's registers as if the guest were already in **long mode** (`long_mode.rs`) or in the
//! 32-bit protected mode, paging off, that a **PVH** entry point wants (the kernel then builds
//! its own page tables and switches to long mode itself; `kernel.rs` explains PVH). That is why
//! a microVM can reach its first guest instruction in well under a millisecond.
//!
//! # The steps
//! [`boot`] reads top to bottom, one named step per line, as the boot happens: open and check
//! KVM → create the VM → guest memory → interrupt controllers and timer (if the guest wants
//! them) → vCPUs → load the guest and its boot parameters, set the boot vCPU → attach the
//! devices → run until the guest stops → tear down. The KVM steps are in `vm_setup.rs`; what
//! differs between guests (Linux, isolab's stub) is behind the `Guest` trait (`guest.rs`).

use crate::config::{ConsoleSpec, Machine, VmConfig};
use crate::devices::{ConsoleOut, ConsoleWatch, DebugExit, Devices, PortDevice};
use crate::error::Result;
use crate::footprint::{self, MemoryFootprint};
use crate::guest::{BootState, Guest};
use crate::kernel::ImageFormat;
use crate::vcpu::{self, RunEnd, Stop};
use crate::vm_setup::{self, Vm};
use kvm_ioctls::{Kvm, VcpuFd};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// How the guest ended, when it ended the way a guest should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum GuestExit {
    /// Powered off (or halted with nothing left to run).
    PowerOff,
    /// Rebooted (i8042 reset / KVM reset event): a microVM treats it as "stop".
    Reset,
    /// The guest wrote an exit port (`isa-debug-exit`, or a device of its own) with this status.
    ExitPort(u8),
    /// The VMM stopped the guest once its console showed what the caller waited for.
    ConsoleMatched,
}

/// When each phase happened, in microseconds.
///
/// `*_us` durations cover one step; `*_at_us` are measured from the start of the boot.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseTimings {
    /// Opening /dev/kvm, checking it, creating the VM.
    pub create_vm_us: u64,
    /// Allocating guest RAM and registering it as memory slots.
    pub memory_us: u64,
    /// Creating the in-kernel interrupt controllers and timer (Linux; 0 for the stub).
    pub irqchip_us: u64,
    /// Creating and configuring the vCPUs (CPUID, MSRs, FPU).
    pub vcpus_us: u64,
    /// Loading the guest image, writing boot parameters, setting the boot vCPU's registers.
    pub load_us: u64,
    /// When vCPU 0 first entered KVM_RUN.
    pub first_run_at_us: u64,
    /// When "Linux version" appeared on the serial console.
    pub banner_at_us: Option<u64>,
    /// When the guest wrote the boot-timer magic (init reached).
    pub init_at_us: Option<u64>,
    /// When the exit that stopped the VM was handled.
    pub exit_at_us: u64,
    /// Releasing vCPUs, the VM and its memory.
    pub teardown_us: u64,
    /// Everything, start to finish.
    pub total_us: u64,
}

/// The result of one VM run.
#[derive(Debug, Clone)]
pub struct VmReport {
    /// How the guest ended.
    pub exit: GuestExit,
    /// Phase timings.
    pub timings: PhaseTimings,
    /// The console, when captured.
    pub console: Option<Vec<u8>>,
    /// The kernel image format (kernels only).
    pub kernel_format: Option<ImageFormat>,
    /// Whether the guest was entered through PVH.
    pub pvh_entry: bool,
    /// Resident memory split (when [`RunOptions::measure_rss`] was set).
    pub footprint: Option<MemoryFootprint>,
}

/// What to measure besides the run itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Measure the VMM's resident memory beyond guest RAM just before teardown (reads
    /// /proc/self/statm and mincore: not counted in the timings).
    pub measure_rss: bool,
}

/// Boots the VM described by `config` and runs it until it stops.
pub fn run(config: &VmConfig) -> Result<VmReport> {
    run_with(config, RunOptions::default())
}

/// [`run`] with extra options.
pub fn run_with(config: &VmConfig, options: RunOptions) -> Result<VmReport> {
    config.validate()?;
    boot_guest(&config.machine(), &config.kernel_guest(), options)
}

/// Runs with a captured console and stops the VM as soon as `stop_when(console so far)` is
/// true (checked at each line). Returns the console even when the run fails, because that is
/// when it is most needed. The report's `exit` is then [`GuestExit::ConsoleMatched`].
pub fn run_until_console(
    config: &VmConfig,
    stop_when: impl FnMut(&str) -> bool + Send + 'static,
) -> (String, Result<VmReport>) {
    let mut machine = config.machine();
    machine.console = ConsoleSpec::Capture;
    let guest = config.kernel_guest();
    let mut console = None;
    let result = config.validate().and_then(|()| {
        boot(
            &machine,
            &guest,
            RunOptions::default(),
            Some(Box::new(stop_when)),
            &mut console,
        )
    });
    let text = console
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    (text, result)
}

/// Boots `guest` on `machine` (the entry for guests that are not a [`VmConfig`] kernel).
pub(crate) fn boot_guest(
    machine: &Machine,
    guest: &dyn Guest,
    options: RunOptions,
) -> Result<VmReport> {
    let mut console = None;
    let mut report = boot(machine, guest, options, None, &mut console)?;
    report.console = console;
    Ok(report)
}

/// The boot path, step by step. The captured console (if any) is stored in `console_out`
/// whatever happens.
fn boot(
    machine: &Machine,
    guest: &dyn Guest,
    options: RunOptions,
    watch: Option<ConsoleWatch>,
    console_out: &mut Option<Vec<u8>>,
) -> Result<VmReport> {
    let mut clock = PhaseClock::start();
    machine.validate()?;
    guest.validate()?;

    let kvm = vm_setup::open_kvm(machine)?;
    let mut vm = vm_setup::create_vm(&kvm)?;
    clock.timings.create_vm_us = clock.lap();

    let memory = vm_setup::create_guest_memory(&vm.fd, machine.memory_bytes)?;
    clock.timings.memory_us = clock.lap();

    vm_setup::create_interrupt_controllers(&kvm, &mut vm, guest.wants_irqchip())?;
    clock.timings.irqchip_us = clock.lap();

    let mut vcpus = vm_setup::create_vcpus(&kvm, &vm, machine.vcpus, guest)?;
    clock.timings.vcpus_us = clock.lap();

    let boot_state = load_guest(guest, &memory, machine.memory_bytes, &vcpus[0])?;
    clock.timings.load_us = clock.lap();

    let devices = attach_devices(machine, guest, &vm, watch)?;
    let end = vcpu::run_all(&mut vcpus, &devices, machine.timeout);
    let footprint = options
        .measure_rss
        .then(|| guest_footprint(&memory))
        .flatten();
    let init_at = devices.boot_timer();
    let (console, banner_at) = devices.finish_console();
    *console_out = console;

    clock.lap();
    tear_down(vcpus, vm, memory, kvm);
    clock.timings.teardown_us = clock.lap();

    let timings = clock.finish(&end, banner_at, init_at);
    Ok(VmReport {
        exit: guest_exit(end.outcome)?,
        timings,
        console: None,
        kernel_format: boot_state.kernel_format,
        pvh_entry: boot_state.pvh_entry(),
        footprint,
    })
}

/// Loads the guest image and its boot parameters, then points the boot vCPU at it.
fn load_guest(
    guest: &dyn Guest,
    memory: &GuestMemoryMmap,
    memory_bytes: u64,
    boot_vcpu: &VcpuFd,
) -> Result<BootState> {
    let state = guest.load(memory, memory_bytes)?;
    state.apply(memory, boot_vcpu)?;
    Ok(state)
}

/// The console, the i8042, the boot timer, `isa-debug-exit` if asked for, and the guest's own
/// device if it has one.
fn attach_devices(
    machine: &Machine,
    guest: &dyn Guest,
    vm: &Vm,
    watch: Option<ConsoleWatch>,
) -> Result<Devices> {
    let console = ConsoleOut::open(&machine.console)?.with_watch(watch);
    let mut extra: Vec<Arc<dyn PortDevice>> = Vec::new();
    extra.extend(guest.device());
    if machine.debug_exit {
        extra.push(Arc::new(DebugExit));
    }
    Ok(Devices::new(
        vm.irqchip.then(|| vm.fd.clone()),
        console,
        extra,
    ))
}

/// The VMM's resident memory beyond the guest pages it touched.
fn guest_footprint(memory: &GuestMemoryMmap) -> Option<MemoryFootprint> {
    let ranges: Vec<(u64, u64)> = memory
        .iter()
        .filter_map(|r| {
            r.get_host_address(vm_memory::MemoryRegionAddress(0))
                .ok()
                .map(|host| (host as u64, r.len()))
        })
        .collect();
    footprint::measure(&ranges)
}

/// Releases the vCPU fds (and their kvm_run mappings), the VM fd, then guest memory — in that
/// order, because KVM may touch guest memory until the VM is gone.
fn tear_down(vcpus: Vec<VcpuFd>, vm: Vm, memory: GuestMemoryMmap, kvm: Kvm) {
    drop(vcpus);
    drop(vm);
    drop(memory);
    drop(kvm);
}

/// How the run ended, for the report; a failed run is the error.
fn guest_exit(outcome: Result<Stop>) -> Result<GuestExit> {
    Ok(match outcome? {
        Stop::PowerOff | Stop::Kicked => GuestExit::PowerOff,
        Stop::ConsoleMatched => GuestExit::ConsoleMatched,
        Stop::Reset => GuestExit::Reset,
        Stop::ExitPort(status) => GuestExit::ExitPort(status),
    })
}

/// Phase timings as the boot goes.
struct PhaseClock {
    start: Instant,
    last: Instant,
    timings: PhaseTimings,
}

impl PhaseClock {
    fn start() -> Self {
        let now = Instant::now();
        PhaseClock {
            start: now,
            last: now,
            timings: PhaseTimings::default(),
        }
    }

    /// Microseconds since the previous lap.
    fn lap(&mut self) -> u64 {
        let now = Instant::now();
        let us = micros(now - self.last);
        self.last = now;
        us
    }

    fn finish(
        mut self,
        end: &RunEnd,
        banner_at: Option<Instant>,
        init_at: Option<Instant>,
    ) -> PhaseTimings {
        let since = |at: Instant| micros(at.saturating_duration_since(self.start));
        self.timings.first_run_at_us = end.first_run.map(since).unwrap_or(0);
        self.timings.banner_at_us = banner_at.map(since);
        self.timings.init_at_us = init_at.map(since);
        self.timings.exit_at_us = since(end.stopped_at);
        self.timings.total_us = micros(self.start.elapsed());
        self.timings
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}
