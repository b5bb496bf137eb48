//! Which file `execve` should run for a command, searched in the *container's* `$PATH`.
//!
//! `execvp` would search the caller's own `PATH` and filesystem; a container's command must be
//! found in the container's, after it pivoted into its root. So the candidates are computed
//! before the fork as full paths and the child tries them in order, as `execvp` would.

use nix::errno::Errno;
use std::ffi::CString;

/// The default `PATH` when the environment has none (docker's and runc's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `PATH=` of `env`, or [`DEFAULT_PATH`].
pub fn search_path(env: &[String]) -> &str {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// `cmd` itself if it contains a slash, else each `$PATH` directory joined with it.
pub fn candidates(cmd: &str, env: &[String]) -> Vec<String> {
    if cmd.contains('/') {
        return vec![cmd.to_owned()];
    }
    search_path(env)
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{}/{cmd}", d.trim_end_matches('/')))
        .collect()
}

/// `execve`s each candidate in turn, like `execvp`: past "not here", remembering "found but
/// not runnable". Returns only when none could run, with the most telling errno.
///
/// # Safety
/// `argv` and `envp` must be null-terminated arrays of pointers to NUL-terminated strings that
/// stay valid for the call. Raw system calls only: callable between fork and exec.
pub(crate) unsafe fn execve_each(
    candidates: &[CString],
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> Errno {
    let mut worst = Errno::ENOENT;
    for path in candidates {
        // SAFETY: `path` is NUL-terminated; argv and envp are valid per this function's contract.
        unsafe { libc::execve(path.as_ptr(), argv, envp) };
        let errno = Errno::last();
        if errno != Errno::ENOENT && errno != Errno::ENOTDIR {
            worst = errno;
        }
    }
    worst
}

/// Marks every descriptor from `first` up close-on-exec: the workload gets 0, 1, 2 and the
/// ones a caller deliberately passes, never the launcher's own.
pub(crate) fn close_from_at_exec(first: u32) {
    // SAFETY: close_range only changes descriptor flags; any range is valid.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containers_path_is_searched_in_order() {
        let env = vec!["PATH=/a:/b/".to_string()];
        assert_eq!(candidates("sh", &env), ["/a/sh", "/b/sh"]);
        assert_eq!(candidates("./x", &env), ["./x"]);
        assert_eq!(search_path(&[]), DEFAULT_PATH);
    }
}
