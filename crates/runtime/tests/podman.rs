//! podman driving isolab-runtime, as a user would: `run --rm`, a detached container with
//! `exec`, `logs`, `ps`, `stop` and `rm` (root only; skipped where podman is not installed).

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_isolab-runtime");

fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (podman with a rootful runtime)");
        return false;
    }
    for tool in ["/usr/bin/podman", "/bin/busybox"] {
        if !Path::new(tool).exists() {
            eprintln!("skipped: {tool} missing (run scripts/setup.sh)");
            return false;
        }
    }
    true
}

/// An image imported from a busybox rootfs, and the containers of one test; all removed on
/// drop, also when an assertion fails.
struct Podman {
    image: String,
    names: Vec<String>,
}

impl Podman {
    fn new() -> Podman {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "cat", "echo", "sleep", "hostname", "true"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let tar = tmp.path().join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let image = format!("localhost/isolab-runtime-test-{}", std::process::id());
        let p = Podman {
            image,
            names: Vec::new(),
        };
        ok(p.plain(&["import", tar.to_str().unwrap(), &p.image]));
        p
    }

    fn plain(&self, args: &[&str]) -> Output {
        Command::new("podman").args(args).output().unwrap()
    }

    /// `podman --runtime isolab-runtime --cgroup-manager cgroupfs ARGS`.
    fn podman(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .args(["--runtime", BIN, "--cgroup-manager", "cgroupfs"])
            .args(args)
            .output()
            .unwrap()
    }

    /// `podman run` with the flags this host needs (podman refuses to copy its rlimits).
    fn run(&mut self, flags: &[&str], cmd: &[&str]) -> Output {
        if let Some(i) = flags.iter().position(|f| *f == "--name") {
            self.names.push(flags[i + 1].to_owned());
        }
        let mut args = vec![
            "run",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        args.extend_from_slice(flags);
        args.push(&self.image);
        args.extend_from_slice(cmd);
        self.podman(&args)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.podman(&["rm", "--force", name]);
        }
        let _ = self.plain(&["rmi", "--force", &self.image]);
    }
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "exit {:?}: {} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn podman_runs_execs_logs_and_stops_containers_on_isolab_runtime() {
    if !can_run() {
        return;
    }
    let mut p = Podman::new();
    let out = ok(p.run(&["--rm"], &["echo", "hello from isolab-runtime"]));
    assert_eq!(stdout(&out), "hello from isolab-runtime");
    let code = p.run(&["--rm"], &["sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7));

    let name = format!("isolab-rt-{}", std::process::id());
    ok(p.run(
        &["-d", "--name", &name],
        &["sh", "-c", "echo started; exec sleep 1000"],
    ));
    let ps = ok(p.podman(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(
        stdout(&ps)
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("Up")),
        "{}",
        stdout(&ps)
    );
    let exec = ok(p.podman(&["exec", &name, "sh", "-c", "echo $((6 * 7)); hostname"]));
    let exec = stdout(&exec);
    assert!(exec.starts_with("42\n"), "{exec}");
    let logs = ok(p.podman(&["logs", &name]));
    assert!(stdout(&logs).contains("started"), "{}", stdout(&logs));
    ok(p.podman(&["stop", "-t", "1", &name]));
    let ps = ok(p.podman(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
    assert!(
        stdout(&ps)
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("Exited")),
        "{}",
        stdout(&ps)
    );
    ok(p.podman(&["rm", &name]));
    p.names.clear();
    // Nothing of the containers is left under the runtime's state root.
    let left: Vec<String> = std::fs::read_dir(isolab_runtime::state::DEFAULT_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let ps = ok(p.podman(&["ps", "-a", "-q", "--no-trunc"]));
    for id in left {
        assert!(
            stdout(&ps).contains(&id),
            "state of a removed container left behind: {id}"
        );
    }
}
