//! The job's frame around an encrypted batch or result: which batch it is, which test images
//! it holds, and (for a result) the checksum of the batch it was computed from, all under a
//! checksum of their own. The ciphertext inside carries its parameter set, key set and
//! checksum (see [`crate::ckks::Ciphertext::to_bytes`]), so a swapped, stale, corrupted or
//! foreign file is an error that names it, never a wrong answer.

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"HEGPUJOB";
const VERSION: u8 = 1;
/// Magic, version, kind, batch, first image, end image, source checksum; then a CRC-32 of these.
const HEAD: usize = MAGIC.len() + 2 + 4 * 4;
const FRAME: usize = HEAD + 4;

/// What a framed file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The client's encrypted images.
    Batch = 1,
    /// The server's encrypted outputs.
    Result = 2,
    /// The client's encrypted images in the latency packing (one request).
    Request = 3,
    /// The server's encrypted outputs of a request.
    Answer = 4,
}

impl Kind {
    /// The kind of the server's file for a client's file of this kind.
    pub fn answered_by(self) -> Kind {
        match self {
            Kind::Batch | Kind::Result => Kind::Result,
            Kind::Request | Kind::Answer => Kind::Answer,
        }
    }
}

/// The frame's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    /// The batch's index in the job (`batch-NNN.ct`, `result-NNN.ct`).
    pub batch: u32,
    /// Test images `start..end` of the data set.
    pub start: u32,
    pub end: u32,
    /// For a result: the checksum of the batch's ciphertext bytes it was computed from (the
    /// last four bytes of those bytes); 0 for a batch.
    pub source: u32,
}

/// The checksum a ciphertext's bytes end with (see [`Frame::source`]).
pub fn ciphertext_checksum(ciphertext: &[u8]) -> u32 {
    match ciphertext.len().checked_sub(4) {
        Some(at) => u32::from_le_bytes(ciphertext[at..].try_into().expect("4 bytes")),
        None => 0,
    }
}

impl Frame {
    /// The frame followed by `ciphertext`.
    pub fn wrap(&self, ciphertext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME + ciphertext.len());
        out.extend(MAGIC);
        out.push(VERSION);
        out.push(self.kind as u8);
        for v in [self.batch, self.start, self.end, self.source] {
            out.extend(v.to_le_bytes());
        }
        out.extend(crc32fast::hash(&out).to_le_bytes());
        out.extend(ciphertext);
        out
    }

    /// Reads the frame of `bytes` (a file at `path`, named in errors); returns it and the
    /// ciphertext bytes after it.
    pub fn unwrap<'a>(bytes: &'a [u8], path: &str) -> Result<(Frame, &'a [u8])> {
        let bad = |why: String| Error::Data {
            path: path.to_string(),
            why,
        };
        if bytes.len() < FRAME || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not a file of the hegpu MNIST job".into()));
        }
        let stored = u32::from_le_bytes(bytes[HEAD..FRAME].try_into().expect("4 bytes"));
        if crc32fast::hash(&bytes[..HEAD]) != stored {
            return Err(bad("the frame's checksum does not match: corrupted".into()));
        }
        if bytes[MAGIC.len()] != VERSION {
            return Err(bad(format!(
                "job file version {}, this build reads {VERSION}",
                bytes[MAGIC.len()]
            )));
        }
        let kind = match bytes[MAGIC.len() + 1] {
            1 => Kind::Batch,
            2 => Kind::Result,
            3 => Kind::Request,
            4 => Kind::Answer,
            k => return Err(bad(format!("unknown kind {k}"))),
        };
        let word = |i: usize| {
            let at = MAGIC.len() + 2 + 4 * i;
            u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
        };
        let frame = Frame {
            kind,
            batch: word(0),
            start: word(1),
            end: word(2),
            source: word(3),
        };
        Ok((frame, &bytes[FRAME..]))
    }

    /// An error naming `path` unless this frame is `expected` (a `kind` file of the same batch
    /// and images, and for a result, of the same source when `expected.source` is not 0).
    pub fn expect(&self, expected: &Frame, path: &str) -> Result<()> {
        let what = |f: &Frame| {
            format!(
                "{} (images {}..{})",
                match f.kind {
                    Kind::Batch => format!("the encrypted images of batch {}", f.batch),
                    Kind::Result => format!("the result of batch {}", f.batch),
                    Kind::Request => format!("the latency request {}", f.batch),
                    Kind::Answer => format!("the answer to latency request {}", f.batch),
                },
                f.start,
                f.end
            )
        };
        let same = self.kind == expected.kind
            && self.batch == expected.batch
            && (self.start, self.end) == (expected.start, expected.end);
        if !same {
            return Err(Error::Data {
                path: path.to_string(),
                why: format!("holds {}, expected {}", what(self), what(expected)),
            });
        }
        if expected.source != 0 && self.source != expected.source {
            return Err(Error::Data {
                path: path.to_string(),
                why: format!(
                    "was computed from another version of batch {} (checksum {:08x}, the batch \
                     file now has {:08x}): evaluate it again",
                    self.batch, self.source, expected.source
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame {
            kind: Kind::Result,
            batch: 3,
            start: 100,
            end: 140,
            source: 0xdead_beef,
        }
    }

    #[test]
    fn frames_round_trip_and_every_flipped_bit_is_refused() {
        let bytes = frame().wrap(b"payload");
        let (back, rest) = Frame::unwrap(&bytes, "f").unwrap();
        assert_eq!((back, rest), (frame(), &b"payload"[..]));
        for bit in 0..8 * FRAME {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Frame::unwrap(&bad, "f").is_err(), "bit {bit}");
        }
        assert!(Frame::unwrap(&bytes[..FRAME - 1], "f").is_err());
    }

    #[test]
    fn another_batch_or_source_is_named() {
        let mut other = frame();
        other.batch = 4;
        let e = other.expect(&frame(), "result-004.ct").unwrap_err();
        assert!(e.to_string().contains("result-004.ct"), "{e}");
        assert!(e.to_string().contains("batch 4"), "{e}");
        let mut stale = frame();
        stale.source = 1;
        assert!(stale.expect(&frame(), "r").is_err());
        let mut any_source = frame();
        any_source.source = 0;
        frame().expect(&any_source, "r").unwrap();
    }
}
