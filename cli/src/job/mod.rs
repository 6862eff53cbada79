//! The encrypted MNIST batch job behind `hegpu mnist`: the client makes keys and encrypts
//! batches of test images, the server evaluates the model with public material only, the
//! client decrypts and takes the argmax. Every crossing between client and server goes
//! through the compact byte format, so the sizes reported are what a network would carry.

pub(crate) mod agreement;
pub mod files;
pub mod he_bench;
pub(crate) mod import;
pub(crate) mod latency;

pub use agreement::Agreement;
pub use import::{ImportOptions, ImportReport, run_import};
pub use latency::LatencyReport;

use hegpu::backend::{Backend, DeviceChoice, GpuOptions, choose_backend};
use hegpu::ckks::{EvaluationKeys, KeySetId, Parameters};
use hegpu::data::Mnist;
use hegpu::nn::{Bounds, EncryptedNetwork, argmax, pixels};
use hegpu::pair::{
    DIGIT_PIXELS, ModelClient, RequestLayout, ServedModel, calibration, load_digit_model,
    request_checksum,
};
use hegpu::tensor::{Mode, ScheduleOptions, Scheduler, StageReport};
use hegpu::{Error, Result};
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What the job runs on.
#[derive(Clone, Debug)]
pub struct JobOptions {
    /// Test images to classify (several batches when more than N/2).
    pub images: usize,
    pub data: PathBuf,
    pub model: PathBuf,
    pub server: ServerDevice,
    pub packing: Packing,
    /// Images that share a ciphertext in the latency packing (at most; 1: each image alone).
    pub per_ciphertext: usize,
    /// Images per batch in the batch packing (at most and by default N/2). A batch costs the
    /// server the same however many slots it fills; smaller ones overlap more.
    pub batch: Option<usize>,
    /// Batches between encryption and decryption at once: 1 runs client and server one after
    /// the other, 2 (the default) encrypts the next batch while the server evaluates one.
    pub in_flight: usize,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            images: 1000,
            data: "data/mnist".into(),
            model: "models/cryptonets-5.safetensors".into(),
            server: ServerDevice::default(),
            packing: Packing::Auto,
            per_ciphertext: 1,
            batch: None,
            in_flight: 2,
        }
    }
}

/// How images are packed into ciphertexts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Packing {
    /// CryptoNets: one ciphertext per activation, an image per slot; a batch of up to N/2
    /// images costs the same as one.
    Batch,
    /// One image per ciphertext, rotations: each image costs a few dozen key switches.
    Latency,
    /// Latency up to [`Packing::AUTO_LATENCY_IMAGES`] images, batch beyond.
    #[default]
    Auto,
}

impl Packing {
    /// Where `auto` switches to the batch packing. On 2 CPU cores a batch of the shipped
    /// model takes about as long as 40 to 60 images one by one (2026-12-02); below 32 the
    /// latency packing is faster in total and each image is answered on its own.
    pub const AUTO_LATENCY_IMAGES: usize = 32;

    /// The packing a job of `images` images uses.
    pub fn resolve(self, images: usize) -> Packing {
        match self {
            Packing::Auto if images <= Self::AUTO_LATENCY_IMAGES => Packing::Latency,
            Packing::Auto => Packing::Batch,
            p => p,
        }
    }
}

impl std::str::FromStr for Packing {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "batch" => Ok(Packing::Batch),
            "latency" => Ok(Packing::Latency),
            "auto" => Ok(Packing::Auto),
            _ => Err(Error::Config(format!(
                "packing '{s}': expected batch, latency or auto"
            ))),
        }
    }
}

impl std::fmt::Display for Packing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Packing::Batch => "batch",
            Packing::Latency => "latency",
            Packing::Auto => "auto",
        })
    }
}

/// Where the server evaluates.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerDevice {
    pub device: DeviceChoice,
    /// GPU memory the server may use, in bytes (`--gpu-memory`; beyond the whole network's
    /// need, batches stream through the GPU in chunks).
    pub gpu_memory: Option<u64>,
    /// Share stages between the GPU and the CPU (`--split`).
    pub split: bool,
    /// Time every GPU dispatch with timestamps (`--profile`; each submission waits for them).
    pub profile: bool,
    /// How a GPU is opened (`gpu_memory` and `profile` override its budget and profiling).
    pub gpu: GpuOptions,
}

impl ServerDevice {
    /// The scheduler for these choices, with `keys` on each device it uses.
    /// Why the CPU was chosen, when `auto` chose it, is the scheduler's first warning.
    pub fn scheduler(&self, params: &Arc<Parameters>, keys: &EvaluationKeys) -> Result<Scheduler> {
        let (backend, note) = self.backend()?;
        let scheduler = Scheduler::new(params, keys, backend, self.schedule_options())?;
        note.into_iter().for_each(|n| scheduler.warn(n));
        Ok(scheduler)
    }

    /// The device these choices open, and why `auto` took the CPU when it did (a server that
    /// shares one device between several schedulers opens it once).
    pub fn backend(&self) -> Result<(Arc<dyn Backend>, Option<String>)> {
        let mut gpu = self.gpu;
        gpu.memory_budget = self.gpu_memory.or(gpu.memory_budget);
        gpu.profile = self.profile;
        choose_backend(self.device, gpu)
    }

    /// How a scheduler shares the work between the devices.
    pub fn schedule_options(&self) -> ScheduleOptions {
        ScheduleOptions {
            split: self.split,
            ..Default::default()
        }
    }
}

/// The phases progress is reported for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Keys,
    Encrypt,
    Evaluate,
    Decrypt,
}

/// Everything the job measured.
#[derive(Clone, Debug, Default)]
pub struct JobReport {
    pub device: String,
    /// `batch` or `latency`.
    pub packing: String,
    /// The parameter preset's name (the smallest that holds the model).
    pub preset: String,
    /// The levels of the chain the plan runs on: the preset's, cut to what the plan uses.
    pub levels: usize,
    pub images: usize,
    pub batches: usize,
    /// Batches that failed (their images are not counted below).
    pub failed_batches: Vec<String>,
    pub correct: usize,
    /// The decrypted logits against the plaintext model's.
    pub agreement: Agreement,
    pub classified: usize,
    pub seconds_keys: f64,
    pub seconds_encrypt: f64,
    pub seconds_evaluate: f64,
    pub seconds_decrypt: f64,
    /// Wall time from the first encryption to the last decryption (the stages overlap).
    pub seconds_end_to_end: f64,
    pub bytes_keys: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    /// Images one batch holds (N/2); a batch costs the server the same however full it is.
    pub batch_capacity: usize,
    /// Peak resident memory of this process (client and server together), where the operating
    /// system reports it (Linux).
    pub peak_memory_bytes: Option<u64>,
    /// Where the batches ran (one entry per batch).
    pub modes: Vec<Mode>,
    /// GPU failures the CPU made up for.
    pub fallbacks: Vec<String>,
    /// What the user should be told (why the CPU was chosen, a GPU failure), for the caller
    /// to show: the library prints nothing.
    pub warnings: Vec<String>,
    /// Ciphertexts key-switched (relinearized) by the server, all batches together.
    pub key_switches: u64,
    /// Single-limb NTTs the server ran, all batches together.
    pub ntts: u64,
    /// Each stage of the network summed over the batches: chunks per device, seconds, and the
    /// GPU's uploads, readbacks and dispatches.
    pub stages: Vec<StageReport>,
    /// GPU time and bytes per kernel over the whole job, when profiled on a GPU with
    /// timestamps.
    pub kernels: Option<Vec<hegpu::backend::KernelProfile>>,
    /// Per-image figures, in the latency packing.
    pub latency: Option<LatencyReport>,
    /// The decrypted digit of each image, in order (`None`: its batch failed).
    pub predictions: Vec<Option<usize>>,
}

impl JobReport {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.classified.max(1) as f64
    }

    /// Scores the decrypted `outputs` of images `start..`: their digits against `labels`,
    /// their logits against the plaintext model's (`plain`).
    pub(crate) fn score(
        &mut self,
        start: usize,
        outputs: &[Vec<f32>],
        plain: &[Vec<f32>],
        labels: &[u8],
    ) {
        for (i, ((out, want), &label)) in outputs.iter().zip(plain).zip(labels).enumerate() {
            let guess = argmax(out);
            self.predictions[start + i] = Some(guess);
            self.correct += usize::from(guess == usize::from(label));
            self.agreement.add(out, want);
        }
        self.classified += outputs.len();
    }

    /// Adds one batch's schedule.
    pub fn note_schedule(&mut self, schedule: hegpu::tensor::ScheduleReport) {
        self.modes.push(schedule.mode);
        self.fallbacks.extend(schedule.fallback);
        self.key_switches += schedule.key_switches;
        self.ntts += schedule.ntts;
        if self.stages.len() < schedule.stages.len() {
            self.stages = schedule.stages;
        } else {
            for (sum, s) in self.stages.iter_mut().zip(&schedule.stages) {
                sum.add(s);
            }
        }
    }

    /// The GPU's counts over every stage of every batch (zero without a GPU).
    pub fn gpu_counts(&self) -> hegpu::backend::TransferCounts {
        let mut sum = hegpu::backend::TransferCounts::default();
        for s in &self.stages {
            sum.add(&s.counts);
        }
        sum
    }

    /// Images per second of the server's evaluation.
    pub fn server_images_per_second(&self) -> f64 {
        self.classified as f64 / self.seconds_evaluate.max(1e-9)
    }

    /// Images per second from the client's first encryption to its last decryption: the wall
    /// time where the stages overlapped (the batch packing), else their sum.
    pub fn end_to_end_images_per_second(&self) -> f64 {
        let seconds = if self.seconds_end_to_end > 0.0 {
            self.seconds_end_to_end
        } else {
            self.seconds_encrypt + self.seconds_evaluate + self.seconds_decrypt
        };
        self.classified as f64 / seconds.max(1e-9)
    }

    /// Images per second the server would evaluate with every batch full: its time per batch
    /// does not depend on how many slots hold images.
    pub fn server_images_per_second_full(&self) -> f64 {
        (self.batches * self.batch_capacity) as f64 / self.seconds_evaluate.max(1e-9)
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let per = |b: usize| b as f64 / self.classified.max(1) as f64;
        let (g, batches) = (self.gpu_counts(), self.modes.len().max(1) as f64);
        let gpu_per_batch = serde_json::json!({
            "dispatches": g.dispatches as f64 / batches,
            "submits": g.submits as f64 / batches,
            "buffers_created": g.buffers_created as f64 / batches,
            "zeroed_bytes": g.zeroed_bytes as f64 / batches,
            "bind_groups": g.bind_groups as f64 / batches,
            "cleared_bytes": g.cleared_bytes as f64 / batches,
            "host_record_ms": g.host_ns as f64 / 1e6 / batches,
            "gpu_ms": g.gpu_ns as f64 / 1e6 / batches,
            "upload_bytes": g.upload_bytes as f64 / batches,
            "readback_bytes": g.readback_bytes as f64 / batches,
            "traffic_bytes": (g.bytes_read + g.bytes_written) as f64 / batches,
        });
        let latency = self.latency.as_ref().map(|l| {
            serde_json::json!({
                "images_per_request": l.images_per_request,
                "evaluate_seconds_median": l.evaluate_quantile(0.5),
                "evaluate_seconds_p90": l.evaluate_quantile(0.9),
                "evaluate_seconds_max": l.evaluate_quantile(1.0),
                "key_switches_per_request": l.key_switches,
                "plaintext_products_per_request": l.plaintext_products,
                "galois_keys": l.galois_keys,
                "input_ciphertexts_per_request": l.input_ciphertexts,
            })
        });
        let mut json = serde_json::json!({
            "device": self.device,
            "images": self.images,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "classified": self.classified,
            "accuracy": self.accuracy(),
            "agreement_with_plaintext": self.agreement.share(),
            "max_logit_error": self.agreement.max_logit_error,
            "max_logit": self.agreement.max_logit,
            "near_ties": self.agreement.near_ties(),
            "seconds": {
                "keys": self.seconds_keys,
                "encrypt": self.seconds_encrypt,
                "evaluate": self.seconds_evaluate,
                "decrypt": self.seconds_decrypt,
            },
            "server_images_per_second": self.server_images_per_second(),
            "server_images_per_second_full_batches": self.server_images_per_second_full(),
            "batch_capacity": self.batch_capacity,
            "peak_memory_bytes": self.peak_memory_bytes,
            "modes": self.modes.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            "fallbacks": self.fallbacks,
            "key_switches": self.key_switches,
            "key_switches_per_batch": self.key_switches as f64 / self.modes.len().max(1) as f64,
            "ntts": self.ntts,
            "ntts_per_batch": self.ntts as f64 / self.modes.len().max(1) as f64,
            "bytes_sent_per_batch": self.bytes_sent as f64 / self.modes.len().max(1) as f64,
            "stages": self.stages.iter().map(|s| serde_json::json!({
                "stage": s.what,
                "gpu_chunks": s.gpu_chunks,
                "cpu_chunks": s.cpu_chunks,
                "seconds": s.seconds,
                "dispatches": s.counts.dispatches,
                "uploads": s.counts.uploads,
                "upload_bytes": s.counts.upload_bytes,
                "readbacks": s.counts.readbacks,
                "readback_bytes": s.counts.readback_bytes,
                "submits": s.counts.submits,
                "buffers_created": s.counts.buffers_created,
                "zeroed_bytes": s.counts.zeroed_bytes,
                "bind_groups": s.counts.bind_groups,
                "cleared_bytes": s.counts.cleared_bytes,
                "host_record_ms": s.counts.host_ns as f64 / 1e6,
                "gpu_ms": s.counts.gpu_ns as f64 / 1e6,
                "traffic_bytes": s.counts.bytes_read + s.counts.bytes_written,
            })).collect::<Vec<_>>(),
            "kernels": self.kernels.as_ref().map(|ks| ks.iter().map(|k| serde_json::json!({
                "kernel": k.kernel,
                "dispatches": k.dispatches,
                "gpu_ms": k.gpu_ns as f64 / 1e6,
                "bytes_read": k.bytes_read,
                "bytes_written": k.bytes_written,
                "gb_per_second": k.gb_per_second(),
            })).collect::<Vec<_>>()),
            "gpu_per_batch": gpu_per_batch,
            "bytes_evaluation_keys": self.bytes_keys,
            "bytes_sent_per_image": per(self.bytes_sent),
            "bytes_received_per_image": per(self.bytes_received),
        });
        // (outside the macro, which is at its recursion limit)
        json["end_to_end_images_per_second"] = self.end_to_end_images_per_second().into();
        json["packing"] = self.packing.clone().into();
        json["preset"] = self.preset.clone().into();
        json["levels"] = self.levels.into();
        json["predictions"] = self.predictions.clone().into();
        json["latency"] = latency.unwrap_or_default();
        json["warnings"] = serde_json::json!(self.warnings);
        json.to_string()
    }
}

/// Runs the job; `progress(phase, done, total)` is called as work completes.
pub fn run_mnist(
    opts: &JobOptions,
    mut progress: impl FnMut(Phase, usize, usize),
) -> Result<JobReport> {
    let mnist = Mnist::load(&opts.data)?;
    let model = load_digit_model(&opts.model)?;
    let count = opts.images.min(mnist.test_labels.len());
    if count == 0 {
        return Err(Error::Config("--images must be at least 1".into()));
    }
    // `auto` picks the latency packing for few images when it can evaluate the model.
    let packing = match opts.packing.resolve(count) {
        Packing::Latency
            if opts.packing == Packing::Auto && !hegpu::nn::LatencyNetwork::supports(&model) =>
        {
            Packing::Batch
        }
        p => p,
    };
    if packing == Packing::Latency {
        return latency::run_latency(opts, &mnist, &model, count, progress);
    }
    // The server plans with public calibration data (training images) and the smallest
    // preset that holds the model; the client makes its keys for that preset.
    let (preset, network) =
        EncryptedNetwork::plan_smallest(&model, &Bounds::measure(&model, &calibration(&mnist))?)?;
    let params = network.params().clone();
    let mut report = JobReport {
        images: count,
        batch_capacity: params.slots(),
        packing: Packing::Batch.to_string(),
        preset: preset.name().to_string(),
        levels: params.max_level(),
        predictions: vec![None; count],
        ..Default::default()
    };
    let test_px = pixels(&mnist.test_images);
    let plain: Vec<Vec<f32>> = test_px[..count * DIGIT_PIXELS]
        .par_chunks(DIGIT_PIXELS)
        .map(|img| model.forward(img))
        .collect::<Result<_>>()?;

    // Client: keys. Only the parameters and evaluation keys travel.
    let (client, key_bytes) = model_client(
        &params,
        RequestLayout::batch(&network),
        &mut report,
        &mut progress,
    )?;

    // Server: builds its evaluator from the bytes it received.
    let (scheduler, key_set) = server_side(opts, &params, &key_bytes)?;
    check_memory(&network, &scheduler, &params)?;
    report.device = scheduler.name();
    let served = ServedModel::batch(network);

    let slots = params.slots();
    let per_batch = opts.batch.unwrap_or(slots);
    if per_batch == 0 || per_batch > slots {
        return Err(Error::Config(format!(
            "a batch holds 1 to {slots} images, not {per_batch}"
        )));
    }
    let batches: Vec<(usize, usize)> = (0..count)
        .step_by(per_batch)
        .map(|s| (s, (s + per_batch).min(count)))
        .collect();
    report.batches = batches.len();
    let started = Instant::now();
    let done = pipeline(
        (&served, &scheduler, key_set),
        &client,
        (&test_px, &batches),
        opts.in_flight.max(1),
        &mut report,
        &mut progress,
    );
    report.seconds_end_to_end = started.elapsed().as_secs_f64();
    for (b, outputs) in done {
        let (start, end) = batches[b];
        match outputs {
            Ok(outputs) => {
                report.score(
                    start,
                    &outputs,
                    &plain[start..],
                    &mnist.test_labels[start..],
                );
            }
            Err(e) => report
                .failed_batches
                .push(format!("images {start}..{end}: {e}")),
        }
    }
    report.kernels = scheduler.kernel_profile();
    report.warnings = scheduler.take_warnings();
    report.peak_memory_bytes = peak_memory_bytes();
    Ok(report)
}

/// The client's keys, from the operating system's entropy: its side of the job (laid out by
/// the server's plan, `layout`), and the bytes of the evaluation keys the server gets. Reports the key time and bytes.
pub(crate) fn model_client(
    params: &Arc<Parameters>,
    layout: RequestLayout,
    report: &mut JobReport,
    progress: &mut impl FnMut(Phase, usize, usize),
) -> Result<(ModelClient, Vec<u8>)> {
    let t = Instant::now();
    progress(Phase::Keys, 0, 1);
    let (client, key_bytes) = ModelClient::new(params.clone(), layout)?;
    report.bytes_keys = key_bytes.len() + params.to_bytes().len();
    progress(Phase::Keys, 1, 1);
    report.seconds_keys = t.elapsed().as_secs_f64();
    Ok((client, key_bytes))
}

/// The server's side of a job: its scheduler, from the evaluation keys' bytes it received, and
/// the key set they belong to.
pub(crate) fn server_side(
    opts: &JobOptions,
    params: &Arc<Parameters>,
    key_bytes: &[u8],
) -> Result<(Scheduler, KeySetId)> {
    let keys = EvaluationKeys::from_bytes(key_bytes, params)?;
    let key_set = keys
        .key_set()?
        .ok_or_else(|| Error::Config("the client's evaluation keys hold no key".into()))?;
    Ok((opts.server.scheduler(params, &keys)?, key_set))
}

/// An error when one batch of `network` needs more memory than this machine has (Linux; no
/// check elsewhere): a model within the file limits can still ask for tens of gigabytes.
pub fn check_memory(
    network: &EncryptedNetwork,
    scheduler: &Scheduler,
    params: &Parameters,
) -> Result<()> {
    let inputs: usize = network.shape().0.iter().product();
    let need = scheduler.resident_bytes(network.layer_plan(), inputs, params.max_level());
    fits(need, memory_total_bytes())
}

/// An error when `need` bytes exceed the machine's `total` (when known).
fn fits(need: u64, total: Option<u64>) -> Result<()> {
    let gib = |b: u64| b as f64 / f64::from(1 << 30);
    match total {
        Some(total) if need > total => Err(Error::Config(format!(
            "one batch of this model needs about {:.1} GiB; this machine has {:.1} GiB",
            gib(need),
            gib(total)
        ))),
        _ => Ok(()),
    }
}

/// The machine's memory (`MemTotal` in /proc/meminfo), on Linux.
fn memory_total_bytes() -> Option<u64> {
    proc_bytes("/proc/meminfo", "MemTotal:")
}

/// A `field:  N kB` line of a /proc file, in bytes.
fn proc_bytes(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process's peak resident set (`VmHWM` in /proc/self/status), on Linux.
pub fn peak_memory_bytes() -> Option<u64> {
    proc_bytes("/proc/self/status", "VmHWM:")
}

/// The batches through client encryption, server evaluation and client decryption, the three
/// overlapping: batch k + 1 is encrypted while batch k is evaluated and batch k − 1 decrypted
/// (the client's two threads and the server's hand batches on through channels of one, so at
/// most two batches wait between stages). Each is a framed request and answer of the one
/// client/server pair (`pair`) the split job and the service use. Returns each batch's outputs
/// or error, in order; a batch that fails at any stage is reported and the others go on.
fn pipeline(
    (served, scheduler, key_set): (&ServedModel, &Scheduler, KeySetId),
    client: &ModelClient,
    (pixels, batches): (&[f32], &[(usize, usize)]),
    in_flight: usize,
    report: &mut JobReport,
    progress: &mut impl FnMut(Phase, usize, usize),
) -> Vec<(usize, Result<Vec<Vec<f32>>>)> {
    use std::sync::mpsc::sync_channel;
    let total = batches.len();
    let name = |b: usize| format!("batch {b}");
    let (to_server, from_client) = sync_channel::<(usize, Result<(Vec<u8>, f64)>)>(1);
    let (to_client, from_server) = sync_channel::<(usize, Result<(Vec<u8>, u32)>)>(1);
    // Batches between encryption and decryption: the client takes a token before it encrypts
    // one and gives it back when it has decrypted one.
    let (give_token, take_token) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        give_token.send(()).expect("room for every token");
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (b, &(start, end)) in batches.iter().enumerate() {
                if take_token.recv().is_err() {
                    return;
                }
                let t = Instant::now();
                let images = &pixels[start * DIGIT_PIXELS..end * DIGIT_PIXELS];
                let sent = (client.request(b, (start, end), images))
                    .map(|bytes| (bytes, t.elapsed().as_secs_f64()));
                if to_server.send((b, sent)).is_err() {
                    return;
                }
            }
        });
        let decrypting = scope.spawn(move || {
            from_server
                .into_iter()
                .map(|(b, received)| {
                    let t = Instant::now();
                    let outputs = received.and_then(|(answer, source)| {
                        client.outputs(&answer, &name(b), (b, batches[b]), source)
                    });
                    let _ = give_token.send(());
                    (b, outputs, t.elapsed().as_secs_f64())
                })
                .collect::<Vec<_>>()
        });
        // The server, on this thread: it owns the scheduler.
        for (b, sent) in from_client {
            progress(Phase::Encrypt, b + 1, total);
            let received = sent.and_then(|(bytes, seconds)| {
                report.seconds_encrypt += seconds;
                report.bytes_sent += bytes.len();
                progress(Phase::Evaluate, b, total);
                let source = request_checksum(&bytes)?;
                let expected = Some((b, batches[b]));
                let answer = served.answer(scheduler, key_set, &bytes, &name(b), expected)?;
                // The batch's bytes are not needed once answered.
                drop(bytes);
                report.seconds_evaluate += answer.seconds;
                report.note_schedule(answer.report);
                report.bytes_received += answer.bytes.len();
                Ok((answer.bytes, source))
            });
            progress(Phase::Evaluate, b + 1, total);
            if to_client.send((b, received)).is_err() {
                break;
            }
        }
        drop(to_client);
        let decrypted = decrypting
            .join()
            .expect("the decrypting thread does not panic");
        decrypted
            .into_iter()
            .map(|(b, outputs, seconds)| {
                report.seconds_decrypt += seconds;
                progress(Phase::Decrypt, b + 1, total);
                (b, outputs)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hegpu::backend::CpuBackend;
    use hegpu::ckks::{KeyGenerator, Seed};
    use hegpu::nn::{Dense, Flatten, Layer, Model, Pad2d, Square};
    use hegpu::tensor::ScheduleOptions;

    #[test]
    fn a_model_within_the_file_limits_can_still_be_too_large_for_the_machine() {
        // 64,516 activations after the first square: each a ciphertext of the batch layout.
        let model = Model {
            input: vec![1, 28, 28],
            layers: vec![
                Layer::Pad2d(Pad2d {
                    top: 113,
                    bottom: 113,
                    left: 113,
                    right: 113,
                }),
                Layer::Square(Square),
                Layer::Flatten(Flatten),
                Layer::Dense(Dense {
                    inputs: 254 * 254,
                    outputs: 10,
                    weight: vec![0.001; 254 * 254 * 10],
                    bias: vec![0.0; 10],
                }),
            ],
        };
        model.shapes().unwrap();
        let params = Parameters::preset(hegpu::ckks::Preset::CryptoNets8192).unwrap();
        let mut keygen = KeyGenerator::new(&params, Seed::from_u64(1));
        let sk = keygen.secret_key().unwrap();
        let keys = EvaluationKeys {
            relin: Some(keygen.relin_key(&sk).unwrap()),
            ..Default::default()
        };
        let images = vec![0.5f32; 2 * 784];
        let bounds = hegpu::nn::Bounds::measure(&model, &images).unwrap();
        let network = EncryptedNetwork::plan(&model, &params, &bounds).unwrap();
        let cpu: Arc<dyn Backend> = Arc::new(CpuBackend::new(Some(1)).unwrap());
        let scheduler = Scheduler::new(&params, &keys, cpu, ScheduleOptions::default()).unwrap();
        let need = scheduler.resident_bytes(network.layer_plan(), 784, params.max_level());
        // 64,516 ciphertexts of 6 limbs (393 KB each): over 24 GiB.
        assert!(need > 24 << 30, "{need}");
        let e = fits(need, Some(24 << 30)).unwrap_err().to_string();
        assert!(e.contains("needs about") && e.contains("24.0 GiB"), "{e}");
        fits(need, Some(need)).unwrap();
        fits(need, None).unwrap();
    }
}
