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
//!
//! Two kernel settings are recorded because they change container start times tenfold on
//! cgroup v1: `rcu_expedited` and the `favordynmods` cgroup mount option. Moving a process
//! into a cgroup takes `cgroup_threadgroup_rwsem` for writing. It is a per-CPU read-write
//! semaphore: readers (every fork and exit) are cheap because a writer first waits for an RCU
//! grace period — every CPU passing a quiescent state, milliseconds on an idle virtual
//! machine — to switch them to the slow path. Expedited grace periods shorten that wait;
//! `favordynmods` keeps the semaphore on the slow path for good, so writers never wait and
//! forks and exits pay a little instead. A container created straight into its cgroup
//! (`clone3(CLONE_INTO_CGROUP)`, cgroup v2 only) is never moved and skips the wait.

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
        rcu_expedited: rcu_expedited(),
        cgroup_favordynmods: std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| cgroup_favordynmods(&m))
            .unwrap_or(false),
    }
}

/// `/sys/kernel/rcu_expedited` as a flag; `None` when the file is missing or unreadable.
fn rcu_expedited() -> Option<bool> {
    match std::fs::read_to_string("/sys/kernel/rcu_expedited")
        .ok()?
        .trim()
    {
        "0" => Some(false),
        "" => None,
        _ => Some(true),
    }
}

/// Whether a cgroup or cgroup2 mount in `mountinfo` carries `favordynmods`. The option is a
/// super-block option, so it sits after the ` - ` separator: `- cgroup2 cgroup2 rw,favordynmods`.
fn cgroup_favordynmods(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let Some((_, tail)) = line.split_once(" - ") else {
            return false;
        };
        let mut fields = tail.split_whitespace();
        let fstype = fields.next().unwrap_or("");
        let _source = fields.next();
        let super_options = fields.next().unwrap_or("");
        (fstype == "cgroup" || fstype == "cgroup2")
            && super_options.split(',').any(|o| o == "favordynmods")
    })
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
    isolab_container::utc::UtcDateTime::from_unix_s(secs).rfc3339()
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
    fn favordynmods_is_found_only_on_cgroup_mounts() {
        let v1 = "34 25 0:29 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu,favordynmods\n";
        let v2 = "35 25 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let other = "36 25 0:31 / /mnt rw - tmpfs favordynmods rw,favordynmods\n";
        assert!(cgroup_favordynmods(v1));
        assert!(!cgroup_favordynmods(v2));
        assert!(!cgroup_favordynmods(other));
        assert!(cgroup_favordynmods(&format!("{v2}{other}{v1}")));
        assert!(!cgroup_favordynmods("garbage"));
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
        if std::path::Path::new("/sys/kernel/rcu_expedited").exists() {
            assert!(fp.rcu_expedited.is_some());
        }
        assert!(["kvm_intel", "kvm_amd", "kvm_pvm", "none"].contains(&fp.kvm_module.as_str()));
    }
}
