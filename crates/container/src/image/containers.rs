//! Container records: what `isolab container ls`, `rm`, `pause` and `commit` find on disk.
//!
//! A kept container is a directory, `containers/<id>/`, with its writable layer (`upper/`,
//! `work/`), the mount point of its merged root (`rootfs/`), its log, `config.json` (what it was
//! made from) and `state.json` (where it is in its life). These outlive the process that ran
//! it, so `commit` can turn its changes into a layer later.
//!
//! A `run --rm` container is gone when its process ends, and its writable layer lives in memory
//! in its own mount namespace, so it needs no directory at all: its whole record is one file,
//! `containers/<id>.json`, written once it has started and unlinked when it ends. That is not
//! just tidier. On an ext4 mounted with `discard` every `rmdir` waits for the discard to reach
//! the disk (10 ms and more here), and a directory-per-container record costs four of them per
//! `--rm` start: the long tail of a start-up is made of exactly such waits.

use super::*;
use crate::utc::UtcDateTime;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;

/// Where one container's files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerDirs {
    /// 12 hex digits.
    pub id: String,
    /// Optional user-given name.
    pub name: Option<String>,
    /// The image it was created from ([`NO_IMAGE`] for a plain-directory rootfs).
    pub image: String,
    /// The image's layer directories at creation time, bottom first.
    pub layers: Vec<PathBuf>,
    /// `containers/<id>`.
    pub dir: PathBuf,
    /// overlayfs upperdir: every change the container makes.
    pub upper: PathBuf,
    /// overlayfs workdir (same filesystem as `upper`).
    pub work: PathBuf,
    /// Empty mount point for the merged root.
    pub rootfs: PathBuf,
    /// Where a detached container's output goes.
    pub log: PathBuf,
}

/// Where a new container's writable layer lives, which decides the directories it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritableLayer {
    /// overlayfs upper and work dirs in the store (kept for `commit` and inspection).
    OnDisk,
    /// A tmpfs inside the container's own mount namespace (`run --rm`): only the mount point.
    InMemory,
    /// No overlay (a plain rootfs directory or an OCI bundle).
    None,
}

/// `containers/<id>/config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// 12 hex digits.
    pub id: String,
    /// Optional user-given name.
    pub name: Option<String>,
    /// The image it was created from.
    pub image: String,
    /// That image's layers when the container was created, bottom first. Recorded so that the
    /// container keeps working (and its layers are kept) if the image is later rebuilt.
    pub layer_ids: Vec<String>,
    /// Milliseconds since the epoch.
    pub created_unix_ms: u64,
    /// What to run, when the runtime recorded it.
    pub spec: Option<ContainerSpec>,
}

/// Life cycle of a container record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Directories exist, nothing started yet.
    #[default]
    Created,
    /// Its init process was started (check `pid` is alive: isolab may have been killed).
    Running,
    /// The workload ended.
    Exited,
}

/// `containers/<id>/state.json`; a missing file means [`ContainerStatus::Created`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerState {
    /// Where it is in its life.
    pub status: ContainerStatus,
    /// The container's init process, as a host pid.
    pub pid: Option<i32>,
    /// The isolab process that started the container and waits for it. While it lives, the
    /// container counts as running even before its own pid is recorded.
    #[serde(default)]
    pub supervisor_pid: Option<i32>,
    /// Exit status (128 + signal when killed by one).
    pub exit_code: Option<i32>,
    /// Milliseconds since the epoch.
    pub started_unix_ms: Option<u64>,
    /// Milliseconds since the epoch.
    pub finished_unix_ms: Option<u64>,
}

fn pid_alive(pid: i32) -> bool {
    // Signal 0 checks existence and permission without sending anything.
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Ok(()) | Err(nix::errno::Errno::EPERM)
    )
}

impl ContainerState {
    /// A live process of a container that says it runs: its init, else its supervising isolab.
    /// A record can say "running" after everything was killed (SIGKILL, reboot); this tells
    /// the two apart.
    pub fn live_pid(&self) -> Option<i32> {
        if self.status != ContainerStatus::Running {
            return None;
        }
        [self.pid, self.supervisor_pid]
            .into_iter()
            .flatten()
            .find(|&pid| pid > 0 && pid_alive(pid))
    }
}

/// A container as recorded on disk.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerRecord {
    /// 12 hex digits.
    pub id: String,
    /// Optional user-given name.
    pub name: Option<String>,
    /// The image it was created from ([`NO_IMAGE`] for a plain-directory rootfs).
    pub image: String,
    /// Creation time, UTC, `YYYY-MM-DD HH:MM:SS`.
    pub created: String,
    /// Its directories.
    pub dirs: ContainerDirs,
    /// config.json.
    pub config: ContainerConfig,
    /// state.json.
    pub state: ContainerState,
    /// A `run --rm` container: one record file, removed with its process.
    pub removed_on_exit: bool,
}

/// `containers/<id>.json`: the whole record of a `run --rm` container.
#[derive(Debug, Serialize, Deserialize)]
struct EphemeralRecord {
    config: ContainerConfig,
    state: ContainerState,
}

impl ContainerRecord {
    /// Whether a process of it (or the isolab waiting for it) is alive.
    pub fn is_running(&self) -> bool {
        self.state.live_pid().is_some()
    }

    /// `created`, `running`, `exited (3)`, or `dead` for a "running" record with no live process.
    pub fn status_text(&self) -> String {
        match self.state.status {
            ContainerStatus::Created => "created".to_string(),
            ContainerStatus::Running if self.is_running() => "running".to_string(),
            ContainerStatus::Running => "dead".to_string(),
            ContainerStatus::Exited => match self.state.exit_code {
                Some(code) => format!("exited ({code})"),
                None => "exited".to_string(),
            },
        }
    }
}

impl Store {
    /// Makes a new container record from `image_name`: see [`Store::create_container_with_spec`].
    pub fn create_container(
        &self,
        image_name: &str,
        name: Option<&str>,
    ) -> Result<ContainerDirs, ImageError> {
        self.create_container_with_spec(image_name, name, None)
    }

    /// Makes a new container record with its writable layer on disk:
    /// `containers/<id>/{upper,work,rootfs}` and `config.json`.
    pub fn create_container_with_spec(
        &self,
        image_name: &str,
        name: Option<&str>,
        spec: Option<&ContainerSpec>,
    ) -> Result<ContainerDirs, ImageError> {
        self.create_container_for_run(image_name, name, spec, WritableLayer::OnDisk)
    }

    /// Makes a new container record: `containers/<id>/`, the directories its writable layer
    /// needs, and `config.json`.
    ///
    /// This is on the container start path, so it does only what it must: read the image's
    /// small manifest, `mkdir` the directories `layer` needs, write one small file (and rename
    /// it into place), `stat` the manifest once more. No fsync, no directory scan, no lock.
    pub fn create_container_for_run(
        &self,
        image_name: &str,
        name: Option<&str>,
        spec: Option<&ContainerSpec>,
        layer: WritableLayer,
    ) -> Result<ContainerDirs, ImageError> {
        if image_name != NO_IMAGE {
            validate_name("image", image_name)?;
        }
        if let Some(name) = name {
            validate_name("container", name)?;
        }
        // The image can be removed or rebuilt while we work (the only race worth handling): we
        // note the manifest's inode, and if it changed by the time our config.json exists, we
        // undo and start over. Manifests are only ever replaced by rename, so an unchanged inode
        // means unchanged layers.
        for _attempt in 0..3 {
            let manifest_path = self.image_path(image_name);
            let (layer_ids, inode) = if image_name == NO_IMAGE {
                (Vec::new(), None)
            } else {
                let (m, inode) = self.read_manifest_and_inode(image_name, &manifest_path)?;
                (m.layers, Some(inode))
            };

            let (id, dir) = self.claim_container_id()?;
            let mut guard = RemoveOnDrop::new(dir.clone());
            if let Some(name) = name {
                guard.name_link = Some(self.claim_container_name(&id, name)?);
            }
            let dirs = self.dirs_for(&id, name.map(str::to_string), image_name, &layer_ids);
            create_layer_dirs(&dirs, layer)?;
            let config = ContainerConfig {
                id: id.clone(),
                name: name.map(str::to_string),
                image: image_name.to_string(),
                layer_ids,
                created_unix_ms: now_unix_ms(),
                spec: spec.cloned(),
            };
            write_config(&dir, &config)?;
            if self.image_unchanged(image_name, &manifest_path, inode)? {
                guard.disarm();
                return Ok(dirs);
            }
            // Rebuilt meanwhile: retry with the new layers.
        }
        Err(ImageError::Io {
            op: "create container from",
            path: self.image_path(image_name),
            source: std::io::Error::other("the image kept changing; retry"),
        })
    }

    /// `names/<name> -> <id>`: symlink fails on an existing name, so the name is ours.
    fn claim_container_name(&self, id: &str, name: &str) -> Result<PathBuf, ImageError> {
        let link = self.names.join(name);
        match std::os::unix::fs::symlink(id, &link) {
            Ok(()) => Ok(link),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Err(ImageError::ContainerNameTaken(name.to_string()))
            }
            Err(e) => Err(ImageError::io("create", &link)(e)),
        }
    }

    /// Whether the image manifest still has the inode noted before the record was made (no
    /// inode: a container on a plain directory, no image to watch).
    fn image_unchanged(
        &self,
        image_name: &str,
        manifest_path: &Path,
        inode: Option<u64>,
    ) -> Result<bool, ImageError> {
        let Some(inode) = inode else {
            return Ok(true);
        };
        match fs::metadata(manifest_path) {
            Ok(m) => Ok(m.ino() == inode),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(ImageError::NoSuchImage(image_name.to_string()))
            }
            Err(e) => Err(ImageError::io("stat", manifest_path)(e)),
        }
    }

    fn read_manifest_and_inode(
        &self,
        image_name: &str,
        manifest_path: &Path,
    ) -> Result<(ImageManifest, u64), ImageError> {
        let mut file = match fs::File::open(manifest_path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ImageError::NoSuchImage(image_name.to_string()))
            }
            Err(e) => return Err(ImageError::io("open", manifest_path)(e)),
        };
        let inode = file
            .metadata()
            .map_err(ImageError::io("stat", manifest_path))?
            .ino();
        let mut bytes = Vec::with_capacity(512);
        file.read_to_end(&mut bytes)
            .map_err(ImageError::io("read", manifest_path))?;
        let manifest = serde_json::from_slice(&bytes).map_err(|source| ImageError::Corrupt {
            path: manifest_path.to_path_buf(),
            source,
        })?;
        Ok((manifest, inode))
    }

    /// `mkdir containers/<random id>`; mkdir fails on an existing name, so the id is ours.
    fn claim_container_id(&self) -> Result<(String, PathBuf), ImageError> {
        let mut last_err = None;
        for _ in 0..16 {
            let id = random_hex(6);
            let dir = self.containers.join(&id);
            match fs::create_dir(&dir) {
                Ok(()) => return Ok((id, dir)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => return Err(ImageError::io("create", &dir)(e)),
            }
        }
        Err(ImageError::io("create", &self.containers)(
            last_err.unwrap_or_else(|| std::io::Error::other("no free id")),
        ))
    }

    fn dirs_for(
        &self,
        id: &str,
        name: Option<String>,
        image: &str,
        layer_ids: &[String],
    ) -> ContainerDirs {
        let dir = self.containers.join(id);
        ContainerDirs {
            id: id.to_string(),
            name,
            image: image.to_string(),
            layers: layer_ids.iter().map(|l| self.layer_dir(l)).collect(),
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            log: dir.join("container.log"),
            dir,
        }
    }

    fn load_container(&self, id: &str) -> Result<ContainerRecord, ImageError> {
        let dir = self.containers.join(id);
        let config: ContainerConfig = match read_json(&dir.join("config.json")) {
            Err(ImageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return self.load_ephemeral(id);
            }
            other => other?,
        };
        let state = match read_json(&dir.join("state.json")) {
            Err(ImageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                ContainerState::default()
            }
            other => other?,
        };
        let dirs = self.dirs_for(id, config.name.clone(), &config.image, &config.layer_ids);
        Ok(ContainerRecord {
            id: id.to_string(),
            name: config.name.clone(),
            image: config.image.clone(),
            created: UtcDateTime::from_unix_s(config.created_unix_ms / 1000).to_string(),
            dirs,
            config,
            state,
            removed_on_exit: false,
        })
    }

    fn load_ephemeral(&self, id: &str) -> Result<ContainerRecord, ImageError> {
        let record: EphemeralRecord = match read_json(&self.ephemeral_path(id)) {
            Err(ImageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Err(ImageError::NoSuchContainer(id.to_string()))
            }
            other => other?,
        };
        let EphemeralRecord { config, state } = record;
        let mut dirs = self.dirs_for(id, config.name.clone(), &config.image, &config.layer_ids);
        dirs.rootfs = self.shared_mount_point();
        Ok(ContainerRecord {
            id: id.to_string(),
            name: config.name.clone(),
            image: config.image.clone(),
            created: UtcDateTime::from_unix_s(config.created_unix_ms / 1000).to_string(),
            dirs,
            config,
            state,
            removed_on_exit: true,
        })
    }

    /// Finds a container by full id, name, or unique id prefix (like docker).
    pub fn container(&self, id_or_name: &str) -> Result<ContainerRecord, ImageError> {
        let not_found = || ImageError::NoSuchContainer(id_or_name.to_string());
        if validate_name("container", id_or_name).is_err() {
            return Err(not_found());
        }
        match self.load_container(id_or_name) {
            Err(ImageError::NoSuchContainer(_)) => {}
            other => return other,
        }
        if let Ok(target) = fs::read_link(self.names.join(id_or_name)) {
            return self.load_container(&target.to_string_lossy());
        }
        if !id_or_name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let entries =
            fs::read_dir(&self.containers).map_err(ImageError::io("list", &self.containers))?;
        let matches: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .map(|f| f.strip_suffix(".json").map(str::to_string).unwrap_or(f))
            .filter(|id| id.starts_with(id_or_name))
            .collect();
        match matches.as_slice() {
            [] => Err(not_found()),
            [id] => self.load_container(id),
            _ => Err(ImageError::AmbiguousContainer {
                prefix: id_or_name.to_string(),
                matches: matches.join(", "),
            }),
        }
    }

    /// Every container record, oldest first. Directories still being created or removed (no
    /// config.json yet, or renamed away) are skipped.
    pub fn list_containers(&self) -> Result<Vec<ContainerRecord>, ImageError> {
        let entries =
            fs::read_dir(&self.containers).map_err(ImageError::io("list", &self.containers))?;
        let mut list = Vec::new();
        for entry in entries {
            let entry = entry.map_err(ImageError::io("list", &self.containers))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with('.') {
                continue;
            }
            let id = file.strip_suffix(".json").unwrap_or(&file);
            match self.load_container(id) {
                Ok(record) => list.push(record),
                Err(ImageError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        list.sort_by_key(|c| (c.config.created_unix_ms, c.dirs.id.clone()));
        Ok(list)
    }

    /// Records a container's state (atomically: readers see the old or the new state).
    pub fn write_state(&self, id: &str, state: &ContainerState) -> Result<(), ImageError> {
        validate_name("container", id)?;
        let dir = self.containers.join(id);
        if !dir.is_dir() {
            return Err(ImageError::NoSuchContainer(id.to_string()));
        }
        write_json_atomic(&dir.join("state.json"), state, true).map(|_| ())
    }

    /// Records that the container's init `pid` (host view) started, supervised by this
    /// process: one small atomic write of state.json. Until then the record reads `created`.
    pub fn mark_started(&self, id: &str, pid: i32) -> Result<(), ImageError> {
        let state = ContainerState {
            status: ContainerStatus::Running,
            pid: Some(pid),
            supervisor_pid: Some(std::process::id() as i32),
            exit_code: None,
            started_unix_ms: Some(now_unix_ms()),
            finished_unix_ms: None,
        };
        self.write_state(id, &state)
    }

    /// Records that the workload ended with `exit_code` (128 + signal when killed).
    pub fn mark_exited(&self, id: &str, exit_code: i32) -> Result<(), ImageError> {
        let mut state = self.load_container(id)?.state;
        state.status = ContainerStatus::Exited;
        state.exit_code = Some(exit_code);
        state.finished_unix_ms = Some(now_unix_ms());
        self.write_state(id, &state)
    }

    /// Replaces a container's config.json (e.g. to record the spec after creation).
    pub fn write_config(&self, config: &ContainerConfig) -> Result<(), ImageError> {
        validate_name("container", &config.id)?;
        let dir = self.containers.join(&config.id);
        if !dir.is_dir() {
            return Err(ImageError::NoSuchContainer(config.id.clone()));
        }
        write_json_atomic(&dir.join("config.json"), config, true).map(|_| ())
    }

    /// Deletes a container's directory (its changes are lost) and frees its name. Refuses while
    /// its process lives or anything is still mounted inside its directory.
    ///
    /// Deleting directories can be slow (each `rmdir` on an ext4 mounted with `discard` waits
    /// for the discard: milliseconds); a caller in a hurry uses [`Store::trash_container`] and
    /// [`Store::empty_trash`] later instead.
    pub fn remove_container(&self, id_or_name: &str) -> Result<(), ImageError> {
        let record = self.container(id_or_name)?;
        if let Some(pid) = record.state.live_pid() {
            return Err(ImageError::ContainerRunning { id: record.id, pid });
        }
        if record.removed_on_exit {
            return self.remove_ephemeral(&record.dirs);
        }
        let trash = self.trash_record(&record)?;
        copy::remove_tree(&trash)
    }

    /// Where every `run --rm` container mounts its in-memory root: one shared, empty directory.
    /// Each container mounts over it inside its own mount namespace, so they never see each
    /// other's mounts, and nothing is created or removed per container.
    fn shared_mount_point(&self) -> PathBuf {
        self.home.join("mnt")
    }

    fn ephemeral_path(&self, id: &str) -> PathBuf {
        self.containers.join(format!("{id}.json"))
    }

    /// Prepares a `run --rm` container: an id and its name reserved, nothing else written (see
    /// the module header). [`Store::record_ephemeral_start`] writes its record once it runs;
    /// [`Store::remove_ephemeral`] removes it.
    pub fn ephemeral_container(
        &self,
        image_name: &str,
        name: Option<&str>,
        layer_ids: &[String],
    ) -> Result<ContainerDirs, ImageError> {
        if let Some(name) = name {
            validate_name("container", name)?;
        }
        let id = random_hex(6);
        let mut dirs = self.dirs_for(&id, name.map(str::to_string), image_name, layer_ids);
        dirs.rootfs = self.shared_mount_point();
        if !layer_ids.is_empty() {
            mkdir_ok_if_exists(&dirs.rootfs).map_err(ImageError::io("create", &dirs.rootfs))?;
        }
        if let Some(name) = name {
            let link = self.names.join(name);
            match std::os::unix::fs::symlink(&id, &link) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(ImageError::ContainerNameTaken(name.to_string()))
                }
                Err(e) => return Err(ImageError::io("create", &link)(e)),
            }
        }
        Ok(dirs)
    }

    /// Writes a `run --rm` container's record, once its init `pid` exists: one small file.
    pub fn record_ephemeral_start(
        &self,
        dirs: &ContainerDirs,
        spec: Option<&ContainerSpec>,
        pid: i32,
    ) -> Result<(), ImageError> {
        let now = now_unix_ms();
        let record = EphemeralRecord {
            config: ContainerConfig {
                id: dirs.id.clone(),
                name: dirs.name.clone(),
                image: dirs.image.clone(),
                layer_ids: dirs
                    .layers
                    .iter()
                    .filter_map(|l| l.file_name().map(|f| f.to_string_lossy().into_owned()))
                    .collect(),
                created_unix_ms: now,
                spec: spec.cloned(),
            },
            state: ContainerState {
                status: ContainerStatus::Running,
                pid: Some(pid),
                supervisor_pid: Some(std::process::id() as i32),
                exit_code: None,
                started_unix_ms: Some(now),
                finished_unix_ms: None,
            },
        };
        let path = self.ephemeral_path(&dirs.id);
        if !write_json_atomic(&path, &record, false)? {
            return Err(ImageError::io("create", &path)(std::io::Error::from(
                ErrorKind::AlreadyExists,
            )));
        }
        Ok(())
    }

    /// Removes what [`Store::ephemeral_container`] and [`Store::record_ephemeral_start`] made.
    pub fn remove_ephemeral(&self, dirs: &ContainerDirs) -> Result<(), ImageError> {
        let path = self.ephemeral_path(&dirs.id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(ImageError::io("remove", &path)(e))
            }
            _ => {}
        }
        if let Some(name) = &dirs.name {
            let link = self.names.join(name);
            if fs::read_link(&link).is_ok_and(|t| t.as_os_str() == dirs.id.as_str()) {
                let _ = fs::remove_file(&link);
            }
        }
        Ok(())
    }

    /// The fast half of [`Store::remove_container`]: checks, frees the name, and renames the
    /// directory to `containers/.rm-<id>`, where nothing looks for containers. Returns that path;
    /// [`Store::empty_trash`] deletes it.
    pub fn trash_container(&self, id_or_name: &str) -> Result<PathBuf, ImageError> {
        let record = self.container(id_or_name)?;
        if let Some(pid) = record.state.live_pid() {
            return Err(ImageError::ContainerRunning { id: record.id, pid });
        }
        self.trash_record(&record)
    }

    /// Frees a stopped container's name and renames its directory into the trash.
    fn trash_record(&self, record: &ContainerRecord) -> Result<PathBuf, ImageError> {
        copy::ensure_nothing_mounted_under(&record.dirs.dir)?;
        if let Some(name) = &record.config.name {
            let link = self.names.join(name);
            if fs::read_link(&link).is_ok_and(|t| t.as_os_str() == record.dirs.id.as_str()) {
                let _ = fs::remove_file(&link);
            }
        }
        let trash = self.containers.join(format!(".rm-{}", record.dirs.id));
        fs::rename(&record.dirs.dir, &trash).map_err(ImageError::io("rename", &record.dirs.dir))?;
        Ok(trash)
    }
}

/// The directories the writable layer needs: all three on disk, only the mount point when the
/// layer lives in memory, none when there is no layer.
fn create_layer_dirs(dirs: &ContainerDirs, layer: WritableLayer) -> Result<(), ImageError> {
    let needed: &[&PathBuf] = match layer {
        WritableLayer::OnDisk => &[&dirs.upper, &dirs.work, &dirs.rootfs],
        WritableLayer::InMemory => &[&dirs.rootfs],
        WritableLayer::None => &[],
    };
    for d in needed {
        fs::create_dir(d).map_err(ImageError::io("create", d))?;
    }
    Ok(())
}

/// `config.json` in a freshly claimed directory. The directory is ours alone until the file
/// appears, and listing skips directories without one, so one write of a temporary plus a
/// rename is enough.
fn write_config(dir: &Path, config: &ContainerConfig) -> Result<(), ImageError> {
    let config_path = dir.join("config.json");
    let bytes = serde_json::to_vec(config).map_err(|e| ImageError::Io {
        op: "serialise",
        path: config_path.clone(),
        source: e.into(),
    })?;
    let tmp = dir.join(".config.json.tmp");
    fs::write(&tmp, &bytes).map_err(ImageError::io("write", &tmp))?;
    fs::rename(&tmp, &config_path).map_err(ImageError::io("rename into", &config_path))
}
