//! Syscall (C4) and CPU (C3) rows: the probes' loops timed as differences of two runs.
//!
//! A process's start-up would swamp a loop of system calls, so each row runs two programs
//! that differ only in the loop's count and divides the difference of their times by the
//! work the loop did. The same bytes run on the host, in isolab's containers and in gVisor;
//! the microVM stub runs the identical loop in guest user mode and reports its own figure.

use crate::environment::{self as env, Environment, IsolabContainer, NotMeasured, Sample};
use crate::plan::Plan;
use crate::probe_loops::{self, ProbeLoop, Work};
use crate::probes::Probe;
use crate::schema::{Question, Scope, Unit};
use crate::shared::Shared;
use isolab_microvm::{Figure, StubOptions, Workload, WorkloadOutcome};
use std::path::PathBuf;

/// Where a probe pair runs.
enum ProbeTarget<'a> {
    Host(PathBuf, PathBuf),
    Container(Box<IsolabContainer<'a>>, Box<IsolabContainer<'a>>),
    /// gVisor: `runsc` state dir, then the long and short probes' bundles.
    Gvisor(PathBuf, PathBuf, PathBuf),
}

/// `(t(long) − t(short))` converted to the row's unit: see [`crate::probes`].
struct ProbePair<'a> {
    name: String,
    target: ProbeTarget<'a>,
    per: Work,
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
            ProbeTarget::Gvisor(state, l, s) => {
                let (bundle, what) = if long {
                    (l, "probe-long")
                } else {
                    (s, "probe-short")
                };
                let id = crate::gvisor::sandbox_id(what, i);
                env::run_argv(&crate::gvisor::run_argv(state, bundle, &id), None).map(|c| c.wall_us)
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
            ProbeTarget::Host(..) | ProbeTarget::Gvisor(..) => Scope::WholeProcess,
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
            return Err(NotMeasured::LoopTooShort {
                long_us: long,
                short_us: short,
            });
        }
        Ok(Sample::value(match self.per {
            Work::Iterations(n) => delta_us * 1000.0 / n as f64,
            Work::Bytes(bytes) => bytes as f64 / (delta_us / 1e6),
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
        let report =
            isolab_microvm::boot_stub(self.workload, options).map_err(NotMeasured::microvm)?;
        let figure = match report.outcome {
            WorkloadOutcome::Measured { figure } => figure,
            WorkloadOutcome::NotSupportedHere { reason } => {
                return Err(NotMeasured::GuestUnsupported(reason))
            }
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
            other => {
                return Err(NotMeasured::NoReading(format!(
                    "unexpected stub figure {other:?}"
                )))
            }
        };
        Ok(Sample::value(value))
    }
}

/// A loop's rows: where it runs, gVisor's pair (a loop it finishes in about a second) with
/// its note, and the note on the host and container rows.
#[derive(Debug, Clone, Copy)]
struct ProbeRows {
    probe: ProbeLoop,
    gvisor: Option<(Probe, Work, &'static str)>,
    note: Option<&'static str>,
}

/// gVisor serves each call in its user-space kernel through ptrace (tens of µs): fewer calls
/// keep a run near a second.
const GVISOR_GETPID_CALLS: u64 = 20_000;

const GETPID_ROWS: ProbeRows = ProbeRows {
    probe: probe_loops::GETPID,
    gvisor: Some((
        Probe::Getpid {
            iterations: GVISOR_GETPID_CALLS,
        },
        Work::Iterations(GVISOR_GETPID_CALLS),
        "the same getpid loop (fewer calls: each one is served by gVisor's Sentry through \
         ptrace) in runsc --platform=ptrace, as the difference of two whole runs",
    )),
    note: None,
};

const CPU_ROWS: [ProbeRows; 3] = [
    ProbeRows {
        probe: probe_loops::CPU_LOOP,
        gvisor: Some((
            probe_loops::CPU_LOOP.long,
            probe_loops::CPU_LOOP.work,
            "the same CPU loop in runsc --platform=ptrace, as the difference of two whole runs",
        )),
        note: None,
    },
    ProbeRows {
        probe: probe_loops::MEMORY_PASS,
        gvisor: None,
        note: Some(
            "warm read-modify-write passes (inc qword) over 32 MiB; see `triad` for STREAM's \
             figure",
        ),
    },
    ProbeRows {
        probe: probe_loops::TRIAD,
        gvisor: None,
        note: Some(
            "STREAM triad a = b + 3.0*c over 3 x 128 MiB f64 arrays (SSE2), 24 bytes per \
             element per pass as STREAM counts",
        ),
    },
];

/// The row's unit for a loop's work.
fn unit_of(work: Work) -> Unit {
    match work {
        Work::Iterations(_) => Unit::Ns,
        Work::Bytes(_) => Unit::BytesPerS,
    }
}

/// getpid on the host, in containers (± seccomp), in the stub guest and in gVisor; then the
/// VM exits, which have no host equivalent.
pub(crate) fn syscall_plans(shared: &Shared) -> Vec<Plan<'_>> {
    let q = Question::Syscall;
    let mut plans = probe_rows(shared, q, &GETPID_ROWS);
    for (name, stub) in [("pio-exit", Workload::Pio), ("mmio-exit", Workload::Mmio)] {
        plans.push(
            Plan::new(q, name, Unit::Ns, StubFigure::new(stub, None))
                .note("one guest → KVM → VMM → guest round trip; there is no host equivalent"),
        );
    }
    plans
}

/// A CPU loop, a memory pass and STREAM's triad, each wherever it can run.
pub(crate) fn cpu_plans(shared: &Shared) -> Vec<Plan<'_>> {
    CPU_ROWS
        .iter()
        .flat_map(|rows| probe_rows(shared, Question::Cpu, rows))
        .collect()
}

/// Host and container rows for a probe, then the microVM stub's and gVisor's.
fn probe_rows<'a>(shared: &'a Shared, q: Question, rows: &ProbeRows) -> Vec<Plan<'a>> {
    let p = rows.probe;
    let (w, unit) = (p.workload, unit_of(p.work));
    let paths = shared
        .probe(&format!("{w}-long"), p.long)
        .and_then(|l| Ok((l, shared.probe(&format!("{w}-short"), p.short)?)));
    let mut plans = Vec::new();
    let host = paths
        .clone()
        .map(|((_, long), (_, short))| ProbeTarget::Host(long, short));
    plans.push(pair_plan(q, &p, "host", p.work, host));
    for &v in p.variants {
        let pair = paths.clone().and_then(|((long, _), (short, _))| {
            let container = |inside: &str, probe: Probe| {
                shared
                    .isolab_container(v, &[inside])
                    .map(|c| Box::new(c.with_memory_limit(probe.container_memory_limit_bytes())))
            };
            Ok(ProbeTarget::Container(
                container(&long, p.long)?,
                container(&short, p.short)?,
            ))
        });
        plans.push(pair_plan(q, &p, v.name(), p.work, pair));
    }
    if let Some(note) = rows.note {
        for plan in plans.iter_mut() {
            plan.note = Some(note.into());
        }
    }
    let (stub, iterations) = p.stub;
    plans.push(
        Plan::new(q, w, unit, StubFigure::new(stub, Some(iterations)))
            .note("the same loop in isolab's stub guest (guest user mode, CPL3)"),
    );
    if let Some((long, work, note)) = rows.gvisor {
        plans.push(match gvisor_target(shared, w, long, p.short) {
            Ok(target) => pair_plan(q, &p, "gvisor", work, Ok(target)).note(note),
            Err(reason) => Plan::not_measured(q, w, unit, "gvisor", reason),
        });
    }
    plans
}

/// A probe pair's row on `target`, or the row not measured.
fn pair_plan<'a>(
    q: Question,
    probe: &ProbeLoop,
    name: &str,
    per: Work,
    target: Result<ProbeTarget<'a>, NotMeasured>,
) -> Plan<'a> {
    let (w, unit) = (probe.workload, unit_of(probe.work));
    match target {
        Ok(target) => Plan::new(
            q,
            w,
            unit,
            ProbePair {
                name: name.into(),
                target,
                per,
            },
        ),
        Err(reason) => Plan::not_measured(q, w, unit, name, reason),
    }
}

/// gVisor's probe pair: copies of the bench bundle running the long and the short probe.
fn gvisor_target<'a>(
    shared: &Shared,
    workload: &str,
    long: Probe,
    short: Probe,
) -> Result<ProbeTarget<'a>, NotMeasured> {
    crate::gvisor::available()?;
    let fx = shared.fixture()?;
    let bundle = |what: &str, probe: Probe| {
        let name = format!("{workload}-gvisor-{what}");
        let (inside, _) = shared.probe(&name, probe)?;
        let dir = fx.scratch().join(format!("gvisor-{name}"));
        crate::gvisor::bundle_running(&fx.bundle(), &fx.rootfs(), &dir, &[&inside])
    };
    let long = bundle("long", long)?;
    let short = bundle("short", short)?;
    Ok(ProbeTarget::Gvisor(fx.scratch().join("runsc"), long, short))
}
