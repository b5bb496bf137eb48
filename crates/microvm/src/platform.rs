//! Which kind of KVM this is, recorded with every result.
//!
//! The same VMM behaves very differently depending on how the host virtualizes:
//! * **kvm_intel / kvm_amd** use hardware virtualization (VT-x / AMD-V): guest kernel and user
//!   mode both run natively; exits cost around a microsecond.
//! * **kvm_pvm** ("Pagetable-based Virtual Machine") works without VT-x, e.g. inside a cloud VM:
//!   the guest runs in hardware user mode under shadow page tables. Guest user mode (CPL3) is
//!   native, but an unmodified guest's kernel mode (CPL0) is emulated instruction by
//!   instruction, and system calls do not reach the guest kernel at all.
//! * **Nested**: when this host is itself a VM (CPUID's "hypervisor" bit), every exit may travel
//!   through two hypervisors.
//!
//! The module tells us the mechanism; a short probe (the stub's CPL0 loop against its CPL3
//! loop) tells us what matters for benchmarks: whether guest kernel mode runs natively.

use crate::stub::{self, Figure, StubOptions, Workload, WorkloadOutcome};
use kvm_ioctls::{Cap, Kvm};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The KVM implementation module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvmModule {
    /// Intel VT-x.
    KvmIntel,
    /// AMD-V (SVM).
    KvmAmd,
    /// Pagetable-based paravirtual KVM.
    KvmPvm,
    /// No known module is loaded.
    None,
}

impl KvmModule {
    /// Reads /sys/module to see which implementation is loaded.
    pub fn detect() -> KvmModule {
        let loaded = |name: &str| Path::new("/sys/module").join(name).exists();
        if loaded("kvm_intel") {
            KvmModule::KvmIntel
        } else if loaded("kvm_amd") {
            KvmModule::KvmAmd
        } else if loaded("kvm_pvm") {
            KvmModule::KvmPvm
        } else {
            KvmModule::None
        }
    }
}

/// The CPL0 probe's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Cpl0Probe {
    /// Guest kernel mode runs at (near) native speed.
    pub native: bool,
    /// CPL0 cycles / CPL3 cycles for the same loop (None when the probe could not run).
    pub slowdown: Option<f64>,
    /// What happened, in words.
    pub detail: String,
}

/// Facts about this host's virtualization, for the record.
#[derive(Debug, Clone, Serialize)]
pub struct Platform {
    /// KVM implementation.
    pub kvm_module: KvmModule,
    /// /dev/kvm could be opened.
    pub kvm_available: bool,
    /// This host is itself a guest (CPUID hypervisor bit).
    pub host_is_virtualized: bool,
    /// The hypervisor below us, from CPUID leaf 0x4000_0000 (e.g. "KVMKVMKVM").
    pub host_hypervisor: Option<String>,
    /// The module's `nested` parameter (whether *our* guests may use VT-x/AMD-V).
    pub nested_param: Option<String>,
    /// KVM_GET_API_VERSION.
    pub api_version: Option<i32>,
    /// Capabilities the VMM cares about, present ones only.
    pub caps: Vec<&'static str>,
    /// KVM_CAP_MAX_VCPUS.
    pub max_vcpus: Option<usize>,
    /// The CPL0 probe (None when not run).
    pub cpl0: Option<Cpl0Probe>,
    /// Host kernel release.
    pub host_kernel: String,
    /// CPU model name.
    pub cpu_model: String,
}

impl Platform {
    /// Detects the platform and runs the CPL0 probe (a few milliseconds).
    pub fn detect() -> Platform {
        let mut platform = Platform::detect_static();
        if platform.kvm_available {
            platform.cpl0 = Some(probe_cpl0());
        }
        platform
    }

    /// Detects everything but the probe (no VM is started).
    pub fn detect_static() -> Platform {
        let kvm_module = KvmModule::detect();
        let nested_param = match kvm_module {
            KvmModule::KvmIntel => read_trimmed("/sys/module/kvm_intel/parameters/nested"),
            KvmModule::KvmAmd => read_trimmed("/sys/module/kvm_amd/parameters/nested"),
            _ => None,
        };
        let kvm = Kvm::new().ok();
        let caps = kvm
            .as_ref()
            .map(|kvm| {
                [
                    (Cap::UserMemory, "user_memory"),
                    (Cap::SetTssAddr, "set_tss_addr"),
                    (Cap::ExtCpuid, "ext_cpuid"),
                    (Cap::Irqchip, "irqchip"),
                    (Cap::Pit2, "pit2"),
                    (Cap::ImmediateExit, "immediate_exit"),
                    (Cap::SetIdentityMapAddr, "set_identity_map_addr"),
                    (Cap::AdjustClock, "adjust_clock"),
                    (Cap::TscDeadlineTimer, "tsc_deadline_timer"),
                ]
                .into_iter()
                .filter(|(cap, _)| kvm.check_extension(*cap))
                .map(|(_, name)| name)
                .collect()
            })
            .unwrap_or_default();
        let (host_is_virtualized, host_hypervisor) = cpuid_hypervisor();
        Platform {
            kvm_module,
            kvm_available: kvm.is_some(),
            host_is_virtualized,
            host_hypervisor,
            nested_param,
            api_version: kvm.as_ref().map(Kvm::get_api_version),
            caps,
            max_vcpus: kvm.as_ref().map(Kvm::get_max_vcpus),
            cpl0: None,
            host_kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split(':').nth(1))
                        .map(|m| m.trim().to_string())
                })
                .unwrap_or_default(),
        }
    }

    /// Guest kernel mode runs natively (known only after the probe).
    pub fn cpl0_native(&self) -> Option<bool> {
        self.cpl0.as_ref().map(|p| p.native)
    }
}

/// Above this CPL0/CPL3 ratio we call guest kernel mode emulated (native is ~1; PVM ~1000s).
const NATIVE_SLOWDOWN_LIMIT: f64 = 5.0;

fn probe_cpl0() -> Cpl0Probe {
    let options = StubOptions {
        timeout: Duration::from_secs(20),
        ..StubOptions::default()
    };
    match stub::boot_stub(Workload::Cpl0Probe, options) {
        Ok(report) => match report.outcome {
            WorkloadOutcome::Measured {
                figure: Figure::Cpl0Probe { slowdown, .. },
            } => Cpl0Probe {
                native: slowdown < NATIVE_SLOWDOWN_LIMIT,
                slowdown: Some(slowdown),
                detail: format!(
                    "the same loop took {slowdown:.1}x the cycles in guest CPL0 as in CPL3"
                ),
            },
            WorkloadOutcome::NotSupportedHere { reason } => Cpl0Probe {
                native: false,
                slowdown: None,
                detail: reason,
            },
            WorkloadOutcome::Measured { figure } => Cpl0Probe {
                native: false,
                slowdown: None,
                detail: format!("unexpected probe figure {figure:?}"),
            },
        },
        Err(err) => Cpl0Probe {
            native: false,
            slowdown: None,
            detail: format!("probe failed: {err}"),
        },
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// CPUID leaf 1 ECX bit 31, and the vendor signature at leaf 0x4000_0000.
fn cpuid_hypervisor() -> (bool, Option<String>) {
    let leaf1 = std::arch::x86_64::__cpuid(1);
    if leaf1.ecx & (1 << 31) == 0 {
        return (false, None);
    }
    // Leaf 0x4000_0000 is defined when the hypervisor bit is set.
    let sig = std::arch::x86_64::__cpuid(0x4000_0000);
    let bytes: Vec<u8> = [sig.ebx, sig.ecx, sig.edx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .filter(|b| *b != 0)
        .collect();
    (true, Some(String::from_utf8_lossy(&bytes).into_owned()))
}
