//! Syscall (C4) and CPU (C3) rows: the probes' loops timed as differences of two runs.

use crate::environment::{
    self as env, Environment, IsolabContainer, NotMeasured, Sample, Unavailable, Variant,
};
use crate::plan::Plan;
use crate::probes::{Probe, TRIAD_ARRAY_BYTES};
use crate::schema::{Question, Scope, Unit};
use crate::shared::Shared;
use isolab_microvm::{Figure, StubOptions, Workload, WorkloadOutcome};
use std::path::PathBuf;

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
    /// gVisor: `runsc` state dir, then the long and short probes' bundles.
    Gvisor(PathBuf, PathBuf, PathBuf),
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
/// gVisor serves each call in its user-space kernel through ptrace (tens of µs): fewer calls
/// keep a run near a second.
const GVISOR_GETPID_CALLS: u64 = 20_000;
const CPU_ITERATIONS: u64 = 20_000_000;
const MEMORY_BUFFER_BYTES: u64 = 32 << 20;
const MEMORY_PASSES: u64 = 16;
const TRIAD_PASSES: u64 = 10;

pub(crate) fn syscall_plans(shared: &Shared) -> Vec<Plan<'_>> {
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
    plans.push(gvisor_probe_plan(
        shared,
        q,
        "getpid",
        Unit::Ns,
        (
            Probe::Getpid {
                iterations: GVISOR_GETPID_CALLS,
            },
            Probe::Getpid { iterations: 0 },
        ),
        PerUnit::NsPer(GVISOR_GETPID_CALLS),
        "the same getpid loop (fewer calls: each one is served by gVisor's Sentry through \
         ptrace) in runsc --platform=ptrace, as the difference of two whole runs",
    ));
    for (name, stub) in [("pio-exit", Workload::Pio), ("mmio-exit", Workload::Mmio)] {
        plans.push(
            Plan::new(q, name, Unit::Ns, StubFigure::new(stub, None))
                .note("one guest → KVM → VMM → guest round trip; there is no host equivalent"),
        );
    }
    plans
}

pub(crate) fn cpu_plans(shared: &Shared) -> Vec<Plan<'_>> {
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
    plans.push(gvisor_probe_plan(
        shared,
        q,
        "cpu-loop",
        Unit::Ns,
        (
            Probe::Cpu {
                iterations: CPU_ITERATIONS,
            },
            Probe::Cpu { iterations: 1 },
        ),
        PerUnit::NsPer(CPU_ITERATIONS),
        "the same CPU loop in runsc --platform=ptrace, as the difference of two whole runs",
    ));
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

/// A probe pair run by gVisor on copies of the bench bundle.
fn gvisor_probe_plan<'a>(
    shared: &'a Shared,
    q: Question,
    workload: &str,
    unit: Unit,
    (long, short): (Probe, Probe),
    per: PerUnit,
    note: &str,
) -> Plan<'a> {
    let target = (|| {
        crate::gvisor::available()?;
        let fx = shared.fixture()?;
        let mut bundles = Vec::new();
        for (what, probe) in [("long", long), ("short", short)] {
            let name = format!("{workload}-gvisor-{what}");
            let (inside, _) = shared.probe(&name, probe).map_err(NotMeasured)?;
            let dir = fx.scratch().join(format!("gvisor-{name}"));
            bundles.push(crate::gvisor::bundle_running(
                &fx.bundle(),
                &fx.rootfs(),
                &dir,
                &[&inside],
            )?);
        }
        let short = bundles.pop().unwrap_or_default();
        let long = bundles.pop().unwrap_or_default();
        Ok::<_, NotMeasured>(ProbeTarget::Gvisor(fx.scratch().join("runsc"), long, short))
    })();
    match target {
        Ok(target) => Plan::new(
            q,
            workload,
            unit,
            ProbePair {
                name: "gvisor".into(),
                target,
                per,
            },
        )
        .note(note),
        Err(NotMeasured(reason)) => Plan::new(
            q,
            workload,
            unit,
            Unavailable {
                name: "gvisor".into(),
                reason,
            },
        ),
    }
}
