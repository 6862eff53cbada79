//! Throughput rows for `hegpu bench`: calls large enough to fill a GPU (10,240 single-limb
//! rows per NTT call, the network's whole dense layer per linear call, 64 ciphertexts per key
//! switch) and several calls between syncs, so a row says what a device sustains rather than
//! one small call's latency (the other rows). Each row also gives the bytes a call must move
//! at least, as GB/s: a floor on the memory traffic, which a GPU's bandwidth bounds.

use super::{Devices, Record, dense_matrix, ntt_rows, rate, ring_for, sample_words};
use crate::Result;
use crate::ckks::{Encoder, Encryptor, Evaluator, Preset, Seed};
use std::time::Duration;

/// What the throughput section measures.
#[derive(Clone, Debug, Default)]
pub struct ThroughputPlan {
    /// (N, limbs, polynomials per call) of forward and inverse NTTs.
    pub ntt: Vec<(usize, usize, usize)>,
    /// (N, limbs, outputs J, inputs K) of a dense layer as compressed rows (`linear_sparse`).
    pub linear: Vec<(usize, usize, usize, usize)>,
    /// (preset, ciphertexts per call) relinearized at the top level.
    pub key_switch: Vec<(Preset, usize)>,
    /// (preset, ciphertexts per call) encrypted with the secret key at the top level: the
    /// client's batch (on a GPU: masks drawn there, noise sent as bytes).
    pub client_encrypt: Vec<(Preset, usize)>,
    /// Calls between two syncs.
    pub calls: usize,
}

impl ThroughputPlan {
    /// The sizes of the full plan: what one stage of the shipped network asks of a device.
    pub fn full() -> Self {
        Self {
            ntt: vec![(1 << 13, 16, 640), (1 << 14, 16, 640)],
            // The 845→100 layer on lazy squares: 3 polynomials × 5 primes per input.
            linear: vec![(1 << 13, 15, 100, 845)],
            key_switch: vec![(Preset::CryptoNets8192, 64)],
            // One batch of the shipped network: 784 pixels.
            client_encrypt: vec![(Preset::CryptoNets8192, 784)],
            calls: 4,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ntt.is_empty()
            && self.linear.is_empty()
            && self.key_switch.is_empty()
            && self.client_encrypt.is_empty()
    }
}

/// `detail` of a throughput row: the calls per sync and the floor on the traffic.
fn detail(calls: usize, bytes_per_second: f64) -> String {
    format!(
        "throughput: {calls} calls per sync, ≥ {:.1} GB/s moved",
        bytes_per_second / 1e9
    )
}

/// Measures `plan` on every device.
pub fn run_throughput(
    plan: &ThroughputPlan,
    devices: &Devices,
    min_time: Duration,
    push: &mut dyn FnMut(Record),
) -> Result<()> {
    let calls = plan.calls.max(1);
    for &(n, limbs, batch) in &plan.ntt {
        let ring = ring_for(n, limbs)?;
        let floor = |bytes: f64| detail(calls, bytes);
        ntt_rows(&ring, batch, devices, (calls, min_time), &floor, push)?;
    }
    for &(n, limbs, outputs, inputs) in &plan.linear {
        let ring = ring_for(n, limbs)?;
        let x_words = sample_words(&ring, inputs);
        let rows = dense_matrix(&ring, outputs, inputs);
        let macs = (outputs * inputs * limbs * n) as f64;
        // Every input word read and every output word written once.
        let bytes_per_call = (4 * n * limbs * (inputs + outputs)) as f64;
        for (dev, threads) in &devices.list {
            let x = dev.upload(&ring, inputs, &x_words)?;
            let w = dev.upload_sparse(&ring, inputs, &rows)?;
            let calls_per_second = (calls as f64)
                * rate(min_time, || {
                    for _ in 0..calls {
                        dev.linear_sparse(&w, &x)?;
                    }
                    dev.sync()
                })?;
            push(Record {
                op: "linear_sparse_mac",
                n,
                limbs,
                batch: outputs * inputs,
                backend: dev.name(),
                threads: *threads,
                per_second: macs * calls_per_second,
                unit: "multiply-adds",
                detail: detail(calls, bytes_per_call * calls_per_second),
            });
        }
    }
    for &(preset, count) in &plan.key_switch {
        let (params, pk, keys) = super::ckks::preset_keys(preset, &[])?;
        let (n, top) = (params.degree(), params.max_level());
        let vectors: Vec<Vec<f64>> = (0..count)
            .map(|c| {
                (0..params.slots())
                    .map(|i| ((c + i) as f64).sin())
                    .collect()
            })
            .collect();
        // Per ciphertext: its third polynomial read, two polynomials written, over the level's
        // primes (the key is read once per call and left out).
        let bytes_per_ciphertext = (4 * n * (top + 1) * 3) as f64;
        for (dev, threads) in &devices.list {
            let pt =
                Encoder::new(&params).encode_many(&vectors, top, params.default_scale(), &**dev)?;
            let ct = Encryptor::new(&params, &pk, dev.clone(), Seed::from_u64(2))?.encrypt(&pt)?;
            let ev = Evaluator::new(&params, dev.clone(), &keys)?;
            let product = ev.square(&ct)?;
            let per_second = (calls * count) as f64
                * rate(min_time, || {
                    for _ in 0..calls {
                        ev.relinearize(&product)?;
                    }
                    dev.sync()
                })?;
            push(Record {
                op: "key_switch",
                n,
                limbs: top + 1,
                batch: count,
                backend: dev.name(),
                threads: *threads,
                per_second,
                unit: "ciphertexts",
                detail: detail(calls, bytes_per_ciphertext * per_second),
            });
        }
    }
    for &(preset, count) in &plan.client_encrypt {
        client_encrypt_rows(preset, count, devices, (calls, min_time), push)?;
    }
    Ok(())
}

/// Secret-key encryption of `count` encoded vectors per call on every device.
fn client_encrypt_rows(
    preset: Preset,
    count: usize,
    devices: &Devices,
    (calls, min_time): (usize, Duration),
    push: &mut dyn FnMut(Record),
) -> Result<()> {
    let params = crate::ckks::Parameters::preset(preset)?;
    let sk = crate::ckks::KeyGenerator::new(&params, Seed::from_u64(1)).secret_key()?;
    let (n, top) = (params.degree(), params.max_level());
    let vectors: Vec<Vec<f64>> = (0..count)
        .map(|c| {
            (0..params.slots())
                .map(|i| ((c * 7 + i) % 255) as f64 / 255.0)
                .collect()
        })
        .collect();
    // Per ciphertext: the plaintext read, two polynomials written.
    let bytes_per_ciphertext = (4 * n * (top + 1) * 3) as f64;
    for (dev, threads) in &devices.list {
        let pt =
            Encoder::new(&params).encode_many(&vectors, top, params.default_scale(), &**dev)?;
        let encryptor = Encryptor::with_secret_key(&params, &sk, dev.clone(), Seed::from_u64(2))?;
        let per_second = (calls * count) as f64
            * rate(min_time, || {
                for _ in 0..calls {
                    encryptor.encrypt(&pt)?;
                }
                dev.sync()
            })?;
        push(Record {
            op: "client_encrypt",
            n,
            limbs: top + 1,
            batch: count,
            backend: dev.name(),
            threads: *threads,
            per_second,
            unit: "ciphertexts",
            detail: detail(calls, bytes_per_ciphertext * per_second),
        });
    }
    Ok(())
}
