//! The watchdog stops a Linux guest on every vCPU, leaking no fd and no thread.
//!
//! Alone in its own test binary: it counts the process's fds and threads, which other tests
//! running in parallel threads of the same binary would disturb.

mod common;
use common::{cache_dir, kvm_or_skip, project_kernel};
use isolab_microvm::{ConsoleSpec, VmConfig, VmError};
use std::time::Duration;

#[test]
fn linux_past_its_timeout_is_stopped_on_every_vcpu_without_leaks() {
    if !kvm_or_skip() {
        return;
    }
    let Some(kernel) = project_kernel("vmlinux").or_else(|| project_kernel("bzImage")) else {
        eprintln!("skipping: no project kernel in {}", cache_dir().display());
        return;
    };
    let task_count = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let fd_count = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let (tasks_before, fds_before) = (task_count(), fd_count());
    let mut config = VmConfig::linux(&kernel);
    config.vcpus = 2;
    config.console = ConsoleSpec::Capture;
    config.timeout = Duration::from_millis(1500);
    let started = std::time::Instant::now();
    let err = isolab_microvm::run(&config).unwrap_err();
    eprintln!("{err} after {:?}", started.elapsed());
    match err {
        // 1.5 s is too short for this kernel to finish anywhere (its init does not power off
        // that fast), so the watchdog must stop it; on kvm_pvm an emulation failure may come
        // first.
        VmError::Timeout { timeout_ms } => assert_eq!(timeout_ms, 1500),
        VmError::InternalError { .. } => {}
        other => panic!("unexpected error: {other}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "watchdog too slow"
    );
    assert_eq!(fd_count(), fds_before, "fds leaked");
    assert!(task_count() <= tasks_before, "vCPU threads leaked");
}
