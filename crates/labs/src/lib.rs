//! Classroom labs: the ladder of isolation, one rung per lab, each run for real on this machine.
//!
//! A process shares everything with its neighbours. chroot gives it its own root directory
//! (but not a sealed one); namespaces give it its own view of PIDs, hostnames, IPC objects,
//! mounts, network and user ids; cgroups give it a budget; capabilities and seccomp take away
//! what root could ask of the kernel; an application kernel (gVisor) answers its system calls
//! in user space; a microVM gives it a kernel of its own on virtual hardware. Each lab shows
//! one rung: it explains what to look for, runs the commands a student could type (through the
//! `isolab` binary itself), and then checks the observation it predicted — PASS, FAIL, or SKIP
//! with the fact of this host that prevents it. Every lab works in its own temporary directory
//! and `ISOLAB_HOME` and removes everything it made, also on failure and Ctrl-C.

mod error;
mod framework;
pub mod interrupt;
mod labs;
mod session;

pub use error::LabError;
pub use framework::{command_line, shell_quote, Check, Lab, LabResult, Step, Verdict};
pub use session::{mounts_below, Options, Session};

use std::time::Instant;

/// Every lab, in ladder order.
pub fn all() -> &'static [Lab] {
    labs::ALL
}

/// Finds a lab by number (`3`, `03`) or name (`uts-ipc`).
pub fn find(query: &str) -> Result<&'static Lab, LabError> {
    let by_number = query.parse::<u8>().ok();
    all()
        .iter()
        .find(|lab| Some(lab.number) == by_number || lab.name == query)
        .ok_or_else(|| LabError::UnknownLab {
            query: query.to_string(),
            available: all()
                .iter()
                .map(|l| format!("{} {}", l.number, l.name))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Runs one lab: prints its header and background (when printing), runs its steps, cleans up,
/// and returns the result. Root-only labs report SKIP for an ordinary user.
pub fn run(lab: &Lab, options: &Options) -> LabResult {
    let started = Instant::now();
    if options.print {
        print_header(lab);
        println!("{}\n", indent(lab.background));
    }
    let mut session = match Session::new(lab, options.clone()) {
        Ok(s) => s,
        Err(e) => return not_started(lab, started, e),
    };
    session.say(&format!(
        "(working in {}, with its own ISOLAB_HOME; all of it is removed at the end)\n",
        session.dir().display()
    ));
    let error = if lab.needs_root && session.rootless() {
        session.skip(
            "needs-root",
            "this lab needs root (cgroups, host files or --privileged); run it with sudo",
        );
        None
    } else {
        match unprivileged_userns_refused() {
            Some(reason) if session.rootless() => {
                session.skip("rootless", reason);
                None
            }
            _ => (lab.run)(&mut session).err(),
        }
    };
    let result = session.finish(lab, started, error);
    if options.print {
        println!(
            "  → lab {} {}: {} ({:.1} s)\n",
            lab.number,
            lab.name,
            result.verdict.word(),
            result.duration_ms / 1e3
        );
    }
    result
}

/// Prints a lab's title line.
pub fn print_header(lab: &Lab) {
    println!(
        "━━ Lab {}: {} — {}  [{}{}]",
        lab.number,
        lab.name,
        lab.summary,
        lab.claims.join(", "),
        if lab.needs_root { "; needs root" } else { "" }
    );
}

/// Indents every line of a text block by two spaces.
pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why an ordinary user cannot create a user namespace here, if a sysctl says so.
fn unprivileged_userns_refused() -> Option<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|v| v.trim().to_string())
    };
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some("this host disables unprivileged user namespaces (kernel.unprivileged_userns_clone = 0); run with sudo".into());
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some(
            "this host allows no user namespaces (user.max_user_namespaces = 0); run with sudo"
                .into(),
        );
    }
    None
}

fn not_started(lab: &Lab, started: Instant, error: LabError) -> LabResult {
    let reason = session::error_chain(&error);
    LabResult {
        number: lab.number,
        name: lab.name.to_string(),
        claims: lab.claims.iter().map(|c| c.to_string()).collect(),
        verdict: Verdict::Fail,
        error: Some(reason.clone()),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        steps: Vec::new(),
        checks: vec![Check {
            name: "lab-started".into(),
            verdict: Verdict::Fail,
            reason,
        }],
    }
}

#[cfg(test)]
mod tests;
