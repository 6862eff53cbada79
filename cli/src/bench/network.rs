//! The whole encrypted network for `hegpu bench`: the shipped CryptoNets model on real MNIST
//! test images (repeated to fill batches larger than the test set), per device and batch size,
//! for each ring degree asked (the CryptoNets modulus chain at N = 2^13, 2^14, …). One batch is
//! one set of ciphertexts whatever its fill, so images per second grows with the batch up to
//! N/2: the scaling curve of the chart.
//!
//! A batch is a framed request of the one client/server pair (`hegpu::pair`) the job and the
//! service use, and its time is the server's answer: reading the request's ciphertexts,
//! evaluating, the result on the host (before 2026-12-07 the reading was left out).
//!
//! Every device must return the same answer bytes as the first one measured, and the first
//! one's decryption is checked against the plaintext model, so a fast wrong answer is an error
//! rather than a row.

use super::{Devices, Record};
use hegpu::backend::Backend;
use hegpu::ckks::{
    EvaluationKeys, KeyGenerator, KeySetId, ParameterLiteral, Parameters, Preset, Seed,
};
use hegpu::data::Mnist;
use hegpu::nn::{Dense, EncryptedNetwork, Layer, Model, argmax, pixels};
use hegpu::pair::load_digit_model;
use hegpu::pair::{ModelClient, ServedModel, SplitPacking, calibration};
use hegpu::tensor::{ScheduleOptions, ScheduleReport, Scheduler, Work};
use hegpu::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Below this share of images whose decrypted answer matches the plaintext model's, the first
/// device's evaluation is taken for wrong and the bench stops (the shipped model gets 100%;
/// only near-ties can differ under CKKS's approximation).
const MIN_AGREEMENT: f64 = 0.9;

/// What the network rows measure.
#[derive(Clone, Debug)]
pub struct NetworkBench {
    pub model: PathBuf,
    pub data: PathBuf,
    /// log2 of the ring degrees, each with the CryptoNets modulus chain (30 + 5×24 bits, one
    /// 31-bit special prime).
    pub log_n: Vec<u32>,
    /// Images per batch; sizes above a degree's N/2 slots are left out for it.
    pub batches: Vec<usize>,
    /// Also run on a software GPU adapter (lavapipe), which takes minutes a batch and says
    /// nothing of GPU speed; for tests.
    pub software_gpu: bool,
}

impl Default for NetworkBench {
    fn default() -> Self {
        Self {
            model: "models/cryptonets-5.safetensors".into(),
            data: "data/mnist".into(),
            log_n: vec![13, 14],
            batches: vec![64, 512, 4096, 8192],
            software_gpu: false,
        }
    }
}

impl NetworkBench {
    /// The peer's sample: the model's first dense layer on the first test image.
    pub fn dense_sample(&self) -> Result<DenseSample> {
        let model = load_digit_model(&self.model)?;
        let mnist = test_set(&self.data)?;
        DenseSample::from_model(&model, &pixels(&mnist.test_images)[..784])
    }
}

/// The first dense layer of a model with one image's activations before it, quantized to
/// 8 bits (inputs to `0..=255` of their largest value, weights to `-127..=127` of theirs):
/// what the tfhe-rs peer computes. The inputs must be non-negative, as they are after x².
#[derive(Clone, Debug)]
pub struct DenseSample {
    pub inputs: Vec<u8>,
    /// `[input]` for the first output: the row the peer's dot product uses.
    pub weights: Vec<i8>,
    pub outputs: usize,
}

impl DenseSample {
    /// The sample for `model` on `image`; an error when the model has no dense layer or a
    /// negative input to it.
    pub fn from_model(model: &Model, image: &[f32]) -> Result<Self> {
        let shapes = model.shapes()?;
        let mut x = image.to_vec();
        for (layer, shape) in model.layers.iter().zip(&shapes) {
            if let Layer::Dense(Dense {
                inputs,
                outputs,
                weight,
                ..
            }) = layer
            {
                if x.iter().any(|v| *v < 0.0) {
                    return Err(Error::Config(
                        "the first dense layer has negative inputs: not unsigned 8-bit".into(),
                    ));
                }
                let top = x
                    .iter()
                    .fold(0f32, |m, v| m.max(v.abs()))
                    .max(f32::MIN_POSITIVE);
                let w_top = weight
                    .iter()
                    .fold(0f32, |m, v| m.max(v.abs()))
                    .max(f32::MIN_POSITIVE);
                return Ok(Self {
                    inputs: x.iter().map(|v| (v / top * 255.0).round() as u8).collect(),
                    weights: weight[..*inputs]
                        .iter()
                        .map(|w| (w / w_top * 127.0).round() as i8)
                        .collect(),
                    outputs: *outputs,
                });
            }
            x = layer.forward(shape, &x)?;
        }
        Err(Error::Config("the model has no dense layer".into()))
    }
}

/// MNIST from `dir`, with at least one test image.
fn test_set(dir: &std::path::Path) -> Result<Mnist> {
    let mnist = Mnist::load(dir)?;
    if mnist.test_labels.is_empty() {
        return Err(Error::Config(format!(
            "{} has no test images to benchmark on",
            dir.display()
        )));
    }
    Ok(mnist)
}

/// The parameters of the network rows at degree 2^`log_n`.
pub fn network_parameters(log_n: u32) -> Result<Arc<Parameters>> {
    Parameters::new(ParameterLiteral {
        log_n,
        ..Preset::CryptoNets8192.literal()
    })
}

/// The network at one ring degree: model, test images, and the client and server of the one
/// client/server pair (`hegpu::pair`) the job and the service use.
pub struct NetworkCase {
    model: Model,
    test_px: Vec<f32>,
    params: Arc<Parameters>,
    keys: EvaluationKeys,
    key_set: KeySetId,
    served: ServedModel,
    client: ModelClient,
}

impl NetworkCase {
    /// Loads `bench`'s model and data and makes seeded keys at degree 2^`log_n`.
    pub fn load(bench: &NetworkBench, log_n: u32) -> Result<Self> {
        let mnist = test_set(&bench.data)?;
        let model = load_digit_model(&bench.model)?;
        let params = network_parameters(log_n)?;
        let mut kg = KeyGenerator::new(&params, Seed::from_u64(u64::from(log_n)));
        let sk = kg.secret_key()?;
        let keys = EvaluationKeys {
            relin: Some(kg.relin_key(&sk)?),
            ..Default::default()
        };
        let packing = SplitPacking::Batch;
        let served = ServedModel::new(&model, &calibration(&mnist), packing, Some(params.clone()))?;
        Ok(Self {
            test_px: pixels(&mnist.test_images),
            model,
            key_set: sk.key_set(),
            client: ModelClient::with_secret_key(params.clone(), sk, served.layout())?,
            served,
            keys,
            params,
        })
    }

    /// The largest batch: N/2 slots.
    pub fn max_batch(&self) -> usize {
        self.params.slots()
    }

    /// The pixels of a batch: the test images in order, repeated when the batch is larger
    /// than the test set (the shipped sample has 1,000).
    fn batch_pixels(&self, batch: usize) -> Vec<f32> {
        self.test_px
            .iter()
            .copied()
            .cycle()
            .take(batch * 784)
            .collect()
    }

    /// A batch of test images (in order, repeated past the test set) encrypted by the client,
    /// as the framed request the server gets.
    pub fn encrypt_batch(&self, batch: usize) -> Result<Vec<u8>> {
        if batch == 0 || batch > self.max_batch() {
            return Err(Error::Config(format!(
                "a batch of {batch} images: 1 to {} fit",
                self.max_batch()
            )));
        }
        self.client
            .request(0, (0, batch), &self.batch_pixels(batch))
    }

    /// The server's scheduler on `device` (resident on a GPU, the CPU's own threads on a CPU).
    pub fn scheduler(&self, device: Arc<dyn Backend>) -> Result<Scheduler> {
        Scheduler::new(&self.params, &self.keys, device, ScheduleOptions::default())
    }

    /// The server's answer to `request` bytes: the answer's bytes, the seconds the server took
    /// (from reading the request's ciphertexts to the result on the host, as a server does) and
    /// its report.
    pub fn serve(
        &self,
        scheduler: &Scheduler,
        request: &[u8],
    ) -> Result<(Vec<u8>, f64, ScheduleReport)> {
        let answer = self
            .served
            .answer(scheduler, self.key_set, request, "the batch", None)?;
        Ok((answer.bytes, answer.seconds, answer.report))
    }

    /// The share of a batch of `batch` images whose decrypted argmax (from `answer` bytes)
    /// matches the plaintext model's.
    pub fn agreement(&self, answer: &[u8], batch: usize) -> Result<f64> {
        let logits = (self.client).outputs(answer, "the answer", (0, (0, batch)), 0)?;
        let plain = self.model.predict(&self.batch_pixels(batch))?;
        let agree = logits
            .iter()
            .zip(&plain)
            .filter(|(l, p)| argmax(l) == **p)
            .count();
        Ok(agree as f64 / batch as f64)
    }
}

/// Measures the network on every device for every degree and batch size of `bench`. Besides
/// the whole network ("network"), each run gives the dense stage of `dense` alone
/// ("dense_layer", with its x²), the row to set beside the tfhe-rs peer.
pub fn run_network(
    bench: &NetworkBench,
    devices: &Devices,
    dense: Option<&DenseSample>,
    push: &mut dyn FnMut(Record),
) -> Result<()> {
    for &log_n in &bench.log_n {
        let case = NetworkCase::load(bench, log_n)?;
        // The plan's stage that computes the sample's layer (the stage reports come in order).
        let plan = case.served.batch_plan().map(EncryptedNetwork::layer_plan);
        let dense_stage = dense.zip(plan).and_then(|(d, plan)| {
            plan.stages.iter().position(|w| {
                matches!(w, Work::Linear(l) if l.inputs == d.inputs.len() && l.outputs() == d.outputs)
            })
        });
        let batches: Vec<usize> = bench
            .batches
            .iter()
            .copied()
            .filter(|&b| b >= 1 && b <= case.max_batch())
            .collect();
        let inputs: Vec<Vec<u8>> = batches
            .iter()
            .map(|&b| case.encrypt_batch(b))
            .collect::<Result<_>>()?;
        let mut reference: Vec<Option<(String, Vec<u8>)>> = vec![None; batches.len()];
        for (dev, threads) in &devices.list {
            if *threads == 0 && devices.gpu_is_software && !bench.software_gpu {
                continue;
            }
            let scheduler = case.scheduler(dev.clone())?;
            // Warm-up: weights prepared on the device, buffers recycled.
            if let Some(first) = inputs.first() {
                case.serve(&scheduler, first)?;
            }
            for (i, (&batch, input)) in batches.iter().zip(&inputs).enumerate() {
                let (output, seconds, report) = case.serve(&scheduler, input)?;
                let check = match &reference[i] {
                    Some((first, bytes)) if *bytes != output => {
                        return Err(Error::Config(format!(
                            "{} returned other ciphertext bytes than {first} for a batch of {batch}",
                            dev.name()
                        )));
                    }
                    Some((first, _)) => format!("output bytes equal {first}'s"),
                    None => {
                        let agree = case.agreement(&output, batch)?;
                        if agree < MIN_AGREEMENT {
                            return Err(Error::Config(format!(
                                "{} decrypted to the plaintext model's answer on {:.1}% of a batch of {batch}",
                                dev.name(),
                                agree * 100.0
                            )));
                        }
                        reference[i] = Some((dev.name(), output));
                        format!("{:.2}% agreement with the plaintext model", agree * 100.0)
                    }
                };
                let row = |op, per_second, detail| Record {
                    op,
                    n: case.params.degree(),
                    limbs: case.params.max_level() + 1,
                    batch,
                    backend: scheduler.name(),
                    threads: *threads,
                    per_second,
                    unit: "images",
                    detail,
                };
                let stages: Vec<String> = report
                    .stages
                    .iter()
                    .map(|s| format!("{} {:.3} s", s.what, s.seconds))
                    .collect();
                push(row(
                    "network",
                    batch as f64 / seconds,
                    format!(
                        "{:?}; {}; {} key switches, {} NTTs, {} bytes sent; {check}",
                        report.mode,
                        stages.join(", "),
                        report.key_switches,
                        report.ntts,
                        input.len()
                    ),
                ));
                if let Some(stage) = dense_stage.and_then(|i| report.stages.get(i)) {
                    push(row(
                        "dense_layer",
                        batch as f64 / stage.seconds,
                        format!("{} of the CKKS network, on {batch} images", stage.what),
                    ));
                }
            }
        }
    }
    Ok(())
}
