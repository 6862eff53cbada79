//! The encrypted forward pass against the plaintext model: a small network with every linear
//! layer kind, and the shipped CryptoNets model on the sample's test digits.

mod common;

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use hegpu::nn::*;
use hegpu::tensor::Scheduler;
use rand::Rng;
use std::sync::Arc;

struct Client {
    params: Arc<Parameters>,
    encoder: Encoder,
    encryptor: Encryptor,
    decryptor: Decryptor,
    keys: EvaluationKeys,
}

fn client(backend: &Arc<dyn Backend>, seed: u64) -> Client {
    let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
    let mut kg = KeyGenerator::new(&params, Seed::from_u64(seed));
    let sk = kg.secret_key().unwrap();
    let keys = EvaluationKeys {
        relin: Some(kg.relin_key(&sk).unwrap()),
        ..Default::default()
    };
    Client {
        encoder: Encoder::new(&params),
        encryptor: Encryptor::with_secret_key(
            &params,
            &sk,
            backend.clone(),
            Seed::from_u64(seed + 1),
        )
        .unwrap(),
        decryptor: Decryptor::new(&params, &sk).unwrap(),
        keys,
        params,
    }
}

/// Runs `model` encrypted on `images` and returns the decrypted outputs per image.
/// The decrypted outputs, and the ciphertexts the server key-switched.
fn encrypted_run(model: &Model, images: &[f32], backend: Arc<dyn Backend>) -> (Vec<Vec<f32>>, u64) {
    let c = client(&backend, 3);
    let bounds = Bounds::measure(model, images).unwrap();
    let net = EncryptedNetwork::plan(model, &c.params, &bounds).unwrap();
    let x = encrypt_images(&net, &c.encoder, &c.encryptor, images).unwrap();
    assert_eq!(x.shape(), model.input.as_slice());
    let scheduler =
        Scheduler::new(&c.params, &c.keys, backend.clone(), Default::default()).unwrap();
    let (y, report) = net.forward_report(&scheduler, x).unwrap();
    assert_eq!(y.level(), 0);
    assert_eq!(
        y.shape(),
        model.shapes().unwrap().last().unwrap().as_slice()
    );
    let count = images.len() / model.input_len();
    let outputs = y
        .decrypt(&c.decryptor, &c.encoder, count, &*backend)
        .unwrap();
    (outputs, report.key_switches)
}

fn encrypted_outputs(model: &Model, images: &[f32], backend: Arc<dyn Backend>) -> Vec<Vec<f32>> {
    encrypted_run(model, images, backend).0
}

/// Runs `model` encrypted on 40 random 8×8 images and compares with its plaintext outputs.
fn assert_matches_plaintext(model: &Model) {
    let mut r = common::rng(11);
    let images: Vec<f32> = (0..40 * 64).map(|_| r.random_range(0.0..1.0)).collect();
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let got = encrypted_outputs(model, &images, cpu);
    // The outputs are below 1 and the encrypted pass keeps about 11 bits on them (worst error
    // seen 5.5e-4); the argmax must agree wherever the plaintext's top two are further apart
    // than twice that bound.
    let bound = 2e-3;
    let mut decided = 0;
    for (i, out) in got.iter().enumerate() {
        let want = model.forward(&images[i * 64..(i + 1) * 64]).unwrap();
        for (g, w) in out.iter().zip(&want) {
            assert!((g - w).abs() < bound, "image {i}: {out:?} vs {want:?}");
        }
        let mut sorted = want.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 2.0 * bound {
            decided += 1;
            assert_eq!(argmax(out), argmax(&want), "image {i}: {out:?} vs {want:?}");
        }
    }
    assert!(
        decided >= 30,
        "only {decided} of 40 images have a clear winner"
    );
}

#[test]
fn a_small_encrypted_network_equals_its_plaintext_model() {
    assert_matches_plaintext(&common::small_network());
}

#[test]
fn polynomial_activations_cost_one_square_each() {
    // a·x² + b·x + c in place of both squares, and a linear one (a = 0) after the first.
    let mut model = common::small_network();
    let squares: Vec<usize> = (0..model.layers.len())
        .filter(|&i| model.layers[i] == Layer::Square(Square))
        .collect();
    model.layers[squares[0]] = Layer::Poly(Poly {
        a: 0.6,
        b: 0.25,
        c: -0.05,
    });
    model.layers[squares[1]] = Layer::Poly(Poly {
        a: 1.5,
        b: -0.4,
        c: 0.1,
    });
    model.layers.insert(
        squares[0] + 1,
        Layer::Poly(Poly {
            a: 0.0,
            b: 0.8,
            c: 0.02,
        }),
    );
    assert_matches_plaintext(&model);
}

#[test]
fn planning_refuses_what_the_parameters_cannot_hold() {
    let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
    let mut deep = common::small_network();
    deep.layers.push(Layer::Square(Square));
    deep.layers.push(Layer::Dense(Dense {
        inputs: 4,
        outputs: 2,
        weight: vec![0.1; 8],
        bias: vec![0.0; 2],
    }));
    let unit = InputRange {
        low: 0.0,
        high: 1.0,
    };
    let bounds = |stages: Vec<f32>| Bounds {
        input: unit,
        stages,
    };
    let err = EncryptedNetwork::plan(&deep, &params, &bounds(vec![1.0; 7]))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("levels"), "{err}");
    let model = common::small_network();
    assert!(
        EncryptedNetwork::plan(&model, &params, &bounds(vec![1e12; 5])).is_err(),
        "outputs that wrap"
    );
    assert!(
        EncryptedNetwork::plan(&model, &params, &bounds(vec![1.0])).is_err(),
        "bound count"
    );
}

#[test]
fn the_shipped_model_predicts_the_same_digits_encrypted() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = load_model(&root.join("models/cryptonets-5.safetensors")).unwrap();
    let mnist = hegpu::data::Mnist::load(&root.join("data/mnist")).unwrap();
    let count = 256;
    let images = pixels(&mnist.test_images)[..count * 784].to_vec();
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let (got, key_switches) = encrypted_run(&model, &images, cpu);
    // Lazy relinearization: the 845 squares after the convolution and the 100 after the dense
    // layer are relinearized after the next linear map, on its 100 and 10 outputs.
    assert_eq!(key_switches, 110);
    let plain = model.predict(&images).unwrap();
    let same = got
        .iter()
        .zip(&plain)
        .filter(|(o, p)| argmax(o) == **p)
        .count();
    let right = got
        .iter()
        .zip(&mnist.test_labels)
        .filter(|(o, l)| argmax(o) == usize::from(**l))
        .count();
    eprintln!("encrypted: {same}/{count} agree with the plaintext model, {right}/{count} correct");
    assert_eq!(same, count);
}

#[test]
fn gpu_and_cpu_give_identical_encrypted_outputs() {
    let Some(_) = common::gpu() else { return };
    let model = common::small_network();
    let mut r = common::rng(12);
    let images: Vec<f32> = (0..8 * 64).map(|_| r.random_range(0.0..1.0)).collect();
    let run = |backend: Arc<dyn Backend>| {
        let c = client(&backend, 5);
        let bounds = Bounds::measure(&model, &images).unwrap();
        let net = EncryptedNetwork::plan(&model, &c.params, &bounds).unwrap();
        let x = encrypt_images(&net, &c.encoder, &c.encryptor, &images).unwrap();
        let scheduler = Scheduler::new(&c.params, &c.keys, backend, Default::default()).unwrap();
        let (y, report) = net.forward_report(&scheduler, x).unwrap();
        assert!(report.fallback.is_none(), "{:?}", report.fallback);
        let bytes = y.to_bytes(&c.params, &**scheduler.host()).unwrap();
        (bytes, report.key_switches, report.ntts)
    };
    let cpu = run(Arc::new(CpuBackend::new(None).unwrap()));
    let gpu = run(Arc::new(hegpu::backend::GpuBackend::new().unwrap()));
    assert!(
        cpu.0 == gpu.0,
        "encrypted outputs differ between GPU and CPU"
    );
    // The same plan does the same work on both: key switches and NTTs counted alike.
    assert_eq!((cpu.1, cpu.2), (gpu.1, gpu.2));
    assert!(cpu.1 > 0 && cpu.2 > 0, "{:?}", (cpu.1, cpu.2));
}

#[test]
fn tensors_of_the_wrong_shape_are_refused() {
    use hegpu::tensor::CipherTensor;
    let model = common::small_network();
    let backend: Arc<dyn Backend> = Arc::new(CpuBackend::new(None).unwrap());
    let c = client(&backend, 7);
    let images = vec![0.5f32; 3 * 64];
    let bounds = Bounds::measure(&model, &images).unwrap();
    let net = EncryptedNetwork::plan(&model, &c.params, &bounds).unwrap();
    let scheduler =
        Scheduler::new(&c.params, &c.keys, backend.clone(), Default::default()).unwrap();
    let scale = c.params.default_scale();
    let flat = CipherTensor::encrypt(&images, &[64], &c.encoder, &c.encryptor, scale).unwrap();
    let err = net.forward(&scheduler, flat).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
    let x = encrypt_images(&net, &c.encoder, &c.encryptor, &images).unwrap();
    let bytes = x.to_bytes(&c.params, &*backend).unwrap();
    assert!(CipherTensor::from_bytes(&bytes, &[1, 8, 7], &c.params, &*backend).is_err());
    let x = CipherTensor::from_bytes(&bytes, &[64], &c.params, &*backend).unwrap();
    assert!(x.reshape(&[2, 33]).is_err());
    assert!(CipherTensor::encrypt(&images[..100], &[64], &c.encoder, &c.encryptor, scale).is_err());
    let too_many = vec![0.0f32; (c.params.slots() + 1) * 4];
    assert!(CipherTensor::encrypt(&too_many, &[4], &c.encoder, &c.encryptor, scale).is_err());
    let decryptor = &c.decryptor;
    let y = CipherTensor::encrypt(&images, &[64], &c.encoder, &c.encryptor, scale).unwrap();
    assert!(
        y.decrypt(decryptor, &c.encoder, c.params.slots() + 1, &*backend)
            .is_err()
    );
    assert_eq!(
        y.decrypt(decryptor, &c.encoder, 3, &*backend)
            .unwrap()
            .len(),
        3
    );
}
