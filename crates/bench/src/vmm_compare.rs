//! isolab's VMM against QEMU on the same minimal guest (C1: what a VMM itself costs).
//!
//! A Linux boot on a host where guest kernel mode is emulated measures the emulation, not the
//! VMM. So both VMMs boot one tiny image instead: the stub guest with a PVH entry, which
//! switches itself to long mode and writes to an `isa-debug-exit` port at once. Process start
//! → VM → first guest instruction → exit → process exit, with nothing in between that one VMM
//! does and the other does not — except each VMM's own work, which is what the rows compare.
//! The image is written once, outside the timing.

use crate::environment::{Environment, NotMeasured, Sample};
use isolab_microvm::stub::pvh;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The workload name of both rows: not the stub's in-VMM `stub-true` (that one starts in long
/// mode; this one boots through the PVH entry like a kernel).
pub const PVH_STUB: &str = "pvh-stub-exit";

/// Guest RAM for both VMMs.
const MEMORY_MIB: u64 = 64;

/// Which VMM boots the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    /// `isolab vm run --kernel IMAGE --debug-exit` (exit status 0 on success).
    Isolab,
    /// `qemu-system-x86_64 -M microvm … -kernel IMAGE` (exit status 1 on success).
    Qemu,
}

/// One VMM booting the PVH stub, as a whole process.
#[derive(Debug)]
pub struct PvhStub {
    /// Which VMM.
    pub vmm: Vmm,
    /// The `isolab` binary (for [`Vmm::Isolab`]).
    pub isolab: Option<PathBuf>,
    /// Where the image is written.
    pub image: PathBuf,
}

impl PvhStub {
    fn argv(&self) -> Result<Vec<OsString>, NotMeasured> {
        match self.vmm {
            Vmm::Qemu => Ok(pvh::qemu_argv(&self.image, MEMORY_MIB)),
            Vmm::Isolab => {
                let exe = self.isolab.clone().ok_or(NotMeasured::NeedsIsolabBinary)?;
                let mut argv = vec![exe.into_os_string()];
                argv.extend(pvh::isolab_args(&self.image, MEMORY_MIB));
                Ok(argv)
            }
        }
    }

    fn success(&self) -> i32 {
        match self.vmm {
            Vmm::Qemu => pvh::QEMU_SUCCESS_STATUS,
            Vmm::Isolab => 0,
        }
    }
}

impl Environment for PvhStub {
    fn name(&self) -> String {
        match self.vmm {
            Vmm::Isolab => "isolab-cli-microvm-stub".into(),
            Vmm::Qemu => "qemu-microvm-stub".into(),
        }
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        crate::environment::kvm_usable()?;
        if self.vmm == Vmm::Qemu {
            crate::fixture::require_qemu()?;
        }
        std::fs::write(&self.image, pvh::pvh_elf())
            .map_err(NotMeasured::io(format!("writing {}", self.image.display())))
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let argv = self.argv()?;
        let t = Instant::now();
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(NotMeasured::start(&argv[0]))?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        match status.code() {
            Some(code) if code == self.success() => Ok(Sample::value(us)),
            _ => Err(NotMeasured::Misbehaved(format!(
                "{} did not report the guest's success ({status})",
                self.name()
            ))),
        }
    }
}
