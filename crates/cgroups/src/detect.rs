//! Finding the cgroup hierarchies of this host, and where the caller sits in each.
//!
//! Three layouts exist in the wild:
//!
//! * **unified** (pure v2): `/sys/fs/cgroup` *is* a `cgroup2` filesystem; one tree, every
//!   controller attached to it. `statfs` reports `CGROUP2_SUPER_MAGIC`.
//! * **hybrid**: `/sys/fs/cgroup` is a tmpfs holding one v1 mount per controller group
//!   (`cpu`, `memory`, ...) *plus* a `cgroup2` mount at `/sys/fs/cgroup/unified` that usually
//!   holds no controller at all (systemd used it only to track processes). A controller can be
//!   attached to only one hierarchy at a time, so anything mounted as v1 is absent from v2.
//! * **legacy** (pure v1): the tmpfs with v1 mounts only.
//!
//! The mount points come from `/proc/self/mountinfo` (fields: id, parent, dev, *root*, *mount
//! point*, options, `-`, *fstype*, source, *super options*); for v1 the super options list the
//! controllers of that hierarchy (`rw,cpu,cpuacct`). `/proc/self/cgroup` says where the caller
//! sits in each hierarchy (`4:memory:/user/123`, `0::/` for v2). A process manager that nests
//! its children under its *own* cgroup stays inside whatever limits its parent gave it — and on
//! this kind of host the caller is in different places in different hierarchies, so the nesting
//! is per hierarchy. If a hierarchy is a bind mount of a subtree (mount root ≠ `/`), the
//! caller's path is made relative to that root.
//!
//! All of this is read once into a [`CgroupRoot`]; creating a cgroup then costs no parsing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::CgroupError;
use crate::fsio;

/// Which cgroup layout the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CgroupMode {
    /// Pure cgroup v2 at `/sys/fs/cgroup`.
    Unified,
    /// v1 controller hierarchies plus a (usually controller-less) v2 at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// v1 controller hierarchies only.
    Legacy,
}

/// The controllers this crate knows how to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Controller {
    /// CFS bandwidth and shares/weight; throttling statistics.
    Cpu,
    /// v1 CPU-time accounting (v2 reports CPU time for every cgroup without a controller).
    Cpuacct,
    /// CPU and memory-node placement.
    Cpuset,
    /// Memory limit, peak, OOM kills.
    Memory,
    /// Task-count limit.
    Pids,
    /// v1 freezer (v2 freezes with the core `cgroup.freeze` file).
    Freezer,
    /// Block I/O weight (`blkio` in v1, `io` in v2).
    Io,
    /// Device access rules (v1 `devices`; v2 does this in its core with an eBPF program).
    Devices,
}

impl Controller {
    /// Every controller, in the order hierarchies are created.
    pub const ALL: [Controller; 8] = [
        Controller::Memory,
        Controller::Pids,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Freezer,
        Controller::Cpuset,
        Controller::Io,
        Controller::Devices,
    ];

    /// Name in v1 mount options and `/proc/self/cgroup`.
    pub fn v1_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Freezer => "freezer",
            Controller::Io => "blkio",
            Controller::Devices => "devices",
        }
    }

    /// Name in v2 `cgroup.controllers`; `None` for what v2 does in its core.
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Controller::Cpu => Some("cpu"),
            Controller::Cpuset => Some("cpuset"),
            Controller::Memory => Some("memory"),
            Controller::Pids => Some("pids"),
            Controller::Io => Some("io"),
            Controller::Cpuacct | Controller::Freezer | Controller::Devices => None,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn from_v1_name(name: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.v1_name() == name)
    }

    fn from_v2_name(name: &str) -> Option<Controller> {
        Controller::ALL
            .into_iter()
            .find(|c| c.v2_name() == Some(name))
    }
}

/// A small set of [`Controller`]s.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ControllerSet(u8);

impl ControllerSet {
    /// The empty set.
    pub const EMPTY: ControllerSet = ControllerSet(0);

    /// Adds `c`.
    pub fn insert(&mut self, c: Controller) {
        self.0 |= c.bit();
    }

    /// Whether `c` is in the set.
    pub fn contains(self, c: Controller) -> bool {
        self.0 & c.bit() != 0
    }

    /// Whether every member of `other` is in `self`.
    pub fn contains_all(self, other: ControllerSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Members in [`Controller::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Controller> {
        Controller::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    pub(crate) fn union(self, other: ControllerSet) -> ControllerSet {
        ControllerSet(self.0 | other.0)
    }

    pub(crate) fn intersect(self, other: ControllerSet) -> ControllerSet {
        ControllerSet(self.0 & other.0)
    }

    /// Parses a v2 list such as `cgroup.controllers` (`cpuset cpu io memory pids`).
    pub(crate) fn from_v2_list(s: &str) -> ControllerSet {
        let mut set = ControllerSet::EMPTY;
        for c in s
            .split_ascii_whitespace()
            .filter_map(Controller::from_v2_name)
        {
            set.insert(c);
        }
        set
    }
}

impl fmt::Debug for ControllerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Controller::v1_name))
            .finish()
    }
}

/// One v1 hierarchy (a `cgroup` mount) with the caller's place in it.
#[derive(Debug, Clone)]
pub(crate) struct V1Hierarchy {
    /// Our controllers attached to this hierarchy (`{cpu, cpuacct}` when co-mounted).
    pub controllers: ControllerSet,
    /// `<mount point>/<caller's path>`.
    pub own_dir: PathBuf,
    /// `<own_dir>/isolab`.
    pub isolab_dir: PathBuf,
}

/// The v2 tree with the caller's place in it.
#[derive(Debug)]
pub(crate) struct V2Hierarchy {
    pub mount_point: PathBuf,
    /// `<mount point>/<caller's path>`.
    pub own_dir: PathBuf,
    /// Controllers the caller's cgroup may enable for its children.
    pub own_available: ControllerSet,
    /// Controllers the root may enable (the fallback parent).
    pub root_available: ControllerSet,
    /// Set once the caller's cgroup refused `subtree_control` (EBUSY: it has processes).
    pub parent_is_root: AtomicBool,
    /// The directory, relative to the parent, new cgroups are made in (`isolab`, or an OCI
    /// runtime's `cgroupsPath` parent: see `placement.rs`).
    pub group: PathBuf,
}

impl V2Hierarchy {
    /// The directory new cgroups are created under, and the controllers it can hand down.
    pub(crate) fn parent(&self) -> (&Path, ControllerSet) {
        if self.parent_is_root.load(Ordering::Relaxed) {
            (&self.mount_point, self.root_available)
        } else {
            (&self.own_dir, self.own_available)
        }
    }
}

/// Which hierarchy serves a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Index into [`CgroupRoot::v1`].
    V1(usize),
    V2,
}

/// The host's cgroup layout, read once; the factory for [`crate::Cgroup`]s.
///
/// Holds the mode, the mount point of each hierarchy and the caller's own cgroup in each.
/// Construct it with [`CgroupRoot::detect`] on a real system, or with
/// [`CgroupRoot::from_proc_text`] / [`CgroupRoot::unified_at`] to point it at another tree.
#[derive(Debug)]
pub struct CgroupRoot {
    pub(crate) mode: CgroupMode,
    pub(crate) v1: Vec<V1Hierarchy>,
    pub(crate) v2: Option<V2Hierarchy>,
}

/// `CGROUP2_SUPER_MAGIC` and `TMPFS_MAGIC` from linux/magic.h.
const CGROUP2_MAGIC: i64 = 0x6367_7270;
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn fs_magic(path: &str) -> Result<i64, CgroupError> {
    let st = nix::sys::statfs::statfs(path)
        .map_err(|e| CgroupError::io("statfs", path.into(), e.into()))?;
    Ok(st.filesystem_type().0 as i64)
}

/// Unified, hybrid or legacy, from what is mounted at `/sys/fs/cgroup`.
pub(crate) fn detect_mode() -> Result<CgroupMode, CgroupError> {
    match fs_magic("/sys/fs/cgroup")? {
        CGROUP2_MAGIC => Ok(CgroupMode::Unified),
        TMPFS_MAGIC => match fs_magic("/sys/fs/cgroup/unified") {
            Ok(CGROUP2_MAGIC) => Ok(CgroupMode::Hybrid),
            _ => Ok(CgroupMode::Legacy),
        },
        other => Err(CgroupError::Detect(format!(
            "/sys/fs/cgroup is neither cgroup2 nor tmpfs (f_type {other:#x}); \
             mount cgroupfs there"
        ))),
    }
}

pub(crate) fn read_proc(path: &str) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|e| CgroupError::io("read", path.into(), e))
}

impl CgroupRoot {
    /// Detects the layout of this system: `statfs("/sys/fs/cgroup")` for the mode, then
    /// `/proc/self/mountinfo` and `/proc/self/cgroup` for mount points and the caller's paths.
    pub fn detect() -> Result<CgroupRoot, CgroupError> {
        let mode = detect_mode()?;
        let mountinfo = read_proc("/proc/self/mountinfo")?;
        let self_cgroup = read_proc("/proc/self/cgroup")?;
        CgroupRoot::from_proc_text(mode, &mountinfo, &self_cgroup)
    }

    /// Builds the layout from the text of `/proc/self/mountinfo` and `/proc/self/cgroup`, for a
    /// given mode. This is [`CgroupRoot::detect`] minus the reads, so tests can describe a tree
    /// under a temporary directory. For v2 it reads `cgroup.controllers` of the caller's cgroup
    /// and of the root.
    pub fn from_proc_text(
        mode: CgroupMode,
        mountinfo: &str,
        self_cgroup: &str,
    ) -> Result<CgroupRoot, CgroupError> {
        let mounts = parse_mountinfo(mountinfo);
        let paths = parse_self_cgroup(self_cgroup);
        let v1 = if mode != CgroupMode::Unified {
            v1_hierarchies(&mounts, &paths)
        } else {
            Vec::new()
        };
        let v2 = if mode != CgroupMode::Legacy {
            Some(v2_hierarchy(mode, &mounts, &paths)?)
        } else {
            None
        };
        if mode != CgroupMode::Unified && v1.is_empty() {
            return Err(CgroupError::Detect(format!(
                "mode {mode:?} but no v1 controller hierarchy in /proc/self/mountinfo"
            )));
        }
        Ok(CgroupRoot { mode, v1, v2 })
    }

    /// A pure v2 layout rooted at `mount_point`, the caller sitting at `own_path` (`/` or
    /// `/user/1`). Mainly for tests against a fake tree in a temporary directory.
    pub fn unified_at(mount_point: &Path, own_path: &str) -> Result<CgroupRoot, CgroupError> {
        let mp = mount_point.to_str().ok_or_else(|| {
            CgroupError::Detect(format!("{} is not UTF-8", mount_point.display()))
        })?;
        if mp.contains(char::is_whitespace) {
            return Err(CgroupError::Detect(format!(
                "{mp}: whitespace in the mount point is not supported here"
            )));
        }
        let mountinfo = format!("1 0 0:1 / {mp} rw - cgroup2 cgroup2 rw\n");
        CgroupRoot::from_proc_text(CgroupMode::Unified, &mountinfo, &format!("0::{own_path}\n"))
    }

    /// The layout detected.
    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// The caller's own cgroup directory in every hierarchy we would use (for diagnostics).
    pub fn own_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.v1.iter().map(|h| h.own_dir.clone()).collect();
        if let Some(v2) = &self.v2 {
            v.push(v2.own_dir.clone());
        }
        v
    }

    /// Controllers that some hierarchy of this host provides to us.
    pub fn available(&self) -> ControllerSet {
        let mut set = ControllerSet::EMPTY;
        for c in Controller::ALL {
            if self.backend(c).is_some() {
                set.insert(c);
            }
        }
        set
    }

    /// Which hierarchy serves `c`: a v1 hierarchy if one has it, else v2 if v2 can hand it
    /// down (v2's core covers CPU accounting and freezing when no v1 hierarchy does).
    pub(crate) fn backend(&self, c: Controller) -> Option<Backend> {
        if let Some(i) = self.v1.iter().position(|h| h.controllers.contains(c)) {
            return Some(Backend::V1(i));
        }
        let v2 = self.v2.as_ref()?;
        match c.v2_name() {
            None => Some(Backend::V2),
            Some(_) => {
                let avail = v2.own_available.union(v2.root_available);
                avail.contains(c).then_some(Backend::V2)
            }
        }
    }
}

/// One hierarchy per distinct set of v1 controllers mounted, each with the caller's own
/// directory in it; named hierarchies (`name=systemd`) and second mounts are skipped.
fn v1_hierarchies(mounts: &[MountEntry], paths: &[SelfCgroup]) -> Vec<V1Hierarchy> {
    let mut v1 = Vec::new();
    for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
        let mut set = ControllerSet::EMPTY;
        for c in m.super_opts.split(',').filter_map(Controller::from_v1_name) {
            set.insert(c);
        }
        if set.is_empty() || v1.iter().any(|h: &V1Hierarchy| h.controllers == set) {
            continue; // named hierarchy (name=systemd) or a second mount of one we have
        }
        let own = paths
            .iter()
            .find(|p| {
                p.controllers
                    .split(',')
                    .any(|c| Controller::from_v1_name(c).is_some_and(|c| set.contains(c)))
            })
            .map(|p| p.path.as_str())
            .unwrap_or("/");
        let own_dir = join_own(&m.mount_point, &m.root, own);
        v1.push(V1Hierarchy {
            controllers: set,
            isolab_dir: own_dir.join("isolab"),
            own_dir,
        });
    }
    v1
}

/// The cgroup2 mount (at `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` in hybrid mode, else
/// the first one), the caller's own directory in it, and the controllers it and the root offer.
fn v2_hierarchy(
    mode: CgroupMode,
    mounts: &[MountEntry],
    paths: &[SelfCgroup],
) -> Result<V2Hierarchy, CgroupError> {
    let candidates: Vec<&MountEntry> = mounts.iter().filter(|m| m.fstype == "cgroup2").collect();
    let preferred = if mode == CgroupMode::Unified {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/unified"
    };
    let m = candidates
        .iter()
        .find(|m| m.mount_point == Path::new(preferred))
        .or(candidates.first())
        .ok_or_else(|| {
            CgroupError::Detect(format!(
                "mode {mode:?} but no cgroup2 mount in /proc/self/mountinfo"
            ))
        })?;
    let own = paths
        .iter()
        .find(|p| p.hierarchy_id == "0" && p.controllers.is_empty())
        .map(|p| p.path.as_str())
        .unwrap_or("/");
    let own_dir = join_own(&m.mount_point, &m.root, own);
    let controllers = |dir: &Path| -> Result<ControllerSet, CgroupError> {
        let mut buf = [0u8; 256];
        match fsio::read_file(dir, "cgroup.controllers", &mut buf) {
            Ok(s) => Ok(ControllerSet::from_v2_list(s)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(ControllerSet::EMPTY),
            Err(e) => Err(CgroupError::io("read", dir.join("cgroup.controllers"), e)),
        }
    };
    Ok(V2Hierarchy {
        own_available: controllers(&own_dir)?,
        root_available: controllers(&m.mount_point)?,
        parent_is_root: AtomicBool::new(own_dir == m.mount_point),
        own_dir,
        mount_point: m.mount_point.clone(),
        group: PathBuf::from("isolab"),
    })
}

/// `<mount point>/<own path relative to the mount's root>`.
fn join_own(mount_point: &Path, mount_root: &str, own: &str) -> PathBuf {
    let rel = if mount_root == "/" {
        own
    } else {
        // Inside a cgroup namespace or a bind mount of a subtree; if the caller is not below
        // the mount's root we cannot reach its cgroup through this mount: use the mount root.
        own.strip_prefix(mount_root).unwrap_or("/")
    };
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        mount_point.to_path_buf()
    } else {
        mount_point.join(rel)
    }
}

#[derive(Debug)]
struct MountEntry {
    root: String,
    mount_point: PathBuf,
    fstype: String,
    super_opts: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let fstype = post.next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let _source = post.next()?;
            let super_opts = post.next().unwrap_or("");
            Some(MountEntry {
                root: unescape(pre.get(3)?),
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                fstype: fstype.to_owned(),
                super_opts: super_opts.to_owned(),
            })
        })
        .collect()
}

#[derive(Debug)]
struct SelfCgroup {
    hierarchy_id: String,
    controllers: String,
    path: String,
}

fn parse_self_cgroup(text: &str) -> Vec<SelfCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            Some(SelfCgroup {
                hierarchy_id: it.next()?.to_owned(),
                controllers: it.next()?.to_owned(),
                path: it.next()?.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_layout_nests_per_hierarchy() {
        let root =
            CgroupRoot::from_proc_text(CgroupMode::Hybrid, HYBRID_MOUNTINFO, HYBRID_SELF).unwrap();
        assert_eq!(root.mode(), CgroupMode::Hybrid);
        assert_eq!(root.v1.len(), 4, "systemd named hierarchy is skipped");
        let mem = &root.v1[root
            .v1
            .iter()
            .position(|h| h.controllers.contains(Controller::Memory))
            .unwrap()];
        assert_eq!(
            mem.own_dir,
            Path::new("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert_eq!(
            mem.isolab_dir,
            Path::new("/sys/fs/cgroup/memory/process_api/abc/isolab")
        );
        assert!(matches!(
            root.backend(Controller::Pids),
            Some(Backend::V1(_))
        ));
        assert_eq!(
            root.backend(Controller::Cpuset),
            None,
            "no cpuset mount, v2 has none"
        );
        assert_eq!(
            root.backend(Controller::Freezer),
            Some(Backend::V2),
            "core v2 freezer"
        );
        let pids = root
            .v1
            .iter()
            .find(|h| h.controllers.contains(Controller::Pids))
            .unwrap();
        assert_eq!(pids.own_dir, Path::new("/sys/fs/cgroup/pids"));
    }

    #[test]
    fn comounted_and_bind_mounted_hierarchies() {
        let mi = "\
1 0 0:1 / /cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
2 0 0:2 /outer /cg/memory rw - cgroup cgroup rw,memory
3 0 0:2 /outer /other/memory rw - cgroup cgroup rw,memory
4 0 0:3 / /cg/with\\040space rw - cgroup cgroup rw,pids
";
        let own = "2:cpu,cpuacct:/a\n3:memory:/outer/inner\n4:pids:/\n";
        let root = CgroupRoot::from_proc_text(CgroupMode::Legacy, mi, own).unwrap();
        assert_eq!(root.v1.len(), 3, "duplicate memory mount ignored");
        assert_eq!(root.v1[0].own_dir, Path::new("/cg/cpu,cpuacct/a"));
        assert!(root.v1[0].controllers.contains(Controller::Cpuacct));
        assert_eq!(root.v1[1].own_dir, Path::new("/cg/memory/inner"));
        assert_eq!(root.v1[2].own_dir, Path::new("/cg/with space"));
        assert!(root.v2.is_none());
    }

    #[test]
    fn legacy_without_mounts_is_an_error() {
        let err = CgroupRoot::from_proc_text(CgroupMode::Legacy, "", "").unwrap_err();
        assert!(matches!(err, CgroupError::Detect(_)), "{err}");
    }

    #[test]
    fn detect_real_system() {
        let root = match CgroupRoot::detect() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skip: no cgroup layout on this host: {e}");
                return;
            }
        };
        // Every directory we would nest under must exist.
        for d in root.own_dirs() {
            assert!(d.is_dir(), "{} missing", d.display());
        }
    }
}
