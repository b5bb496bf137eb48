//! Verdicts: each claim judged from one machine's results, with the numbers behind it and the
//! caveat that applies on that machine.
//!
//! The rules are written down here, in one place, so a reader can disagree with a threshold
//! rather than with a chart. Two principles hold throughout:
//!
//! - **Like with like.** Launches (start-up, memory of a launcher) are compared on
//!   whole-process rows only: a launcher spawned and waited for, as a user runs it. isolab's
//!   in-process engine rows explain where the time goes; they never stand in for a launch. The
//!   system-call and CPU rows time the workload's own loop (a long run minus a short one), so
//!   how the environment was launched cancels out and their ratios to the host are fair
//!   whatever the row's scope.
//! - **The host matters.** A microVM on VT-x/AMD-V runs its guest kernel natively; on a
//!   paravirtual KVM (kvm_pvm) the guest's kernel mode is emulated. The same numbers then mean
//!   different things, and every verdict touched by that says so in its caveat.
//!
//! Nothing here draws: the charts read the same rows in [`crate::charts`].

mod observed;
#[cfg(test)]
mod tests;
mod timed;

use crate::claims::{Claim, CLAIMS};
use isolab_bench::schema::{Fingerprint, Results};

/// A claim's verdict on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The numbers bear the claim out.
    Supported,
    /// The numbers contradict the claim.
    Refuted,
    /// True in some cases and false in others; the text says on what it depends.
    Depends(String),
    /// Nothing here answers it; the text says why.
    NotMeasured(String),
}

impl Verdict {
    /// The word shown in the table.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Refuted => "refuted",
            Verdict::Depends(_) => "depends",
            Verdict::NotMeasured(_) => "not measured",
        }
    }

    /// The "on what" or "why not", when there is one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Verdict::Depends(s) | Verdict::NotMeasured(s) => Some(s),
            _ => None,
        }
    }
}

/// One claim judged on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Which claim.
    pub claim: &'static Claim,
    /// The verdict.
    pub verdict: Verdict,
    /// The figures it rests on, each a short readable line.
    pub numbers: Vec<String>,
    /// What a reader must keep in mind on this machine (empty when nothing applies).
    pub caveat: String,
}

/// What kind of virtualization the results were taken on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostVirt {
    /// Guest kernel mode runs natively (VT-x/AMD-V: kvm_intel, kvm_amd).
    Native,
    /// Guest kernel mode is emulated (a paravirtual KVM such as kvm_pvm).
    EmulatedKernelMode,
    /// No usable KVM, or the probe could not tell.
    Unknown,
}

impl HostVirt {
    /// Read from the fingerprint: the CPL0 probe's answer, never the module name alone.
    pub fn of(fp: &Fingerprint) -> HostVirt {
        match fp.guest_cpl0_native {
            Some(true) => HostVirt::Native,
            Some(false) => HostVirt::EmulatedKernelMode,
            None => HostVirt::Unknown,
        }
    }
}

/// The caveat every VM-dependent verdict carries on a host whose guest kernel mode is
/// emulated.
pub(crate) fn emulation_caveat(fp: &Fingerprint) -> Option<String> {
    (HostVirt::of(fp) == HostVirt::EmulatedKernelMode).then(|| {
        format!(
            "This host's KVM ({}) emulates guest kernel mode: guest user-mode code runs \
             natively, but anything a guest kernel does is thousands of times slower than on \
             VT-x/AMD-V, so VM figures that include guest kernel work are upper bounds.",
            fp.kvm_module
        )
    })
}

/// Every claim judged on one machine's results, in id order.
pub fn judge_all(results: &Results) -> Vec<Judgement> {
    CLAIMS
        .iter()
        .map(|claim| {
            let (verdict, numbers, caveat) = match claim.id {
                "C1" => timed::c1_startup(results),
                "C2" => timed::c2_memory(results),
                "C3" => timed::c3_cpu(results),
                "C4" => timed::c4_syscalls(results),
                id => observed::judge(results, id),
            };
            Judgement {
                claim,
                verdict,
                numbers,
                caveat,
            }
        })
        .collect()
}

/// A verdict, the numbers it rests on, its caveat.
pub(crate) type Parts = (Verdict, Vec<String>, String);
