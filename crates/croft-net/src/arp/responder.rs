//! The ARP responder: a Rust thread that answers ARP requests for a set of IPv4 addresses, and IPv6
//! neighbour solicitations for a set of IPv6 addresses, with their virtual MACs; and a sender of
//! gratuitous ARP (unsolicited neighbour advertisements for IPv6). It never runs on the caller's
//! (JS) thread.

use super::frame::{self, EthArpFrame};
use super::ndp;
use super::socket::{ArpSocket, Direction, Interface, NetError};
use crate::mac::Mac;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Frames handled per wake-up before polling again, so that a flood cannot starve the stop signal.
const FRAMES_PER_WAKE_MAX: usize = 256;
/// The poll timeout only bounds how long a lost wake-up could delay anything; stopping is signalled
/// through an eventfd and is immediate.
const POLL_TIMEOUT_MS: i32 = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Well-formed ARP requests and IPv6 neighbour solicitations received from the wire (for any
    /// address).
    pub requests: u64,
    /// Replies sent for configured addresses.
    pub replies: u64,
    /// Frames that were not Ethernet/IPv4 ARP, or not a valid neighbour solicitation.
    pub malformed: u64,
    /// Replies the kernel refused to send (interface down...).
    pub send_errors: u64,
}

#[derive(Default)]
struct Shared {
    addresses: RwLock<HashMap<Ipv4Addr, Mac>>,
    addresses6: RwLock<HashMap<Ipv6Addr, Mac>>,
    requests: AtomicU64,
    replies: AtomicU64,
    malformed: AtomicU64,
    send_errors: AtomicU64,
    /// Why the thread stopped on its own (socket error, panic), if it did.
    failure: Mutex<Option<String>>,
}

pub struct ArpResponder {
    shared: Arc<Shared>,
    stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
    iface: Interface,
}

fn check_virtual_mac(ip: impl std::fmt::Display, mac: Mac) -> Result<(), NetError> {
    if mac.is_multicast() || mac == Mac::ZERO {
        return Err(NetError::InvalidArgument(format!(
            "MAC {mac} for {ip} is not a unicast address (its first byte must be even and it must not be all zeros)"
        )));
    }
    Ok(())
}

impl ArpResponder {
    /// Opens the socket on `ifname` and starts the responder thread with no addresses.
    pub fn start(ifname: &str) -> Result<ArpResponder, NetError> {
        let iface = Interface::lookup(ifname)?;
        let socket = ArpSocket::open(iface.clone())?;
        let ndp_socket = ArpSocket::open_ndp(iface.clone())?;
        // SAFETY: plain eventfd(2) call.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(NetError::Io {
                what: "eventfd".into(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: efd is fresh and valid.
        let stop = unsafe { OwnedFd::from_raw_fd(efd) };
        let stop_fd = stop.try_clone().map_err(|source| NetError::Io {
            what: "dup eventfd".into(),
            source,
        })?;
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("croft-arp-{ifname}"))
            .spawn(move || {
                // A panic here must not take the process down: record it and stop answering.
                let result = catch_unwind(AssertUnwindSafe(|| {
                    serve(&socket, &ndp_socket, &stop_fd, &thread_shared)
                }));
                let failure = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!(
                        "ARP responder on {:?} stopped: {e}",
                        socket.iface.name
                    )),
                    Err(_) => Some(format!("ARP responder on {:?} panicked", socket.iface.name)),
                };
                if let Some(f) = failure {
                    if let Ok(mut slot) = thread_shared.failure.lock() {
                        *slot = Some(f);
                    }
                }
            })
            .map_err(|source| NetError::Io {
                what: "spawn ARP responder thread".into(),
                source,
            })?;
        Ok(ArpResponder {
            shared,
            stop,
            thread: Some(thread),
            iface,
        })
    }

    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// Replaces the set of answered addresses (each family's table atomically for the responder
    /// thread).
    pub fn set_addresses(&self, addresses: &[(IpAddr, Mac)]) -> Result<(), NetError> {
        let mut table = HashMap::new();
        let mut table6 = HashMap::new();
        for &(ip, mac) in addresses {
            check_virtual_mac(ip, mac)?;
            match ip {
                IpAddr::V4(v4) => table.insert(v4, mac),
                IpAddr::V6(v6) => table6.insert(v6, mac),
            };
        }
        *self
            .shared
            .addresses
            .write()
            .unwrap_or_else(|p| p.into_inner()) = table;
        *self
            .shared
            .addresses6
            .write()
            .unwrap_or_else(|p| p.into_inner()) = table6;
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.shared.requests.load(Ordering::Relaxed),
            replies: self.shared.replies.load(Ordering::Relaxed),
            malformed: self.shared.malformed.load(Ordering::Relaxed),
            send_errors: self.shared.send_errors.load(Ordering::Relaxed),
        }
    }

    /// Why the responder thread stopped by itself, if it did (None while it runs or after close()).
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok().and_then(|f| f.clone())
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the thread and waits for it; idempotent.
    pub fn close(&mut self) {
        if let Some(thread) = self.thread.take() {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes to an eventfd we own.
            unsafe {
                libc::write(
                    self.stop.as_raw_fd(),
                    &one as *const u64 as *const libc::c_void,
                    8,
                )
            };
            // The thread catches its own panics, so join only fails if catch_unwind itself failed.
            let _ = thread.join();
        }
    }
}

impl Drop for ArpResponder {
    fn drop(&mut self) {
        self.close();
    }
}

fn serve(
    socket: &ArpSocket,
    ndp_socket: &ArpSocket,
    stop: &OwnedFd,
    shared: &Shared,
) -> io::Result<()> {
    let mut buf = [0u8; 2048];
    loop {
        let pollfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [
            pollfd(socket.raw_fd()),
            pollfd(stop.as_raw_fd()),
            pollfd(ndp_socket.raw_fd()),
        ];
        // SAFETY: fds is a valid array of 3 pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, POLL_TIMEOUT_MS) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[1].revents != 0 {
            return Ok(());
        }
        if (fds[0].revents | fds[2].revents) & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // A removal can reach the socket as ENETDOWN while the interface is still being
        // unregistered (its index still resolves): socket_error then takes it for a link down,
        // and the unbound socket never wakes the poll again. A quiet poll looks for it.
        if n == 0 && !interface_exists(socket.iface.index) {
            return Err(removed(socket));
        }
        for (s, handle) in [
            (socket, handle_frame as fn(&ArpSocket, &[u8], &Shared)),
            (ndp_socket, handle_solicitation),
        ] {
            for _ in 0..FRAMES_PER_WAKE_MAX {
                let (len, dir) = match s.try_recv(&mut buf) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        socket_error(s, e)?;
                        break;
                    }
                };
                if dir == Direction::Outgoing {
                    continue;
                }
                handle(s, &buf[..len], shared);
            }
        }
    }
}

/// An IPv6 neighbour solicitation (the socket's filter passes nothing else): answered when its
/// target is one of the IPv6 addresses.
fn handle_solicitation(socket: &ArpSocket, bytes: &[u8], shared: &Shared) {
    let ns = match ndp::parse_solicitation(bytes) {
        Ok(ns) => ns,
        Err(_) => {
            shared.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let mac = {
        let table = shared.addresses6.read().unwrap_or_else(|p| p.into_inner());
        table.get(&ns.target).copied()
    };
    if let Some(mac) = mac {
        match socket.send(&ndp::advertisement_for(&ns, socket.iface.mac, mac)) {
            Ok(()) => shared.replies.fetch_add(1, Ordering::Relaxed),
            Err(_) => shared.send_errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A packet socket reports a device event once, as a pending error (packet_notifier in
/// net/packet/af_packet.c): ENETDOWN both when the link goes down (it will come back: keep serving)
/// and when the interface is removed (the socket is unbound for good: stop and say why).
fn socket_error(socket: &ArpSocket, e: io::Error) -> io::Result<()> {
    let gone = matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENXIO))
        || (e.raw_os_error() == Some(libc::ENETDOWN) && !interface_exists(socket.iface.index));
    if gone {
        return Err(removed(socket));
    }
    // Link down or another transient error: frames will come again once it is fixed.
    Ok(())
}

fn removed(socket: &ArpSocket) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("interface {:?} was removed", socket.iface.name),
    )
}

fn interface_exists(index: i32) -> bool {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: name has IF_NAMESIZE bytes as if_indextoname requires.
    !unsafe { libc::if_indextoname(index as libc::c_uint, name.as_mut_ptr()) }.is_null()
}

fn handle_frame(socket: &ArpSocket, bytes: &[u8], shared: &Shared) {
    let request: EthArpFrame = match frame::parse(bytes) {
        Ok(f) => f,
        Err(_) => {
            shared.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if request.arp.op != frame::ArpOp::Request {
        return;
    }
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let reply = {
        let table = shared.addresses.read().unwrap_or_else(|p| p.into_inner());
        frame::reply_for(&request, socket.iface.mac, |ip| table.get(&ip).copied())
    };
    if let Some(reply) = reply {
        match socket.send(&frame::build(&reply)) {
            Ok(()) => shared.replies.fetch_add(1, Ordering::Relaxed),
            Err(_) => shared.send_errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Sends `count` gratuitous ARP announcements of `ip` at `virtual_mac` on `ifname`, `interval`
/// apart; for an IPv6 address, unsolicited neighbour advertisements (to all nodes, override set).
/// Blocking: call it off the JS thread.
pub fn send_gratuitous(
    ifname: &str,
    ip: IpAddr,
    virtual_mac: Mac,
    count: u32,
    interval: Duration,
) -> Result<(), NetError> {
    check_virtual_mac(ip, virtual_mac)?;
    let iface = Interface::lookup(ifname)?;
    let (socket, frame) = match ip {
        IpAddr::V4(v4) => {
            let socket = ArpSocket::open(iface)?;
            let frame =
                frame::build(&frame::gratuitous(v4, virtual_mac, socket.iface.mac)).to_vec();
            (socket, frame)
        }
        IpAddr::V6(v6) => {
            // Sending needs no filter; the plain socket would receive all IPv6 frames meanwhile.
            let socket = ArpSocket::open_ndp(iface)?;
            let frame = ndp::unsolicited_advertisement(v6, socket.iface.mac, virtual_mac).to_vec();
            (socket, frame)
        }
    };
    for i in 0..count {
        if i > 0 && !interval.is_zero() {
            std::thread::sleep(interval);
        }
        socket.send(&frame).map_err(|source| NetError::Io {
            what: format!("send gratuitous ARP for {ip} on {ifname:?}"),
            source,
        })?;
    }
    Ok(())
}
