//! The bytes an nft `jhash` expression hashes, as the kernel lays them out in its registers.
//!
//! nft_jhash_eval hashes `priv->len` bytes starting at the source register. For a single field that
//! is the field as loaded from the packet (network byte order). For a concatenation (`a . b`)
//! nftables gives every field a whole number of 32-bit registers (netlink_padded_len in nftables,
//! NFT_REG32_SIZE in the kernel) and nft_payload_eval zeroes the last register before a partial
//! load, so a 2-byte port is followed by 2 zero bytes. The integration test
//! test/integration/native-jhash.test.ts checks this layout against the running kernel.

use std::net::IpAddr;

/// Size of one nft register, `NFT_REG32_SIZE`.
pub const REG32_BYTES: usize = 4;

/// Register bytes of `ip saddr` / `ip6 saddr`, optionally concatenated with `tcp sport`
/// (`udp sport` and `th sport` have the same layout).
pub fn source_key(addr: IpAddr, sport: Option<u16>) -> Vec<u8> {
    let mut key = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    if let Some(port) = sport {
        key.extend_from_slice(&port.to_be_bytes());
        // Pad the port to a whole register: concatenations are register-aligned.
        while key.len() % REG32_BYTES != 0 {
            key.push(0);
        }
    }
    key
}

/// Bucket of a client as `jhash ip saddr [. tcp sport] mod <modulus> seed <seed> offset <offset>`
/// gives it on this kernel.
pub fn source_bucket(
    addr: IpAddr,
    sport: Option<u16>,
    modulus: u32,
    seed: u32,
    offset: u32,
) -> u32 {
    crate::jhash::nft_jhash(&source_key(addr, sport), modulus, seed, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_source_is_four_network_order_bytes() {
        assert_eq!(
            source_key(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), None),
            vec![10, 1, 2, 3]
        );
    }

    #[test]
    fn ipv4_source_and_port_is_padded_to_registers() {
        let key = source_key(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), Some(0x1f90));
        assert_eq!(key, vec![10, 1, 2, 3, 0x1f, 0x90, 0, 0]);
    }

    #[test]
    fn ipv6_source_is_sixteen_bytes_and_port_adds_a_register() {
        let a = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        assert_eq!(source_key(IpAddr::V6(a), None).len(), 16);
        let key = source_key(IpAddr::V6(a), Some(443));
        assert_eq!(key.len(), 20);
        assert_eq!(&key[16..], &[0x01, 0xbb, 0, 0]);
    }

    #[test]
    fn bucket_matches_the_hash_of_the_key() {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let expected =
            crate::jhash::reciprocal_scale(crate::jhash::jhash(&[192, 0, 2, 7], 42), 256);
        assert_eq!(source_bucket(ip, None, 256, 42, 0), expected);
    }
}
