//! Docker itself: `docker run --rm --network none IMG true` on the bench's busybox rootfs.
//!
//! Docker is a client (`docker`) talking to a daemon (`dockerd`) that talks to containerd,
//! which starts a shim, which runs runc. A `docker run` pays for that whole chain — the figure
//! readers of "containers start in seconds" have in mind. When no daemon answers, the bench
//! starts its own, private one: its socket, data root and exec root in a scratch directory,
//! the cgroupfs driver (there is no systemd here), no bridge (`--bridge=none`: the row uses
//! `--network none`, so no `docker0` is made) and no iptables rules. When the bench is done it
//! stops that daemon and removes what it left: the scratch directory, the cgroups its
//! containers were put under, and a `docker0` link should one have appeared anyway. A daemon
//! that was already running is used as it is and left alone (only the imported image is
//! removed).

use crate::environment::{run_command, Environment, NotMeasured, Sample};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon we start may take to answer.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(40);
/// How long it may take to stop after SIGTERM before it is killed.
const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The docker client: Debian's, beside the daemon it ships with, or the first on PATH.
fn client() -> Option<PathBuf> {
    let packaged = Path::new("/usr/bin/docker");
    if packaged.is_file() {
        return Some(packaged.to_path_buf());
    }
    crate::fixture::which("docker")
}

/// A daemon the bench started, and what to clean after it.
#[derive(Debug)]
struct OwnDaemon {
    child: Child,
    dir: PathBuf,
    cgroup_parent: String,
    had_docker0: bool,
}

/// A docker daemon to talk to: one already running, or one the bench started.
#[derive(Debug)]
pub struct Daemon {
    client: PathBuf,
    /// `-H unix://…` for our own daemon; empty for the system's.
    host_args: Vec<OsString>,
    own: Option<OwnDaemon>,
}

impl Daemon {
    /// The running daemon if `docker version` reaches one, else a private one started in
    /// `scratch` (removed with it).
    pub fn connect_or_start(scratch: &Path) -> Result<Daemon, NotMeasured> {
        let client = client().ok_or(NotMeasured::ToolMissing {
            tool: "docker",
            fix: "apt-get install docker.io (scripts/setup.sh)",
        })?;
        let system = Daemon {
            client: client.clone(),
            host_args: Vec::new(),
            own: None,
        };
        if system.answers() {
            return Ok(system);
        }
        start(client, scratch)
    }

    /// Whether we started this daemon (and will stop it).
    pub fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// A `docker` command aimed at this daemon.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.client);
        cmd.args(&self.host_args);
        cmd
    }

    fn answers(&self) -> bool {
        let mut cmd = self.command();
        cmd.args(["version", "--format", "{{.Server.Version}}"]);
        run_command(&mut cmd).is_ok()
    }
}

fn docker0_exists() -> bool {
    Path::new("/sys/class/net/docker0").exists()
}

/// Starts a private dockerd and waits until it answers.
fn start(client: PathBuf, scratch: &Path) -> Result<Daemon, NotMeasured> {
    let dockerd = crate::fixture::require(
        "dockerd",
        "dockerd",
        "apt-get install docker.io (scripts/setup.sh)",
    )?;
    let dir = scratch.join("docker");
    std::fs::create_dir_all(&dir)
        .map_err(NotMeasured::io(format!("creating {}", dir.display())))?;
    let socket = dir.join("docker.sock");
    let cgroup_parent = format!("isolab-bench-docker-{}", std::process::id());
    let log = std::fs::File::create(dir.join("dockerd.log"))
        .map_err(NotMeasured::io("creating the dockerd log"))?;
    let had_docker0 = docker0_exists();
    let child = Command::new(dockerd)
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .args([
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
            "--cgroup-parent",
            &cgroup_parent,
        ])
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(NotMeasured::io("sharing the dockerd log"))?,
        )
        .stderr(log)
        .spawn()
        .map_err(NotMeasured::start("dockerd"))?;
    let mut daemon = Daemon {
        client,
        host_args: vec!["-H".into(), format!("unix://{}", socket.display()).into()],
        own: Some(OwnDaemon {
            child,
            dir: dir.clone(),
            cgroup_parent,
            had_docker0,
        }),
    };
    let t = Instant::now();
    while t.elapsed() < DAEMON_START_TIMEOUT {
        if daemon.answers() {
            return Ok(daemon);
        }
        if let Some(own) = daemon.own.as_mut() {
            if !matches!(own.child.try_wait(), Ok(None)) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("level=error") || l.contains("failed"));
    Err(NotMeasured::Misbehaved(format!(
        "the bench's dockerd did not answer within {} s{}",
        DAEMON_START_TIMEOUT.as_secs(),
        last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
    )))
    // `daemon` drops here: stopped and cleaned up.
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(own) = self.own.as_mut() else {
            return;
        };
        stop(&mut own.child);
        remove_cgroups(Path::new(CGROUP_ROOT), &own.cgroup_parent, 0);
        if !own.had_docker0 && docker0_exists() {
            let _ = Command::new("ip")
                .args(["link", "delete", "docker0"])
                .stderr(Stdio::null())
                .status();
        }
        // The data root holds overlay mounts only while containers run; unmount leftovers.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(own.dir.join("exec"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&own.dir);
    }
}

/// SIGTERM, then SIGKILL when it does not stop in time; always reaped.
fn stop(child: &mut Child) {
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let t = Instant::now();
    while t.elapsed() < DAEMON_STOP_TIMEOUT {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes every cgroup directory named `name` (children first) in the hierarchies under
/// `dir`, a few levels deep (the memory hierarchy nests the caller).
fn remove_cgroups(dir: &Path, name: &str, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if entry.file_name() == name {
            remove_tree(&path);
        } else if depth < 3 {
            remove_cgroups(&path, name, depth + 1);
        }
    }
}

/// rmdir a cgroup and its children, deepest first (cgroup dirs hold only control files).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The `docker run` row: busybox `true` from an image imported from the bench rootfs.
#[derive(Debug)]
pub struct DockerRun {
    rootfs: PathBuf,
    scratch: PathBuf,
    image: String,
    daemon: Option<Daemon>,
    imported: bool,
}

impl DockerRun {
    /// The row; the daemon starts and the image is imported in `prepare`.
    pub fn new(rootfs: PathBuf, scratch: PathBuf) -> DockerRun {
        DockerRun {
            rootfs,
            scratch,
            image: format!("isolab-bench-{}:latest", std::process::id()),
            daemon: None,
            imported: false,
        }
    }

    fn daemon(&self) -> Result<&Daemon, NotMeasured> {
        self.daemon
            .as_ref()
            .ok_or(NotMeasured::NotPrepared("docker"))
    }
}

impl Environment for DockerRun {
    fn name(&self) -> String {
        "docker".into()
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        self.daemon = Some(Daemon::connect_or_start(&self.scratch)?);
        let tar = self.scratch.join("docker-rootfs.tar");
        crate::environment::time_command(
            Command::new("tar")
                .arg("-C")
                .arg(&self.rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        )?;
        let mut import = self.daemon()?.command();
        import.arg("import").arg(&tar).arg(&self.image);
        let imported = run_command(&mut import);
        let _ = std::fs::remove_file(&tar);
        imported.map_err(|e| NotMeasured::During {
            step: "docker import",
            source: Box::new(e),
        })?;
        self.imported = true;
        Ok(())
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let mut cmd = self.daemon()?.command();
        cmd.args(["run", "--rm", "--network", "none", &self.image, "/bin/true"]);
        crate::environment::time_command(&mut cmd).map(Sample::value)
    }
}

impl Drop for DockerRun {
    fn drop(&mut self) {
        if let (true, Some(d)) = (self.imported, &self.daemon) {
            let mut rmi = d.command();
            rmi.args(["rmi", "--force", &self.image]);
            let _ = run_command(&mut rmi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_cgroups_finds_nested_dirs_by_name() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("memory/user/isolab-bench-docker-1/abc");
        let b = root.path().join("pids/isolab-bench-docker-1");
        let keep = root.path().join("cpu/other");
        for d in [&a, &b, &keep] {
            std::fs::create_dir_all(d).unwrap();
        }
        remove_cgroups(root.path(), "isolab-bench-docker-1", 0);
        assert!(!a.parent().unwrap().exists());
        assert!(!b.exists());
        assert!(keep.exists());
    }
}
