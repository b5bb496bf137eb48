//! `isolab bench --quick --only startup` for real: it must write a result file whose host,
//! container and microVM rows hold measured numbers (or, for what this host cannot do, a
//! reason), and that file must parse back into the schema.

use isolab_bench::{Outcome, Question, Results, Scope, StartKind, Unit};
use std::process::Command;

fn isolab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isolab"))
}

fn row<'a>(results: &'a Results, env: &str) -> &'a isolab_bench::Row {
    results
        .rows
        .iter()
        .find(|r| r.environment == env && r.workload == "true" && r.start != Some(StartKind::Cold))
        .unwrap_or_else(|| panic!("no {env} row in the results"))
}

fn assert_measured(results: &Results, env: &str) {
    let r = row(results, env);
    match &r.result {
        Outcome::Measured { samples, summary } => {
            assert!(!samples.is_empty(), "{env}: no samples");
            assert!(
                samples.iter().all(|s| s.is_finite() && *s > 0.0),
                "{env}: {samples:?}"
            );
            assert_eq!(summary.n, samples.len());
            assert!(summary.p10 <= summary.median && summary.median <= summary.p90);
        }
        Outcome::NotMeasured { reason } => panic!("{env} was not measured: {reason}"),
    }
}

#[test]
fn quick_startup_bench_writes_a_measured_result_file() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: isolab bench's container rows need root");
        return;
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        eprintln!("skipping: /bin/busybox missing (install busybox-static)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let csv = dir.path().join("results.csv");
    let out = isolab()
        .args([
            "bench",
            "--quick",
            "--only",
            "startup",
            "--no-progress",
            "--out",
        ])
        .arg(&json)
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "isolab bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("isolab-engine-container-ns"), "{stdout}");

    let results: Results = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(results.schema_version, isolab_bench::schema::SCHEMA_VERSION);
    assert_eq!(results.settings.questions, vec!["startup".to_string()]);
    assert!(results.rows.iter().all(|r| r.question == Question::Startup));
    assert!(results.rows.iter().all(|r| r.unit == Unit::Us));

    assert_measured(&results, "host");
    assert_eq!(row(&results, "host").ratio_to_host, Some(1.0));
    for env in [
        "isolab-engine-container-ns",
        "isolab-engine-container-cgroups",
        "isolab-engine-container-overlay",
        "isolab-engine-container-seccomp",
    ] {
        assert_measured(&results, env);
        let r = row(&results, env);
        // In-process rows: a breakdown, labelled, never divided by the host's launch.
        assert_eq!(r.scope, Scope::InProcess);
        assert_eq!(r.ratio_to_host, None);
        assert!(r.note.as_deref().unwrap_or("").contains("library"));
        assert!(r.phases_median_us.contains_key("clone_us"));
    }
    // The whole-process isolab row: the CLI launched like the peers, with a ratio.
    assert_measured(&results, "isolab-cli-container");
    let cli = row(&results, "isolab-cli-container");
    assert_eq!(cli.scope, Scope::WholeProcess);
    assert!(cli.ratio_to_host.is_some());
    // Cold rows beside the warm ones, for the whole-process rows.
    for env in ["host", "isolab-cli-container"] {
        assert!(
            results.rows.iter().any(|r| r.environment == env
                && r.start == Some(StartKind::Cold)
                && r.result.summary().is_some()),
            "no measured cold row for {env}"
        );
    }
    // The microVMs: measured where /dev/kvm opens, otherwise a reason, never dropped; the
    // stub's workload is its own, never busybox `true`.
    for env in ["isolab-engine-microvm-stub", "isolab-cli-microvm-stub"] {
        let vm = results
            .rows
            .iter()
            .find(|r| r.environment == env && r.workload == "stub-true")
            .unwrap_or_else(|| panic!("no {env} stub-true row"));
        if std::fs::File::open("/dev/kvm").is_ok() {
            assert!(vm.result.summary().is_some(), "{env}: {:?}", vm.result);
            assert_eq!(vm.ratio_to_host, None);
        } else {
            assert!(matches!(&vm.result, Outcome::NotMeasured { reason } if !reason.is_empty()));
        }
    }
    // The Linux boot rows: measured where the guest kernel, /dev/kvm and QEMU are here,
    // otherwise a reason — never dropped.
    for env in ["isolab-cli-microvm-linux", "qemu-microvm"] {
        let r = results
            .rows
            .iter()
            .find(|r| r.environment == env && r.workload == "linux-to-command-line")
            .unwrap_or_else(|| panic!("no {env} row"));
        if let Outcome::Measured { summary, .. } = &r.result {
            assert!(summary.n <= 3, "{env}: --quick takes at most 3 boots");
            assert!(r.note.as_deref().unwrap_or("").contains("Command line:"));
        }
    }
    // Every row that was not measured says why.
    for r in &results.rows {
        if let Outcome::NotMeasured { reason } = &r.result {
            assert!(!reason.trim().is_empty(), "{} has no reason", r.environment);
        }
    }
    // The JSON round-trips exactly, and the CSV has one line per row.
    let again: Results = serde_json::from_str(&serde_json::to_string(&results).unwrap()).unwrap();
    assert_eq!(again, results);
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), 1 + results.rows.len());
    assert!(!results.fingerprint.kernel_release.is_empty());
}

#[test]
fn bad_flags_are_one_line_errors() {
    let out = isolab()
        .args(["bench", "--only", "latency"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("choose from startup"), "{stderr}");

    let out = isolab()
        .args(["bench", "--samples", "0", "--out", "/nonexistent/x.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--samples must be at least 1"));
}

#[test]
fn density_fills_a_small_budget_and_cleans_up() {
    if !nix::unistd::Uid::effective().is_root() || std::fs::File::open("/dev/kvm").is_err() {
        eprintln!("skipping: density needs root (containers) and /dev/kvm (microVMs)");
        return;
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        eprintln!("skipping: /bin/busybox missing (install busybox-static)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let out = isolab()
        .args([
            "bench",
            "--only",
            "memory",
            "--samples",
            "1",
            "--density-budget",
            "16M",
            "--density-seconds",
            "30",
            "--no-progress",
            "--out",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "isolab bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Results = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for env in ["isolab-engine-container-cgroups", "isolab-cli-microvm-stub"] {
        let count = results
            .rows
            .iter()
            .find(|r| r.environment == env && r.workload == "density-16MiB")
            .unwrap_or_else(|| panic!("no density row for {env}"));
        assert_eq!(count.unit, Unit::Count);
        let n = match &count.result {
            Outcome::Measured { samples, .. } => samples[0],
            Outcome::NotMeasured { reason } => panic!("{env} density not measured: {reason}"),
        };
        assert!((0.0..4096.0).contains(&n), "{env}: {n}");
        // The note says what stopped the fill: 16 MiB of MemAvailable, or a limit.
        let note = count.note.as_deref().unwrap_or("");
        assert!(note.contains("stopped"), "{env}: {note}");
        let bytes = results
            .rows
            .iter()
            .find(|r| r.environment == env && r.workload == "idle-instance")
            .unwrap();
        assert_eq!(bytes.unit, Unit::Bytes);
        // MemAvailable drop per instance — or, when something else freed memory meanwhile,
        // an honest reason instead of a figure.
        match &bytes.result {
            Outcome::Measured { summary, .. } => assert!(summary.median > 0.0, "{env}"),
            Outcome::NotMeasured { reason } => {
                assert!(
                    reason.contains("MemAvailable did not fall"),
                    "{env}: {reason}"
                )
            }
        }
    }
    // Nothing is left running: no stub VMM processes from this run, no density cgroups.
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.lines()
            .any(|l| l.contains("stub:hang") && l.contains("900s")),
        "{ps}"
    );
}

#[test]
fn a_bad_density_budget_is_a_one_line_error() {
    let out = isolab()
        .args([
            "bench",
            "--density-budget",
            "lots",
            "--out",
            "/nonexistent/x.json",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--density-budget"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
