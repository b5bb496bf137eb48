//! C5–C10: the claims answered by observation — a statement checked on this machine, true or
//! false, with the commands and output as evidence.
//!
//! Each check's statement is phrased as what it tests ("a root process escapes a chroot"), so
//! whether its holding supports the claim differs per check: [`RULES`] says which way each
//! known check points. A claim is supported when every weighed check points its way, refuted
//! when none does, and "depends" when they disagree — then the environments or checks that
//! disagree are what it depends on (with and without a user namespace, chroot vs pivot_root).

use super::{Parts, Verdict};
use crate::rows::{self, Kind};
use isolab_bench::schema::{Finding, Observation, Results};

/// A known check and which way it points.
struct Rule {
    claim: &'static str,
    /// The check id, or a prefix of it ending in `-`.
    check: &'static str,
    /// Which environments the rule covers.
    env: Env,
    /// The claim is borne out when the check's statement holds (`Some(true)`) or fails
    /// (`Some(false)`); `None`: a contrast, shown with the evidence but not weighed.
    supports_when_holds: Option<bool>,
}

/// The environments a rule covers.
#[derive(Clone, Copy)]
enum Env {
    Any,
    Kind(Kind),
    Named(&'static str),
}

const fn rule(claim: &'static str, check: &'static str, env: Env, supports: Option<bool>) -> Rule {
    Rule {
        claim,
        check,
        env,
        supports_when_holds: supports,
    }
}

const YES: Option<bool> = Some(true);
const NO: Option<bool> = Some(false);
const CONTRAST: Option<bool> = None;

/// The checks this report knows how to weigh, first match wins.
const RULES: &[Rule] = &[
    // C5: a container answers with the host's kernel, a VM's guest with its own. A sandbox
    // such as gVisor is a container runtime with a kernel of its own: it disagrees with
    // "containers share the host's kernel", and the verdict then says so.
    rule(
        "C5",
        "kernel-is-host-kernel",
        Env::Kind(Kind::Container),
        YES,
    ),
    rule("C5", "kernel-is-host-kernel", Env::Kind(Kind::Sandbox), YES),
    rule("C5", "kernel-is-host-kernel", Env::Kind(Kind::Vm), NO),
    // C6: container root writing a root-owned host file through a bind mount.
    rule(
        "C6",
        "root-writes-host-file-through-bind-mount",
        Env::Any,
        YES,
    ),
    // C7: "six namespaces" is incomplete when the kernel offers more or a container uses more;
    // the six themselves being used is context.
    rule("C7", "kernel-offers-more-than-six-namespaces", Env::Any, NO),
    rule(
        "C7",
        "default-container-has-own-cgroup-namespace",
        Env::Any,
        NO,
    ),
    rule(
        "C7",
        "default-container-has-own-time-namespace",
        Env::Any,
        NO,
    ),
    rule("C7", "default-container-has-own-", Env::Any, CONTRAST),
    // C8: each limit enforced.
    rule("C8", "memory-limit-oom-kills", Env::Any, YES),
    rule("C8", "cpu-quota-throttles", Env::Any, YES),
    rule("C8", "pids-limit-stops-fork-bomb", Env::Any, YES),
    rule("C8", "freezer-stops-and-resumes", Env::Any, YES),
    // C9: copy-on-write layers and commit.
    rule("C9", "writes-stay-in-upper-layer", Env::Any, YES),
    rule("C9", "commit-adds-one-layer", Env::Any, YES),
    // C10: the escape from a chroot'ed container says a chroot is no boundary against root;
    // the same escape against pivot_root (isolab's default) is the contrast.
    rule(
        "C10",
        "chroot-escape-reads-host-file",
        Env::Named("isolab-cli-container-chroot"),
        NO,
    ),
    rule("C10", "chroot-escape-reads-host-file", Env::Any, CONTRAST),
];

/// The rule for an observation: `None` when no rule knows it, `Some(None)` for a contrast.
fn direction(claim: &str, o: &Observation) -> Option<Option<bool>> {
    RULES
        .iter()
        .find(|r| {
            let check = &o.check;
            let env_ok = match r.env {
                Env::Any => true,
                Env::Kind(k) => rows::kind(&o.environment) == k,
                Env::Named(n) => o.environment == n,
            };
            r.claim == claim
                && env_ok
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
            Finding::Observed { holds } => Some((*o, direction(id, o)?? == holds)),
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
    // "A container is six namespaces" claims a complete list: one namespace beyond the six,
    // offered by the kernel or used by a container, refutes it; a namespace a container does
    // not use (time, by default) says nothing for it.
    if id == "C7" && matches!(verdict, Verdict::Depends(_)) {
        return Verdict::Refuted;
    }
    // A chroot does give a process its own root for path lookups; the escape shows it is not
    // a boundary against root. That is "depends on privileges", not a flat "refuted".
    if id == "C10" && verdict == Verdict::Refuted {
        let pivot = obs
            .iter()
            .find(|o| direction(id, o) == Some(CONTRAST))
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
