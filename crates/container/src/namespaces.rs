//! Linux namespaces: the "what can this process see" half of a container.
//!
//! A namespace wraps one global resource so that processes inside get their own instance of it.
//! Linux has eight: **mount** (the mount table), **pid** (process ids; the first process becomes
//! PID 1), **uts** (hostname), **ipc** (SysV IPC and POSIX message queues), **net** (interfaces,
//! routes, ports), **user** (uid/gid numbering and capabilities: root inside can be nobody
//! outside), **cgroup** (the view of /proc/self/cgroup) and **time** (CLOCK_MONOTONIC/BOOTTIME
//! offsets). The articles count six or seven; `isolab container run --namespaces` lets you pick
//! any subset and the labs show what each one hides.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One kind of Linux namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Namespace {
    User,
    Pid,
    Mount,
    Uts,
    Ipc,
    Net,
    Cgroup,
    Time,
}

impl Namespace {
    /// All eight, in the order the kernel documents them.
    pub const ALL: [Namespace; 8] = [
        Namespace::Mount,
        Namespace::Cgroup,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::User,
        Namespace::Pid,
        Namespace::Net,
        Namespace::Time,
    ];

    /// The `CLONE_NEW*` flag that creates it.
    pub fn clone_flag(self) -> u64 {
        let flag = match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
            Namespace::Time => libc::CLONE_NEWTIME,
        };
        flag as u64
    }

    /// The short name used by `lsns`, `/proc/PID/ns/` and the OCI spec ("mnt" is also accepted).
    pub fn name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Pid => "pid",
            Namespace::Mount => "mount",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Net => "network",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }

    /// The entry under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Mount => "mnt",
            Namespace::Net => "net",
            other => other.name(),
        }
    }

    fn bit(self) -> u8 {
        1 << (Namespace::ALL.iter().position(|n| *n == self).unwrap_or(0) as u8)
    }
}

/// Error for an unknown namespace name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown namespace {0:?}: choose from user, pid, mnt, uts, ipc, net, cgroup, time (or 'all', 'none')")]
pub struct UnknownNamespace(pub String);

impl FromStr for Namespace {
    type Err = UnknownNamespace;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "user" | "userns" => Namespace::User,
            "pid" => Namespace::Pid,
            "mnt" | "mount" | "ns" => Namespace::Mount,
            "uts" => Namespace::Uts,
            "ipc" => Namespace::Ipc,
            "net" | "network" => Namespace::Net,
            "cgroup" => Namespace::Cgroup,
            "time" => Namespace::Time,
            _ => return Err(UnknownNamespace(s.to_string())),
        })
    }
}

/// A set of namespaces (a tiny bit set, `Copy`, cheap on the spawn path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NamespaceSet(u8);

impl NamespaceSet {
    /// No namespaces: a plain host process.
    pub const fn empty() -> Self {
        NamespaceSet(0)
    }

    /// Docker's and crun's default: pid, mount, uts, ipc, net, cgroup (no user, no time).
    pub fn docker_default() -> Self {
        [
            Namespace::Pid,
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Net,
            Namespace::Cgroup,
        ]
        .into_iter()
        .collect()
    }

    /// Every namespace Linux offers.
    pub fn all() -> Self {
        Namespace::ALL.into_iter().collect()
    }

    pub fn contains(self, ns: Namespace) -> bool {
        self.0 & ns.bit() != 0
    }

    pub fn insert(&mut self, ns: Namespace) {
        self.0 |= ns.bit();
    }

    pub fn remove(&mut self, ns: Namespace) {
        self.0 &= !ns.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Namespace> {
        Namespace::ALL
            .into_iter()
            .filter(move |ns| self.contains(*ns))
    }
}

impl FromIterator<Namespace> for NamespaceSet {
    fn from_iter<I: IntoIterator<Item = Namespace>>(iter: I) -> Self {
        let mut set = NamespaceSet::empty();
        for ns in iter {
            set.insert(ns);
        }
        set
    }
}

impl FromStr for NamespaceSet {
    type Err = UnknownNamespace;
    /// Comma-separated names, or `all` / `none` / `default`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => return Ok(NamespaceSet::all()),
            "none" | "" => return Ok(NamespaceSet::empty()),
            "default" => return Ok(NamespaceSet::docker_default()),
            _ => {}
        }
        s.split(',').map(str::parse).collect()
    }
}

impl fmt::Display for NamespaceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Namespace::proc_name).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_keywords() {
        let set: NamespaceSet = "pid,mnt,net".parse().unwrap();
        assert!(set.contains(Namespace::Pid) && set.contains(Namespace::Mount));
        assert!(!set.contains(Namespace::User));
        assert_eq!(set.to_string(), "mnt,pid,net");
        assert_eq!("all".parse::<NamespaceSet>().unwrap().iter().count(), 8);
        assert_eq!(
            "default".parse::<NamespaceSet>().unwrap(),
            NamespaceSet::docker_default()
        );
        assert!("pid,bogus".parse::<NamespaceSet>().is_err());
    }

    #[test]
    fn docker_default_has_six() {
        let d = NamespaceSet::docker_default();
        assert_eq!(d.iter().count(), 6);
        assert!(!d.contains(Namespace::User) && !d.contains(Namespace::Time));
    }
}
