//! C5, one kernel or two: whose kernel answers `uname -r` in a container, in gVisor and in a
//! microVM. A container is a process tree with its own view of the host's kernel, so it
//! prints the host's release; gVisor answers from its own user-space kernel; a VM boots one.

use super::{capture, conclude, in_container, observation, Captured, Target};
use crate::environment::NotMeasured;
use crate::schema::{ClaimId, Observation};

/// The host's `uname -r`.
pub fn host_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// C5 in a container, in gVisor and in a microVM: whose kernel answers `uname -r`.
pub fn kernel_identity(target: Result<&Target, NotMeasured>) -> Vec<Observation> {
    let host = host_release();
    let statement = format!("`uname -r` inside prints the host's release ({host})");
    let check = "kernel-is-host-kernel";
    let container = in_container(
        target.clone(),
        observation(ClaimId::C5, check, "isolab-cli-container", &statement),
        &[],
        &["uname", "-r"],
        |c| c.stdout.trim() == host,
    );
    let gvisor = conclude(
        observation(ClaimId::C5, check, "gvisor", &statement),
        target
            .clone()
            .and_then(|t| gvisor_uname(t).map(|c| (c.stdout.trim() == host, c.evidence))),
    );
    let vm = conclude(
        observation(ClaimId::C5, check, "isolab-cli-microvm-linux", &statement),
        target.and_then(|t| {
            let (release, evidence) = guest_banner_release(t)?;
            Ok((release == host, evidence))
        }),
    );
    vec![container, gvisor, vm]
}

fn gvisor_uname(t: &Target) -> Result<Captured, NotMeasured> {
    crate::gvisor::available()?;
    let base = t
        .bundle
        .as_ref()
        .ok_or_else(|| NotMeasured::Misbehaved("no OCI bundle for runsc".into()))?;
    let dir = t.scratch.join("observe-gvisor-uname");
    let bundle = crate::gvisor::bundle_running(base, &t.rootfs, &dir, &["/bin/uname", "-r"])?;
    let id = crate::gvisor::sandbox_id("uname", 0);
    let out = capture(
        &crate::gvisor::run_argv(&t.scratch.join("runsc"), &bundle, &id),
        &[],
    );
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Boots the guest Linux kernel to its banner and reads the release it prints.
fn guest_banner_release(t: &Target) -> Result<(String, String), NotMeasured> {
    crate::environment::kvm_usable()?;
    let (kernel, initrd) = crate::linux_boot::guest_images()?;
    let argv = crate::linux_boot::isolab_argv(&t.isolab, &kernel, &initrd);
    let c = capture(&argv, &[])?;
    let release = c
        .stdout
        .lines()
        .chain(c.stderr.lines())
        .find_map(|l| l.split("Linux version ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .ok_or_else(|| {
            NotMeasured::NoReading(format!(
                "the guest printed no \"Linux version\" banner (exit {})",
                c.code
            ))
        })?;
    let banner = c
        .stdout
        .lines()
        .find(|l| l.contains("Linux version"))
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((
        release,
        format!("$ {} …\n{banner}", argv[0].to_string_lossy()),
    ))
}
