//! Secure defaults and OCI bundle fidelity, end to end through the `isolab` binary: each bundle
//! field is read back from inside the container.

use serde_json::json;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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

fn isolab(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_isolab"))
        .env("ISOLAB_HOME", home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn containers(home: &Path) -> usize {
    std::fs::read_dir(home.join("containers")).map_or(0, |d| d.count())
}

/// A bundle with a busybox rootfs and a config shaped like `crun spec`'s, running `script`.
fn bundle(script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "grep", "id", "stat", "awk", "wc", "tr"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut config = json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "hostname": "oci",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", script],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "inheritable": [],
                "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys"]
        }
    });
    edit(&mut config);
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    dir
}

fn run_bundle(dir: &Path) -> Output {
    let home = tempfile::tempdir().unwrap();
    let out = isolab(
        home.path(),
        &[
            "container",
            "run",
            "--rm",
            "--bundle",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(containers(home.path()), 0, "a --rm run leaves nothing");
    out
}

/// `key:\tvalue` of /proc/self/status lines, as printed by the scripts below.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim())
        .unwrap_or_else(|| panic!("{key} missing in {out}"))
}

/// The default container as a user meets it: /proc/sys is read-only (EROFS) by default and
/// writable with --privileged (the host's current value is written back unchanged).
#[test]
fn default_container_cannot_write_host_sysctls_privileged_can() {
    if !can_run() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let before = std::fs::read("/proc/sys/kernel/core_pattern").unwrap();
    let script = "cat /proc/sys/kernel/core_pattern > /tmp/cp && cat /tmp/cp > /proc/sys/kernel/core_pattern";
    let out = isolab(
        home.path(),
        &["container", "run", "--rm", "--", "sh", "-c", script],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    let out = isolab(
        home.path(),
        &[
            "container",
            "run",
            "--rm",
            "--privileged",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}

/// --cpus above the host's CPU count is refused with the count, like docker, creating nothing.
#[test]
fn cpus_above_the_host_count_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let n = std::thread::available_parallelism().unwrap().get();
    let too_many = (n + 1).to_string();
    let out = isolab(
        home.path(),
        &[
            "container",
            "run",
            "--rm",
            "--cpus",
            &too_many,
            "--",
            "true",
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("as there are only {n} CPUs available")),
        "{err}"
    );
    assert_eq!(containers(home.path()), 0);
}

/// Capabilities, rlimits, noNewPrivileges, masked/read-only paths and the mount order of a
/// crun-style bundle, read from inside.
#[test]
fn bundle_security_fields_are_applied_as_written() {
    if !can_run() {
        return;
    }
    let script = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Groups):' /proc/self/status; \
        awk '/open files/ {print \"nofile:\", $4, $5}' /proc/self/limits; \
        echo \"timer: $(wc -c < /proc/timer_list)\"; \
        (echo x > /proc/sys/kernel/domainname) 2>/dev/null; echo \"sysctl_write: $?\"; \
        awk '{print $5}' /proc/self/mountinfo | tr '\\n' ' ' | awk '{print \"mounts:\", $0}'";
    let dir = bundle(script, |_| {});
    let out = run_bundle(dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    // KILL (5), NET_BIND_SERVICE (10), AUDIT_WRITE (29).
    let caps = format!("{:016x}", (1u64 << 5) | (1 << 10) | (1 << 29));
    assert_eq!(field(&o, "CapBnd"), caps, "{o}");
    assert_eq!(field(&o, "CapEff"), caps, "{o}");
    assert_eq!(field(&o, "CapPrm"), caps, "{o}");
    assert_eq!(field(&o, "CapInh"), "0000000000000000", "{o}");
    // Ambient needs the capability in the inheritable set too, which this bundle leaves empty.
    assert_eq!(field(&o, "CapAmb"), "0000000000000000", "{o}");
    assert_eq!(field(&o, "NoNewPrivs"), "0", "not asked for: {o}");
    assert_eq!(field(&o, "nofile"), "1024 1024", "{o}");
    assert_eq!(field(&o, "timer"), "0", "masked: {o}");
    assert_eq!(field(&o, "sysctl_write"), "1", "read-only: {o}");
    let mounts: Vec<&str> = field(&o, "mounts").split_whitespace().collect();
    let pos = |m: &str| mounts.iter().position(|x| *x == m);
    assert!(
        pos("/proc") < pos("/dev") && pos("/dev") < pos("/sys"),
        "{o}"
    );
    assert_eq!(pos("/tmp"), None, "no /tmp the bundle did not ask for: {o}");
}

/// A non-root process.user keeps the capabilities the bundle gives it; inheritable and ambient
/// sets, supplementary groups, oomScoreAdj, sysctl, noNewPrivileges and device nodes apply.
#[test]
fn bundle_user_caps_groups_oom_sysctl_and_devices() {
    if !can_run() {
        return;
    }
    let script = "grep -E '^(Cap(Inh|Prm|Eff|Amb)|NoNewPrivs|Groups):' /proc/self/status; \
        echo \"ids: $(id -u) $(id -G)\"; \
        echo \"oom: $(cat /proc/self/oom_score_adj)\"; \
        echo \"msgmax: $(cat /proc/sys/kernel/msgmax)\"; \
        echo \"node: $(stat -c '%F %t:%T %a' /dev/isolab-null)\"; \
        echo hi > /dev/isolab-null && echo \"node_write: ok\"";
    let dir = bundle(script, |c| {
        let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "inheritable": caps,
            "permitted": caps, "ambient": caps
        });
        c["process"]["noNewPrivileges"] = json!(true);
        c["process"]["oomScoreAdj"] = json!(500);
        c["process"]["apparmorProfile"] = json!("isolab-test");
        c["linux"]["sysctl"] = json!({"kernel.msgmax": "4096"});
        c["linux"]["devices"] = json!([
            {"path": "/dev/isolab-null", "type": "c", "major": 1, "minor": 3, "fileMode": 438}
        ]);
    });
    let out = run_bundle(dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    let caps = format!("{:016x}", (1u64 << 5) | (1 << 10));
    for key in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(field(&o, key), caps, "{key}: {o}");
    }
    assert_eq!(field(&o, "NoNewPrivs"), "1", "{o}");
    assert_eq!(field(&o, "ids"), "1000 1000 10 20", "{o}");
    assert_eq!(field(&o, "oom"), "500", "{o}");
    assert_eq!(field(&o, "msgmax"), "4096", "{o}");
    assert_eq!(field(&o, "node"), "character special file 1:3 666", "{o}");
    assert_eq!(field(&o, "node_write"), "ok", "{o}");
    // What isolab cannot apply is named on stderr, not dropped silently.
    let err = text(&out.stderr);
    assert!(
        err.contains("not applied by isolab: process.apparmorProfile"),
        "{err}"
    );
}

/// crun refuses an rlimit whose soft value exceeds the hard one; so does isolab, in one line.
#[test]
fn bundle_rlimit_soft_above_hard_is_refused() {
    if !can_run() {
        return;
    }
    let dir = bundle("true", |c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 2048}]);
    });
    let out = run_bundle(dir.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("soft limit must not exceed the hard limit"),
        "{err}"
    );
}

/// Rootless (an ordinary user, --userns): the seccomp filter and the read-only and masked paths
/// still apply; --seccomp unconfined lifts the filter there too.
#[test]
fn rootless_containers_keep_the_filter_and_read_only_proc_sys() {
    if !can_run() || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs root to become nobody, and setpriv");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(home.path(), Some(65534), Some(65534)).unwrap();
    let as_nobody = |extra: &[&str]| {
        let script = "(echo x > /proc/sys/kernel/domainname) 2>/dev/null; echo \"ro: $?\"; \
                      unshare -U true 2>/dev/null; echo \"unshare: $?\"; \
                      echo \"timer: $(wc -c < /proc/timer_list)\"";
        let out = Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_isolab"))
            .args(["container", "run", "--rm", "--userns"])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .env("ISOLAB_HOME", home.path())
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let o = as_nobody(&[]);
    assert_eq!(field(&o, "ro"), "1", "{o}");
    assert_eq!(field(&o, "unshare"), "1", "{o}");
    assert_eq!(field(&o, "timer"), "0", "{o}");
    let o = as_nobody(&["--seccomp", "unconfined"]);
    assert_eq!(field(&o, "unshare"), "0", "{o}");
}
