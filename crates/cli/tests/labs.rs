//! `isolab lab`: every lab run for real on this machine, each ending in PASS or in a SKIP whose
//! reason is a fact of this host, and nothing the labs made left behind — also after Ctrl-C.
//!
//! The leak checks are scoped to what the labs made, so containers other people run on the
//! same machine do not disturb them: the labs run with TMPDIR pointing at a directory of the
//! test's own (their temp dirs and ISOLAB_HOMEs live there), and inside a cgroup of the test's
//! own in every hierarchy (isolab nests its containers' cgroups under the caller's), so the
//! test can look for leftover cgroups, processes and mounts there and only there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn isolab() -> &'static str {
    env!("CARGO_BIN_EXE_isolab")
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Words that only appear in SKIP reasons naming a fact of the host.
const HOST_FACTS: &[&str] = &[
    "this host",
    "this kernel",
    "not installed here",
    "no guest kernel built on this machine",
    "not measured here",
];

#[test]
fn unknown_lab_is_one_line_listing_the_labs() {
    let out = Command::new(isolab())
        .args(["lab", "run", "no-such-lab"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("1 chroot") && stderr.contains("14 startup-race"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn list_names_every_lab_and_which_need_root() {
    let out = Command::new(isolab())
        .args(["lab", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let labs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let labs = labs.as_array().unwrap();
    assert!(labs.len() >= 14);
    assert!(labs.iter().any(|l| l["needs_root"] == false));
    assert!(labs
        .iter()
        .all(|l| l["claims"].as_array().is_some_and(|c| !c.is_empty())));
    let table = Command::new(isolab())
        .args(["lab", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("chroot") && text.contains("ROOT"), "{text}");
}

#[test]
fn json_on_stdout_is_only_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(isolab())
        .args(["lab", "run", "uts-ipc", "--json"])
        .env("TMPDIR", tmp.path())
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    let results: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(results[0]["name"], "uts-ipc");
    assert_eq!(results[0]["verdict"], "PASS", "{results:#}");
    assert!(results[0]["steps"][0]["command"].is_string());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lab 3 uts-ipc: PASS"));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn explain_prints_the_background_and_runs_nothing() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(isolab())
        .args(["lab", "run", "6", "--explain"])
        .env("ISOLAB_HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("user-namespace") && text.contains("What to look for"),
        "{text}"
    );
    assert!(!text.contains("$ isolab"), "--explain ran a step: {text}");
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}

#[test]
fn every_lab_passes_or_skips_for_a_reason_and_leaves_nothing() {
    if !is_root() {
        eprintln!("skipped: the labs need root (namespaces, cgroups, host files)");
        return;
    }
    let scope = Scope::new();
    let json = scope.tmp.path().join("results.json");
    let started = Instant::now();
    let out = scope.run(
        &["lab", "run", "--all", "--json", json.to_str().unwrap()],
        None,
    );
    eprintln!(
        "isolab lab run --all took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(
        results.len(),
        14,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut failures = Vec::new();
    for lab in results {
        let number = lab["number"].as_u64().unwrap();
        for check in lab["checks"].as_array().unwrap() {
            let reason = check["reason"].as_str().unwrap_or_default();
            let ok = match check["verdict"].as_str() {
                Some("PASS") => true,
                Some("SKIP") => HOST_FACTS.iter().any(|f| reason.contains(f)),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "lab {number} {}: {} {reason}",
                    lab["name"], check["name"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{failures:#?}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    scope.assert_clean();
}

#[test]
fn labs_that_need_no_root_pass_for_an_ordinary_user() {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        eprintln!("skipped: switching to an ordinary user needs root");
        return;
    }
    let as_nobody = || {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", isolab()]);
        cmd
    };
    // The binary lives wherever the checkout is; under a 0700 home uid 65534 cannot reach it.
    match as_nobody().arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipped: uid 65534 cannot run {}: {}",
                isolab(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: setpriv (util-linux) cannot be run: {e}");
            return;
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("isolab-labs-user-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let json = tmp.path().join("results.json");
    let out = as_nobody()
        .args(["lab", "run", "--all", "--json", json.to_str().unwrap()])
        .env("HOME", tmp.path())
        .env("TMPDIR", tmp.path())
        .env_remove("ISOLAB_HOME")
        .output()
        .unwrap();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    let mut rootless = 0;
    for lab in results.as_array().unwrap() {
        let verdict = lab["verdict"].as_str().unwrap();
        let reason = lab["checks"][0]["reason"].as_str().unwrap_or_default();
        if verdict == "SKIP" && reason.contains("this host") {
            eprintln!("lab {}: {reason}", lab["number"]);
            return;
        }
        if verdict == "SKIP" && reason.contains("needs root") {
            continue;
        }
        rootless += 1;
        assert_eq!(
            verdict,
            "PASS",
            "{lab:#}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(rootless >= 3, "labs that ran without root: {rootless}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn ctrl_c_in_the_middle_of_a_lab_removes_everything() {
    if !is_root() {
        eprintln!("skipped: the freezer lab needs root");
        return;
    }
    let scope = Scope::new();
    let tmp = scope.tmp.path().to_path_buf();
    // Interrupt once the freezer lab's container is running (its counter file exists).
    let ticking = move || {
        std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("shared/ticks").exists())
    };
    let out = scope.run(&["lab", "run", "freezer"], Some(Box::new(ticking)));
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    scope.assert_clean();
}

/// The labs' own corner of the machine: a TMPDIR and a cgroup in every hierarchy.
struct Scope {
    tmp: tempfile::TempDir,
    cgroups: Vec<PathBuf>,
}

impl Scope {
    fn new() -> Scope {
        let tmp = tempfile::Builder::new()
            .prefix("isolab-labs-test-")
            .tempdir()
            .unwrap();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("isolab-labs-test-{}-{n}", std::process::id());
        let cgroups = own_cgroup_dirs()
            .into_iter()
            .map(|parent| {
                let dir = parent.join(&name);
                std::fs::create_dir(&dir).unwrap();
                // A new cpuset child has no CPUs until given its parent's.
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    if let Ok(v) = std::fs::read_to_string(parent.join(f)) {
                        std::fs::write(dir.join(f), v.trim()).unwrap();
                    }
                }
                dir
            })
            .collect();
        Scope { tmp, cgroups }
    }

    /// Runs isolab inside the scope; `interrupt_when` sends SIGINT to its process group (as a
    /// terminal's Ctrl-C does) once it holds.
    fn run(&self, args: &[&str], interrupt_when: Option<Box<dyn Fn() -> bool>>) -> Output {
        use std::os::unix::process::CommandExt;
        let procs: Vec<String> = self
            .cgroups
            .iter()
            .map(|d| d.join("cgroup.procs").display().to_string())
            .collect();
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"for f in $SCOPE_CGROUPS; do echo $$ > "$f" || exit 99; done; exec "$@""#)
            .arg("sh")
            .arg(isolab())
            .args(args)
            .env("SCOPE_CGROUPS", procs.join(" "))
            .env("TMPDIR", self.tmp.path())
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(ready) = interrupt_when {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !ready() {
                assert!(Instant::now() < deadline, "the lab never got going");
                std::thread::sleep(Duration::from_millis(20));
            }
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::killpg(group, nix::sys::signal::SIGINT).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_ne!(
            out.status.code(),
            Some(99),
            "could not join the test cgroups"
        );
        out
    }

    /// Nothing of the labs is left: temp dirs, mounts, cgroups, processes.
    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
        let mounts = isolab_labs::mounts_below(self.tmp.path());
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        for dir in &self.cgroups {
            let children = subdirs(&dir.join("isolab"));
            assert!(children.is_empty(), "cgroups left: {children:?}");
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            assert!(
                procs.trim().is_empty(),
                "processes left in {}: {procs}",
                dir.display()
            );
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        for dir in &self.cgroups {
            for child in subdirs(&dir.join("isolab")) {
                let _ = std::fs::remove_dir(child);
            }
            let _ = std::fs::remove_dir(dir.join("isolab"));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// This process's cgroup directory in each hierarchy with controllers (v1), or in the single
/// v2 hierarchy.
fn own_cgroup_dirs() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let lines = own.lines().filter_map(|l| {
        let mut parts = l.splitn(3, ':');
        Some((parts.next()?, parts.next()?, parts.next()?))
    });
    if root.join("cgroup.controllers").exists() {
        return lines
            .filter(|(_, c, _)| c.is_empty())
            .map(|(_, _, p)| root.join(p.trim_start_matches('/')))
            .collect();
    }
    lines
        .filter(|(_, c, _)| !c.is_empty() && !c.starts_with("name="))
        .map(|(_, c, p)| root.join(c).join(p.trim_start_matches('/')))
        .filter(|d| d.join("cgroup.procs").exists())
        .collect()
}
