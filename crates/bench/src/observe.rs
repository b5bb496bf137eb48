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
//! can run one alone.

use crate::environment::NotMeasured;
use crate::probes::Probe;
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

/// Runs `argv` (with `envs`), captures its output, kills it after [`COMMAND_TIMEOUT`].
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
        .map_err(|e| NotMeasured(format!("cannot start {shown}: {e}")))?;
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
    let out = child
        .wait_with_output()
        .map_err(|e| NotMeasured(format!("waiting for {shown}: {e}")))?;
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
        Err(NotMeasured(reason)) => o.outcome = Finding::NotMeasured { reason },
    }
    o
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

// ---- C5: one kernel or two ----------------------------------------------------------------

/// The host's `uname -r`.
pub fn host_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// C5 in a container, in gVisor and in a microVM: whose kernel answers `uname -r`.
pub fn kernel_identity(target: Result<&Target, NotMeasured>) -> Vec<Observation> {
    let host = host_release();
    let statement = format!("`uname -r` inside prints the host's release ({host})");
    let check = "kernel-is-host-kernel";
    let container = conclude(
        observation(ClaimId::C5, check, "isolab-cli-container", &statement),
        target.clone().and_then(|t| {
            let c = t.container(&[], &["uname", "-r"])?;
            Ok((c.stdout.trim() == host, c.evidence))
        }),
    );
    let gvisor = conclude(
        observation(ClaimId::C5, check, "gvisor", &statement),
        target
            .clone()
            .and_then(|t| gvisor_uname(t).map(|c| (c.stdout.trim() == host, c.evidence))),
    );
    let vm = conclude(
        observation(ClaimId::C5, check, "isolab-cli-microvm-linux", &statement),
        target.and_then(|t| {
            let (release, evidence) = guest_banner_release(t)?;
            Ok((release == host, evidence))
        }),
    );
    vec![container, gvisor, vm]
}

fn gvisor_uname(t: &Target) -> Result<Captured, NotMeasured> {
    crate::gvisor::available()?;
    let base = t
        .bundle
        .as_ref()
        .ok_or_else(|| NotMeasured("no OCI bundle for runsc".into()))?;
    let dir = t.scratch.join("observe-gvisor-uname");
    let bundle = crate::gvisor::bundle_running(base, &t.rootfs, &dir, &["/bin/uname", "-r"])?;
    let id = crate::gvisor::sandbox_id("uname", 0);
    let out = capture(
        &crate::gvisor::run_argv(&t.scratch.join("runsc"), &bundle, &id),
        &[],
    );
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Boots the guest Linux kernel to its banner and reads the release it prints.
fn guest_banner_release(t: &Target) -> Result<(String, String), NotMeasured> {
    crate::environment::kvm_usable()?;
    let (kernel, initrd) = crate::linux_boot::guest_images().map_err(NotMeasured)?;
    let argv = crate::linux_boot::isolab_argv(&t.isolab, &kernel, &initrd);
    let c = capture(&argv, &[])?;
    let release = c
        .stdout
        .lines()
        .chain(c.stderr.lines())
        .find_map(|l| l.split("Linux version ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| {
            NotMeasured(format!(
                "the guest printed no \"Linux version\" banner (exit {})",
                c.code
            ))
        })?;
    let banner = c
        .stdout
        .lines()
        .find(|l| l.contains("Linux version"))
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((
        release,
        format!("$ {} …\n{banner}", argv[0].to_string_lossy()),
    ))
}

// ---- C6: root in a container, root on the host? ---------------------------------------------

/// C6: container root appends to a root-owned, mode 0644 host file through a bind mount.
pub fn root_writes_host_file(target: Result<&Target, NotMeasured>, userns: bool) -> Observation {
    let env = if userns {
        "isolab-cli-container-userns"
    } else {
        "isolab-cli-container"
    };
    let o = observation(
        ClaimId::C6,
        "root-writes-host-file-through-bind-mount",
        env,
        "root in the container appends to a root-owned 0644 host file bind-mounted into it",
    );
    conclude(
        o,
        target.and_then(|t| {
            let dir = t.scratch.join(format!("observe-c6-{}", u8::from(userns)));
            let file = dir.join("owned-by-host-root");
            write_file(&file, "written by the host\n", 0o644)?;
            let volume = format!("{}:/host", dir.display());
            let mut flags = vec!["-v", &volume];
            if userns {
                flags.push("--userns");
            }
            let c = t.container(
                &flags,
                &[
                    "sh",
                    "-c",
                    "echo from-container >> /host/owned-by-host-root",
                ],
            );
            let after = std::fs::read_to_string(&file).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            let c = c?;
            Ok((
                after.contains("from-container"),
                format!("{}\nhost file afterwards: {:?}", c.evidence, after),
            ))
        }),
    )
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), NotMeasured> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| NotMeasured(format!("writing {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, text).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(fail)
}

// ---- C7: which namespaces ---------------------------------------------------------------

/// The namespace types this kernel offers, from `/proc/self/ns` (`*_for_children` aside).
pub fn offered_namespaces() -> Result<Vec<String>, NotMeasured> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/ns")
        .map_err(|e| NotMeasured(format!("reading /proc/self/ns: {e}")))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("_for_children"))
        .collect();
    names.sort();
    Ok(names)
}

/// C7: the kernel offers more than the six namespaces the claim names.
pub fn namespaces_offered() -> Observation {
    let mut o = observation(
        ClaimId::C7,
        "kernel-offers-more-than-six-namespaces",
        "host",
        "the kernel offers more namespace types than the six (uts, ipc, pid, net, mnt, user) \
         the claim lists",
    );
    let names = offered_namespaces();
    if let Ok(n) = &names {
        o.figures.insert("offered_count".into(), n.len() as f64);
    }
    conclude(
        o,
        names.map(|n| (n.len() > 6, format!("$ ls /proc/self/ns\n{}", n.join(" ")))),
    )
}

/// C7: for each namespace type, whether `isolab container run` (defaults) gets its own.
pub fn namespaces_used(target: Result<&Target, NotMeasured>) -> Vec<Observation> {
    let names = offered_namespaces().unwrap_or_default();
    let inside = target.and_then(|t| {
        let script = "for n in /proc/self/ns/*; do echo ${n##*/} $(readlink $n); done";
        t.container(&[], &["sh", "-c", script])
    });
    names
        .iter()
        .map(|name| {
            let o = observation(
                ClaimId::C7,
                &format!("default-container-has-own-{name}-namespace"),
                "isolab-cli-container",
                &format!("a default isolab container gets its own {name} namespace"),
            );
            let result = inside.clone().and_then(|c| {
                let host = std::fs::read_link(format!("/proc/self/ns/{name}"))
                    .map_err(|e| NotMeasured(format!("reading /proc/self/ns/{name}: {e}")))?;
                let theirs = c
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name} ")))
                    .ok_or_else(|| {
                        NotMeasured(format!("the container listed no {name} namespace"))
                    })?;
                Ok((
                    theirs.trim() != host.to_string_lossy(),
                    format!("{}\nhost: {name} {}", c.evidence, host.display()),
                ))
            });
            conclude(o, result)
        })
        .collect()
}

// ---- C8: limits enforced -----------------------------------------------------------------

/// C8: a process that outgrows `--memory 32M` is killed by the OOM killer.
pub fn oom_kill(target: Result<&Target, NotMeasured>) -> Observation {
    let o = observation(
        ClaimId::C8,
        "memory-limit-oom-kills",
        "isolab-cli-container",
        "a workload that allocates 100 MiB under --memory 32M is killed by the OOM killer",
    );
    conclude(
        o,
        target.and_then(|t| {
            let c = t.container(
                &["--memory", "32M"],
                &[
                    "sh",
                    "-c",
                    "x=$(head -c 104857600 /dev/zero | tr '\\0' x); echo survived",
                ],
            )?;
            Ok((c.code == 137 && !c.stdout.contains("survived"), c.evidence))
        }),
    )
}

/// C8: `--cpus 0.2` makes the kernel throttle a busy loop (throttled periods in cpu.stat).
pub fn cpu_throttling(target: Result<&Target, NotMeasured>) -> Observation {
    let mut o = observation(
        ClaimId::C8,
        "cpu-quota-throttles",
        "isolab-cli-container",
        "a busy loop under --cpus 0.2 is throttled (the cgroup counts throttled periods)",
    );
    let result = target.and_then(|t| {
        let json = t.scratch.join("observe-throttle.json");
        let path = json.to_string_lossy().into_owned();
        let c = t.container(
            &["--cpus", "0.2", "--json", &path],
            &[
                "sh",
                "-c",
                "i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done",
            ],
        )?;
        let stats = read_stats(&json);
        let _ = std::fs::remove_file(&json);
        let periods = stats?
            .get("cpu_throttled_periods")
            .and_then(|v| v.as_f64())
            .ok_or_else(|| NotMeasured("the cgroup reports no throttling counter here".into()))?;
        Ok((periods, c.evidence))
    });
    if let Ok((periods, _)) = &result {
        o.figures.insert("throttled_periods_count".into(), *periods);
    }
    conclude(
        o,
        result.map(|(p, e)| (p > 0.0, format!("{e}\ncpu_throttled_periods: {p}"))),
    )
}

fn read_stats(json: &Path) -> Result<serde_json::Map<String, serde_json::Value>, NotMeasured> {
    let text = std::fs::read_to_string(json)
        .map_err(|e| NotMeasured(format!("reading {}: {e}", json.display())))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| NotMeasured(format!("{}: {e}", json.display())))?;
    v.get("cgroup_stats")
        .and_then(|s| s.as_object())
        .cloned()
        .ok_or_else(|| NotMeasured("the run reported no cgroup stats".into()))
}

/// C8: `--pids-limit 16` stops a shell that tries to start 64 processes.
pub fn fork_bomb_stopped(target: Result<&Target, NotMeasured>) -> Observation {
    let o = observation(
        ClaimId::C8,
        "pids-limit-stops-fork-bomb",
        "isolab-cli-container",
        "under --pids-limit 16 a shell trying to start 64 processes is refused (fork fails)",
    );
    conclude(
        o,
        target.and_then(|t| {
            let c = t.container(
                &["--pids-limit", "16"],
                &["sh", "-c", "for i in $(seq 64); do sleep 1 & done; wait"],
            )?;
            let refused = c.stderr.contains("fork") || c.stderr.contains("Resource temporarily");
            Ok((refused, c.evidence))
        }),
    )
}

/// C8: `isolab container pause` freezes a counting loop; `resume` lets it go on.
pub fn freezer(target: Result<&Target, NotMeasured>) -> Observation {
    let o = observation(
        ClaimId::C8,
        "freezer-stops-and-resumes",
        "isolab-cli-container",
        "a paused container's counting loop makes no progress, and counts again once resumed",
    );
    conclude(o, target.and_then(freeze_and_thaw))
}

fn freeze_and_thaw(t: &Target) -> Result<(bool, String), NotMeasured> {
    let name = format!("bench-freeze-{}", std::process::id());
    let ticks = t.rootfs.join(".bench-freeze-ticks");
    let stop = t.rootfs.join(".bench-freeze-stop");
    let script = "i=0; while [ ! -e /.bench-freeze-stop ]; do echo >> /.bench-freeze-ticks; done";
    let mut argv: Vec<OsString> = vec![t.isolab.clone().into()];
    argv.extend(os(&[
        "container",
        "run",
        "--rm",
        "--name",
        &name,
        "--rootfs",
    ]));
    argv.push(t.rootfs.clone().into());
    argv.extend(os(&["--", "sh", "-c", script]));
    let envs = t.envs();
    let runner = std::thread::spawn(move || capture(&argv, &envs));
    // One byte appended per tick: the size only grows, so a read never sees half a write.
    let read = || -> u64 { std::fs::metadata(&ticks).map(|m| m.len()).unwrap_or(0) };
    let result = (|| {
        wait_until(|| read() > 0, Duration::from_secs(10))
            .ok_or_else(|| NotMeasured("the counting container did not start".into()))?;
        let p = t.isolab(&["container", "pause", &name])?;
        std::thread::sleep(Duration::from_millis(200));
        let a = read();
        std::thread::sleep(Duration::from_millis(500));
        let b = read();
        let r = t.isolab(&["container", "resume", &name])?;
        std::thread::sleep(Duration::from_millis(500));
        let c = read();
        Ok((
            p.code == 0 && a == b && c > b,
            format!(
                "{}\nticks while paused: {a} → {b} (0.5 s)\n{}\nticks 0.5 s after resume: {c}",
                p.evidence, r.evidence
            ),
        ))
    })();
    let _ = std::fs::write(&stop, "");
    let _ = t.isolab(&["container", "resume", &name]);
    let _ = runner.join();
    let _ = std::fs::remove_file(&stop);
    let _ = std::fs::remove_file(t.rootfs.join(".bench-freeze-ticks"));
    result
}

fn wait_until(mut ready: impl FnMut() -> bool, limit: Duration) -> Option<()> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if ready() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

// ---- C9: copy-on-write layers -------------------------------------------------------------

/// C9: writes land in the container's upper dir, the image's layers stay as they were, and
/// `isolab image commit` makes exactly one new layer that a new container sees.
pub fn copy_on_write(target: Result<&Target, NotMeasured>) -> Vec<Observation> {
    let upper = observation(
        ClaimId::C9,
        "writes-stay-in-upper-layer",
        "isolab-cli-container",
        "a file written in a container appears in its writable upper dir and in no image layer",
    );
    let commit = observation(
        ClaimId::C9,
        "commit-adds-one-layer",
        "isolab-cli-container",
        "`isolab image commit` makes an image with one more layer, whose containers see the file",
    );
    match target.and_then(cow_run) {
        Ok((in_upper, one_more, evidence)) => vec![
            conclude(upper, Ok((in_upper, evidence.clone()))),
            conclude(commit, Ok((one_more, evidence))),
        ],
        Err(e) => vec![conclude(upper, Err(e.clone())), conclude(commit, Err(e))],
    }
}

/// Runs the copy-on-write sequence; returns (file only in upper, commit added one layer and
/// its container sees the file, evidence).
fn cow_run(t: &Target) -> Result<(bool, bool, String), NotMeasured> {
    let pid = std::process::id();
    let (name, image) = (format!("bench-cow-{pid}"), format!("bench-cow-{pid}"));
    let mut evidence = Vec::new();
    let mut step = |args: &[&str]| -> Result<Captured, NotMeasured> {
        let c = t.isolab(args)?;
        evidence.push(c.evidence.clone());
        Ok(c)
    };
    let result = (|| {
        let run = step(&[
            "container",
            "run",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "echo cow > /cow.txt",
        ])?;
        if run.code != 0 {
            return Err(NotMeasured(format!(
                "the writing container failed: {}",
                run.evidence
            )));
        }
        let id = std::fs::read_link(t.home.join("names").join(&name))
            .map_err(|e| NotMeasured(format!("finding container {name}: {e}")))?;
        let upper = t.home.join("containers").join(&id).join("upper/cow.txt");
        let in_layers = std::fs::read_dir(t.home.join("layers"))
            .map_err(|e| NotMeasured(format!("reading the layer store: {e}")))?
            .flatten()
            .any(|l| l.path().join("cow.txt").exists());
        let base = layer_count(&step(&["image", "inspect", "busybox"])?.stdout)?;
        step(&["image", "commit", &name, &image])?;
        let committed = layer_count(&step(&["image", "inspect", &image])?.stdout)?;
        let read = step(&[
            "container",
            "run",
            "--rm",
            "--image",
            &image,
            "--",
            "cat",
            "/cow.txt",
        ])?;
        Ok((
            upper.exists() && !in_layers,
            committed == base + 1 && read.stdout.trim() == "cow",
        ))
    })();
    let _ = t.isolab(&["container", "rm", &name]);
    let _ = t.isolab(&["image", "rm", &image]);
    result.map(|(a, b)| (a, b, evidence.join("\n")))
}

fn layer_count(inspect_json: &str) -> Result<usize, NotMeasured> {
    let v: serde_json::Value = serde_json::from_str(inspect_json)
        .map_err(|e| NotMeasured(format!("isolab image inspect printed no JSON: {e}")))?;
    v.get("layers")
        .and_then(|l| l.as_array())
        .map(Vec::len)
        .ok_or_else(|| NotMeasured("isolab image inspect shows no layers".into()))
}

/// Start-ups per layer count in [`start_with_layers`].
const LAYER_STARTS: usize = 5;

/// C9: the same container started on 1, 8 and 32 stacked read-only layers (the bench rootfs
/// at the bottom, each layer above adding one file), through isolab's library in-process;
/// the medians are the observation's figures.
pub fn start_with_layers(
    base: crate::environment::IsolabContainer<'_>,
    scratch: &Path,
) -> Observation {
    let mut o = start_with_layers_unmeasured();
    let mut evidence = Vec::new();
    let mut base = Some(base);
    let result = (|| {
        for n in [1usize, 8, 32] {
            let mut c = base
                .take()
                .ok_or_else(|| NotMeasured("no container".into()))?;
            c.upper_layers = make_layers(scratch, n - 1)?;
            crate::environment::Environment::prepare(&mut c)?;
            let mut us = Vec::with_capacity(LAYER_STARTS);
            for i in 0..LAYER_STARTS {
                us.push(
                    c.run_as(&format!("bench-layers-{}-{n}-{i}", std::process::id()))?
                        .0,
                );
            }
            let median = crate::stats::median(&us).unwrap_or(0.0);
            o.figures
                .insert(format!("start_median_us_{n}_layers"), median);
            evidence.push(format!(
                "{n} layers: {LAYER_STARTS} starts, median {median:.0} µs"
            ));
            base = Some(c);
        }
        Ok::<_, NotMeasured>(())
    })();
    let _ = std::fs::remove_dir_all(scratch.join("observe-layers"));
    conclude(o, result.map(|()| (true, evidence.join("\n"))))
}

/// [`start_with_layers`]'s observation before it ran.
pub fn start_with_layers_unmeasured() -> Observation {
    observation(
        ClaimId::C9,
        "starts-on-32-layers",
        "isolab-engine-container-overlay",
        "a container starts on an image of 32 stacked layers (start-up medians for 1, 8 and 32 \
         layers in the figures; in-process, where the time goes)",
    )
}

/// `count` one-file layer directories under `scratch`.
fn make_layers(scratch: &Path, count: usize) -> Result<Vec<PathBuf>, NotMeasured> {
    (0..count)
        .map(|k| {
            let dir = scratch.join("observe-layers").join(format!("layer-{k}"));
            write_file(
                &dir.join(format!("layer-{k}.txt")),
                &format!("{k}\n"),
                0o644,
            )?;
            Ok(dir)
        })
        .collect()
}

// ---- C10: chroot vs pivot_root -----------------------------------------------------------

/// C10: the classic chroot escape reads a host file from a container entered with `--chroot`,
/// and does not from one entered with `pivot_root` (isolab's default).
pub fn chroot_escape(target: Result<&Target, NotMeasured>, chroot: bool) -> Observation {
    let env = if chroot {
        "isolab-cli-container-chroot"
    } else {
        "isolab-cli-container"
    };
    let o = observation(
        ClaimId::C10,
        "chroot-escape-reads-host-file",
        env,
        "a root process inside escapes its root (mkdir, chroot, chdir .. ×64, chroot .) and \
         reads a host file",
    );
    conclude(
        o,
        target.and_then(|t| {
            let dir = t.scratch.join(format!("observe-c10-{}", u8::from(chroot)));
            let marker = dir.join("host-marker");
            let secret = format!("host-only-{}", std::process::id());
            write_file(&marker, &secret, 0o644)?;
            let escape = t.rootfs.join("probes/chroot-escape");
            Probe::ChrootEscape
                .write_to(&escape)
                .map_err(|e| NotMeasured(format!("writing {}: {e}", escape.display())))?;
            let marker_s = marker.to_string_lossy().into_owned();
            let flags: &[&str] = if chroot { &["--chroot"] } else { &[] };
            let c = t.container(flags, &["/probes/chroot-escape", "/bin/cat", &marker_s]);
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&escape);
            let c = c?;
            Ok((c.stdout.contains(&secret), c.evidence))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escape_probe_leaves_a_host_chroot() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping: chroot needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        Probe::ChrootEscape.write_to(&root.join("escape")).unwrap();
        let marker = dir.path().join("marker");
        std::fs::write(&marker, "outside").unwrap();
        let out = Command::new("chroot")
            .arg(&root)
            .arg("/escape")
            .arg("/bin/cat")
            .arg(&marker)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "outside");
    }

    #[test]
    fn evidence_is_trimmed() {
        let long: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let t = trim_evidence(&long);
        assert_eq!(t.lines().count(), 13);
        assert!(t.ends_with("(28 more lines)"));
    }

    #[test]
    fn capture_keeps_output_and_exit_code() {
        let c = capture(&os(&["sh", "-c", "echo out; echo err >&2; exit 3"]), &[]).unwrap();
        assert_eq!(
            (c.code, c.stdout.as_str(), c.stderr.as_str()),
            (3, "out\n", "err\n")
        );
        assert!(c.evidence.starts_with("$ sh -c"));
        assert!(c.evidence.ends_with("(exit 3)"));
    }

    #[test]
    fn the_kernel_offers_at_least_the_six_namespaces() {
        let names = offered_namespaces().unwrap();
        for n in ["ipc", "mnt", "net", "pid", "user", "uts"] {
            assert!(names.iter().any(|m| m == n), "{names:?}");
        }
    }

    #[test]
    fn without_isolab_every_check_says_why() {
        let obs = observe_all(Err(NotMeasured("needs the isolab binary".into())));
        assert!(obs.len() >= 10);
        for o in &obs {
            if o.environment != "host" {
                assert_eq!(
                    o.outcome,
                    Finding::NotMeasured {
                        reason: "needs the isolab binary".into()
                    },
                    "{}",
                    o.check
                );
            }
        }
        // Check ids are unique per (claim, environment).
        let mut keys: Vec<_> = obs
            .iter()
            .map(|o| (o.claim, &o.check, &o.environment))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), obs.len());
    }
}
