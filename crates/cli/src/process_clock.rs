//! The whole-process clock behind `--timings`: from `execve` to exit, not just the engine.
//!
//! A user waits for the whole `isolab` process, so its start-up is more than the container or
//! VM: the kernel maps the binary, the dynamic loader (if any) relocates it, Rust's runtime
//! starts, the arguments are parsed, the store is opened. No clock inside a process can see
//! the `execve` that created it: the kernel records a process's start time only in clock ticks
//! (`/proc/self/stat` field 22, 10 ms apart). What it does count precisely is the CPU time the
//! process has used since it was forked, so at the top of `main` its CPU-time clock is the cost of
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

/// The first instant of `main`.
pub fn main_entry() -> Instant {
    MAIN_ENTRY.get().map(|e| e.0).unwrap_or_else(Instant::now)
}

/// Time since the first line of `main`.
pub fn since_main() -> Duration {
    main_entry().elapsed()
}

/// `CLOCK_PROCESS_CPUTIME_ID`: user + system time of every thread so far, in nanoseconds.
fn cpu_time_so_far() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}
