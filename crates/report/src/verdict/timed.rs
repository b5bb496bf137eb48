//! C1–C4: the claims answered by timings and byte counts.

use super::{emulation_caveat, HostVirt, Parts, Verdict};
use crate::rows::{self, fmt_bytes, fmt_ns, fmt_us, Kind, Scope};
use isolab_bench::schema::{Question, Results, Row, Unit};

/// "Minutes": the claim's VM start-up.
const MINUTE_US: f64 = 60e6;
/// A container ratio to the host within this counts as "near bare metal" (C3) / "little
/// overhead" (C4): 10 % for compute, 50 % for a ~100 ns system call, where a seccomp filter's
/// few tens of ns already make 30 %.
const NEAR_BARE_METAL: f64 = 1.10;
const LITTLE_SYSCALL_OVERHEAD: f64 = 1.5;
/// Beyond this a container's compute slowdown refutes "near bare metal".
const CLEARLY_SLOWER: f64 = 1.5;
/// A VM exit costing this many host system calls is "paying for the hypervisor".
const EXIT_VS_SYSCALL: f64 = 10.0;

/// A measured row with its median, for the numbers lines.
struct Fig<'a> {
    row: &'a Row,
    median: f64,
}

fn label(r: &Row) -> String {
    let start = rows::start_label(r)
        .map(|s| format!(", {s}"))
        .unwrap_or_default();
    if r.workload == "true" {
        format!("{}{start}", r.environment)
    } else {
        format!("{} · {}{start}", r.environment, r.workload)
    }
}

/// Whole-process start-up rows of one kind, measured: per environment and workload the cold
/// start when the file has one (what a single `docker run` sees), else the warm one.
fn startups(results: &Results, kind: Kind) -> Vec<Fig<'_>> {
    let all: Vec<&Row> = rows::of(results, Question::Startup)
        .filter(|r| rows::scope(r) == Scope::WholeProcess && rows::kind(&r.environment) == kind)
        .filter(|r| rows::median(r).is_some())
        .collect();
    let has_cold = |r: &Row| {
        all.iter()
            .any(|c| rows::is_cold(c) && c.environment == r.environment && c.workload == r.workload)
    };
    all.iter()
        .filter(|r| rows::is_cold(r) || !has_cold(r))
        .filter_map(|row| {
            Some(Fig {
                median: rows::median(row)?,
                row,
            })
        })
        .collect()
}

fn extremes<'a, 'b>(figs: &'b [Fig<'a>]) -> Option<(&'b Fig<'a>, &'b Fig<'a>)> {
    let min = figs.iter().min_by(|a, b| a.median.total_cmp(&b.median))?;
    let max = figs.iter().max_by(|a, b| a.median.total_cmp(&b.median))?;
    Some((min, max))
}

/// C1: containers in seconds, VMs in minutes. Judged on whole-process starts only.
pub(super) fn c1_startup(results: &Results) -> Parts {
    let fp = &results.fingerprint;
    let containers = startups(results, Kind::Container);
    let vms = startups(results, Kind::Vm);
    let mut numbers: Vec<String> = containers
        .iter()
        .chain(vms.iter())
        .map(|f| format!("{}: median {}", label(f.row), fmt_us(f.median)))
        .collect();
    let mut caveat = emulation_caveat(fp)
        .map(|c| {
            format!(
                "{c} Linux guests here stop at their boot banner, so the Linux-boot rows are not \
                 boot-to-init times."
            )
        })
        .unwrap_or_default();
    let (Some((_, slowest_c)), Some((fastest_v, slowest_v))) =
        (extremes(&containers), extremes(&vms))
    else {
        let missing = if containers.is_empty() {
            "no whole-process container start was measured"
        } else {
            "no whole-process VM start was measured"
        };
        let why = format!(
            "{missing} ({})",
            rows::absent_reason(results, Question::Startup, "whole-process start-up rows")
        );
        return (Verdict::NotMeasured(why), numbers, caveat);
    };
    let verdict = if fastest_v.median < MINUTE_US && slowest_c.median < MINUTE_US {
        // Both figures, no ratio: a VM's and a container's trivial workloads are not the same
        // program, so only "both well under a minute" is compared.
        numbers.push(format!(
            "fastest VM start {} ({}); slowest container start {} ({}): both far from minutes",
            fmt_us(fastest_v.median),
            fastest_v.row.environment,
            fmt_us(slowest_c.median),
            slowest_c.row.environment,
        ));
        if slowest_v.median >= MINUTE_US {
            Verdict::Depends(format!(
                "on what the VM boots: {} starts in {}, {} needs {}",
                fastest_v.row.environment,
                fmt_us(fastest_v.median),
                slowest_v.row.environment,
                fmt_us(slowest_v.median)
            ))
        } else {
            Verdict::Refuted
        }
    } else if fastest_v.median >= MINUTE_US && slowest_c.median < 10e6 {
        Verdict::Supported
    } else {
        Verdict::Depends("on the runtime and the guest: see the start-up rows".into())
    };
    if HostVirt::of(fp) != HostVirt::EmulatedKernelMode && verdict == Verdict::Refuted {
        caveat = "The fastest VM here boots a minimal guest with no firmware or init; a \
                  distribution VM adds its kernel's and init's boot time (the Linux rows, where \
                  measured)."
            .into();
    }
    (verdict, numbers, caveat)
}

/// The first measured row of an environment kind in a memory workload.
fn memory_fig<'a>(results: &'a Results, workload: &str, kind: Kind) -> Option<Fig<'a>> {
    rows::of(results, Question::Memory)
        .filter(|r| r.workload == workload && rows::kind(&r.environment) == kind)
        .filter(|r| rows::scope(r) == Scope::WholeProcess || !workload.ends_with("true"))
        .find_map(|row| {
            Some(Fig {
                median: rows::median(row)?,
                row,
            })
        })
}

/// C2: containers are lighter, far more fit. Density when measured, else memory per instance.
pub(super) fn c2_memory(results: &Results) -> Parts {
    let caveat = "isolab's microVM runs a stub guest of a few pages; a Linux guest adds its own \
                  kernel, page cache and init to every VM. Figures exclude KVM's kernel-side \
                  memory except in the density fill (MemAvailable sees it)."
        .to_string();
    let mut numbers = Vec::new();
    let density = |kind| {
        rows::of(results, Question::Memory)
            .filter(|r| r.unit == Unit::Count && r.workload.starts_with("density-"))
            .filter(|r| rows::kind(&r.environment) == kind)
            .find_map(|row| {
                Some(Fig {
                    median: rows::median(row)?,
                    row,
                })
            })
    };
    if let (Some(c), Some(v)) = (density(Kind::Container), density(Kind::Vm)) {
        numbers.push(format!(
            "{}: {:.0} containers ({}) vs {:.0} microVMs ({})",
            c.row.workload, c.median, c.row.environment, v.median, v.row.environment
        ));
        let ratio = c.median / v.median.max(1.0);
        let verdict = if ratio >= 2.0 {
            Verdict::Supported
        } else if ratio < 1.0 {
            Verdict::Refuted
        } else {
            Verdict::Depends(format!(
                "on the guest: only {ratio:.1}× as many containers fit as microVMs"
            ))
        };
        return (verdict, numbers, caveat);
    }
    let container = memory_fig(results, "true", Kind::Container);
    let vmm = memory_fig(results, "idle-vmm", Kind::Vm)
        .or_else(|| memory_fig(results, "stub-true", Kind::Vm))
        .or_else(|| memory_fig(results, "true", Kind::Vm));
    let charge = memory_fig(results, "true-cgroup-charge", Kind::Container);
    for f in [&container, &vmm, &charge].into_iter().flatten() {
        numbers.push(format!("{}: {}", label(f.row), fmt_bytes(f.median)));
    }
    let density_why = rows::of(results, Question::Memory)
        .filter(|r| r.workload.starts_with("density-"))
        .find_map(rows::reason)
        .unwrap_or("the run has no density rows")
        .to_string();
    match (container, vmm) {
        (Some(c), Some(v)) => {
            let verdict = if c.median < v.median {
                Verdict::Supported
            } else {
                Verdict::Depends(format!(
                    "on what is counted: a container launcher ({}) is not lighter than an idle \
                     VMM ({}) here; density not measured ({density_why})",
                    fmt_bytes(c.median),
                    fmt_bytes(v.median)
                ))
            };
            numbers.push(format!("density not measured: {density_why}"));
            (verdict, numbers, caveat)
        }
        _ => (
            Verdict::NotMeasured(format!(
                "no whole-process memory rows for both a container and a VMM ({})",
                rows::absent_reason(results, Question::Memory, "memory rows")
            )),
            numbers,
            caveat,
        ),
    }
}

/// A row's time relative to the host (> 1: slower), bandwidth inverted.
fn relative_time(r: &Row) -> Option<f64> {
    let ratio = r.ratio_to_host?;
    if ratio <= 0.0 {
        return None;
    }
    Some(if r.unit.higher_is_better() {
        1.0 / ratio
    } else {
        ratio
    })
}

/// C3: near bare-metal performance, from the CPU and memory-pass ratios.
pub(super) fn c3_cpu(results: &Results) -> Parts {
    let fp = &results.fingerprint;
    let rel: Vec<(&Row, f64)> = rows::of(results, Question::Cpu)
        .filter(|r| r.environment != "host")
        .filter_map(|r| Some((r, relative_time(r)?)))
        .collect();
    let numbers: Vec<String> = rel
        .iter()
        .map(|(r, t)| {
            format!(
                "{} · {}: {t:.2}× the host's time",
                r.environment, r.workload
            )
        })
        .collect();
    let caveat = match emulation_caveat(fp) {
        Some(c) => format!(
            "{c} The microVM rows run the loops in guest user mode, which is native here; a \
             guest workload that enters its kernel often would not be."
        ),
        None => String::new(),
    };
    let worst = rel
        .iter()
        .filter(|(r, _)| rows::kind(&r.environment) == Kind::Container)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some(&(worst_row, worst)) = worst else {
        let why = rows::absent_reason(results, Question::Cpu, "container rows with a host ratio");
        return (Verdict::NotMeasured(why), numbers, caveat);
    };
    let verdict = if worst <= NEAR_BARE_METAL {
        Verdict::Supported
    } else if worst >= CLEARLY_SLOWER {
        Verdict::Refuted
    } else {
        Verdict::Depends(format!(
            "on the workload: {} in {} took {worst:.2}× the host's time (within the spread on a \
             busy machine? see the whiskers)",
            worst_row.workload, worst_row.environment
        ))
    };
    (verdict, numbers, caveat)
}

/// C4: containers reach the kernel with little overhead; VMs pay for the hypervisor.
pub(super) fn c4_syscalls(results: &Results) -> Parts {
    let fp = &results.fingerprint;
    let getpid = |kind| {
        rows::of(results, Question::Syscall)
            .filter(|r| r.workload == "getpid" && rows::kind(&r.environment) == kind)
            .collect::<Vec<_>>()
    };
    let host = getpid(Kind::Host).into_iter().find_map(rows::median);
    let containers: Vec<(&Row, f64)> = getpid(Kind::Container)
        .into_iter()
        .filter_map(|r| Some((r, rows::median(r)?)))
        .collect();
    let guest = getpid(Kind::Vm);
    let exits: Vec<(&Row, f64)> = rows::of(results, Question::Syscall)
        .filter(|r| r.workload.ends_with("-exit"))
        .filter_map(|r| Some((r, rows::median(r)?)))
        .collect();
    let mut numbers = Vec::new();
    if let Some(h) = host {
        numbers.push(format!("host getpid: {}", fmt_ns(h)));
    }
    for (r, m) in containers.iter().chain(exits.iter()) {
        numbers.push(format!(
            "{} · {}: {}",
            r.environment,
            r.workload,
            fmt_ns(*m)
        ));
    }
    let guest_line = match guest.iter().find_map(|r| rows::median(r).map(|m| (r, m))) {
        Some((r, m)) => format!("{} getpid: {}", r.environment, fmt_ns(m)),
        None => match guest.iter().find_map(|r| rows::reason(r)) {
            Some(why) => format!("guest getpid not measured: {why}"),
            None => "guest getpid not in this run".into(),
        },
    };
    numbers.push(guest_line);
    let mut caveat = "Inside a VM a system call is handled by the guest's own kernel without \
                      leaving the VM; the hypervisor is paid per exit (I/O, MMIO, privileged \
                      instructions)."
        .to_string();
    if let Some(c) = emulation_caveat(fp) {
        caveat.push_str(&format!(
            " {c} Exits here are nested exits through a paravirtual KVM, dearer than on \
             VT-x/AMD-V."
        ));
    }
    let (Some(h), Some(worst)) = (host, containers.iter().map(|c| c.1).reduce(f64::max)) else {
        let why = rows::absent_reason(results, Question::Syscall, "host and container getpid rows");
        return (Verdict::NotMeasured(why), numbers, caveat);
    };
    let container_ok = worst / h <= LITTLE_SYSCALL_OVERHEAD;
    let dearest_exit = exits.iter().map(|e| e.1).reduce(f64::max);
    let guest_native = guest
        .iter()
        .find_map(|r| rows::median(r))
        .map(|g| g / h <= LITTLE_SYSCALL_OVERHEAD);
    let verdict = match (container_ok, dearest_exit, guest_native) {
        (false, _, _) => Verdict::Refuted,
        (true, _, Some(true)) => Verdict::Depends(
            "on what the workload does: guest system calls cost about what the host's do; only \
             exits to the VMM are dear"
                .into(),
        ),
        (true, Some(e), _) if e / h >= EXIT_VS_SYSCALL => Verdict::Supported,
        (true, Some(_), _) => Verdict::Depends(
            "on the exits: a VM exit here costs less than ten host system calls".into(),
        ),
        (true, None, _) => Verdict::Depends(
            "on the VM side, which was not measured: the container side holds".into(),
        ),
    };
    (verdict, numbers, caveat)
}
