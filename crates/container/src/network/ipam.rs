//! Address management (IPAM) with lease files: one file per address in use.
//!
//! Several isolab processes may start containers at once, and any of them may be killed with
//! SIGKILL, so the record of which address is taken must live on disk and must be recoverable.
//! Each lease is a file `/run/isolab/network/<netns>/leases/<ip>` created with `O_EXCL` (the
//! kernel guarantees only one creator wins), holding the container id and the pid *and start
//! time* of the isolab process that took it. A lease whose process is gone — or whose pid now
//! belongs to a different process, which the start time reveals — is stale and may be reclaimed.
//! All changes happen under an `flock(2)` on `/run/isolab/network/lock`, which the kernel drops
//! by itself if its holder dies.
//!
//! The state is host-wide, not per store (`$ISOLAB_HOME`): the namespace and its bridge are
//! host-wide objects, shared by every isolab on the host whatever its store, so the record of
//! who uses them must be too — otherwise two stores hand out the same address, and the last
//! container of one store deletes the bridge under the other's running containers. It lives
//! under `/run` because it describes kernel objects that do not survive a reboot either.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::Subnet;

/// The host-wide root of isolab's network state.
pub(crate) const STATE_ROOT: &str = "/run/isolab/network";

/// The lease state of one named namespace: `/run/isolab/network/<netns>`.
pub(crate) fn state_dir(netns: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(netns)
}

/// The host-wide lock file. One lock for every namespace, and it is never deleted: a per-
/// namespace lock inside a directory that the last release removes could be held by two
/// processes at once (one on the unlinked file, one on its replacement).
pub(crate) fn lock_path() -> PathBuf {
    Path::new(STATE_ROOT).join("lock")
}

/// An exclusive `flock` on `/run/isolab/network/lock`, released on drop.
#[derive(Debug)]
pub(crate) struct NetLock {
    _lock: Flock<fs::File>,
}

impl NetLock {
    pub(crate) fn acquire() -> io::Result<Self> {
        fs::create_dir_all(STATE_ROOT)?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path())?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
        Ok(NetLock { _lock: lock })
    }
}

/// One lease file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseEntry {
    pub(crate) address: Ipv4Addr,
    pub(crate) path: PathBuf,
    pub(crate) live: bool,
}

/// The start time (clock ticks since boot, field 22 of `/proc/PID/stat`) of a process, which
/// together with the pid names it uniquely across pid reuse.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

fn lease_is_live(content: &str) -> bool {
    let mut lines = content.lines();
    let _container_id = lines.next();
    let pid = lines.next().and_then(|l| l.trim().parse::<u32>().ok());
    let start = lines.next().and_then(|l| l.trim().parse::<u64>().ok());
    match (pid, start) {
        (Some(pid), Some(start)) => process_start_time(pid) == Some(start),
        // A file cut short by a crash between create and write: nobody holds it.
        _ => false,
    }
}

/// Lists every lease in `leases_dir`, marking which are still held by a live process. A missing
/// directory holds no leases.
pub(crate) fn scan(leases_dir: &Path) -> io::Result<Vec<LeaseEntry>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(leases_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(address) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let live = match fs::read_to_string(&path) {
            Ok(content) => lease_is_live(&content),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push(LeaseEntry {
            address,
            path,
            live,
        });
    }
    out.sort_by_key(|l| l.address);
    Ok(out)
}

/// File remembering the last address handed out, so the next lease starts after it.
const LAST_FILE: &str = "last-address";

/// Takes the next free host address of `subnet` after the one handed out last (round robin,
/// like CNI's host-local IPAM), skipping those in `taken`, and writes the lease file. Returns
/// `Ok(None)` when the subnet is full.
///
/// Why not simply the lowest free address: an exited container's `eth0` still exists — and
/// still answers ARP for its address — until the kernel finishes tearing down its namespace,
/// asynchronously, some milliseconds later. Handing addresses out in a circle means an address
/// comes back only after the whole subnet has been used once.
pub(crate) fn take(
    net_dir: &Path,
    subnet: Subnet,
    taken: &BTreeSet<Ipv4Addr>,
    container_id: &str,
) -> io::Result<Option<(Ipv4Addr, PathBuf)>> {
    let leases_dir = net_dir.join("leases");
    fs::create_dir_all(&leases_dir)?;
    let last_file = net_dir.join(LAST_FILE);
    let last = fs::read_to_string(&last_file)
        .ok()
        .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
        .filter(|a| subnet.contains(*a));
    let pid = std::process::id();
    let start = process_start_time(pid)
        .ok_or_else(|| io::Error::other("cannot read this process's start time from /proc"))?;
    let hosts: Vec<Ipv4Addr> = subnet.hosts().collect();
    let first = last
        .and_then(|l| hosts.iter().position(|h| *h == l))
        .map_or(0, |i| i + 1);
    for address in hosts[first..].iter().chain(hosts[..first].iter()).copied() {
        if taken.contains(&address) {
            continue;
        }
        let path = leases_dir.join(address.to_string());
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = writeln!(file, "{container_id}\n{pid}\n{start}");
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        fs::write(&last_file, format!("{address}\n"))?;
        return Ok(Some((address, path)));
    }
    Ok(None)
}
