//! Mutations of valid inputs: what a bad disk, a truncated copy or a hostile user does to a
//! file.

use rand::Rng;

/// Random bytes, up to 4 KiB.
pub fn random_bytes(rng: &mut impl Rng) -> Vec<u8> {
    let len = rng.random_range(0..=4096);
    (0..len).map(|_| rng.random()).collect()
}

/// Encodings of huge numbers as they appear in the formats: postcard varints, little- and
/// big-endian words, decimal text (JSON).
const HUGE: [&[u8]; 7] = [
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    b"18446744073709551615",
    b"1e39",
];

/// One to four mutations of `bytes`.
pub fn mutate(rng: &mut impl Rng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..=4) {
        mutate_once(rng, bytes);
    }
}

fn mutate_once(rng: &mut impl Rng, bytes: &mut Vec<u8>) {
    let len = bytes.len();
    // Half of the mutations land in the first 256 bytes, where the headers are.
    let at = |rng: &mut dyn rand::RngCore| -> usize {
        if len == 0 {
            0
        } else if rng.random_ratio(1, 2) {
            rng.random_range(0..len.min(256))
        } else {
            rng.random_range(0..len)
        }
    };
    match rng.random_range(0..8) {
        0 | 1 if len > 0 => {
            let i = at(rng);
            bytes[i] ^= 1 << rng.random_range(0..8);
        }
        2 if len > 0 => {
            let i = at(rng);
            bytes[i] = [0, 1, 0x7f, 0x80, 0xff, rng.random()][rng.random_range(0..6)];
        }
        3 => bytes.truncate(rng.random_range(0..=len)),
        4 => {
            let i = at(rng).min(len);
            let extra: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            bytes.splice(i..i, extra);
        }
        5 if len > 0 => {
            let i = at(rng);
            let end = (i + rng.random_range(1..64)).min(len);
            bytes.drain(i..end);
        }
        6 if len > 0 => {
            let huge = HUGE[rng.random_range(0..HUGE.len())];
            let i = at(rng);
            let end = (i + huge.len()).min(len);
            bytes.splice(i..end, huge.iter().copied());
        }
        _ if len > 1 => {
            // Copy a chunk from one place to another.
            let (from, to) = (at(rng), at(rng));
            let n = rng.random_range(1..=64).min(len - from).min(len - to);
            let chunk = bytes[from..from + n].to_vec();
            bytes[to..to + n].copy_from_slice(&chunk);
        }
        _ => bytes.push(rng.random()),
    }
}

/// Recomputes the CRC-32 an input ends with, as a forger would.
pub fn fix_trailing_crc(bytes: &mut [u8]) {
    if let Some(at) = bytes.len().checked_sub(4) {
        let crc = crc32fast::hash(&bytes[..at]);
        bytes[at..].copy_from_slice(&crc.to_le_bytes());
    }
}
