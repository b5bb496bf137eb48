//! The user's bind mounts (`-v HOST:CONTAINER[:ro]`), after everything isolab mounts itself, so
//! a user mount can cover any of it.

use super::{Fs, MountPlan, PlanError};
use crate::spec::{BindMount, Filesystem};
use nix::mount::MsFlags;
use std::path::Path;

impl MountPlan {
    /// One bind mount: its missing parents, a dir or file matching the source to mount on,
    /// the mount, and a read-only remount if asked.
    pub(super) fn user_bind(&mut self, root: &Path, bind: &BindMount) -> Result<(), PlanError> {
        let rel = bind
            .destination
            .strip_prefix("/")
            .map_err(|_| PlanError::RelativeDestination(bind.destination.clone()))?;
        let target = root.join(rel);
        let mut prefix = root.to_path_buf();
        if let Some(parent) = rel.parent() {
            for comp in parent.components() {
                prefix.push(comp);
                self.mkdir(&prefix);
            }
        }
        if let Some(fs) = &bind.filesystem {
            self.new_filesystem(&target, bind, fs);
            return Ok(());
        }
        if bind.source.is_dir() {
            self.mkdir(&target);
        } else {
            self.touch(&target, format!("creating {}", target.display()));
        }
        self.bind(
            &bind.source,
            &target,
            true,
            format!(
                "bind-mounting {} on {}",
                bind.source.display(),
                bind.destination.display()
            ),
        );
        if bind.readonly {
            self.remount_readonly(
                &target,
                format!("remounting {} read-only", bind.destination.display()),
            );
        }
        Ok(())
    }

    /// A new filesystem (an OCI bundle's `tmpfs` on `/run`, ...) on `target`.
    fn new_filesystem(&mut self, target: &Path, bind: &BindMount, fs: &Filesystem) {
        let source = bind.source.to_string_lossy();
        let data = (!fs.data.is_empty()).then_some(fs.data.as_str());
        self.mount_fresh(
            target,
            Fs {
                source: &source,
                fstype: &fs.fstype,
                flags: MsFlags::from_bits_truncate(fs.flags as libc::c_ulong),
                data,
            },
            &fs.fstype,
        );
    }
}
