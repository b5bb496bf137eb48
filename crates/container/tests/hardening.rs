//! docker's default hardening, for real: each protection is shown to hold by default and to be
//! lifted by `--privileged` (or `--seccomp unconfined`), which proves the check can fail.

mod common;

use common::*;
use isolab_container::spawn::ExitStatus;
use isolab_container::{ContainerSpec, SeccompMode};

/// Runs `script` once with the defaults and once after `weaken`, returning both outcomes'
/// `/out/NAME` files through `read`.
fn default_and_weakened(
    script: &str,
    tag: &str,
    weaken: impl FnOnce(&mut ContainerSpec),
) -> (Sandbox, Sandbox) {
    let hardened = Sandbox::new();
    let spec = hardened.spec(script);
    let out = run_in(&hardened, &spec, tag);
    assert_eq!(out.status, ExitStatus::Exited(0), "default run of {script}");
    let weakened = Sandbox::new();
    let mut spec = weakened.spec(script);
    weaken(&mut spec);
    let out = run_in(&weakened, &spec, tag);
    assert_eq!(
        out.status,
        ExitStatus::Exited(0),
        "weakened run of {script}"
    );
    (hardened, weakened)
}

/// `/proc/sys` is the classic escape (kernel.core_pattern runs a program as host root): read-only
/// by default (EROFS), writable with --privileged. The test writes the host's *current* value
/// back, so the host is unchanged either way.
#[test]
fn proc_sys_is_read_only_unless_privileged() {
    if !can_run() {
        return;
    }
    let before = std::fs::read("/proc/sys/kernel/core_pattern").unwrap();
    let script = "cat /proc/sys/kernel/core_pattern > /tmp/cp; \
                  (cat /tmp/cp > /proc/sys/kernel/core_pattern) 2> /out/err; echo $? > /out/rc";
    let (hardened, privileged) =
        default_and_weakened(script, "procsys", ContainerSpec::make_privileged);
    assert_eq!(hardened.read("rc"), "1");
    assert!(
        hardened.read("err").contains("Read-only file system"),
        "{}",
        hardened.read("err")
    );
    assert_eq!(privileged.read("rc"), "0", "{}", privileged.read("err"));
    assert_eq!(
        std::fs::read("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
}

/// A masked file reads empty and a masked directory lists nothing, unless privileged.
#[test]
fn masked_paths_read_empty_unless_privileged() {
    if !can_run() {
        return;
    }
    if std::fs::metadata("/proc/timer_list").is_err() {
        eprintln!("skipped: this kernel has no /proc/timer_list");
        return;
    }
    let script = "wc -c < /proc/timer_list > /out/bytes; ls -A /sys/firmware | wc -l > /out/fw";
    let (hardened, privileged) =
        default_and_weakened(script, "mask", ContainerSpec::make_privileged);
    assert_eq!(hardened.read("bytes"), "0");
    assert_eq!(hardened.read("fw"), "0");
    let bytes: u64 = privileged.read("bytes").parse().unwrap();
    assert!(bytes > 0, "privileged sees the host's timer list");
    let host_fw = std::fs::read_dir("/sys/firmware").map_or(0, |d| d.count());
    assert_eq!(privileged.read("fw"), host_fw.to_string());
}

/// `mknod` of /dev/kvm's numbers works (CAP_MKNOD, as in docker), but opening the node is
/// refused by the device cgroup; with --privileged it opens (or fails only because the host has
/// no such device). The standard nodes keep working.
#[test]
fn host_devices_cannot_be_opened_unless_privileged() {
    if !can_run() {
        return;
    }
    let script = "mknod /dev/k c 10 232; echo $? > /out/mknod; \
                  head -c0 /dev/k 2> /out/err; echo $? > /out/open; \
                  echo x > /dev/null && head -c1 /dev/zero | wc -c > /out/std";
    let (hardened, privileged) =
        default_and_weakened(script, "devices", ContainerSpec::make_privileged);
    assert_eq!(hardened.read("mknod"), "0");
    assert_eq!(hardened.read("open"), "1");
    assert!(
        hardened.read("err").contains("Operation not permitted"),
        "{}",
        hardened.read("err")
    );
    assert_eq!(hardened.read("std"), "1");
    if std::path::Path::new("/dev/kvm").exists() {
        assert_eq!(privileged.read("open"), "0", "{}", privileged.read("err"));
    } else {
        assert!(!privileged.read("err").contains("Operation not permitted"));
    }
}

/// Without a cgroup nothing enforces the device rules, so the container loses CAP_MKNOD.
#[test]
fn without_a_cgroup_the_container_cannot_mknod() {
    if !can_run() {
        return;
    }
    let sb = Sandbox::new();
    let mut spec = sb.spec("mknod /dev/k c 10 232 2> /out/err; echo $? > /out/rc");
    spec.use_cgroup = false;
    let out = run_in(&sb, &spec, "nocg");
    assert_eq!(out.status, ExitStatus::Exited(0));
    assert_eq!(sb.read("rc"), "1", "{}", sb.read("err"));
}

/// The default seccomp filter refuses new user namespaces; unconfined allows them.
#[test]
fn unshare_user_fails_under_the_default_filter() {
    if !can_run() {
        return;
    }
    let script = "unshare -U true 2> /out/err; echo $? > /out/rc; \
                  grep Seccomp: /proc/self/status | tr -d '\\t ' > /out/mode";
    let (filtered, unconfined) = default_and_weakened(script, "seccomp", |s| {
        s.seccomp = SeccompMode::Unconfined;
    });
    assert_eq!(filtered.read("mode"), "Seccomp:2");
    assert_eq!(filtered.read("rc"), "1");
    assert!(filtered.read("err").contains("Operation not permitted"));
    assert_eq!(unconfined.read("mode"), "Seccomp:0");
    assert_eq!(unconfined.read("rc"), "0", "{}", unconfined.read("err"));
}

/// docker's semantics: a capability added back lifts the calls it makes legitimate.
#[test]
fn cap_sys_admin_lifts_the_mount_rule() {
    if !can_run() {
        return;
    }
    let script = "mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2> /out/err; echo $? > /out/rc";
    let (hardened, admin) = default_and_weakened(script, "capadmin", |s| {
        s.capabilities = s
            .capabilities
            .with(isolab_container::capabilities::cap::SYS_ADMIN);
    });
    assert_eq!(hardened.read("rc"), "1");
    assert_eq!(admin.read("rc"), "0", "{}", admin.read("err"));
}
