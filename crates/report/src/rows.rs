//! Which rows are which: the questions the report asks of a results file before it judges or
//! draws anything.
//!
//! Two distinctions matter for a fair page. *Scope*: a whole-process row times what a user
//! sees (spawn the launcher, wait for it to exit), an in-process row times isolab's library
//! inside the bench process — a breakdown of where the time goes, never a launch to compare
//! with crun's. *Kind*: whether the environment is the host, a container (isolab's or a
//! peer's), a user-space kernel sandbox, or a virtual machine.

use isolab_bench::schema::{Outcome, Question, Results, Row, StartKind, Summary};

pub use isolab_bench::schema::Scope;

/// What kind of isolation an environment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// No isolation: the baseline every ratio divides by.
    Host,
    /// Namespaces + cgroups on the host kernel (isolab, crun, runc, bwrap, podman, docker).
    Container,
    /// A user-space kernel between the workload and the host's (gVisor).
    Sandbox,
    /// A guest with its own kernel on KVM (isolab's microVM, QEMU).
    Vm,
}

/// The row's scope, as the results file records it.
pub fn scope(row: &Row) -> Scope {
    row.scope
}

/// The environment's kind, from its name.
pub fn kind(environment: &str) -> Kind {
    let e = environment;
    if e == "host" {
        Kind::Host
    } else if e.contains("microvm") || e.starts_with("qemu") || e.contains("-vm") {
        Kind::Vm
    } else if e.contains("gvisor") || e.contains("runsc") {
        Kind::Sandbox
    } else {
        Kind::Container
    }
}

/// "cold" or "warm" for start-up rows that say which.
pub fn start_label(row: &Row) -> Option<&'static str> {
    row.start.map(StartKind::name)
}

/// Whether the row's starts each followed an idle gap (what one `docker run` sees).
pub fn is_cold(row: &Row) -> bool {
    start_label(row) == Some("cold")
}

/// Samples and summary of a measured row.
pub fn measured(row: &Row) -> Option<(&[f64], &Summary)> {
    match &row.result {
        Outcome::Measured { samples, summary } => Some((samples, summary)),
        Outcome::NotMeasured { .. } => None,
    }
}

/// Why a row was not measured.
pub fn reason(row: &Row) -> Option<&str> {
    match &row.result {
        Outcome::NotMeasured { reason } => Some(reason),
        Outcome::Measured { .. } => None,
    }
}

/// The row's median, when measured.
pub fn median(row: &Row) -> Option<f64> {
    measured(row).map(|(_, s)| s.median)
}

/// Rows of one question, in file order.
pub fn of(results: &Results, question: Question) -> impl Iterator<Item = &Row> {
    results.rows.iter().filter(move |r| r.question == question)
}

/// The first row for an environment and workload.
pub fn find<'a>(
    results: &'a Results,
    question: Question,
    environment: &str,
    workload: &str,
) -> Option<&'a Row> {
    of(results, question).find(|r| r.environment == environment && r.workload == workload)
}

/// The reasons the rows of a question were not measured, or a line saying the question did
/// not run: what a chart with no data shows instead.
pub fn absent_reason(results: &Results, question: Question, what: &str) -> String {
    let reasons: Vec<String> = of(results, question)
        .filter_map(|r| reason(r).map(|why| format!("{}: {why}", r.environment)))
        .collect();
    if reasons.is_empty() {
        if results
            .settings
            .questions
            .iter()
            .any(|q| q == question.name())
        {
            format!("the run asked `{question}` but recorded no {what}")
        } else {
            format!(
                "the run did not ask `{question}` (it asked: {}); run `isolab bench` without --only",
                results.settings.questions.join(", ")
            )
        }
    } else {
        let mut unique = reasons;
        unique.dedup();
        unique.truncate(4);
        unique.join("; ")
    }
}

/// A value with a readable unit: µs below 1 ms, ms below 1 s, else s.
pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// Bytes as MiB (or KiB below 1 MiB).
pub fn fmt_bytes(b: f64) -> String {
    if b < (1 << 20) as f64 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / (1 << 20) as f64)
    }
}

/// Nanoseconds, switching to µs from 10 µs on.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 10_000.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(kind("host"), Kind::Host);
        assert_eq!(kind("crun"), Kind::Container);
        assert_eq!(kind("isolab-cli-container"), Kind::Container);
        assert_eq!(kind("isolab-microvm-stub"), Kind::Vm);
        assert_eq!(kind("isolab-cli-microvm-stub"), Kind::Vm);
        assert_eq!(kind("qemu-microvm"), Kind::Vm);
        assert_eq!(kind("gvisor-ptrace"), Kind::Sandbox);
    }

    #[test]
    fn units_read_naturally() {
        assert_eq!(fmt_us(640.0), "640 µs");
        assert_eq!(fmt_us(6_200.0), "6.2 ms");
        assert_eq!(fmt_us(12_500_000.0), "12.50 s");
        assert_eq!(fmt_bytes(4.2 * 1048576.0), "4.2 MiB");
        assert_eq!(fmt_ns(140.0), "140 ns");
        assert_eq!(fmt_ns(24_700.0), "24.7 µs");
    }
}
