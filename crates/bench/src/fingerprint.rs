//! What machine a result was taken on — recorded, never assumed.
//!
//! Startup and syscall figures depend on the kernel, the CPU and the virtualization below us
//! more than on anything isolab does. In particular, KVM comes in flavours: `kvm_intel` /
//! `kvm_amd` drive the hardware's VT-x / AMD-V, where a guest kernel runs natively in guest
//! ring 0; `kvm_pvm` is a *paravirtual* KVM for hosts that are themselves VMs without nested
//! virtualization, where guest user mode runs natively but an unmodified guest kernel's ring 0
//! is emulated thousands of times slower. Whether that is the case here is not guessed from
//! the module name: the microVM engine runs a short probe (the same loop in guest CPL0 and
//! CPL3) and we record its verdict. The cgroup layout (v1, v2 or hybrid), the peers' versions
//! and the git revision complete the picture.

use crate::schema::Fingerprint;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The peers whose versions go into every result file.
pub const TOOLS: [&str; 6] = [
    "crun",
    "runc",
    "bwrap",
    "podman",
    "qemu-system-x86_64",
    "unshare",
];

/// Takes the fingerprint of this machine. Runs the microVM engine's CPL0 probe when
/// `probe_cpl0` is set and /dev/kvm opens (a few milliseconds on VT-x, longer on PVM).
pub fn take(probe_cpl0: bool) -> Fingerprint {
    let platform = if probe_cpl0 {
        isolab_microvm::Platform::detect()
    } else {
        isolab_microvm::Platform::detect_static()
    };
    let (kernel_release, kernel_version) = uname();
    let cgroup_mode = match isolab_cgroups::CgroupRoot::detect() {
        Ok(root) => format!("{:?}", root.mode()).to_lowercase(),
        Err(e) => format!("unknown: {e}"),
    };
    let kvm_module = serde_json::to_value(&platform.kvm_module)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", platform.kvm_module));
    let guest_cpl0_detail = match &platform.cpl0 {
        Some(p) => p.detail.clone(),
        None if !platform.kvm_available => "not probed: /dev/kvm cannot be opened".into(),
        None => "not probed".into(),
    };
    Fingerprint {
        cpu_model: if platform.cpu_model.is_empty() {
            "unknown".into()
        } else {
            platform.cpu_model.clone()
        },
        cpu_cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_total_bytes: mem_total_bytes().unwrap_or(0),
        kernel_release,
        kernel_version,
        cgroup_mode,
        host_is_virtualized: platform.host_is_virtualized,
        kvm_module,
        guest_cpl0_native: platform.cpl0_native(),
        guest_cpl0_detail,
        tools: TOOLS
            .iter()
            .map(|t| (t.to_string(), tool_version(t)))
            .collect::<BTreeMap<_, _>>(),
        git_revision: git_revision(),
        isolab_version: env!("CARGO_PKG_VERSION").to_string(),
        date: rfc3339_utc(SystemTime::now()),
    }
}

/// `uname -r` and `uname -v`, from the same kernel strings /proc exposes.
fn uname() -> (String, String) {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    (
        read("/proc/sys/kernel/osrelease"),
        read("/proc/sys/kernel/version"),
    )
}

fn mem_total_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The first non-empty line of `<tool> --version`, or "not installed".
pub fn tool_version(tool: &str) -> String {
    let out = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output();
    match out {
        Ok(out) => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("installed, version unknown")
                .to_string()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "not installed".into(),
        Err(e) => format!("unknown: {e}"),
    }
}

/// `git rev-parse --short HEAD` of the current directory's repository, "unknown" outside one
/// (or before the first commit).
pub fn git_revision() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Formats a time as RFC 3339 in UTC with second precision, e.g. `2026-11-22T10:04:05Z`.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (year, month, day, h, m, s) = isolab_container::image::utc_fields(secs);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_on_known_instants() {
        let at = |s: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn missing_tool_is_not_installed() {
        assert_eq!(tool_version("isolab-no-such-tool-xyz"), "not installed");
    }

    #[test]
    fn fingerprint_of_this_machine_is_filled_in() {
        let fp = take(false);
        assert!(fp.cpu_cores >= 1);
        assert!(!fp.kernel_release.is_empty());
        assert!(fp.memory_total_bytes > 0);
        assert!(fp.date.ends_with('Z'));
        assert_eq!(fp.tools.len(), TOOLS.len());
        assert!(["kvm_intel", "kvm_amd", "kvm_pvm", "none"].contains(&fp.kvm_module.as_str()));
    }
}
