//! Which `mounts` entries of a bundle become bind mounts or new filesystems, and which isolab
//! provides itself.
//!
//! A bind mount's options reduce to read-only or not. Any other entry (`tmpfs` on `/run`,
//! `mqueue`, ...) is a new filesystem: its options split into `MS_*` flags, which mount(2)
//! takes as bits, and the rest, which it passes to the filesystem as text (`size=64m`).

use super::convert::Converter;
use super::OciError;
use crate::spec::{BindMount, Filesystem};
use oci_spec::runtime::Mount;
use std::path::Path;

impl Converter<'_> {
    pub(super) fn mounts(&self, mounts: &[Mount]) -> Result<Vec<BindMount>, OciError> {
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
                binds.push(self.filesystem(m, typ, options)?);
                continue;
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
                filesystem: None,
            });
        }
        Ok(binds)
    }

    /// A mount of a new filesystem (`tmpfs`, `mqueue`, ...).
    fn filesystem(&self, m: &Mount, typ: &str, options: &[String]) -> Result<BindMount, OciError> {
        let destination = m.destination();
        if typ.is_empty() {
            return Err(OciError::UnsupportedMount {
                path: self.path.to_path_buf(),
                destination: destination.clone(),
                mount_type: "none".to_string(),
            });
        }
        if !destination.is_absolute() {
            return Err(self.invalid(
                "mounts[].destination",
                destination.display(),
                "must be an absolute path inside the container",
            ));
        }
        let (flags, data) = split_options(options);
        Ok(BindMount {
            source: m.source().clone().unwrap_or_else(|| typ.into()),
            destination: destination.clone(),
            readonly: false,
            filesystem: Some(Filesystem {
                fstype: typ.to_string(),
                flags,
                data,
            }),
        })
    }
}

/// mount(8)'s flag options and the `MS_*` bit each sets (`true`) or clears (`false`).
const FLAG_OPTIONS: &[(&str, u64, bool)] = &[
    ("ro", libc::MS_RDONLY, true),
    ("rw", libc::MS_RDONLY, false),
    ("nosuid", libc::MS_NOSUID, true),
    ("suid", libc::MS_NOSUID, false),
    ("nodev", libc::MS_NODEV, true),
    ("dev", libc::MS_NODEV, false),
    ("noexec", libc::MS_NOEXEC, true),
    ("exec", libc::MS_NOEXEC, false),
    ("sync", libc::MS_SYNCHRONOUS, true),
    ("async", libc::MS_SYNCHRONOUS, false),
    ("dirsync", libc::MS_DIRSYNC, true),
    ("noatime", libc::MS_NOATIME, true),
    ("atime", libc::MS_NOATIME, false),
    ("nodiratime", libc::MS_NODIRATIME, true),
    ("diratime", libc::MS_NODIRATIME, false),
    ("relatime", libc::MS_RELATIME, true),
    ("norelatime", libc::MS_RELATIME, false),
    ("strictatime", libc::MS_STRICTATIME, true),
    ("nostrictatime", libc::MS_STRICTATIME, false),
];

/// Options that only concern propagation or bind mounts, meaningless for a new filesystem in
/// a private mount namespace.
const IGNORED_OPTIONS: &[&str] = &[
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "defaults",
    "tmpcopyup",
];

/// Splits mount options into `MS_*` flags and the filesystem's own option text.
pub(super) fn split_options(options: &[String]) -> (u64, String) {
    let mut flags = 0u64;
    let mut data: Vec<&str> = Vec::new();
    for o in options {
        if let Some((_, bit, set)) = FLAG_OPTIONS.iter().find(|(name, ..)| name == o) {
            flags = if *set { flags | bit } else { flags & !bit };
        } else if !IGNORED_OPTIONS.contains(&o.as_str()) {
            data.push(o);
        }
    }
    (flags, data.join(","))
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
