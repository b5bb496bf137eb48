//! Which `mounts` entries of a bundle become bind mounts, and which isolab provides itself.

use super::convert::Converter;
use super::OciError;
use crate::spec::BindMount;
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
