//! The stub guest's workloads, and what each one measures.
//!
//! A workload is a few instructions in guests/stub/stub.S, chosen by the id the VMM puts in RDI.
//! Each measures one cost of virtualization (an exit, a guest system call, a CPU loop, memory
//! bandwidth) and reports it as a [`Figure`], or says through its outcome port that this host
//! cannot run it ([`WorkloadOutcome::NotSupportedHere`]) — never a made-up figure.

use crate::error::{Result, VmError};
use crate::layout;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

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
    fn ids_follow_the_dispatch_order_of_the_guest() {
        assert_eq!(Workload::True.id(), 0);
        assert_eq!(Workload::Triad.id(), 9);
    }

    #[test]
    fn buffers_fit_below_the_mmio_gap_and_split_in_thirds() {
        let small = Workload::Memory.buffer_bytes(16 << 20);
        assert_eq!(small, (16 << 20) - layout::STUB_BUFFER_START);
        assert_eq!(Workload::Memory.buffer_bytes(1 << 30), 32 << 20);
        let triad = Workload::Triad.buffer_bytes(512 << 20);
        assert_eq!(triad, 3 * (128 << 20));
        assert_eq!((triad / 3) % 4096, 0);
        assert_eq!(Workload::True.buffer_bytes(64 << 20), 0);
    }
}
