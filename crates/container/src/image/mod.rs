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

//!
//! # Where each part lives
//!
//! This file holds the store and its lookups; `layers` builds, shares and deletes layers,
//! `import` and `commit` are the two ways an image comes to be, `containers` keeps container
//! records, `files` the atomic-file primitives they all share, and `copy`, `tarball` and
//! `busybox` fill a new layer.

mod busybox;
mod commit;
mod containers;
mod copy;
mod error;
mod files;
mod import;
mod layers;
mod tarball;
#[cfg(test)]
mod tests;

pub use containers::{
    ContainerConfig, ContainerDirs, ContainerRecord, ContainerState, ContainerStatus, WritableLayer,
};
pub use error::ImageError;

use crate::spec::ContainerSpec;
use files::{
    mkdir_ok_if_exists, now_unix_ms, random_hex, read_json, write_json_atomic, RemoveOnDrop,
};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

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
}
