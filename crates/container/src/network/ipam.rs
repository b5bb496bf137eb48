//! Address management (IPAM) with lease files: one file per address in use.
//!
//! Several isolab processes may start containers at once, and any of them may be killed with
//! SIGKILL, so the record of which address is taken must live on disk and must be recoverable.
//! Each lease is a file `<home>/net/leases/<ip>` created with `O_EXCL` (the kernel guarantees
//! only one creator wins), holding the container id and the pid *and start time* of the isolab
//! process that took it. A lease whose process is gone — or whose pid now belongs to a different
//! process, which the start time reveals — is stale and may be reclaimed. All changes happen
//! under an `flock(2)` on `<home>/net/lock`, which the kernel drops by itself if its holder dies.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::Subnet;

/// An exclusive `flock` on `<home>/net/lock`, released on drop.
#[derive(Debug)]
pub(crate) struct NetLock {
    _lock: Flock<fs::File>,
}

impl NetLock {
    pub(crate) fn acquire(net_dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(net_dir.join("leases"))?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(net_dir.join("lock"))?;
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

/// Lists every lease in `leases_dir`, marking which are still held by a live process.
pub(crate) fn scan(leases_dir: &Path) -> io::Result<Vec<LeaseEntry>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(leases_dir)? {
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
