//! What a lab is, and the result it produces: steps a student could retype, and checks that
//! each end in PASS, FAIL or SKIP with the reason.

use crate::{LabError, Session};
use serde::Serialize;

/// One lab: a rung on the ladder of isolation, with its explanation and its run function.
#[derive(Debug, Clone, Copy)]
pub struct Lab {
    /// Position on the ladder, 1-based; `isolab lab run 3` selects by it.
    pub number: u8,
    /// Short kebab-case name; `isolab lab run pid-namespace` selects by it.
    pub name: &'static str,
    /// One line for `isolab lab list`.
    pub summary: &'static str,
    /// The claims (C1..C10) this lab puts to the test.
    pub claims: &'static [&'static str],
    /// Whether it needs root; the others run rootless through a user namespace.
    pub needs_root: bool,
    /// The kernel concept behind the lab, and what to look for (`--explain` prints this).
    pub background: &'static str,
    /// Runs the steps and records the checks.
    pub run: fn(&mut Session) -> Result<(), LabError>,
}

/// The outcome of one check, or of a whole lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// The expected observation was made.
    Pass,
    /// It was not (the reason says what was seen instead).
    Fail,
    /// This host cannot run it (the reason says which fact of the host).
    Skip,
}

impl Verdict {
    /// A lab fails if any check fails; it passes if at least one check passed; it is skipped
    /// when nothing could be checked.
    pub fn combine(checks: &[Check]) -> Verdict {
        if checks.iter().any(|c| c.verdict == Verdict::Fail) {
            Verdict::Fail
        } else if checks.iter().any(|c| c.verdict == Verdict::Pass) {
            Verdict::Pass
        } else {
            Verdict::Skip
        }
    }

    /// The word printed for it.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        }
    }
}

/// A command the lab ran, as a student would type it, and what it printed.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The command line, shell-quoted.
    pub command: String,
    /// Its exit status (None if killed by a signal).
    pub exit_code: Option<i32>,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
    /// Wall-clock time of the whole process.
    pub duration_ms: f64,
}

/// One expected observation and whether it was made.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short kebab-case name, stable for grading scripts.
    pub name: String,
    /// PASS, FAIL or SKIP.
    pub verdict: Verdict,
    /// What was observed (and for SKIP, the fact of the host that prevents it).
    pub reason: String,
}

/// The machine-readable result of one lab (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct LabResult {
    pub number: u8,
    pub name: String,
    pub claims: Vec<String>,
    pub verdict: Verdict,
    /// Why the lab stopped early, if it did.
    pub error: Option<String>,
    pub duration_ms: f64,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
}

/// Quotes a word for a POSIX shell only when it needs it, so commands read as typed.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line from its words, as a student would type it.
pub fn command_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}
