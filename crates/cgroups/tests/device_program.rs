//! The cgroup v2 device program, for real: attached to a child of the host's cgroup2 mount, it
//! makes a node with /dev/kvm's numbers unopenable (EPERM) for a process inside, while /dev/null
//! still opens, and the same open outside the cgroup succeeds (so the test can fail).

use isolab_cgroups::device_bpf::DeviceProgram;
use isolab_cgroups::DeviceRule;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first cgroup2 mount in this mount namespace.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mount_point = pre.split_whitespace().nth(4)?;
        (post.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// Removes the test cgroup however the test ends.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Tries to open `node` read-only from `sh`, optionally after joining the cgroup whose
/// `cgroup.procs` is open as `procs`; returns sh's stderr ("" on success).
fn open_from_child(node: &Path, procs: Option<&std::fs::File>) -> String {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(format!("head -c0 {}", node.display()));
    if let Some(f) = procs {
        let fd = f.as_raw_fd();
        let join = move || {
            // SAFETY: one write(2) of a static byte to an fd opened before the fork.
            if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: the closure only makes one write(2) on an fd opened before the fork; no
        // allocation or lock between fork and exec.
        unsafe {
            cmd.pre_exec(join);
        }
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn device_program_denies_kvm_and_allows_null() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (bpf, cgroups, mknod)");
        return;
    }
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 mount on this host");
        return;
    };
    let dir = mount.join(format!("isolab-devtest-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let cg = TestCgroup(dir);
    let prog = DeviceProgram::compile(&DeviceRule::standard_set());
    prog.attach(&cg.0).expect("attaching the device program");

    // A node with /dev/kvm's numbers, in /dev (devtmpfs is never mounted `nodev`).
    let kvm = PathBuf::from(format!("/dev/isolab-devtest-kvm-{}", std::process::id()));
    let _node = RemoveNode(kvm.clone());
    nix::sys::stat::mknod(
        &kvm,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        libc::makedev(10, 232),
    )
    .unwrap();
    let host_has_kvm = Path::new("/dev/kvm").exists();
    // Outside the cgroup the node opens (where the host has KVM): the denial below is the
    // program's doing.
    let outside = open_from_child(&kvm, None);
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(cg.0.join("cgroup.procs"))
        .unwrap();
    let inside = open_from_child(&kvm, Some(&procs));
    assert!(inside.contains("Operation not permitted"), "{inside:?}");
    let null = open_from_child(Path::new("/dev/null"), Some(&procs));
    assert!(null.is_empty(), "{null:?}");
    if host_has_kvm {
        assert!(outside.is_empty(), "outside the cgroup: {outside:?}");
    } else {
        eprintln!("note: no /dev/kvm here; outside the cgroup the open gave {outside:?}");
    }
}

struct RemoveNode(PathBuf);

impl Drop for RemoveNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
