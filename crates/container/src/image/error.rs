//! What can go wrong with the store, one variant per cause, each message saying how to fix it.

use super::HOME_ENV;
use std::path::{Path, PathBuf};

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
