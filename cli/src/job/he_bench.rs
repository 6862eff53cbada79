//! The stages of HomomorphicEncryption.org's ML-inference workload (the harness in
//! `fhe-benchmarking/ml-inference`): a client and a server that meet only through files under
//! the harness's working directory, for four instance sizes (1, 15, 1,000 and 10,000 images).
//!
//! - input: `datasets/<instance>/intermediate/test_pixels.txt`, an image per line, 784 pixels in
//!   [0, 1] as decimal text;
//! - `io/<instance>/public_keys/` (parameters and evaluation keys, what the server receives),
//!   `secret_key/` (the client's only), `ciphertexts_upload/` and `ciphertexts_download/` (the
//!   harness measures these three folders);
//! - output: `io/<instance>/encrypted_model_predictions.txt`, a digit per line.
//!
//! One image goes in the latency packing (its own ciphertexts, answered in milliseconds), the
//! batches in the batch packing. Ciphertext files carry the split job's frames
//! ([`hegpu::pair::envelope`]), so a file of another request, plan or key set is refused by name.

use super::ServerDevice;
use super::files::{about, frame_of, io, make_keys, read, read_client_state, read_server_state};
use hegpu::backend::{Backend, DeviceChoice, select_backend};
use hegpu::ckks::{Encoder, Encryptor, Parameters, Preset, SecretKey, Seed};
use hegpu::data::Mnist;
use hegpu::files::write_file;
use hegpu::nn::{Dense, Flatten, LatencyNetwork, Layer, Model, Polynomial, argmax, load_model};
use hegpu::pair::envelope::{Frame, Kind, ciphertext_checksum};
use hegpu::pair::{ModelClient, RequestLayout, ServedModel, SplitPacking};
use hegpu::tensor::CipherTensor;
use hegpu::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The instances' names and image counts, by the size index the harness passes.
pub const INSTANCES: [(&str, usize); 4] = [
    ("single", 1),
    ("small", 15),
    ("medium", 1000),
    ("large", 10000),
];

/// Pixels per image.
const PIXELS: usize = hegpu::pair::DIGIT_PIXELS;

/// The preset every instance runs at: N = 2^14, twelve levels, 128-bit secure. It holds the
/// workload's MLP with degree-8 activations in both packings (nine levels in the batch
/// packing, eleven in the latency packing), and keys are made before the model is seen.
pub const PRESET: Preset = Preset::Deep16384;

/// Where one instance's files are.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The harness's working directory.
    pub root: PathBuf,
    /// The size index: 0 single, 1 small, 2 medium, 3 large.
    pub size: usize,
}

impl Instance {
    pub fn new(root: &Path, size: usize) -> Result<Self> {
        if size >= INSTANCES.len() {
            return Err(Error::Config(format!(
                "instance size {size}: 0 (single), 1 (small), 2 (medium) or 3 (large)"
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
            size,
        })
    }

    pub fn name(&self) -> &'static str {
        INSTANCES[self.size].0
    }

    fn io(&self, part: &str) -> PathBuf {
        self.root.join("io").join(self.name()).join(part)
    }

    /// The test images the harness drew for this instance.
    pub fn pixels_file(&self) -> PathBuf {
        (self.root.join("datasets").join(self.name()))
            .join("intermediate")
            .join("test_pixels.txt")
    }

    pub fn predictions_file(&self) -> PathBuf {
        self.io("encrypted_model_predictions.txt")
    }

    /// One image goes in the latency packing, more in the batch packing.
    fn latency(&self) -> bool {
        self.size == 0
    }
}

/// The stages the harness runs, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    ClientKeyGeneration,
    ClientPreprocessInput,
    ClientEncodeEncryptInput,
    ServerEncryptedCompute,
    ClientDecryptDecode,
    ClientPostprocess,
}

impl std::str::FromStr for Stage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.replace('-', "_").as_str() {
            "client_key_generation" => Stage::ClientKeyGeneration,
            "client_preprocess_input" => Stage::ClientPreprocessInput,
            "client_encode_encrypt_input" => Stage::ClientEncodeEncryptInput,
            "server_encrypted_compute" => Stage::ServerEncryptedCompute,
            "client_decrypt_decode" => Stage::ClientDecryptDecode,
            "client_postprocess" => Stage::ClientPostprocess,
            _ => {
                return Err(Error::Config(format!(
                    "stage '{s}': client_key_generation, client_preprocess_input, \
                     client_encode_encrypt_input, server_encrypted_compute, \
                     client_decrypt_decode or client_postprocess (server_preprocess_model is \
                     `hegpu import`)"
                )));
            }
        })
    }
}

/// What a stage needs besides its instance.
#[derive(Clone, Debug)]
pub struct StageOptions {
    /// The hegpu model the server evaluates (from `server_preprocess_model`); the client plans
    /// the latency packing's layouts by it.
    pub model: PathBuf,
    /// MNIST IDX files whose training images calibrate the plans (public data).
    pub calibration: PathBuf,
    pub server: ServerDevice,
}

/// Runs `stage` for `instance`; returns a line saying what it did.
pub fn run_stage(stage: Stage, instance: &Instance, opts: &StageOptions) -> Result<String> {
    match stage {
        Stage::ClientKeyGeneration => client_key_generation(instance, opts),
        // Pixels are read as the harness writes them; the model takes them as they are (its
        // normalization is folded into its first layer at import).
        Stage::ClientPreprocessInput | Stage::ClientPostprocess => Ok("nothing to do".into()),
        Stage::ClientEncodeEncryptInput => client_encrypt(instance, opts),
        Stage::ServerEncryptedCompute => server_compute(instance, opts),
        Stage::ClientDecryptDecode => client_decrypt(instance, opts),
    }
}

fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|e| io(path, e))?;
    }
    std::fs::create_dir_all(path).map_err(|e| io(path, e))
}

/// The workload's network shape with the model's weights unknown (keys are made before the
/// server prepares its model): 784 → 128 → p → 64 → p → 10 with p of degree 8 (the
/// submission imports ReLU as one), every weight nonzero. Its latency plan makes the same
/// rotations at the same levels as any trained model of that shape, whose dense weights are
/// nonzero too: the layouts follow the shapes and the slots, activations keep values where
/// they are, and the levels follow the degree.
fn shape_only() -> Model {
    let dense = |inputs: usize, outputs: usize| {
        Layer::Dense(Dense {
            inputs,
            outputs,
            weight: vec![0.01; inputs * outputs],
            bias: vec![0.0; outputs],
        })
    };
    // Values stay within the range: the first layer's reach at most 784 · 0.01.
    let degree_8 = || {
        Layer::Polynomial(Polynomial {
            range: 10.0,
            coefficients: vec![0.0, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01],
        })
    };
    Model {
        input: vec![PIXELS],
        layers: vec![
            dense(PIXELS, 128),
            degree_8(),
            dense(128, 64),
            degree_8(),
            dense(64, 10),
        ],
    }
}

fn calibration(opts: &StageOptions) -> Result<Mnist> {
    Mnist::load(&opts.calibration)
}

/// The model, an MLP over 784 pixels to 10 digits (a 1×28×28 input is read as 784).
fn load(opts: &StageOptions) -> Result<Model> {
    let mut model = load_model(&opts.model)?;
    let output = model.shapes()?.pop().unwrap_or_default();
    if model.input_len() != PIXELS || output != [10] {
        return Err(Error::Config(format!(
            "{} maps {:?} to {output:?}, not 784 pixels to 10 digits",
            opts.model.display(),
            model.input
        )));
    }
    if model.input != [PIXELS] {
        model.input = vec![PIXELS];
        if !matches!(model.layers.first(), Some(Layer::Flatten(_))) {
            model.layers.insert(0, Layer::Flatten(Flatten));
        }
    }
    Ok(model)
}

/// The latency plan of `model` for `params` on the calibration images.
fn latency_plan(model: &Model, params: &Arc<Parameters>, mnist: &Mnist) -> Result<LatencyNetwork> {
    LatencyNetwork::plan(model, params, &hegpu::pair::calibration(mnist), 1)
}

fn client_key_generation(instance: &Instance, opts: &StageOptions) -> Result<String> {
    let params = Parameters::preset(PRESET)?;
    let rotations = if instance.latency() {
        latency_plan(&shape_only(), &params, &calibration(opts)?)?.rotation_levels()
    } else {
        Vec::new()
    };
    let (public, secret) = (instance.io("public_keys"), instance.io("secret_key"));
    fresh_dir(&public)?;
    fresh_dir(&secret)?;
    let key_bytes = make_keys(&params, &rotations, (&secret, &public))?;
    Ok(format!(
        "keys for {} ({}): relinearization{}, {} bytes",
        PRESET.name(),
        if instance.latency() {
            "latency packing"
        } else {
            "batch packing"
        },
        if rotations.is_empty() {
            String::new()
        } else {
            format!(" and {} Galois keys", rotations.len())
        },
        key_bytes
    ))
}

/// The images of `path`: lines of 784 numbers in [0, 1].
pub fn read_pixels(path: &Path) -> Result<Vec<f32>> {
    let text =
        String::from_utf8(read(path)?).map_err(|e| about(path, Error::Config(e.to_string())))?;
    let mut pixels = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |why: String| Error::Data {
            path: path.display().to_string(),
            why: format!("line {}: {why}", i + 1),
        };
        let before = pixels.len();
        for word in line.split_whitespace() {
            let v: f32 = word
                .parse()
                .map_err(|_| bad(format!("'{word}' is not a number")))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(format!("pixel {v} is outside [0, 1]")));
            }
            pixels.push(v);
        }
        if pixels.len() - before != PIXELS {
            return Err(bad(format!(
                "{} pixels, expected {PIXELS}",
                pixels.len() - before
            )));
        }
    }
    if pixels.is_empty() {
        return Err(Error::Data {
            path: path.display().to_string(),
            why: "holds no image".into(),
        });
    }
    Ok(pixels)
}

/// The client's state: parameters (from the public keys) and the secret key.
fn client_state(instance: &Instance) -> Result<(Arc<Parameters>, SecretKey)> {
    let params = instance.io("public_keys").join("params.bin");
    read_client_state(&params, &instance.io("secret_key").join("secret.key"))
}

fn file_name(kind: Kind, b: usize) -> String {
    match kind {
        Kind::Request | Kind::Batch => format!("batch-{b:03}.ct"),
        Kind::Answer | Kind::Result => format!("result-{b:03}.ct"),
    }
}

/// Images per batch file: one request of one image, or a batch of N/2.
fn per_file(instance: &Instance, params: &Parameters) -> usize {
    if instance.latency() {
        1
    } else {
        params.slots()
    }
}

fn client_encrypt(instance: &Instance, opts: &StageOptions) -> Result<String> {
    let host: Arc<dyn Backend> = select_backend(DeviceChoice::Cpu)?;
    let (params, sk) = client_state(instance)?;
    let pixels = read_pixels(&instance.pixels_file())?;
    let images = pixels.len() / PIXELS;
    if instance.latency() && images != 1 {
        return Err(Error::Config(format!(
            "the single instance holds one image; {} has {images}",
            instance.pixels_file().display()
        )));
    }
    let model = load(opts)?;
    let plan = if instance.latency() {
        Some(latency_plan(&model, &params, &calibration(opts)?)?)
    } else {
        None
    };
    let encoder = Encoder::new(&params);
    let encryptor = Encryptor::with_secret_key(&params, &sk, host.clone(), Seed::Os)?;
    let upload = instance.io("ciphertexts_upload");
    fresh_dir(&upload)?;
    let per = per_file(instance, &params);
    let mut bytes_written = 0;
    for (b, start) in (0..images).step_by(per).enumerate() {
        let end = (start + per).min(images);
        let chunk = &pixels[start * PIXELS..end * PIXELS];
        let (kind, source, bytes) = match &plan {
            Some(plan) => {
                let ct = plan.encrypt(&encoder, &encryptor, chunk)?;
                (
                    Kind::Request,
                    plan.fingerprint(),
                    ct.to_bytes(&params, &*host)?,
                )
            }
            None => {
                let scale = params.default_scale();
                let (shape, client) = (&model.input, (&encoder, &encryptor));
                let bytes =
                    CipherTensor::encrypt_to_bytes(chunk, shape, client.0, client.1, scale)?;
                (Kind::Batch, 0, bytes)
            }
        };
        let frame = frame_of(kind, b, (start, end), source);
        let wrapped = frame.wrap(&bytes);
        bytes_written += wrapped.len();
        write_file(&upload.join(file_name(kind, b)), &wrapped)?;
    }
    Ok(format!(
        "encrypted {images} image(s): {bytes_written} bytes"
    ))
}

/// The batch files of `dir` in order, with the frame each must have (source 0: any).
fn listed(dir: &Path, kind: Kind) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    while dir.join(file_name(kind, files.len())).exists() {
        files.push(dir.join(file_name(kind, files.len())));
    }
    if files.is_empty() {
        return Err(Error::Data {
            path: dir.display().to_string(),
            why: format!("holds no {}", file_name(kind, 0)),
        });
    }
    Ok(files)
}

fn server_compute(instance: &Instance, opts: &StageOptions) -> Result<String> {
    let public = instance.io("public_keys");
    let (params, keys, key_set) = read_server_state(&public)?;
    let model = load(opts)?;
    let mnist = calibration(opts)?;
    let served = if instance.latency() {
        let plan = latency_plan(&model, &params, &mnist)?;
        let missing = (plan.rotation_levels().into_iter()).find(|&(r, level)| {
            let key = keys.galois.level(params.galois_element(r));
            key.is_none_or(|top| top < level)
        });
        if let Some((r, level)) = missing {
            return Err(Error::Config(format!(
                "the model's latency plan rotates by {r} at level {level}, which the client's \
                 Galois keys do not cover: the model is not the workload's 784-128-64-10 \
                 network with degree-8 activations"
            )));
        }
        ServedModel::latency(plan, 1)
    } else {
        let calibration = hegpu::pair::calibration(&mnist);
        ServedModel::new(
            &model,
            &calibration,
            SplitPacking::Batch,
            Some(params.clone()),
        )?
    };
    let scheduler = opts.server.scheduler(served.params(), &keys)?;
    let (upload, download) = (
        instance.io("ciphertexts_upload"),
        instance.io("ciphertexts_download"),
    );
    fresh_dir(&download)?;
    let client_kind = if instance.latency() {
        Kind::Request
    } else {
        Kind::Batch
    };
    let started = std::time::Instant::now();
    let mut images = 0;
    for (b, path) in listed(&upload, client_kind)?.iter().enumerate() {
        let bytes = read(path)?;
        let name = path.display().to_string();
        // The frame names its images; the pair checks the rest (kind, batch, plan, key set).
        let (frame, _) = Frame::unwrap(&bytes, &name)?;
        let range = (frame.start as usize, frame.end as usize);
        let answer = served.answer(&scheduler, key_set, &bytes, &name, Some((b, range)))?;
        let kind = client_kind.answered_by();
        write_file(&download.join(file_name(kind, b)), &answer.bytes)?;
        images += range.1 - range.0;
    }
    let mut summary = format!(
        "evaluated {images} image(s) in {:.3} s on {}",
        started.elapsed().as_secs_f64(),
        scheduler.name()
    );
    for w in scheduler.take_warnings() {
        summary.push_str(&format!("\n{w}"));
    }
    Ok(summary)
}

fn client_decrypt(instance: &Instance, opts: &StageOptions) -> Result<String> {
    let (params, sk) = client_state(instance)?;
    let plan = if instance.latency() {
        Some(latency_plan(&load(opts)?, &params, &calibration(opts)?)?)
    } else {
        None
    };
    let layout = RequestLayout::digits_or(plan);
    let client = ModelClient::with_secret_key(params, sk, layout)?;
    let (upload, download) = (
        instance.io("ciphertexts_upload"),
        instance.io("ciphertexts_download"),
    );
    let kind = if instance.latency() {
        Kind::Answer
    } else {
        Kind::Result
    };
    let mut lines = String::new();
    let mut images = 0;
    for (b, path) in listed(&download, kind)?.iter().enumerate() {
        let bytes = read(path)?;
        let name = path.display().to_string();
        // The result must answer the batch file the client has now: its images, its bytes.
        let sent_path = upload.join(file_name(
            if instance.latency() {
                Kind::Request
            } else {
                Kind::Batch
            },
            b,
        ));
        let sent = read(&sent_path)?;
        let (sent_frame, sent_ct) = Frame::unwrap(&sent, &sent_path.display().to_string())?;
        let (start, end) = (sent_frame.start as usize, sent_frame.end as usize);
        let source = ciphertext_checksum(sent_ct);
        if end <= start {
            return Err(about(
                &sent_path,
                Error::Config(format!("names images {start}..{end}")),
            ));
        }
        if start != images {
            return Err(about(
                path,
                Error::Config(format!("starts at image {start}, expected {images}")),
            ));
        }
        let outputs = client.outputs(&bytes, &name, (b, (start, end)), source)?;
        for out in &outputs {
            lines.push_str(&format!("{}\n", argmax(out)));
        }
        images = end;
    }
    write_file(&instance.predictions_file(), lines.as_bytes())?;
    Ok(format!(
        "decrypted {images} prediction(s) into {}",
        instance.predictions_file().display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("hegpu-he-bench-{tag}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn pixels_are_read_as_the_harness_writes_them_and_bad_lines_are_named() {
        let line = |v: &str, k: usize| vec![v; k].join(" ");
        let good = format!("{}\n{}\n\n", line("0.000000", 784), line("1.000000", 784));
        let path = scratch("good", &good);
        let pixels = read_pixels(&path).unwrap();
        assert_eq!(pixels.len(), 2 * 784);
        assert_eq!((pixels[0], pixels[784]), (0.0, 1.0));
        for (tag, text, why) in [
            (
                "short",
                line("0.5", 783),
                "line 1: 783 pixels, expected 784",
            ),
            (
                "range",
                format!("{} 1.5", line("0.5", 783)),
                "pixel 1.5 is outside [0, 1]",
            ),
            (
                "word",
                format!("{} x", line("0.5", 783)),
                "'x' is not a number",
            ),
            ("nan", format!("{} NaN", line("0.5", 783)), "outside [0, 1]"),
            ("empty", String::new(), "holds no image"),
        ] {
            let path = scratch(tag, &text);
            let e = read_pixels(&path).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains(&path.display().to_string()),
                "{tag}: {e}"
            );
            std::fs::remove_file(path).unwrap();
        }
        std::fs::remove_file(path).unwrap();
        assert!(Instance::new(Path::new("."), 4).is_err());
        assert!("server_preprocess_model".parse::<Stage>().is_err());
        assert_eq!(
            "client-key-generation".parse::<Stage>().unwrap(),
            Stage::ClientKeyGeneration
        );
    }
}
