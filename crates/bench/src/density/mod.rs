//! Density: how many idle instances fit in a memory budget, found by starting them for real.
//!
//! "Far more containers than VMs fit on the same hardware" (claim C2) is a statement about
//! memory, and memory per instance is not one number you can read off a spec sheet: pages are
//! shared (one busybox or one VMM binary in the page cache serves every instance), the kernel
//! spends memory of its own per instance (namespaces, page tables, KVM's vCPU state), and a
//! guest's RAM only costs what the guest has touched. So this module does the experiment:
//! start one idle instance after another and watch the one number that says whether the
//! machine can take more: `MemAvailable` in `/proc/meminfo`, the kernel's estimate of how much
//! memory new work can get without swapping (free pages plus the page cache and slab it could
//! reclaim). The fill stops when `MemAvailable` has dropped by the budget since the start — the
//! instance that crossed it did not fit — or at a cap, a time limit, or a floor of free memory
//! that keeps the machine out of the OOM killer; [`FillStop`] says which. Then everything is
//! killed and checked gone.
//!
//! `MemAvailable` sees everything an instance costs, including what no per-process account
//! shows: KVM's per-VM structures and shadow page tables, namespace objects, the kernel
//! stacks and page tables of every process. Its weakness is that it is system-wide: anything
//! else running on the machine moves it too, so the drop is only as clean as the machine is
//! quiet. The per-process accounts below are recorded alongside as a second view:
//!
//! - **container**: the memory its cgroup is charged (`memory.usage_in_bytes` on cgroup v1,
//!   `memory.current` on v2: the workload's anonymous memory, the page-cache pages it faulted
//!   first, and the kernel memory allocated on its behalf), plus its share of the launcher's
//!   growth — here the containers are started through the library from this process, one
//!   waiting thread each, so the launcher's cost is how much this process's RSS grew;
//! - **microVM**: the VMM process's *proportional* set size (`Pss` in
//!   `/proc/PID/smaps_rollup`), which divides every shared page among the processes mapping
//!   it. Summing RSS would count the shared VMM binary once per VM; summing PSS counts it once.
//!   The VMM is the launcher, so its overhead is inside that figure.
//!
//! Those accounts undercount (the kernel's own memory per instance is outside them), which is
//! why they are context and `MemAvailable` is the count.
//!
//! isolab's stub guest idles in a busy loop (`jmp .`), which on a small host would make the
//! VMs fight for CPUs while they are being counted, so each VMM is stopped with `SIGSTOP` once
//! its memory has settled: a stopped process keeps every page it had.

//!
//! The module holds the fill's rules (limits, what stopped it, the result); `containers`
//! and `processes` run the two fills; `rows` turns them into the memory question's rows.

mod containers;
mod processes;
pub(crate) mod rows;
#[cfg(test)]
mod tests;

pub use containers::fill_containers;
pub use processes::{fill_vmm_processes, settle, IdleProcessRss};

use crate::environment::NotMeasured;
use std::time::{Duration, Instant};

/// The default floor: never let `MemAvailable` fall under 2 GiB while filling.
pub const DEFAULT_FLOOR_BYTES: u64 = 2 << 30;

/// When a fill stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillLimits {
    /// Stop once `MemAvailable` has fallen by this much since the start.
    pub budget_bytes: u64,
    /// At most this many instances (bounds threads, PIDs and cleanup time).
    pub cap: usize,
    /// Stop starting new instances after this long.
    pub time_limit: Duration,
    /// Stop once `MemAvailable` is under this, whatever the budget: the OOM guard.
    pub floor_bytes: u64,
}

/// What stopped a fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillStop {
    /// `MemAvailable` dropped by the budget: the last instance did not fit.
    Budget,
    /// The instance cap: the count is a lower bound.
    Cap,
    /// The time limit: the count is a lower bound.
    TimeLimit,
    /// `MemAvailable` reached the floor before the budget was used: a lower bound, and the
    /// budget is more than this machine can spare.
    MemoryFloor,
}

impl FillStop {
    /// The verdict after `started` instances, `elapsed` into the fill, with `MemAvailable`
    /// at `avail_now` bytes having been `avail_before` at the start. `None`: start another.
    pub fn check(
        limits: &FillLimits,
        started: usize,
        elapsed: Duration,
        avail_before: u64,
        avail_now: u64,
    ) -> Option<FillStop> {
        if avail_before.saturating_sub(avail_now) >= limits.budget_bytes {
            Some(FillStop::Budget)
        } else if avail_now < limits.floor_bytes {
            Some(FillStop::MemoryFloor)
        } else if started >= limits.cap {
            Some(FillStop::Cap)
        } else if elapsed >= limits.time_limit {
            Some(FillStop::TimeLimit)
        } else {
            None
        }
    }

    /// A phrase for the row's note.
    pub fn describe(self, limits: &FillLimits) -> String {
        match self {
            FillStop::Budget => format!(
                "stopped by the budget: MemAvailable fell by {} (the last instance started \
                 did not fit)",
                budget_label(limits.budget_bytes)
            ),
            FillStop::Cap => format!(
                "stopped at the cap of {} instances before the budget was used: a lower bound",
                limits.cap
            ),
            FillStop::TimeLimit => format!(
                "stopped by the time limit of {} s before the budget was used: a lower bound",
                limits.time_limit.as_secs()
            ),
            FillStop::MemoryFloor => format!(
                "stopped because MemAvailable reached the {} floor that keeps the machine out \
                 of the OOM killer: a lower bound",
                budget_label(limits.floor_bytes)
            ),
        }
    }
}

/// What one fill found.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    /// Instances that fit (for [`FillStop::Budget`], all started but the last).
    pub count: usize,
    /// Instances started.
    pub started: usize,
    /// What stopped the fill.
    pub stop: FillStop,
    /// How far `MemAvailable` fell from the start to the moment the fill stopped (negative
    /// when it rose: something else on the machine freed memory).
    pub mem_available_drop_bytes: i64,
    /// Each started instance's per-process account (its cgroup charge plus launcher share, or
    /// its PSS), measured with all of them running: the second view (see module docs).
    pub per_instance_bytes: Vec<f64>,
    /// How long the fill took.
    pub elapsed: Duration,
}

impl Fill {
    /// `MemAvailable` drop per started instance; `None` when it did not drop (the machine
    /// was not quiet enough for the figure to mean anything).
    pub fn mem_available_drop_per_instance_bytes(&self) -> Option<f64> {
        (self.started > 0 && self.mem_available_drop_bytes > 0)
            .then(|| self.mem_available_drop_bytes as f64 / self.started as f64)
    }
}

/// Reads `MemAvailable` at the start of a fill and refuses one that would start under the floor.
fn starting_available(limits: &FillLimits) -> Result<u64, NotMeasured> {
    let avail = mem_available_bytes().ok_or_else(|| {
        NotMeasured::NoReading("cannot read MemAvailable from /proc/meminfo".into())
    })?;
    if avail < limits.floor_bytes {
        return Err(NotMeasured::Memory(format!(
            "only {} MiB available, under the {} floor kept free during a density fill",
            avail >> 20,
            budget_label(limits.floor_bytes)
        )));
    }
    Ok(avail)
}

/// Bytes as the shortest exact binary unit: `1GiB`, `512MiB`, `1000B`.
pub fn budget_label(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// A field of `/proc/.../status` or `/proc/meminfo` in kB, as bytes.
pub(crate) fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    })
}

/// This process's resident set now.
pub fn self_rss_bytes() -> Option<u64> {
    kb_field(&std::fs::read_to_string("/proc/self/status").ok()?, "VmRSS")
}

/// The system's `MemAvailable`.
pub fn mem_available_bytes() -> Option<u64> {
    kb_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable",
    )
}

/// The proportional set size of process `pid`.
pub fn pss_bytes(pid: u32) -> Option<u64> {
    kb_field(
        &std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        "Pss",
    )
}

/// Where a fill's loop stopped: why, after how long, and `MemAvailable` at both ends.
#[derive(Debug, Clone, Copy)]
struct FillEnd {
    stop: FillStop,
    elapsed: Duration,
    avail_before: u64,
    avail_now: u64,
}

/// The fill's loop: `start_next` starts one more instance (its argument: how many run
/// already) or says why the fill must stop; after each start `MemAvailable` is read and
/// [`FillStop::check`] decides whether another may start.
fn fill_until(
    limits: &FillLimits,
    avail_before: u64,
    mut start_next: impl FnMut(usize) -> Result<(), FillStop>,
) -> FillEnd {
    let start = Instant::now();
    let mut started = 0;
    let mut avail_now = avail_before;
    let stop = loop {
        if let Err(stop) = start_next(started) {
            break stop;
        }
        started += 1;
        avail_now = mem_available_bytes().unwrap_or(0);
        let elapsed = start.elapsed();
        if let Some(stop) = FillStop::check(limits, started, elapsed, avail_before, avail_now) {
            break stop;
        }
    };
    FillEnd {
        stop,
        elapsed: start.elapsed(),
        avail_before,
        avail_now,
    }
}

/// The fill's result from `started` instances and their per-process accounts.
fn fill(started: usize, end: FillEnd, per_instance_bytes: Vec<f64>) -> Fill {
    Fill {
        count: if end.stop == FillStop::Budget {
            started.saturating_sub(1)
        } else {
            started
        },
        started,
        stop: end.stop,
        mem_available_drop_bytes: end.avail_before as i64 - end.avail_now as i64,
        per_instance_bytes,
        elapsed: end.elapsed,
    }
}

/// A field of `/proc/PID/status` (kB) as bytes.
pub fn status_bytes_of(pid: u32, key: &str) -> Option<u64> {
    kb_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}
