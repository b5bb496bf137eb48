//! OCI bundles: the file format every container runtime agrees on.
//!
//! Docker, podman and Kubernetes do not start containers themselves: they unpack an image into a
//! directory and write a `config.json` next to it, following the OCI **runtime specification**,
//! then call a low-level runtime (`runc`, `crun`, youki, ...) with `run --bundle DIR`. That
//! directory is the *bundle*:
//!
//! ```text
//! bundle/
//! ├── config.json   what to run and how: process (args, env, cwd, uid/gid, terminal),
//! │                 root (path, readonly), hostname, mounts, and under "linux": namespaces,
//! │                 uid/gid mappings, cgroup resources, seccomp, masked paths, ...
//! └── rootfs/       the root filesystem ("root.path", relative to the bundle)
//! ```
//!
//! `crun spec` / `runc spec` write a default `config.json` (a `sh` on a terminal, in new pid,
//! network, ipc, uts and mount namespaces, rootfs read-only). Because isolab reads the same file,
//! `isolab container run --bundle DIR`, `crun run --bundle DIR` and `runc run --bundle DIR` start
//! the same workload with the same isolation, which is what makes the start-time benches compare
//! like with like.
//!
//! [`load_bundle`] turns the file into isolab's [`ContainerSpec`]:
//!
//! - honoured: `root.path` / `root.readonly`, `process.args` / `env` / `cwd` / `user.uid,gid` /
//!   `terminal`, `hostname`, `linux.namespaces` (creating new ones), one contiguous
//!   `linux.uidMappings` / `gidMappings` range, bind mounts, and `linux.resources` memory
//!   (`limit`, `swap`), cpu (`quota`, `period`, `shares`, `cpus`, `mems`), `pids.limit` and
//!   `blockIO.weight`;
//! - provided by isolab's runtime whatever the file says: the standard mounts (`/proc`, `/dev`,
//!   `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys`, `/sys/fs/cgroup`), so those entries are
//!   skipped;
//! - `linux.seccomp` present → isolab's own default filter ([`SeccompMode::Default`]); the
//!   profile's rules themselves are not interpreted (see `seccomp.rs` for why isolab compiles one
//!   fixed policy once);
//! - `process.capabilities.bounding` → the container's bounding set (absent: all, as runc);
//! - the other capability sets, rlimits, noNewPrivileges, oomScoreAdj, additionalGids,
//!   maskedPaths/readonlyPaths, devices and sysctl: see `oci_security.rs`;
//! - not applied, and reported in [`Bundle::ignored`]: AppArmor, SELinux, hooks, and the other
//!   fields listed there;
//! - refused with a one-line error naming the field: joining an existing namespace (`path`),
//!   several or non-identical id-mapping ranges, mounts other than bind mounts and the standard
//!   ones, out-of-range resource values, invalid JSON.

use crate::capabilities::CapSet;
use crate::namespaces::{Namespace, NamespaceSet};
use crate::spec::{BindMount, ContainerSpec, IdMapping, NetworkMode, RootfsSource, SeccompMode};
use isolab_cgroups::{CpuQuota, Resources};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, LinuxResources, Mount, Spec};
use std::path::{Path, PathBuf};

/// Why a bundle cannot be run; each message is one line saying what to fix.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("bundle {dir}: no config.json there; generate a default one with `crun spec` (or `runc spec`) in that directory")]
    MissingConfig { dir: PathBuf },
    #[error("bundle {dir} does not exist or is not a directory")]
    MissingBundle { dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bundle {path} is not valid OCI runtime JSON: {source}")]
    InvalidJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {field} is missing; {hint}")]
    MissingField {
        path: PathBuf,
        field: &'static str,
        hint: &'static str,
    },
    #[error("root filesystem {rootfs} (root.path in {config}) does not exist; unpack an image there, e.g. `mkdir {rootfs} && tar -C {rootfs} -xf image.tar`")]
    MissingRootfs { rootfs: PathBuf, config: PathBuf },
    #[error("{path}: {field} = {value}: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        value: String,
        reason: String,
    },
    #[error("{path}: joining an existing {namespace} namespace ({ns_path}) is not supported by isolab; remove \"path\" to create a new one")]
    JoinNamespace {
        path: PathBuf,
        namespace: &'static str,
        ns_path: PathBuf,
    },
    #[error("{path}: mount at {destination} (type {mount_type}) is not supported: isolab provides /proc, /dev, /sys and friends itself and otherwise only bind mounts")]
    UnsupportedMount {
        path: PathBuf,
        destination: PathBuf,
        mount_type: String,
    },
}

/// A converted bundle and the fields of its config.json that isolab does not apply.
#[derive(Debug)]
pub struct Bundle {
    pub spec: ContainerSpec,
    /// Names of present fields isolab ignores (AppArmor, SELinux, hooks, ...): a caller should
    /// tell the user, never drop them silently.
    pub ignored: Vec<&'static str>,
}

/// Reads `<dir>/config.json` and converts it into a [`ContainerSpec`] (see [`load`] for the
/// fields it cannot apply).
pub fn load_bundle(dir: &Path) -> Result<ContainerSpec, OciError> {
    load(dir).map(|b| b.spec)
}

/// Reads `<dir>/config.json` and converts it.
///
/// Relative paths (`root.path`, bind mount sources) are resolved against `dir`, like runc and
/// crun do (they run with the bundle as working directory).
pub fn load(dir: &Path) -> Result<Bundle, OciError> {
    if !dir.is_dir() {
        return Err(OciError::MissingBundle {
            dir: dir.to_path_buf(),
        });
    }
    let dir = std::path::absolute(dir).map_err(|source| OciError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OciError::MissingConfig { dir })
        }
        Err(source) => return Err(OciError::Read { path, source }),
    };
    // serde_json directly (not Spec::load) so the message keeps serde's line and column.
    let oci: Spec = serde_json::from_str(&text).map_err(|source| OciError::InvalidJson {
        path: path.clone(),
        source,
    })?;
    Converter {
        dir: &dir,
        path: &path,
    }
    .convert(&oci)
}

struct Converter<'a> {
    dir: &'a Path,
    path: &'a Path,
}

impl Converter<'_> {
    fn invalid(
        &self,
        field: impl Into<String>,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> OciError {
        OciError::Invalid {
            path: self.path.to_path_buf(),
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    fn missing(&self, field: &'static str, hint: &'static str) -> OciError {
        OciError::MissingField {
            path: self.path.to_path_buf(),
            field,
            hint,
        }
    }

    fn convert(&self, oci: &Spec) -> Result<Bundle, OciError> {
        let root = oci.root().as_ref().ok_or_else(|| {
            self.missing(
                "root.path",
                "set it to the root filesystem directory, e.g. \"rootfs\"",
            )
        })?;
        let rootfs = self.dir.join(root.path());
        if !rootfs.is_dir() {
            return Err(OciError::MissingRootfs {
                rootfs,
                config: self.path.to_path_buf(),
            });
        }
        let process = oci.process().as_ref().ok_or_else(|| {
            self.missing(
                "process",
                "a bundle to run needs process.args, e.g. [\"sh\"]",
            )
        })?;
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(self.missing("process.args", "give the command to run, e.g. [\"sh\"]"));
        }

        let mut spec = ContainerSpec::new(RootfsSource::Dir(rootfs), args);
        spec.env = process.env().clone().unwrap_or_default();
        let cwd = process.cwd();
        if !cwd.is_absolute() {
            return Err(self.invalid("process.cwd", cwd.display(), "must be an absolute path"));
        }
        spec.workdir = cwd.to_string_lossy().into_owned();
        spec.user = (process.user().uid(), process.user().gid());
        spec.tty = process.terminal().unwrap_or(false);
        // The bounding set is the ceiling root inside can never exceed; without a
        // `capabilities` object the process keeps all of them, as runc does.
        spec.capabilities = match process
            .capabilities()
            .as_ref()
            .and_then(|c| c.bounding().as_ref())
        {
            None => CapSet::all(),
            Some(caps) => {
                let names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
                CapSet::empty().adjust(&names, &[]).map_err(|e| {
                    self.invalid(
                        "process.capabilities.bounding",
                        e.0.clone(),
                        "unknown capability",
                    )
                })?
            }
        };
        spec.readonly_rootfs = root.readonly().unwrap_or(false);

        let linux = oci.linux().as_ref();
        spec.namespaces = self.namespaces(linux.and_then(|l| l.namespaces().as_deref()))?;
        spec.network = if spec.namespaces.contains(Namespace::Net) {
            NetworkMode::None
        } else {
            NetworkMode::Host
        };
        if let Some(hostname) = oci.hostname() {
            if !spec.namespaces.contains(Namespace::Uts) {
                return Err(self.invalid(
                    "hostname",
                    hostname,
                    "setting a hostname needs a \"uts\" entry in linux.namespaces",
                ));
            }
            spec.hostname = Some(hostname.clone());
        }
        spec.id_mapping = self.id_mapping(
            spec.namespaces.contains(Namespace::User),
            linux.and_then(|l| l.uid_mappings().as_deref()),
            linux.and_then(|l| l.gid_mappings().as_deref()),
        )?;
        spec.mounts = self.mounts(oci.mounts().as_deref().unwrap_or_default())?;
        if let Some(res) = linux.and_then(|l| l.resources().as_ref()) {
            spec.resources = self.resources(res)?;
        }
        spec.seccomp = if linux.is_some_and(|l| l.seccomp().is_some()) {
            SeccompMode::Default
        } else {
            SeccompMode::Unconfined
        };
        // The bundle lists its own mounts; isolab adds no /tmp it did not ask for.
        spec.tmpfs_tmp = false;
        let ignored = crate::oci_security::apply(&mut spec, oci, process, self.path)?;
        Ok(Bundle { spec, ignored })
    }

    fn namespaces(
        &self,
        list: Option<&[oci_spec::runtime::LinuxNamespace]>,
    ) -> Result<NamespaceSet, OciError> {
        let mut set = NamespaceSet::empty();
        for ns in list.unwrap_or_default() {
            let kind = match ns.typ() {
                LinuxNamespaceType::Mount => Namespace::Mount,
                LinuxNamespaceType::Cgroup => Namespace::Cgroup,
                LinuxNamespaceType::Uts => Namespace::Uts,
                LinuxNamespaceType::Ipc => Namespace::Ipc,
                LinuxNamespaceType::User => Namespace::User,
                LinuxNamespaceType::Pid => Namespace::Pid,
                LinuxNamespaceType::Network => Namespace::Net,
                LinuxNamespaceType::Time => Namespace::Time,
            };
            if let Some(ns_path) = ns.path() {
                return Err(OciError::JoinNamespace {
                    path: self.path.to_path_buf(),
                    namespace: kind.name(),
                    ns_path: ns_path.clone(),
                });
            }
            set.insert(kind);
        }
        Ok(set)
    }

    fn id_mapping(
        &self,
        user_ns: bool,
        uids: Option<&[LinuxIdMapping]>,
        gids: Option<&[LinuxIdMapping]>,
    ) -> Result<Option<IdMapping>, OciError> {
        let uids = uids.unwrap_or_default();
        let gids = gids.unwrap_or_default();
        if !user_ns {
            if !uids.is_empty() || !gids.is_empty() {
                return Err(self.invalid(
                    "linux.uidMappings",
                    format!("{} range(s)", uids.len()),
                    "mappings need a \"user\" entry in linux.namespaces",
                ));
            }
            return Ok(None);
        }
        let single = |field: &str, list: &[LinuxIdMapping]| -> Result<IdMapping, OciError> {
            let [m] = list else {
                if list.is_empty() {
                    return Err(self.invalid(
                        field,
                        "0 range(s)",
                        "a user namespace needs one mapping range, e.g. {\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}",
                    ));
                }
                return Err(self.invalid(
                    field,
                    format!("{} range(s)", list.len()),
                    "isolab needs exactly one range, e.g. {\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}",
                ));
            };
            if m.container_id() != 0 || m.size() == 0 {
                return Err(self.invalid(
                    field,
                    format!("containerID {} size {}", m.container_id(), m.size()),
                    "the range must start at containerID 0 and have a size of at least 1",
                ));
            }
            Ok(IdMapping {
                host_base: m.host_id(),
                count: m.size(),
            })
        };
        let uid = single("linux.uidMappings", uids)?;
        let gid = single("linux.gidMappings", gids)?;
        if uid != gid {
            return Err(self.invalid(
                "linux.gidMappings",
                format!("hostID {} size {}", gid.host_base, gid.count),
                format!(
                    "isolab maps uids and gids alike; make it equal to uidMappings (hostID {} size {})",
                    uid.host_base, uid.count
                ),
            ));
        }
        Ok(Some(uid))
    }

    fn mounts(&self, mounts: &[Mount]) -> Result<Vec<BindMount>, OciError> {
        let mut binds = Vec::new();
        for m in mounts {
            let destination = m.destination();
            let typ = m.typ().as_deref().unwrap_or("");
            let options = m.options().as_deref().unwrap_or_default();
            let is_bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
            if is_standard_mount(destination, typ)
                || (is_bind
                    && is_standard_destination(destination)
                    && m.source().as_deref() == Some(destination))
            {
                continue;
            }
            if !is_bind {
                return Err(OciError::UnsupportedMount {
                    path: self.path.to_path_buf(),
                    destination: destination.clone(),
                    mount_type: if typ.is_empty() {
                        "none".to_string()
                    } else {
                        typ.to_string()
                    },
                });
            }
            let field = || format!("mounts[{}].source", destination.display());
            let source = m.source().as_ref().ok_or_else(|| {
                self.invalid(field(), "(none)", "a bind mount needs a source path")
            })?;
            let source = self.dir.join(source);
            if !source.exists() {
                return Err(self.invalid(field(), source.display(), "does not exist on the host"));
            }
            if !destination.is_absolute() {
                return Err(self.invalid(
                    "mounts[].destination",
                    destination.display(),
                    "must be an absolute path inside the container",
                ));
            }
            binds.push(BindMount {
                source,
                destination: destination.clone(),
                readonly: options.iter().any(|o| o == "ro"),
            });
        }
        Ok(binds)
    }

    fn resources(&self, res: &LinuxResources) -> Result<Resources, OciError> {
        let mut out = Resources::default();
        if let Some(mem) = res.memory() {
            out.memory_limit_bytes = match mem.limit() {
                None | Some(-1) => None,
                Some(v) if v > 0 => Some(v as u64),
                Some(v) => {
                    return Err(self.invalid(
                        "linux.resources.memory.limit",
                        v,
                        "use bytes > 0, or -1 for unlimited",
                    ))
                }
            };
            out.memory_swap_limit_bytes = match mem.swap() {
                None => None,
                Some(-1) => Some(-1),
                Some(v) if v > 0 => {
                    if out
                        .memory_limit_bytes
                        .is_some_and(|limit| (v as u64) < limit)
                    {
                        return Err(self.invalid(
                            "linux.resources.memory.swap",
                            v,
                            "it is memory + swap, so it must be >= memory.limit",
                        ));
                    }
                    Some(v)
                }
                Some(v) => {
                    return Err(self.invalid(
                        "linux.resources.memory.swap",
                        v,
                        "use bytes (memory + swap), or -1 for unlimited swap",
                    ))
                }
            };
        }
        if let Some(cpu) = res.cpu() {
            let period_us = cpu.period().unwrap_or(CpuQuota::DEFAULT_PERIOD_US);
            out.cpu_quota = match cpu.quota() {
                None | Some(-1) | Some(0) => None,
                Some(q) if q > 0 => {
                    let quota_us = q as u64;
                    if !(CpuQuota::MIN_US..=CpuQuota::MAX_QUOTA_US).contains(&quota_us) {
                        return Err(self.invalid(
                            "linux.resources.cpu.quota",
                            q,
                            format!(
                                "the kernel accepts {}..={} µs",
                                CpuQuota::MIN_US,
                                CpuQuota::MAX_QUOTA_US
                            ),
                        ));
                    }
                    if !(CpuQuota::MIN_US..=CpuQuota::MAX_PERIOD_US).contains(&period_us) {
                        return Err(self.invalid(
                            "linux.resources.cpu.period",
                            period_us,
                            format!(
                                "the kernel accepts {}..={} µs",
                                CpuQuota::MIN_US,
                                CpuQuota::MAX_PERIOD_US
                            ),
                        ));
                    }
                    Some(CpuQuota {
                        quota_us,
                        period_us,
                    })
                }
                Some(q) => {
                    return Err(self.invalid(
                        "linux.resources.cpu.quota",
                        q,
                        "use µs > 0, or -1 for unlimited",
                    ))
                }
            };
            if let Some(shares) = cpu.shares() {
                if !(isolab_cgroups::limits::CPU_SHARES_MIN
                    ..=isolab_cgroups::limits::CPU_SHARES_MAX)
                    .contains(&shares)
                {
                    return Err(self.invalid(
                        "linux.resources.cpu.shares",
                        shares,
                        format!(
                            "the kernel accepts {}..={}",
                            isolab_cgroups::limits::CPU_SHARES_MIN,
                            isolab_cgroups::limits::CPU_SHARES_MAX
                        ),
                    ));
                }
                out.cpu_shares = Some(shares);
            }
            out.cpuset_cpus = cpu.cpus().clone().filter(|s| !s.trim().is_empty());
            out.cpuset_mems = cpu.mems().clone().filter(|s| !s.trim().is_empty());
        }
        if let Some(pids) = res.pids() {
            out.pids_limit = match pids.limit() {
                l if l > 0 => Some(l as u64),
                // The runtime spec and runc treat 0 and -1 as "no limit".
                0 | -1 => None,
                l => {
                    return Err(self.invalid(
                        "linux.resources.pids.limit",
                        l,
                        "use a count > 0, or -1 for unlimited",
                    ))
                }
            };
        }
        if let Some(weight) = res.block_io().as_ref().and_then(|b| b.weight()) {
            if !(isolab_cgroups::limits::IO_WEIGHT_MIN..=isolab_cgroups::limits::IO_WEIGHT_MAX)
                .contains(&weight)
            {
                return Err(self.invalid(
                    "linux.resources.blockIO.weight",
                    weight,
                    format!(
                        "the kernel accepts {}..={}",
                        isolab_cgroups::limits::IO_WEIGHT_MIN,
                        isolab_cgroups::limits::IO_WEIGHT_MAX
                    ),
                ));
            }
            out.io_weight = Some(weight);
        }
        Ok(out)
    }
}

/// The mounts every runtime sets up; isolab's spawn path does them itself.
const STANDARD_MOUNTS: &[(&str, &[&str])] = &[
    ("/proc", &["proc"]),
    ("/dev", &["tmpfs"]),
    ("/dev/pts", &["devpts"]),
    ("/dev/shm", &["tmpfs", "shm"]),
    ("/dev/mqueue", &["mqueue"]),
    ("/sys", &["sysfs"]),
    ("/sys/fs/cgroup", &["cgroup", "cgroup2"]),
];

fn is_standard_mount(destination: &Path, typ: &str) -> bool {
    STANDARD_MOUNTS
        .iter()
        .any(|(dest, types)| destination == Path::new(dest) && types.contains(&typ))
}

/// Rootless configs bind the host's own `/sys` (sysfs cannot be mounted there); same place.
fn is_standard_destination(destination: &Path) -> bool {
    STANDARD_MOUNTS
        .iter()
        .any(|(dest, _)| destination == Path::new(dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A bundle directory with `rootfs/` and the given config.json text.
    fn bundle(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    /// A minimal valid config with `linux` replaced by the given JSON object.
    fn config_with_linux(linux: &str, mounts: &str) -> String {
        format!(
            r#"{{"ociVersion": "1.0.2",
                "root": {{"path": "rootfs"}},
                "process": {{"args": ["/bin/echo", "hi"], "cwd": "/work", "user": {{"uid": 1000, "gid": 100}}}},
                "mounts": {mounts},
                "linux": {linux}}}"#
        )
    }

    /// Runs `<tool> spec [extra]` in a fresh directory like a user would, or says why not.
    fn generated_bundle(
        tool: &str,
        extra: &[&str],
    ) -> Option<(tempfile::TempDir, serde_json::Value)> {
        let dir = tempfile::tempdir().unwrap();
        let out = match Command::new(tool)
            .arg("spec")
            .args(extra)
            .current_dir(dir.path())
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipping: cannot run `{tool} spec`: {e}");
                return None;
            }
        };
        assert!(
            out.status.success(),
            "{tool} spec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let raw = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        Some((dir, serde_json::from_str(&raw).unwrap()))
    }

    fn namespaces_in(raw: &serde_json::Value) -> NamespaceSet {
        raw["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ns| ns["type"].as_str().unwrap().parse::<Namespace>().unwrap())
            .collect()
    }

    #[test]
    fn default_bundles_from_crun_and_runc() {
        for tool in ["crun", "runc"] {
            let Some((dir, raw)) = generated_bundle(tool, &[]) else {
                continue;
            };
            let spec = load_bundle(dir.path()).unwrap();
            let abs = std::path::absolute(dir.path()).unwrap();
            assert_eq!(spec.rootfs, RootfsSource::Dir(abs.join("rootfs")), "{tool}");
            assert_eq!(spec.args, vec!["sh".to_string()], "{tool}");
            assert!(
                spec.env.iter().any(|e| e.starts_with("PATH=")),
                "{tool}: {:?}",
                spec.env
            );
            assert!(spec.env.contains(&"TERM=xterm".to_string()), "{tool}");
            assert_eq!(spec.workdir, "/");
            assert!(spec.tty, "{tool}: terminal true");
            assert_eq!(spec.user, (0, 0));
            assert!(spec.readonly_rootfs, "{tool}: root.readonly");
            assert_eq!(spec.hostname.as_deref(), raw["hostname"].as_str(), "{tool}");
            // Exactly the namespaces the tool wrote (crun 1.8 / runc 1.1: pid, network, ipc,
            // uts, mount), whichever version is installed.
            let expected = namespaces_in(&raw);
            assert_eq!(spec.namespaces, expected, "{tool}");
            for ns in [
                Namespace::Pid,
                Namespace::Net,
                Namespace::Ipc,
                Namespace::Uts,
                Namespace::Mount,
            ] {
                assert!(spec.namespaces.contains(ns), "{tool}: {ns:?}");
            }
            assert!(!spec.namespaces.contains(Namespace::User));
            assert_eq!(spec.network, NetworkMode::None);
            assert_eq!(spec.id_mapping, None);
            assert!(
                spec.mounts.is_empty(),
                "{tool}: standard mounts are isolab's own: {:?}",
                spec.mounts
            );
            assert_eq!(spec.resources, Resources::default());
            assert_eq!(spec.seccomp, SeccompMode::Unconfined);
        }
    }

    /// `runc spec --rootless` as an ordinary user (uid 65534 here) writes a one-id mapping of
    /// that user and binds the host's /sys; `crun spec --rootless` (1.8) writes a user namespace
    /// with no mapping at all, which isolab refuses like runc does.
    #[test]
    fn rootless_bundle_from_crun_maps_ids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let as_nobody = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "runc",
                "spec",
                "--rootless",
            ])
            .current_dir(dir.path())
            .output();
        match as_nobody {
            Ok(out) if out.status.success() => {}
            other => {
                eprintln!("skipping: cannot run `runc spec --rootless` as uid 65534: {other:?}");
                return;
            }
        }
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        let spec = load_bundle(dir.path()).unwrap();
        assert!(spec.namespaces.contains(Namespace::User));
        let m = &raw["linux"]["uidMappings"][0];
        assert_eq!(
            spec.id_mapping,
            Some(IdMapping {
                host_base: m["hostID"].as_u64().unwrap() as u32,
                count: m["size"].as_u64().unwrap() as u32,
            })
        );
        assert_eq!(spec.id_mapping.map(|m| m.host_base), Some(65534));
        assert!(
            spec.mounts.is_empty(),
            "the /sys rbind is a standard mount: {:?}",
            spec.mounts
        );

        // The same command run as root: user namespace, no mapping → refused, saying why.
        let Some((dir, _)) = generated_bundle("crun", &["--rootless"]) else {
            return;
        };
        let msg = error_of(dir.path());
        assert!(
            msg.contains("linux.uidMappings = 0 range(s): a user namespace needs"),
            "{msg}"
        );
    }

    #[test]
    fn resources_and_bind_mounts() {
        let host = tempfile::tempdir().unwrap();
        let host_dir = host.path().display().to_string();
        let linux = r#"{
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "time"}],
            "resources": {
                "memory": {"limit": 67108864, "swap": 134217728},
                "cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0", "mems": "0"},
                "pids": {"limit": 64},
                "blockIO": {"weight": 300}
            },
            "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}
        }"#;
        let mounts = format!(
            r#"[{{"destination": "/proc", "type": "proc", "source": "proc"}},
                {{"destination": "/data", "type": "bind", "source": "{host_dir}", "options": ["rbind", "ro"]}},
                {{"destination": "/scratch", "type": "none", "source": "{host_dir}", "options": ["rbind", "rw"]}},
                {{"destination": "/etc/hosts", "source": "rel-hosts", "options": ["bind"]}}]"#
        );
        let dir = bundle(&config_with_linux(linux, &mounts));
        std::fs::write(dir.path().join("rel-hosts"), "127.0.0.1 localhost\n").unwrap();
        let spec = load_bundle(dir.path()).unwrap();

        assert_eq!(spec.args, vec!["/bin/echo".to_string(), "hi".to_string()]);
        assert_eq!(spec.workdir, "/work");
        assert_eq!(spec.user, (1000, 100));
        assert!(!spec.tty && !spec.readonly_rootfs);
        assert_eq!(
            spec.namespaces,
            [Namespace::Pid, Namespace::Mount, Namespace::Time]
                .into_iter()
                .collect()
        );
        assert_eq!(
            spec.network,
            NetworkMode::Host,
            "no network namespace → host network"
        );
        // `..default()` keeps this test compiling when Resources grows a field.
        #[allow(clippy::needless_update)]
        let expected = Resources {
            memory_limit_bytes: Some(64 << 20),
            memory_swap_limit_bytes: Some(128 << 20),
            cpu_quota: Some(CpuQuota {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".to_string()),
            cpuset_mems: Some("0".to_string()),
            pids_limit: Some(64),
            io_weight: Some(300),
            ..Resources::default()
        };
        assert_eq!(spec.resources, expected);
        assert_eq!(spec.seccomp, SeccompMode::Default);
        let abs = std::path::absolute(dir.path()).unwrap();
        assert_eq!(
            spec.mounts,
            vec![
                BindMount {
                    source: host.path().to_path_buf(),
                    destination: "/data".into(),
                    readonly: true
                },
                BindMount {
                    source: host.path().to_path_buf(),
                    destination: "/scratch".into(),
                    readonly: false
                },
                BindMount {
                    source: abs.join("rel-hosts"),
                    destination: "/etc/hosts".into(),
                    readonly: false
                },
            ]
        );
    }

    #[test]
    fn unlimited_values_mean_no_limit() {
        let linux = r#"{"resources": {"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1, "cpus": ""}, "pids": {"limit": 0}}}"#;
        let dir = bundle(&config_with_linux(linux, "[]"));
        let spec = load_bundle(dir.path()).unwrap();
        assert_eq!(
            spec.resources,
            Resources {
                memory_swap_limit_bytes: Some(-1),
                ..Resources::default()
            }
        );
        assert!(spec.namespaces.is_empty());
    }

    /// The error as the CLI would print it.
    fn error_of(dir: &Path) -> String {
        let msg = load_bundle(dir).unwrap_err().to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        msg
    }

    #[test]
    fn invalid_json_names_file_line_and_column() {
        let dir = bundle("{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {\"args\": [\"sh\"]\n");
        let msg = error_of(dir.path());
        let path = std::path::absolute(dir.path()).unwrap().join("config.json");
        assert!(
            msg.starts_with(&format!(
                "bundle {} is not valid OCI runtime JSON: ",
                path.display()
            )),
            "{msg}"
        );
        assert!(msg.contains("line 4"), "{msg}");

        // Well-formed JSON with a wrong type is reported the same way.
        let dir = bundle(r#"{"ociVersion": "1.0.2", "process": {"args": "sh"}}"#);
        let msg = error_of(dir.path());
        assert!(
            msg.contains("not valid OCI runtime JSON") && msg.contains("line 1 column"),
            "{msg}"
        );

        let dir = bundle(&config_with_linux(
            r#"{"namespaces": [{"type": "bogus"}]}"#,
            "[]",
        ));
        assert!(error_of(dir.path()).contains("not valid OCI runtime JSON"));
    }

    #[test]
    fn missing_config_rootfs_and_bundle() {
        let empty = tempfile::tempdir().unwrap();
        let msg = error_of(empty.path());
        assert!(
            msg.contains("no config.json") && msg.contains("crun spec"),
            "{msg}"
        );

        let msg = error_of(&empty.path().join("nope"));
        assert!(
            msg.contains("does not exist or is not a directory"),
            "{msg}"
        );

        let dir = bundle(&config_with_linux("{}", "[]"));
        std::fs::remove_dir(dir.path().join("rootfs")).unwrap();
        let msg = error_of(dir.path());
        assert!(
            msg.starts_with("root filesystem ") && msg.contains("does not exist"),
            "{msg}"
        );

        let dir = bundle(r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}"#);
        assert!(error_of(dir.path()).contains("process is missing"));
        let dir = bundle(
            r#"{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}"#,
        );
        assert!(error_of(dir.path()).contains("root.path is missing"));
        // Required fields inside an object are serde's to report.
        let dir = bundle(
            r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"}}"#,
        );
        let msg = error_of(dir.path());
        assert!(
            msg.contains("not valid OCI runtime JSON: missing field `user`"),
            "{msg}"
        );
    }

    #[test]
    fn unsupported_features_are_refused_clearly() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"namespaces": [{"type": "network", "path": "/var/run/netns/foo"}]}"#,
                "[]",
                "joining an existing network namespace (/var/run/netns/foo) is not supported",
            ),
            (
                r#"{"namespaces": [{"type": "user"}]}"#,
                "[]",
                "a user namespace needs one mapping range",
            ),
            (
                r#"{"namespaces": [{"type": "user"}],
                    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}, {"containerID": 1, "hostID": 100000, "size": 65535}],
                    "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}"#,
                "[]",
                "linux.uidMappings = 2 range(s)",
            ),
            (
                r#"{"namespaces": [{"type": "user"}],
                    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                    "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]}"#,
                "[]",
                "make it equal to uidMappings",
            ),
            (
                r#"{"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}"#,
                "[]",
                "mappings need a \"user\" entry",
            ),
            (
                "{}",
                r#"[{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}]"#,
                "mount at /tmp (type tmpfs) is not supported",
            ),
            (
                "{}",
                r#"[{"destination": "/data", "type": "bind", "source": "/nonexistent-isolab-src"}]"#,
                "does not exist on the host",
            ),
            (
                r#"{"resources": {"cpu": {"quota": 10}}}"#,
                "[]",
                "linux.resources.cpu.quota = 10",
            ),
            (
                r#"{"resources": {"memory": {"limit": 1048576, "swap": 4096}}}"#,
                "[]",
                "must be >= memory.limit",
            ),
            (
                r#"{"resources": {"cpu": {"shares": 1}}}"#,
                "[]",
                "linux.resources.cpu.shares = 1",
            ),
        ];
        for (linux, mounts, expected) in cases {
            let dir = bundle(&config_with_linux(linux, mounts));
            let msg = error_of(dir.path());
            assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
        }

        let dir = bundle(
            r#"{"root": {"path": "rootfs"}, "hostname": "h", "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}"#,
        );
        assert!(error_of(dir.path()).contains("needs a \"uts\" entry"));
        let dir = bundle(
            r#"{"root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "relative", "user": {"uid": 0, "gid": 0}}}"#,
        );
        assert!(error_of(dir.path()).contains("must be an absolute path"));
    }
}
