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
//!   handles the exit and calls `KVM_RUN` again — see `vcpu.rs`.
//!
//! # Booting without firmware
//! A PC starts in 16-bit real mode and firmware (BIOS/UEFI) and a bootloader bring it to 64-bit
//! mode and load the kernel. A microVM skips all of that: this file writes the kernel, its boot
//! information and (for 64-bit entry) page tables straight into guest memory, and sets the
//! vCPU's registers as if the guest were already in long mode (`long_mode.rs`) or in the 32-bit
//! state Linux's PVH entry wants. That is why a microVM can reach its first guest instruction in
//! well under a millisecond.
//!
//! The steps below are numbered as in the issue: check KVM → VM (+irqchip/PIT) → memory →
//! vCPUs → load kernel → boot params → devices → run → tear down.

use crate::config::{GuestSpec, VmConfig};
use crate::cpuid;
use crate::devices::{ConsoleOut, ConsoleWatch, Devices};
use crate::error::{Result, VmError};
use crate::kernel::{self, ImageFormat, LoadedKernel};
use crate::layout;
use crate::long_mode::{self, StartMode};
use crate::msrs;
use crate::stub::{self, Workload};
use crate::vcpu::{self, Shared, Stop};
use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VcpuFd};
use serde::Serialize;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// How the guest ended, when it ended the way a guest should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum GuestExit {
    /// Powered off (or halted with nothing left to run).
    PowerOff,
    /// Rebooted (i8042 reset / KVM reset event): a microVM treats it as "stop".
    Reset,
    /// The stub guest finished with status 0.
    StubFinished,
    /// The stub guest reported that this host cannot run the workload (code).
    StubNotSupported(u8),
    /// The VMM stopped the guest once its console showed what the caller waited for.
    ConsoleMatched,
}

/// When each phase happened, in microseconds.
///
/// `*_us` durations cover one step; `*_at_us` are measured from the start of [`run`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseTimings {
    /// Opening /dev/kvm, checking it, creating the VM (+ irqchip and PIT for Linux).
    pub create_vm_us: u64,
    /// Allocating guest RAM and registering it as memory slots.
    pub memory_us: u64,
    /// Creating and configuring the vCPUs (CPUID, MSRs, FPU, registers).
    pub vcpus_us: u64,
    /// Loading the kernel/initrd and writing boot parameters.
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
    /// Stub marks, in microseconds since start (as f64 for sub-µs precision).
    pub(crate) marks: Vec<Duration>,
    /// Stub results page (first slots).
    pub(crate) stub_results: [u64; 2],
    /// The kernel image format (Linux guests).
    pub kernel_format: Option<ImageFormat>,
    /// Whether the kernel was entered through PVH.
    pub pvh_entry: bool,
    /// Resident memory split (when [`RunOptions::measure_rss`] was set).
    pub footprint: Option<crate::footprint::MemoryFootprint>,
}

/// Knobs only the stub path uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Install a CPUID table on the vCPU even though the stub never executes CPUID
    /// (Linux guests always get one).
    pub stub_cpuid: bool,
    /// Measure the VMM's resident memory beyond guest RAM just before teardown (reads
    /// /proc/self/smaps: about a millisecond, not counted in the timings).
    pub measure_rss: bool,
}

/// Boots the VM described by `config` and runs it until it stops.
pub fn run(config: &VmConfig) -> Result<VmReport> {
    run_with(config, RunOptions::default())
}

/// [`run`] with extra options.
pub fn run_with(config: &VmConfig, options: RunOptions) -> Result<VmReport> {
    let mut console = None;
    let mut report = boot(config, options, None, &mut console)?;
    report.console = console;
    Ok(report)
}

/// Runs with a captured console and stops the VM as soon as `stop_when(console so far)` is
/// true (checked at each line). Returns the console even when the run fails, because that is
/// when it is most needed. The report's `exit` is then [`GuestExit::ConsoleMatched`].
pub fn run_until_console(
    config: &VmConfig,
    stop_when: impl FnMut(&str) -> bool + Send + 'static,
) -> (String, Result<VmReport>) {
    let mut config = config.clone();
    config.console = crate::config::ConsoleSpec::Capture;
    let mut console = None;
    let result = boot(
        &config,
        RunOptions::default(),
        Some(Box::new(stop_when)),
        &mut console,
    );
    let text = console
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    (text, result)
}

/// The boot path. The captured console (if any) is stored in `console_out` whatever happens.
fn boot(
    config: &VmConfig,
    options: RunOptions,
    watch: Option<ConsoleWatch>,
    console_out: &mut Option<Vec<u8>>,
) -> Result<VmReport> {
    let start = Instant::now();
    config.validate()?;
    let is_linux = matches!(config.guest, GuestSpec::Linux { .. });
    let mut timings = PhaseTimings::default();

    // 1. KVM: open the system fd, check the API and the capabilities we rely on.
    let kvm = open_kvm()?;
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
    if usize::from(config.vcpus) > max_vcpus {
        return Err(VmError::Config(format!(
            "{} vCPUs requested; this KVM allows at most {max_vcpus}",
            config.vcpus
        )));
    }
    check_host_memory(config.memory_bytes)?;

    // 2. The VM. Linux needs the in-kernel interrupt controllers and timer; the stub uses
    //    neither, so it skips them (they cost time to create and to tear down).
    let vm = Arc::new(kvm.create_vm().map_err(VmError::kvm("KVM_CREATE_VM"))?);
    let irqchip = is_linux && kvm.check_extension(Cap::Irqchip);
    if irqchip {
        // Three pages just below 4 GiB that Intel's VMX needs for real-mode emulation.
        vm.set_tss_address(0xfffb_d000)
            .map_err(VmError::kvm("KVM_SET_TSS_ADDR"))?;
        vm.create_irq_chip()
            .map_err(VmError::kvm("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit)
            .map_err(VmError::kvm("KVM_CREATE_PIT2"))?;
    }
    timings.create_vm_us = micros(start.elapsed());

    // 3. Guest RAM: anonymous mmaps (MAP_NORESERVE: pages are allocated when first touched),
    //    one memory slot per range.
    let phase = Instant::now();
    let memory =
        GuestMemoryMmap::from_ranges(&kernel::ram_ranges(config.memory_bytes)).map_err(|e| {
            VmError::Memory {
                requested_bytes: config.memory_bytes,
                reason: e.to_string(),
            }
        })?;
    for (slot, region) in memory.iter().enumerate() {
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| VmError::Memory {
                requested_bytes: config.memory_bytes,
                reason: e.to_string(),
            })?;
        let slot_region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mapping of `memory_size` bytes that outlives the VM fd:
        // `memory` is dropped after `vm` (the vCPUs and VM are released first, below).
        unsafe { vm.set_user_memory_region(slot_region) }.map_err(|source| {
            match source.errno() {
                libc::ENOMEM | libc::EINVAL => VmError::Memory {
                    requested_bytes: config.memory_bytes,
                    reason: format!("KVM refused the memory slot: {source}"),
                },
                _ => VmError::Kvm {
                    op: "KVM_SET_USER_MEMORY_REGION",
                    source,
                },
            }
        })?;
    }
    timings.memory_us = micros(phase.elapsed());

    // 4. vCPUs: one fd each. Linux gets the host-derived CPUID table, boot MSRs and an FPU in
    //    its reset state; each vCPU's LAPIC is wired for the legacy PIC (LINT0 = ExtINT).
    let phase = Instant::now();
    let mut vcpus: Vec<VcpuFd> = Vec::with_capacity(usize::from(config.vcpus));
    let supported_cpuid = if is_linux || options.stub_cpuid {
        Some(cpuid::supported(&kvm)?)
    } else {
        None
    };
    // Where guest kernel mode is emulated, hide CPU features the emulator cannot run.
    let emulated_cpl0 = crate::platform::KvmModule::detect() == crate::platform::KvmModule::KvmPvm;
    for index in 0..config.vcpus {
        let vcpu = vm
            .create_vcpu(u64::from(index))
            .map_err(VmError::kvm("KVM_CREATE_VCPU"))?;
        if let Some(base) = supported_cpuid {
            vcpu.set_cpuid2(&cpuid::for_vcpu(base, index, config.vcpus, emulated_cpl0))
                .map_err(VmError::kvm("KVM_SET_CPUID2"))?;
        }
        if is_linux {
            msrs::set(&vcpu, &msrs::linux_boot())?;
            let fpu = kvm_bindings::kvm_fpu {
                fcw: 0x37f,
                mxcsr: 0x1f80,
                ..Default::default()
            };
            vcpu.set_fpu(&fpu).map_err(VmError::kvm("KVM_SET_FPU"))?;
            if irqchip {
                set_lapic_lint(&vcpu)?;
            }
        }
        vcpus.push(vcpu);
    }
    timings.vcpus_us = micros(phase.elapsed());

    // 5. + 6. Load the guest image and write what it reads at boot, then point vCPU 0 at it.
    let phase = Instant::now();
    let mut kernel_format = None;
    let mut pvh_entry = false;
    let boot = match &config.guest {
        GuestSpec::Linux {
            kernel: path,
            initrd,
            cmdline,
        } => {
            let loaded = kernel::load_linux(&memory, path)?;
            kernel_format = Some(loaded.format);
            pvh_entry = loaded.mode == StartMode::Pvh32;
            let initrd = match initrd {
                Some(p) => Some(kernel::load_initrd(
                    &memory,
                    p,
                    config.memory_bytes,
                    &loaded,
                )?),
                None => None,
            };
            kernel::write_cmdline(&memory, cmdline)?;
            if pvh_entry {
                kernel::write_pvh_start_info(&memory, initrd, config.memory_bytes)?;
            } else {
                kernel::write_zero_page(
                    &memory,
                    &loaded,
                    cmdline.len() + 1,
                    initrd,
                    config.memory_bytes,
                )?;
            }
            BootRegs::linux(&loaded)
        }
        GuestSpec::Stub {
            workload,
            iterations,
        } => {
            let loaded =
                kernel::load_image(&memory, &mut Cursor::new(stub::STUB_ELF), ImageFormat::Elf)
                    .map_err(|detail| VmError::BadKernel {
                        path: "<embedded stub guest>".into(),
                        detail,
                    })?;
            msrs::set(&vcpus[0], &msrs::stub(stub::SYSCALL_ENTRY))?;
            BootRegs::stub(&loaded, *workload, *iterations, config.memory_bytes)
        }
    };
    long_mode::write_tables(&memory, boot.mode)?;
    boot.apply(&vcpus[0])?;
    timings.load_us = micros(phase.elapsed());

    // 7. Devices: the console, the i8042, the boot timer and the stub ports.
    let console = ConsoleOut::open(&config.console)?.with_watch(watch);
    let devices = Devices::new(irqchip.then(|| vm.clone()), console);

    // 8. Run: vCPU 0 on this thread (it owns the watchdog), the others on their own threads.
    //    The scope joins every vCPU thread before returning, whatever happened.
    let shared = Shared::new(vcpus.len());
    let deadline = Some((Instant::now() + config.timeout, config.timeout));
    let outcome: Result<Stop> = {
        let (boot_vcpu, others) = vcpus.split_at_mut(1);
        std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(others.len());
            for (i, vcpu) in others.iter_mut().enumerate() {
                let (devices, shared) = (&devices, &shared);
                let spawned = std::thread::Builder::new()
                    .name(format!("vcpu{}", i + 1))
                    .spawn_scoped(scope, move || vcpu::run(vcpu, i + 1, devices, shared, None));
                match spawned {
                    Ok(handle) => handles.push(handle),
                    Err(e) => {
                        shared.stop_all();
                        return Err(VmError::Thread(e));
                    }
                }
            }
            let first = vcpu::run(&mut boot_vcpu[0], 0, &devices, &shared, deadline);
            // The first error or real stop wins; vCPUs that were merely kicked do not count.
            let mut outcome = first;
            for handle in handles {
                let other = handle.join().unwrap_or(Ok(Stop::Kicked));
                if matches!(outcome, Ok(Stop::Kicked)) && !matches!(other, Ok(Stop::Kicked)) {
                    outcome = other;
                }
            }
            outcome
        })
    };
    let stopped_at = shared
        .stopped_at
        .lock()
        .ok()
        .and_then(|at| *at)
        .unwrap_or_else(Instant::now);
    let first_run = shared.first_run.lock().ok().and_then(|at| *at);

    // Read what the stub measured before the memory goes away.
    let mut stub_results = [0u64; 2];
    for (i, slot) in stub_results.iter_mut().enumerate() {
        *slot = memory
            .read_obj(GuestAddress(layout::STUB_RESULTS + 8 * i as u64))
            .unwrap_or(0);
    }
    let marks = devices.marks();
    let footprint = if options.measure_rss {
        let ranges: Vec<(u64, u64)> = memory
            .iter()
            .filter_map(|r| {
                r.get_host_address(vm_memory::MemoryRegionAddress(0))
                    .ok()
                    .map(|host| (host as u64, r.len()))
            })
            .collect();
        crate::footprint::measure(&ranges)
    } else {
        None
    };
    let init_at = devices.boot_timer();
    let (console, banner_at) = devices.finish_console();
    *console_out = console;

    // 9. Tear down: vCPU fds (and their kvm_run mappings), the VM fd, then guest memory.
    let teardown = Instant::now();
    drop(vcpus);
    drop(vm);
    drop(memory);
    drop(kvm);
    timings.teardown_us = micros(teardown.elapsed());

    let since = |at: Instant| micros(at.saturating_duration_since(start));
    timings.first_run_at_us = first_run.map(since).unwrap_or(0);
    timings.banner_at_us = banner_at.map(since);
    timings.init_at_us = init_at.map(since);
    timings.exit_at_us = since(stopped_at);
    timings.total_us = micros(start.elapsed());

    let exit = match outcome? {
        Stop::PowerOff | Stop::Kicked => GuestExit::PowerOff,
        Stop::ConsoleMatched => GuestExit::ConsoleMatched,
        Stop::Reset => GuestExit::Reset,
        Stop::StubExit(0) => GuestExit::StubFinished,
        Stop::StubExit(status) => return Err(VmError::StubStatus(status)),
        Stop::StubOutcome(code) => GuestExit::StubNotSupported(code),
    };
    Ok(VmReport {
        exit,
        timings,
        console: None,
        marks: marks
            .into_iter()
            .map(|m| m.saturating_duration_since(start))
            .collect(),
        stub_results,
        kernel_format,
        pvh_entry,
        footprint,
    })
}

/// Opens /dev/kvm, turning the two common failures into actionable errors.
fn open_kvm() -> Result<Kvm> {
    Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => VmError::NoKvm,
        libc::EACCES | libc::EPERM => VmError::KvmPermission,
        _ => VmError::Kvm {
            op: "open /dev/kvm",
            source: e,
        },
    })
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

/// The boot vCPU's registers at the first instruction.
struct BootRegs {
    mode: StartMode,
    regs: kvm_bindings::kvm_regs,
}

impl BootRegs {
    fn linux(kernel: &LoadedKernel) -> Self {
        let mut regs = kvm_bindings::kvm_regs {
            rip: kernel.entry,
            rflags: long_mode::initial_rflags(kernel.mode),
            ..Default::default()
        };
        if kernel.mode == StartMode::Pvh32 {
            regs.rbx = layout::PVH_INFO_START;
        } else {
            regs.rsi = layout::ZERO_PAGE_START;
            regs.rsp = layout::ZERO_PAGE_START;
            regs.rbp = layout::ZERO_PAGE_START;
        }
        BootRegs {
            mode: kernel.mode,
            regs,
        }
    }

    fn stub(
        kernel: &LoadedKernel,
        workload: Workload,
        iterations: Option<u64>,
        memory_bytes: u64,
    ) -> Self {
        let mode = if workload.starts_in_kernel_mode() {
            StartMode::Long64Kernel
        } else {
            StartMode::Long64User
        };
        let buffer_bytes = workload.buffer_bytes(memory_bytes);
        BootRegs {
            mode,
            regs: kvm_bindings::kvm_regs {
                rip: kernel.entry,
                rsp: layout::STUB_STACK_TOP,
                rflags: long_mode::initial_rflags(mode),
                rdi: workload.id(),
                rsi: iterations.unwrap_or_else(|| workload.default_iterations()),
                rdx: layout::STUB_BUFFER_START,
                rcx: buffer_bytes,
                ..Default::default()
            },
        }
    }

    fn apply(&self, vcpu: &VcpuFd) -> Result<()> {
        let mut sregs = vcpu.get_sregs().map_err(VmError::kvm("KVM_GET_SREGS"))?;
        long_mode::configure_sregs(&mut sregs, self.mode);
        vcpu.set_sregs(&sregs)
            .map_err(VmError::kvm("KVM_SET_SREGS"))?;
        vcpu.set_regs(&self.regs)
            .map_err(VmError::kvm("KVM_SET_REGS"))
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}
