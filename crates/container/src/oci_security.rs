//! The security-relevant parts of an OCI `config.json`, applied as crun applies them.
//!
//! A bundle states exactly what its process may do: its five capability sets, its rlimits,
//! whether it may gain privileges through setuid binaries (`noNewPrivileges`), which paths are
//! masked or read-only, which device nodes exist and which may be opened, its OOM score, its
//! namespaced sysctls and its supplementary groups. Running the same bundle under another
//! runtime must give the same container, so each field is applied literally:
//!
//! - absent `maskedPaths` / `readonlyPaths` mean none (not isolab's defaults): the bundle's
//!   author, usually a higher-level tool like docker or podman, has already chosen;
//! - absent `linux.resources.devices` means the standard device set; present rules come first
//!   and the standard nodes are allowed after them, as runc and crun do; every node listed in
//!   `linux.devices` is created and allowed;
//! - `process.rlimits` with a soft value above the hard one is refused, like crun does;
//! - fields isolab cannot apply (AppArmor, SELinux, hooks, ...) are named in a one-line warning
//!   on stderr, never silently dropped.

use crate::capabilities::CapSet;
use crate::credentials::{rlimit_number, ProcessCaps, Rlimit};
use crate::hardening::{DeviceNode, DevicePolicy, Hardening};
use crate::oci::OciError;
use crate::spec::ContainerSpec;
use isolab_cgroups::{DeviceAccess, DeviceKind, DeviceRule};
use oci_spec::runtime::{Capabilities, LinuxDeviceType, Process, Spec};
use std::path::Path;

/// Applies the security fields of `oci` to `spec`; returns the fields isolab ignores.
pub(crate) fn apply(
    spec: &mut ContainerSpec,
    oci: &Spec,
    process: &Process,
    path: &Path,
) -> Result<Vec<&'static str>, OciError> {
    let invalid = |field: String, value: String, reason: String| OciError::Invalid {
        path: path.to_path_buf(),
        field,
        value,
        reason,
    };
    if let Some(caps) = process.capabilities() {
        let set = |c: &Option<Capabilities>, field: &str| -> Result<CapSet, OciError> {
            let names: Vec<String> = c.iter().flatten().map(|c| c.to_string()).collect();
            CapSet::empty().adjust(&names, &[]).map_err(|e| {
                invalid(
                    format!("process.capabilities.{field}"),
                    e.0.clone(),
                    "unknown capability".into(),
                )
            })
        };
        spec.process_caps = Some(ProcessCaps {
            effective: set(caps.effective(), "effective")?,
            permitted: set(caps.permitted(), "permitted")?,
            inheritable: set(caps.inheritable(), "inheritable")?,
            ambient: set(caps.ambient(), "ambient")?,
        });
    }
    for r in process.rlimits().iter().flatten() {
        let name = r.typ().to_string();
        let resource = rlimit_number(&name).ok_or_else(|| {
            invalid(
                "process.rlimits[].type".into(),
                name.clone(),
                "not a Linux rlimit".into(),
            )
        })?;
        if r.soft() > r.hard() {
            return Err(invalid(
                format!("process.rlimits[{name}]"),
                format!("soft {} hard {}", r.soft(), r.hard()),
                "the soft limit must not exceed the hard limit".into(),
            ));
        }
        spec.rlimits.push(Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    spec.no_new_privileges = process.no_new_privileges().unwrap_or(false);
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                "process.oomScoreAdj".into(),
                adj.to_string(),
                "the kernel accepts -1000..=1000".into(),
            ));
        }
        spec.oom_score_adj = Some(adj);
    }
    spec.additional_gids = process.user().additional_gids().clone().unwrap_or_default();
    let linux = oci.linux().as_ref();
    let mut hardening = Hardening {
        masked_paths: linux
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default(),
        readonly_paths: linux
            .and_then(|l| l.readonly_paths().clone())
            .unwrap_or_default(),
        devices: DevicePolicy::Standard,
        nodes: Vec::new(),
    };
    for d in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(invalid(
                    "linux.devices[].type".into(),
                    d.path().display().to_string(),
                    "a device node is c, b, u or p".into(),
                ))
            }
        };
        let number = |n: i64| u32::try_from(n).unwrap_or(0);
        hardening.nodes.push(DeviceNode {
            path: d.path().to_string_lossy().into_owned(),
            kind,
            major: number(d.major()),
            minor: number(d.minor()),
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    hardening.devices = device_policy(oci, &hardening.nodes, &invalid)?;
    spec.hardening = hardening;
    spec.sysctl = linux
        .and_then(|l| l.sysctl().as_ref())
        .map(|m| {
            let mut v: Vec<(String, String)> =
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    Ok(ignored_fields(oci, process))
}

type Invalid<'a> = dyn Fn(String, String, String) -> OciError + 'a;

/// `linux.resources.devices` in order, then the standard nodes and those of `linux.devices`.
fn device_policy(
    oci: &Spec,
    nodes: &[DeviceNode],
    invalid: &Invalid<'_>,
) -> Result<DevicePolicy, OciError> {
    let given = oci
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_deref());
    let Some(given) = given else {
        if nodes.is_empty() {
            return Ok(DevicePolicy::Standard);
        }
        let mut rules = DeviceRule::standard_set();
        rules.extend(nodes.iter().filter_map(DeviceNode::allow_rule));
        return Ok(DevicePolicy::Rules(rules));
    };
    let mut rules = Vec::with_capacity(given.len() + 16);
    for d in given {
        let kind = match d.typ().unwrap_or_default() {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => continue,
        };
        let access_text = d.access().clone().unwrap_or_else(|| "rwm".into());
        let access = DeviceAccess::parse(&access_text).ok_or_else(|| {
            invalid(
                "linux.resources.devices[].access".into(),
                access_text.clone(),
                "use any of r, w, m".into(),
            )
        })?;
        let number = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
        rules.push(DeviceRule {
            allow: d.allow(),
            kind,
            major: number(d.major()),
            minor: number(d.minor()),
            access,
        });
    }
    // The standard nodes stay usable, as with runc and crun (their deny-all is not repeated).
    rules.extend(DeviceRule::standard_set().into_iter().skip(1));
    rules.extend(nodes.iter().filter_map(DeviceNode::allow_rule));
    Ok(DevicePolicy::Rules(rules))
}

/// Fields present in the bundle that isolab does not apply.
fn ignored_fields(oci: &Spec, process: &Process) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut note = |present: bool, name: &'static str| {
        if present {
            out.push(name);
        }
    };
    note(
        process.apparmor_profile().is_some(),
        "process.apparmorProfile",
    );
    note(process.selinux_label().is_some(), "process.selinuxLabel");
    note(process.io_priority().is_some(), "process.ioPriority");
    note(process.scheduler().is_some(), "process.scheduler");
    note(oci.hooks().is_some(), "hooks");
    if let Some(l) = oci.linux() {
        note(l.mount_label().is_some(), "linux.mountLabel");
        note(l.intel_rdt().is_some(), "linux.intelRdt");
        note(l.personality().is_some(), "linux.personality");
        note(l.time_offsets().is_some(), "linux.timeOffsets");
        note(l.memory_policy().is_some(), "linux.memoryPolicy");
        note(
            l.seccomp()
                .as_ref()
                .is_some_and(|s| s.syscalls().as_ref().is_some_and(|v| !v.is_empty())),
            "linux.seccomp.syscalls (isolab's own default filter is used)",
        );
    }
    out
}
