//! A lab's run: its private directory and `ISOLAB_HOME`, the steps it shows, the checks it
//! records, and the cleanup that removes all of it however the lab ends.
//!
//! Every step is a whole program run the way a student would type it (`isolab container run
//! ...` through the very binary that runs the lab), so what the lab checks is what the student
//! would see. Output goes to files in the lab's directory (no pipes to deadlock on) and the
//! session polls for the end, so it notices Ctrl-C and a step that hangs.

use crate::framework::{command_line, Check, Lab, LabResult, Step, Verdict};
use crate::{interrupt, LabError};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The static helper program (helper/lab-helper.c), built by build.rs.
static HELPER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lab-helper"));

/// How long one step may run before the lab kills it.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of a step's output shown on screen (all of it, up to [`KEEP_BYTES`], goes to JSON).
const SHOW_LINES: usize = 12;
/// Bytes of each output stream kept in the result.
const KEEP_BYTES: usize = 8192;

/// How labs are run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The isolab binary the steps run (the one running the lab).
    pub isolab: PathBuf,
    /// Print the steps and checks as they happen.
    pub print: bool,
}

/// A program the lab started and left running while it does other steps.
#[derive(Debug)]
struct Background {
    child: Child,
    command: String,
    stdout: PathBuf,
}

/// One lab's run in progress.
#[derive(Debug)]
pub struct Session {
    options: Options,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    rootless: bool,
    steps: Vec<Step>,
    checks: Vec<Check>,
    background: Vec<Background>,
    kept_containers: Vec<String>,
    undo: Vec<Vec<String>>,
    outputs: usize,
}

impl Session {
    /// Makes the lab's private directory: `home/` (its `ISOLAB_HOME`), `shared/` (bind-mounted
    /// into containers as /lab when a lab asks), and the helper program.
    pub fn new(lab: &Lab, options: Options) -> Result<Session, LabError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("isolab-lab{:02}-", lab.number))
            .tempdir()
            .map_err(LabError::prepare(std::env::temp_dir()))?;
        let path = dir.path().to_path_buf();
        // Containers with a user namespace run as an unprivileged host uid: they must be able
        // to reach the bind-mount sources below.
        set_mode(&path, 0o755)?;
        let shared = path.join("shared");
        fs::create_dir(&shared).map_err(LabError::prepare(&shared))?;
        set_mode(&shared, 0o777)?;
        fs::create_dir(path.join("home")).map_err(LabError::prepare(path.join("home")))?;
        let helper = path.join("lab-helper");
        fs::write(&helper, HELPER).map_err(LabError::prepare(&helper))?;
        set_mode(&helper, 0o755)?;
        Ok(Session {
            options,
            dir: Some(dir),
            path,
            rootless: !nix::unistd::Uid::effective().is_root(),
            steps: Vec::new(),
            checks: Vec::new(),
            background: Vec::new(),
            kept_containers: Vec::new(),
            undo: Vec::new(),
            outputs: 0,
        })
    }

    /// The lab's private directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The directory containers see as /lab when run with [`Session::shared_volume`].
    pub fn shared(&self) -> PathBuf {
        self.path.join("shared")
    }

    /// `-v` argument that bind-mounts [`Session::shared`] at /lab.
    pub fn shared_volume(&self) -> String {
        format!("{}:/lab", self.shared().display())
    }

    /// `-v` argument that bind-mounts the helper program at /lab-helper.
    pub fn helper_volume(&self) -> String {
        format!("{}:/lab-helper:ro", self.helper().display())
    }

    /// The helper program on the host.
    pub fn helper(&self) -> PathBuf {
        self.path.join("lab-helper")
    }

    /// The lab's `ISOLAB_HOME`: containers, images and state, removed with the lab.
    pub fn home(&self) -> PathBuf {
        self.path.join("home")
    }

    /// Whether the lab runs as an ordinary user (containers then need `--userns`).
    pub fn rootless(&self) -> bool {
        self.rootless
    }

    /// Prints a line of explanation between steps.
    pub fn say(&self, text: &str) {
        if self.options.print {
            println!("  {text}");
        }
    }

    /// Runs `isolab ARGS` to completion and shows it as a step.
    pub fn isolab(&mut self, args: &[&str]) -> Result<Step, LabError> {
        let mut words = vec!["isolab"];
        words.extend_from_slice(args);
        let mut cmd = Command::new(&self.options.isolab);
        cmd.args(args).env("ISOLAB_HOME", self.home());
        self.run_step(&words, cmd)
    }

    /// `isolab container run [--userns when rootless] ARGS`, the form most steps take.
    pub fn container(&mut self, args: &[&str]) -> Result<Step, LabError> {
        let mut words = vec!["container", "run"];
        if self.rootless {
            words.push("--userns");
        }
        words.extend_from_slice(args);
        self.isolab(&words)
    }

    /// `sh -c SCRIPT` in a default `--rm` container, then in a `--privileged` one: the same
    /// command under both, so a check can show what the defaults take away.
    pub fn default_and_privileged(&mut self, script: &str) -> Result<(Step, Step), LabError> {
        let default = self.isolab(&["container", "run", "--rm", "--", "sh", "-c", script])?;
        let privileged = self.isolab(&[
            "container",
            "run",
            "--rm",
            "--privileged",
            "--",
            "sh",
            "-c",
            script,
        ])?;
        Ok((default, privileged))
    }

    /// Runs a host program to completion and shows it as a step.
    pub fn host(&mut self, program: &str, args: &[&str]) -> Result<Step, LabError> {
        let mut words = vec![program];
        words.extend_from_slice(args);
        let mut cmd = Command::new(program);
        cmd.args(args);
        self.run_step(&words, cmd)
    }

    /// Reads a host file, shown as `cat PATH`.
    pub fn cat(&mut self, path: &str) -> Result<String, LabError> {
        let step = self.host("cat", &[path])?;
        Ok(step.stdout)
    }

    /// Starts `isolab ARGS` and leaves it running; returns its index for
    /// [`Session::background_stdout`]. The session stops it at the end at the latest.
    pub fn isolab_background(&mut self, args: &[&str]) -> Result<usize, LabError> {
        let mut words = vec!["isolab"];
        words.extend_from_slice(args);
        let command = format!("{} &", command_line(&words));
        self.show_command(&command);
        let (stdout, stderr) = self.output_files();
        let mut cmd = Command::new(&self.options.isolab);
        cmd.args(args).env("ISOLAB_HOME", self.home());
        let child = spawn_to_files(cmd, &stdout, &stderr, &command)?;
        self.background.push(Background {
            child,
            command,
            stdout,
        });
        Ok(self.background.len() - 1)
    }

    /// What a background program has printed so far.
    pub fn background_stdout(&self, index: usize) -> String {
        fs::read_to_string(&self.background[index].stdout).unwrap_or_default()
    }

    /// Waits for a background program to exit; returns its exit code.
    pub fn wait_background(&mut self, index: usize) -> Result<Option<i32>, LabError> {
        let bg = &mut self.background[index];
        wait_child(&mut bg.child, &bg.command, STEP_TIMEOUT)
    }

    /// Polls `ready` every few milliseconds until it holds or `timeout` passes.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<bool, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(true);
            }
            if interrupt::interrupted() {
                return Err(LabError::Interrupted);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sleeps, but stops at once on Ctrl-C.
    pub fn sleep(&self, duration: Duration) -> Result<(), LabError> {
        self.wait_until(duration, || false).map(|_| ())
    }

    /// Removes this container (by name) at the end, whatever happens.
    pub fn keep_container(&mut self, name: &str) {
        self.kept_containers.push(name.to_string());
    }

    /// Runs `isolab ARGS` first thing at cleanup, whatever happens (e.g. `container resume`:
    /// a frozen container cannot even be killed).
    pub fn undo_with(&mut self, args: &[&str]) {
        self.undo.push(args.iter().map(|a| a.to_string()).collect());
    }

    /// Records a check: PASS with `observed` if `ok`, else FAIL with it.
    pub fn check(&mut self, name: &str, ok: bool, observed: impl Into<String>) {
        let verdict = if ok { Verdict::Pass } else { Verdict::Fail };
        self.record(name, verdict, observed.into());
    }

    /// Records a check this host cannot make, with the reason.
    pub fn skip(&mut self, name: &str, reason: impl Into<String>) {
        self.record(name, Verdict::Skip, reason.into());
    }

    fn record(&mut self, name: &str, verdict: Verdict, reason: String) {
        if self.options.print {
            println!("  {} {name}: {reason}", verdict_mark(verdict));
        }
        self.checks.push(Check {
            name: name.to_string(),
            verdict,
            reason,
        });
    }

    /// Ends the lab: stops what still runs, removes everything, returns the result.
    pub fn finish(mut self, lab: &Lab, started: Instant, error: Option<LabError>) -> LabResult {
        self.cleanup();
        if let Some(e) = &error {
            if !matches!(e, LabError::Interrupted) {
                self.record("lab-completed", Verdict::Fail, error_chain(e));
            }
        }
        let verdict = match &error {
            Some(LabError::Interrupted) => Verdict::Fail,
            _ => Verdict::combine(&self.checks),
        };
        LabResult {
            number: lab.number,
            name: lab.name.to_string(),
            claims: lab.claims.iter().map(|c| c.to_string()).collect(),
            verdict,
            error: error.as_ref().map(error_chain),
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            steps: std::mem::take(&mut self.steps),
            checks: std::mem::take(&mut self.checks),
        }
    }

    fn run_step(&mut self, words: &[&str], cmd: Command) -> Result<Step, LabError> {
        if interrupt::interrupted() {
            return Err(LabError::Interrupted);
        }
        let command = command_line(words);
        self.show_command(&command);
        let (stdout_path, stderr_path) = self.output_files();
        let started = Instant::now();
        let mut child = spawn_to_files(cmd, &stdout_path, &stderr_path, &command)?;
        let exit_code = wait_child(&mut child, &command, STEP_TIMEOUT)?;
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        let step = Step {
            command,
            exit_code,
            stdout: read_capped(&stdout_path),
            stderr: read_capped(&stderr_path),
            duration_ms,
        };
        let _ = fs::remove_file(&stdout_path);
        let _ = fs::remove_file(&stderr_path);
        self.show_output(&step);
        self.steps.push(step.clone());
        if interrupt::interrupted() {
            return Err(LabError::Interrupted);
        }
        Ok(step)
    }

    fn output_files(&mut self) -> (PathBuf, PathBuf) {
        self.outputs += 1;
        let n = self.outputs;
        (
            self.path.join(format!("out{n}.stdout")),
            self.path.join(format!("out{n}.stderr")),
        )
    }

    fn show_command(&self, command: &str) {
        if self.options.print {
            println!("  $ {command}");
        }
    }

    fn show_output(&self, step: &Step) {
        if !self.options.print {
            return;
        }
        let text = format!("{}{}", step.stdout, step.stderr);
        let lines: Vec<&str> = text.lines().collect();
        for line in lines.iter().take(SHOW_LINES) {
            println!("    {line}");
        }
        if lines.len() > SHOW_LINES {
            println!("    … {} more lines", lines.len() - SHOW_LINES);
        }
        match step.exit_code {
            Some(0) => {}
            Some(code) => println!("    (exit {code})"),
            None => println!("    (killed by a signal)"),
        }
    }

    /// Stops background programs, removes kept containers, then the lab's directory.
    fn cleanup(&mut self) {
        for args in std::mem::take(&mut self.undo) {
            let _ = self.quiet_isolab(&args);
        }
        let _ = fs::write(self.shared().join("stop"), b"");
        for bg in &mut self.background {
            stop_child(&mut bg.child);
        }
        for name in std::mem::take(&mut self.kept_containers) {
            let _ = self.quiet_isolab(&["container".into(), "rm".into(), name]);
        }
        if let Some(dir) = self.dir.take() {
            remove_lab_dir(dir);
        }
    }
}

impl Session {
    /// Runs isolab without showing or recording it (cleanup only).
    fn quiet_isolab(&self, args: &[String]) -> std::io::Result<std::process::ExitStatus> {
        Command::new(&self.options.isolab)
            .args(args)
            .env("ISOLAB_HOME", self.home())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn verdict_mark(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "✔ PASS",
        Verdict::Fail => "✘ FAIL",
        Verdict::Skip => "– SKIP",
    }
}

/// The error and its sources on one line.
pub(crate) fn error_chain(e: &LabError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(LabError::prepare(path))
}

fn spawn_to_files(
    mut cmd: Command,
    stdout: &Path,
    stderr: &Path,
    command: &str,
) -> Result<Child, LabError> {
    let out = fs::File::create(stdout).map_err(LabError::prepare(stdout))?;
    let err = fs::File::create(stderr).map_err(LabError::prepare(stderr))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| LabError::Spawn {
            command: command.to_string(),
            source,
        })
}

/// Waits for `child`; on timeout kills it; on Ctrl-C gives it time to clean up (it got the
/// signal too) and reports the interruption.
fn wait_child(
    child: &mut Child,
    command: &str,
    timeout: Duration,
) -> Result<Option<i32>, LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.code()),
            Ok(None) => {}
            Err(source) => {
                return Err(LabError::Spawn {
                    command: command.to_string(),
                    source,
                })
            }
        }
        if interrupt::interrupted() {
            stop_child(child);
            return Err(LabError::Interrupted);
        }
        if Instant::now() >= deadline {
            stop_child(child);
            return Err(LabError::Timeout {
                command: command.to_string(),
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Lets a child finish on its own for a moment, then asks it to stop (SIGINT: isolab removes
/// its container), and only then kills it.
fn stop_child(child: &mut Child) {
    let patience = |child: &mut Child, d: Duration| {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    };
    if patience(child, Duration::from_secs(2)) {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGINT);
    if patience(child, Duration::from_secs(5)) {
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn read_capped(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(KEEP_BYTES)]).into_owned();
    if bytes.len() > KEEP_BYTES {
        text.push_str("\n… (truncated)\n");
    }
    text
}

/// Removes the lab's directory, unless something is still mounted below it (then removing
/// would reach into the mounted file system): detach such mounts first, and leave the
/// directory if any remains.
fn remove_lab_dir(dir: tempfile::TempDir) {
    let path = dir.path().to_path_buf();
    let mounted = mounts_below(&path);
    for m in mounted.iter().rev() {
        let _ = nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH);
    }
    if mounts_below(&path).is_empty() {
        if let Err(first) = dir.close() {
            // overlayfs leaves its work directory mode 000; without root, only its owner's
            // chmod makes it removable.
            make_removable(&path);
            if let Err(e) = fs::remove_dir_all(&path) {
                eprintln!(
                    "isolab: cannot remove lab directory {}: {first}; {e}",
                    path.display()
                );
            }
        }
    } else {
        let kept = dir.keep();
        eprintln!(
            "isolab: lab directory {} still has mounts; left in place",
            kept.display()
        );
    }
}

/// Gives the owner full access to every directory below `dir` (symlinks are not followed).
fn make_removable(dir: &Path) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        make_removable(&entry.path());
    }
}

/// Mount points at or below `dir` in this mount namespace.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}
