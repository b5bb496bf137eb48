//! The whole-process clock behind `--timings`: from `execve` to exit, not just the engine.
//!
//! A user waits for the whole `isolab` process, so its start-up is more than the container or
//! VM: the kernel maps the binary, the dynamic loader (if any) relocates it, Rust's runtime
//! starts, the arguments are parsed, the store is opened. No clock inside a process can see
//! the `execve` that created it: the kernel records a process's start time only in clock ticks
//! (`/proc/self/stat` field 22, 10 ms apart). What it does count precisely is the CPU time the
//! process has used since it was forked, so at the top of `main` `utime + stime` is the cost of
//! exec, loading and runtime start on an otherwise idle CPU. The rest is measured on the
//! monotonic clock from the first line of `main`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static MAIN_ENTRY: OnceLock<(Instant, Duration)> = OnceLock::new();

/// Records the first instant of `main` and the CPU time used before it. Call it first.
pub fn mark_main_entry() {
    MAIN_ENTRY.get_or_init(|| (Instant::now(), cpu_time_so_far()));
}

/// CPU time this process used before `main` (exec, loader, runtime start).
pub fn before_main() -> Duration {
    MAIN_ENTRY.get().map(|e| e.1).unwrap_or_default()
}

/// Time since the first line of `main`.
pub fn since_main() -> Duration {
    MAIN_ENTRY.get().map(|e| e.0.elapsed()).unwrap_or_default()
}

fn cpu_time_so_far() -> Duration {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let us = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
            };
            us(u.user_time()) + us(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}
