//! Container networking: network namespaces, veth pairs and a bridge of isolab's own.
//!
//! **A network namespace** is a complete, separate copy of the kernel's network stack: its own
//! interfaces, addresses, routing table, firewall rules, sockets and port numbers. A process in
//! a fresh one (`clone(CLONE_NEWNET)`) sees a single interface, `lo`, and even that is down. That
//! is `--net none`: total network isolation. `--net host` simply skips the new namespace and
//! shares the host's stack, ports and all.
//!
//! **A veth pair** is a virtual Ethernet cable: two interfaces created together where every frame
//! sent into one comes out of the other. Its two ends may sit in different namespaces — that is
//! the only way packets cross between them. Deleting either end, or destroying the namespace one
//! end lives in, destroys the pair. So the container's `eth0` and its partner on the bridge
//! vanish by themselves when the container's last process exits and the kernel tears its
//! namespace down (asynchronously, milliseconds later); isolab never has to delete them. Deleting
//! them by hand would cost 15-50 ms here, since unregistering a device waits for RCU grace
//! periods. Addresses are handed out round robin, so the address of a container that just exited
//! is not given to the next one while its old `eth0` may still be answering ARP.
//!
//! **A bridge** is a virtual Ethernet switch: interfaces "plugged into" it (made its ports) have
//! their frames forwarded to each other by MAC address, learned from the traffic. The bridge
//! itself can also carry an IP address, which makes it the gateway of the subnet.
//!
//! **How two containers reach each other** here: container A's `eth0` (10.77.0.2) is one end of
//! a veth whose other end, `veth2`, is a port of the bridge `isolab0`; container B is plugged in
//! the same way as 10.77.0.3. A's `ping 10.77.0.3` sees an address in its own subnet, so the
//! kernel sends an ARP broadcast out of `eth0`; it crosses the veth, the bridge floods it to all
//! ports, B's `eth0` answers with its MAC, and the echo request follows the same path, switched
//! by the bridge straight to B's port. Nothing is routed; it is one Ethernet segment.
//!
//! **Where the bridge lives.** Docker puts `docker0` in the host's root namespace, gives it the
//! gateway address and adds iptables NAT (masquerade) rules there, so containers reach the
//! internet through the host and published ports reach containers — at the price of changing
//! the host's interfaces, routes and firewall. isolab instead creates its *own* named network
//! namespace (`ip netns list` shows `isolab` while containers run) and puts the bridge there.
//! The host's root namespace is never modified: not one interface, address or rule. The subnet
//! cannot collide with the host's networks either, since the two stacks never meet. The price:
//! containers reach each other (and the bridge's address), but not the outside world — there is
//! no uplink or NAT. Inspect it with `ip -n isolab link` / `ip -n isolab addr`.
//!
//! **Lifecycle.** [`prepare`] (before clone, in the parent) leases an address and creates the
//! namespace and bridge if this is the first container; [`BridgePlan::attach`] (after clone)
//! creates the veth pair straight into the child's namespace with one netlink request;
//! [`configure_child`] (in the child, before exec) sets `eth0` up. Dropping the plan (or
//! [`BridgePlan::release`]) removes the lease, and the last lease to go deletes the namespace, so
//! after a run `ip netns` is exactly as before. If isolab itself is killed with SIGKILL, its
//! leases are recognised as stale (their process is gone) and reclaimed by the next run.
//!
//! **One record per host.** The namespace is a host-wide object, so its leases are too: they
//! live in `/run/isolab/network/<netns>/`, whatever store (`$ISOLAB_HOME`) a container belongs
//! to. Two users' stores, a test run and a lab, a bench and a user all draw addresses from the
//! same record, and the namespace goes only when no container on the host holds a lease.

mod child;
mod ipam;
mod netlink;
mod netns;

#[cfg(test)]
mod tests;

pub use child::{configure_child, loopback_up, ChildNet, ChildNetError, ChildNetStep};

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use netlink::RtNetlink;

/// The container-side interface name.
pub const CONTAINER_IFNAME: &str = "eth0";

/// Linux interface names are at most 15 bytes (`IFNAMSIZ` 16 including the NUL).
const MAX_IFNAME_BYTES: usize = 15;

/// Why a network operation failed; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The subnet string is not a usable IPv4 CIDR.
    #[error("invalid subnet `{input}`: {reason} (expected an IPv4 CIDR such as 10.77.0.0/16)")]
    InvalidSubnet {
        /// What the user gave.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bridge, namespace or container name cannot be used.
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// Which name ("bridge name", "network namespace name", "container id").
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Every host address of the subnet is leased.
    #[error("no free address left in {subnet}: all are leased to running containers; stop some or configure a larger subnet")]
    SubnetExhausted {
        /// The full subnet.
        subnet: Subnet,
    },
    /// Live containers use the namespace with another subnet.
    #[error("network namespace `{netns}` serves running containers outside {subnet} (e.g. {example}); stop them before changing the subnet")]
    SubnetInUse {
        /// The namespace name.
        netns: String,
        /// The subnet asked for.
        subnet: Subnet,
        /// A live lease outside it.
        example: Ipv4Addr,
    },
    /// A file-system or namespace operation failed.
    #[error("{what}: {source}{}", permission_hint(source))]
    Io {
        /// What isolab was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn permission_hint(e: &io::Error) -> &'static str {
    if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
        " (bridge networking needs root: CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    } else {
        ""
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetworkError {
    let what = what.into();
    move |source| NetworkError::Io { what, source }
}

/// An IPv4 subnet in CIDR form, with host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

impl Subnet {
    /// `prefix_len` 8..=30: a /31 or /32 has no room for a gateway plus a container, and a prefix
    /// under 8 is certainly a typo.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Self, NetworkError> {
        let input = format!("{network}/{prefix_len}");
        if !(8..=30).contains(&prefix_len) {
            return Err(NetworkError::InvalidSubnet {
                input,
                reason: format!("prefix length {prefix_len} is outside 8..=30"),
            });
        }
        let mask = u32::MAX << (32 - prefix_len);
        let base = u32::from(network) & mask;
        if base != u32::from(network) {
            return Err(NetworkError::InvalidSubnet {
                input,
                reason: format!(
                    "host bits are set; did you mean {}/{prefix_len}?",
                    Ipv4Addr::from(base)
                ),
            });
        }
        Ok(Subnet {
            network,
            prefix_len,
        })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The CIDR prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask, e.g. 255.255.0.0 for a /16.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX << (32 - self.prefix_len))
    }

    /// The first host address, which the bridge takes.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The last address of the subnet.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !(u32::MAX << (32 - self.prefix_len)))
    }

    /// Whether `addr` lies in this subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & u32::from(self.netmask()) == u32::from(self.network)
    }

    /// Addresses containers may get: all but network, gateway and broadcast.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let last = u32::from(self.broadcast()) - 1;
        (first..=last).map(Ipv4Addr::from)
    }

    /// Position of `addr` in the subnet (gateway = 1), used to name its veth.
    fn host_index(&self, addr: Ipv4Addr) -> u32 {
        u32::from(addr) - u32::from(self.network)
    }
}

impl FromStr for Subnet {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| NetworkError::InvalidSubnet {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (addr, len) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| bad("missing `/prefix-length`"))?;
        let network: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("the address part is not a dotted-quad IPv4 address"))?;
        let prefix_len: u8 = len
            .parse()
            .map_err(|_| bad("the prefix length is not a number"))?;
        Subnet::new(network, prefix_len).map_err(|e| match e {
            NetworkError::InvalidSubnet { reason, .. } => NetworkError::InvalidSubnet {
                input: s.to_string(),
                reason,
            },
            other => other,
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Where bridge-mode containers are plugged in. One netns name is one network on the host: all
/// isolab processes using it must use the same config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The private subnet; the bridge takes its first address.
    pub subnet: Subnet,
    /// Bridge interface name inside isolab's namespace.
    pub bridge: String,
    /// Name of isolab's network namespace under /run/netns.
    pub netns: String,
}

impl Default for BridgeConfig {
    /// 10.77.0.0/16: room for 65,533 containers; rarely used, though since the bridge lives in
    /// its own namespace it could not clash with the host's networks anyway.
    fn default() -> Self {
        BridgeConfig {
            subnet: Subnet {
                network: Ipv4Addr::new(10, 77, 0, 0),
                prefix_len: 16,
            },
            bridge: "isolab0".to_string(),
            netns: "isolab".to_string(),
        }
    }
}

fn check_ifname(what: &'static str, name: &str) -> Result<(), NetworkError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_IFNAME_BYTES {
        Some("Linux interface names are at most 15 bytes")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not interface names")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || !b.is_ascii_graphic())
    {
        Some("use ASCII letters, digits, `-`, `_` or `.` only (no `/`, `:` or spaces)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetworkError::InvalidName {
            what,
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

impl BridgeConfig {
    /// Checks the names before anything is created.
    pub fn validate(&self) -> Result<(), NetworkError> {
        check_ifname("bridge name", &self.bridge)?;
        let ns = &self.netns;
        if ns.is_empty()
            || ns == "."
            || ns == ".."
            || ns.len() > 64
            || !ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(NetworkError::InvalidName {
                what: "network namespace name",
                name: ns.clone(),
                reason: "use 1-64 ASCII letters, digits, `-`, `_` or `.`",
            });
        }
        Ok(())
    }
}

/// One container's place on the bridge: its leased address, the veth names, and the prebuilt
/// data its child side needs. Holds the lease until dropped (or [`BridgePlan::release`]d).
#[derive(Debug)]
pub struct BridgePlan {
    subnet: Subnet,
    address: Ipv4Addr,
    host_veth: String,
    child: ChildNet,
    netns: String,
    /// `/run/isolab/network/<netns>`: this namespace's leases and round-robin cursor.
    net_dir: PathBuf,
    lease_path: PathBuf,
    bridge_index: u32,
    nl: Option<RtNetlink>,
    released: bool,
}

/// Where the leases of the namespace `netns` are kept, host-wide (see the module docs).
pub fn lease_dir(netns: &str) -> PathBuf {
    ipam::state_dir(netns).join("leases")
}

/// Before clone, in the parent: lease an address and make sure isolab's namespace and bridge
/// exist. Leases live host-wide in [`lease_dir`], shared by every store on the host.
pub fn prepare(config: &BridgeConfig, container_id: &str) -> Result<BridgePlan, NetworkError> {
    config.validate()?;
    check_container_id(container_id)?;
    let net_dir = ipam::state_dir(&config.netns);
    let leases_dir = net_dir.join("leases");
    let lock = ipam::NetLock::acquire()
        .map_err(io_err(format!("locking {}", ipam::lock_path().display())))?;
    let (taken, stale) = sweep_leases(config, &leases_dir)?;
    let first_container = taken.is_empty();
    let (address, lease_path) = ipam::take(&net_dir, config.subnet, &taken, container_id)
        .map_err(io_err(format!(
            "taking a lease in {}",
            leases_dir.display()
        )))?
        .ok_or(NetworkError::SubnetExhausted {
            subnet: config.subnet,
        })?;
    let index = config.subnet.host_index(address);
    let mut plan = BridgePlan {
        subnet: config.subnet,
        address,
        host_veth: format!("veth{index}"),
        child: ChildNet::new(
            CONTAINER_IFNAME,
            address,
            config.subnet.netmask(),
            config.subnet.gateway(),
        ),
        netns: config.netns.clone(),
        net_dir,
        lease_path,
        bridge_index: 0,
        nl: None,
        released: false,
    };
    // From here on an error drops `plan`, which gives the lease back (and deletes the namespace
    // if this was the only one) under the lock — so release the lock first.
    let setup = open_namespace(config, first_container, &stale);
    drop(lock);
    let (nl, bridge_index) = setup?;
    plan.nl = Some(nl);
    plan.bridge_index = bridge_index;
    Ok(plan)
}

/// The id names the lease file's owner, one line of it.
fn check_container_id(container_id: &str) -> Result<(), NetworkError> {
    if container_id.is_empty() || container_id.contains(['\n', '\0']) {
        return Err(NetworkError::InvalidName {
            what: "container id",
            name: container_id.to_string(),
            reason: "it must be non-empty and contain no newline or NUL",
        });
    }
    Ok(())
}

/// Reads the namespace's leases under the lock: the addresses live containers hold, and those
/// of dead ones, whose lease files are removed here (their veths go in [`open_namespace`]).
/// A live lease outside `config.subnet` means the namespace is in use with another subnet.
fn sweep_leases(
    config: &BridgeConfig,
    leases_dir: &Path,
) -> Result<(BTreeSet<Ipv4Addr>, Vec<Ipv4Addr>), NetworkError> {
    let leases = scan_leases(leases_dir)?;
    let mut taken = BTreeSet::new();
    let mut stale = Vec::new();
    for lease in &leases {
        if lease.live {
            if !config.subnet.contains(lease.address) {
                return Err(NetworkError::SubnetInUse {
                    netns: config.netns.clone(),
                    subnet: config.subnet,
                    example: lease.address,
                });
            }
            taken.insert(lease.address);
        } else {
            remove_lease(&lease.path, "stale lease")?;
            stale.push(lease.address);
        }
    }
    Ok((taken, stale))
}

/// Enters isolab's network namespace, creating it and its bridge if this is the first
/// container (a namespace left by a SIGKILLed isolab is recreated clean), and deletes the veths
/// of `stale` leases. Returns the netlink socket in it and the bridge's interface index.
fn open_namespace(
    config: &BridgeConfig,
    first_container: bool,
    stale: &[Ipv4Addr],
) -> Result<(RtNetlink, u32), NetworkError> {
    let ns_path = netns::path(&config.netns);
    if first_container && ns_path.exists() {
        netns::delete(&config.netns)
            .map_err(io_err(format!("deleting stale {}", ns_path.display())))?;
    }
    let nl = if ns_path.exists() {
        let nl = netns::enter(&config.netns)
            .map_err(io_err(format!("entering {}", ns_path.display())))?;
        for addr in stale {
            let name = format!("veth{}", config.subnet.host_index(*addr));
            nl.link_delete(&name).map_err(io_err(format!(
                "deleting stale {name} in {}",
                ns_path.display()
            )))?;
        }
        nl
    } else {
        let nl = netns::create(&config.netns).map_err(io_err(format!(
            "creating network namespace {}",
            ns_path.display()
        )))?;
        build_bridge(&nl, config).inspect_err(|_| {
            let _ = netns::delete(&config.netns);
        })?;
        nl
    };
    let bridge_index = nl.link_index(&config.bridge).map_err(io_err(format!(
        "finding bridge {} in network namespace {}",
        config.bridge, config.netns
    )))?;
    Ok((nl, bridge_index))
}

fn build_bridge(nl: &RtNetlink, config: &BridgeConfig) -> Result<(), NetworkError> {
    let ns = &config.netns;
    nl.link_up("lo")
        .map_err(io_err(format!("bringing lo up in network namespace {ns}")))?;
    nl.bridge_create(&config.bridge).map_err(io_err(format!(
        "creating bridge {} in network namespace {ns}",
        config.bridge
    )))?;
    let index = nl.link_index(&config.bridge).map_err(io_err(format!(
        "finding bridge {} in network namespace {ns}",
        config.bridge
    )))?;
    nl.addr_add_v4(
        index,
        config.subnet.gateway(),
        config.subnet.prefix_len(),
        config.subnet.broadcast(),
    )
    .map_err(io_err(format!(
        "adding {}/{} to bridge {}",
        config.subnet.gateway(),
        config.subnet.prefix_len(),
        config.bridge
    )))
}

/// Every lease of one namespace, each saying whether the process that took it is alive.
fn scan_leases(leases_dir: &Path) -> Result<Vec<ipam::LeaseEntry>, NetworkError> {
    ipam::scan(leases_dir).map_err(io_err(format!(
        "reading leases in {}",
        leases_dir.display()
    )))
}

/// Removes one lease file (`what` names it in the error); one already gone is fine.
fn remove_lease(path: &Path, what: &str) -> Result<(), NetworkError> {
    fs::remove_file(path)
        .or_else(ignore_not_found)
        .map_err(io_err(format!("removing {what} {}", path.display())))
}

fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

impl BridgePlan {
    /// After clone, in the parent, while the child waits: create the veth pair, the bridge end
    /// (`veth<N>`) plugged into the bridge and up, the container end born as `eth0` directly in
    /// the network namespace of `child_pid`. One netlink request; no process is spawned.
    pub fn attach(&self, child_pid: i32) -> Result<(), NetworkError> {
        let nl = self.nl.as_ref().ok_or_else(|| NetworkError::Io {
            what: "attaching a released plan".to_string(),
            source: io::Error::from_raw_os_error(libc::EBADF),
        })?;
        let mut created = nl.veth_create(
            &self.host_veth,
            self.bridge_index,
            CONTAINER_IFNAME,
            child_pid,
        );
        if created.as_ref().err().and_then(io::Error::raw_os_error) == Some(libc::EEXIST) {
            // An earlier holder of this address has exited but the kernel has not finished
            // tearing its namespace (and so this veth) down yet: remove it now and retry.
            let _ = nl.link_delete(&self.host_veth);
            created = nl.veth_create(
                &self.host_veth,
                self.bridge_index,
                CONTAINER_IFNAME,
                child_pid,
            );
        }
        created.map_err(io_err(format!(
                "creating veth pair {} <-> {CONTAINER_IFNAME} in process {child_pid}'s network namespace",
                self.host_veth
            )))
    }

    /// What the child passes to [`configure_child`]; `Copy`, so move it into the child closure.
    pub fn child(&self) -> &ChildNet {
        &self.child
    }

    /// The container's address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The subnet's prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.subnet.prefix_len()
    }

    /// The default gateway: the bridge's address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.subnet.gateway()
    }

    /// Name of the bridge end of the veth pair, inside isolab's namespace.
    pub fn host_veth(&self) -> &str {
        &self.host_veth
    }

    /// Name of isolab's network namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Gives the lease back now and reports failures (dropping does the same silently); the
    /// last lease to go deletes isolab's namespace. Call it after the container's last process
    /// has been reaped: its veth pair then disappears with its namespace.
    pub fn release(mut self) -> Result<(), NetworkError> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), NetworkError> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        // The veth pair is not deleted here: it dies with the container's namespace. Deleting it
        // by hand costs 15-50 ms (two device unregistrations, each waiting for RCU grace
        // periods) and would only race the kernel's own asynchronous teardown.
        let result = (|| -> Result<(), NetworkError> {
            let _lock = ipam::NetLock::acquire()
                .map_err(io_err(format!("locking {}", ipam::lock_path().display())))?;
            remove_lease(&self.lease_path, "lease")?;
            let leases = scan_leases(&self.net_dir.join("leases"))?;
            if leases.iter().all(|l| !l.live) {
                for lease in &leases {
                    remove_lease(&lease.path, "stale lease")?;
                }
                netns::delete(&self.netns).map_err(io_err(format!(
                    "deleting network namespace {}",
                    netns::path(&self.netns).display()
                )))?;
                // Safe under the lock: no one else can be between scanning and taking a lease.
                fs::remove_dir_all(&self.net_dir)
                    .or_else(ignore_not_found)
                    .map_err(io_err(format!("removing {}", self.net_dir.display())))?;
            }
            Ok(())
        })();
        // Closing the socket drops our last reference to the namespace.
        self.nl = None;
        result
    }
}

impl Drop for BridgePlan {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}
