//! The Linux kernel's `jhash` (include/linux/jhash.h), which is Bob Jenkins' lookup3 `hashlittle`
//! on a little-endian CPU, and the bucket that nftables' `jhash` expression derives from it
//! (net/netfilter/nft_hash.c, `nft_jhash_eval`).
//!
//! croft computes on the control plane the same bucket the kernel computes on the data plane, so
//! `croft farm who <ip>` and the bucket map agree with what each node's nft rule really accepts.

/// JHASH_INITVAL in include/linux/jhash.h: an arbitrary start value chosen by Jenkins.
pub const JHASH_INITVAL: u32 = 0xdead_beef;

// Kept line for line as in include/linux/jhash.h, so it can be checked against it.
#[rustfmt::skip]
#[inline]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    // __jhash_mix
    *a = a.wrapping_sub(*c); *a ^= c.rotate_left(4); *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a); *b ^= a.rotate_left(6); *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b); *c ^= b.rotate_left(8); *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c); *a ^= c.rotate_left(16); *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a); *b ^= a.rotate_left(19); *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b); *c ^= b.rotate_left(4); *b = b.wrapping_add(*a);
}

#[rustfmt::skip]
#[inline]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    // __jhash_final
    *c ^= *b; *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c; *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a; *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b; *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c; *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a; *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b; *c = c.wrapping_sub(b.rotate_left(24));
}

/// `jhash(key, length, initval)` of include/linux/jhash.h.
///
/// Full 12-byte blocks are read with `__get_unaligned_cpu32`, i.e. in the CPU's byte order; the
/// tail is assembled byte by byte as little-endian whatever the CPU. We read blocks in native order
/// too, so the result is the one the kernel of this machine computes (on x86 and arm64: little
/// endian, identical to lookup3's `hashlittle`).
pub fn jhash(data: &[u8], initval: u32) -> u32 {
    // The kernel takes a u32 length; nft registers are at most 64 bytes, so no real input reaches it.
    assert!(
        data.len() <= u32::MAX as usize,
        "jhash input longer than u32::MAX"
    );
    let init = JHASH_INITVAL
        .wrapping_add(data.len() as u32)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut k = data;
    // "while (length > 12)": a block of exactly 12 bytes is left to the tail switch, which ends in
    // __jhash_final rather than __jhash_mix.
    while k.len() > 12 {
        a = a.wrapping_add(u32::from_ne_bytes([k[0], k[1], k[2], k[3]]));
        b = b.wrapping_add(u32::from_ne_bytes([k[4], k[5], k[6], k[7]]));
        c = c.wrapping_add(u32::from_ne_bytes([k[8], k[9], k[10], k[11]]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    if k.is_empty() {
        // "case 0: Nothing left to add": no final mixing at all.
        return c;
    }
    // The fall-through switch: byte i of the tail goes to word i/4 at bit 8*(i%4).
    for (i, &byte) in k.iter().enumerate() {
        let v = (byte as u32) << (8 * (i % 4));
        match i / 4 {
            0 => a = a.wrapping_add(v),
            1 => b = b.wrapping_add(v),
            _ => c = c.wrapping_add(v),
        }
    }
    final_mix(&mut a, &mut b, &mut c);
    c
}

/// `reciprocal_scale(val, ep_ro)` of include/linux/math.h: maps a 32-bit value onto [0, ep_ro)
/// with a multiply and a shift, which is what nft's `mod` really does for jhash (not `%`).
#[inline]
pub fn reciprocal_scale(val: u32, ep_ro: u32) -> u32 {
    ((val as u64 * ep_ro as u64) >> 32) as u32
}

/// The value of nft's `jhash <expr> mod <modulus> seed <seed> offset <offset>` for the register
/// bytes `data` (nft_jhash_eval: `reciprocal_scale(jhash(data, len, seed), modulus) + offset`).
pub fn nft_jhash(data: &[u8], modulus: u32, seed: u32, offset: u32) -> u32 {
    // nft_jhash_init rejects a zero modulus (and modulus + offset overflowing), so do we.
    assert!(modulus > 0, "nft jhash modulus must be > 0");
    reciprocal_scale(jhash(data, seed), modulus).wrapping_add(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors published in lookup3.c (driver5 and the comments of hashlittle); Linux's jhash is
    // hashlittle on a little-endian CPU.
    #[test]
    #[cfg(target_endian = "little")]
    fn lookup3_published_vectors() {
        assert_eq!(jhash(b"", 0), 0xdeadbeef);
        assert_eq!(jhash(b"", 0xdeadbeef), 0xbd5b7dde);
        assert_eq!(jhash(b"Four score and seven years ago", 0), 0x17770551);
        assert_eq!(jhash(b"Four score and seven years ago", 1), 0xcd628161);
    }

    #[test]
    fn every_length_up_to_40_is_deterministic_and_length_sensitive() {
        let data: Vec<u8> = (0u8..40).collect();
        let mut seen = std::collections::HashSet::new();
        for len in 0..=40 {
            let h = jhash(&data[..len], 7);
            assert_eq!(h, jhash(&data[..len], 7));
            assert!(seen.insert(h), "collision at length {len}");
        }
    }

    #[test]
    fn reciprocal_scale_is_not_modulo() {
        assert_eq!(reciprocal_scale(0, 256), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 256), 255);
        assert_eq!(reciprocal_scale(0x8000_0000, 256), 128);
        // 257 % 256 would be 1; the kernel's scale keeps the top bits instead.
        assert_eq!(reciprocal_scale(257, 256), 0);
    }

    #[test]
    fn nft_jhash_stays_in_range_and_adds_offset() {
        for i in 0u32..1000 {
            let b = nft_jhash(&i.to_be_bytes(), 10, 0x1234, 100);
            assert!((100..110).contains(&b));
        }
    }
}
