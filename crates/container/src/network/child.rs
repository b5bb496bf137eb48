//! The container's side of the network, configured from inside its namespace before `exec`.
//!
//! This code runs in the child between `clone(2)` and `execve(2)`. If the parent process had
//! several threads, the child is a copy of only the one that called clone: a lock another thread
//! held (the allocator's, stdio's) stays locked forever in the child. So everything here is raw
//! system calls on data prepared by the parent: no allocation, no locks, no formatting, and
//! errors come back as a small `Copy` value (step + errno) the child can write to a pipe.
//!
//! It uses the classic `ioctl` interface on an ordinary `AF_INET` datagram socket — the same one
//! `ifconfig` and `route` used — because it needs no message building: one fixed `struct ifreq`
//! per request. Like any socket, it acts on the network namespace it was created in: the
//! container's own.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

/// Everything the child needs to configure its interface, computed by the parent before clone.
/// Plain bytes, so it is `Copy`, `Send` and safe to read after fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildNet {
    ifname: [libc::c_char; libc::IFNAMSIZ],
    address: [u8; 4],
    netmask: [u8; 4],
    gateway: [u8; 4],
}

impl ChildNet {
    /// `ifname` must be shorter than 16 bytes (checked by the caller, [`super::prepare`]).
    pub(crate) fn new(
        ifname: &str,
        address: Ipv4Addr,
        netmask: Ipv4Addr,
        gateway: Ipv4Addr,
    ) -> Self {
        let mut name = [0 as libc::c_char; libc::IFNAMSIZ];
        for (dst, src) in name.iter_mut().zip(ifname.bytes().take(libc::IFNAMSIZ - 1)) {
            *dst = src as libc::c_char;
        }
        ChildNet {
            ifname: name,
            address: address.octets(),
            netmask: netmask.octets(),
            gateway: gateway.octets(),
        }
    }

    /// The address `eth0` gets.
    pub fn address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.address)
    }

    /// The default gateway (the bridge's own address).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.gateway)
    }
}

/// Which part of the in-child configuration failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChildNetStep {
    /// `socket(AF_INET, SOCK_DGRAM)`.
    Socket = 1,
    /// Bringing `lo` up.
    LoopbackUp = 2,
    /// `SIOCSIFADDR` on the container interface (ENODEV: the veth was never attached).
    SetAddress = 3,
    /// `SIOCSIFNETMASK`.
    SetNetmask = 4,
    /// Bringing the container interface up.
    InterfaceUp = 5,
    /// `SIOCADDRT`: the default route via the bridge.
    DefaultRoute = 6,
}

impl ChildNetStep {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => ChildNetStep::Socket,
            2 => ChildNetStep::LoopbackUp,
            3 => ChildNetStep::SetAddress,
            4 => ChildNetStep::SetNetmask,
            5 => ChildNetStep::InterfaceUp,
            6 => ChildNetStep::DefaultRoute,
            _ => return None,
        })
    }

    fn describe(self) -> &'static str {
        match self {
            ChildNetStep::Socket => "opening a configuration socket",
            ChildNetStep::LoopbackUp => "bringing lo up",
            ChildNetStep::SetAddress => "setting eth0's address",
            ChildNetStep::SetNetmask => "setting eth0's netmask",
            ChildNetStep::InterfaceUp => "bringing eth0 up",
            ChildNetStep::DefaultRoute => "adding the default route",
        }
    }
}

/// A failure inside the child: which step, and the errno. `Copy` and allocation-free so the
/// child can report it through a pipe with [`ChildNetError::to_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildNetError {
    /// The step that failed.
    pub step: ChildNetStep,
    /// `errno` from the failing system call.
    pub errno: i32,
}

impl ChildNetError {
    /// Five bytes: the step, then errno in native byte order (parent and child share a machine).
    pub fn to_bytes(self) -> [u8; 5] {
        let e = self.errno.to_ne_bytes();
        [self.step as u8, e[0], e[1], e[2], e[3]]
    }

    /// The inverse of [`ChildNetError::to_bytes`]; `None` for bytes it never produces.
    pub fn from_bytes(bytes: [u8; 5]) -> Option<Self> {
        Some(ChildNetError {
            step: ChildNetStep::from_u8(bytes[0])?,
            errno: i32::from_ne_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
        })
    }
}

impl fmt::Display for ChildNetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "inside the container, {} failed: {}",
            self.step.describe(),
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for ChildNetError {}

fn errno() -> i32 {
    // Reads the thread's errno; builds no heap object.
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn sockaddr_in(octets: [u8; 4]) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(octets),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16-byte plain-old-data C structs; the kernel
    // reads a `struct sockaddr` field as a sockaddr_in when the family is AF_INET.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ifreq_named(name: &[libc::c_char; libc::IFNAMSIZ]) -> libc::ifreq {
    // SAFETY: ifreq is plain-old-data (a name array and a union of integers, sockaddrs and a
    // pointer); all-zero bytes are a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = *name;
    req
}

/// A socket closed on every exit path; `close` takes no lock.
struct Sock(libc::c_int);

impl Sock {
    fn open() -> Result<Self, ChildNetError> {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(ChildNetError {
                step: ChildNetStep::Socket,
                errno: errno(),
            });
        }
        Ok(Sock(fd))
    }

    fn ioctl<T>(
        &self,
        request: libc::c_ulong,
        arg: &mut T,
        step: ChildNetStep,
    ) -> Result<(), ChildNetError> {
        // SAFETY: every request used here takes a pointer to the struct type the caller passes
        // (ifreq or rtentry), which lives on the caller's stack for the duration of the call.
        let rc = unsafe { libc::ioctl(self.0, request, arg as *mut T) };
        if rc < 0 {
            return Err(ChildNetError {
                step,
                errno: errno(),
            });
        }
        Ok(())
    }

    fn set_up(
        &self,
        name: &[libc::c_char; libc::IFNAMSIZ],
        step: ChildNetStep,
    ) -> Result<(), ChildNetError> {
        let mut req = ifreq_named(name);
        self.ioctl(libc::SIOCGIFFLAGS, &mut req, step)?;
        // SAFETY: SIOCGIFFLAGS just filled the `ifru_flags` member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, &mut req, step)
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        // SAFETY: self.0 is a descriptor this struct opened and nobody else closes.
        unsafe { libc::close(self.0) };
    }
}

const LO: [libc::c_char; libc::IFNAMSIZ] = {
    let mut n = [0 as libc::c_char; libc::IFNAMSIZ];
    n[0] = b'l' as libc::c_char;
    n[1] = b'o' as libc::c_char;
    n
};

/// Brings `lo` up in the calling process's network namespace (a new one starts with `lo`
/// down, so even 127.0.0.1 is unreachable). For `--net none`. Async-signal-safe: no allocation,
/// no locks.
pub fn loopback_up() -> Result<(), ChildNetError> {
    let sock = Sock::open()?;
    sock.set_up(&LO, ChildNetStep::LoopbackUp)
}

/// Configures the container end of the veth pair from inside the container's network namespace:
/// address and netmask on `eth0`, `eth0` and `lo` up, default route via the bridge. Call it in
/// the child after the parent's [`super::BridgePlan::attach`] returned and before dropping
/// capabilities or switching to an unprivileged user. Async-signal-safe: no allocation, no locks.
pub fn configure_child(net: &ChildNet) -> Result<(), ChildNetError> {
    let sock = Sock::open()?;
    sock.set_up(&LO, ChildNetStep::LoopbackUp)?;

    let mut req = ifreq_named(&net.ifname);
    req.ifr_ifru.ifru_addr = sockaddr_in(net.address);
    sock.ioctl(libc::SIOCSIFADDR, &mut req, ChildNetStep::SetAddress)?;

    let mut req = ifreq_named(&net.ifname);
    req.ifr_ifru.ifru_netmask = sockaddr_in(net.netmask);
    sock.ioctl(libc::SIOCSIFNETMASK, &mut req, ChildNetStep::SetNetmask)?;

    sock.set_up(&net.ifname, ChildNetStep::InterfaceUp)?;

    // SAFETY: rtentry is plain-old-data; all-zero (including a null rt_dev, meaning "pick the
    // interface from the gateway's subnet") is a valid value.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr_in([0, 0, 0, 0]);
    route.rt_genmask = sockaddr_in([0, 0, 0, 0]);
    route.rt_gateway = sockaddr_in(net.gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    sock.ioctl(libc::SIOCADDRT, &mut route, ChildNetStep::DefaultRoute)
}
