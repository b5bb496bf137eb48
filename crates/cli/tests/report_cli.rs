//! `isolab report` as a user runs it: prints the page's path on success; on bad input one line
//! on stderr, a non-zero exit, and no output directory left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn isolab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isolab"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../report/tests/fixtures")
        .join(name)
}

fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("isolab: error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn report_prints_the_path_of_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("classroom");
    let t = std::time::Instant::now();
    let out = isolab()
        .arg("report")
        .arg(fixture("results-pvm.json"))
        .arg(fixture("results-vtx.json"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let elapsed = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(PathBuf::from(&printed), out_dir.join("index.html"));
    assert!(std::fs::read_to_string(&printed)
        .unwrap()
        .contains("<th>results-pvm</th><th>results-vtx</th>"));
    assert!(elapsed.as_secs_f64() < 5.0, "took {elapsed:?}");
}

#[test]
fn bad_input_gets_one_line_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("never");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "<html>not results</html>").unwrap();
    let old = dir.path().join("v1.json");
    std::fs::write(&old, r#"{"schema_version": 1}"#).unwrap();
    for (input, says) in [
        (garbage, "is not an isolab results file"),
        (old, "has schema_version 1"),
        (dir.path().join("missing.json"), "cannot read results file"),
    ] {
        let out = isolab()
            .arg("report")
            .arg(&input)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap();
        let err = one_error_line(&out);
        assert!(err.contains(says), "{err}");
        assert!(out.stdout.is_empty());
        assert!(!out_dir.exists(), "{out_dir:?} left behind");
    }
    // An --out below a regular file can never be created.
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = isolab()
        .arg("report")
        .arg(fixture("results-pvm.json"))
        .arg("--out")
        .arg(file.join("report"))
        .output()
        .unwrap();
    let err = one_error_line(&out);
    assert!(
        err.contains("choose a writable directory with --out DIR"),
        "{err}"
    );
}

#[test]
fn help_explains_the_page() {
    let out = isolab().args(["report", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "RESULTS.json",
        "--out",
        "C1-C10",
        "whole-process",
        "criterion",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
