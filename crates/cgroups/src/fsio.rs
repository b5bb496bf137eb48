//! The few file operations cgroupfs needs, done with one system call each and no heap path.
//!
//! A cgroup is driven entirely through small text files. The kernel parses each `write(2)` as
//! one command, so a value must go out in a single write (a split write would be parsed as two
//! values). Reads return the whole file at once for the small files we read.
//!
//! Files are opened with `O_WRONLY|O_CREAT|O_TRUNC`, exactly the flags of a shell's
//! `echo 100 > pids.max`. On cgroupfs (kernfs) `O_CREAT` never creates anything — opening a
//! missing interface file that way fails with EACCES — and `O_TRUNC` is ignored; on an ordinary
//! directory (the unit tests' fake hierarchy) the same call leaves the written value behind for
//! the test to read. Callers check that optional files exist before writing them, so the
//! EACCES case only shows up for genuinely unexpected layouts.

use std::ffi::CStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::CgroupError;

/// Paths up to this length are built on the stack (cgroup paths are short).
const STACK_PATH_BYTES: usize = 512;

/// Calls `f` with the NUL-terminated path `dir/file`, without heap allocation when it fits.
fn with_cpath<R>(dir: &Path, file: &str, f: impl FnOnce(&CStr) -> io::Result<R>) -> io::Result<R> {
    let d = dir.as_os_str().as_bytes();
    let total = d.len() + 1 + file.len() + 1;
    let fill = |buf: &mut [u8]| {
        buf[..d.len()].copy_from_slice(d);
        buf[d.len()] = b'/';
        buf[d.len() + 1..total - 1].copy_from_slice(file.as_bytes());
        buf[total - 1] = 0;
    };
    let invalid = |_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte");
    if total <= STACK_PATH_BYTES {
        let mut buf = [0u8; STACK_PATH_BYTES];
        fill(&mut buf);
        f(CStr::from_bytes_with_nul(&buf[..total]).map_err(invalid)?)
    } else {
        let mut buf = vec![0u8; total];
        fill(&mut buf);
        f(CStr::from_bytes_with_nul(&buf).map_err(invalid)?)
    }
}

fn write_with(dir: &Path, file: &str, value: &[u8], flags: OFlag) -> io::Result<()> {
    with_cpath(dir, file, |p| {
        let fd = nix::fcntl::open(
            p,
            flags | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )?;
        let n = nix::unistd::write(&fd, value)?;
        if n != value.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to a cgroup file",
            ));
        }
        Ok(())
    })
}

/// Writes `value` to `dir/file` in one `write(2)` (see the module header for the flags).
pub(crate) fn write_file(dir: &Path, file: &str, value: &[u8]) -> io::Result<()> {
    write_with(dir, file, value, OFlag::O_CREAT | OFlag::O_TRUNC)
}

/// [`write_file`] with the error naming the file and the value.
pub(crate) fn put(dir: &Path, file: &str, value: &[u8]) -> Result<(), CgroupError> {
    write_file(dir, file, value).map_err(|source| CgroupError::Write {
        path: dir.join(file),
        value: String::from_utf8_lossy(value).into_owned(),
        source,
    })
}

/// Calls `f` with the text of `dir/file`; does nothing if the file does not exist (stats of a
/// kernel that lacks it).
pub(crate) fn with_text(dir: &Path, file: &str, f: impl FnOnce(&str)) -> Result<(), CgroupError> {
    let mut buf = [0u8; 1024];
    match read_file(dir, file, &mut buf) {
        Ok(s) => {
            f(s);
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(CgroupError::io("read", dir.join(file), e)),
    }
}

/// [`read_u64`] with the error naming the file.
pub(crate) fn get_u64(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    read_u64(dir, file).map_err(|e| CgroupError::io("read", dir.join(file), e))
}

/// Writes to a file that may legitimately be absent (`cgroup.kill` before Linux 5.14): no
/// `O_CREAT`, so absence reads as ENOENT.
pub(crate) fn write_existing(dir: &Path, file: &str, value: &[u8]) -> io::Result<()> {
    write_with(dir, file, value, OFlag::empty())
}

/// Reads `dir/file` into `buf` and returns the text read (whole file if it fits).
pub(crate) fn read_file<'a>(dir: &Path, file: &str, buf: &'a mut [u8]) -> io::Result<&'a str> {
    let n = with_cpath(dir, file, |p| {
        let fd = nix::fcntl::open(p, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
        let mut n = 0;
        while n < buf.len() {
            let r = nix::unistd::read(&fd, &mut buf[n..])?;
            if r == 0 {
                break;
            }
            n += r;
        }
        Ok(n)
    })?;
    std::str::from_utf8(&buf[..n])
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "cgroup file is not UTF-8"))
}

/// Whether `dir/file` exists (one `access(2)`).
pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    with_cpath(dir, file, |p| {
        nix::unistd::access(p, nix::unistd::AccessFlags::F_OK).map_err(io::Error::from)
    })
    .is_ok()
}

/// Reads a file holding one unsigned number (`memory.current`, `pids.max`, ...).
/// `Ok(None)` if the file does not exist or holds `max`.
pub(crate) fn read_u64(dir: &Path, file: &str) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 64];
    match read_file(dir, file, &mut buf) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Formats an integer into a stack buffer (for single-write values without allocation).
pub(crate) struct NumBuf {
    buf: [u8; 24],
    start: usize,
}

impl NumBuf {
    pub(crate) fn u64(mut v: u64) -> Self {
        let mut buf = [0u8; 24];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        NumBuf { buf, start: i }
    }

    pub(crate) fn i64(v: i64) -> Self {
        let mut n = NumBuf::u64(v.unsigned_abs());
        if v < 0 {
            n.start -= 1;
            n.buf[n.start] = b'-';
        }
        n
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format() {
        assert_eq!(NumBuf::u64(0).as_bytes(), b"0");
        assert_eq!(NumBuf::u64(67108864).as_bytes(), b"67108864");
        assert_eq!(
            NumBuf::u64(u64::MAX).as_bytes(),
            u64::MAX.to_string().as_bytes()
        );
        assert_eq!(NumBuf::i64(-1).as_bytes(), b"-1");
        assert_eq!(
            NumBuf::i64(i64::MIN).as_bytes(),
            i64::MIN.to_string().as_bytes()
        );
    }

    #[test]
    fn write_read_roundtrip_and_long_paths() {
        let t = tempfile::tempdir().unwrap();
        write_file(t.path(), "x", b"42").unwrap();
        assert_eq!(read_u64(t.path(), "x").unwrap(), Some(42));
        assert_eq!(read_u64(t.path(), "absent").unwrap(), None);
        assert!(exists(t.path(), "x"));
        assert!(!exists(t.path(), "absent"));
        assert_eq!(
            write_existing(t.path(), "absent", b"1")
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOENT)
        );
        // A path longer than the stack buffer takes the heap route and still works.
        let mut deep = t.path().to_path_buf();
        for _ in 0..12 {
            deep.push("a_rather_long_directory_name_for_testing_paths");
        }
        std::fs::create_dir_all(&deep).unwrap();
        write_file(&deep, "y", b"7").unwrap();
        assert_eq!(read_u64(&deep, "y").unwrap(), Some(7));
    }
}
