//! The loops the syscall (C4) and CPU (C3) questions time, defined once for `isolab bench`
//! and the criterion benches, so both measure the same work.
//!
//! Each loop is a pair of [`Probe`] programs that differ only in the loop's count: timing
//! both and taking the difference cancels process start-up and exit, and dividing by the
//! loop's [`Work`] gives the figure. The microVM stub runs the identical loop in its guest.

use crate::environment::Variant;
use crate::probes::{Probe, TRIAD_ARRAY_BYTES};
use isolab_microvm::Workload;

/// What one run of a loop does: the divisor of its figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// `n` iterations (system calls, loop rounds): the figure is ns per iteration.
    Iterations(u64),
    /// `n` bytes moved: the figure is bytes per second.
    Bytes(u64),
}

/// One timed loop: the pair of programs, the work between them, where else it runs.
#[derive(Debug, Clone, Copy)]
pub struct ProbeLoop {
    /// The row's workload name (and the probe files' prefix).
    pub workload: &'static str,
    /// The program with the loop.
    pub long: Probe,
    /// The same program without it.
    pub short: Probe,
    /// What the loop does, `long` minus `short`.
    pub work: Work,
    /// isolab container variants it runs in beside the host.
    pub variants: &'static [Variant],
    /// The microVM stub's identical loop and its iteration count.
    pub stub: (Workload, u64),
}

/// getpid calls per run.
pub const GETPID_CALLS: u64 = 200_000;
const CPU_ITERATIONS: u64 = 20_000_000;
const MEMORY_BUFFER_BYTES: u64 = 32 << 20;
const MEMORY_PASSES: u64 = 16;
/// STREAM triad passes over three `TRIAD_ARRAY_BYTES` arrays.
const TRIAD_PASSES: u64 = 10;

/// `getpid` system calls, with and without isolab's seccomp filter.
pub const GETPID: ProbeLoop = ProbeLoop {
    workload: "getpid",
    long: Probe::Getpid {
        iterations: GETPID_CALLS,
    },
    short: Probe::Getpid { iterations: 0 },
    work: Work::Iterations(GETPID_CALLS),
    variants: &[Variant::Cgroups, Variant::Seccomp],
    stub: (Workload::Syscall, GETPID_CALLS),
};

/// A register-only loop: CPU time without memory or system calls.
pub const CPU_LOOP: ProbeLoop = ProbeLoop {
    workload: "cpu-loop",
    long: Probe::Cpu {
        iterations: CPU_ITERATIONS,
    },
    short: Probe::Cpu { iterations: 1 },
    work: Work::Iterations(CPU_ITERATIONS),
    variants: &[Variant::Cgroups],
    stub: (Workload::Cpu, CPU_ITERATIONS),
};

/// Warm read-modify-write passes over a 32 MiB buffer.
pub const MEMORY_PASS: ProbeLoop = ProbeLoop {
    workload: "memory-pass",
    long: Probe::Memory {
        buffer_bytes: MEMORY_BUFFER_BYTES,
        passes: MEMORY_PASSES,
    },
    short: Probe::Memory {
        buffer_bytes: MEMORY_BUFFER_BYTES,
        passes: 0,
    },
    work: Work::Bytes(MEMORY_BUFFER_BYTES * MEMORY_PASSES),
    variants: &[Variant::Cgroups],
    stub: (Workload::Memory, MEMORY_PASSES),
};

/// STREAM's triad; 24 bytes per element per pass (b and c read, a written), as STREAM counts.
pub const TRIAD: ProbeLoop = ProbeLoop {
    workload: "triad",
    long: Probe::Triad {
        array_bytes: TRIAD_ARRAY_BYTES,
        passes: TRIAD_PASSES,
    },
    short: Probe::Triad {
        array_bytes: TRIAD_ARRAY_BYTES,
        passes: 0,
    },
    work: Work::Bytes(3 * TRIAD_ARRAY_BYTES * TRIAD_PASSES),
    variants: &[Variant::Cgroups],
    stub: (Workload::Triad, TRIAD_PASSES),
};
