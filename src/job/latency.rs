//! The job in the latency packing: each image on its own, through client encryption, the
//! server's evaluation with public keys only, and client decryption, every crossing in the
//! compact byte format; per-image times and bytes are what one request costs.

use super::{JobOptions, JobReport, Phase, client_keys, peak_memory_bytes};
use crate::Result;
use crate::backend::{Backend, DeviceChoice, select_backend};
use crate::ckks::{Ciphertext, Decryptor, Encoder, Encryptor, EvaluationKeys, Parameters};
use crate::data::Mnist;
use crate::nn::{LatencyNetwork, Model, pixels};
use crate::tensor::Scheduler;
use std::sync::Arc;
use std::time::Instant;

/// Per-request figures of a latency job: a request is one group of images that share
/// ciphertexts (one image unless `--per-ciphertext` says more).
#[derive(Clone, Debug, Default)]
pub struct LatencyReport {
    /// Images per request (per ciphertext).
    pub images_per_request: usize,
    /// The server's time for each request, in order: reading the client's bytes, evaluating,
    /// writing the result's bytes.
    pub evaluate_seconds: Vec<f64>,
    /// Key switches per request (rotations and relinearizations).
    pub key_switches: usize,
    /// Plaintext–ciphertext products per request.
    pub plaintext_products: usize,
    /// Galois keys the plan needs (one per rotation step).
    pub galois_keys: usize,
    /// Ciphertexts the client sends per request.
    pub input_ciphertexts: usize,
}

impl LatencyReport {
    /// The `q`-quantile (0 to 1) of the evaluation times.
    pub fn evaluate_quantile(&self, q: f64) -> f64 {
        let mut t = self.evaluate_seconds.clone();
        t.sort_by(f64::total_cmp);
        let i = ((t.len().max(1) - 1) as f64 * q).round() as usize;
        t.get(i).copied().unwrap_or(0.0)
    }
}

/// The public calibration data latency plans are made with: up to 1,000 training images.
pub(super) fn calibration(mnist: &Mnist) -> Vec<f32> {
    let images = 1000.min(mnist.train_labels.len());
    pixels(&mnist.train_images)[..784 * images].to_vec()
}

/// Runs the job with one image per request.
pub(super) fn run_latency(
    opts: &JobOptions,
    mnist: &Mnist,
    model: &Model,
    count: usize,
    mut progress: impl FnMut(Phase, usize, usize),
) -> Result<JobReport> {
    let host: Arc<dyn Backend> = select_backend(DeviceChoice::Cpu)?;
    let test_px = pixels(&mnist.test_images);

    // Server: plans from the model and public calibration data with the smallest preset that
    // holds it; the plan (preset, layouts and the rotations it needs) is public, the client
    // lays its images out by it.
    let (preset, network) =
        LatencyNetwork::plan_smallest(model, &calibration(mnist), opts.per_ciphertext)?;
    let params = network.params().clone();
    let mut report = JobReport {
        images: count,
        batch_capacity: 1,
        packing: super::Packing::Latency.to_string(),
        preset: preset.name().to_string(),
        levels: params.max_level(),
        predictions: vec![None; count],
        ..Default::default()
    };

    // Client: keys, Galois keys for the plan's rotations only, each up to the level it is
    // used at.
    let (client, key_bytes) = client_keys(
        &params,
        &network.rotation_levels(),
        &host,
        &mut report,
        &mut progress,
    )?;

    let server_keys = EvaluationKeys::from_bytes(&key_bytes, &params)?;
    let scheduler = opts.server.scheduler(&params, &server_keys)?;
    report.device = scheduler.name();
    let cost = network.cost();
    let per = cost.images_per_ciphertext;
    let mut latency = LatencyReport {
        images_per_request: per,
        key_switches: cost.key_switches,
        plaintext_products: cost.plaintext_products,
        galois_keys: cost.rotations,
        input_ciphertexts: cost.input_ciphertexts,
        ..Default::default()
    };

    let requests: Vec<(usize, usize)> = (0..count)
        .step_by(per)
        .map(|s| (s, (s + per).min(count)))
        .collect();
    for (r, &(start, end)) in requests.iter().enumerate() {
        let images = &test_px[start * 784..end * 784];
        let parties = (
            &client.encoder,
            &client.encryptor,
            &client.decryptor,
            &scheduler,
        );
        match one_request(&network, parties, &params, &*host, images, &mut report) {
            Ok((outputs, seconds)) => {
                latency.evaluate_seconds.push(seconds);
                let plain: Vec<Vec<f32>> = images
                    .chunks(784)
                    .map(|img| model.forward(img))
                    .collect::<Result<_>>()?;
                report.score(start, &outputs, &plain, &mnist.test_labels[start..end]);
            }
            Err(e) => report
                .failed_batches
                .push(format!("images {start}..{end}: {e}")),
        }
        for phase in [Phase::Encrypt, Phase::Evaluate, Phase::Decrypt] {
            progress(phase, r + 1, requests.len());
        }
    }
    report.batches = requests.len();
    report.kernels = scheduler.kernel_profile();
    report.warnings = scheduler.take_warnings();
    report.latency = Some(latency);
    report.peak_memory_bytes = peak_memory_bytes();
    Ok(report)
}

type Parties<'a> = (&'a Encoder, &'a Encryptor, &'a Decryptor, &'a Scheduler);

/// One request: encrypt, send, evaluate, send back, decrypt. Returns the outputs and the
/// server's time.
fn one_request(
    network: &LatencyNetwork,
    (encoder, encryptor, decryptor, scheduler): Parties<'_>,
    params: &Arc<Parameters>,
    host: &dyn Backend,
    images: &[f32],
    report: &mut JobReport,
) -> Result<(Vec<Vec<f32>>, f64)> {
    let t = Instant::now();
    let sent = network
        .encrypt(encoder, encryptor, images)?
        .to_bytes(params, host)?;
    report.seconds_encrypt += t.elapsed().as_secs_f64();
    report.bytes_sent += sent.len();

    let t = Instant::now();
    let x = Ciphertext::from_bytes(&sent, params, &**scheduler.host())?;
    let (y, schedule) = network.evaluate_report(scheduler, x)?;
    let received = y.to_bytes(params, &**scheduler.host())?;
    let seconds = t.elapsed().as_secs_f64();
    report.note_schedule(schedule);
    report.seconds_evaluate += seconds;
    report.bytes_received += received.len();

    let t = Instant::now();
    let y = Ciphertext::from_bytes(&received, params, host)?;
    let outputs = network.decrypt(decryptor, encoder, &y, images.len() / 784, host)?;
    report.seconds_decrypt += t.elapsed().as_secs_f64();
    Ok((outputs, seconds))
}
