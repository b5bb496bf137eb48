//! `isolab vm` as a user runs it: exit codes, one-line errors, timings.

use std::process::Command;

fn isolab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isolab"))
}

fn kvm_or_skip() -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping: /dev/kvm unavailable ({e})");
            false
        }
    }
}

/// Runs isolab and returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = isolab().args(args).output().expect("run isolab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn stub_true_runs_and_prints_timings() {
    if !kvm_or_skip() {
        return;
    }
    let (code, stdout, stderr) = run(&["vm", "run", "--guest", "stub:true", "--timings"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("stub:true: exited"), "{stdout}");
    for phase in [
        "exec → vm run (CPU time)",
        "create VM",
        "first KVM_RUN",
        "teardown",
        "process total",
        "kernel banner",
        "init reached",
        "exit",
        "total",
    ] {
        assert!(stderr.contains(phase), "missing {phase}: {stderr}");
    }
}

#[test]
fn stub_pio_reports_a_figure_as_json() {
    if !kvm_or_skip() {
        return;
    }
    let (code, stdout, stderr) = run(&[
        "vm",
        "run",
        "--guest",
        "stub:pio",
        "--iterations",
        "500",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["outcome"]["outcome"], "measured");
    assert!(json["outcome"]["figure"]["ns_per_exit"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_gives_one_line_and_nonzero_exit() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["vm", "run", "--guest", "stub:true", "--vcpus", "0"],
            "at least 1 vCPU",
        ),
        (
            &["vm", "run", "--guest", "stub:nope"],
            "unknown stub workload",
        ),
        (
            &["vm", "run", "--guest", "stub:true", "--memory", "lots"],
            "not a size",
        ),
        (
            &["vm", "run", "--guest", "stub:true", "--memory", "64T"],
            "guest memory",
        ),
        (
            &["vm", "run", "--guest", "stub:true", "--timeout", "soon"],
            "not a duration",
        ),
        (
            &["vm", "run", "--kernel", "/nonexistent/vmlinux"],
            "cannot read kernel",
        ),
        (
            &["vm", "run", "--kernel", "/etc/hostname"],
            "not a bootable x86-64 kernel",
        ),
        (&["vm", "run"], "nothing to boot"),
    ];
    for (args, expected) in cases {
        let (code, _stdout, stderr) = run(args);
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
    }
}

#[test]
fn hang_times_out_and_triple_fault_is_named() {
    if !kvm_or_skip() {
        return;
    }
    let (code, _, stderr) = run(&["vm", "run", "--guest", "stub:hang", "--timeout", "300ms"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("did not finish within 300 ms"), "{stderr}");
    let (code, _, stderr) = run(&["vm", "run", "--guest", "stub:triple-fault"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("triple-fault") || stderr.contains("internal error"),
        "{stderr}"
    );
}

#[test]
fn platform_is_reported() {
    let (code, stdout, stderr) = run(&["vm", "platform", "--no-probe", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(json["kvm_module"].is_string());
}

#[test]
fn stub_image_boots_through_pvh_with_the_debug_exit_device() {
    if !kvm_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("stub-pvh.elf");
    let image_arg = image.to_str().unwrap();
    let (code, _, stderr) = run(&["vm", "stub-image", "--out", image_arg]);
    assert_eq!(code, 0, "{stderr}");
    let argv = isolab_microvm::stub::pvh::isolab_args(&image, 64);
    let out = isolab().args(&argv).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _, stderr) = run(&["vm", "stub-image", "--out", "/nonexistent/dir/x.elf"]);
    assert_eq!(code, 125);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
