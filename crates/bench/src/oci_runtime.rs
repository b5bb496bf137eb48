//! Start-up one level up, where podman users live: OCI runtimes driven through their command
//! line, and podman on top of each.
//!
//! Rows, all whole processes spawned by the bench, on the same bundle and rootfs:
//!
//! * `isolab-runtime` — `isolab-runtime run --bundle B ID`, beside the existing `crun` and
//!   `runc` rows (`crun run`, `runc run`): one runtime process that creates, starts, waits and
//!   deletes;
//! * `crun-oci-lifecycle`, `runc-oci-lifecycle`, `isolab-runtime-oci-lifecycle` — the four
//!   steps as podman's conmon drives them, each a separate runtime process: `create
//!   --pid-file`, `start`, wait for the container's process to exit, `delete`. The wait watches
//!   a pidfd of the container's process (it is not the bench's child), so no polling skews it;
//! * `podman-isolab-runtime` — `podman --runtime isolab-runtime run --rm`, beside the `podman`
//!   row (podman with crun): the whole docker-style stack, only the runtime swapped.

use crate::environment::{Environment, HiddenCgroup2Thread, NotMeasured, Sample};
use crate::fixture::{self, Fixture};
use crate::plan::Plan;
use crate::podman::Podman;
use crate::schema::{Question, Unit};
use crate::shared::Shared;
use std::ffi::OsString;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The rows above, or each with the reason it cannot run here.
pub(crate) fn plans(shared: &Shared) -> Vec<Plan<'_>> {
    let (q, w, unit) = (Question::Startup, "true", Unit::Us);
    let names = [
        "isolab-runtime",
        "crun-oci-lifecycle",
        "runc-oci-lifecycle",
        "isolab-runtime-oci-lifecycle",
        "podman-isolab-runtime",
    ];
    let fx = match shared.fixture() {
        Ok(fx) => fx,
        Err(reason) => {
            return names
                .into_iter()
                .map(|n| Plan::not_measured(q, w, unit, n, reason.clone()))
                .collect()
        }
    };
    let isolab_runtime = shared.isolab_runtime_exe();
    let crun = tool("crun").and_then(|p| Ok((p, Some(shared.crun_via()?))));
    let runc = tool("runc").map(|p| (p, None));
    let ours = isolab_runtime.clone().map(|p| (p, None));
    let mut plans = vec![run_plan(ours.clone(), fx)];
    for (name, runtime) in [
        ("crun-oci-lifecycle", crun),
        ("runc-oci-lifecycle", runc),
        ("isolab-runtime-oci-lifecycle", ours),
    ] {
        plans.push(match runtime {
            Ok((exe, via)) => Plan::new(q, w, unit, Lifecycle::new(name, exe, via, fx)).note(
                "create --pid-file + start + wait for exit + delete, each its own runtime \
                 process, as podman's conmon drives a runtime",
            ),
            Err(reason) => Plan::not_measured(q, w, unit, name, reason),
        });
    }
    plans.push(podman_plan(shared, fx, isolab_runtime));
    plans
}

/// A runtime found on `PATH`, or why not.
fn tool(name: &'static str) -> Result<PathBuf, NotMeasured> {
    fixture::which(name).ok_or(NotMeasured::ToolMissing {
        tool: name,
        fix: "",
    })
}

/// `isolab-runtime run`, the counterpart of the `crun` and `runc` rows.
fn run_plan(
    runtime: Result<(PathBuf, Option<&HiddenCgroup2Thread>), NotMeasured>,
    fx: &Fixture,
) -> Plan<'static> {
    let (q, w, unit) = (Question::Startup, "true", Unit::Us);
    match runtime {
        Err(reason) => Plan::not_measured(q, w, unit, "isolab-runtime", reason),
        Ok((exe, _)) => {
            let bundle = fx.bundle();
            Plan::new(
                q,
                w,
                unit,
                crate::environment::PeerCommand {
                    name: "isolab-runtime".into(),
                    argv: Box::new(move |i| {
                        let mut argv: Vec<OsString> = vec![exe.clone().into(), "run".into()];
                        argv.extend(["--bundle".into(), bundle.clone().into()]);
                        argv.push(lifecycle_id(i).into());
                        argv
                    }),
                    via: None,
                    envs: Vec::new(),
                },
            )
            .note("isolab-runtime run --bundle B ID: create, start, wait and delete in one process, as `crun run`")
        }
    }
}

/// podman with isolab-runtime, from the same thread as the `podman` row.
fn podman_plan<'a>(
    shared: &'a Shared,
    fx: &Fixture,
    runtime: Result<PathBuf, NotMeasured>,
) -> Plan<'a> {
    let (q, w, unit) = (Question::Startup, "true", Unit::Us);
    let ready = fixture::which("podman")
        .ok_or(NotMeasured::ToolMissing {
            tool: "podman",
            fix: "apt-get install podman",
        })
        .and_then(|_| Ok((runtime?, shared.crun_via()?)));
    match ready {
        Err(reason) => Plan::not_measured(q, w, unit, "podman-isolab-runtime", reason),
        Ok((runtime, via)) => Plan::new(q, w, unit, Podman::new(fx, via).with_runtime(runtime))
            .note(
                "podman --runtime isolab-runtime run --rm --network none, otherwise exactly the \
                 podman row (same image, flags and launcher thread)",
            ),
    }
}

/// A container id no earlier launch of this bench used.
fn lifecycle_id(i: usize) -> String {
    format!("isolab-bench-rt-{}-{i}", std::process::id())
}

/// The four-step lifecycle of one OCI runtime.
struct Lifecycle<'a> {
    name: &'static str,
    runtime: PathBuf,
    bundle: PathBuf,
    scratch: PathBuf,
    via: Option<&'a HiddenCgroup2Thread>,
}

impl<'a> Lifecycle<'a> {
    fn new(
        name: &'static str,
        runtime: PathBuf,
        via: Option<&'a HiddenCgroup2Thread>,
        fx: &Fixture,
    ) -> Self {
        Lifecycle {
            name,
            runtime,
            bundle: fx.bundle(),
            scratch: fx.scratch(),
            via,
        }
    }
}

impl Environment for Lifecycle<'_> {
    fn name(&self) -> String {
        self.name.into()
    }
    fn launch_once(&mut self, index: usize) -> Result<Sample, NotMeasured> {
        let steps = Steps {
            runtime: self.runtime.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.scratch.join(format!("{}.pid", self.name)),
            stderr: self.scratch.join(format!("{}.stderr", self.name)),
            id: lifecycle_id(index),
        };
        let us = match self.via {
            Some(thread) => thread.call(move || steps.run())??,
            None => steps.run()?,
        };
        Ok(Sample::value(us))
    }
}

/// One launch's command lines and files.
struct Steps {
    runtime: PathBuf,
    bundle: PathBuf,
    pid_file: PathBuf,
    stderr: PathBuf,
    id: String,
}

impl Steps {
    /// create, start, wait, delete; µs for all four. On failure, `delete --force` cleans up.
    fn run(&self) -> Result<f64, NotMeasured> {
        let t = Instant::now();
        let outcome = self.create_start_wait();
        let deleted = match &outcome {
            Ok(()) => self.step(&["delete", &self.id]),
            Err(_) => self.step(&["delete", "--force", &self.id]),
        };
        outcome.and(deleted)?;
        Ok(t.elapsed().as_secs_f64() * 1e6)
    }

    fn create_start_wait(&self) -> Result<(), NotMeasured> {
        let _ = std::fs::remove_file(&self.pid_file);
        let bundle = self.bundle.to_string_lossy().into_owned();
        let pid_file = self.pid_file.to_string_lossy().into_owned();
        self.step(&[
            "create",
            "--bundle",
            &bundle,
            "--pid-file",
            &pid_file,
            &self.id,
        ])?;
        let pid: i32 = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| {
                NotMeasured::Misbehaved(format!(
                    "{} create wrote no pid file",
                    self.runtime.display()
                ))
            })?;
        let pidfd = pidfd_open(pid)?;
        self.step(&["start", &self.id])?;
        wait_exit(&pidfd)
    }

    /// Runs one runtime command; its stderr goes to a file (a created container inherits it,
    /// so a pipe would stay open until the container exits).
    fn step(&self, args: &[&str]) -> Result<(), NotMeasured> {
        let err = std::fs::File::create(&self.stderr)
            .map_err(NotMeasured::io("creating the runtime's stderr file"))?;
        let status = Command::new(&self.runtime)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .map_err(NotMeasured::start(self.runtime.as_os_str()))?;
        if status.success() {
            return Ok(());
        }
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        Err(NotMeasured::CommandFailed {
            program: format!("{} {}", self.runtime.display(), args[0]).into(),
            status: status.code().unwrap_or(-1),
            stderr: stderr.lines().last().unwrap_or("").to_owned(),
        })
    }
}

/// A pidfd for a process that is not our child (readable once it has exited).
fn pidfd_open(pid: i32) -> Result<OwnedFd, NotMeasured> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(NotMeasured::Misbehaved(format!(
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: the kernel just returned this descriptor; we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Blocks until the process behind `pidfd` has exited.
fn wait_exit(pidfd: &OwnedFd) -> Result<(), NotMeasured> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(10_000u16)) {
            Ok(0) => {
                return Err(NotMeasured::Misbehaved(
                    "the container's process did not exit within 10 s".into(),
                ))
            }
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(NotMeasured::Misbehaved(format!("poll on a pidfd: {e}"))),
        }
    }
}
