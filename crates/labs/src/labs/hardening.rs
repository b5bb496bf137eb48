//! Labs 7 and 8: what container root may ask of the shared kernel — capabilities, seccomp,
//! and the masked / read-only parts of /proc — and what `--privileged` gives back.

use crate::{Lab, LabError, Session, Step};

pub const CAPS_SECCOMP: Lab = Lab {
    number: 7,
    name: "caps-seccomp",
    summary:
        "what the default capabilities and seccomp filter remove, and what --privileged gives back",
    claims: &["C5", "C6"],
    needs_root: true,
    background: "\
Root's power is split into ~41 capabilities (CAP_SYS_ADMIN to mount, CAP_NET_ADMIN to configure
networks, CAP_SYS_MODULE to load kernel modules...). A default container keeps docker's 14
(chown, kill, setuid, net_bind_service, ...) and loses the rest. A seccomp filter then refuses
whole system calls before the kernel acts on them: the default one refuses, among others,
creating new namespaces (unshare, clone with CLONE_NEW*), a favourite first step of kernel
exploits. --privileged keeps every capability and turns the filter off.

What to look for: CapEff has far fewer bits by default and lacks CAP_SYS_ADMIN (bit 21);
Seccomp is 2 (filter) by default and 0 with --privileged; mounting a tmpfs and `unshare -U`
are refused by default and work with --privileged. All harmless: they change only the
container's own namespaces.",
    run: run_caps,
};

pub const ESCAPE_SURFACE: Lab = Lab {
    number: 8,
    name: "escape-surface",
    summary: "what a --privileged container reaches of the shared kernel that a default one cannot",
    claims: &["C5", "C6"],
    needs_root: true,
    background: "\
A container shares the host's kernel, and much of that kernel is global: most of /proc/sys
(sysctls), /proc/kcore (the kernel's memory as an ELF core), /proc/timer_list (every timer
on every CPU), /sys/firmware (the machine's ACPI tables) and friends. A
default container sees /proc/sys read-only and the dangerous files masked (empty or refused),
so even its root cannot reconfigure or read out the host. A --privileged container has all
of it: one write to /proc/sys changes the host for every process on it. This lab changes
nothing: it reads, and writes a sysctl's current value back.

What to look for: the default container cannot write a host sysctl (read-only file system)
and sees nothing of /proc/timer_list, /proc/sched_debug, /proc/kcore, /sys/firmware (those this
kernel has); the --privileged one writes the sysctl's value back and reads them all; the host's
value is unchanged.",
    run: run_escape,
};

const CAPS: &str = "grep -E '^(CapEff|Seccomp):' /proc/self/status";
const CAP_SYS_ADMIN: u32 = 21;

fn run_caps(s: &mut Session) -> Result<(), LabError> {
    let (default, privileged) = s.default_and_privileged(CAPS)?;
    let (d_caps, d_mode) = parse_status(&default.stdout);
    let (p_caps, p_mode) = parse_status(&privileged.stdout);
    let admin = |caps: u64| caps & (1 << CAP_SYS_ADMIN) != 0;
    s.check(
        "capabilities-dropped",
        d_caps.count_ones() < p_caps.count_ones() && !admin(d_caps) && admin(p_caps),
        format!(
            "default: {} capabilities{}; --privileged: {}",
            d_caps.count_ones(),
            if admin(d_caps) {
                " including CAP_SYS_ADMIN"
            } else {
                ", no CAP_SYS_ADMIN"
            },
            p_caps.count_ones()
        ),
    );
    s.check(
        "seccomp-filter-on",
        d_mode == Some(2) && p_mode == Some(0),
        format!("Seccomp mode: default {d_mode:?}, --privileged {p_mode:?} (2 = filter, 0 = none)"),
    );
    for (check, command) in [
        (
            "mount-refused",
            "mkdir -p /lab-mnt && mount -t tmpfs lab /lab-mnt && echo mounted",
        ),
        ("unshare-refused", "unshare -U true && echo unshared"),
    ] {
        let (d, p) = s.default_and_privileged(command)?;
        let d_ok = d.exit_code == Some(0);
        let p_ok = p.exit_code == Some(0);
        s.check(
            check,
            !d_ok && p_ok,
            format!("`{command}`: {}", compared(d_ok, &d, p_ok, &p)),
        );
    }
    Ok(())
}

/// Host-global sysctls that are safe to write back unchanged; the first the host has is used.
const SYSCTLS: &[&str] = &["kernel/sysrq", "vm/overcommit_ratio", "kernel/pid_max"];
/// Files docker's default masks because they expose the host kernel; those the host has are
/// checked.
const MASKED: &[&str] = &[
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/kcore",
    "/sys/firmware",
];

fn run_escape(s: &mut Session) -> Result<(), LabError> {
    match SYSCTLS
        .iter()
        .find(|c| std::path::Path::new(&format!("/proc/sys/{c}")).exists())
    {
        Some(sysctl) => sysctl_write_back(s, &format!("/proc/sys/{sysctl}"))?,
        None => s.skip(
            "sysctl-write",
            "this kernel has none of the sysctls the lab writes back",
        ),
    }
    for path in MASKED {
        if std::path::Path::new(path).exists() {
            masked_file(s, path)?;
        } else {
            s.skip(
                &format!("{}-masked", file_name(path)),
                format!("this kernel has no {path}"),
            );
        }
    }
    Ok(())
}

/// Writes a host sysctl's current value back from a default and a --privileged container.
fn sysctl_write_back(s: &mut Session, file: &str) -> Result<(), LabError> {
    let before = s.cat(file)?.trim().to_string();
    let write_back = format!("v=$(cat {file}) && echo $v > {file} && echo wrote $v back");
    let (d, p) = s.default_and_privileged(&write_back)?;
    let after = s.cat(file)?.trim().to_string();
    let (d_ok, p_ok) = (d.stdout.contains("wrote"), p.stdout.contains("wrote"));
    s.check(
        "sysctl-write",
        !d_ok && p_ok && before == after,
        format!(
            "{file}: {}; host value {before} before, {after} after",
            compared(d_ok, &d, p_ok, &p),
        ),
    );
    Ok(())
}

/// Reads the start of a host-kernel file (or lists a directory) from both kinds of container.
fn masked_file(s: &mut Session, path: &str) -> Result<(), LabError> {
    let read = if std::path::Path::new(path).is_dir() {
        format!("ls {path}")
    } else {
        format!("head -c 32 {path} | od -An -c | head -n 2")
    };
    let (d, p) = s.default_and_privileged(&read)?;
    let seen = |out: &str| !out.trim().is_empty();
    let say = |out: &str| {
        if seen(out) {
            "reads the host's".to_string()
        } else {
            "sees nothing".to_string()
        }
    };
    s.check(
        &format!("{}-masked", file_name(path)),
        !seen(&d.stdout) && seen(&p.stdout),
        format!(
            "{path}: default {}; --privileged {}",
            say(&d.stdout),
            say(&p.stdout)
        ),
    );
    Ok(())
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).replace('_', "-")
}

/// CapEff as a bit set and the Seccomp mode, from /proc/self/status lines.
fn parse_status(text: &str) -> (u64, Option<u8>) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let caps = field("CapEff:")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0);
    let mode = field("Seccomp:").and_then(|v| v.parse().ok());
    (caps, mode)
}

/// `default refused (...); --privileged allowed`: one command's fate in both containers.
fn compared(d_ok: bool, d: &Step, p_ok: bool, p: &Step) -> String {
    format!(
        "default {}; --privileged {}",
        outcome(d_ok, &d.stderr),
        outcome(p_ok, &p.stderr)
    )
}

fn outcome(ok: bool, stderr: &str) -> String {
    if ok {
        "allowed".to_string()
    } else {
        let why = stderr
            .lines()
            .find(|l| !l.starts_with("isolab:"))
            .unwrap_or("")
            .trim();
        format!("refused ({why})")
    }
}
