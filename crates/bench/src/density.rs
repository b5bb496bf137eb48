//! Density: how many idle instances fit in a memory budget, found by starting them for real.
//!
//! "Far more containers than VMs fit on the same hardware" (claim C2) is a statement about
//! memory, and memory per instance is not one number you can read off a spec sheet: pages are
//! shared (one busybox or one VMM binary in the page cache serves every instance), the kernel
//! spends memory of its own per instance (namespaces, page tables, KVM's vCPU state), and a
//! guest's RAM only costs what the guest has touched. So this module does the experiment:
//! start one idle instance after another, add up what each one is charged, stop when the next
//! one would not fit the budget (or at a cap that keeps the run bounded), then kill everything
//! and check nothing is left.
//!
//! How an instance's memory is counted, per kind:
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
//! Memory the kernel keeps outside both accounts (KVM's per-VM structures and shadow page
//! tables, namespace objects charged elsewhere) shows up only system-wide, so the drop of
//! `MemAvailable` over the fill is recorded too — noisy (anything else on the machine moves
//! it), which is why it is context, not the count.
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

/// What one fill found.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    /// Instances that fit in the budget (all of them when the cap was hit first).
    pub count: usize,
    /// Each started instance's bytes (its charge or PSS, plus its share of launcher growth),
    /// measured with all of them running.
    pub per_instance_bytes: Vec<f64>,
    /// The cap stopped the fill before the budget did: `count` is a lower bound.
    pub cap_hit: bool,
    /// How much `MemAvailable` fell over the fill, per instance (context; see module docs).
    pub mem_available_drop_per_instance_bytes: Option<f64>,
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

fn drop_per_instance(before: Option<u64>, after: Option<u64>, n: usize) -> Option<f64> {
    let (b, a) = (before?, after?);
    (n > 0).then(|| (b as f64 - a as f64) / n as f64)
}

/// Starts idle containers (`spec` must run something that waits, e.g. `sleep`) each in its own
/// cgroup until their charges plus this process's RSS growth pass `budget_bytes`, or `cap`
/// are running; then kills them all and checks their cgroups are gone.
pub fn fill_containers(
    spec: &ContainerSpec,
    cgroups: &CgroupRoot,
    budget_bytes: u64,
    cap: usize,
) -> Result<Fill, NotMeasured> {
    if !spec.use_cgroup {
        return Err(NotMeasured(
            "density needs each container in a cgroup".into(),
        ));
    }
    let prefix = format!("bench-density-{}", std::process::id());
    let rss_before = self_rss_bytes().unwrap_or(0);
    let avail_before = mem_available_bytes();
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
        let mut over_budget = false;
        while running.len() < cap {
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
                Err(_) => {
                    failure = Some(format!("container {} did not start", running.len() + 1));
                    break;
                }
            }
            // The workload's own start (busybox mapping its pages) is over within a ms.
            std::thread::sleep(Duration::from_millis(2));
            let growth = self_rss_bytes().unwrap_or(0).saturating_sub(rss_before);
            let total: u64 = running.iter().map(|(id, _)| charge(id)).sum::<u64>() + growth;
            if total > budget_bytes {
                over_budget = true;
                break;
            }
        }
        let n = running.len();
        let growth = self_rss_bytes().unwrap_or(0).saturating_sub(rss_before) as f64;
        let per_instance_bytes: Vec<f64> = running
            .iter()
            .map(|(id, _)| charge(id) as f64 + growth / n.max(1) as f64)
            .collect();
        let avail_after = mem_available_bytes();
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
        Ok(Fill {
            count: if over_budget { n - 1 } else { n },
            per_instance_bytes,
            cap_hit: !over_budget,
            mem_available_drop_per_instance_bytes: drop_per_instance(avail_before, avail_after, n),
        })
    })
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
/// stub:hang`) until their summed PSS passes `budget_bytes` or `cap` run; stops each with
/// SIGSTOP once settled; then kills them all and checks none is left.
pub fn fill_vmm_processes(
    argv: &[OsString],
    budget_bytes: u64,
    cap: usize,
) -> Result<Fill, NotMeasured> {
    let avail_before = mem_available_bytes();
    let mut children = Children(Vec::new());
    let mut over_budget = false;
    let mut failure = None;
    while children.0.len() < cap {
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
            break;
        }
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
        let total: u64 = children.0.iter().filter_map(|c| pss_bytes(c.id())).sum();
        if total > budget_bytes {
            over_budget = true;
            break;
        }
    }
    let n = children.0.len();
    let per_instance_bytes: Vec<f64> = children
        .0
        .iter()
        .filter_map(|c| pss_bytes(c.id()))
        .map(|b| b as f64)
        .collect();
    let avail_after = mem_available_bytes();
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
    Ok(Fill {
        count: if over_budget { n - 1 } else { n },
        per_instance_bytes,
        cap_hit: !over_budget,
        mem_available_drop_per_instance_bytes: drop_per_instance(avail_before, avail_after, n),
    })
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

    #[test]
    fn process_fill_stops_at_the_budget_and_kills_everything() {
        // `sleep` processes stand in for VMMs: the budget (4 × one sleep's PSS, give or
        // take sharing) must stop the fill well before the cap, and none may survive.
        let argv: Vec<OsString> = ["sleep", "60"].iter().map(OsString::from).collect();
        let one = {
            let f = fill_vmm_processes(&argv, u64::MAX, 1).unwrap();
            assert_eq!((f.count, f.cap_hit), (1, true));
            f.per_instance_bytes[0] as u64
        };
        let fill = fill_vmm_processes(&argv, one * 4, 64).unwrap();
        assert!(!fill.cap_hit, "{fill:?}");
        assert!(fill.count >= 3 && fill.count < 64, "{fill:?}");
        assert_eq!(fill.per_instance_bytes.len(), fill.count + 1);
    }

    #[test]
    fn a_vmm_that_exits_is_a_reason() {
        let argv: Vec<OsString> = ["sh", "-c", "echo nope >&2; exit 3"]
            .iter()
            .map(OsString::from)
            .collect();
        let err = fill_vmm_processes(&argv, u64::MAX, 4).unwrap_err();
        assert!(err.0.contains("nope"), "{err}");
    }
}
