//! The shipped network's result, pinned: one batch of 8 test digits through
//! models/cryptonets-5 on the CPU, from fixed seeds, gives these bytes (length and checksum).
//! A change to planning, scheduling, the stages or the arithmetic under them shows here; a
//! refactor must leave them as they are.

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use hegpu::data::Mnist;
use hegpu::nn::{encrypt_images, load_model, pixels};
use hegpu::tensor::{CipherTensor, ScheduleOptions, Scheduler};
use std::path::Path;
use std::sync::Arc;

#[test]
fn the_shipped_networks_result_bytes_are_pinned() {
    let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
    let mut kg = KeyGenerator::new(&params, Seed::from_u64(41));
    let sk = kg.secret_key().unwrap();
    let keys = EvaluationKeys {
        relin: Some(kg.relin_key(&sk).unwrap()),
        ..Default::default()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = load_model(&root.join("models/cryptonets-5.safetensors")).unwrap();
    let mnist = Mnist::load(&root.join("data/mnist")).unwrap();
    let net = hegpu::job::plan_server(&model, &params, &mnist).unwrap();
    let images = &pixels(&mnist.test_images)[..8 * 784];
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let encryptor =
        Encryptor::with_secret_key(&params, &sk, cpu.clone(), Seed::from_u64(42)).unwrap();
    let x = encrypt_images(&net, &Encoder::new(&params), &encryptor, images).unwrap();
    let x = CipherTensor::from_bytes(
        &x.to_bytes(&params, &*cpu).unwrap(),
        net.shape().0,
        &params,
        &*cpu,
    )
    .unwrap();
    let scheduler =
        Scheduler::new(&params, &keys, cpu.clone(), ScheduleOptions::default()).unwrap();
    let (y, report) = net.forward_report(&scheduler, x).unwrap();
    assert_eq!((report.key_switches, report.ntts), (110, 16_970));
    let bytes = y.to_bytes(&params, &*cpu).unwrap();
    // The last four bytes are the checksum of all before them.
    let crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
    assert_eq!((bytes.len(), crc), (614_451, 4_042_537_498));
    // And the digits are the plaintext model's.
    let decryptor = Decryptor::new(&params, &sk).unwrap();
    let logits = y
        .decrypt(&decryptor, &Encoder::new(&params), 8, &*cpu)
        .unwrap();
    for (i, l) in logits.iter().enumerate() {
        let plain = model.forward(&images[i * 784..(i + 1) * 784]).unwrap();
        assert_eq!(hegpu::nn::argmax(l), hegpu::nn::argmax(&plain), "image {i}");
    }
}
