//! The framework's own logic: lookup, verdicts, quoting, the JSON shape.

use super::*;

#[test]
fn every_lab_has_a_unique_number_and_name_in_order() {
    let labs = all();
    assert!(labs.len() >= 14);
    for (i, lab) in labs.iter().enumerate() {
        assert_eq!(
            lab.number as usize,
            i + 1,
            "labs are numbered in ladder order"
        );
        assert!(!lab.summary.is_empty() && !lab.background.is_empty());
        assert!(lab.claims.iter().all(|c| c.starts_with('C')));
        assert!(
            lab.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{} is kebab-case",
            lab.name
        );
    }
    let mut names: Vec<_> = labs.iter().map(|l| l.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), labs.len());
}

#[test]
fn lookup_by_number_and_name() {
    assert_eq!(find("1").unwrap().name, "chroot");
    assert_eq!(find("03").unwrap().number, 3);
    assert_eq!(find("freezer").unwrap().number, 12);
    let err = find("nope").unwrap_err().to_string();
    assert!(err.contains("no lab \"nope\""), "{err}");
    assert!(
        err.contains("1 chroot") && err.contains("14 startup-race"),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(find("0").is_err() && find("99").is_err());
}

#[test]
fn verdicts_combine() {
    let check = |verdict| Check {
        name: "x".into(),
        verdict,
        reason: String::new(),
    };
    assert_eq!(Verdict::combine(&[]), Verdict::Skip);
    assert_eq!(Verdict::combine(&[check(Verdict::Skip)]), Verdict::Skip);
    assert_eq!(
        Verdict::combine(&[check(Verdict::Pass), check(Verdict::Skip)]),
        Verdict::Pass
    );
    assert_eq!(
        Verdict::combine(&[check(Verdict::Pass), check(Verdict::Fail)]),
        Verdict::Fail
    );
}

#[test]
fn commands_are_quoted_as_typed() {
    assert_eq!(shell_quote("--memory"), "--memory");
    assert_eq!(shell_quote("/tmp/a:/lab"), "/tmp/a:/lab");
    assert_eq!(shell_quote("echo $$"), "'echo $$'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(
        command_line(&["isolab", "container", "run", "--", "sh", "-c", "echo hi"]),
        "isolab container run -- sh -c 'echo hi'"
    );
}

#[test]
fn result_json_has_the_documented_fields() {
    let result = LabResult {
        number: 2,
        name: "pid-namespace".into(),
        claims: vec!["C7".into()],
        verdict: Verdict::Pass,
        error: None,
        duration_ms: 12.5,
        steps: vec![Step {
            command: "isolab container run --rm -- true".into(),
            exit_code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 10.0,
        }],
        checks: vec![Check {
            name: "pid-1-inside".into(),
            verdict: Verdict::Skip,
            reason: "why".into(),
        }],
    };
    let v: serde_json::Value = serde_json::to_value(&result).unwrap();
    assert_eq!(v["verdict"], "PASS");
    assert_eq!(v["checks"][0]["verdict"], "SKIP");
    assert_eq!(v["steps"][0]["exit_code"], 0);
    assert_eq!(v["duration_ms"], 12.5);
    assert_eq!(v["claims"][0], "C7");
}

#[test]
fn a_session_removes_its_directory() {
    let lab = find("chroot").unwrap();
    let session = Session::new(
        lab,
        Options {
            isolab: "/nonexistent/isolab".into(),
            print: false,
        },
    )
    .unwrap();
    let dir = session.dir().to_path_buf();
    assert!(dir.join("lab-helper").is_file() && dir.join("home").is_dir());
    let result = session.finish(lab, std::time::Instant::now(), None);
    assert_eq!(result.verdict, Verdict::Skip);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn a_step_that_cannot_start_is_an_error_not_a_panic() {
    let lab = find("chroot").unwrap();
    let mut session = Session::new(
        lab,
        Options {
            isolab: "/nonexistent/isolab".into(),
            print: false,
        },
    )
    .unwrap();
    let err = session.isolab(&["container", "ls"]).unwrap_err();
    assert!(matches!(err, LabError::Spawn { .. }), "{err}");
}
