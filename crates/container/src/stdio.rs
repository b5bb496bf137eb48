//! Where the workload's standard streams go: the caller's terminal, a log, or a pseudo-terminal.
//!
//! * **Inherit** — the workload writes straight to isolab's own fds 0/1/2: no copying at all,
//!   which is what the benches use.
//! * **Log** — stdout and stderr are pipes; isolab copies what arrives to its own stdout/stderr
//!   and appends it to the container's log file (`isolab container logs`), one line per record
//!   prefixed with the stream name.
//! * **Tty** — a pseudo-terminal pair: the workload gets the *slave* side as its controlling
//!   terminal (so job control and Ctrl-C work inside), isolab holds the *master* and relays bytes
//!   between it and the user's terminal, which it switches to raw mode for the duration. The
//!   pair is allocated by the child from the container's *own* devpts instance (`/dev/ptmx`
//!   after pivot_root), so `tty`, `ps` and tmux inside see `/dev/pts/0`; the child hands the
//!   master back over a unix socket (`SCM_RIGHTS`), as runc's console socket does.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::pty::Winsize;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::termios::{self, SetArg, Termios};
use nix::unistd::{pipe2, read, write};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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
    /// A pseudo-terminal whose master is sent to the unix socket at this path (the OCI
    /// runtime's `--console-socket`): the caller — podman's conmon — relays it; isolab only
    /// hands it over.
    ConsoleSocket(PathBuf),
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
        /// Arrives from the child once it has opened the pty ([`ParentStdio::receive_console`]).
        master: Option<OwnedFd>,
        socket: OwnedFd,
        saved: Option<Termios>,
    },
}

/// The child's ends, dup'ed onto 0/1/2 right before exec.
#[derive(Debug)]
pub(crate) struct ChildStdio {
    /// (fd for stdin, stdout, stderr); `None` keeps what the process inherited.
    pub fds: [Option<OwnedFd>; 3],
    /// With a tty: the socket to send the pty master over, and the user's window size.
    pub console: Option<(OwnedFd, Option<Winsize>)>,
}

/// Creates the pipes or the pty before the clone.
pub(crate) fn prepare(mode: &StdioMode) -> std::io::Result<(ParentStdio, ChildStdio)> {
    match mode {
        StdioMode::Inherit => Ok((
            ParentStdio::Inherit,
            ChildStdio {
                fds: [None, None, None],
                console: None,
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
                    console: None,
                },
            ))
        }
        StdioMode::ConsoleSocket(path) => {
            let socket = std::os::unix::net::UnixStream::connect(path)?;
            Ok((
                ParentStdio::Inherit,
                ChildStdio {
                    fds: [None, None, None],
                    console: Some((socket.into(), None)),
                },
            ))
        }
        StdioMode::Tty => {
            let stdin = std::io::stdin();
            let winsize = window_size(stdin.as_fd());
            let (parent_end, child_end) = socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )?;
            let saved = termios::tcgetattr(stdin.as_fd()).ok();
            if let Some(orig) = &saved {
                let mut raw = orig.clone();
                termios::cfmakeraw(&mut raw);
                termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
            }
            Ok((
                ParentStdio::Tty {
                    master: None,
                    socket: parent_end,
                    saved,
                },
                ChildStdio {
                    fds: [None, None, None],
                    console: Some((child_end, winsize)),
                },
            ))
        }
    }
}

/// In the child, after pivot_root: opens a pty in the container's devpts, makes its slave the
/// controlling terminal and stdin/stdout/stderr, and sends the master to the parent. No
/// allocation (stack buffers only): this runs between clone and exec.
pub(crate) fn open_console(socket: &OwnedFd, winsize: Option<&Winsize>) -> nix::Result<()> {
    let master = nix::fcntl::open(
        c"/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the valid `unlock`.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd for the slave (Linux 4.13+),
    // without a path lookup.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if slave < 0 {
        return Err(Errno::last());
    }
    if let Some(ws) = winsize {
        // SAFETY: TIOCSWINSZ reads one `struct winsize` from the valid `ws`.
        unsafe { libc::ioctl(slave, libc::TIOCSWINSZ, ws as *const Winsize) };
    }
    nix::unistd::setsid()?;
    // SAFETY: TIOCSCTTY on the slave we just opened takes no pointer argument.
    if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Errno::last());
    }
    for target in 0..3 {
        // SAFETY: dup2 of the open slave onto 0/1/2.
        if unsafe { libc::dup2(slave, target) } < 0 {
            return Err(Errno::last());
        }
    }
    if slave > 2 {
        // SAFETY: closing our own extra slave fd; 0/1/2 keep the terminal open.
        unsafe { libc::close(slave) };
    }
    send_fd(socket.as_raw_fd(), master.as_raw_fd())
}

/// sendmsg with one `SCM_RIGHTS` fd and one data byte, from stack buffers.
fn send_fd(socket: RawFd, fd: RawFd) -> nix::Result<()> {
    let mut byte = [b'c'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one cmsghdr carrying one int, 8-byte aligned.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // SAFETY: `msg` points at `control`, which has room for one header, so the first header
    // is non-null and inside the buffer.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(Errno::ENOBUFS);
    }
    let header = libc::cmsghdr {
        // SAFETY: CMSG_LEN only computes a size.
        cmsg_len: unsafe { libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) } as usize,
        cmsg_level: libc::SOL_SOCKET,
        cmsg_type: libc::SCM_RIGHTS,
    };
    // SAFETY: `cmsg` points into `control` (checked non-null above), aligned for a cmsghdr.
    unsafe { std::ptr::write(cmsg, header) };
    // SAFETY: CMSG_DATA of a header inside `control` points at the fd slot, also inside it.
    let data = unsafe { libc::CMSG_DATA(cmsg) };
    // SAFETY: `data` has room for one int; it may be unaligned, hence write_unaligned.
    unsafe { std::ptr::write_unaligned(data.cast::<RawFd>(), fd) };
    // SAFETY: sendmsg only reads `msg` and what it points to, all alive for the call.
    if unsafe { libc::sendmsg(socket, &msg, 0) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
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
            ParentStdio::Tty {
                master: Some(master),
                ..
            } => vec![
                (master.as_raw_fd(), Source::Master),
                (libc::STDIN_FILENO, Source::Stdin),
            ],
            ParentStdio::Tty { master: None, .. } => Vec::new(),
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
            (
                ParentStdio::Tty {
                    master: Some(master),
                    ..
                },
                Source::Master,
            ) => match read(&*master, &mut buf) {
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
            (
                ParentStdio::Tty {
                    master: Some(master),
                    ..
                },
                Source::Stdin,
            ) => {
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
        if let ParentStdio::Tty {
            master: Some(master),
            ..
        } = self
        {
            // SAFETY: fd 0 stays open for the life of the process; borrowing it is sound.
            let stdin = unsafe { BorrowedFd::borrow_raw(libc::STDIN_FILENO) };
            if let Some(ws) = window_size(stdin) {
                // SAFETY: TIOCSWINSZ reads one `struct winsize` from the valid `ws`.
                unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            }
        }
    }

    /// With a tty: waits for the child to send the pty master. `Ok(false)` when the child closed
    /// the socket without sending one (it failed; its status report says why).
    pub(crate) fn receive_console(&mut self) -> std::io::Result<bool> {
        let ParentStdio::Tty { master, socket, .. } = self else {
            return Ok(true);
        };
        let mut byte = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!(RawFd);
        let msg = nix::sys::socket::recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        for cmsg in msg.cmsgs()? {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd in our table for us alone.
                    *master = Some(unsafe { OwnedFd::from_raw_fd(*fd) });
                    return Ok(true);
                }
            }
        }
        Ok(false)
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
