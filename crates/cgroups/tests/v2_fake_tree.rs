//! The cgroup v2 code against a fake tree in a temporary directory.
//!
//! This host is hybrid (its v2 mount has no controllers), so v2 cannot run for real here. A
//! temp dir stands in for `/sys/fs/cgroup`: the test writes the interface files the kernel
//! would provide (`cgroup.controllers`, `memory.peak`, `cgroup.events`, ...) and reads back what
//! the library wrote. Two honest limits of a fake: a plain directory does not grow interface
//! files on `mkdir`, and `rmdir` of a directory holding regular files fails with ENOTEMPTY
//! (on cgroupfs the files vanish with the directory). The destroy tests therefore either assert
//! that ENOTEMPTY surfaces as a typed error, or remove the fake files first, as the kernel would.

use std::fs;
use std::path::Path;

use isolab_cgroups::{parse_cpus, parse_memory, CgroupError, CgroupMode, CgroupRoot, Resources};

fn write(dir: &Path, file: &str, text: &str) {
    fs::write(dir.join(file), text).unwrap();
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap()
}

fn tokens(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
    v.sort();
    v
}

/// Removes the regular files the library (or the test) wrote, like the kernel's rmdir would.
fn remove_files(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::remove_file(e.path()).unwrap();
        }
    }
}

fn fake_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "cgroup.controllers", "cpuset cpu io memory pids");
    write(t.path(), "cgroup.subtree_control", "");
    t
}

fn limits() -> Resources {
    Resources {
        memory_limit_bytes: Some(parse_memory("64M").unwrap()),
        memory_swap_limit_bytes: Some(-1),
        cpu_quota: Some(parse_cpus("0.5").unwrap()),
        cpu_shares: Some(1024),
        cpuset_cpus: Some("0".into()),
        pids_limit: Some(32),
        ..Default::default()
    }
}

#[test]
fn create_writes_v2_files_and_enables_controllers() {
    let t = fake_root();
    let root = CgroupRoot::unified_at(t.path(), "/").unwrap();
    assert_eq!(root.mode(), CgroupMode::Unified);
    let cg = root.create("c1", &limits()).unwrap();
    let dir = t.path().join("isolab/c1");
    assert_eq!(cg.paths(), vec![dir.clone()]);

    let expected = tokens("+memory +pids +cpu +cpuset");
    assert_eq!(tokens(&read(t.path(), "cgroup.subtree_control")), expected);
    assert_eq!(
        tokens(&read(&t.path().join("isolab"), "cgroup.subtree_control")),
        expected
    );
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpu.weight"), "39");
    assert_eq!(read(&dir, "cpuset.cpus"), "0");
    assert_eq!(read(&dir, "pids.max"), "32");
    // Unlimited swap on a kernel without memory.swap.max: nothing to write.
    assert!(!dir.join("memory.swap.max").exists());

    // A second create with the same name is refused and leaves the first alone.
    let err = root.create("c1", &limits()).unwrap_err();
    assert!(matches!(err, CgroupError::AlreadyExists { .. }), "{err}");
    assert!(dir.is_dir());

    // The fake directory still holds regular files, so rmdir reports ENOTEMPTY, typed.
    let err = cg.destroy().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY), "{err}");
}

#[test]
fn stats_and_freeze_parse_v2_files() {
    let t = fake_root();
    let root = CgroupRoot::unified_at(t.path(), "/").unwrap();
    let cg = root.create("c2", &Resources::default()).unwrap();
    let dir = &cg.paths()[0];
    write(dir, "memory.current", "4096\n");
    write(dir, "memory.peak", "33554432\n");
    write(
        dir,
        "memory.events",
        "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
    );
    write(
        dir,
        "cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 250\n",
    );
    write(dir, "pids.current", "0\n");
    write(dir, "pids.peak", "7\n");
    let s = cg.stats().unwrap();
    assert_eq!(s.memory_current_bytes, Some(4096));
    assert_eq!(s.memory_peak_bytes, Some(33554432));
    assert_eq!(s.oom_kills, Some(1));
    assert_eq!(s.cpu_usage_us, Some(1500));
    assert_eq!(s.cpu_user_us, Some(1000));
    assert_eq!(s.cpu_system_us, Some(500));
    assert_eq!(s.cpu_periods, Some(10));
    assert_eq!(s.cpu_throttled_periods, Some(4));
    assert_eq!(s.cpu_throttled_us, Some(250));
    assert_eq!(s.pids_current, Some(0));
    assert_eq!(s.pids_peak, Some(7));

    // Missing files are None, not errors (an older kernel without memory.peak).
    fs::remove_file(dir.join("memory.peak")).unwrap();
    assert_eq!(cg.stats().unwrap().memory_peak_bytes, None);

    // Freezing needs cgroup.freeze (Linux 5.2+): absent means a typed error.
    let err = cg.freeze().unwrap_err();
    assert!(matches!(err, CgroupError::FileMissing { .. }), "{err}");
    write(dir, "cgroup.freeze", "0");
    write(dir, "cgroup.events", "populated 0\nfrozen 1\n");
    cg.freeze().unwrap();
    assert_eq!(read(dir, "cgroup.freeze"), "1");
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert_eq!(read(dir, "cgroup.freeze"), "0");

    // With the fake files removed (as the kernel's rmdir would), destroy removes the
    // directory; the shared isolab parent stays for the next container.
    remove_files(dir);
    let isolab = t.path().join("isolab");
    cg.destroy().unwrap();
    assert!(!dir.exists(), "the container's cgroup must be removed");
    assert!(isolab.exists(), "the shared isolab parent is kept");
}

#[test]
fn nested_caller_and_missing_controller() {
    let t = fake_root();
    let own = t.path().join("user");
    fs::create_dir(&own).unwrap();
    write(&own, "cgroup.controllers", "memory pids");
    write(&own, "cgroup.subtree_control", "");
    let root = CgroupRoot::unified_at(t.path(), "/user").unwrap();

    // cpu is not handed down to /user: a --cpus request names the controller.
    let res = Resources {
        cpu_quota: Some(parse_cpus("1").unwrap()),
        ..Default::default()
    };
    let err = root.create("c3", &res).unwrap_err();
    match &err {
        CgroupError::ControllerMissing {
            controller,
            needed_for,
        } => {
            assert_eq!(*controller, "cpu");
            assert_eq!(*needed_for, "--cpus");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!err.to_string().contains('\n'));
    assert!(!own.join("isolab/c3").exists(), "nothing created on error");

    // Memory works and nests under the caller's cgroup; only available controllers are used.
    let res = Resources {
        memory_limit_bytes: Some(parse_memory("16m").unwrap()),
        ..Default::default()
    };
    let cg = root.create("c3", &res).unwrap();
    assert_eq!(cg.paths(), vec![own.join("isolab/c3")]);
    assert_eq!(
        tokens(&read(&own, "cgroup.subtree_control")),
        tokens("+memory +pids")
    );
    assert_eq!(read(&own.join("isolab/c3"), "memory.max"), "16777216");

    // open() finds it and does not destroy it when dropped.
    {
        let opened = root.open("c3").unwrap();
        assert!(!opened.destroy_on_drop());
        assert_eq!(opened.paths(), cg.paths());
    }
    assert!(own.join("isolab/c3").is_dir());
    assert!(matches!(
        root.open("nope").unwrap_err(),
        CgroupError::NotFound { .. }
    ));
    remove_files(&own.join("isolab/c3"));
    cg.destroy().unwrap();
    assert!(!own.join("isolab/c3").exists());
}

#[test]
fn failed_create_is_rolled_back_by_drop() {
    let t = fake_root();
    let root = CgroupRoot::unified_at(t.path(), "/").unwrap();
    // No io.weight/io.bfq.weight in the fake directory: the limit cannot be applied.
    let res = Resources {
        io_weight: Some(500),
        ..Default::default()
    };
    let err = root.create("c4", &res).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::FileMissing {
                needed_for: "--blkio-weight",
                ..
            }
        ),
        "{err}"
    );
    // The directory made before the failure was empty, so the rollback removed it.
    assert!(!t.path().join("isolab/c4").exists());
}

#[test]
fn swap_limit_goes_to_memory_swap_max_as_swap_only() {
    let t = fake_root();
    let root = CgroupRoot::unified_at(t.path(), "/").unwrap();
    let res = Resources {
        memory_limit_bytes: Some(64 << 20),
        memory_swap_limit_bytes: Some(96 << 20),
        ..Default::default()
    };
    // The fake dir lacks memory.swap.max, so a finite swap limit is a typed error ...
    let err = root.create("c5", &res).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::FileMissing {
                needed_for: "--memory-swap",
                ..
            }
        ),
        "{err}"
    );
    // ... and bad combinations never reach the filesystem.
    let bad = Resources {
        memory_limit_bytes: Some(64 << 20),
        memory_swap_limit_bytes: Some(32 << 20),
        ..Default::default()
    };
    assert!(matches!(
        root.create("c6", &bad).unwrap_err(),
        CgroupError::Limit(_)
    ));
    assert!(!t.path().join("isolab/c6").exists());
}
