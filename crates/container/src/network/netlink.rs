//! A minimal rtnetlink client: exactly the link and address requests isolab's bridge needs.
//!
//! `ip link add ...` is not magic: iproute2 turns the command line into a *netlink* message and
//! writes it to an `AF_NETLINK`/`NETLINK_ROUTE` socket, a datagram channel whose other end is the
//! kernel's routing subsystem. Every message is a 16-byte `nlmsghdr` (length, type such as
//! `RTM_NEWLINK`, flags such as "create, fail if it exists, acknowledge me", sequence number),
//! then a fixed family header (`ifinfomsg` for links, `ifaddrmsg` for addresses), then a list of
//! type-length-value *attributes*, 4-byte aligned, which may nest (a veth's peer description is
//! an attribute inside `IFLA_INFO_DATA` inside `IFLA_LINKINFO`). The kernel answers with an
//! `NLMSG_ERROR` message whose code is 0 for success or `-errno`.
//!
//! The one fact that shapes isolab's design: **a netlink socket talks to the network namespace
//! it was created in, for its whole life**, whichever namespace the thread that later uses it is
//! in. So isolab creates this socket once from a short-lived thread that has entered its own
//! network namespace, and every later request lands there, never in the host's root namespace.
//! Talking netlink directly instead of spawning `ip` turns a ~millisecond fork+exec into a few
//! tens of microseconds of system calls.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

const NETLINK_ROUTE: libc::c_int = 0;
const NLMSG_HDR_BYTES: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

const IFF_UP: u32 = libc::IFF_UP as u32;
const AF_INET: u8 = libc::AF_INET as u8;

/// One request being assembled: header, family header, attributes.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(msg_type: u16, flags: u16) -> Self {
        let mut buf = vec![0u8; NLMSG_HDR_BYTES];
        buf[4..6].copy_from_slice(&msg_type.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Message { buf }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// `struct ifinfomsg`: which link (by index, 0 = by name attribute) and which flags to change.
    fn ifinfomsg(&mut self, index: i32, flags: u32, change: u32) {
        self.buf.extend_from_slice(&[0, 0]); // family AF_UNSPEC, padding
        self.buf.extend_from_slice(&0u16.to_ne_bytes()); // device type
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
    }

    /// `struct ifaddrmsg` for an IPv4 address of global scope on link `index`.
    fn ifaddrmsg(&mut self, prefix_len: u8, index: u32) {
        self.buf.extend_from_slice(&[AF_INET, prefix_len, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
    }

    fn attr(&mut self, attr_type: u16, payload: &[u8]) {
        let len = u16::try_from(4 + payload.len()).expect("netlink attribute fits in u16");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&attr_type.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// Strings travel NUL-terminated, as the kernel's `nla_strscpy` expects.
    fn attr_str(&mut self, attr_type: u16, value: &str) {
        let mut payload = Vec::with_capacity(value.len() + 1);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
        self.attr(attr_type, &payload);
    }

    fn nest_start(&mut self, attr_type: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&attr_type.to_ne_bytes());
        start
    }

    fn nest_end(&mut self, start: usize) {
        let len = u16::try_from(self.buf.len() - start).expect("nested attribute fits in u16");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).expect("netlink message fits in u32");
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A `NETLINK_ROUTE` socket bound for life to the network namespace it was opened in.
#[derive(Debug)]
pub(crate) struct RtNetlink {
    fd: OwnedFd,
    seq: AtomicU32,
}

impl RtNetlink {
    /// Opens a socket in the *calling thread's* network namespace.
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(RtNetlink {
            fd,
            seq: AtomicU32::new(1),
        })
    }

    /// Sends one request and waits for its acknowledgement; returns the payload of the data reply
    /// that preceded it, if any (only `RTM_GETLINK` has one).
    fn request(&self, msg: Message) -> io::Result<Option<Vec<u8>>> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let bytes = msg.finish(seq);
        // SAFETY: `bytes` is a live buffer of the given length; the kernel only reads it.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut data = None;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `buf` is a live, writable buffer of the given length.
            let got =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let mut rest = &buf[..got as usize];
            while rest.len() >= NLMSG_HDR_BYTES {
                let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
                let msg_type = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
                let msg_seq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
                if len < NLMSG_HDR_BYTES || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed netlink reply",
                    ));
                }
                let payload = &rest[NLMSG_HDR_BYTES..len];
                if msg_seq == seq {
                    if msg_type == NLMSG_ERROR {
                        let code = i32::from_ne_bytes(
                            payload
                                .get(0..4)
                                .ok_or_else(|| {
                                    io::Error::new(io::ErrorKind::InvalidData, "short NLMSG_ERROR")
                                })?
                                .try_into()
                                .expect("4 bytes"),
                        );
                        return if code == 0 {
                            Ok(data)
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    data = Some(payload.to_vec());
                }
                let next = ((len + 3) & !3usize).min(rest.len());
                rest = &rest[next..];
            }
        }
    }

    /// `ip link add NAME type bridge` followed by `ip link set NAME up`, in one request.
    pub(crate) fn bridge_create(&self, name: &str) -> io::Result<()> {
        let mut msg = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        msg.ifinfomsg(0, IFF_UP, IFF_UP);
        msg.attr_str(IFLA_IFNAME, name);
        let info = msg.nest_start(IFLA_LINKINFO);
        msg.attr_str(IFLA_INFO_KIND, "bridge");
        msg.nest_end(info);
        self.request(msg).map(drop)
    }

    /// `ip link set NAME up`.
    pub(crate) fn link_up(&self, name: &str) -> io::Result<()> {
        let mut msg = Message::new(RTM_NEWLINK, 0);
        msg.ifinfomsg(0, IFF_UP, IFF_UP);
        msg.attr_str(IFLA_IFNAME, name);
        self.request(msg).map(drop)
    }

    /// `ip addr add ADDR/PREFIX broadcast BCAST dev <index>`.
    pub(crate) fn addr_add_v4(
        &self,
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
        broadcast: Ipv4Addr,
    ) -> io::Result<()> {
        let mut msg = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        msg.ifaddrmsg(prefix_len, index);
        msg.attr(IFA_LOCAL, &addr.octets());
        msg.attr(IFA_ADDRESS, &addr.octets());
        msg.attr(IFA_BROADCAST, &broadcast.octets());
        self.request(msg).map(drop)
    }

    /// The interface index of link `name` (`ip link show NAME`).
    pub(crate) fn link_index(&self, name: &str) -> io::Result<u32> {
        let mut msg = Message::new(RTM_GETLINK, 0);
        msg.ifinfomsg(0, 0, 0);
        msg.attr_str(IFLA_IFNAME, name);
        let reply = self.request(msg)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "RTM_GETLINK gave no link")
        })?;
        // ifinfomsg: family(1) pad(1) type(2) index(4) ...
        let index = reply
            .get(4..8)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short RTM_NEWLINK"))?;
        Ok(u32::from_ne_bytes(index.try_into().expect("4 bytes")))
    }

    /// `ip link add HOST master <bridge> up type veth peer name PEER netns PID`: one end stays
    /// here, plugged into the bridge and up; the other is born directly inside the network
    /// namespace of process `peer_pid`, so it never exists anywhere else.
    pub(crate) fn veth_create(
        &self,
        host_name: &str,
        bridge_index: u32,
        peer_name: &str,
        peer_pid: i32,
    ) -> io::Result<()> {
        let mut msg = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        msg.ifinfomsg(0, IFF_UP, IFF_UP);
        msg.attr_str(IFLA_IFNAME, host_name);
        msg.attr(IFLA_MASTER, &bridge_index.to_ne_bytes());
        let info = msg.nest_start(IFLA_LINKINFO);
        msg.attr_str(IFLA_INFO_KIND, "veth");
        let data = msg.nest_start(IFLA_INFO_DATA);
        let peer = msg.nest_start(VETH_INFO_PEER);
        msg.ifinfomsg(0, 0, 0);
        msg.attr_str(IFLA_IFNAME, peer_name);
        msg.attr(IFLA_NET_NS_PID, &(peer_pid as u32).to_ne_bytes());
        msg.nest_end(peer);
        msg.nest_end(data);
        msg.nest_end(info);
        self.request(msg).map(drop)
    }

    /// `ip link del NAME`; `Ok(false)` when there was no such link. Deleting one end of a veth
    /// pair deletes both.
    pub(crate) fn link_delete(&self, name: &str) -> io::Result<bool> {
        let mut msg = Message::new(RTM_DELLINK, 0);
        msg.ifinfomsg(0, 0, 0);
        msg.attr_str(IFLA_IFNAME, name);
        match self.request(msg) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
