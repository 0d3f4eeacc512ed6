//! A raw AF_PACKET socket bound to one interface that sends and receives ARP frames (packet(7)).

use crate::mac::Mac;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Operating errors of the ARP socket, with messages that say what to do.
#[derive(Debug)]
pub enum NetError {
    NoSuchInterface(String),
    Permission { ifname: String, source: io::Error },
    InvalidArgument(String),
    Io { what: String, source: io::Error },
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NoSuchInterface(name) => {
                write!(f, "no such network interface {name:?} (see `ip link`)")
            }
            NetError::Permission { ifname, source } => write!(
                f,
                "no permission to open a raw packet socket on {ifname:?} ({source}): ARP needs root or CAP_NET_RAW"
            ),
            NetError::InvalidArgument(msg) => write!(f, "{msg}"),
            NetError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for NetError {}

fn io_err(what: impl Into<String>) -> NetError {
    NetError::Io {
        what: what.into(),
        source: io::Error::last_os_error(),
    }
}

/// A network interface as the ARP code needs it.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub index: i32,
    /// The interface's own (burned-in or configured) MAC: the Ethernet source of everything we send.
    pub mac: Mac,
}

impl Interface {
    pub fn lookup(name: &str) -> Result<Interface, NetError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', '\0']) {
            return Err(NetError::NoSuchInterface(name.to_string()));
        }
        let cname = CString::new(name).map_err(|_| NetError::NoSuchInterface(name.to_string()))?;
        // SAFETY: cname is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if index == 0 {
            return Err(NetError::NoSuchInterface(name.to_string()));
        }
        let mac = hardware_address(name)?;
        Ok(Interface {
            name: name.to_string(),
            index: index as i32,
            mac,
        })
    }
}

fn hardware_address(name: &str) -> Result<Mac, NetError> {
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io_err("socket(AF_INET) for SIOCGIFHWADDR"));
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: req is a valid ifreq with a NUL-terminated name (zeroed, name shorter than IFNAMSIZ).
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } < 0 {
        let source = io::Error::last_os_error();
        if source.raw_os_error() == Some(libc::ENODEV) {
            return Err(NetError::NoSuchInterface(name.to_string()));
        }
        return Err(NetError::Io {
            what: format!("SIOCGIFHWADDR on {name:?}"),
            source,
        });
    }
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member of the union.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Err(NetError::InvalidArgument(format!(
            "interface {name:?} is not Ethernet (hardware type {}): ARP for a VIP needs an Ethernet interface",
            hw.sa_family
        )));
    }
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok(Mac(mac))
}

/// Whether a received frame was sent by this host (PACKET_OUTGOING) or came from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// An AF_PACKET/SOCK_RAW socket bound to one interface for ethertype ARP (or, with
/// [`ArpSocket::open_ndp`], IPv6 neighbour solicitations).
pub struct ArpSocket {
    fd: OwnedFd,
    pub iface: Interface,
    /// The ethertype, network order, frames are sent with.
    proto: u16,
}

/// A classic BPF program: a frame passes only when it is an ICMPv6 neighbour solicitation without
/// extension headers (ethertype IPv6, next header 58, ICMPv6 type 135). Without it the socket would
/// copy every IPv6 frame of the interface (all of the VIP's traffic) to the responder.
fn solicitation_filter() -> [libc::sock_filter; 8] {
    use super::ndp::{
        ETHERTYPE_IPV6, ICMPV6_TYPE_NS, ICMPV6_TYPE_OFFSET, NEXT_HEADER_ICMP, NEXT_HEADER_OFFSET,
    };
    // Opcodes of linux/filter.h: ld half/byte at an absolute offset, jump if equal, return.
    const LDH_ABS: u16 = 0x28;
    const LDB_ABS: u16 = 0x30;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    [
        op(LDH_ABS, 0, 0, 12),
        op(JEQ_K, 0, 5, ETHERTYPE_IPV6 as u32),
        op(LDB_ABS, 0, 0, NEXT_HEADER_OFFSET as u32),
        op(JEQ_K, 0, 3, NEXT_HEADER_ICMP as u32),
        op(LDB_ABS, 0, 0, ICMPV6_TYPE_OFFSET as u32),
        op(JEQ_K, 0, 1, ICMPV6_TYPE_NS as u32),
        op(RET_K, 0, 0, 0xffff),
        op(RET_K, 0, 0, 0),
    ]
}

impl ArpSocket {
    pub fn open(iface: Interface) -> Result<ArpSocket, NetError> {
        Self::open_proto(iface, libc::ETH_P_ARP as u16)
    }

    /// A socket that receives the interface's IPv6 neighbour solicitations only (a BPF filter) and
    /// sends IPv6 frames.
    pub fn open_ndp(iface: Interface) -> Result<ArpSocket, NetError> {
        let socket = Self::open_proto(iface, libc::ETH_P_IPV6 as u16)?;
        let mut program = solicitation_filter();
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: prog points at `program`, alive for the call; the kernel copies it.
        let rc = unsafe {
            libc::setsockopt(
                socket.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog as *const libc::sock_fprog as *const libc::c_void,
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io_err(
                "attach the neighbour solicitation filter (SO_ATTACH_FILTER)",
            ));
        }
        // Frames queued before the filter was attached: the parser would refuse them anyway, but
        // drain them so the first read is a solicitation.
        let mut buf = [0u8; 2048];
        while let Ok(Some(_)) = socket.try_recv(&mut buf) {}
        Ok(socket)
    }

    fn open_proto(iface: Interface, ethertype: u16) -> Result<ArpSocket, NetError> {
        let proto = ethertype.to_be();
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                proto as i32,
            )
        };
        if fd < 0 {
            let source = io::Error::last_os_error();
            return Err(match source.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => NetError::Permission {
                    ifname: iface.name.clone(),
                    source,
                },
                _ => NetError::Io {
                    what: format!("socket(AF_PACKET, SOCK_RAW, 0x{ethertype:04x})"),
                    source,
                },
            });
        }
        // SAFETY: fd is fresh and valid.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = link_addr(iface.index, proto, None);
        // SAFETY: addr is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let source = io::Error::last_os_error();
            return Err(match source.raw_os_error() {
                Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    NetError::NoSuchInterface(iface.name.clone())
                }
                _ => NetError::Io {
                    what: format!("bind AF_PACKET socket to {:?}", iface.name),
                    source,
                },
            });
        }
        Ok(ArpSocket { fd, iface, proto })
    }

    /// Sends one complete Ethernet frame (the kernel adds nothing to a SOCK_RAW frame).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        assert!(frame.len() >= 14, "an Ethernet frame has a 14-byte header");
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[0..6]);
        let addr = link_addr(self.iface.index, self.proto, Some(dst));
        // SAFETY: frame and addr are valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write on packet socket",
            ));
        }
        Ok(())
    }

    /// Receives one frame without blocking: Ok(None) when nothing is queued.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Direction)>> {
        // SAFETY: zeroed sockaddr_ll is valid; buf and addr are valid for their lengths.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
                &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                return Ok(None);
            }
            return Err(e);
        }
        let dir = if addr.sll_pkttype == libc::PACKET_OUTGOING {
            Direction::Outgoing
        } else {
            Direction::Incoming
        };
        Ok(Some((n as usize, dir)))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn link_addr(ifindex: i32, proto_be: u16, dst: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto_be;
    addr.sll_ifindex = ifindex;
    if let Some(d) = dst {
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&d);
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let err = Interface::lookup("croft-nope0").unwrap_err();
        assert!(matches!(err, NetError::NoSuchInterface(_)));
        assert!(err.to_string().contains("croft-nope0"));
        assert!(matches!(
            Interface::lookup("").unwrap_err(),
            NetError::NoSuchInterface(_)
        ));
        assert!(matches!(
            Interface::lookup("a/b").unwrap_err(),
            NetError::NoSuchInterface(_)
        ));
    }
}
