//! The places a workload can run, behind one interface.
//!
//! Every environment — a plain host process, an isolab container at some isolation level, a
//! peer runtime (crun, runc, bubblewrap), a microVM — does two things: [`Environment::prepare`]
//! its heavy, one-off setup *outside* any timing (build a spec, compile a seccomp filter, lease
//! a bridge), then [`Environment::launch_once`] runs the workload once and returns one
//! [`Sample`]. The runner interleaves `launch_once` across environments so slow drift (thermal
//! state, a noisy neighbour in a nested VM, page-cache warmth) hits all of them alike.
//!
//! Anything that cannot run here answers with [`NotMeasured`] and a reason, which becomes a row
//! in the result file: a missing peer is a finding, not a gap to hide.

use crate::schema::Scope;
use isolab_cgroups::CgroupRoot;
use isolab_container::network::{BridgeConfig, BridgePlan};
use isolab_container::rootfs::OverlayDirs;
use isolab_container::seccomp::SeccompProgram;
use isolab_container::spawn::{self, ExitStatus, RunContext, RunOutcome};
use isolab_container::{ContainerSpec, RootfsSource};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// One measurement: a value in the row's unit plus the engine's own phase breakdown (µs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// The figure, in the unit of the row it belongs to.
    pub value: f64,
    /// Named phases in µs (empty when the environment cannot tell).
    pub phases_us: Vec<(String, f64)>,
}

impl Sample {
    /// A sample without phases.
    pub fn value(value: f64) -> Sample {
        Sample {
            value,
            phases_us: Vec::new(),
        }
    }
}

/// Why an environment produced no figure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotMeasured(pub String);

/// A place to run the workload.
pub trait Environment {
    /// The environment's name in the results (`host`, `isolab-engine-container-ns`, `crun`, …).
    fn name(&self) -> String;
    /// How the figure is taken: a spawned and waited-for process (the default), or isolab's
    /// library inside this process.
    fn scope(&self) -> Scope {
        Scope::WholeProcess
    }
    /// One-off setup, outside the timing.
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        Ok(())
    }
    /// Runs the workload once and measures it.
    fn launch_once(&mut self, index: usize) -> Result<Sample, NotMeasured>;
}

/// An environment that cannot run here, with the reason.
#[derive(Debug)]
pub struct Unavailable {
    /// Row name.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl Environment for Unavailable {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn scope(&self) -> Scope {
        Scope::of_environment(&self.name)
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        Err(NotMeasured(self.reason.clone()))
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        Err(NotMeasured(self.reason.clone()))
    }
}

/// What one external command cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandCost {
    /// Wall time from spawn to reaped, µs.
    pub wall_us: f64,
    /// `ru_maxrss` from wait4: the largest resident set of the child *or* any descendant it
    /// reaped (the kernel keeps the maximum over the whole waited-for tree), in bytes.
    pub max_rss_bytes: u64,
}

/// Runs `cmd` with stdio closed and measures it, or returns its stderr as the reason.
///
/// `wait4(2)` instead of `Child::wait`: it hands back the child's `rusage`, whose
/// `ru_maxrss` is how a launcher's peak memory is read without sampling /proc in a race.
pub fn run_command(cmd: &mut Command) -> Result<CommandCost, NotMeasured> {
    use std::io::Read;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| NotMeasured(format!("cannot start {:?}: {e}", cmd.get_program())))?;
    let mut stderr = Vec::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_end(&mut stderr);
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = loop {
        // SAFETY: waits for our own child, writing into the valid `status` and `usage`.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            break rc;
        }
    };
    let wall_us = t.elapsed().as_secs_f64() * 1e6;
    if rc < 0 {
        return Err(NotMeasured(format!(
            "waiting for {:?}: {}",
            cmd.get_program(),
            nix::errno::Errno::last()
        )));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let stderr = String::from_utf8_lossy(&stderr);
        return Err(NotMeasured(format!(
            "{:?} failed (wait status {status:#x}): {}",
            cmd.get_program(),
            stderr.lines().last().unwrap_or("").trim()
        )));
    }
    Ok(CommandCost {
        wall_us,
        max_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
    })
}

/// [`run_command`]'s wall time alone, in µs.
pub fn time_command(cmd: &mut Command) -> Result<f64, NotMeasured> {
    run_command(cmd).map(|c| c.wall_us)
}

/// Runs `argv` here or, with `via`, from the hidden-cgroup2 thread.
pub fn run_argv(
    argv: &[OsString],
    via: Option<&HiddenCgroup2Thread>,
) -> Result<CommandCost, NotMeasured> {
    match via {
        Some(thread) => thread.run(argv.to_vec()),
        None => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            run_command(&mut cmd)
        }
    }
}

/// A host process: `fork` + `exec` of the workload, nothing else. The baseline every ratio
/// divides by.
#[derive(Debug)]
pub struct HostProcess {
    /// argv of the workload (absolute path first).
    pub argv: Vec<OsString>,
}

impl Environment for HostProcess {
    fn name(&self) -> String {
        "host".into()
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]);
        time_command(&mut cmd).map(Sample::value)
    }
}

/// A peer tool run as a command line (crun, runc, bwrap, unshare, podman…), optionally from
/// the thread that hides the cgroup2 mount (crun refuses a hybrid layout otherwise).
pub struct PeerCommand<'a> {
    /// Row name.
    pub name: String,
    /// Builds the command line for launch number `index`.
    pub argv: Box<dyn Fn(usize) -> Vec<OsString> + 'a>,
    /// Launch from [`HiddenCgroup2Thread`] instead of this thread.
    pub via: Option<&'a HiddenCgroup2Thread>,
    /// Extra environment variables for the command (only without `via`).
    pub envs: Vec<(OsString, OsString)>,
}

impl std::fmt::Debug for PeerCommand<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCommand")
            .field("name", &self.name)
            .finish()
    }
}

impl Environment for PeerCommand<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn launch_once(&mut self, index: usize) -> Result<Sample, NotMeasured> {
        let argv = (self.argv)(index);
        if self.envs.is_empty() {
            return run_argv(&argv, self.via).map(|c| Sample::value(c.wall_us));
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).envs(self.envs.iter().cloned());
        time_command(&mut cmd).map(Sample::value)
    }
}

type Job = (
    Vec<OsString>,
    mpsc::Sender<Result<CommandCost, NotMeasured>>,
);

/// A thread in its own mount namespace where `/sys/fs/cgroup/unified` is unmounted.
///
/// A mount namespace belongs to a *task*, and Linux lets one thread of a process `unshare`
/// its mount namespace alone (`CLONE_NEWNS` implies only `CLONE_FS`, which a thread may drop).
/// Children forked from that thread inherit its view. So crun, which refuses to start on a
/// hybrid cgroup host while the near-empty cgroup2 mount is visible, is launched from here,
/// while isolab's own containers and network namespaces stay in the host's mount namespace —
/// and no `unshare -m sh -c umount …` wrapper inflates crun's timings.
#[derive(Debug)]
pub struct HiddenCgroup2Thread {
    jobs: Option<mpsc::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl HiddenCgroup2Thread {
    /// Starts the thread; fails when the mount namespace cannot be made.
    pub fn start() -> Result<HiddenCgroup2Thread, NotMeasured> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), NotMeasured>>();
        let handle = std::thread::Builder::new()
            .name("bench-crun".into())
            .spawn(move || {
                let ready = hide_cgroup2_mount();
                let ok = ready.is_ok();
                let _ = ready_tx.send(ready);
                if !ok {
                    return;
                }
                for (argv, reply) in jobs_rx {
                    let mut cmd = Command::new(&argv[0]);
                    cmd.args(&argv[1..]);
                    let _ = reply.send(run_command(&mut cmd));
                }
            })
            .map_err(|e| NotMeasured(format!("cannot start the crun launcher thread: {e}")))?;
        let ready = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(NotMeasured("the crun launcher thread died".into())));
        let thread = HiddenCgroup2Thread {
            jobs: Some(jobs_tx),
            handle: Some(handle),
        };
        ready.map(|()| thread)
    }

    /// Runs `argv` on the thread and measures it there.
    pub fn run(&self, argv: Vec<OsString>) -> Result<CommandCost, NotMeasured> {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .as_ref()
            .ok_or_else(|| NotMeasured("launcher thread stopped".into()))?
            .send((argv, tx))
            .map_err(|_| NotMeasured("the crun launcher thread died".into()))?;
        rx.recv()
            .map_err(|_| NotMeasured("the crun launcher thread died".into()))?
    }
}

impl Drop for HiddenCgroup2Thread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Unshares this thread's mount namespace and unmounts `/sys/fs/cgroup/unified` in it (see
/// [`HiddenCgroup2Thread`]); children forked from this thread inherit the view.
pub fn hide_cgroup2_mount() -> Result<(), NotMeasured> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| NotMeasured(format!("unshare(CLONE_NEWNS) for crun: {e}")))?;
    // Stop our umount from propagating back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| NotMeasured(format!("making / a slave mount for crun: {e}")))?;
    let unified = std::path::Path::new("/sys/fs/cgroup/unified");
    if unified.exists() {
        umount2(unified, MntFlags::MNT_DETACH)
            .map_err(|e| NotMeasured(format!("hiding {} for crun: {e}", unified.display())))?;
    }
    Ok(())
}

/// Which isolab container variant a row measures (each one adds a feature to `Cgroups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// docker's namespaces, pivot_root into the rootfs dir; no cgroup.
    NamespacesOnly,
    /// + a memory/pids cgroup.
    Cgroups,
    /// + an overlay rootfs whose upper/work dirs are made and removed in the timing.
    Overlay,
    /// + a veth into isolab's bridge (the lease, veth and addresses are in the timing).
    Bridge,
    /// + a user namespace (root in the container is uid 100000 outside).
    UserNs,
    /// + isolab's default seccomp filter (loaded from its cache once, outside the timing).
    Seccomp,
    /// Overlay + cgroups + bridge + seccomp: what `docker run` sets up.
    Full,
}

impl Variant {
    /// Every variant, cheapest first.
    pub const ALL: [Variant; 7] = [
        Variant::NamespacesOnly,
        Variant::Cgroups,
        Variant::Overlay,
        Variant::Bridge,
        Variant::UserNs,
        Variant::Seccomp,
        Variant::Full,
    ];

    /// The row name.
    pub fn name(self) -> &'static str {
        match self {
            Variant::NamespacesOnly => "isolab-engine-container-ns",
            Variant::Cgroups => "isolab-engine-container-cgroups",
            Variant::Overlay => "isolab-engine-container-overlay",
            Variant::Bridge => "isolab-engine-container-bridge",
            Variant::UserNs => "isolab-engine-container-userns",
            Variant::Seccomp => "isolab-engine-container-seccomp",
            Variant::Full => "isolab-engine-container-full",
        }
    }

    /// What the row's container sets up, in words (its note).
    pub fn feature(self) -> &'static str {
        match self {
            Variant::NamespacesOnly => "docker's namespaces + pivot_root into the rootfs dir",
            Variant::Cgroups => "namespaces + a memory/pids cgroup",
            Variant::Overlay => {
                "namespaces + cgroup + an overlay rootfs (upper/work dirs made and removed inside)"
            }
            Variant::Bridge => {
                "namespaces + cgroup + a veth into a bridge (lease, veth, addresses)"
            }
            Variant::UserNs => {
                "namespaces + cgroup + a user namespace (container root is uid 100000 outside)"
            }
            Variant::Seccomp => {
                "namespaces + cgroup + isolab's default seccomp filter (compiled once, outside)"
            }
            Variant::Full => "overlay + cgroups + bridge + seccomp: what `docker run` sets up",
        }
    }

    /// The feature's short name (container ids, criterion rows).
    pub fn short(self) -> &'static str {
        match self {
            Variant::NamespacesOnly => "ns",
            Variant::Cgroups => "cgroups",
            Variant::Overlay => "overlay",
            Variant::Bridge => "bridge",
            Variant::UserNs => "userns",
            Variant::Seccomp => "seccomp",
            Variant::Full => "full",
        }
    }

    fn overlay(self) -> bool {
        matches!(self, Variant::Overlay | Variant::Full)
    }
    fn bridge(self) -> bool {
        matches!(self, Variant::Bridge | Variant::Full)
    }
    fn seccomp(self) -> bool {
        matches!(self, Variant::Seccomp | Variant::Full)
    }
}

/// The bench's own bridge network, apart from the one `isolab container run` uses, so a
/// bench never disturbs (or is disturbed by) running containers.
pub fn bench_bridge() -> BridgeConfig {
    let default = BridgeConfig::default();
    BridgeConfig {
        subnet: isolab_container::network::Subnet::new(std::net::Ipv4Addr::new(10, 79, 0, 0), 16)
            .unwrap_or(default.subnet),
        bridge: "isolabbench0".into(),
        netns: "isolab-bench".into(),
    }
}

/// An isolab container started through the library ([`spawn::run`]), in this process.
pub struct IsolabContainer<'a> {
    /// Which features are on.
    pub variant: Variant,
    /// The base spec (the bundle's, args replaced by the workload).
    pub base: ContainerSpec,
    /// The rootfs dir (the overlay's lower layer for the overlay variants).
    pub rootfs: PathBuf,
    /// Where per-start overlay dirs and the seccomp cache go.
    pub scratch: PathBuf,
    /// The host's cgroup hierarchies.
    pub cgroups: Option<&'a CgroupRoot>,
    /// The container's memory cgroup limit (64 MiB unless a workload needs more).
    pub memory_limit_bytes: u64,
    /// Extra read-only layers stacked above `rootfs` (bottom first), for the overlay variants.
    pub upper_layers: Vec<PathBuf>,
    /// Filled by `prepare`.
    spec: Option<ContainerSpec>,
    seccomp: Option<&'static SeccompProgram>,
    /// Holds one lease for the whole run, so isolab's bridge namespace is created once (in
    /// prepare), not torn down and rebuilt by every start.
    anchor: Option<BridgePlan>,
}

impl std::fmt::Debug for IsolabContainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolabContainer")
            .field("variant", &self.variant)
            .finish()
    }
}

impl<'a> IsolabContainer<'a> {
    /// A container row; nothing happens until `prepare`.
    pub fn new(
        variant: Variant,
        base: ContainerSpec,
        rootfs: PathBuf,
        scratch: PathBuf,
        cgroups: Option<&'a CgroupRoot>,
    ) -> Self {
        IsolabContainer {
            variant,
            base,
            rootfs,
            scratch,
            cgroups,
            memory_limit_bytes: 64 << 20,
            upper_layers: Vec::new(),
            spec: None,
            seccomp: None,
            anchor: None,
        }
    }

    /// The same container with a memory limit of `bytes` (a workload with a large buffer).
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit_bytes = bytes;
        self
    }

    /// Runs the workload once and returns the engine's outcome (for memory rows).
    pub fn run_once(&mut self, index: usize) -> Result<(f64, RunOutcome), NotMeasured> {
        let id = format!(
            "bench-{}-{}-{index}",
            std::process::id(),
            self.variant.short()
        );
        self.run_as(&id)
    }

    /// Runs the workload once as container `id` (unique among running ones). Takes `&self` so
    /// several threads can start the same prepared row at once (the scaling question).
    pub fn run_as(&self, id: &str) -> Result<(f64, RunOutcome), NotMeasured> {
        let spec = self
            .spec
            .as_ref()
            .ok_or_else(|| NotMeasured("container row used before prepare".into()))?;
        let id = id.to_string();
        let t = Instant::now();
        let mut ctx = RunContext::new(id.clone());
        ctx.cgroups = self.cgroups;
        ctx.seccomp = self.seccomp;
        let base = self.scratch.join(&id);
        if self.variant.overlay() {
            let dirs =
                OverlayDirs::on_disk(base.join("upper"), base.join("work"), base.join("merged"));
            for d in [&dirs.upper, &dirs.work, &dirs.merged] {
                std::fs::create_dir_all(d)
                    .map_err(|e| NotMeasured(format!("creating {}: {e}", d.display())))?;
            }
            ctx.overlay = Some(dirs);
        }
        if self.variant.bridge() {
            let plan = isolab_container::network::prepare(&bench_bridge(), &id)
                .map_err(|e| NotMeasured(format!("bridge network: {e}")))?;
            ctx.network = Some(plan);
        }
        let result = spawn::run(spec, ctx);
        if self.variant.overlay() {
            let _ = std::fs::remove_dir_all(&base);
        }
        let us = t.elapsed().as_secs_f64() * 1e6;
        let outcome = result.map_err(|e| NotMeasured(format!("isolab container: {e}")))?;
        if outcome.status != ExitStatus::Exited(0) {
            return Err(NotMeasured(format!(
                "the workload in {} ended with {:?}",
                self.variant.name(),
                outcome.status
            )));
        }
        Ok((us, outcome))
    }
}

/// The engine's phase breakdown as named µs values.
pub fn container_phases(outcome: &RunOutcome) -> Vec<(String, f64)> {
    let p = outcome.phases;
    [
        ("cgroup_us", p.cgroup_us),
        ("clone_us", p.clone_us),
        ("network_us", p.network_us),
        ("rootfs_us", p.rootfs_us),
        ("exec_setup_us", p.exec_setup_us),
        ("start_to_exec_us", p.start_to_exec_us),
        ("run_us", p.run_us),
        ("cleanup_us", p.cleanup_us),
        ("total_us", p.total_us),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v as f64))
    .collect()
}

impl Environment for IsolabContainer<'_> {
    fn name(&self) -> String {
        self.variant.name().into()
    }
    fn scope(&self) -> Scope {
        Scope::InProcess
    }

    fn prepare(&mut self) -> Result<(), NotMeasured> {
        if let Some(reason) = crate::fixture::container_skip_reason() {
            return Err(NotMeasured(reason));
        }
        let mut spec = self.base.clone();
        spec.use_cgroup = self.variant != Variant::NamespacesOnly;
        if spec.use_cgroup && self.cgroups.is_none() {
            return Err(NotMeasured(
                "no usable cgroup hierarchy on this host".into(),
            ));
        }
        spec.resources = isolab_cgroups::Resources {
            memory_limit_bytes: Some(self.memory_limit_bytes),
            pids_limit: Some(64),
            ..Default::default()
        };
        if self.variant.overlay() {
            let mut layers = vec![self.rootfs.clone()];
            layers.extend(self.upper_layers.iter().cloned());
            spec.rootfs = RootfsSource::Layers(layers);
        } else {
            spec.rootfs = RootfsSource::Dir(self.rootfs.clone());
        }
        if self.variant.bridge() {
            spec.network = isolab_container::NetworkMode::Bridge;
            let anchor = isolab_container::network::prepare(
                &bench_bridge(),
                &format!("bench-anchor-{}", std::process::id()),
            )
            .map_err(|e| NotMeasured(format!("bridge network: {e}")))?;
            self.anchor = Some(anchor);
        }
        if self.variant == Variant::UserNs {
            spec.namespaces.insert(isolab_container::Namespace::User);
            spec.id_mapping = Some(isolab_container::IdMapping::default());
        }
        if self.variant.seccomp() {
            spec.seccomp = isolab_container::SeccompMode::Default;
            let prog = SeccompProgram::shared_default(&self.scratch.join("seccomp-cache"))
                .map_err(|e| NotMeasured(format!("seccomp filter: {e}")))?;
            self.seccomp = Some(prog);
        }
        self.spec = Some(spec);
        Ok(())
    }

    fn launch_once(&mut self, index: usize) -> Result<Sample, NotMeasured> {
        let (us, outcome) = self.run_once(index)?;
        Ok(Sample {
            value: us,
            phases_us: container_phases(&outcome),
        })
    }
}

/// Whether /dev/kvm opens read-write here (every VM row's `prepare`).
pub fn kvm_usable() -> Result<(), NotMeasured> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| NotMeasured(format!("/dev/kvm cannot be opened: {e}")))
}

/// isolab's microVM running its own stub guest, in this process.
#[derive(Debug)]
pub struct MicroVmStub {
    /// Row name.
    pub name: String,
    /// Guest workload.
    pub workload: isolab_microvm::Workload,
    /// Options for every boot.
    pub options: isolab_microvm::StubOptions,
}

/// The VMM's phase timings as named µs values.
pub fn vm_phases(t: &isolab_microvm::PhaseTimings) -> Vec<(String, f64)> {
    [
        ("create_vm_us", t.create_vm_us),
        ("memory_us", t.memory_us),
        ("irqchip_us", t.irqchip_us),
        ("vcpus_us", t.vcpus_us),
        ("load_us", t.load_us),
        ("first_run_at_us", t.first_run_at_us),
        ("exit_at_us", t.exit_at_us),
        ("teardown_us", t.teardown_us),
        ("total_us", t.total_us),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v as f64))
    .collect()
}

impl MicroVmStub {
    /// Boots once and returns the wall time (µs) and the report.
    pub fn boot(&self) -> Result<(f64, isolab_microvm::StubReport), NotMeasured> {
        let t = Instant::now();
        let report = isolab_microvm::boot_stub(self.workload, self.options)
            .map_err(|e| NotMeasured(format!("microVM: {e}")))?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if let isolab_microvm::WorkloadOutcome::NotSupportedHere { reason } = &report.outcome {
            return Err(NotMeasured(reason.clone()));
        }
        Ok((us, report))
    }
}

impl Environment for MicroVmStub {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn scope(&self) -> Scope {
        Scope::InProcess
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        kvm_usable()
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let (us, report) = self.boot()?;
        Ok(Sample {
            value: us,
            phases_us: vm_phases(&report.timings),
        })
    }
}
