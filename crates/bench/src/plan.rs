//! Taking the samples: every planned row prepared, warmed up, then sampled in interleaved rounds
//! whose order is shuffled, warm (back to back) and, for start-up rows, cold (after an idle gap).
//!
//! - **Setup outside the timing.** Each environment's `prepare` builds specs, compiles filters,
//!   leases networks once; then one untimed warm-up launch fills the page cache and the
//!   kernel's slab caches.
//! - **Interleaved and shuffled.** Sample *i* of every environment is taken before sample
//!   *i + 1* of any, so slow drift spreads over all rows; and each round runs in a fresh
//!   random order ([`crate::order`]), so no row always pays for coming first.
//! - **Warm and cold apart.** Warm samples follow one another at once (a burst of starts).
//!   Cold samples each wait [`ColdRounds::gap`] first, the way a single `docker run` from a
//!   shell meets an idle machine: on cgroup v1 that start pays an RCU grace period the warm
//!   ones skip. They become two rows, told apart by [`StartKind`].
//! - **Nothing estimated.** An environment that cannot run, or fails part-way, becomes a
//!   `not_measured` row with the reason.

use crate::environment::{Environment, NotMeasured, Sample, Unavailable};
use crate::order::Rng;
use crate::schema::{Outcome, Question, Row, Scope, StartKind, Unit};
use crate::stats;
use std::collections::BTreeMap;
use std::time::Duration;

/// The index passed to the untimed warm-up launch (apart from every sample's index, so ids
/// built from it never collide).
pub const WARM_UP_INDEX: usize = usize::MAX - 1;

/// One planned row: where it runs, what, in which unit.
pub struct Plan<'a> {
    /// What the row answers.
    pub question: Question,
    /// What runs (rows are only compared within one workload).
    pub workload: String,
    /// The unit of every sample.
    pub unit: Unit,
    /// Printed beside the row and kept in the file.
    pub note: Option<String>,
    /// At most this many samples (slow rows such as a Linux boot), whatever the question's.
    pub samples_cap: Option<usize>,
    /// `Some(Warm)` on start-up latency rows (the interleaved samples are back to back).
    pub start: Option<StartKind>,
    /// Also take cold samples (each after an idle gap) into a second row.
    pub cold: bool,
    /// Where it runs.
    pub env: Box<dyn Environment + 'a>,
}

impl<'a> Plan<'a> {
    /// A row of `question` running `workload` in `env`.
    pub fn new(question: Question, workload: &str, unit: Unit, env: impl Environment + 'a) -> Self {
        Plan::boxed(question, workload, unit, Box::new(env))
    }

    /// [`Plan::new`] for an environment already boxed.
    pub fn boxed(
        question: Question,
        workload: &str,
        unit: Unit,
        env: Box<dyn Environment + 'a>,
    ) -> Self {
        Plan {
            question,
            workload: workload.to_string(),
            unit,
            note: None,
            samples_cap: None,
            start: None,
            cold: false,
            env,
        }
    }

    /// A row of `question` for environment `name` that cannot run here, with the reason.
    pub fn not_measured(
        question: Question,
        workload: &str,
        unit: Unit,
        name: &str,
        reason: NotMeasured,
    ) -> Self {
        Plan::new(question, workload, unit, Unavailable::new(name, reason))
    }

    /// Sets the note printed beside the row.
    pub fn note(mut self, note: &str) -> Self {
        self.note = Some(note.to_string());
        self
    }

    /// At most `cap` samples for this row.
    pub fn samples_cap(mut self, cap: usize) -> Self {
        self.samples_cap = Some(cap.max(1));
        self
    }

    /// A start-up latency row: warm samples, plus a cold row when `cold`.
    pub fn startup(mut self, cold: bool) -> Self {
        self.start = Some(StartKind::Warm);
        self.cold = cold;
        self
    }
}

impl std::fmt::Debug for Plan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("question", &self.question)
            .field("environment", &self.env.name())
            .field("workload", &self.workload)
            .finish()
    }
}

/// Cold samples: how many per row and how long the machine idles before each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColdRounds {
    /// Samples per cold row.
    pub samples: usize,
    /// Idle time before each one.
    pub gap: Duration,
}

/// How many samples one question takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rounds {
    /// Warm (back-to-back) samples per row.
    pub warm: usize,
    /// Cold samples for the plans that ask for them.
    pub cold: Option<ColdRounds>,
}

/// Progress on stderr: one `\r`-rewritten line.
#[derive(Debug)]
struct Progress {
    enabled: bool,
    done: usize,
    total: usize,
}

impl Progress {
    fn tick(&mut self, question: Question, env: &str, kind: &str) {
        self.done += 1;
        if self.enabled {
            eprint!(
                "\r\x1b[K[{question}] {}/{} {env}{kind}",
                self.done.min(self.total),
                self.total
            );
        }
    }
    fn finish(&self) {
        if self.enabled {
            eprint!("\r\x1b[K");
        }
    }
}

/// The samples of one row so far, or why it stopped.
type Collected = Result<Vec<Sample>, NotMeasured>;

/// Prepares every plan, warms each up once, then takes the rounds (shuffled by `rng`).
pub fn measure(
    question: Question,
    mut plans: Vec<Plan<'_>>,
    rounds: Rounds,
    rng: &mut Rng,
    progress: bool,
) -> Vec<Row> {
    let mut warm: Vec<Collected> = plans.iter_mut().map(|p| prepare(p, rounds.warm)).collect();
    let cold_samples = |p: &Plan<'_>| match rounds.cold {
        Some(c) if p.cold => c.samples,
        _ => 0,
    };
    let mut bar = Progress {
        enabled: progress,
        done: 0,
        total: plans
            .iter()
            .zip(&warm)
            .filter(|(_, s)| s.is_ok())
            .map(|(p, _)| cap(p, rounds.warm) + cold_samples(p))
            .sum(),
    };
    for i in 0..rounds.warm {
        for k in rng.permutation(plans.len()) {
            let (plan, st) = (&mut plans[k], &mut warm[k]);
            if i < cap(plan, rounds.warm) {
                bar.tick(question, &plan.env.name(), "");
                take(plan, st, i, cap(plan, rounds.warm));
            }
        }
    }
    let mut cold: Vec<Option<Collected>> = plans
        .iter()
        .zip(&warm)
        .map(|(p, w)| match (cold_samples(p), w) {
            (0, _) => None,
            (_, Err(e)) => Some(Err(e.clone())),
            (n, Ok(_)) => Some(Ok(Vec::with_capacity(n))),
        })
        .collect();
    if let Some(c) = rounds.cold {
        for j in 0..c.samples {
            for k in rng.permutation(plans.len()) {
                let Some(st) = cold[k].as_mut() else { continue };
                if st.is_err() {
                    continue;
                }
                bar.tick(question, &plans[k].env.name(), " (cold)");
                std::thread::sleep(c.gap);
                take(&mut plans[k], st, rounds.warm + j, c.samples);
            }
        }
    }
    bar.finish();
    let mut rows = Vec::new();
    for ((plan, w), c) in plans.into_iter().zip(warm).zip(cold) {
        rows.push(to_row(&plan, plan.start, w));
        if let Some(c) = c {
            rows.push(to_row(&plan, Some(StartKind::Cold), c));
        }
    }
    rows
}

fn cap(plan: &Plan<'_>, samples: usize) -> usize {
    plan.samples_cap.unwrap_or(samples).min(samples)
}

/// `prepare` and one untimed warm-up launch.
fn prepare(plan: &mut Plan<'_>, samples: usize) -> Collected {
    plan.env.prepare()?;
    plan.env.launch_once(WARM_UP_INDEX)?;
    Ok(Vec::with_capacity(samples))
}

/// One sample into `st`; a failure ends the row with the reason.
fn take(plan: &mut Plan<'_>, st: &mut Collected, index: usize, of: usize) {
    let Ok(collected) = st else { return };
    match plan.env.launch_once(index) {
        Ok(s) => collected.push(s),
        Err(e) => {
            *st = Err(NotMeasured::AtSample {
                sample: collected.len() + 1,
                of,
                source: Box::new(e),
            })
        }
    }
}

/// A row's result: the summary of its figures, or why it has none.
pub(crate) fn outcome(figures: Result<Vec<f64>, NotMeasured>) -> Outcome {
    match figures {
        Ok(samples) => match stats::summarize(&samples) {
            Some(summary) => Outcome::Measured { samples, summary },
            None => Outcome::NotMeasured {
                reason: "no valid samples".into(),
            },
        },
        Err(reason) => Outcome::NotMeasured {
            reason: reason.to_string(),
        },
    }
}

/// The row of `plan`'s samples (medians of each phase alongside).
fn to_row(plan: &Plan<'_>, start: Option<StartKind>, st: Collected) -> Row {
    let mut phases_median_us = BTreeMap::new();
    let result = match st {
        Ok(collected) => {
            let values: Vec<f64> = collected.iter().map(|s| s.value).collect();
            let mut by_phase: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for s in &collected {
                for (k, v) in &s.phases_us {
                    by_phase.entry(k.clone()).or_default().push(*v);
                }
            }
            for (k, v) in by_phase {
                if let Some(m) = stats::median(&v) {
                    phases_median_us.insert(k, m);
                }
            }
            outcome(Ok(values))
        }
        Err(reason) => outcome(Err(reason)),
    };
    Row {
        question: plan.question,
        scope: plan.env.scope(),
        start,
        environment: plan.env.name(),
        workload: plan.workload.clone(),
        unit: plan.unit,
        result,
        ratio_to_host: None,
        phases_median_us,
        note: plan.note.clone(),
    }
}

/// Whether a row may be divided by the host row: launches of in-process engines are not
/// launches a user sees, so their start-up and scaling rows get no ratio. (Syscall and CPU rows
/// of in-process containers time the workload's own loop, which is comparable.)
pub fn ratio_applies(row: &Row) -> bool {
    !(row.scope == Scope::InProcess
        && matches!(row.question, Question::Startup | Question::Scaling))
}

/// `ratio_to_host = median / median(host)` within each (question, workload, start kind).
pub fn fill_ratios(rows: &mut [Row]) {
    type Key = (Question, String, Option<StartKind>);
    let hosts: BTreeMap<Key, f64> = rows
        .iter()
        .filter(|r| r.environment == "host")
        .filter_map(|r| {
            let key = (r.question, r.workload.clone(), r.start);
            Some((key, r.result.summary()?.median))
        })
        .collect();
    for row in rows.iter_mut() {
        let key = (row.question, row.workload.clone(), row.start);
        row.ratio_to_host = match (row.result.summary(), hosts.get(&key)) {
            (Some(s), Some(host)) if ratio_applies(row) => stats::ratio(s.median, *host),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::Unavailable;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn row(env: &str, scope: Scope, workload: &str, median: Option<f64>) -> Row {
        Row {
            question: Question::Startup,
            scope,
            start: Some(StartKind::Warm),
            environment: env.into(),
            workload: workload.into(),
            unit: Unit::Us,
            result: match median {
                Some(m) => Outcome::Measured {
                    samples: vec![m],
                    summary: stats::summarize(&[m]).unwrap(),
                },
                None => Outcome::NotMeasured { reason: "x".into() },
            },
            ratio_to_host: None,
            phases_median_us: BTreeMap::new(),
            note: None,
        }
    }

    #[test]
    fn ratios_are_per_workload_and_whole_process_only() {
        let w = Scope::WholeProcess;
        let mut rows = vec![
            row("host", w, "true", Some(500.0)),
            row("crun", w, "true", Some(7000.0)),
            row("podman", w, "true", None),
            row("isolab-cli-microvm-stub", w, "stub-true", Some(8000.0)),
            row(
                "isolab-engine-container-ns",
                Scope::InProcess,
                "true",
                Some(2000.0),
            ),
        ];
        let mut cold_host = row("host", w, "true", Some(1000.0));
        cold_host.start = Some(StartKind::Cold);
        let mut cold_crun = row("crun", w, "true", Some(9000.0));
        cold_crun.start = Some(StartKind::Cold);
        rows.extend([cold_host, cold_crun]);
        fill_ratios(&mut rows);
        let ratios: Vec<_> = rows.iter().map(|r| r.ratio_to_host).collect();
        assert_eq!(
            ratios,
            vec![
                Some(1.0),
                Some(14.0),
                None,
                None,
                None,
                Some(1.0),
                Some(9.0)
            ]
        );
    }

    /// An environment whose n-th launch returns n, failing at `fail_at`.
    struct Counting {
        name: &'static str,
        fail_at: Option<usize>,
        log: Rc<RefCell<Vec<(&'static str, usize)>>>,
    }

    impl Environment for Counting {
        fn name(&self) -> String {
            self.name.into()
        }
        fn launch_once(&mut self, i: usize) -> Result<Sample, NotMeasured> {
            if i != WARM_UP_INDEX {
                self.log.borrow_mut().push((self.name, i));
            }
            if Some(i) == self.fail_at {
                return Err(NotMeasured::Misbehaved("boom".into()));
            }
            Ok(Sample::value(i as f64))
        }
    }

    fn counting(
        name: &'static str,
        fail_at: Option<usize>,
        log: &Rc<RefCell<Vec<(&'static str, usize)>>>,
    ) -> Plan<'static> {
        Plan::new(
            Question::Startup,
            "true",
            Unit::Us,
            Counting {
                name,
                fail_at,
                log: log.clone(),
            },
        )
    }

    #[test]
    fn measure_interleaves_shuffles_and_keeps_failures_as_rows() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let plans = vec![
            counting("a", None, &log),
            counting("b", Some(1), &log),
            Plan::new(
                Question::Startup,
                "true",
                Unit::Us,
                Unavailable::new("c", NotMeasured::ToolMissing { tool: "c", fix: "" }),
            ),
        ];
        let rounds = Rounds {
            warm: 3,
            cold: None,
        };
        let rows = measure(Question::Startup, plans, rounds, &mut Rng::new(5), false);
        // Every sample i of every live row comes before any sample i + 1.
        let log = log.borrow();
        let indices: Vec<usize> = log.iter().map(|(_, i)| *i).collect();
        assert!(indices.windows(2).all(|w| w[0] <= w[1]), "{log:?}");
        assert_eq!(log.iter().filter(|(n, _)| *n == "a").count(), 3);
        assert_eq!(log.iter().filter(|(n, _)| *n == "b").count(), 2);
        assert_eq!(
            rows[0].result.summary().map(|s| (s.n, s.median)),
            Some((3, 1.0))
        );
        assert_eq!(
            rows[1].result,
            Outcome::NotMeasured {
                reason: "failed at sample 2 of 3: boom".into()
            }
        );
        assert_eq!(
            rows[2].result,
            Outcome::NotMeasured {
                reason: "c not installed".into()
            }
        );
    }

    #[test]
    fn the_same_seed_replays_the_same_order() {
        let run = |seed| {
            let log = Rc::new(RefCell::new(Vec::new()));
            let plans = ["a", "b", "c", "d"]
                .into_iter()
                .map(|n| counting(n, None, &log))
                .collect();
            let rounds = Rounds {
                warm: 6,
                cold: None,
            };
            measure(Question::Startup, plans, rounds, &mut Rng::new(seed), false);
            let order: Vec<&str> = log.borrow().iter().map(|(n, _)| *n).collect();
            order
        };
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
        // Not the fixed a b c d order in every round.
        assert_ne!(run(11), ["a", "b", "c", "d"].repeat(6));
    }

    #[test]
    fn cold_rows_come_after_warm_ones_with_their_own_samples() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let plans = vec![
            counting("a", None, &log).startup(true),
            counting("b", None, &log).startup(false),
        ];
        let rounds = Rounds {
            warm: 2,
            cold: Some(ColdRounds {
                samples: 3,
                gap: Duration::from_millis(1),
            }),
        };
        let rows = measure(Question::Startup, plans, rounds, &mut Rng::new(1), false);
        let kinds: Vec<_> = rows
            .iter()
            .map(|r| (r.environment.as_str(), r.start))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("a", Some(StartKind::Warm)),
                ("a", Some(StartKind::Cold)),
                ("b", Some(StartKind::Warm)),
            ]
        );
        // Cold launches get indices after the warm ones: ids never collide.
        assert_eq!(
            rows[1].result.summary().map(|s| (s.n, s.min, s.max)),
            Some((3, 2.0, 4.0))
        );
    }
}
