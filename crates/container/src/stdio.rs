//! Where the workload's standard streams go: the caller's terminal, a log, or a pseudo-terminal.
//!
//! * **Inherit** — the workload writes straight to isolab's own fds 0/1/2: no copying at all,
//!   which is what the benches use.
//! * **Log** — stdout and stderr are pipes; isolab copies what arrives to its own stdout/stderr
//!   and appends it to the container's log file (`isolab container logs`), one line per record
//!   prefixed with the stream name.
//! * **Tty** — a pseudo-terminal pair: the workload gets the *slave* side as its controlling
//!   terminal (so job control and Ctrl-C work inside), isolab holds the *master* and relays bytes
//!   between it and the user's terminal, which it switches to raw mode for the duration.

use nix::errno::Errno;
use nix::pty::{openpty, OpenptyResult, Winsize};
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::{pipe2, read, write};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// How the workload's streams are connected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StdioMode {
    /// Share isolab's own stdin/stdout/stderr.
    #[default]
    Inherit,
    /// Copy stdout/stderr to isolab's and append them to this log file.
    Log(PathBuf),
    /// An interactive pseudo-terminal.
    Tty,
}

/// The parent's ends of the streams once the child is started.
#[derive(Debug)]
pub(crate) enum ParentStdio {
    Inherit,
    Log {
        out: Option<OwnedFd>,
        err: Option<OwnedFd>,
        log: File,
    },
    Tty {
        master: OwnedFd,
        saved: Option<Termios>,
    },
}

/// The child's ends, dup'ed onto 0/1/2 right before exec.
#[derive(Debug)]
pub(crate) struct ChildStdio {
    /// (fd for stdin, stdout, stderr); `None` keeps what the process inherited.
    pub fds: [Option<OwnedFd>; 3],
    /// Make the terminal on stdin the controlling terminal (after `setsid`).
    pub controlling_tty: bool,
}

/// Creates the pipes or the pty before the clone.
pub(crate) fn prepare(mode: &StdioMode) -> std::io::Result<(ParentStdio, ChildStdio)> {
    match mode {
        StdioMode::Inherit => Ok((
            ParentStdio::Inherit,
            ChildStdio {
                fds: [None, None, None],
                controlling_tty: false,
            },
        )),
        StdioMode::Log(path) => {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let (out_r, out_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            let (err_r, err_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            Ok((
                ParentStdio::Log {
                    out: Some(out_r),
                    err: Some(err_r),
                    log,
                },
                ChildStdio {
                    fds: [None, Some(out_w), Some(err_w)],
                    controlling_tty: false,
                },
            ))
        }
        StdioMode::Tty => {
            let stdin = std::io::stdin();
            let winsize = window_size(stdin.as_fd());
            let OpenptyResult { master, slave } = openpty(winsize.as_ref(), None)?;
            nix::fcntl::fcntl(
                &master,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )?;
            nix::fcntl::fcntl(
                &slave,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )?;
            let saved = termios::tcgetattr(stdin.as_fd()).ok();
            if let Some(orig) = &saved {
                let mut raw = orig.clone();
                termios::cfmakeraw(&mut raw);
                termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
            }
            let s1 = slave.try_clone()?;
            let s2 = slave.try_clone()?;
            Ok((
                ParentStdio::Tty { master, saved },
                ChildStdio {
                    fds: [Some(slave), Some(s1), Some(s2)],
                    controlling_tty: true,
                },
            ))
        }
    }
}

fn window_size(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` into the valid, writable `ws`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some(ws)
}

impl ParentStdio {
    /// File descriptors the wait loop should poll for input, with what they are.
    pub(crate) fn poll_fds(&self) -> Vec<(RawFd, Source)> {
        match self {
            ParentStdio::Inherit => Vec::new(),
            ParentStdio::Log { out, err, .. } => {
                let mut v = Vec::new();
                if let Some(fd) = out {
                    v.push((fd.as_raw_fd(), Source::Out));
                }
                if let Some(fd) = err {
                    v.push((fd.as_raw_fd(), Source::Err));
                }
                v
            }
            ParentStdio::Tty { master, .. } => vec![
                (master.as_raw_fd(), Source::Master),
                (libc::STDIN_FILENO, Source::Stdin),
            ],
        }
    }

    /// Moves whatever is readable on `source`. Returns false once that source is finished.
    pub(crate) fn pump(&mut self, source: Source) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match (self, source) {
            (ParentStdio::Log { out, err, log }, Source::Out | Source::Err) => {
                let slot = if source == Source::Out { out } else { err };
                let Some(fd) = slot.as_ref() else {
                    return false;
                };
                match read(fd, &mut buf) {
                    Ok(0) | Err(Errno::EIO) => {
                        *slot = None;
                        false
                    }
                    Ok(n) => {
                        let data = &buf[..n];
                        let stream = if source == Source::Out {
                            "stdout"
                        } else {
                            "stderr"
                        };
                        if source == Source::Out {
                            let _ = std::io::stdout().write_all(data);
                            let _ = std::io::stdout().flush();
                        } else {
                            let _ = std::io::stderr().write_all(data);
                        }
                        append_log(log, stream, data);
                        true
                    }
                    Err(Errno::EINTR | Errno::EAGAIN) => true,
                    Err(_) => {
                        *slot = None;
                        false
                    }
                }
            }
            (ParentStdio::Tty { master, .. }, Source::Master) => match read(&*master, &mut buf) {
                Ok(0) | Err(Errno::EIO) => false,
                Ok(n) => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                    true
                }
                Err(Errno::EINTR | Errno::EAGAIN) => true,
                Err(_) => false,
            },
            (ParentStdio::Tty { master, .. }, Source::Stdin) => {
                // SAFETY: fd 0 stays open for the life of the process; borrowing it is sound.
                let stdin = unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) };
                match read(stdin, &mut buf) {
                    Ok(0) => false,
                    Ok(n) => write_all(master.as_fd(), &buf[..n]).is_ok(),
                    Err(Errno::EINTR | Errno::EAGAIN) => true,
                    Err(_) => false,
                }
            }
            _ => false,
        }
    }

    /// Copies the user's terminal size to the container's pty (on SIGWINCH).
    pub(crate) fn resize(&self) {
        if let ParentStdio::Tty { master, .. } = self {
            // SAFETY: fd 0 stays open for the life of the process; borrowing it is sound.
            let stdin = unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) };
            if let Some(ws) = window_size(stdin) {
                // SAFETY: TIOCSWINSZ reads one `struct winsize` from the valid `ws`.
                unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            }
        }
    }

    /// Drains what is left after the workload exited.
    pub(crate) fn drain(&mut self) {
        for (fd, source) in self.poll_fds() {
            if source == Source::Stdin {
                continue;
            }
            // Non-blocking so a grandchild that still holds the pipe cannot stall us.
            // SAFETY: `fd` is owned by `self` and stays open until `pump` reports its end.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = nix::fcntl::fcntl(
                borrowed,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            while self.pump(source) {}
        }
    }
}

impl Drop for ParentStdio {
    fn drop(&mut self) {
        if let ParentStdio::Tty {
            saved: Some(orig), ..
        } = self
        {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, orig);
        }
    }
}

/// What a polled descriptor carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Out,
    Err,
    Master,
    Stdin,
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn append_log(log: &mut File, stream: &str, data: &[u8]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(data);
    let mut record = String::with_capacity(text.len() + 48);
    for line in text.split_inclusive('\n') {
        record.push_str(&format!(
            "{}.{:06} {stream} {line}",
            now.as_secs(),
            now.subsec_micros()
        ));
    }
    if !record.ends_with('\n') {
        record.push('\n');
    }
    let _ = log.write_all(record.as_bytes());
}
