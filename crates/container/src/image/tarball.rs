//! Unpacking a tar archive (`docker export`, `podman export`, `tar -C rootfs -c .`) into a layer.
//!
//! A tar archive is a flat list of entries, each a 512-byte header (path, mode, owner, type,
//! size, device numbers) followed by the data. Unpacking is mostly the `tar` crate's job; this
//! file adds what a root filesystem needs and the crate does not do:
//!
//! * **device nodes and fifos** are recreated with `mknod(2)` (the crate would write them as
//!   empty regular files). A char device 0/0 is also how an OCI layer tar carries a whiteout.
//! * **entries that escape** are refused outright: a path with `..`, or one whose parent resolves
//!   (through a symlink unpacked earlier) outside the layer. The crate silently skips the first
//!   kind; we prefer a clear error to a half-imported image.
//!
//! Compression is recognised by content, not by name: gzip streams start with the bytes 1f 8b.

use super::ImageError;
use flate2::read::GzDecoder;
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::fs;
use std::io::{BufReader, ErrorKind, Read, Seek as _, SeekFrom};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

/// Where a POSIX ("ustar") header keeps its magic: offset 257 of the first block.
const USTAR_MAGIC_OFFSET: usize = 257;

/// Unpacks `archive` (plain or gzip tar) into the existing directory `dst`. Returns the apparent
/// size of the regular files.
pub(crate) fn unpack(archive: &Path, dst: &Path) -> Result<u64, ImageError> {
    let mut file = fs::File::open(archive).map_err(ImageError::io("open", archive))?;
    let mut head = [0u8; 512];
    let got = read_up_to(&mut file, &mut head).map_err(ImageError::io("read", archive))?;
    file.seek(SeekFrom::Start(0))
        .map_err(ImageError::io("seek", archive))?;
    let reader: Box<dyn Read> = if got >= 2 && head[..2] == [0x1f, 0x8b] {
        Box::new(GzDecoder::new(BufReader::new(file)))
    } else if got == 512 && &head[USTAR_MAGIC_OFFSET..USTAR_MAGIC_OFFSET + 5] == b"ustar" {
        Box::new(BufReader::new(file))
    } else {
        return Err(ImageError::UnsupportedSource {
            path: archive.to_path_buf(),
            reason: "no tar header and no gzip signature".to_string(),
        });
    };
    unpack_stream(reader, archive, dst)
}

fn read_up_to(file: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn unpack_stream(reader: impl Read, archive: &Path, dst: &Path) -> Result<u64, ImageError> {
    let bad = |source| ImageError::BadTar {
        archive: archive.to_path_buf(),
        source,
    };
    let canonical_dst = fs::canonicalize(dst).map_err(ImageError::io("resolve", dst))?;
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(true);
    tar.set_preserve_mtime(true);
    tar.set_unpack_xattrs(true);
    tar.set_overwrite(true);
    let mut size_bytes = 0;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let unsafe_entry = || ImageError::UnsafeTarEntry {
            archive: archive.to_path_buf(),
            entry: path.display().to_string(),
        };
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(unsafe_entry());
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() && !path.components().any(|c| matches!(c, Component::Normal(_))) {
            // "./": the root's own mode and owner (the crate skips this entry).
            apply_root_metadata(entry.header(), &canonical_dst)?;
            continue;
        }
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            make_node(&entry, &path, &canonical_dst).map_err(|e| match e {
                NodeError::Escapes => unsafe_entry(),
                NodeError::Failed(e) => e,
            })?;
            continue;
        }
        match entry.unpack_in(&canonical_dst) {
            Ok(true) => {}
            Ok(false) => return Err(unsafe_entry()),
            // The crate's wording when a parent resolves outside the destination.
            Err(e) if e.to_string().contains("outside of") => return Err(unsafe_entry()),
            Err(e) => return Err(ImageError::io("unpack", &canonical_dst.join(&path))(e)),
        }
        if kind.is_file() || kind.is_contiguous() {
            size_bytes += entry.size();
        }
    }
    Ok(size_bytes)
}

fn apply_root_metadata(header: &tar::Header, dst: &Path) -> Result<(), ImageError> {
    let header_err = |e: std::io::Error| ImageError::io("read tar header of", dst)(e);
    let mode = header.mode().map_err(header_err)? & 0o7777;
    let uid = u32::try_from(header.uid().map_err(header_err)?).unwrap_or(0);
    let gid = u32::try_from(header.gid().map_err(header_err)?).unwrap_or(0);
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(ImageError::io("chown", dst))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(mode)).map_err(ImageError::io("chmod", dst))
}

enum NodeError {
    Escapes,
    Failed(ImageError),
}

/// Recreates a char/block device or fifo entry with mknod, owner, mode and mtime.
fn make_node<R: Read>(entry: &tar::Entry<'_, R>, path: &Path, dst: &Path) -> Result<(), NodeError> {
    let fail = |e: ImageError| NodeError::Failed(e);
    let relative: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if relative.as_os_str().is_empty() {
        return Err(NodeError::Escapes);
    }
    let target = dst.join(&relative);
    let parent = target.parent().unwrap_or(dst);
    fs::create_dir_all(parent).map_err(|e| fail(ImageError::io("create", parent)(e)))?;
    let canonical_parent =
        fs::canonicalize(parent).map_err(|e| fail(ImageError::io("resolve", parent)(e)))?;
    if !canonical_parent.starts_with(dst) {
        return Err(NodeError::Escapes);
    }
    let target = canonical_parent.join(relative.file_name().unwrap_or_default());
    let header = entry.header();
    let header_err = |e: std::io::Error| fail(ImageError::io("read tar header of", &target)(e));
    let mode = header.mode().map_err(header_err)? & 0o7777;
    let kind = header.entry_type();
    let (sflag, rdev) = if kind.is_fifo() {
        (SFlag::S_IFIFO, 0)
    } else {
        let major = header.device_major().map_err(header_err)?.unwrap_or(0);
        let minor = header.device_minor().map_err(header_err)?.unwrap_or(0);
        let sflag = if kind.is_character_special() {
            SFlag::S_IFCHR
        } else {
            SFlag::S_IFBLK
        };
        (sflag, makedev(u64::from(major), u64::from(minor)))
    };
    match fs::symlink_metadata(&target) {
        Ok(m) if !m.is_dir() => {
            fs::remove_file(&target).map_err(|e| fail(ImageError::io("replace", &target)(e)))?
        }
        _ => {}
    }
    mknod(&target, sflag, Mode::from_bits_truncate(mode), rdev)
        .map_err(|e| fail(ImageError::nix("mknod", &target)(e)))?;
    let uid = header.uid().map_err(header_err)?;
    let gid = header.gid().map_err(header_err)?;
    let (uid, gid) = (
        u32::try_from(uid).unwrap_or(0),
        u32::try_from(gid).unwrap_or(0),
    );
    std::os::unix::fs::lchown(&target, Some(uid), Some(gid))
        .map_err(|e| fail(ImageError::io("chown", &target)(e)))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(mode))
        .map_err(|e| fail(ImageError::io("chmod", &target)(e)))?;
    if let Ok(mtime) = header.mtime() {
        let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
        let _ = utimensat(
            nix::fcntl::AT_FDCWD,
            &target,
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        );
    }
    Ok(())
}
