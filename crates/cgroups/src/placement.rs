//! Where a cgroup is placed when the caller's own cgroup must not matter.
//!
//! [`CgroupRoot::detect`] puts containers under the *caller's* cgroup (`<own>/isolab/<name>`),
//! which suits a launcher that lives as long as its container. An OCI runtime is different:
//! `create`, `kill` and `delete` are separate processes, started by whoever (podman's conmon,
//! a shell, a test), each sitting in a different cgroup, and all of them must find the same
//! directory. So the runtime places its containers relative to each hierarchy's root instead.

use crate::{CgroupError, CgroupRoot};
use std::path::{Component, Path};

impl CgroupRoot {
    /// This host's layout, with cgroups created under `<hierarchy root>/isolab/<name>` in
    /// every hierarchy, whichever cgroup the calling process is in.
    pub fn detect_at_hierarchy_roots() -> Result<CgroupRoot, CgroupError> {
        let mountinfo = crate::detect::read_proc("/proc/self/mountinfo")?;
        // No line for any hierarchy: the caller counts as sitting at `/` in each.
        CgroupRoot::from_proc_text(crate::detect::detect_mode()?, &mountinfo, "")
    }

    /// Like [`CgroupRoot::detect_at_hierarchy_roots`], with cgroups created under
    /// `<hierarchy root>/<group>/<name>` instead: an OCI `cgroupsPath` of `/a/b/c` is group
    /// `a/b` and name `c` (the runtime specification takes an absolute path relative to each
    /// hierarchy's root; isolab places a relative one there too, as its own cgroup is `/`).
    pub fn detect_with_group(group: &Path) -> Result<CgroupRoot, CgroupError> {
        if group
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(CgroupError::Detect(format!(
                "cgroup parent {} must be a plain relative path (no '..', no '.')",
                group.display()
            )));
        }
        let mut root = CgroupRoot::detect_at_hierarchy_roots()?;
        for h in &mut root.v1 {
            h.isolab_dir = h.own_dir.join(group);
        }
        if let Some(v2) = &mut root.v2 {
            v2.group = group.to_path_buf();
        }
        Ok(root)
    }
}
