//! The RNS kernels (`shaders/rns.wgsl`) against oracles from first principles (u64 and big
//! integer arithmetic, coefficient-domain automorphisms) on the CPU, and GPU against CPU bit for
//! bit, including batches split over several small bindings.

mod common;

use common::{gpu, mixed_ring, on_every_device, random_words};
use hegpu::backend::GpuOptions;
use hegpu::backend::{Backend, CpuBackend, GpuBackend};
use hegpu::math::Ring;
use num_bigint::BigUint;
use std::sync::Arc;

#[test]
fn gather_copies_the_named_polynomials_and_limbs() {
    for (n, limbs, batch) in [(1 << 10, 3, 7), (1 << 13, 5, 3)] {
        let ring = mixed_ring(n, limbs);
        let words = random_words(&ring, batch, 1);
        let sources = [
            Some(2),
            None,
            Some(0),
            Some(batch - 1),
            Some(2),
            None,
            Some(1),
        ];
        for range in [0..limbs, 1..limbs - 1, limbs - 1..limbs] {
            let got = on_every_device("gather", n, |b| {
                let x = b.upload(&ring, batch, &words).unwrap();
                let y = b.gather(&x, &sources, range.clone()).unwrap();
                assert_eq!(y.ring().primes(), ring.primes()[range.clone()]);
                b.download(&y).unwrap()
            });
            let pw = range.len() * n;
            for (o, s) in sources.iter().enumerate() {
                let out = &got[o * pw..(o + 1) * pw];
                match s {
                    Some(s) => {
                        let at = s * ring.poly_words() + range.start * n;
                        assert_eq!(out, &words[at..at + pw]);
                    }
                    None => assert!(out.iter().all(|&w| w == 0)),
                }
            }
        }
    }
}

/// The centered value of limbs `digit` of coefficient `k` of `poly`, and their product S.
fn digit_value(
    ring: &Ring,
    words: &[u32],
    poly: usize,
    digit: std::ops::Range<usize>,
    k: usize,
) -> (BigUint, BigUint, bool) {
    let n = ring.degree();
    let primes: Vec<u32> = ring.primes()[digit.clone()].to_vec();
    let basis = hegpu::math::RnsBasis::new(&primes).unwrap();
    let residues: Vec<u32> = digit
        .map(|l| words[poly * ring.poly_words() + l * n + k])
        .collect();
    let x = basis.compose(&residues).unwrap();
    let s = basis.product();
    // The centered representative is x − S from ⌈S/2⌉ on.
    let negative = x >= &s - (&s >> 1u32);
    (x, s, negative)
}

#[test]
fn base_convert_gives_the_centered_value_plus_a_small_multiple() {
    let n = 1 << 10;
    let ring = mixed_ring(n, 6);
    let (from, to_primes) = (ring.sub_ring(0..4).unwrap(), ring.primes()[2..].to_vec());
    let to = Ring::new(n, &to_primes).unwrap();
    let batch = 3;
    let words = random_words(&from, batch, 2);
    let digits = [0..2, 2..3, 0..4];
    let got = on_every_device("base_convert", n, |b| {
        let x = b.upload(&from, batch, &words).unwrap();
        let y = b.base_convert(&x, &digits, &to).unwrap();
        assert_eq!(y.batch(), digits.len() * batch);
        b.download(&y).unwrap()
    });
    for (d, digit) in digits.iter().enumerate() {
        for m in 0..batch {
            for k in (0..n).step_by(37).chain([0, 1, n - 1]) {
                let (x, s, negative) = digit_value(&from, &words, m, digit.clone(), k);
                let out = &got[(d * batch + m) * to.poly_words()..];
                let ok = (0..=digit.len() as u32).any(|u| {
                    to_primes.iter().enumerate().all(|(j, &t)| {
                        // x_c + u·S with x_c = x or x − S, reduced mod t: (x + (u + 1)·S − [neg]·S)
                        // minus S, kept non-negative.
                        let t = BigUint::from(t);
                        let lifted = &x + &s * (u + 1)
                            - if negative {
                                s.clone()
                            } else {
                                BigUint::from(0u32)
                            };
                        let v = lifted % &t;
                        let shift = &s % &t;
                        (v + &t - shift) % &t == BigUint::from(out[j * n + k])
                    })
                });
                assert!(ok, "digit {digit:?} poly {m} coefficient {k}");
            }
        }
    }
}

#[test]
fn automorphism_in_the_ntt_domain_is_x_to_the_g() {
    let n = 1 << 10;
    let ring = mixed_ring(n, 3);
    let batch = 2;
    let coeffs = random_words(&ring, batch, 3);
    for g in [5usize, 25, 3, 2 * n - 1, 1] {
        let got = on_every_device("automorphism", n, |b| {
            let mut x = b.upload(&ring, batch, &coeffs).unwrap();
            b.ntt_forward(&mut x).unwrap();
            let mut y = b.automorphism(&x, g).unwrap();
            b.ntt_inverse(&mut y).unwrap();
            b.download(&y).unwrap()
        });
        // Oracle: coefficient i goes to i·g mod 2N, negated past N.
        for row in 0..batch * ring.limbs() {
            let p = ring.modulus(row % ring.limbs()).value();
            for i in 0..n {
                let e = i * g % (2 * n);
                let (at, v) = (row * n + e % n, coeffs[row * n + i]);
                let expect = if e >= n && v != 0 { p - v } else { v };
                assert_eq!(got[at], expect, "g = {g} row {row} coefficient {i}");
            }
        }
    }
    let cpu = CpuBackend::new(Some(1)).unwrap();
    let x = cpu.upload(&ring, 1, &coeffs[..ring.poly_words()]).unwrap();
    assert!(cpu.automorphism(&x, 4).is_err());
    assert!(cpu.automorphism(&x, 2 * n + 1).is_err());
}

#[test]
fn scalar_affine_and_scaled_difference_equal_u64_arithmetic() {
    let n = 1 << 10;
    let ring = mixed_ring(n, 4);
    let batch = 5;
    let (a_words, b_src) = (random_words(&ring, batch, 4), random_words(&ring, batch, 5));
    let primes = ring.primes();
    let mul: Vec<u32> = primes.iter().map(|&p| p - 3).collect();
    let add: Vec<u32> = primes.iter().map(|&p| p / 2 + 1).collect();
    let got = on_every_device("scalar_affine", n, |b| {
        let x = b.upload(&ring, batch, &a_words).unwrap();
        b.download(&b.scalar_affine(&x, &mul, &add).unwrap())
            .unwrap()
    });
    for (i, &v) in got.iter().enumerate() {
        let l = (i / n) % ring.limbs();
        let p = u64::from(primes[l]);
        let want = (u64::from(a_words[i]) * u64::from(mul[l]) + u64::from(add[l])) % p;
        assert_eq!(u64::from(v), want);
    }
    // b over limbs 1..3 of a's ring.
    let sub = ring.sub_ring(1..3).unwrap();
    let b_words: Vec<u32> = (0..batch)
        .flat_map(|m| b_src[m * ring.poly_words() + n..m * ring.poly_words() + 3 * n].to_vec())
        .collect();
    let scale: Vec<u32> = vec![7, primes[2] - 1];
    let got = on_every_device("scaled_difference", n, |b| {
        let x = b.upload(&ring, batch, &a_words).unwrap();
        let y = b.upload(&sub, batch, &b_words).unwrap();
        b.download(&b.scaled_difference(&x, &y, 1, &scale).unwrap())
            .unwrap()
    });
    for (i, &v) in got.iter().enumerate() {
        let (m, l, k) = (i / (2 * n), (i / n) % 2, i % n);
        let p = u64::from(primes[l + 1]);
        let a = u64::from(a_words[m * ring.poly_words() + (l + 1) * n + k]);
        let want = (a + p - u64::from(b_words[i])) % p * u64::from(scale[l]) % p;
        assert_eq!(u64::from(v), want);
    }
    let cpu = CpuBackend::new(Some(1)).unwrap();
    let x = cpu.upload(&ring, batch, &a_words).unwrap();
    let y = cpu.upload(&sub, batch, &b_words).unwrap();
    assert!(
        cpu.scaled_difference(&x, &y, 0, &scale).is_err(),
        "wrong offset"
    );
    assert!(
        cpu.scalar_affine(&x, &mul[..2], &add).is_err(),
        "short scalars"
    );
    assert!(
        cpu.scalar_affine(&x, &primes, &add).is_err(),
        "unreduced scalar"
    );
}

/// Runs a folded operation (`op`) on every device, asserting equal words, and on GPUs of its
/// own (so that other tests' dispatches do not add to the counts) with the adapter's NTT tile
/// and with tiles of 1,024 words: the transform's passes must be its only dispatches, one up to
/// the tile and two beyond, and each backend counts `ntts` single-limb transforms. Counts are
/// read only on backends opened here: the shared ones count other tests' work too.
fn assert_folded(what: &str, n: usize, ntts: u64, op: impl Fn(&dyn Backend) -> Vec<u32>) {
    let got = on_every_device(what, n, &op);
    let cpu = CpuBackend::new(Some(2)).unwrap();
    op(&cpu);
    assert_eq!(cpu.ntt_count(), ntts, "{what} n={n}: CPU transforms");
    if gpu().is_none() {
        return;
    }
    for tile in [None, Some(1024)] {
        let g = GpuBackend::with_options(GpuOptions {
            max_ntt_tile: tile,
            ..Default::default()
        })
        .unwrap();
        let before = g.counts().dispatches;
        assert!(op(&g) == got, "{what} n={n} tile {tile:?}");
        assert_eq!(
            g.ntt_count(),
            ntts,
            "{what} n={n} tile {tile:?}: GPU transforms"
        );
        let passes = if n > tile.unwrap_or(n) { 2 } else { 1 };
        assert_eq!(
            g.counts().dispatches - before,
            passes,
            "{what} n={n} tile {tile:?}"
        );
    }
}

/// The GPU computes the conversion in the forward transform's first pass: equal to the
/// conversion then the transform (the CPU), on one pass and two, with the input in one chunk or
/// several (the small-binding GPU falls back).
#[test]
fn base_convert_ntt_equals_the_conversion_then_the_transform() {
    for (n, batch) in [(1 << 10, 3), (1 << 12, 2)] {
        let ring = mixed_ring(n, 5);
        let (from, to) = (ring.sub_ring(0..3).unwrap(), ring.sub_ring(1..5).unwrap());
        let words = random_words(&from, batch, 12);
        let digits = [0..1, 1..3, 2..3];
        let transforms = (digits.len() * batch * to.limbs()) as u64;
        assert_folded("base_convert_ntt", n, transforms, |b| {
            let x = b.upload(&from, batch, &words).unwrap();
            let y = b.base_convert_ntt(&x, &digits, &to).unwrap();
            b.download(&y).unwrap()
        });
    }
}

/// The GPU folds the difference into the forward transform's last pass: equal to the transform
/// then the difference (the CPU), on one pass and two, with the chunks of `a` and `b` lining up
/// or not (the small-binding GPU falls back).
#[test]
fn ntt_forward_scaled_difference_equals_the_transform_then_the_difference() {
    for (n, batch) in [(1 << 10, 5), (1 << 12, 3)] {
        let ring = mixed_ring(n, 5);
        let sub = ring.sub_ring(1..4).unwrap();
        let a_words = random_words(&ring, batch, 8);
        let b_words = random_words(&sub, batch, 9);
        let scale: Vec<u32> = sub.primes().iter().map(|&p| p - 2).collect();
        let transforms = (batch * sub.limbs()) as u64;
        assert_folded("ntt_forward_scaled_difference", n, transforms, |b| {
            let x = b.upload(&ring, batch, &a_words).unwrap();
            let y = b.upload(&sub, batch, &b_words).unwrap();
            let z = b.ntt_forward_scaled_difference(&x, y, 1, &scale).unwrap();
            b.download(&z).unwrap()
        });
    }
}

#[test]
fn key_mul_acc_equals_u64_sums() {
    for (n, limbs, m_count, digits) in [(1 << 10, 3, 5, 3), (1 << 13, 4, 1, 2)] {
        let ring: Arc<Ring> = mixed_ring(n, limbs);
        let ext = random_words(&ring, digits * m_count, 6);
        let key = random_words(&ring, 2 * digits, 7);
        let got = on_every_device("key_mul_acc", n, |b| {
            let e = b.upload(&ring, digits * m_count, &ext).unwrap();
            let k = b.upload(&ring, 2 * digits, &key).unwrap();
            b.download(&b.key_mul_acc(&e, &k, digits).unwrap()).unwrap()
        });
        let pw = ring.poly_words();
        for m in 0..m_count {
            for c in 0..2 {
                for w in (0..pw).step_by(13) {
                    let p = u64::from(ring.modulus(w / n).value());
                    let want = (0..digits).fold(0u64, |acc, d| {
                        let x = u64::from(ext[(d * m_count + m) * pw + w]);
                        (acc + x * u64::from(key[(c * digits + d) * pw + w]) % p) % p
                    });
                    assert_eq!(u64::from(got[(m * 2 + c) * pw + w]), want);
                }
            }
        }
    }
}

#[test]
fn tensor_of_ciphertext_pairs_equals_u64_products() {
    for (n, limbs, pairs) in [(1 << 10, 3, 5), (1 << 12, 2, 1)] {
        let ring = mixed_ring(n, limbs);
        let (a, b) = (
            random_words(&ring, 2 * pairs, 8),
            random_words(&ring, 2 * pairs, 9),
        );
        let got = on_every_device("tensor", n, |be| {
            let x = be.upload(&ring, 2 * pairs, &a).unwrap();
            let y = be.upload(&ring, 2 * pairs, &b).unwrap();
            be.download(&be.tensor(&x, &y).unwrap()).unwrap()
        });
        let pw = ring.poly_words();
        for m in 0..pairs {
            for w in (0..pw).step_by(7) {
                let p = u64::from(ring.modulus(w / n).value());
                let f = |v: &[u32], i: usize| u64::from(v[(2 * m + i) * pw + w]);
                let want = [
                    f(&a, 0) * f(&b, 0) % p,
                    (f(&a, 0) * f(&b, 1) % p + f(&a, 1) * f(&b, 0) % p) % p,
                    f(&a, 1) * f(&b, 1) % p,
                ];
                for (c, &v) in want.iter().enumerate() {
                    assert_eq!(u64::from(got[(3 * m + c) * pw + w]), v, "pair {m} part {c}");
                }
            }
        }
        let cpu = CpuBackend::new(Some(1)).unwrap();
        let odd = cpu.upload(&ring, 1, &a[..pw]).unwrap();
        assert!(cpu.tensor(&odd, &odd).is_err(), "an odd count is no pairs");
    }
}

#[test]
fn sparse_linear_layer_equals_u64_sums() {
    use hegpu::backend::SparseRows;
    // Rows 0..4 read the same inputs, so they are summed as one tile on the CPU, and rows 5 and
    // 7 (where there are 9 outputs) as another, apart from the rows between them; the second
    // layer has a bias and 31-bit primes, which fold after every two terms.
    for (n, limbs, inputs, outputs, with_bias) in [
        (1 << 10, 3, 9, 7, false),
        (1 << 12, 2, 4, 3, true),
        (1 << 10, 4, 40, 9, true),
    ] {
        let ring = mixed_ring(n, limbs);
        // Input 0 and every even row's words are p − 1: the largest sums the folds must hold.
        let mut x = random_words(&ring, inputs, 10);
        for (w, v) in x[..ring.poly_words()].iter_mut().enumerate() {
            *v = ring.modulus(w / n).value() - 1;
        }
        // Row j reads every other input, or inputs j, j+2, j+5 (mod K); the last row nothing.
        let mut rows = SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        let mut r = common::rng(11);
        for j in 0..outputs {
            let columns: Vec<usize> = match j {
                _ if j + 1 == outputs => vec![],
                0 | 1 | 2 | 3 | 5 | 7 => (0..inputs).step_by(2).collect(),
                _ => vec![j % inputs, (j + 2) % inputs, (j + 5) % inputs],
            };
            {
                for k in columns {
                    rows.columns.push(k);
                    for l in 0..limbs {
                        let p = ring.modulus(l).value();
                        let word = if j % 2 == 0 {
                            p - 1
                        } else {
                            rand::Rng::random_range(&mut r, 0..p)
                        };
                        rows.words.push(word);
                    }
                }
            }
            rows.offsets.push(rows.columns.len());
            if with_bias {
                for l in 0..limbs {
                    let p = ring.modulus(l).value();
                    rows.bias.push(if j == 1 {
                        p - 1
                    } else {
                        rand::Rng::random_range(&mut r, 0..p)
                    });
                }
            }
        }
        let got = on_every_device("linear_sparse", n, |b| {
            let xs = b.upload(&ring, inputs, &x).unwrap();
            let w = b.upload_sparse(&ring, inputs, &rows).unwrap();
            b.download(&b.linear_sparse(&w, &xs).unwrap()).unwrap()
        });
        let pw = ring.poly_words();
        for j in 0..outputs {
            for word in (0..pw).step_by(11) {
                let l = word / n;
                let p = u64::from(ring.modulus(l).value());
                let bias = rows.bias.get(j * limbs + l).map_or(0, |&b| u64::from(b));
                let want = (rows.offsets[j]..rows.offsets[j + 1]).fold(bias, |acc, e| {
                    let v = u64::from(x[rows.columns[e] * pw + word]);
                    (acc + v * u64::from(rows.words[e * limbs + l]) % p) % p
                });
                assert_eq!(
                    u64::from(got[j * pw + word]),
                    want,
                    "output {j} word {word}"
                );
            }
        }
        let cpu = CpuBackend::new(Some(1)).unwrap();
        let mut broken = rows.clone();
        broken.columns[0] = inputs;
        assert!(
            cpu.upload_sparse(&ring, inputs, &broken).is_err(),
            "column out of range"
        );
        let mut broken = rows.clone();
        broken.offsets[1] = 99;
        assert!(
            cpu.upload_sparse(&ring, inputs, &broken).is_err(),
            "offsets"
        );
        let mut broken = rows.clone();
        broken.words[0] = ring.modulus(0).value();
        assert!(
            cpu.upload_sparse(&ring, inputs, &broken).is_err(),
            "unreduced"
        );
        let mut broken = rows.clone();
        broken.bias = vec![0; limbs];
        assert!(
            cpu.upload_sparse(&ring, inputs, &broken).is_err(),
            "one bias for several outputs"
        );
        if with_bias {
            let mut broken = rows.clone();
            broken.bias[limbs - 1] = ring.modulus(limbs - 1).value();
            assert!(
                cpu.upload_sparse(&ring, inputs, &broken).is_err(),
                "unreduced bias"
            );
        }
        let w = cpu.upload_sparse(&ring, inputs, &rows).unwrap();
        let short = cpu.upload(&ring, 1, &x[..pw]).unwrap();
        assert!(cpu.linear_sparse(&w, &short).is_err(), "input count");
    }
}

/// A map summed over blocks of its inputs with `linear_sparse_add` (the CPU adds each block's
/// sums into the previous ones as it reduces them) equals the map over all inputs at once,
/// and u64 arithmetic: edge words p − 1, a bias with the first block only.
#[test]
fn sparse_sums_over_blocks_of_inputs_equal_the_whole_map() {
    let n = 1 << 10;
    let ring = mixed_ring(n, 3);
    let (inputs, outputs, limbs) = (9, 5, ring.limbs());
    let mut x = random_words(&ring, inputs, 41);
    x[..n].fill(ring.modulus(0).value() - 1);
    let mut r = common::rng(42);
    let mut rows = hegpu::backend::SparseRows {
        offsets: vec![0],
        ..Default::default()
    };
    for j in 0..outputs {
        for k in (0..inputs).filter(|k| (k + j) % 3 != 0) {
            rows.columns.push(k);
            for l in 0..limbs {
                let p = ring.modulus(l).value();
                rows.words.push(if j == 0 {
                    p - 1
                } else {
                    rand::Rng::random_range(&mut r, 0..p)
                });
            }
        }
        rows.offsets.push(rows.columns.len());
        for l in 0..limbs {
            rows.bias
                .push(rand::Rng::random_range(&mut r, 0..ring.modulus(l).value()));
        }
    }
    // Rows over inputs `block`, renumbered from 0; the bias with the first block only.
    let restrict = |block: std::ops::Range<usize>| {
        let mut out = hegpu::backend::SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        for j in 0..outputs {
            for e in rows.offsets[j]..rows.offsets[j + 1] {
                if block.contains(&rows.columns[e]) {
                    out.columns.push(rows.columns[e] - block.start);
                    out.words
                        .extend_from_slice(&rows.words[e * limbs..(e + 1) * limbs]);
                }
            }
            out.offsets.push(out.columns.len());
        }
        if block.start == 0 {
            out.bias = rows.bias.clone();
        }
        out
    };
    let pw = ring.poly_words();
    let blocks = [0..4, 4..5, 5..9];
    let summed = on_every_device("linear_sparse_add", n, |b| {
        let mut acc = None;
        for block in blocks.clone() {
            let xs = b
                .upload(&ring, block.len(), &x[block.start * pw..block.end * pw])
                .unwrap();
            let w = b
                .upload_sparse(&ring, block.len(), &restrict(block))
                .unwrap();
            acc = Some(match acc {
                None => b.linear_sparse(&w, &xs).unwrap(),
                Some(acc) => b.linear_sparse_add(&w, &xs, acc).unwrap(),
            });
        }
        b.download(&acc.unwrap()).unwrap()
    });
    let cpu = CpuBackend::new(Some(2)).unwrap();
    let whole = {
        let xs = cpu.upload(&ring, inputs, &x).unwrap();
        let w = cpu.upload_sparse(&ring, inputs, &rows).unwrap();
        cpu.download(&cpu.linear_sparse(&w, &xs).unwrap()).unwrap()
    };
    assert!(
        summed == whole,
        "the sums over blocks differ from the whole map"
    );
    for j in 0..outputs {
        for word in (0..pw).step_by(7) {
            let l = word / n;
            let p = u64::from(ring.modulus(l).value());
            let want = (rows.offsets[j]..rows.offsets[j + 1]).fold(
                u64::from(rows.bias[j * limbs + l]),
                |acc, e| {
                    let v = u64::from(x[rows.columns[e] * pw + word]);
                    (acc + v * u64::from(rows.words[e * limbs + l]) % p) % p
                },
            );
            assert_eq!(
                u64::from(whole[j * pw + word]),
                want,
                "output {j} word {word}"
            );
        }
    }
    // Sums of another shape are refused.
    let xs = cpu.upload(&ring, 1, &x[..pw]).unwrap();
    let w = cpu.upload_sparse(&ring, 1, &restrict(0..1)).unwrap();
    let wrong = cpu.upload(&ring, 1, &x[..pw]).unwrap();
    assert!(cpu.linear_sparse_add(&w, &xs, wrong).is_err());
}

#[test]
fn regrouping_views_ciphertexts_as_single_polynomials() {
    let n = 1 << 10;
    let ring = mixed_ring(n, 3);
    let pairs = ring.repeat(2).unwrap();
    let words = random_words(&ring, 8, 12);
    on_every_device("regroup", n, |b| {
        let x = b.upload(&ring, 8, &words).unwrap();
        let grouped = x.regroup(&pairs).unwrap();
        assert_eq!((grouped.batch(), grouped.ring().limbs()), (4, 6));
        // Word-wise operations see the same words either way.
        let doubled = b.add(&grouped, &grouped).unwrap().regroup(&ring).unwrap();
        assert_eq!(doubled.batch(), 8);
        let back = grouped.regroup(&ring).unwrap();
        assert_eq!(b.download(&back).unwrap(), words);
        b.download(&doubled).unwrap()
    });
    let cpu = CpuBackend::new(Some(1)).unwrap();
    let odd = cpu
        .upload(&ring, 3, &words[..3 * ring.poly_words()])
        .unwrap();
    assert!(odd.regroup(&pairs).is_err(), "3 polynomials are no pairs");
    let other = mixed_ring(n, 2);
    let x = cpu
        .upload(&ring, 2, &words[..2 * ring.poly_words()])
        .unwrap();
    assert!(x.regroup(&other).is_err(), "other primes");
}

#[test]
fn concat_joins_batches_across_chunks() {
    let n = 1 << 10;
    let ring = mixed_ring(n, 3);
    let (a, b, c) = (
        random_words(&ring, 5, 13),
        random_words(&ring, 1, 14),
        random_words(&ring, 4, 15),
    );
    let got = on_every_device("concat", n, |be| {
        let parts = [
            be.upload(&ring, 5, &a).unwrap(),
            be.upload(&ring, 1, &b).unwrap(),
            be.upload(&ring, 4, &c).unwrap(),
        ];
        let refs: Vec<_> = parts.iter().collect();
        be.download(&be.concat(&refs).unwrap()).unwrap()
    });
    assert_eq!(got, [a, b, c].concat());
    let cpu = CpuBackend::new(Some(1)).unwrap();
    let x = cpu.upload(&ring, 1, &random_words(&ring, 1, 16)).unwrap();
    let other = mixed_ring(n, 2);
    let y = cpu.upload(&other, 1, &random_words(&other, 1, 17)).unwrap();
    assert!(cpu.concat(&[&x, &y]).is_err());
    assert!(cpu.concat(&[]).is_err());
}
