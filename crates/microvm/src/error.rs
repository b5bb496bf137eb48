//! Everything that can go wrong starting or running a VM, as one typed error.
//!
//! Each variant says what failed and, where the user can act, how to fix it. Guest misbehaviour
//! (a triple fault, an instruction KVM could not emulate, a guest that never stops) is an error
//! of the *run*, never a panic of the VMM.

use std::path::PathBuf;

/// Errors from building or running a microVM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// /dev/kvm is absent: the kernel has no KVM module loaded or the device is not exposed.
    #[error("/dev/kvm not found: load kvm_intel, kvm_amd or kvm_pvm, or expose /dev/kvm to this container")]
    NoKvm,
    /// /dev/kvm exists but we may not open it.
    #[error("permission denied opening /dev/kvm: run as root or add this user to the kvm group")]
    KvmPermission,
    /// Any other failure of a KVM ioctl.
    #[error("KVM {op} failed: {source}")]
    Kvm {
        /// The operation (ioctl) that failed.
        op: &'static str,
        /// The errno KVM returned.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The KVM API is not the stable version 12.
    #[error("KVM API version {0} is not supported (expected 12)")]
    ApiVersion(i32),
    /// A capability this VMM relies on is missing.
    #[error("KVM lacks the {0} capability this VMM needs")]
    MissingCap(&'static str),
    /// Invalid configuration given by the user.
    #[error("invalid VM configuration: {0}")]
    Config(String),
    /// The host cannot back the requested guest memory.
    #[error("cannot allocate {requested_bytes} bytes of guest memory: {reason}")]
    Memory {
        /// What was asked for.
        requested_bytes: u64,
        /// Why it failed.
        reason: String,
    },
    /// The guest RAM mapping could not be made.
    #[error("cannot map {requested_bytes} bytes of guest memory")]
    MemoryMap {
        /// What was asked for.
        requested_bytes: u64,
        /// What vm-memory reported.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    /// KVM refused the memory slot (too large for it, or misaligned).
    #[error("KVM refused a memory slot of {requested_bytes} bytes of guest memory: give less")]
    MemorySlot {
        /// What was asked for.
        requested_bytes: u64,
        /// KVM's errno.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM_SET_MSRS stopped at an MSR this KVM does not accept.
    #[error("KVM refused MSR {index:#x} (set {accepted} of {total})")]
    MsrRefused {
        /// The first MSR refused.
        index: u32,
        /// How many were set before it.
        accepted: usize,
        /// How many were asked for.
        total: usize,
    },
    /// A kernel or initrd file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        /// "kernel" or "initrd".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel image is neither a valid ELF vmlinux nor a bzImage.
    #[error("{path}: not a bootable x86-64 kernel ({detail}); give an ELF vmlinux or a bzImage")]
    BadKernel {
        /// The file.
        path: PathBuf,
        /// What the loader found wrong.
        detail: String,
    },
    /// The initrd does not fit in guest memory below the kernel's limit.
    #[error(
        "initrd {path} ({size_bytes} bytes) does not fit in guest memory: give the VM more memory"
    )]
    InitrdTooBig {
        /// The file.
        path: PathBuf,
        /// Its size.
        size_bytes: u64,
    },
    /// Writing boot structures into guest memory failed (guest memory too small).
    #[error("writing {what} into guest memory failed: guest memory too small?")]
    GuestWrite {
        /// The structure.
        what: &'static str,
    },
    /// The console file could not be opened.
    #[error("cannot open console file {path}: {source}")]
    Console {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The watchdog stopped a guest that ran past its time limit.
    #[error("guest did not finish within {timeout_ms} ms (stopped by the watchdog)")]
    Timeout {
        /// The limit.
        timeout_ms: u64,
    },
    /// KVM_EXIT_SHUTDOWN: the guest triple-faulted (an exception it could not handle).
    #[error("guest triple-faulted (KVM_EXIT_SHUTDOWN) at rip {rip:#x}")]
    TripleFault {
        /// Guest instruction pointer when it happened.
        rip: u64,
    },
    /// KVM_EXIT_INTERNAL_ERROR: KVM could not emulate or deliver something.
    #[error("KVM internal error (suberror {suberror}: {meaning}) at rip {rip:#x}{hint}")]
    InternalError {
        /// KVM's suberror code.
        suberror: u32,
        /// What that code means.
        meaning: &'static str,
        /// Guest instruction pointer.
        rip: u64,
        /// What it means on this host (e.g. emulated guest kernel mode on kvm_pvm).
        hint: String,
    },
    /// KVM_EXIT_FAIL_ENTRY: the hardware refused the guest state.
    #[error("VM entry failed (hardware reason {reason:#x}) on vCPU {cpu}")]
    FailEntry {
        /// Hardware-specific reason.
        reason: u64,
        /// CPU that failed.
        cpu: u32,
    },
    /// An exit this VMM does not handle.
    #[error("unhandled KVM exit {0}")]
    UnhandledExit(String),
    /// The stub guest reported a status other than success.
    #[error("stub guest exited with status {0}")]
    StubStatus(u8),
    /// The stub guest stopped some other way than through its exit ports.
    #[error("stub guest stopped ({exit:?}) without writing its exit port")]
    StubNoExit {
        /// How the VM stopped instead.
        exit: crate::vmm::GuestExit,
    },
    /// The stub guest reported fewer marks or results than its workload produces.
    #[error("stub workload {workload} reported {got} {what}, expected at least {expected}")]
    StubReport {
        /// The workload.
        workload: &'static str,
        /// "marks" or "results".
        what: &'static str,
        /// How many arrived.
        got: usize,
        /// How many the figure needs.
        expected: usize,
    },
    /// A vCPU thread could not be created.
    #[error("cannot start vCPU thread")]
    Thread(#[source] std::io::Error),
    /// A system call the VMM uses (timer, signal) failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// The call.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl VmError {
    /// Wraps a KVM ioctl error, naming the operation.
    pub(crate) fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
        move |source| VmError::Kvm { op, source }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, VmError>;
