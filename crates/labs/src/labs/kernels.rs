//! Lab 13: one kernel or two — ask each environment which kernel answers it.

use super::{host_release, path_str};
use crate::{Lab, LabError, Session};
use std::path::{Path, PathBuf};

pub const LAB: Lab = Lab {
    number: 13,
    name: "one-kernel-or-two",
    summary: "a container reports the host's kernel; a microVM guest and gVisor their own",
    claims: &["C5"],
    needs_root: true,
    background: "\
`uname -r` asks the kernel that serves the calling process for its release. A container is
just host processes in namespaces: the host kernel answers, with the host's release — every
kernel bug is shared. gVisor (runsc) puts an application kernel written in Go between the
container and the host: it answers the system calls itself, and reports its own release. A
microVM runs a guest of its own on virtual hardware that KVM provides: isolab's stub guest has
no Linux at all — it is a few hundred bytes of code that talk to the VMM through I/O ports —
and a Linux guest prints its own kernel's version in its boot banner.

What to look for: the container's release equals the host's; gVisor's and the Linux guest's
differ; the stub guest runs with no kernel to share. Parts this host cannot run are SKIPped
with the reason.",
    run,
};

fn run(s: &mut Session) -> Result<(), LabError> {
    let host = host_release(s)?;
    let c = s.container(&["--rm", "--", "uname", "-r"])?;
    s.check(
        "container-shares-host-kernel",
        c.stdout.trim() == host,
        format!("container {:?}, host {host:?}", c.stdout.trim()),
    );
    stub_guest(s)?;
    linux_guest(s, &host)?;
    gvisor(s, &host)?;
    Ok(())
}

fn stub_guest(s: &mut Session) -> Result<(), LabError> {
    if !Path::new("/dev/kvm").exists() {
        s.skip(
            "microvm-own-guest",
            "this host has no /dev/kvm (KVM not available)",
        );
        return Ok(());
    }
    let vm = s.isolab(&["vm", "run", "--guest", "stub:true", "--json"])?;
    let report: serde_json::Value = serde_json::from_str(&vm.stdout).unwrap_or_default();
    let ran = vm.exit_code == Some(0) && report["outcome"]["figure"]["figure"] == "exited";
    s.check(
        "microvm-own-guest",
        ran,
        if ran {
            "isolab's stub guest ran on its own virtual CPU and exited through its own I/O port: no Linux kernel in it, none shared with the host".to_string()
        } else {
            format!("the stub guest did not run: exit {:?} {}", vm.exit_code, vm.stderr.trim())
        },
    );
    Ok(())
}

/// The guest kernel that scripts/build-guest.sh builds, if it has been built here.
fn guest_kernel() -> Option<(PathBuf, PathBuf)> {
    let cache = std::env::var_os("ISOLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/isolab"));
    let dir = cache.join("guest");
    let (kernel, initrd) = (dir.join("vmlinux"), dir.join("initramfs.cpio"));
    (kernel.is_file() && initrd.is_file()).then_some((kernel, initrd))
}

fn linux_guest(s: &mut Session, host: &str) -> Result<(), LabError> {
    if !Path::new("/dev/kvm").exists() {
        s.skip(
            "linux-guest-own-kernel",
            "this host has no /dev/kvm (KVM not available)",
        );
        return Ok(());
    }
    let Some((kernel, initrd)) = guest_kernel() else {
        s.skip(
            "linux-guest-own-kernel",
            "no guest kernel built on this machine (scripts/build-guest.sh builds it into /var/cache/isolab/guest)",
        );
        return Ok(());
    };
    // Where guest kernel mode is emulated (a paravirtual KVM such as kvm_pvm) the banner
    // takes seconds to minutes; the lab waits a bounded time and says why when it gives up.
    let platform = s.isolab(&["vm", "platform", "--json"])?;
    let platform: serde_json::Value = serde_json::from_str(&platform.stdout).unwrap_or_default();
    let native = platform["cpl0"]["native"].as_bool().unwrap_or(true);
    let timeout = if native { "30s" } else { "15s" };
    s.say("Boot isolab's Linux guest only as far as its banner (enough to read its version):");
    let vm = s.isolab(&[
        "vm",
        "run",
        "--kernel",
        &path_str(&kernel),
        "--initrd",
        &path_str(&initrd),
        "--until",
        "Linux version",
        "--timeout",
        timeout,
    ])?;
    let version = vm.stdout.lines().find_map(|l| {
        let rest = &l[l.find("Linux version ")? + "Linux version ".len()..];
        rest.split_whitespace().next().map(str::to_string)
    });
    match version {
        Some(v) => s.check(
            "linux-guest-own-kernel",
            v != host,
            format!("the guest's banner says Linux {v}; the host runs {host}"),
        ),
        None if !native => s.skip(
            "linux-guest-own-kernel",
            format!(
                "guest kernel mode is emulated on this host ({}, {}): the banner did not come within {timeout}",
                platform["kvm_module"].as_str().unwrap_or("?"),
                platform["cpl0"]["detail"].as_str().unwrap_or("CPL0 not native")
            ),
        ),
        None => s.check(
            "linux-guest-own-kernel",
            false,
            format!("the guest printed no banner within {timeout} (exit {:?})", vm.exit_code),
        ),
    }
    Ok(())
}

fn gvisor(s: &mut Session, host: &str) -> Result<(), LabError> {
    let Some(runsc) = super::race::runsc_path() else {
        s.skip(
            "gvisor-own-kernel",
            "runsc (gVisor) is not installed here (Debian package runsc)",
        );
        return Ok(());
    };
    let bundle = super::race::busybox_bundle(s, &["/bin/uname", "-r"])?;
    let args = super::race::runsc_args(s, &bundle, "lab13");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.host(&runsc, &args)?;
    let release = out.stdout.trim().to_string();
    s.check(
        "gvisor-own-kernel",
        out.exit_code == Some(0) && !release.is_empty() && release != host,
        format!("under gVisor uname -r says {release:?}; the host runs {host}"),
    );
    Ok(())
}
