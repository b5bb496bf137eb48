//! Helpers shared by the CLI test binaries: finding a running container from its launcher.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// The container's PID 1 as seen from the host: the child of isolab's main thread.
pub fn container_pid(isolab_pid: u32) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{isolab_pid}/task/{isolab_pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Waits until the container of `isolab_pid` has exec'ed `sleep` (its comm is no longer
/// isolab's) and returns its host PID.
pub fn wait_for_sleep(isolab_pid: u32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = container_pid(isolab_pid) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "container never started");
        std::thread::sleep(Duration::from_millis(2));
    }
}
