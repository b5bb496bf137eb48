//! The process fill: idle VMM processes, each one stopped once its memory has settled.

use super::{fill, fill_until, pss_bytes, starting_available, status_bytes_of};
use super::{Fill, FillLimits, FillStop};
use crate::environment::{Environment, NotMeasured, Sample};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The resident memory of one idle VMM *process* (not this one, whose heap would pollute the
/// figure): start `argv`, let it settle, read its `VmRSS`, kill it.
#[derive(Debug)]
pub struct IdleProcessRss {
    /// Row name.
    pub name: String,
    /// A command that keeps running (e.g. `isolab vm run --guest stub:hang`).
    pub argv: Vec<OsString>,
}

impl Environment for IdleProcessRss {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let mut children = Children(vec![spawn_quiet(&self.argv)?]);
        settle(&mut children.0[0], Duration::from_secs(5))?;
        let rss = status_bytes_of(children.0[0].id(), "VmRSS")
            .ok_or_else(|| NotMeasured::NoReading("could not read the VMM's VmRSS".into()))?;
        drop(children);
        Ok(Sample::value(rss as f64))
    }
}

/// Starts `argv` with no input or output; its stderr is kept for [`settle`]'s reason.
fn spawn_quiet(argv: &[OsString]) -> Result<Child, NotMeasured> {
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NotMeasured::start(&argv[0]))
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
            return Err(NotMeasured::Misbehaved(format!(
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
    let mut children = Children(Vec::new());
    let mut failure = None;
    let end = fill_until(limits, avail_before, |_| {
        let settled = spawn_quiet(argv).and_then(|mut child| {
            let settled = settle(&mut child, Duration::from_secs(5));
            let pid = child.id();
            children.0.push(child);
            settled.map(|()| pid)
        });
        match settled {
            Ok(pid) => {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
                Ok(())
            }
            Err(e) => {
                failure = Some(e);
                Err(FillStop::Cap)
            }
        }
    });
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
        return Err(NotMeasured::LeftBehind(format!(
            "{left} VMM processes still exist after cleanup"
        )));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if per_instance_bytes.len() != n {
        return Err(NotMeasured::NoReading(
            "could not read the PSS of every VMM process".into(),
        ));
    }
    Ok(fill(n, end, per_instance_bytes))
}
