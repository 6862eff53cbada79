//! The compact binary format: a header (magic, version, kind, parameter-set id, key-set id), a
//! serde body encoded with postcard, polynomial words bit-packed at their prime's width, and a
//! CRC-32 of everything before it. Reading validates everything — checksum, kind, parameter
//! set, level, scale, lengths, every word below its prime — and returns an error, never a
//! panic, on anything else.
//!
//! The checksum catches accidents (a flipped bit, a truncated copy), not an attacker, who can
//! recompute it: nothing here authenticates a file.

use super::ciphertext::{CipherMeta, Ciphertext};
use super::keys::{
    EvaluationKeys, GaloisKeys, KeySetId, PublicKey, RelinKey, SecretKey, SwitchingKey, key_masks,
    ntt_host,
};
use super::params::{ParameterLiteral, Parameters, SecurityLevel};
use super::sampling::{seeded_mask_into, small_to_words, wipe};
use crate::backend::Backend;
use crate::math::Ring;
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const MAGIC: &[u8; 6] = b"HEGPU\0";
/// Version 2 added the key-set id and the checksum; version 3 draws the masks of seeded
/// ciphertexts two words per coefficient (see `backend::cpu::sampling::seeded_mask_into`).
const VERSION: u8 = 3;
/// The oldest version read: everything of version 2 reads but a seeded ciphertext, whose
/// masks this build would draw differently.
const OLDEST: u8 = 2;
/// Magic, version, kind, parameter-set id, key-set id.
const HEAD: usize = MAGIC.len() + 2 + 8 + 16;
const CHECKSUM: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Parameters = 1,
    PublicKey = 2,
    /// Evaluation keys whose keys all serve every level (written before keys had levels;
    /// still read).
    EvaluationKeys = 3,
    Ciphertext = 4,
    SecretKey = 5,
    /// Evaluation keys, each key with the highest level it serves.
    LeveledEvaluationKeys = 6,
}

#[derive(Serialize, Deserialize)]
struct ParamsWire {
    literal: ParameterLiteral,
    q: Vec<u32>,
    p: Vec<u32>,
}

/// A byte string: on the wire the same as a sequence of u8 (postcard writes the length, then
/// the bytes), but written and read in one copy instead of byte by byte through serde.
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(Visit)
    }
}

#[derive(Serialize, Deserialize)]
struct KeyWire {
    galois: Option<u64>,
    /// The highest level it switches (its words are over `[P, Q_level]`).
    level: u32,
    digits: u32,
    /// Seeded: `data` holds the digits' first polynomials only, and their masks are drawn
    /// from this seed (`keys::key_masks`).
    seed: Option<[u8; 32]>,
    data: Bytes,
}

#[derive(Serialize, Deserialize)]
struct EvaluationKeysWire {
    relin: Option<KeyWire>,
    galois: Vec<KeyWire>,
}

/// A key of [`Kind::EvaluationKeys`]: every key at the top level.
#[derive(Serialize, Deserialize)]
struct TopKeyWire {
    galois: Option<u64>,
    digits: u32,
    data: Bytes,
}

#[derive(Serialize, Deserialize)]
struct TopEvaluationKeysWire {
    relin: Option<TopKeyWire>,
    galois: Vec<TopKeyWire>,
}

/// A ciphertext's fields before its words. On the wire a ciphertext is these fields, then its
/// packed words as a byte string ([`CiphertextWire`]); the words are packed straight into the
/// output ([`write_with_words`]) and read where they lie.
#[derive(Serialize, Deserialize)]
struct CiphertextHead {
    size: u8,
    count: u32,
    level: u32,
    scale: f64,
    /// Seeded: the words hold each ciphertext's first polynomial only, and ciphertext i's
    /// second is the mask drawn from this seed, stream i.
    seed: Option<[u8; 32]>,
}

#[derive(Deserialize)]
struct CiphertextWire<'a> {
    head: CiphertextHead,
    /// Borrowed from the input: the packed words are not copied before they are unpacked.
    data: &'a [u8],
}

fn bad(why: impl Into<String>) -> Error {
    Error::Deserialize(why.into())
}

/// What a header names besides the kind.
struct Header {
    params_id: u64,
    key_set: KeySetId,
}

fn write<T: Serialize>(kind: Kind, head: Header, body: &T) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    out.push(kind as u8);
    out.extend(head.params_id.to_le_bytes());
    out.extend(head.key_set.0);
    let mut out = postcard::to_extend(body, out).expect("serializing to memory cannot fail");
    let crc = crc32fast::hash(&out);
    out.extend(crc.to_le_bytes());
    out
}

/// [`write`] of `body` followed by a byte string of `polys` polynomials of `ring` packed by
/// `pack(first, out)` (polynomials `first..`, a whole number of them per call, in parallel):
/// the bytes postcard writes for a struct ending in that string, with the words packed once,
/// in place, into an output allocated once.
fn write_with_words<T: Serialize>(
    kind: Kind,
    head: Header,
    body: &T,
    (ring, polys): (&Ring, usize),
    pack: impl Fn(usize, &mut [u8]) -> Result<()> + Sync,
) -> Result<Vec<u8>> {
    let per_poly = packed_poly_bytes(ring);
    let len = per_poly * polys;
    let mut out = Vec::with_capacity(HEAD + 64 + len + CHECKSUM);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend(head.params_id.to_le_bytes());
    out.extend(head.key_set.0);
    let out = postcard::to_extend(body, out).expect("serializing to memory cannot fail");
    // A byte string is its length (a varint, as postcard writes every length), then the bytes.
    let mut out = postcard::to_extend(&(len as u64), out).expect("serializing to memory");
    let at = out.len();
    out.resize(at + len, 0);
    let piece = per_poly * POLYS_PER_TASK;
    out[at..]
        .par_chunks_mut(piece.max(1))
        .enumerate()
        .try_for_each(|(k, dst)| pack(k * POLYS_PER_TASK, dst))?;
    let crc = crc32fast::hash(&out);
    out.extend(crc.to_le_bytes());
    Ok(out)
}

/// Polynomials packed or made per parallel task when a ciphertext is written.
const POLYS_PER_TASK: usize = 8;

/// Checks the checksum and the header and decodes the body.
fn read<'a, T: Deserialize<'a>>(bytes: &'a [u8], kind: Kind) -> Result<(T, Header)> {
    if bytes.len() < HEAD + CHECKSUM {
        return Err(bad("shorter than the header"));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not hegpu data (wrong magic)"));
    }
    let (version, found) = (bytes[MAGIC.len()], bytes[MAGIC.len() + 1]);
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(bad(format!(
            "format version {version}, this build reads {OLDEST} to {VERSION}"
        )));
    }
    let (data, tail) = bytes.split_at(bytes.len() - CHECKSUM);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    if crc32fast::hash(data) != stored {
        return Err(bad(
            "the checksum does not match: the data is corrupted or truncated",
        ));
    }
    if found != kind as u8 {
        return Err(bad(format!("holds kind {found}, expected {kind:?}")));
    }
    let at = MAGIC.len() + 2;
    let head = Header {
        params_id: u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes")),
        key_set: KeySetId(data[at + 8..HEAD].try_into().expect("16 bytes")),
    };
    let (body, rest) = postcard::take_from_bytes(&data[HEAD..])
        .map_err(|e| bad(format!("body does not decode: {e}")))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes", rest.len())));
    }
    Ok((body, head))
}

fn limb_bits(ring: &Ring, l: usize) -> u32 {
    32 - ring.modulus(l).value().leading_zeros()
}

/// Bytes that `polys` polynomials of `ring` pack into, or None on overflow.
fn packed_len(ring: &Ring, polys: usize) -> Option<usize> {
    let bits: usize = (0..ring.limbs()).map(|l| limb_bits(ring, l) as usize).sum();
    bits.checked_mul(ring.degree())?
        .checked_mul(polys)?
        .checked_add(7)
        .map(|b| b / 8)
}

/// Bytes of one row (one limb of one polynomial): whole bytes, since N ≥ 2^10.
fn row_bytes(ring: &Ring, l: usize) -> usize {
    ring.degree() * limb_bits(ring, l) as usize / 8
}

/// Bytes one packed polynomial of `ring` takes.
pub(crate) fn packed_poly_bytes(ring: &Ring) -> usize {
    (0..ring.limbs()).map(|l| row_bytes(ring, l)).sum()
}

/// Packs `[poly][limb][n]` words at each limb's bit width, polynomials in parallel (every row
/// starts on a byte).
fn pack(ring: &Ring, words: &[u32]) -> Vec<u8> {
    let mut out = vec![0u8; words.len() / ring.poly_words() * packed_poly_bytes(ring)];
    out.par_chunks_mut(packed_poly_bytes(ring))
        .zip(words.par_chunks(ring.poly_words()))
        .for_each(|(dst, src)| pack_poly(ring, src, dst));
    out
}

/// Packs one polynomial of `ring` (its words `[limb][n]`) into `out`.
pub(crate) fn pack_poly(ring: &Ring, words: &[u32], out: &mut [u8]) {
    let n = ring.degree();
    let mut at = 0;
    for l in 0..ring.limbs() {
        let len = row_bytes(ring, l);
        pack_row(
            &words[l * n..(l + 1) * n],
            limb_bits(ring, l),
            &mut out[at..at + len],
        );
        at += len;
    }
}

fn pack_row(words: &[u32], bits: u32, out: &mut [u8]) {
    let (mut acc, mut filled, mut at) = (0u64, 0u32, 0usize);
    for &w in words {
        acc |= u64::from(w) << filled;
        filled += bits;
        while filled >= 8 {
            out[at] = acc as u8;
            at += 1;
            acc >>= 8;
            filled -= 8;
        }
    }
}

/// Unpacks `polys` polynomials of `ring`, checking the length and every word.
fn unpack(ring: &Ring, polys: usize, bytes: &[u8]) -> Result<Vec<u32>> {
    check_packed_len(ring, polys, bytes)?;
    let mut out = vec![0u32; polys * ring.poly_words()];
    unpack_into(ring, 1, bytes, &mut out, |_, _| {})?;
    Ok(out)
}

/// An error unless `bytes` holds exactly `polys` packed polynomials of `ring`: checked before
/// anything is allocated for them.
fn check_packed_len(ring: &Ring, polys: usize, bytes: &[u8]) -> Result<()> {
    let expected = packed_len(ring, polys).ok_or_else(|| bad("size overflows"))?;
    if bytes.len() != expected {
        return Err(bad(format!(
            "{} bytes of polynomial data, expected {expected}",
            bytes.len()
        )));
    }
    Ok(())
}

/// Groups of `slots` polynomials of `ring` into `out` (every word written): the first of each
/// unpacked from `bytes` (whose length [`check_packed_len`] checked) with every word checked,
/// the others filled by `rest(group, slots)`, in parallel.
fn unpack_into(
    ring: &Ring,
    slots: usize,
    bytes: &[u8],
    out: &mut [u32],
    rest: impl Fn(usize, &mut [u32]) + Sync,
) -> Result<()> {
    let (n, limbs, pw) = (ring.degree(), ring.limbs(), ring.poly_words());
    let per_poly = packed_poly_bytes(ring);
    out.par_chunks_mut(pw * slots)
        .zip(bytes.par_chunks(per_poly.max(1)))
        .enumerate()
        .try_for_each(|(i, (group, src))| {
            let (dst, others) = group.split_at_mut(pw);
            let mut at = 0;
            for l in 0..limbs {
                let len = row_bytes(ring, l);
                let row = &mut dst[l * n..(l + 1) * n];
                unpack_row(&src[at..at + len], ring.modulus(l).value(), row)?;
                at += len;
            }
            rest(i, others);
            Ok(())
        })
}

fn unpack_row(bytes: &[u8], p: u32, out: &mut [u32]) -> Result<()> {
    let bits = 32 - p.leading_zeros();
    let mask = (1u64 << bits) - 1;
    let (mut acc, mut filled, mut at) = (0u64, 0u32, 0usize);
    for w in out.iter_mut() {
        if filled < bits {
            // Four bytes at a time (a word is at most 32 bits, so one refill holds it), byte by
            // byte at the row's end.
            if let Some(&[a, b, c, d]) = bytes.get(at..at + 4) {
                acc |= u64::from(u32::from_le_bytes([a, b, c, d])) << filled;
                at += 4;
                filled += 32;
            } else {
                while filled < bits {
                    acc |= u64::from(bytes[at]) << filled;
                    at += 1;
                    filled += 8;
                }
            }
        }
        *w = (acc & mask) as u32;
        acc >>= bits;
        filled -= bits;
    }
    // The maximum first: it vectorises, where a search for the first bad word does not.
    if out.iter().copied().max().unwrap_or(0) < p {
        return Ok(());
    }
    let w = out.iter().copied().find(|&w| w >= p).unwrap_or(p);
    Err(bad(format!("word {w} is not below its prime {p}")))
}

impl Parameters {
    /// The parameter set in the compact format (its literal and generated primes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = ParamsWire {
            literal: self.literal().clone(),
            q: self.q_primes().to_vec(),
            p: self.p_primes().to_vec(),
        };
        let head = Header {
            params_id: self.id(),
            key_set: KeySetId::default(),
        };
        write(Kind::Parameters, head, &wire)
    }

    /// Rebuilds a parameter set exactly as [`Parameters::new`] does (security table included)
    /// and checks it matches the bytes. A set marked [`SecurityLevel::None`] is refused: only
    /// [`from_bytes_insecure`](Self::from_bytes_insecure) reads one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Arc<Parameters>> {
        Self::read_bytes(bytes, false)
    }

    /// [`from_bytes`](Self::from_bytes) that also accepts a set marked
    /// [`SecurityLevel::None`]: for tests and experiments, never for real data.
    pub fn from_bytes_insecure(bytes: &[u8]) -> Result<Arc<Parameters>> {
        Self::read_bytes(bytes, true)
    }

    fn read_bytes(bytes: &[u8], allow_insecure: bool) -> Result<Arc<Parameters>> {
        let (wire, head) = read::<ParamsWire>(bytes, Kind::Parameters)?;
        if wire.literal.security == SecurityLevel::None && !allow_insecure {
            return Err(bad(
                "the parameter set is marked SecurityLevel::None (no security check); \
                 only Parameters::from_bytes_insecure reads such a set",
            ));
        }
        if head.key_set != KeySetId::default() {
            return Err(bad("parameters carry no key set"));
        }
        let params = Parameters::new(wire.literal)?;
        if params.q_primes() != wire.q
            || params.p_primes() != wire.p
            || params.id() != head.params_id
        {
            return Err(bad("the primes or identity do not match the literal"));
        }
        Ok(params)
    }
}

impl PublicKey {
    pub fn to_bytes(&self, params: &Parameters) -> Result<Vec<u8>> {
        params.check_id(self.params_id, "public key")?;
        let head = Header {
            params_id: self.params_id,
            key_set: self.key_set,
        };
        Ok(write(
            Kind::PublicKey,
            head,
            &Bytes(pack(params.ring_keys(), &self.words)),
        ))
    }

    pub fn from_bytes(bytes: &[u8], params: &Parameters) -> Result<PublicKey> {
        let (Bytes(data), head) = read::<Bytes>(bytes, Kind::PublicKey)?;
        params.check_id(head.params_id, "serialized public key")?;
        Ok(PublicKey {
            params_id: head.params_id,
            key_set: head.key_set,
            words: unpack(params.ring_keys(), 2, &data)?,
        })
    }
}

fn key_to_wire(params: &Parameters, k: &SwitchingKey) -> Result<KeyWire> {
    params.check_id(k.params_id, "evaluation key")?;
    let ring = params.ring_ext(k.level);
    // A seeded key sends the first half of its words: the digits' `b`, not their masks.
    let sent = match k.mask_seed {
        Some(_) => &k.words[..k.digits * ring.poly_words()],
        None => &k.words[..],
    };
    Ok(KeyWire {
        galois: k.galois.map(|g| g as u64),
        level: k.level as u32,
        digits: k.digits as u32,
        seed: k.mask_seed,
        data: Bytes(pack(ring, sent)),
    })
}

fn key_from_wire(params: &Parameters, key_set: KeySetId, w: KeyWire) -> Result<SwitchingKey> {
    let level = w.level as usize;
    if level > params.max_level() {
        return Err(bad(format!(
            "key for level {level}, the set has {}",
            params.max_level()
        )));
    }
    let digits = params.digits(level).len();
    if w.digits as usize != digits {
        return Err(bad(format!(
            "key of {} digits, level {level} has {digits}",
            w.digits
        )));
    }
    let galois = match w.galois {
        None => None,
        Some(g) => {
            let g = usize::try_from(g).map_err(|_| bad("Galois element too large"))?;
            crate::math::check_galois_element(params.degree(), g)
                .map_err(|e| bad(e.to_string()))?;
            Some(g)
        }
    };
    Ok(SwitchingKey {
        params_id: params.id(),
        key_set,
        galois,
        level,
        digits,
        words: match &w.seed {
            Some(seed) => {
                let ring = params.ring_ext(level);
                let mut words = unpack(ring, digits, &w.data.0)?;
                words.extend(key_masks(seed, ring, digits));
                words
            }
            None => unpack(params.ring_ext(level), 2 * digits, &w.data.0)?,
        },
        mask_seed: w.seed,
    })
}

impl EvaluationKeys {
    /// The relinearization and Galois keys in the compact format.
    pub fn to_bytes(&self, params: &Parameters) -> Result<Vec<u8>> {
        let head = Header {
            params_id: params.id(),
            key_set: self.key_set()?.unwrap_or_default(),
        };
        let wire = EvaluationKeysWire {
            relin: self
                .relin
                .as_ref()
                .map(|r| key_to_wire(params, &r.0))
                .transpose()?,
            galois: self
                .galois
                .keys
                .values()
                .map(|k| key_to_wire(params, k))
                .collect::<Result<_>>()?,
        };
        Ok(write(Kind::LeveledEvaluationKeys, head, &wire))
    }

    pub fn from_bytes(bytes: &[u8], params: &Parameters) -> Result<EvaluationKeys> {
        let (wire, head) = if bytes.get(MAGIC.len() + 1) == Some(&(Kind::EvaluationKeys as u8)) {
            let (top, head) = read::<TopEvaluationKeysWire>(bytes, Kind::EvaluationKeys)?;
            let level = params.max_level() as u32;
            let leveled = |w: TopKeyWire| KeyWire {
                galois: w.galois,
                level,
                digits: w.digits,
                seed: None,
                data: w.data,
            };
            let wire = EvaluationKeysWire {
                relin: top.relin.map(leveled),
                galois: top.galois.into_iter().map(leveled).collect(),
            };
            (wire, head)
        } else {
            read::<EvaluationKeysWire>(bytes, Kind::LeveledEvaluationKeys)?
        };
        params.check_id(head.params_id, "serialized evaluation keys")?;
        let relin = match wire.relin {
            Some(w) => {
                let k = key_from_wire(params, head.key_set, w)?;
                if k.galois.is_some() {
                    return Err(bad("the relinearization key is marked as a Galois key"));
                }
                if k.level != params.max_level() {
                    return Err(bad(format!(
                        "the relinearization key serves levels up to {}, not the top level {}",
                        k.level,
                        params.max_level()
                    )));
                }
                Some(RelinKey(k))
            }
            None => None,
        };
        let mut keys = BTreeMap::new();
        // Each key decoded (its masks drawn from their seed) on its own thread.
        let decoded: Vec<SwitchingKey> = {
            use rayon::prelude::*;
            (wire.galois.into_par_iter())
                .map(|w| key_from_wire(params, head.key_set, w))
                .collect::<Result<_>>()?
        };
        for k in decoded {
            let g = k
                .galois
                .ok_or_else(|| bad("a Galois key without its element"))?;
            if keys.insert(g, k).is_some() {
                return Err(bad(format!("two keys for Galois element {g}")));
            }
        }
        Ok(EvaluationKeys {
            relin,
            galois: GaloisKeys { keys },
        })
    }
}

impl Ciphertext {
    /// The ciphertext in the compact format, fetched through `backend` (which holds it). A
    /// seeded ciphertext (fresh from secret-key encryption) sends its masks' seed instead of
    /// its second polynomials: about half the bytes.
    pub fn to_bytes(&self, params: &Parameters, backend: &dyn Backend) -> Result<Vec<u8>> {
        self.check(params)?;
        let ring = params.ring_q(self.level)?;
        let words = self.polys.words_via(backend)?;
        // A seeded ciphertext sends only the first polynomial of each.
        let stride = if self.seed.is_some() { self.size } else { 1 };
        let pw = ring.poly_words();
        let sent = self.polys.batch() / stride;
        write_ciphertext(
            params,
            self.meta(),
            self.count,
            self.seed,
            sent,
            |first, out| {
                for (k, dst) in out.chunks_mut(packed_poly_bytes(ring)).enumerate() {
                    let at = (first + k) * stride * pw;
                    pack_poly(ring, &words[at..at + pw], dst);
                }
                Ok(())
            },
        )
    }

    /// Reads a ciphertext of `params` onto `backend`'s device (a seeded one has its masks
    /// drawn from its seed on the host first).
    pub fn from_bytes(
        bytes: &[u8],
        params: &Parameters,
        backend: &dyn Backend,
    ) -> Result<Ciphertext> {
        let (w, head) = read::<CiphertextWire>(bytes, Kind::Ciphertext)?;
        let CiphertextWire { head: h, data } = w;
        if h.seed.is_some() && bytes[MAGIC.len()] < VERSION {
            return Err(bad(format!(
                "a seeded ciphertext of format version {}: this build ({VERSION}) draws its \
                 masks differently; encrypt it again",
                bytes[MAGIC.len()]
            )));
        }
        params.check_id(head.params_id, "serialized ciphertext")?;
        let level = h.level as usize;
        let ring = params.ring_q(level).map_err(|_| {
            bad(format!(
                "level {level} above the set's {}",
                params.max_level()
            ))
        })?;
        let seeded_ok = h.seed.is_none() || h.size == 2;
        if !(h.size == 2 || h.size == 3) || h.count == 0 || !seeded_ok {
            return Err(bad(format!(
                "{} {}ciphertexts of {} polynomials",
                h.count,
                if h.seed.is_some() { "seeded " } else { "" },
                h.size
            )));
        }
        params
            .check_scale(level, h.scale)
            .map_err(|e| bad(e.to_string()))?;
        let (size, count) = (usize::from(h.size), h.count as usize);
        let sent = if h.seed.is_some() {
            count
        } else {
            size * count
        };
        check_packed_len(ring, sent, data)?;
        // Unpacked into a buffer the host backend keeps (no copy on the CPU).
        let mut words = backend.host_buffer(size * count * ring.poly_words());
        match &h.seed {
            None => unpack_into(ring, 1, data, &mut words, |_, _| {})?,
            // c0 from the bytes, and the mask drawn from the seed, in place.
            Some(seed) => unpack_into(ring, 2, data, &mut words, |i, mask| {
                seeded_mask_into(seed, i as u64, ring, mask)
            })?,
        }
        let meta = CipherMeta {
            size,
            level,
            scale: h.scale,
            params_id: head.params_id,
            key_set: head.key_set,
        };
        let polys = backend.upload_vec(ring, size * count, words)?;
        Ciphertext::new(meta, count, polys, h.seed)
    }
}

/// The compact form of `count` ciphertexts described by `meta` (seeded when `seed` is given),
/// whose `sent` polynomials (all, or each ciphertext's first when seeded) are packed by
/// `pack(first, out)` into their place in the output, [`POLYS_PER_TASK`] per call, in parallel.
pub(crate) fn write_ciphertext(
    params: &Parameters,
    meta: CipherMeta,
    count: usize,
    seed: Option<[u8; 32]>,
    sent: usize,
    pack: impl Fn(usize, &mut [u8]) -> Result<()> + Sync,
) -> Result<Vec<u8>> {
    let ring = params.ring_q(meta.level)?;
    let body = CiphertextHead {
        size: meta.size as u8,
        count: count as u32,
        level: meta.level as u32,
        scale: meta.scale,
        seed,
    };
    let head = Header {
        params_id: meta.params_id,
        key_set: meta.key_set,
    };
    write_with_words(Kind::Ciphertext, head, &body, (ring, sent), pack)
}

impl SecretKey {
    /// The secret key's bytes (2 bits per ternary coefficient). Only through this explicit
    /// call: keep the result as secret as the key.
    pub fn export_secret_bytes(&self) -> Vec<u8> {
        let mut packed = vec![0u8; self.coeffs.len().div_ceil(4)];
        for (i, &c) in self.coeffs.iter().enumerate() {
            let code = match c {
                0 => 0u8,
                1 => 1,
                _ => 2,
            };
            packed[i / 4] |= code << (2 * (i % 4));
        }
        let head = Header {
            params_id: self.params_id,
            key_set: self.key_set,
        };
        let out = write(Kind::SecretKey, head, &packed);
        zeroize::Zeroize::zeroize(&mut packed);
        out
    }

    /// Reads a secret key exported by [`SecretKey::export_secret_bytes`].
    pub fn import_secret_bytes(bytes: &[u8], params: &Parameters) -> Result<SecretKey> {
        // Wiped when dropped, on every path out of here.
        let (packed, head) = read::<Vec<u8>>(bytes, Kind::SecretKey)?;
        let packed = zeroize::Zeroizing::new(packed);
        params.check_id(head.params_id, "serialized secret key")?;
        let n = params.degree();
        if packed.len() != n / 4 {
            return Err(bad(format!(
                "{} bytes of secret key, expected {}",
                packed.len(),
                n / 4
            )));
        }
        let mut coeffs = zeroize::Zeroizing::new(Vec::with_capacity(n));
        for i in 0..n {
            coeffs.push(match (packed[i / 4] >> (2 * (i % 4))) & 3 {
                0 => 0i8,
                1 => 1,
                2 => -1,
                _ => return Err(bad("a secret coefficient outside {-1, 0, 1}")),
            });
        }
        let coeffs = std::mem::take(&mut *coeffs);
        let ring = params.ring_keys();
        let mut words = small_to_words(ring, &coeffs);
        let ntt = ntt_host(ring, &words);
        wipe(&mut words);
        Ok(SecretKey {
            params_id: head.params_id,
            key_set: head.key_set,
            coeffs,
            ntt: ntt?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::{KeyGenerator, Preset, Seed};

    /// Evaluation keys written before keys had levels still read, every key at the top level;
    /// a relinearization key below the top level is refused.
    #[test]
    fn evaluation_keys_without_levels_still_read() {
        let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
        let mut kg = KeyGenerator::new(&params, Seed::from_u64(8));
        let sk = kg.secret_key().unwrap();
        let keys = EvaluationKeys {
            relin: Some(kg.relin_key(&sk).unwrap()),
            galois: kg.galois_keys(&sk, &[1, 2], false).unwrap(),
        };
        let top = |k: &SwitchingKey| TopKeyWire {
            galois: k.galois.map(|g| g as u64),
            digits: k.digits as u32,
            data: Bytes(pack(params.ring_keys(), &k.words)),
        };
        let old = TopEvaluationKeysWire {
            relin: keys.relin.as_ref().map(|r| top(&r.0)),
            galois: keys.galois.keys.values().map(top).collect(),
        };
        let head = Header {
            params_id: params.id(),
            key_set: sk.key_set(),
        };
        let bytes = write(Kind::EvaluationKeys, head, &old);
        let back = EvaluationKeys::from_bytes(&bytes, &params).unwrap();
        for (g, k) in &keys.galois.keys {
            assert_eq!(back.galois.level(*g), Some(params.max_level()));
            assert!(back.galois.keys[g].words == k.words);
        }
        assert!(back.relin.unwrap().0.words == keys.relin.as_ref().unwrap().0.words);
        // Today's format: the Galois keys send their masks' seeds, about half the bytes, and
        // read back to the same words.
        let seeded = keys.to_bytes(&params).unwrap();
        let again = EvaluationKeys::from_bytes(&seeded, &params).unwrap();
        assert_eq!(again.galois.elements(), keys.galois.elements());
        for (g, k) in &keys.galois.keys {
            assert!(k.mask_seed.is_some() && again.galois.keys[g].words == k.words);
        }
        let galois_only = |seeds: bool| {
            let mut g = keys.galois.clone();
            for k in g.keys.values_mut() {
                k.mask_seed = k.mask_seed.filter(|_| seeds);
            }
            let only = EvaluationKeys {
                relin: None,
                galois: g,
            };
            only.to_bytes(&params).unwrap().len()
        };
        let (half, whole) = (galois_only(true), galois_only(false));
        assert!(
            2 * half < whole + 1000 && 2 * half > whole,
            "{half} of {whole}"
        );
        // A relinearization key made for a lower level is refused.
        let level = params.max_level() - 1;
        let mut below = kg.galois_keys_up_to(&sk, &[(1, level)]).unwrap();
        let mut key = below.keys.pop_first().unwrap().1;
        key.galois = None;
        let low = EvaluationKeys {
            relin: Some(RelinKey(key)),
            galois: GaloisKeys::default(),
        };
        let e = EvaluationKeys::from_bytes(&low.to_bytes(&params).unwrap(), &params).unwrap_err();
        assert!(e.to_string().contains("not the top level"), "{e}");
    }

    #[test]
    fn byte_strings_have_the_wire_form_of_byte_sequences() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let as_seq = postcard::to_allocvec(&v).unwrap();
            assert_eq!(postcard::to_allocvec(&Bytes(v.clone())).unwrap(), as_seq);
            let back: Bytes = postcard::from_bytes(&as_seq).unwrap();
            assert_eq!(back.0, v);
        }
    }
}
