//! Integer math: no I/O, no GPU. Moduli, primes, NTT plans, RNS bases.

pub mod degree;
pub mod modulus;
pub mod ntt;
pub mod primes;
mod ring;
pub mod rns;

pub use degree::check_degree;
pub use modulus::Modulus;
pub use ntt::{NttPlan, bit_reverse, negacyclic_root};
pub use primes::{is_prime, ntt_primes};
pub use ring::Ring;
pub use rns::{BaseConverter, RnsBasis};
