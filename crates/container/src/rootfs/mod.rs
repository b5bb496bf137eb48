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

//!
//! The plan is built in the order above: `root` (the rootfs and, last, the switch of root),
//! `pseudo_fs` (/proc, /dev, /sys, /tmp), `harden` (sysctls, device nodes, masked and read-only
//! paths), `binds` (the user's bind mounts); `step` holds the steps and how the child replays
//! each one.

mod binds;
mod harden;
mod pseudo_fs;
mod root;
mod step;
#[cfg(test)]
mod tests;

use crate::spec::ContainerSpec;
use nix::mount::MsFlags;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use step::Step;

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

/// A filesystem to mount: the arguments of mount(2) besides the target.
#[derive(Debug, Clone, Copy)]
struct Fs<'a> {
    source: &'a str,
    fstype: &'a str,
    flags: MsFlags,
    data: Option<&'a str>,
}

fn cstr(path: &Path) -> CString {
    // Paths come from the store or the user and never contain NUL (validated at the edge).
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

impl MountPlan {
    /// Builds the plan for `spec`. `overlay` is required for [`crate::RootfsSource::Layers`].
    pub fn build(
        spec: &ContainerSpec,
        overlay: Option<&OverlayDirs>,
        in_userns: bool,
        new_netns: bool,
    ) -> Result<MountPlan, PlanError> {
        let mut plan = MountPlan::default();
        plan.push(Step::MakePrivate, "making the mount tree private".into());
        // 1. The root filesystem.
        let root = plan.root(spec, overlay, in_userns)?;
        // 2. Pseudo-filesystems, then what hardening adds to them.
        plan.proc(&root);
        plan.dev(
            &root,
            spec.namespaces.contains(crate::Namespace::Ipc),
            in_userns,
        );
        plan.sys(&root, new_netns);
        if spec.tmpfs_tmp {
            plan.tmp(&root);
        }
        plan.harden(spec, &root, in_userns)?;
        // 3. The user's bind mounts.
        for bind in &spec.mounts {
            plan.user_bind(&root, bind)?;
        }
        // 4. Switch root.
        plan.switch_root(spec, &root);
        Ok(plan)
    }

    /// For a container without a mount namespace of its own: no mounts (they would land in the
    /// host's mount table), only `chroot` into a rootfs directory.
    pub fn chroot_only(spec: &ContainerSpec) -> Option<MountPlan> {
        let (crate::RootMode::Chroot, crate::RootfsSource::Dir(dir)) =
            (spec.root_mode, &spec.rootfs)
        else {
            return None;
        };
        let mut plan = MountPlan::default();
        plan.push(
            Step::Chroot(cstr(dir)),
            format!("chroot into {}", dir.display()),
        );
        Some(plan)
    }

    /// What step `index` does, for the user, e.g. "mounting proc on /x/rootfs/proc".
    pub fn step_name(&self, index: u32) -> &str {
        self.what
            .get(index as usize)
            .map(String::as_str)
            .unwrap_or("setting up the root filesystem")
    }

    /// Replays the plan. Runs in the cloned child: no allocation, raw syscalls only.
    pub fn apply(&self) -> Result<(), StepFailure> {
        for (index, step) in self.steps.iter().enumerate() {
            step.apply().map_err(|errno| StepFailure {
                index: index as u32,
                errno: errno as i32,
            })?;
        }
        Ok(())
    }

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

    /// An empty file to bind a file onto.
    fn touch(&mut self, path: &Path, what: String) {
        self.push(Step::Touch(cstr(path)), what);
    }

    fn mount(&mut self, target: &Path, fs: Fs<'_>, what: String) {
        let c = |s: &str| Some(CString::new(s).unwrap_or_default());
        self.push(
            Step::Mount {
                source: c(fs.source),
                target: cstr(target),
                fstype: c(fs.fstype),
                flags: fs.flags,
                data: fs.data.and_then(c),
            },
            what,
        );
    }

    /// A fresh filesystem on a directory created for it, e.g. "mounting proc on /x/proc".
    fn mount_fresh(&mut self, target: &Path, fs: Fs<'_>, label: &str) {
        self.mkdir(target);
        self.mount(
            target,
            fs,
            format!("mounting {label} on {}", target.display()),
        );
    }

    /// `source` bind-mounted on `target`, with what is below it when `recursive`.
    fn bind(&mut self, source: &Path, target: &Path, recursive: bool, what: String) {
        let mut flags = MsFlags::MS_BIND;
        if recursive {
            flags |= MsFlags::MS_REC;
        }
        self.push(
            Step::Mount {
                source: Some(cstr(source)),
                target: cstr(target),
                fstype: None,
                flags,
                data: None,
            },
            what,
        );
    }

    /// A bind mount at `target` remounted read-only.
    fn remount_readonly(&mut self, target: &Path, what: String) {
        self.push(
            Step::Mount {
                source: None,
                target: cstr(target),
                fstype: None,
                flags: MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                data: None,
            },
            what,
        );
    }
}
