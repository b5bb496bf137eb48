//! The steps of [`crate::hardening`] and the namespaced sysctls, applied to the pseudo-
//! filesystems before the user's mounts: sysctls first (while /proc/sys is still writable),
//! then device nodes, masked paths and read-only paths.

use super::step::Step;
use super::{cstr, MountPlan, PlanError};
use crate::spec::ContainerSpec;
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// `path`, absolute inside the container, as a host path below `root`.
fn inside(root: &Path, path: &str) -> Result<PathBuf, PlanError> {
    let rel = Path::new(path)
        .strip_prefix("/")
        .map_err(|_| PlanError::RelativePath(path.to_string()))?;
    Ok(root.join(rel))
}

impl MountPlan {
    /// Namespaced sysctls, then the nodes, masked and read-only paths of the spec's hardening.
    pub(super) fn harden(
        &mut self,
        spec: &ContainerSpec,
        root: &Path,
        in_userns: bool,
    ) -> Result<(), PlanError> {
        for (key, value) in &spec.sysctl {
            let file = root.join("proc/sys").join(key.replace('.', "/"));
            self.push(
                Step::WriteFile(
                    cstr(&file),
                    CString::new(value.as_str()).unwrap_or_default(),
                ),
                format!("setting the sysctl {key}={value}"),
            );
        }
        for node in &spec.hardening.nodes {
            self.hardening_node(node, inside(root, &node.path)?, in_userns);
        }
        for p in &spec.hardening.masked_paths {
            let path = inside(root, p)?;
            self.push(Step::Mask(cstr(&path)), format!("masking {p}"));
        }
        for p in &spec.hardening.readonly_paths {
            let path = inside(root, p)?;
            self.push(Step::ReadOnly(cstr(&path)), format!("making {p} read-only"));
        }
        Ok(())
    }

    /// One extra device node at `path`: made with mknod, or in a user namespace (where mknod
    /// is forbidden) the host's node bind-mounted.
    fn hardening_node(
        &mut self,
        node: &crate::hardening::DeviceNode,
        path: PathBuf,
        in_userns: bool,
    ) {
        if in_userns {
            self.touch(&path, format!("creating {}", node.path));
            self.bind(
                Path::new(&node.path),
                &path,
                false,
                format!("bind-mounting the host's {}", node.path),
            );
        } else {
            self.push(
                Step::Node {
                    path: cstr(&path),
                    kind: node.kind,
                    dev: libc::makedev(node.major, node.minor),
                    mode: node.mode & 0o7777,
                    owner: (node.uid, node.gid),
                },
                format!("creating the device node {}", node.path),
            );
        }
    }
}
