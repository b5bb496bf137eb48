//! isolab's own guest: workloads that measure what virtualization costs, on any host.
//!
//! The stub (guests/stub/stub.S) is built with the VMM and embedded in it. The VMM starts it
//! directly in 64-bit user mode (CPL3) — except the CPL0 probe — with the workload id in RDI.
//! Each workload brackets its measured loop with two writes to the MARK port of the stub's own
//! device (`ports.rs`); the device timestamps both exits, so every figure is host wall-clock
//! time divided by the iteration count (the two mark exits add one exit round trip per
//! interval, negligible at the default counts). The CPL0 probe instead reads the TSC in the
//! guest, because it compares two loops with each other, not with the host clock.
//!
//! Some hosts cannot run some workloads: on kvm_pvm a guest `syscall` lands on the handler
//! still in user mode. The stub notices (it reads its own CPL) and says so through the OUTCOME
//! port; that becomes [`WorkloadOutcome::NotSupportedHere`] with the reason, never a fake
//! figure.
//!
//! `pvh.rs` holds a second, smaller image of the stub with a PVH entry, which QEMU boots too.

mod host;
mod ports;
pub mod pvh;
mod workload;

pub use host::{host_cpu_loop, host_memory};
pub use pvh::pvh_elf;
pub use workload::{Figure, Workload, WorkloadOutcome};

use crate::config::{ConsoleSpec, Machine};
use crate::devices::PortDevice;
use crate::error::{Result, VmError};
use crate::guest::{BootState, Guest};
use crate::kernel::{self, ImageFormat};
use crate::layout;
use crate::long_mode::{self, StartMode};
use crate::msrs;
use crate::vmm::{self, GuestExit, PhaseTimings, RunOptions};
use ports::{StubEnd, StubPorts};
use serde::Serialize;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryMmap;

/// The stub guest ELF, built from guests/stub/stub.S by crates/microvm/build.rs.
static STUB_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/isolab-stub.elf"));
include!(concat!(env!("OUT_DIR"), "/stub_symbols.rs"));

/// Outcome code the stub reports when its syscall handler runs in CPL3.
const OUTCOME_SYSCALL_IN_CPL3: u8 = 1;

/// How to run a stub workload.
#[derive(Debug, Clone, Copy)]
pub struct StubOptions {
    /// Iterations; `None` = the workload's default.
    pub iterations: Option<u64>,
    /// Guest RAM.
    pub memory_bytes: u64,
    /// Watchdog limit.
    pub timeout: Duration,
    /// Install a CPUID table (the stub does not need one; Firecracker-like VMMs always do).
    pub cpuid: bool,
    /// Measure the VMM's resident memory beyond guest RAM (see [`crate::footprint`]).
    pub measure_rss: bool,
}

impl Default for StubOptions {
    fn default() -> Self {
        StubOptions {
            iterations: None,
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(10),
            cpuid: false,
            measure_rss: false,
        }
    }
}

/// One stub run: the phases and the workload's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StubReport {
    /// The workload.
    pub workload: Workload,
    /// Its outcome.
    pub outcome: WorkloadOutcome,
    /// VM phase timings.
    pub timings: PhaseTimings,
    /// Resident memory split, when asked for.
    pub footprint: Option<crate::footprint::MemoryFootprint>,
}

/// The stub as a [`Guest`]: no interrupt controller, no CPUID table unless asked, and its
/// ports as a device of its own.
#[derive(Debug)]
pub(crate) struct StubGuest {
    workload: Workload,
    iterations: u64,
    cpuid: bool,
    ports: Arc<StubPorts>,
}

impl Guest for StubGuest {
    fn wants_irqchip(&self) -> bool {
        false
    }

    fn wants_cpuid(&self) -> bool {
        self.cpuid
    }

    fn load(&self, memory: &GuestMemoryMmap, memory_bytes: u64) -> Result<BootState> {
        let loaded = kernel::load_image(memory, &mut Cursor::new(STUB_ELF), ImageFormat::Elf)
            .map_err(|detail| VmError::BadKernel {
                path: "<embedded stub guest>".into(),
                detail,
            })?;
        let mode = if self.workload.starts_in_kernel_mode() {
            StartMode::Long64Kernel
        } else {
            StartMode::Long64User
        };
        // Only the workloads that use syscall/sysret need the SYSCALL MSRs.
        let msrs = if matches!(self.workload, Workload::Syscall | Workload::Cpl0Probe) {
            msrs::stub(SYSCALL_ENTRY)
        } else {
            Vec::new()
        };
        let regs = kvm_bindings::kvm_regs {
            rip: loaded.entry,
            rsp: layout::STUB_STACK_TOP,
            rflags: long_mode::initial_rflags(mode),
            rdi: self.workload.id(),
            rsi: self.iterations,
            rdx: layout::STUB_BUFFER_START,
            rcx: self.workload.buffer_bytes(memory_bytes),
            ..Default::default()
        };
        Ok(BootState {
            mode,
            regs,
            msrs,
            kernel_format: None,
        })
    }

    fn device(&self) -> Option<Arc<dyn PortDevice>> {
        Some(self.ports.clone())
    }
}

/// Boots the stub guest with `workload` and returns its figure.
pub fn boot_stub(workload: Workload, options: StubOptions) -> Result<StubReport> {
    let iterations = options
        .iterations
        .unwrap_or_else(|| workload.default_iterations());
    if iterations == 0 {
        return Err(VmError::Config("iterations must be at least 1".into()));
    }
    let machine = Machine {
        vcpus: 1,
        memory_bytes: options.memory_bytes,
        timeout: options.timeout,
        console: ConsoleSpec::Discard,
        debug_exit: false,
    };
    let guest = StubGuest {
        workload,
        iterations,
        cpuid: options.cpuid,
        ports: Arc::new(StubPorts::default()),
    };
    let run_options = RunOptions {
        measure_rss: options.measure_rss,
    };
    let report = match vmm::boot_guest(&machine, &guest, run_options) {
        Ok(report) => report,
        // The probe runs guest kernel code; where KVM cannot emulate it, that is the finding.
        Err(err @ VmError::InternalError { .. }) if workload == Workload::Cpl0Probe => {
            return Ok(StubReport {
                workload,
                outcome: WorkloadOutcome::NotSupportedHere {
                    reason: err.to_string(),
                },
                timings: PhaseTimings::default(),
                footprint: None,
            })
        }
        Err(err) => return Err(err),
    };
    let outcome = outcome(workload, iterations, &guest.ports, report.exit, options)?;
    Ok(StubReport {
        workload,
        outcome,
        timings: report.timings,
        footprint: report.footprint,
    })
}

/// What the stub's device recorded, as the workload's outcome.
fn outcome(
    workload: Workload,
    iterations: u64,
    ports: &StubPorts,
    exit: GuestExit,
    options: StubOptions,
) -> Result<WorkloadOutcome> {
    Ok(match ports.end() {
        Some(StubEnd::Exited(0)) => WorkloadOutcome::Measured {
            figure: figure(
                workload,
                iterations,
                &ports.marks(),
                &ports.results(),
                options.memory_bytes,
            )?,
        },
        Some(StubEnd::Exited(status)) => return Err(VmError::StubStatus(status)),
        Some(StubEnd::NotSupported(OUTCOME_SYSCALL_IN_CPL3)) => WorkloadOutcome::NotSupportedHere {
            reason: "a guest `syscall` from CPL3 reached its handler still in CPL3: this KVM \
                     does not switch an unmodified guest to kernel mode (kvm_pvm runs only \
                     PVM-aware guest kernels natively)"
                .into(),
        },
        Some(StubEnd::NotSupported(code)) => WorkloadOutcome::NotSupportedHere {
            reason: format!("the stub guest reported outcome code {code}"),
        },
        None => return Err(VmError::StubNoExit { exit }),
    })
}

/// Turns the marks (host-clock instants) and self-measured results into the workload's figure.
fn figure(
    workload: Workload,
    iterations: u64,
    marks: &[Instant],
    results: &[u64],
    memory_bytes: u64,
) -> Result<Figure> {
    let interval = |a: usize, b: usize| -> Result<f64> {
        match (marks.get(a), marks.get(b)) {
            (Some(x), Some(y)) => Ok(y.saturating_duration_since(*x).as_secs_f64() * 1e9),
            _ => Err(VmError::StubReport {
                workload: workload.name(),
                what: "marks",
                got: marks.len(),
                expected: b + 1,
            }),
        }
    };
    let result = |i: usize| -> Result<u64> {
        results.get(i).copied().ok_or(VmError::StubReport {
            workload: workload.name(),
            what: "results",
            got: results.len(),
            expected: i + 1,
        })
    };
    let per = |ns: f64| ns / iterations as f64;
    Ok(match workload {
        Workload::Syscall => Figure::Syscall {
            ns_per_call: per(interval(0, 1)?),
            iterations,
        },
        Workload::Pio => Figure::Exit {
            kind: "pio",
            ns_per_exit: per(interval(0, 1)?),
            iterations,
        },
        Workload::Mmio => Figure::Exit {
            kind: "mmio",
            ns_per_exit: per(interval(0, 1)?),
            iterations,
        },
        Workload::Cpu => Figure::Cpu {
            ns_per_iteration: per(interval(0, 1)?),
            iterations,
        },
        Workload::Memory | Workload::Triad => {
            let buffer_bytes = workload.buffer_bytes(memory_bytes);
            let first_ns = interval(0, 1)?;
            let warm_ns = interval(1, 2)?;
            Figure::Memory {
                first_touch_bytes_per_s: buffer_bytes as f64 / (first_ns / 1e9),
                warm_bytes_per_s: (buffer_bytes * iterations) as f64 / (warm_ns / 1e9),
                buffer_bytes,
                passes: iterations,
            }
        }
        Workload::Cpl0Probe => {
            let (cpl0_cycles, cpl3_cycles) = (result(0)?, result(1)?);
            Figure::Cpl0Probe {
                cpl0_cycles,
                cpl3_cycles,
                slowdown: cpl0_cycles as f64 / cpl3_cycles.max(1) as f64,
            }
        }
        Workload::True | Workload::Hang | Workload::TripleFault => Figure::Exited,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks_at(micros: &[u64]) -> Vec<Instant> {
        let zero = Instant::now();
        micros
            .iter()
            .map(|&us| zero + Duration::from_micros(us))
            .collect()
    }

    #[test]
    fn figures_divide_the_marked_interval_by_the_iterations() {
        let marks = marks_at(&[10, 1_010]);
        let Figure::Exit { ns_per_exit, .. } =
            figure(Workload::Pio, 1_000, &marks, &[], 64 << 20).unwrap()
        else {
            panic!("not an exit figure")
        };
        assert!((ns_per_exit - 1_000.0).abs() < 1e-6, "{ns_per_exit}");
    }

    #[test]
    fn memory_figures_count_the_buffer_per_pass() {
        // 32 MiB first touch in 1 ms, then 4 warm passes in 2 ms.
        let marks = marks_at(&[0, 1_000, 3_000]);
        let Figure::Memory {
            first_touch_bytes_per_s,
            warm_bytes_per_s,
            buffer_bytes,
            passes,
        } = figure(Workload::Memory, 4, &marks, &[], 64 << 20).unwrap()
        else {
            panic!("not a memory figure")
        };
        assert_eq!((buffer_bytes, passes), (32 << 20, 4));
        assert!((first_touch_bytes_per_s - (32 << 20) as f64 * 1e3).abs() < 1.0);
        assert!((warm_bytes_per_s - (32 << 20) as f64 * 2e3).abs() < 1.0);
    }

    #[test]
    fn missing_marks_and_results_are_errors_not_figures() {
        let err = figure(Workload::Cpu, 10, &marks_at(&[5]), &[], 64 << 20).unwrap_err();
        assert!(
            err.to_string().contains("1 marks, expected at least 2"),
            "{err}"
        );
        let err = figure(Workload::Cpl0Probe, 10, &[], &[7], 64 << 20).unwrap_err();
        assert!(err.to_string().contains("results"), "{err}");
        let probe = figure(Workload::Cpl0Probe, 10, &[], &[300, 100], 64 << 20).unwrap();
        assert_eq!(
            probe,
            Figure::Cpl0Probe {
                cpl0_cycles: 300,
                cpl3_cycles: 100,
                slowdown: 3.0
            }
        );
    }

    #[test]
    fn only_syscall_workloads_get_syscall_msrs() {
        let memory =
            GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), 16 << 20)]).unwrap();
        for (workload, wants) in [
            (Workload::True, false),
            (Workload::Syscall, true),
            (Workload::Cpl0Probe, true),
        ] {
            let guest = StubGuest {
                workload,
                iterations: 1,
                cpuid: false,
                ports: Arc::default(),
            };
            let boot = guest.load(&memory, 16 << 20).unwrap();
            assert_eq!(!boot.msrs.is_empty(), wants, "{workload}");
            assert_eq!(boot.regs.rdi, workload.id());
        }
    }
}
