//! The container's root filesystem, as a list of mount steps the child executes.
//!
//! Inside a new **mount namespace** the child gets a private copy of the host's mount table. It
//! first marks every mount *private* so nothing it does propagates back to the host, then builds
//! the container's `/`:
//!
//! 1. the rootfs itself — an **overlayfs** of read-only image layers (`lowerdir`) plus the
//!    container's own writable `upperdir` (writes are copied up there; the layers never change),
//!    or a plain directory bind-mounted onto itself (an OCI bundle, as crun and runc do);
//! 2. the pseudo-filesystems a Linux program expects: `/proc` (a fresh procfs, which shows only the
//!    new PID namespace), a tmpfs `/dev` holding just the harmless device nodes (made with
//!    `mknod`, or bind-mounted from the host in a user namespace, where `mknod` is forbidden), a
//!    private `/dev/pts` instance, `/dev/shm`, `/dev/mqueue`, `/sys` read-only and `/tmp` (in the
//!    order of an OCI bundle's default mounts); then namespaced sysctls, and docker's masked and
//!    read-only paths ([`crate::hardening`]: `/proc/sys` read-only, `/proc/kcore` and friends
//!    hidden);
//! 3. the user's bind mounts (`-v HOST:CONTAINER[:ro]`);
//! 4. finally the switch of root: `pivot_root(2)` moves the host's root out from under the
//!    process and the old root is detached, so no path leads back to the host tree. `chroot(2)`
//!    only changes how `/` is resolved for path lookups; the host's mounts stay in the mount
//!    namespace and a root process can walk back out (the chroot lab shows the escape).
//!
//! Everything is computed in the parent as C strings ([`MountPlan`]); the child only replays the
//! steps with raw syscalls. That keeps the child free of allocation (it is a clone of a possibly
//! multi-threaded process, where malloc's locks may be held by threads that no longer exist) and
//! keeps the start path short.

use crate::spec::{ContainerSpec, RootMode, RootfsSource};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, mkdir, pivot_root, symlinkat};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Device nodes a container gets: (name, major, minor), as in every Linux `/dev`.
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Where one container's overlay directories are.
#[derive(Debug, Clone)]
pub struct OverlayDirs {
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs' scratch dir; must be on the same filesystem as `upper`.
    pub work: PathBuf,
    /// Empty directory the merged view is mounted on.
    pub merged: PathBuf,
    /// When set, the child first mounts a tmpfs on this directory (inside its own mount
    /// namespace) and creates `upper`, `work` and `merged` in it: the writable layer then lives
    /// in memory, is charged to the container's memory cgroup, and vanishes with the container,
    /// so nothing is created or deleted on disk. For containers that are removed on exit.
    pub in_memory: Option<PathBuf>,
}

impl OverlayDirs {
    /// A writable layer on disk, kept after the container exits (for `commit` and `logs`).
    pub fn on_disk(upper: PathBuf, work: PathBuf, merged: PathBuf) -> Self {
        OverlayDirs {
            upper,
            work,
            merged,
            in_memory: None,
        }
    }

    /// A writable layer on a tmpfs mounted at `mountpoint`, an existing directory that any
    /// number of containers can share (each mounts it in its own private mount namespace).
    pub fn in_memory(mountpoint: &Path) -> Self {
        OverlayDirs {
            upper: mountpoint.join("upper"),
            work: mountpoint.join("work"),
            merged: mountpoint.join("merged"),
            in_memory: Some(mountpoint.to_path_buf()),
        }
    }
}

/// One step the child replays.
#[derive(Debug)]
enum Step {
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)`: stop propagation to and from the host.
    MakePrivate,
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: MsFlags,
        data: Option<CString>,
    },
    /// mkdir, tolerating EEXIST.
    Mkdir(CString),
    /// Create an empty file to bind a device or file onto, tolerating EEXIST.
    Touch(CString),
    /// A character device node, mode 0666, tolerating EEXIST.
    Mknod(CString, libc::dev_t),
    /// symlink(target, link), tolerating EEXIST.
    Symlink(CString, CString),
    /// Hide a path: `/dev/null` over a file, an empty read-only tmpfs over a directory;
    /// skipped when the path does not exist.
    Mask(CString),
    /// Bind the path onto itself and remount it read-only; skipped when it does not exist.
    ReadOnly(CString),
    /// A device node of any kind with the given mode and owner, tolerating EEXIST.
    Node {
        path: CString,
        kind: u32,
        dev: libc::dev_t,
        mode: u32,
        owner: (u32, u32),
    },
    /// Write a value into an existing file (a sysctl under /proc/sys).
    WriteFile(CString, CString),
    PivotRoot(CString),
    Chroot(CString),
}

/// The mount steps and, for error messages, what each one was doing.
#[derive(Debug, Default)]
pub struct MountPlan {
    steps: Vec<Step>,
    what: Vec<String>,
}

/// A failed step: which one and why. `Copy` so the child can send it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepFailure {
    pub index: u32,
    pub errno: i32,
}

/// Why a spec's file system cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("an image rootfs needs overlay directories")]
    NoOverlayDirs,
    #[error("the image has no layers")]
    NoLayers,
    #[error("mount destination {} must be absolute", .0.display())]
    RelativeDestination(PathBuf),
    #[error("{0:?} must be an absolute path inside the container")]
    RelativePath(String),
}

fn cstr(path: &Path) -> CString {
    // Paths come from the store or the user and never contain NUL (validated at the edge).
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

impl MountPlan {
    fn push(&mut self, step: Step, what: String) {
        self.steps.push(step);
        self.what.push(what);
    }

    fn mkdir(&mut self, path: &Path) {
        self.push(
            Step::Mkdir(cstr(path)),
            format!("creating {}", path.display()),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
        what: String,
    ) {
        let c = |s: &str| CString::new(s).unwrap_or_default();
        self.push(
            Step::Mount {
                source: source.map(c),
                target: cstr(target),
                fstype: fstype.map(c),
                flags,
                data: data.map(c),
            },
            what,
        );
    }

    /// What step `index` does, for the user, e.g. "mounting proc on /x/rootfs/proc".
    pub fn step_name(&self, index: u32) -> &str {
        self.what
            .get(index as usize)
            .map(String::as_str)
            .unwrap_or("setting up the root filesystem")
    }

    /// Builds the plan for `spec`. `overlay` is required for [`RootfsSource::Layers`].
    pub fn build(
        spec: &ContainerSpec,
        overlay: Option<&OverlayDirs>,
        in_userns: bool,
        new_netns: bool,
    ) -> Result<MountPlan, PlanError> {
        let mut plan = MountPlan::default();
        plan.push(Step::MakePrivate, "making the mount tree private".into());
        let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;

        // 1. The root filesystem.
        let root: PathBuf = match &spec.rootfs {
            RootfsSource::Layers(layers) => {
                let dirs = overlay.ok_or(PlanError::NoOverlayDirs)?;
                if layers.is_empty() {
                    return Err(PlanError::NoLayers);
                }
                if let Some(scratch) = &dirs.in_memory {
                    plan.mount(
                        Some("tmpfs"),
                        scratch,
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        Some("mode=755"),
                        format!(
                            "mounting the in-memory writable layer on {}",
                            scratch.display()
                        ),
                    );
                    for d in [&dirs.upper, &dirs.work, &dirs.merged] {
                        plan.mkdir(d);
                    }
                }
                // overlayfs lists lower layers top first.
                let lower: Vec<String> = layers
                    .iter()
                    .rev()
                    .map(|l| l.to_string_lossy().into_owned())
                    .collect();
                // `volatile` skips the sync of the upper filesystem that overlayfs otherwise
                // does when it is unmounted: 43 ms per container exit on ext4 here, against
                // 0.2 ms. The price: after a host crash the container's writable layer may have
                // lost writes (overlayfs then refuses to remount it), which is fine for a
                // container's scratch layer; `commit` copies it while nothing is mounted.
                let mut data = format!(
                    "lowerdir={},upperdir={},workdir={},volatile",
                    lower.join(":"),
                    dirs.upper.display(),
                    dirs.work.display()
                );
                if in_userns {
                    // Unprivileged overlay stores its metadata in user.* xattrs (trusted.* needs
                    // host root).
                    data.push_str(",userxattr");
                }
                plan.mount(
                    Some("overlay"),
                    &dirs.merged,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(&data),
                    format!("mounting the overlay rootfs on {}", dirs.merged.display()),
                );
                dirs.merged.clone()
            }
            RootfsSource::Dir(dir) => {
                // A bind mount of the dir onto itself makes it a mount point, which pivot_root
                // requires of the new root.
                plan.mount(
                    Some(&dir.to_string_lossy()),
                    dir,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                    format!("bind-mounting the rootfs {}", dir.display()),
                );
                dir.clone()
            }
        };

        // 2. Pseudo-filesystems.
        let proc_ = root.join("proc");
        plan.mkdir(&proc_);
        plan.mount(
            Some("proc"),
            &proc_,
            Some("proc"),
            nosuid_nodev_noexec,
            None,
            format!("mounting proc on {}", proc_.display()),
        );

        let dev = root.join("dev");
        plan.mkdir(&dev);
        plan.mount(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
            format!("mounting a tmpfs on {}", dev.display()),
        );
        for (name, major, minor) in DEVICES {
            let node = dev.join(name);
            if in_userns {
                // mknod is forbidden in a user namespace: borrow the host's node instead.
                plan.push(
                    Step::Touch(cstr(&node)),
                    format!("creating {}", node.display()),
                );
                plan.mount(
                    Some(&format!("/dev/{name}")),
                    &node,
                    None,
                    MsFlags::MS_BIND,
                    None,
                    format!("bind-mounting /dev/{name}"),
                );
            } else {
                // A node is cheaper than a bind mount, to set up and to tear down.
                plan.push(
                    Step::Mknod(cstr(&node), libc::makedev(major, minor)),
                    format!("creating the device node {}", node.display()),
                );
            }
        }
        let pts = dev.join("pts");
        plan.mkdir(&pts);
        let pts_opts = if in_userns {
            "newinstance,ptmxmode=0666,mode=0620"
        } else {
            "newinstance,ptmxmode=0666,mode=0620,gid=5"
        };
        plan.mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some(pts_opts),
            format!("mounting devpts on {}", pts.display()),
        );
        for (target, link) in [
            ("pts/ptmx", "ptmx"),
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ] {
            let link_path = dev.join(link);
            plan.push(
                Step::Symlink(CString::new(target).unwrap_or_default(), cstr(&link_path)),
                format!("creating the symlink {}", link_path.display()),
            );
        }
        let shm = dev.join("shm");
        plan.mkdir(&shm);
        plan.mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            nosuid_nodev_noexec,
            Some("mode=1777,size=65536k"),
            format!("mounting a tmpfs on {}", shm.display()),
        );
        if spec.namespaces.contains(crate::Namespace::Ipc) {
            let mq = dev.join("mqueue");
            plan.mkdir(&mq);
            plan.mount(
                Some("mqueue"),
                &mq,
                Some("mqueue"),
                nosuid_nodev_noexec,
                None,
                format!("mounting mqueue on {}", mq.display()),
            );
        }
        let sys = root.join("sys");
        plan.mkdir(&sys);
        if new_netns {
            plan.mount(
                Some("sysfs"),
                &sys,
                Some("sysfs"),
                nosuid_nodev_noexec | MsFlags::MS_RDONLY,
                None,
                format!("mounting sysfs on {}", sys.display()),
            );
        } else {
            // sysfs can only be mounted fresh from a network namespace we own; share the host's,
            // read-only.
            plan.mount(
                Some("/sys"),
                &sys,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
                format!("bind-mounting /sys on {}", sys.display()),
            );
            plan.mount(
                None,
                &sys,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None,
                format!("remounting {} read-only", sys.display()),
            );
        }

        if spec.tmpfs_tmp {
            let tmp = root.join("tmp");
            plan.mkdir(&tmp);
            plan.mount(
                Some("tmpfs"),
                &tmp,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=1777"),
                format!("mounting a tmpfs on {}", tmp.display()),
            );
        }

        plan.harden(spec, &root, in_userns)?;

        // 3. The user's bind mounts.
        for bind in &spec.mounts {
            let rel = bind
                .destination
                .strip_prefix("/")
                .map_err(|_| PlanError::RelativeDestination(bind.destination.clone()))?;
            let target = root.join(rel);
            // Create every missing parent, then a dir or file matching the source.
            let mut prefix = root.clone();
            if let Some(parent) = rel.parent() {
                for comp in parent.components() {
                    prefix.push(comp);
                    plan.mkdir(&prefix);
                }
            }
            if bind.source.is_dir() {
                plan.mkdir(&target);
            } else {
                plan.push(
                    Step::Touch(cstr(&target)),
                    format!("creating {}", target.display()),
                );
            }
            plan.mount(
                Some(&bind.source.to_string_lossy()),
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
                format!(
                    "bind-mounting {} on {}",
                    bind.source.display(),
                    bind.destination.display()
                ),
            );
            if bind.readonly {
                plan.mount(
                    None,
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None,
                    format!("remounting {} read-only", bind.destination.display()),
                );
            }
        }

        if spec.readonly_rootfs {
            plan.mount(
                None,
                &root,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None,
                "remounting the rootfs read-only".into(),
            );
        }

        // 4. Switch root.
        match spec.root_mode {
            RootMode::PivotRoot => plan.push(
                Step::PivotRoot(cstr(&root)),
                format!("pivot_root into {}", root.display()),
            ),
            RootMode::Chroot => plan.push(
                Step::Chroot(cstr(&root)),
                format!("chroot into {}", root.display()),
            ),
        }
        Ok(plan)
    }

    /// Namespaced sysctls first (/proc/sys is still writable), then the masked and read-only
    /// paths of [`crate::hardening`].
    fn harden(
        &mut self,
        spec: &ContainerSpec,
        root: &Path,
        in_userns: bool,
    ) -> Result<(), PlanError> {
        let inside = |p: &str| -> Result<PathBuf, PlanError> {
            let rel = Path::new(p)
                .strip_prefix("/")
                .map_err(|_| PlanError::RelativePath(p.to_string()))?;
            Ok(root.join(rel))
        };
        for (key, value) in &spec.sysctl {
            let file = root.join("proc/sys").join(key.replace('.', "/"));
            self.push(
                Step::WriteFile(
                    cstr(&file),
                    CString::new(value.as_str()).unwrap_or_default(),
                ),
                format!("setting the sysctl {key}={value}"),
            );
        }
        for node in &spec.hardening.nodes {
            let path = inside(&node.path)?;
            if in_userns {
                // mknod is forbidden in a user namespace: borrow the host's node.
                self.push(Step::Touch(cstr(&path)), format!("creating {}", node.path));
                self.mount(
                    Some(&node.path),
                    &path,
                    None,
                    MsFlags::MS_BIND,
                    None,
                    format!("bind-mounting the host's {}", node.path),
                );
            } else {
                self.push(
                    Step::Node {
                        path: cstr(&path),
                        kind: node.kind,
                        dev: libc::makedev(node.major, node.minor),
                        mode: node.mode & 0o7777,
                        owner: (node.uid, node.gid),
                    },
                    format!("creating the device node {}", node.path),
                );
            }
        }
        for p in &spec.hardening.masked_paths {
            let path = inside(p)?;
            self.push(Step::Mask(cstr(&path)), format!("masking {p}"));
        }
        for p in &spec.hardening.readonly_paths {
            let path = inside(p)?;
            self.push(Step::ReadOnly(cstr(&path)), format!("making {p} read-only"));
        }
        Ok(())
    }

    /// Replays the plan. Runs in the cloned child: no allocation, raw syscalls only.
    pub fn apply(&self) -> Result<(), StepFailure> {
        for (index, step) in self.steps.iter().enumerate() {
            apply_step(step).map_err(|errno| StepFailure {
                index: index as u32,
                errno: errno as i32,
            })?;
        }
        Ok(())
    }
}

fn tolerate_exists(r: nix::Result<()>) -> nix::Result<()> {
    match r {
        Err(Errno::EEXIST) => Ok(()),
        other => other,
    }
}

fn apply_step(step: &Step) -> nix::Result<()> {
    match step {
        Step::MakePrivate => mount(
            None::<&CStr>,
            c"/",
            None::<&CStr>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&CStr>,
        ),
        Step::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => mount(
            source.as_deref(),
            target.as_c_str(),
            fstype.as_deref(),
            *flags,
            data.as_deref(),
        ),
        Step::Mkdir(path) => {
            tolerate_exists(mkdir(path.as_c_str(), Mode::from_bits_truncate(0o755)))
        }
        Step::Touch(path) => {
            let fd = open(
                path.as_c_str(),
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )?;
            drop(fd);
            Ok(())
        }
        Step::Mknod(path, dev) => {
            // The umask would strip the world bits that /dev/null needs.
            let r = nix::sys::stat::mknod(
                path.as_c_str(),
                nix::sys::stat::SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                *dev,
            );
            tolerate_exists(r)?;
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                path.as_c_str(),
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        }
        Step::Symlink(target, link) => tolerate_exists(symlinkat(
            target.as_c_str(),
            nix::fcntl::AT_FDCWD,
            link.as_c_str(),
        )),
        Step::Node {
            path,
            kind,
            dev,
            mode,
            owner,
        } => {
            // SAFETY: mknod/chmod/chown on a NUL-terminated path we own; no memory is shared.
            let rc = unsafe { libc::mknod(path.as_ptr(), *kind | *mode, *dev) };
            if rc != 0 && Errno::last() != Errno::EEXIST {
                return Err(Errno::last());
            }
            // The umask may have stripped bits of `mode`.
            // SAFETY: as above.
            if unsafe { libc::chmod(path.as_ptr(), *mode) } != 0 {
                return Err(Errno::last());
            }
            // SAFETY: as above.
            if unsafe { libc::chown(path.as_ptr(), owner.0, owner.1) } != 0 {
                return Err(Errno::last());
            }
            Ok(())
        }
        Step::Mask(path) => crate::hardening::mask(path),
        Step::ReadOnly(path) => crate::hardening::make_readonly(path),
        Step::WriteFile(path, value) => {
            let fd = open(
                path.as_c_str(),
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            nix::unistd::write(&fd, value.as_bytes())?;
            Ok(())
        }
        Step::PivotRoot(root) => {
            // pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching
            // it then leaves only the new root. No "old_root" directory is needed.
            chdir(root.as_c_str())?;
            pivot_root(c".", c".")?;
            umount2(c".", MntFlags::MNT_DETACH)?;
            chdir(c"/")
        }
        Step::Chroot(root) => {
            chdir(root.as_c_str())?;
            chroot(c".")?;
            chdir(c"/")
        }
    }
}
