//! Being PID 1 in a microVM: the pseudo-filesystems, the console, and how to stop.
//!
//! When the kernel finishes booting it unpacks the initramfs (a cpio archive) into a RAM
//! filesystem, opens `/dev/console` as fds 0, 1 and 2, and execs `/init` as process 1. Nothing
//! else is set up: `/proc`, `/sys` and `/dev` are empty directories until init mounts the
//! kernel's pseudo-filesystems on them (`proc`, `sysfs`, `devtmpfs`, where the kernel itself
//! creates device nodes).
//!
//! PID 1 is special: if it exits, the kernel panics ("Attempted to kill init!"). A VM has no
//! power button the guest can press without firmware (no ACPI here), so init stops the VM by
//! asking the kernel to *restart* it; with `reboot=k` the kernel does so by writing 0xFE to the
//! i8042 keyboard controller, a port write the VMM turns into "guest stopped".

use std::ffi::CStr;
use std::io;

use crate::port_io;

/// A pseudo-filesystem to mount; `required` ones abort the boot when missing.
struct PseudoFs {
    source: &'static CStr,
    target: &'static CStr,
    fstype: &'static CStr,
    required: bool,
}

const MOUNTS: [PseudoFs; 3] = [
    PseudoFs {
        source: c"proc",
        target: c"/proc",
        fstype: c"proc",
        required: true,
    },
    PseudoFs {
        source: c"sysfs",
        target: c"/sys",
        fstype: c"sysfs",
        required: false,
    },
    PseudoFs {
        source: c"devtmpfs",
        target: c"/dev",
        fstype: c"devtmpfs",
        required: false,
    },
];

/// A mount that failed: which one and why.
#[derive(Debug)]
pub struct MountError {
    pub target: String,
    pub source: io::Error,
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mounting {} failed: {}; is it enabled in the guest kernel config?",
            self.target, self.source
        )
    }
}

impl std::error::Error for MountError {}

/// Mounts /proc (required), /sys and /dev (best effort). Returns the optional ones that
/// failed, for the `ready` line. These mounts are never undone: they live as long as the VM.
pub fn mount_pseudo_filesystems() -> Result<Vec<&'static str>, MountError> {
    let mut skipped = Vec::new();
    for m in &MOUNTS {
        // SAFETY: all pointers are valid NUL-terminated strings with 'static lifetime; data
        // is NULL, which every one of these filesystem types accepts.
        let rc = unsafe {
            libc::mount(
                m.source.as_ptr(),
                m.target.as_ptr(),
                m.fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                std::ptr::null(),
            )
        };
        if rc == 0 {
            continue;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EBUSY) {
            continue; // already mounted (e.g. CONFIG_DEVTMPFS_MOUNT)
        }
        if m.required {
            return Err(MountError {
                target: m.target.to_string_lossy().into_owned(),
                source: err,
            });
        }
        skipped.push(m.fstype.to_str().unwrap_or("?"));
    }
    Ok(skipped)
}

/// Makes sure fds 0-2 are the console: the kernel opens them only if `/dev/console` existed in
/// the initramfs. With devtmpfs mounted, `/dev/console` exists now.
pub fn ensure_console() {
    // SAFETY: F_GETFD on a possibly closed fd only reports EBADF.
    if unsafe { libc::fcntl(1, libc::F_GETFD) } != -1 {
        return;
    }
    // SAFETY: a valid NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(c"/dev/console".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if fd < 0 {
        return;
    }
    for target in 0..3 {
        if fd != target {
            // SAFETY: fd is open; dup2 onto 0..2 only replaces closed descriptors here.
            unsafe { libc::dup2(fd, target) };
        }
    }
    if fd > 2 {
        // SAFETY: fd is ours and duplicated onto 0..2 above.
        unsafe { libc::close(fd) };
    }
}

/// `CLOCK_BOOTTIME` in nanoseconds: time since the guest kernel started counting.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Stops the VM. Never returns: if both the kernel restart and the direct i8042 write fail,
/// init exits, the kernel panics, and `panic=-1` makes it restart anyway.
pub fn power_off() -> ! {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        // Never reboot a host by accident: only PID 1 (the guest's init) may get here.
        std::process::exit(3);
    }
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    // SAFETY: reboot with RB_AUTOBOOT restarts the (virtual) machine; we are PID 1 of the guest.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    let _ = port_io::i8042_reset();
    std::process::exit(1)
}
