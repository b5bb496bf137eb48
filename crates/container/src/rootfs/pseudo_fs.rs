//! The pseudo-filesystems a Linux program expects, in the order of an OCI bundle's default
//! mounts: `/proc`, a small `/dev`, `/sys`, `/tmp`.

use super::step::Step;
use super::{cstr, Fs, MountPlan};
use nix::mount::MsFlags;
use std::ffi::CString;
use std::path::Path;

/// Device nodes a container gets: (name, major, minor), as in every Linux `/dev`.
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The symlinks of `/dev`: (target, name).
const DEV_LINKS: [(&str, &str); 5] = [
    ("pts/ptmx", "ptmx"),
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
];

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

impl MountPlan {
    /// A fresh procfs, which shows only the new PID namespace.
    pub(super) fn proc(&mut self, root: &Path) {
        let proc_fs = Fs {
            source: "proc",
            fstype: "proc",
            flags: NOSUID_NODEV_NOEXEC,
            data: None,
        };
        self.mount_fresh(&root.join("proc"), proc_fs, "proc");
    }

    /// A tmpfs `/dev` with the harmless device nodes, a private devpts instance, the standard
    /// symlinks, `/dev/shm`, and `/dev/mqueue` with an IPC namespace (`new_ipcns`).
    pub(super) fn dev(&mut self, root: &Path, new_ipcns: bool, in_userns: bool) {
        let dev = root.join("dev");
        let tmpfs = Fs {
            source: "tmpfs",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            data: Some("mode=755,size=65536k"),
        };
        self.mount_fresh(&dev, tmpfs, "a tmpfs");
        self.device_nodes(&dev, in_userns);
        let devpts = Fs {
            source: "devpts",
            fstype: "devpts",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            // In a user namespace the host's tty group (5) is not mapped.
            data: Some(if in_userns {
                "newinstance,ptmxmode=0666,mode=0620"
            } else {
                "newinstance,ptmxmode=0666,mode=0620,gid=5"
            }),
        };
        self.mount_fresh(&dev.join("pts"), devpts, "devpts");
        for (target, link) in DEV_LINKS {
            let link_path = dev.join(link);
            self.push(
                Step::Symlink(CString::new(target).unwrap_or_default(), cstr(&link_path)),
                format!("creating the symlink {}", link_path.display()),
            );
        }
        let shm = Fs {
            source: "shm",
            fstype: "tmpfs",
            flags: NOSUID_NODEV_NOEXEC,
            data: Some("mode=1777,size=65536k"),
        };
        self.mount_fresh(&dev.join("shm"), shm, "a tmpfs");
        if new_ipcns {
            let mqueue = Fs {
                source: "mqueue",
                fstype: "mqueue",
                flags: NOSUID_NODEV_NOEXEC,
                data: None,
            };
            self.mount_fresh(&dev.join("mqueue"), mqueue, "mqueue");
        }
    }

    /// The nodes of [`DEVICES`] in `dev`.
    fn device_nodes(&mut self, dev: &Path, in_userns: bool) {
        for (name, major, minor) in DEVICES {
            let node = dev.join(name);
            if in_userns {
                // mknod is forbidden in a user namespace: borrow the host's node instead.
                self.touch(&node, format!("creating {}", node.display()));
                self.bind(
                    &Path::new("/dev").join(name),
                    &node,
                    false,
                    format!("bind-mounting /dev/{name}"),
                );
            } else {
                // A node is cheaper than a bind mount, to set up and to tear down.
                self.push(
                    Step::Mknod(cstr(&node), libc::makedev(major, minor)),
                    format!("creating the device node {}", node.display()),
                );
            }
        }
    }

    /// sysfs, read-only. It can only be mounted fresh from a network namespace we own
    /// (`new_netns`); otherwise the host's is shared, read-only.
    pub(super) fn sys(&mut self, root: &Path, new_netns: bool) {
        let sys = root.join("sys");
        if new_netns {
            let sysfs = Fs {
                source: "sysfs",
                fstype: "sysfs",
                flags: NOSUID_NODEV_NOEXEC | MsFlags::MS_RDONLY,
                data: None,
            };
            self.mount_fresh(&sys, sysfs, "sysfs");
        } else {
            self.mkdir(&sys);
            self.bind(
                Path::new("/sys"),
                &sys,
                true,
                format!("bind-mounting /sys on {}", sys.display()),
            );
            self.remount_readonly(&sys, format!("remounting {} read-only", sys.display()));
        }
    }

    /// A tmpfs `/tmp`, so the workload's scratch files stay in memory and vanish with it.
    pub(super) fn tmp(&mut self, root: &Path) {
        let tmpfs = Fs {
            source: "tmpfs",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: Some("mode=1777"),
        };
        self.mount_fresh(&root.join("tmp"), tmpfs, "a tmpfs");
    }
}
