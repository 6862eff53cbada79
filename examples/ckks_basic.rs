//! Encrypt two vectors, multiply, relinearize, rescale, rotate, decrypt, and print the
//! precision in bits — on the device `HEGPU_DEVICE` picks (auto: a GPU if there is one).
//!
//! `cargo run --release --example ckks_basic`

use hegpu::backend::{DeviceChoice, select_backend};
use hegpu::ckks::*;

fn main() -> hegpu::Result<()> {
    // N = 2^13, q = 30 + 5×24 bits, one special prime, scale 2^24: 128-bit secure.
    let params = Parameters::preset(Preset::CryptoNets8192)?;
    let backend = select_backend(DeviceChoice::from_env()?)?;
    println!("device: {}", backend.name());

    // Client side: keys (Seed::Os draws from the operating system's entropy).
    let mut keygen = KeyGenerator::new(&params, Seed::Os);
    let sk = keygen.secret_key()?;
    let pk = keygen.public_key(&sk)?;
    let eval_keys = EvaluationKeys {
        relin: Some(keygen.relin_key(&sk)?),
        galois: keygen.galois_keys(&sk, &[1], false)?,
    };

    let slots = params.slots();
    let x: Vec<f64> = (0..slots)
        .map(|i| (i as f64 / slots as f64) - 0.5)
        .collect();
    let y: Vec<f64> = (0..slots).map(|i| ((i % 7) as f64) / 7.0).collect();
    let encoder = Encoder::new(&params);
    let (top, scale) = (params.max_level(), params.default_scale());
    let encryptor = Encryptor::new(&params, &pk, backend.clone(), Seed::Os)?;
    let cx = encryptor.encrypt(&encoder.encode(&x, top, scale, &*backend)?)?;
    let cy = encryptor.encrypt(&encoder.encode(&y, top, scale, &*backend)?)?;

    // Server side: public material only.
    let evaluator = Evaluator::new(&params, backend.clone(), &eval_keys)?;
    let product = evaluator.relinearize(&evaluator.mul(&cx, &cy)?)?;
    let product = evaluator.rescale(&product)?;
    let rotated = evaluator.rotate(&product, 1)?;

    // Client side again.
    let decryptor = Decryptor::new(&params, &sk)?;
    let got = encoder.decode(&decryptor.decrypt(&rotated, &*backend)?)?;
    let want: Vec<f64> = (0..slots)
        .map(|i| x[(i + 1) % slots] * y[(i + 1) % slots])
        .collect();
    println!("slot 0: {:.6} (expected {:.6})", got[0], want[0]);
    println!(
        "level {} → {}, scale 2^{:.2}",
        top,
        rotated.level(),
        rotated.scale().log2()
    );
    println!("precision: {}", precision(&want, &got));
    Ok(())
}
