//! Encryption (public or secret key) and decryption, on the device that holds the data: a GPU
//! draws the masks from their seed and receives the noise as bytes; the words are the CPU's.

use super::ciphertext::{CipherMeta, Ciphertext, Plaintext};
use super::encoding::Encoder;
use super::key_switch::mod_down;
use super::keys::{KeySetId, PublicKey, SecretKey, ntt_host};
use super::params::Parameters;
use super::sampling::{
    Sampler, Seed, gaussian, seeded_mask_into, small_to_words, stream, ternary, wipe,
};
use super::serial::{pack_poly, packed_poly_bytes, write_ciphertext};
use crate::backend::{Backend, PolyBatch};
use crate::math::Ring;
use crate::{Error, Result};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};
use zeroize::Zeroize;

enum EncryptionKey {
    /// The public key, resident on the encryptor's device.
    Public(PolyBatch),
    /// The secret key: encryption then runs on the host and the result is uploaded.
    Secret(SecretKey),
}

/// Encrypts plaintexts into ciphertexts on one backend. The randomness comes from a CSPRNG
/// ([`Seed::Os`] for real data); with the same fixed seed every device gives the same words.
pub struct Encryptor {
    params: Arc<Parameters>,
    backend: Arc<dyn Backend>,
    key: EncryptionKey,
    key_set: KeySetId,
    sampler: Mutex<Sampler>,
}

impl Encryptor {
    /// The parameter set it encrypts for.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// The device its ciphertexts are made on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Public-key encryption: `(u·b + e0, u·a + e1)` over `P·Q_l`, divided by P (which leaves
    /// only rounding noise), plus `(m, 0)`; computed on `backend`.
    pub fn new(
        params: &Arc<Parameters>,
        pk: &PublicKey,
        backend: Arc<dyn Backend>,
        seed: Seed,
    ) -> Result<Self> {
        params.check_id(pk.params_id, "public key")?;
        let key = EncryptionKey::Public(backend.upload(params.ring_keys(), 2, &pk.words)?);
        Ok(Self {
            params: params.clone(),
            backend,
            key,
            key_set: pk.key_set,
            sampler: Mutex::new(Sampler::new(seed)),
        })
    }

    /// Secret-key encryption `(−a·s + e + m, a)`: smaller noise; the secret part runs on the
    /// host and only the ciphertext goes to `backend`. Each `a` is drawn from a seed the
    /// ciphertext keeps, so that its compact form carries 32 bytes instead of the polynomial
    /// (half the bytes of a fresh ciphertext).
    pub fn with_secret_key(
        params: &Arc<Parameters>,
        sk: &SecretKey,
        backend: Arc<dyn Backend>,
        seed: Seed,
    ) -> Result<Self> {
        params.check_id(sk.params_id, "secret key")?;
        Ok(Self {
            params: params.clone(),
            backend,
            key: EncryptionKey::Secret(sk.clone()),
            key_set: sk.key_set,
            sampler: Mutex::new(Sampler::new(seed)),
        })
    }

    /// Encrypts every vector of `pt` at its level and scale: a ciphertext of `pt.count()`.
    pub fn encrypt(&self, pt: &Plaintext) -> Result<Ciphertext> {
        self.params.check_id(pt.params_id, "plaintext")?;
        let level = pt.level;
        let ring = self.params.ring_q(level)?.clone();
        let b = &*self.backend;
        let count = pt.count();
        let (seed, noise_seed) = self.call_seeds();
        let (polys, seed) = match &self.key {
            EncryptionKey::Public(pk) => (self.public(pk, pt, noise_seed)?, None),
            // On a GPU: the masks drawn there from the seed, the noise sent as bytes, the
            // transforms and products on its kernels; the same words as the host's.
            EncryptionKey::Secret(sk) if b.gpu_stats().is_some() => (
                self.secret_on_device(sk, pt, (&seed, noise_seed))?,
                Some(seed),
            ),
            EncryptionKey::Secret(sk) => {
                let m = pt.poly.words_via(b)?;
                let pw = ring.poly_words();
                let call = SecretCall::new(&self.params, sk, level, noise_seed);
                let mut words = b.host_buffer(2 * count * pw);
                // Each mask comes from a seed, so the ciphertexts can travel as c0 and 32 bytes.
                words
                    .par_chunks_mut(2 * pw)
                    .zip(m.par_chunks(pw))
                    .enumerate()
                    .try_for_each(|(i, (out, mi))| {
                        let (c0, a) = out.split_at_mut(pw);
                        call.seal((&seed, i), mi, c0, a)
                    })?;
                (b.upload_vec(&ring, 2 * count, words)?, Some(seed))
            }
        };
        let meta = CipherMeta {
            size: 2,
            level,
            scale: pt.scale,
            params_id: self.params.id(),
            key_set: self.key_set,
        };
        Ciphertext::new(meta, count, polys, seed)
    }
}

impl Encryptor {
    /// Public-key encryption of `pt` on the encryptor's device: `u` and the two errors of
    /// ciphertext i from stream i of `noise_seed`, sent to the device as bytes.
    fn public(&self, pk: &PolyBatch, pt: &Plaintext, noise_seed: [u8; 32]) -> Result<PolyBatch> {
        let (b, level, count) = (&*self.backend, pt.level, pt.count());
        let ext = self.params.ring_ext(level);
        let n = ext.degree();
        // Per ciphertext: u, then e0 and e1.
        let small: Vec<[Vec<i8>; 3]> = (0..count)
            .into_par_iter()
            .map(|i| {
                let mut rng = stream(&noise_seed, i as u64);
                let u = ternary(&mut rng, n);
                [u, gaussian(&mut rng, n), gaussian(&mut rng, n)]
            })
            .collect();
        let mut u: Vec<i8> = small.iter().flat_map(|s| s[0].iter().copied()).collect();
        let mut e: Vec<i8> = small.iter().flat_map(|s| s[1..].concat()).collect();
        // u and the errors are as secret as the message they hide: wiped once sent.
        for mut parts in small {
            parts.iter_mut().for_each(|p| p.zeroize());
        }
        let sent = b
            .small_polys(ext, &u)
            .and_then(|u| Ok((u, b.small_polys(ext, &e)?)));
        u.zeroize();
        e.zeroize();
        let (mut u, mut e) = sent?;
        // u multiplies both halves of the key: transform it once, then pair it up.
        b.ntt_forward(&mut u)?;
        let twice: Vec<Option<usize>> = (0..count).flat_map(|i| [Some(i), Some(i)]).collect();
        let uu = b.gather(&u, &twice, 0..ext.limbs())?;
        b.ntt_forward(&mut e)?;
        let alpha = self.params.special_primes();
        let pairs: Vec<Option<usize>> = (0..count).flat_map(|_| [Some(0), Some(1)]).collect();
        let pk_l = b.gather(pk, &pairs, 0..alpha + level + 1)?;
        let masked = b.add(&b.mul(&uu, &pk_l)?, &e)?;
        let c = mod_down(b, &self.params, &masked, level)?;
        let m = b.gather(&pt.poly, &plain_first(count), 0..level + 1)?;
        b.add(&c, &m)
    }

    /// Secret-key encryption of `pt` on a device: the masks drawn there from `seed`
    /// ([`Backend::seeded_masks`]), each ciphertext's noise from its stream of `noise_seed`
    /// sent as bytes and transformed there, `c0 = e + m − a·s` on its kernels; the words of
    /// [`SecretCall::seal`], ciphertext by ciphertext.
    fn secret_on_device(
        &self,
        sk: &SecretKey,
        pt: &Plaintext,
        (seed, noise_seed): (&[u8; 32], [u8; 32]),
    ) -> Result<PolyBatch> {
        let (b, level, count) = (&*self.backend, pt.level, pt.count());
        let ring = self.params.ring_q(level)?;
        let n = ring.degree();
        let a = b.seeded_masks(ring, seed, 0..count as u64)?;
        let mut noise: Vec<i8> = (0..count)
            .into_par_iter()
            .flat_map_iter(|i| gaussian(&mut stream(&noise_seed, i as u64), n))
            .collect();
        let sent = b.small_polys(ring, &noise);
        noise.zeroize();
        let mut e = sent?;
        b.ntt_forward(&mut e)?;
        let s = b.upload(ring, 1, sk.q_words(&self.params, level))?;
        let s = b.gather(&s, &vec![Some(0); count], 0..level + 1)?;
        let c0 = b.sub(&b.add(&e, &pt.poly)?, &b.mul(&a, &s)?)?;
        // Ciphertext i is (c0_i, a_i).
        let order: Vec<Option<usize>> = (0..count)
            .flat_map(|i| [Some(i), Some(count + i)])
            .collect();
        b.gather(&b.concat(&[&c0, &a])?, &order, 0..level + 1)
    }

    /// Two seeds per call from the encryptor's generator: the masks', and the small
    /// polynomials' (one ChaCha20 stream per ciphertext, drawn in parallel).
    fn call_seeds(&self) -> ([u8; 32], [u8; 32]) {
        let mut sampler = self.sampler.lock().unwrap_or_else(|p| p.into_inner());
        (sampler.bytes(), sampler.bytes())
    }

    /// Encodes `vectors` at `level` and `scale`, encrypts them and writes the ciphertext in
    /// the compact format: the bytes `encrypt(encode_many(vectors))` then `to_bytes` give,
    /// made a ciphertext at a time with the secret key (each encoded, encrypted and packed
    /// into its place in the output, so neither the plaintexts nor the ciphertexts are ever
    /// held whole: the client of a 784-ciphertext batch holds its 120 MB of bytes and little
    /// else). With a public key it encrypts the encoded batch on the device, then writes it.
    pub fn encrypt_to_bytes(
        &self,
        encoder: &Encoder,
        vectors: &[Vec<f64>],
        level: usize,
        scale: f64,
    ) -> Result<Vec<u8>> {
        let b = &*self.backend;
        let EncryptionKey::Secret(sk) = &self.key else {
            let pt = encoder.encode_many(vectors, level, scale, b)?;
            return self.encrypt(&pt)?.to_bytes(&self.params, b);
        };
        self.params.check_id(encoder.params().id(), "encoder")?;
        if vectors.is_empty() {
            return Err(Error::Encoding("no vectors to encode".into()));
        }
        let ring = self.params.ring_q(level)?.clone();
        let (seed, noise_seed) = self.call_seeds();
        let call = SecretCall::new(&self.params, sk, level, noise_seed);
        let meta = CipherMeta {
            size: 2,
            level,
            scale,
            params_id: self.params.id(),
            key_set: self.key_set,
        };
        let count = vectors.len();
        write_ciphertext(
            &self.params,
            meta,
            count,
            Some(seed),
            count,
            |first, out| {
                let pw = ring.poly_words();
                let (mut c0, mut a) = (vec![0u32; pw], vec![0u32; pw]);
                for (k, dst) in out.chunks_mut(packed_poly_bytes(&ring)).enumerate() {
                    let m = encoder.encode_host(&vectors[first + k], level, scale)?;
                    call.seal((&seed, first + k), &m, &mut c0, &mut a)?;
                    pack_poly(&ring, &c0, dst);
                }
                Ok(())
            },
        )
    }
}

/// What secret-key encryption shares across one call's ciphertexts: `s` at the level, its
/// Shoup companions (computed once instead of a division per word), and the call's noise
/// seed. The companions are wiped when the call ends.
struct SecretCall<'a> {
    ring: Arc<Ring>,
    s: &'a [u32],
    s_shoup: Vec<u32>,
    noise_seed: [u8; 32],
}

impl<'a> SecretCall<'a> {
    fn new(params: &Parameters, sk: &'a SecretKey, level: usize, noise_seed: [u8; 32]) -> Self {
        let ring = params.ring_q(level).expect("the level was checked").clone();
        let s = sk.q_words(params, level);
        let s_shoup = s
            .chunks_exact(ring.degree())
            .enumerate()
            .flat_map(|(l, row)| {
                let md = ring.modulus(l);
                row.iter().map(move |&w| md.shoup(w))
            })
            .collect();
        Self {
            ring,
            s,
            s_shoup,
            noise_seed,
        }
    }

    /// Ciphertext `i` of the call under mask seed `seed`: its mask `a` (stream i of the seed),
    /// and `c0 = e − a·s + m` with its noise `e` from stream i of the noise seed.
    fn seal(
        &self,
        (seed, i): (&[u8; 32], usize),
        m: &[u32],
        c0: &mut [u32],
        a: &mut [u32],
    ) -> Result<()> {
        let (ring, n) = (&self.ring, self.ring.degree());
        seeded_mask_into(seed, i as u64, ring, a);
        let noise = gaussian(&mut stream(&self.noise_seed, i as u64), n);
        let e = ntt_host(ring, &small_to_words(ring, &noise))?;
        // c0 = e − a·s + m, limb by limb.
        for l in 0..ring.limbs() {
            let md = ring.modulus(l);
            let r = l * n..(l + 1) * n;
            let rows = c0[r.clone()]
                .iter_mut()
                .zip(&a[r.clone()])
                .zip(&e[r.clone()]);
            let keys = self.s[r.clone()]
                .iter()
                .zip(&self.s_shoup[r.clone()])
                .zip(&m[r]);
            for (((c, &a), &e), ((&s, &sh), &m)) in rows.zip(keys) {
                *c = md.add(md.sub(e, md.mul_shoup(a, s, sh)), m);
            }
        }
        Ok(())
    }
}

impl Drop for SecretCall<'_> {
    fn drop(&mut self) {
        // The companions determine s: wiped like the key itself.
        wipe(&mut self.s_shoup);
    }
}

/// Gather sources putting polynomial `i` first in pair `i` (the second stays zero).
pub(crate) fn plain_first(count: usize) -> Vec<Option<usize>> {
    (0..count).flat_map(|i| [Some(i), None]).collect()
}

/// Decrypts with the secret key: on the host, or on the GPU that holds the ciphertexts (only
/// the plaintexts come back).
pub struct Decryptor {
    params: Arc<Parameters>,
    sk: SecretKey,
}

impl Decryptor {
    pub fn new(params: &Arc<Parameters>, sk: &SecretKey) -> Result<Self> {
        params.check_id(sk.params_id, "secret key")?;
        Ok(Self {
            params: params.clone(),
            sk: sk.clone(),
        })
    }

    /// Decrypts a single ciphertext (fetched from `backend`, which holds it) to a host
    /// plaintext.
    pub fn decrypt(&self, ct: &Ciphertext, backend: &dyn Backend) -> Result<Plaintext> {
        if ct.count != 1 {
            return Err(Error::Shape(format!(
                "decrypt takes one ciphertext, not {} (use decrypt_all)",
                ct.count
            )));
        }
        Ok(self.decrypt_all(ct, backend)?.remove(0))
    }

    /// Decrypts every ciphertext of `ct`: `Σ_i c_i · s^i` in the NTT domain, on the GPU when
    /// `backend` is one holding `ct` (the same words as on the host).
    pub fn decrypt_all(&self, ct: &Ciphertext, backend: &dyn Backend) -> Result<Vec<Plaintext>> {
        ct.check(&self.params)?;
        self.sk.key_set.check(ct.key_set, "the ciphertext")?;
        if backend.gpu_stats().is_some() && ct.polys.host_words().is_none() {
            return self.decrypt_on_device(ct, backend);
        }
        let words = backend.download(&ct.polys)?;
        let ring = self.params.ring_q(ct.level)?.clone();
        let (n, pw) = (ring.degree(), ring.poly_words());
        let s = self.sk.q_words(&self.params, ct.level);
        (0..ct.count)
            .into_par_iter()
            .map(|c| {
                let parts = &words[c * ct.size * pw..(c + 1) * ct.size * pw];
                let m: Vec<u32> = (0..pw)
                    .map(|i| {
                        let md = ring.modulus(i / n);
                        // Horner in s: ((c_{k} s + c_{k-1}) s + …) + c_0.
                        (0..ct.size)
                            .rev()
                            .fold(0u32, |acc, j| md.add(md.mul(acc, s[i]), parts[j * pw + i]))
                    })
                    .collect();
                Plaintext::from_host(&self.params, ct.level, ct.scale, m)
            })
            .collect()
    }

    /// [`decrypt_all`](Self::decrypt_all) on the device `b` holding `ct`: Horner in `s` on its
    /// kernels, then one polynomial per ciphertext read back instead of two or three.
    fn decrypt_on_device(&self, ct: &Ciphertext, b: &dyn Backend) -> Result<Vec<Plaintext>> {
        let (count, size, level) = (ct.count, ct.size, ct.level);
        let ring = self.params.ring_q(level)?;
        let part = |j: usize| {
            let sources: Vec<Option<usize>> = (0..count).map(|i| Some(i * size + j)).collect();
            b.gather(&ct.polys, &sources, 0..level + 1)
        };
        let s = b.upload(ring, 1, self.sk.q_words(&self.params, level))?;
        let s = b.gather(&s, &vec![Some(0); count], 0..level + 1)?;
        // ((c_{k} s + c_{k-1}) s + …) + c_0, as on the host.
        let mut m = part(size - 1)?;
        for j in (0..size - 1).rev() {
            m = b.add(&b.mul(&m, &s)?, &part(j)?)?;
        }
        b.download(&m)?
            .chunks_exact(ring.poly_words())
            .map(|m| Plaintext::from_host(&self.params, level, ct.scale, m.to_vec()))
            .collect()
    }
}
