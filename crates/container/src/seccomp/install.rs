//! Handing a compiled program to the kernel, in the child, right before `execve`.

use super::SeccompProgram;
use nix::errno::Errno;

/// Installs `prog` on the calling thread with `SECCOMP_SET_MODE_FILTER`.
///
/// Meant for the container's init right before `execve`, in a child cloned from a possibly
/// multi-threaded parent: it allocates nothing, takes no lock and makes one system call (three
/// when the kernel wants `PR_SET_NO_NEW_PRIVS` first because the caller lacks CAP_SYS_ADMIN),
/// so it is async-signal-safe. `prog` must have been loaded before the clone.
pub fn install(prog: &SeccompProgram) -> Result<(), Errno> {
    // seccompiler's sock_filter is #[repr(C)] with the same fields as the kernel's, so the slice
    // is already the array the kernel expects. The length fits: decode/compile cap it at 4096.
    let fprog = libc::sock_fprog {
        len: prog.insns.len() as libc::c_ushort,
        filter: prog.insns.as_ptr() as *mut libc::sock_filter,
    };
    match set_filter(&fprog) {
        Err(Errno::EACCES) => {
            // Not privileged enough to install it without the promise: make it.
            crate::credentials::set_no_new_privs()?;
            set_filter(&fprog)
        }
        other => other,
    }
}

fn set_filter(fprog: &libc::sock_fprog) -> Result<(), Errno> {
    // SAFETY: `fprog` points to `len` valid instructions borrowed for the call; the kernel
    // copies them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok(())
}
