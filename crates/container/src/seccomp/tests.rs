//! The program's shape, and the filter installed in a fresh copy of this test binary: what it
//! refuses, what it lets through, and what it does to a foreign calling convention.

use super::bpf::BPF_JMP_JEQ_K;
use super::*;
use crate::capabilities::cap;
use nix::errno::Errno;
use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

const PROBE_ENV: &str = "ISOLAB_SECCOMP_PROBE";
const PROBE_TEST: &str = "seccomp::tests::probe_child_entry_point";

#[test]
fn program_shape() {
    let prog = SeccompProgram::compile_default().unwrap();
    let insns = prog.instructions();
    assert!(insns.len() <= BPF_MAXINSNS);
    // Every denylisted number appears as a comparison in the program.
    for entry in DEFAULT_DENYLIST {
        assert!(
            insns
                .iter()
                .any(|i| i.code == BPF_JMP_JEQ_K && i.k == entry.nr as u32),
            "{} missing",
            entry.name
        );
    }
    let names: std::collections::HashSet<_> = DEFAULT_DENYLIST.iter().map(|e| e.nr).collect();
    assert_eq!(names.len(), DEFAULT_DENYLIST.len(), "duplicate entries");
}

#[test]
fn added_capabilities_lift_their_entries_like_docker() {
    let compares = |prog: &SeccompProgram, nr: i64| {
        prog.instructions()
            .iter()
            .any(|i| i.code == BPF_JMP_JEQ_K && i.k == nr as u32)
    };
    let default = SeccompProgram::compile_default().unwrap();
    let admin = SeccompProgram::compile(CapSet::docker_default().with(cap::SYS_ADMIN)).unwrap();
    for nr in [
        libc::SYS_mount,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_bpf,
    ] {
        assert!(compares(&default, nr), "{nr} refused by default");
        assert!(!compares(&admin, nr), "{nr} allowed with CAP_SYS_ADMIN");
    }
    // Never lifted, whatever the capabilities.
    let all = SeccompProgram::compile(CapSet::all()).unwrap();
    assert!(compares(&all, libc::SYS_keyctl));
    assert!(!compares(&all, libc::SYS_kexec_load));
    // ptrace runs, as in docker's profile on kernels since 4.8.
    assert!(!compares(&default, libc::SYS_ptrace));
    // One program per distinct gating key: NET_ADMIN changes nothing in the policy.
    let a = SeccompProgram::for_caps(CapSet::docker_default()).unwrap();
    let b = SeccompProgram::for_caps(CapSet::docker_default().with(12)).unwrap();
    assert!(std::ptr::eq(a, b));
}

/// Runs this test binary again as `probe_child_entry_point`, optionally under the filter.
fn run_probe(mode: &str, filtered: bool) -> (std::process::ExitStatus, BTreeMap<String, String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", PROBE_TEST, "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, mode);
    if filtered {
        let prog: &'static SeccompProgram =
            SeccompProgram::for_caps(CapSet::docker_default()).unwrap();
        // SAFETY: `install` only makes two system calls on memory loaded before the fork
        // (a 'static program); it neither allocates nor locks, so it is safe between fork
        // and exec.
        unsafe {
            cmd.pre_exec(move || {
                install(prog).map_err(|e| std::io::Error::from_raw_os_error(e as i32))
            });
        }
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results = stdout
        .lines()
        // libtest prints "test NAME ... " without a newline before the test's own output.
        .filter_map(|l| l.find("PROBE ").map(|i| &l[i + "PROBE ".len()..]))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (out.status, results)
}

fn outcome(rc: libc::c_long) -> String {
    if rc < 0 {
        format!("{:?}", Errno::last())
    } else {
        "OK".to_string()
    }
}

/// Not a test on its own: the body of the child processes started by `run_probe`.
#[test]
fn probe_child_entry_point() {
    let Ok(mode) = std::env::var(PROBE_ENV) else {
        return;
    };
    match mode.as_str() {
        "syscalls" => probe_syscalls(),
        "int80" => {
            let pid: u32;
            // SAFETY: `int 0x80` with eax=20 is the i386 getpid: no arguments, no memory
            // access; it clobbers only eax.
            unsafe {
                std::arch::asm!("int 0x80", inlateout("eax") 20u32 => pid, options(nostack));
            }
            println!("PROBE int80_getpid={}", pid == std::process::id());
        }
        other => panic!("unknown probe mode {other}"),
    }
}

fn probe_syscalls() {
    let missing = c"/nonexistent-isolab-probe";
    // The calls below use invalid or harmless arguments: a bad reboot magic (EINVAL without
    // the filter), paths that do not exist, a UTS namespace for this short-lived probe only,
    // and a NULL clone3 struct with size 0 (EINVAL). Each outcome is decoded right after its
    // call, before errno is overwritten.
    let mut lines = Vec::new();
    macro_rules! probe {
        ($name:expr, $call:expr) => {{
            // SAFETY: see the comment above: invalid or harmless arguments only.
            let rc = unsafe { $call };
            lines.push(format!("{}={}", $name, outcome(rc)));
        }};
    }
    probe!("reboot", libc::syscall(libc::SYS_reboot, 0, 0, 0, 0));
    probe!(
        "swapoff",
        libc::syscall(libc::SYS_swapoff, missing.as_ptr())
    );
    probe!(
        "mount",
        libc::syscall(
            libc::SYS_mount,
            c"none".as_ptr(),
            missing.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            0
        )
    );
    probe!(
        "unshare_uts",
        libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS)
    );
    probe!(
        "unshare_files",
        libc::syscall(libc::SYS_unshare, libc::CLONE_FILES)
    );
    probe!("clone3", libc::syscall(libc::SYS_clone3, 0, 0));
    probe!(
        "x32_getpid",
        libc::syscall(libc::c_long::from(X32_SYSCALL_BIT) | libc::SYS_getpid)
    );
    // SAFETY: getpid has no arguments.
    let pid = unsafe { libc::syscall(libc::SYS_getpid) };
    lines.push(format!("getpid={}", pid as u32 == std::process::id()));
    // fork+exec (glibc's posix_spawn tries clone3 first) and a thread (pthread_create too).
    let spawned = Command::new("/bin/true")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    lines.push(format!("spawn={spawned}"));
    let threaded = std::thread::spawn(|| 7)
        .join()
        .map(|v| v == 7)
        .unwrap_or(false);
    lines.push(format!("thread={threaded}"));
    for l in lines {
        println!("PROBE {l}");
    }
}

#[test]
fn filter_refuses_denylisted_calls_and_allows_the_rest() {
    let (status, plain) = run_probe("syscalls", false);
    assert!(status.success(), "unfiltered probe failed: {status:?}");
    let (status, filtered) = run_probe("syscalls", true);
    assert!(status.success(), "filtered probe failed: {status:?}");
    eprintln!("without filter: {plain:?}\nwith filter:    {filtered:?}");

    // Without the filter the kernel itself answers (bad magic, missing paths).
    assert_eq!(plain["reboot"], "EINVAL");
    assert_eq!(plain["swapoff"], "ENOENT");
    assert_eq!(plain["mount"], "ENOENT");
    assert_eq!(plain["unshare_uts"], "OK");
    assert_ne!(plain["clone3"], "ENOSYS");
    // With it, the filter answers before the kernel looks at the arguments.
    for call in ["reboot", "swapoff", "mount", "unshare_uts"] {
        assert_eq!(filtered[call], "EPERM", "{call}");
    }
    assert_eq!(
        filtered["unshare_files"], "OK",
        "unshare without CLONE_NEW* must pass"
    );
    assert_eq!(filtered["clone3"], "ENOSYS");
    assert_eq!(filtered["x32_getpid"], "ENOSYS");
    for ok in ["getpid", "spawn", "thread"] {
        assert_eq!(plain[ok], "true", "{ok}");
        assert_eq!(filtered[ok], "true", "{ok} under the filter");
    }
}

#[test]
fn foreign_architecture_calls_kill_the_process() {
    let (status, plain) = run_probe("int80", false);
    if !status.success() || plain.get("int80_getpid").map(String::as_str) != Some("true") {
        eprintln!(
            "skipping: this kernel has no i386 syscall emulation (int 0x80 failed: {status:?})"
        );
        return;
    }
    let (status, filtered) = run_probe("int80", true);
    assert_eq!(
        status.signal(),
        Some(libc::SIGSYS),
        "{status:?} {filtered:?}"
    );
    assert!(filtered.is_empty());
}
