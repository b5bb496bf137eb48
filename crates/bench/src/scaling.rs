//! Scaling: what happens to start latency and memory when N instances start at the same time.
//!
//! One start in isolation is the best case. A host that runs many tenants starts them in
//! bursts, and then they compete: for CPUs (this machine has two), for kernel locks (creating a
//! network namespace takes a global lock; so does registering cgroups), for the VMM's KVM
//! setup. So each round here starts N instances at once — N threads released together by a
//! barrier — and records:
//!
//! - **latency**: each instance's own launch → exit time, averaged over the N of the round
//!   (the slowest and fastest go into the row's phases as `slowest_us` / `fastest_us`);
//! - **memory**: the memory the N instances used together at their peak: for containers the
//!   sum of their cgroups' peak charges plus how far this process's resident set rose above
//!   where it was before the round (`VmHWM` after a reset through `/proc/self/clear_refs`);
//!   for in-process microVMs, that rise alone (guest RAM and VMM state live in this process).
//!
//! If start-up were free of contention the latency would stay flat with N until N exceeds the
//! CPUs, then grow linearly; the memory would grow exactly linearly. The rows show how far
//! each engine is from that.

use crate::environment::{Environment, HiddenCgroup2Thread, IsolabContainer, NotMeasured, Sample};
use std::ffi::OsString;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// The concurrency levels a run asks for.
pub const LEVELS: [usize; 4] = [1, 2, 4, 8];

/// What the row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Mean per-instance launch → exit time, µs.
    Latency,
    /// Peak bytes of the N instances together.
    Memory,
}

/// What is started N at a time.
pub enum Target<'a> {
    /// A prepared isolab container row, shared by the rows of every level.
    Container(Arc<IsolabContainer<'a>>),
    /// isolab's stub microVM, in this process.
    MicroVm(isolab_microvm::StubOptions),
    /// A command line spawned from N plain threads (isolab's CLI): instance `i` of round `r`.
    /// (With these extra environment variables.)
    Process(
        Box<dyn Fn(usize, usize) -> Vec<OsString> + Sync + 'a>,
        Vec<(OsString, OsString)>,
    ),
    /// A command line from N hidden-cgroup2 threads (crun), made in `prepare`.
    Command {
        /// argv for instance `i` of round `r`.
        argv: Box<dyn Fn(usize, usize) -> Vec<OsString> + Sync + 'a>,
        /// One launcher thread per concurrent instance.
        threads: Vec<HiddenCgroup2Thread>,
    },
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Container(_) => "Container",
            Target::MicroVm(_) => "MicroVm",
            Target::Process(..) => "Process",
            Target::Command { .. } => "Command",
        })
    }
}

/// N instances of one target per launch.
pub struct Concurrent<'a> {
    /// Row name.
    pub name: String,
    /// How many start at once.
    pub n: usize,
    /// Latency or memory.
    pub measure: Measure,
    /// What starts.
    pub target: Target<'a>,
}

impl std::fmt::Debug for Concurrent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Concurrent")
            .field("name", &self.name)
            .field("n", &self.n)
            .field("measure", &self.measure)
            .finish()
    }
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS (Linux ≥ 4.0).
fn reset_peak_rss() -> Result<(), NotMeasured> {
    std::fs::write("/proc/self/clear_refs", "5").map_err(NotMeasured::io(
        "resetting VmHWM through /proc/self/clear_refs",
    ))
}

fn status_bytes(key: &str) -> Result<u64, NotMeasured> {
    let text = std::fs::read_to_string("/proc/self/status")
        .map_err(NotMeasured::io("reading /proc/self/status"))?;
    crate::density::kb_field(&text, key)
        .ok_or_else(|| NotMeasured::NoReading(format!("no {key} in /proc/self/status")))
}

/// One instance's result: its latency (µs) and the memory its cgroup peaked at, if any.
type One = Result<(f64, u64), NotMeasured>;

impl Concurrent<'_> {
    fn one(&self, round: usize, i: usize, barrier: &Barrier) -> One {
        barrier.wait();
        match &self.target {
            Target::Container(c) => {
                let id = format!(
                    "bench-scale-{}-{}-{}-{round}-{i}",
                    std::process::id(),
                    self.n,
                    self.measure as u8
                );
                let (us, outcome) = c.run_as(&id)?;
                let peak = outcome
                    .cgroup_stats
                    .and_then(|s| s.memory_peak_bytes.or(s.memory_current_bytes))
                    .unwrap_or(0);
                Ok((us, peak))
            }
            Target::MicroVm(options) => {
                let t = Instant::now();
                let report = isolab_microvm::boot_stub(isolab_microvm::Workload::True, *options)
                    .map_err(NotMeasured::microvm)?;
                std::hint::black_box(report);
                Ok((t.elapsed().as_secs_f64() * 1e6, 0))
            }
            Target::Process(argv, envs) => {
                let argv = argv(round, i);
                let mut cmd = std::process::Command::new(&argv[0]);
                cmd.args(&argv[1..]).envs(envs.iter().cloned());
                crate::environment::run_command(&mut cmd).map(|cost| (cost.wall_us, 0))
            }
            Target::Command { argv, threads } => {
                threads[i].run(argv(round, i)).map(|cost| (cost.wall_us, 0))
            }
        }
    }
}

impl Environment for Concurrent<'_> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn scope(&self) -> crate::schema::Scope {
        match self.target {
            Target::Command { .. } | Target::Process(..) => crate::schema::Scope::WholeProcess,
            Target::Container(_) | Target::MicroVm(_) => crate::schema::Scope::InProcess,
        }
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        match &mut self.target {
            Target::Command { threads, .. } => {
                if self.measure == Measure::Memory {
                    return Err(NotMeasured::NotApplicable(
                        "a peer's containers live in the peer's own cgroups, which this bench \
                         does not read",
                    ));
                }
                while threads.len() < self.n {
                    threads.push(HiddenCgroup2Thread::start()?);
                }
                Ok(())
            }
            Target::MicroVm(_) => crate::environment::kvm_usable(),
            Target::Process(..) if self.measure == Measure::Memory => {
                Err(NotMeasured::NotApplicable(
                    "a whole process's memory is measured by the memory question (GNU time), \
                     not by this process's resident set",
                ))
            }
            Target::Container(_) | Target::Process(..) => Ok(()),
        }
    }
    fn launch_once(&mut self, round: usize) -> Result<Sample, NotMeasured> {
        let barrier = Barrier::new(self.n);
        if self.measure == Measure::Memory {
            reset_peak_rss()?;
        }
        let rss_before = status_bytes("VmRSS")?;
        let results: Vec<One> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.n)
                .map(|i| {
                    let barrier = &barrier;
                    let this = &*self;
                    scope.spawn(move || this.one(round, i, barrier))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(NotMeasured::Misbehaved("a launcher thread panicked".into()))
                    })
                })
                .collect()
        });
        let peak_rss = status_bytes("VmHWM")?;
        let mut latencies = Vec::with_capacity(self.n);
        let mut cgroup_peaks = 0;
        for r in results {
            let (us, peak) = r?;
            latencies.push(us);
            cgroup_peaks += peak;
        }
        match self.measure {
            Measure::Latency => {
                let max = latencies.iter().copied().fold(f64::MIN, f64::max);
                let min = latencies.iter().copied().fold(f64::MAX, f64::min);
                Ok(Sample {
                    value: latencies.iter().sum::<f64>() / latencies.len() as f64,
                    phases_us: vec![("slowest_us".into(), max), ("fastest_us".into(), min)],
                })
            }
            Measure::Memory => Ok(Sample::value(
                (cgroup_peaks + peak_rss.saturating_sub(rss_before)) as f64,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_resets_and_follows_a_burst() {
        reset_peak_rss().unwrap();
        let before = status_bytes("VmRSS").unwrap();
        let burst = vec![1u8; 32 << 20];
        std::hint::black_box(&burst);
        drop(burst);
        let peak = status_bytes("VmHWM").unwrap();
        assert!(peak >= before + (24 << 20), "before {before}, peak {peak}");
        reset_peak_rss().unwrap();
        assert!(status_bytes("VmHWM").unwrap() < peak);
    }

    #[test]
    fn concurrent_stub_vms_give_one_latency_per_round() {
        if std::fs::File::open("/dev/kvm").is_err() {
            eprintln!("skipping: /dev/kvm cannot be opened");
            return;
        }
        let mut env = Concurrent {
            name: "isolab-engine-microvm-stub".into(),
            n: 2,
            measure: Measure::Latency,
            target: Target::MicroVm(isolab_microvm::StubOptions::default()),
        };
        env.prepare().unwrap();
        let s = env.launch_once(0).unwrap();
        let phase = |name: &str| s.phases_us.iter().find(|(k, _)| k == name).unwrap().1;
        let (slowest, fastest) = (phase("slowest_us"), phase("fastest_us"));
        assert!(fastest > 0.0 && fastest <= s.value && s.value <= slowest);
    }
}
