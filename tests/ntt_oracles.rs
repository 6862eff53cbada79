//! The CPU NTT against first principles: schoolbook negacyclic convolution, the textbook loops
//! over hegpu's own tables, and tfhe-ntt's prime32 plan.

mod common;

use common::{mixed_ring, random_words, rng};
use hegpu::backend::{Backend, CpuBackend};
use hegpu::math::{NttPlan, ntt_primes};
use rand::Rng;

fn schoolbook(a: &[u32], b: &[u32], p: u32) -> Vec<u32> {
    let n = a.len();
    let p64 = u64::from(p);
    let mut acc = vec![0u64; n];
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            let prod = u64::from(x) * u64::from(y) % p64;
            let k = (i + j) % n;
            acc[k] = if i + j < n {
                (acc[k] + prod) % p64
            } else {
                (acc[k] + p64 - prod) % p64
            };
        }
    }
    acc.into_iter().map(|x| x as u32).collect()
}

#[test]
fn ntt_product_equals_schoolbook_convolution() {
    let cpu = CpuBackend::new(None).unwrap();
    for (n, limbs, seed) in [(1 << 10, 3, 1), (1 << 11, 2, 2)] {
        let ring = mixed_ring(n, limbs);
        let (wa, wb) = (
            random_words(&ring, 1, seed),
            random_words(&ring, 1, seed + 100),
        );
        let (mut a, mut b) = (
            cpu.upload(&ring, 1, &wa).unwrap(),
            cpu.upload(&ring, 1, &wb).unwrap(),
        );
        cpu.ntt_forward(&mut a).unwrap();
        cpu.ntt_forward(&mut b).unwrap();
        let mut c = cpu.mul(&a, &b).unwrap();
        cpu.ntt_inverse(&mut c).unwrap();
        let got = cpu.download(&c).unwrap();
        for l in 0..limbs {
            let p = ring.modulus(l).value();
            let want = schoolbook(&wa[l * n..(l + 1) * n], &wb[l * n..(l + 1) * n], p);
            assert_eq!(&got[l * n..(l + 1) * n], &want[..], "n={n} limb={l} p={p}");
        }
    }
}

#[test]
fn engine_equals_textbook_loops_and_tfhe_ntt() {
    let mut r = rng(7);
    for log_n in 10..=16 {
        let n = 1usize << log_n;
        let bit_sizes: &[u32] = if log_n == 16 {
            &[31]
        } else {
            &[20, 24, 30, 31]
        };
        for &bits in bit_sizes {
            let p = ntt_primes(n, bits, 1, &[]).unwrap()[0];
            let plan = NttPlan::new(n, p).unwrap();
            let mut x: Vec<u32> = (0..n).map(|_| r.random_range(0..p)).collect();
            x[0] = p - 1;
            x[n - 1] = 0;
            let (mut fast, mut slow, mut peer) = (x.clone(), x.clone(), x.clone());
            plan.forward(&mut fast);
            plan.forward_reference(&mut slow);
            let tfhe = tfhe_ntt::prime32::Plan::try_new(n, p).unwrap();
            tfhe.fwd(&mut peer);
            assert_eq!(fast, slow, "forward engine vs textbook, n={n} p={p}");
            assert_eq!(fast, peer, "forward vs tfhe-ntt, n={n} p={p}");
            assert!(fast.iter().all(|&w| w < p));
            plan.inverse(&mut fast);
            plan.inverse_reference(&mut slow);
            assert_eq!(fast, x, "round trip, n={n} p={p}");
            assert_eq!(slow, x, "textbook round trip, n={n} p={p}");
        }
    }
}

#[test]
fn forward_output_is_evaluation_at_odd_powers_in_bit_reversed_order() {
    // Position i of the forward transform holds a(ψ^(2·brv(i)+1)): checked by Horner in u64.
    let n = 1 << 10;
    let p = ntt_primes(n, 30, 1, &[]).unwrap()[0];
    let plan = NttPlan::new(n, p).unwrap();
    let m = plan.modulus();
    let mut r = rng(3);
    let a: Vec<u32> = (0..n).map(|_| r.random_range(0..p)).collect();
    let mut t = a.clone();
    plan.forward(&mut t);
    for i in [0, 1, 2, 77, n / 2, n - 1] {
        let x = m.pow(plan.root(), 2 * hegpu::math::bit_reverse(i, 10) as u64 + 1);
        let value = a.iter().rev().fold(0u32, |acc, &c| m.add(m.mul(acc, x), c));
        assert_eq!(t[i], value, "position {i}");
    }
}
