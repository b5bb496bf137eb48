//! isolab-bench: the same workloads, measured side by side on a host process, isolab's
//! containers, the peer runtimes and isolab's microVMs, in one reproducible run.
//!
//! Read in this order: [`schema`] (what a result file holds), [`stats`] (how samples become
//! a median and percentiles), [`fingerprint`] (what machine it was), [`export`] (JSON/CSV).
//! Then how a run is taken: [`runner`] (the questions in order), [`environment`] (where a
//! workload runs), [`plan`] (interleaved, shuffled sampling) and [`not_measured`] (why a row
//! has no figure).

pub mod density;
pub mod docker;
pub mod environment;
pub mod export;
pub mod fingerprint;
pub mod fixture;
pub mod gvisor;
pub mod linux_boot;
mod memory;
pub mod not_measured;
pub mod observe;
mod oci_runtime;
pub mod order;
pub mod plan;
mod podman;
pub mod probe_loops;
mod probe_plans;
pub mod probes;
pub mod runner;
pub mod scaling;
mod scaling_plans;
pub mod schema;
mod shared;
mod startup;
pub mod stats;
pub mod vmm_compare;

pub use runner::{run, BenchError, RunConfig};
pub use schema::{
    ClaimId, Finding, Fingerprint, Observation, Outcome, Question, Results, Row, Scope, Settings,
    StartKind, Summary, Unit,
};
