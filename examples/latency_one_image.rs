//! One MNIST digit through the latency packing: the client encrypts one image in two
//! ciphertexts, the server evaluates the shipped model with public keys only, the client
//! decrypts ten logits. `cargo run --release --example latency_one_image [-- INDEX]`.

use hegpu::backend::{DeviceChoice, select_backend};
use hegpu::ckks::*;
use hegpu::data::Mnist;
use hegpu::nn::{LatencyNetwork, argmax, load_model, pixels};
use hegpu::tensor::{ScheduleOptions, Scheduler};
use std::time::Instant;

fn main() -> hegpu::Result<()> {
    let index: usize = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .map_err(|_| hegpu::Error::Config(format!("'{text}' is not an image index")))?,
        None => 0,
    };
    let mnist = Mnist::load(std::path::Path::new("data/mnist"))?;
    if index >= mnist.test_labels.len() {
        return Err(hegpu::Error::Config(format!(
            "image {index}: the test set has {}",
            mnist.test_labels.len()
        )));
    }
    let model = load_model(std::path::Path::new("models/cryptonets-5.safetensors"))?;
    let params = Parameters::preset(Preset::CryptoNets8192)?;

    // The plan is public: the server makes it from the model and public calibration images
    // (training digits); the client needs its rotations (for the Galois keys) and layouts.
    let calibration = &pixels(&mnist.train_images)[..64 * 784];
    let network = LatencyNetwork::plan(&model, &params, calibration, 1)?;

    // Client: keys, Galois keys for the plan's rotations only.
    let mut keygen = KeyGenerator::new(&params, Seed::Os);
    let sk = keygen.secret_key()?;
    let keys = EvaluationKeys {
        relin: Some(keygen.relin_key(&sk)?),
        galois: keygen.galois_keys_up_to(&sk, &network.rotation_levels())?,
    };
    let host = select_backend(DeviceChoice::Cpu)?;
    let encoder = Encoder::new(&params);
    let encryptor = Encryptor::with_secret_key(&params, &sk, host.clone(), Seed::Os)?;
    let image = &pixels(&mnist.test_images)[index * 784..(index + 1) * 784];
    let upload = network
        .encrypt(&encoder, &encryptor, image)?
        .to_bytes(&params, &*host)?;

    // Server: public material only, on the GPU when there is one.
    let device = select_backend(DeviceChoice::from_env()?)?;
    let server = Scheduler::new(&params, &keys, device, ScheduleOptions::default())?;
    let t = Instant::now();
    let x = Ciphertext::from_bytes(&upload, &params, &**server.host())?;
    let y = network.evaluate(&server, x)?;
    let download = y.to_bytes(&params, &**server.host())?;
    let seconds = t.elapsed().as_secs_f64();

    // Client: decrypt and compare with the plaintext model.
    let decryptor = Decryptor::new(&params, &sk)?;
    let y = Ciphertext::from_bytes(&download, &params, &*host)?;
    let logits = network
        .decrypt(&decryptor, &encoder, &y, 1, &*host)?
        .remove(0);
    let plain = model.forward(image)?;
    println!(
        "image {index}: digit {} (label {}, plaintext model {}), server {:.1} ms on {}, {} KB up, {} KB down",
        argmax(&logits),
        mnist.test_labels[index],
        argmax(&plain),
        1e3 * seconds,
        server.name(),
        upload.len() / 1000,
        download.len() / 1000
    );
    Ok(())
}
