//! Ethernet + ARP frames (RFC 826 for IPv4 over Ethernet), built and parsed without I/O.

use crate::mac::Mac;
use std::net::Ipv4Addr;

pub const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const HTYPE_ETHERNET: u16 = 1;
const ETH_HEADER_BYTES: usize = 14;
const ARP_BYTES: usize = 28;
/// Ethernet header + ARP payload.
pub const ARP_FRAME_BYTES: usize = ETH_HEADER_BYTES + ARP_BYTES;
/// Minimum Ethernet frame without FCS: short frames are padded, because a raw socket sends exactly
/// what it is given and virtual NICs (veth) do not pad.
pub const MIN_FRAME_BYTES: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request = 1,
    Reply = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub op: ArpOp,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// A gratuitous ARP announcement (sender IP == target IP, RFC 5227 section 3).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthArpFrame {
    pub eth_dst: Mac,
    pub eth_src: Mac,
    pub arp: ArpPacket,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    TooShort(usize),
    NotArp(u16),
    /// Hardware or protocol type/size other than Ethernet/IPv4.
    UnsupportedFormat,
    UnknownOp(u16),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooShort(n) => write!(
                f,
                "frame of {n} bytes is shorter than Ethernet+ARP ({ARP_FRAME_BYTES})"
            ),
            FrameError::NotArp(t) => write!(f, "ethertype 0x{t:04x} is not ARP"),
            FrameError::UnsupportedFormat => write!(f, "ARP is not Ethernet/IPv4"),
            FrameError::UnknownOp(op) => write!(f, "unknown ARP operation {op}"),
        }
    }
}

impl std::error::Error for FrameError {}

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    Mac(m)
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Parses an Ethernet frame carrying an Ethernet/IPv4 ARP packet. Trailing padding is ignored.
pub fn parse(frame: &[u8]) -> Result<EthArpFrame, FrameError> {
    if frame.len() < ARP_FRAME_BYTES {
        return Err(FrameError::TooShort(frame.len()));
    }
    let ethertype = u16_at(frame, 12);
    if ethertype != ETHERTYPE_ARP {
        return Err(FrameError::NotArp(ethertype));
    }
    let a = &frame[ETH_HEADER_BYTES..];
    if u16_at(a, 0) != HTYPE_ETHERNET || u16_at(a, 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 {
        return Err(FrameError::UnsupportedFormat);
    }
    let op = match u16_at(a, 6) {
        1 => ArpOp::Request,
        2 => ArpOp::Reply,
        other => return Err(FrameError::UnknownOp(other)),
    };
    Ok(EthArpFrame {
        eth_dst: mac_at(frame, 0),
        eth_src: mac_at(frame, 6),
        arp: ArpPacket {
            op,
            sender_mac: mac_at(a, 8),
            sender_ip: ip_at(a, 14),
            target_mac: mac_at(a, 18),
            target_ip: ip_at(a, 24),
        },
    })
}

/// Serialises a frame, padded with zeros to the Ethernet minimum.
pub fn build(f: &EthArpFrame) -> [u8; MIN_FRAME_BYTES] {
    let mut b = [0u8; MIN_FRAME_BYTES];
    b[0..6].copy_from_slice(&f.eth_dst.0);
    b[6..12].copy_from_slice(&f.eth_src.0);
    b[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let a = &mut b[ETH_HEADER_BYTES..ARP_FRAME_BYTES];
    a[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    a[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&(f.arp.op as u16).to_be_bytes());
    a[8..14].copy_from_slice(&f.arp.sender_mac.0);
    a[14..18].copy_from_slice(&f.arp.sender_ip.octets());
    a[18..24].copy_from_slice(&f.arp.target_mac.0);
    a[24..28].copy_from_slice(&f.arp.target_ip.octets());
    b
}

/// The reply to `request` if it asks for an address we answer for, else None.
///
/// `lookup` maps an IPv4 address to the virtual MAC we announce for it. `iface_mac` is the real MAC
/// of the interface we send on.
///
/// The Ethernet source of the reply is the interface's real MAC and only the ARP sender hardware
/// address is the virtual MAC. This is the "invisible MAC" of the farm: switches learn MAC -> port
/// from Ethernet *source* addresses only, so as long as no frame ever leaves any node with the
/// virtual MAC as its source, no switch learns where that MAC lives and every frame sent to it is
/// flooded to all ports, so every farm node receives every client packet and its nft filter keeps
/// its own share. If the reply came from the virtual MAC, the switch would pin the VIP's traffic to
/// the one port of whichever node answered last.
pub fn reply_for(
    request: &EthArpFrame,
    iface_mac: Mac,
    lookup: impl Fn(Ipv4Addr) -> Option<Mac>,
) -> Option<EthArpFrame> {
    let arp = &request.arp;
    if arp.op != ArpOp::Request {
        return None;
    }
    // An announcement (ours or another farm node's, or a host claiming the address) asks nothing.
    if arp.is_gratuitous() {
        return None;
    }
    // Our own frames looped back, or a malformed request from a broadcast source: nothing to answer.
    if request.eth_src == iface_mac || arp.sender_mac.is_multicast() {
        return None;
    }
    let virtual_mac = lookup(arp.target_ip)?;
    Some(EthArpFrame {
        // Unicast to the asker (RFC 826), as Linux does.
        eth_dst: arp.sender_mac,
        eth_src: iface_mac,
        arp: ArpPacket {
            op: ArpOp::Reply,
            sender_mac: virtual_mac,
            sender_ip: arp.target_ip,
            target_mac: arp.sender_mac,
            // An RFC 5227 probe has sender IP 0.0.0.0: the reply then goes to 0.0.0.0, which is
            // what the prober looks for (a reply naming the probed address as sender).
            target_ip: arp.sender_ip,
        },
    })
}

/// A gratuitous ARP announcing `ip` at `virtual_mac`, broadcast from the interface's real MAC (see
/// [`reply_for`] for why the Ethernet source is never the virtual MAC). It is an ARP request with
/// sender IP == target IP (RFC 5227 section 3 "ARP Announcement"), the form Linux neighbours accept
/// to update an existing entry.
pub fn gratuitous(ip: Ipv4Addr, virtual_mac: Mac, iface_mac: Mac) -> EthArpFrame {
    EthArpFrame {
        eth_dst: Mac::BROADCAST,
        eth_src: iface_mac,
        arp: ArpPacket {
            op: ArpOp::Request,
            sender_mac: virtual_mac,
            sender_ip: ip,
            target_mac: Mac::ZERO,
            target_ip: ip,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IFACE: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    const VMAC: Mac = Mac([0x02, 0, 0x5e, 0, 0, 1]);
    const ASKER: Mac = Mac([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);

    fn request(target: Ipv4Addr) -> EthArpFrame {
        EthArpFrame {
            eth_dst: Mac::BROADCAST,
            eth_src: ASKER,
            arp: ArpPacket {
                op: ArpOp::Request,
                sender_mac: ASKER,
                sender_ip: Ipv4Addr::new(10, 99, 0, 2),
                target_mac: Mac::ZERO,
                target_ip: target,
            },
        }
    }

    fn lookup(ip: Ipv4Addr) -> Option<Mac> {
        (ip == VIP).then_some(VMAC)
    }

    #[test]
    fn build_then_parse_round_trips_and_pads() {
        let f = request(VIP);
        let bytes = build(&f);
        assert_eq!(bytes.len(), 60);
        assert_eq!(&bytes[12..14], &[0x08, 0x06]);
        assert!(bytes[42..].iter().all(|&b| b == 0));
        assert_eq!(parse(&bytes).unwrap(), f);
        // Parsing ignores trailing bytes but needs the full 42.
        assert_eq!(parse(&bytes[..42]).unwrap(), f);
        assert_eq!(parse(&bytes[..41]), Err(FrameError::TooShort(41)));
    }

    #[test]
    fn wire_layout_matches_rfc_826() {
        let bytes = build(&request(VIP));
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc, 0x08, 0x06,
            0, 1, 0x08, 0, 6, 4, 0, 1,
            0x52, 0x54, 0, 0xaa, 0xbb, 0xcc, 10, 99, 0, 2,
            0, 0, 0, 0, 0, 0, 10, 99, 0, 100,
        ];
        assert_eq!(&bytes[..42], &expected);
    }

    #[test]
    fn rejects_malformed_frames() {
        let mut bytes = build(&request(VIP));
        bytes[12] = 0x08;
        bytes[13] = 0x00;
        assert_eq!(parse(&bytes), Err(FrameError::NotArp(0x0800)));
        let mut bytes = build(&request(VIP));
        bytes[18] = 8; // hardware size
        assert_eq!(parse(&bytes), Err(FrameError::UnsupportedFormat));
        let mut bytes = build(&request(VIP));
        bytes[21] = 9;
        assert_eq!(parse(&bytes), Err(FrameError::UnknownOp(9)));
    }

    #[test]
    fn answers_a_request_for_a_configured_address_with_the_invisible_mac() {
        let reply = reply_for(&request(VIP), IFACE, lookup).expect("reply");
        assert_eq!(
            reply.eth_src, IFACE,
            "switches must never see the virtual MAC as a source"
        );
        assert_eq!(reply.eth_dst, ASKER);
        assert_eq!(reply.arp.op, ArpOp::Reply);
        assert_eq!(reply.arp.sender_mac, VMAC);
        assert_eq!(reply.arp.sender_ip, VIP);
        assert_eq!(reply.arp.target_mac, ASKER);
        assert_eq!(reply.arp.target_ip, Ipv4Addr::new(10, 99, 0, 2));
    }

    #[test]
    fn ignores_other_addresses_replies_announcements_and_own_frames() {
        assert!(reply_for(&request(Ipv4Addr::new(10, 99, 0, 1)), IFACE, lookup).is_none());
        let mut reply = request(VIP);
        reply.arp.op = ArpOp::Reply;
        assert!(reply_for(&reply, IFACE, lookup).is_none());
        let garp = gratuitous(VIP, VMAC, ASKER);
        assert!(reply_for(&garp, IFACE, lookup).is_none());
        let mut own = request(VIP);
        own.eth_src = IFACE;
        assert!(reply_for(&own, IFACE, lookup).is_none());
    }

    #[test]
    fn answers_probes() {
        let mut probe = request(VIP);
        probe.arp.sender_ip = Ipv4Addr::UNSPECIFIED;
        let reply = reply_for(&probe, IFACE, lookup).expect("reply to probe");
        assert_eq!(reply.arp.target_ip, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn gratuitous_is_a_broadcast_announcement_from_the_real_mac() {
        let g = gratuitous(VIP, VMAC, IFACE);
        assert_eq!(g.eth_dst, Mac::BROADCAST);
        assert_eq!(g.eth_src, IFACE);
        assert_eq!(g.arp.op, ArpOp::Request);
        assert_eq!(g.arp.sender_mac, VMAC);
        assert!(g.arp.is_gratuitous());
        assert_eq!(parse(&build(&g)).unwrap(), g);
    }
}
