//! The sampling kernels (`shaders/sampling.wgsl`) against their definitions on the CPU (the
//! masks: ChaCha20 from `rand_chacha` with the polynomial's stream, word k the high word of
//! draws 2k and 2k + 1 (as one 64-bit number) times p in u128; small polynomials: each
//! coefficient reduced in i64), and GPU against CPU bit for bit, including batches split over
//! several small bindings.

mod common;

use common::{mixed_ring, on_every_device};
use hegpu::backend::Backend;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

#[test]
fn seeded_masks_are_rands_draws_from_each_polynomials_stream() {
    let seed: [u8; 32] = std::array::from_fn(|i| (i * 29 + 7) as u8);
    // Several degrees, limb counts and odd batches; streams from 0, from the middle, and
    // across 2^32 (the stream's high word carries).
    for (n, limbs, streams) in [
        (1 << 10, 1, 0..3u64),
        (1 << 10, 3, 5..12),
        (1 << 13, 5, 0..2),
        (1 << 10, 2, (1 << 32) - 2..(1 << 32) + 3),
    ] {
        let ring = mixed_ring(n, limbs);
        let what = format!("masks N = {n}, {limbs} limbs, streams {streams:?}");
        let words = on_every_device(&what, n, |b: &dyn Backend| {
            let masks = b.seeded_masks(&ring, &seed, streams.clone()).unwrap();
            b.download(&masks).unwrap()
        });
        for (k, poly) in words.chunks_exact(ring.poly_words()).enumerate() {
            let mut rng = ChaCha20Rng::from_seed(seed);
            rng.set_stream(streams.start + k as u64);
            for (l, row) in poly.chunks_exact(n).enumerate() {
                let p = ring.modulus(l).value();
                for &w in row {
                    // Word k from draws 2k and 2k + 1: ⌊(x·2^32 + y)·p / 2^64⌋.
                    let (x, y) = (u128::from(rng.next_u32()), u128::from(rng.next_u32()));
                    let want = ((x << 32 | y) * u128::from(p)) >> 64;
                    assert_eq!(u128::from(w), want, "{what}: polynomial {k} limb {l}");
                }
            }
        }
    }
}

#[test]
fn small_polynomials_are_their_coefficients_modulo_each_prime() {
    let mut r = common::rng(3);
    for (n, limbs, batch) in [(1 << 10, 3, 7), (1 << 13, 5, 2)] {
        let ring = mixed_ring(n, limbs);
        let mut coeffs: Vec<i8> = (0..batch * n).map(|_| r.random()).collect();
        // The edges of a byte, in the first polynomial and the last.
        coeffs[..4].copy_from_slice(&[i8::MIN, i8::MAX, 0, -1]);
        let last = coeffs.len() - 1;
        coeffs[last] = i8::MIN;
        let what = format!("small N = {n}, {limbs} limbs, {batch} polynomials");
        let words = on_every_device(&what, n, |b: &dyn Backend| {
            b.download(&b.small_polys(&ring, &coeffs).unwrap()).unwrap()
        });
        for (k, poly) in words.chunks_exact(ring.poly_words()).enumerate() {
            for (l, row) in poly.chunks_exact(n).enumerate() {
                let p = i64::from(ring.modulus(l).value());
                for (j, &w) in row.iter().enumerate() {
                    let c = i64::from(coeffs[k * n + j]);
                    assert_eq!(i64::from(w), c.rem_euclid(p), "{what}: {k}, {l}, {j}");
                }
            }
        }
    }
}

#[test]
fn sampling_refuses_empty_and_partial_inputs() {
    let ring = mixed_ring(1 << 10, 2);
    let cpu = hegpu::backend::CpuBackend::new(Some(1)).unwrap();
    let mut devices: Vec<&dyn Backend> = vec![&cpu];
    if let Some(g) = common::gpu() {
        devices.push(g);
    }
    for b in devices {
        assert!(b.seeded_masks(&ring, &[0; 32], 4..4).is_err());
        assert!(b.small_polys(&ring, &[]).is_err());
        assert!(b.small_polys(&ring, &[1; 1000]).is_err());
    }
}
