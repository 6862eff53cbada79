//! The job in the latency packing: each image on its own, through client encryption, the
//! server's evaluation with public keys only, and client decryption, every crossing in the
//! compact byte format; per-image times and bytes are what one request costs.

use super::{JobOptions, JobReport, Phase, model_client, peak_memory_bytes, server_side};
use hegpu::Result;
use hegpu::ckks::KeySetId;
use hegpu::data::Mnist;
use hegpu::nn::{LatencyNetwork, Model, pixels};
use hegpu::pair::DIGIT_PIXELS;
use hegpu::pair::{ModelClient, RequestLayout, ServedModel, calibration, request_checksum};
use hegpu::tensor::Scheduler;
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

/// Runs the job with one image per request.
pub(super) fn run_latency(
    opts: &JobOptions,
    mnist: &Mnist,
    model: &Model,
    count: usize,
    mut progress: impl FnMut(Phase, usize, usize),
) -> Result<JobReport> {
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
    let (client, key_bytes) = model_client(
        &params,
        RequestLayout::Latency(network.clone()),
        &mut report,
        &mut progress,
    )?;
    let (scheduler, key_set) = server_side(opts, &params, &key_bytes)?;
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
    let served = ServedModel::latency(network, opts.per_ciphertext);
    for (r, &(start, end)) in requests.iter().enumerate() {
        let images = &test_px[start * DIGIT_PIXELS..end * DIGIT_PIXELS];
        let parties = (&client, &served, &scheduler, key_set);
        match one_request(parties, (r, (start, end)), images, &mut report) {
            Ok((outputs, seconds)) => {
                latency.evaluate_seconds.push(seconds);
                let plain: Vec<Vec<f32>> = images
                    .chunks(DIGIT_PIXELS)
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

type Parties<'a> = (&'a ModelClient, &'a ServedModel, &'a Scheduler, KeySetId);

/// Request `r` of images `range`: encrypt, send, evaluate, send back, decrypt, as framed
/// requests and answers of the one client/server pair (`pair`). Returns the outputs and the
/// server's time.
fn one_request(
    (client, served, scheduler, key_set): Parties<'_>,
    (r, range): (usize, (usize, usize)),
    images: &[f32],
    report: &mut JobReport,
) -> Result<(Vec<Vec<f32>>, f64)> {
    let name = format!("request {r}");
    let t = Instant::now();
    let sent = client.request(r, range, images)?;
    report.seconds_encrypt += t.elapsed().as_secs_f64();
    report.bytes_sent += sent.len();

    let answer = served.answer(scheduler, key_set, &sent, &name, Some((r, range)))?;
    report.note_schedule(answer.report);
    report.seconds_evaluate += answer.seconds;
    report.bytes_received += answer.bytes.len();

    let t = Instant::now();
    let outputs = client.outputs(&answer.bytes, &name, (r, range), request_checksum(&sent)?)?;
    report.seconds_decrypt += t.elapsed().as_secs_f64();
    Ok((outputs, answer.seconds))
}
