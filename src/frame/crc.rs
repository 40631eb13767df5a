//! The two checksums of the frame format.
//!
//! - CRC24 protects the header: polynomial 0x1974F0B, initial value 0x875060, over the
//!   header taken as a little-endian integer, low byte first, each byte shifted in
//!   most-significant bit first (the algorithm of the CQL native protocol v5 spec),
//!   computed here with a 256-entry table.
//! - CRC32 protects the payload: the ordinary CRC-32 (zlib's) of `FA 2D 55 CA` followed by
//!   the payload bytes.

const CRC24_INIT: u32 = 0x87_5060;
const CRC24_POLY: u32 = 0x197_4F0B;

/// CRC-32 (zlib) state after the 4 seed bytes `FA 2D 55 CA`, so that the payload CRC
/// continues from it instead of hashing the seed every time.
const CRC32_SEEDED: u32 = crc32_of_seed();

const CRC24_TABLE: [u32; 256] = crc24_table();

const fn crc24_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 16;
        let mut bit = 0;
        while bit < 8 {
            crc <<= 1;
            if crc & 0x100_0000 != 0 {
                crc ^= CRC24_POLY;
            }
            bit += 1;
        }
        table[i] = crc & 0xFF_FFFF;
        i += 1;
    }
    table
}

const fn crc32_of_seed() -> u32 {
    let seed = [0xFAu8, 0x2D, 0x55, 0xCA];
    let mut crc = 0xFFFF_FFFFu32;
    let mut i = 0;
    while i < seed.len() {
        crc ^= seed[i] as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        i += 1;
    }
    !crc
}

/// CRC24 of the low `len` bytes of `header` (3 for CRC and unprotected frames, 5 for
/// LZ4 frames), as the frame format defines it.
///
/// ```
/// // A CRC frame header for an empty, self-contained payload: bit 17 set.
/// let crc = internode::frame::crc24(1 << 17, 3);
/// assert!(crc <= 0xFF_FFFF);
/// ```
pub fn crc24(header: u64, len: usize) -> u32 {
    let mut crc = CRC24_INIT;
    let mut data = header;
    for _ in 0..len {
        let index = ((crc >> 16) ^ (data as u32)) & 0xFF;
        crc = ((crc << 8) ^ CRC24_TABLE[index as usize]) & 0xFF_FFFF;
        data >>= 8;
    }
    crc
}

/// CRC32 of a payload as the frame format defines it: zlib's CRC-32 over
/// `FA 2D 55 CA` followed by `payload`.
///
/// ```
/// let plain = crc32fast::hash(&[0xFA, 0x2D, 0x55, 0xCA, b'h', b'i']);
/// assert_eq!(internode::frame::payload_crc32(b"hi"), plain);
/// ```
pub fn payload_crc32(payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(CRC32_SEEDED);
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit-at-a-time algorithm exactly as the protocol v5 spec writes it.
    fn crc24_reference(mut data: u64, len: usize) -> u32 {
        let mut crc = CRC24_INIT;
        for _ in 0..len {
            crc ^= ((data & 0xFF) as u32) << 16;
            data >>= 8;
            for _ in 0..8 {
                crc <<= 1;
                if crc & 0x100_0000 != 0 {
                    crc ^= CRC24_POLY;
                }
            }
        }
        crc
    }

    #[test]
    fn table_crc24_matches_the_bitwise_definition() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for len in [3, 5] {
                let h = x & ((1u64 << (8 * len)) - 1);
                assert_eq!(crc24(h, len), crc24_reference(h, len), "{h:#x}/{len}");
            }
        }
    }

    #[test]
    fn crc24_golden_values() {
        // Values printed by the DataStax Python driver's `compute_crc24`, an independent
        // implementation of the same definition.
        assert_eq!(crc24(0, 3), 0x7d_e777);
        assert_eq!(crc24(1 << 17, 3), 0xc4_366a);
        assert_eq!(crc24(0x1_ffff | (1 << 17), 3), 0x47_4025);
        assert_eq!(crc24(0, 5), 0xaa_ac0a);
        assert_eq!(crc24(5 | (3 << 17) | (1 << 34), 5), 0x68_a4bf);
    }

    #[test]
    fn seeded_crc32_matches_hashing_the_seed() {
        for payload in [&b""[..], b"a", b"hello world", &[0u8; 1000]] {
            let mut seeded = vec![0xFA, 0x2D, 0x55, 0xCA];
            seeded.extend_from_slice(payload);
            assert_eq!(payload_crc32(payload), crc32fast::hash(&seeded));
        }
    }
}
