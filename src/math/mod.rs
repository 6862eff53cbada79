//! Integer math: no I/O, no GPU. Moduli, primes, NTT plans, RNS bases.

mod automorphism;
pub(crate) mod degree;
pub(crate) mod modulus;
pub(crate) mod ntt;
pub(crate) mod primes;
mod ring;
pub(crate) mod rns;

pub(crate) use automorphism::{automorphism_source, check_galois_element};
pub use degree::check_degree;
pub use modulus::Modulus;
pub use ntt::{NttPlan, bit_reverse, negacyclic_root};
pub use primes::{is_prime, ntt_primes};
pub use ring::Ring;
pub use rns::{BaseConverter, RnsBasis};
