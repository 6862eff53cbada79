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
