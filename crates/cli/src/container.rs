//! `isolab container …`: run a workload in namespaces + cgroups + a layered rootfs.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use isolab_cgroups::{self as cg, CgroupRoot, Resources};
use isolab_container::image::Store;
use isolab_container::{
    BindMount, ContainerSpec, IdMapping, Namespace, NamespaceSet, NetworkMode, RootMode,
    RootfsSource, SeccompMode,
};
use std::path::PathBuf;

mod run;
use run::run_container;

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Run a command in a new container and wait for it.
    ///
    /// By default the container gets docker's six namespaces (pid, mnt, uts, ipc, net, cgroup),
    /// a cgroup (for accounting, and limits if you pass them), and a copy-on-write overlay of
    /// the image `busybox` (built from the host's static busybox on first use).
    ///
    /// Examples:
    ///   isolab container run -- sh -c 'echo hello from $(hostname), I am PID $$'
    ///   isolab container run --memory 32M -- sh -c 'x=$(head -c 104857600 /dev/zero | tr "\0" x)'
    ///   isolab container run --userns -- id
    ///   isolab container run -t -- sh
    #[command(verbatim_doc_comment)]
    Run(Box<RunArgs>),
    /// List containers (kept ones; `--rm` containers vanish on exit).
    #[command(alias = "ps", alias = "list")]
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove containers and their writable layer.
    Rm {
        /// Container ids or names.
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Print a container's captured stdout/stderr.
    Logs { container: String },
    /// Freeze every process of a running container (cgroup freezer).
    Pause { container: String },
    /// Thaw a paused container.
    Resume { container: String },
    /// Remove every exited container, and empty cgroups left by a killed isolab.
    Prune,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    /// A new network namespace with only the loopback interface.
    None,
    /// Share the host's network stack (no network namespace).
    Host,
    /// A new namespace with eth0 on isolab's bridge; containers can reach each other.
    Bridge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeccompArg {
    /// No system call filter: the workload may call mount, unshare -U, keyctl, bpf, kexec...
    /// (the kernel's capability checks still apply).
    Unconfined,
    /// docker's default semantics: calls that act on the shared kernel get EPERM unless the
    /// capability that makes them legitimate was added with --cap-add.
    Default,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Image to run (see `isolab image ls`).
    #[arg(long, default_value = "busybox", conflicts_with_all = ["bundle", "rootfs"])]
    pub image: String,
    /// Run an OCI bundle: a directory with config.json and its rootfs (as crun/runc do).
    #[arg(long, value_name = "DIR", conflicts_with = "rootfs")]
    pub bundle: Option<PathBuf>,
    /// Use a plain directory as the root filesystem, without an overlay (writes go into it).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Name the container (default: its id).
    #[arg(long)]
    pub name: Option<String>,
    /// Remove the container and its writable layer when it exits.
    #[arg(long)]
    pub rm: bool,

    /// Namespaces to create: a comma list of user,pid,mnt,uts,ipc,net,cgroup,time, or
    /// 'default' (docker's six), 'all', 'none'.
    #[arg(long, default_value = "default", value_name = "LIST")]
    pub namespaces: NamespaceSet,
    /// Map container root to an unprivileged host uid/gid range (adds a user namespace).
    #[arg(long)]
    pub userns: bool,
    /// The host range for --userns, as BASE:COUNT.
    #[arg(long, value_name = "BASE:COUNT", default_value = "100000:65536")]
    pub userns_map: String,
    /// Enter the rootfs with chroot(2) instead of pivot_root(2) (escapable: see the labs).
    #[arg(long)]
    pub chroot: bool,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,

    /// Memory limit, e.g. 64M, 1G (the OOM killer ends the workload above it).
    #[arg(long, value_name = "SIZE", value_parser = cg::parse_memory, allow_hyphen_values = true)]
    pub memory: Option<u64>,
    /// Memory + swap limit, e.g. 128M, or -1 for unlimited swap.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = cg::parse_memory_swap)]
    pub memory_swap: Option<i64>,
    /// CPU limit in CPUs, e.g. 0.5 (CFS quota per 100 ms period); at most the host's CPU count.
    #[arg(long, value_name = "CPUS", value_parser = cg::parse_cpus_on_host, allow_hyphen_values = true)]
    pub cpus: Option<cg::CpuQuota>,
    /// Relative CPU weight (cgroup v1 shares, 2..262144; default 1024).
    #[arg(long, value_name = "SHARES", value_parser = cg::parse_cpu_shares, allow_hyphen_values = true)]
    pub cpu_shares: Option<u64>,
    /// CPUs the workload may run on, e.g. 0 or 0-1.
    #[arg(long, value_name = "LIST", value_parser = cg::parse_cpuset_cpus)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the workload may use.
    #[arg(long, value_name = "LIST", value_parser = cg::parse_cpuset_mems)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (stops fork bombs).
    #[arg(long, value_name = "N", value_parser = cg::parse_pids_limit, allow_hyphen_values = true)]
    pub pids_limit: Option<u64>,
    /// Relative block I/O weight (10..1000) where the host has the io/blkio controller.
    #[arg(long, value_name = "WEIGHT", value_parser = cg::parse_io_weight, allow_hyphen_values = true)]
    pub io_weight: Option<u16>,
    /// Do not create a cgroup at all (no limits, no usage stats).
    #[arg(long, conflicts_with_all = ["memory", "memory_swap", "cpus", "cpu_shares", "cpuset_cpus", "cpuset_mems", "pids_limit", "io_weight"])]
    pub no_cgroup: bool,

    /// Network: none (loopback only), host, or bridge (eth0 on isolab's bridge). Default: none,
    /// or host when --namespaces leaves out net.
    #[arg(long, value_enum)]
    pub net: Option<NetArg>,
    /// Bind-mount a host path: HOST:CONTAINER[:ro].
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volumes: Vec<String>,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Hostname inside the container (default: the container id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Run as UID[:GID] inside the container.
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Add capabilities to the default set (docker's 14), e.g. NET_ADMIN or SYS_ADMIN; ALL.
    /// As in docker, an added capability also lifts the seccomp rules tied to it (SYS_ADMIN:
    /// mount, setns, unshare, bpf...; SYS_TIME: settimeofday; SYS_MODULE: init_module).
    #[arg(long, value_name = "CAP", value_delimiter = ',')]
    pub cap_add: Vec<String>,
    /// Drop capabilities from the default set, e.g. NET_RAW; ALL leaves root with none.
    #[arg(long, value_name = "CAP", value_delimiter = ',')]
    pub cap_drop: Vec<String>,
    /// Lift every protection, as docker does: all capabilities, no seccomp filter, /proc/sys
    /// and the masked /proc and /sys files as on the host, every host device openable. Container
    /// root can then mount, load kernel modules into the shared kernel, rewrite host sysctls
    /// such as kernel.core_pattern... (the labs show why that matters).
    #[arg(long)]
    pub privileged: bool,
    /// System call filter [default: default, or unconfined with --privileged].
    #[arg(long, value_enum)]
    pub seccomp: Option<SeccompArg>,
    /// Run a tiny init as PID 1 that forwards signals to the command (then PID 2) and reaps
    /// zombies. Without it the command is PID 1, which the kernel shields from every signal it
    /// has no handler for: `timeout` or Ctrl-C cannot stop a plain `sleep`.
    #[arg(long)]
    pub init: bool,
    /// Allocate a pseudo-terminal (for an interactive shell).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Print where the start-up time went (clone, cgroup, rootfs, exec) to stderr.
    #[arg(long)]
    pub timings: bool,
    /// Print cgroup usage after exit (peak memory, OOM kills, CPU time, throttling).
    #[arg(long)]
    pub stats: bool,
    /// Write the run's outcome (status, phases, stats) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// The command and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(cmd: ContainerCommand) -> Result<u8> {
    match cmd {
        ContainerCommand::Run(args) => run_container(*args),
        ContainerCommand::Ls { json } => list(json),
        ContainerCommand::Rm { containers } => {
            let store = open_store()?;
            for c in containers {
                store.remove_container(&c)?;
                println!("{c}");
            }
            Ok(0)
        }
        ContainerCommand::Logs { container } => {
            let store = open_store()?;
            let rec = store.container(&container)?;
            let log = rec.dirs.log.clone();
            match std::fs::read_to_string(&log) {
                Ok(text) => print!("{text}"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
            }
            Ok(0)
        }
        ContainerCommand::Pause { container } => freeze(&container, true),
        ContainerCommand::Resume { container } => freeze(&container, false),
        ContainerCommand::Prune => {
            let store = open_store()?;
            let containers = store.list_containers()?;
            let mut live = std::collections::HashSet::new();
            for c in &containers {
                if c.is_running() {
                    live.insert(c.id.clone());
                } else {
                    store.remove_container(&c.id)?;
                    println!("{}", c.id);
                }
            }
            // cgroups left by an isolab that was itself killed (SIGKILL cannot be cleaned up
            // after): no running container owns them, and nothing runs inside them.
            if nix::unistd::Uid::effective().is_root() {
                let root = CgroupRoot::detect()?;
                for name in root.names() {
                    if live.contains(&name) {
                        continue;
                    }
                    let mut cg = root.open(&name)?;
                    // A launcher attaches its container within milliseconds of creating the
                    // cgroup: an empty one younger than that may be a start in progress.
                    let settled = cg.paths().iter().all(|p| {
                        std::fs::metadata(p)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.elapsed().ok())
                            .is_some_and(|age| age >= PRUNE_MIN_AGE)
                    });
                    if settled && cg.pids()?.is_empty() {
                        cg.set_destroy_on_drop(true);
                        cg.destroy()?;
                        println!("cgroup {name}");
                    }
                }
            }
            Ok(0)
        }
    }
}

/// How old an empty cgroup must be before `prune` treats it as abandoned.
const PRUNE_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(2);

fn open_store() -> Result<Store> {
    Ok(Store::open(&Store::default_home())?)
}

/// Turns the flags into a [`ContainerSpec`] (no side effects, so bad input fails before
/// anything is created).
pub fn spec_from_args(args: &RunArgs, rootfs: RootfsSource) -> Result<ContainerSpec> {
    let command = if args.command.is_empty() {
        vec!["sh".to_string()]
    } else {
        args.command.clone()
    };
    let mut spec = ContainerSpec::new(rootfs, command);
    spec.namespaces = args.namespaces;
    if args.userns {
        spec.namespaces.insert(Namespace::User);
    }
    if spec.namespaces.contains(Namespace::User) {
        spec.id_mapping = Some(parse_userns_map(&args.userns_map)?);
    }
    let default_net = if spec.namespaces.contains(Namespace::Net) {
        NetArg::None
    } else {
        NetArg::Host
    };
    spec.network = match args.net.unwrap_or(default_net) {
        NetArg::None => NetworkMode::None,
        NetArg::Host => {
            spec.namespaces.remove(Namespace::Net);
            NetworkMode::Host
        }
        NetArg::Bridge => NetworkMode::Bridge,
    };
    spec.root_mode = if args.chroot {
        RootMode::Chroot
    } else {
        RootMode::PivotRoot
    };
    spec.readonly_rootfs = args.read_only;
    spec.resources = Resources {
        memory_limit_bytes: args.memory,
        memory_swap_limit_bytes: args.memory_swap,
        cpu_quota: args.cpus,
        cpu_shares: args.cpu_shares,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        pids_limit: args.pids_limit,
        io_weight: args.io_weight,
        devices: None,
    };
    spec.resources.validate()?;
    spec.use_cgroup = !args.no_cgroup;
    for v in &args.volumes {
        spec.mounts.push(parse_volume(v)?);
    }
    for e in &args.env {
        if !e.contains('=') || e.starts_with('=') {
            bail!("--env {e:?} must look like KEY=VALUE");
        }
        let key = e.split('=').next().unwrap_or_default();
        spec.env.retain(|old| old.split('=').next() != Some(key));
        spec.env.push(e.clone());
    }
    if let Some(w) = &args.workdir {
        spec.workdir = w.clone();
    }
    spec.hostname = args.hostname.clone();
    if let Some(u) = &args.user {
        spec.user = parse_user(u)?;
    }
    spec.tty = args.tty;
    spec.init = args.init;
    if args.privileged {
        spec.make_privileged();
    }
    // An explicit --seccomp wins, also over --privileged (as a seccomp profile does in docker).
    match args.seccomp {
        Some(SeccompArg::Unconfined) => spec.seccomp = SeccompMode::Unconfined,
        Some(SeccompArg::Default) => spec.seccomp = SeccompMode::Default,
        None => {}
    }
    spec.capabilities = spec.capabilities.adjust(&args.cap_add, &args.cap_drop)?;
    Ok(spec)
}

fn parse_userns_map(s: &str) -> Result<IdMapping> {
    let (base, count) = s.split_once(':').with_context(|| {
        format!("--userns-map {s:?} must look like BASE:COUNT, e.g. 100000:65536")
    })?;
    let host_base: u32 = base
        .parse()
        .with_context(|| format!("--userns-map base {base:?} is not a uid"))?;
    let count: u32 = count
        .parse()
        .with_context(|| format!("--userns-map count {count:?} is not a number"))?;
    if host_base == 0 || count == 0 {
        bail!("--userns-map {s:?}: the base must not be 0 (that maps to host root) and the count must be positive");
    }
    if host_base.checked_add(count).is_none() {
        bail!("--userns-map {s:?} overflows the uid range");
    }
    Ok(IdMapping { host_base, count })
}

fn parse_volume(v: &str) -> Result<BindMount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (source, destination, readonly) = match parts.as_slice() {
        [s, d] => (*s, *d, false),
        [s, d, "ro"] => (*s, *d, true),
        [s, d, "rw"] => (*s, *d, false),
        _ => bail!("--volume {v:?} must look like HOST:CONTAINER or HOST:CONTAINER:ro"),
    };
    if !destination.starts_with('/') {
        bail!("--volume {v:?}: the container path must be absolute");
    }
    let source = std::fs::canonicalize(source)
        .with_context(|| format!("--volume {v:?}: host path {source:?} does not exist"))?;
    Ok(BindMount {
        source,
        destination: PathBuf::from(destination),
        readonly,
        filesystem: None,
    })
}

fn parse_user(u: &str) -> Result<(u32, u32)> {
    let (uid, gid) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let uid: u32 = uid
        .parse()
        .with_context(|| format!("--user {u:?}: give a numeric UID[:GID]"))?;
    let gid: u32 = match gid {
        Some(g) => g
            .parse()
            .with_context(|| format!("--user {u:?}: give a numeric UID[:GID]"))?,
        None => uid,
    };
    Ok((uid, gid))
}

fn list(json: bool) -> Result<u8> {
    let store = open_store()?;
    let containers = store.list_containers()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&containers)?);
        return Ok(0);
    }
    println!(
        "{:<14} {:<16} {:<10} {:<10} CREATED",
        "ID", "NAME", "IMAGE", "STATUS"
    );
    for c in containers {
        println!(
            "{:<14} {:<16} {:<10} {:<10} {}",
            c.id,
            c.name.as_deref().unwrap_or("-"),
            c.image,
            c.status_text(),
            c.created
        );
    }
    Ok(0)
}

fn freeze(container: &str, freeze: bool) -> Result<u8> {
    let store = open_store()?;
    let rec = store.container(container)?;
    if !rec.is_running() {
        bail!("container {container} is not running");
    }
    let root = CgroupRoot::detect()?;
    let cg = root.open(&rec.id)?;
    if freeze {
        cg.freeze()?;
    } else {
        cg.thaw()?;
    }
    Ok(0)
}
