//! Keys: the ternary secret (host only, wiped on drop, never printed), the public key, and
//! switching keys for hybrid key switching (relinearization, rotations, conjugation), made by
//! a [`KeyGenerator`] on the CPU.

use super::params::Parameters;
use super::sampling::{Sampler, Seed, gaussian, small_to_words, stream, uniform_words, wipe};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroize;

/// The identity of a key set: 128 random bits drawn when the secret key is made, carried by
/// the secret key, every key made from it and every ciphertext encrypted under it, and written
/// into every serialized key and ciphertext. Operations on ciphertexts of two key sets, keys of
/// another set, and decryption with another set's secret key are errors, not noise.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeySetId(pub [u8; 16]);

impl std::fmt::Display for KeySetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for KeySetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySetId({self})")
    }
}

impl KeySetId {
    /// An error unless `found` (the key set of `what`) is this one.
    pub(crate) fn check(self, found: KeySetId, what: &str) -> Result<()> {
        if found != self {
            return Err(crate::Error::Mismatch(format!(
                "{what} belongs to key set {found}, expected key set {self}"
            )));
        }
        Ok(())
    }
}

/// The secret key: ternary coefficients and their NTT form over every prime (special primes
/// first). Lives on the host only; its memory is overwritten when dropped; `Debug` hides it.
#[derive(Clone)]
pub struct SecretKey {
    pub(crate) params_id: u64,
    pub(crate) key_set: KeySetId,
    pub(crate) coeffs: Vec<i8>,
    /// `[limb][n]` over the key ring (special primes, then q_0 … q_L), NTT domain.
    pub(crate) ntt: Vec<u32>,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.coeffs.zeroize();
        wipe(&mut self.ntt);
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretKey(<secret>, params {:#018x}, key set {})",
            self.params_id, self.key_set
        )
    }
}

impl SecretKey {
    /// The key set this secret key heads.
    pub fn key_set(&self) -> KeySetId {
        self.key_set
    }

    /// The NTT words of the limbs of level `level` (q_0 … q_level).
    pub(crate) fn q_words(&self, params: &Parameters, level: usize) -> &[u32] {
        let (n, alpha) = (params.degree(), params.special_primes());
        &self.ntt[alpha * n..(alpha + level + 1) * n]
    }
}

/// The public key `(−a·s + e, a)` over the key ring (special primes, then q_0 … q_L), NTT
/// domain: encryption works over `P·Q` and divides by P, so its noise is only the rounding.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub(crate) params_id: u64,
    pub(crate) key_set: KeySetId,
    pub(crate) words: Vec<u32>,
}

/// A key that switches a ciphertext part from a secret s' to s: per digit d,
/// `(b_d, a_d) = (−a_d·s + e_d + P·[digit d]·s', a_d)` over the key ring; words `[b…, a…]`.
#[derive(Clone, Debug)]
pub struct SwitchingKey {
    pub(crate) params_id: u64,
    pub(crate) key_set: KeySetId,
    /// The Galois element it serves (`None`: relinearization, s' = s²).
    pub(crate) galois: Option<usize>,
    /// The highest ciphertext level it switches: its words are over `[P, Q_level]`, in the
    /// digits of that level (a key for lower levels is smaller).
    pub(crate) level: usize,
    pub(crate) digits: usize,
    pub(crate) words: Vec<u32>,
    /// Seeded: the digits' masks (the second half of `words`) are drawn in order from this
    /// public seed's ChaCha20 stream 0 (see [`key_masks`]), so the byte format sends the seed
    /// instead of them.
    pub(crate) mask_seed: Option<[u8; 32]>,
}

/// The masks of a seeded key's `digits` digits over `ring`, drawn from `seed` in order.
pub(crate) fn key_masks(seed: &[u8; 32], ring: &crate::math::Ring, digits: usize) -> Vec<u32> {
    let mut rng = stream(seed, 0);
    (0..digits)
        .flat_map(|_| uniform_words(&mut rng, ring))
        .collect()
}

/// Relinearization key (s² → s).
#[derive(Clone, Debug)]
pub struct RelinKey(pub(crate) SwitchingKey);

/// Galois keys, by Galois element (5^k mod 2N for a rotation by k, 2N − 1 for conjugation).
#[derive(Clone, Debug, Default)]
pub struct GaloisKeys {
    pub(crate) keys: BTreeMap<usize, SwitchingKey>,
}

impl PublicKey {
    /// The key set it belongs to.
    pub fn key_set(&self) -> KeySetId {
        self.key_set
    }
}

impl GaloisKeys {
    /// The Galois elements with a key.
    pub fn elements(&self) -> Vec<usize> {
        self.keys.keys().copied().collect()
    }

    /// The highest level the key for element `g` switches, if there is one.
    pub fn level(&self, g: usize) -> Option<usize> {
        self.keys.get(&g).map(|k| k.level)
    }
}

/// Everything the server needs and nothing it must not have: no secret material.
#[derive(Clone, Debug, Default)]
pub struct EvaluationKeys {
    pub relin: Option<RelinKey>,
    pub galois: GaloisKeys,
}

impl EvaluationKeys {
    /// Bytes the keys' words take in memory (masks drawn: about twice their byte format).
    pub fn memory_bytes(&self) -> u64 {
        let relin = self.relin.iter().map(|k| &k.0);
        relin
            .chain(self.galois.keys.values())
            .map(|k| 4 * k.words.len() as u64)
            .sum()
    }

    /// The key set of the keys (`None` when there are none); an error when they come from
    /// several key sets.
    pub fn key_set(&self) -> Result<Option<KeySetId>> {
        let mut sets = self
            .relin
            .iter()
            .map(|r| r.0.key_set)
            .chain(self.galois.keys.values().map(|k| k.key_set));
        let Some(first) = sets.next() else {
            return Ok(None);
        };
        for other in sets {
            first.check(other, "an evaluation key")?;
        }
        Ok(Some(first))
    }
}

/// Makes keys on the CPU from a CSPRNG ([`Seed::Os`] for real use).
pub struct KeyGenerator {
    params: Arc<Parameters>,
    sampler: Sampler,
}

impl KeyGenerator {
    pub fn new(params: &Arc<Parameters>, seed: Seed) -> Self {
        Self {
            params: params.clone(),
            sampler: Sampler::new(seed),
        }
    }

    /// A fresh ternary secret key.
    pub fn secret_key(&mut self) -> Result<SecretKey> {
        let ring = self.params.ring_keys();
        let coeffs = self.sampler.ternary(ring.degree());
        let key_set = KeySetId(self.sampler.bytes());
        let mut words = small_to_words(ring, &coeffs);
        let ntt = ntt_host(ring, &words)?;
        wipe(&mut words);
        Ok(SecretKey {
            params_id: self.params.id(),
            key_set,
            coeffs,
            ntt,
        })
    }

    /// The public key of `sk`.
    pub fn public_key(&mut self, sk: &SecretKey) -> Result<PublicKey> {
        self.params.check_id(sk.params_id, "secret key")?;
        let params = self.params.clone();
        let ring = params.ring_keys();
        let (a, e) = self.mask_and_error(ring)?;
        let b = minus_as_plus_e(ring, &a, &sk.ntt, &e);
        Ok(PublicKey {
            params_id: self.params.id(),
            key_set: sk.key_set,
            words: [b, a].concat(),
        })
    }

    /// The relinearization key of `sk`.
    pub fn relin_key(&mut self, sk: &SecretKey) -> Result<RelinKey> {
        self.params.check_id(sk.params_id, "secret key")?;
        let params = self.params.clone();
        let ring = params.ring_keys();
        let n = ring.degree();
        let s2: Vec<u32> = sk
            .ntt
            .iter()
            .enumerate()
            .map(|(i, &s)| ring.modulus(i / n).mul(s, s))
            .collect();
        let params = self.params.clone();
        let top = params.max_level();
        let key = switching_key(&params, sk, s2, (None, top), &mut |ring| {
            self.mask_and_error(ring)
        })?;
        Ok(RelinKey(key))
    }

    /// Galois keys for rotations by each of `steps` (positive: towards slot 0) and, when
    /// `conjugation`, for complex conjugation, at every level.
    pub fn galois_keys(
        &mut self,
        sk: &SecretKey,
        steps: &[i64],
        conjugation: bool,
    ) -> Result<GaloisKeys> {
        let top = self.params.max_level();
        let mut elements: Vec<(usize, usize)> = steps
            .iter()
            .map(|&k| (self.params.galois_element(k), top))
            .collect();
        if conjugation {
            elements.push((self.params.conjugation_element(), top));
        }
        self.galois_keys_for(sk, elements)
    }

    /// Galois keys for rotations by each step of `(step, level)`, each switching ciphertexts
    /// up to that level only: a key for level l holds `[P, Q_l]` in the digits of level l, so
    /// keys for the rotations a plan makes after its first rescales are smaller (see
    /// [`LatencyNetwork::rotation_levels`](crate::nn::LatencyNetwork::rotation_levels)). A
    /// step listed twice gets the higher level.
    pub fn galois_keys_up_to(
        &mut self,
        sk: &SecretKey,
        steps: &[(i64, usize)],
    ) -> Result<GaloisKeys> {
        let top = self.params.max_level();
        if let Some(&(step, level)) = steps.iter().find(|(_, level)| *level > top) {
            return Err(Error::Config(format!(
                "a Galois key for rotation by {step} up to level {level}: the parameters have \
                 {top} levels"
            )));
        }
        let elements = steps
            .iter()
            .map(|&(k, level)| (self.params.galois_element(k), level))
            .collect();
        self.galois_keys_for(sk, elements)
    }

    /// The keys of `(element, level)`, one per element at its highest level, made in parallel,
    /// each from its own ChaCha20 stream of one seed drawn from the generator, so they do not
    /// depend on the thread count.
    fn galois_keys_for(
        &mut self,
        sk: &SecretKey,
        mut elements: Vec<(usize, usize)>,
    ) -> Result<GaloisKeys> {
        use rayon::prelude::*;
        self.params.check_id(sk.params_id, "secret key")?;
        let mut highest = BTreeMap::new();
        for &(g, level) in &elements {
            let at = highest.entry(g).or_insert(level);
            *at = (*at).max(level);
        }
        let mut seen = std::collections::BTreeSet::new();
        elements.retain(|(g, _)| seen.insert(*g));
        // The seed of every key's error: wiped when the keys are made. The masks' seeds are
        // public (each key sends its own instead of its masks).
        let seed = zeroize::Zeroizing::new(self.sampler.bytes::<32>());
        let mask_seeds: Vec<[u8; 32]> = elements.iter().map(|_| self.sampler.bytes()).collect();
        let params = &self.params;
        let keys = (elements.par_iter().zip(&mask_seeds).enumerate())
            .map(|(i, (&(g, _), mask_seed))| {
                let mut rng = stream(&seed, i as u64);
                let mut masks = stream(mask_seed, 0);
                let sg = automorphism_host(params.ring_keys(), &sk.ntt, g);
                let level = highest[&g];
                let mut key = switching_key(params, sk, sg, (Some(g), level), &mut |ring| {
                    let a = uniform_words(&mut masks, ring);
                    let e = gaussian(&mut rng, ring.degree());
                    Ok((a, ntt_host(ring, &small_to_words(ring, &e))?))
                })?;
                key.mask_seed = Some(*mask_seed);
                Ok((g, key))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        Ok(GaloisKeys { keys })
    }

    /// A uniform mask (NTT domain) and a Gaussian error (moved to the NTT domain).
    fn mask_and_error(&mut self, ring: &Arc<crate::math::Ring>) -> Result<(Vec<u32>, Vec<u32>)> {
        let a = self.sampler.uniform(ring);
        let e = self.sampler.gaussian(ring.degree());
        let e = ntt_host(ring, &small_to_words(ring, &e))?;
        Ok((a, e))
    }
}

/// Where a switching key's digits get their uniform mask and (NTT-domain) error.
type Draw<'a> = &'a mut dyn FnMut(&Arc<crate::math::Ring>) -> Result<(Vec<u32>, Vec<u32>)>;

/// A key from `s_prime` (NTT words over the key ring) to `sk` for ciphertexts up to `level`
/// (over `[P, Q_level]`, in that level's digits), each digit's mask and error from `draw`.
fn switching_key(
    params: &Arc<Parameters>,
    sk: &SecretKey,
    mut s_prime: Vec<u32>,
    (galois, level): (Option<usize>, usize),
    draw: Draw<'_>,
) -> Result<SwitchingKey> {
    let ring = params.ring_ext(level);
    let (n, alpha) = (ring.degree(), params.special_primes());
    let digits = params.digits(level);
    let p_product: Vec<u32> = (0..ring.limbs())
        .map(|l| {
            let m = ring.modulus(l);
            params
                .p_primes()
                .iter()
                .fold(1u32, |acc, &p| m.mul(acc, m.reduce(p)))
        })
        .collect();
    let (mut bs, mut as_) = (Vec::new(), Vec::new());
    for digit in &digits {
        let (a, e) = match draw(ring) {
            Ok(drawn) => drawn,
            Err(err) => {
                wipe(&mut s_prime);
                return Err(err);
            }
        };
        let mut b = minus_as_plus_e(ring, &a, &sk.ntt, &e);
        for q_limb in digit.clone() {
            let l = alpha + q_limb;
            let m = ring.modulus(l);
            for k in 0..n {
                let add = m.mul(p_product[l], s_prime[l * n + k]);
                b[l * n + k] = m.add(b[l * n + k], add);
            }
        }
        bs.extend(b);
        as_.extend(a);
    }
    wipe(&mut s_prime);
    bs.extend(as_);
    Ok(SwitchingKey {
        params_id: params.id(),
        key_set: sk.key_set,
        galois,
        level,
        digits: digits.len(),
        words: bs,
        mask_seed: None,
    })
}

/// The forward NTT of one host polynomial, in a plain vector the caller owns (and wipes when
/// it holds secrets): secret material never enters the CPU backend's recycled buffers.
pub(crate) fn ntt_host(ring: &Arc<crate::math::Ring>, words: &[u32]) -> Result<Vec<u32>> {
    ring.check_words(1, words)?;
    let mut x = words.to_vec();
    for (plan, row) in ring.plans().iter().zip(x.chunks_exact_mut(ring.degree())) {
        plan.forward(row);
    }
    Ok(x)
}

/// `X → X^g` of one NTT-domain host polynomial, in a plain vector (see [`ntt_host`]).
fn automorphism_host(ring: &crate::math::Ring, words: &[u32], g: usize) -> Vec<u32> {
    let n = ring.degree();
    let log_n = n.trailing_zeros();
    let index: Vec<usize> = (0..n)
        .map(|i| crate::math::automorphism_source(log_n, g, i))
        .collect();
    words
        .chunks_exact(n)
        .flat_map(|row| index.iter().map(move |&i| row[i]))
        .collect()
}

/// `−a·s + e`, word by word (NTT domain), over the first limbs of `s` that `ring` has.
pub(crate) fn minus_as_plus_e(
    ring: &crate::math::Ring,
    a: &[u32],
    s: &[u32],
    e: &[u32],
) -> Vec<u32> {
    let n = ring.degree();
    (0..ring.poly_words())
        .map(|i| {
            let m = ring.modulus(i / n);
            m.sub(e[i], m.mul(a[i], s[i]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::Preset;

    /// Each Galois key comes from its own stream of one seed: the same words on one thread or
    /// two, one key per distinct element.
    #[test]
    fn galois_keys_do_not_depend_on_the_thread_count() {
        let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
        let make = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut kg = KeyGenerator::new(&params, Seed::from_u64(5));
                let sk = kg.secret_key().unwrap();
                kg.galois_keys(&sk, &[1, 2, -3, 1], true).unwrap()
            })
        };
        let (one, two) = (make(1), make(2));
        assert_eq!(one.elements().len(), 4);
        assert_eq!(one.elements(), two.elements());
        for (g, key) in &one.keys {
            assert!(key.words == two.keys[g].words, "element {g}");
        }
        let first = one.keys.values().next().unwrap();
        assert!(one.keys.values().skip(1).all(|k| k.words != first.words));
    }

    /// A Galois key made for level 2 is the top-level key's size times (digits × limbs) of
    /// level 2 over the top's, rotates a ciphertext at level 2 (and below) as the full key
    /// does, refuses one at level 3, and keeps its level through the byte format.
    #[test]
    fn galois_keys_for_lower_levels_are_smaller_and_refuse_higher_ones() {
        use crate::backend::{Backend, CpuBackend};
        use crate::ckks::{Decryptor, Encoder, Encryptor, Evaluator};
        let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
        let mut kg = KeyGenerator::new(&params, Seed::from_u64(6));
        let sk = kg.secret_key().unwrap();
        let keys = EvaluationKeys {
            relin: None,
            galois: kg
                .galois_keys_up_to(&sk, &[(1, 2), (1, 1), (3, 5)])
                .unwrap(),
        };
        let g1 = params.galois_element(1);
        assert_eq!(
            (keys.galois.level(g1), keys.galois.keys.len()),
            (Some(2), 2)
        );
        let full = kg.galois_keys(&sk, &[1], false).unwrap();
        let (low, top) = (&keys.galois.keys[&g1], &full.keys[&g1]);
        let size =
            |level: usize| params.digits(level).len() * (params.special_primes() + level + 1);
        assert_eq!(low.words.len() * size(5), top.words.len() * size(2));
        assert!(kg.galois_keys_up_to(&sk, &[(1, 6)]).is_err());

        let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(Some(1)).unwrap());
        let back = EvaluationKeys::from_bytes(&keys.to_bytes(&params).unwrap(), &params).unwrap();
        assert_eq!(back.galois.level(g1), Some(2));
        let ev = Evaluator::new(&params, cpu.clone(), &back).unwrap();
        let encoder = Encoder::new(&params);
        let x: Vec<f64> = (0..params.slots()).map(|i| (i % 5) as f64 / 8.0).collect();
        let pt = encoder
            .encode(&x, params.max_level(), params.default_scale(), &*cpu)
            .unwrap();
        let enc = Encryptor::with_secret_key(&params, &sk, cpu.clone(), Seed::from_u64(7)).unwrap();
        let ct = enc.encrypt(&pt).unwrap();
        let e = ev.rotate(&ev.drop_level(&ct, 3).unwrap(), 1).unwrap_err();
        assert!(
            matches!(e, Error::MissingKey(_)) && e.to_string().contains("up to level 2"),
            "{e}"
        );
        let decryptor = Decryptor::new(&params, &sk).unwrap();
        for level in [2, 0] {
            let moved = ev.rotate(&ev.drop_level(&ct, level).unwrap(), 1).unwrap();
            let got = encoder
                .decode(&decryptor.decrypt(&moved, &*cpu).unwrap())
                .unwrap();
            for (i, g) in got.iter().enumerate().take(64) {
                assert!(
                    (g - x[(i + 1) % x.len()]).abs() < 1e-2,
                    "level {level} slot {i}"
                );
            }
        }
    }
}
