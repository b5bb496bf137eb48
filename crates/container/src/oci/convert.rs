//! From a parsed `config.json` to isolab's [`ContainerSpec`], one section of the file at a time.

use super::OciError;
use crate::capabilities::CapSet;
use crate::namespaces::{Namespace, NamespaceSet};
use crate::spec::{ContainerSpec, IdMapping, NetworkMode, RootfsSource, SeccompMode};
use oci_spec::runtime::{Capabilities, LinuxIdMapping, LinuxNamespaceType, Process, Root, Spec};
use std::path::{Path, PathBuf};

/// Converts one bundle; knows where its `config.json` is so every error can name the file.
pub(super) struct Converter<'a> {
    /// The bundle directory relative paths in the file are resolved against.
    pub(super) dir: &'a Path,
    /// The config file, named by every error.
    pub(super) path: &'a Path,
}

impl<'a> Converter<'a> {
    /// `dir` is the absolute bundle directory, `path` its `config.json`.
    pub(super) fn new(dir: &'a Path, path: &'a Path) -> Self {
        Self { dir, path }
    }

    /// A field whose value cannot be applied: the error names the file, the field, the value
    /// and what to write instead.
    pub(super) fn invalid(
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

    /// A required field that is absent, with a hint of what to put there.
    pub(super) fn missing(&self, field: &'static str, hint: &'static str) -> OciError {
        OciError::MissingField {
            path: self.path.to_path_buf(),
            field,
            hint,
        }
    }

    /// The whole file, section by section, in the order a reader meets them; the first field
    /// that cannot be applied stops the conversion with its one-line error.
    pub(super) fn convert(
        &self,
        oci: &Spec,
    ) -> Result<(ContainerSpec, Vec<&'static str>), OciError> {
        let (root, rootfs) = self.root(oci)?;
        let (process, args) = self.process(oci)?;
        let mut spec = ContainerSpec::new(RootfsSource::Dir(rootfs), args);
        self.apply_process(&mut spec, process)?;
        spec.readonly_rootfs = root.readonly().unwrap_or(false);
        self.apply_namespaces(&mut spec, oci)?;
        spec.mounts = self.mounts(oci.mounts().as_deref().unwrap_or_default())?;
        let linux = oci.linux().as_ref();
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
        let ignored = self.apply_security(&mut spec, oci, process)?;
        Ok((spec, ignored))
    }

    /// `root`: the root filesystem directory, which must already exist.
    fn root<'s>(&self, oci: &'s Spec) -> Result<(&'s Root, PathBuf), OciError> {
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
        Ok((root, rootfs))
    }

    /// `process` and its `args`: a bundle without a command has nothing to run.
    fn process<'s>(&self, oci: &'s Spec) -> Result<(&'s Process, Vec<String>), OciError> {
        let process = oci.process().as_ref().ok_or_else(|| {
            self.missing(
                "process",
                "a bundle to run needs process.args, e.g. [\"sh\"]",
            )
        })?;
        Ok((process, self.args(process)?))
    }

    /// `process.args`, which must name a command.
    pub(super) fn args(&self, process: &Process) -> Result<Vec<String>, OciError> {
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(self.missing("process.args", "give the command to run, e.g. [\"sh\"]"));
        }
        Ok(args)
    }

    /// `process.cwd`, which must be absolute.
    pub(super) fn cwd(&self, process: &Process) -> Result<String, OciError> {
        let cwd = process.cwd();
        if !cwd.is_absolute() {
            return Err(self.invalid("process.cwd", cwd.display(), "must be an absolute path"));
        }
        Ok(cwd.to_string_lossy().into_owned())
    }

    /// `process.capabilities.bounding`, if the file gives one.
    pub(super) fn bounding(&self, process: &Process) -> Result<Option<CapSet>, OciError> {
        match process
            .capabilities()
            .as_ref()
            .and_then(|c| c.bounding().as_ref())
        {
            None => Ok(None),
            Some(caps) => self
                .cap_set(caps, "process.capabilities.bounding")
                .map(Some),
        }
    }

    /// The rest of `process`: environment, working directory, user, terminal, bounding set.
    fn apply_process(&self, spec: &mut ContainerSpec, process: &Process) -> Result<(), OciError> {
        spec.env = process.env().clone().unwrap_or_default();
        spec.workdir = self.cwd(process)?;
        spec.user = (process.user().uid(), process.user().gid());
        spec.umask = process.user().umask();
        spec.tty = process.terminal().unwrap_or(false);
        // The bounding set is the ceiling root inside can never exceed; without a
        // `capabilities` object the process keeps all of them, as runc does.
        spec.capabilities = self.bounding(process)?.unwrap_or(CapSet::all());
        Ok(())
    }

    /// A capability set named in the file; an unknown name is refused with the field it is in.
    pub(super) fn cap_set(&self, caps: &Capabilities, field: &str) -> Result<CapSet, OciError> {
        let names: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        CapSet::empty()
            .adjust(&names, &[])
            .map_err(|e| self.invalid(field, e.0.clone(), "unknown capability"))
    }

    /// `linux.namespaces` and what depends on them: the network mode, the hostname (needs a
    /// UTS namespace) and the id mappings (need a user namespace).
    fn apply_namespaces(&self, spec: &mut ContainerSpec, oci: &Spec) -> Result<(), OciError> {
        let linux = oci.linux().as_ref();
        let (created, joined) = self.namespaces(linux.and_then(|l| l.namespaces().as_deref()))?;
        spec.namespaces = created;
        spec.joined_namespaces = joined;
        // Without a mount namespace of its own a container cannot pivot_root (that would move
        // the host's root): it is chroot'ed into its rootfs, as runc does.
        if !spec.has_mount_ns() {
            spec.root_mode = crate::RootMode::Chroot;
        }
        spec.network = if spec.namespaces.contains(Namespace::Net) {
            NetworkMode::None
        } else {
            NetworkMode::Host
        };
        if let Some(hostname) = oci.hostname() {
            if !spec.namespaces.contains(Namespace::Uts) && !spec.joins(Namespace::Uts) {
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
        Ok(())
    }

    /// The namespaces to create, and those to join by path. A user namespace cannot be joined
    /// (its id mappings are what the rest of the setup relies on).
    fn namespaces(
        &self,
        list: Option<&[oci_spec::runtime::LinuxNamespace]>,
    ) -> Result<(NamespaceSet, Vec<(Namespace, PathBuf)>), OciError> {
        let mut set = NamespaceSet::empty();
        let mut joined = Vec::new();
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
            match ns.path() {
                Some(ns_path) if kind == Namespace::User => {
                    return Err(OciError::JoinNamespace {
                        path: self.path.to_path_buf(),
                        namespace: kind.name(),
                        ns_path: ns_path.clone(),
                    })
                }
                Some(ns_path) if !ns_path.exists() => {
                    return Err(self.invalid(
                        format!("linux.namespaces[{}].path", kind.name()),
                        ns_path.display(),
                        "does not exist (the process owning that namespace is gone?)",
                    ))
                }
                Some(ns_path) => joined.push((kind, ns_path.clone())),
                None => set.insert(kind),
            }
        }
        Ok((set, joined))
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
}
