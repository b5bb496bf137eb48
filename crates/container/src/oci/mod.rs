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
//! - `linux.seccomp` present → isolab's own default filter ([`SeccompMode::Default`](crate::spec::SeccompMode::Default)); the
//!   profile's rules themselves are not interpreted (the [`crate::seccomp`] module says why isolab
//!   compiles one fixed policy once);
//! - `process.capabilities.bounding` → the container's bounding set (absent: all, as runc);
//! - the other capability sets, rlimits, noNewPrivileges, oomScoreAdj, additionalGids,
//!   maskedPaths/readonlyPaths, devices and sysctl: see the `security` module;
//! - not applied, and reported in [`Bundle::ignored`]: AppArmor, SELinux, hooks, and the other
//!   fields listed there;
//! - refused with a one-line error naming the field: joining an existing namespace (`path`),
//!   several or non-identical id-mapping ranges, a mount without a type, out-of-range
//!   resource values, invalid JSON. Other mounts are bind mounts or new filesystems
//!   (`tmpfs`, `mqueue`, ...) with their flags and options.

//!
//! The conversion is split by section of the file: `convert` walks it top to bottom, `mounts`
//! sorts the mount list, `resources` checks the cgroup limits and `security` applies what the
//! process may do.

mod convert;
mod mounts;
mod process;
mod resources;
mod security;

pub use process::{load_process, ProcessConfig};

use crate::spec::ContainerSpec;
use convert::Converter;
use oci_spec::runtime::Spec;
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
    #[error("{path}: mount at {destination} (type {mount_type}) is not supported: give a filesystem type (tmpfs, ...) or \"bind\" with a source path")]
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
    /// The file as parsed, for what a caller acts on itself (an OCI runtime's hooks,
    /// annotations, `cgroupsPath`, `ociVersion`), so it is read once.
    pub config: Spec,
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
    let (spec, ignored) = Converter::new(&dir, &path).convert(&oci)?;
    Ok(Bundle {
        spec,
        ignored,
        config: oci,
    })
}

#[cfg(test)]
mod tests;
