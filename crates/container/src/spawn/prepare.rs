//! Step 1, in the parent: check the spec and build everything the child will need, before the
//! clone. The child only reads what is prepared here (see [`super::child`]).

use super::child::ChildPlan;
use super::errors::{SpawnError, SpecError};
use super::{mono_ns, RunContext};
use crate::namespaces::Namespace;
use crate::rootfs::{MountPlan, OverlayDirs};
use crate::spec::{ContainerSpec, NetworkMode, RootfsSource};
use crate::stdio::ChildStdio;
use isolab_cgroups::Cgroup;
use nix::fcntl::OFlag;
use nix::sys::signal::SigSet;
use nix::unistd::{Gid, Uid};
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};

/// Refuses what an unprivileged caller cannot do. Returns whether the run is rootless: without
/// root, a user namespace is what grants the privileges the setup needs inside it; what lives
/// outside it (cgroups, the bridge) stays out of reach.
pub(super) fn check_privileges(
    spec: &ContainerSpec,
    ctx: &RunContext<'_>,
) -> Result<bool, SpawnError> {
    if Uid::effective().is_root() {
        return Ok(false);
    }
    if !spec.namespaces.contains(Namespace::User) {
        return Err(SpawnError::NotRoot);
    }
    if ctx.cgroups.is_some() && spec.use_cgroup {
        return Err(SpawnError::Rootless(
            "create cgroups (limits and usage statistics need root, or a delegated cgroup)",
        ));
    }
    if spec.network == NetworkMode::Bridge {
        return Err(SpawnError::Rootless(
            "join the bridge (use --net none or host)",
        ));
    }
    Ok(true)
}

/// Checks the spec for combinations the kernel would reject with a cryptic errno.
pub(super) fn validate(spec: &ContainerSpec) -> Result<(), SpecError> {
    if spec.args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    validate_namespaces(spec)?;
    if !spec.workdir.starts_with('/') {
        return Err(SpecError::RelativeWorkdir(spec.workdir.clone()));
    }
    if let Some(h) = &spec.hostname {
        if h.is_empty() || h.len() > 64 {
            return Err(SpecError::BadHostname(h.clone()));
        }
    }
    validate_sysctls(spec)?;
    validate_paths(spec)
}

/// Each feature that needs a namespace has it, and `--net host` has none.
fn validate_namespaces(spec: &ContainerSpec) -> Result<(), SpecError> {
    let ns = spec.namespaces;
    if !spec.has_mount_ns() {
        if matches!(spec.rootfs, RootfsSource::Layers(_)) {
            return Err(SpecError::LayersNeedMountNs);
        }
        if spec.root_mode == crate::RootMode::PivotRoot {
            return Err(SpecError::PivotRootNeedsMountNs);
        }
    }
    if spec.network == NetworkMode::Host && ns.contains(Namespace::Net) {
        return Err(SpecError::HostNetWithNetNs);
    }
    if spec.network != NetworkMode::Host && !ns.contains(Namespace::Net) {
        return Err(SpecError::NetNeedsNetNs(spec.network));
    }
    if ns.contains(Namespace::User) && spec.id_mapping.is_none() {
        return Err(SpecError::UserNsNeedsIdMapping);
    }
    Ok(())
}

/// Sysctls are written into the container's own /proc, under names that stay inside it.
fn validate_sysctls(spec: &ContainerSpec) -> Result<(), SpecError> {
    if !spec.sysctl.is_empty() && !spec.has_mount_ns() {
        return Err(SpecError::SysctlNeedsMountNs);
    }
    for (key, _) in &spec.sysctl {
        if key.is_empty() || key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..")
        {
            return Err(SpecError::BadSysctl(key.clone()));
        }
    }
    Ok(())
}

/// The host paths the spec names exist.
fn validate_paths(spec: &ContainerSpec) -> Result<(), SpecError> {
    if let RootfsSource::Dir(dir) = &spec.rootfs {
        if !dir.is_dir() {
            return Err(SpecError::RootfsNotDir(dir.clone()));
        }
    }
    let missing = |m: &&crate::BindMount| m.filesystem.is_none() && !m.source.exists();
    match spec.mounts.iter().find(missing) {
        Some(m) => Err(SpecError::MissingBindSource(m.source.clone())),
        None => Ok(()),
    }
}

/// argv, envp, the PATH candidates and the working directory, as C strings.
#[derive(Debug)]
pub(super) struct ExecPlan {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// Full paths to try in order: `args[0]` if it has a slash, else each `$PATH` dir + `args[0]`.
    /// glibc's execvpe would search the *parent's* PATH, not the container's.
    pub candidates: Vec<CString>,
    pub workdir: CString,
    pub search_path: String,
}

fn c_string(value: &str, what: &'static str) -> Result<CString, SpecError> {
    CString::new(value).map_err(|_| SpecError::NulByte {
        what,
        value: value.to_string(),
    })
}

impl ExecPlan {
    pub fn build(spec: &ContainerSpec) -> Result<ExecPlan, SpecError> {
        let all = |items: &[String], what| {
            items
                .iter()
                .map(|s| c_string(s, what))
                .collect::<Result<Vec<_>, _>>()
        };
        let search_path = crate::exec_path::search_path(&spec.env).to_string();
        let candidates = crate::exec_path::candidates(&spec.args[0], &spec.env)
            .iter()
            .map(|c| c_string(c, "command"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExecPlan {
            argv: all(&spec.args, "argument")?,
            envp: all(&spec.env, "environment entry")?,
            candidates,
            workdir: c_string(&spec.workdir, "working directory")?,
            search_path,
        })
    }
}

/// Everything built before the clone that outlives it in the parent.
pub(super) struct Prepared<'a> {
    /// Namespaces to join, opened: `(CLONE_NEW* flag, fd)`. The pid namespace is joined by
    /// the parent before the clone (see `launch`), the others by the child.
    pub joined: Vec<(libc::c_int, OwnedFd)>,
    /// The container's cgroup, with its limits already written.
    pub cgroup: Option<Cgroup>,
    /// How long creating the cgroup took.
    pub cgroup_ns: u64,
    pub capabilities: crate::CapSet,
    pub mounts: Option<MountPlan>,
    pub exec: ExecPlan,
    pub seccomp: Option<&'a crate::seccomp::SeccompProgram>,
    pub gids: Vec<Gid>,
}

/// Creates the cgroup (limits exist before the workload runs), readies the overlay's writable
/// layer, and builds the mount plan, the exec plan and the seccomp filter.
pub(super) fn prepare<'a>(
    spec: &ContainerSpec,
    ctx: &RunContext<'a>,
    rootless: bool,
) -> Result<Prepared<'a>, SpawnError> {
    let t0 = mono_ns();
    let cgroup = match ctx.cgroups {
        Some(root) if spec.use_cgroup => {
            let mut resources = spec.resources.clone();
            resources.devices = spec.hardening.devices.cgroup_rules();
            Some(root.create(&ctx.id, &resources)?)
        }
        _ => None,
    };
    let capabilities = bounding_set(spec, cgroup.is_some());
    let cgroup_ns = mono_ns() - t0;
    let userns = spec.namespaces.contains(Namespace::User);
    if let Some(dirs) = ctx.overlay.as_ref().filter(|d| d.in_memory.is_none()) {
        ready_disk_overlay(dirs, spec.id_mapping.filter(|_| userns && !rootless))?;
    }
    let mounts = if spec.has_mount_ns() {
        let new_netns = spec.namespaces.contains(Namespace::Net);
        Some(
            MountPlan::build(spec, ctx.overlay.as_ref(), userns, new_netns)
                .map_err(SpecError::from)?,
        )
    } else {
        // No mount namespace: nothing may be mounted (it would be the host's), only chroot.
        MountPlan::chroot_only(spec)
    };
    let seccomp = match (spec.seccomp, ctx.seccomp) {
        (crate::SeccompMode::Unconfined, _) => None,
        (crate::SeccompMode::Default, Some(prog)) => Some(prog),
        (crate::SeccompMode::Default, None) => {
            Some(crate::seccomp::SeccompProgram::for_caps(capabilities).map_err(SpecError::from)?)
        }
    };
    Ok(Prepared {
        joined: open_joined(spec)?,
        cgroup,
        cgroup_ns,
        capabilities,
        mounts,
        exec: ExecPlan::build(spec)?,
        seccomp,
        gids: spec
            .additional_gids
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect(),
    })
}

/// Opens the namespaces the spec joins (`linux.namespaces[].path`).
fn open_joined(spec: &ContainerSpec) -> Result<Vec<(libc::c_int, OwnedFd)>, SpawnError> {
    spec.joined_namespaces
        .iter()
        .map(|(ns, path)| {
            let fd = nix::fcntl::open(
                path,
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| SpawnError::io("opening a namespace to join", e))?;
            Ok((ns.clone_flag() as libc::c_int, fd))
        })
        .collect()
}

/// An on-disk writable layer: owned by the mapped root (`map`) so it can write into it, and
/// with a work dir overlayfs will mount again.
fn ready_disk_overlay(dirs: &OverlayDirs, map: Option<crate::IdMapping>) -> Result<(), SpawnError> {
    if let Some(map) = map {
        for dir in [&dirs.upper, &dirs.work] {
            std::os::unix::fs::chown(dir, Some(map.host_base), Some(map.host_base))
                .map_err(|e| SpawnError::io("giving the upper dir to the mapped root", e))?;
        }
    }
    // A volatile overlay leaves this marker behind and refuses to mount over it again.
    let marker = dirs.work.join("work/incompat/volatile");
    if marker.exists() {
        std::fs::remove_dir_all(&dirs.work)
            .and_then(|()| std::fs::create_dir(&dirs.work))
            .map_err(|e| SpawnError::io("resetting the overlay work dir", e))?;
    }
    Ok(())
}

/// The bounding set the workload gets. Without a cgroup to enforce the device rules, a
/// container that should only reach the standard devices also loses CAP_MKNOD, so it cannot
/// create a node for a host device in the first place.
fn bounding_set(spec: &ContainerSpec, device_cgroup: bool) -> crate::CapSet {
    let wants_rules = spec.hardening.devices.cgroup_rules().is_some();
    if wants_rules && !device_cgroup {
        spec.capabilities.without(crate::capabilities::cap::MKNOD)
    } else {
        spec.capabilities
    }
}

/// The pipes between parent and child, both `O_CLOEXEC`: `sync` carries the parent's "go",
/// `status` the child's [`super::message::ChildMessage`]s and, by closing at exec, the start.
pub(super) struct Pipes {
    pub sync_r: OwnedFd,
    pub sync_w: OwnedFd,
    pub status_r: OwnedFd,
    pub status_w: OwnedFd,
}

impl Pipes {
    pub fn new() -> Result<Pipes, SpawnError> {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::io("pipe", e));
        let (sync_r, sync_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        Ok(Pipes {
            sync_r,
            sync_w,
            status_r,
            status_w,
        })
    }

    /// After the clone, closes the child's ends in the parent: the status pipe then reads EOF
    /// exactly when the child has exec'ed (or died). Returns `(sync_w, status_r)`.
    pub fn into_parent_ends(self) -> (OwnedFd, OwnedFd) {
        let Pipes {
            sync_r,
            sync_w,
            status_r,
            status_w,
        } = self;
        drop((sync_r, status_w));
        (sync_w, status_r)
    }
}

/// How the child enters its cgroup. On cgroup v2 it is born inside it (`CLONE_INTO_CGROUP`
/// with an fd of the directory); elsewhere (v1, hybrid) it moves itself by writing to files the
/// parent opened for it: see `Cgroup::self_attach_files`.
pub(super) struct CgroupEntry {
    pub into_cgroup: Option<OwnedFd>,
    pub attach_files: Vec<OwnedFd>,
}

impl CgroupEntry {
    pub fn open(cgroup: Option<&Cgroup>) -> Result<CgroupEntry, SpawnError> {
        let into_cgroup = match cgroup.and_then(|c| c.unified_dir()) {
            Some(dir) => Some(
                nix::fcntl::open(
                    dir,
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| SpawnError::io("opening the cgroup directory", e))?,
            ),
            None => None,
        };
        let attach_files = match (cgroup, &into_cgroup) {
            (Some(cg), None) => open_attach_files(cg)?,
            _ => Vec::new(),
        };
        Ok(CgroupEntry {
            into_cgroup,
            attach_files,
        })
    }
}

/// Opens each hierarchy's attach file for the child (write-only, closed on exec).
fn open_attach_files(cg: &Cgroup) -> Result<Vec<OwnedFd>, SpawnError> {
    cg.self_attach_files()
        .into_iter()
        .map(|path| {
            nix::fcntl::open(
                &path,
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| SpawnError::io("opening the cgroup's tasks file", e))
        })
        .collect()
}

impl Prepared<'_> {
    /// What the child reads after the clone, all borrowed from the parent's prepared state.
    pub fn child_plan<'p>(
        &'p self,
        spec: &'p ContainerSpec,
        entry: &'p CgroupEntry,
        stdio: &'p ChildStdio,
        pipes: &Pipes,
        old_sigmask: Option<&'p SigSet>,
        child_net: Option<&'p crate::network::ChildNet>,
    ) -> ChildPlan<'p> {
        let ns = spec.namespaces;
        ChildPlan {
            cgroup_attach: &entry.attach_files,
            mounts: self.mounts.as_ref(),
            exec: &self.exec,
            hostname: spec.hostname.as_deref().map(OsStr::new),
            new_cgroupns: ns.contains(Namespace::Cgroup),
            userns: ns.contains(Namespace::User),
            new_netns: ns.contains(Namespace::Net),
            child_net,
            user: spec.user,
            init: spec.init,
            capabilities: self.capabilities,
            process_caps: spec.process_caps.as_ref(),
            rlimits: &spec.rlimits,
            no_new_privileges: spec.no_new_privileges,
            additional_gids: &self.gids,
            seccomp: self.seccomp,
            stdio,
            old_sigmask,
            sync_r: pipes.sync_r.as_raw_fd(),
            sync_w: pipes.sync_w.as_raw_fd(),
            status_w: pipes.status_w.as_raw_fd(),
            exec_fifo: None,
            joined: &self.joined,
            umask: spec.umask,
            preserve_fds: 0,
        }
    }
}
