//! isolab's container engine run in this process, one row per isolation feature.
//!
//! Each [`Variant`] adds one feature to the one before (a cgroup, an overlay rootfs, a veth
//! into a bridge, a user namespace, a seccomp filter), so the rows' differences are what each
//! feature costs at start-up. The figure is the library call, not a process launch: it is the
//! "where the time goes" view, labelled in-process in the results.

use super::{Environment, NotMeasured, Sample};
use crate::schema::Scope;
use isolab_cgroups::CgroupRoot;
use isolab_container::network::{BridgeConfig, BridgePlan};
use isolab_container::rootfs::OverlayDirs;
use isolab_container::seccomp::SeccompProgram;
use isolab_container::spawn::{self, ExitStatus, RunContext, RunOutcome};
use isolab_container::{ContainerSpec, RootfsSource};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

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
            .ok_or(NotMeasured::NotPrepared("container"))?;
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
                    .map_err(NotMeasured::io(format!("creating {}", d.display())))?;
            }
            ctx.overlay = Some(dirs);
        }
        if self.variant.bridge() {
            let plan = isolab_container::network::prepare(&bench_bridge(), &id)
                .map_err(NotMeasured::network)?;
            ctx.network = Some(plan);
        }
        let result = spawn::run(spec, ctx);
        if self.variant.overlay() {
            let _ = std::fs::remove_dir_all(&base);
        }
        let us = t.elapsed().as_secs_f64() * 1e6;
        let outcome = result.map_err(|e| NotMeasured::Container(Arc::new(e)))?;
        if outcome.status != ExitStatus::Exited(0) {
            return Err(NotMeasured::WorkloadFailed {
                environment: self.variant.name(),
                status: outcome.status,
            });
        }
        Ok((us, outcome))
    }
}

/// The engine's phase breakdown as named µs values.
pub fn container_phases(outcome: &RunOutcome) -> Vec<(String, f64)> {
    let p = outcome.phases;
    super::named_us([
        ("cgroup_us", p.cgroup_us),
        ("clone_us", p.clone_us),
        ("network_us", p.network_us),
        ("rootfs_us", p.rootfs_us),
        ("exec_setup_us", p.exec_setup_us),
        ("start_to_exec_us", p.start_to_exec_us),
        ("run_us", p.run_us),
        ("cleanup_us", p.cleanup_us),
        ("total_us", p.total_us),
    ])
}

impl Environment for IsolabContainer<'_> {
    fn name(&self) -> String {
        self.variant.name().into()
    }
    fn scope(&self) -> Scope {
        Scope::InProcess
    }

    fn prepare(&mut self) -> Result<(), NotMeasured> {
        if let Some(reason) = crate::fixture::container_refusal() {
            return Err(reason);
        }
        let mut spec = self.base.clone();
        spec.use_cgroup = self.variant != Variant::NamespacesOnly;
        if spec.use_cgroup && self.cgroups.is_none() {
            return Err(NotMeasured::NoCgroups);
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
            .map_err(NotMeasured::network)?;
            self.anchor = Some(anchor);
        }
        if self.variant == Variant::UserNs {
            spec.namespaces.insert(isolab_container::Namespace::User);
            spec.id_mapping = Some(isolab_container::IdMapping::default());
        }
        if self.variant.seccomp() {
            spec.seccomp = isolab_container::SeccompMode::Default;
            let prog = SeccompProgram::shared_default(&self.scratch.join("seccomp-cache"))
                .map_err(|e| NotMeasured::Seccomp(Arc::new(e)))?;
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
