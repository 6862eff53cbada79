//! The ring degrees hegpu supports, checked in one place (primes, NTT plans and rings all
//! start here).

use crate::{Error, ParamsError, Result};

/// Smallest supported ring degree.
pub const MIN_DEGREE: usize = 1 << 10;
/// Largest supported ring degree.
pub const MAX_DEGREE: usize = 1 << 16;

/// Checks that `n` is a power of two in `[2^10, 2^16]`.
pub fn check_degree(n: usize) -> Result<()> {
    if n.is_power_of_two() && (MIN_DEGREE..=MAX_DEGREE).contains(&n) {
        Ok(())
    } else {
        Err(Error::Params(ParamsError::BadDegree { n }))
    }
}
