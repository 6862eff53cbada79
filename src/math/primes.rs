//! NTT-friendly primes: deterministic generation with proven primality for 32-bit words.

use super::degree::check_degree;
use crate::{Error, ParamsError, Result};

/// Primality of a 32-bit integer. Miller–Rabin with the bases 2, 7 and 61 has no false positive
/// below 4,759,123,141 (Jaeschke 1993), so for `u32` this is a proof, not a guess.
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    for small in [2u32, 3, 5, 7, 11, 13, 61] {
        if n.is_multiple_of(small) {
            return n == small;
        }
    }
    let n64 = u64::from(n);
    let pow = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        b %= n64;
        while e > 0 {
            if e & 1 == 1 {
                r = r * b % n64;
            }
            b = b * b % n64;
            e >>= 1;
        }
        r
    };
    let (mut d, mut s) = (n64 - 1, 0);
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    [2u64, 7, 61].iter().all(|&a| {
        let mut x = pow(a, d);
        if x == 1 || x == n64 - 1 {
            return true;
        }
        for _ in 1..s {
            x = x * x % n64;
            if x == n64 - 1 {
                return true;
            }
        }
        false
    })
}

/// The `count` largest primes of exactly `bits` bits with `p ≡ 1 (mod 2n)`, largest first,
/// skipping any listed in `exclude`. Deterministic: the same arguments give the same primes.
pub fn ntt_primes(n: usize, bits: u32, count: usize, exclude: &[u32]) -> Result<Vec<u32>> {
    check_degree(n)?;
    let two_n = 2 * n as u64;
    if bits > 31 || (1u64 << bits) <= two_n + 1 {
        return Err(Error::Params(ParamsError::BadModulus {
            p: 1u64 << bits.min(63),
            why: "prime size must be at most 31 bits and leave room for p ≡ 1 (mod 2N)",
        }));
    }
    let low = 1u64 << (bits - 1);
    // Largest candidate below 2^bits that is 1 mod 2N.
    let mut candidate = ((1u64 << bits) - 1) / two_n * two_n + 1;
    let mut primes = Vec::with_capacity(count);
    while primes.len() < count && candidate > low {
        let c = candidate as u32;
        if is_prime(c) && !exclude.contains(&c) {
            primes.push(c);
        }
        candidate -= two_n;
    }
    if primes.len() < count {
        return Err(Error::Params(ParamsError::NotEnoughPrimes {
            n,
            bits,
            wanted: count,
            found: primes.len(),
        }));
    }
    Ok(primes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial_division(n: u32) -> bool {
        n >= 2
            && (2..)
                .take_while(|d: &u32| u64::from(*d) * u64::from(*d) <= u64::from(n))
                .all(|d| !n.is_multiple_of(d))
    }

    #[test]
    fn primality_agrees_with_trial_division() {
        for n in (0..20_000)
            .chain((1 << 31) - 5_000..(1 << 31) + 5_000)
            .chain(u32::MAX - 3000..=u32::MAX)
        {
            assert_eq!(is_prime(n), trial_division(n), "{n}");
        }
        // Strong pseudoprimes to some of the bases are still rejected.
        for composite in [2047u32, 1373653, 25326001, 3215031751, 4_294_967_291 - 2] {
            assert_eq!(
                is_prime(composite),
                trial_division(composite),
                "{composite}"
            );
        }
    }

    #[test]
    fn generated_primes_are_ntt_friendly_and_sized() {
        for (n, bits) in [
            (1 << 10, 20),
            (1 << 13, 24),
            (1 << 13, 30),
            (1 << 14, 31),
            (1 << 16, 31),
        ] {
            let ps = ntt_primes(n, bits, 4, &[]).unwrap();
            assert_eq!(ps.len(), 4);
            for w in ps.windows(2) {
                assert!(w[0] > w[1]);
            }
            for &p in &ps {
                assert!(trial_division(p));
                assert_eq!(u64::from(p) % (2 * n as u64), 1);
                assert_eq!(32 - p.leading_zeros(), bits);
            }
            let more = ntt_primes(n, bits, 2, &ps[..1]).unwrap();
            assert_eq!(more, ps[1..3]);
        }
    }

    #[test]
    fn impossible_requests_are_errors() {
        assert!(ntt_primes(1 << 16, 17, 1, &[]).is_err());
        assert!(ntt_primes(1 << 13, 32, 1, &[]).is_err());
        assert!(ntt_primes(1000, 30, 1, &[]).is_err());
        assert!(matches!(
            ntt_primes(1 << 16, 20, 1000, &[]),
            Err(Error::Params(ParamsError::NotEnoughPrimes { .. }))
        ));
    }
}
