//! isolab's microVM with its stub guest, booted in this process (where the time goes).

use super::{Environment, NotMeasured, Sample};
use crate::schema::Scope;
use std::sync::Arc;
use std::time::Instant;

/// Whether /dev/kvm opens read-write here (every VM row's `prepare`).
pub fn kvm_usable() -> Result<(), NotMeasured> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| NotMeasured::NoKvm(Arc::new(e)))
}

/// isolab's microVM running its own stub guest, in this process.
#[derive(Debug)]
pub struct MicroVmStub {
    /// Row name.
    pub name: String,
    /// Guest workload.
    pub workload: isolab_microvm::Workload,
    /// Options for every boot.
    pub options: isolab_microvm::StubOptions,
}

/// The VMM's phase timings as named µs values.
pub fn vm_phases(t: &isolab_microvm::PhaseTimings) -> Vec<(String, f64)> {
    super::named_us([
        ("create_vm_us", t.create_vm_us),
        ("memory_us", t.memory_us),
        ("irqchip_us", t.irqchip_us),
        ("vcpus_us", t.vcpus_us),
        ("load_us", t.load_us),
        ("first_run_at_us", t.first_run_at_us),
        ("exit_at_us", t.exit_at_us),
        ("teardown_us", t.teardown_us),
        ("total_us", t.total_us),
    ])
}

impl MicroVmStub {
    /// Boots once and returns the wall time (µs) and the report.
    pub fn boot(&self) -> Result<(f64, isolab_microvm::StubReport), NotMeasured> {
        let t = Instant::now();
        let report =
            isolab_microvm::boot_stub(self.workload, self.options).map_err(NotMeasured::microvm)?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if let isolab_microvm::WorkloadOutcome::NotSupportedHere { reason } = &report.outcome {
            return Err(NotMeasured::GuestUnsupported(reason.clone()));
        }
        Ok((us, report))
    }
}

impl Environment for MicroVmStub {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn scope(&self) -> Scope {
        Scope::InProcess
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        kvm_usable()
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let (us, report) = self.boot()?;
        Ok(Sample {
            value: us,
            phases_us: vm_phases(&report.timings),
        })
    }
}
