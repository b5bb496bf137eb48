//! Environments that are a process: the host baseline and every peer's command line.
//!
//! A fair whole-process figure is spawn → reaped, with nothing of the bench in between: the
//! child's stdio is closed (a terminal would add its own cost) and the parent collects it with
//! `wait4(2)`, whose `rusage` also carries the child tree's peak RSS.

use super::{Environment, HiddenCgroup2Thread, NotMeasured, Sample};
use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

/// What one external command cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandCost {
    /// Wall time from spawn to reaped, µs.
    pub wall_us: f64,
    /// `ru_maxrss` from wait4: the largest resident set of the child *or* any descendant it
    /// reaped (the kernel keeps the maximum over the whole waited-for tree), in bytes.
    pub max_rss_bytes: u64,
}

/// Runs `cmd` with stdio closed and measures it, or returns its stderr as the reason.
///
/// `wait4(2)` instead of `Child::wait`: it hands back the child's `rusage`, whose
/// `ru_maxrss` is how a launcher's peak memory is read without sampling /proc in a race.
pub fn run_command(cmd: &mut Command) -> Result<CommandCost, NotMeasured> {
    use std::io::Read;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn().map_err(NotMeasured::start(cmd.get_program()))?;
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_end(&mut stderr);
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = loop {
        // SAFETY: waits for our own child, writing into the valid `status` and `usage`.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            break rc;
        }
    };
    let wall_us = t.elapsed().as_secs_f64() * 1e6;
    if rc < 0 {
        return Err(NotMeasured::Wait {
            program: cmd.get_program().into(),
            source: Arc::new(nix::errno::Errno::last().into()),
        });
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let stderr = String::from_utf8_lossy(&stderr);
        return Err(NotMeasured::CommandFailed {
            program: cmd.get_program().into(),
            status,
            stderr: stderr.lines().last().unwrap_or("").trim().to_string(),
        });
    }
    Ok(CommandCost {
        wall_us,
        max_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
    })
}

/// [`run_command`]'s wall time alone, in µs.
pub fn time_command(cmd: &mut Command) -> Result<f64, NotMeasured> {
    run_command(cmd).map(|c| c.wall_us)
}

/// Runs `argv` here or, with `via`, from the hidden-cgroup2 thread.
pub fn run_argv(
    argv: &[OsString],
    via: Option<&HiddenCgroup2Thread>,
) -> Result<CommandCost, NotMeasured> {
    match via {
        Some(thread) => thread.run(argv.to_vec()),
        None => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            run_command(&mut cmd)
        }
    }
}

/// A host process: `fork` + `exec` of the workload, nothing else. The baseline every ratio
/// divides by.
#[derive(Debug)]
pub struct HostProcess {
    /// argv of the workload (absolute path first).
    pub argv: Vec<OsString>,
}

impl Environment for HostProcess {
    fn name(&self) -> String {
        "host".into()
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        time_command(&mut cmd).map(Sample::value)
    }
}

/// A peer tool run as a command line (crun, runc, bwrap, unshare, podman…), optionally from
/// the thread that hides the cgroup2 mount (crun refuses a hybrid layout otherwise).
pub struct PeerCommand<'a> {
    /// Row name.
    pub name: String,
    /// Builds the command line for launch number `index`.
    pub argv: Box<dyn Fn(usize) -> Vec<OsString> + 'a>,
    /// Launch from [`HiddenCgroup2Thread`] instead of this thread.
    pub via: Option<&'a HiddenCgroup2Thread>,
    /// Extra environment variables for the command (only without `via`).
    pub envs: Vec<(OsString, OsString)>,
}

impl std::fmt::Debug for PeerCommand<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCommand")
            .field("name", &self.name)
            .finish()
    }
}

impl Environment for PeerCommand<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn launch_once(&mut self, index: usize) -> Result<Sample, NotMeasured> {
        let argv = (self.argv)(index);
        if self.envs.is_empty() {
            return run_argv(&argv, self.via).map(|c| Sample::value(c.wall_us));
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).envs(self.envs.iter().cloned());
        time_command(&mut cmd).map(Sample::value)
    }
}
