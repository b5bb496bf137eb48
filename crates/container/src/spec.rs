//! What to run: the one description every front end produces.
//!
//! `isolab container run` flags, an OCI bundle's `config.json` and the benches all build a
//! [`ContainerSpec`]; the spawn path in `spawn` only ever reads this type. Keeping the input in
//! one plain struct is what lets the same workload run identically whichever way it was described.

use crate::capabilities::CapSet;
use crate::credentials::{ProcessCaps, Rlimit};
use crate::hardening::Hardening;
use crate::namespaces::{Namespace, NamespaceSet};
use isolab_cgroups::Resources;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything the runtime needs to start one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Where the root filesystem comes from.
    pub rootfs: RootfsSource,
    /// argv of the workload; `args[0]` is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs; the workload sees exactly these.
    pub env: Vec<String>,
    /// Working directory inside the container (absolute).
    pub workdir: String,
    /// Hostname set in the new UTS namespace (ignored without one).
    pub hostname: Option<String>,
    /// Which namespaces to create.
    pub namespaces: NamespaceSet,
    /// How the process is confined to the root filesystem.
    pub root_mode: RootMode,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// cgroup limits; an all-`None` value still creates a cgroup so usage can be reported.
    pub resources: Resources,
    /// Whether to create a cgroup at all (the "namespaces only" bench row turns this off).
    pub use_cgroup: bool,
    /// Network setup.
    pub network: NetworkMode,
    /// With a user namespace: how container ids map to host ids.
    pub id_mapping: Option<IdMapping>,
    /// Bind mounts from the host, applied after the standard mounts.
    pub mounts: Vec<BindMount>,
    /// Seccomp filter to install right before exec.
    pub seccomp: SeccompMode,
    /// Give the workload a pseudo-terminal (interactive shell).
    pub tty: bool,
    /// uid and gid the workload runs as, inside the container.
    pub user: (u32, u32),
    /// The capability bounding set: what root inside may still do (docker's 14 by default).
    pub capabilities: CapSet,
    /// Run a minimal init as PID 1 that forwards signals to the workload (PID 2) and reaps
    /// zombies, like `docker run --init`.
    pub init: bool,
    /// Masked and read-only paths and the device rules (docker's by default).
    #[serde(default)]
    pub hardening: Hardening,
    /// Effective/permitted/inheritable/ambient sets to give the workload (an OCI bundle's);
    /// `None`: docker's behaviour, root gets the bounding set and other users nothing.
    #[serde(default)]
    pub process_caps: Option<ProcessCaps>,
    /// Resource limits set before exec (`setrlimit`).
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    /// Set `PR_SET_NO_NEW_PRIVS` (off by default, as in docker).
    #[serde(default)]
    pub no_new_privileges: bool,
    /// `/proc/<pid>/oom_score_adj` of the workload (-1000..=1000).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Namespaced kernel settings written under /proc/sys before it is made read-only,
    /// e.g. `("net.ipv4.ip_forward", "1")`.
    #[serde(default)]
    pub sysctl: Vec<(String, String)>,
    /// Supplementary groups of the workload.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Mount a tmpfs on /tmp (docker-like runs do; an OCI bundle gets only what it lists).
    #[serde(default = "default_true")]
    pub tmpfs_tmp: bool,
    /// The workload's file mode creation mask (`process.user.umask`; None: inherited).
    #[serde(default)]
    pub umask: Option<u32>,
    /// Existing namespaces to join (`setns`) instead of creating them: an OCI bundle's
    /// `linux.namespaces[].path`, e.g. `(Net, "/proc/42/ns/net")` to share a pod's network.
    #[serde(default)]
    pub joined_namespaces: Vec<(Namespace, PathBuf)>,
}

fn default_true() -> bool {
    true
}

/// Where the container's `/` comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootfsSource {
    /// Read-only image layers, bottom first; the container writes into its own overlay upper dir.
    Layers(Vec<PathBuf>),
    /// A plain directory used as is (an OCI bundle's `root.path`, like crun and runc do).
    Dir(PathBuf),
}

/// How the container's root is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RootMode {
    /// `pivot_root(2)` and detach the old root: the host tree is no longer reachable.
    #[default]
    PivotRoot,
    /// `chroot(2)` only: the historical first step, escapable by a root process (see the labs).
    Chroot,
}

/// Network namespace setup, like `docker run --net`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new network namespace with only `lo`, up.
    #[default]
    None,
    /// Share the host's network namespace.
    Host,
    /// A new namespace with `lo` and `eth0`, a veth to isolab's bridge.
    Bridge,
}

/// One contiguous uid and gid range: container ids `0..count` are host ids `host_base..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// First host uid/gid (container root maps to it).
    pub host_base: u32,
    /// How many ids are mapped.
    pub count: u32,
}

impl Default for IdMapping {
    /// The range `useradd` gives the first user in /etc/subuid: far from any real host account.
    fn default() -> Self {
        IdMapping {
            host_base: 100_000,
            count: 65_536,
        }
    }
}

/// A mount of the container's own: a host path bind-mounted in (`-v HOST:CONTAINER[:ro]`), or,
/// with `filesystem`, a new filesystem (an OCI bundle's `tmpfs`, `mqueue`, ... entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Path on the host (must exist); for a new filesystem, mount(2)'s source string.
    pub source: PathBuf,
    /// Absolute path inside the container; created if missing.
    pub destination: PathBuf,
    /// Remount read-only.
    pub readonly: bool,
    /// Mount a new filesystem of this kind instead of binding `source`.
    #[serde(default)]
    pub filesystem: Option<Filesystem>,
}

/// A new filesystem to mount: its type, `MS_*` flags and type-specific options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    /// `tmpfs`, `mqueue`, `proc`, ...
    pub fstype: String,
    /// `MS_*` bits (`MS_NOSUID`, `MS_RDONLY`, ...).
    pub flags: u64,
    /// The options mount(2) passes to the filesystem (`size=64m,mode=755`), possibly empty.
    pub data: String,
}

/// Which seccomp filter the workload runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SeccompMode {
    /// No filter (`--seccomp unconfined`, `--privileged`).
    Unconfined,
    /// isolab's default policy (docker's semantics), compiled once per process.
    #[default]
    Default,
}

impl ContainerSpec {
    /// Whether the container has a mount namespace of its own: a new one, or one it joins.
    pub fn has_mount_ns(&self) -> bool {
        self.namespaces.contains(Namespace::Mount) || self.joins(Namespace::Mount)
    }

    /// Whether the container joins an existing namespace of this type.
    pub fn joins(&self, ns: Namespace) -> bool {
        self.joined_namespaces.iter().any(|(n, _)| *n == ns)
    }

    /// A spec with docker-like defaults for the given rootfs and argv.
    pub fn new(rootfs: RootfsSource, args: Vec<String>) -> Self {
        ContainerSpec {
            rootfs,
            args,
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
                "HOME=/root".to_string(),
            ],
            workdir: "/".to_string(),
            hostname: None,
            namespaces: NamespaceSet::docker_default(),
            root_mode: RootMode::PivotRoot,
            readonly_rootfs: false,
            resources: Resources::default(),
            use_cgroup: true,
            network: NetworkMode::None,
            id_mapping: None,
            mounts: Vec::new(),
            seccomp: SeccompMode::Default,
            tty: false,
            user: (0, 0),
            capabilities: CapSet::docker_default(),
            init: false,
            hardening: Hardening::default(),
            process_caps: None,
            rlimits: Vec::new(),
            no_new_privileges: false,
            oom_score_adj: None,
            sysctl: Vec::new(),
            additional_gids: Vec::new(),
            tmpfs_tmp: true,
            umask: None,
            joined_namespaces: Vec::new(),
        }
    }

    /// docker's `--privileged`: every capability, no seccomp filter, nothing masked or
    /// read-only, every device. Root inside is then root on the host in all but name.
    pub fn make_privileged(&mut self) {
        self.capabilities = CapSet::all();
        self.seccomp = SeccompMode::Unconfined;
        self.hardening = Hardening::privileged();
    }
}
