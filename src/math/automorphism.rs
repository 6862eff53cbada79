//! Galois automorphisms `X → X^g` of the negacyclic ring, in the NTT domain the backends share.

use crate::{Error, Result};

/// The NTT-domain source of output position `i` under `X → X^g`: forward outputs sit in
/// bit-reversed order, position `i` holding the evaluation at `ψ^(2·brv(i)+1)`, and
/// `σ_g(a)(ψ^e) = a(ψ^(e·g))`. The WGSL kernel computes the same index with `reverseBits`.
pub(crate) fn automorphism_source(log_n: u32, g: usize, i: usize) -> usize {
    let two_n_mask = (2usize << log_n) - 1;
    let brv = |v: usize| v.reverse_bits() >> (usize::BITS - log_n);
    let e = ((2 * brv(i) + 1) * g) & two_n_mask;
    brv((e - 1) / 2)
}

/// Checks a Galois element for degree `n`: odd and below 2N.
pub(crate) fn check_galois_element(n: usize, g: usize) -> Result<()> {
    if g.is_multiple_of(2) || g >= 2 * n {
        return Err(Error::Shape(format!(
            "Galois element {g} is not an odd number below 2N = {}",
            2 * n
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::{NttPlan, ntt_primes};

    #[test]
    fn automorphism_source_permutes_evaluations() {
        // a(X) = X: forward position i holds ψ^(2 brv(i) + 1); σ_g(X) = X^g holds its g-th power.
        let n = 1 << 10;
        let p = ntt_primes(n, 30, 1, &[]).unwrap()[0];
        let plan = NttPlan::new(n, p).unwrap();
        let mut x = vec![0u32; n];
        x[1] = 1;
        plan.forward(&mut x);
        for g in [3usize, 5, 25, 2 * n - 1] {
            let mut xg = vec![0u32; n];
            // X^g in the negacyclic ring: X^(g mod 2N) with a sign flip past N.
            if g < n {
                xg[g] = 1;
            } else {
                xg[g - n] = p - 1;
            }
            plan.forward(&mut xg);
            for i in 0..n {
                assert_eq!(xg[i], x[automorphism_source(10, g, i)], "g = {g}, i = {i}");
            }
        }
    }

    #[test]
    fn galois_elements_are_odd_and_below_2n() {
        assert!(check_galois_element(8, 3).is_ok());
        assert!(check_galois_element(8, 15).is_ok());
        assert!(check_galois_element(8, 4).is_err());
        assert!(check_galois_element(8, 17).is_err());
    }
}
