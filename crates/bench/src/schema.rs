//! The result file: what one `isolab bench` run measured, and on what.
//!
//! A benchmark figure is only worth what you know about how it was taken. So a result file
//! holds, top to bottom:
//!
//! 1. a [`Fingerprint`] of the machine (CPU, kernel, cgroup mode, which KVM module and whether a
//!    guest's kernel mode runs natively, the peers' versions, the git revision, the date) — the
//!    same container start takes 2 ms on one host and 20 ms on another, and a microVM on a
//!    paravirtual KVM behaves nothing like one on VT-x;
//! 2. one [`Row`] per (question, environment, workload): either every raw sample plus its
//!    [`Summary`], or [`Outcome::NotMeasured`] with the reason. A row is never dropped and never
//!    estimated: "crun is not installed" is a result too;
//! 3. ratios to the host row of the same question and workload, so "near bare-metal" becomes a
//!    number.
//!
//! 4. [`Observation`]s for the claims that are not timings (which kernel a workload sees, whether
//!    root in a container can write a host file, which limits the kernel enforced): each a
//!    yes/no the machine answered, with the command and what it printed as evidence.
//!
//! Every row says *how* its figure was taken ([`Scope`]): a whole process spawned and waited
//! for, the way a user launches it, or the library inside the bench process — a "where the
//! time goes" breakdown that leaves out the launcher's own exec, argument parsing and set-up.
//! Only whole-process rows are compared across tools. Start-up rows also say whether the start
//! came after an idle gap or right after another ([`StartKind`]), because on a cgroup v1 host
//! the first cgroup move after a quiet spell pays an RCU grace period the next ones do not.
//!
//! Units live in field names (`_us`, `_ns`, `_bytes`): a reader of the JSON never has to guess.
//! Each row's samples share one unit, named by [`Row::unit`], because the questions measure
//! different things (start latency in µs, syscall cost in ns per call, memory in bytes).
//! [`SCHEMA_VERSION`] changes whenever a field changes meaning.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped when a field is added, removed or changes meaning (2: the `scaling` question; 3:
/// [`Row::scope`], [`Row::start`], [`Settings::shuffle_seed`], [`Results::observations`]).
pub const SCHEMA_VERSION: u32 = 3;

/// One whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The machine and software the figures were taken on.
    pub fingerprint: Fingerprint,
    /// How the run was configured (`--quick`, samples per row, which questions).
    pub settings: Settings,
    /// Every row, in the order the questions ran.
    pub rows: Vec<Row>,
    /// The claims answered by observation rather than timing (C5–C10), in the order checked.
    #[serde(default)]
    pub observations: Vec<Observation>,
    /// RFC 3339 UTC time the run started.
    pub started_at: String,
    /// Wall-clock length of the run.
    pub duration_s: f64,
}

/// The options the run was started with, kept so a result can be reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `--quick`: fewer samples, only the fast rows.
    pub quick: bool,
    /// Samples taken per row (before any failure cut a row short).
    pub samples_per_row: usize,
    /// The questions that ran, e.g. `["startup", "memory"]`.
    pub questions: Vec<String>,
    /// Seed of the PRNG that shuffles the environments' order in every interleaved round
    /// (`isolab bench --seed N` repeats the same orders).
    pub shuffle_seed: u64,
    /// Idle time before each cold-start sample ([`StartKind::Cold`]), in ms.
    pub cold_gap_ms: u64,
    /// Samples per cold-start row (each one costs `cold_gap_ms` of waiting).
    pub cold_samples_per_row: usize,
}

/// Which of isolab's questions a row answers (the claim ids are in [`ClaimId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// C1: launch → the workload's first instruction → exit.
    Startup,
    /// C2: launcher/VMM resident memory, the container's cgroup charge, the VMM's overhead.
    Memory,
    /// C4: the cost of one system call, and of one VM exit.
    Syscall,
    /// C3: a CPU-bound loop and a memory pass, as ratios to the host.
    Cpu,
    /// C1/C2 under load: start latency and memory with 1, 2, 4, 8 instances started at once.
    Scaling,
}

impl Question {
    /// Every question, in the order a full run asks them.
    pub const ALL: [Question; 5] = [
        Question::Startup,
        Question::Memory,
        Question::Syscall,
        Question::Cpu,
        Question::Scaling,
    ];

    /// The name used by `--only` and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Question::Startup => "startup",
            Question::Memory => "memory",
            Question::Syscall => "syscall",
            Question::Cpu => "cpu",
            Question::Scaling => "scaling",
        }
    }
}

impl std::fmt::Display for Question {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `--only` named a question that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown bench question {0:?}: choose from startup, memory, syscall, cpu, scaling")]
pub struct UnknownQuestion(pub String);

impl std::str::FromStr for Question {
    type Err = UnknownQuestion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Question::ALL
            .into_iter()
            .find(|q| q.name() == s.trim())
            .ok_or_else(|| UnknownQuestion(s.to_string()))
    }
}

/// The unit every sample of a row is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Microseconds (start latency).
    Us,
    /// Nanoseconds (per system call, per VM exit, per loop iteration).
    Ns,
    /// Bytes (resident memory, cgroup charge).
    Bytes,
    /// Bytes per second (memory bandwidth).
    BytesPerS,
    /// A plain count (instances that fit in a memory budget).
    Count,
}

impl Unit {
    /// The suffix used in column and field names.
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Us => "us",
            Unit::Ns => "ns",
            Unit::Bytes => "bytes",
            Unit::BytesPerS => "bytes_per_s",
            Unit::Count => "count",
        }
    }

    /// Whether a larger sample is better (bandwidth, density) rather than worse (time, memory).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Unit::BytesPerS | Unit::Count)
    }
}

/// How a row's figure was taken: the difference between what a user sees and where the time
/// goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A whole process spawned and waited for (`wait4`), as a user's launch: the tool's exec,
    /// argument parsing, state and set-up are all inside the figure. The host, every peer
    /// (crun, runc, bwrap, podman, docker, runsc, QEMU) and the `isolab-cli-*` rows. Only these
    /// rows are compared across tools and enter headline ratios.
    WholeProcess,
    /// isolab's library called inside the bench process (`isolab-engine-*` rows): the engine's
    /// own steps with their phase breakdown, without the CLI's process around them. A "where
    /// the time goes" view, never a launch a user sees.
    InProcess,
}

/// Prefix of every in-process row's environment name (`isolab-engine-container-ns`, …).
pub const ENGINE_PREFIX: &str = "isolab-engine-";

impl Scope {
    /// The scope an environment name implies by the naming rule: `isolab-engine-*` rows are
    /// the library in-process, every other row is a whole process. For rows that could not
    /// run (the row's [`Row::scope`] field is authoritative in a result file).
    pub fn of_environment(name: &str) -> Scope {
        if name.starts_with(ENGINE_PREFIX) {
            Scope::InProcess
        } else {
            Scope::WholeProcess
        }
    }

    /// The name used in the JSON and the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Scope::WholeProcess => "whole_process",
            Scope::InProcess => "in_process",
        }
    }
}

/// Whether a start-up sample followed an idle gap or another start.
///
/// On a cgroup v1 host, the first move of a process into a cgroup after a quiet spell waits
/// for an RCU grace period (several ms); starts right after it do not. A single `docker run`
/// from a shell sees the cold figure; a burst of starts sees the warm one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    /// Each sample after [`Settings::cold_gap_ms`] of idle time.
    Cold,
    /// Samples back to back in interleaved rounds (the order shuffled in every round).
    Warm,
}

impl StartKind {
    /// The name used in the JSON and the CSV.
    pub fn name(self) -> &'static str {
        match self {
            StartKind::Cold => "cold",
            StartKind::Warm => "warm",
        }
    }
}

/// One environment running one workload for one question.
///
/// A row is identified by (question, environment, workload, start); its [`Scope`] says how it
/// was measured. Different workloads have different names (busybox `true` exec'd in a rootfs
/// is `true`; the stub guest's exit-at-once is `stub-true`), and ratios only ever compare
/// rows of the same workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// What this row answers.
    pub question: Question,
    /// Whole process or in-process (see [`Scope`]).
    pub scope: Scope,
    /// Cold or warm start: set on start-up and scaling latency rows, `None` on every other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartKind>,
    /// Where the workload ran: `host`, `isolab-cli-container`, `isolab-engine-container-ns`,
    /// `crun`, `isolab-cli-microvm-stub`, …
    pub environment: String,
    /// What ran: `true`, `getpid`, `cpu-loop`, …
    pub workload: String,
    /// The unit of every sample and summary figure in [`Row::result`].
    pub unit: Unit,
    /// The samples, or why there are none.
    pub result: Outcome,
    /// This row's median divided by the host row's median for the same question, workload and
    /// start kind (1.0 for the host itself; absent when either side was not measured, and on
    /// in-process rows, which are not launches).
    pub ratio_to_host: Option<f64>,
    /// Where the time went, per phase name, as medians over the samples, in µs. The engines
    /// report these (isolab's clone/cgroup/rootfs/exec steps, the VMM's create/memory/vCPU/run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phases_median_us: BTreeMap<String, f64>,
    /// Anything a reader needs to interpret the row (e.g. "first touch included").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Measured, or not measured and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Every sample, in the order taken, and their summary.
    Measured {
        /// Raw samples in the row's unit.
        samples: Vec<f64>,
        /// Median, percentiles, MAD and outliers of `samples`.
        summary: Summary,
    },
    /// This environment or step could not run here.
    NotMeasured {
        /// Why, specifically (e.g. "podman not installed", "guest syscall reaches its handler
        /// in CPL3 on kvm_pvm").
        reason: String,
    },
}

impl Outcome {
    /// The summary when measured.
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Outcome::Measured { summary, .. } => Some(summary),
            Outcome::NotMeasured { .. } => None,
        }
    }
}

/// A claim of the articles isolab answers (the table is in `docs/claims.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClaimId {
    /// Containers start in seconds, VMs in minutes.
    C1,
    /// Containers use fewer resources; more of them fit.
    C2,
    /// Containers run at near bare-metal speed.
    C3,
    /// Containers reach the kernel with little overhead; VMs pay for the hypervisor.
    C4,
    /// VMs isolate better: own kernel; containers share the host kernel.
    C5,
    /// Root in a container is root on the host.
    C6,
    /// Containers are built from namespaces (+ chroot + cgroups).
    C7,
    /// cgroups limit what a process can use.
    C8,
    /// Images are copy-on-write layers; commit makes a new layer.
    C9,
    /// chroot gives a process its own root filesystem.
    C10,
}

/// What one check saw of a claim that is a fact, not a timing.
///
/// `check` is a stable id phrased as a statement (`kernel-is-host-kernel`,
/// `bind-mount-write-as-root`, …) and `outcome` says whether that statement held here. The
/// `evidence` is what a sceptical reader would want: the command run and what it printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The claim the check informs.
    pub claim: ClaimId,
    /// Stable id of the check, unique within the claim (kebab-case).
    pub check: String,
    /// Where it ran: `isolab-cli-container`, `isolab-engine-container-userns`, `gvisor`, …
    pub environment: String,
    /// The check's statement in words, so the outcome reads as a sentence.
    pub statement: String,
    /// Whether the statement held, or why it could not be checked.
    pub outcome: Finding,
    /// The commands run and what they printed (trimmed), or what was read from where.
    pub evidence: String,
    /// Figures the check took along the way, keyed by name with the unit as suffix
    /// (`start_median_us`, `layers_count`, `memory_limit_bytes`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub figures: BTreeMap<String, f64>,
}

/// The answer of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Finding {
    /// The check ran; `holds` says whether its statement was true here.
    Observed {
        /// The statement held.
        holds: bool,
    },
    /// The check could not run here.
    NotMeasured {
        /// Why, specifically.
        reason: String,
    },
}

/// The usual robust statistics of a sample set (see [`crate::stats`] for the methods).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// 50th percentile.
    pub median: f64,
    /// 10th percentile (linear interpolation).
    pub p10: f64,
    /// 90th percentile (linear interpolation).
    pub p90: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Median absolute deviation (raw, not scaled by 1.4826).
    pub mad: f64,
    /// Samples farther than 3 × 1.4826 × MAD from the median.
    pub outliers: usize,
}

/// The machine and software a run was taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpu_cores: usize,
    /// Total RAM (MemTotal).
    pub memory_total_bytes: u64,
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -v`.
    pub kernel_version: String,
    /// `unified`, `hybrid`, `legacy`, or `unknown: <why>`.
    pub cgroup_mode: String,
    /// The CPU says it runs under a hypervisor (so every figure here is nested).
    pub host_is_virtualized: bool,
    /// `kvm_intel`, `kvm_amd`, `kvm_pvm` or `none`.
    pub kvm_module: String,
    /// Whether guest kernel mode (CPL0) runs natively: `Some(false)` on a PVM host, `None` when
    /// the probe could not run.
    pub guest_cpl0_native: Option<bool>,
    /// What the CPL0 probe saw, in words.
    pub guest_cpl0_detail: String,
    /// First line of `<tool> --version` per peer, or "not installed".
    pub tools: BTreeMap<String, String>,
    /// `git rev-parse --short HEAD`, or "unknown".
    pub git_revision: String,
    /// The isolab version that wrote the file.
    pub isolab_version: String,
    /// RFC 3339 UTC time the fingerprint was taken.
    pub date: String,
    /// `/sys/kernel/rcu_expedited` is 1 (`None`: unreadable). Why it is recorded: on cgroup v1
    /// every move of a process into a cgroup waits for an RCU grace period (the writer side of
    /// the per-CPU `cgroup_threadgroup_rwsem`) unless grace periods are expedited or a
    /// hierarchy is mounted with `favordynmods`. That wait dominates a cold container start —
    /// measured on this project's host: 5.5–19 ms per start with `rcu_expedited=0` against
    /// 0.3–0.5 ms with 1, for isolab and crun alike. On cgroup v2 isolab avoids the move
    /// altogether by creating the child inside its cgroup (`clone3(CLONE_INTO_CGROUP)`).
    #[serde(default)]
    pub rcu_expedited: Option<bool>,
    /// Some cgroup hierarchy is mounted with `favordynmods` (see [`Self::rcu_expedited`]: the
    /// semaphore then stays on its slow path, so a move never waits for RCU).
    #[serde(default)]
    pub cgroup_favordynmods: bool,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_results() -> Results {
        let mut tools = BTreeMap::new();
        tools.insert("crun".to_string(), "crun version 1.8.1".to_string());
        tools.insert("podman".to_string(), "not installed".to_string());
        let mut phases = BTreeMap::new();
        phases.insert("clone_us".to_string(), 310.0);
        Results {
            schema_version: SCHEMA_VERSION,
            fingerprint: Fingerprint {
                cpu_model: "Test CPU".into(),
                cpu_cores: 2,
                memory_total_bytes: 4 << 30,
                kernel_release: "6.18.0".into(),
                kernel_version: "#1 SMP".into(),
                cgroup_mode: "hybrid".into(),
                host_is_virtualized: true,
                kvm_module: "kvm_pvm".into(),
                guest_cpl0_native: Some(false),
                guest_cpl0_detail: "slowdown 2000x".into(),
                tools,
                git_revision: "unknown".into(),
                isolab_version: "0.1.0".into(),
                date: "2026-11-22T10:00:00Z".into(),
                rcu_expedited: Some(false),
                cgroup_favordynmods: false,
            },
            settings: Settings {
                quick: true,
                samples_per_row: 3,
                questions: vec!["startup".into()],
                shuffle_seed: 42,
                cold_gap_ms: 300,
                cold_samples_per_row: 3,
            },
            rows: vec![
                Row {
                    question: Question::Startup,
                    scope: Scope::WholeProcess,
                    start: Some(StartKind::Warm),
                    environment: "host".into(),
                    workload: "true".into(),
                    unit: Unit::Us,
                    result: Outcome::Measured {
                        samples: vec![500.0, 550.0, 600.0],
                        summary: crate::stats::summarize(&[500.0, 550.0, 600.0]).unwrap(),
                    },
                    ratio_to_host: Some(1.0),
                    phases_median_us: BTreeMap::new(),
                    note: None,
                },
                Row {
                    question: Question::Startup,
                    scope: Scope::InProcess,
                    start: Some(StartKind::Warm),
                    environment: "isolab-engine-container-ns".into(),
                    workload: "true".into(),
                    unit: Unit::Us,
                    result: Outcome::Measured {
                        samples: vec![1500.0, 1600.0, 1700.0],
                        summary: crate::stats::summarize(&[1500.0, 1600.0, 1700.0]).unwrap(),
                    },
                    ratio_to_host: Some(1600.0 / 550.0),
                    phases_median_us: phases,
                    note: Some("cgroup off".into()),
                },
                Row {
                    question: Question::Startup,
                    scope: Scope::WholeProcess,
                    start: Some(StartKind::Cold),
                    environment: "podman".into(),
                    workload: "true".into(),
                    unit: Unit::Us,
                    result: Outcome::NotMeasured {
                        reason: "podman not installed".into(),
                    },
                    ratio_to_host: None,
                    phases_median_us: BTreeMap::new(),
                    note: None,
                },
            ],
            observations: vec![
                Observation {
                    claim: ClaimId::C5,
                    check: "kernel-is-host-kernel".into(),
                    environment: "isolab-cli-container".into(),
                    statement: "uname -r in the container prints the host's release".into(),
                    outcome: Finding::Observed { holds: true },
                    evidence: "$ isolab container run --rm -- uname -r\n6.18.0".into(),
                    figures: BTreeMap::new(),
                },
                Observation {
                    claim: ClaimId::C10,
                    check: "chroot-escape".into(),
                    environment: "host".into(),
                    statement: "a root process escapes a chroot".into(),
                    outcome: Finding::NotMeasured {
                        reason: "not root".into(),
                    },
                    evidence: String::new(),
                    figures: BTreeMap::from([("layers_count".to_string(), 8.0)]),
                },
            ],
            started_at: "2026-11-22T10:00:00Z".into(),
            duration_s: 12.5,
        }
    }

    #[test]
    fn results_round_trip_through_json() {
        let results = sample_results();
        let text = serde_json::to_string_pretty(&results).unwrap();
        let back: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(back, results);
        // The tagged enum keeps "why not" readable in the file.
        assert!(text.contains("\"status\": \"not_measured\""));
        assert!(text.contains("\"reason\": \"podman not installed\""));
        assert!(text.contains("\"question\": \"startup\""));
        assert!(text.contains("\"scope\": \"whole_process\""));
        assert!(text.contains("\"start\": \"cold\""));
        assert!(text.contains("\"claim\": \"C5\""));
        assert!(text.contains("\"holds\": true"));
    }

    #[test]
    fn question_names_parse_back() {
        for q in Question::ALL {
            assert_eq!(q.name().parse::<Question>().unwrap(), q);
        }
        let err = "latency".parse::<Question>().unwrap_err();
        assert!(err.to_string().contains("choose from"));
    }
}
