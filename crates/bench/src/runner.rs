//! The whole matrix: every question, every environment, interleaved, into one [`Results`].
//!
//! How a fair comparison is run:
//!
//! - **Same workload everywhere.** Startup runs busybox `true` from one rootfs; the syscall and
//!   CPU questions run the [`crate::probes`] programs (identical bytes on host and in the
//!   container) and the microVM stub's identical loops.
//! - **Setup outside the timing.** Each environment's `prepare` builds specs, compiles
//!   filters, leases networks once. Then one untimed warm-up launch per environment fills the
//!   page cache and the kernel's slab caches.
//! - **Interleaved.** Sample *i* of every environment is taken before sample *i + 1* of any
//!   (A B C A B C …), so drift over the run — CPU frequency, a neighbour on a nested host —
//!   spreads over all rows instead of biasing whichever ran last.
//! - **Nothing estimated.** An environment that cannot run, or fails part-way, becomes a
//!   `not_measured` row with the reason; a row's figures are only ever its own samples.

use crate::density;
use crate::environment::{
    self as env, Environment, HiddenCgroup2Thread, HostProcess, IsolabContainer, MicroVmStub,
    NotMeasured, PeerCommand, Sample, Unavailable, Variant,
};
use crate::fixture::{self, Fixture};
use crate::linux_boot;
use crate::order::{self, Rng};
use crate::plan::{self, ColdRounds, Plan, Rounds};
use crate::probes::{Probe, TRIAD_ARRAY_BYTES};
use crate::scaling::{self, Concurrent, Measure, Target};
use crate::schema::{Outcome, Question, Results, Row, Scope, Settings, Unit, SCHEMA_VERSION};
use crate::stats;
use isolab_cgroups::CgroupRoot;
use isolab_container::ContainerSpec;
use isolab_microvm::{Figure, StubOptions, Workload, WorkloadOutcome};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to run the matrix.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Fewer samples and only the fast rows (finishes in well under 2 minutes).
    pub quick: bool,
    /// The questions to ask, in order.
    pub questions: Vec<Question>,
    /// Samples per row (overrides the quick/full default).
    pub samples: Option<usize>,
    /// The `isolab` binary, for rows that measure the launcher as its own process (peak RSS
    /// of `isolab container run` / `isolab vm run`). `None`: those rows are not measured.
    pub isolab_exe: Option<PathBuf>,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// How far the system's `MemAvailable` may fall while the density rows fill it with idle
    /// instances of one kind.
    pub density_budget_bytes: u64,
    /// How long one kind's density fill may keep starting instances.
    pub density_time_limit: Duration,
    /// Seed of the order shuffle (`None`: a fresh one, recorded in the results).
    pub seed: Option<u64>,
    /// Idle time before each cold start-up sample.
    pub cold_gap: Duration,
}

/// The default idle gap before a cold start: well past the few ms an RCU grace period takes.
pub const DEFAULT_COLD_GAP: Duration = Duration::from_millis(300);

/// The default density budget: 1 GiB.
pub const DEFAULT_DENSITY_BUDGET_BYTES: u64 = 1 << 30;
/// At most this many idle instances of one kind: bounds the run's threads and PIDs.
pub const DENSITY_CAP: usize = 4096;
/// The default time limit of one kind's density fill.
pub const DEFAULT_DENSITY_TIME_LIMIT: Duration = Duration::from_secs(150);

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            quick: false,
            questions: Question::ALL.to_vec(),
            samples: None,
            isolab_exe: None,
            progress: false,
            density_budget_bytes: DEFAULT_DENSITY_BUDGET_BYTES,
            density_time_limit: DEFAULT_DENSITY_TIME_LIMIT,
            seed: None,
            cold_gap: DEFAULT_COLD_GAP,
        }
    }
}

impl RunConfig {
    /// Samples per row for a question.
    fn samples_for(&self, q: Question) -> usize {
        if let Some(n) = self.samples {
            return n.max(1);
        }
        match (q, self.quick) {
            (Question::Startup, true) => 15,
            (Question::Startup, false) => 60,
            (_, true) => 5,
            (_, false) => 15,
        }
    }

    /// Samples per cold start-up row (each waits [`RunConfig::cold_gap`] first).
    fn cold_samples(&self) -> usize {
        match (self.samples, self.quick) {
            (Some(n), _) => n.clamp(1, 20),
            (None, true) => 5,
            (None, false) => 20,
        }
    }

    /// The rounds one question takes: cold ones for start-up only.
    fn rounds_for(&self, q: Question) -> Rounds {
        Rounds {
            warm: self.samples_for(q),
            cold: (q == Question::Startup).then_some(ColdRounds {
                samples: self.cold_samples(),
                gap: self.cold_gap,
            }),
        }
    }
}

/// Why the run as a whole could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "no questions to ask: pass at least one of startup, memory, syscall, cpu, scaling to --only"
    )]
    NoQuestions,
}

/// Everything the rows share: the rootfs, cgroups, the crun thread, the isolab binary.
struct Shared {
    fixture: Option<Fixture>,
    fixture_error: Option<String>,
    cgroups: Option<CgroupRoot>,
    crun_thread: Result<HiddenCgroup2Thread, NotMeasured>,
    isolab_exe: Option<PathBuf>,
    cpl0_native: Option<bool>,
    cpl0_detail: String,
}

impl Shared {
    fn new(config: &RunConfig, cpl0_native: Option<bool>, cpl0_detail: String) -> Shared {
        let (fixture, fixture_error) = match fixture::container_skip_reason() {
            Some(reason) => (None, Some(reason)),
            None => match Fixture::new() {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(format!("building the bench rootfs: {e}"))),
            },
        };
        Shared {
            fixture,
            fixture_error,
            cgroups: CgroupRoot::detect().ok(),
            crun_thread: HiddenCgroup2Thread::start(),
            isolab_exe: config.isolab_exe.clone(),
            cpl0_native,
            cpl0_detail,
        }
    }

    fn unavailable(&self, name: &str) -> Unavailable {
        Unavailable {
            name: name.into(),
            reason: self
                .fixture_error
                .clone()
                .unwrap_or_else(|| "no rootfs".into()),
        }
    }

    /// The bundle's spec with `args` as the workload.
    fn base_spec(&self, args: &[&str]) -> Result<ContainerSpec, String> {
        let fx = self.fixture.as_ref().ok_or_else(|| {
            self.fixture_error
                .clone()
                .unwrap_or_else(|| "no rootfs".into())
        })?;
        let mut spec = isolab_container::oci::load_bundle(&fx.bundle())
            .map_err(|e| format!("loading the bench bundle: {e}"))?;
        spec.args = args.iter().map(|a| a.to_string()).collect();
        Ok(spec)
    }

    fn container(&self, variant: Variant, args: &[&str]) -> Box<dyn Environment + '_> {
        match (self.base_spec(args), &self.fixture) {
            (Ok(spec), Some(fx)) => Box::new(IsolabContainer::new(
                variant,
                spec,
                fx.rootfs(),
                fx.scratch(),
                self.cgroups.as_ref(),
            )),
            (Err(reason), _) => Box::new(Unavailable {
                name: variant.name().into(),
                reason,
            }),
            (Ok(_), None) => Box::new(self.unavailable(variant.name())),
        }
    }

    fn crun_via(&self) -> Result<&HiddenCgroup2Thread, NotMeasured> {
        self.crun_thread.as_ref().map_err(Clone::clone)
    }

    /// Writes a probe program into the rootfs; returns its path inside the container and on
    /// the host.
    fn probe(&self, name: &str, probe: Probe) -> Result<(String, PathBuf), String> {
        let fx = self.fixture.as_ref().ok_or_else(|| {
            self.fixture_error
                .clone()
                .unwrap_or_else(|| "no rootfs".into())
        })?;
        let host = fx.rootfs().join("probes").join(name);
        probe
            .write_to(&host)
            .map_err(|e| format!("writing probe {}: {e}", host.display()))?;
        Ok((format!("/probes/{name}"), host))
    }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs the matrix and returns the results (it does not write any file).
pub fn run(config: &RunConfig) -> Result<Results, BenchError> {
    if config.questions.is_empty() {
        return Err(BenchError::NoQuestions);
    }
    let started = Instant::now();
    let started_at = crate::fingerprint::rfc3339_utc(std::time::SystemTime::now());
    let fingerprint = crate::fingerprint::take(true);
    let shared = Shared::new(
        config,
        fingerprint.guest_cpl0_native,
        fingerprint.guest_cpl0_detail.clone(),
    );
    let seed = config.seed.unwrap_or_else(order::fresh_seed);
    let mut rng = Rng::new(seed);
    let mut rows = Vec::new();
    for &question in &config.questions {
        let plans = match question {
            Question::Startup => startup_plans(&shared, config)
                .into_iter()
                .map(|p| {
                    // Every start-up row is warm; the quick ones get a cold row too (a Linux
                    // boot takes far longer than any idle gap).
                    let cold = p.samples_cap.is_none();
                    p.startup(cold)
                })
                .collect(),
            Question::Memory => memory_plans(&shared),
            Question::Syscall => syscall_plans(&shared),
            Question::Cpu => cpu_plans(&shared),
            Question::Scaling => scaling_plans(&shared),
        };
        rows.extend(plan::measure(
            question,
            plans,
            config.rounds_for(question),
            &mut rng,
            config.progress,
        ));
        if question == Question::Memory {
            rows.extend(density_rows(&shared, config));
        }
    }
    plan::fill_ratios(&mut rows);
    Ok(Results {
        schema_version: SCHEMA_VERSION,
        fingerprint,
        settings: Settings {
            quick: config.quick,
            samples_per_row: config.samples.unwrap_or_else(|| {
                config
                    .questions
                    .first()
                    .map(|q| config.samples_for(*q))
                    .unwrap_or(0)
            }),
            questions: config.questions.iter().map(|q| q.name().into()).collect(),
            shuffle_seed: seed,
            cold_gap_ms: config.cold_gap.as_millis() as u64,
            cold_samples_per_row: config.cold_samples(),
        },
        rows,
        observations: Vec::new(),
        started_at,
        duration_s: started.elapsed().as_secs_f64(),
    })
}

// ---- Startup -------------------------------------------------------------------------------

/// The stub guest's workload: its first instruction exits. Not busybox `true` (no exec, no
/// rootfs), so never compared with the container rows' `true`.
pub const STUB_TRUE: &str = "stub-true";

/// The note on every in-process row.
pub fn engine_note(what: &str) -> String {
    format!(
        "isolab's library inside the bench process (where the time goes), not a launch a user \
         sees: {what}"
    )
}

fn startup_plans<'a>(shared: &'a Shared, config: &RunConfig) -> Vec<Plan<'a>> {
    let q = Question::Startup;
    let w = "true";
    let mut plans = Vec::new();
    match &shared.fixture {
        Some(fx) => plans.push(Plan::new(
            q,
            w,
            Unit::Us,
            HostProcess {
                argv: vec![fx.rootfs().join("bin/true").into()],
            },
        )),
        None => plans.push(
            Plan::new(
                q,
                w,
                Unit::Us,
                HostProcess {
                    argv: os(&["/bin/true"]),
                },
            )
            .note("no bench rootfs: the host's /bin/true"),
        ),
    }
    for variant in Variant::ALL {
        plans.push(
            Plan::boxed(q, w, Unit::Us, shared.container(variant, &["/bin/true"]))
                .note(&engine_note(variant.feature())),
        );
    }
    plans.extend(isolab_cli_plans(shared, q));
    plans.extend(peer_plans(shared, q, w, Unit::Us));
    plans.extend(docker_and_gvisor_plans(shared, q));
    let vm = MicroVmStub {
        name: "isolab-engine-microvm-stub".into(),
        workload: Workload::True,
        options: StubOptions::default(),
    };
    plans.push(Plan::new(q, STUB_TRUE, Unit::Us, vm).note(&engine_note(
        "KVM VM create → the stub guest's first instruction → exit → teardown",
    )));
    plans.extend(linux_boot_plans(shared, config));
    plans
}

/// `isolab container run --rm` and `isolab vm run --guest stub:true` as whole processes,
/// spawned and waited for by the same code as every peer.
fn isolab_cli_plans<'a>(shared: &'a Shared, q: Question) -> Vec<Plan<'a>> {
    let missing = |name: &str, workload: &str, reason: String| {
        Plan::new(
            q,
            workload,
            Unit::Us,
            Unavailable {
                name: name.into(),
                reason,
            },
        )
    };
    let Some(exe) = &shared.isolab_exe else {
        let why = "needs the isolab binary (run it as `isolab bench`)";
        return vec![
            missing("isolab-cli-container", "true", why.into()),
            missing("isolab-cli-microvm-stub", STUB_TRUE, why.into()),
        ];
    };
    let container = match &shared.fixture {
        None => missing(
            "isolab-cli-container",
            "true",
            shared.unavailable("").reason,
        ),
        Some(fx) => {
            let argv = fixture::peers::isolab_container(&path_str(exe), &path_str(&fx.rootfs()));
            Plan::new(
                q,
                "true",
                Unit::Us,
                PeerCommand {
                    name: "isolab-cli-container".into(),
                    argv: Box::new(move |_| argv.clone()),
                    via: None,
                    envs: vec![(
                        isolab_container::image::HOME_ENV.into(),
                        fx.scratch().join("cli-home").into(),
                    )],
                },
            )
            .note(
                "`isolab container run --rm --rootfs ROOTFS -- /bin/true`: the CLI as a user \
                 launches it (its defaults: docker's six namespaces, a cgroup, pivot_root), \
                 with its state store in a scratch ISOLAB_HOME",
            )
        }
    };
    let argv = fixture::peers::isolab_vm_stub(&path_str(exe), "true");
    let vm = Plan::new(
        q,
        STUB_TRUE,
        Unit::Us,
        PeerCommand {
            name: "isolab-cli-microvm-stub".into(),
            argv: Box::new(move |_| argv.clone()),
            via: None,
            envs: Vec::new(),
        },
    )
    .note(
        "`isolab vm run --guest stub:true --memory 64M`: exec → VM → the stub's first \
         instruction exits → teardown → process exit",
    );
    vec![container, vm]
}

/// `docker run` and gVisor's `runsc run` of busybox `true` on the same rootfs.
fn docker_and_gvisor_plans(shared: &Shared, q: Question) -> Vec<Plan<'_>> {
    let Some(fx) = shared.fixture.as_ref() else {
        return ["docker", "gvisor"]
            .into_iter()
            .map(|name| Plan::new(q, "true", Unit::Us, shared.unavailable(name)))
            .collect();
    };
    let docker = Plan::new(
        q,
        "true",
        Unit::Us,
        crate::docker::DockerRun::new(fx.rootfs(), fx.scratch()),
    )
    .note(
        "docker run --rm --network none of the same rootfs (docker import): client → dockerd \
         → containerd → shim → runc; a private dockerd (cgroupfs driver, no bridge) when none \
         was running, stopped after",
    );
    let gvisor = match crate::gvisor::available() {
        Err(NotMeasured(reason)) => Plan::new(
            q,
            "true",
            Unit::Us,
            Unavailable {
                name: "gvisor".into(),
                reason,
            },
        ),
        Ok(_) => {
            let (bundle, state) = (fx.bundle(), fx.scratch().join("runsc"));
            Plan::new(
                q,
                "true",
                Unit::Us,
                PeerCommand {
                    name: "gvisor".into(),
                    argv: Box::new(move |i| {
                        let id = crate::gvisor::sandbox_id("true", i);
                        crate::gvisor::run_argv(&state, &bundle, &id)
                    }),
                    via: None,
                    envs: Vec::new(),
                },
            )
            .note(
                "runsc --network=none --ignore-cgroups --platform=ptrace run on crun's bundle: \
                 the workload's system calls served by gVisor's user-space kernel",
            )
        }
    };
    vec![docker, gvisor]
}

/// Samples of a Linux boot row (each one is a whole VM boot to the banner, ~0.6 s here).
const LINUX_BOOT_SAMPLES: usize = 5;
const LINUX_BOOT_SAMPLES_QUICK: usize = 3;

/// isolab's VMM and QEMU's microvm machine booting the same Linux kernel to its banner.
fn linux_boot_plans<'a>(shared: &'a Shared, config: &RunConfig) -> Vec<Plan<'a>> {
    let q = Question::Startup;
    let w = "linux-to-command-line";
    let cap = if config.quick {
        LINUX_BOOT_SAMPLES_QUICK
    } else {
        LINUX_BOOT_SAMPLES
    };
    let note = linux_boot::boot_note(shared.cpl0_native, &shared.cpl0_detail);
    let timeout = std::time::Duration::from_secs(90);
    let missing = |name: &str, reason: String| {
        Plan::new(
            q,
            w,
            Unit::Us,
            Unavailable {
                name: name.into(),
                reason,
            },
        )
    };
    let images = linux_boot::guest_images();
    let isolab = match (&images, &shared.isolab_exe) {
        (Err(reason), _) => missing("isolab-cli-microvm-linux", reason.clone()),
        (_, None) => missing(
            "isolab-cli-microvm-linux",
            "needs the isolab binary (run it as `isolab bench`)".into(),
        ),
        (Ok((kernel, initrd)), Some(exe)) => Plan::new(
            q,
            w,
            Unit::Us,
            linux_boot::TimeToConsoleLine {
                name: "isolab-cli-microvm-linux".into(),
                argv: linux_boot::isolab_argv(exe, kernel, initrd),
                timeout,
                stops_itself: true,
            },
        )
        .note(&format!(
            "{note}; includes stopping the VM (`vm run --until` prints the console when it stops)"
        ))
        .samples_cap(cap),
    };
    let qemu = match (&images, fixture::which("qemu-system-x86_64")) {
        (_, None) => missing(
            "qemu-microvm",
            "qemu-system-x86_64 not installed: apt-get install qemu-system-x86".into(),
        ),
        (Err(reason), _) => missing("qemu-microvm", reason.clone()),
        (Ok((kernel, initrd)), Some(_)) => Plan::new(
            q,
            w,
            Unit::Us,
            linux_boot::TimeToConsoleLine {
                name: "qemu-microvm".into(),
                argv: linux_boot::qemu_argv(kernel, initrd),
                timeout,
                stops_itself: false,
            },
        )
        .note(&format!(
            "{note}; `qemu-system-x86_64 -M microvm -cpu host,-arch-capabilities,-cx16 -m 256`, \
             killed after the line (outside the timing)"
        ))
        .samples_cap(cap),
    };
    vec![isolab, qemu]
}

/// crun, runc, bwrap, unshare and podman running busybox `true` from the same rootfs.
fn peer_plans<'a>(shared: &'a Shared, q: Question, w: &str, unit: Unit) -> Vec<Plan<'a>> {
    let mut plans = Vec::new();
    let missing = |name: &str, reason: String| {
        Plan::new(
            q,
            w,
            unit,
            Unavailable {
                name: name.into(),
                reason,
            },
        )
    };
    let Some(fx) = shared.fixture.as_ref() else {
        for name in ["crun", "runc", "bwrap", "unshare", "podman"] {
            plans.push(Plan::new(q, w, unit, shared.unavailable(name)));
        }
        return plans;
    };
    let bundle = path_str(&fx.bundle());
    let rootfs = path_str(&fx.rootfs());
    for runtime in ["crun", "runc"] {
        if fixture::which(runtime).is_none() {
            plans.push(missing(runtime, format!("{runtime} not installed")));
            continue;
        }
        let via = if runtime == "crun" {
            match shared.crun_via() {
                Ok(t) => Some(t),
                Err(e) => {
                    plans.push(missing(runtime, e.0));
                    continue;
                }
            }
        } else {
            None
        };
        let bundle = bundle.clone();
        plans.push(Plan::new(
            q,
            w,
            unit,
            PeerCommand {
                name: runtime.into(),
                argv: Box::new(move |i| {
                    let id = format!("isolab-bench-{}-{i}", std::process::id());
                    fixture::peers::oci_run(runtime, &bundle, &id)
                }),
                via,
                envs: Vec::new(),
            },
        ));
    }
    match fixture::which("bwrap") {
        None => plans.push(missing("bwrap", "bwrap (bubblewrap) not installed".into())),
        Some(_) => {
            let rootfs = rootfs.clone();
            plans.push(Plan::new(
                q,
                w,
                unit,
                PeerCommand {
                    name: "bwrap".into(),
                    argv: Box::new(move |_| fixture::peers::bwrap(&rootfs)),
                    via: None,
                    envs: Vec::new(),
                },
            ))
        }
    }
    match fixture::which("unshare") {
        None => plans.push(missing(
            "unshare",
            "unshare (util-linux) not installed".into(),
        )),
        Some(_) => {
            let rootfs = rootfs.clone();
            plans.push(
                Plan::new(
                    q,
                    w,
                    unit,
                    PeerCommand {
                        name: "unshare".into(),
                        argv: Box::new(move |_| fixture::peers::unshare(&rootfs)),
                        via: None,
                        envs: Vec::new(),
                    },
                )
                .note("unshare -fpmuin --root ROOTFS: namespaces + chroot, no cgroup"),
            )
        }
    }
    plans.push(match fixture::which("podman") {
        None => missing(
            "podman",
            "podman not installed: apt-get install podman".into(),
        ),
        Some(_) => match shared.crun_via() {
            Err(e) => missing("podman", e.0),
            Ok(via) => Plan::new(
                q,
                w,
                unit,
                Podman {
                    rootfs: fx.rootfs(),
                    tar: fx.scratch().join("rootfs.tar"),
                    image: format!("isolab-bench-{}", std::process::id()),
                    via,
                    imported: false,
                },
            )
            .note(
                "podman run --rm --network none of the same rootfs (podman import), with \
                 --cgroup-manager cgroupfs and nofile/nproc ulimits, from the thread that hides \
                 the cgroup2 mount (podman's crun refuses a hybrid layout otherwise)",
            ),
        },
    });
    plans
}

/// podman, the docker-compatible CLI, running the same rootfs as an imported image.
///
/// No registry: `podman import` turns a tar of the bench rootfs into an image (outside the
/// timing). On a hybrid cgroup host without systemd podman needs `--cgroup-manager cgroupfs`,
/// explicit `nofile`/`nproc` ulimits (it refuses to copy the host's), and — since it runs
/// crun — the cgroup2 mount hidden, so it is started from [`HiddenCgroup2Thread`].
struct Podman<'a> {
    rootfs: PathBuf,
    tar: PathBuf,
    image: String,
    via: &'a HiddenCgroup2Thread,
    imported: bool,
}

impl Environment for Podman<'_> {
    fn name(&self) -> String {
        "podman".into()
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        env::time_command(
            std::process::Command::new("tar")
                .arg("-C")
                .arg(&self.rootfs)
                .arg("-cf")
                .arg(&self.tar)
                .arg("."),
        )?;
        let mut argv = os(&["podman", "import"]);
        argv.push(self.tar.clone().into());
        argv.push(self.image.clone().into());
        self.via.run(argv)?;
        self.imported = true;
        Ok(())
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let argv = os(&[
            "podman",
            "--cgroup-manager",
            "cgroupfs",
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            &self.image,
            "/bin/true",
        ]);
        self.via.run(argv).map(|c| Sample::value(c.wall_us))
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        if self.imported {
            let _ = self.via.run(os(&["podman", "rmi", "--force", &self.image]));
        }
        let _ = std::fs::remove_file(&self.tar);
    }
}

// ---- Memory --------------------------------------------------------------------------------

/// GNU time, which reports its child's `ru_maxrss`.
const GNU_TIME: &str = "/usr/bin/time";

/// Peak RSS of one command, as an environment.
///
/// `ru_maxrss` is a high-water mark that survives `execve`: the kernel folds the pre-exec
/// address space's peak into it. A child forked from this (large, multi-MiB) bench process
/// would therefore report *our* size. So the command is started by GNU time, a ~1 MiB process,
/// whose child's `ru_maxrss` is the command's own peak (with time's small floor, the same for
/// every row, host included).
struct RssOf<'a> {
    name: String,
    argv: Vec<OsString>,
    via: Option<&'a HiddenCgroup2Thread>,
    report: PathBuf,
}

impl Environment for RssOf<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        if !Path::new(GNU_TIME).exists() {
            return Err(NotMeasured(format!(
                "GNU time ({GNU_TIME}) not installed: without a small parent, ru_maxrss would \
                 report the bench process's own size (apt-get install time)"
            )));
        }
        Ok(())
    }
    fn launch_once(&mut self, i: usize) -> Result<Sample, NotMeasured> {
        let mut argv = os(&[GNU_TIME, "-f", "%M", "-o"]);
        argv.push(self.report.clone().into());
        for a in &self.argv {
            // Runtimes need a fresh container id per run.
            if a == "{id}" {
                argv.push(format!("isolab-bench-rss-{}-{i}", std::process::id()).into());
            } else {
                argv.push(a.clone());
            }
        }
        env::run_argv(&argv, self.via)?;
        let text = std::fs::read_to_string(&self.report)
            .map_err(|e| NotMeasured(format!("reading {}: {e}", self.report.display())))?;
        let kib: f64 = text
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| NotMeasured(format!("GNU time wrote {text:?}, not a size")))?;
        Ok(Sample::value(kib * 1024.0))
    }
}

/// The container's cgroup memory charge (peak) of one in-process isolab start.
struct CgroupCharge<'a>(IsolabContainer<'a>);

impl Environment for CgroupCharge<'_> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn scope(&self) -> Scope {
        Scope::InProcess
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        self.0.prepare()
    }
    fn launch_once(&mut self, i: usize) -> Result<Sample, NotMeasured> {
        let (_, outcome) = self.0.run_once(i)?;
        outcome
            .cgroup_stats
            .and_then(|s| s.memory_peak_bytes.or(s.memory_current_bytes))
            .map(|b| Sample::value(b as f64))
            .ok_or_else(|| NotMeasured("the cgroup reports no memory usage here".into()))
    }
}

/// The VMM's resident memory beyond guest RAM, from the engine's own mincore accounting.
struct VmmOverhead;

impl Environment for VmmOverhead {
    fn name(&self) -> String {
        "isolab-engine-microvm-stub".into()
    }
    fn scope(&self) -> Scope {
        Scope::InProcess
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let vm = MicroVmStub {
            name: String::new(),
            workload: Workload::True,
            options: StubOptions {
                measure_rss: true,
                ..StubOptions::default()
            },
        };
        let (_, report) = vm.boot()?;
        report
            .footprint
            .map(|f| Sample::value(f.vmm_overhead_bytes as f64))
            .ok_or_else(|| NotMeasured("the VMM could not measure its footprint".into()))
    }
}

fn memory_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let q = Question::Memory;
    let w = "true";
    let mut plans = Vec::new();
    let Some(fx) = shared.fixture.as_ref() else {
        for name in [
            "host",
            "isolab-cli-container",
            "crun",
            "runc",
            "isolab-cli-microvm-stub",
        ] {
            plans.push(Plan::new(q, w, Unit::Bytes, shared.unavailable(name)));
        }
        return plans;
    };
    let rootfs = path_str(&fx.rootfs());
    let bundle = path_str(&fx.bundle());
    plans.push(
        Plan::new(
            q,
            w,
            Unit::Bytes,
            RssOf {
                name: "host".into(),
                argv: vec![fx.rootfs().join("bin/true").into()],
                via: None,
                report: fx.scratch().join("rss-host.txt"),
            },
        )
        .note("peak RSS of the workload process itself (no launcher), via GNU time"),
    );
    let rss_note = "peak RSS of the launcher process tree via GNU time (ru_maxrss: the largest \
                    single process among the launcher and the processes it reaped)";
    match &shared.isolab_exe {
        Some(exe) => {
            let exe = path_str(exe);
            plans.push(
                Plan::new(
                    q,
                    w,
                    Unit::Bytes,
                    RssOf {
                        name: "isolab-cli-container".into(),
                        argv: os(&[
                            &exe,
                            "container",
                            "run",
                            "--rootfs",
                            &rootfs,
                            "--memory",
                            "64m",
                            "--",
                            "/bin/true",
                        ]),
                        via: None,
                        report: fx.scratch().join("rss-isolab-container.txt"),
                    },
                )
                .note(rss_note),
            );
            plans.push(
                Plan::new(
                    q,
                    w,
                    Unit::Bytes,
                    RssOf {
                        name: "isolab-cli-microvm-stub".into(),
                        argv: os(&[
                            &exe,
                            "vm",
                            "run",
                            "--guest",
                            "stub:true",
                            "--memory",
                            "64M",
                        ]),
                        via: None,
                        report: fx.scratch().join("rss-isolab-vm.txt"),
                    },
                )
                .note("peak RSS of `isolab vm run --guest stub:true --memory 64M` (VMM + the guest RAM it touched)"),
            );
        }
        None => {
            for name in ["isolab-cli-container", "isolab-cli-microvm-stub"] {
                plans.push(Plan::new(
                    q,
                    w,
                    Unit::Bytes,
                    Unavailable {
                        name: name.into(),
                        reason: "needs the isolab binary (run it as `isolab bench`)".into(),
                    },
                ));
            }
        }
    }
    for runtime in ["crun", "runc"] {
        let via = if runtime == "crun" {
            shared.crun_via().ok()
        } else {
            None
        };
        if fixture::which(runtime).is_none() || (runtime == "crun" && via.is_none()) {
            plans.push(Plan::new(
                q,
                w,
                Unit::Bytes,
                Unavailable {
                    name: runtime.into(),
                    reason: format!("{runtime} not installed or cannot run here"),
                },
            ));
            continue;
        }
        plans.push(
            Plan::new(
                q,
                w,
                Unit::Bytes,
                RssOf {
                    name: runtime.into(),
                    argv: fixture::peers::oci_run(runtime, &bundle, "{id}"),
                    via,
                    report: fx.scratch().join(format!("rss-{runtime}.txt")),
                },
            )
            .note(rss_note),
        );
    }
    // The cgroup's view: what the kernel charged to the container.
    let charge_env: Box<dyn Environment + '_> =
        match (shared.base_spec(&["/bin/true"]), &shared.cgroups) {
            (Ok(spec), Some(cg)) => Box::new(CgroupCharge(IsolabContainer::new(
                Variant::Cgroups,
                spec,
                fx.rootfs(),
                fx.scratch(),
                Some(cg),
            ))),
            (Err(reason), _) => Box::new(Unavailable {
                name: Variant::Cgroups.name().into(),
                reason,
            }),
            (_, None) => Box::new(Unavailable {
                name: Variant::Cgroups.name().into(),
                reason: "no usable cgroup hierarchy".into(),
            }),
        };
    plans.push(
        Plan::boxed(q, "true-cgroup-charge", Unit::Bytes, charge_env)
            .note("peak memory charged to the container's cgroup"),
    );
    plans.push(
        Plan::new(q, "vmm-overhead", Unit::Bytes, VmmOverhead)
            .note("resident bytes of the (in-process) VMM beyond touched guest RAM, by mincore; includes the bench process's own heap"),
    );
    match &shared.isolab_exe {
        Some(exe) => plans.push(
            Plan::new(
                q,
                "idle-vmm",
                Unit::Bytes,
                density::IdleProcessRss {
                    name: "isolab-cli-microvm-stub".into(),
                    argv: os(&[
                        &path_str(exe),
                        "vm",
                        "run",
                        "--guest",
                        "stub:hang",
                        "--memory",
                        "64M",
                        "--timeout",
                        "60s",
                    ]),
                },
            )
            .note(
                "VmRSS of one idle `isolab vm run --guest stub:hang --memory 64M` process, read \
                 from /proc/PID/status once settled: the VMM in a process of its own, plus the \
                 few guest pages the stub touched; KVM's kernel-side memory is not in it",
            ),
        ),
        None => plans.push(Plan::new(
            q,
            "idle-vmm",
            Unit::Bytes,
            Unavailable {
                name: "isolab-cli-microvm-stub".into(),
                reason: "needs the isolab binary (run it as `isolab bench`)".into(),
            },
        )),
    }
    plans
}

// ---- Density ------------------------------------------------------------------------------

/// A row holding figures that were measured once, outside [`measure`] (density fills).
fn direct_row(
    scope: Scope,
    environment: &str,
    workload: &str,
    unit: Unit,
    figures: Result<Vec<f64>, NotMeasured>,
    note: Option<String>,
) -> Row {
    let result = match figures {
        Ok(samples) => match stats::summarize(&samples) {
            Some(summary) => Outcome::Measured { samples, summary },
            None => Outcome::NotMeasured {
                reason: "no valid samples".into(),
            },
        },
        Err(NotMeasured(reason)) => Outcome::NotMeasured { reason },
    };
    Row {
        question: Question::Memory,
        scope,
        start: None,
        environment: environment.into(),
        workload: workload.into(),
        unit,
        result,
        ratio_to_host: None,
        phases_median_us: BTreeMap::new(),
        note,
    }
}

/// Two rows per kind: how many idle instances fit the budget, and what each one cost the
/// machine (`MemAvailable` drop per instance; the per-process account is in the note).
fn density_pair(
    scope: Scope,
    environment: &str,
    limits: &density::FillLimits,
    fill: Result<density::Fill, NotMeasured>,
    how: &str,
    account: &str,
) -> [Row; 2] {
    let label = density::budget_label(limits.budget_bytes);
    let note = |fill: &density::Fill| {
        let mut per_process = fill.per_instance_bytes.clone();
        per_process.sort_by(f64::total_cmp);
        let median = per_process
            .get(per_process.len() / 2)
            .map_or_else(|| "-".into(), |b| format!("{:.0} KiB", b / 1024.0));
        format!(
            "{how}; {} instances started in {:.1} s, {}; MemAvailable fell by {} MiB in all \
             (kernel memory included — and anything else running on the machine); \
             per-process view: median {account} {median} per instance",
            fill.started,
            fill.elapsed.as_secs_f64(),
            fill.stop.describe(limits),
            fill.mem_available_drop_bytes >> 20,
        )
    };
    let (count, bytes, note) = match &fill {
        Ok(f) => (
            Ok(vec![f.count as f64]),
            f.mem_available_drop_per_instance_bytes()
                .map(|b| vec![b])
                .ok_or_else(|| {
                    NotMeasured(format!(
                        "MemAvailable did not fall over the fill ({} MiB): something else on \
                         the machine freed memory meanwhile, so there is no per-instance figure",
                        f.mem_available_drop_bytes >> 20
                    ))
                }),
            Some(note(f)),
        ),
        Err(e) => (Err(e.clone()), Err(e.clone()), None),
    };
    [
        direct_row(
            scope,
            environment,
            &format!("density-{label}"),
            Unit::Count,
            count,
            note.clone(),
        ),
        direct_row(
            scope,
            environment,
            "idle-instance",
            Unit::Bytes,
            bytes,
            note,
        ),
    ]
}

/// Idle containers vs idle microVMs in one memory budget (skipped by `--quick`).
fn density_rows(shared: &Shared, config: &RunConfig) -> Vec<Row> {
    let limits = density::FillLimits {
        budget_bytes: config.density_budget_bytes,
        cap: DENSITY_CAP,
        time_limit: config.density_time_limit,
        floor_bytes: density::DEFAULT_FLOOR_BYTES,
    };
    let skip = |why: &str| Err(NotMeasured(why.to_string()));
    let quick = "skipped by --quick: density starts idle instances until the budget is full \
                 (run without --quick)";
    let containers = if config.quick {
        skip(quick)
    } else {
        match (
            shared.base_spec(&["/bin/sleep", "3600"]),
            &shared.fixture,
            &shared.cgroups,
        ) {
            (Err(reason), _, _) => Err(NotMeasured(reason)),
            (_, None, _) => Err(NotMeasured(shared.unavailable("").reason)),
            (_, _, None) => skip("no usable cgroup hierarchy on this host"),
            (Ok(mut spec), Some(fx), Some(cg)) => {
                spec.use_cgroup = true;
                spec.resources = isolab_cgroups::Resources {
                    memory_limit_bytes: Some(64 << 20),
                    pids_limit: Some(64),
                    ..Default::default()
                };
                spec.rootfs = isolab_container::RootfsSource::Dir(fx.rootfs());
                density::fill_containers(&spec, cg, &limits)
            }
        }
    };
    let vms = match (&shared.isolab_exe, config.quick) {
        (_, true) => skip(quick),
        (None, _) => skip("needs the isolab binary (run it as `isolab bench`)"),
        (Some(exe), false) => density::fill_vmm_processes(
            &os(&[
                &path_str(exe),
                "vm",
                "run",
                "--guest",
                "stub:hang",
                "--memory",
                "64M",
                "--timeout",
                "900s",
            ]),
            &limits,
        ),
    };
    let mut rows = Vec::new();
    rows.extend(density_pair(
        Scope::InProcess,
        Variant::Cgroups.name(),
        &limits,
        containers,
        "idle `sleep` containers (namespaces + a 64 MiB memory cgroup each), started through \
         the library until the system's MemAvailable had fallen by the budget",
        "cgroup charge + share of the bench process's RSS growth",
    ));
    rows.extend(density_pair(
        Scope::WholeProcess,
        "isolab-cli-microvm-stub",
        &limits,
        vms,
        "idle `isolab vm run --guest stub:hang --memory 64M` processes (one VMM each, \
         SIGSTOPped once settled because the stub idles in a busy loop), started until the \
         system's MemAvailable had fallen by the budget",
        "VMM PSS (shared pages divided among the VMMs)",
    ));
    rows
}

// ---- Scaling ------------------------------------------------------------------------------

/// isolab's full container, the stub microVM and crun, started 1, 2, 4, 8 at a time.
fn scaling_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let q = Question::Scaling;
    let mut plans = Vec::new();
    // One prepared container serves every level: preparing once keeps one bridge anchor.
    let container: Result<std::sync::Arc<IsolabContainer<'_>>, NotMeasured> =
        match (shared.base_spec(&["/bin/true"]), &shared.fixture) {
            (Err(reason), _) => Err(NotMeasured(reason)),
            (_, None) => Err(NotMeasured(shared.unavailable("").reason)),
            (Ok(spec), Some(fx)) => {
                let mut c = IsolabContainer::new(
                    Variant::Full,
                    spec,
                    fx.rootfs(),
                    fx.scratch(),
                    shared.cgroups.as_ref(),
                );
                c.prepare().map(|()| std::sync::Arc::new(c))
            }
        };
    let crun = match (fixture::which("crun"), &shared.fixture) {
        (None, _) => Err(NotMeasured("crun not installed".into())),
        (_, None) => Err(NotMeasured(shared.unavailable("").reason)),
        (Some(_), Some(fx)) => Ok(path_str(&fx.bundle())),
    };
    for n in scaling::LEVELS {
        for measure in [Measure::Latency, Measure::Memory] {
            let (workload, unit) = match measure {
                Measure::Latency => (format!("true-x{n}"), Unit::Us),
                Measure::Memory => (format!("peak-memory-x{n}"), Unit::Bytes),
            };
            let stub_workload = format!("stub-{workload}");
            let targets: [(&str, Result<Target<'_>, NotMeasured>); 3] = [
                (
                    Variant::Full.name(),
                    container.clone().map(Target::Container),
                ),
                (
                    "isolab-engine-microvm-stub",
                    Ok(Target::MicroVm(StubOptions::default())),
                ),
                (
                    "crun",
                    crun.clone().map(|bundle| Target::Command {
                        argv: Box::new(move |round, i| {
                            let id = format!(
                                "isolab-bench-scale-{}-{n}-{round}-{i}",
                                std::process::id()
                            );
                            fixture::peers::oci_run("crun", &bundle, &id)
                        }),
                        threads: Vec::new(),
                    }),
                ),
            ];
            for (name, target) in targets {
                let note = match (measure, name) {
                    (Measure::Latency, _) => format!(
                        "{n} started at once (a barrier releases {n} threads); mean \
                         per-instance launch → exit; slowest/fastest in the phases"
                    ),
                    (Measure::Memory, "isolab-engine-microvm-stub") => format!(
                        "{n} stub VMs at once in this process: how far its resident set rose \
                         (VmHWM after a clear_refs reset); KVM's kernel-side memory (vCPU \
                         state, shadow page tables) is not in it"
                    ),
                    (Measure::Memory, _) => format!(
                        "{n} at once: the sum of their cgroups' peak charges + how far this \
                         process's resident set rose (VmHWM after a clear_refs reset)"
                    ),
                };
                let workload = if name == "isolab-engine-microvm-stub" {
                    &stub_workload
                } else {
                    &workload
                };
                let plan = match target {
                    Ok(target) => Plan::new(
                        q,
                        workload,
                        unit,
                        Concurrent {
                            name: name.into(),
                            n,
                            measure,
                            target,
                        },
                    ),
                    Err(NotMeasured(reason)) => Plan::new(
                        q,
                        workload,
                        unit,
                        Unavailable {
                            name: name.into(),
                            reason,
                        },
                    ),
                };
                let plan = match measure {
                    Measure::Latency => plan.startup(false),
                    Measure::Memory => plan,
                };
                plans.push(plan.note(&note));
            }
        }
    }
    plans
}

// ---- Syscall and CPU: probes as differences of two runs ------------------------------------

/// What a probe row reports per run pair.
#[derive(Debug, Clone, Copy)]
enum PerUnit {
    /// ns per iteration: Δt / iterations.
    NsPer(u64),
    /// bytes per second: bytes / Δt.
    BytesPerS(u64),
}

/// Where a probe pair runs.
enum ProbeTarget<'a> {
    Host(PathBuf, PathBuf),
    Container(Box<IsolabContainer<'a>>, Box<IsolabContainer<'a>>),
}

/// `(t(long) − t(short))` converted to the row's unit: see [`crate::probes`].
struct ProbePair<'a> {
    name: String,
    target: ProbeTarget<'a>,
    per: PerUnit,
}

impl ProbePair<'_> {
    fn once(&mut self, i: usize, long: bool) -> Result<f64, NotMeasured> {
        match &mut self.target {
            ProbeTarget::Host(l, s) => {
                let path = if long { l } else { s };
                env::time_command(&mut std::process::Command::new(path))
            }
            ProbeTarget::Container(l, s) => {
                let c = if long { l } else { s };
                c.run_once(i).map(|(_, o)| o.phases.run_us as f64)
            }
        }
    }
}

impl Environment for ProbePair<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn scope(&self) -> Scope {
        match self.target {
            ProbeTarget::Host(..) => Scope::WholeProcess,
            ProbeTarget::Container(..) => Scope::InProcess,
        }
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        if let ProbeTarget::Container(l, s) = &mut self.target {
            l.prepare()?;
            s.prepare()?;
        }
        Ok(())
    }
    fn launch_once(&mut self, i: usize) -> Result<Sample, NotMeasured> {
        let short = self.once(i, false)?;
        let long = self.once(i, true)?;
        let delta_us = long - short;
        if delta_us <= 0.0 {
            return Err(NotMeasured(format!(
                "the loop took no measurable time ({long:.0} µs vs {short:.0} µs without it): \
                 raise the iteration count"
            )));
        }
        Ok(Sample::value(match self.per {
            PerUnit::NsPer(n) => delta_us * 1000.0 / n as f64,
            PerUnit::BytesPerS(bytes) => bytes as f64 / (delta_us / 1e6),
        }))
    }
}

/// The microVM stub's own figure for a workload.
struct StubFigure {
    name: String,
    workload: Workload,
    iterations: Option<u64>,
}

impl StubFigure {
    fn new(workload: Workload, iterations: Option<u64>) -> Self {
        StubFigure {
            name: "isolab-engine-microvm-stub".into(),
            workload,
            iterations,
        }
    }
}

impl Environment for StubFigure {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn scope(&self) -> Scope {
        Scope::InProcess
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let options = StubOptions {
            iterations: self.iterations,
            memory_bytes: crate::probes::stub_memory_bytes(self.workload),
            timeout: std::time::Duration::from_secs(60),
            ..StubOptions::default()
        };
        let report = isolab_microvm::boot_stub(self.workload, options)
            .map_err(|e| NotMeasured(format!("microVM: {e}")))?;
        let figure = match report.outcome {
            WorkloadOutcome::Measured { figure } => figure,
            WorkloadOutcome::NotSupportedHere { reason } => return Err(NotMeasured(reason)),
        };
        let value = match figure {
            Figure::Syscall { ns_per_call, .. } => ns_per_call,
            Figure::Exit { ns_per_exit, .. } => ns_per_exit,
            Figure::Cpu {
                ns_per_iteration, ..
            } => ns_per_iteration,
            Figure::Memory {
                warm_bytes_per_s, ..
            } => warm_bytes_per_s,
            other => return Err(NotMeasured(format!("unexpected stub figure {other:?}"))),
        };
        Ok(Sample::value(value))
    }
}

/// Host, container (± seccomp) rows for a probe, plus the microVM stub row.
#[allow(clippy::too_many_arguments)]
fn probe_rows<'a>(
    shared: &'a Shared,
    q: Question,
    workload: &str,
    unit: Unit,
    long: Probe,
    short: Probe,
    per: PerUnit,
    variants: &[Variant],
    stub: Workload,
    stub_iterations: Option<u64>,
) -> Vec<Plan<'a>> {
    let mut plans = Vec::new();
    let paths = shared
        .probe(&format!("{workload}-long"), long)
        .and_then(|l| Ok((l, shared.probe(&format!("{workload}-short"), short)?)));
    match paths {
        Err(reason) => {
            plans.push(Plan::new(
                q,
                workload,
                unit,
                Unavailable {
                    name: "host".into(),
                    reason: reason.clone(),
                },
            ));
            for v in variants {
                plans.push(Plan::new(
                    q,
                    workload,
                    unit,
                    Unavailable {
                        name: v.name().into(),
                        reason: reason.clone(),
                    },
                ));
            }
        }
        Ok(((long_in, long_host), (short_in, short_host))) => {
            plans.push(Plan::new(
                q,
                workload,
                unit,
                ProbePair {
                    name: "host".into(),
                    target: ProbeTarget::Host(long_host, short_host),
                    per,
                },
            ));
            for &v in variants {
                let env: Box<dyn Environment + 'a> = match (
                    shared.base_spec(&[&long_in]),
                    shared.base_spec(&[&short_in]),
                    &shared.fixture,
                ) {
                    (Ok(l), Ok(s), Some(fx)) => Box::new(ProbePair {
                        name: v.name().into(),
                        target: ProbeTarget::Container(
                            Box::new(
                                IsolabContainer::new(
                                    v,
                                    l,
                                    fx.rootfs(),
                                    fx.scratch(),
                                    shared.cgroups.as_ref(),
                                )
                                .with_memory_limit(long.container_memory_limit_bytes()),
                            ),
                            Box::new(
                                IsolabContainer::new(
                                    v,
                                    s,
                                    fx.rootfs(),
                                    fx.scratch(),
                                    shared.cgroups.as_ref(),
                                )
                                .with_memory_limit(short.container_memory_limit_bytes()),
                            ),
                        ),
                        per,
                    }),
                    (Err(reason), _, _) | (_, Err(reason), _) => Box::new(Unavailable {
                        name: v.name().into(),
                        reason,
                    }),
                    (_, _, None) => Box::new(shared.unavailable(v.name())),
                };
                plans.push(Plan::boxed(q, workload, unit, env));
            }
        }
    }
    plans.push(
        Plan::new(q, workload, unit, StubFigure::new(stub, stub_iterations))
            .note("the same loop in isolab's stub guest (guest user mode, CPL3)"),
    );
    plans
}

const GETPID_CALLS: u64 = 200_000;
const CPU_ITERATIONS: u64 = 20_000_000;
const MEMORY_BUFFER_BYTES: u64 = 32 << 20;
const MEMORY_PASSES: u64 = 16;
const TRIAD_PASSES: u64 = 10;

fn syscall_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let q = Question::Syscall;
    let mut plans = probe_rows(
        shared,
        q,
        "getpid",
        Unit::Ns,
        Probe::Getpid {
            iterations: GETPID_CALLS,
        },
        Probe::Getpid { iterations: 0 },
        PerUnit::NsPer(GETPID_CALLS),
        &[Variant::Cgroups, Variant::Seccomp],
        Workload::Syscall,
        Some(GETPID_CALLS),
    );
    for (name, stub) in [("pio-exit", Workload::Pio), ("mmio-exit", Workload::Mmio)] {
        plans.push(
            Plan::new(q, name, Unit::Ns, StubFigure::new(stub, None))
                .note("one guest → KVM → VMM → guest round trip; there is no host equivalent"),
        );
    }
    plans
}

fn cpu_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let q = Question::Cpu;
    let mut plans = probe_rows(
        shared,
        q,
        "cpu-loop",
        Unit::Ns,
        Probe::Cpu {
            iterations: CPU_ITERATIONS,
        },
        Probe::Cpu { iterations: 1 },
        PerUnit::NsPer(CPU_ITERATIONS),
        &[Variant::Cgroups],
        Workload::Cpu,
        Some(CPU_ITERATIONS),
    );
    let mut memory = probe_rows(
        shared,
        q,
        "memory-pass",
        Unit::BytesPerS,
        Probe::Memory {
            buffer_bytes: MEMORY_BUFFER_BYTES,
            passes: MEMORY_PASSES,
        },
        Probe::Memory {
            buffer_bytes: MEMORY_BUFFER_BYTES,
            passes: 0,
        },
        PerUnit::BytesPerS(MEMORY_BUFFER_BYTES * MEMORY_PASSES),
        &[Variant::Cgroups],
        Workload::Memory,
        Some(MEMORY_PASSES),
    );
    for p in memory.iter_mut() {
        if p.note.is_none() {
            p.note = Some(
                "warm read-modify-write passes (inc qword) over 32 MiB; see `triad` for \
                 STREAM's figure"
                    .into(),
            );
        }
    }
    plans.append(&mut memory);
    let mut triad = probe_rows(
        shared,
        q,
        "triad",
        Unit::BytesPerS,
        Probe::Triad {
            array_bytes: TRIAD_ARRAY_BYTES,
            passes: TRIAD_PASSES,
        },
        Probe::Triad {
            array_bytes: TRIAD_ARRAY_BYTES,
            passes: 0,
        },
        PerUnit::BytesPerS(3 * TRIAD_ARRAY_BYTES * TRIAD_PASSES),
        &[Variant::Cgroups],
        Workload::Triad,
        Some(TRIAD_PASSES),
    );
    for p in triad.iter_mut() {
        if p.note.is_none() {
            p.note = Some(
                "STREAM triad a = b + 3.0*c over 3 x 128 MiB f64 arrays (SSE2), 24 bytes \
                 per element per pass as STREAM counts"
                    .into(),
            );
        }
    }
    plans.append(&mut triad);
    plans
}
