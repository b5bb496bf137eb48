//! C5–C10: the claims answered by observation — a statement checked on this machine, true or
//! false, with the commands and output as evidence.
//!
//! Each check's statement is phrased as what it tests ("a root process escapes a chroot"), so
//! whether its holding supports the claim differs per check: [`RULES`] says which way each
//! known check points. A claim is supported when every weighed check points its way, refuted
//! when none does, and "depends" when they disagree — then the environments or checks that
//! disagree are what it depends on (with and without a user namespace, chroot vs pivot_root).

use super::{Parts, Verdict};
use isolab_bench::schema::{Finding, Observation, Results};

/// A known check and which way it points.
struct Rule {
    claim: &'static str,
    /// The check id, or a prefix of it ending in `-`.
    check: &'static str,
    /// The claim is borne out when the check's statement holds (`true`) or fails (`false`).
    supports_when_holds: bool,
}

const fn rule(claim: &'static str, check: &'static str, supports_when_holds: bool) -> Rule {
    Rule {
        claim,
        check,
        supports_when_holds,
    }
}

/// The checks this report knows how to weigh.
const RULES: &[Rule] = &[
    // C5: containers share the host's kernel, a VM's guest runs its own.
    rule("C5", "kernel-is-host-kernel", true),
    rule("C5", "guest-kernel-is-own", true),
    rule("C5", "guest-sees-own-kernel", true),
    rule("C5", "host-processes-visible", true),
    // C6: container root acts as host root on a bind-mounted root-owned file.
    rule("C6", "bind-mount-write-as-root", true),
    rule("C6", "root-writes-host-file", true),
    // C7: the kernel's namespaces are exactly the six named (holds → supports).
    rule("C7", "six-namespaces-suffice", true),
    rule("C7", "kernel-offers-only-six", true),
    rule("C7", "uses-namespaces-beyond-six", false),
    rule("C7", "kernel-offers-more-than-six", false),
    // C8: each limit enforced.
    rule("C8", "oom-kill-at-limit", true),
    rule("C8", "cpu-throttled", true),
    rule("C8", "fork-bomb-stopped", true),
    rule("C8", "freezer-", true),
    rule("C8", "pids-limit", true),
    rule("C8", "memory-limit", true),
    // C9: copy-on-write layers and commit.
    rule("C9", "writes-stay-in-upper", true),
    rule("C9", "lower-unchanged", true),
    rule("C9", "commit-makes-layer", true),
    rule("C9", "commit-", true),
    // C10: chroot gives a root of its own that holds; the escape working says it does not.
    // (The pivot_root escape is the contrast, shown with the evidence but not weighed.)
    rule("C10", "chroot-escape", false),
];

fn direction(claim: &str, check: &str) -> Option<bool> {
    RULES
        .iter()
        .find(|r| {
            r.claim == claim
                && (r.check == check || (r.check.ends_with('-') && check.starts_with(r.check)))
        })
        .map(|r| r.supports_when_holds)
}

/// What a reader of each claim should keep in mind, whatever this machine showed.
fn caveat(claim: &str) -> &'static str {
    match claim {
        "C5" => {
            "Separate kernels are a fact observed here; how much harder a hypervisor is to \
                 escape than a kernel's namespaces is not something a benchmark measures."
        }
        "C6" => {
            "Without a user namespace container root is host uid 0, held back only by \
                 capabilities, seccomp and what is mounted in; with one it maps to an \
                 unprivileged host uid."
        }
        "C7" => {
            "Which namespaces exist depends on the kernel version; runtimes switch the root \
                 with pivot_root in a mount namespace rather than chroot."
        }
        "C8" => {
            "The controllers and their file names differ between cgroup v1 and v2; the \
                 checks ran on this host's layout (see the fingerprint)."
        }
        "C9" => {
            "Layering is how Docker and OCI images are stored (overlayfs here); a VM disk \
                 image can be layered too (qcow2 backing files)."
        }
        "C10" => {
            "chroot only changes where path lookups start; a process with CAP_SYS_CHROOT \
                  can leave it. pivot_root in a mount namespace does not have that hole."
        }
        _ => "",
    }
}

fn outcome_word(o: &Observation) -> String {
    match &o.outcome {
        Finding::Observed { holds: true } => "yes".into(),
        Finding::Observed { holds: false } => "no".into(),
        Finding::NotMeasured { reason } => format!("not measured ({reason})"),
    }
}

/// Judges claim `id` from the results' observations.
pub(super) fn judge(results: &Results, id: &str) -> Parts {
    let caveat = caveat(id).to_string();
    let obs: Vec<&Observation> = results
        .observations
        .iter()
        .filter(|o| format!("{:?}", o.claim) == id)
        .collect();
    let numbers: Vec<String> = obs
        .iter()
        .map(|o| format!("{}: {} — {}", o.environment, o.statement, outcome_word(o)))
        .collect();
    if obs.is_empty() {
        let why = "this results file has no observation for it: it was written by an `isolab \
                   bench` without the observation checks, or they were not selected"
            .to_string();
        return (Verdict::NotMeasured(why), numbers, caveat);
    }
    // (observation, whether it bears the claim out) for every observed check with a rule.
    let weighed: Vec<(&Observation, bool)> = obs
        .iter()
        .filter_map(|o| match o.outcome {
            Finding::Observed { holds } => Some((*o, direction(id, &o.check)? == holds)),
            Finding::NotMeasured { .. } => None,
        })
        .collect();
    if weighed.is_empty() {
        let reasons: Vec<String> = obs
            .iter()
            .filter_map(|o| match &o.outcome {
                Finding::NotMeasured { reason } => Some(format!("{}: {reason}", o.check)),
                Finding::Observed { .. } => None,
            })
            .collect();
        let why = if reasons.is_empty() {
            "the checks recorded are not ones this report knows how to weigh: read them below"
                .to_string()
        } else {
            reasons.join("; ")
        };
        return (Verdict::NotMeasured(why), numbers, caveat);
    }
    let (pro, con): (Vec<_>, Vec<_>) = weighed.iter().partition(|(_, s)| *s);
    let verdict = if con.is_empty() {
        Verdict::Supported
    } else if pro.is_empty() {
        Verdict::Refuted
    } else {
        let side = |v: &[&(&Observation, bool)]| {
            v.iter()
                .map(|(o, _)| format!("{} ({})", o.environment, o.check))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Verdict::Depends(format!(
            "on the environment: borne out in {}; not in {}",
            side(&pro),
            side(&con)
        ))
    };
    (refine(id, verdict, &obs), numbers, caveat)
}

/// Where a plain verdict would say less than the checks do.
fn refine(id: &str, verdict: Verdict, obs: &[&Observation]) -> Verdict {
    // A chroot does give a process its own root for path lookups; the escape shows it is not
    // a boundary against root. That is "depends on privileges", not a flat "refuted".
    if id == "C10" && verdict == Verdict::Refuted {
        let pivot = obs
            .iter()
            .find(|o| o.check.starts_with("pivot-root"))
            .map(|o| match o.outcome {
                Finding::Observed { holds: false } => {
                    "; pivot_root in a mount namespace held against the same escape"
                }
                Finding::Observed { holds: true } => "; pivot_root was escaped too",
                Finding::NotMeasured { .. } => "",
            });
        return Verdict::Depends(format!(
            "on privileges: a chroot sets where path lookups start, but a root process inside \
             left it here{}",
            pivot.unwrap_or("")
        ));
    }
    verdict
}
