//! The OCI lifecycle for real, through the `isolab-runtime` binary as podman drives it: each
//! command a separate process, a busybox bundle, real namespaces and cgroups (root only).
//!
//! The test process makes itself a child subreaper, as conmon does, so the containers that
//! `create` leaves behind are re-parented to it and it can reap them.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_isolab-runtime");

fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (namespaces, cgroups, mounts)");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox missing (run scripts/setup.sh)");
        return false;
    }
    // SAFETY: prctl with integer arguments; sets a flag of this test process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    true
}

/// A bundle (busybox rootfs + config.json), a state root and a host dir mounted at /out.
struct Bundle {
    tmp: tempfile::TempDir,
}

impl Bundle {
    fn new(args: &[&str]) -> Bundle {
        Bundle::with(args, |_| {})
    }

    fn with(args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("bundle/rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "out"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("out")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "cat", "echo", "sleep", "true", "hostname", "id", "ls"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let mut config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": args,
                        "env": ["PATH=/bin"], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "oci-test",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/out", "type": "bind", "source": tmp.path().join("out"), "options": ["rbind", "rw"]},
                {"destination": "/run/x", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"]}
            ],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
                                     {"type": "uts"}, {"type": "network"}]}
        });
        edit(&mut config);
        std::fs::write(
            tmp.path().join("bundle/config.json"),
            serde_json::to_string(&config).unwrap(),
        )
        .unwrap();
        Bundle { tmp }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("bundle")
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// Runs `isolab-runtime --root <state> ARGS`.
    fn rt(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("--root").arg(self.root()).args(args);
        output_via_files(&mut cmd)
    }

    fn create(&self, id: &str) -> Output {
        let bundle = self.dir();
        self.rt(&["create", "--bundle", bundle.to_str().unwrap(), id])
    }

    fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        assert!(out.status.success(), "state: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A failed assertion must not leave containers behind: delete whatever is still under this
/// bundle's state root.
impl Drop for Bundle {
    fn drop(&mut self) {
        let ids: Vec<String> = std::fs::read_dir(self.root())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for id in ids {
            let _ = self.rt(&["delete", "--force", &id]);
        }
    }
}

/// Runs `cmd` with stdout and stderr in files, not pipes: a created container inherits them
/// and keeps them open, so reading a pipe to its end would wait for the container to exit
/// (conmon hands the runtime its own pipes for the same reason).
fn output_via_files(cmd: &mut Command) -> Output {
    use std::io::{Read, Seek};
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |f: &mut std::fs::File| {
        let mut v = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// Reaps `pid` (re-parented to us as subreaper) and returns its exit code.
fn reap(pid: i32) -> i32 {
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap() {
        nix::sys::wait::WaitStatus::Exited(_, c) => c,
        nix::sys::wait::WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        other => panic!("unexpected {other:?}"),
    }
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(t) = std::fs::read_to_string(path) {
            if !t.is_empty() {
                return t;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn create_builds_everything_but_runs_nothing_until_start() {
    if !can_run() {
        return;
    }
    let b = Bundle::with(
        &[
            "sh",
            "-c",
            "umask > /out/umask; hostname > /out/ran; exit 7",
        ],
        |c| {
            c["process"]["user"]["umask"] = 63.into();
        },
    );
    ok(b.create("c1"));
    let st = b.state("c1");
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["ociVersion"], "1.0.2");
    let pid = st["pid"].as_i64().unwrap() as i32;
    // The process exists in its own namespaces and cgroup...
    let ns = |p: &str| std::fs::read_link(p).unwrap();
    assert_ne!(ns(&format!("/proc/{pid}/ns/pid")), ns("/proc/self/ns/pid"));
    assert_ne!(ns(&format!("/proc/{pid}/ns/mnt")), ns("/proc/self/ns/mnt"));
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains("/isolab/c1"), "{cgroup}");
    // ...but the program has not run.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!b.out().join("ran").exists(), "ran before start");
    ok(b.rt(&["start", "c1"]));
    assert_eq!(wait_for_file(&b.out().join("ran")), "oci-test\n");
    assert_eq!(wait_for_file(&b.out().join("umask")), "0077\n");
    assert_eq!(reap(pid), 7);
    assert_eq!(b.state("c1")["status"], "stopped");
    // A stopped container cannot be started again or signalled.
    assert!(!b.rt(&["start", "c1"]).status.success());
    let kill = b.rt(&["kill", "c1", "TERM"]);
    assert!(!kill.status.success());
    ok(b.rt(&["delete", "c1"]));
    assert!(!b.root().join("c1").exists(), "state left behind");
    assert!(!cgroup_dirs_named("c1"), "cgroup left behind after delete");
}

/// Whether any cgroup hierarchy still has an `isolab/<id>` directory at its root.
fn cgroup_dirs_named(id: &str) -> bool {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .any(|h| h.path().join("isolab").join(id).exists())
}

#[test]
fn kill_and_delete_a_running_container_and_nothing_is_left() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    ok(b.create("k1"));
    let pid = b.state("k1")["pid"].as_i64().unwrap() as i32;
    ok(b.rt(&["start", "k1"]));
    assert_eq!(b.state("k1")["status"], "running");
    // Not stopped: a plain delete is refused and says why.
    let refused = b.rt(&["delete", "k1"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("running"), "{}", text(&refused));
    let list = ok(b.rt(&["list", "-q"]));
    assert_eq!(String::from_utf8_lossy(&list.stdout), "k1\n");
    let ps: Vec<i32> =
        serde_json::from_slice(&ok(b.rt(&["ps", "--format", "json", "k1"])).stdout).unwrap();
    assert_eq!(ps, [pid]);
    ok(b.rt(&["pause", "k1"]));
    assert_eq!(b.state("k1")["status"], "paused");
    ok(b.rt(&["resume", "k1"]));
    assert_eq!(b.state("k1")["status"], "running");
    ok(b.rt(&["kill", "k1", "KILL"]));
    assert_eq!(reap(pid), 128 + libc::SIGKILL);
    ok(b.rt(&["delete", "k1"]));
    assert!(!cgroup_dirs_named("k1"));
    // delete --force of a running one, too.
    ok(b.create("k2"));
    let pid = b.state("k2")["pid"].as_i64().unwrap() as i32;
    ok(b.rt(&["start", "k2"]));
    ok(b.rt(&["delete", "--force", "k2"]));
    assert_eq!(reap(pid), 128 + libc::SIGKILL);
    assert!(!b.root().join("k2").exists());
    assert!(!cgroup_dirs_named("k2"));
}

#[test]
fn exec_joins_the_running_container() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    ok(b.create("e1"));
    let pid = b.state("e1")["pid"].as_i64().unwrap() as i32;
    ok(b.rt(&["start", "e1"]));
    let out = ok(b.rt(&[
        "exec",
        "e1",
        "sh",
        "-c",
        "hostname; echo $$; cat /proc/1/cmdline",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "oci-test", "{stdout}");
    assert_ne!(
        lines[1], "1",
        "the exec'd shell is not the container's init"
    );
    assert!(lines[2].starts_with("sleep"), "{stdout}");
    // config.json's tmpfs entry is a new filesystem with its options.
    let mounts = ok(b.rt(&["exec", "e1", "cat", "/proc/mounts"]));
    let mounts = String::from_utf8_lossy(&mounts.stdout).into_owned();
    let run = mounts
        .lines()
        .find(|l| l.contains(" /run/x "))
        .unwrap_or_default();
    assert!(
        run.starts_with("tmpfs /run/x tmpfs")
            && run.contains("nosuid")
            && run.contains("size=1024k"),
        "{mounts}"
    );
    let code = b.rt(&["exec", "e1", "sh", "-c", "exit 3"]);
    assert_eq!(code.status.code(), Some(3), "{}", text(&code));
    let missing = b.rt(&["exec", "e1", "no-such-command"]);
    assert_eq!(missing.status.code(), Some(127), "{}", text(&missing));
    assert!(text(&missing).contains("not found"), "{}", text(&missing));
    // --process, as conmon passes it, detached, with a pid file.
    let process = b.tmp.path().join("process.json");
    std::fs::write(
        &process,
        r#"{"args": ["sh", "-c", "id -u > /out/exec-id"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let pid_file = b.tmp.path().join("exec.pid");
    ok(b.rt(&[
        "exec",
        "--process",
        process.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "e1",
    ]));
    let exec_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(reap(exec_pid), 0);
    assert_eq!(
        std::fs::read_to_string(b.out().join("exec-id")).unwrap(),
        "0\n"
    );
    ok(b.rt(&["delete", "--force", "e1"]));
    reap(pid);
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    if !can_run() {
        return;
    }
    let log = tempfile::tempdir().unwrap();
    let host_log = log.path().join("hooks");
    let hook = |name: &str| {
        serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("read -r s; echo \"{name} $s\" >> {}", host_log.display())]})
    };
    // startContainer runs inside the container: its path resolves there, and it logs to /out.
    let in_container = serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /out/hooks"]});
    let b = Bundle::with(&["true"], |c| {
        c["hooks"] = serde_json::json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "startContainer": [in_container],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
    });
    ok(b.create("h1"));
    let pid = b.state("h1")["pid"].as_i64().unwrap() as i32;
    ok(b.rt(&["start", "h1"]));
    reap(pid);
    ok(b.rt(&["delete", "h1"]));
    let lines: Vec<(String, Value)> = std::fs::read_to_string(&host_log)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, json) = l.split_once(' ').unwrap();
            (name.to_owned(), serde_json::from_str(json).unwrap())
        })
        .collect();
    let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
    for (name, state) in &lines {
        assert_eq!(state["id"], "h1", "{name}: {state}");
    }
    assert_eq!(lines[0].1["pid"].as_i64(), Some(pid as i64));
    assert_eq!(lines[3].1["status"], "running");
    assert_eq!(lines[4].1["status"], "stopped");
    assert_eq!(
        std::fs::read_to_string(b.out().join("hooks")).unwrap(),
        "startContainer\n"
    );
}

#[test]
fn a_failing_create_hook_fails_create_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let b = Bundle::with(&["true"], |c| {
        c["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/false"}]});
    });
    let out = b.create("f1");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("createRuntime hook /bin/false failed"),
        "{}",
        text(&out)
    );
    assert!(!b.root().join("f1").exists());
    assert!(!cgroup_dirs_named("f1"));
}

#[test]
fn run_returns_the_exit_code_and_cleans_up() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "exit 5"]);
    let bundle = b.dir();
    let out = b.rt(&["run", "--bundle", bundle.to_str().unwrap(), "r1"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(!b.root().join("r1").exists());
    assert!(!cgroup_dirs_named("r1"));
}

#[test]
fn bad_input_gets_one_line_errors() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    let one_line = |out: &Output, want: &str| {
        assert!(!out.status.success(), "{}", text(out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "want {want:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    one_line(&b.rt(&["state", "nope"]), "does not exist");
    one_line(&b.rt(&["kill", "nope", "TERM"]), "does not exist");
    one_line(&b.rt(&["start", "../x"]), "invalid container id");
    ok(b.create("d1"));
    let pid = b.state("d1")["pid"].as_i64().unwrap() as i32;
    one_line(&b.create("d1"), "already exists");
    one_line(&b.rt(&["kill", "d1", "SIGNOPE"]), "unknown signal");
    let empty = tempfile::tempdir().unwrap();
    one_line(
        &b.rt(&["create", "--bundle", empty.path().to_str().unwrap(), "d2"]),
        "config.json",
    );
    assert!(!b.root().join("d2").exists());
    // A corrupt state file: named, and delete --force still cleans up.
    std::fs::write(b.root().join("d1/state.json"), "{garbage").unwrap();
    one_line(&b.rt(&["state", "d1"]), "corrupt");
    ok(b.rt(&["delete", "--force", "d1"]));
    assert!(!b.root().join("d1").exists());
    // Its process was blocked in create; kill it ourselves (its record is gone).
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    reap(pid);
    assert!(!cgroup_dirs_named("d1"));
    // JSON log lines with --log-format json.
    let log = b.tmp.path().join("log.json");
    let out = Command::new(BIN)
        .args([
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
    one_line(
        &Command::new(BIN)
            .args(["--systemd-cgroup", "list"])
            .output()
            .unwrap(),
        "--cgroup-manager cgroupfs",
    );
}

#[test]
fn version_and_features_describe_the_runtime() {
    let out = ok(Command::new(BIN).arg("--version").output().unwrap());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("spec: 1.2.1"), "{text}");
    let out = ok(Command::new(BIN).arg("features").output().unwrap());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ociVersionMin"], "1.0.0");
    assert!(doc["hooks"].as_array().unwrap().len() == 6);
    assert!(doc["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&Value::from("network")));
}

#[test]
fn preserve_fds_passes_exactly_that_many_descriptors() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&[
        "sh",
        "-c",
        "cat <&3 > /out/fd3; (cat <&4 || echo closed) > /out/fd4 2>/dev/null",
    ]);
    let input = b.tmp.path().join("input");
    std::fs::write(&input, "passed\n").unwrap();
    let (f3, f4) = (
        std::fs::File::open(&input).unwrap(),
        std::fs::File::open(&input).unwrap(),
    );
    let (fd3, fd4) = (
        std::os::fd::AsRawFd::as_raw_fd(&f3),
        std::os::fd::AsRawFd::as_raw_fd(&f4),
    );
    let bundle = b.dir();
    let mut cmd = Command::new(BIN);
    cmd.arg("--root").arg(b.root()).args([
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        bundle.to_str().unwrap(),
        "p1",
    ]);
    let onto_3_and_4 = move || {
        for (from, to) in [(fd3, 3), (fd4, 4)] {
            // dup2 onto itself does nothing, and would leave the close-on-exec flag std set.
            let rc = if from == to {
                // SAFETY: fcntl on an open descriptor with an integer argument.
                unsafe { libc::fcntl(to, libc::F_SETFD, 0) }
            } else {
                // SAFETY: dup2 in the forked child before exec; the source stays open in the
                // parent until the child has exec'ed.
                unsafe { libc::dup2(from, to) }
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the closure only calls dup2 and fcntl, which are async-signal-safe.
    unsafe { std::os::unix::process::CommandExt::pre_exec(&mut cmd, onto_3_and_4) };
    ok(output_via_files(&mut cmd));
    assert_eq!(
        std::fs::read_to_string(b.out().join("fd3")).unwrap(),
        "passed\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.out().join("fd4")).unwrap(),
        "closed\n"
    );
}
