//! The client on every core: encoding, encryption (secret and public key) and decryption run
//! one ciphertext per task, each drawing its mask and noise from its own stream of the call's
//! seeds, so the words are the same on 1 thread as on several, and decrypt to the values;
//! encrypting straight to bytes gives the bytes of encrypting, then writing.

mod common;

use hegpu::backend::{Backend, CpuBackend};
use hegpu::ckks::*;
use std::sync::Arc;

/// Serialized ciphertexts of `vectors` (secret key, then public key) and their decryptions,
/// made on `threads` rayon threads from fixed seeds.
fn client(
    params: &Arc<Parameters>,
    vectors: &[Vec<f64>],
    threads: usize,
) -> (Vec<u8>, Vec<u8>, Vec<Vec<f64>>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(Some(threads)).unwrap());
        let mut keygen = KeyGenerator::new(params, Seed::from_u64(41));
        let sk = keygen.secret_key().unwrap();
        let pk = keygen.public_key(&sk).unwrap();
        let encoder = Encoder::new(params);
        let pt = encoder
            .encode_many(vectors, params.max_level(), params.default_scale(), &*cpu)
            .unwrap();
        let secret = Encryptor::with_secret_key(params, &sk, cpu.clone(), Seed::from_u64(42))
            .unwrap()
            .encrypt(&pt)
            .unwrap();
        let public = Encryptor::new(params, &pk, cpu.clone(), Seed::from_u64(43))
            .unwrap()
            .encrypt(&pt)
            .unwrap();
        // Encoded, encrypted and written a ciphertext at a time: the same bytes.
        let direct = Encryptor::with_secret_key(params, &sk, cpu.clone(), Seed::from_u64(42))
            .unwrap()
            .encrypt_to_bytes(
                &encoder,
                vectors,
                params.max_level(),
                params.default_scale(),
            )
            .unwrap();
        assert!(
            direct == secret.to_bytes(params, &*cpu).unwrap(),
            "encrypt_to_bytes differs from encrypt and to_bytes"
        );
        let decryptor = Decryptor::new(params, &sk).unwrap();
        let decrypted = decryptor
            .decrypt_all(&secret, &*cpu)
            .unwrap()
            .iter()
            .map(|p| encoder.decode(p).unwrap())
            .collect();
        (
            secret.to_bytes(params, &*cpu).unwrap(),
            public.to_bytes(params, &*cpu).unwrap(),
            decrypted,
        )
    })
}

#[test]
fn the_client_gives_the_same_words_on_any_number_of_threads() {
    let params = common::test_params(2);
    // More ciphertexts than one task writes, so several tasks write their parts.
    let vectors: Vec<Vec<f64>> = (0..19)
        .map(|v| {
            (0..params.slots())
                .map(|i| ((i * 7 + v * 13) % 101) as f64 / 101.0 - 0.5)
                .collect()
        })
        .collect();
    let one = client(&params, &vectors, 1);
    let two = client(&params, &vectors, 2);
    let three = client(&params, &vectors, 3);
    assert!(
        one.0 == two.0 && one.0 == three.0,
        "secret-key ciphertexts differ"
    );
    assert!(
        one.1 == two.1 && one.1 == three.1,
        "public-key ciphertexts differ"
    );
    let decrypted = &one.2;
    for (want, got) in vectors.iter().zip(decrypted) {
        let err = want
            .iter()
            .zip(got)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-3, "decrypted within {err}");
    }
}

/// The compact format of fresh ciphertexts, pinned by length and checksum for fixed seeds: a
/// change to how ciphertexts are encrypted or written shows here.
#[test]
fn fresh_ciphertexts_keep_their_bytes() {
    let params = common::test_params(2);
    let vectors: Vec<Vec<f64>> = (0..5)
        .map(|v| {
            (0..params.slots())
                .map(|i| ((i + v) % 17) as f64 / 17.0)
                .collect()
        })
        .collect();
    let (secret, public, _) = client(&params, &vectors, 2);
    // The last four bytes are the checksum of all before them.
    let pin = |b: &[u8]| {
        (
            b.len(),
            u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap()),
        )
    };
    assert_eq!(pin(&secret), (212_563, 1_231_549_646));
    assert_eq!(pin(&public), (425_011, 250_109_861));
}
