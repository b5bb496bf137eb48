//! Copying and deleting directory trees the way a layer needs them.
//!
//! A layer is a root filesystem, so a copy must keep what `cp -r` loses: owners, modes with
//! setuid bits (set *after* chown, which clears them), symlinks as symlinks, device nodes and
//! fifos (recreated with `mknod(2)`), hard links as links (tracked by device and inode), extended
//! attributes (file capabilities live in `security.capability`, overlay markers in
//! `trusted.overlay.*`) and timestamps. Like `cp -x` it does not descend into other
//! filesystems, so importing a live root does not copy `/proc`.
//!
//! Without root (a rootless store) a copy cannot chown: every file it makes belongs to the
//! caller. That is exactly right for a rootless container's upper dir, whose user namespace maps
//! container root to the caller alone, so the caller's id *is* the layer's root there; any other
//! owner cannot be represented and is refused with [`ImageError::OwnerNotRepresentable`].
//!
//! Deleting is the mirror danger: `rm -rf` of a container directory that still has something
//! mounted in it deletes *through* the mount (a bind-mounted host directory would be emptied).
//! [`ensure_nothing_mounted_under`] checks the mount table first, and [`remove_tree`] refuses to
//! cross into another filesystem as a second guard.

use super::ImageError;
use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// What the copy is for; it decides which overlayfs xattrs survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyMode {
    /// A directory given to `image import`: copy every xattr as is.
    Import,
    /// A container's upper dir becoming a layer: keep whiteouts and opaque markers, drop the
    /// bookkeeping xattrs that describe the old mount, refuse features a copy cannot freeze.
    Commit,
}

const OPAQUE: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Copies the tree at `src` into the existing directory `dst` (whose own metadata becomes
/// `src`'s). Returns the apparent size of the regular files copied, hard links counted once.
pub(crate) fn copy_tree(src: &Path, dst: &Path, mode: CopyMode) -> Result<u64, ImageError> {
    copy_tree_shifted(src, dst, mode, None)
}

/// [`copy_tree`], also mapping owners in `host_base..host_base + count` back to `0..count`: a
/// container run in a user namespace wrote its upper dir as host ids, but a layer stores the
/// ids the container saw, like every other layer. Without root no owner can be changed, so
/// the shift does not apply: files stay the caller's (see the module docs).
pub(crate) fn copy_tree_shifted(
    src: &Path,
    dst: &Path,
    mode: CopyMode,
    id_shift: Option<(u32, u32)>,
) -> Result<u64, ImageError> {
    let root_meta = fs::symlink_metadata(src).map_err(ImageError::io("stat", src))?;
    let privileged = nix::unistd::Uid::effective().is_root();
    let mut copier = Copier {
        mode,
        id_shift: id_shift.filter(|_| privileged),
        privileged,
        root_dev: root_meta.dev(),
        links: HashMap::new(),
        size_bytes: 0,
    };
    copier.copy_dir_contents(src, dst)?;
    copier.apply_metadata(src, dst, &root_meta)?;
    Ok(copier.size_bytes)
}

struct Copier {
    mode: CopyMode,
    /// (host_base, count) of a user-namespace mapping to undo.
    id_shift: Option<(u32, u32)>,
    /// Whether this process may chown to anyone (root); otherwise only to itself.
    privileged: bool,
    root_dev: u64,
    /// (dev, ino) of multiply-linked files already copied → their copy.
    links: HashMap<(u64, u64), PathBuf>,
    size_bytes: u64,
}

impl Copier {
    fn copy_dir_contents(&mut self, src: &Path, dst: &Path) -> Result<(), ImageError> {
        let entries = fs::read_dir(src).map_err(ImageError::io("list", src))?;
        for entry in entries {
            let entry = entry.map_err(ImageError::io("list", src))?;
            let from = entry.path();
            let to = dst.join(entry.file_name());
            let meta = fs::symlink_metadata(&from).map_err(ImageError::io("stat", &from))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                fs::create_dir(&to).map_err(ImageError::io("create", &to))?;
                // A mount point inside the source (e.g. /proc of a live root): keep the empty
                // directory, skip its contents, like `cp -x`.
                if meta.dev() == self.root_dev {
                    self.copy_dir_contents(&from, &to)?;
                }
                self.apply_metadata(&from, &to, &meta)?;
            } else if kind.is_symlink() {
                let target = fs::read_link(&from).map_err(ImageError::io("read link", &from))?;
                std::os::unix::fs::symlink(&target, &to)
                    .map_err(ImageError::io("create symlink", &to))?;
                self.set_owner(&from, &to, &meta)?;
                set_times(&to, &meta)?;
            } else {
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                        fs::hard_link(first, &to).map_err(ImageError::io("link", &to))?;
                        continue;
                    }
                    self.links.insert((meta.dev(), meta.ino()), to.clone());
                }
                if kind.is_file() {
                    // std::fs::copy uses copy_file_range(2): in-kernel, and a reflink on
                    // filesystems that share extents.
                    fs::copy(&from, &to).map_err(ImageError::io("copy", &from))?;
                    self.size_bytes += meta.len();
                } else {
                    let sflag = if kind.is_char_device() {
                        SFlag::S_IFCHR
                    } else if kind.is_block_device() {
                        SFlag::S_IFBLK
                    } else if kind.is_fifo() {
                        SFlag::S_IFIFO
                    } else {
                        SFlag::S_IFSOCK
                    };
                    // A whiteout is just a char device 0/0: this recreates it exactly.
                    mknod(
                        &to,
                        sflag,
                        Mode::from_bits_truncate(meta.mode() & 0o7777),
                        meta.rdev(),
                    )
                    .map_err(ImageError::nix("mknod", &to))?;
                }
                self.apply_metadata(&from, &to, &meta)?;
            }
        }
        Ok(())
    }

    /// Owner, then mode (chown clears setuid/setgid), xattrs, then times (last, since the
    /// other changes bump ctime/mtime of directories).
    fn apply_metadata(
        &self,
        from: &Path,
        to: &Path,
        meta: &fs::Metadata,
    ) -> Result<(), ImageError> {
        self.set_owner(from, to, meta)?;
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(ImageError::io("chmod", to))?;
        self.copy_xattrs(from, to)?;
        set_times(to, meta)
    }

    /// chown `to` to the owner `from` should have in the copy. Unprivileged, a copy already
    /// owned right is left alone (chown would be a no-op, and to a group of the caller's it
    /// still works), and an owner chown cannot give is reported as such.
    fn set_owner(&self, from: &Path, to: &Path, meta: &fs::Metadata) -> Result<(), ImageError> {
        let (uid, gid) = self.owner(meta);
        if !self.privileged {
            let have = fs::symlink_metadata(to).map_err(ImageError::io("stat", to))?;
            if (have.uid(), have.gid()) == (uid, gid) {
                return Ok(());
            }
        }
        match std::os::unix::fs::lchown(to, Some(uid), Some(gid)) {
            Err(e) if !self.privileged && e.raw_os_error() == Some(libc::EPERM) => {
                Err(ImageError::OwnerNotRepresentable {
                    path: from.to_path_buf(),
                    uid,
                    gid,
                    caller_uid: nix::unistd::Uid::effective().as_raw(),
                })
            }
            other => other.map_err(ImageError::io("chown", to)),
        }
    }

    fn owner(&self, meta: &fs::Metadata) -> (u32, u32) {
        let shift = |id: u32| match self.id_shift {
            Some((base, count)) if id >= base && id - base < count => id - base,
            _ => id,
        };
        (shift(meta.uid()), shift(meta.gid()))
    }

    fn copy_xattrs(&self, from: &Path, to: &Path) -> Result<(), ImageError> {
        let names = match xattr::list(from) {
            Ok(names) => names,
            Err(e) if e.kind() == ErrorKind::Unsupported => return Ok(()),
            Err(e) => return Err(ImageError::io("list xattrs of", from)(e)),
        };
        for name in names {
            let name_str = name.to_string_lossy();
            let Some(value) =
                xattr::get(from, &name).map_err(ImageError::io("read xattr", from))?
            else {
                continue;
            };
            let is_overlay =
                name_str.starts_with("trusted.overlay.") || name_str.starts_with("user.overlay.");
            if self.mode == CopyMode::Commit && is_overlay {
                if OPAQUE.contains(&name_str.as_ref()) {
                    // Mark it in both namespaces: the layer then hides lower directories whether
                    // or not the next mount uses `userxattr`.
                    // Without root only the user.* one can be set; rootless overlay mounts read
                    // that one (`userxattr`).
                    for opaque in OPAQUE {
                        match xattr::set(to, opaque, &value) {
                            Err(e)
                                if !self.privileged
                                    && opaque.starts_with("trusted.")
                                    && e.raw_os_error() == Some(libc::EPERM) => {}
                            other => other.map_err(ImageError::io("set xattr", to))?,
                        }
                    }
                } else if name_str.ends_with(".metacopy") || name_str.ends_with(".redirect") {
                    return Err(ImageError::UnsupportedOverlayFeature {
                        path: from.to_path_buf(),
                        xattr: name_str.into_owned(),
                    });
                }
                // origin, impure, nlink, upper, uuid...: pointers into the old mount; dropped.
                continue;
            }
            match xattr::set(to, &name, &value) {
                Ok(()) => {}
                // e.g. security.selinux on a host without SELinux: nothing to preserve there.
                Err(e) if !is_overlay && e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                Err(e) => return Err(ImageError::io("set xattr", to)(e)),
            }
        }
        Ok(())
    }
}

fn set_times(path: &Path, meta: &fs::Metadata) -> Result<(), ImageError> {
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(ImageError::nix("set times of", path))
}

/// Fails with [`ImageError::StillMounted`] if `/proc/self/mountinfo` lists a mount point at or
/// below `dir`.
pub(crate) fn ensure_nothing_mounted_under(dir: &Path) -> Result<(), ImageError> {
    let mountinfo = Path::new("/proc/self/mountinfo");
    let table = fs::read_to_string(mountinfo).map_err(ImageError::io("read", mountinfo))?;
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    for line in table.lines() {
        // Fields: id parent major:minor root mount-point options ...
        let Some(field) = line.split(' ').nth(4) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape_mountinfo(field));
        if mount_point.starts_with(&dir) {
            return Err(ImageError::StillMounted(mount_point));
        }
    }
    Ok(())
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `rm -rf` that stays on one filesystem: meeting another device means something is mounted
/// inside, and deleting through it would destroy someone else's files.
///
/// Like `rm -rf` it first gives `u+rwx` to each directory the caller owns but may not list or
/// empty: root ignores permission bits, but an unprivileged owner does not — and overlayfs
/// leaves exactly such a directory in every work dir (`work/work`, mode 000), so without this a
/// rootless container could never be removed.
pub(crate) fn remove_tree(path: &Path) -> Result<(), ImageError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ImageError::io("stat", path)(e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).map_err(ImageError::io("remove", path));
    }
    open_up_owned_dir(path, &meta)?;
    remove_dir_contents(path, meta.dev())?;
    match fs::remove_dir(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(ImageError::io("remove", path)(e)),
        _ => Ok(()),
    }
}

fn remove_dir_contents(dir: &Path, dev: u64) -> Result<(), ImageError> {
    // NotFound is success throughout: another isolab emptying the same trash got there first.
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        other => other.map_err(ImageError::io("list", dir))?,
    };
    for entry in entries {
        let entry = entry.map_err(ImageError::io("list", dir))?;
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            other => other.map_err(ImageError::io("stat", &path))?,
        };
        let removed = if meta.is_dir() {
            if meta.dev() != dev {
                return Err(ImageError::StillMounted(path));
            }
            open_up_owned_dir(&path, &meta)?;
            remove_dir_contents(&path, dev)?;
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(ImageError::io("remove", &path)(e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// chmod u+rwx a directory the caller owns that lacks any of them, so it can be listed and
/// emptied. Directories owned by others are left as they are (chmod would fail anyway; root
/// needs no permission bits).
fn open_up_owned_dir(dir: &Path, meta: &fs::Metadata) -> Result<(), ImageError> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o700 == 0o700 || meta.uid() != nix::unistd::Uid::effective().as_raw() {
        return Ok(());
    }
    match fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700)) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(ImageError::io("chmod", dir)(e)),
        _ => Ok(()),
    }
}
