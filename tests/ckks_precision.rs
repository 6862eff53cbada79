//! CKKS precision in bits against an f64 oracle: fresh encryptions, every evaluator operation,
//! and a depth-5 circuit on the CryptoNets preset.

mod common;

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use rand::Rng;
use std::sync::Arc;

struct Setup {
    params: Arc<Parameters>,
    backend: Arc<dyn Backend>,
    encoder: Encoder,
    encryptor: Encryptor,
    decryptor: Decryptor,
    evaluator: Evaluator,
}

fn setup(literal: ParameterLiteral, rotations: &[i64], seed: u64) -> Setup {
    let params = Parameters::new(literal).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let mut keygen = KeyGenerator::new(&params, Seed::from_u64(seed));
    let sk = keygen.secret_key().unwrap();
    let pk = keygen.public_key(&sk).unwrap();
    let keys = EvaluationKeys {
        relin: Some(keygen.relin_key(&sk).unwrap()),
        galois: keygen.galois_keys(&sk, rotations, true).unwrap(),
    };
    Setup {
        encoder: Encoder::new(&params),
        encryptor: Encryptor::new(&params, &pk, backend.clone(), Seed::from_u64(seed + 1)).unwrap(),
        decryptor: Decryptor::new(&params, &sk).unwrap(),
        evaluator: Evaluator::new(&params, backend.clone(), &keys).unwrap(),
        params,
        backend,
    }
}

impl Setup {
    fn encrypt(&self, values: &[f64], scale: f64) -> Ciphertext {
        let pt = self
            .encoder
            .encode(values, self.params.max_level(), scale, &*self.backend)
            .unwrap();
        self.encryptor.encrypt(&pt).unwrap()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        let pt = self.decryptor.decrypt(ct, &*self.backend).unwrap();
        self.encoder.decode(&pt).unwrap()
    }
}

fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut r = common::rng(seed);
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

/// N = 2^13, scale 2^30: q = 31 + 3×30 bits, one 31-bit special prime (153 bits ≤ 218).
fn scale30() -> ParameterLiteral {
    ParameterLiteral {
        log_n: 13,
        q_bits: vec![31, 30, 30, 30],
        p_bits: vec![31],
        log_scale: 30,
        security: SecurityLevel::Classical128,
    }
}

#[test]
fn fresh_encryption_keeps_20_bits_at_scale_2_30() {
    let s = setup(scale30(), &[], 1);
    let x = values(s.params.slots(), 2);
    let got = s.decrypt(&s.encrypt(&x, s.params.default_scale()));
    let p = precision(&x, &got);
    eprintln!("fresh: {p}");
    assert!(p.mean_bits >= 20.0, "fresh encryption: {p}");
}

#[test]
fn each_operation_matches_the_f64_oracle() {
    let s = setup(scale30(), &[1, -3], 3);
    let slots = s.params.slots();
    let (x, y) = (values(slots, 4), values(slots, 5));
    let scale = s.params.default_scale();
    let (cx, cy) = (s.encrypt(&x, scale), s.encrypt(&y, scale));
    let ev = &s.evaluator;
    let check = |what: &str, ct: &Ciphertext, want: Vec<f64>, min_bits: f64| {
        let p = precision(&want, &s.decrypt(ct));
        eprintln!("{what}: {p}");
        assert!(p.mean_bits >= min_bits, "{what}: {p}");
    };
    let zip =
        |f: fn(f64, f64) -> f64| -> Vec<f64> { x.iter().zip(&y).map(|(a, b)| f(*a, *b)).collect() };
    check("add", &ev.add(&cx, &cy).unwrap(), zip(|a, b| a + b), 19.0);
    check("sub", &ev.sub(&cx, &cy).unwrap(), zip(|a, b| a - b), 19.0);
    check(
        "neg",
        &ev.neg(&cx).unwrap(),
        x.iter().map(|a| -a).collect(),
        19.0,
    );
    let prod = ev.rescale(&ev.mul_relin(&cx, &cy).unwrap()).unwrap();
    check("mul+relin+rescale", &prod, zip(|a, b| a * b), 18.0);
    // rescale_by: one step equals rescale word for word; zero steps keep the level.
    let raw = ev.mul_relin(&cx, &cy).unwrap();
    let once = ev
        .rescale_by(&raw, 1)
        .unwrap()
        .to_bytes(&s.params, &*s.backend)
        .unwrap();
    assert_eq!(once, prod.to_bytes(&s.params, &*s.backend).unwrap());
    assert_eq!(ev.rescale_by(&raw, 0).unwrap().level(), raw.level());
    assert_eq!(ev.rescale_by(&raw, 2).unwrap().level(), raw.level() - 2);
    assert!(ev.rescale_by(&raw, raw.level() + 1).is_err());
    let sq = ev
        .rescale(&ev.relinearize(&ev.square(&cx).unwrap()).unwrap())
        .unwrap();
    check("square", &sq, x.iter().map(|a| a * a).collect(), 18.0);
    check(
        "add_const",
        &ev.add_const(&cx, 0.25).unwrap(),
        x.iter().map(|a| a + 0.25).collect(),
        19.0,
    );
    let mc = ev
        .rescale(&ev.mul_const(&cx, -0.75, scale).unwrap())
        .unwrap();
    check(
        "mul_const",
        &mc,
        x.iter().map(|a| -0.75 * a).collect(),
        19.0,
    );
    check(
        "mul_int",
        &ev.mul_int(&cx, -3).unwrap(),
        x.iter().map(|a| -3.0 * a).collect(),
        18.0,
    );
    // Key switching (rotations, conjugation) adds noise ~ digit/P ≈ 2^-1 here: 17+ bits.
    let pt = s
        .encoder
        .encode(&y, s.params.max_level(), scale, &*s.backend)
        .unwrap();
    check(
        "add_plain",
        &ev.add_plain(&cx, &pt).unwrap(),
        zip(|a, b| a + b),
        19.0,
    );
    check(
        "sub_plain",
        &ev.sub_plain(&cx, &pt).unwrap(),
        zip(|a, b| a - b),
        19.0,
    );
    let mp = ev.rescale(&ev.mul_plain(&cx, &pt).unwrap()).unwrap();
    check("mul_plain", &mp, zip(|a, b| a * b), 19.0);
    for step in [1i64, -3] {
        let want: Vec<f64> = (0..slots)
            .map(|i| x[(i as i64 + step).rem_euclid(slots as i64) as usize])
            .collect();
        check(
            &format!("rotate {step}"),
            &ev.rotate(&cx, step).unwrap(),
            want,
            17.0,
        );
    }
    // Hoisted: one decomposition for several steps (0 and a repeat included); each result
    // decrypts like its own rotation.
    let steps = [1i64, 0, -3, 1];
    let hoisted = ev.rotate_hoisted(&cx, &steps).unwrap();
    assert_eq!(hoisted.len(), steps.len());
    for (step, ct) in steps.iter().zip(&hoisted) {
        let want: Vec<f64> = (0..slots)
            .map(|i| x[(i as i64 + step).rem_euclid(slots as i64) as usize])
            .collect();
        check(&format!("rotate_hoisted {step}"), ct, want, 17.0);
    }
    check(
        "conjugate (real input)",
        &ev.conjugate(&cx).unwrap(),
        x.clone(),
        17.0,
    );
    let dropped = ev.drop_level(&cx, 1).unwrap();
    assert_eq!(dropped.level(), 1);
    check("drop_level", &dropped, x.clone(), 19.0);
    // Aligning a rescaled product with a fresh ciphertext: levels and scales end up equal.
    let (a, b) = ev.align(&prod, &cx).unwrap();
    assert_eq!(a.level(), b.level());
    check(
        "align + add",
        &ev.add(&a, &b).unwrap(),
        x.iter().zip(&y).map(|(a, b)| a * b + a).collect(),
        17.0,
    );
}

#[test]
fn complex_slots_and_conjugation() {
    use num_complex::Complex64;
    let s = setup(scale30(), &[], 6);
    let slots = s.params.slots();
    let z: Vec<Complex64> = values(2 * slots, 7)
        .chunks(2)
        .map(|c| Complex64::new(c[0], c[1]))
        .collect();
    let pt = s
        .encoder
        .encode_complex(
            &z,
            s.params.max_level(),
            s.params.default_scale(),
            &*s.backend,
        )
        .unwrap();
    let ct = s.encryptor.encrypt(&pt).unwrap();
    let conj = s.evaluator.conjugate(&ct).unwrap();
    let got = s
        .encoder
        .decode_complex(&s.decryptor.decrypt(&conj, &*s.backend).unwrap())
        .unwrap();
    let mean = z
        .iter()
        .zip(&got)
        .map(|(a, b)| (a.conj() - b).norm())
        .sum::<f64>()
        / slots as f64;
    eprintln!("conjugate (complex): {:.1} bits (mean)", -mean.log2());
    assert!(-mean.log2() >= 16.5, "conjugate: {:.1} bits", -mean.log2());
}

#[test]
fn depth_five_circuit_on_the_cryptonets_preset_keeps_12_bits() {
    // Square, scalar product, square, scalar product, square: five rescales, down to level 0.
    let s = setup(Preset::CryptoNets8192.literal(), &[], 8);
    let x = values(s.params.slots(), 9);
    let scale = s.params.default_scale();
    let ev = &s.evaluator;
    let mut ct = s.encrypt(&x, scale);
    let mut want = x.clone();
    for step in 0..5 {
        if step % 2 == 0 {
            ct = ev
                .rescale(&ev.relinearize(&ev.square(&ct).unwrap()).unwrap())
                .unwrap();
            want.iter_mut().for_each(|v| *v *= *v);
        } else {
            ct = ev.rescale(&ev.mul_const(&ct, 0.9, scale).unwrap()).unwrap();
            want.iter_mut().for_each(|v| *v *= 0.9);
        }
    }
    assert_eq!(ct.level(), 0);
    let p = precision(&want, &s.decrypt(&ct));
    eprintln!("depth 5: {p}");
    assert!(p.mean_bits >= 12.0, "depth 5: {p}");
}

#[test]
fn degree_two_ciphertexts_through_a_linear_map_then_relinearized_and_rescaled_twice() {
    // What the lazy plan does: x², y² left as three polynomials at scale Δ²; a linear map with
    // integer weights (a·x² + b·y² + c) on them; then one relinearization and two rescales.
    let s = setup(scale30(), &[], 11);
    let slots = s.params.slots();
    let (x, y) = (values(slots, 12), values(slots, 13));
    let scale = s.params.default_scale();
    let (cx, cy) = (s.encrypt(&x, scale), s.encrypt(&y, scale));
    let ev = &s.evaluator;
    let (x2, y2) = (ev.square(&cx).unwrap(), ev.square(&cy).unwrap());
    assert_eq!((x2.size(), x2.level()), (3, s.params.max_level()));
    // Degree-2 ciphertexts decrypt as they are (with s and s²), and go through the format.
    let p = precision(
        &x.iter().map(|a| a * a).collect::<Vec<_>>(),
        &s.decrypt(&x2),
    );
    eprintln!("degree 2, not relinearized: {p}");
    assert!(p.mean_bits >= 18.0, "{p}");
    let bytes = x2.to_bytes(&s.params, &*s.backend).unwrap();
    assert_eq!(
        Ciphertext::from_bytes(&bytes, &s.params, &*s.backend)
            .unwrap()
            .size(),
        3
    );
    assert!(ev.rotate(&x2, 1).is_err(), "rotations need two polynomials");
    // 0.75·x² − 0.5·y² + 0.125 on degree 2, the weights scaled so that two rescales bring the
    // scale back to Δ (as the plan does): w = Δ · q_L · q_(L−1) / Δ².
    let q = s.params.q_primes();
    let top = s.params.max_level();
    let w = scale * f64::from(q[top]) * f64::from(q[top - 1]) / (scale * scale);
    let a = ev.mul_const(&x2, 0.75, w).unwrap();
    let b = ev.mul_const(&y2, -0.5, w).unwrap();
    let sum = ev.add_const(&ev.add(&a, &b).unwrap(), 0.125).unwrap();
    assert_eq!(sum.size(), 3);
    let out = ev.rescale_by(&ev.relinearize(&sum).unwrap(), 2).unwrap();
    assert_eq!(out.level(), s.params.max_level() - 2);
    let want: Vec<f64> = x
        .iter()
        .zip(&y)
        .map(|(a, b)| 0.75 * a * a - 0.5 * b * b + 0.125)
        .collect();
    let p = precision(&want, &s.decrypt(&out));
    eprintln!("degree 2 through a linear map, relinearized, two rescales: {p}");
    assert!(p.mean_bits >= 18.0, "{p}");
}
