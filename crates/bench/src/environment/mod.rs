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
//!
//! The environments live by kind: `command` (anything launched as a process: the host
//! baseline and every peer CLI), `hidden_cgroup2` (the thread crun is launched from),
//! `container` (isolab's engine in-process, one variant per isolation feature) and
//! `microvm` (isolab's VMM with its stub guest, in-process).

mod command;
mod container;
mod hidden_cgroup2;
mod microvm;

pub use crate::not_measured::NotMeasured;
pub use command::{run_argv, run_command, time_command, CommandCost, HostProcess, PeerCommand};
pub use container::{bench_bridge, container_phases, IsolabContainer, Variant};
pub use hidden_cgroup2::{hide_cgroup2_mount, HiddenCgroup2Thread};
pub use microvm::{kvm_usable, vm_phases, MicroVmStub};

use crate::schema::Scope;

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
    pub reason: NotMeasured,
}

impl Environment for Unavailable {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn scope(&self) -> Scope {
        Scope::of_environment(&self.name)
    }
    fn prepare(&mut self) -> Result<(), NotMeasured> {
        Err(self.reason.clone())
    }
    fn launch_once(&mut self, _: usize) -> Result<Sample, NotMeasured> {
        Err(self.reason.clone())
    }
}

impl Unavailable {
    /// Row `name`, not measured for `reason`.
    pub fn new(name: &str, reason: NotMeasured) -> Unavailable {
        Unavailable {
            name: name.into(),
            reason,
        }
    }
}

/// Named µs counters as a [`Sample`]'s phases.
fn named_us<const N: usize>(phases: [(&str, u64); N]) -> Vec<(String, f64)> {
    phases
        .into_iter()
        .map(|(name, us)| (name.to_string(), us as f64))
        .collect()
}
