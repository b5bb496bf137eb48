//! Lab 14: the start-up race and the cost of a system call, live: a plain process, a
//! container, a microVM and (where installed) gVisor, each timed as a whole process.

use super::path_str;
use crate::{Lab, LabError, Session};
use std::path::{Path, PathBuf};

pub const LAB: Lab = Lab {
    number: 14,
    name: "startup-race",
    summary: "start-up and syscall cost, live: process vs container vs microVM (vs gVisor)",
    claims: &["C1", "C4"],
    needs_root: true,
    background: "\
\"Containers start in seconds, VMs in minutes.\" Time it: each contestant is started as a whole
program, the way you would start it, and the clock runs from fork to exit: `/bin/true` on the
host, `isolab container run --rm -- true` (namespaces, cgroup, overlay rootfs), `isolab vm run
--guest stub:true` (a KVM microVM with isolab's own guest) and gVisor's runsc. The rounds are
interleaved (A B C A B C ...) so that whatever else the machine does hits all of them alike;
the median of a few runs is reported, with the ratio to the plain process.

Then the price of asking the kernel something: getpid() in a loop on the host and in a
container — the same kernel answers both, with or without a seccomp filter in front — and a VM
exit, the round trip a guest pays whenever it needs its VMM.

What to look for: all of them start in milliseconds, not minutes; a container costs more than a
plain process but far less than a second; getpid costs about the same in a container as on the
host; a VM exit costs many times a system call.",
    run,
};

const ROUNDS: usize = 5;
const CALLS: &str = "2000000";

fn run(s: &mut Session) -> Result<(), LabError> {
    let kvm = Path::new("/dev/kvm").exists();
    let runsc = runsc_path();
    let bundle = match &runsc {
        Some(_) => Some(busybox_bundle(s, &["/bin/true"])?),
        None => None,
    };
    s.say(&format!(
        "{ROUNDS} interleaved rounds; each line is one whole process:"
    ));
    let gvisor = runsc.as_deref().zip(bundle.as_deref());
    let starts = measure_starts(s, kvm, gvisor)?;
    check_starts(s, &starts, kvm, runsc.is_some());
    syscalls(s, kvm)
}

/// Start-to-exit times in ms of each kind of sandbox, one sample per round.
#[derive(Default)]
struct Starts {
    host: Vec<f64>,
    container: Vec<f64>,
    vm: Vec<f64>,
    gvisor: Vec<f64>,
}

/// Interleaved rounds: a process, a container, a microVM (with /dev/kvm) and a gVisor sandbox
/// (with runsc and its bundle) each start and exit once per round, so drift hits all alike.
fn measure_starts(
    s: &mut Session,
    kvm: bool,
    gvisor: Option<(&str, &Path)>,
) -> Result<Starts, LabError> {
    let mut t = Starts::default();
    for round in 0..ROUNDS {
        t.host.push(s.host("/bin/true", &[])?.duration_ms);
        t.container.push(
            s.isolab(&["container", "run", "--rm", "--", "true"])?
                .duration_ms,
        );
        if kvm {
            t.vm.push(
                s.isolab(&["vm", "run", "--guest", "stub:true"])?
                    .duration_ms,
            );
        }
        if let Some((runsc, bundle)) = gvisor {
            let args = runsc_args(s, bundle, &format!("lab14-{round}"));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            t.gvisor.push(s.host(runsc, &args)?.duration_ms);
        }
    }
    Ok(t)
}

/// The medians side by side, then one check per claim about them.
fn check_starts(s: &mut Session, t: &Starts, kvm: bool, have_runsc: bool) {
    let h = median(&t.host);
    let mut table = vec![format!("process {h:.2} ms")];
    for (name, samples) in [
        ("container", &t.container),
        ("microVM", &t.vm),
        ("gVisor", &t.gvisor),
    ] {
        if !samples.is_empty() {
            let m = median(samples);
            table.push(format!("{name} {m:.1} ms ({:.0}x)", m / h));
        }
    }
    s.say(&format!("medians: {}", table.join(", ")));
    let c = median(&t.container);
    s.check(
        "container-costs-more-than-a-process",
        c > h,
        format!("container {c:.1} ms vs process {h:.2} ms ({:.0}x)", c / h),
    );
    if kvm {
        let v = median(&t.vm);
        s.check(
            "microvm-starts-in-milliseconds",
            v < 1000.0,
            format!("isolab's microVM (stub guest) starts and exits in {v:.1} ms, not minutes"),
        );
    } else {
        s.skip(
            "microvm-starts-in-milliseconds",
            "this host has no /dev/kvm",
        );
    }
    if !have_runsc {
        s.skip(
            "gvisor-start",
            "runsc (gVisor) is not installed here (Debian package runsc)",
        );
    } else {
        let g = median(&t.gvisor);
        s.check(
            "gvisor-start",
            g > c,
            format!(
                "gVisor {g:.1} ms vs container {c:.1} ms ({:.1}x): its application kernel starts before the workload",
                g / c
            ),
        );
    }
}

fn syscalls(s: &mut Session, kvm: bool) -> Result<(), LabError> {
    let helper = path_str(&s.helper());
    let host = ns_per_call(&s.host(&helper, &["getpid", CALLS])?.stdout);
    let volume = s.helper_volume();
    let plain = s.container(&[
        "--rm",
        "--seccomp",
        "unconfined",
        "-v",
        &volume,
        "--",
        "/lab-helper",
        "getpid",
        CALLS,
    ])?;
    let filtered = s.container(&[
        "--rm",
        "--seccomp",
        "default",
        "-v",
        &volume,
        "--",
        "/lab-helper",
        "getpid",
        CALLS,
    ])?;
    let (plain, filtered) = (ns_per_call(&plain.stdout), ns_per_call(&filtered.stdout));
    match (host, plain, filtered) {
        (Some(h), Some(p), Some(f)) => s.check(
            "syscall-same-kernel",
            p < 2.0 * h && p > 0.5 * h,
            format!("getpid: host {h:.0} ns, container without a filter {p:.0} ns ({:.2}x), with the default seccomp filter {f:.0} ns ({:.2}x)", p / h, f / h),
        ),
        _ => s.check("syscall-same-kernel", false, "the getpid timer printed no figure"),
    }
    if !kvm {
        s.skip("vm-exit-costs-more", "this host has no /dev/kvm");
        return Ok(());
    }
    let guest = s.isolab(&["vm", "run", "--guest", "stub:syscall"])?;
    if guest.exit_code == Some(2) {
        let why = guest.stderr.lines().last().unwrap_or("").trim().to_string();
        s.skip("guest-syscall", why);
    } else {
        s.check(
            "guest-syscall",
            guest.exit_code == Some(0),
            format!("in the guest: {}", guest.stdout.trim()),
        );
    }
    let pio = s.isolab(&["vm", "run", "--guest", "stub:pio"])?;
    let exit_ns = figure_before(&pio.stdout, "ns per");
    match (exit_ns, host) {
        (Some(e), Some(h)) => s.check(
            "vm-exit-costs-more",
            e > 5.0 * h,
            format!(
                "a VM exit round trip costs {e:.0} ns, {:.0}x a host getpid",
                e / h
            ),
        ),
        _ => s.check(
            "vm-exit-costs-more",
            false,
            format!("no exit figure in {:?}", pio.stdout.trim()),
        ),
    }
    Ok(())
}

/// `640.2` from `640.2 ns per getpid (...)`.
fn ns_per_call(text: &str) -> Option<f64> {
    figure_before(text, "ns per")
}

/// The number just before `marker` in `text`.
fn figure_before(text: &str, marker: &str) -> Option<f64> {
    let before = &text[..text.find(marker)?];
    before.split_whitespace().last()?.parse().ok()
}

fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Where runsc is installed, if it is.
pub(super) fn runsc_path() -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("runsc"))
        .find(|p| p.is_file())
        .map(|p| path_str(&p))
}

/// An OCI bundle whose rootfs is the host's static busybox, running `args`.
pub(super) fn busybox_bundle(s: &mut Session, args: &[&str]) -> Result<PathBuf, LabError> {
    let bundle = s.dir().join("bundle");
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).map_err(LabError::prepare(&bin))?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .map_err(LabError::prepare(bin.join("busybox")))?;
    for applet in ["sh", "true", "uname"] {
        let link = bin.join(applet);
        std::os::unix::fs::symlink("busybox", &link).map_err(LabError::prepare(&link))?;
    }
    let bundle_arg = path_str(&bundle);
    let mut spec = vec!["spec", "-bundle", &bundle_arg, "--"];
    spec.extend_from_slice(args);
    let runsc = runsc_path().unwrap_or_else(|| "runsc".into());
    let out = s.host(&runsc, &spec)?;
    if out.exit_code != Some(0) {
        return Err(LabError::Output {
            command: "runsc spec".into(),
            detail: out.stderr.trim().to_string(),
        });
    }
    Ok(bundle)
}

/// `runsc ... run` for a bundle, with its state kept in the lab's directory.
pub(super) fn runsc_args(s: &Session, bundle: &Path, id: &str) -> Vec<String> {
    vec![
        format!("--root={}", s.dir().join("runsc-state").display()),
        "--network=none".into(),
        "--ignore-cgroups".into(),
        "--platform=ptrace".into(),
        "run".into(),
        "-bundle".into(),
        path_str(bundle),
        format!("{id}-{}", super::token()),
    ]
}
