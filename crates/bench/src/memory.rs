//! Memory (C2): launcher and VMM resident memory, the cgroup charge.
//!
//! "A container costs less memory than a VM" needs more than one number, because memory is
//! counted in different places: a launcher's peak resident set (`ru_maxrss`, read through
//! GNU time so the bench's own size does not leak into it), the charge the kernel puts on a
//! container's cgroup, and the VMM's resident bytes beyond the guest RAM it touched. Each is
//! its own row, labelled with how it was read; the density rows (how many idle instances fit
//! in a budget) are in [`crate::density`].

use crate::density;
use crate::environment::{
    self as env, Environment, HiddenCgroup2Thread, IsolabContainer, MicroVmStub, NotMeasured,
    Sample, Unavailable, Variant,
};
use crate::fixture::{self, Fixture};
use crate::plan::Plan;
use crate::schema::{Question, Scope, Unit};
use crate::shared::{os, path_str, Shared};
use crate::startup::STUB_TRUE;
use isolab_microvm::{StubOptions, Workload};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

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
            return Err(NotMeasured::ToolMissing {
                tool: "GNU time (/usr/bin/time)",
                fix: "without a small parent, ru_maxrss would report the bench process's own \
                      size (apt-get install time)",
            });
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
        let text = std::fs::read_to_string(&self.report).map_err(NotMeasured::io(format!(
            "reading {}",
            self.report.display()
        )))?;
        let kib: f64 = text
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| {
                NotMeasured::NoReading(format!("GNU time wrote {text:?}, not a size"))
            })?;
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
            .ok_or_else(|| NotMeasured::NoReading("the cgroup reports no memory usage here".into()))
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
            .ok_or_else(|| NotMeasured::NoReading("the VMM could not measure its footprint".into()))
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
            return Err(NotMeasured::Misbehaved(format!(
                "isolab vm run failed: {}",
                out.stderr.trim()
            )));
        }
        let report: serde_json::Value = serde_json::from_str(&out.stdout)
            .map_err(NotMeasured::json("isolab vm run --json printed no JSON"))?;
        report["footprint"]["vmm_overhead_bytes"]
            .as_f64()
            .map(Sample::value)
            .ok_or_else(|| NotMeasured::NoReading("the VMM reported no footprint".into()))
    }
}

/// One peak-RSS row: what runs, under which name, and where GNU time writes its report.
struct RssRow<'a> {
    name: &'static str,
    workload: &'static str,
    /// GNU time's report goes to `rss-{file}.txt` in the scratch dir.
    file: &'static str,
    note: &'static str,
    launch: Result<(Vec<OsString>, Option<&'a HiddenCgroup2Thread>), NotMeasured>,
}

/// The note on every launcher's peak-RSS row.
const RSS_NOTE: &str = "peak RSS of the launcher process tree via GNU time (ru_maxrss: the \
                        largest single process among the launcher and the processes it reaped)";

/// Launcher and VMM memory, the container's cgroup charge and the VMM's overhead.
pub(crate) fn memory_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let Ok(fx) = shared.fixture() else {
        return no_rootfs_plans(shared);
    };
    let mut plans: Vec<Plan<'_>> = rss_rows(shared, fx)
        .into_iter()
        .map(|row| rss_plan(row, fx))
        .collect();
    plans.push(cgroup_charge_plan(shared));
    plans.extend(vmm_overhead_plans(shared));
    plans.push(idle_vmm_plan(shared));
    plans
}

/// Without the bench rootfs: the peak-RSS rows, each saying why.
fn no_rootfs_plans(shared: &Shared) -> Vec<Plan<'_>> {
    [
        ("host", "true"),
        ("isolab-cli-container", "true"),
        ("crun", "true"),
        ("runc", "true"),
        ("isolab-cli-microvm-stub", STUB_TRUE),
    ]
    .into_iter()
    .map(|(name, w)| Plan::new(Question::Memory, w, Unit::Bytes, shared.unavailable(name)))
    .collect()
}

/// The launchers whose peak RSS is measured: the workload alone, isolab's CLI (container and
/// VM) and the OCI runtimes, in row order.
fn rss_rows<'a>(shared: &'a Shared, fx: &Fixture) -> Vec<RssRow<'a>> {
    let rootfs = path_str(&fx.rootfs());
    let bundle = path_str(&fx.bundle());
    let exe = shared.isolab_exe().map(path_str);
    let cli = |args: &[&str]| {
        exe.clone().map(|exe| {
            let mut argv = os(&[&exe]);
            argv.extend(os(args));
            (argv, None)
        })
    };
    let runtime = |name: &'static str| {
        fixture::which(name).ok_or(NotMeasured::ToolMissing {
            tool: name,
            fix: "",
        })?;
        let via = if name == "crun" {
            Some(shared.crun_via()?)
        } else {
            None
        };
        Ok((fixture::peers::oci_run(name, &bundle, "{id}"), via))
    };
    let container_args = [
        "container",
        "run",
        "--rootfs",
        &rootfs,
        "--memory",
        "64m",
        "--",
        "/bin/true",
    ];
    vec![
        RssRow {
            name: "host",
            workload: "true",
            file: "host",
            note: "peak RSS of the workload process itself (no launcher), via GNU time",
            launch: Ok((vec![fx.rootfs().join("bin/true").into()], None)),
        },
        RssRow {
            name: "isolab-cli-container",
            workload: "true",
            file: "isolab-container",
            note: RSS_NOTE,
            launch: cli(&container_args),
        },
        RssRow {
            name: "isolab-cli-microvm-stub",
            workload: STUB_TRUE,
            file: "isolab-vm",
            note: "peak RSS of `isolab vm run --guest stub:true --memory 64M` (VMM + the guest \
                   RAM it touched)",
            launch: cli(&["vm", "run", "--guest", "stub:true", "--memory", "64M"]),
        },
        RssRow {
            name: "crun",
            workload: "true",
            file: "crun",
            note: RSS_NOTE,
            launch: runtime("crun"),
        },
        RssRow {
            name: "runc",
            workload: "true",
            file: "runc",
            note: RSS_NOTE,
            launch: runtime("runc"),
        },
    ]
}

/// A peak-RSS row as a plan: measured through GNU time, or not measured with the reason.
fn rss_plan<'a>(row: RssRow<'a>, fx: &Fixture) -> Plan<'a> {
    let (q, unit) = (Question::Memory, Unit::Bytes);
    match row.launch {
        Ok((argv, via)) => Plan::new(
            q,
            row.workload,
            unit,
            RssOf {
                name: row.name.into(),
                argv,
                via,
                report: fx.scratch().join(format!("rss-{}.txt", row.file)),
            },
        )
        .note(row.note),
        Err(reason) => Plan::new(q, row.workload, unit, Unavailable::new(row.name, reason)),
    }
}

/// The cgroup's view: what the kernel charged to the container.
fn cgroup_charge_plan(shared: &Shared) -> Plan<'_> {
    let container = match &shared.cgroups {
        None => Err(NotMeasured::NoCgroups),
        Some(_) => shared.isolab_container(Variant::Cgroups, &["/bin/true"]),
    };
    let env: Box<dyn Environment + '_> = match container {
        Ok(c) => Box::new(CgroupCharge(c)),
        Err(reason) => Box::new(Unavailable::new(Variant::Cgroups.name(), reason)),
    };
    Plan::boxed(Question::Memory, "true-cgroup-charge", Unit::Bytes, env)
        .note("peak memory charged to the container's cgroup")
}

/// The VMM's resident bytes beyond guest RAM: inside the bench process, and as
/// `isolab vm run --measure-rss` reports it from its own process.
fn vmm_overhead_plans(shared: &Shared) -> [Plan<'_>; 2] {
    let (q, w, unit) = (Question::Memory, "vmm-overhead", Unit::Bytes);
    let engine = Plan::new(q, w, unit, VmmOverhead).note(&crate::startup::engine_note(
        "resident bytes of the VMM beyond touched guest RAM, by mincore — inside the bench \
         process, so its own heap and threads are counted too",
    ));
    let cli = match shared.isolab_exe() {
        Ok(exe) => Plan::new(
            q,
            w,
            unit,
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
        Err(reason) => Plan::new(
            q,
            w,
            unit,
            Unavailable::new("isolab-cli-microvm-stub", reason),
        ),
    };
    [engine, cli]
}

/// One idle VMM process's resident set.
fn idle_vmm_plan(shared: &Shared) -> Plan<'_> {
    let (q, w, unit) = (Question::Memory, "idle-vmm", Unit::Bytes);
    let name = "isolab-cli-microvm-stub";
    match shared.isolab_exe() {
        Ok(exe) => Plan::new(
            q,
            w,
            unit,
            density::IdleProcessRss {
                name: name.into(),
                argv: idle_vm_argv(exe, "60s"),
            },
        )
        .note(
            "VmRSS of one idle `isolab vm run --guest stub:hang --memory 64M` process, read \
             from /proc/PID/status once settled: the VMM in a process of its own, plus the \
             few guest pages the stub touched; KVM's kernel-side memory is not in it",
        ),
        Err(reason) => Plan::new(q, w, unit, Unavailable::new(name, reason)),
    }
}

/// `isolab vm run` of a stub guest that idles (64 MiB of guest RAM) until `timeout`: what the
/// idle-VMM and density rows keep running.
pub(crate) fn idle_vm_argv(exe: &Path, timeout: &str) -> Vec<OsString> {
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
