//! Images as stacks of read-only layers; containers as one thin writable layer on top.
//!
//! # What an image is
//!
//! An image is nothing but an ordered list of directories, the *layers*. Each layer holds the files
//! that changed relative to the layers below it. Layers are never modified once written, so any
//! number of images and containers can share them: `ubuntu` and `ubuntu + python` share the whole
//! `ubuntu` stack, and a hundred containers of one image cost one copy of its files on disk.
//!
//! # How the kernel stacks them: overlayfs
//!
//! `mount -t overlay overlay -o lowerdir=L3:L2:L1,upperdir=U,workdir=W MERGED` shows at `MERGED`
//! the union of the directories. Note the order: the *leftmost* lower dir is the *top* one (this
//! store keeps layers bottom-first, so the runtime reverses them when it builds the option string).
//!
//! * **lowerdir**: the read-only layers. A name found in a higher layer hides the same name below.
//! * **upperdir**: the one writable directory, private to the container. Every change lands here.
//! * **workdir**: an empty scratch directory on the same filesystem as the upper dir. overlayfs
//!   prepares files there and then `rename(2)`s them into the upper dir, so that a copy-up or a
//!   whiteout appears atomically. The kernel leaves a `work/work` directory with mode 000 behind;
//!   root removes it like anything else.
//!
//! Reading a file finds it in the highest layer that has it. *Writing* a file that lives only in a
//! lower layer triggers **copy-up**: the kernel copies the whole file (data, mode, owner, xattrs) into
//! the upper dir, then the write goes to that copy; the lower layer is never touched. That is why
//! the first write to a big file in a container is slow and later ones are not.
//!
//! Deleting cannot remove a file from a read-only layer, so overlayfs records the deletion in the
//! upper dir instead:
//!
//! * a **whiteout** is a character device with device number 0/0 under the deleted name. When the
//!   kernel meets it in a higher layer it reports "no such file", hiding every copy below.
//! * an **opaque directory** is a directory carrying the xattr `trusted.overlay.opaque="y"`. It is
//!   created when a directory is removed and a new one made under the same name (`rm -r d; mkdir
//!   d`): the new `d` must not show the old `d`'s children, so lookups stop at it and do not merge
//!   with lower layers. In a user namespace an unprivileged mounter may not write `trusted.*`
//!   xattrs; mounting with the `userxattr` option makes overlayfs use `user.overlay.*` instead.
//!
//! # Why `commit` is "freeze the upper dir"
//!
//! After a container ran, its upper dir is exactly the diff between the image and the container's
//! filesystem: new and modified files as plain files, deletions as whiteouts and opaque dirs, in
//! the very format overlayfs reads from lower layers. So committing a container (the articles'
//! "docker commit ≈ git commit") is: copy the upper dir, as is, into a new read-only layer, and
//! write a new image = the container's layers + that layer. Used as a lower layer, the whiteouts
//! keep hiding the deleted files. Only overlayfs bookkeeping xattrs (`origin`, `impure`, ...),
//! which point at inodes of the old mount, are dropped; opaque markers are kept in both the
//! `trusted.` and `user.` namespaces so the layer works with and without `userxattr`.
//!
//! # On disk (under `$ISOLAB_HOME`, default `/var/lib/isolab`)
//!
//! ```text
//! layers/<id>/            layer content, read-only by convention (id: 16 random hex digits)
//! layers/<id>.json        size, creation time and origin of that layer
//! images/<name>.json      ordered layer ids (bottom first), created time, size, parent, created_by
//! containers/<id>/        one container (id: 12 random hex digits)
//!     upper/ work/        its overlayfs upper and work dirs
//!     rootfs/             empty mount point for the merged view
//!     config.json         image name, layer ids, the ContainerSpec
//!     state.json          created/running/exited, pid, exit code, times
//!     container.log       the workload's output when detached
//! names/<name> -> <id>    container names; a symlink so that claiming a name is atomic
//! .lock                   flock(2) held while images and layers change
//! ```
//!
//! Concurrency: every JSON file is written to a temporary name and renamed into place, so a
//! reader sees the old or the new content, never half. Container ids are claimed with `mkdir`
//! and names with `symlink`, both of which fail if the name exists, so two `isolab` processes
//! can create containers at the same time without a lock. Image changes (import, commit, rm)
//! take `.lock`.

mod busybox;
mod containers;
mod copy;
mod tarball;
#[cfg(test)]
mod tests;

pub use containers::{
    ContainerConfig, ContainerDirs, ContainerRecord, ContainerState, ContainerStatus, WritableLayer,
};

use crate::spec::ContainerSpec;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that moves the store.
pub const HOME_ENV: &str = "ISOLAB_HOME";
/// Where the store lives when `$ISOLAB_HOME` is unset.
pub const DEFAULT_HOME: &str = "/var/lib/isolab";
/// The image built from the host's static busybox, used when none is named.
pub const DEFAULT_IMAGE: &str = "busybox";
/// Where Debian's busybox-static puts the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";
/// The image name recorded for a container that runs on a plain directory (`--rootfs`, an OCI
/// bundle) instead of image layers.
pub const NO_IMAGE: &str = "-";

/// Longest image or container name.
const MAX_NAME_LEN: usize = 64;

/// Everything that can go wrong with the store; each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A name outside `[a-z0-9][a-z0-9_.-]*`.
    #[error(
        "invalid {kind} name '{name}': use 1-64 characters of a-z 0-9 _ . -, starting with a letter or digit"
    )]
    InvalidName {
        /// "image" or "container".
        kind: &'static str,
        /// The rejected name.
        name: String,
    },
    /// `images/<name>.json` does not exist.
    #[error(
        "no image named '{0}': list them with `isolab image ls`, or `isolab image import DIR|TAR {0}`"
    )]
    NoSuchImage(String),
    /// import/commit to a name that is taken.
    #[error(
        "an image named '{0}' already exists: remove it with `isolab image rm {0}` or choose another name"
    )]
    ImageExists(String),
    /// `image rm` of an image some container was created from.
    #[error(
        "image '{image}' is used by container(s) {containers}: remove them first with `isolab container rm`"
    )]
    ImageInUse {
        /// The image.
        image: String,
        /// Ids of the containers using it, comma-separated.
        containers: String,
    },
    /// No container with that id, id prefix or name.
    #[error("no container '{0}': list them with `isolab container ls`")]
    NoSuchContainer(String),
    /// An id prefix matching more than one container.
    #[error("'{prefix}' matches several containers ({matches}): give more characters of the id")]
    AmbiguousContainer {
        /// What was asked for.
        prefix: String,
        /// The matching ids.
        matches: String,
    },
    /// `create_container` with a name another container has.
    #[error(
        "container name '{0}' is already in use: choose another name or remove that container with `isolab container rm {0}`"
    )]
    ContainerNameTaken(String),
    /// Commit or removal of a container whose process is alive.
    #[error("container {id} is still running (pid {pid}): stop it first")]
    ContainerRunning {
        /// Container id.
        id: String,
        /// Its init process on the host (or the isolab supervising it).
        pid: i32,
    },
    /// Commit of a container that ran on a plain directory, not on image layers.
    #[error(
        "container {0} ran on a plain directory, not on image layers, so it has no changes to commit: import that directory with `isolab image import DIR NAME` instead"
    )]
    NotFromImage(String),
    /// Something is mounted inside a directory about to be deleted.
    #[error(
        "{0} is still mounted: refusing to delete through a mount point; unmount it (`umount -l {0}`) and retry"
    )]
    StillMounted(PathBuf),
    /// The import source does not exist.
    #[error(
        "import source {0} does not exist: give a directory or a .tar / .tar.gz file (for example from `docker export`)"
    )]
    NoSource(PathBuf),
    /// The import source is neither a directory nor a tar archive.
    #[error(
        "import source {path} is not a directory or a tar archive ({reason}): give a rootfs directory or a .tar / .tar.gz file"
    )]
    UnsupportedSource {
        /// The source.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A tar entry with `..` or one whose parent resolves outside the layer.
    #[error(
        "tar entry '{entry}' in {archive} would land outside the layer: refusing to import this archive"
    )]
    UnsafeTarEntry {
        /// The archive.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
    },
    /// A tar archive that cannot be read.
    #[error("cannot read tar archive {archive}: {source}; is it a complete .tar or .tar.gz?")]
    BadTar {
        /// The archive.
        archive: PathBuf,
        /// What the tar reader said.
        source: std::io::Error,
    },
    /// The host's busybox is missing, not runnable or dynamically linked.
    #[error(
        "cannot build the default image from {path}: {reason}; install busybox-static (the setup step does) or import an image"
    )]
    NoBusybox {
        /// The busybox looked at.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An upper dir written with overlay features a plain copy cannot freeze.
    #[error(
        "cannot commit {path}: it carries the overlay xattr '{xattr}' (the container's overlay was mounted with metacopy or redirect_dir on); mount without them to commit"
    )]
    UnsupportedOverlayFeature {
        /// File in the upper dir.
        path: PathBuf,
        /// The xattr found.
        xattr: String,
    },
    /// A file whose owner an unprivileged copy cannot give its copy.
    #[error(
        "cannot copy {path}: it is owned by {uid}:{gid}, and without root a copy can only be owned by you ({caller_uid}) and your groups; run as root to keep other owners"
    )]
    OwnerNotRepresentable {
        /// The source file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
        /// The copying user.
        caller_uid: u32,
    },
    /// The home directory cannot be created or written.
    #[error(
        "cannot use {home} as isolab's store: {source}; run as root or point ${HOME_ENV} at a writable directory"
    )]
    HomeUnusable {
        /// The home.
        home: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A store file that does not parse.
    #[error(
        "corrupt store file {path}: {source}; remove it (or the object it describes) and retry"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What serde said.
        source: serde_json::Error,
    },
    /// Any other I/O error, with the operation and the path it was about.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("create", "copy", ...).
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ImageError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.to_path_buf();
        move |source| ImageError::Io { op, path, source }
    }

    pub(crate) fn nix(op: &'static str, path: &Path) -> impl FnOnce(nix::Error) -> ImageError {
        let path = path.to_path_buf();
        move |errno| ImageError::Io {
            op,
            path,
            source: std::io::Error::from(errno),
        }
    }
}

/// One image: what `images/<name>.json` says, plus where its layers are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The image's name.
    pub name: String,
    /// Layer ids, bottom first.
    pub layer_ids: Vec<String>,
    /// Layer directories, bottom first (what [`crate::RootfsSource::Layers`] takes).
    pub layers: Vec<PathBuf>,
    /// Seconds since the epoch.
    pub created_unix_s: u64,
    /// Apparent size of all layers' regular files.
    pub size_bytes: u64,
    /// The image a commit started from.
    pub parent: Option<String>,
    /// How the top layer was made (the commit message, or the import command).
    pub created_by: String,
}

/// The JSON form of an image; layer paths are derived from the home, never stored.
#[derive(Debug, Serialize, Deserialize)]
struct ImageManifest {
    name: String,
    layers: Vec<String>,
    created_unix_s: u64,
    size_bytes: u64,
    parent: Option<String>,
    created_by: String,
}

/// `layers/<id>.json`: facts about one layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The layer id.
    pub id: String,
    /// Apparent size of its regular files (hard links counted once).
    pub size_bytes: u64,
    /// Seconds since the epoch.
    pub created_unix_s: u64,
    /// How it was made.
    pub created_by: String,
}

/// Splits seconds since the epoch into UTC `(year, month, day, hour, minute, second)` without
/// a date library: days → civil date with Howard Hinnant's `civil_from_days` algorithm (eras of
/// 400 years, March-based years so that the leap day is the last day of the year).
pub fn utc_fields(unix_s: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = (unix_s / 86_400) as i64;
    let rem = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem / 60 % 60, rem % 60)
}

/// Formats seconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_unix_utc(unix_s: u64) -> String {
    let (year, month, day, h, m, s) = utc_fields(unix_s);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}")
}

/// The on-disk store of layers, images and containers under one home directory.
#[derive(Debug, Clone)]
pub struct Store {
    home: PathBuf,
    layers: PathBuf,
    images: PathBuf,
    containers: PathBuf,
    names: PathBuf,
}

/// Checks `[a-z0-9][a-z0-9_.-]*`, at most 64 characters: safe as a file name, no `..`, no `/`.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), ImageError> {
    let bytes = name.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && bytes.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(ImageError::InvalidName {
            kind,
            name: name.to_string(),
        })
    }
}

/// `n` random bytes as lowercase hex, from getrandom(2): one syscall, no file descriptor.
pub(crate) fn random_hex(n_bytes: usize) -> String {
    let mut buf = [0u8; 16];
    let buf = &mut buf[..n_bytes.min(16)];
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes for the whole call.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got > 0 {
            filled += got.unsigned_abs();
        } else if std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            // getrandom only fails before the entropy pool is initialised; an id then only
            // needs to be unlikely to collide, and mkdir/link catch the collisions anyway.
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                ^ u128::from(std::process::id()) << 64;
            for (i, b) in rest.iter_mut().enumerate() {
                *b = (nanos >> ((i % 16) * 8)) as u8;
            }
            break;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_unix_s() -> u64 {
    now_unix_ms() / 1000
}

/// Serialises `value` to a temporary file beside `path`, then moves it into place. With
/// `replace`, `rename(2)` swaps it in atomically; without, `link(2)` refuses if `path` exists, so
/// two writers cannot both "create" the same file. Returns false when `path` already existed.
fn write_json_atomic<T: Serialize>(
    path: &Path,
    value: &T,
    replace: bool,
) -> Result<bool, ImageError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ImageError::Io {
        op: "serialise",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", random_hex(6)));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(ImageError::io("create", &tmp))?;
        file.write_all(&bytes)
            .map_err(ImageError::io("write", &tmp))?;
        drop(file);
        if replace {
            fs::rename(&tmp, path).map_err(ImageError::io("rename into", path))?;
            Ok(true)
        } else {
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(ImageError::io("link into", path)(e)),
            }
        }
    })();
    if !replace || result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ImageError> {
    let bytes = fs::read(path).map_err(ImageError::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates one directory; an existing one is fine.
fn mkdir_ok_if_exists(path: &Path) -> std::io::Result<()> {
    match fs::create_dir(path) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Removes a directory it created unless disarmed: keeps failed imports and container
/// creations from leaving half-built directories behind.
struct RemoveOnDrop {
    path: Option<PathBuf>,
    name_link: Option<PathBuf>,
}

impl RemoveOnDrop {
    fn new(path: PathBuf) -> Self {
        RemoveOnDrop {
            path: Some(path),
            name_link: None,
        }
    }

    fn disarm(mut self) {
        self.path = None;
        self.name_link = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(link) = self.name_link.take() {
            let _ = fs::remove_file(link);
        }
        if let Some(path) = self.path.take() {
            let _ = copy::remove_tree(&path);
        }
    }
}

impl Store {
    /// `$ISOLAB_HOME`, or `/var/lib/isolab`.
    pub fn default_home() -> PathBuf {
        match std::env::var_os(HOME_ENV) {
            Some(home) if !home.is_empty() => PathBuf::from(home),
            // A rootless user keeps images and containers in their own data directory.
            _ if !nix::unistd::Uid::effective().is_root() => std::env::var_os("XDG_DATA_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .map(|d| d.join("isolab"))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_HOME)),
            _ => PathBuf::from(DEFAULT_HOME),
        }
    }

    /// Opens the store at `home`, creating its directories if needed. Cheap enough for the
    /// container start path: five `mkdir`s that usually fail with EEXIST, nothing else.
    pub fn open(home: &Path) -> Result<Store, ImageError> {
        let unusable = |source| ImageError::HomeUnusable {
            home: home.to_path_buf(),
            source,
        };
        match fs::create_dir(home) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(home).map_err(unusable)?
            }
            Err(e) => return Err(unusable(e)),
        }
        let store = Store {
            home: home.to_path_buf(),
            layers: home.join("layers"),
            images: home.join("images"),
            containers: home.join("containers"),
            names: home.join("names"),
        };
        for dir in [
            &store.layers,
            &store.images,
            &store.containers,
            &store.names,
        ] {
            mkdir_ok_if_exists(dir).map_err(unusable)?;
        }
        Ok(store)
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Directory of one layer.
    pub fn layer_dir(&self, id: &str) -> PathBuf {
        self.layers.join(id)
    }

    fn image_path(&self, name: &str) -> PathBuf {
        self.images.join(format!("{name}.json"))
    }

    /// Holds the store-wide lock until dropped; taken by every change to images and layers.
    fn lock(&self) -> Result<nix::fcntl::Flock<fs::File>, ImageError> {
        let path = self.home.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ImageError::io("open", &path))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| ImageError::nix("flock", &path)(errno))
    }

    fn image_from_manifest(&self, m: ImageManifest) -> Image {
        Image {
            layers: m.layers.iter().map(|id| self.layer_dir(id)).collect(),
            name: m.name,
            layer_ids: m.layers,
            created_unix_s: m.created_unix_s,
            size_bytes: m.size_bytes,
            parent: m.parent,
            created_by: m.created_by,
        }
    }

    /// Looks an image up by name.
    pub fn image(&self, name: &str) -> Result<Image, ImageError> {
        validate_name("image", name)?;
        let path = self.image_path(name);
        match read_json::<ImageManifest>(&path) {
            Ok(m) => Ok(self.image_from_manifest(m)),
            Err(ImageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                Err(ImageError::NoSuchImage(name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Every image, sorted by name.
    pub fn list_images(&self) -> Result<Vec<Image>, ImageError> {
        let mut images = Vec::new();
        let entries = fs::read_dir(&self.images).map_err(ImageError::io("list", &self.images))?;
        for entry in entries {
            let entry = entry.map_err(ImageError::io("list", &self.images))?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.starts_with('.') || !file_name.ends_with(".json") {
                continue;
            }
            match read_json::<ImageManifest>(&entry.path()) {
                Ok(m) => images.push(self.image_from_manifest(m)),
                // Removed between readdir and open: not an image any more.
                Err(ImageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// Facts about one layer (size, origin).
    pub fn layer_info(&self, id: &str) -> Result<LayerInfo, ImageError> {
        read_json(&self.layers.join(format!("{id}.json")))
    }

    /// Builds a layer in `layers/.tmp-<id>` with `fill`, then renames it into place, so a layer
    /// directory either is complete or does not exist. Call with the store lock held.
    fn new_layer(
        &self,
        created_by: &str,
        fill: impl FnOnce(&Path) -> Result<u64, ImageError>,
    ) -> Result<LayerInfo, ImageError> {
        let id = random_hex(8);
        let tmp = self.layers.join(format!(".tmp-{id}"));
        fs::create_dir(&tmp).map_err(ImageError::io("create", &tmp))?;
        let guard = RemoveOnDrop::new(tmp.clone());
        // The layer's root becomes the container's `/`: 0755 whatever the umask (a directory
        // import then copies the source's own mode over it).
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(ImageError::io("chmod", &tmp))?;
        let size_bytes = fill(&tmp)?;
        let info = LayerInfo {
            id: id.clone(),
            size_bytes,
            created_unix_s: now_unix_s(),
            created_by: created_by.to_string(),
        };
        write_json_atomic(&self.layers.join(format!("{id}.json")), &info, true)?;
        let dst = self.layer_dir(&id);
        fs::rename(&tmp, &dst).map_err(ImageError::io("rename into", &dst))?;
        guard.disarm();
        Ok(info)
    }

    /// Writes `images/<name>.json` for `layer_ids`; refuses to overwrite unless `replace`.
    fn write_image(
        &self,
        name: &str,
        layer_ids: Vec<String>,
        parent: Option<String>,
        created_by: String,
        replace: bool,
    ) -> Result<Image, ImageError> {
        let mut size_bytes = 0;
        for id in &layer_ids {
            size_bytes += self.layer_info(id)?.size_bytes;
        }
        let manifest = ImageManifest {
            name: name.to_string(),
            layers: layer_ids,
            created_unix_s: now_unix_s(),
            size_bytes,
            parent,
            created_by,
        };
        if !write_json_atomic(&self.image_path(name), &manifest, replace)? {
            return Err(ImageError::ImageExists(name.to_string()));
        }
        Ok(self.image_from_manifest(manifest))
    }

    /// Imports a directory (copied with modes, owners, links, device nodes and xattrs) or a tar
    /// archive (`.tar`, `.tar.gz`, e.g. `docker export` output) as a new one-layer image.
    pub fn import(&self, src: &Path, name: &str) -> Result<Image, ImageError> {
        validate_name("image", name)?;
        // Resolved, so a symlink to a rootfs imports the rootfs (and its metadata), not the link.
        let src = &fs::canonicalize(src).map_err(|e| match e.kind() {
            ErrorKind::NotFound => ImageError::NoSource(src.to_path_buf()),
            _ => ImageError::io("resolve", src)(e),
        })?;
        let meta = fs::metadata(src).map_err(ImageError::io("stat", src))?;
        if meta.is_dir() {
            let layers = fs::canonicalize(&self.layers).unwrap_or_else(|_| self.layers.clone());
            if layers.starts_with(src) {
                return Err(ImageError::UnsupportedSource {
                    path: src.to_path_buf(),
                    reason: "it contains isolab's own store, so the copy would copy itself"
                        .to_string(),
                });
            }
        }
        let _lock = self.lock()?;
        if self.image_path(name).exists() {
            return Err(ImageError::ImageExists(name.to_string()));
        }
        let created_by = format!("isolab image import {}", src.display());
        let layer = if meta.is_dir() {
            self.new_layer(&created_by, |dst| {
                copy::copy_tree(src, dst, copy::CopyMode::Import)
            })?
        } else if meta.is_file() {
            self.new_layer(&created_by, |dst| tarball::unpack(src, dst))?
        } else {
            return Err(ImageError::UnsupportedSource {
                path: src.to_path_buf(),
                reason: "a special file".to_string(),
            });
        };
        let id = layer.id.clone();
        self.write_image(name, vec![id.clone()], None, created_by, false)
            .inspect_err(|_| self.delete_layers(&[id]))
    }

    /// The `busybox` image, built from the host's static busybox the first time it is needed.
    pub fn ensure_default_image(&self) -> Result<Image, ImageError> {
        match self.image(DEFAULT_IMAGE) {
            Err(ImageError::NoSuchImage(_)) => {}
            other => return other,
        }
        let _lock = self.lock()?;
        // Another isolab may have built it while we waited for the lock.
        match self.image(DEFAULT_IMAGE) {
            Err(ImageError::NoSuchImage(_)) => {}
            other => return other,
        }
        self.build_default_image(Path::new(HOST_BUSYBOX))
    }

    /// Rebuilds the `busybox` image from the host's busybox (after a busybox upgrade). The old
    /// layer is deleted unless a container or another image still uses it.
    pub fn rebuild_default_image(&self) -> Result<Image, ImageError> {
        let _lock = self.lock()?;
        self.build_default_image(Path::new(HOST_BUSYBOX))
    }

    /// Call with the lock held.
    fn build_default_image(&self, busybox: &Path) -> Result<Image, ImageError> {
        busybox::check_static(busybox)?;
        let old = match self.image(DEFAULT_IMAGE) {
            Ok(image) => image.layer_ids,
            Err(ImageError::NoSuchImage(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let created_by = format!("isolab image default (from {})", busybox.display());
        let layer = self.new_layer(&created_by, |dst| busybox::build_layer(busybox, dst))?;
        let image = self.write_image(DEFAULT_IMAGE, vec![layer.id], None, created_by, true)?;
        self.collect_layers(&old)?;
        Ok(image)
    }

    /// Deletes image `name` and every layer of it no other image or container uses. Refuses
    /// while a container created from it exists.
    pub fn remove_image(&self, name: &str) -> Result<(), ImageError> {
        let image = self.image(name)?;
        let _lock = self.lock()?;
        // Hide the image first: a concurrent create_container now fails, and one that read the
        // manifest before the rename notices the change (see create_container) after writing its
        // config, which the scan below then sees.
        let path = self.image_path(name);
        let hidden = self
            .images
            .join(format!(".removing-{name}-{}.json", random_hex(4)));
        fs::rename(&path, &hidden).map_err(|e| match e.kind() {
            ErrorKind::NotFound => ImageError::NoSuchImage(name.to_string()),
            _ => ImageError::io("rename", &path)(e),
        })?;
        let users: Vec<String> = match self.list_containers() {
            Ok(list) => list
                .into_iter()
                .filter(|c| c.config.image == name)
                .map(|c| c.dirs.id)
                .collect(),
            Err(e) => {
                let _ = fs::rename(&hidden, &path);
                return Err(e);
            }
        };
        if !users.is_empty() {
            fs::rename(&hidden, &path).map_err(ImageError::io("restore", &path))?;
            return Err(ImageError::ImageInUse {
                image: name.to_string(),
                containers: users.join(", "),
            });
        }
        fs::remove_file(&hidden).map_err(ImageError::io("remove", &hidden))?;
        self.collect_layers(&image.layer_ids)
    }

    /// Deletes those of `candidates` that no image and no container references. Call with the
    /// lock held.
    fn collect_layers(&self, candidates: &[String]) -> Result<(), ImageError> {
        if candidates.is_empty() {
            return Ok(());
        }
        let mut used = std::collections::HashSet::new();
        for image in self.list_images()? {
            used.extend(image.layer_ids);
        }
        for container in self.list_containers()? {
            used.extend(container.config.layer_ids);
        }
        let unused: Vec<String> = candidates
            .iter()
            .filter(|id| !used.contains(*id))
            .cloned()
            .collect();
        self.delete_layers(&unused);
        Ok(())
    }

    /// Renames each layer out of sight, then deletes it: a half-deleted layer is never visible
    /// under its id. Best effort (leftovers are `.trash-*` dirs, harmless).
    fn delete_layers(&self, ids: &[String]) {
        for id in ids {
            let dir = self.layer_dir(id);
            let trash = self.layers.join(format!(".trash-{id}"));
            if fs::rename(&dir, &trash).is_ok() {
                let _ = copy::remove_tree(&trash);
            }
            let _ = fs::remove_file(self.layers.join(format!("{id}.json")));
        }
    }

    /// Deletes what removals and failed imports left behind: trashed containers, and layers
    /// being deleted or half-built by an isolab that died. Takes the store lock (a live import
    /// holds it while it builds its `.tmp-` layer).
    pub fn empty_trash(&self) -> Result<(), ImageError> {
        let _lock = self.lock()?;
        for (dir, prefixes) in [
            (&self.containers, &[".rm-"][..]),
            (&self.layers, &[".trash-", ".tmp-"][..]),
        ] {
            let entries = fs::read_dir(dir).map_err(ImageError::io("list", dir))?;
            for entry in entries {
                let entry = entry.map_err(ImageError::io("list", dir))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if prefixes.iter().any(|p| name.starts_with(p)) {
                    copy::ensure_nothing_mounted_under(&entry.path())?;
                    copy::remove_tree(&entry.path())?;
                }
            }
        }
        Ok(())
    }

    /// Freezes a stopped container's changes (its overlay upper dir) as a new layer and writes
    /// image `new_image` = the container's layers + that layer.
    pub fn commit(
        &self,
        container: &str,
        new_image: &str,
        message: Option<&str>,
    ) -> Result<Image, ImageError> {
        validate_name("image", new_image)?;
        let record = self.container(container)?;
        if let Some(pid) = record.state.live_pid() {
            return Err(ImageError::ContainerRunning { id: record.id, pid });
        }
        if record.config.image == NO_IMAGE {
            return Err(ImageError::NotFromImage(record.id));
        }
        let _lock = self.lock()?;
        if self.image_path(new_image).exists() {
            return Err(ImageError::ImageExists(new_image.to_string()));
        }
        let created_by = message.map(str::to_string).unwrap_or_else(|| {
            format!(
                "isolab commit {} (from image {})",
                record.dirs.id, record.config.image
            )
        });
        // A user-namespace container wrote its upper dir with host ids (container root =
        // host_base); the layer must hold the ids the container saw. Rootless, the copy keeps
        // the caller's own ids instead: that store's layers hold container root as the caller.
        let id_shift = record
            .config
            .spec
            .as_ref()
            .filter(|spec| spec.namespaces.contains(crate::Namespace::User))
            .map(|spec| {
                let map = spec.id_mapping.unwrap_or_default();
                (map.host_base, map.count)
            });
        let upper = record.dirs.upper.clone();
        let layer = self.new_layer(&created_by, |dst| {
            copy::copy_tree_shifted(&upper, dst, copy::CopyMode::Commit, id_shift)
        })?;
        let mut layer_ids = record.config.layer_ids.clone();
        layer_ids.push(layer.id.clone());
        self.write_image(
            new_image,
            layer_ids,
            Some(record.config.image.clone()),
            created_by,
            false,
        )
        .inspect_err(|_| self.delete_layers(&[layer.id]))
    }
}
