//! Memory (C2): launcher and VMM resident memory, the cgroup charge, density in a budget.

use crate::density;
use crate::environment::{
    self as env, Environment, HiddenCgroup2Thread, IsolabContainer, MicroVmStub, NotMeasured,
    Sample, Unavailable, Variant,
};
use crate::fixture::{self};
use crate::plan::Plan;
use crate::runner::{RunConfig, DENSITY_CAP};
use crate::schema::{Outcome, Question, Row, Scope, Unit};
use crate::shared::{os, path_str, Shared};
use crate::stats;
use isolab_microvm::{StubOptions, Workload};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

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

/// The VMM's overhead as `isolab vm run --measure-rss` reports it from its own process.
struct CliVmmOverhead {
    argv: Vec<OsString>,
}

impl Environment for CliVmmOverhead {
    fn name(&self) -> String {
        "isolab-cli-microvm-stub".into()
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        crate::environment::kvm_usable()
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        let out = crate::observe::capture(&self.argv, &[])?;
        if out.code != 0 {
            return Err(NotMeasured(format!(
                "isolab vm run failed: {}",
                out.stderr.trim()
            )));
        }
        let report: serde_json::Value = serde_json::from_str(&out.stdout)
            .map_err(|e| NotMeasured(format!("isolab vm run --json printed no JSON: {e}")))?;
        report["footprint"]["vmm_overhead_bytes"]
            .as_f64()
            .map(Sample::value)
            .ok_or_else(|| NotMeasured("the VMM reported no footprint".into()))
    }
}

pub(crate) fn memory_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let q = Question::Memory;
    let w = "true";
    let mut plans = Vec::new();
    let Some(fx) = shared.fixture.as_ref() else {
        for (name, w) in [
            ("host", w),
            ("isolab-cli-container", w),
            ("crun", w),
            ("runc", w),
            ("isolab-cli-microvm-stub", crate::startup::STUB_TRUE),
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
                    crate::startup::STUB_TRUE,
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
            for (name, w) in [
                ("isolab-cli-container", w),
                ("isolab-cli-microvm-stub", crate::startup::STUB_TRUE),
            ] {
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
    plans.push(Plan::new(q, "vmm-overhead", Unit::Bytes, VmmOverhead).note(
        &crate::startup::engine_note(
            "resident bytes of the VMM beyond touched guest RAM, by mincore — inside the bench \
             process, so its own heap and threads are counted too",
        ),
    ));
    plans.push(match &shared.isolab_exe {
        Some(exe) => Plan::new(
            q,
            "vmm-overhead",
            Unit::Bytes,
            CliVmmOverhead {
                argv: crate::fixture::peers::isolab_vm_stub(&path_str(exe), "true")
                    .into_iter()
                    .chain(["--measure-rss".into(), "--json".into()])
                    .collect(),
            },
        )
        .note(
            "`isolab vm run --guest stub:true --memory 64M --measure-rss --json`: the VMM \
             process's RSS minus the guest pages it touched, measured by the VMM in its own \
             process (the way Firecracker reports its overhead)",
        ),
        None => Plan::new(
            q,
            "vmm-overhead",
            Unit::Bytes,
            Unavailable {
                name: "isolab-cli-microvm-stub".into(),
                reason: "needs the isolab binary (run it as `isolab bench`)".into(),
            },
        ),
    });
    match &shared.isolab_exe {
        Some(exe) => plans.push(
            Plan::new(
                q,
                "idle-vmm",
                Unit::Bytes,
                density::IdleProcessRss {
                    name: "isolab-cli-microvm-stub".into(),
                    argv: idle_vm_argv(exe, "60s"),
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
pub(crate) fn density_rows(shared: &Shared, config: &RunConfig) -> Vec<Row> {
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
        (Some(exe), false) => density::fill_vmm_processes(&idle_vm_argv(exe, "900s"), &limits),
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

/// `isolab vm run` of a stub guest that idles (64 MiB of guest RAM) until `timeout`: what the
/// idle-VMM and density rows keep running.
fn idle_vm_argv(exe: &Path, timeout: &str) -> Vec<OsString> {
    os(&[
        &path_str(exe),
        "vm",
        "run",
        "--guest",
        "stub:hang",
        "--memory",
        "64M",
        "--timeout",
        timeout,
    ])
}
