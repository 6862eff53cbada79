//! The same CKKS circuit on the GPU and on the CPU, from the same seeds, gives the same
//! ciphertext words at every step: encrypt, multiply, relinearize, rescale, rotate, conjugate.

mod common;

use common::gpu;
use hegpu::backend::{Backend, CpuBackend, GpuBackend};
use hegpu::ckks::*;
use std::sync::Arc;

/// Runs the circuit on `backend`, returning the serialized ciphertext after every step.
fn circuit(params: &Arc<Parameters>, backend: Arc<dyn Backend>) -> Vec<(String, Vec<u8>)> {
    let mut keygen = KeyGenerator::new(params, Seed::from_u64(11));
    let sk = keygen.secret_key().unwrap();
    let pk = keygen.public_key(&sk).unwrap();
    let keys = EvaluationKeys {
        relin: Some(keygen.relin_key(&sk).unwrap()),
        galois: keygen.galois_keys(&sk, &[1, 5], true).unwrap(),
    };
    let encoder = Encoder::new(params);
    let encryptor = Encryptor::new(params, &pk, backend.clone(), Seed::from_u64(12)).unwrap();
    let ev = Evaluator::new(params, backend.clone(), &keys).unwrap();
    let x: Vec<f64> = (0..params.slots())
        .map(|i| (i as f64 * 0.01).sin())
        .collect();
    let top = params.max_level();
    let pt = encoder
        .encode(&x, top, params.default_scale(), &*backend)
        .unwrap();
    let a = encryptor.encrypt(&pt).unwrap();
    let b = encryptor.encrypt(&pt).unwrap();
    let mut steps = Vec::new();
    let mut save = |what: &str, ct: &Ciphertext| {
        steps.push((what.to_string(), ct.to_bytes(params, &*backend).unwrap()));
    };
    save("encrypt", &a);
    let m = ev.mul(&a, &b).unwrap();
    save("mul", &m);
    let r = ev.relinearize(&m).unwrap();
    save("relinearize", &r);
    let s = ev.rescale(&r).unwrap();
    save("rescale", &s);
    let t = ev.rotate(&s, 5).unwrap();
    save("rotate", &t);
    for (i, h) in ev
        .rotate_hoisted(&s, &[1, 5, 0])
        .unwrap()
        .iter()
        .enumerate()
    {
        save(&format!("rotate_hoisted {i}"), h);
    }
    let c = ev.conjugate(&ev.rotate(&t, 1).unwrap()).unwrap();
    save("conjugate", &c);
    let k = ev
        .rescale(&ev.mul_const(&c, 0.5, params.default_scale()).unwrap())
        .unwrap();
    save("mul_const + rescale", &k);
    steps
}

#[test]
fn gpu_ciphertexts_equal_cpu_ciphertexts_bit_for_bit() {
    let Some(_) = gpu() else { return };
    let mut literal = Preset::CryptoNets8192.literal();
    literal.log_n = 12; // lavapipe is slow; the arithmetic is the same at every N
    literal.q_bits = vec![30, 24, 24];
    literal.p_bits = vec![30, 30];
    literal.security = SecurityLevel::None;
    let params = Parameters::new(literal).unwrap();
    let cpu = circuit(&params, Arc::new(CpuBackend::new(None).unwrap()));
    let gpu = circuit(&params, Arc::new(GpuBackend::new().unwrap()));
    for ((what, c), (_, g)) in cpu.iter().zip(&gpu) {
        assert!(c == g, "{what}: GPU ciphertext differs from CPU");
    }
    assert_eq!(cpu.len(), 10);
}

/// Secret-key encryption on each device (on a GPU: masks drawn there from the seed, noise sent
/// as bytes) and decryption on the device holding the ciphertexts, of two- and
/// three-polynomial ciphertexts at two levels: the GPU's bytes and plaintexts equal the CPU's.
#[test]
fn secret_key_encryption_and_decryption_on_the_gpu_equal_the_hosts() {
    let Some(_) = gpu() else { return };
    let mut literal = Preset::CryptoNets8192.literal();
    literal.log_n = 12;
    literal.q_bits = vec![30, 24, 24];
    literal.p_bits = vec![30];
    literal.security = SecurityLevel::None;
    let params = Parameters::new(literal).unwrap();
    let sk = KeyGenerator::new(&params, Seed::from_u64(20))
        .secret_key()
        .unwrap();
    let vectors: Vec<Vec<f64>> = (0..5)
        .map(|v| {
            (0..params.slots())
                .map(|i| ((i * 3 + v) % 11) as f64 / 11.0)
                .collect()
        })
        .collect();
    let run = |backend: Arc<dyn Backend>| {
        let encoder = Encoder::new(&params);
        let encryptor =
            Encryptor::with_secret_key(&params, &sk, backend.clone(), Seed::from_u64(21)).unwrap();
        let decryptor = Decryptor::new(&params, &sk).unwrap();
        let ev = Evaluator::new(&params, backend.clone(), &EvaluationKeys::default()).unwrap();
        let mut out = Vec::new();
        for level in [params.max_level(), 1] {
            let pt = encoder
                .encode_many(&vectors, level, params.default_scale(), &*backend)
                .unwrap();
            let ct = encryptor.encrypt(&pt).unwrap();
            out.push(ct.to_bytes(&params, &*backend).unwrap());
            let squared = ev.square(&ct).unwrap();
            for c in [&ct, &squared] {
                for p in decryptor.decrypt_all(c, &*backend).unwrap() {
                    let values = encoder.decode(&p).unwrap();
                    out.push(values.iter().flat_map(|v| v.to_le_bytes()).collect());
                }
            }
        }
        out
    };
    let on_cpu = run(Arc::new(CpuBackend::new(None).unwrap()));
    let on_gpu = run(Arc::new(GpuBackend::new().unwrap()));
    assert_eq!(on_cpu.len(), 2 * (1 + 2 * 5));
    for (i, (c, g)) in on_cpu.iter().zip(&on_gpu).enumerate() {
        assert!(c == g, "item {i}: the GPU's differs from the CPU's");
    }
    // What a warm GPU receives to encrypt: the noise's bytes (one per coefficient), s once,
    // and the 32-byte seed; the masks never cross.
    let g = Arc::new(GpuBackend::new().unwrap());
    let level = params.max_level();
    let pt = Encoder::new(&params)
        .encode_many(&vectors, level, params.default_scale(), &*g)
        .unwrap();
    let encryptor =
        Encryptor::with_secret_key(&params, &sk, g.clone(), Seed::from_u64(22)).unwrap();
    let uploaded = || g.gpu_stats().unwrap().counts.upload_bytes;
    encryptor.encrypt(&pt).unwrap();
    let before = uploaded();
    encryptor.encrypt(&pt).unwrap();
    let ring_words = params.degree() * (level + 1);
    let expected = 5 * params.degree() + 4 * ring_words + 32;
    assert_eq!(uploaded() - before, expected as u64);
}
