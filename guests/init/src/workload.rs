//! The measured workloads, and what each one reveals about a virtual machine.
//!
//! Under hardware virtualisation (VT-x/AMD-V) guest code runs directly on the CPU; it only
//! costs more when it *leaves* the guest (a VM exit) or touches memory the host has not mapped
//! yet (an EPT/NPT fault on top of the guest's own page fault). The workloads isolate these:
//!
//! * `cpu`: register-only arithmetic. Should match native speed on any hypervisor.
//! * `syscall`: `getppid()` in a loop. A guest syscall does not exit to the host under
//!   VT-x/AMD-V, so it should cost about what it costs natively (~100 ns); under a paravirtual
//!   or emulating hypervisor each one is a trip through the host.
//! * `mem`: the first write to each page of a fresh buffer takes a guest page fault (and, the
//!   first time the VM touches that guest-physical page, a host fault too); the second pass
//!   finds everything mapped and shows the steady-state cost of the two-level translation.
//!
//! Time comes from `CLOCK_MONOTONIC` (`Instant`), which a KVM guest reads from kvm-clock/TSC
//! without exiting.

use std::hint::black_box;
use std::time::Instant;

use crate::cmdline::{InitConfig, Workload};
use crate::report::Line;

/// Page size the `mem` workload steps by (x86-64 base pages).
pub const PAGE_BYTES: usize = 4096;

/// What one workload run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub workload: Workload,
    pub iterations: u64,
    pub total_ns: u64,
    /// Extra workload-specific numbers, already in `key=value` shape.
    pub extra: Vec<(&'static str, String)>,
}

impl Measurement {
    /// Mean nanoseconds per iteration (0 for an empty run).
    pub fn ns_per_iter(&self) -> f64 {
        if self.iterations == 0 {
            0.0
        } else {
            self.total_ns as f64 / self.iterations as f64
        }
    }

    /// The `isolab: result ...` line for this measurement.
    pub fn to_line(&self) -> String {
        let mut line = Line::new("result")
            .kv("workload", self.workload.name())
            .kv("iterations", self.iterations)
            .kv("total_ns", self.total_ns)
            .kv("ns_per_iter", format!("{:.1}", self.ns_per_iter()));
        for (k, v) in &self.extra {
            line = line.kv(k, v);
        }
        line.finish()
    }
}

/// A workload that could not run (only `mem` can fail: the guest may be out of memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadError(pub String);

impl std::fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WorkloadError {}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Runs the configured workload once and returns what it measured.
pub fn run(config: &InitConfig) -> Result<Measurement, WorkloadError> {
    match config.workload {
        Workload::True => Ok(Measurement {
            workload: Workload::True,
            iterations: 0,
            total_ns: 0,
            extra: Vec::new(),
        }),
        Workload::Cpu => Ok(cpu(config.iterations)),
        Workload::Syscall => Ok(syscall(config.iterations)),
        Workload::Mem => mem(config.mem_bytes),
    }
}

/// A xorshift chain: each step depends on the last, so the CPU cannot skip or vectorise it.
fn cpu(iterations: u64) -> Measurement {
    let start = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = black_box(x);
    }
    let total_ns = elapsed_ns(start);
    Measurement {
        workload: Workload::Cpu,
        iterations,
        total_ns,
        extra: vec![("checksum", format!("{x:016x}"))],
    }
}

/// `getppid` through the raw `syscall` instruction: glibc does not cache it (unlike the
/// `getpid` of old glibc versions), and the kernel does no work beyond entry/exit.
fn syscall(iterations: u64) -> Measurement {
    let start = Instant::now();
    for _ in 0..iterations {
        // SAFETY: getppid takes no arguments, touches no memory and cannot fail.
        black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    Measurement {
        workload: Workload::Syscall,
        iterations,
        total_ns: elapsed_ns(start),
        extra: Vec::new(),
    }
}

/// An anonymous private mapping that is unmapped on drop, so the `mem` workload releases its
/// buffer on every path.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> Result<Self, WorkloadError> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing; no existing
        // memory is affected and the result is checked before use.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(WorkloadError(format!(
                "mmap of {len} bytes for the mem workload failed: {}; lower isolab.mem_bytes or give the VM more memory",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Mapping {
            addr: addr.cast(),
            len,
        })
    }

    /// Writes one byte into every page; returns the time taken.
    fn touch_pages(&mut self, value: u8) -> u64 {
        let start = Instant::now();
        let mut offset = 0;
        while offset < self.len {
            // SAFETY: offset < len, so the byte lies inside this live, writable mapping.
            unsafe { std::ptr::write_volatile(self.addr.wrapping_add(offset), value) };
            offset += PAGE_BYTES;
        }
        elapsed_ns(start)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: addr/len describe exactly the mapping created in `new`, used by nobody else.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

fn mem(mem_bytes: u64) -> Result<Measurement, WorkloadError> {
    let len = usize::try_from(mem_bytes)
        .map_err(|_| WorkloadError(format!("isolab.mem_bytes={mem_bytes} does not fit")))?;
    let pages = len.div_ceil(PAGE_BYTES) as u64;
    let mut buf = Mapping::new(len)?;
    let first_ns = buf.touch_pages(1);
    let warm_ns = buf.touch_pages(2);
    drop(buf);
    let per_page = |ns: u64| format!("{:.1}", ns as f64 / pages as f64);
    Ok(Measurement {
        workload: Workload::Mem,
        iterations: pages,
        total_ns: first_ns,
        extra: vec![
            ("first_touch_ns_per_page", per_page(first_ns)),
            ("warm_ns_per_page", per_page(warm_ns)),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::parse_line;

    fn config(workload: Workload, iterations: u64, mem_bytes: u64) -> InitConfig {
        InitConfig {
            workload,
            iterations,
            mem_bytes,
        }
    }

    #[test]
    fn true_workload_measures_nothing() {
        let m = run(&config(Workload::True, 0, 4096)).unwrap();
        assert_eq!((m.iterations, m.total_ns), (0, 0));
        let p = parse_line(&m.to_line()).unwrap();
        assert_eq!(p.get("workload"), Some("true"));
        assert_eq!(p.get("ns_per_iter"), Some("0.0"));
    }

    #[test]
    fn syscall_workload_takes_real_time() {
        let m = run(&config(Workload::Syscall, 2_000, 4096)).unwrap();
        assert_eq!(m.iterations, 2_000);
        assert!(m.total_ns > 0);
        // A syscall costs at least a few ns anywhere; a sanity floor, not a benchmark.
        assert!(m.ns_per_iter() >= 1.0, "{}", m.ns_per_iter());
    }

    #[test]
    fn cpu_workload_is_deterministic() {
        let a = run(&config(Workload::Cpu, 1_000, 4096)).unwrap();
        let b = run(&config(Workload::Cpu, 1_000, 4096)).unwrap();
        assert_eq!(a.extra, b.extra);
        let c = run(&config(Workload::Cpu, 1_001, 4096)).unwrap();
        assert_ne!(a.extra, c.extra);
    }

    #[test]
    fn mem_workload_counts_pages_and_reports_both_passes() {
        let m = run(&config(Workload::Mem, 0, 64 * 1024 + 1)).unwrap();
        assert_eq!(m.iterations, 17);
        let p = parse_line(&m.to_line()).unwrap();
        assert!(p.get("first_touch_ns_per_page").is_some());
        assert!(p.get("warm_ns_per_page").is_some());
    }
}
