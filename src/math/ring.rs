//! A ring `Z_Q[X]/(X^N + 1)` in RNS form: the degree, the primes of the limbs, their NTT plans.

use crate::math::{Modulus, NttPlan, check_degree, is_prime};
use crate::{Error, ParamsError, Result};
use std::sync::Arc;

/// The ring every polynomial of a [`PolyBatch`](crate::backend::PolyBatch) lives in. Limb `l` of a
/// polynomial is its residue modulo `primes()[l]`.
#[derive(Debug)]
pub struct Ring {
    n: usize,
    plans: Vec<Arc<NttPlan>>,
}

/// Words from which [`Ring::check_words`] checks on every thread.
const PARALLEL_WORDS: usize = 1 << 22;

impl Ring {
    /// Builds the ring for degree `n` over distinct NTT-friendly primes below 2^31.
    pub fn new(n: usize, primes: &[u32]) -> Result<Arc<Self>> {
        check_degree(n)?;
        if primes.is_empty() {
            return Err(Error::Shape("a ring needs at least one prime".into()));
        }
        let mut plans = Vec::with_capacity(primes.len());
        for (i, &p) in primes.iter().enumerate() {
            if primes[..i].contains(&p) {
                return Err(Error::Params(ParamsError::BadModulus {
                    p: p.into(),
                    why: "it appears twice in the ring",
                }));
            }
            if !is_prime(p) {
                return Err(Error::Params(ParamsError::BadModulus {
                    p: p.into(),
                    why: "it is not prime",
                }));
            }
            plans.push(Arc::new(NttPlan::new(n, p)?));
        }
        Ok(Arc::new(Self { n, plans }))
    }

    /// The ring over a subset of this ring's limbs (for example a lower CKKS level), sharing plans.
    pub fn sub_ring(&self, limbs: std::ops::Range<usize>) -> Result<Arc<Self>> {
        if limbs.is_empty() || limbs.end > self.plans.len() {
            return Err(Error::Shape(format!(
                "limbs {limbs:?} of a ring with {} limbs",
                self.plans.len()
            )));
        }
        Ok(Arc::new(Self {
            n: self.n,
            plans: self.plans[limbs].to_vec(),
        }))
    }

    /// The ring over the listed limbs of this ring, in that order, sharing plans.
    pub fn select(&self, limbs: &[usize]) -> Result<Arc<Self>> {
        if limbs.is_empty() || limbs.iter().any(|&l| l >= self.plans.len()) {
            return Err(Error::Shape(format!(
                "limbs {limbs:?} of a ring with {} limbs",
                self.plans.len()
            )));
        }
        for (i, l) in limbs.iter().enumerate() {
            if limbs[..i].contains(l) {
                return Err(Error::Shape(format!("limb {l} selected twice")));
            }
        }
        Ok(Arc::new(Self {
            n: self.n,
            plans: limbs.iter().map(|&l| self.plans[l].clone()).collect(),
        }))
    }

    /// This ring's limbs repeated `times` times: `times` polynomials of this ring, laid out one
    /// after the other, are one polynomial of the result. It lets a ciphertext (two or three
    /// polynomials) go through word-wise and linear operations as a single polynomial. Only
    /// operations that treat limbs independently (not base conversion) accept repeated primes.
    pub fn repeat(&self, times: usize) -> Result<Arc<Self>> {
        if times == 0 {
            return Err(Error::Shape("a ring repeated zero times".into()));
        }
        Ok(Arc::new(Self {
            n: self.n,
            plans: (0..times)
                .flat_map(|_| self.plans.iter().cloned())
                .collect(),
        }))
    }

    /// Ring degree N.
    pub fn degree(&self) -> usize {
        self.n
    }

    /// Number of RNS limbs.
    pub fn limbs(&self) -> usize {
        self.plans.len()
    }

    /// Words in one polynomial (all limbs).
    pub fn poly_words(&self) -> usize {
        self.n * self.plans.len()
    }

    /// The NTT plans, one per limb.
    pub fn plans(&self) -> &[Arc<NttPlan>] {
        &self.plans
    }

    /// The modulus of limb `l`.
    pub fn modulus(&self, l: usize) -> Modulus {
        self.plans[l].modulus()
    }

    /// The primes, in limb order.
    pub fn primes(&self) -> Vec<u32> {
        self.plans.iter().map(|p| p.modulus().value()).collect()
    }

    /// Whether two rings have the same degree and primes (and so accept each other's data).
    pub fn same_as(&self, other: &Ring) -> bool {
        self.n == other.n && self.primes() == other.primes()
    }

    /// Checks per-limb scalars laid out `[…][limb]`: word `i` must be below limb `i mod limbs`'s
    /// prime (weights, sparse-layer terms, per-limb constants).
    pub(crate) fn check_limb_words(&self, words: &[u32]) -> Result<()> {
        for (i, &w) in words.iter().enumerate() {
            let p = self.modulus(i % self.limbs()).value();
            if w >= p {
                return Err(Error::Unreduced {
                    index: i,
                    word: w,
                    p,
                });
            }
        }
        Ok(())
    }

    /// Checks that `words` holds `batch` polynomials of this ring, every word below its prime.
    pub fn check_words(&self, batch: usize, words: &[u32]) -> Result<()> {
        if words.len() != batch * self.poly_words() {
            return Err(Error::Shape(format!(
                "{} words given for {batch} polynomials of {} limbs × {} coefficients",
                words.len(),
                self.limbs(),
                self.n
            )));
        }
        let check = |(row, chunk): (usize, &[u32])| {
            let p = self.modulus(row % self.limbs()).value();
            // The maximum first: it vectorises, where a search for the first bad word does not.
            if chunk.iter().copied().max().unwrap_or(0) < p {
                return Ok(());
            }
            match chunk.iter().position(|&w| w >= p) {
                Some(i) => Err(Error::Unreduced {
                    index: row * self.n + i,
                    word: chunk[i],
                    p,
                }),
                None => Ok(()),
            }
        };
        // A request's ciphertexts are a gigabyte of words: checked on every thread (the first
        // bad row found is reported, not necessarily the first in order).
        if words.len() >= PARALLEL_WORDS {
            use rayon::prelude::*;
            words
                .par_chunks_exact(self.n)
                .enumerate()
                .try_for_each(check)
        } else {
            words.chunks_exact(self.n).enumerate().try_for_each(check)
        }
    }
}
