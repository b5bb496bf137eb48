//! 200 containers — clean exits, failures, bridge networking, user namespaces, kill -9 of the
//! workload, SIGTERM/SIGINT to isolab — and afterwards the host is exactly as before: mounts,
//! cgroup trees, network namespaces, isolab's state dir, processes.
//!
//! Alone in its own test binary so no other test creates or removes things meanwhile.

mod common;
use common::{container_pid, wait_for_sleep};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    mounts: BTreeSet<String>,
    cgroups: BTreeSet<String>,
    netns: String,
    state: BTreeSet<String>,
}

fn walk_dirs(dir: &Path, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 12 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.insert(e.path().display().to_string());
            walk_dirs(&e.path(), out, depth + 1);
        }
    }
}

fn walk_all(dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        out.insert(e.path().display().to_string());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk_all(&e.path(), out);
        }
    }
}

fn snapshot(home: &Path) -> Snapshot {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        // Drop the mount ids, keep what is mounted where.
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect();
    let mut cgroups = BTreeSet::new();
    walk_dirs(Path::new("/sys/fs/cgroup"), &mut cgroups, 0);
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let mut state = BTreeSet::new();
    walk_all(home, &mut state);
    Snapshot {
        mounts,
        cgroups,
        netns,
        state,
    }
}

#[test]
fn two_hundred_containers_leave_nothing_behind() {
    if !nix::unistd::Uid::effective().is_root() || !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: needs root and /bin/busybox (scripts/setup.sh)");
        return;
    }
    let home = tempfile::Builder::new()
        .prefix("isolab-leaks-")
        .tempdir()
        .unwrap();
    let isolab = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_isolab"));
        c.env("ISOLAB_HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // Warm-up: builds the default image and the state layout (images, layers, the network
    // lock and address cursor), which are meant to persist. Per-container state must not.
    for args in [&["--", "true"][..], &["--net", "bridge", "--", "true"][..]] {
        let mut cmd = isolab();
        cmd.args(["container", "run", "--rm"]).args(args);
        assert!(cmd.status().unwrap().success());
    }
    let before = snapshot(home.path());
    let started = Instant::now();
    let mut kinds = std::collections::BTreeMap::<&str, u32>::new();

    for i in 0..200u32 {
        let kind = match i % 20 {
            0 | 1 => "kill -9 workload",
            2 => "command not found",
            3 => "bridge",
            4 => "userns",
            5 => "oom",
            6 => "sigterm isolab",
            7 => "sigint isolab",
            _ => "true",
        };
        *kinds.entry(kind).or_default() += 1;
        match kind {
            "kill -9 workload" => {
                let mut child = isolab()
                    .args(["container", "run", "--rm", "--", "sleep", "30"])
                    .spawn()
                    .unwrap();
                let pid = wait_for_sleep(child.id());
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .unwrap();
                assert_eq!(child.wait().unwrap().code(), Some(137));
            }
            "sigterm isolab" | "sigint isolab" => {
                let sig = if kind == "sigterm isolab" {
                    nix::sys::signal::Signal::SIGTERM
                } else {
                    nix::sys::signal::Signal::SIGINT
                };
                // A shell that handles the signal exits at once (no grace period needed).
                let mut child = isolab()
                    .args([
                        "container",
                        "run",
                        "--rm",
                        "--",
                        "sh",
                        "-c",
                        "trap 'exit 0' TERM INT; sleep 30 & wait",
                    ])
                    .spawn()
                    .unwrap();
                wait_for_sleep_grandchild(child.id());
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
                let code = child.wait().unwrap().code();
                assert_eq!(code, Some(0), "{kind}");
            }
            "command not found" => {
                assert_eq!(
                    isolab()
                        .args(["container", "run", "--rm", "--", "nope"])
                        .status()
                        .unwrap()
                        .code(),
                    Some(127)
                );
            }
            "bridge" => {
                assert!(isolab()
                    .args(["container", "run", "--rm", "--net", "bridge", "--", "true"])
                    .status()
                    .unwrap()
                    .success());
            }
            "userns" => {
                assert!(isolab()
                    .args(["container", "run", "--rm", "--userns", "--", "true"])
                    .status()
                    .unwrap()
                    .success());
            }
            "oom" => {
                let st = isolab()
                    .args([
                        "container",
                        "run",
                        "--rm",
                        "--memory",
                        "16M",
                        "--",
                        "sh",
                        "-c",
                        "x=$(head -c 67108864 /dev/zero | tr '\\000' x)",
                    ])
                    .status()
                    .unwrap();
                assert_eq!(st.code(), Some(137));
            }
            _ => {
                assert!(isolab()
                    .args([
                        "container",
                        "run",
                        "--rm",
                        "--memory",
                        "64M",
                        "--pids-limit",
                        "64",
                        "--",
                        "true"
                    ])
                    .status()
                    .unwrap()
                    .success());
            }
        }
    }
    eprintln!("200 containers {kinds:?} in {:?}", started.elapsed());
    // The kernel tears network namespaces down asynchronously; give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    let after = snapshot(home.path());
    assert_eq!(before.mounts, after.mounts, "mounts leaked");
    assert_eq!(before.netns, after.netns, "network namespaces leaked");
    let leaked: Vec<_> = after.cgroups.difference(&before.cgroups).collect();
    assert!(leaked.is_empty(), "cgroups leaked: {leaked:?}");
    let leaked: Vec<_> = after.state.symmetric_difference(&before.state).collect();
    assert!(leaked.is_empty(), "state dir changed: {leaked:?}");
}

/// Waits until the shell inside has started its `sleep` (so its trap is installed).
fn wait_for_sleep_grandchild(isolab_pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(sh) = container_pid(isolab_pid) {
            let kids = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
                .unwrap_or_default();
            if !kids.trim().is_empty() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "container never started");
        std::thread::sleep(Duration::from_millis(2));
    }
}
