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

use super::convert::Converter;
use super::OciError;
use crate::credentials::{rlimit_number, ProcessCaps, Rlimit};
use crate::hardening::{DeviceNode, DevicePolicy, Hardening};
use crate::spec::ContainerSpec;
use crate::CapSet;
use isolab_cgroups::{DeviceAccess, DeviceKind, DeviceRule};
use oci_spec::runtime::{
    Capabilities, Linux, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Process, Spec,
};

impl Converter<'_> {
    /// Applies the security fields of `oci` to `spec`; returns the fields isolab ignores.
    pub(super) fn apply_security(
        &self,
        spec: &mut ContainerSpec,
        oci: &Spec,
        process: &Process,
    ) -> Result<Vec<&'static str>, OciError> {
        spec.process_caps = self.process_caps(process)?;
        spec.rlimits = self.rlimits(process)?;
        spec.no_new_privileges = process.no_new_privileges().unwrap_or(false);
        if let Some(adj) = process.oom_score_adj() {
            if !(-1000..=1000).contains(&adj) {
                let reason = "the kernel accepts -1000..=1000";
                return Err(self.invalid("process.oomScoreAdj", adj, reason));
            }
            spec.oom_score_adj = Some(adj);
        }
        spec.additional_gids = process.user().additional_gids().clone().unwrap_or_default();
        spec.hardening = self.hardening(oci.linux().as_ref())?;
        spec.sysctl = sorted_sysctl(oci.linux().as_ref());
        Ok(ignored_fields(oci, process))
    }

    /// The four capability sets besides bounding, when `process.capabilities` is given.
    pub(super) fn process_caps(&self, process: &Process) -> Result<Option<ProcessCaps>, OciError> {
        let Some(caps) = process.capabilities() else {
            return Ok(None);
        };
        let set = |c: &Option<Capabilities>, name: &str| match c {
            Some(c) => self.cap_set(c, &format!("process.capabilities.{name}")),
            None => Ok(CapSet::empty()),
        };
        Ok(Some(ProcessCaps {
            effective: set(caps.effective(), "effective")?,
            permitted: set(caps.permitted(), "permitted")?,
            inheritable: set(caps.inheritable(), "inheritable")?,
            ambient: set(caps.ambient(), "ambient")?,
        }))
    }

    /// `process.rlimits`, each a Linux rlimit whose soft value does not exceed its hard one.
    pub(super) fn rlimits(&self, process: &Process) -> Result<Vec<Rlimit>, OciError> {
        let mut out = Vec::new();
        for r in process.rlimits().iter().flatten() {
            let name = r.typ().to_string();
            let resource = rlimit_number(&name).ok_or_else(|| {
                self.invalid("process.rlimits[].type", &name, "not a Linux rlimit")
            })?;
            if r.soft() > r.hard() {
                return Err(self.invalid(
                    format!("process.rlimits[{name}]"),
                    format!("soft {} hard {}", r.soft(), r.hard()),
                    "the soft limit must not exceed the hard limit",
                ));
            }
            out.push(Rlimit {
                resource,
                soft: r.soft(),
                hard: r.hard(),
            });
        }
        Ok(out)
    }

    /// Masked and read-only paths, the device nodes to create and which devices may be opened.
    fn hardening(&self, linux: Option<&Linux>) -> Result<Hardening, OciError> {
        let nodes = linux
            .and_then(|l| l.devices().as_deref())
            .unwrap_or_default()
            .iter()
            .map(|d| self.device_node(d))
            .collect::<Result<Vec<_>, _>>()?;
        let given = linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().as_deref());
        Ok(Hardening {
            masked_paths: linux
                .and_then(|l| l.masked_paths().clone())
                .unwrap_or_default(),
            readonly_paths: linux
                .and_then(|l| l.readonly_paths().clone())
                .unwrap_or_default(),
            devices: self.device_policy(given, &nodes)?,
            nodes,
        })
    }

    /// One `linux.devices` entry: a node to create in the container's `/dev`.
    fn device_node(&self, d: &LinuxDevice) -> Result<DeviceNode, OciError> {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(self.invalid(
                    "linux.devices[].type",
                    d.path().display(),
                    "a device node is c, b, u or p",
                ))
            }
        };
        let number = |n: i64| u32::try_from(n).unwrap_or(0);
        Ok(DeviceNode {
            path: d.path().to_string_lossy().into_owned(),
            kind,
            major: number(d.major()),
            minor: number(d.minor()),
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        })
    }

    /// `linux.resources.devices` in order, then the standard nodes and those of `linux.devices`.
    fn device_policy(
        &self,
        given: Option<&[LinuxDeviceCgroup]>,
        nodes: &[DeviceNode],
    ) -> Result<DevicePolicy, OciError> {
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
                let field = "linux.resources.devices[].access";
                self.invalid(field, &access_text, "use any of r, w, m")
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
}

/// `linux.sysctl`, sorted so the same bundle always writes its sysctls in the same order.
fn sorted_sysctl(linux: Option<&Linux>) -> Vec<(String, String)> {
    linux
        .and_then(|l| l.sysctl().as_ref())
        .map(|m| {
            let mut v: Vec<(String, String)> =
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort();
            v
        })
        .unwrap_or_default()
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
        note(
            l.rootfs_propagation()
                .as_deref()
                .is_some_and(|p| p != "private" && p != "rprivate"),
            "linux.rootfsPropagation (the container's mounts are always private)",
        );
        if let Some(r) = l.resources() {
            out.extend(ignored_resources(r));
        }
    }
    out
}

/// `linux.resources` settings present in the bundle that isolab does not write.
fn ignored_resources(r: &oci_spec::runtime::LinuxResources) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut note = |present: bool, name: &'static str| {
        if present {
            out.push(name);
        }
    };
    if let Some(m) = r.memory() {
        note(
            m.reservation().is_some(),
            "linux.resources.memory.reservation",
        );
        note(m.kernel().is_some(), "linux.resources.memory.kernel");
        note(m.kernel_tcp().is_some(), "linux.resources.memory.kernelTCP");
        note(
            m.swappiness().is_some(),
            "linux.resources.memory.swappiness",
        );
        note(
            m.disable_oom_killer().is_some(),
            "linux.resources.memory.disableOOMKiller",
        );
    }
    if let Some(c) = r.cpu() {
        note(
            c.realtime_runtime().is_some() || c.realtime_period().is_some(),
            "linux.resources.cpu.realtime*",
        );
    }
    if let Some(b) = r.block_io() {
        let throttles = [
            b.throttle_read_bps_device(),
            b.throttle_write_bps_device(),
            b.throttle_read_iops_device(),
            b.throttle_write_iops_device(),
        ];
        note(
            throttles
                .iter()
                .any(|t| t.as_ref().is_some_and(|v| !v.is_empty())),
            "linux.resources.blockIO.throttle*",
        );
        note(
            b.leaf_weight().is_some() || b.weight_device().as_ref().is_some_and(|v| !v.is_empty()),
            "linux.resources.blockIO.leafWeight/weightDevice",
        );
    }
    note(
        r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()),
        "linux.resources.hugepageLimits",
    );
    note(r.network().is_some(), "linux.resources.network");
    note(r.rdma().is_some(), "linux.resources.rdma");
    note(r.unified().is_some(), "linux.resources.unified");
    out
}
