//! Where the client's time goes for one full batch of the batch packing (N = 2^13, 4,096
//! images, 784 ciphertexts): encoding the slot vectors, encrypting them with the secret key
//! (masks, noise, transforms), serializing, and decrypting and decoding the ten logits.
//!
//! ```sh
//! cargo run --release --example client_costs -- [--threads T] [--repeat R]
//! ```

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use std::sync::Arc;
use std::time::Instant;

fn main() -> hegpu::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut threads, mut repeat) = (None, 3usize);
    while let Some(a) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (a.as_str(), value) {
            ("--threads", Some(t)) => threads = Some(t),
            ("--repeat", Some(r)) => repeat = r,
            _ => {
                eprintln!("usage: client_costs [--threads T] [--repeat R]");
                std::process::exit(2);
            }
        }
    }
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| hegpu::Error::Config(e.to_string()))?;
    }
    let params = Parameters::preset(Preset::CryptoNets8192)?;
    let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(threads)?);
    let mut keygen = KeyGenerator::new(&params, Seed::Os);
    let sk = keygen.secret_key()?;
    let encoder = Encoder::new(&params);
    let encryptor = Encryptor::with_secret_key(&params, &sk, cpu.clone(), Seed::Os)?;
    let decryptor = Decryptor::new(&params, &sk)?;
    // 784 slot vectors of 4,096 pixels: one per input of the network.
    let vectors: Vec<Vec<f64>> = (0..784)
        .map(|j| {
            (0..params.slots())
                .map(|i| ((i * 31 + j * 7) % 256) as f64 / 255.0)
                .collect()
        })
        .collect();
    println!(
        "one batch: 784 ciphertexts of {} images, {} threads",
        params.slots(),
        rayon::current_num_threads()
    );
    println!(
        "{:>8} {:>8} {:>10} {:>8} {:>8} {:>9}",
        "encode", "encrypt", "serialize", "decrypt", "total", "one pass"
    );
    for _ in 0..repeat {
        let t = Instant::now();
        let pt =
            encoder.encode_many(&vectors, params.max_level(), params.default_scale(), &*cpu)?;
        let encode = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ct = encryptor.encrypt(&pt)?;
        let encrypt = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let bytes = ct.to_bytes(&params, &*cpu)?;
        let serialize = t.elapsed().as_secs_f64();
        assert!(!bytes.is_empty());
        // The server answers with ten ciphertexts (at level 0: these, at the top level, take
        // longer to decrypt).
        let ten = encryptor.encrypt(&encoder.encode_many(
            &vectors[..10],
            params.max_level(),
            params.default_scale(),
            &*cpu,
        )?)?;
        let t = Instant::now();
        for p in decryptor.decrypt_all(&ten, &*cpu)? {
            encoder.decode(&p)?;
        }
        let decrypt = t.elapsed().as_secs_f64();
        // What the job's client runs: encode, encrypt and serialize a ciphertext at a time.
        let t = Instant::now();
        let sent = encryptor.encrypt_to_bytes(
            &encoder,
            &vectors,
            params.max_level(),
            params.default_scale(),
        )?;
        let one_pass = t.elapsed().as_secs_f64();
        assert_eq!(sent.len(), bytes.len());
        println!(
            "{encode:>7.3}s {encrypt:>7.3}s {serialize:>9.3}s {decrypt:>7.3}s {:>7.3}s {one_pass:>8.3}s",
            encode + encrypt + serialize + decrypt
        );
    }
    Ok(())
}
