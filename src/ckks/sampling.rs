//! Randomness for keys and encryption: a ChaCha20 CSPRNG seeded from the OS, or from an explicit
//! seed for reproducible tests. Secrets are ternary, errors a rounded Gaussian (σ = 3.2, cut at
//! 6σ), masks uniform modulo each prime.

// The masks' and the small polynomials' words come from the host twins of the sampling
// kernels, so that a GPU draws the same ones.
use crate::backend::cpu::sampling::{fill_uniform, small_into};
pub(crate) use crate::backend::cpu::sampling::{seeded_mask_into, stream};
use crate::math::Ring;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroize;

/// Standard deviation of the error distribution (HomomorphicEncryption.org standard).
pub const ERROR_STD_DEV: f64 = 3.2;

/// Where a key generator or encryptor draws its randomness from.
#[derive(Clone, Copy, Debug)]
pub enum Seed {
    /// Fresh entropy from the operating system: the only choice for real data.
    Os,
    /// A fixed 32-byte seed: reproducible, for tests and for comparing devices.
    Fixed([u8; 32]),
}

impl Seed {
    /// A fixed seed from a small number (tests).
    pub fn from_u64(v: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&v.to_le_bytes());
        Seed::Fixed(s)
    }
}

pub(crate) struct Sampler {
    rng: ChaCha20Rng,
}

impl Sampler {
    pub fn new(seed: Seed) -> Self {
        let rng = match seed {
            Seed::Os => ChaCha20Rng::from_os_rng(),
            Seed::Fixed(s) => ChaCha20Rng::from_seed(s),
        };
        Self { rng }
    }

    /// Uniform ternary coefficients in {-1, 0, 1}.
    pub fn ternary(&mut self, n: usize) -> Vec<i8> {
        ternary(&mut self.rng, n)
    }

    /// Rounded Gaussian coefficients, σ = 3.2, cut at 6σ.
    pub fn gaussian(&mut self, n: usize) -> Vec<i8> {
        gaussian(&mut self.rng, n)
    }

    /// Uniform random bytes.
    pub fn bytes<const K: usize>(&mut self) -> [u8; K] {
        let mut out = [0u8; K];
        self.rng.fill(&mut out[..]);
        out
    }

    /// Uniform words modulo each limb's prime: one polynomial of `ring`.
    pub fn uniform(&mut self, ring: &Ring) -> Vec<u32> {
        uniform_words(&mut self.rng, ring)
    }
}

/// Uniform ternary coefficients in {-1, 0, 1} from `rng`.
pub(crate) fn ternary(rng: &mut impl Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.random_range(-1i8..=1)).collect()
}

/// Rounded Gaussian coefficients from `rng`, σ = 3.2, cut at 6σ.
pub(crate) fn gaussian(rng: &mut impl Rng, n: usize) -> Vec<i8> {
    let bound = (6.0 * ERROR_STD_DEV).ceil();
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // Box–Muller gives two independent normals per draw: both are used. u1 in (0, 1] so
        // the logarithm is finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt() * ERROR_STD_DEV;
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        for z in [r * cos, r * sin] {
            let v = z.round();
            if v.abs() <= bound {
                out.push(v as i8);
            }
        }
    }
    out.truncate(n);
    out
}

/// Small signed coefficients as the words of one polynomial of `ring` (coefficient domain).
pub(crate) fn small_to_words(ring: &Ring, coeffs: &[i8]) -> Vec<u32> {
    let mut words = vec![0u32; ring.poly_words()];
    small_into(ring, coeffs, &mut words);
    words
}

/// Uniform words modulo each limb's prime from `rng`: one polynomial of `ring`.
pub(crate) fn uniform_words(rng: &mut impl Rng, ring: &Ring) -> Vec<u32> {
    let mut words = vec![0u32; ring.poly_words()];
    fill_uniform(rng, ring, &mut words);
    words
}

/// Overwrites secret words before they are freed.
pub(crate) fn wipe(words: &mut Vec<u32>) {
    words.zeroize();
}
