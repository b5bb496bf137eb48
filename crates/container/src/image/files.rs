//! The store's file primitives: ids, timestamps, JSON files that appear whole or not at all, and
//! directories that remove themselves unless the step that built them finished.

use super::{copy, ImageError};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `n` random bytes as lowercase hex, from getrandom(2): one syscall, no file descriptor.
pub(super) fn random_hex(n_bytes: usize) -> String {
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

pub(super) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) fn now_unix_s() -> u64 {
    now_unix_ms() / 1000
}

/// Serialises `value` to a temporary file beside `path`, then moves it into place. With
/// `replace`, `rename(2)` swaps it in atomically; without, `link(2)` refuses if `path` exists, so
/// two writers cannot both "create" the same file. Returns false when `path` already existed.
pub(super) fn write_json_atomic<T: Serialize>(
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

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ImageError> {
    let bytes = fs::read(path).map_err(ImageError::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates one directory; an existing one is fine.
pub(super) fn mkdir_ok_if_exists(path: &Path) -> std::io::Result<()> {
    match fs::create_dir(path) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Removes a directory it created unless disarmed: keeps failed imports and container
/// creations from leaving half-built directories behind.
pub(super) struct RemoveOnDrop {
    path: Option<PathBuf>,
    /// A container name symlink claimed alongside the directory, removed with it.
    pub(super) name_link: Option<PathBuf>,
}

impl RemoveOnDrop {
    pub(super) fn new(path: PathBuf) -> Self {
        RemoveOnDrop {
            path: Some(path),
            name_link: None,
        }
    }

    pub(super) fn disarm(mut self) {
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
