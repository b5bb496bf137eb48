//! Runs the real `/init` binary on the host in `--host-test` mode (no port I/O, no mounts, no
//! power-off) and checks the lines it prints follow the contract in guests/README.md.

use std::process::Command;

use isolab_guest_init::report::parse_line;

const BIN: &str = env!("CARGO_BIN_EXE_isolab-guest-init");

fn run(args: &[&str]) -> (i32, Vec<isolab_guest_init::report::ParsedLine>, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("spawn init binary");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    let lines = stdout.lines().filter_map(parse_line).collect();
    (out.status.code().unwrap_or(-1), lines, stdout)
}

#[test]
fn syscall_workload_prints_ready_then_result() {
    let (rc, lines, raw) = run(&[
        "--host-test",
        "--cmdline",
        "console=ttyS0 reboot=k isolab.workload=syscall isolab.iterations=5000",
    ]);
    assert_eq!(rc, 0, "{raw}");
    assert_eq!(lines.len(), 2, "{raw}");
    assert_eq!(lines[0].event, "ready");
    assert_eq!(lines[0].get("workload"), Some("syscall"));
    assert_eq!(lines[0].get("boot_timer"), Some("skipped"));
    assert!(lines[0].get("boottime_ns").unwrap().parse::<u64>().unwrap() > 0);
    assert_eq!(lines[1].event, "result");
    assert_eq!(lines[1].get("iterations"), Some("5000"));
    let per: f64 = lines[1].get("ns_per_iter").unwrap().parse().unwrap();
    assert!(per > 0.0, "{raw}");
}

#[test]
fn every_workload_runs_on_the_host() {
    for w in ["true", "cpu", "syscall", "mem"] {
        let cmdline = format!("isolab.workload={w} isolab.iterations=100 isolab.mem_bytes=65536");
        let (rc, lines, raw) = run(&["--host-test", "--cmdline", &cmdline]);
        assert_eq!(rc, 0, "{w}: {raw}");
        let result = lines.iter().find(|l| l.event == "result").expect(&raw);
        assert_eq!(result.get("workload"), Some(w));
    }
}

#[test]
fn bad_cmdline_prints_one_error_line_and_fails() {
    let (rc, lines, raw) = run(&["--host-test", "--cmdline", "isolab.workload=fork"]);
    assert_eq!(rc, 1, "{raw}");
    assert_eq!(lines.len(), 1, "{raw}");
    assert_eq!(lines[0].event, "error");
    assert_eq!(lines[0].get("stage"), Some("cmdline"));
    assert!(lines[0].get("msg").unwrap().contains("fork"), "{raw}");
}

#[test]
fn refuses_to_act_as_init_when_not_pid_1() {
    // Without --host-test and not PID 1 it must do nothing at all (no port I/O, no reboot).
    let (rc, lines, raw) = run(&[]);
    assert_eq!(rc, 2, "{raw}");
    assert_eq!(lines[0].event, "error");
    assert_eq!(lines[0].get("stage"), Some("start"));
}

#[test]
fn host_cmdline_is_read_from_proc_when_not_given() {
    // The host's own command line has no isolab.* keys: the default workload runs.
    let (rc, lines, raw) = run(&["--host-test"]);
    assert_eq!(rc, 0, "{raw}");
    assert_eq!(lines[0].get("workload"), Some("true"));
}

/// Runs the binary as PID 1 of a new user + PID + mount namespace, so it takes the real guest
/// path (boot timer, mounts, power-off) where that path cannot touch the host: in a non-initial
/// user namespace `ioperm`, `iopl` and `/dev/mem` all need CAP_SYS_RAWIO in the *initial*
/// namespace, which is never granted, and `reboot()` in a child PID namespace only kills that
/// namespace's init (with SIGHUP for a restart).
#[test]
fn as_pid_1_in_a_user_namespace_the_guest_path_fails_cleanly() {
    let out = match Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount",
            BIN,
        ])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipping: cannot run unshare(1): {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stdout.is_empty() && stderr.contains("unshare failed") {
        eprintln!("skipping: user namespaces unavailable here: {stderr}");
        return;
    }
    let lines: Vec<_> = stdout.lines().filter_map(parse_line).collect();
    assert_eq!(lines.len(), 2, "stdout: {stdout} stderr: {stderr}");
    // /proc was mounted (else stage=mount), then the missing port access was reported.
    assert_eq!(lines[0].event, "error", "{stdout}");
    assert_eq!(lines[0].get("stage"), Some("boot_timer"), "{stdout}");
    assert_eq!(lines[1].event, "poweroff", "{stdout}");
    // reboot(RB_AUTOBOOT) in a PID namespace ends its init with SIGHUP; without reboot()
    // permission init exits 1 instead. Never a clean 0, never a hang.
    assert!(!out.status.success(), "{:?}", out.status);
}
