//! IPv6 neighbour discovery for a VIP (RFC 4861): neighbour solicitations parsed and neighbour
//! advertisements built, without I/O. The ARP responder's thread answers solicitations for an IPv6
//! VIP with these advertisements, carrying the virtual MAC, exactly as it answers ARP for an IPv4
//! one. Parsing takes any bytes (a frame off the wire) and never panics: every length and offset is
//! checked before it is read.

use crate::mac::Mac;
use std::net::Ipv6Addr;

pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETH_HEADER_BYTES: usize = 14;
const IPV6_HEADER_BYTES: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const ICMPV6_NS: u8 = 135;
const ICMPV6_NA: u8 = 136;
/// ICMPv6 type, code, checksum, reserved/flags, target address.
const ND_BYTES: usize = 24;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// An advertisement: Ethernet + IPv6 + the NA + one target link-layer address option.
pub const NA_FRAME_BYTES: usize = ETH_HEADER_BYTES + IPV6_HEADER_BYTES + ND_BYTES + 8;
/// Byte offset, in a frame, of the ICMPv6 type (for the socket's filter).
pub const ICMPV6_TYPE_OFFSET: usize = ETH_HEADER_BYTES + IPV6_HEADER_BYTES;
/// Byte offset, in a frame, of the IPv6 next header (for the socket's filter).
pub const NEXT_HEADER_OFFSET: usize = ETH_HEADER_BYTES + 6;
pub const ICMPV6_TYPE_NS: u8 = ICMPV6_NS;
pub const NEXT_HEADER_ICMP: u8 = NEXT_HEADER_ICMPV6;

/// All-nodes multicast, the destination of unsolicited advertisements and of answers to DAD.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// A neighbour solicitation that passed RFC 4861 section 7.1.1's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    pub eth_src: Mac,
    /// `::` for duplicate address detection.
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub target: Ipv6Addr,
    /// The source link-layer address option, when present.
    pub source_mac: Option<Mac>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdpError {
    TooShort(usize),
    NotIpv6,
    NotNeighbourSolicitation,
    /// Hop limit other than 255: the packet crossed a router (RFC 4861 section 7.1.1).
    HopLimit(u8),
    BadLength,
    BadChecksum,
    BadOption,
    MulticastTarget,
}

impl std::fmt::Display for NdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NdpError::TooShort(n) => write!(
                f,
                "frame of {n} bytes is too short for a neighbour solicitation"
            ),
            NdpError::NotIpv6 => write!(f, "not an IPv6 frame"),
            NdpError::NotNeighbourSolicitation => write!(f, "not an ICMPv6 neighbour solicitation"),
            NdpError::HopLimit(h) => write!(f, "hop limit {h} (expected 255)"),
            NdpError::BadLength => write!(f, "IPv6 payload length does not match the frame"),
            NdpError::BadChecksum => write!(f, "bad ICMPv6 checksum"),
            NdpError::BadOption => write!(f, "malformed neighbour discovery option"),
            NdpError::MulticastTarget => write!(f, "multicast target address"),
        }
    }
}

impl std::error::Error for NdpError {}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    Mac(m)
}

/// The ICMPv6 checksum of `message` (its checksum field included as it is) between src and dst.
fn checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = pair[0] as u32;
            let lo = pair.get(1).copied().unwrap_or(0) as u32;
            sum += (hi << 8) | lo;
            sum = (sum & 0xffff) + (sum >> 16);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    // Upper-layer length fits 32 bits; a message never exceeds a frame.
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    !(sum as u16)
}

/// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX).
pub fn solicited_node(a: &Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// Parses an Ethernet frame carrying an IPv6 neighbour solicitation (no extension headers, as
/// every stack sends them). Trailing Ethernet padding is ignored.
pub fn parse_solicitation(frame: &[u8]) -> Result<Solicitation, NdpError> {
    if frame.len() < ETH_HEADER_BYTES + IPV6_HEADER_BYTES + ND_BYTES {
        return Err(NdpError::TooShort(frame.len()));
    }
    if u16_at(frame, 12) != ETHERTYPE_IPV6 {
        return Err(NdpError::NotIpv6);
    }
    let ip = &frame[ETH_HEADER_BYTES..];
    if ip[0] >> 4 != 6 {
        return Err(NdpError::NotIpv6);
    }
    if ip[6] != NEXT_HEADER_ICMPV6 {
        return Err(NdpError::NotNeighbourSolicitation);
    }
    let payload_len = u16_at(ip, 4) as usize;
    let body = &ip[IPV6_HEADER_BYTES..];
    if payload_len < ND_BYTES || payload_len > body.len() {
        return Err(NdpError::BadLength);
    }
    let msg = &body[..payload_len];
    if msg[0] != ICMPV6_NS || msg[1] != 0 {
        return Err(NdpError::NotNeighbourSolicitation);
    }
    if ip[7] != 255 {
        return Err(NdpError::HopLimit(ip[7]));
    }
    let src = addr_at(ip, 8);
    let dst = addr_at(ip, 24);
    if checksum(&src, &dst, msg) != 0 {
        return Err(NdpError::BadChecksum);
    }
    let target = addr_at(msg, 8);
    if target.is_multicast() {
        return Err(NdpError::MulticastTarget);
    }
    let mut source_mac = None;
    let mut at = ND_BYTES;
    while at < msg.len() {
        // Every option is at least 8 bytes and its length is in units of 8; 0 is invalid (and
        // would never advance).
        if msg.len() - at < 2 {
            return Err(NdpError::BadOption);
        }
        let len = msg[at + 1] as usize * 8;
        if len == 0 || len > msg.len() - at {
            return Err(NdpError::BadOption);
        }
        if msg[at] == OPT_SOURCE_LL && len >= 8 {
            source_mac = Some(mac_at(msg, at + 2));
        }
        at += len;
    }
    if src.is_unspecified() && (source_mac.is_some() || dst != solicited_node(&target)) {
        // DAD: sent to the target's solicited-node group and without a link-layer address.
        return Err(NdpError::BadOption);
    }
    Ok(Solicitation {
        eth_src: mac_at(frame, 6),
        src,
        dst,
        target,
        source_mac,
    })
}

/// The Ethernet multicast address of an IPv6 multicast group (RFC 2464: 33:33 + its last 4 bytes).
fn multicast_mac(group: &Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// An advertisement of `target` at `virtual_mac`, to `dst` (all-nodes: unsolicited), sent from the
/// interface's real MAC `own_mac` (switches never learn the virtual MAC, as with ARP).
pub fn build_advertisement(
    eth_dst: Mac,
    own_mac: Mac,
    target: Ipv6Addr,
    dst: Ipv6Addr,
    virtual_mac: Mac,
    solicited: bool,
) -> [u8; NA_FRAME_BYTES] {
    let mut b = [0u8; NA_FRAME_BYTES];
    b[0..6].copy_from_slice(&eth_dst.0);
    b[6..12].copy_from_slice(&own_mac.0);
    b[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    let ip = ETH_HEADER_BYTES;
    b[ip] = 0x60;
    b[ip + 4..ip + 6].copy_from_slice(&((ND_BYTES + 8) as u16).to_be_bytes());
    b[ip + 6] = NEXT_HEADER_ICMPV6;
    b[ip + 7] = 255;
    b[ip + 8..ip + 24].copy_from_slice(&target.octets());
    b[ip + 24..ip + 40].copy_from_slice(&dst.octets());
    let m = ip + IPV6_HEADER_BYTES;
    b[m] = ICMPV6_NA;
    // Override: the virtual MAC replaces whatever a neighbour had (a real MAC learnt earlier).
    b[m + 4] = FLAG_OVERRIDE | if solicited { FLAG_SOLICITED } else { 0 };
    b[m + 8..m + 24].copy_from_slice(&target.octets());
    b[m + 24] = OPT_TARGET_LL;
    b[m + 25] = 1;
    b[m + 26..m + 32].copy_from_slice(&virtual_mac.0);
    let sum = checksum(&target, &dst, &b[m..]);
    b[m + 2..m + 4].copy_from_slice(&sum.to_be_bytes());
    b
}

/// The answer to `ns` when its target is answered with `virtual_mac`: solicited and unicast to
/// the asker, or to all nodes when the asker has no address yet (DAD: the VIP is defended).
pub fn advertisement_for(
    ns: &Solicitation,
    own_mac: Mac,
    virtual_mac: Mac,
) -> [u8; NA_FRAME_BYTES] {
    if ns.src.is_unspecified() {
        return build_advertisement(
            multicast_mac(&ALL_NODES),
            own_mac,
            ns.target,
            ALL_NODES,
            virtual_mac,
            false,
        );
    }
    let to = ns.source_mac.unwrap_or(ns.eth_src);
    build_advertisement(to, own_mac, ns.target, ns.src, virtual_mac, true)
}

/// An unsolicited advertisement (RFC 4861 section 7.2.6), IPv6's gratuitous ARP.
pub fn unsolicited_advertisement(
    target: Ipv6Addr,
    own_mac: Mac,
    virtual_mac: Mac,
) -> [u8; NA_FRAME_BYTES] {
    build_advertisement(
        multicast_mac(&ALL_NODES),
        own_mac,
        target,
        ALL_NODES,
        virtual_mac,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 7);
    const VIP: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 0x100);
    const CLIENT_MAC: Mac = Mac([0x52, 0x54, 0, 0, 0, 7]);
    const OWN: Mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
    const VMAC: Mac = Mac([0x02, 0, 0x5e, 0, 0, 1]);

    /// A solicitation as Linux sends one (with a source link-layer address option).
    fn solicitation(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, slla: Option<Mac>) -> Vec<u8> {
        let opt = if slla.is_some() { 8 } else { 0 };
        let mut b = vec![0u8; ETH_HEADER_BYTES + IPV6_HEADER_BYTES + ND_BYTES + opt];
        b[0..6].copy_from_slice(&multicast_mac(&dst).0);
        b[6..12].copy_from_slice(&CLIENT_MAC.0);
        b[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let ip = ETH_HEADER_BYTES;
        b[ip] = 0x60;
        b[ip + 4..ip + 6].copy_from_slice(&((ND_BYTES + opt) as u16).to_be_bytes());
        b[ip + 6] = NEXT_HEADER_ICMPV6;
        b[ip + 7] = 255;
        b[ip + 8..ip + 24].copy_from_slice(&src.octets());
        b[ip + 24..ip + 40].copy_from_slice(&dst.octets());
        let m = ip + IPV6_HEADER_BYTES;
        b[m] = ICMPV6_NS;
        b[m + 8..m + 24].copy_from_slice(&target.octets());
        if let Some(mac) = slla {
            b[m + 24] = OPT_SOURCE_LL;
            b[m + 25] = 1;
            b[m + 26..m + 32].copy_from_slice(&mac.0);
        }
        let sum = checksum(&src, &dst, &b[m..]);
        b[m + 2..m + 4].copy_from_slice(&sum.to_be_bytes());
        b
    }

    #[test]
    fn solicited_node_address() {
        assert_eq!(
            solicited_node(&VIP),
            "ff02::1:ff00:100".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn a_solicitation_is_answered_to_its_source_with_the_virtual_mac() {
        let f = solicitation(CLIENT, solicited_node(&VIP), VIP, Some(CLIENT_MAC));
        let ns = parse_solicitation(&f).unwrap();
        assert_eq!(
            (ns.src, ns.target, ns.source_mac),
            (CLIENT, VIP, Some(CLIENT_MAC))
        );
        let na = advertisement_for(&ns, OWN, VMAC);
        assert_eq!(&na[0..6], &CLIENT_MAC.0);
        assert_eq!(&na[6..12], &OWN.0, "the Ethernet source is the real MAC");
        let m = ETH_HEADER_BYTES + IPV6_HEADER_BYTES;
        assert_eq!(na[m], ICMPV6_NA);
        assert_eq!(na[m + 4], FLAG_SOLICITED | FLAG_OVERRIDE);
        assert_eq!(addr_at(&na, ETH_HEADER_BYTES + 8), VIP);
        assert_eq!(addr_at(&na, ETH_HEADER_BYTES + 24), CLIENT);
        assert_eq!(addr_at(&na, m + 8), VIP);
        assert_eq!(
            &na[m + 24..m + 32],
            &[OPT_TARGET_LL, 1, 0x02, 0, 0x5e, 0, 0, 1]
        );
        assert_eq!(
            checksum(&VIP, &CLIENT, &na[m..]),
            0,
            "the checksum verifies"
        );
    }

    #[test]
    fn unicast_solicitation_without_option_goes_to_the_ethernet_source() {
        let f = solicitation(CLIENT, VIP, VIP, None);
        let ns = parse_solicitation(&f).unwrap();
        assert_eq!(ns.source_mac, None);
        assert_eq!(&advertisement_for(&ns, OWN, VMAC)[0..6], &CLIENT_MAC.0);
    }

    #[test]
    fn dad_is_answered_to_all_nodes_unsolicited() {
        let f = solicitation(Ipv6Addr::UNSPECIFIED, solicited_node(&VIP), VIP, None);
        let ns = parse_solicitation(&f).unwrap();
        let na = advertisement_for(&ns, OWN, VMAC);
        assert_eq!(&na[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(addr_at(&na, ETH_HEADER_BYTES + 24), ALL_NODES);
        assert_eq!(na[ETH_HEADER_BYTES + IPV6_HEADER_BYTES + 4], FLAG_OVERRIDE);
        // DAD with a link-layer option is invalid.
        let bad = solicitation(
            Ipv6Addr::UNSPECIFIED,
            solicited_node(&VIP),
            VIP,
            Some(CLIENT_MAC),
        );
        assert_eq!(parse_solicitation(&bad), Err(NdpError::BadOption));
    }

    #[test]
    fn unsolicited_advertisement_verifies() {
        let na = unsolicited_advertisement(VIP, OWN, VMAC);
        let m = ETH_HEADER_BYTES + IPV6_HEADER_BYTES;
        assert_eq!(checksum(&VIP, &ALL_NODES, &na[m..]), 0);
        assert_eq!(na[m + 4], FLAG_OVERRIDE);
    }

    #[test]
    fn invalid_solicitations_are_refused() {
        let good = solicitation(CLIENT, solicited_node(&VIP), VIP, Some(CLIENT_MAC));
        let m = ETH_HEADER_BYTES + IPV6_HEADER_BYTES;
        let mut hop = good.clone();
        hop[ETH_HEADER_BYTES + 7] = 64;
        assert_eq!(parse_solicitation(&hop), Err(NdpError::HopLimit(64)));
        let mut sum = good.clone();
        sum[m + 30] ^= 1;
        assert_eq!(parse_solicitation(&sum), Err(NdpError::BadChecksum));
        let mut zero_opt = good.clone();
        zero_opt[m + 25] = 0;
        assert!(
            parse_solicitation(&zero_opt).is_err(),
            "an option of length 0 is refused"
        );
        let mut long_opt = good.clone();
        long_opt[m + 25] = 200;
        assert!(parse_solicitation(&long_opt).is_err());
        let mut payload = good.clone();
        payload[ETH_HEADER_BYTES + 5] = 200;
        assert_eq!(parse_solicitation(&payload), Err(NdpError::BadLength));
        let mut na = good.clone();
        na[m] = ICMPV6_NA;
        assert_eq!(
            parse_solicitation(&na),
            Err(NdpError::NotNeighbourSolicitation)
        );
        let mcast = solicitation(CLIENT, solicited_node(&VIP), ALL_NODES, Some(CLIENT_MAC));
        assert_eq!(parse_solicitation(&mcast), Err(NdpError::MulticastTarget));
        assert_eq!(parse_solicitation(&good[..20]), Err(NdpError::TooShort(20)));
    }

    /// A small deterministic generator (xorshift): no dependency for the fuzzing below.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let good = solicitation(CLIENT, solicited_node(&VIP), VIP, Some(CLIENT_MAC));
        for round in 0..200_000 {
            let frame: Vec<u8> = if round % 2 == 0 {
                // Random bytes of any length, with the IPv6/ICMPv6 markers often right so the parser
                // gets deep.
                let len = (rng.next() % 160) as usize;
                let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len > 62 && rng.next() % 2 == 0 {
                    f[12] = 0x86;
                    f[13] = 0xdd;
                    f[14] = 0x60;
                    f[20] = NEXT_HEADER_ICMPV6;
                    f[21] = 255;
                    f[54] = ICMPV6_NS;
                    f[55] = 0;
                }
                f
            } else {
                // A valid solicitation with a few bytes flipped and maybe cut short or extended.
                let mut f = good.clone();
                for _ in 0..(1 + rng.next() % 4) {
                    let i = (rng.next() as usize) % f.len();
                    f[i] = rng.next() as u8;
                }
                match rng.next() % 3 {
                    0 => f.truncate((rng.next() as usize) % (f.len() + 1)),
                    1 => f.extend((0..rng.next() % 40).map(|_| rng.next() as u8)),
                    _ => {}
                }
                f
            };
            if let Ok(ns) = parse_solicitation(&frame) {
                let _ = advertisement_for(&ns, OWN, VMAC);
            }
        }
    }
}
