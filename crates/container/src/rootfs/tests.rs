//! The mount plan is pure data built from a spec, so it is checked here without root: which
//! steps, in which order, with which options.

use super::step::Step;
use super::{MountPlan, OverlayDirs, PlanError};
use crate::spec::{BindMount, ContainerSpec, RootMode, RootfsSource};
use crate::Namespace;
use std::path::{Path, PathBuf};

fn dir_spec(root: &str) -> ContainerSpec {
    ContainerSpec::new(RootfsSource::Dir(PathBuf::from(root)), vec!["true".into()])
}

fn names(plan: &MountPlan) -> Vec<&str> {
    (0..plan.steps.len() as u32)
        .map(|i| plan.step_name(i))
        .collect()
}

/// The data option of the mount step on `target`.
fn mount_data<'a>(plan: &'a MountPlan, target: &str) -> Option<&'a str> {
    plan.steps.iter().find_map(|s| match s {
        Step::Mount {
            target: t, data, ..
        } if t.to_str() == Ok(target) => data.as_deref().map(|d| d.to_str().unwrap()),
        _ => None,
    })
}

#[test]
fn a_directory_rootfs_is_bound_mounted_and_pivoted_into() {
    let plan = MountPlan::build(&dir_spec("/r"), None, false, true).unwrap();
    let names = names(&plan);
    assert_eq!(names[0], "making the mount tree private");
    assert_eq!(names[1], "bind-mounting the rootfs /r");
    assert_eq!(names.last(), Some(&"pivot_root into /r"));
    let order = [
        "mounting proc on /r/proc",
        "mounting a tmpfs on /r/dev",
        "creating the device node /r/dev/null",
        "mounting devpts on /r/dev/pts",
        "creating the symlink /r/dev/ptmx",
        "mounting a tmpfs on /r/dev/shm",
        "mounting mqueue on /r/dev/mqueue",
        "mounting sysfs on /r/sys",
        "mounting a tmpfs on /r/tmp",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|n| {
            names
                .iter()
                .position(|m| m == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{names:#?}");
    assert_eq!(
        mount_data(&plan, "/r/dev/pts"),
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
    );
}

#[test]
fn layers_become_an_overlay_listed_top_first() {
    let mut spec = dir_spec("/unused");
    spec.rootfs = RootfsSource::Layers(vec!["/l/base".into(), "/l/top".into()]);
    let dirs = OverlayDirs::on_disk("/c/upper".into(), "/c/work".into(), "/c/merged".into());
    let plan = MountPlan::build(&spec, Some(&dirs), false, true).unwrap();
    assert_eq!(
        mount_data(&plan, "/c/merged"),
        Some("lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work,volatile")
    );
    assert_eq!(
        plan.step_name(1),
        "mounting the overlay rootfs on /c/merged"
    );
    assert!(names(&plan).contains(&"mounting proc on /c/merged/proc"));

    let in_memory = OverlayDirs::in_memory(Path::new("/scratch"));
    let plan = MountPlan::build(&spec, Some(&in_memory), true, true).unwrap();
    assert_eq!(
        plan.step_name(1),
        "mounting the in-memory writable layer on /scratch"
    );
    let data = mount_data(&plan, "/scratch/merged").unwrap();
    assert!(data.ends_with(",volatile,userxattr"), "{data}");
}

#[test]
fn an_image_needs_overlay_dirs_and_layers() {
    let mut spec = dir_spec("/unused");
    spec.rootfs = RootfsSource::Layers(vec!["/l/base".into()]);
    let err = MountPlan::build(&spec, None, false, true).unwrap_err();
    assert!(matches!(err, PlanError::NoOverlayDirs));
    spec.rootfs = RootfsSource::Layers(Vec::new());
    let dirs = OverlayDirs::in_memory(Path::new("/scratch"));
    let err = MountPlan::build(&spec, Some(&dirs), false, true).unwrap_err();
    assert_eq!(err.to_string(), "the image has no layers");
}

#[test]
fn a_user_namespace_borrows_the_hosts_device_nodes() {
    let plan = MountPlan::build(&dir_spec("/r"), None, true, true).unwrap();
    let names = names(&plan);
    assert!(names.contains(&"bind-mounting /dev/null"), "{names:#?}");
    assert!(!plan.steps.iter().any(|s| matches!(s, Step::Mknod(..))));
    // The host's tty group is not mapped there.
    assert_eq!(
        mount_data(&plan, "/r/dev/pts"),
        Some("newinstance,ptmxmode=0666,mode=0620")
    );
}

#[test]
fn without_a_network_namespace_sys_is_the_hosts_read_only() {
    let mut spec = dir_spec("/r");
    spec.namespaces.remove(Namespace::Ipc);
    let plan = MountPlan::build(&spec, None, false, false).unwrap();
    let names = names(&plan);
    let bind = names
        .iter()
        .position(|n| *n == "bind-mounting /sys on /r/sys");
    let ro = names
        .iter()
        .position(|n| *n == "remounting /r/sys read-only");
    assert!(bind.is_some() && ro == bind.map(|b| b + 1), "{names:#?}");
    assert!(!names.iter().any(|n| n.contains("mqueue")));
}

#[test]
fn user_binds_come_after_hardening_with_their_parents_created() {
    let src = tempfile::tempdir().unwrap();
    let mut spec = dir_spec("/r");
    spec.sysctl.push(("net.ipv4.ip_forward".into(), "1".into()));
    spec.mounts.push(BindMount {
        source: src.path().to_path_buf(),
        destination: "/a/b/data".into(),
        readonly: true,
        filesystem: None,
    });
    spec.readonly_rootfs = true;
    spec.root_mode = RootMode::Chroot;
    let plan = MountPlan::build(&spec, None, false, true).unwrap();
    let names = names(&plan);
    let at = |n: &str| {
        names
            .iter()
            .position(|m| *m == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let bound = format!("bind-mounting {} on /a/b/data", src.path().display());
    assert!(at("setting the sysctl net.ipv4.ip_forward=1") < at("creating /r/a"));
    assert!(at("creating /r/a") < at("creating /r/a/b"));
    assert!(at("creating /r/a/b/data") < at(&bound));
    assert_eq!(at("remounting /a/b/data read-only"), at(&bound) + 1);
    let n = names.len();
    assert_eq!(
        names[n - 2..],
        ["remounting the rootfs read-only", "chroot into /r"]
    );
    let masked = spec
        .hardening
        .masked_paths
        .first()
        .expect("docker masks paths");
    assert!(at(&format!("masking {masked}")) < at(&bound));
}

#[test]
fn relative_paths_are_refused() {
    let mut spec = dir_spec("/r");
    spec.mounts.push(BindMount {
        source: "/".into(),
        destination: "data".into(),
        readonly: false,
        filesystem: None,
    });
    let err = MountPlan::build(&spec, None, false, true).unwrap_err();
    assert_eq!(err.to_string(), "mount destination data must be absolute");

    let mut spec = dir_spec("/r");
    spec.hardening.masked_paths.push("proc/kcore".into());
    let err = MountPlan::build(&spec, None, false, true).unwrap_err();
    assert!(matches!(err, PlanError::RelativePath(p) if p == "proc/kcore"));
}

#[test]
fn an_unknown_step_index_still_names_the_stage() {
    let plan = MountPlan::build(&dir_spec("/r"), None, false, true).unwrap();
    assert_eq!(plan.step_name(u32::MAX), "setting up the root filesystem");
}
