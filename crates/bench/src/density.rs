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

use crate::environment::NotMeasured;
use isolab_cgroups::CgroupRoot;
use isolab_container::spawn::{self, ExitStatus, RunContext};
use isolab_container::ContainerSpec;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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
    let avail = mem_available_bytes()
        .ok_or_else(|| NotMeasured("cannot read MemAvailable from /proc/meminfo".into()))?;
    if avail < limits.floor_bytes {
        return Err(NotMeasured(format!(
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
fn kb_field(text: &str, key: &str) -> Option<u64> {
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

/// Starts idle containers (`spec` must run something that waits, e.g. `sleep`) each in its own
/// cgroup until one of `limits` stops the fill; then kills them all and checks their cgroups
/// are gone.
pub fn fill_containers(
    spec: &ContainerSpec,
    cgroups: &CgroupRoot,
    limits: &FillLimits,
) -> Result<Fill, NotMeasured> {
    if !spec.use_cgroup {
        return Err(NotMeasured(
            "density needs each container in a cgroup".into(),
        ));
    }
    let prefix = format!("bench-density-{}", std::process::id());
    let rss_before = self_rss_bytes().unwrap_or(0);
    let avail_before = starting_available(limits)?;
    let start = Instant::now();
    let charge = |id: &str| -> u64 {
        cgroups
            .open(id)
            .ok()
            .and_then(|cg| cg.stats().ok())
            .and_then(|s| s.memory_current_bytes)
            .unwrap_or(0)
    };
    std::thread::scope(|scope| {
        let mut running: Vec<(String, i32)> = Vec::new();
        let mut handles = Vec::new();
        let mut failure: Option<String> = None;
        let mut avail_now = avail_before;
        let stop = loop {
            let id = format!("{prefix}-{}", running.len());
            let (tx, rx) = mpsc::channel();
            let thread_id = id.clone();
            handles.push(scope.spawn(move || {
                let mut ctx = RunContext::new(thread_id);
                ctx.cgroups = Some(cgroups);
                ctx.on_start = Some(Box::new(move |pid| {
                    let _ = tx.send(pid);
                }));
                spawn::run(spec, ctx)
            }));
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(pid) => running.push((id, pid)),
                // Its thread has ended: joining it below gives the error it ended with.
                Err(mpsc::RecvTimeoutError::Disconnected) => break FillStop::Cap,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    failure = Some(format!(
                        "container {} did not start within 30 s",
                        running.len() + 1
                    ));
                    break FillStop::Cap;
                }
            }
            // The workload's own start (busybox mapping its pages) is over within a ms.
            std::thread::sleep(Duration::from_millis(2));
            avail_now = mem_available_bytes().unwrap_or(0);
            if let Some(stop) = FillStop::check(
                limits,
                running.len(),
                start.elapsed(),
                avail_before,
                avail_now,
            ) {
                break stop;
            }
        };
        let elapsed = start.elapsed();
        let n = running.len();
        let growth = self_rss_bytes().unwrap_or(0).saturating_sub(rss_before) as f64;
        let per_instance_bytes: Vec<f64> = running
            .iter()
            .map(|(id, _)| charge(id) as f64 + growth / n.max(1) as f64)
            .collect();
        // Clean up: kill every workload; each thread's run() then reaps it and removes its
        // cgroup (and everything else it made).
        for (_, pid) in &running {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        for h in handles {
            match h.join() {
                Ok(Ok(outcome)) => {
                    if !matches!(outcome.status, ExitStatus::Signaled(9)) && failure.is_none() {
                        failure = Some(format!(
                            "an idle container ended on its own: {:?}",
                            outcome.status
                        ));
                    }
                }
                Ok(Err(e)) => {
                    failure.get_or_insert_with(|| format!("isolab container: {e}"));
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "a container thread panicked".into());
                }
            }
        }
        let left: Vec<&str> = running
            .iter()
            .filter(|(id, _)| cgroups.open(id).is_ok())
            .map(|(id, _)| id.as_str())
            .collect();
        if !left.is_empty() {
            return Err(NotMeasured(format!(
                "{} container cgroups were left behind after cleanup (first: {})",
                left.len(),
                left[0]
            )));
        }
        if let Some(reason) = failure {
            return Err(NotMeasured(reason));
        }
        Ok(fill(
            n,
            stop,
            avail_before,
            avail_now,
            per_instance_bytes,
            elapsed,
        ))
    })
}

fn fill(
    started: usize,
    stop: FillStop,
    avail_before: u64,
    avail_now: u64,
    per_instance_bytes: Vec<f64>,
    elapsed: Duration,
) -> Fill {
    Fill {
        count: if stop == FillStop::Budget {
            started.saturating_sub(1)
        } else {
            started
        },
        started,
        stop,
        mem_available_drop_bytes: avail_before as i64 - avail_now as i64,
        per_instance_bytes,
        elapsed,
    }
}

/// A field of `/proc/PID/status` (kB) as bytes.
pub fn status_bytes_of(pid: u32, key: &str) -> Option<u64> {
    kb_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

/// The resident memory of one idle VMM *process* (not this one, whose heap would pollute the
/// figure): start `argv`, let it settle, read its `VmRSS`, kill it.
#[derive(Debug)]
pub struct IdleProcessRss {
    /// Row name.
    pub name: String,
    /// A command that keeps running (e.g. `isolab vm run --guest stub:hang`).
    pub argv: Vec<OsString>,
}

impl crate::environment::Environment for IdleProcessRss {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn launch_once(&mut self, _: usize) -> Result<crate::environment::Sample, NotMeasured> {
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NotMeasured(format!("cannot start {:?}: {e}", self.argv[0])))?;
        let mut children = Children(vec![child]);
        settle(&mut children.0[0], Duration::from_secs(5))?;
        let rss = status_bytes_of(children.0[0].id(), "VmRSS")
            .ok_or_else(|| NotMeasured("could not read the VMM's VmRSS".into()))?;
        drop(children);
        Ok(crate::environment::Sample::value(rss as f64))
    }
}

/// Kills and reaps every child when dropped, stopped ones included (SIGKILL ends a stopped
/// process without continuing it).
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// Waits until process `child`'s PSS has stopped changing (its VM is built and the guest
/// runs), at most `limit`. Returns an error if the process exits meanwhile.
pub fn settle(child: &mut Child, limit: Duration) -> Result<(), NotMeasured> {
    let start = Instant::now();
    let mut last = None;
    let mut stable = 0;
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            let mut text = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut text);
            }
            return Err(NotMeasured(format!(
                "an idle microVM exited ({status}): {}",
                text.lines().last().unwrap_or("").trim()
            )));
        }
        let now = pss_bytes(child.id());
        if now.is_some() && now == last {
            stable += 1;
            if stable >= 3 && start.elapsed() >= Duration::from_millis(30) {
                return Ok(());
            }
        } else {
            stable = 0;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Starts VMM processes (`argv` must keep a guest running, e.g. `isolab vm run --guest
/// stub:hang`) until one of `limits` stops the fill; stops each with SIGSTOP once settled;
/// then kills them all and checks none is left.
pub fn fill_vmm_processes(argv: &[OsString], limits: &FillLimits) -> Result<Fill, NotMeasured> {
    let avail_before = starting_available(limits)?;
    let start = Instant::now();
    let mut children = Children(Vec::new());
    let mut failure = None;
    let mut avail_now = avail_before;
    let stop = loop {
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NotMeasured(format!("cannot start {:?}: {e}", argv[0])))?;
        let settled = settle(&mut child, Duration::from_secs(5));
        let pid = child.id();
        children.0.push(child);
        if let Err(e) = settled {
            failure = Some(e);
            break FillStop::Cap;
        }
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
        avail_now = mem_available_bytes().unwrap_or(0);
        if let Some(stop) = FillStop::check(
            limits,
            children.0.len(),
            start.elapsed(),
            avail_before,
            avail_now,
        ) {
            break stop;
        }
    };
    let elapsed = start.elapsed();
    let n = children.0.len();
    let per_instance_bytes: Vec<f64> = children
        .0
        .iter()
        .filter_map(|c| pss_bytes(c.id()))
        .map(|b| b as f64)
        .collect();
    let pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    drop(children);
    let left = pids
        .iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .count();
    if left > 0 {
        return Err(NotMeasured(format!(
            "{left} VMM processes still exist after cleanup"
        )));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if per_instance_bytes.len() != n {
        return Err(NotMeasured(
            "could not read the PSS of every VMM process".into(),
        ));
    }
    Ok(fill(
        n,
        stop,
        avail_before,
        avail_now,
        per_instance_bytes,
        elapsed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_labels_are_exact() {
        assert_eq!(budget_label(1 << 30), "1GiB");
        assert_eq!(budget_label(512 << 20), "512MiB");
        assert_eq!(budget_label(3 << 29), "1536MiB");
        assert_eq!(budget_label(1000), "1000B");
    }

    #[test]
    fn kb_fields_parse() {
        let text = "Name:\tx\nVmRSS:\t    1234 kB\nPss:   10 kB\n";
        assert_eq!(kb_field(text, "VmRSS"), Some(1234 * 1024));
        assert_eq!(kb_field(text, "Pss"), Some(10 * 1024));
        assert_eq!(kb_field(text, "Vm"), None);
        assert!(self_rss_bytes().unwrap() > 0);
        assert!(pss_bytes(std::process::id()).unwrap() > 0);
    }

    fn limits(cap: usize, time_limit: Duration) -> FillLimits {
        FillLimits {
            budget_bytes: u64::MAX,
            cap,
            time_limit,
            floor_bytes: 0,
        }
    }

    #[test]
    fn fill_verdicts_name_what_stopped_it() {
        let l = FillLimits {
            budget_bytes: 100,
            cap: 10,
            time_limit: Duration::from_secs(5),
            floor_bytes: 1000,
        };
        let s = Duration::from_secs(1);
        assert_eq!(FillStop::check(&l, 1, s, 5000, 4950), None);
        // A rise in MemAvailable (something else freed memory) is no drop.
        assert_eq!(FillStop::check(&l, 1, s, 5000, 6000), None);
        assert_eq!(
            FillStop::check(&l, 1, s, 5000, 4900),
            Some(FillStop::Budget)
        );
        // Under the floor before the budget is used: the OOM guard.
        assert_eq!(
            FillStop::check(&l, 1, s, 1050, 999),
            Some(FillStop::MemoryFloor)
        );
        assert_eq!(FillStop::check(&l, 10, s, 5000, 4950), Some(FillStop::Cap));
        assert_eq!(
            FillStop::check(&l, 3, Duration::from_secs(5), 5000, 4950),
            Some(FillStop::TimeLimit)
        );
        // The budget's instance did not fit; a limit's count is a lower bound.
        assert_eq!(fill(4, FillStop::Budget, 10, 0, vec![], s).count, 3);
        assert_eq!(fill(4, FillStop::Cap, 10, 0, vec![], s).count, 4);
        let risen = fill(4, FillStop::TimeLimit, 10, 20, vec![], s);
        assert_eq!(risen.mem_available_drop_bytes, -10);
        assert_eq!(risen.mem_available_drop_per_instance_bytes(), None);
        assert!(FillStop::MemoryFloor.describe(&l).contains("floor"));
    }

    #[test]
    fn process_fill_stops_at_the_cap_and_kills_everything() {
        // `sleep` processes stand in for VMMs; the fill checks itself that none survives.
        let argv: Vec<OsString> = ["sleep", "60"].iter().map(OsString::from).collect();
        let fill = fill_vmm_processes(&argv, &limits(5, Duration::from_secs(60))).unwrap();
        assert_eq!((fill.count, fill.started, fill.stop), (5, 5, FillStop::Cap));
        assert_eq!(fill.per_instance_bytes.len(), 5);
        assert!(fill.per_instance_bytes.iter().all(|b| *b > 0.0), "{fill:?}");
    }

    #[test]
    fn process_fill_stops_at_the_time_limit() {
        let argv: Vec<OsString> = ["sleep", "60"].iter().map(OsString::from).collect();
        let fill = fill_vmm_processes(&argv, &limits(64, Duration::ZERO)).unwrap();
        assert_eq!((fill.count, fill.stop), (1, FillStop::TimeLimit));
    }

    #[test]
    fn a_fill_never_starts_under_the_memory_floor() {
        let argv: Vec<OsString> = ["sleep", "60"].iter().map(OsString::from).collect();
        let mut l = limits(4, Duration::from_secs(60));
        l.floor_bytes = u64::MAX;
        let err = fill_vmm_processes(&argv, &l).unwrap_err();
        assert!(err.0.contains("floor"), "{err}");
    }

    #[test]
    fn a_vmm_that_exits_is_a_reason() {
        let argv: Vec<OsString> = ["sh", "-c", "echo nope >&2; exit 3"]
            .iter()
            .map(OsString::from)
            .collect();
        let err = fill_vmm_processes(&argv, &limits(4, Duration::from_secs(60))).unwrap_err();
        assert!(err.0.contains("nope"), "{err}");
    }
}
