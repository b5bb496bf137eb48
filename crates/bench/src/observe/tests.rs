//! The observation machinery on real commands, and the escape probe on a real chroot.

use super::*;
use crate::probes::Probe;

#[test]
fn the_escape_probe_leaves_a_host_chroot() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: chroot needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    Probe::ChrootEscape.write_to(&root.join("escape")).unwrap();
    let marker = dir.path().join("marker");
    std::fs::write(&marker, "outside").unwrap();
    let out = Command::new("chroot")
        .arg(&root)
        .arg("/escape")
        .arg("/bin/cat")
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "outside");
}

#[test]
fn evidence_is_trimmed() {
    let long: String = (0..40).map(|i| format!("line {i}\n")).collect();
    let t = trim_evidence(&long);
    assert_eq!(t.lines().count(), 13);
    assert!(t.ends_with("(28 more lines)"));
}

#[test]
fn capture_keeps_output_and_exit_code() {
    let c = capture(&os(&["sh", "-c", "echo out; echo err >&2; exit 3"]), &[]).unwrap();
    assert_eq!(
        (c.code, c.stdout.as_str(), c.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    assert!(c.evidence.starts_with("$ sh -c"));
    assert!(c.evidence.ends_with("(exit 3)"));
}

#[test]
fn the_kernel_offers_at_least_the_six_namespaces() {
    let names = offered_namespaces().unwrap();
    for n in ["ipc", "mnt", "net", "pid", "user", "uts"] {
        assert!(names.iter().any(|m| m == n), "{names:?}");
    }
}

#[test]
fn without_isolab_every_check_says_why() {
    let obs = observe_all(Err(NotMeasured::NeedsIsolabBinary));
    assert!(obs.len() >= 10);
    for o in &obs {
        if o.environment != "host" {
            assert_eq!(
                o.outcome,
                Finding::NotMeasured {
                    reason: NotMeasured::NeedsIsolabBinary.to_string()
                },
                "{}",
                o.check
            );
        }
    }
    // Check ids are unique per (claim, environment).
    let mut keys: Vec<_> = obs
        .iter()
        .map(|o| (o.claim, &o.check, &o.environment))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), obs.len());
}
