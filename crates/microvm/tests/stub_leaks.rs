//! Failing guests leak nothing: a hanging guest stopped by the watchdog, a triple fault.
//!
//! Alone in their own test binary, and run one after the other by a single test: they count the
//! process's fds and threads, which tests running in parallel threads would disturb.

mod common;
use common::kvm_or_skip;
use isolab_microvm::{boot_stub, StubOptions, VmError, Workload};
use std::time::Duration;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn failing_guests_leak_nothing() {
    hang_is_stopped_by_the_watchdog_without_leaks();
    triple_fault_is_a_clean_error();
}

fn hang_is_stopped_by_the_watchdog_without_leaks() {
    if !kvm_or_skip() {
        return;
    }
    let (threads_before, fds_before) = (threads(), fds());
    let options = StubOptions {
        timeout: Duration::from_millis(300),
        ..StubOptions::default()
    };
    let started = std::time::Instant::now();
    let err = boot_stub(Workload::Hang, options).unwrap_err();
    assert!(matches!(err, VmError::Timeout { timeout_ms: 300 }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("watchdog"));
    assert_eq!(fds(), fds_before, "fds leaked");
    assert!(threads() <= threads_before, "threads leaked");
}

fn triple_fault_is_a_clean_error() {
    if !kvm_or_skip() {
        return;
    }
    let fds_before = fds();
    let options = StubOptions {
        timeout: Duration::from_secs(5),
        ..StubOptions::default()
    };
    let err = boot_stub(Workload::TripleFault, options).unwrap_err();
    eprintln!("triple fault: {err}");
    assert!(
        matches!(
            err,
            VmError::TripleFault { .. } | VmError::InternalError { .. }
        ),
        "{err}"
    );
    assert_eq!(fds(), fds_before, "fds leaked");
}
