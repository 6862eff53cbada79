//! Throughput rows for `hegpu bench`: calls large enough to fill a GPU (10,240 single-limb
//! rows per NTT call, the network's whole dense layer per linear call, 64 ciphertexts per key
//! switch) and several calls between syncs, so a row says what a device sustains rather than
//! one small call's latency (the other rows). Each row also gives the bytes a call must move
//! at least, as GB/s: a floor on the memory traffic, which a GPU's bandwidth bounds.

use super::{Devices, Record, dense_matrix, ntt_rows, rate, ring_for, sample_words};
use hegpu::Result;
use hegpu::backend::Backend;
use hegpu::ckks::{
    Encoder, Encryptor, Evaluator, KeyGenerator, Parameters, Plaintext, Preset, Seed,
};
use std::sync::Arc;
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
        let time = (calls, min_time);
        ciphertext_rows(
            "key_switch",
            &params,
            count,
            devices,
            time,
            push,
            &|dev, pt| {
                let ct =
                    Encryptor::new(&params, &pk, dev.clone(), Seed::from_u64(2))?.encrypt(&pt)?;
                let ev = Evaluator::new(&params, dev.clone(), &keys)?;
                let product = ev.square(&ct)?;
                Ok(Box::new(move || ev.relinearize(&product).map(drop)))
            },
        )?;
    }
    for &(preset, count) in &plan.client_encrypt {
        let params = Parameters::preset(preset)?;
        let sk = KeyGenerator::new(&params, Seed::from_u64(1)).secret_key()?;
        let time = (calls, min_time);
        ciphertext_rows(
            "client_encrypt",
            &params,
            count,
            devices,
            time,
            push,
            &|dev, pt| {
                let encryptor =
                    Encryptor::with_secret_key(&params, &sk, dev.clone(), Seed::from_u64(2))?;
                Ok(Box::new(move || encryptor.encrypt(&pt).map(drop)))
            },
        )?;
    }
    Ok(())
}

/// The call a ciphertext row times, made for one device from the encoded vectors there.
type RowCall<'a> = dyn Fn(&Arc<dyn Backend>, Plaintext) -> Result<Box<dyn Fn() -> Result<()>>> + 'a;

/// A row of `op` per device: `make(device, plaintexts)` prepares a call on `count`
/// ciphertexts' worth of encoded vectors at the top level of `params`, timed `calls` to a
/// sync. Each ciphertext reads about one polynomial and writes two over the level's primes
/// (a relinearization: its third read, two written; an encryption: the plaintext read, two
/// written), the traffic floor of the row.
fn ciphertext_rows(
    op: &'static str,
    params: &Arc<Parameters>,
    count: usize,
    devices: &Devices,
    (calls, min_time): (usize, Duration),
    push: &mut dyn FnMut(Record),
    make: &RowCall<'_>,
) -> Result<()> {
    let (n, top) = (params.degree(), params.max_level());
    let vectors: Vec<Vec<f64>> = (0..count)
        .map(|c| {
            (0..params.slots())
                .map(|i| ((c + i) as f64).sin())
                .collect()
        })
        .collect();
    let bytes_per_ciphertext = (4 * n * (top + 1) * 3) as f64;
    for (dev, threads) in &devices.list {
        let pt = Encoder::new(params).encode_many(&vectors, top, params.default_scale(), &**dev)?;
        let call = make(dev, pt)?;
        let per_second = (calls * count) as f64
            * rate(min_time, || {
                for _ in 0..calls {
                    call()?;
                }
                dev.sync()
            })?;
        push(Record {
            op,
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
