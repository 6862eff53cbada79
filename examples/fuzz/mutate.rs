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

/// Protobuf-aware mutations (the ONNX target): a tag's wire type changed, or deep nesting
/// appended through every path by which ONNX's schema recurses, behind tags of any wire type.
/// A reader that reads fields by number whatever their wire type, or that recurses without a
/// limit, fails on these long before random bytes find them.
pub fn protobuf(rng: &mut rand_chacha::ChaCha8Rng, bytes: &mut Vec<u8>) {
    if rng.random_ratio(1, 2) {
        let tags = tag_offsets(bytes);
        if !tags.is_empty() {
            let at = tags[rng.random_range(0..tags.len())];
            bytes[at] = bytes[at] & !7 | rng.random_range(0..6);
        }
    } else {
        // (the fields into the recursion, the fields of one level of it).
        const PATHS: [(&[u64], &[u64]); 6] = [
            (&[7], &[1, 5, 6]),        // graphs in node attributes
            (&[7], &[1, 5, 11]),       // graphs in attribute lists
            (&[25, 11], &[6, 1, 5]),   // graphs in a function's attributes
            (&[20, 1], &[1, 5, 6]),    // graphs in training info
            (&[7, 11, 2], &[4, 1]),    // types in sequence types
            (&[7, 1, 5, 14], &[9, 1]), // types in optional types of an attribute
        ];
        let (into, level) = PATHS[rng.random_range(0..PATHS.len())];
        let depth = [1, 10, 100, 1000, 3000][rng.random_range(0..5)];
        let varint_tags = rng.random_ratio(1, 2);
        let mut wire = || {
            if varint_tags && rng.random_ratio(1, 2) {
                0
            } else {
                2
            }
        };
        let mut inner = Vec::new();
        for _ in 0..depth {
            for &number in level.iter().rev() {
                inner = field(number, wire(), &inner);
            }
        }
        for &number in into.iter().rev() {
            inner = field(number, wire(), &inner);
        }
        bytes.extend(inner);
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field `number` holding `payload` behind a tag of wire type `wire`.
fn field(number: u64, wire: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    varint(number << 3 | wire, &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend(payload);
    out
}

/// The offsets of the tags of a protobuf message and, where a length-delimited payload parses
/// as a message, of its fields, 8 levels deep.
fn tag_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    message_tags(bytes, 0, bytes.len(), 8, &mut out);
    out
}

/// Pushes the tags of the message in `bytes[start..end]`; false when it is not one.
fn message_tags(bytes: &[u8], start: usize, end: usize, depth: u32, out: &mut Vec<usize>) -> bool {
    let read = |at: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *bytes[..end].get(*at)?;
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let mark = out.len();
    let mut at = start;
    while at < end {
        let tag_at = at;
        let Some(tag) = read(&mut at) else {
            out.truncate(mark);
            return false;
        };
        out.push(tag_at);
        let payload = match tag & 7 {
            0 => read(&mut at).map(|_| 0),
            1 => Some(8),
            5 => Some(4),
            2 => read(&mut at).and_then(|n| usize::try_from(n).ok()),
            _ => None,
        };
        let Some(len) = payload.filter(|&n| tag >> 3 != 0 && n <= end - at) else {
            out.truncate(mark);
            return false;
        };
        if tag & 7 == 2 && len > 0 && depth > 0 {
            message_tags(bytes, at, at + len, depth - 1, out);
        }
        at += len;
    }
    true
}
