//! isolab's own guest: workloads that measure what virtualization costs, on any host.
//!
//! The stub (guests/stub/stub.S) is built with the VMM and embedded in it. The VMM starts it
//! directly in 64-bit user mode (CPL3) — except the CPL0 probe — with the workload id in RDI.
//! Each workload brackets its measured loop with two writes to the MARK port; the VMM
//! timestamps both exits, so every figure below is host wall-clock time divided by the
//! iteration count (the two mark exits add one exit round trip per interval, negligible at the
//! default counts). The CPL0 probe instead reads the TSC in the guest, because it compares two
//! loops with each other, not with the host clock.
//!
//! Some hosts cannot run some workloads: on kvm_pvm a guest `syscall` lands on the handler
//! still in user mode. The stub notices (it reads its own CPL) and says so through the OUTCOME
//! port; that becomes [`WorkloadOutcome::NotSupportedHere`] with the reason, never a fake
//! figure.

use crate::config::{ConsoleSpec, GuestSpec, VmConfig};
use crate::error::{Result, VmError};
use crate::layout;
use crate::vmm::{self, GuestExit, PhaseTimings, RunOptions};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The stub guest ELF, built from guests/stub by build.rs.
pub(crate) static STUB_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/isolab-stub.elf"));
include!(concat!(env!("OUT_DIR"), "/stub_symbols.rs"));

/// Outcome code the stub reports when its syscall handler runs in CPL3.
const OUTCOME_SYSCALL_IN_CPL3: u8 = 1;

/// A stub workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Exit at once: create → first guest instruction → exit.
    True,
    /// `syscall` → minimal CPL0 handler → `sysretq`, in a loop.
    Syscall,
    /// Port-I/O exits in a loop (each one a round trip through the VMM).
    Pio,
    /// MMIO exits in a loop.
    Mmio,
    /// A register-only CPU loop (no exits).
    Cpu,
    /// A first-touch pass and warm read-modify-write passes over a buffer.
    Memory,
    /// The same loop timed in guest CPL0 and CPL3: is guest kernel mode native here?
    Cpl0Probe,
    /// Never exits (for the watchdog test).
    Hang,
    /// Executes `ud2` with no IDT: a triple fault (for the error-path test).
    TripleFault,
    /// STREAM's triad `a[i] = b[i] + s*c[i]` over three f64 arrays (reported as a
    /// [`Figure::Memory`] whose buffer is the three arrays: 24 bytes per element per pass).
    Triad,
}

impl Workload {
    /// Every workload, in id order.
    pub const ALL: [Workload; 10] = [
        Workload::True,
        Workload::Syscall,
        Workload::Pio,
        Workload::Mmio,
        Workload::Cpu,
        Workload::Memory,
        Workload::Cpl0Probe,
        Workload::Hang,
        Workload::TripleFault,
        Workload::Triad,
    ];

    /// The id the stub dispatches on (RDI).
    pub fn id(self) -> u64 {
        Workload::ALL.iter().position(|w| *w == self).unwrap_or(0) as u64
    }

    /// The name used on the command line (`stub:NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Workload::True => "true",
            Workload::Syscall => "syscall",
            Workload::Pio => "pio",
            Workload::Mmio => "mmio",
            Workload::Cpu => "cpu",
            Workload::Memory => "memory",
            Workload::Cpl0Probe => "cpl0-probe",
            Workload::Hang => "hang",
            Workload::TripleFault => "triple-fault",
            Workload::Triad => "triad",
        }
    }

    /// Iterations (or warm passes) when none are given.
    pub fn default_iterations(self) -> u64 {
        match self {
            Workload::Syscall => 1_000_000,
            Workload::Pio | Workload::Mmio => 10_000,
            Workload::Cpu => 20_000_000,
            Workload::Memory => 4,
            Workload::Triad => 10,
            Workload::Cpl0Probe => 2_000,
            _ => 1,
        }
    }

    pub(crate) fn starts_in_kernel_mode(self) -> bool {
        self == Workload::Cpl0Probe
    }

    /// The memory workload's buffer: up to 32 MiB of what the guest has above the stub. The
    /// triad's: three equal page-aligned arrays, up to 128 MiB each (STREAM wants each array
    /// at least 4x the last-level cache), so the guest can split it in thirds exactly.
    pub(crate) fn buffer_bytes(self, memory_bytes: u64) -> u64 {
        let room = memory_bytes
            .min(layout::MMIO_GAP_START)
            .saturating_sub(layout::STUB_BUFFER_START);
        match self {
            Workload::Memory => room.min(32 << 20) & !0xfff,
            Workload::Triad => ((room / 3).min(128 << 20) & !0xfff) * 3,
            _ => 0,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = VmError;
    fn from_str(s: &str) -> Result<Self> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                VmError::Config(format!(
                    "unknown stub workload {s:?}; choose one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// What a workload measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "figure")]
pub enum Figure {
    /// `true` has no figure beyond the phase timings.
    Exited,
    /// Nanoseconds per guest system call (CPL3 → CPL0 → CPL3).
    Syscall {
        /// ns per call.
        ns_per_call: f64,
        /// Calls made.
        iterations: u64,
    },
    /// Nanoseconds per VM exit round trip (guest → KVM → VMM → guest).
    Exit {
        /// "pio" or "mmio".
        kind: &'static str,
        /// ns per exit.
        ns_per_exit: f64,
        /// Exits made.
        iterations: u64,
    },
    /// The CPU loop.
    Cpu {
        /// ns per loop iteration.
        ns_per_iteration: f64,
        /// Iterations.
        iterations: u64,
    },
    /// Memory bandwidth, counting each byte once per pass (for the triad: each of the three
    /// arrays once, STREAM's 24 bytes per element).
    Memory {
        /// First pass: writes pages nobody touched yet (includes faulting them in).
        first_touch_bytes_per_s: f64,
        /// Later passes over the same, now-mapped buffer (read-modify-write, or the triad).
        warm_bytes_per_s: f64,
        /// Buffer size.
        buffer_bytes: u64,
        /// Warm passes.
        passes: u64,
    },
    /// The same loop's TSC cycles in guest kernel and user mode.
    Cpl0Probe {
        /// Cycles in CPL0.
        cpl0_cycles: u64,
        /// Cycles in CPL3.
        cpl3_cycles: u64,
        /// cpl0 / cpl3: ~1 when guest kernel mode runs natively.
        slowdown: f64,
    },
}

/// What a workload produced on this host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum WorkloadOutcome {
    /// It ran; here is its figure.
    Measured {
        /// The figure.
        figure: Figure,
    },
    /// This host cannot run it; the reason says why.
    NotSupportedHere {
        /// Why.
        reason: String,
    },
}

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

/// Boots the stub guest with `workload` and returns its figure.
pub fn boot_stub(workload: Workload, options: StubOptions) -> Result<StubReport> {
    let iterations = options
        .iterations
        .unwrap_or_else(|| workload.default_iterations());
    if iterations == 0 {
        return Err(VmError::Config("iterations must be at least 1".into()));
    }
    let config = VmConfig {
        guest: GuestSpec::Stub {
            workload,
            iterations: Some(iterations),
        },
        vcpus: 1,
        memory_bytes: options.memory_bytes,
        timeout: options.timeout,
        console: ConsoleSpec::Discard,
    };
    let report = match vmm::run_with(
        &config,
        RunOptions {
            stub_cpuid: options.cpuid,
            measure_rss: options.measure_rss,
        },
    ) {
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
    let outcome = match report.exit {
        GuestExit::StubFinished => WorkloadOutcome::Measured {
            figure: figure(
                workload,
                iterations,
                &report.marks,
                report.stub_results,
                options.memory_bytes,
            )?,
        },
        GuestExit::StubNotSupported(OUTCOME_SYSCALL_IN_CPL3) => WorkloadOutcome::NotSupportedHere {
            reason: "a guest `syscall` from CPL3 reached its handler still in CPL3: this KVM \
                     does not switch an unmodified guest to kernel mode (kvm_pvm runs only \
                     PVM-aware guest kernels natively)"
                .into(),
        },
        GuestExit::StubNotSupported(code) => WorkloadOutcome::NotSupportedHere {
            reason: format!("the stub guest reported outcome code {code}"),
        },
        other => {
            return Err(VmError::UnhandledExit(format!(
                "stub guest stopped with {other:?} instead of its exit port"
            )))
        }
    };
    Ok(StubReport {
        workload,
        outcome,
        timings: report.timings,
        footprint: report.footprint,
    })
}

fn figure(
    workload: Workload,
    iterations: u64,
    marks: &[Duration],
    results: [u64; 2],
    memory_bytes: u64,
) -> Result<Figure> {
    let interval = |a: usize, b: usize| -> Result<f64> {
        match (marks.get(a), marks.get(b)) {
            (Some(x), Some(y)) => Ok(y.saturating_sub(*x).as_secs_f64() * 1e9),
            _ => Err(VmError::UnhandledExit(format!(
                "stub workload {workload} reported {} marks, expected at least {}",
                marks.len(),
                b + 1
            ))),
        }
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
        Workload::Cpl0Probe => Figure::Cpl0Probe {
            cpl0_cycles: results[0],
            cpl3_cycles: results[1],
            slowdown: results[0] as f64 / results[1].max(1) as f64,
        },
        Workload::True | Workload::Hang | Workload::TripleFault => Figure::Exited,
    })
}

/// The stub's CPU loop run on the host, instruction for instruction; for guest/host ratios.
pub fn host_cpu_loop(iterations: u64) -> Duration {
    let start = Instant::now();
    let iterations = iterations.max(1);
    // SAFETY: register-only arithmetic on the named, clobbered registers; no memory access.
    unsafe {
        std::arch::asm!(
            "xor eax, eax",
            "mov edx, 1",
            "2:",
            "add rax, rdx",
            "imul rax, rax, 3",
            "xor rax, rcx",
            "dec rcx",
            "jnz 2b",
            inout("rcx") iterations => _,
            out("rax") _,
            out("rdx") _,
            options(nostack, nomem),
        );
    }
    start.elapsed()
}

/// The stub's memory workload run on the host: (first-touch, warm) bytes per second.
pub fn host_memory(buffer_bytes: u64, passes: u64) -> (f64, f64) {
    let qwords = (buffer_bytes / 8).max(1) as usize;
    let passes = passes.max(1);
    // Fresh pages from the kernel, as the guest's are: first touch faults them in.
    let mut buffer: Vec<u64> = Vec::with_capacity(qwords);
    let ptr = buffer.as_mut_ptr();
    let start = Instant::now();
    // SAFETY: writes exactly `qwords` u64s into the allocation made for them.
    unsafe {
        std::arch::asm!(
            "cld",
            "rep stosq",
            inout("rdi") ptr => _,
            inout("rcx") qwords => _,
            in("rax") 0u64,
            options(nostack),
        );
    }
    // SAFETY: the `qwords` elements were all initialized just above.
    unsafe { buffer.set_len(qwords) };
    let first = start.elapsed();
    let start = Instant::now();
    for _ in 0..passes {
        // SAFETY: increments each of the `qwords` initialized u64s in place.
        unsafe {
            std::arch::asm!(
                "2:",
                "inc qword ptr [rdi]",
                "add rdi, 8",
                "dec rcx",
                "jnz 2b",
                inout("rdi") ptr => _,
                inout("rcx") qwords => _,
                options(nostack),
            );
        }
    }
    let warm = start.elapsed();
    std::hint::black_box(&buffer);
    let bytes = (qwords * 8) as f64;
    (
        bytes / first.as_secs_f64(),
        bytes * passes as f64 / warm.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>().unwrap(), w);
        }
        assert!("nope"
            .parse::<Workload>()
            .unwrap_err()
            .to_string()
            .contains("choose one of"));
    }

    #[test]
    fn host_reference_loops_run() {
        assert!(host_cpu_loop(1000) > Duration::ZERO);
        let (first, warm) = host_memory(1 << 20, 2);
        assert!(first > 0.0 && warm > 0.0);
    }
}
