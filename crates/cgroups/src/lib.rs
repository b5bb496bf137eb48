//! # cgroups v1, v2 and hybrid behind one interface
//!
//! A **control group** (cgroup) is a kernel object that groups processes so the kernel can
//! *account* for what the group uses and *limit* it: memory, CPU time, which CPUs, how many
//! tasks, block-I/O priority — and can *freeze* the whole group at once. Namespaces decide what
//! a container can **see**; cgroups decide how much it can **use**. Children of a process start
//! in its cgroup, so putting a container's first process in a cgroup puts the whole container
//! there.
//!
//! The interface is a filesystem, `cgroupfs`: a cgroup is a directory, a child cgroup is a
//! subdirectory made with `mkdir`, each knob is a small text file (`echo 64M` is not accepted,
//! the kernel wants bytes: `echo 67108864 > memory.max`), a process joins by writing its pid to
//! `cgroup.procs`, and an empty cgroup is removed with `rmdir` (its interface files vanish with
//! it; you never `rm` them).
//!
//! ## Two versions, three layouts
//!
//! * **cgroup v1** (2008): every *controller* (`memory`, `cpu`, `pids`, `freezer`, …) may have
//!   its **own hierarchy**, a separate mount with its own tree. A process sits in one cgroup per
//!   hierarchy, possibly at different places in each — `/proc/self/cgroup` lists them all.
//!   Knob names carry history: `memory.limit_in_bytes`, `cpu.cfs_quota_us`, `freezer.state`.
//! * **cgroup v2** (2016, "unified"): **one** tree for everything. Controllers are handed down
//!   explicitly through `cgroup.subtree_control`, and a cgroup with processes cannot hand any
//!   down (the *no-internal-processes* rule). Freezing and killing are part of the core
//!   (`cgroup.freeze`, `cgroup.kill`); names are uniform: `memory.max`, `cpu.max`, `pids.max`.
//! * Hosts mount them as **unified** (v2 only), **legacy** (v1 only) or **hybrid** (v1
//!   hierarchies *and* a v2 mount at `/sys/fs/cgroup/unified`). A controller can be attached to
//!   only one hierarchy at a time, so on a hybrid host the controllers live in v1 and the v2
//!   tree is nearly empty (the host this project was measured on has only `hugetlb` there).
//!
//! ## The interface of this crate
//!
//! 1. [`CgroupRoot::detect`] reads the layout once: `statfs("/sys/fs/cgroup")` for the mode,
//!    `/proc/self/mountinfo` for the hierarchies, `/proc/self/cgroup` for where the caller sits
//!    in each. New cgroups nest under the caller's own cgroup *per hierarchy*, as
//!    `<own>/isolab/<name>`, so they stay inside whatever limits the caller was given.
//! 2. [`CgroupRoot::create`] makes the directories and writes the [`Resources`] (parsed with
//!    docker's syntax by [`parse_memory`], [`parse_cpus`], …). It only touches the controllers a
//!    limit needs, plus those used for statistics and freezing when the host has them; a limit
//!    whose controller is missing is a [`CgroupError::ControllerMissing`].
//! 3. [`Cgroup::add_pid`] attaches a process; [`Cgroup::freeze`] / [`Cgroup::thaw`] pause it;
//!    [`Cgroup::stats`] reads what it used (also after it exited); [`Cgroup::kill_all`] and
//!    [`Cgroup::destroy`] end it. Dropping a created [`Cgroup`] destroys it, so nothing leaks on
//!    an error path; [`CgroupRoot::open`] finds an existing one (from another process) without
//!    that ownership.
//!
//! ```no_run
//! use isolab_cgroups::{parse_cpus, parse_memory, CgroupRoot, Resources};
//! let root = CgroupRoot::detect()?;
//! let res = Resources {
//!     memory_limit_bytes: Some(parse_memory("64m")?),
//!     cpu_quota: Some(parse_cpus("0.5")?),
//!     pids_limit: Some(32),
//!     ..Default::default()
//! };
//! let cg = root.create("c1", &res)?;
//! let child = std::process::Command::new("true").spawn()?;
//! cg.add_pid(child.id() as i32)?; // a real launcher attaches before exec
//! let stats = cg.stats()?;
//! println!("peak {:?} bytes", stats.memory_peak_bytes);
//! cg.destroy()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The modules: [`limits`] (what each limit means, parsing), [`devices`] (which device nodes a
//! container may open) and [`device_bpf`] (the same rules as a cgroup v2 eBPF program), `detect` (layouts and mounts),
//! `v1` and `v2` (the files of each version), `stats` (the counters), `cgroup` (lifecycle),
//! `fsio` (one-syscall file access), `error`.

mod cgroup;
mod detect;
pub mod device_bpf;
pub mod devices;
mod error;
mod fsio;
pub mod limits;
mod placement;
mod stats;
mod v1;
mod v2;

pub use cgroup::Cgroup;
pub use detect::{CgroupMode, CgroupRoot, Controller, ControllerSet};
pub use devices::{DeviceAccess, DeviceKind, DeviceRule};
pub use error::{CgroupError, LimitError};
pub use limits::{
    check_cpus_available, cpu_shares_to_weight, io_weight_to_v2, parse_cpu_shares, parse_cpus,
    parse_cpus_on_host, parse_cpuset_cpus, parse_cpuset_mems, parse_io_weight, parse_memory,
    parse_memory_swap, parse_pids_limit, CpuQuota, Resources,
};
pub use stats::CgroupStats;
