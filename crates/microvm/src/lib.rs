//! isolab-microvm: a minimal KVM virtual machine monitor.
//!
//! It boots a Linux kernel (ELF vmlinux through PVH, or a bzImage through the 64-bit boot
//! protocol) or isolab's own stub guest, whose workloads measure what virtualization costs.
//! Start reading at [`vmm`]: the whole boot path, top to bottom.
//!
//! ```no_run
//! use isolab_microvm::{boot_stub, StubOptions, Workload};
//! let report = boot_stub(Workload::True, StubOptions::default())?;
//! println!("create → exit: {} µs", report.timings.exit_at_us);
//! # Ok::<(), isolab_microvm::VmError>(())
//! ```

pub mod config;
pub mod cpuid;
mod devices;
pub mod error;
pub mod footprint;
mod guest;
pub mod kernel;
pub mod layout;
mod linux;
pub mod long_mode;
pub mod msrs;
pub mod platform;
pub mod stub;
mod vcpu;
mod vm_setup;
pub mod vmm;

pub use config::{parse_duration, parse_memory_size, ConsoleSpec, GuestSpec, VmConfig};
pub use error::VmError;
pub use footprint::MemoryFootprint;
pub use platform::{Cpl0Probe, KvmModule, Platform};
pub use stub::{boot_stub, Figure, StubOptions, StubReport, Workload, WorkloadOutcome};
pub use vmm::{run, GuestExit, PhaseTimings, RunOptions, VmReport};
