//! Named network namespaces, the way `ip netns` keeps them.
//!
//! A namespace lives as long as something refers to it: a process inside it, an open
//! `/proc/PID/ns/net` file descriptor, a socket created in it, or a *bind mount* of its
//! `/proc/.../ns/net` file. `ip netns add NAME` uses the last one: it creates an empty file
//! `/run/netns/NAME` and bind-mounts a fresh namespace onto it, so the namespace outlives the
//! process that made it and anyone can `setns(2)` into it by opening that path. `ip netns del`
//! unmounts and unlinks the file; the kernel frees the namespace (and every interface still in
//! it) once the last other reference is gone. isolab does the same with system calls, so its
//! namespace shows up in `ip netns list` like any other and can be inspected with `ip -n isolab`.
//!
//! `/run/netns` itself is made a *shared* mount first (what iproute2 does too): mount namespaces
//! created later (every container's) then receive our unmount through mount propagation instead
//! of keeping a private copy of the bind mount, which would pin the namespace alive.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::netlink::RtNetlink;

/// Where iproute2 (and isolab) keep named network namespaces.
pub(crate) const NETNS_RUN_DIR: &str = "/run/netns";

/// `/run/netns/NAME`.
pub(crate) fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

fn make_run_dir_shared() -> io::Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself, then it can be shared.
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates `/run/netns/NAME` holding a brand-new network namespace and returns a netlink socket
/// that lives in it. Fails with `AlreadyExists` if the name is taken.
pub(crate) fn create(name: &str) -> io::Result<RtNetlink> {
    make_run_dir_shared()?;
    let target = path(name);
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&target)?;
    // unshare(CLONE_NEWNET) moves only the calling *thread*, so a throwaway thread makes the
    // namespace without disturbing the rest of the process.
    let bind_target = target.clone();
    let made = std::thread::spawn(move || -> io::Result<RtNetlink> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &bind_target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        RtNetlink::open()
    })
    .join()
    .map_err(|_| io::Error::other("network namespace thread panicked"))?;
    if made.is_err() {
        let _ = umount2(&target, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&target);
    }
    made
}

/// Returns a netlink socket living in the existing namespace `/run/netns/NAME`.
pub(crate) fn enter(name: &str) -> io::Result<RtNetlink> {
    let ns = fs::File::open(path(name))?;
    std::thread::spawn(move || -> io::Result<RtNetlink> {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        RtNetlink::open()
    })
    .join()
    .map_err(|_| io::Error::other("network namespace thread panicked"))?
}

/// `ip netns del NAME`: drop the name; the kernel frees the namespace with its last reference.
pub(crate) fn delete(name: &str) -> io::Result<()> {
    let target = path(name);
    match umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
