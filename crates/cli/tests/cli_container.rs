//! The `isolab container` command as a user meets it: bad input, exit codes, signals, leaks.

mod common;
use common::wait_for_sleep;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn can_run() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox missing (run scripts/setup.sh)");
        return false;
    }
    true
}

struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Home {
        Home(
            tempfile::Builder::new()
                .prefix("isolab-home-")
                .tempdir()
                .unwrap(),
        )
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn isolab(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_isolab"));
        cmd.env("ISOLAB_HOME", self.path());
        cmd
    }
    fn run(&self, args: &[&str]) -> Output {
        self.isolab()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
    fn containers(&self) -> Vec<String> {
        let dir = self.path().join("containers");
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn runs_a_command_in_the_default_image() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let out = home.run(&[
        "container",
        "run",
        "--rm",
        "--",
        "sh",
        "-c",
        "echo hi from $$",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi from 1\n");
    assert!(home.containers().is_empty(), "--rm leaves nothing");
}

#[test]
fn exit_code_propagates_and_kept_containers_have_logs() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let out = home.run(&[
        "container",
        "run",
        "--name",
        "keep",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let logs = home.run(&["container", "logs", "keep"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        text.contains("stdout out") && text.contains("stderr err"),
        "{text}"
    );
    let ls = home.run(&["container", "ls"]);
    assert!(String::from_utf8_lossy(&ls.stdout).contains("keep"));
    assert!(home.run(&["container", "rm", "keep"]).status.success());
    assert!(home.containers().is_empty());
}

/// Bad input: one line on stderr that names the problem, a non-zero exit, nothing created.
#[test]
fn bad_input_gets_one_clear_line_and_creates_nothing() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let bad_bundle = tempfile::tempdir().unwrap();
    std::fs::write(bad_bundle.path().join("config.json"), "{ not json").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--memory", "-5M", "--", "true"], "-5M"),
        (vec!["--cpus", "abc", "--", "true"], "abc"),
        (vec!["--pids-limit", "0", "--", "true"], "pids"),
        (
            vec!["--image", "no-such-image", "--", "true"],
            "no-such-image",
        ),
        (
            vec!["--bundle", bad_bundle.path().to_str().unwrap()],
            "config.json",
        ),
        (
            vec!["--rootfs", "/no/such/dir", "--", "true"],
            "/no/such/dir",
        ),
        (vec!["--namespaces", "pid,bogus", "--", "true"], "bogus"),
        (vec!["-v", "/no/such:/x", "--", "true"], "/no/such"),
    ];
    for (args, needle) in cases {
        let mut full = vec!["container", "run", "--rm"];
        full.extend(args.iter());
        let out = home.run(&full);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{args:?}: {err}"
        );
        assert!(
            home.containers().is_empty(),
            "{args:?} left a container dir"
        );
    }
    let out = home.run(&["container", "run", "--rm", "--", "no-such-cmd"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("no-such-cmd"));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(home.containers().is_empty());
}

#[test]
fn non_root_is_told_to_use_sudo() {
    if !can_run() || crate_path("setpriv").is_none() {
        return;
    }
    let home = Home::new();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_isolab"))
        .args(["container", "run", "--", "true"])
        .env("ISOLAB_HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("root"), "{}", stderr(&out));
}

fn crate_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[test]
fn sigterm_to_isolab_stops_the_container_and_cleans_up() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let mut child = home
        .isolab()
        .args(["container", "run", "--rm", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let cpid = wait_for_sleep(child.id());
    let start = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    // sleep as PID 1 ignores SIGTERM, so isolab kills it after the grace period.
    assert_eq!(status.code(), Some(137));
    assert!(start.elapsed() < Duration::from_secs(6));
    assert!(!Path::new(&format!("/proc/{cpid}")).exists());
    assert!(home.containers().is_empty());
}

#[test]
fn env_workdir_hostname_and_user_flags() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let out = home.run(&[
        "container",
        "run",
        "--rm",
        "-e",
        "GREETING=hej",
        "-w",
        "/tmp",
        "--hostname",
        "lab1",
        "-u",
        "1000:1000",
        "--",
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(hostname) $(id -u):$(id -g)",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hej /tmp lab1 1000:1000\n"
    );
}

/// A write inside is not in the image, and survives only through commit.
#[test]
fn commit_turns_a_containers_changes_into_a_new_image() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let out = home.run(&[
        "container",
        "run",
        "--name",
        "work",
        "--",
        "sh",
        "-c",
        "echo v1 > /note; rm /etc/passwd",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A fresh container from the same image does not see the change...
    let out = home.run(&[
        "container",
        "run",
        "--rm",
        "--",
        "sh",
        "-c",
        "cat /note 2>/dev/null || echo none",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "none\n");
    // ...one from the committed image does, and the deletion too.
    let out = home.run(&["commit", "work", "noted", "-m", "add a note"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = home.run(&[
        "container",
        "run",
        "--rm",
        "--image",
        "noted",
        "--",
        "sh",
        "-c",
        "cat /note; ls /etc/passwd 2>&1 | grep -c 'No such'",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "v1\n1\n",
        "{}",
        stderr(&out)
    );
    let ls = home.run(&["image", "ls"]);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(text.contains("noted") && text.contains("busybox"), "{text}");
}

/// The bundle `crun spec` writes runs under isolab (and crun, in the benches).
#[test]
fn an_oci_bundle_from_crun_spec_runs() {
    if !can_run() || crate_path("crun").is_none() {
        eprintln!("skipped: crun not installed (scripts/setup.sh installs it)");
        return;
    }
    let home = Home::new();
    let bundle = tempfile::tempdir().unwrap();
    let rootfs = bundle.path().join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/hostname")).unwrap();
    let st = Command::new("crun")
        .arg("spec")
        .current_dir(bundle.path())
        .status()
        .unwrap();
    assert!(st.success());
    let path = bundle.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["args"] = serde_json::json!(["sh", "-c", "echo bundle $$ $(hostname)"]);
    config["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = home.run(&[
        "container",
        "run",
        "--rm",
        "--bundle",
        bundle.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // crun spec sets hostname "crun" and the pid namespace makes sh PID 1.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bundle 1 crun\n");
}

/// Kills (and reaps) a spawned isolab if the test fails half-way, so no container outlives it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pause_freezes_and_resume_thaws() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let out_dir = tempfile::tempdir().unwrap();
    let volume = format!("{}:/out", out_dir.path().display());
    // A counter, not `date`: busybox's date has only whole seconds.
    let mut child = KillOnDrop(
        home.isolab()
            .args([
                "container",
                "run",
                "--name",
                "ticker",
                "-v",
                &volume,
                "--",
                "sh",
                "-c",
                "i=0; while :; do i=$((i+1)); echo $i > /out/t; sleep 0.05; done",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tick = out_dir.path().join("t");
    let read_tick = || std::fs::read_to_string(&tick).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_tick().trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the container never started ticking"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = home.run(&["container", "pause", "ticker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(100));
    let frozen = read_tick();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(read_tick(), frozen, "a paused container made progress");
    let out = home.run(&["container", "resume", "ticker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(400));
    assert_ne!(read_tick(), frozen, "resume did not thaw it");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let _ = child.0.wait();
    assert!(home.run(&["container", "rm", "ticker"]).status.success());
}

#[test]
fn tty_gives_the_workload_a_terminal() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = home
        .isolab()
        .args([
            "container",
            "run",
            "--rm",
            "-t",
            "--",
            "sh",
            "-c",
            "tty; test -t 0 && test -t 1 && echo stdin-and-stdout-are-a-tty; read x; echo got-$x",
        ])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    // Typed input reaches the workload through isolab's relay.
    std::io::Write::write_all(&mut master, b"typed\n").unwrap();
    let status = child.wait().unwrap();
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = std::io::Read::read(&mut master, &mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(status.success(), "{text}");
    assert!(
        text.contains("/dev/pts/0")
            && text.contains("stdin-and-stdout-are-a-tty")
            && text.contains("got-typed"),
        "{text}"
    );
}

/// An ordinary user can run a rootless container with --userns: root inside is the caller
/// outside (a one-id map), there is no cgroup, and the writable layer still works.
#[test]
fn rootless_userns_container_runs_as_the_caller() {
    if !can_run() || crate_path("setpriv").is_none() {
        return;
    }
    let home = Home::new();
    std::os::unix::fs::chown(home.path(), Some(65534), Some(65534)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_isolab"))
            .args(args)
            .env("ISOLAB_HOME", home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = as_nobody(&[
        "container",
        "run",
        "--rm",
        "--userns",
        "--",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; echo hi > /etc/new && cat /etc/new; echo $$",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines[0], "0", "{text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"]
    );
    assert_eq!(&lines[2..], ["hi", "1"]);
    assert!(home.containers().is_empty());
    // What needs the host's root is refused with one line.
    let out = as_nobody(&[
        "container",
        "run",
        "--rm",
        "--userns",
        "--memory",
        "64M",
        "--",
        "true",
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("cgroups"),
        "{}",
        stderr(&out)
    );
}

/// `kill -9` of isolab itself cannot be cleaned up after; the container dies with it
/// (PDEATHSIG), and `isolab container prune` removes what is left: the record and the cgroup.
#[test]
fn prune_cleans_up_after_a_killed_isolab() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let mut child = KillOnDrop(
        home.isolab()
            .args(["container", "run", "--name", "victim", "--", "sleep", "30"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let container = wait_for_sleep(child.0.id());
    let id = home
        .containers()
        .into_iter()
        .next()
        .expect("a container record");
    let cgroups_of = |id: &str| -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let mut stack = vec![entry.path()];
            while let Some(dir) = stack.pop() {
                for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        if e.file_name() == id.as_ref() as &std::ffi::OsStr {
                            found.push(e.path());
                        }
                        stack.push(e.path());
                    }
                }
            }
        }
        found
    };
    assert!(!cgroups_of(&id).is_empty());
    child.0.kill().unwrap();
    let _ = child.0.wait();
    // The container went with its launcher.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{container}")).exists() {
        assert!(Instant::now() < deadline, "the container outlived isolab");
        std::thread::sleep(Duration::from_millis(10));
    }
    // prune leaves empty cgroups younger than 2 s alone (a start may be in progress).
    std::thread::sleep(Duration::from_millis(2100));
    let out = home.run(&["container", "prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.containers().is_empty());
    assert!(cgroups_of(&id).is_empty(), "prune left cgroups behind");
}

/// Without --init the command is PID 1 and shrugs off `timeout`'s SIGTERM; with it, a tiny
/// init is PID 1, the command is PID 2 and the signal lands.
#[test]
fn init_makes_the_workload_pid_2_and_signals_land() {
    if !can_run() {
        return;
    }
    let home = Home::new();
    let out = home.run(&[
        "container",
        "run",
        "--rm",
        "--init",
        "--",
        "sh",
        "-c",
        "echo $$",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    let start = Instant::now();
    let out = home.run(&[
        "container",
        "run",
        "--rm",
        "--init",
        "--",
        "timeout",
        "1",
        "sleep",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(128 + 15), "{}", stderr(&out));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let out = home.run(&[
        "container",
        "run",
        "--rm",
        "--init",
        "--",
        "sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5));
}

/// The bridge is one host-wide network whatever the store: two users' homes (or a lab and a
/// test run) draw addresses from one record, reach each other, and the first one's exit does
/// not take the namespace from under the other's running container.
#[test]
fn bridged_containers_of_two_stores_share_one_network() {
    use std::io::BufRead;
    if !can_run() {
        return;
    }
    let (first, second) = (Home::new(), Home::new());
    let show_addr = "ip -o -4 addr show eth0 | awk '{print $4}' | cut -d/ -f1";
    let mut a = first
        .isolab()
        .args(["container", "run", "--rm", "--net", "bridge", "--"])
        .args(["sh", "-c", &format!("{show_addr}; sleep 2")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut a_addr = String::new();
    std::io::BufReader::new(a.stdout.take().unwrap())
        .read_line(&mut a_addr)
        .unwrap();
    let a_addr = a_addr.trim().to_string();
    assert!(a_addr.starts_with("10.77."), "first container: {a_addr:?}");

    let b = second
        .isolab()
        .args(["container", "run", "--rm", "--net", "bridge", "--"])
        .args([
            "sh",
            "-c",
            &format!(
                "{show_addr}; ping -c 1 -W 2 {a_addr} >/dev/null && echo reached; sleep 5; \
                 ping -c 1 -W 2 10.77.0.1 >/dev/null && echo gateway"
            ),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let a_out = a.wait_with_output().unwrap();
    assert!(a_out.status.success(), "{}", stderr(&a_out));
    // The first store's only container is gone; the second's still runs on the bridge.
    assert!(
        Path::new("/run/netns/isolab").exists(),
        "the first store's exit deleted the shared namespace"
    );
    let b_out = b.wait_with_output().unwrap();
    assert!(b_out.status.success(), "{}", stderr(&b_out));
    let text = String::from_utf8_lossy(&b_out.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_ne!(lines[0], a_addr, "both stores leased the same address");
    assert_eq!(&lines[1..], ["reached", "gateway"], "{text}");
}

/// A store of its own for user `nobody` (65534) and a way to run isolab as that user.
fn rootless_home() -> Home {
    let home = Home::new();
    std::os::unix::fs::chown(home.path(), Some(65534), Some(65534)).unwrap();
    home
}

fn as_nobody(home: &Home, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_isolab"))
        .args(args)
        .env("ISOLAB_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// An ordinary user commits a rootless container: the layer keeps the files as the caller's,
/// which is container root again in the next rootless container.
#[test]
fn rootless_commit_keeps_files_as_the_callers() {
    if !can_run() || crate_path("setpriv").is_none() {
        return;
    }
    let home = rootless_home();
    let out = as_nobody(
        &home,
        &[
            "container",
            "run",
            "--name",
            "work",
            "--userns",
            "--",
            "sh",
            "-c",
            "echo v1 > /note; mkdir /d; echo x > /d/f",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_nobody(&home, &["commit", "work", "noted"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_nobody(
        &home,
        &[
            "container",
            "run",
            "--rm",
            "--userns",
            "--image",
            "noted",
            "--",
            "sh",
            "-c",
            "cat /note /d/f; stat -c %u /note /d",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "v1\nx\n0\n0\n",
        "{}",
        stderr(&out)
    );
}

/// An ordinary user removes a kept rootless container, overlay's mode-000 `work/work` included.
#[test]
fn rootless_container_rm_removes_everything() {
    if !can_run() || crate_path("setpriv").is_none() {
        return;
    }
    let home = rootless_home();
    let out = as_nobody(
        &home,
        &[
            "container",
            "run",
            "--name",
            "kept",
            "--userns",
            "--",
            "sh",
            "-c",
            "echo hi > /f",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(home.containers().len(), 1);
    let out = as_nobody(&home, &["container", "rm", "kept"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.containers().is_empty(), "{:?}", home.containers());
}
