//! Observations: the claims that are facts rather than timings (C5–C10), checked for real.
//!
//! "Containers share the host kernel", "root in a container is root on the host", "cgroups
//! limit what a process can use": each is a yes/no the machine can answer. Every check here
//! runs the real thing — `isolab container run` as a user would, gVisor, a microVM — on the
//! bench's busybox rootfs and on temporary files it creates and removes, records whether the
//! statement held, and keeps the command and what it printed as evidence. Nothing on the host
//! is reconfigured: the files written through bind mounts are the bench's own, the limits are
//! the container's cgroup's.
//!
//! Each check is a small function returning an [`Observation`], so other front ends (the labs)
//! can run one alone. One module per claim: `kernel` (C5), `root` (C6), `namespaces`
//! (C7), `limits` (C8), `layers` (C9), `chroot` (C10); this one holds what they share —
//! running a command with its evidence, and turning a result into an observation.

mod chroot;
mod kernel;
mod layers;
mod limits;
mod namespaces;
mod root;
#[cfg(test)]
mod tests;

pub use chroot::chroot_escape;
pub use kernel::{host_release, kernel_identity};
pub use layers::{copy_on_write, start_with_layers, start_with_layers_unmeasured};
pub use limits::{cpu_throttling, fork_bomb_stopped, freezer, oom_kill};
pub use namespaces::{namespaces_offered, namespaces_used, offered_namespaces};
pub use root::root_writes_host_file;

use crate::environment::NotMeasured;
use crate::schema::{ClaimId, Finding, Observation};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one observed command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What the checks run against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `isolab` binary.
    pub isolab: PathBuf,
    /// A busybox rootfs directory (written to by some checks: use a scratch copy).
    pub rootfs: PathBuf,
    /// The OCI bundle around `rootfs` (for gVisor), if any.
    pub bundle: Option<PathBuf>,
    /// A private `ISOLAB_HOME` for the CLI's state and images.
    pub home: PathBuf,
    /// Scratch space for temporary files (removed by the caller).
    pub scratch: PathBuf,
}

/// One command's result, with the text a reader can check.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Exit code, or `128 + signal`.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// `$ command` followed by what it printed (trimmed), for the evidence.
    pub evidence: String,
}

/// Runs `argv` (with `envs`), captures its output, kills it after `COMMAND_TIMEOUT`.
pub fn capture(argv: &[OsString], envs: &[(OsString, OsString)]) -> Result<Captured, NotMeasured> {
    let shown = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(envs.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NotMeasured::start(&argv[0]))?;
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < COMMAND_TIMEOUT {
            std::thread::sleep(Duration::from_millis(50));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
        }
        // SAFETY: signals our own child, still unreaped (wait_with_output holds it).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    });
    let out = child.wait_with_output().map_err(|e| NotMeasured::Wait {
        program: argv[0].clone(),
        source: std::sync::Arc::new(e),
    })?;
    drop(watchdog);
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut evidence = format!("$ {shown}\n");
    for text in [&stdout, &stderr] {
        let t = trim_evidence(text);
        if !t.is_empty() {
            evidence.push_str(&t);
            evidence.push('\n');
        }
    }
    evidence.push_str(&format!("(exit {code})"));
    Ok(Captured {
        code,
        stdout,
        stderr,
        evidence,
    })
}

/// At most 12 lines of 200 characters: enough to check, not a log dump.
fn trim_evidence(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    let mut out: Vec<String> = lines
        .iter()
        .take(12)
        .map(|l| l.chars().take(200).collect())
        .collect();
    if lines.len() > 12 {
        out.push(format!("… ({} more lines)", lines.len() - 12));
    }
    out.join("\n")
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

impl Target {
    fn envs(&self) -> Vec<(OsString, OsString)> {
        vec![(
            isolab_container::image::HOME_ENV.into(),
            self.home.clone().into(),
        )]
    }

    /// `isolab container run --rm --rootfs ROOTFS FLAGS -- COMMAND`.
    pub fn container(&self, flags: &[&str], command: &[&str]) -> Result<Captured, NotMeasured> {
        let mut argv: Vec<OsString> = vec![self.isolab.clone().into()];
        argv.extend(os(&["container", "run", "--rm", "--rootfs"]));
        argv.push(self.rootfs.clone().into());
        argv.extend(os(flags));
        argv.push("--".into());
        argv.extend(os(command));
        capture(&argv, &self.envs())
    }

    /// `isolab ARGS` with the private store.
    pub fn isolab(&self, args: &[&str]) -> Result<Captured, NotMeasured> {
        let mut argv: Vec<OsString> = vec![self.isolab.clone().into()];
        argv.extend(os(args));
        capture(&argv, &self.envs())
    }
}

/// An observation under construction.
fn observation(claim: ClaimId, check: &str, environment: &str, statement: &str) -> Observation {
    Observation {
        claim,
        check: check.into(),
        environment: environment.into(),
        statement: statement.into(),
        outcome: Finding::NotMeasured {
            reason: "not run".into(),
        },
        evidence: String::new(),
        figures: BTreeMap::new(),
    }
}

/// Fills in the outcome: `Ok((holds, evidence))` or the reason it could not be checked.
fn conclude(mut o: Observation, result: Result<(bool, String), NotMeasured>) -> Observation {
    match result {
        Ok((holds, evidence)) => {
            o.outcome = Finding::Observed { holds };
            o.evidence = evidence;
        }
        Err(reason) => {
            o.outcome = Finding::NotMeasured {
                reason: reason.to_string(),
            }
        }
    }
    o
}

/// A check that runs `command` in `isolab container run FLAGS` and judges what it printed.
fn in_container(
    target: Result<&Target, NotMeasured>,
    o: Observation,
    flags: &[&str],
    command: &[&str],
    holds: impl FnOnce(&Captured) -> bool,
) -> Observation {
    conclude(
        o,
        target.and_then(|t| {
            let c = t.container(flags, command)?;
            Ok((holds(&c), c.evidence))
        }),
    )
}

/// Every check, in claim order. `None` target: the checks that need isolab are not measured.
pub fn observe_all(target: Result<&Target, NotMeasured>) -> Vec<Observation> {
    let mut out = Vec::new();
    let t = target.clone();
    out.extend(kernel_identity(t.clone()));
    out.push(namespaces_offered());
    for userns in [false, true] {
        out.push(root_writes_host_file(t.clone(), userns));
    }
    out.extend(namespaces_used(t.clone()));
    out.push(oom_kill(t.clone()));
    out.push(cpu_throttling(t.clone()));
    out.push(fork_bomb_stopped(t.clone()));
    out.push(freezer(t.clone()));
    out.extend(copy_on_write(t.clone()));
    for chroot in [true, false] {
        out.push(chroot_escape(t.clone(), chroot));
    }
    out
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), NotMeasured> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e| NotMeasured::io(format!("writing {}", path.display()))(e);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, text).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(fail)
}
