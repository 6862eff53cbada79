//! Bad input to CKKS: insecure parameters, operands that do not fit together, missing keys,
//! and serialized data that is truncated, oversized, out of range or corrupted — each an
//! error, never a panic; and every serializable thing round-trips.

mod common;

use hegpu::Error;
use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use rand::Rng;
use std::sync::Arc;

fn small(log_scale: u32, q_bits: Vec<u32>) -> Arc<Parameters> {
    Parameters::new(ParameterLiteral {
        log_n: 12,
        q_bits,
        p_bits: vec![30],
        log_scale,
        security: SecurityLevel::Classical128,
    })
    .unwrap()
}

struct World {
    params: Arc<Parameters>,
    backend: Arc<dyn Backend>,
    sk: SecretKey,
    pk: PublicKey,
    keys: EvaluationKeys,
}

fn world(params: Arc<Parameters>, seed: u64) -> World {
    let mut kg = KeyGenerator::new(&params, Seed::from_u64(seed));
    let sk = kg.secret_key().unwrap();
    let pk = kg.public_key(&sk).unwrap();
    let keys = EvaluationKeys {
        relin: Some(kg.relin_key(&sk).unwrap()),
        galois: kg.galois_keys(&sk, &[1], false).unwrap(),
    };
    World {
        params,
        backend: Arc::new(CpuBackend::new(Some(1)).unwrap()),
        sk,
        pk,
        keys,
    }
}

impl World {
    fn encrypt(&self, values: &[f64], level: usize, scale: f64) -> Ciphertext {
        let pt = Encoder::new(&self.params)
            .encode(values, level, scale, &*self.backend)
            .unwrap();
        Encryptor::new(
            &self.params,
            &self.pk,
            self.backend.clone(),
            Seed::from_u64(3),
        )
        .unwrap()
        .encrypt(&pt)
        .unwrap()
    }
}

#[test]
fn insecure_parameters_are_refused() {
    let lit = |q_bits: Vec<u32>, security| ParameterLiteral {
        log_n: 12,
        q_bits,
        p_bits: vec![30],
        log_scale: 25,
        security,
    };
    // 4×30 + 30 = 150 bits > 109 at N = 2^12.
    let err = Parameters::new(lit(vec![30; 4], SecurityLevel::Classical128)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Params(hegpu::ParamsError::Insecure {
                log_qp: 150,
                max: 109,
                ..
            })
        ),
        "{err}"
    );
    assert!(Parameters::new(lit(vec![30; 4], SecurityLevel::None)).is_ok());
    // Chains hegpu cannot build are parameter errors that say why.
    let unsupported = |literal: ParameterLiteral, says: &str| {
        let err = Parameters::new(literal).unwrap_err();
        assert!(
            matches!(err, Error::Params(hegpu::ParamsError::Unsupported(_))),
            "{err}"
        );
        assert!(err.to_string().contains(says), "{err}");
    };
    unsupported(lit(vec![30, 19], SecurityLevel::None), "not 19");
    unsupported(
        lit(vec![], SecurityLevel::None),
        "at least one ciphertext prime",
    );
    let mut deg = lit(vec![30], SecurityLevel::Classical128);
    deg.log_n = 16;
    unsupported(deg, "no entry for N = 2^16");
    // Special primes smaller than a digit would drown key switching in noise.
    let mut weak = lit(vec![30, 30], SecurityLevel::None);
    weak.p_bits = vec![20];
    unsupported(weak, "special primes (20 bits)");
    let mut scale = lit(vec![30], SecurityLevel::None);
    scale.log_scale = 61;
    unsupported(scale, "not 61");
}

#[test]
fn mixing_sets_levels_and_scales_is_an_error() {
    let w = world(small(24, vec![30, 24, 24]), 1);
    let other = world(small(25, vec![29, 25, 25]), 2);
    let ev = Evaluator::new(&w.params, w.backend.clone(), &w.keys).unwrap();
    let x = vec![0.5; 8];
    let top = w.params.max_level();
    let a = w.encrypt(&x, top, w.params.default_scale());
    let foreign = other.encrypt(&x, top, other.params.default_scale());
    assert!(matches!(ev.add(&a, &foreign), Err(Error::Mismatch(_))));
    assert!(matches!(ev.mul(&a, &foreign), Err(Error::Mismatch(_))));
    assert!(Evaluator::new(&w.params, w.backend.clone(), &other.keys).is_err());
    assert!(Encryptor::new(&w.params, &other.pk, w.backend.clone(), Seed::Os).is_err());
    assert!(Decryptor::new(&w.params, &other.sk).is_err());
    let low = ev.drop_level(&a, 1).unwrap();
    assert!(
        matches!(ev.add(&a, &low), Err(Error::Mismatch(_))),
        "levels"
    );
    let other_scale = w.encrypt(&x, top, 2f64.powi(20));
    assert!(
        matches!(ev.add(&a, &other_scale), Err(Error::Mismatch(_))),
        "scales"
    );
    let (p, q) = ev.align(&a, &other_scale).unwrap();
    assert!(ev.add(&p, &q).is_ok(), "aligned operands add");
    let three = ev.mul(&a, &a).unwrap();
    assert!(ev.add(&a, &three).is_err(), "sizes");
    assert!(ev.rotate(&three, 1).is_err(), "rotate before relinearize");
    assert!(matches!(ev.rotate(&a, 2), Err(Error::MissingKey(_))));
    let no_keys = Evaluator::new(&w.params, w.backend.clone(), &EvaluationKeys::default()).unwrap();
    assert!(matches!(
        no_keys.relinearize(&three),
        Err(Error::MissingKey(_))
    ));
    let bottom = ev.drop_level(&a, 0).unwrap();
    assert!(ev.rescale(&bottom).is_err());
    assert!(ev.drop_level(&bottom, 1).is_err());
    let enc = Encoder::new(&w.params);
    assert!(
        enc.encode(&vec![0.0; w.params.slots() + 1], top, 1e6, &*w.backend)
            .is_err()
    );
    assert!(enc.encode(&[f64::NAN], top, 1e6, &*w.backend).is_err());
    assert!(
        enc.encode(&[1e30], top, 1e6, &*w.backend).is_err(),
        "wraps the modulus"
    );
    assert!(
        enc.encode(&[1.0], top + 1, 1e6, &*w.backend).is_err(),
        "level"
    );
}

#[test]
fn secret_key_is_never_printed() {
    let w = world(small(25, vec![30, 25]), 4);
    let shown = format!("{:?}", w.sk);
    assert!(shown.contains("<secret>"));
    assert!(!shown.contains("coeffs"));
}

#[test]
fn everything_round_trips_through_the_compact_format() {
    let w = world(small(24, vec![30, 24, 24]), 5);
    let p = &w.params;
    let back = Parameters::from_bytes(&p.to_bytes()).unwrap();
    assert_eq!(back.id(), p.id());
    let pk = PublicKey::from_bytes(&w.pk.to_bytes(p).unwrap(), p).unwrap();
    let keys = EvaluationKeys::from_bytes(&w.keys.to_bytes(p).unwrap(), p).unwrap();
    assert_eq!(keys.galois.elements(), w.keys.galois.elements());
    let sk = SecretKey::import_secret_bytes(&w.sk.export_secret_bytes(), p).unwrap();
    // Keys that went through bytes still work together.
    let x: Vec<f64> = (0..16).map(|i| i as f64 / 16.0).collect();
    let encoder = Encoder::new(p);
    let pt = encoder
        .encode(&x, p.max_level(), p.default_scale(), &*w.backend)
        .unwrap();
    let ct = Encryptor::new(p, &pk, w.backend.clone(), Seed::Os)
        .unwrap()
        .encrypt(&pt)
        .unwrap();
    let ev = Evaluator::new(p, w.backend.clone(), &keys).unwrap();
    let ct = ev
        .rotate(&ev.relinearize(&ev.square(&ct).unwrap()).unwrap(), 1)
        .unwrap();
    let bytes = ct.to_bytes(p, &*w.backend).unwrap();
    // 2 polynomials × N × (30 + 24 + 24 bits): the packing wastes nothing but the header.
    assert!(
        bytes.len() < 2 * 4096 * 78 / 8 + 64,
        "{} bytes",
        bytes.len()
    );
    let ct = Ciphertext::from_bytes(&bytes, p, &*w.backend).unwrap();
    let got = encoder
        .decode(
            &Decryptor::new(p, &sk)
                .unwrap()
                .decrypt(&ct, &*w.backend)
                .unwrap(),
        )
        .unwrap();
    let want: Vec<f64> = (0..16)
        .map(|i| x.get(i + 1).map_or(0.0, |v| v * v))
        .collect();
    assert!(precision(&want, &got[..16]).min_bits > 8.0);
}

#[test]
fn bad_bytes_are_errors_never_panics() {
    let w = world(small(25, vec![30, 25]), 6);
    let p = &w.params;
    let other = small(26, vec![30, 26]);
    let ct = w.encrypt(&[0.25; 4], p.max_level(), p.default_scale());
    let ct_bytes = ct.to_bytes(p, &*w.backend).unwrap();
    let key_bytes = w.keys.to_bytes(p).unwrap();
    let read_ct = |b: &[u8]| Ciphertext::from_bytes(b, p, &*w.backend).map(|_| ());
    let read_keys = |b: &[u8]| EvaluationKeys::from_bytes(b, p).map(|_| ());
    for (what, good, read) in [
        (
            "ciphertext",
            &ct_bytes,
            &read_ct as &dyn Fn(&[u8]) -> hegpu::Result<()>,
        ),
        ("keys", &key_bytes, &read_keys),
    ] {
        assert!(read(good).is_ok(), "{what}");
        // Truncated anywhere (a sample of cut points, including inside the header).
        for cut in (0..good.len())
            .step_by(good.len() / 97 + 1)
            .chain([good.len() - 1])
        {
            assert!(read(&good[..cut]).is_err(), "{what} cut at {cut}");
        }
        // Oversized.
        let mut long = good.clone();
        long.extend([0u8; 3]);
        assert!(read(&long).is_err(), "{what} with trailing bytes");
        // Every packed word at its maximum, which is above the prime.
        let mut high = good.clone();
        let body = high.len() - 400;
        high[body..].iter_mut().for_each(|b| *b = 0xff);
        assert!(read(&high).is_err(), "{what} with out-of-range words");
        // Random corruption: any answer but a panic.
        let mut r = common::rng(7);
        for _ in 0..200 {
            let mut bad = good.clone();
            for _ in 0..r.random_range(1..4) {
                let i = r.random_range(0..bad.len());
                bad[i] ^= 1 << r.random_range(0..8);
            }
            let _ = read(&bad);
        }
    }
    // Wrong kind, wrong parameter set, wrong magic.
    assert!(EvaluationKeys::from_bytes(&ct_bytes, p).is_err());
    assert!(Ciphertext::from_bytes(&ct_bytes, &other, &*w.backend).is_err());
    assert!(PublicKey::from_bytes(&w.pk.to_bytes(p).unwrap(), &other).is_err());
    let mut magic = ct_bytes.clone();
    magic[0] = b'X';
    assert!(read_ct(&magic).is_err());
    assert!(SecretKey::import_secret_bytes(&[0u8; 40], p).is_err());
    let mut sk = w.sk.export_secret_bytes();
    let last = sk.len() - 1;
    sk[last] = 0xff; // code 3 is no ternary value
    assert!(SecretKey::import_secret_bytes(&sk, p).is_err());
    assert!(Parameters::from_bytes(&ct_bytes).is_err());
}

#[test]
fn seeded_ciphertexts_travel_in_half_the_bytes_and_decrypt_the_same() {
    let w = world(small(24, vec![30, 24, 24]), 8);
    let p = &w.params;
    let x: Vec<f64> = (0..64).map(|i| i as f64 / 64.0 - 0.5).collect();
    let encoder = Encoder::new(p);
    let pt = encoder
        .encode_many(
            &[x.clone(), x.clone(), x.clone()],
            p.max_level(),
            p.default_scale(),
            &*w.backend,
        )
        .unwrap();
    let seeded = Encryptor::with_secret_key(p, &w.sk, w.backend.clone(), Seed::from_u64(4))
        .unwrap()
        .encrypt(&pt)
        .unwrap();
    let public = Encryptor::new(p, &w.pk, w.backend.clone(), Seed::from_u64(4))
        .unwrap()
        .encrypt(&pt)
        .unwrap();
    assert!(seeded.is_seeded() && !public.is_seeded());
    let (short, long) = (
        seeded.to_bytes(p, &*w.backend).unwrap(),
        public.to_bytes(p, &*w.backend).unwrap(),
    );
    // Three ciphertexts: c0 (3 × 4096 × 78 bits) and a seed, against both polynomials.
    assert!(
        short.len() < long.len() / 2 + 100,
        "{} vs {}",
        short.len(),
        long.len()
    );
    // The server expands the same masks: the ciphertext read back is the one encrypted, word
    // for word, and decrypts to the values.
    let back = Ciphertext::from_bytes(&short, p, &*w.backend).unwrap();
    assert!(back.is_seeded());
    let expanded = |c: &Ciphertext| {
        let ev = Evaluator::new(p, w.backend.clone(), &EvaluationKeys::default()).unwrap();
        ev.neg(c).unwrap().to_bytes(p, &*w.backend).unwrap()
    };
    assert_eq!(expanded(&back), expanded(&seeded));
    let decryptor = Decryptor::new(p, &w.sk).unwrap();
    for pt in decryptor.decrypt_all(&back, &*w.backend).unwrap() {
        let got = encoder.decode(&pt).unwrap();
        let p = precision(&x, &got[..64]);
        assert!(p.mean_bits > 16.0, "{p}");
    }
    // Any operation leaves the seeded form: the masks are no longer the seed's.
    let ev = Evaluator::new(p, w.backend.clone(), &w.keys).unwrap();
    assert!(!ev.add(&back, &back).unwrap().is_seeded());
    // A flipped seed bit is caught by the checksum; another parameter set is refused.
    let at = short.len() - 4 - (3 * 4096 * 78 / 8) - 10;
    let mut bad = short.clone();
    bad[at] ^= 1;
    assert!(Ciphertext::from_bytes(&bad, p, &*w.backend).is_err());
    let other = small(26, vec![30, 26]);
    assert!(Ciphertext::from_bytes(&short, &other, &*w.backend).is_err());
}
