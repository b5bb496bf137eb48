//! The steps of a [`MountPlan`](super::MountPlan) and how the child replays each one: one
//! system call or a few, on C strings prepared before the clone, nothing allocated.

use nix::errno::Errno;
use nix::fcntl::{open, OFlag, AT_FDCWD};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fchmodat, mknod, FchmodatFlags, Mode, SFlag};
use nix::unistd::{chdir, chroot, mkdir, pivot_root, symlinkat};
use std::ffi::{CStr, CString};

/// One step the child replays.
#[derive(Debug)]
pub(super) enum Step {
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)`: stop propagation to and from the host.
    MakePrivate,
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: MsFlags,
        data: Option<CString>,
    },
    /// mkdir, tolerating EEXIST.
    Mkdir(CString),
    /// Create an empty file to bind a device or file onto, tolerating EEXIST.
    Touch(CString),
    /// A character device node, mode 0666, tolerating EEXIST.
    Mknod(CString, libc::dev_t),
    /// symlink(target, link), tolerating EEXIST.
    Symlink(CString, CString),
    /// Hide a path: `/dev/null` over a file, an empty read-only tmpfs over a directory;
    /// skipped when the path does not exist.
    Mask(CString),
    /// Bind the path onto itself and remount it read-only; skipped when it does not exist.
    ReadOnly(CString),
    /// A device node of any kind with the given mode and owner, tolerating EEXIST.
    Node {
        path: CString,
        kind: u32,
        dev: libc::dev_t,
        mode: u32,
        owner: (u32, u32),
    },
    /// Write a value into an existing file (a sysctl under /proc/sys).
    WriteFile(CString, CString),
    PivotRoot(CString),
    Chroot(CString),
}

impl Step {
    /// Runs the step. Called in the cloned child: raw syscalls only.
    pub(super) fn apply(&self) -> nix::Result<()> {
        match self {
            Step::MakePrivate => make_private(),
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => mount(
                source.as_deref(),
                target.as_c_str(),
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            ),
            Step::Mkdir(path) => {
                tolerate_exists(mkdir(path.as_c_str(), Mode::from_bits_truncate(0o755)))
            }
            Step::Touch(path) => touch(path),
            Step::Mknod(path, dev) => char_device(path, *dev),
            Step::Symlink(target, link) => {
                tolerate_exists(symlinkat(target.as_c_str(), AT_FDCWD, link.as_c_str()))
            }
            Step::Node {
                path,
                kind,
                dev,
                mode,
                owner,
            } => node(path, *kind, *dev, *mode, *owner),
            Step::Mask(path) => crate::hardening::mask(path),
            Step::ReadOnly(path) => crate::hardening::make_readonly(path),
            Step::WriteFile(path, value) => write_file(path, value),
            Step::PivotRoot(root) => pivot_root_into(root),
            Step::Chroot(root) => chroot_into(root),
        }
    }
}

fn tolerate_exists(r: nix::Result<()>) -> nix::Result<()> {
    match r {
        Err(Errno::EEXIST) => Ok(()),
        other => other,
    }
}

fn make_private() -> nix::Result<()> {
    mount(
        None::<&CStr>,
        c"/",
        None::<&CStr>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&CStr>,
    )
}

fn touch(path: &CStr) -> nix::Result<()> {
    let fd = open(
        path,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )?;
    drop(fd);
    Ok(())
}

/// A character device readable and writable by all, like /dev/null.
fn char_device(path: &CStr, dev: libc::dev_t) -> nix::Result<()> {
    // The umask would strip the world bits that /dev/null needs.
    let all_rw = Mode::from_bits_truncate(0o666);
    tolerate_exists(mknod(path, SFlag::S_IFCHR, all_rw, dev))?;
    fchmodat(AT_FDCWD, path, all_rw, FchmodatFlags::FollowSymlink)
}

/// A device node of type `kind` with exactly `mode` and `owner`.
fn node(path: &CStr, kind: u32, dev: libc::dev_t, mode: u32, owner: (u32, u32)) -> nix::Result<()> {
    // SAFETY: mknod/chmod/chown on a NUL-terminated path we own; no memory is shared.
    let rc = unsafe { libc::mknod(path.as_ptr(), kind | mode, dev) };
    if rc != 0 && Errno::last() != Errno::EEXIST {
        return Err(Errno::last());
    }
    // The umask may have stripped bits of `mode`.
    // SAFETY: as above.
    if unsafe { libc::chmod(path.as_ptr(), mode) } != 0 {
        return Err(Errno::last());
    }
    // SAFETY: as above.
    if unsafe { libc::chown(path.as_ptr(), owner.0, owner.1) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn write_file(path: &CStr, value: &CStr) -> nix::Result<()> {
    let fd = open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    nix::unistd::write(&fd, value.to_bytes())?;
    Ok(())
}

fn pivot_root_into(root: &CStr) -> nix::Result<()> {
    // pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching it then
    // leaves only the new root. No "old_root" directory is needed.
    chdir(root)?;
    pivot_root(c".", c".")?;
    umount2(c".", MntFlags::MNT_DETACH)?;
    chdir(c"/")
}

fn chroot_into(root: &CStr) -> nix::Result<()> {
    chdir(root)?;
    chroot(c".")?;
    chdir(c"/")
}
