//! Shared by the criterion benches: the bench engine's fixture and environments, plus a
//! criterion [`Measurement`] in bytes for the memory group.
//!
//! The rootfs, the OCI bundle, the probe programs and the environments are the
//! `isolab-bench` crate's (the same code `isolab bench` runs), so `cargo bench` and
//! `isolab bench` measure identical things. Heavy setup — building the rootfs, preparing a
//! container row, compiling a seccomp filter — happens here, outside any timing.
//!
//! Criterion measures time by default. A memory figure is a size, so the `memory` group runs
//! with [`Bytes`]: `iter_custom` returns the summed bytes of its N launches and criterion
//! divides, exactly as it does with durations, and prints KiB/MiB instead of ms.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;
use isolab_bench::environment::{IsolabContainer, Variant};
use isolab_cgroups::CgroupRoot;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use isolab_bench::fixture::{container_skip_reason, which, Fixture};

/// Hides /sys/fs/cgroup/unified for this thread and the processes it starts (crun refuses a
/// hybrid cgroup layout otherwise); call it from the bench's main thread before any crun row.
pub fn hide_cgroup2_mount_for_crun() {
    if let Err(e) = isolab_bench::environment::hide_cgroup2_mount() {
        eprintln!("crun rows may fail here: {e}");
    }
}

/// Runs a command with all stdio closed, panicking with its stderr if it fails.
pub fn run_quiet(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawning a peer");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixture, the cgroup root and a way to make prepared container rows — or why not.
#[derive(Debug)]
pub struct Containers {
    /// Rootfs + bundle (+ probes written into it).
    pub fixture: Fixture,
    /// The host's cgroup hierarchies.
    pub cgroups: CgroupRoot,
}

impl Containers {
    /// Everything the container rows need, or the reason they cannot run here.
    pub fn new() -> Result<Containers, String> {
        if let Some(reason) = container_skip_reason() {
            return Err(reason);
        }
        Ok(Containers {
            fixture: Fixture::new().map_err(|e| format!("building the bench rootfs: {e}"))?,
            cgroups: CgroupRoot::detect().map_err(|e| format!("detecting cgroups: {e}"))?,
        })
    }

    /// A prepared isolab container row running `args` (paths inside the rootfs) under a memory
    /// limit of `memory_limit_bytes`.
    pub fn row(
        &self,
        variant: Variant,
        args: &[&str],
        memory_limit_bytes: u64,
    ) -> IsolabContainer<'_> {
        let mut spec = isolab_container::oci::load_bundle(&self.fixture.bundle())
            .expect("loading the bench bundle");
        spec.args = args.iter().map(|a| a.to_string()).collect();
        let mut row = IsolabContainer::new(
            variant,
            spec,
            self.fixture.rootfs(),
            self.fixture.scratch(),
            Some(&self.cgroups),
        )
        .with_memory_limit(memory_limit_bytes);
        use isolab_bench::environment::Environment;
        row.prepare().expect("preparing the container row");
        row
    }

    /// Writes `probe` into the rootfs; returns (path inside the container, path on the host).
    pub fn probe(&self, name: &str, probe: isolab_bench::probes::Probe) -> (String, PathBuf) {
        let host = self.fixture.rootfs().join("probes").join(name);
        probe.write_to(&host).expect("writing a probe");
        (format!("/probes/{name}"), host)
    }
}

/// The `isolab` binary next to the bench executable (target/<profile>/isolab), or `$ISOLAB_EXE`.
pub fn isolab_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ISOLAB_EXE") {
        return Some(PathBuf::from(p));
    }
    // A bench runs as target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("isolab");
    candidate.is_file().then_some(candidate)
}

/// Criterion measurement in bytes: values come from `iter_custom`, never from a clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bytes;

impl Measurement for Bytes {
    type Intermediate = ();
    type Value = u64;
    fn start(&self) {}
    fn end(&self, _: ()) -> u64 {
        0
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &BytesFormatter
    }
}

struct BytesFormatter;

impl ValueFormatter for BytesFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical >= (1 << 20) as f64 {
            ((1 << 20) as f64, "MiB")
        } else if typical >= 1024.0 {
            (1024.0, "KiB")
        } else {
            (1.0, "B")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        // A size per element has no meaningful rate; show the raw figure.
        let _ = values;
        "B"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "B"
    }
}

/// The microVM stub's own figure for `workload` over `units` iterations, as a duration
/// (ns per unit × units): the guest times its loop itself, so the VM's boot is not in it.
pub fn stub_duration(workload: isolab_microvm::Workload, units: u64) -> Result<Duration, String> {
    use isolab_microvm::{Figure, StubOptions, WorkloadOutcome};
    let report = isolab_microvm::boot_stub(
        workload,
        StubOptions {
            iterations: Some(units),
            memory_bytes: isolab_bench::probes::stub_memory_bytes(workload),
            timeout: Duration::from_secs(60),
            ..StubOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let ns = match report.outcome {
        WorkloadOutcome::NotSupportedHere { reason } => return Err(reason),
        WorkloadOutcome::Measured { figure } => match figure {
            Figure::Syscall { ns_per_call, .. } => ns_per_call * units as f64,
            Figure::Exit { ns_per_exit, .. } => ns_per_exit * units as f64,
            Figure::Cpu {
                ns_per_iteration, ..
            } => ns_per_iteration * units as f64,
            Figure::Memory {
                warm_bytes_per_s,
                buffer_bytes,
                ..
            } => buffer_bytes as f64 * units as f64 / warm_bytes_per_s * 1e9,
            other => return Err(format!("unexpected stub figure {other:?}")),
        },
    };
    Ok(Duration::from_nanos(ns as u64))
}

/// One probe workload in one criterion group: the host, isolab container variants and the
/// microVM stub, each iteration being `long` minus `short` (start-up and exit cancel; see
/// `isolab_bench::probes`), rows `BenchmarkId::new(environment, workload)`.
#[derive(Debug)]
pub struct ProbeBench<'a> {
    /// Row workload name.
    pub workload: &'a str,
    /// The probe with the loop.
    pub long: isolab_bench::probes::Probe,
    /// The same probe with (almost) no loop.
    pub short: isolab_bench::probes::Probe,
    /// What one iteration does, for criterion's rate column.
    pub throughput: Throughput,
    /// Container variants to run it in.
    pub variants: &'a [Variant],
    /// The stub guest's workload and iteration count for the same loop.
    pub stub: Option<(isolab_microvm::Workload, u64)>,
}

impl ProbeBench<'static> {
    /// The rows of one of the bench's probe loops, with criterion's rate in its work.
    pub fn of(probe: &isolab_bench::probe_loops::ProbeLoop) -> Self {
        use isolab_bench::probe_loops::Work;
        ProbeBench {
            workload: probe.workload,
            long: probe.long,
            short: probe.short,
            throughput: match probe.work {
                Work::Iterations(n) => Throughput::Elements(n),
                Work::Bytes(n) => Throughput::Bytes(n),
            },
            variants: probe.variants,
            stub: Some(probe.stub),
        }
    }
}

impl ProbeBench<'_> {
    /// Adds the rows to `group`.
    pub fn run(
        &self,
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        containers: &Result<Containers, String>,
    ) {
        use criterion::BenchmarkId;
        group.throughput(self.throughput.clone());
        let dir = tempfile::tempdir().expect("temp dir");
        let (long, short) = (dir.path().join("long"), dir.path().join("short"));
        self.long.write_to(&long).expect("writing a probe");
        self.short.write_to(&short).expect("writing a probe");
        group.bench_function(BenchmarkId::new("host", self.workload), |b| {
            b.iter_custom(|n| {
                (0..n)
                    .map(|_| {
                        let t = Instant::now();
                        run_quiet(&mut Command::new(&long));
                        let l = t.elapsed();
                        let t = Instant::now();
                        run_quiet(&mut Command::new(&short));
                        l.saturating_sub(t.elapsed())
                    })
                    .sum()
            })
        });
        match containers {
            Err(reason) => eprintln!("{}: container rows not measured: {reason}", self.workload),
            Ok(cs) => {
                let (long_in, _) = cs.probe(&format!("{}-long", self.workload), self.long);
                let (short_in, _) = cs.probe(&format!("{}-short", self.workload), self.short);
                for &v in self.variants {
                    let mut l = cs.row(v, &[&long_in], self.long.container_memory_limit_bytes());
                    let mut s = cs.row(v, &[&short_in], self.short.container_memory_limit_bytes());
                    group.bench_function(BenchmarkId::new(v.name(), self.workload), |b| {
                        b.iter_custom(|n| {
                            (0..n as usize)
                                .map(|i| {
                                    let run = |c: &mut IsolabContainer<'_>| {
                                        let (_, out) = c.run_once(i).expect("container run");
                                        Duration::from_micros(out.phases.run_us)
                                    };
                                    run(&mut l).saturating_sub(run(&mut s))
                                })
                                .sum()
                        })
                    });
                }
            }
        }
        if let Some((workload, units)) = self.stub {
            match stub_duration(workload, units) {
                Err(reason) => eprintln!(
                    "{}: isolab-microvm-stub not measured here: {reason}",
                    self.workload
                ),
                Ok(_) => {
                    group.bench_function(
                        BenchmarkId::new("isolab-engine-microvm-stub", self.workload),
                        |b| {
                            b.iter_custom(|n| {
                                (0..n)
                                    .map(|_| stub_duration(workload, units).expect("stub VM"))
                                    .sum()
                            })
                        },
                    );
                }
            }
        }
    }
}
