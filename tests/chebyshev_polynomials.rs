//! Polynomials in the Chebyshev basis by baby steps and giant steps (`circuits::polynomial`):
//! the basis change against f64, the counted cost of the order the planner picks against the
//! evaluator's own counts, the precision in bits against an f64 oracle, and GPU ciphertexts
//! equal to the CPU's.

mod common;

use hegpu::backend::{Backend, CpuBackend};
use hegpu::circuits::{PolynomialWork, chebyshev_from_powers, chebyshev_value, polynomial};
use hegpu::ckks::*;
use rand::Rng;
use std::sync::Arc;

/// N = 2^12, scale 2^30, twelve levels of 30 bits.
fn params() -> Arc<Parameters> {
    Parameters::new(ParameterLiteral {
        log_n: 12,
        q_bits: std::iter::once(31).chain([30; 12]).collect(),
        p_bits: vec![31],
        log_scale: 30,
        security: SecurityLevel::None,
    })
    .unwrap()
}

/// Chebyshev coefficients of degree `d` whose sum of magnitudes is 1: |p(u)| ≤ 1 on [−1, 1].
fn coefficients(d: usize, seed: u64) -> Vec<f64> {
    let mut r = common::rng(seed);
    let raw: Vec<f64> = (0..=d).map(|_| r.random_range(-1.0..1.0)).collect();
    let total: f64 = raw.iter().map(|c| c.abs()).sum();
    raw.iter().map(|c| c / total).collect()
}

/// What one evaluation gave: the input and the output decrypted, the output's bytes, its level
/// and the key switches counted.
struct Evaluated {
    input: Vec<f64>,
    values: Vec<f64>,
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    bytes: Vec<u8>,
    level: usize,
    key_switches: u64,
}

fn evaluate(work: &PolynomialWork, u: &[f64], backend: Arc<dyn Backend>) -> Evaluated {
    let params = params();
    let mut keygen = KeyGenerator::new(&params, Seed::from_u64(5));
    let sk = keygen.secret_key().unwrap();
    let keys = EvaluationKeys {
        relin: Some(keygen.relin_key(&sk).unwrap()),
        galois: Default::default(),
    };
    let encoder = Encoder::new(&params);
    let encryptor =
        Encryptor::with_secret_key(&params, &sk, backend.clone(), Seed::from_u64(6)).unwrap();
    let ev = Evaluator::new(&params, backend.clone(), &keys).unwrap();
    let pt = encoder
        .encode(u, work.level, work.scale, &*backend)
        .unwrap();
    let x = encryptor.encrypt(&pt).unwrap();
    let y = polynomial(&ev, work, &x).unwrap();
    let decryptor = Decryptor::new(&params, &sk).unwrap();
    let decrypt = |c: &Ciphertext| {
        encoder
            .decode(&decryptor.decrypt(c, &*backend).unwrap())
            .unwrap()
    };
    Evaluated {
        input: decrypt(&x),
        values: decrypt(&y),
        bytes: y.to_bytes(&params, &*backend).unwrap(),
        level: y.level(),
        key_switches: ev.key_switches(),
    }
}

fn plan(d: usize, seed: u64) -> PolynomialWork {
    let params = params();
    PolynomialWork::plan(
        1,
        (params.max_level(), params.default_scale()),
        &coefficients(d, seed),
        params.default_scale(),
        params.q_primes(),
    )
    .unwrap()
}

#[test]
fn power_coefficients_become_chebyshev_coefficients_of_the_same_polynomial() {
    let mut r = common::rng(1);
    for d in [1, 2, 5, 8, 16] {
        let c: Vec<f64> = (0..=d).map(|_| r.random_range(-2.0..2.0)).collect();
        let a = chebyshev_from_powers(&c);
        assert_eq!(a.len(), d + 1);
        for i in 0..=40 {
            let u = -1.0 + i as f64 / 20.0;
            let want: f64 = c.iter().rev().fold(0.0, |acc, &ck| acc * u + ck);
            assert!(
                (chebyshev_value(&a, u) - want).abs() < 1e-12,
                "degree {d} at {u}"
            );
        }
    }
    // T_3 = 4u³ − 3u.
    assert_eq!(
        chebyshev_from_powers(&[0.0, -3.0, 0.0, 4.0]),
        [0.0, 0.0, 0.0, 1.0]
    );
}

#[test]
fn the_planner_picks_the_order_with_the_fewest_levels_then_key_switches() {
    // (degree, baby steps, key switches, levels): a key switch per basis element T_2 … T_m,
    // per giant step and per division by one. Degree 8 takes 4 levels with baby steps up to
    // T_4; degree 31 takes the fewest levels, ⌈log2 31⌉ = 5, with baby steps up to T_2 and 19
    // key switches (larger baby steps trade levels for key switches; levels come first).
    for (d, baby, key_switches, levels) in [
        (2, 2, 1, 2),
        (3, 2, 2, 2),
        (8, 4, 4, 4),
        (16, 4, 7, 5),
        (31, 2, 19, 5),
    ] {
        let work = plan(d, 7);
        assert_eq!(
            (work.baby, work.cost.key_switches, work.cost.levels),
            (baby, key_switches, levels),
            "degree {d}"
        );
        assert_eq!(work.output_level(), params().max_level() - levels);
    }
    // The basis held per value: T_1 … T_m and the giant steps (T_8 for degree 16; T_4, T_8,
    // T_16 for degree 31).
    assert_eq!(plan(16, 7).basis_len(), 5);
    assert_eq!(plan(31, 7).basis_len(), 5);
    assert_eq!(plan(3, 7).basis_len(), 2);
    // Too few levels: a refusal, not a panic.
    let short = common::test_params(3);
    let err = PolynomialWork::plan(
        1,
        (3, short.default_scale()),
        &coefficients(16, 1),
        short.default_scale(),
        short.q_primes(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("too few levels"), "{err}");
    assert!(PolynomialWork::plan(1, (3, 1.0), &[0.5], 1.0, short.q_primes()).is_err());
}

#[test]
fn chebyshev_polynomials_match_the_f64_oracle() {
    let slots = params().slots();
    let mut r = common::rng(3);
    let u: Vec<f64> = (0..slots).map(|_| r.random_range(-1.0..1.0)).collect();
    for d in [1, 3, 8, 16, 31] {
        let work = plan(d, d as u64);
        let got = evaluate(&work, &u, Arc::new(CpuBackend::new(None).unwrap()));
        let bits = |inputs: &[f64]| {
            let worst = (inputs.iter().zip(&got.values))
                .map(|(&x, &y)| (chebyshev_value(&work.coefficients, x) - y).abs())
                .fold(0.0, f64::max);
            -worst.log2()
        };
        // Against p of the input as it decrypts, the circuit's own error: one rescale's noise
        // at N = 2^12 and scale 2^30 (about 17.5 bits: degree 1 is one weighed sum), grown
        // through the basis by at most the degree. Against p of the exact input, the input's
        // own noise (about 21 bits) adds its image through p.
        let floor = 17.0 - (d as f64).log2();
        assert!(
            bits(&got.input) > floor,
            "degree {d}: {:.1} bits",
            bits(&got.input)
        );
        assert!(bits(&u) > floor - 0.5, "degree {d}: {:.1} bits", bits(&u));
        assert_eq!(got.level, work.output_level(), "degree {d}");
        assert_eq!(
            got.key_switches, work.cost.key_switches as u64,
            "degree {d}: the evaluator counts what the plan counted"
        );
    }
}

#[cfg(feature = "gpu")]
#[test]
fn gpu_polynomials_equal_cpu_polynomials_word_for_word() {
    use hegpu::backend::GpuBackend;
    let Some(_) = common::gpu() else { return };
    let u: Vec<f64> = (0..64).map(|i| (i as f64 * 0.37).sin()).collect();
    let work = plan(16, 4);
    let cpu = evaluate(&work, &u, Arc::new(CpuBackend::new(None).unwrap()));
    let gpu = evaluate(&work, &u, Arc::new(GpuBackend::new().unwrap()));
    assert!(cpu.bytes == gpu.bytes, "GPU ciphertext differs from CPU");
    assert_eq!(cpu.key_switches, gpu.key_switches);
}
