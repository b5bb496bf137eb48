//! The spawn path's pure pieces, which need no root: the spec checks, the exec plan, the
//! namespace flags, and how a child's failure reads for the user.

use super::errors::{SpawnError, SpecError};
use super::fork::namespace_flags;
use super::message::{ChildFailure, ChildMessage, DecodeError, SetupTimes, Stage};
use super::parent::read_report;
use super::prepare::{validate, ExecPlan};
use crate::spec::{BindMount, ContainerSpec, NetworkMode, RootMode, RootfsSource};
use crate::{Namespace, NamespaceSet};
use std::path::PathBuf;

/// A spec that passes [`validate`]: `/` as a directory rootfs, the docker namespaces.
fn spec(args: &[&str]) -> ContainerSpec {
    ContainerSpec::new(
        RootfsSource::Dir(PathBuf::from("/")),
        args.iter().map(|a| a.to_string()).collect(),
    )
}

/// The message `validate` gives for `spec`, as the user reads it.
fn rejection(spec: &ContainerSpec) -> String {
    let err = validate(spec).expect_err("the spec should be rejected");
    SpawnError::from(err).to_string()
}

#[test]
fn a_default_spec_is_valid() {
    validate(&spec(&["true"])).unwrap();
}

#[test]
fn each_bad_combination_is_named_with_its_fix() {
    assert!(matches!(validate(&spec(&[])), Err(SpecError::NoCommand)));

    let mut s = spec(&["true"]);
    s.namespaces.remove(Namespace::Mount);
    assert_eq!(
        rejection(&s),
        "invalid container spec: pivot_root needs a mount namespace: add 'mnt' to --namespaces or use --chroot"
    );
    s.root_mode = RootMode::Chroot;
    s.rootfs = RootfsSource::Layers(vec![PathBuf::from("/")]);
    assert!(matches!(validate(&s), Err(SpecError::LayersNeedMountNs)));

    let mut s = spec(&["true"]);
    s.network = NetworkMode::Host;
    assert!(matches!(validate(&s), Err(SpecError::HostNetWithNetNs)));
    s.namespaces.remove(Namespace::Net);
    validate(&s).unwrap();
    s.network = NetworkMode::Bridge;
    assert_eq!(
        rejection(&s),
        "invalid container spec: --net bridge needs a network namespace: add 'net' to --namespaces or use --net host"
    );

    let mut s = spec(&["true"]);
    s.namespaces.insert(Namespace::User);
    assert!(matches!(validate(&s), Err(SpecError::UserNsNeedsIdMapping)));
}

#[test]
fn paths_names_and_sysctls_are_checked() {
    let mut s = spec(&["true"]);
    s.workdir = "tmp".into();
    assert_eq!(
        rejection(&s),
        "invalid container spec: the working directory \"tmp\" must be an absolute path"
    );

    let mut s = spec(&["true"]);
    s.hostname = Some("x".repeat(65));
    assert!(matches!(validate(&s), Err(SpecError::BadHostname(_))));

    for key in ["", "net/ipv4", "net..ip", "a.."] {
        let mut s = spec(&["true"]);
        s.sysctl.push((key.into(), "1".into()));
        assert!(
            matches!(validate(&s), Err(SpecError::BadSysctl(k)) if k == key),
            "{key:?}"
        );
    }
    let mut s = spec(&["true"]);
    s.sysctl.push(("net.ipv4.ip_forward".into(), "1".into()));
    validate(&s).unwrap();
    s.namespaces.remove(Namespace::Mount);
    s.root_mode = RootMode::Chroot;
    assert!(matches!(validate(&s), Err(SpecError::SysctlNeedsMountNs)));

    let mut s = spec(&["true"]);
    s.rootfs = RootfsSource::Dir(PathBuf::from("/no/such/rootfs"));
    assert_eq!(
        rejection(&s),
        "invalid container spec: rootfs /no/such/rootfs is not a directory"
    );

    let mut s = spec(&["true"]);
    s.mounts.push(BindMount {
        source: PathBuf::from("/no/such/source"),
        destination: PathBuf::from("/data"),
        readonly: false,
        filesystem: None,
    });
    assert!(matches!(validate(&s), Err(SpecError::MissingBindSource(_))));
}

#[test]
fn a_bare_command_is_searched_in_the_containers_path() {
    let mut s = spec(&["ls", "-l"]);
    s.env = vec!["PATH=/opt/bin/::/bin".into()];
    let plan = ExecPlan::build(&s).unwrap();
    let candidates: Vec<_> = plan
        .candidates
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert_eq!(candidates, ["/opt/bin/ls", "/bin/ls"]);
    assert_eq!(plan.argv.len(), 2);
    assert_eq!(plan.search_path, "/opt/bin/::/bin");
}

#[test]
fn a_command_with_a_slash_is_run_as_given() {
    let plan = ExecPlan::build(&spec(&["./run.sh"])).unwrap();
    let candidates: Vec<_> = plan
        .candidates
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert_eq!(candidates, ["./run.sh"]);
}

#[test]
fn a_nul_byte_is_rejected_and_named() {
    let mut s = spec(&["true"]);
    s.env.push("A=b\0c".into());
    assert_eq!(
        SpawnError::from(ExecPlan::build(&s).unwrap_err()).to_string(),
        "invalid container spec: environment entry \"A=b\\0c\" contains a NUL byte"
    );
}

#[test]
fn the_cgroup_namespace_is_left_to_the_child() {
    let flags = namespace_flags(NamespaceSet::docker_default());
    assert_eq!(flags & libc::CLONE_NEWCGROUP as u64, 0);
    assert_ne!(flags & libc::CLONE_NEWPID as u64, 0);
    assert_eq!(namespace_flags(NamespaceSet::empty()), 0);
}

/// The error `run` returns for a child that reported `failure`.
fn from_child(args: &[&str], stage: Stage, errno: i32) -> SpawnError {
    let s = spec(args);
    let exec = ExecPlan::build(&s).unwrap();
    let failure = ChildFailure {
        stage,
        index: 0,
        errno,
    };
    SpawnError::from_child(failure, None, &exec, &s)
}

#[test]
fn a_failed_exec_reads_like_a_shell_and_exits_like_one() {
    let missing = from_child(&["nope"], Stage::Exec, libc::ENOENT);
    assert_eq!(missing.exit_code(), 127);
    assert!(
        missing
            .to_string()
            .starts_with("\"nope\" was not found in the container (searched PATH=/usr/local/sbin:"),
        "{missing}"
    );
    let given = from_child(&["/bin/nope"], Stage::Exec, libc::ENOTDIR);
    assert_eq!(
        given.to_string(),
        "\"/bin/nope\" was not found in the container (searched as given)"
    );
    let denied = from_child(&["/etc"], Stage::Exec, libc::EACCES);
    assert_eq!(denied.exit_code(), 126);
    assert_eq!(
        denied.to_string(),
        "\"/etc\" could not be executed in the container: Permission denied"
    );
}

#[test]
fn a_failed_setup_stage_is_typed_and_named() {
    let err = from_child(&["true"], Stage::Hostname, libc::EPERM);
    assert!(matches!(
        err,
        SpawnError::ChildStage {
            stage: Stage::Hostname,
            errno: nix::errno::Errno::EPERM
        }
    ));
    assert_eq!(err.exit_code(), 125);
    assert_eq!(
        err.to_string(),
        "setting up the container failed while setting the hostname: Operation not permitted"
    );
    let workdir = from_child(&["true"], Stage::Workdir, libc::ENOENT);
    assert_eq!(
        workdir.to_string(),
        "setting up the container failed while entering the working directory \"/\": No such file or directory"
    );
    let rootfs = from_child(&["true"], Stage::Rootfs, libc::EINVAL);
    assert_eq!(
        rootfs.to_string(),
        "setting up the container failed while building the root filesystem: Invalid argument"
    );
}

/// What the parent makes of `bytes` written into a status pipe that then closes.
fn report_of(bytes: &[u8]) -> Result<super::parent::Report, SpawnError> {
    let (r, w) = nix::unistd::pipe().unwrap();
    nix::unistd::write(&w, bytes).unwrap();
    drop(w);
    read_report(&r)
}

#[test]
fn the_parent_reads_the_exec_and_a_failure_after_it() {
    let times = SetupTimes {
        go_ns: 10,
        rootfs_ns: 20,
    };
    let exec = ChildMessage::Exec { times, exec_ns: 30 }.encode();
    let report = report_of(&exec).unwrap();
    assert_eq!((report.times, report.exec_ns), (times, Some(30)));
    assert!(report.failure.is_none());

    let failure = ChildFailure {
        stage: Stage::Exec,
        index: 0,
        errno: libc::ENOEXEC,
    };
    let failed = ChildMessage::Failed { times, failure }.encode();
    let report = report_of(&[exec, failed].concat()).unwrap();
    assert_eq!(report.failure, Some(failure));
}

#[test]
fn a_silent_or_garbled_child_is_an_error() {
    assert!(matches!(report_of(&[]), Err(SpawnError::ChildVanished)));
    let exec = ChildMessage::Exec {
        times: SetupTimes::default(),
        exec_ns: 1,
    }
    .encode();
    let err = report_of(&exec[..12]).unwrap_err();
    assert!(
        matches!(err, SpawnError::ChildMessage(DecodeError::Truncated(12))),
        "{err}"
    );
    let err = report_of(&[0xffu8; 40]).unwrap_err();
    assert!(matches!(
        err,
        SpawnError::ChildMessage(DecodeError::UnknownKind(_))
    ));
}
