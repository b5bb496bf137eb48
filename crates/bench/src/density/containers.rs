//! The container fill: idle containers started through the library, one waiting thread each.
//!
//! Each container gets its own cgroup, so the kernel's charge to it is readable per instance;
//! the library runs in this process, so the launcher's share is how much this process grew.

use super::{fill, fill_until, self_rss_bytes, starting_available};
use super::{Fill, FillLimits, FillStop};
use crate::environment::NotMeasured;
use isolab_cgroups::CgroupRoot;
use isolab_container::spawn::{self, ExitStatus, RunContext, RunOutcome, SpawnError};
use isolab_container::ContainerSpec;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

/// How long one container may take to reach its workload.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The containers a fill has started: their ids and workload pids, and the threads that wait
/// for them.
struct Running<'scope> {
    started: Vec<(String, i32)>,
    threads: Vec<ScopedJoinHandle<'scope, Result<RunOutcome, SpawnError>>>,
    /// The first thing that went wrong, reported once everything is cleaned up.
    failure: Option<NotMeasured>,
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
        return Err(NotMeasured::Misbehaved(
            "density needs each container in a cgroup".into(),
        ));
    }
    let prefix = format!("bench-density-{}", std::process::id());
    let rss_before = self_rss_bytes().unwrap_or(0);
    let avail_before = starting_available(limits)?;
    std::thread::scope(|scope| {
        let mut running = Running {
            started: Vec::new(),
            threads: Vec::new(),
            failure: None,
        };
        let end = fill_until(limits, avail_before, |n| {
            start_one(scope, spec, cgroups, format!("{prefix}-{n}"), &mut running)?;
            // The workload's own start (busybox mapping its pages) is over within a ms.
            std::thread::sleep(Duration::from_millis(2));
            Ok(())
        });
        let per_instance_bytes = accounts(cgroups, &running.started, rss_before);
        let n = running.started.len();
        stop_all(running, cgroups)?;
        Ok(fill(n, end, per_instance_bytes))
    })
}

/// Starts container `id` on a thread of its own and waits until its workload runs. `Err`:
/// the fill must stop (the container did not start; `running.failure` says why, or its
/// thread's result will).
fn start_one<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    spec: &'env ContainerSpec,
    cgroups: &'env CgroupRoot,
    id: String,
    running: &mut Running<'scope>,
) -> Result<(), FillStop> {
    let (tx, rx) = mpsc::channel();
    let thread_id = id.clone();
    running.threads.push(scope.spawn(move || {
        let mut ctx = RunContext::new(thread_id);
        ctx.cgroups = Some(cgroups);
        ctx.on_start = Some(Box::new(move |pid| {
            let _ = tx.send(pid);
        }));
        spawn::run(spec, ctx)
    }));
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(pid) => {
            running.started.push((id, pid));
            Ok(())
        }
        // Its thread has ended: joining it in `stop_all` gives the error it ended with.
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(FillStop::Cap),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            running.failure = Some(NotMeasured::Misbehaved(format!(
                "container {} did not start within {} s",
                running.started.len() + 1,
                START_TIMEOUT.as_secs()
            )));
            Err(FillStop::Cap)
        }
    }
}

/// Each container's cgroup charge plus its share of this process's RSS growth.
fn accounts(cgroups: &CgroupRoot, started: &[(String, i32)], rss_before: u64) -> Vec<f64> {
    let charge = |id: &str| -> u64 {
        cgroups
            .open(id)
            .ok()
            .and_then(|cg| cg.stats().ok())
            .and_then(|s| s.memory_current_bytes)
            .unwrap_or(0)
    };
    let growth = self_rss_bytes().unwrap_or(0).saturating_sub(rss_before) as f64;
    let n = started.len().max(1) as f64;
    started
        .iter()
        .map(|(id, _)| charge(id) as f64 + growth / n)
        .collect()
}

/// Kills every workload; each thread's run() then reaps it and removes its cgroup (and
/// everything else it made). Fails when a container ended on its own, its engine failed, or
/// a cgroup is left behind.
fn stop_all(running: Running<'_>, cgroups: &CgroupRoot) -> Result<(), NotMeasured> {
    let Running {
        started,
        threads,
        mut failure,
    } = running;
    for (_, pid) in &started {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    for thread in threads {
        let ended = match thread.join() {
            Ok(Ok(outcome)) if matches!(outcome.status, ExitStatus::Signaled(9)) => continue,
            Ok(Ok(outcome)) => NotMeasured::Misbehaved(format!(
                "an idle container ended on its own: {:?}",
                outcome.status
            )),
            Ok(Err(e)) => NotMeasured::Container(std::sync::Arc::new(e)),
            Err(_) => NotMeasured::Misbehaved("a container thread panicked".into()),
        };
        failure.get_or_insert(ended);
    }
    let left: Vec<&str> = started
        .iter()
        .filter(|(id, _)| cgroups.open(id).is_ok())
        .map(|(id, _)| id.as_str())
        .collect();
    if let Some(first) = left.first() {
        return Err(NotMeasured::LeftBehind(format!(
            "{} container cgroups were left behind after cleanup (first: {first})",
            left.len()
        )));
    }
    failure.map_or(Ok(()), Err)
}
