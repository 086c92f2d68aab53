//! Stable hashes for names derived from content: the same input gives the
//! same name in every build, which `DefaultHasher` does not promise.
//!
//! Two strengths. FNV-1a is for names where a collision costs nothing worse
//! than a miss (a warm container's settings, a profile file's name). A name
//! that keeps one workspace's things apart from another's uses SHA-256: part
//! of the input is chosen by whoever named the repository, and FNV-1a's
//! collisions can be computed.

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The first `chars` hex digits of the SHA-256 of `bytes` (at most 64).
pub fn sha256_hex(bytes: &[u8], chars: usize) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    hex
}

#[cfg(test)]
mod tests {
    #[test]
    fn published_test_vectors() {
        assert_eq!(super::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            super::sha256_hex(b"abc", 64),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(super::sha256_hex(b"abc", 8), "ba7816bf");
    }
}
