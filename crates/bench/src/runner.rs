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
//! - **Interleaved, shuffled, warm and cold.** [`crate::plan`] takes the samples: round by
//!   round, in a fresh seeded order each round, and for start-up also after idle gaps.
//! - **One file per question.** `startup`, `memory`, `probe_plans` (syscall and CPU)
//!   and `scaling_plans` build the rows; this module only runs them in order.
//! - **Nothing estimated.** An environment that cannot run, or fails part-way, becomes a
//!   `not_measured` row with the reason; a row's figures are only ever its own samples.

use crate::density::rows::density_rows;
use crate::memory::memory_plans;
use crate::order::{self, Rng};
use crate::plan::{self, ColdRounds, Rounds};
use crate::probe_plans::{cpu_plans, syscall_plans};
use crate::scaling_plans::scaling_plans;
use crate::schema::{Observation, Question, Results, Row, Settings, SCHEMA_VERSION};
use crate::shared::Shared;
use crate::startup::startup_plans;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The name under which the observations appear in [`Settings::questions`] and `--only`.
pub const OBSERVE: &str = "observe";

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
    /// Also run the C5–C10 observations (after the questions).
    pub observe: bool,
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
            observe: true,
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
            // Each cold sample idles first: few in --quick, which must stay under 2 minutes.
            (None, true) => 3,
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
        "no questions to ask: pass at least one of startup, memory, syscall, cpu, scaling, observe to --only"
    )]
    NoQuestions,
}

/// Runs the matrix and returns the results (it does not write any file).
pub fn run(config: &RunConfig) -> Result<Results, BenchError> {
    if config.questions.is_empty() && !config.observe {
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
        rows.extend(ask(&shared, config, question, &mut rng));
    }
    plan::fill_ratios(&mut rows);
    let observations = if config.observe {
        observe(&shared, config.progress)
    } else {
        Vec::new()
    };
    Ok(Results {
        schema_version: SCHEMA_VERSION,
        fingerprint,
        settings: settings(config, seed),
        rows,
        observations,
        started_at,
        duration_s: started.elapsed().as_secs_f64(),
    })
}

/// One question's rows: its plans measured in interleaved rounds (and, for memory, the
/// density fills after them).
fn ask(shared: &Shared, config: &RunConfig, question: Question, rng: &mut Rng) -> Vec<Row> {
    let plans = match question {
        Question::Startup => startup_plans(shared, config)
            .into_iter()
            .map(|p| {
                // Every start-up row is warm; the quick ones get a cold row too (a Linux
                // boot takes far longer than any idle gap).
                let cold = p.samples_cap.is_none();
                p.startup(cold)
            })
            .collect(),
        Question::Memory => memory_plans(shared),
        Question::Syscall => syscall_plans(shared),
        Question::Cpu => cpu_plans(shared),
        Question::Scaling => scaling_plans(shared),
    };
    let mut rows = plan::measure(
        question,
        plans,
        config.rounds_for(question),
        rng,
        config.progress,
    );
    if question == Question::Memory {
        rows.extend(density_rows(shared, config));
    }
    rows
}

/// The C5–C10 observations, in claim order.
fn observe(shared: &Shared, progress: bool) -> Vec<Observation> {
    if progress {
        eprint!("\r\x1b[K[observe] C5–C10: kernels, root, namespaces, limits, layers, chroot");
    }
    let mut found =
        crate::observe::observe_all(shared.observe_target().as_ref().map_err(Clone::clone));
    found.push(shared.layer_start_cost());
    // Claim order; checks of one claim stay in the order they ran.
    found.sort_by_key(|o| o.claim);
    if progress {
        eprint!("\r\x1b[K");
    }
    found
}

/// How the run was configured, as the results file records it.
fn settings(config: &RunConfig, seed: u64) -> Settings {
    let mut questions: Vec<String> = config.questions.iter().map(|q| q.name().into()).collect();
    if config.observe {
        questions.push(OBSERVE.into());
    }
    Settings {
        quick: config.quick,
        samples_per_row: config.samples.unwrap_or_else(|| {
            config
                .questions
                .first()
                .map(|q| config.samples_for(*q))
                .unwrap_or(0)
        }),
        questions,
        shuffle_seed: seed,
        cold_gap_ms: config.cold_gap.as_millis() as u64,
        cold_samples_per_row: config.cold_samples(),
    }
}
